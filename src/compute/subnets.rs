//! Subnets an account creates in its VPCs: CreateSubnet, DeleteSubnet,
//! ModifySubnetAttribute, and the account's subnets as DescribeSubnets
//! lists them (its default subnets first).
//!
//! A subnet is a block of one of its VPC's CIDR blocks (primary or
//! secondary), a /16 to a /28
//! (`InvalidSubnet.Range` otherwise), overlapping no other subnet of the
//! VPC (`InvalidSubnet.Conflict`), in one zone named by name or by zone id.
//! EC2 reserves five addresses of every subnet (the first four and the
//! last), so a /28 offers eleven; instances launched in it take addresses
//! from the rest (`launch`), and a full subnet answers
//! `InsufficientFreeAddressesInSubnet`. Created subnets live under
//! `subnets/<account>/<id>`; the account's subnet usage record is rewritten
//! by every create and delete, so two racing creates cannot overlap and a
//! VPC being deleted cannot gain a subnet. A subnet with live instances is
//! not deleted (`DependencyViolation`): each holds an address key under
//! the subnet, read together with the account's instance usage, which every
//! launch rewrites.

use super::cidr::Ipv4Cidr;
use super::instances::Tag;
use super::network::{Subnet, Vpc, SUBNETS as DEFAULT_SUBNETS};
use super::operation::{self, Tx};
use super::usage::{Kind, Usage};
use super::Compute;
use crate::error::{codes, ApiError, ApiResult};
use crate::store::StoreResult;

/// Created subnets, `<account>/<subnet-id>`.
pub(crate) const SUBNETS: &str = "subnets";

/// The smallest and largest subnet blocks EC2 accepts.
const SHORTEST_PREFIX: u8 = 16;
const LONGEST_PREFIX: u8 = 28;

/// Addresses EC2 keeps in every subnet: the network address, the router,
/// DNS, one for future use, and the broadcast address.
pub const RESERVED_ADDRESSES: u64 = 5;

/// Most subnets in one VPC (EC2's default quota).
pub const MAX_SUBNETS_PER_VPC: usize = 200;

/// Where CreateSubnet puts the subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneChoice {
    Name(String),
    Id(String),
    /// Neither given: the first zone, as EC2 picks one for the caller.
    Any,
}

/// One of the account's subnets, and whether it is a zone's default one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSubnet {
    pub subnet: Subnet,
    pub is_default: bool,
}

impl AccountSubnet {
    /// MapPublicIpOnLaunch (EC2's default when never set).
    pub fn map_public_ip_on_launch(&self) -> bool {
        self.subnet
            .map_public_ip_on_launch
            .unwrap_or(self.is_default)
    }

    /// The block, as stored.
    pub fn block(&self) -> Option<Ipv4Cidr> {
        Ipv4Cidr::parse(&self.subnet.cidr_block)
    }

    /// How many addresses instances may take in it.
    pub fn usable_addresses(&self) -> u64 {
        self.block()
            .map_or(0, |b| b.size().saturating_sub(RESERVED_ADDRESSES))
    }
}

fn key(account_id: &str, subnet_id: &str) -> Vec<u8> {
    format!("{account_id}/{subnet_id}").into_bytes()
}

pub(super) fn subnet_not_found(subnet_id: &str) -> ApiError {
    super::kinds::ResourceKind::Subnet.not_found(subnet_id)
}

/// The account's usage of created subnets in `tx`.
pub(super) fn subnet_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<Usage> {
    super::usage::read(tx, account_id, Kind::Subnets, |tx| {
        super::usage::count_of(tx, SUBNETS, format!("{account_id}/").as_bytes())
    })
}

/// A created subnet of the account, read in `tx`.
pub(super) fn created_subnet(
    tx: &mut Tx<'_>,
    account_id: &str,
    subnet_id: &str,
) -> StoreResult<Option<Subnet>> {
    tx.get::<Subnet>(SUBNETS, &key(account_id, subnet_id))
}

/// Where a subnet of the account is stored: a default one by zone, a
/// created one by id.
pub(super) fn subnet_key(found: &AccountSubnet) -> (&'static str, Vec<u8>) {
    let subnet = &found.subnet;
    if found.is_default {
        (
            DEFAULT_SUBNETS,
            format!("{}/{}", subnet.account_id, subnet.availability_zone).into_bytes(),
        )
    } else {
        (SUBNETS, key(&subnet.account_id, &subnet.subnet_id))
    }
}

/// `block` as CreateSubnet takes it: canonical, a /16 to a /28.
pub fn subnet_block(block: &str) -> ApiResult<Ipv4Cidr> {
    let cidr = Ipv4Cidr::parse(block).ok_or_else(|| {
        ApiError::invalid_value(format!(
            "Value ({block}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
        ))
    })?;
    if !(SHORTEST_PREFIX..=LONGEST_PREFIX).contains(&cidr.prefix()) {
        return Err(subnet_range(block));
    }
    Ok(cidr)
}

fn subnet_range(block: &str) -> ApiError {
    ApiError::NotFound {
        code: codes::INVALID_SUBNET_RANGE,
        message: format!("The CIDR '{block}' is invalid."),
    }
}

/// The key prefix of the addresses taken in a pool (see
/// `launch::private_ip_key`: a created subnet's pool is its id, a default
/// subnet's its zone).
fn addresses_prefix(account_id: &str, pool: &str) -> Vec<u8> {
    format!("{account_id}/{pool}/").into_bytes()
}

impl Compute {
    /// CreateSubnet.
    pub async fn create_subnet(
        &self,
        account_id: &str,
        vpc_id: &str,
        block: Ipv4Cidr,
        zone: ZoneChoice,
        tags: Vec<Tag>,
        dry_run: bool,
    ) -> ApiResult<Subnet> {
        super::kinds::ResourceKind::Vpc.check(vpc_id)?;
        let zones = self.services.zone_states(self.clock.now()).await?;
        let chosen = match &zone {
            ZoneChoice::Name(name) => zones.iter().find(|z| &z.name == name),
            ZoneChoice::Id(id) => zones.iter().find(|z| &z.zone_id == id),
            ZoneChoice::Any => zones.first(),
        };
        let Some(chosen) = chosen else {
            let names: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();
            let given = match &zone {
                ZoneChoice::Name(name) | ZoneChoice::Id(name) => name.as_str(),
                ZoneChoice::Any => "",
            };
            return Err(ApiError::invalid_value(format!(
                "Value ({given}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}.",
                names.join(", ")
            )));
        };
        let vpc_found = self.account_vpc(account_id, vpc_id).await?;
        if vpc_found.is_default {
            return Err(ApiError::UnsupportedOperation(format!(
                "The default VPC {vpc_id} has one default subnet per zone; create subnets in a VPC of your own"
            )));
        }
        // Drawn once: every run of the operation writes the same subnet.
        let subnet = Subnet {
            subnet_id: super::ids::new_id("subnet"),
            account_id: account_id.to_string(),
            vpc_id: vpc_id.to_string(),
            availability_zone: chosen.name.clone(),
            availability_zone_id: chosen.zone_id.clone(),
            cidr_block: block.to_string(),
            tags,
            map_public_ip_on_launch: Some(false),
            network_acl: None,
        };
        operation::run(&self.store, dry_run, |tx| {
            let vpc: Vpc = tx
                .get(super::vpcs::VPCS, format!("{account_id}/{vpc_id}").as_bytes())?
                .ok_or_else(|| super::kinds::ResourceKind::Vpc.not_found(vpc_id))?;
            if !vpc.holds(&block) {
                return Err(subnet_range(&subnet.cidr_block));
            }
            let mut usage = subnet_usage(tx, account_id)?;
            let siblings: Vec<Subnet> = tx
                .scan::<Subnet>(SUBNETS, format!("{account_id}/").as_bytes())?
                .into_iter()
                .filter(|s| s.vpc_id == vpc_id)
                .collect();
            if siblings
                .iter()
                .filter_map(|s| Ipv4Cidr::parse(&s.cidr_block))
                .any(|other| other.overlaps(&block))
            {
                return Err(ApiError::NotFound {
                    code: codes::INVALID_SUBNET_CONFLICT,
                    message: format!("The CIDR '{}' conflicts with another subnet", block),
                });
            }
            if siblings.len() >= MAX_SUBNETS_PER_VPC {
                return Err(ApiError::LimitExceeded {
                    code: codes::SUBNET_LIMIT_EXCEEDED,
                    message: format!(
                        "The maximum number of subnets ({MAX_SUBNETS_PER_VPC}) in VPC {vpc_id} has been reached."
                    ),
                });
            }
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::Subnets, &usage);
            tx.put(SUBNETS, key(account_id, &subnet.subnet_id), &subnet);
            Ok(subnet.clone())
        })
        .await
    }

    /// Every subnet of the account: the default ones (by zone), then the
    /// created ones by id. Read only.
    pub async fn account_subnets(&self, account_id: &str) -> ApiResult<Vec<AccountSubnet>> {
        let mut subnets: Vec<AccountSubnet> = self
            .default_subnets(account_id)
            .await?
            .into_iter()
            .map(|subnet| AccountSubnet {
                subnet,
                is_default: true,
            })
            .collect();
        let created: Vec<Subnet> = self
            .store
            .records(SUBNETS, format!("{account_id}/").as_bytes())
            .await?;
        subnets.extend(created.into_iter().map(|subnet| AccountSubnet {
            subnet,
            is_default: false,
        }));
        Ok(subnets)
    }

    /// One subnet of the account.
    pub async fn account_subnet(
        &self,
        account_id: &str,
        subnet_id: &str,
    ) -> ApiResult<AccountSubnet> {
        super::kinds::ResourceKind::Subnet.check(subnet_id)?;
        if let Some(subnet) = self
            .store
            .get_record::<Subnet>(SUBNETS, &key(account_id, subnet_id))
            .await?
        {
            return Ok(AccountSubnet {
                subnet,
                is_default: false,
            });
        }
        self.default_subnets(account_id)
            .await?
            .into_iter()
            .find(|s| s.subnet_id == subnet_id)
            .map(|subnet| AccountSubnet {
                subnet,
                is_default: true,
            })
            .ok_or_else(|| subnet_not_found(subnet_id))
    }

    /// How many addresses of a subnet instances and NAT gateways hold.
    pub async fn subnet_addresses_in_use(&self, found: &AccountSubnet) -> ApiResult<u64> {
        let subnet = &found.subnet;
        let pool = if found.is_default {
            &subnet.availability_zone
        } else {
            &subnet.subnet_id
        };
        let prefix = addresses_prefix(&subnet.account_id, pool);
        let used = operation::read(&self.store, |tx| {
            Ok::<_, ApiError>(tx.scan_entries(super::launch::PRIVATE_IPS, &prefix)?.len() as u64)
        })
        .await?;
        Ok(used)
    }

    /// DeleteSubnet: only a created subnet without live instances.
    pub async fn delete_subnet(
        &self,
        account_id: &str,
        subnet_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        let found = self.account_subnet(account_id, subnet_id).await?;
        if found.is_default {
            return Err(ApiError::UnsupportedOperation(format!(
                "{subnet_id} is the default subnet of {}: default subnets are kept",
                found.subnet.availability_zone
            )));
        }
        operation::run(&self.store, dry_run, |tx| {
            if created_subnet(tx, account_id, subnet_id)?.is_none() {
                return Err(subnet_not_found(subnet_id));
            }
            // Every launch rewrites the instance usage record: reading it
            // makes a launch into this subnet meanwhile conflict.
            let mut instances = super::instances::usage(tx, account_id)?;
            if super::nat_gateways::in_subnet(tx, account_id, subnet_id, self.clock.now())? {
                return Err(ApiError::NotFound {
                    code: codes::DEPENDENCY_VIOLATION,
                    message: format!(
                        "The subnet '{subnet_id}' has dependencies and cannot be deleted."
                    ),
                });
            }
            let held = tx.scan_after(
                super::launch::PRIVATE_IPS,
                &addresses_prefix(account_id, subnet_id),
                None,
                1,
            )?;
            if !held.is_empty() {
                return Err(ApiError::NotFound {
                    code: codes::DEPENDENCY_VIOLATION,
                    message: format!(
                        "The subnet '{subnet_id}' has dependencies and cannot be deleted."
                    ),
                });
            }
            let mut usage = subnet_usage(tx, account_id)?;
            usage.count = usage.count.saturating_sub(1);
            super::usage::write(tx, account_id, Kind::Subnets, &usage);
            // Its address counter goes with it.
            if instances.next_address.remove(subnet_id).is_some() {
                super::usage::write(tx, account_id, Kind::Instances, &instances);
            }
            super::route_tables::forget_subnet(tx, account_id, subnet_id)?;
            tx.delete(SUBNETS, key(account_id, subnet_id));
            Ok(())
        })
        .await
    }

    /// ModifySubnetAttribute MapPublicIpOnLaunch, on a created or a default
    /// subnet.
    pub async fn modify_subnet_map_public_ip(
        &self,
        account_id: &str,
        subnet_id: &str,
        value: bool,
        dry_run: bool,
    ) -> ApiResult<()> {
        let found = self.account_subnet(account_id, subnet_id).await?;
        let (tree, key) = subnet_key(&found);
        operation::run(&self.store, dry_run, |tx| {
            let mut subnet = tx
                .get::<Subnet>(tree, &key)?
                .filter(|s| s.subnet_id == subnet_id)
                .ok_or_else(|| subnet_not_found(subnet_id))?;
            subnet.map_public_ip_on_launch = Some(value);
            tx.put(tree, key.clone(), &subnet);
            Ok(())
        })
        .await
    }
}
