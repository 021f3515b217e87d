//! An instance's network, made of namespaces the agent creates: one
//! network namespace per VPC (`ec2-vpc-…`) holding a bridge per subnet,
//! whose address is the subnet's gateway (its first host address, as in
//! EC2), and one network namespace per instance (`ec2-i-…`) whose `eth0`
//! is a veth into its subnet's bridge, with its private address and a
//! default route through the gateway. The VPC namespace routes between its
//! subnets, so instances of one VPC reach each other; it has no way out,
//! so nothing leaves the machine, and nothing is added to the machine's own
//! network namespace (each veth is created with both ends already in their
//! namespaces).

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

/// The instance's veth end on its subnet's bridge (15 bytes at most).
pub fn port_name(instance_id: &str) -> String {
    format!("ve{}", tail(instance_id, 13))
}

fn bridge_name(subnet_id: &str) -> String {
    format!("br{}", tail(subnet_id, 13))
}

fn tail(id: &str, n: usize) -> &str {
    let hex = id.rsplit('-').next().unwrap_or(id);
    &hex[hex.len().saturating_sub(n)..]
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

/// The VPC's namespace, with forwarding on and bridged traffic through
/// the firewall's hooks.
pub fn ensure_vpc(vpc_id: &str) -> Result<String, String> {
    let namespace = vpc_namespace(vpc_id)?;
    if !namespace_exists(&namespace) {
        run("ip", &["netns", "add", &namespace])?;
        run("ip", &["-n", &namespace, "link", "set", "lo", "up"])?;
        run(
            "ip",
            &[
                "netns",
                "exec",
                &namespace,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.bridge.bridge-nf-call-iptables=1",
            ],
        )?;
    }
    Ok(namespace)
}

/// The subnet's bridge in the VPC's namespace.
pub fn ensure_subnet(vpc_namespace: &str, subnet_id: &str, cidr: &str) -> Result<(), String> {
    let bridge = bridge_name(subnet_id);
    if run("ip", &["-n", vpc_namespace, "link", "show", &bridge]).is_ok() {
        return Ok(());
    }
    let (gateway, prefix) = gateway_of(cidr)?;
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
    run(
        "ip",
        &[
            "-n",
            vpc_namespace,
            "addr",
            "add",
            &format!("{gateway}/{prefix}"),
            "dev",
            &bridge,
        ],
    )?;
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
    if namespace_exists(&namespace) {
        return Ok(namespace);
    }
    let (gateway, prefix) = gateway_of(cidr)?;
    let port = port_name(instance_id);
    run("ip", &["netns", "add", &namespace])?;
    let configured = (|| {
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
        let address = format!("{address}/{prefix}");
        run(
            "ip",
            &["-n", &namespace, "addr", "add", &address, "dev", "eth0"],
        )?;
        run("ip", &["-n", &namespace, "link", "set", "eth0", "up"])?;
        run("ip", &["-n", &namespace, "link", "set", "lo", "up"])?;
        // Unprivileged ping (ICMP datagram sockets), as systemd-based
        // distributions allow it.
        run(
            "ip",
            &[
                "netns",
                "exec",
                &namespace,
                "sysctl",
                "-qw",
                "net.ipv4.ping_group_range=0 2147483647",
            ],
        )?;
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
