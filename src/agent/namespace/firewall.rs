//! Security groups enforced with nftables inside each VPC's namespace.
//!
//! EC2 enforces an instance's groups at its network interface: traffic in
//! is dropped unless an ingress rule of one of its groups allows it,
//! traffic out unless an egress rule does, and replies to allowed traffic
//! always pass (groups are stateful). Here every packet between instances
//! crosses the VPC namespace, either bridged (bridged IPv4 goes through the
//! `inet` hooks there) or routed between subnets, so one `inet` table there
//! does it with conntrack: a chain per instance and direction, reached by
//! the instance's address, which a `bridge` table ties to the instance's
//! own port so no instance can send as another. Traffic from or to the
//! VPC namespace itself (how an operator reaches instances) passes the same
//! chains from the `output` and `input` hooks. A rule naming a group
//! matches the addresses of that group's members on this host, the only
//! instances a packet here can come from. The whole ruleset of a VPC is
//! replaced in one nft transaction whenever it changes, so a rule
//! authorized or revoked takes effect at the next look, with no window
//! without rules.

use super::super::driver::{Firewall, FirewallRule, Peer};
use super::network::{is_instance_id, mac_address, port_name};
use crate::compute::cidr::Ipv4Cidr;
use std::collections::BTreeSet;
use std::fmt::Write;

/// The nft script for VPC `vpc_id`: deletes and recreates its tables.
pub fn render(firewall: &Firewall, vpc_id: &str) -> String {
    let members: Vec<_> = firewall
        .members
        .iter()
        .filter(|m| {
            m.vpc_id == vpc_id && valid_address(&m.private_ip) && is_instance_id(&m.instance_id)
        })
        .collect();
    let mut out = String::new();
    out.push_str("table inet ec2\ndelete table inet ec2\n");
    out.push_str("table bridge ec2guard\ndelete table bridge ec2guard\n");
    // Forwarded traffic that no instance's chain accepted is dropped: an
    // instance whose rules are not applied yet gets nothing.
    out.push_str("table inet ec2 {\n  chain forward {\n    type filter hook forward priority 0; policy drop;\n");
    out.push_str("    ct state established,related accept\n    ct state invalid drop\n");
    // Every sender's egress first (its chain returns when a rule allows the
    // packet), then the receiver's ingress (which accepts): an accept ends
    // the base chain, so the other order would skip a sender's egress.
    for (n, member) in members.iter().enumerate() {
        let _ = writeln!(out, "    ip saddr {} jump egress_{n}", member.private_ip);
    }
    for (n, member) in members.iter().enumerate() {
        let _ = writeln!(out, "    ip daddr {} jump ingress_{n}", member.private_ip);
    }
    out.push_str("  }\n");
    // Traffic between an instance and the VPC namespace itself (the
    // operator's way in, `ec2-gateway agent vpc-exec`) is under the same rules.
    out.push_str("  chain output {\n    type filter hook output priority 0; policy accept;\n");
    out.push_str("    ct state established,related accept\n");
    for (n, member) in members.iter().enumerate() {
        let _ = writeln!(out, "    ip daddr {} jump ingress_{n}", member.private_ip);
    }
    out.push_str("  }\n  chain input {\n    type filter hook input priority 0; policy accept;\n");
    out.push_str("    ct state established,related accept\n");
    for (n, member) in members.iter().enumerate() {
        let _ = writeln!(out, "    ip saddr {} jump egress_{n}", member.private_ip);
    }
    out.push_str("  }\n");
    for (n, member) in members.iter().enumerate() {
        let rules = |ingress: bool| -> Vec<String> {
            member
                .groups
                .iter()
                .filter_map(|group| firewall.groups.get(group))
                .flat_map(|group| {
                    if ingress {
                        group.ingress.iter()
                    } else {
                        group.egress.iter()
                    }
                })
                .filter_map(|rule| rule_match(firewall, vpc_id, rule, ingress))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let _ = writeln!(out, "  chain egress_{n} {{");
        for matched in rules(false) {
            let _ = writeln!(out, "    {matched} return");
        }
        out.push_str("    drop\n  }\n");
        let _ = writeln!(out, "  chain ingress_{n} {{");
        for matched in rules(true) {
            let _ = writeln!(out, "    {matched} accept");
        }
        out.push_str("    drop\n  }\n");
    }
    out.push_str("}\n");
    out.push_str("table bridge ec2guard {\n  chain prerouting {\n    type filter hook prerouting priority -200; policy accept;\n");
    // Each port sends only as its instance (MAC, ARP and IPv4 source) and
    // only IPv4 and ARP; a port of no known instance sends nothing.
    for member in &members {
        let port = port_name(&member.instance_id);
        let (mac, address) = (mac_address(&member.instance_id), &member.private_ip);
        let _ = writeln!(out, "    iifname \"{port}\" ether saddr != {mac} drop");
        let _ = writeln!(
            out,
            "    iifname \"{port}\" ether type != {{ ip, arp }} drop"
        );
        let _ = writeln!(out, "    iifname \"{port}\" arp saddr ether != {mac} drop");
        // (0.0.0.0: duplicate address probes.)
        let _ = writeln!(
            out,
            "    iifname \"{port}\" arp saddr ip != {{ {address}, 0.0.0.0 }} drop"
        );
        let _ = writeln!(out, "    iifname \"{port}\" ip saddr != {address} drop");
        let _ = writeln!(out, "    iifname \"{port}\" accept");
    }
    out.push_str("    iifname \"ve*\" drop\n  }\n}\n");
    out
}

fn valid_address(text: &str) -> bool {
    text.parse::<std::net::Ipv4Addr>().is_ok()
}

/// The nft match of one rule (without verdict), or None when it can
/// match nothing here (an IPv6 peer, a group with no member here).
fn rule_match(
    firewall: &Firewall,
    vpc_id: &str,
    rule: &FirewallRule,
    ingress: bool,
) -> Option<String> {
    let field = if ingress { "saddr" } else { "daddr" };
    let peer = match &rule.peer {
        Peer::Cidr(cidr) if cidr == "0.0.0.0/0" => String::new(),
        Peer::Cidr(cidr) if Ipv4Cidr::parse(cidr).is_some() => {
            // Rendered canonical (EC2 accepts host bits; nft does not).
            let block = Ipv4Cidr::parse(cidr).expect("checked");
            format!("ip {field} {block} ")
        }
        Peer::Cidr(_) | Peer::CidrV6(_) => return None,
        Peer::Group(group) => {
            let addresses: BTreeSet<&str> = firewall
                .members
                .iter()
                .filter(|m| m.vpc_id == vpc_id && m.groups.contains(group))
                .map(|m| m.private_ip.as_str())
                .filter(|a| valid_address(a))
                .collect();
            if addresses.is_empty() {
                return None;
            }
            let list: Vec<&str> = addresses.into_iter().collect();
            format!("ip {field} {{ {} }} ", list.join(", "))
        }
    };
    let ports = |name: &str| -> String {
        match (rule.from_port, rule.to_port) {
            (Some(from), Some(to)) if from >= 0 && to >= from && !(from == 0 && to == 65535) => {
                if from == to {
                    format!("{name} dport {from} ")
                } else {
                    format!("{name} dport {from}-{to} ")
                }
            }
            _ => String::new(),
        }
    };
    let protocol = match rule.protocol.as_str() {
        "-1" | "all" => String::new(),
        "tcp" | "6" => format!("meta l4proto tcp {}", ports("tcp")),
        "udp" | "17" => format!("meta l4proto udp {}", ports("udp")),
        "icmp" | "1" => {
            let mut text = "meta l4proto icmp ".to_string();
            if let Some(kind) = rule.from_port.filter(|t| (0..=255).contains(t)) {
                let _ = write!(text, "icmp type {kind} ");
                if let Some(code) = rule.to_port.filter(|c| (0..=255).contains(c)) {
                    let _ = write!(text, "icmp code {code} ");
                }
            }
            text
        }
        "icmpv6" | "58" => return None,
        number => match number.parse::<u8>() {
            Ok(n) => format!("meta l4proto {n} "),
            Err(_) => return None,
        },
    };
    Some(format!("{peer}{protocol}").trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::super::super::driver::{FirewallMember, GroupRules};
    use super::*;

    fn member(id: &str, ip: &str, groups: &[&str]) -> FirewallMember {
        FirewallMember {
            instance_id: id.into(),
            vpc_id: "vpc-1".into(),
            private_ip: ip.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn rules_become_chains_per_instance_and_direction() {
        let mut firewall = Firewall {
            members: vec![
                member("i-0000000000000000a", "10.0.0.5", &["sg-a"]),
                member("i-0000000000000000b", "10.0.0.6", &["sg-a"]),
            ],
            ..Default::default()
        };
        firewall.groups.insert(
            "sg-a".into(),
            GroupRules {
                ingress: vec![
                    FirewallRule {
                        protocol: "tcp".into(),
                        from_port: Some(22),
                        to_port: Some(22),
                        peer: Peer::Cidr("10.0.3.7/16".into()),
                    },
                    FirewallRule {
                        protocol: "-1".into(),
                        from_port: None,
                        to_port: None,
                        peer: Peer::Group("sg-a".into()),
                    },
                    FirewallRule {
                        protocol: "-1".into(),
                        from_port: None,
                        to_port: None,
                        peer: Peer::CidrV6("::/0".into()),
                    },
                ],
                egress: vec![FirewallRule {
                    protocol: "icmp".into(),
                    from_port: Some(8),
                    to_port: Some(-1),
                    peer: Peer::Cidr("0.0.0.0/0".into()),
                }],
            },
        );
        let script = render(&firewall, "vpc-1");
        assert!(
            script.contains("ip saddr 10.0.0.5 jump egress_0"),
            "{script}"
        );
        assert!(
            script.contains("ip daddr 10.0.0.6 jump ingress_1"),
            "{script}"
        );
        assert!(script.contains("ip saddr 10.0.0.0/16 meta l4proto tcp tcp dport 22 accept"));
        assert!(script.contains("ip saddr { 10.0.0.5, 10.0.0.6 } accept"));
        assert!(script.contains("meta l4proto icmp icmp type 8 return"));
        assert!(!script.contains("::/0"));
        for guard in [
            "iifname \"ve000000000000a\" ip saddr != 10.0.0.5 drop",
            "iifname \"ve000000000000a\" ether saddr != 02:00:00:00:00:0a drop",
            "iifname \"ve000000000000a\" arp saddr ip != { 10.0.0.5, 0.0.0.0 } drop",
            "iifname \"ve000000000000a\" arp saddr ether != 02:00:00:00:00:0a drop",
            "iifname \"ve*\" drop",
            "policy drop",
        ] {
            assert!(script.contains(guard), "{guard}: {script}");
        }
        // Every egress jump comes before every ingress jump.
        let forward = &script[..script.find("chain output").unwrap()];
        let last_egress = forward.rfind("jump egress_").unwrap();
        let first_ingress = forward.find("jump ingress_").unwrap();
        assert!(last_egress < first_ingress, "{script}");
        // Another VPC's ruleset names none of these instances.
        assert!(!render(&firewall, "vpc-2").contains("10.0.0.5"));
    }
}
