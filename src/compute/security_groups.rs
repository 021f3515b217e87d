//! Security groups and their rules.
//!
//! Every VPC has a `default` group (all traffic in from the group itself,
//! all traffic out): the default VPC's is created with the account, a
//! created VPC's with the VPC; it cannot be deleted, and goes with its
//! VPC. Names are unique per VPC, and a group named by `GroupName` is one
//! of the default VPC, as in EC2 (a created VPC's groups are named by id,
//! except in a launch into one of its subnets). Other groups are created with one egress rule (all traffic to
//! `0.0.0.0/0`), as EC2 does. Rules are stored one source each (a CIDR, an
//! IPv6 CIDR or a group), like EC2's security group rules with their `sgr-`
//! ids; DescribeSecurityGroups folds them back into `ipPermissions` by
//! protocol and ports. Adding a rule that exists is
//! `InvalidPermission.Duplicate`, removing one that does not is
//! `InvalidPermission.NotFound`; a group used by an instance or referenced by
//! another group's rule cannot be deleted (`DependencyViolation`). Every
//! change is one operation on the store (see `operation`): names and the
//! quota rest on the account's group usage record, a group's use by
//! instances on the account's instance usage record.

use super::instances::{InstanceState, Tag};
use super::operation::Tx;
use super::usage::{Kind, Usage};
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::store::StoreResult;
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

impl crate::store::Record for SecurityGroup {}

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

pub(crate) fn group_key(account_id: &str, group_id: &str) -> Vec<u8> {
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
        code: crate::error::codes::RULES_PER_SECURITY_GROUP_LIMIT_EXCEEDED,
        message: format!(
            "The maximum number of rules per security group has been reached: {limit} inbound and {limit} outbound"
        ),
    }
}

fn group_not_found(what: &str) -> ApiError {
    ApiError::NotFound {
        code: super::kinds::ResourceKind::SecurityGroup.not_found_code(),
        message: format!("The security group '{what}' does not exist"),
    }
}

fn in_use(group_id: &str) -> ApiError {
    ApiError::NotFound {
        code: crate::error::codes::DEPENDENCY_VIOLATION,
        message: format!("resource {group_id} has a dependent object"),
    }
}

/// A VPC's `default` group: all traffic in from the group itself, all
/// traffic out.
pub(super) fn default_group(account_id: &str, vpc_id: &str) -> SecurityGroup {
    let id = super::ids::new_id("sg");
    SecurityGroup {
        ingress: vec![all_traffic(RulePeer::Group {
            group_id: id.clone(),
            account_id: account_id.to_string(),
        })],
        egress: vec![all_traffic(RulePeer::Cidr("0.0.0.0/0".into()))],
        id,
        account_id: account_id.to_string(),
        name: "default".into(),
        description: "default VPC security group".into(),
        vpc_id: vpc_id.to_string(),
        tags: Vec::new(),
    }
}

/// Stores a new group in `tx` (its usage counted by the caller).
pub(super) fn put_group(tx: &mut Tx<'_>, group: &SecurityGroup) {
    tx.put(
        SECURITY_GROUPS,
        group_key(&group.account_id, &group.id),
        group,
    );
}

/// A group of the account, read in `tx`.
pub(super) fn group_in(
    tx: &mut Tx<'_>,
    account_id: &str,
    group_id: &str,
) -> StoreResult<Option<SecurityGroup>> {
    tx.get::<SecurityGroup>(SECURITY_GROUPS, &group_key(account_id, group_id))
}

/// Removes a group in `tx` (its usage counted by the caller).
pub(super) fn delete_group(tx: &mut Tx<'_>, account_id: &str, group_id: &str) {
    tx.delete(SECURITY_GROUPS, group_key(account_id, group_id));
}

/// The account's security group usage in `tx`.
pub(super) fn group_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<Usage> {
    super::usage::read(tx, account_id, Kind::SecurityGroups, |tx| {
        super::usage::count_of(tx, SECURITY_GROUPS, format!("{account_id}/").as_bytes())
    })
}

impl Compute {
    /// The account's groups, the `default` one created when missing.
    pub async fn security_groups(&self, account_id: &str) -> ApiResult<Vec<SecurityGroup>> {
        let prefix = format!("{account_id}/");
        let groups: Vec<SecurityGroup> = self
            .store
            .records(SECURITY_GROUPS, prefix.as_bytes())
            .await?;
        let default_vpc = self.default_vpc(account_id).await?;
        let has_default = |groups: &[SecurityGroup], vpc_id: &str| {
            groups
                .iter()
                .any(|g| g.name == "default" && g.vpc_id == vpc_id)
        };
        if let Some(vpc) = &default_vpc {
            if has_default(&groups, &vpc.vpc_id) {
                return Ok(groups);
            }
        }
        let (vpc, _) = self.default_network(account_id).await?;
        super::operation::run(&self.store, false, |tx| {
            let mut usage = group_usage(tx, account_id)?;
            let groups = tx.scan::<SecurityGroup>(SECURITY_GROUPS, prefix.as_bytes())?;
            if has_default(&groups, &vpc.vpc_id) {
                return Ok(());
            }
            let group = default_group(account_id, &vpc.vpc_id);
            tx.put(SECURITY_GROUPS, group_key(account_id, &group.id), &group);
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::SecurityGroups, &usage);
            Ok(())
        })
        .await?;
        Ok(self
            .store
            .records(SECURITY_GROUPS, prefix.as_bytes())
            .await?)
    }

    /// One group by id or name.
    pub async fn security_group(
        &self,
        account_id: &str,
        selector: &GroupSelector,
    ) -> ApiResult<SecurityGroup> {
        if let GroupSelector::Id(id) = selector {
            super::kinds::ResourceKind::SecurityGroup.check(id)?;
        }
        let groups = self.security_groups(account_id).await?;
        let default_vpc = self.default_vpc(account_id).await?.map(|v| v.vpc_id);
        groups
            .into_iter()
            .find(|g| match selector {
                GroupSelector::Id(id) => &g.id == id,
                GroupSelector::Name(name) => {
                    &g.name == name && Some(&g.vpc_id) == default_vpc.as_ref()
                }
            })
            .ok_or_else(|| group_not_found(selector_text(selector)))
    }

    /// One group by id or name, read in `tx` (its deletion or change makes
    /// the operation run again). A name is looked up through
    /// [`GroupNameHints`] first (a group found by id with that name is the
    /// one: names are unique and never change), else in a listing.
    pub(crate) fn security_group_in(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        selector: &GroupSelector,
    ) -> ApiResult<SecurityGroup> {
        let id = match selector {
            GroupSelector::Id(id) => {
                super::kinds::ResourceKind::SecurityGroup.check(id)?;
                id.clone()
            }
            GroupSelector::Name(name) => {
                if let Some(id) = self.group_names.get(account_id, name) {
                    let key = group_key(account_id, &id);
                    if let Some(group) = tx.get::<SecurityGroup>(SECURITY_GROUPS, &key)? {
                        if &group.name == name {
                            return Ok(group);
                        }
                    }
                }
                // A name means a group of the default VPC, as in EC2.
                let default_vpc = tx
                    .get::<super::network::Vpc>(super::network::VPCS, account_id.as_bytes())?
                    .map(|vpc| vpc.vpc_id)
                    .ok_or_else(|| group_not_found(name))?;
                let id = tx
                    .scan::<SecurityGroup>(SECURITY_GROUPS, format!("{account_id}/").as_bytes())?
                    .into_iter()
                    .find(|g| &g.name == name && g.vpc_id == default_vpc)
                    .map(|g| g.id)
                    .ok_or_else(|| group_not_found(name))?;
                self.group_names.remember(account_id, name, &id);
                id
            }
        };
        tx.get::<SecurityGroup>(SECURITY_GROUPS, &group_key(account_id, &id))?
            .ok_or_else(|| group_not_found(selector_text(selector)))
    }

    /// The group called `name` in a created VPC, read in `tx` (the group
    /// usage record read with it: a group created or deleted meanwhile
    /// makes the operation run again).
    pub(crate) fn security_group_named_in_vpc(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        vpc_id: &str,
        name: &str,
    ) -> ApiResult<SecurityGroup> {
        group_usage(tx, account_id)?;
        let id = tx
            .scan::<SecurityGroup>(SECURITY_GROUPS, format!("{account_id}/").as_bytes())?
            .into_iter()
            .find(|g| g.name == name && g.vpc_id == vpc_id)
            .map(|g| g.id)
            .ok_or_else(|| group_not_found(name))?;
        tx.get::<SecurityGroup>(SECURITY_GROUPS, &group_key(account_id, &id))?
            .ok_or_else(|| group_not_found(name))
    }

    /// CreateSecurityGroup: the name free in the VPC and the quota, checked
    /// against the account's group usage in the same operation.
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
        // The account's defaults (made with it) first: `default` counts
        // towards the quota. A DryRun only reads them, never makes them.
        let account_vpc = if dry_run {
            self.default_vpc(account_id).await?.map(|v| v.vpc_id)
        } else {
            self.security_groups(account_id).await?;
            Some(self.default_network(account_id).await?.0.vpc_id)
        };
        // A created VPC named: read in the operation, so that its deletion
        // meanwhile makes the create answer `InvalidVpcID.NotFound`.
        let created_vpc = match vpc_id {
            Some(requested) if Some(requested) != account_vpc.as_deref() => {
                super::kinds::ResourceKind::Vpc.check(requested)?;
                Some(requested.to_string())
            }
            _ => None,
        };
        super::operation::run(&self.store, dry_run, |tx| {
            let vpc_id = match &created_vpc {
                Some(requested) => super::vpcs::created_vpc(tx, account_id, requested)?.vpc_id,
                None => account_vpc.clone().unwrap_or_default(),
            };
            let mut usage = group_usage(tx, account_id)?;
            let existing =
                tx.scan::<SecurityGroup>(SECURITY_GROUPS, format!("{account_id}/").as_bytes())?;
            if existing
                .iter()
                .any(|g| g.name == name && g.vpc_id == vpc_id)
            {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::INVALID_GROUP_DUPLICATE,
                    message: format!(
                        "The security group '{name}' already exists for VPC '{}'",
                        vpc_id
                    ),
                });
            }
            if usage.count >= u64::from(self.quotas.max_security_groups) {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::SECURITY_GROUP_LIMIT_EXCEEDED,
                    message: format!(
                        "You have reached the limit of {} security groups",
                        self.quotas.max_security_groups
                    ),
                });
            }
            let group = SecurityGroup {
                id: super::ids::new_id("sg"),
                account_id: account_id.to_string(),
                name: name.to_string(),
                description: description.to_string(),
                vpc_id: vpc_id.clone(),
                ingress: Vec::new(),
                egress: vec![all_traffic(RulePeer::Cidr("0.0.0.0/0".into()))],
                tags: tags.clone(),
            };
            tx.put(SECURITY_GROUPS, group_key(account_id, &group.id), &group);
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::SecurityGroups, &usage);
            Ok(group)
        })
        .await
    }

    /// DeleteSecurityGroup; returns the deleted group's id. Whether an
    /// instance uses it is read with the account's instance usage, which
    /// every launch rewrites, and whether a rule references it with the
    /// group itself, which every new reference rewrites: neither can appear
    /// between the check and the commit.
    pub async fn delete_security_group(
        &self,
        account_id: &str,
        selector: &GroupSelector,
        dry_run: bool,
    ) -> ApiResult<String> {
        // Resolves `default` when missing (never made by a DryRun).
        if !dry_run {
            self.security_groups(account_id).await?;
        }
        super::operation::run(&self.store, dry_run, |tx| {
            let group = self.security_group_in(tx, account_id, selector)?;
            if group.name == "default" {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::CANNOT_DELETE,
                    message: "the specified group: \"default\" name cannot be deleted by a user"
                        .into(),
                });
            }
            super::instances::usage(tx, account_id)?;
            let (users, _) = self.instance_page_in(tx, account_id, None, Some(1), &|i| {
                i.state != InstanceState::Terminated
                    && i.security_groups.iter().any(|g| g.id == group.id)
            })?;
            if !users.is_empty()
                || super::network_interfaces::group_in_use(tx, account_id, &group.id)?
            {
                return Err(in_use(&group.id));
            }
            let mut usage = group_usage(tx, account_id)?;
            let others =
                tx.scan::<SecurityGroup>(SECURITY_GROUPS, format!("{account_id}/").as_bytes())?;
            let referenced = others.iter().filter(|g| g.id != group.id).any(|g| {
                g.ingress.iter().chain(&g.egress).any(
                    |r| matches!(&r.peer, RulePeer::Group { group_id, .. } if group_id == &group.id),
                )
            });
            if referenced {
                return Err(in_use(&group.id));
            }
            tx.delete(SECURITY_GROUPS, group_key(account_id, &group.id));
            usage.count = usage.count.saturating_sub(1);
            super::usage::write(tx, account_id, Kind::SecurityGroups, &usage);
            Ok(group.id)
        })
        .await
    }

    /// Resolves a peer group named by id or name (and owner, default: the
    /// caller). Another account's group is named by id only, and is checked
    /// when the rule is added (`authorize_rules`): it must be in a VPC
    /// joined by an active peering connection with the rule's group's VPC.
    /// Otherwise it is `InvalidGroup.NotFound` worded exactly as for a group
    /// that does not exist, so a reference reveals nothing about other
    /// accounts, and nothing is ever written on their side.
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
        if let Some(owner) = owner.as_deref().filter(|owner| *owner != account_id) {
            return match &selector {
                GroupSelector::Id(id) => {
                    super::kinds::ResourceKind::SecurityGroup.check(id)?;
                    Ok(RulePeer::Group {
                        group_id: id.clone(),
                        account_id: owner.to_string(),
                    })
                }
                GroupSelector::Name(_) => Err(group_not_found(selector_text(&selector))),
            };
        }
        let group = self.security_group(account_id, &selector).await?;
        Ok(RulePeer::Group {
            group_id: group.id,
            account_id: group.account_id,
        })
    }

    /// Authorize ingress or egress rules; returns the new rules. Every
    /// group a new rule references is rewritten unchanged in the same
    /// commit, so that its concurrent deletion conflicts.
    pub async fn authorize_rules(
        &self,
        account_id: &str,
        selector: &GroupSelector,
        direction: Direction,
        specs: Vec<RuleSpec>,
        dry_run: bool,
    ) -> ApiResult<(SecurityGroup, Vec<Rule>)> {
        if !dry_run {
            self.security_groups(account_id).await?;
        }
        super::operation::run(&self.store, dry_run, |tx| {
            let mut group = self.security_group_in(tx, account_id, selector)?;
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
                        code: crate::error::codes::INVALID_PERMISSION_DUPLICATE,
                        message: format!(
                            "the specified rule \"{}\" already exists",
                            describe_rule(spec)
                        ),
                    });
                }
            }
            drop(present);
            for spec in &specs {
                if let RulePeer::Group {
                    group_id,
                    account_id: owner,
                } = &spec.peer
                {
                    if group_id == &group.id && owner == account_id {
                        continue;
                    }
                    // Read (tracked) whichever account holds it: its
                    // deletion meanwhile makes this run again.
                    let key = group_key(owner, group_id);
                    let Some(peer) = tx.get::<SecurityGroup>(SECURITY_GROUPS, &key)? else {
                        return Err(group_not_found(group_id));
                    };
                    // Groups of the same VPC, or of a VPC peered with it.
                    let now = self.clock.now();
                    let mut peered = || -> ApiResult<bool> {
                        for listed in super::peering::account_connections_in(tx, account_id)? {
                            if listed.joins(&group.vpc_id, &peer.vpc_id, now) {
                                // Read (tracked): its deletion meanwhile conflicts.
                                let current =
                                    super::peering::connection_in(tx, account_id, &listed.id)?;
                                return Ok(current.joins(&group.vpc_id, &peer.vpc_id, now));
                            }
                        }
                        Ok(false)
                    };
                    if peer.vpc_id != group.vpc_id && !peered()? {
                        // Another account's group: as if it did not exist.
                        if owner != account_id {
                            return Err(group_not_found(group_id));
                        }
                        return Err(ApiError::NotFound {
                            code: super::kinds::ResourceKind::SecurityGroup.not_found_code(),
                            message: format!(
                                "The security group '{group_id}' does not exist in VPC '{}'",
                                group.vpc_id
                            ),
                        });
                    }
                    // The caller's own group is rewritten unchanged, so
                    // that its deletion meanwhile conflicts (another
                    // account's may go: the rule then refers to a deleted
                    // group, as EC2's stale references do).
                    if owner == account_id {
                        tx.touch(SECURITY_GROUPS, &key)?;
                    }
                }
            }
            let added: Vec<Rule> = specs
                .iter()
                .map(|spec| Rule {
                    id: super::ids::new_id("sgr"),
                    protocol: spec.protocol.clone(),
                    from_port: spec.from_port,
                    to_port: spec.to_port,
                    peer: spec.peer.clone(),
                    description: spec.description.clone(),
                })
                .collect();
            group.rules_mut(direction).extend(added.iter().cloned());
            tx.put(SECURITY_GROUPS, group_key(account_id, &group.id), &group);
            Ok((group, added))
        })
        .await
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
        if !dry_run {
            self.security_groups(account_id).await?;
        }
        super::operation::run(&self.store, dry_run, |tx| {
            let mut group = self.security_group_in(tx, account_id, selector)?;
            let mut removed = Vec::new();
            for spec in &specs {
                match group.rules(direction).iter().find(|r| r.same_as(spec)) {
                    Some(rule) => removed.push(rule.clone()),
                    None => {
                        return Err(ApiError::NotFound {
                            code: crate::error::codes::INVALID_PERMISSION_NOT_FOUND,
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
                            code: crate::error::codes::INVALID_SECURITY_GROUP_RULE_ID_NOT_FOUND,
                            message: format!("The security group rule ID '{id}' does not exist"),
                        })
                    }
                }
            }
            group
                .rules_mut(direction)
                .retain(|r| !removed.iter().any(|gone| gone.id == r.id));
            tx.put(SECURITY_GROUPS, group_key(account_id, &group.id), &group);
            Ok((group, removed))
        })
        .await
    }
}

fn selector_text(selector: &GroupSelector) -> &str {
    match selector {
        GroupSelector::Id(id) => id,
        GroupSelector::Name(name) => name,
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

/// Which group id a name was last found at, per account: saves the
/// listing a launch by group name would scan. Only a hint: the group is
/// then read by id in the operation (tracked), and used only if it still
/// carries that name; a miss falls back to the listing. Bounded.
#[derive(Default)]
pub(crate) struct GroupNameHints {
    ids: std::sync::RwLock<std::collections::HashMap<(String, String), String>>,
}

/// Most names [`GroupNameHints`] keeps.
const MAX_GROUP_NAME_HINTS: usize = 10_000;

impl GroupNameHints {
    fn get(&self, account_id: &str, name: &str) -> Option<String> {
        crate::sync::read(&self.ids)
            .get(&(account_id.to_string(), name.to_string()))
            .cloned()
    }

    fn remember(&self, account_id: &str, name: &str, id: &str) {
        let mut ids = crate::sync::write(&self.ids);
        if ids.len() >= MAX_GROUP_NAME_HINTS {
            ids.clear();
        }
        ids.insert((account_id.to_string(), name.to_string()), id.to_string());
    }
}
