//! An instance's network, made of namespaces the agent creates: one
//! network namespace per VPC (`ec2-vpc-…`) holding a bridge per subnet,
//! whose address is the subnet's gateway (its first host address, as in
//! EC2), and one network namespace per instance (`ec2-i-…`) whose `eth0`
//! is a veth into its subnet's bridge, with its private address and a
//! default route through the gateway. The VPC namespace routes between its
//! subnets, so instances of one VPC reach each other; it has no way out,
//! so nothing leaves the machine, and nothing is added to the machine's own
//! network namespace (each veth is created with both ends already in their
//! namespaces). IPv6 is off in every one of them (the VPCs here are IPv4
//! only, and link-local IPv6 would pass by the IPv4 firewall), and each
//! instance's `eth0` has a MAC address derived from its id, which the
//! firewall pins to its port. Every step looks at what is there first, so
//! a boot interrupted halfway is completed by the next one.

use super::command::run;
use crate::compute::cidr::Ipv4Cidr;
use std::path::Path;

/// The network namespace of a VPC.
pub fn vpc_namespace(vpc_id: &str) -> Result<String, String> {
    checked_id(vpc_id, "vpc-")?;
    Ok(format!("ec2-{vpc_id}"))
}

/// The network namespace of an instance.
pub fn instance_namespace(instance_id: &str) -> Result<String, String> {
    checked_id(instance_id, "i-")?;
    Ok(format!("ec2-{instance_id}"))
}

/// Whether `id` is an instance id (`i-` and lowercase hex): the only form
/// the driver puts into paths, interface names and rules.
pub fn is_instance_id(id: &str) -> bool {
    checked_id(id, "i-").is_ok()
}

/// The instance's veth end on its subnet's bridge (15 bytes at most).
pub fn port_name(instance_id: &str) -> String {
    format!("ve{}", hex_tail(instance_id, 13))
}

/// The instance's MAC address: locally administered, from its id's last
/// ten hex digits.
pub fn mac_address(instance_id: &str) -> String {
    let hex = format!("{:0>10}", hex_tail(instance_id, 10));
    let bytes: Vec<&str> = (0..5).map(|i| &hex[i * 2..i * 2 + 2]).collect();
    format!("02:{}", bytes.join(":"))
}

fn bridge_name(subnet_id: &str) -> String {
    format!("br{}", hex_tail(subnet_id, 13))
}

/// The last `n` hex digits of an id.
fn hex_tail(id: &str, n: usize) -> String {
    let hex: String = id
        .rsplit('-')
        .next()
        .unwrap_or(id)
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    hex[hex.len().saturating_sub(n)..].to_string()
}

/// Ids go into interface and namespace names: `prefix` and lowercase hex.
fn checked_id(id: &str, prefix: &str) -> Result<(), String> {
    let hex = id
        .strip_prefix(prefix)
        .ok_or_else(|| format!("'{id}' is not a {prefix} id"))?;
    if hex.is_empty()
        || hex.len() > 17
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("'{id}' is not a {prefix} id"));
    }
    Ok(())
}

pub fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// The subnet's gateway address and prefix length.
fn gateway_of(cidr: &str) -> Result<(String, u8), String> {
    let block = Ipv4Cidr::parse(cidr).ok_or_else(|| format!("invalid subnet block {cidr}"))?;
    let gateway = std::net::Ipv4Addr::from(block.base() + 1);
    Ok((gateway.to_string(), block.prefix()))
}

/// Sets sysctls inside a namespace and checks that each took.
fn sysctls(namespace: &str, settings: &[(&str, &str)]) -> Result<(), String> {
    let assignments: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut write = vec!["netns", "exec", namespace, "sysctl", "-qw"];
    write.extend(assignments.iter().map(String::as_str));
    run("ip", &write)?;
    let mut read = vec!["netns", "exec", namespace, "sysctl", "-n"];
    read.extend(settings.iter().map(|(key, _)| *key));
    let values = run("ip", &read)?;
    for ((key, wanted), got) in settings.iter().zip(values.lines()) {
        let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        if words(got) != words(wanted) {
            return Err(format!("{key} is {got} in {namespace}, not {wanted}"));
        }
    }
    Ok(())
}

/// The VPC's namespace, with forwarding on, IPv6 off and bridged traffic
/// through the firewall's hooks (without them the security groups would
/// not see traffic within a subnet: the boot fails rather than run open).
pub fn ensure_vpc(vpc_id: &str) -> Result<String, String> {
    let namespace = vpc_namespace(vpc_id)?;
    if !namespace_exists(&namespace) {
        run("ip", &["netns", "add", &namespace])?;
    }
    if !Path::new("/proc/sys/net/bridge").exists() {
        let _ = run("modprobe", &["br_netfilter"]);
    }
    sysctls(
        &namespace,
        &[
            ("net.ipv6.conf.all.disable_ipv6", "1"),
            ("net.ipv6.conf.default.disable_ipv6", "1"),
            ("net.ipv4.ip_forward", "1"),
            ("net.bridge.bridge-nf-call-iptables", "1"),
        ],
    )?;
    run("ip", &["-n", &namespace, "link", "set", "lo", "up"])?;
    Ok(namespace)
}

/// The subnet's bridge in the VPC's namespace, with the gateway address.
pub fn ensure_subnet(vpc_namespace: &str, subnet_id: &str, cidr: &str) -> Result<(), String> {
    let bridge = bridge_name(subnet_id);
    let (gateway, prefix) = gateway_of(cidr)?;
    if run("ip", &["-n", vpc_namespace, "link", "show", &bridge]).is_err() {
        run(
            "ip",
            &[
                "-n",
                vpc_namespace,
                "link",
                "add",
                &bridge,
                "type",
                "bridge",
            ],
        )?;
    }
    let address = format!("{gateway}/{prefix}");
    let shown = run(
        "ip",
        &[
            "-n",
            vpc_namespace,
            "-o",
            "-4",
            "addr",
            "show",
            "dev",
            &bridge,
        ],
    )?;
    if !shown.contains(&format!(" {address} ")) {
        run(
            "ip",
            &["-n", vpc_namespace, "addr", "add", &address, "dev", &bridge],
        )?;
    }
    run("ip", &["-n", vpc_namespace, "link", "set", &bridge, "up"])?;
    Ok(())
}

/// The instance's namespace and its `eth0` on the subnet's bridge.
pub fn ensure_instance(
    vpc_namespace: &str,
    instance_id: &str,
    subnet_id: &str,
    cidr: &str,
    address: &str,
) -> Result<String, String> {
    let namespace = instance_namespace(instance_id)?;
    let (gateway, prefix) = gateway_of(cidr)?;
    let port = port_name(instance_id);
    let with_prefix = format!("{address}/{prefix}");
    if namespace_exists(&namespace) {
        let complete = run(
            "ip",
            &["-n", &namespace, "-o", "-4", "addr", "show", "dev", "eth0"],
        )
        .is_ok_and(|shown| shown.contains(&format!(" {with_prefix} ")))
            && run("ip", &["-n", &namespace, "route", "show", "default"])
                .is_ok_and(|shown| shown.contains(&gateway))
            && run("ip", &["-n", &namespace, "link", "show", "eth0"])
                .is_ok_and(|shown| shown.contains(&mac_address(instance_id)))
            && run("ip", &["-n", vpc_namespace, "link", "show", &port]).is_ok();
        if complete {
            return Ok(namespace);
        }
        // Left halfway by an interrupted boot: made again.
        remove_namespace(&namespace)?;
        let _ = run("ip", &["-n", vpc_namespace, "link", "delete", &port]);
    }
    run("ip", &["netns", "add", &namespace])?;
    let configured = (|| {
        sysctls(
            &namespace,
            &[
                ("net.ipv6.conf.all.disable_ipv6", "1"),
                ("net.ipv6.conf.default.disable_ipv6", "1"),
                // Unprivileged ping (ICMP datagram sockets), as
                // systemd-based distributions allow it.
                ("net.ipv4.ping_group_range", "0 2147483647"),
            ],
        )?;
        run(
            "ip",
            &[
                "link",
                "add",
                &port,
                "netns",
                vpc_namespace,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "address",
                &mac_address(instance_id),
                "netns",
                &namespace,
            ],
        )?;
        run(
            "ip",
            &[
                "-n",
                vpc_namespace,
                "link",
                "set",
                &port,
                "master",
                &bridge_name(subnet_id),
                "up",
            ],
        )?;
        run(
            "ip",
            &["-n", &namespace, "addr", "add", &with_prefix, "dev", "eth0"],
        )?;
        run("ip", &["-n", &namespace, "link", "set", "eth0", "up"])?;
        run("ip", &["-n", &namespace, "link", "set", "lo", "up"])?;
        run(
            "ip",
            &["-n", &namespace, "route", "add", "default", "via", &gateway],
        )
    })();
    if let Err(error) = configured {
        let _ = remove_namespace(&namespace);
        return Err(error);
    }
    Ok(namespace)
}

/// Deletes a namespace (its veths go with it once its last process has).
pub fn remove_namespace(name: &str) -> Result<(), String> {
    if namespace_exists(name) {
        run("ip", &["netns", "delete", name])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_ids_and_nothing_else() {
        assert_eq!(port_name("i-0123456789abcdef0"), "ve456789abcdef0");
        assert_eq!(mac_address("i-0123456789abcdef0"), "02:78:9a:bc:de:f0");
        assert!(is_instance_id("i-0123456789abcdef0"));
        for bad in [
            "i-../../etc",
            "i-",
            "i-0123456789ABCDEF0",
            "vpc-1",
            "i-0123456789abcdef01",
        ] {
            assert!(!is_instance_id(bad), "{bad}");
        }
        assert!(vpc_namespace("vpc-1;rm").is_err());
    }
}
