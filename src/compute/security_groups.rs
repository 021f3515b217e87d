//! Security groups and their rules.
//!
//! Every account's default VPC has a `default` group (all traffic in from
//! the group itself, all traffic out), created on first use; it cannot be
//! deleted. Other groups are created with one egress rule (all traffic to
//! `0.0.0.0/0`), as EC2 does. Rules are stored one source each (a CIDR, an
//! IPv6 CIDR or a group), like EC2's security group rules with their `sgr-`
//! ids; DescribeSecurityGroups folds them back into `ipPermissions` by
//! protocol and ports. Adding a rule that exists is
//! `InvalidPermission.Duplicate`, removing one that does not is
//! `InvalidPermission.NotFound`; a group used by an instance or referenced by
//! another group's rule cannot be deleted (`DependencyViolation`).

use super::instances::{GroupRef, InstanceState, Tag};
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::store::WriteBatch;
use serde::{Deserialize, Serialize};

pub(crate) const SECURITY_GROUPS: &str = "security_groups";

/// Where traffic of a rule comes from (ingress) or goes to (egress).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RulePeer {
    Cidr(String),
    CidrV6(String),
    Group {
        group_id: String,
        account_id: String,
    },
}

/// One rule: protocol, ports, one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    /// `-1` (all), `tcp`, `udp`, `icmp`, `icmpv6` or a protocol number.
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub peer: RulePeer,
    pub description: Option<String>,
}

impl Rule {
    /// Rules are the same when all but id and description are.
    pub fn same_as(&self, other: &RuleSpec) -> bool {
        self.protocol == other.protocol
            && self.from_port == other.from_port
            && self.to_port == other.to_port
            && self.peer == other.peer
    }
}

/// A rule as requested (before it has an id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub peer: RulePeer,
    pub description: Option<String>,
}

/// A peer group as the request named it (resolved against the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupPeer {
    Id {
        group_id: String,
        account_id: Option<String>,
    },
    Name {
        group_name: String,
        account_id: Option<String>,
    },
}

/// Ingress or egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub description: String,
    pub vpc_id: String,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub tags: Vec<Tag>,
}

impl SecurityGroup {
    pub fn rules(&self, direction: Direction) -> &Vec<Rule> {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    fn rules_mut(&mut self, direction: Direction) -> &mut Vec<Rule> {
        match direction {
            Direction::Ingress => &mut self.ingress,
            Direction::Egress => &mut self.egress,
        }
    }
}

/// How a request names a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSelector {
    Id(String),
    Name(String),
}

fn group_key(account_id: &str, group_id: &str) -> Vec<u8> {
    format!("{account_id}/{group_id}").into_bytes()
}

fn all_traffic(peer: RulePeer) -> Rule {
    Rule {
        id: super::ids::new_id("sgr"),
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        peer,
        description: None,
    }
}

/// What makes two rules the same (everything but id and description).
type RuleIdentity<'a> = (&'a str, Option<i32>, Option<i32>, &'a RulePeer);

/// `RulesPerSecurityGroupLimitExceeded`, as EC2 words it.
pub fn rules_limit_exceeded(limit: usize) -> ApiError {
    ApiError::LimitExceeded {
        code: "RulesPerSecurityGroupLimitExceeded",
        message: format!(
            "The maximum number of rules per security group has been reached: {limit} inbound and {limit} outbound"
        ),
    }
}

fn group_not_found(what: &str) -> ApiError {
    ApiError::NotFound {
        code: "InvalidGroup.NotFound",
        message: format!("The security group '{what}' does not exist"),
    }
}

impl Compute {
    /// The account's groups, the `default` one created when missing.
    pub async fn security_groups(&self, account_id: &str) -> ApiResult<Vec<SecurityGroup>> {
        let groups: Vec<SecurityGroup> = self
            .store
            .records(SECURITY_GROUPS, format!("{account_id}/").as_bytes())?;
        if groups.iter().any(|g| g.name == "default") {
            return Ok(groups);
        }
        let (vpc, _) = self.default_network(account_id).await?;
        let sequence = {
            let _guard = self.security_group_lock.lock(account_id).await;
            let mut groups: Vec<SecurityGroup> = self
                .store
                .records(SECURITY_GROUPS, format!("{account_id}/").as_bytes())?;
            if groups.iter().any(|g| g.name == "default") {
                self.store.last_applied()
            } else {
                let id = super::ids::new_id("sg");
                let group = SecurityGroup {
                    ingress: vec![all_traffic(RulePeer::Group {
                        group_id: id.clone(),
                        account_id: account_id.to_string(),
                    })],
                    egress: vec![all_traffic(RulePeer::Cidr("0.0.0.0/0".into()))],
                    id,
                    account_id: account_id.to_string(),
                    name: "default".into(),
                    description: "default VPC security group".into(),
                    vpc_id: vpc.vpc_id,
                    tags: Vec::new(),
                };
                let mut batch = WriteBatch::new();
                batch.put_record(SECURITY_GROUPS, group_key(account_id, &group.id), &group);
                groups.push(group);
                self.store.apply(&batch)?
            }
        };
        self.store.durable(sequence).await?;
        Ok(self
            .store
            .records(SECURITY_GROUPS, format!("{account_id}/").as_bytes())?)
    }

    /// One group by id or name.
    pub async fn security_group(
        &self,
        account_id: &str,
        selector: &GroupSelector,
    ) -> ApiResult<SecurityGroup> {
        if let GroupSelector::Id(id) = selector {
            super::ids::check_id(id, "sg", "InvalidGroupId.Malformed")?;
        }
        let groups = self.security_groups(account_id).await?;
        groups
            .into_iter()
            .find(|g| match selector {
                GroupSelector::Id(id) => &g.id == id,
                GroupSelector::Name(name) => &g.name == name,
            })
            .ok_or_else(|| {
                group_not_found(match selector {
                    GroupSelector::Id(id) => id,
                    GroupSelector::Name(name) => name,
                })
            })
    }

    /// The groups a launch names (by name and by id), or `default`.
    pub async fn launch_groups(
        &self,
        account_id: &str,
        names: &[String],
        ids: &[String],
    ) -> ApiResult<Vec<GroupRef>> {
        let mut refs = Vec::new();
        for name in names {
            let group = self
                .security_group(account_id, &GroupSelector::Name(name.clone()))
                .await?;
            refs.push(GroupRef {
                id: group.id,
                name: group.name,
            });
        }
        for id in ids {
            let group = self
                .security_group(account_id, &GroupSelector::Id(id.clone()))
                .await?;
            refs.push(GroupRef {
                id: group.id,
                name: group.name,
            });
        }
        if refs.is_empty() {
            let group = self
                .security_group(account_id, &GroupSelector::Name("default".into()))
                .await?;
            refs.push(GroupRef {
                id: group.id,
                name: group.name,
            });
        }
        refs.dedup();
        Ok(refs)
    }

    /// CreateSecurityGroup.
    pub async fn create_security_group(
        &self,
        account_id: &str,
        name: &str,
        description: &str,
        vpc_id: Option<&str>,
        tags: Vec<Tag>,
        dry_run: bool,
    ) -> ApiResult<SecurityGroup> {
        if name.is_empty() || name.len() > 255 || name.to_ascii_lowercase().starts_with("sg-") {
            return Err(ApiError::invalid_value(
                "Group names must be 1 to 255 characters and may not start with sg-",
            ));
        }
        if description.len() > 255 {
            return Err(ApiError::invalid_value(
                "Group descriptions may be at most 255 characters",
            ));
        }
        // Make sure `default` exists first: it counts towards the quota.
        self.security_groups(account_id).await?;
        let (vpc, _) = self.default_network(account_id).await?;
        if let Some(requested) = vpc_id {
            if requested != vpc.vpc_id {
                return Err(ApiError::NotFound {
                    code: "InvalidVpcID.NotFound",
                    message: format!("The vpc ID '{requested}' does not exist"),
                });
            }
        }
        let (group, sequence) = {
            let _guard = self.security_group_lock.lock(account_id).await;
            let existing: Vec<SecurityGroup> = self
                .store
                .records(SECURITY_GROUPS, format!("{account_id}/").as_bytes())?;
            if existing.iter().any(|g| g.name == name) {
                return Err(ApiError::NotFound {
                    code: "InvalidGroup.Duplicate",
                    message: format!(
                        "The security group '{name}' already exists for VPC '{}'",
                        vpc.vpc_id
                    ),
                });
            }
            if existing.len() as u32 >= self.quotas.max_security_groups {
                return Err(ApiError::NotFound {
                    code: "SecurityGroupLimitExceeded",
                    message: format!(
                        "You have reached the limit of {} security groups",
                        self.quotas.max_security_groups
                    ),
                });
            }
            if dry_run {
                return Err(ApiError::DryRunOperation);
            }
            let group = SecurityGroup {
                id: super::ids::new_id("sg"),
                account_id: account_id.to_string(),
                name: name.to_string(),
                description: description.to_string(),
                vpc_id: vpc.vpc_id.clone(),
                ingress: Vec::new(),
                egress: vec![all_traffic(RulePeer::Cidr("0.0.0.0/0".into()))],
                tags,
            };
            let mut batch = WriteBatch::new();
            batch.put_record(SECURITY_GROUPS, group_key(account_id, &group.id), &group);
            let sequence = self.store.apply(&batch)?;
            (group, sequence)
        };
        self.store.durable(sequence).await?;
        Ok(group)
    }

    /// DeleteSecurityGroup; returns the deleted group's id.
    pub async fn delete_security_group(
        &self,
        account_id: &str,
        selector: &GroupSelector,
        dry_run: bool,
    ) -> ApiResult<String> {
        let group = self.security_group(account_id, selector).await?;
        if group.name == "default" {
            return Err(ApiError::NotFound {
                code: "CannotDelete",
                message: "the specified group: \"default\" name cannot be deleted by a user".into(),
            });
        }
        if self.instances_using_group(account_id, &group.id) {
            return Err(ApiError::NotFound {
                code: "DependencyViolation",
                message: format!("resource {} has a dependent object", group.id),
            });
        }
        let sequence = {
            let _guard = self.security_group_lock.lock(account_id).await;
            let others: Vec<SecurityGroup> = self
                .store
                .records(SECURITY_GROUPS, format!("{account_id}/").as_bytes())?;
            let referenced = others.iter().filter(|g| g.id != group.id).any(|g| {
                g.ingress.iter().chain(&g.egress).any(|r| matches!(&r.peer, RulePeer::Group { group_id, .. } if group_id == &group.id))
            });
            if referenced {
                return Err(ApiError::NotFound {
                    code: "DependencyViolation",
                    message: format!("resource {} has a dependent object", group.id),
                });
            }
            if dry_run {
                return Err(ApiError::DryRunOperation);
            }
            let mut batch = WriteBatch::new();
            batch.delete(SECURITY_GROUPS, group_key(account_id, &group.id));
            self.store.apply(&batch)?
        };
        self.store.durable(sequence).await?;
        Ok(group.id)
    }

    /// Resolves a peer group named by id or name (and owner, default: the
    /// caller). Only the caller's own groups can be referenced (there is no
    /// VPC peering here): a group of another account is `InvalidGroup.NotFound`
    /// worded exactly as for a group that does not exist, so a reference
    /// reveals nothing about other accounts, and nothing is ever looked up
    /// or created on their side.
    pub async fn resolve_peer(&self, account_id: &str, peer: &GroupPeer) -> ApiResult<RulePeer> {
        let (owner, selector) = match peer {
            GroupPeer::Id {
                group_id,
                account_id: owner,
            } => (owner, GroupSelector::Id(group_id.clone())),
            GroupPeer::Name {
                group_name,
                account_id: owner,
            } => (owner, GroupSelector::Name(group_name.clone())),
        };
        if owner.as_deref().is_some_and(|owner| owner != account_id) {
            if let GroupSelector::Id(id) = &selector {
                super::ids::check_id(id, "sg", "InvalidGroupId.Malformed")?;
            }
            return Err(group_not_found(match &selector {
                GroupSelector::Id(id) => id,
                GroupSelector::Name(name) => name,
            }));
        }
        let group = self.security_group(account_id, &selector).await?;
        Ok(RulePeer::Group {
            group_id: group.id,
            account_id: group.account_id,
        })
    }

    /// Authorize ingress or egress rules; returns the new rules.
    pub async fn authorize_rules(
        &self,
        account_id: &str,
        selector: &GroupSelector,
        direction: Direction,
        specs: Vec<RuleSpec>,
        dry_run: bool,
    ) -> ApiResult<(SecurityGroup, Vec<Rule>)> {
        let group = self.security_group(account_id, selector).await?;
        let (group, added, sequence) = {
            let _guard = self.security_group_lock.lock(account_id).await;
            let mut group: SecurityGroup = self
                .store
                .get_record(SECURITY_GROUPS, &group_key(account_id, &group.id))?
                .ok_or_else(|| group_not_found(&group.id))?;
            let limit = self.quotas.max_rules_per_security_group as usize;
            if group.rules(direction).len() + specs.len() > limit {
                return Err(rules_limit_exceeded(limit));
            }
            // Linear: one set of what exists, grown as rules are added.
            let mut present: std::collections::HashSet<RuleIdentity<'_>> = group
                .rules(direction)
                .iter()
                .map(|r| (r.protocol.as_str(), r.from_port, r.to_port, &r.peer))
                .collect();
            for spec in &specs {
                if !present.insert((
                    spec.protocol.as_str(),
                    spec.from_port,
                    spec.to_port,
                    &spec.peer,
                )) {
                    return Err(ApiError::NotFound {
                        code: "InvalidPermission.Duplicate",
                        message: format!(
                            "the specified rule \"{}\" already exists",
                            describe_rule(spec)
                        ),
                    });
                }
            }
            drop(present);
            let added: Vec<Rule> = specs
                .into_iter()
                .map(|spec| Rule {
                    id: super::ids::new_id("sgr"),
                    protocol: spec.protocol,
                    from_port: spec.from_port,
                    to_port: spec.to_port,
                    peer: spec.peer,
                    description: spec.description,
                })
                .collect();
            if dry_run {
                return Err(ApiError::DryRunOperation);
            }
            group.rules_mut(direction).extend(added.iter().cloned());
            let mut batch = WriteBatch::new();
            batch.put_record(SECURITY_GROUPS, group_key(account_id, &group.id), &group);
            let sequence = self.store.apply(&batch)?;
            (group, added, sequence)
        };
        self.store.durable(sequence).await?;
        Ok((group, added))
    }

    /// Revoke rules named by content or by `sgr-` id; returns the removed rules.
    pub async fn revoke_rules(
        &self,
        account_id: &str,
        selector: &GroupSelector,
        direction: Direction,
        specs: Vec<RuleSpec>,
        rule_ids: &[String],
        dry_run: bool,
    ) -> ApiResult<(SecurityGroup, Vec<Rule>)> {
        let group = self.security_group(account_id, selector).await?;
        let (group, removed, sequence) = {
            let _guard = self.security_group_lock.lock(account_id).await;
            let mut group: SecurityGroup = self
                .store
                .get_record(SECURITY_GROUPS, &group_key(account_id, &group.id))?
                .ok_or_else(|| group_not_found(&group.id))?;
            let mut removed = Vec::new();
            for spec in &specs {
                match group.rules(direction).iter().find(|r| r.same_as(spec)) {
                    Some(rule) => removed.push(rule.clone()),
                    None => {
                        return Err(ApiError::NotFound {
                            code: "InvalidPermission.NotFound",
                            message: format!(
                                "The specified rule does not exist in this security group: {}",
                                describe_rule(spec)
                            ),
                        })
                    }
                }
            }
            for id in rule_ids {
                match group.rules(direction).iter().find(|r| &r.id == id) {
                    Some(rule) => removed.push(rule.clone()),
                    None => {
                        return Err(ApiError::NotFound {
                            code: "InvalidSecurityGroupRuleId.NotFound",
                            message: format!("The security group rule ID '{id}' does not exist"),
                        })
                    }
                }
            }
            if dry_run {
                return Err(ApiError::DryRunOperation);
            }
            group
                .rules_mut(direction)
                .retain(|r| !removed.iter().any(|gone| gone.id == r.id));
            let mut batch = WriteBatch::new();
            batch.put_record(SECURITY_GROUPS, group_key(account_id, &group.id), &group);
            let sequence = self.store.apply(&batch)?;
            (group, removed, sequence)
        };
        self.store.durable(sequence).await?;
        Ok((group, removed))
    }

    /// True while a non-terminated instance of the account uses the group.
    fn instances_using_group(&self, account_id: &str, group_id: &str) -> bool {
        self.instances(account_id, &[], None)
            .unwrap_or_default()
            .iter()
            .any(|i| {
                i.state != InstanceState::Terminated
                    && i.security_groups.iter().any(|g| g.id == group_id)
            })
    }
}

/// `peer: 0.0.0.0/0, TCP, from port: 22, to port: 22, ALLOW`, as EC2 words it.
fn describe_rule(spec: &RuleSpec) -> String {
    let peer = match &spec.peer {
        RulePeer::Cidr(cidr) | RulePeer::CidrV6(cidr) => cidr.clone(),
        RulePeer::Group { group_id, .. } => group_id.clone(),
    };
    let ports = match (spec.from_port, spec.to_port) {
        (Some(from), Some(to)) => format!(", from port: {from}, to port: {to}"),
        _ => String::new(),
    };
    let protocol = if spec.protocol == "-1" {
        "ALL".to_string()
    } else {
        spec.protocol.to_uppercase()
    };
    format!("peer: {peer}, {protocol}{ports}, ALLOW")
}
