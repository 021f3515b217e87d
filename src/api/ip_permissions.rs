//! EC2's `IpPermissions`: the rules of a security group as requests carry
//! them and as DescribeSecurityGroups shows them.
//!
//! Rules arrive in two forms and both are accepted: the `IpPermissions.N`
//! structure the CLI and boto3 send (CIDRs v4 and v6 with descriptions, group
//! references, protocol `-1`), and the flat legacy parameters boto 2 and
//! euca2ools send (`IpProtocol`, `FromPort`, `ToPort`, `CidrIp`,
//! `SourceSecurityGroupName`, `SourceSecurityGroupOwnerId`). Protocols are
//! normalised (`6` is `tcp`, `all` is `-1`) and ports checked as EC2 does.
//! Stored one peer per rule, they are folded back into `IpPermission` items
//! by protocol and ports when shown.

use super::Context;
use crate::compute::security_groups::{GroupPeer, Rule, RulePeer, RuleSpec};
use crate::error::{ApiError, ApiResult};
use crate::protocol::xml::XmlWriter;
use crate::protocol::Params;
use std::collections::HashMap;

/// EC2's protocol names: `tcp`, `udp`, `icmp`, `icmpv6`, `-1`, or a number.
fn normalize_protocol(protocol: &str) -> ApiResult<String> {
    let lower = protocol.trim().to_ascii_lowercase();
    Ok(match lower.as_str() {
        "-1" | "all" => "-1".into(),
        "tcp" | "6" => "tcp".into(),
        "udp" | "17" => "udp".into(),
        "icmp" | "1" => "icmp".into(),
        "icmpv6" | "58" => "icmpv6".into(),
        number if number.parse::<u8>().is_ok() => number.to_string(),
        _ => {
            return Err(ApiError::invalid_value(format!(
                "Invalid value '{protocol}' for IP protocol. Unknown protocol."
            )))
        }
    })
}

/// Ports as the protocol needs them (none for `-1` and other protocols).
fn ports(
    protocol: &str,
    from: Option<i32>,
    to: Option<i32>,
) -> ApiResult<(Option<i32>, Option<i32>)> {
    match protocol {
        "tcp" | "udp" => match (from, to) {
            (Some(from), Some(to))
                if (0..=65535).contains(&from) && (0..=65535).contains(&to) && from <= to =>
            {
                Ok((Some(from), Some(to)))
            }
            (Some(_), Some(_)) => Err(ApiError::invalid_value(format!(
                "Invalid port range: from {} to {} (ports are 0 to 65535, from <= to)",
                from.unwrap_or_default(),
                to.unwrap_or_default()
            ))),
            _ => Err(ApiError::invalid_value(
                "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange.",
            )),
        },
        "icmp" | "icmpv6" => {
            let (from, to) = (from.unwrap_or(-1), to.unwrap_or(-1));
            if (-1..=255).contains(&from) && (-1..=255).contains(&to) {
                Ok((Some(from), Some(to)))
            } else {
                Err(ApiError::invalid_value(
                    "ICMP type and code must be -1 to 255",
                ))
            }
        }
        _ => Ok((None, None)),
    }
}

fn check_cidr(cidr: &str, v6: bool) -> ApiResult<String> {
    let valid = cidr.split_once('/').is_some_and(|(address, length)| {
        let length: Option<u8> = length.parse().ok();
        if v6 {
            address.parse::<std::net::Ipv6Addr>().is_ok() && length.is_some_and(|l| l <= 128)
        } else {
            address.parse::<std::net::Ipv4Addr>().is_ok() && length.is_some_and(|l| l <= 32)
        }
    });
    if valid {
        Ok(cidr.to_string())
    } else {
        Err(ApiError::invalid_value(format!(
            "CIDR block {cidr} is malformed"
        )))
    }
}

/// A rule as parsed, with its group peer not yet resolved.
#[derive(Debug, Clone)]
pub struct RequestedRule {
    protocol: String,
    from_port: Option<i32>,
    to_port: Option<i32>,
    peer: RequestedPeer,
    description: Option<String>,
}

#[derive(Debug, Clone)]
enum RequestedPeer {
    Cidr(String),
    CidrV6(String),
    Group(GroupPeer),
}

/// Parses `IpPermissions.N...` and the flat legacy parameters.
pub(super) fn requested_rules(params: &Params) -> ApiResult<Vec<RequestedRule>> {
    let mut rules = Vec::new();
    for permission in params.structures("IpPermissions")? {
        let protocol = normalize_protocol(
            &permission
                .required("IpProtocol")
                .map_err(|_| ApiError::MissingParameter("IpPermissions.N.IpProtocol".into()))?,
        )?;
        let (from_port, to_port) = ports(
            &protocol,
            permission.number("FromPort")?,
            permission.number("ToPort")?,
        )?;
        let mut peers = Vec::new();
        for range in permission.structures("IpRanges")? {
            peers.push((
                RequestedPeer::Cidr(check_cidr(&range.required("CidrIp")?, false)?),
                range.optional_text("Description", 255)?,
            ));
        }
        for range in permission.structures("Ipv6Ranges")? {
            peers.push((
                RequestedPeer::CidrV6(check_cidr(&range.required("CidrIpv6")?, true)?),
                range.optional_text("Description", 255)?,
            ));
        }
        for pair in permission.structures("Groups")? {
            let owner = pair.optional("UserId");
            if let Some(owner) = &owner {
                if owner.len() != 12 || !owner.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ApiError::invalid_value(format!(
                        "Invalid user id: \"{owner}\": an account id is twelve digits"
                    )));
                }
            }
            let peer = match (pair.optional("GroupId"), pair.optional("GroupName")) {
                (Some(group_id), _) => GroupPeer::Id {
                    group_id,
                    account_id: owner,
                },
                (None, Some(group_name)) => GroupPeer::Name {
                    group_name,
                    account_id: owner,
                },
                (None, None) => {
                    return Err(ApiError::MissingParameter(
                        "IpPermissions.N.Groups.M.GroupId".into(),
                    ))
                }
            };
            peers.push((
                RequestedPeer::Group(peer),
                pair.optional_text("Description", 255)?,
            ));
        }
        if peers.is_empty() {
            return Err(ApiError::MissingParameter(
                "IpPermissions.N.IpRanges, Ipv6Ranges or Groups".into(),
            ));
        }
        for (peer, description) in peers {
            rules.push(RequestedRule {
                protocol: protocol.clone(),
                from_port,
                to_port,
                peer,
                description,
            });
        }
    }
    let flat_protocol = params.optional("IpProtocol");
    let flat_cidr = params.optional("CidrIp");
    let flat_group = params.optional("SourceSecurityGroupName");
    if flat_protocol.is_some() || flat_cidr.is_some() || flat_group.is_some() {
        // A flat source group without protocol means all traffic from it (boto 2's
        // authorize(src_group=...)).
        let protocol = normalize_protocol(flat_protocol.as_deref().unwrap_or("-1"))?;
        let (from_port, to_port) = ports(
            &protocol,
            params.number("FromPort")?,
            params.number("ToPort")?,
        )?;
        let peer = match (flat_cidr, flat_group) {
            (Some(cidr), _) => RequestedPeer::Cidr(check_cidr(&cidr, false)?),
            (None, Some(group_name)) => RequestedPeer::Group(GroupPeer::Name {
                group_name,
                account_id: params.optional("SourceSecurityGroupOwnerId"),
            }),
            (None, None) => RequestedPeer::Cidr("0.0.0.0/0".into()),
        };
        rules.push(RequestedRule {
            protocol,
            from_port,
            to_port,
            peer,
            description: None,
        });
    }
    Ok(rules)
}

/// Resolves group peers against the store.
pub(super) async fn resolve(
    context: &Context<'_>,
    rules: Vec<RequestedRule>,
) -> ApiResult<Vec<RuleSpec>> {
    let mut specs = Vec::new();
    for rule in rules {
        let peer = match rule.peer {
            RequestedPeer::Cidr(cidr) => RulePeer::Cidr(cidr),
            RequestedPeer::CidrV6(cidr) => RulePeer::CidrV6(cidr),
            RequestedPeer::Group(group) => {
                context
                    .compute
                    .resolve_peer(&context.principal.account_id, &group)
                    .await?
            }
        };
        specs.push(RuleSpec {
            protocol: rule.protocol,
            from_port: rule.from_port,
            to_port: rule.to_port,
            peer,
            description: rule.description,
        });
    }
    Ok(specs)
}

/// Rules sharing protocol and ports: one `IpPermission` item.
struct Permission<'a> {
    protocol: &'a str,
    from_port: Option<i32>,
    to_port: Option<i32>,
    rules: Vec<&'a Rule>,
}

/// Rules folded into EC2's `IpPermission` items by protocol and ports.
pub(super) fn write_permissions(
    xml: &mut XmlWriter,
    name: &str,
    rules: &[Rule],
    names: &HashMap<String, String>,
) {
    let mut folded: Vec<Permission<'_>> = Vec::new();
    for rule in rules {
        let same = |p: &&mut Permission<'_>| {
            p.protocol == rule.protocol
                && p.from_port == rule.from_port
                && p.to_port == rule.to_port
        };
        match folded.iter_mut().find(same) {
            Some(permission) => permission.rules.push(rule),
            None => folded.push(Permission {
                protocol: &rule.protocol,
                from_port: rule.from_port,
                to_port: rule.to_port,
                rules: vec![rule],
            }),
        }
    }
    xml.list(name, &folded, |xml, permission| {
        let rules = &permission.rules;
        xml.element("ipProtocol", permission.protocol);
        if let Some(from) = permission.from_port {
            xml.number("fromPort", from);
        }
        if let Some(to) = permission.to_port {
            xml.number("toPort", to);
        }
        let groups: Vec<&Rule> = rules
            .iter()
            .copied()
            .filter(|r| matches!(r.peer, RulePeer::Group { .. }))
            .collect();
        xml.list("groups", &groups, |xml, rule| {
            if let RulePeer::Group {
                group_id,
                account_id,
            } = &rule.peer
            {
                xml.element("userId", account_id);
                xml.element("groupId", group_id);
                xml.optional("groupName", names.get(group_id).map(String::as_str));
            }
            xml.optional("description", rule.description.as_deref());
        });
        let v4: Vec<&Rule> = rules
            .iter()
            .copied()
            .filter(|r| matches!(r.peer, RulePeer::Cidr(_)))
            .collect();
        xml.list("ipRanges", &v4, |xml, rule| {
            if let RulePeer::Cidr(cidr) = &rule.peer {
                xml.element("cidrIp", cidr);
            }
            xml.optional("description", rule.description.as_deref());
        });
        let v6: Vec<&Rule> = rules
            .iter()
            .copied()
            .filter(|r| matches!(r.peer, RulePeer::CidrV6(_)))
            .collect();
        xml.list("ipv6Ranges", &v6, |xml, rule| {
            if let RulePeer::CidrV6(cidr) = &rule.peer {
                xml.element("cidrIpv6", cidr);
            }
            xml.optional("description", rule.description.as_deref());
        });
        xml.list("prefixListIds", &[] as &[String], |_, _| {});
    });
}
