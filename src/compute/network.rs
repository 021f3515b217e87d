//! The default VPC and its default subnets, one per zone, per account.
//!
//! Tools read DescribeAccountAttributes, DescribeVpcs and DescribeSubnets
//! before they launch anything, so every account has a default VPC
//! (`172.31.0.0/16`) created on first use, and a default subnet in every
//! zone, whose `/20` is the range instances in that zone get their private
//! addresses from (`172.31.0.0/20` for `...-az1`, `172.31.16.0/20` for
//! `...-az2`, ...). Like EC2's, the default VPC has an internet gateway
//! attached, a main route table whose default route leads to it, a default
//! network ACL and a DHCP options set. Ids
//! are assigned once and persisted. VPCs and
//! subnets an account creates are in `vpcs` and `subnets`.

use super::Compute;
use crate::error::ApiResult;
use crate::store::{StoreResult, WriteBatch};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub(crate) const VPCS: &str = "default_vpcs";
pub(crate) const SUBNETS: &str = "default_subnets";

/// The CIDR of every default VPC.
pub const DEFAULT_VPC_CIDR: &str = "172.31.0.0/16";

/// An account's default VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vpc {
    pub vpc_id: String,
    pub account_id: String,
    pub cidr_block: String,
    pub cidr_association_id: String,
    pub dhcp_options_id: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub tags: Vec<super::instances::Tag>,
    /// Set by ModifyVpcAttribute (`None`: EC2's default, see `vpcs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_dns_support: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_dns_hostnames: Option<bool>,
    /// A created VPC's own `default` security group (the default VPC's
    /// is found by its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_group_id: Option<String>,
    /// Its main route table (made with it; a default VPC stored before
    /// route tables existed gets one at the next start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_route_table_id: Option<String>,
    /// Its default network ACL (as the main route table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_network_acl_id: Option<String>,
    /// Secondary IPv4 blocks (`vpc_blocks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary_blocks: Vec<super::vpc_blocks::CidrAssociation>,
}

impl crate::store::Record for Vpc {}

/// A default subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub subnet_id: String,
    pub account_id: String,
    pub vpc_id: String,
    pub availability_zone: String,
    pub availability_zone_id: String,
    pub cidr_block: String,
    #[serde(default)]
    pub tags: Vec<super::instances::Tag>,
    /// Set by ModifySubnetAttribute (`None`: on in a default subnet, off
    /// in a created one, as in EC2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_public_ip_on_launch: Option<bool>,
    /// Its network ACL when moved from its VPC's default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_acl: Option<super::network_acls::AclAssociation>,
}

impl crate::store::Record for Subnet {}

/// The first address of a zone's `/20`, from its zone id (`...-az<n>`).
pub fn zone_network(zone_id: &str) -> u32 {
    let number: u32 = zone_id
        .rsplit("az")
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    (172 << 24) | (31 << 16) | (((number.saturating_sub(1) % 16) * 16) << 8)
}

/// `a.b.c.d/20` of a zone.
pub fn zone_cidr(zone_id: &str) -> String {
    format!("{}/20", std::net::Ipv4Addr::from(zone_network(zone_id)))
}

/// Gives a default VPC what EC2's has and it lacks (it was stored by an
/// earlier release, or just made): an internet gateway attached to it, a
/// main route table with the local route and a default route to that
/// gateway, a default network ACL and its DHCP options set; returns the VPC
/// as rewritten in `tx`.
fn complete_default_vpc(
    tx: &mut super::operation::Tx<'_>,
    mut vpc: Vpc,
    region: &str,
) -> ApiResult<Vpc> {
    let account_id = vpc.account_id.clone();
    let mut changed = false;
    if vpc.main_route_table_id.is_none() {
        // A gateway attached meanwhile (by a replica of an earlier
        // release) is the one; else a new one.
        super::internet_gateways::gateway_usage(tx, &account_id)?;
        let attached = super::internet_gateways::account_gateways_in(tx, &account_id)?
            .into_iter()
            .find(|g| g.vpc_id.as_deref() == Some(vpc.vpc_id.as_str()));
        let gateway = match attached {
            Some(gateway) => gateway,
            None => {
                let gateway = super::internet_gateways::InternetGateway {
                    id: super::ids::new_id("igw"),
                    account_id: account_id.clone(),
                    vpc_id: Some(vpc.vpc_id.clone()),
                    tags: Vec::new(),
                };
                super::internet_gateways::put_new_attached(tx, &gateway)?;
                gateway
            }
        };
        let mut table =
            super::route_tables::RouteTable::new(&account_id, &vpc.vpc_id, &vpc.cidr_block, true);
        table.routes.push(super::route_tables::Route {
            destination: "0.0.0.0/0".into(),
            target: super::route_tables::RouteTarget::Gateway(gateway.id.clone()),
        });
        super::route_tables::put_new(tx, &table)?;
        vpc.main_route_table_id = Some(table.id);
        changed = true;
    }
    if vpc.default_network_acl_id.is_none() {
        let acl = super::network_acls::NetworkAcl::new(&account_id, &vpc.vpc_id, true);
        super::network_acls::put_new(tx, &acl)?;
        vpc.default_network_acl_id = Some(acl.id);
        changed = true;
    }
    let options_key = format!("{account_id}/{}", vpc.dhcp_options_id).into_bytes();
    // A set a VPC uses is never deleted: missing, it was never made.
    if vpc.dhcp_options_id != super::dhcp_options::NO_OPTIONS
        && tx
            .get_raw(super::dhcp_options::DHCP_OPTIONS, &options_key)?
            .is_none()
    {
        let options =
            super::dhcp_options::default_options(&account_id, &vpc.dhcp_options_id, region);
        super::dhcp_options::put_new(tx, &options)?;
    }
    if changed {
        tx.put(VPCS, account_id.as_bytes(), &vpc);
    }
    Ok(vpc)
}

impl Compute {
    /// The account's default VPC, if it was created.
    pub async fn default_vpc(&self, account_id: &str) -> StoreResult<Option<Vpc>> {
        self.store
            .get_record::<Vpc>(VPCS, account_id.as_bytes())
            .await
    }

    /// The account's default subnets created so far, by zone.
    pub async fn default_subnets(&self, account_id: &str) -> StoreResult<Vec<Subnet>> {
        self.store
            .records::<Subnet>(SUBNETS, format!("{account_id}/").as_bytes())
            .await
    }
}

impl Compute {
    /// Creates what every account has from its first moment, as EC2 accounts
    /// do: the default VPC, a default subnet in every zone and the `default`
    /// security group. Run when an account is created, at start, and when a
    /// host brings a new zone, so that requests (a DryRun above all) find
    /// them in place and never write them as a side effect; only accounts
    /// that exist get them.
    pub async fn provision_defaults(&self, account_id: &str) -> ApiResult<()> {
        if self.accounts.account(account_id).await.is_none() {
            return Ok(());
        }
        self.default_network(account_id).await?;
        self.complete_created_vpcs(account_id).await?;
        self.security_groups(account_id).await?;
        // Instance listings skip the scans of addresses and network
        // interfaces when these records say the account has none
        // (`usage::known_empty`).
        super::operation::run(&self.store, false, |tx| {
            super::addresses::ensure_usage(tx, account_id)?;
            super::volumes::ensure_usage(tx, account_id)?;
            super::network_interfaces::ensure_usage(tx, account_id)?;
            Ok(())
        })
        .await
    }

    /// Removes default VPCs, subnets and security groups stored for account
    /// ids that are not accounts: 0.1.0 created them for any id a rule
    /// reference named (even with DryRun). Run at start, before anything
    /// else reads them; returns how many records went.
    pub async fn forget_phantom_accounts(&self) -> ApiResult<usize> {
        let accounts: std::collections::HashSet<String> =
            self.accounts.account_ids().await?.into_iter().collect();
        let is_account = |id: &str| accounts.contains(id);
        let mut batch = WriteBatch::new();
        for vpc in self.store.records::<Vpc>(VPCS, b"").await? {
            if !is_account(&vpc.account_id) {
                batch.delete(VPCS, vpc.account_id.as_bytes().to_vec());
            }
        }
        for subnet in self.store.records::<Subnet>(SUBNETS, b"").await? {
            if !is_account(&subnet.account_id) {
                batch.delete(
                    SUBNETS,
                    format!("{}/{}", subnet.account_id, subnet.availability_zone).into_bytes(),
                );
            }
        }
        let groups: Vec<super::security_groups::SecurityGroup> = self
            .store
            .records(super::security_groups::SECURITY_GROUPS, b"")
            .await?;
        for group in groups.iter().filter(|g| !is_account(&g.account_id)) {
            batch.delete(
                super::security_groups::SECURITY_GROUPS,
                format!("{}/{}", group.account_id, group.id).into_bytes(),
            );
        }
        let removed = batch.ops.len();
        if removed > 0 {
            tracing::warn!(
                records = removed,
                "removed resources of ids that are not accounts"
            );
            self.store.commit(&batch).await?;
        }
        Ok(removed)
    }

    /// [`Compute::provision_defaults`] for every account.
    pub async fn provision_all_defaults(&self) -> ApiResult<()> {
        for account_id in self.accounts.account_ids().await? {
            self.provision_defaults(&account_id).await?;
        }
        Ok(())
    }

    /// The account's default VPC and a default subnet in every current zone,
    /// created (and made durable) when missing: one VPC per account (its
    /// key is the account) and one subnet per zone (its key is the zone),
    /// each expected absent when created.
    pub async fn default_network(&self, account_id: &str) -> ApiResult<(Vpc, Vec<Subnet>)> {
        let zones: Vec<(String, String)> = self
            .services
            .zone_states(self.clock.now())
            .await?
            .iter()
            .map(|z| (z.name.clone(), z.zone_id.clone()))
            .collect();
        let now = self.clock.now();
        // Drawn once: a rerun (on a store that makes reads wait) must read
        // the same DHCP options key.
        let (vpc_id, association_id, options_id) = (
            super::ids::new_id("vpc"),
            super::ids::new_id("vpc-cidr-assoc"),
            super::ids::new_id("dopt"),
        );
        super::operation::run(&self.store, false, |tx| {
            let vpc = match tx.get::<Vpc>(VPCS, account_id.as_bytes())? {
                Some(vpc) => vpc,
                None => {
                    let vpc = Vpc {
                        vpc_id: vpc_id.clone(),
                        account_id: account_id.to_string(),
                        cidr_block: DEFAULT_VPC_CIDR.to_string(),
                        cidr_association_id: association_id.clone(),
                        dhcp_options_id: options_id.clone(),
                        created_at: now,
                        tags: Vec::new(),
                        enable_dns_support: None,
                        enable_dns_hostnames: None,
                        default_group_id: None,
                        main_route_table_id: None,
                        default_network_acl_id: None,
                        secondary_blocks: Vec::new(),
                    };
                    tx.put(VPCS, account_id.as_bytes(), &vpc);
                    vpc
                }
            };
            let vpc = complete_default_vpc(tx, vpc, &self.region.name)?;
            let mut subnets = Vec::new();
            for (zone, zone_id) in &zones {
                let key = format!("{account_id}/{zone}").into_bytes();
                let subnet = match tx.get::<Subnet>(SUBNETS, &key)? {
                    Some(subnet) => subnet,
                    None => {
                        let subnet = Subnet {
                            subnet_id: super::ids::new_id("subnet"),
                            account_id: account_id.to_string(),
                            vpc_id: vpc.vpc_id.clone(),
                            availability_zone: zone.clone(),
                            cidr_block: zone_cidr(zone_id),
                            availability_zone_id: zone_id.clone(),
                            tags: Vec::new(),
                            map_public_ip_on_launch: None,
                            network_acl: None,
                        };
                        tx.put(SUBNETS, key, &subnet);
                        subnet
                    }
                };
                subnets.push(subnet);
            }
            Ok((vpc, subnets))
        })
        .await
    }
}
