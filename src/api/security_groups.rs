//! CreateSecurityGroup, DeleteSecurityGroup, DescribeSecurityGroups,
//! Authorize/RevokeSecurityGroupIngress/Egress, DescribeSecurityGroupRules.
//!
//! Rules arrive in two forms and both are accepted: the `IpPermissions.N`
//! structure the CLI and boto3 send (CIDRs v4 and v6 with descriptions, group
//! references, protocol `-1`), and the flat legacy parameters boto 2 and
//! euca2ools send (`IpProtocol`, `FromPort`, `ToPort`, `CidrIp`,
//! `SourceSecurityGroupName`, `SourceSecurityGroupOwnerId`). Protocols are
//! normalised (`6` is `tcp`, `all` is `-1`) and ports checked as EC2 does.

use super::pagination::{check_max_results, Paging};
use super::tags::{check_filter_names, tag_filter_values, tag_specifications, write_tags};
use super::{dry_run_check, Context};
use crate::compute::security_groups::{
    Direction, GroupPeer, GroupSelector, Rule, RulePeer, RuleSpec, SecurityGroup,
};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::matches_all;
use crate::protocol::xml::{XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};
use std::collections::HashMap;

/// `GroupId` or `GroupName`, one of them required.
fn selector(params: &Params) -> ApiResult<GroupSelector> {
    match (params.optional("GroupId"), params.optional("GroupName")) {
        (Some(id), _) => Ok(GroupSelector::Id(id)),
        (None, Some(name)) => Ok(GroupSelector::Name(name)),
        (None, None) => Err(ApiError::MissingParameter("GroupId".into())),
    }
}

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
fn requested_rules(params: &Params) -> ApiResult<Vec<RequestedRule>> {
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
async fn resolve(context: &Context<'_>, rules: Vec<RequestedRule>) -> ApiResult<Vec<RuleSpec>> {
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

#[derive(Debug)]
pub struct CreateSecurityGroup {
    pub name: String,
    pub description: String,
    pub vpc_id: Option<String>,
    pub tags: Vec<crate::compute::instances::Tag>,
    pub dry_run: bool,
}

impl CreateSecurityGroup {
    pub const PARAMETERS: &'static [&'static str] = &[
        "GroupName",
        "GroupDescription",
        "VpcId",
        "TagSpecification",
        "DryRun",
    ];

    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            name: params.required("GroupName")?,
            description: params.required("GroupDescription")?,
            vpc_id: params.optional("VpcId"),
            tags: tag_specifications(params, "security-group")?,
            dry_run: params.boolean("DryRun")?.unwrap_or(false),
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedGroup> {
        let group = context
            .compute
            .create_security_group(
                &context.principal.account_id,
                &self.name,
                &self.description,
                self.vpc_id.as_deref(),
                self.tags,
                self.dry_run,
            )
            .await?;
        Ok(CreatedGroup {
            arn: group_arn(context, &group),
            group,
        })
    }
}

fn group_arn(context: &Context<'_>, group: &SecurityGroup) -> String {
    format!(
        "arn:aws:ec2:{}:{}:security-group/{}",
        context.compute.region.name, group.account_id, group.id
    )
}

#[derive(Debug)]
pub struct CreatedGroup {
    group: SecurityGroup,
    arn: String,
}

impl XmlOutput for CreatedGroup {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("groupId", &self.group.id);
        write_tags(xml, &self.group.tags);
        xml.element("securityGroupArn", &self.arn);
    }
}

#[derive(Debug)]
pub struct DeleteSecurityGroup {
    pub selector: GroupSelector,
    pub dry_run: bool,
}

impl DeleteSecurityGroup {
    pub const PARAMETERS: &'static [&'static str] = &["GroupId", "GroupName", "DryRun"];

    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            selector: selector(params)?,
            dry_run: params.boolean("DryRun")?.unwrap_or(false),
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<DeletedGroup> {
        let id = context
            .compute
            .delete_security_group(&context.principal.account_id, &self.selector, self.dry_run)
            .await?;
        Ok(DeletedGroup(id))
    }
}

#[derive(Debug)]
pub struct DeletedGroup(String);

impl XmlOutput for DeletedGroup {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.boolean("return", true);
        xml.element("groupId", &self.0);
    }
}

/// Authorize or revoke, ingress or egress: one struct, four actions.
#[derive(Debug)]
pub struct RuleChange<const AUTHORIZE: bool, const INGRESS: bool> {
    pub selector: GroupSelector,
    pub rules: Vec<RequestedRule>,
    pub rule_ids: Vec<String>,
    pub dry_run: bool,
}

pub type AuthorizeSecurityGroupIngress = RuleChange<true, true>;
pub type AuthorizeSecurityGroupEgress = RuleChange<true, false>;
pub type RevokeSecurityGroupIngress = RuleChange<false, true>;
pub type RevokeSecurityGroupEgress = RuleChange<false, false>;

impl<const AUTHORIZE: bool, const INGRESS: bool> RuleChange<AUTHORIZE, INGRESS> {
    pub const PARAMETERS: &'static [&'static str] = &[
        "GroupId",
        "GroupName",
        "IpPermissions",
        "IpProtocol",
        "FromPort",
        "ToPort",
        "CidrIp",
        "SourceSecurityGroupName",
        "SourceSecurityGroupOwnerId",
        "SecurityGroupRuleId",
        "TagSpecification",
        "DryRun",
    ];

    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let selector = selector(params)?;
        if !INGRESS && matches!(selector, GroupSelector::Name(_)) {
            return Err(ApiError::MissingParameter("GroupId".into()));
        }
        let rules = requested_rules(params)?;
        let rule_ids = if AUTHORIZE {
            Vec::new()
        } else {
            params.list("SecurityGroupRuleId")?
        };
        if rules.is_empty() && rule_ids.is_empty() {
            return Err(ApiError::MissingParameter("IpPermissions".into()));
        }
        Ok(Self {
            selector,
            rules,
            rule_ids,
            dry_run: params.boolean("DryRun")?.unwrap_or(false),
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<RulesChanged> {
        let direction = if INGRESS {
            Direction::Ingress
        } else {
            Direction::Egress
        };
        // The per-request cap: no request names more rules than a group may hold.
        let limit = context.compute.quotas.max_rules_per_security_group as usize;
        if self.rules.len() + self.rule_ids.len() > limit {
            return Err(crate::compute::security_groups::rules_limit_exceeded(limit));
        }
        let specs = resolve(context, self.rules).await?;
        let account = &context.principal.account_id;
        let (group, rules) = if AUTHORIZE {
            context
                .compute
                .authorize_rules(account, &self.selector, direction, specs, self.dry_run)
                .await?
        } else {
            context
                .compute
                .revoke_rules(
                    account,
                    &self.selector,
                    direction,
                    specs,
                    &self.rule_ids,
                    self.dry_run,
                )
                .await?
        };
        Ok(RulesChanged {
            rules: if AUTHORIZE {
                rules
                    .into_iter()
                    .map(|rule| RuleRow::of(&group, direction, rule))
                    .collect()
            } else {
                Vec::new()
            },
        })
    }
}

/// One rule with the few facts of its group that its XML shows (never a
/// copy of the whole group per rule: that made large groups quadratic).
#[derive(Debug)]
pub struct RuleRow {
    group_id: String,
    owner_id: String,
    direction: Direction,
    rule: Rule,
}

impl RuleRow {
    fn of(group: &SecurityGroup, direction: Direction, rule: Rule) -> Self {
        Self {
            group_id: group.id.clone(),
            owner_id: group.account_id.clone(),
            direction,
            rule,
        }
    }
}

#[derive(Debug)]
pub struct RulesChanged {
    rules: Vec<RuleRow>,
}

impl XmlOutput for RulesChanged {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.boolean("return", true);
        if !self.rules.is_empty() {
            xml.list("securityGroupRuleSet", &self.rules, write_rule);
        }
    }
}

fn write_rule(xml: &mut XmlWriter, row: &RuleRow) {
    let rule = &row.rule;
    xml.element("securityGroupRuleId", &rule.id);
    xml.element("groupId", &row.group_id);
    xml.element("groupOwnerId", &row.owner_id);
    xml.boolean("isEgress", row.direction == Direction::Egress);
    xml.element("ipProtocol", &rule.protocol);
    xml.number("fromPort", rule.from_port.unwrap_or(-1));
    xml.number("toPort", rule.to_port.unwrap_or(-1));
    match &rule.peer {
        RulePeer::Cidr(cidr) => xml.element("cidrIpv4", cidr),
        RulePeer::CidrV6(cidr) => xml.element("cidrIpv6", cidr),
        RulePeer::Group {
            group_id,
            account_id,
        } => xml.nested("referencedGroupInfo", |xml| {
            xml.element("groupId", group_id);
            xml.element("userId", account_id);
        }),
    }
    xml.optional("description", rule.description.as_deref());
    xml.list("tagSet", &[] as &[String], |_, _| {});
}

const GROUP_FILTERS: &[&str] = &[
    "group-name",
    "group-id",
    "description",
    "owner-id",
    "vpc-id",
    "ip-permission.protocol",
    "ip-permission.from-port",
    "ip-permission.to-port",
    "ip-permission.cidr",
    "ip-permission.ipv6-cidr",
    "ip-permission.group-id",
    "ip-permission.group-name",
    "ip-permission.user-id",
    "egress.ip-permission.protocol",
    "egress.ip-permission.from-port",
    "egress.ip-permission.to-port",
    "egress.ip-permission.cidr",
    "egress.ip-permission.ipv6-cidr",
    "egress.ip-permission.group-id",
    "egress.ip-permission.group-name",
    "egress.ip-permission.user-id",
    "tag-key",
    "tag-value",
];

fn rule_values(rules: &[Rule], field: &str, names: &HashMap<String, String>) -> Vec<String> {
    rules
        .iter()
        .filter_map(|rule| match (field, &rule.peer) {
            ("protocol", _) => Some(rule.protocol.clone()),
            ("from-port", _) => rule.from_port.map(|p| p.to_string()),
            ("to-port", _) => rule.to_port.map(|p| p.to_string()),
            ("cidr", RulePeer::Cidr(cidr)) | ("ipv6-cidr", RulePeer::CidrV6(cidr)) => {
                Some(cidr.clone())
            }
            ("group-id", RulePeer::Group { group_id, .. }) => Some(group_id.clone()),
            ("group-name", RulePeer::Group { group_id, .. }) => names.get(group_id).cloned(),
            ("user-id", RulePeer::Group { account_id, .. }) => Some(account_id.clone()),
            _ => None,
        })
        .collect()
}

#[derive(Debug)]
pub struct DescribeSecurityGroups {
    pub group_names: Vec<String>,
    pub group_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeSecurityGroups {
    pub const PARAMETERS: &'static [&'static str] = &[
        "GroupName",
        "GroupId",
        "Filter",
        "MaxResults",
        "NextToken",
        "DryRun",
    ];

    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            group_names: params.list("GroupName")?,
            group_ids: params.list("GroupId")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.boolean("DryRun")?.unwrap_or(false),
        };
        if request.max_results.is_some()
            && !(request.group_ids.is_empty() && request.group_names.is_empty())
        {
            return Err(ApiError::InvalidParameterCombination(
                "The parameter groupIdSet/groupNameSet cannot be used with the parameter maxResults".into(),
            ));
        }
        for id in &request.group_ids {
            crate::compute::kinds::ResourceKind::SecurityGroup.check(id)?;
        }
        check_filter_names(&request.filters, GROUP_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<GroupList> {
        let account = &context.principal.account_id;
        let mut groups = context.compute.security_groups(account).await?;
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(missing) = self
            .group_names
            .iter()
            .find(|n| !groups.iter().any(|g| &g.name == *n))
        {
            return Err(ApiError::NotFound {
                code: crate::compute::kinds::ResourceKind::SecurityGroup.not_found_code(),
                message: format!("The security group '{missing}' does not exist in default VPC"),
            });
        }
        if let Some(missing) = self
            .group_ids
            .iter()
            .find(|id| !groups.iter().any(|g| &g.id == *id))
        {
            return Err(ApiError::NotFound {
                code: crate::compute::kinds::ResourceKind::SecurityGroup.not_found_code(),
                message: format!("The security group '{missing}' does not exist"),
            });
        }
        dry_run_check(self.dry_run)?;
        let names: HashMap<String, String> = groups
            .iter()
            .map(|g| (g.id.clone(), g.name.clone()))
            .collect();
        let paging = Paging::start(
            context,
            "DescribeSecurityGroups",
            &self.filters,
            &[],
            self.max_results,
            self.next_token.as_deref(),
        )?;
        let after = paging.after.clone();
        let matching = groups
            .into_iter()
            .filter(|g| {
                self.group_names.is_empty() && self.group_ids.is_empty()
                    || self.group_names.contains(&g.name)
                    || self.group_ids.contains(&g.id)
            })
            .filter(|g| after.as_ref().is_none_or(|after| &g.id > after))
            .filter(|g| {
                matches_all(&self.filters, |name| {
                    if let Some(values) = tag_filter_values(&g.tags, name) {
                        return values;
                    }
                    if let Some(field) = name.strip_prefix("egress.ip-permission.") {
                        return rule_values(&g.egress, field, &names);
                    }
                    if let Some(field) = name.strip_prefix("ip-permission.") {
                        return rule_values(&g.ingress, field, &names);
                    }
                    match name {
                        "group-name" => vec![g.name.clone()],
                        "group-id" => vec![g.id.clone()],
                        "description" => vec![g.description.clone()],
                        "owner-id" => vec![g.account_id.clone()],
                        _ => vec![g.vpc_id.clone()],
                    }
                })
            });
        let (page, next_token) = paging.cut(matching, |item| item.id.clone());
        let region = context.compute.region.name.clone();
        Ok(GroupList {
            groups: page,
            names,
            next_token,
            region,
        })
    }
}

#[derive(Debug)]
pub struct GroupList {
    groups: Vec<SecurityGroup>,
    names: HashMap<String, String>,
    next_token: Option<String>,
    region: String,
}

/// Rules sharing protocol and ports: one `IpPermission` item.
struct Permission<'a> {
    protocol: &'a str,
    from_port: Option<i32>,
    to_port: Option<i32>,
    rules: Vec<&'a Rule>,
}

/// Rules folded into EC2's `IpPermission` items by protocol and ports.
fn write_permissions(
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

impl XmlOutput for GroupList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("securityGroupInfo", &self.groups, |xml, group| {
            xml.element("ownerId", &group.account_id);
            xml.element("groupId", &group.id);
            xml.element("groupName", &group.name);
            xml.element("groupDescription", &group.description);
            xml.element("vpcId", &group.vpc_id);
            xml.element(
                "securityGroupArn",
                &format!(
                    "arn:aws:ec2:{}:{}:security-group/{}",
                    self.region, group.account_id, group.id
                ),
            );
            write_permissions(xml, "ipPermissions", &group.ingress, &self.names);
            write_permissions(xml, "ipPermissionsEgress", &group.egress, &self.names);
            write_tags(xml, &group.tags);
        });
        xml.optional("nextToken", self.next_token.as_deref());
    }
}

const RULE_FILTERS: &[&str] = &["group-id", "security-group-rule-id", "tag-key", "tag-value"];

#[derive(Debug)]
pub struct DescribeSecurityGroupRules {
    pub rule_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeSecurityGroupRules {
    pub const PARAMETERS: &'static [&'static str] = &[
        "SecurityGroupRuleId",
        "Filter",
        "MaxResults",
        "NextToken",
        "DryRun",
    ];

    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            rule_ids: params.list("SecurityGroupRuleId")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.boolean("DryRun")?.unwrap_or(false),
        };
        check_filter_names(&request.filters, RULE_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<RuleList> {
        let account = &context.principal.account_id;
        let mut groups = context.compute.security_groups(account).await?;
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        let mut rules: Vec<RuleRow> = Vec::new();
        for group in groups {
            let (ingress, egress) = (group.ingress.clone(), group.egress.clone());
            for (direction, list) in [(Direction::Ingress, ingress), (Direction::Egress, egress)] {
                rules.extend(
                    list.into_iter()
                        .map(|rule| RuleRow::of(&group, direction, rule)),
                );
            }
        }
        rules.sort_by(|a, b| a.rule.id.cmp(&b.rule.id));
        let known: std::collections::HashSet<&str> =
            rules.iter().map(|r| r.rule.id.as_str()).collect();
        if let Some(missing) = self.rule_ids.iter().find(|id| !known.contains(id.as_str())) {
            return Err(ApiError::NotFound {
                code: "InvalidSecurityGroupRuleId.NotFound",
                message: format!("The security group rule ID '{missing}' does not exist"),
            });
        }
        dry_run_check(self.dry_run)?;
        let paging = Paging::start(
            context,
            "DescribeSecurityGroupRules",
            &self.filters,
            &self.rule_ids,
            self.max_results,
            self.next_token.as_deref(),
        )?;
        let after = paging.after.clone();
        let wanted: std::collections::HashSet<&str> =
            self.rule_ids.iter().map(String::as_str).collect();
        let matching = rules
            .into_iter()
            .filter(|row| wanted.is_empty() || wanted.contains(row.rule.id.as_str()))
            .filter(|row| after.as_ref().is_none_or(|after| &row.rule.id > after))
            .filter(|row| {
                matches_all(&self.filters, |name| {
                    tag_filter_values(&[], name).unwrap_or_else(|| match name {
                        "group-id" => vec![row.group_id.clone()],
                        _ => vec![row.rule.id.clone()],
                    })
                })
            });
        let (page, next_token) = paging.cut(matching, |row| row.rule.id.clone());
        Ok(RuleList {
            rules: page,
            next_token,
        })
    }
}

#[derive(Debug)]
pub struct RuleList {
    rules: Vec<RuleRow>,
    next_token: Option<String>,
}

impl XmlOutput for RuleList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("securityGroupRuleSet", &self.rules, write_rule);
        xml.optional("nextToken", self.next_token.as_deref());
    }
}
