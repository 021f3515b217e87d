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
//! VPC always has its default subnets. Security groups are not yet created
//! in other VPCs (each VPC's own `default` group and names per VPC come
//! with subnets); DeleteVpc already refuses a VPC that still holds one.

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

/// The account's usage of created VPCs in `tx`.
fn vpc_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<Usage> {
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
        // Read only: a DryRun writes nothing, not even the account's defaults.
        let dhcp_options_id = match self.default_vpc(account_id).await? {
            Some(default_vpc) => default_vpc.dhcp_options_id,
            None => super::ids::new_id("dopt"),
        };
        let now = self.clock.now();
        // Drawn once: every run of the operation writes the same VPC.
        let vpc = Vpc {
            vpc_id: super::ids::new_id("vpc"),
            account_id: account_id.to_string(),
            cidr_block: block.to_string(),
            cidr_association_id: super::ids::new_id("vpc-cidr-assoc"),
            dhcp_options_id,
            created_at: now,
            tags,
            enable_dns_support: Some(true),
            enable_dns_hostnames: Some(false),
        };
        operation::run(&self.store, dry_run, |tx| {
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
            let key = key(account_id, vpc_id);
            if tx.get::<Vpc>(VPCS, &key)?.is_none() {
                return Err(vpc_not_found(vpc_id));
            }
            // Groups are created under the group usage record: reading it
            // makes a group created in this VPC meanwhile conflict.
            super::security_groups::group_usage(tx, account_id)?;
            let groups: Vec<super::security_groups::SecurityGroup> = tx.scan(
                super::security_groups::SECURITY_GROUPS,
                format!("{account_id}/").as_bytes(),
            )?;
            if groups.iter().any(|g| g.vpc_id == vpc_id) {
                return Err(dependencies());
            }
            let mut usage = vpc_usage(tx, account_id)?;
            usage.count = usage.count.saturating_sub(1);
            super::usage::write(tx, account_id, Kind::Vpcs, &usage);
            tx.delete(VPCS, key);
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
        let (tree, key) = if found.is_default {
            (DEFAULT_VPCS, account_id.as_bytes().to_vec())
        } else {
            (VPCS, key(account_id, vpc_id))
        };
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
