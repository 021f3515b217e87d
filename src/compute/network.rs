//! The default VPC and its default subnets, one per zone, per account.
//!
//! Tools read DescribeAccountAttributes, DescribeVpcs and DescribeSubnets
//! before they launch anything, so every account has a default VPC
//! (`172.31.0.0/16`) created on first use, and a default subnet in every
//! zone, whose `/20` is the range instances in that zone get their private
//! addresses from (`172.31.0.0/20` for `...-az1`, `172.31.16.0/20` for
//! `...-az2`, ...). Like EC2's, the default VPC has an internet gateway
//! attached and a main route table whose default route leads to it. Ids
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

/// Gives a default VPC what EC2's has: an internet gateway attached to it
/// and a main route table with the local route and a default route to
/// that gateway; returns the VPC as rewritten in `tx`.
fn default_routing(tx: &mut super::operation::Tx<'_>, mut vpc: Vpc) -> ApiResult<Vpc> {
    let account_id = vpc.account_id.clone();
    let gateway = super::internet_gateways::InternetGateway {
        id: super::ids::new_id("igw"),
        account_id: account_id.clone(),
        vpc_id: Some(vpc.vpc_id.clone()),
        tags: Vec::new(),
    };
    super::internet_gateways::put_new_attached(tx, &gateway)?;
    let mut table =
        super::route_tables::RouteTable::new(&account_id, &vpc.vpc_id, &vpc.cidr_block, true);
    table.routes.push(super::route_tables::Route {
        destination: "0.0.0.0/0".into(),
        target: super::route_tables::RouteTarget::Gateway(gateway.id.clone()),
    });
    super::route_tables::put_new(tx, &table)?;
    vpc.main_route_table_id = Some(table.id);
    tx.put(VPCS, account_id.as_bytes(), &vpc);
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
        self.security_groups(account_id).await?;
        // Instance listings skip the scans of addresses and volumes when
        // these records say the account has none (`usage::known_empty`).
        super::operation::run(&self.store, false, |tx| {
            super::addresses::ensure_usage(tx, account_id)?;
            super::volumes::ensure_usage(tx, account_id)?;
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
            .zones(self.clock.now())
            .await?
            .into_iter()
            .map(|z| (z.name, z.zone_id))
            .collect();
        let now = self.clock.now();
        super::operation::run(&self.store, false, |tx| {
            let vpc = match tx.get::<Vpc>(VPCS, account_id.as_bytes())? {
                Some(vpc) => vpc,
                None => {
                    let vpc = Vpc {
                        vpc_id: super::ids::new_id("vpc"),
                        account_id: account_id.to_string(),
                        cidr_block: DEFAULT_VPC_CIDR.to_string(),
                        cidr_association_id: super::ids::new_id("vpc-cidr-assoc"),
                        dhcp_options_id: super::ids::new_id("dopt"),
                        created_at: now,
                        tags: Vec::new(),
                        enable_dns_support: None,
                        enable_dns_hostnames: None,
                        default_group_id: None,
                        main_route_table_id: None,
                    };
                    tx.put(VPCS, account_id.as_bytes(), &vpc);
                    vpc
                }
            };
            let vpc = match vpc.main_route_table_id {
                Some(_) => vpc,
                None => default_routing(tx, vpc)?,
            };
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
