//! Reading the gateway's answers to `AgentDescribeLaunch` and
//! `AgentDescribeFirewall` into the driver's types.

use super::driver::{Firewall, FirewallMember, FirewallRule, GroupRules, LaunchDetails, Peer};
use crate::client::{items, text_of};

/// An `AgentDescribeLaunch` answer.
pub fn launch(xml: &str) -> LaunchDetails {
    let text = |name: &str| text_of(xml, name).unwrap_or_default();
    let optional = |name: &str| text_of(xml, name).filter(|t| !t.is_empty());
    LaunchDetails {
        instance_id: text("instanceId"),
        owner_id: text("ownerId"),
        image_id: text("imageId"),
        root_filesystem: optional("rootFilesystem"),
        user_data: optional("userData"),
        public_key: optional("publicKey"),
        private_ip: text("privateIpAddress"),
        private_dns_name: text("privateDnsName"),
        vpc_id: text("vpcId"),
        subnet_id: text("subnetId"),
        subnet_cidr: text("subnetCidrBlock"),
        vcpus: text("vcpus").parse().unwrap_or(1),
        memory_mib: text("memoryMib").parse().unwrap_or(512),
    }
}

/// An `AgentDescribeFirewall` answer.
pub fn firewall(xml: &str) -> Firewall {
    let members = items(xml, "instanceSet")
        .into_iter()
        .filter_map(|mut item| {
            Some(FirewallMember {
                instance_id: item.remove("instanceId")?,
                vpc_id: item.remove("vpcId").unwrap_or_default(),
                private_ip: item.remove("privateIpAddress").unwrap_or_default(),
                groups: item
                    .remove("groupIds")
                    .unwrap_or_default()
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect();
    let mut firewall = Firewall {
        members,
        ..Default::default()
    };
    for mut item in items(xml, "ruleSet") {
        let Some(group) = item.remove("groupId") else {
            continue;
        };
        let peer = if let Some(cidr) = item.remove("cidrIp") {
            Peer::Cidr(cidr)
        } else if let Some(cidr) = item.remove("cidrIpv6") {
            Peer::CidrV6(cidr)
        } else if let Some(group) = item.remove("peerGroupId") {
            Peer::Group(group)
        } else {
            continue;
        };
        let rule = FirewallRule {
            protocol: item.remove("ipProtocol").unwrap_or_else(|| "-1".into()),
            from_port: item.get("fromPort").and_then(|p| p.parse().ok()),
            to_port: item.get("toPort").and_then(|p| p.parse().ok()),
            peer,
        };
        let rules: &mut GroupRules = firewall.groups.entry(group).or_default();
        match item.get("direction").map(String::as_str) {
            Some("egress") => rules.egress.push(rule),
            _ => rules.ingress.push(rule),
        }
    }
    firewall
}
