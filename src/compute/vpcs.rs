//! VPCs beside the default one: CreateVpc, DeleteVpc, DescribeVpcs and the
//! VPC attributes.
//!
//! Scripts written for EC2 start by creating a VPC, so an account may hold
//! its default VPC (`compute::network`, created with the account) and up to
//! `quotas.max_vpcs` VPCs in all, as EC2's per-Region VPC quota counts
//! them. A created VPC lives under `vpcs/<account>/<id>`; its CIDR block is
//! taken to its canonical form as EC2 does (`10.0.0.18/16` becomes
//! `10.0.0.0/16`) and must be a /16 to a /28 (`InvalidVpc.Range`). Its DNS
//! attributes start as EC2's do (support on; hostnames on only in the
//! default VPC). The account's VPC usage record is rewritten by every
//! create and delete, so the quota holds when two requests race. A VPC
//! with dependencies is not deleted (`DependencyViolation`): the default
//! VPC always has its default subnets; a created VPC is deleted once its
//! subnets, its groups but `default`, its route tables but the main one,
//! its network ACLs but the default one and its internet gateway are gone
//! (its `default` group, main route table and default ACL, made with it, go
//! with it). It starts with the account's default DHCP options set.

use super::cidr::Ipv4Cidr;
use super::instances::Tag;
use super::network::{Vpc, VPCS as DEFAULT_VPCS};
use super::operation::{self, Tx};
use super::usage::{Kind, Usage};
use super::Compute;
use crate::error::{codes, ApiError, ApiResult};
use crate::store::StoreResult;

/// Created VPCs, `<account>/<vpc-id>`.
pub(crate) const VPCS: &str = "vpcs";

/// The smallest and largest VPC blocks EC2 accepts.
const SHORTEST_PREFIX: u8 = 16;
const LONGEST_PREFIX: u8 = 28;

/// A VPC attribute DescribeVpcAttribute and ModifyVpcAttribute name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpcAttribute {
    EnableDnsSupport,
    EnableDnsHostnames,
    /// Network Address Usage metrics: not offered, always off.
    EnableNetworkAddressUsageMetrics,
}

/// One of the account's VPCs, and whether it is the default one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountVpc {
    pub vpc: Vpc,
    pub is_default: bool,
}

impl AccountVpc {
    /// The attribute's value (EC2's defaults when never set).
    pub fn attribute(&self, attribute: VpcAttribute) -> bool {
        match attribute {
            VpcAttribute::EnableDnsSupport => self.vpc.enable_dns_support.unwrap_or(true),
            VpcAttribute::EnableDnsHostnames => {
                self.vpc.enable_dns_hostnames.unwrap_or(self.is_default)
            }
            VpcAttribute::EnableNetworkAddressUsageMetrics => false,
        }
    }
}

fn key(account_id: &str, vpc_id: &str) -> Vec<u8> {
    format!("{account_id}/{vpc_id}").into_bytes()
}

fn vpc_not_found(vpc_id: &str) -> ApiError {
    ApiError::NotFound {
        code: super::kinds::ResourceKind::Vpc.not_found_code(),
        message: format!("The vpc ID '{vpc_id}' does not exist"),
    }
}

/// Where a VPC of the account is stored: the default VPC by account, a
/// created one by id.
pub(super) fn vpc_key(account_id: &str, vpc_id: &str, is_default: bool) -> (&'static str, Vec<u8>) {
    if is_default {
        (DEFAULT_VPCS, account_id.as_bytes().to_vec())
    } else {
        (VPCS, key(account_id, vpc_id))
    }
}

/// Records in `tx` that `table_id` is now the VPC's main route table.
pub(super) fn set_main_route_table(
    tx: &mut Tx<'_>,
    account_id: &str,
    vpc_id: &str,
    table_id: &str,
) -> ApiResult<()> {
    let created = key(account_id, vpc_id);
    let (tree, key) = match tx.get::<Vpc>(VPCS, &created)? {
        Some(_) => (VPCS, created),
        None => (DEFAULT_VPCS, account_id.as_bytes().to_vec()),
    };
    let mut vpc = tx
        .get::<Vpc>(tree, &key)?
        .filter(|v| v.vpc_id == vpc_id)
        .ok_or_else(|| vpc_not_found(vpc_id))?;
    vpc.main_route_table_id = Some(table_id.to_string());
    tx.put(tree, key, &vpc);
    Ok(())
}

/// A created VPC of the account, read in `tx` (`InvalidVpcID.NotFound`
/// when absent).
pub(super) fn created_vpc(tx: &mut Tx<'_>, account_id: &str, vpc_id: &str) -> ApiResult<Vpc> {
    tx.get::<Vpc>(VPCS, &key(account_id, vpc_id))?
        .ok_or_else(|| vpc_not_found(vpc_id))
}

/// A VPC of the account, created or its default one, read in `tx`.
pub(super) fn vpc_record_in(tx: &mut Tx<'_>, account_id: &str, vpc_id: &str) -> ApiResult<Vpc> {
    if let Some(vpc) = tx.get::<Vpc>(VPCS, &key(account_id, vpc_id))? {
        return Ok(vpc);
    }
    tx.get::<Vpc>(DEFAULT_VPCS, account_id.as_bytes())?
        .filter(|vpc| vpc.vpc_id == vpc_id)
        .ok_or_else(|| vpc_not_found(vpc_id))
}

/// The account's usage of created VPCs in `tx`.
pub(super) fn vpc_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<Usage> {
    super::usage::read(tx, account_id, Kind::Vpcs, |tx| {
        super::usage::count_of(tx, VPCS, format!("{account_id}/").as_bytes())
    })
}

/// `block` as CreateVpc takes it: canonical, a /16 to a /28.
pub fn vpc_block(block: &str) -> ApiResult<Ipv4Cidr> {
    let cidr = Ipv4Cidr::parse(block).ok_or_else(|| {
        ApiError::invalid_value(format!(
            "Value ({block}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
        ))
    })?;
    if !(SHORTEST_PREFIX..=LONGEST_PREFIX).contains(&cidr.prefix()) {
        return Err(ApiError::NotFound {
            code: codes::INVALID_VPC_RANGE,
            message: format!("The CIDR '{block}' is invalid."),
        });
    }
    Ok(cidr)
}

impl Compute {
    /// CreateVpc.
    pub async fn create_vpc(
        &self,
        account_id: &str,
        block: Ipv4Cidr,
        tags: Vec<Tag>,
        dry_run: bool,
    ) -> ApiResult<Vpc> {
        // The account's defaults are made with it; a DryRun never makes them.
        if !dry_run && self.default_vpc(account_id).await?.is_none() {
            self.default_network(account_id).await?;
        }
        let now = self.clock.now();
        // Drawn once: every run of the operation writes the same VPC and
        // the same default group.
        let vpc_id = super::ids::new_id("vpc");
        let default_group = super::security_groups::default_group(account_id, &vpc_id);
        let main_table =
            super::route_tables::RouteTable::new(account_id, &vpc_id, &block.to_string(), true);
        let default_acl = super::network_acls::NetworkAcl::new(account_id, &vpc_id, true);
        let mut vpc = Vpc {
            vpc_id,
            account_id: account_id.to_string(),
            cidr_block: block.to_string(),
            cidr_association_id: super::ids::new_id("vpc-cidr-assoc"),
            dhcp_options_id: String::new(),
            created_at: now,
            tags,
            enable_dns_support: Some(true),
            enable_dns_hostnames: Some(false),
            default_group_id: Some(default_group.id.clone()),
            main_route_table_id: Some(main_table.id.clone()),
            default_network_acl_id: Some(default_acl.id.clone()),
            secondary_blocks: Vec::new(),
        };
        operation::run(&self.store, dry_run, |tx| {
            // It starts with the account's default DHCP options set, as in
            // EC2 (read with the sets' usage record: its deletion meanwhile
            // makes this run again).
            vpc.dhcp_options_id = super::dhcp_options::set_for_new_vpc(tx, account_id)?;
            let mut usage = vpc_usage(tx, account_id)?;
            // The default VPC counts against the quota, as in EC2.
            if usage.count + 1 >= u64::from(self.quotas.max_vpcs) {
                return Err(ApiError::LimitExceeded {
                    code: codes::VPC_LIMIT_EXCEEDED,
                    message: "The maximum number of VPCs has been reached.".into(),
                });
            }
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::Vpcs, &usage);
            tx.put(VPCS, key(account_id, &vpc.vpc_id), &vpc);
            // Its `default` group counts among the account's groups.
            let mut groups = super::security_groups::group_usage(tx, account_id)?;
            if groups.count >= u64::from(self.quotas.max_security_groups) {
                return Err(ApiError::NotFound {
                    code: codes::SECURITY_GROUP_LIMIT_EXCEEDED,
                    message: format!(
                        "You have reached the limit of {} security groups: a VPC needs one for its default group",
                        self.quotas.max_security_groups
                    ),
                });
            }
            groups.count += 1;
            super::usage::write(tx, account_id, Kind::SecurityGroups, &groups);
            super::security_groups::put_group(tx, &default_group);
            super::route_tables::put_new(tx, &main_table)?;
            super::network_acls::put_new(tx, &default_acl)?;
            Ok(vpc.clone())
        })
        .await
    }

    /// Every VPC of the account: the default one first, then the created
    /// ones by id.
    pub async fn account_vpcs(&self, account_id: &str) -> ApiResult<Vec<AccountVpc>> {
        // Read only (the default VPC is made with the account).
        let mut vpcs: Vec<AccountVpc> = self
            .default_vpc(account_id)
            .await?
            .into_iter()
            .map(|vpc| AccountVpc {
                vpc,
                is_default: true,
            })
            .collect();
        let created: Vec<Vpc> = self
            .store
            .records(VPCS, format!("{account_id}/").as_bytes())
            .await?;
        vpcs.extend(created.into_iter().map(|vpc| AccountVpc {
            vpc,
            is_default: false,
        }));
        Ok(vpcs)
    }

    /// One VPC of the account.
    pub async fn account_vpc(&self, account_id: &str, vpc_id: &str) -> ApiResult<AccountVpc> {
        super::kinds::ResourceKind::Vpc.check(vpc_id)?;
        self.account_vpcs(account_id)
            .await?
            .into_iter()
            .find(|v| v.vpc.vpc_id == vpc_id)
            .ok_or_else(|| vpc_not_found(vpc_id))
    }

    /// Gives the account's created VPCs what a VPC is made with and they
    /// lack (a `default` group, a main route table, a default network ACL):
    /// VPCs created before those existed. Run at start, before requests.
    pub async fn complete_created_vpcs(&self, account_id: &str) -> ApiResult<()> {
        let created: Vec<Vpc> = self
            .store
            .records(VPCS, format!("{account_id}/").as_bytes())
            .await?;
        for listed in created.into_iter().filter(|vpc| {
            vpc.default_group_id.is_none()
                || vpc.main_route_table_id.is_none()
                || vpc.default_network_acl_id.is_none()
        }) {
            let vpc_id = listed.vpc_id.clone();
            // Drawn once: reruns write the same records.
            let group = super::security_groups::default_group(account_id, &vpc_id);
            let table =
                super::route_tables::RouteTable::new(account_id, &vpc_id, &listed.cidr_block, true);
            let acl = super::network_acls::NetworkAcl::new(account_id, &vpc_id, true);
            operation::run(&self.store, false, |tx| {
                let Some(mut vpc) = tx.get::<Vpc>(VPCS, &key(account_id, &vpc_id))? else {
                    return Ok(());
                };
                if vpc.default_group_id.is_none() {
                    let mut usage = super::security_groups::group_usage(tx, account_id)?;
                    usage.count += 1;
                    super::usage::write(tx, account_id, Kind::SecurityGroups, &usage);
                    super::security_groups::put_group(tx, &group);
                    vpc.default_group_id = Some(group.id.clone());
                }
                if vpc.main_route_table_id.is_none() {
                    super::route_tables::put_new(tx, &table)?;
                    vpc.main_route_table_id = Some(table.id.clone());
                }
                if vpc.default_network_acl_id.is_none() {
                    super::network_acls::put_new(tx, &acl)?;
                    vpc.default_network_acl_id = Some(acl.id.clone());
                }
                tx.put(VPCS, key(account_id, &vpc_id), &vpc);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// DeleteVpc.
    pub async fn delete_vpc(&self, account_id: &str, vpc_id: &str, dry_run: bool) -> ApiResult<()> {
        let found = self.account_vpc(account_id, vpc_id).await?;
        let dependencies = || ApiError::NotFound {
            code: codes::DEPENDENCY_VIOLATION,
            message: format!("The vpc '{vpc_id}' has dependencies and cannot be deleted."),
        };
        if found.is_default {
            // Its default subnets live in it (DeleteSubnet is not offered).
            return Err(dependencies());
        }
        operation::run(&self.store, dry_run, |tx| {
            let vpc = created_vpc(tx, account_id, vpc_id)?;
            // Subnets and groups are created under their usage records:
            // reading them makes one created in this VPC meanwhile conflict.
            super::subnets::subnet_usage(tx, account_id)?;
            let subnets: Vec<super::network::Subnet> = tx.scan(
                super::subnets::SUBNETS,
                format!("{account_id}/").as_bytes(),
            )?;
            if subnets.iter().any(|s| s.vpc_id == vpc_id) {
                return Err(dependencies());
            }
            let mut group_usage = super::security_groups::group_usage(tx, account_id)?;
            let groups: Vec<super::security_groups::SecurityGroup> = tx.scan(
                super::security_groups::SECURITY_GROUPS,
                format!("{account_id}/").as_bytes(),
            )?;
            let own_default = |g: &super::security_groups::SecurityGroup| {
                vpc.default_group_id.as_deref() == Some(g.id.as_str())
            };
            if groups.iter().any(|g| g.vpc_id == vpc_id && !own_default(g)) {
                return Err(dependencies());
            }
            // Its `default` group goes with it (unless a group elsewhere
            // still references it).
            if let Some(default_id) = &vpc.default_group_id {
                let referenced = groups.iter().filter(|g| !own_default(g)).any(|g| {
                    g.ingress.iter().chain(&g.egress).any(|r| {
                        matches!(&r.peer, super::security_groups::RulePeer::Group { group_id, .. } if group_id == default_id)
                    })
                });
                if referenced {
                    return Err(dependencies());
                }
                // Read (tracked): a rule naming it meanwhile rewrites it.
                if super::security_groups::group_in(tx, account_id, default_id)?.is_some() {
                    super::security_groups::delete_group(tx, account_id, default_id);
                    group_usage.count = group_usage.count.saturating_sub(1);
                    super::usage::write(tx, account_id, Kind::SecurityGroups, &group_usage);
                }
            }
            // No internet gateway attached, no route table but the main one
            // (which goes with it).
            super::internet_gateways::gateway_usage(tx, account_id)?;
            if super::internet_gateways::account_gateways_in(tx, account_id)?
                .iter()
                .any(|g| g.vpc_id.as_deref() == Some(vpc_id))
            {
                return Err(dependencies());
            }
            let mut table_usage = super::route_tables::table_usage(tx, account_id)?;
            let tables: Vec<_> = super::route_tables::account_tables_in(tx, account_id)?
                .into_iter()
                .filter(|t| t.vpc_id == vpc_id)
                .collect();
            if tables.iter().any(|t| !t.is_main()) {
                return Err(dependencies());
            }
            let acls = super::network_acls::vpc_acls_in(tx, account_id, vpc_id)?;
            if acls.iter().any(|acl| !acl.is_default) {
                return Err(dependencies());
            }
            for table in &tables {
                super::route_tables::delete_table(tx, table);
                table_usage.count = table_usage.count.saturating_sub(1);
            }
            super::usage::write(tx, account_id, Kind::RouteTables, &table_usage);
            for acl in &acls {
                super::network_acls::delete_with_vpc(tx, account_id, &acl.id)?;
            }
            // Its peering connections end with it, as in EC2.
            super::peering::end_for_vpc(tx, account_id, vpc_id, self.clock.now())?;
            let mut usage = vpc_usage(tx, account_id)?;
            usage.count = usage.count.saturating_sub(1);
            super::usage::write(tx, account_id, Kind::Vpcs, &usage);
            tx.delete(VPCS, key(account_id, vpc_id));
            Ok(())
        })
        .await
    }

    /// ModifyVpcAttribute: one attribute at a time, as EC2 requires.
    pub async fn modify_vpc_attribute(
        &self,
        account_id: &str,
        vpc_id: &str,
        attribute: VpcAttribute,
        value: bool,
        dry_run: bool,
    ) -> ApiResult<()> {
        let found = self.account_vpc(account_id, vpc_id).await?;
        let (tree, key) = vpc_key(account_id, vpc_id, found.is_default);
        operation::run(&self.store, dry_run, |tx| {
            let mut vpc = tx
                .get::<Vpc>(tree, &key)?
                .filter(|vpc| vpc.vpc_id == vpc_id)
                .ok_or_else(|| vpc_not_found(vpc_id))?;
            let current = AccountVpc {
                vpc: vpc.clone(),
                is_default: found.is_default,
            };
            let (support, hostnames) = match attribute {
                VpcAttribute::EnableDnsSupport => {
                    (value, current.attribute(VpcAttribute::EnableDnsHostnames))
                }
                VpcAttribute::EnableDnsHostnames => {
                    (current.attribute(VpcAttribute::EnableDnsSupport), value)
                }
                VpcAttribute::EnableNetworkAddressUsageMetrics => {
                    return Err(ApiError::UnsupportedOperation(
                        "Network Address Usage metrics are not offered".into(),
                    ))
                }
            };
            if hostnames && !support {
                return Err(ApiError::invalid_value(
                    "enableDnsHostnames requires enableDnsSupport to be enabled",
                ));
            }
            vpc.enable_dns_support = Some(support);
            vpc.enable_dns_hostnames = Some(hostnames);
            tx.put(tree, key.clone(), &vpc);
            Ok(())
        })
        .await
    }
}
