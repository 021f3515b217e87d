//! Network ACLs: CreateNetworkAcl, DeleteNetworkAcl, Create/Replace/
//! DeleteNetworkAclEntry, ReplaceNetworkAclAssociation, and the account's
//! ACLs with their subnet associations for DescribeNetworkAcls.
//!
//! Every VPC has a default ACL, made with it, that allows all traffic in
//! and out (rule 100) before the final deny-all rule `32767` that every ACL
//! ends with and that cannot be changed. A subnet is always associated with
//! exactly one ACL of its VPC: its VPC's default one until
//! ReplaceNetworkAclAssociation says otherwise. The association lives on
//! the subnet record (`Subnet::network_acl`); a subnet never moved has an
//! association id derived from its own id, so it is stable without being
//! stored. Entries are numbered 1 to 32766 per direction
//! (`NetworkAclEntryAlreadyExists`, `InvalidNetworkAclEntry.NotFound`), at
//! most 20 per direction. The default ACL is not deleted, nor an ACL a
//! subnet uses (`DependencyViolation`): a move to an ACL rewrites it
//! unchanged, so its concurrent deletion conflicts.

use super::idempotency::ClientToken;
use super::instances::Tag;
use super::network::Subnet;
use super::operation::{self, Tx};
use super::usage::{Kind, Usage};
use super::Compute;
use crate::error::{codes, ApiError, ApiResult};
use crate::store::StoreResult;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `<account>/<acl-id>`.
pub(crate) const NETWORK_ACLS: &str = "network_acls";

const CREATE: &str = "CreateNetworkAcl";

/// EC2's default quotas.
pub const MAX_ACLS_PER_VPC: usize = 200;
pub const MAX_ENTRIES_PER_DIRECTION: usize = 20;

/// The last rule of every ACL: deny everything.
pub const FINAL_RULE: u16 = 32767;

/// One ACL entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    pub rule_number: u16,
    /// `-1` or a protocol number.
    pub protocol: String,
    /// `allow` or `deny`.
    pub action: String,
    pub egress: bool,
    pub cidr: String,
    pub port_range: Option<(i32, i32)>,
    /// ICMP type and code.
    pub icmp: Option<(i32, i32)>,
}

impl AclEntry {
    fn all(rule_number: u16, action: &str, egress: bool) -> Self {
        Self {
            rule_number,
            protocol: "-1".into(),
            action: action.into(),
            egress,
            cidr: "0.0.0.0/0".into(),
            port_range: None,
            icmp: None,
        }
    }
}

/// A network ACL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAcl {
    pub id: String,
    pub account_id: String,
    pub vpc_id: String,
    pub is_default: bool,
    pub entries: Vec<AclEntry>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

impl crate::store::Record for NetworkAcl {}

impl NetworkAcl {
    /// A new ACL of `vpc_id`: the default one allows everything.
    pub(super) fn new(account_id: &str, vpc_id: &str, is_default: bool) -> Self {
        let mut entries = Vec::new();
        for egress in [false, true] {
            if is_default {
                entries.push(AclEntry::all(100, "allow", egress));
            }
            entries.push(AclEntry::all(FINAL_RULE, "deny", egress));
        }
        Self {
            id: super::ids::new_id("acl"),
            account_id: account_id.to_string(),
            vpc_id: vpc_id.to_string(),
            is_default,
            entries,
            tags: Vec::new(),
            client_token: None,
        }
    }
}

/// A subnet's ACL when moved from its VPC's default one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclAssociation {
    pub network_acl_id: String,
    pub association_id: String,
}

/// One association as DescribeNetworkAcls lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetAclAssociation {
    pub association_id: String,
    pub network_acl_id: String,
    pub subnet_id: String,
}

/// An ACL with the subnets associated with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAclView {
    pub acl: NetworkAcl,
    pub associations: Vec<SubnetAclAssociation>,
}

/// The association id of a subnet never moved: derived from its id.
fn implicit_association_id(subnet_id: &str) -> String {
    let digest = hex::encode(Sha256::digest(format!("aclassoc/{subnet_id}").as_bytes()));
    format!("aclassoc-{}", &digest[..17])
}

/// The subnet's association: `(acl, association id)`, the ACL `None`
/// for its VPC's default one.
fn association_of(subnet: &Subnet) -> (Option<&str>, String) {
    match &subnet.network_acl {
        Some(moved) => (
            Some(moved.network_acl_id.as_str()),
            moved.association_id.clone(),
        ),
        None => (None, implicit_association_id(&subnet.subnet_id)),
    }
}

/// An entry as requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryChange {
    pub entry: AclEntry,
}

fn key(account_id: &str, id: &str) -> Vec<u8> {
    format!("{account_id}/{id}").into_bytes()
}

fn not_found(id: &str) -> ApiError {
    super::kinds::ResourceKind::NetworkAcl.not_found(id)
}

fn acl_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<Usage> {
    super::usage::read(tx, account_id, Kind::NetworkAcls, |tx| {
        super::usage::count_of(tx, NETWORK_ACLS, format!("{account_id}/").as_bytes())
    })
}

fn acl_in(tx: &mut Tx<'_>, account_id: &str, id: &str) -> ApiResult<NetworkAcl> {
    super::kinds::ResourceKind::NetworkAcl.check(id)?;
    tx.get::<NetworkAcl>(NETWORK_ACLS, &key(account_id, id))?
        .ok_or_else(|| not_found(id))
}

/// Stores a new ACL in `tx`, counted in the account's usage.
pub(super) fn put_new(tx: &mut Tx<'_>, acl: &NetworkAcl) -> StoreResult<()> {
    let mut usage = acl_usage(tx, &acl.account_id)?;
    usage.count += 1;
    super::usage::write(tx, &acl.account_id, Kind::NetworkAcls, &usage);
    tx.put(NETWORK_ACLS, key(&acl.account_id, &acl.id), acl);
    Ok(())
}

/// The VPC's ACLs, as stored now (untracked), after reading the ACL usage
/// record (a create or delete meanwhile conflicts).
pub(super) fn vpc_acls_in(
    tx: &mut Tx<'_>,
    account_id: &str,
    vpc_id: &str,
) -> StoreResult<Vec<NetworkAcl>> {
    acl_usage(tx, account_id)?;
    Ok(tx
        .scan::<NetworkAcl>(NETWORK_ACLS, format!("{account_id}/").as_bytes())?
        .into_iter()
        .filter(|a| a.vpc_id == vpc_id)
        .collect())
}

/// Removes an ACL in `tx` (a VPC's default one, with the VPC).
pub(super) fn delete_with_vpc(tx: &mut Tx<'_>, account_id: &str, id: &str) -> StoreResult<()> {
    let mut usage = acl_usage(tx, account_id)?;
    usage.count = usage.count.saturating_sub(1);
    super::usage::write(tx, account_id, Kind::NetworkAcls, &usage);
    tx.delete(NETWORK_ACLS, key(account_id, id));
    Ok(())
}

fn entry_not_found(rule: u16, egress: bool) -> ApiError {
    ApiError::NotFound {
        code: codes::INVALID_NETWORK_ACL_ENTRY_NOT_FOUND,
        message: format!(
            "The network ACL entry identified by {rule} ({}) does not exist",
            if egress { "egress" } else { "ingress" }
        ),
    }
}

impl Compute {
    /// The account's ACLs with their associations.
    pub async fn network_acls(&self, account_id: &str) -> ApiResult<Vec<NetworkAclView>> {
        let acls: Vec<NetworkAcl> = self
            .store
            .records(NETWORK_ACLS, format!("{account_id}/").as_bytes())
            .await?;
        let subnets = self.account_subnets(account_id).await?;
        Ok(acls
            .into_iter()
            .map(|acl| {
                let associations = subnets
                    .iter()
                    .filter(|s| s.subnet.vpc_id == acl.vpc_id)
                    .filter_map(|s| {
                        let (moved_to, association_id) = association_of(&s.subnet);
                        let here = match moved_to {
                            Some(id) => id == acl.id,
                            None => acl.is_default,
                        };
                        here.then(|| SubnetAclAssociation {
                            association_id,
                            network_acl_id: acl.id.clone(),
                            subnet_id: s.subnet.subnet_id.clone(),
                        })
                    })
                    .collect();
                NetworkAclView { acl, associations }
            })
            .collect())
    }

    /// CreateNetworkAcl.
    pub async fn create_network_acl(
        &self,
        account_id: &str,
        vpc_id: &str,
        tags: Vec<Tag>,
        client_token: Option<&ClientToken>,
        dry_run: bool,
    ) -> ApiResult<NetworkAcl> {
        if let Some(token) = client_token {
            let earlier: Option<NetworkAcl> = super::idempotency::earlier_record(
                &self.store,
                account_id,
                CREATE,
                token,
                NETWORK_ACLS,
            )
            .await?;
            if let Some(acl) = earlier {
                return match dry_run {
                    true => Err(ApiError::DryRunOperation),
                    false => Ok(acl),
                };
            }
        }
        let found = self.account_vpc(account_id, vpc_id).await?;
        let mut acl = NetworkAcl::new(account_id, vpc_id, false);
        acl.tags = tags;
        acl.client_token = client_token.map(|t| t.token.clone());
        operation::run(&self.store, dry_run, |tx| {
            if let Some(token) = client_token {
                if let Some(id) = super::idempotency::earlier(tx, account_id, CREATE, token)? {
                    return acl_in(tx, account_id, &id);
                }
                super::idempotency::remember(tx, account_id, CREATE, token, &acl.id);
            }
            let (tree, vpc_key) = super::vpcs::vpc_key(account_id, vpc_id, found.is_default);
            if tx.get_raw(tree, &vpc_key)?.is_none() {
                return Err(super::kinds::ResourceKind::Vpc.not_found(vpc_id));
            }
            if vpc_acls_in(tx, account_id, vpc_id)?.len() >= MAX_ACLS_PER_VPC {
                return Err(ApiError::LimitExceeded {
                    code: codes::NETWORK_ACL_LIMIT_EXCEEDED,
                    message: format!(
                        "The maximum number of network ACLs ({MAX_ACLS_PER_VPC}) in {vpc_id} has been reached."
                    ),
                });
            }
            put_new(tx, &acl)?;
            Ok(acl.clone())
        })
        .await
    }

    /// DeleteNetworkAcl: neither the default one nor one a subnet uses.
    pub async fn delete_network_acl(
        &self,
        account_id: &str,
        acl_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        operation::run(&self.store, dry_run, |tx| {
            let acl = acl_in(tx, account_id, acl_id)?;
            if acl.is_default {
                return Err(ApiError::invalid_value(format!(
                    "cannot delete default network ACL {acl_id}"
                )));
            }
            // Subnets move under the subnet records, which a move rewrites
            // after reading this ACL (touched): a move meanwhile conflicts.
            let used = self
                .subnets_in(tx, account_id)?
                .iter()
                .any(|s| association_of(s).0 == Some(acl_id));
            if used {
                return Err(ApiError::NotFound {
                    code: codes::DEPENDENCY_VIOLATION,
                    message: format!(
                        "The networkAcl '{acl_id}' has dependencies and cannot be deleted."
                    ),
                });
            }
            if let Some(token) = &acl.client_token {
                super::idempotency::forget(tx, account_id, CREATE, token);
            }
            delete_with_vpc(tx, account_id, acl_id)?;
            Ok(())
        })
        .await
    }

    /// Every subnet of the account as stored now (untracked).
    fn subnets_in(&self, tx: &mut Tx<'_>, account_id: &str) -> StoreResult<Vec<Subnet>> {
        let prefix = format!("{account_id}/");
        let mut subnets: Vec<Subnet> = tx.scan(super::network::SUBNETS, prefix.as_bytes())?;
        subnets.extend(tx.scan::<Subnet>(super::subnets::SUBNETS, prefix.as_bytes())?);
        Ok(subnets)
    }

    /// CreateNetworkAclEntry (`replace`: ReplaceNetworkAclEntry).
    pub async fn put_network_acl_entry(
        &self,
        account_id: &str,
        acl_id: &str,
        entry: AclEntry,
        replace: bool,
        dry_run: bool,
    ) -> ApiResult<()> {
        if !(1..FINAL_RULE).contains(&entry.rule_number) {
            return Err(ApiError::invalid_value(format!(
                "Value ({}) for parameter ruleNumber is invalid. Expecting a value between 1 and 32766.",
                entry.rule_number
            )));
        }
        operation::run(&self.store, dry_run, |tx| {
            let mut acl = acl_in(tx, account_id, acl_id)?;
            let same = |e: &AclEntry| {
                e.rule_number == entry.rule_number && e.egress == entry.egress
            };
            match (acl.entries.iter().position(same), replace) {
                (Some(at), true) => acl.entries[at] = entry.clone(),
                (None, true) => return Err(entry_not_found(entry.rule_number, entry.egress)),
                (Some(_), false) => {
                    return Err(ApiError::NotFound {
                        code: codes::NETWORK_ACL_ENTRY_ALREADY_EXISTS,
                        message: format!(
                            "The network acl entry identified by {} already exists.",
                            entry.rule_number
                        ),
                    })
                }
                (None, false) => {
                    let in_direction = acl
                        .entries
                        .iter()
                        .filter(|e| e.egress == entry.egress && e.rule_number != FINAL_RULE)
                        .count();
                    if in_direction >= MAX_ENTRIES_PER_DIRECTION {
                        return Err(ApiError::LimitExceeded {
                            code: codes::NETWORK_ACL_ENTRY_LIMIT_EXCEEDED,
                            message: format!(
                                "The maximum number of network ACL entries ({MAX_ENTRIES_PER_DIRECTION}) per direction has been reached."
                            ),
                        });
                    }
                    acl.entries.push(entry.clone());
                    acl.entries
                        .sort_by_key(|e| (e.egress, e.rule_number));
                }
            }
            tx.put(NETWORK_ACLS, key(account_id, acl_id), &acl);
            Ok(())
        })
        .await
    }

    /// DeleteNetworkAclEntry.
    pub async fn delete_network_acl_entry(
        &self,
        account_id: &str,
        acl_id: &str,
        rule_number: u16,
        egress: bool,
        dry_run: bool,
    ) -> ApiResult<()> {
        operation::run(&self.store, dry_run, |tx| {
            let mut acl = acl_in(tx, account_id, acl_id)?;
            if rule_number == FINAL_RULE {
                return Err(ApiError::invalid_value(
                    "The final deny-all entry (32767) cannot be deleted",
                ));
            }
            let at = acl
                .entries
                .iter()
                .position(|e| e.rule_number == rule_number && e.egress == egress)
                .ok_or_else(|| entry_not_found(rule_number, egress))?;
            acl.entries.remove(at);
            tx.put(NETWORK_ACLS, key(account_id, acl_id), &acl);
            Ok(())
        })
        .await
    }

    /// ReplaceNetworkAclAssociation: moves a subnet to another ACL of its
    /// VPC; returns the new association id.
    pub async fn replace_network_acl_association(
        &self,
        account_id: &str,
        association_id: &str,
        acl_id: &str,
        dry_run: bool,
    ) -> ApiResult<String> {
        let unknown = || ApiError::NotFound {
            code: codes::INVALID_ASSOCIATION_ID_NOT_FOUND,
            message: format!("The association ID '{association_id}' does not exist"),
        };
        let found = self
            .account_subnets(account_id)
            .await?
            .into_iter()
            .find(|s| association_of(&s.subnet).1 == association_id)
            .ok_or_else(unknown)?;
        let (tree, subnet_key) = super::subnets::subnet_key(&found);
        let new_id = super::ids::new_id("aclassoc");
        operation::run(&self.store, dry_run, |tx| {
            let mut subnet = tx
                .get::<Subnet>(tree, &subnet_key)?
                .filter(|s| association_of(s).1 == association_id)
                .ok_or_else(unknown)?;
            let acl = acl_in(tx, account_id, acl_id)?;
            if acl.vpc_id != subnet.vpc_id {
                return Err(ApiError::invalid_value(format!(
                    "Network ACL {acl_id} and subnet {} belong to different networks",
                    subnet.subnet_id
                )));
            }
            tx.touch(NETWORK_ACLS, &key(account_id, acl_id))?;
            subnet.network_acl = Some(AclAssociation {
                network_acl_id: acl_id.to_string(),
                association_id: new_id.clone(),
            });
            tx.put(tree, subnet_key.clone(), &subnet);
            Ok(new_id.clone())
        })
        .await
    }
}
