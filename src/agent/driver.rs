//! What an agent's driver is given and answers: the instances placed on
//! its host, what it must write into one before booting it, the security
//! group rules its instances are under, and their console output.
//!
//! The gateway owns every instance's recorded state; a driver moves the
//! real (or simulated) instance toward it and says when it got there. A
//! driver that runs instances for real needs more than the states: the
//! agent fetches [`LaunchDetails`] for an instance before the driver boots
//! it, and the [`Firewall`] on every look when the driver asks for it.

use std::collections::BTreeMap;
use std::time::Instant;

/// An instance placed on this host, as the gateway lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub instance_id: String,
    pub owner_id: String,
    /// The state the gateway records: `pending`, `running`, `stopping`,
    /// `shutting-down`...
    pub state: String,
    pub instance_type: String,
    /// How many reboots were asked for (RebootInstances); a driver that
    /// runs instances restarts one when this grows.
    pub reboots: u32,
}

/// What the agent writes into an instance before it boots
/// (`AgentDescribeLaunch`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LaunchDetails {
    pub instance_id: String,
    pub owner_id: String,
    pub image_id: String,
    pub root_filesystem: Option<String>,
    /// Base64, as the user sent it.
    pub user_data: Option<String>,
    pub public_key: Option<String>,
    pub private_ip: String,
    pub private_dns_name: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub subnet_cidr: String,
    pub vcpus: u32,
    pub memory_mib: u64,
}

/// Where traffic of a rule comes from (ingress) or goes to (egress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Cidr(String),
    CidrV6(String),
    Group(String),
}

/// One security group rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRule {
    /// `-1`, `tcp`, `udp`, `icmp` or a protocol number.
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub peer: Peer,
}

/// A group's rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupRules {
    pub ingress: Vec<FirewallRule>,
    pub egress: Vec<FirewallRule>,
}

/// An instance as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallMember {
    pub instance_id: String,
    pub vpc_id: String,
    pub private_ip: String,
    pub groups: Vec<String>,
}

/// The instances placed on this host and the rules of their groups
/// (`AgentDescribeFirewall`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Firewall {
    pub members: Vec<FirewallMember>,
    pub groups: BTreeMap<String, GroupRules>,
}

/// Console output to send to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleUpdate {
    pub instance_id: String,
    pub owner_id: String,
    /// The last 64 KiB the instance wrote.
    pub output: Vec<u8>,
    /// The driver's mark of how much was written (given back once sent).
    pub length: u64,
}

/// Runs instances on this host. `observe` is called on every look at the
/// assignments with each instance placed here; it moves the instance
/// toward what its recorded state asks and answers a state to report
/// (`running`, `stopped`, `terminated`) once one is reached.
pub trait Driver: Send {
    fn observe(&mut self, instance: &Assigned, now: Instant) -> Option<&'static str>;
    /// Called with every instance still placed here.
    fn retain(&mut self, placed: &[Assigned]);
    /// True when it must be given the instance's [`LaunchDetails`] before
    /// `observe` can boot it.
    fn wants_launch(&self, _instance: &Assigned) -> bool {
        false
    }
    fn launch(&mut self, _details: LaunchDetails) {}
    /// True when it enforces security groups (it is then given the
    /// [`Firewall`] before each round of `observe`).
    fn wants_firewall(&self) -> bool {
        false
    }
    fn firewall(&mut self, _firewall: &Firewall) {}
    /// Console output that changed since it was last delivered (`urgent`:
    /// instances about to be reported stopped or terminated, whose output
    /// goes now).
    fn console_updates(&mut self, _urgent: &[String]) -> Vec<ConsoleUpdate> {
        Vec::new()
    }
    /// Work that needs no gateway, done on every look even when the
    /// gateway does not answer.
    fn housekeeping(&mut self) {}
    /// The gateway has this update.
    fn console_delivered(&mut self, _update: &ConsoleUpdate) {}
    /// Instances it keeps something of (a stopped instance's layer) while
    /// they are placed nowhere: `(owner, id)`.
    fn kept(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The gateway says this kept instance is terminated (or gone).
    fn forget(&mut self, _instance_id: &str) {}
    /// The agent reported `state` of the instance.
    fn reported(&mut self, _instance: &Assigned, _state: &'static str) {}
}
