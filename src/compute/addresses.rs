//! Elastic IP addresses.
//!
//! Addresses come from one configured public pool shared by all accounts
//! (documentation range `198.51.100.0/24` by default); each account may hold
//! `quotas.max_elastic_ips` of them (`AddressLimitExceeded`). An address is
//! associated with one instance at a time: associating an address already in
//! use needs `AllowReassociation`, and an instance that already had an
//! address gets the new one instead. A terminated instance's association
//! ends with it. While associated, the instance shows the address as its
//! `ipAddress` and the matching public `dnsName`. Associated addresses
//! cannot be released (`InvalidIPAddress.InUse`). A pool address is held
//! by its `public_ips/<ip>` key, written on the condition that it is
//! absent, so two gateways never hand out one address twice.
//!
//! An association is with one private address of one network interface:
//! an instance's primary interface (AssociateAddress with `InstanceId`) or
//! a created interface (`NetworkInterfaceId`), attached or not. Each
//! private address has at most one Elastic IP; an instance's `ipAddress`
//! is the one on its primary address. An association ends with its
//! interface or when its private address is unassigned.

use super::instances::{InstanceState, Tag};
use super::network_interfaces::{primary_interface_id, NetworkInterface};
use super::operation::{self, Tx};
use super::usage::{Kind, Usage};
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::store::StoreResult;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::Ipv4Addr;

pub(crate) const ADDRESSES: &str = "addresses";

/// An association of an address with a private address of a network
/// interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Association {
    pub association_id: String,
    /// The instance the interface is attached to (empty when detached;
    /// kept current when read).
    pub instance_id: String,
    pub private_ip: String,
    /// The interface (`None` in records written before interfaces: the
    /// instance's primary one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface_id: Option<String>,
}

impl Association {
    /// The interface it is on.
    pub fn interface_id(&self) -> String {
        self.network_interface_id
            .clone()
            .unwrap_or_else(|| primary_interface_id(&self.instance_id))
    }
}

/// What AssociateAddress associates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssociationTarget {
    /// Its primary interface.
    Instance(String),
    NetworkInterface(String),
}

/// An Elastic IP address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub allocation_id: String,
    pub public_ip: String,
    pub account_id: String,
    pub association: Option<Association>,
    pub tags: Vec<Tag>,
    pub allocated_at: DateTime<Utc>,
    /// The NAT gateway that holds it (neither associated nor released
    /// meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_gateway_id: Option<String>,
}

impl crate::store::Record for Address {
    /// 2: associations name their network interface, which a release
    /// before interfaces would drop when rewriting a record.
    const VERSION: u32 = 2;

    fn upgrade(version: u32, data: serde_json::Value) -> crate::store::StoreResult<Self> {
        match version {
            1 => serde_json::from_value(data)
                .map_err(|e| crate::store::StoreError(format!("address record v1: {e}"))),
            _ => Err(crate::store::StoreError(format!(
                "no upgrade from version {version} of an address record"
            ))),
        }
    }
}

/// How a request names an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressSelector {
    AllocationId(String),
    PublicIp(String),
}

/// The public pool: every host address of a CIDR.
#[derive(Debug, Clone)]
pub struct AddressPool {
    first: u32,
    count: u32,
}

impl AddressPool {
    /// Parses `a.b.c.d/n` (n from 16 to 30).
    pub fn parse(cidr: &str) -> Option<Self> {
        Self::parse_within(cidr, 16)
    }

    /// Parses `a.b.c.d/n` (n from 8 to 30): a pool too large to list.
    pub fn parse_wide(cidr: &str) -> Option<Self> {
        Self::parse_within(cidr, 8)
    }

    fn parse_within(cidr: &str, shortest: u32) -> Option<Self> {
        let (address, length) = cidr.split_once('/')?;
        let address: Ipv4Addr = address.parse().ok()?;
        let length: u32 = length
            .parse()
            .ok()
            .filter(|l| (shortest..=30).contains(l))?;
        let size = 1u32 << (32 - length);
        let network = u32::from(address) & !(size - 1);
        // Leave out the network and broadcast addresses.
        Some(Self {
            first: network + 1,
            count: size - 2,
        })
    }

    fn addresses(&self) -> impl Iterator<Item = String> + '_ {
        (0..self.count).map(|i| Ipv4Addr::from(self.first + i).to_string())
    }

    /// How many addresses it has.
    pub fn size(&self) -> u32 {
        self.count
    }

    /// Its `i`th address (modulo its size).
    pub fn nth(&self, i: u64) -> String {
        let offset = (i % u64::from(self.count.max(1))) as u32;
        Ipv4Addr::from(self.first + offset).to_string()
    }

    /// True when it shares an address with `other`.
    pub fn overlaps(&self, other: &AddressPool) -> bool {
        let end = u64::from(self.first) + u64::from(self.count);
        let other_end = u64::from(other.first) + u64::from(other.count);
        u64::from(self.first) < other_end && u64::from(other.first) < end
    }
}

/// `public_ips/<ip>`: who holds a pool address, across all accounts (the
/// key is expected absent when an address is allocated).
pub(super) const PUBLIC_IPS: &str = "public_ips";

/// The account's address usage in `tx`.
fn address_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<Usage> {
    super::usage::read(tx, account_id, Kind::Addresses, |tx| {
        count_addresses(tx, account_id)
    })
}

fn count_addresses(tx: &Tx<'_>, account_id: &str) -> StoreResult<Usage> {
    super::usage::count_of(tx, ADDRESSES, format!("{account_id}/").as_bytes())
}

/// Gives the account an address usage record if it has none.
pub(super) fn ensure_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<()> {
    super::usage::ensure(tx, account_id, Kind::Addresses, |tx| {
        count_addresses(tx, account_id)
    })
}

fn address_key(account_id: &str, allocation_id: &str) -> Vec<u8> {
    format!("{account_id}/{allocation_id}").into_bytes()
}

/// The public DNS name of an address, as EC2 names them.
pub fn public_dns_name(public_ip: &str, region: &str) -> String {
    let dashed = public_ip.replace('.', "-");
    if region == "us-east-1" {
        format!("ec2-{dashed}.compute-1.amazonaws.com")
    } else {
        format!("ec2-{dashed}.{region}.compute.amazonaws.com")
    }
}

impl Compute {
    /// The account's addresses, with associations to terminated or purged
    /// instances cleared (they ended with the instance).
    pub async fn addresses(&self, account_id: &str) -> ApiResult<Vec<Address>> {
        operation::read(&self.store, |tx| self.addresses_in(tx, account_id)).await
    }

    pub(super) fn addresses_in(&self, tx: &Tx<'_>, account_id: &str) -> ApiResult<Vec<Address>> {
        if super::usage::known_empty(tx, account_id, Kind::Addresses)? {
            return Ok(Vec::new());
        }
        let mut addresses: Vec<Address> =
            tx.scan(ADDRESSES, format!("{account_id}/").as_bytes())?;
        let associated: Vec<String> = addresses
            .iter()
            .filter_map(|a| Some(a.association.as_ref()?.instance_id.clone()))
            .filter(|id| !id.is_empty())
            .collect();
        tx.prefetch(&super::instance_reads::instance_keys(
            account_id,
            &associated,
        ))?;
        let stored = if addresses.iter().any(|a| {
            a.association
                .as_ref()
                .is_some_and(|x| x.network_interface_id.is_some())
        }) {
            super::network_interfaces::stored_interfaces_in(tx, account_id)?
        } else {
            Vec::new()
        };
        for address in &mut addresses {
            if let Some(association) = address.association.take() {
                address.association =
                    self.current_association(tx, account_id, association, &stored);
            }
            // A NAT gateway's address shows on the gateway's interface.
            if let Some(nat_id) = &address.nat_gateway_id {
                let interface_id = super::nat_gateways::nat_interface_id(nat_id);
                if let Some(interface) =
                    super::nat_gateways::managed_interface(tx, account_id, &interface_id)?
                {
                    address.association = Some(Association {
                        association_id: super::nat_gateways::nat_association_id(nat_id),
                        instance_id: String::new(),
                        private_ip: interface.private_ip,
                        network_interface_id: Some(interface_id),
                    });
                }
            }
        }
        addresses.sort_by(|a, b| a.public_ip.cmp(&b.public_ip));
        Ok(addresses)
    }

    /// An association as it stands now: ended when its interface or its
    /// private address went, its instance the interface's current one.
    fn current_association(
        &self,
        tx: &Tx<'_>,
        account_id: &str,
        mut association: Association,
        stored: &[NetworkInterface],
    ) -> Option<Association> {
        let interface_id = association.interface_id();
        if let Some(interface) = stored.iter().find(|i| i.id == interface_id) {
            if !interface
                .private_addresses()
                .any(|a| a == &association.private_ip)
            {
                return None;
            }
            association.instance_id = interface
                .attachment
                .as_ref()
                .map(|a| a.instance_id.clone())
                .unwrap_or_default();
            return Some(association);
        }
        if interface_id != primary_interface_id(&association.instance_id) {
            return None;
        }
        let instance = self
            .instances_in(tx, account_id, &[association.instance_id.clone()], None)
            .ok()?
            .into_iter()
            .next()?;
        let holds = instance.state != InstanceState::Terminated
            && instance
                .private_addresses()
                .any(|a| a == &association.private_ip);
        holds.then_some(association)
    }
}

impl Compute {
    /// One of the account's addresses, read in `tx`, its association
    /// cleared when its instance is gone.
    fn address_in(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        selector: &AddressSelector,
    ) -> ApiResult<Address> {
        let listed = pick_address(self.addresses_in(tx, account_id)?, selector)?;
        let mut address = tx
            .get::<Address>(ADDRESSES, &address_key(account_id, &listed.allocation_id))?
            .ok_or_else(|| match selector {
                AddressSelector::AllocationId(id) => ApiError::NotFound {
                    code: super::kinds::ResourceKind::ElasticIp.not_found_code(),
                    message: format!("The allocation ID '{id}' does not exist"),
                },
                AddressSelector::PublicIp(ip) => ApiError::NotFound {
                    code: crate::error::codes::INVALID_ADDRESS_NOT_FOUND,
                    message: format!("The address '{ip}' does not belong to you."),
                },
            })?;
        // As listed: the association as it stands now.
        address.association = listed.association;
        Ok(address)
    }

    /// AllocateAddress: the quota from the account's address usage, the
    /// address claimed by its `public_ips` key.
    pub async fn allocate_address(
        &self,
        account_id: &str,
        tags: Vec<Tag>,
        dry_run: bool,
    ) -> ApiResult<Address> {
        let now = self.clock.now();
        super::operation::run(&self.store, dry_run, |tx| {
            let mut usage = address_usage(tx, account_id)?;
            if usage.count >= u64::from(self.quotas.max_elastic_ips) {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::ADDRESS_LIMIT_EXCEEDED,
                    message: "The maximum number of addresses has been reached.".into(),
                });
            }
            let taken: HashSet<String> = tx
                .scan::<Address>(ADDRESSES, b"")?
                .into_iter()
                .map(|a| a.public_ip)
                .collect();
            let mut chosen = None;
            for ip in self
                .address_pool
                .addresses()
                .filter(|ip| !taken.contains(ip))
            {
                if tx.get::<String>(PUBLIC_IPS, ip.as_bytes())?.is_none() {
                    chosen = Some(ip);
                    break;
                }
            }
            let public_ip = chosen.ok_or_else(|| ApiError::InsufficientCapacity {
                code: crate::error::codes::INSUFFICIENT_ADDRESS_CAPACITY,
                message: "There are no more Elastic IP addresses in the pool".into(),
            })?;
            let address = Address {
                allocation_id: super::ids::new_id("eipalloc"),
                public_ip: public_ip.clone(),
                account_id: account_id.to_string(),
                association: None,
                tags: tags.clone(),
                allocated_at: now,
                nat_gateway_id: None,
            };
            tx.put(
                ADDRESSES,
                address_key(account_id, &address.allocation_id),
                &address,
            );
            tx.put(
                PUBLIC_IPS,
                public_ip.as_bytes(),
                &String::from_utf8_lossy(&address_key(account_id, &address.allocation_id))
                    .into_owned(),
            );
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::Addresses, &usage);
            Ok(address)
        })
        .await
    }

    /// AssociateAddress; returns the association id. The interface's
    /// holder (its record, or the instance's spec for a primary interface)
    /// is rewritten unchanged so that two associations racing for one
    /// private address serialise (it has one public address).
    pub async fn associate_address(
        &self,
        account_id: &str,
        selector: &AddressSelector,
        target: &AssociationTarget,
        private_ip: Option<&str>,
        allow_reassociation: bool,
        dry_run: bool,
    ) -> ApiResult<String> {
        let association_id = super::ids::new_id("eipassoc");
        super::operation::run(&self.store, dry_run, |tx| {
            let interface = self.association_interface(tx, account_id, target)?;
            let private_ip = match private_ip {
                Some(ip) if !interface.private_addresses().any(|a| a == ip) => {
                    return Err(ApiError::invalid_value(format!(
                        "The private IP address {ip} is not assigned to the network interface {}",
                        interface.id
                    )));
                }
                Some(ip) => ip.to_string(),
                None => interface.private_ip.clone(),
            };
            let address = self.address_in(tx, account_id, selector)?;
            if let Some(nat) = &address.nat_gateway_id {
                return Err(held_by_nat(&address, nat));
            }
            if let Some(current) = &address.association {
                if current.interface_id() == interface.id && current.private_ip == private_ip {
                    return Ok(current.association_id.clone());
                }
                if !allow_reassociation {
                    return Err(ApiError::NotFound {
                        code: crate::error::codes::RESOURCE_ALREADY_ASSOCIATED,
                        message: format!(
                            "resource {} is already associated with associate-id {}",
                            address.allocation_id, current.association_id
                        ),
                    });
                }
            }
            // The private address's previous public address, if any, lets go.
            self.end_address_associations(
                tx,
                account_id,
                &interface.id,
                std::slice::from_ref(&private_ip),
            )?;
            let association = Association {
                association_id: association_id.clone(),
                instance_id: interface
                    .attachment
                    .as_ref()
                    .map(|a| a.instance_id.clone())
                    .unwrap_or_default(),
                private_ip,
                network_interface_id: Some(interface.id.clone()),
            };
            let updated = Address {
                association: Some(association),
                ..address
            };
            tx.put(
                ADDRESSES,
                address_key(account_id, &updated.allocation_id),
                &updated,
            );
            Ok(association_id.clone())
        })
        .await
    }

    /// The interface an association is for, its holder touched in `tx`.
    fn association_interface(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        target: &AssociationTarget,
    ) -> ApiResult<NetworkInterface> {
        let instance_id = match target {
            AssociationTarget::Instance(id) => {
                super::kinds::ResourceKind::Instance.check(id)?;
                Some(id.clone())
            }
            AssociationTarget::NetworkInterface(id) => {
                super::kinds::ResourceKind::NetworkInterface.check(id)?;
                if let Some(interface) =
                    super::network_interfaces::stored_interface_in(tx, account_id, id)?
                {
                    tx.touch(
                        super::network_interfaces::NETWORK_INTERFACES,
                        format!("{account_id}/{id}").as_bytes(),
                    )?;
                    return Ok(interface);
                }
                None
            }
        };
        let instance_id = instance_id.unwrap_or_else(|| match target {
            AssociationTarget::NetworkInterface(id) => {
                format!("i-{}", id.trim_start_matches("eni-"))
            }
            AssociationTarget::Instance(id) => id.clone(),
        });
        let instance = super::instances::load(&self.instances, tx, account_id, &instance_id)?
            .filter(|i| i.state != InstanceState::Terminated)
            .ok_or_else(|| match target {
                AssociationTarget::Instance(id) => {
                    super::instances::instances_not_found(std::slice::from_ref(id))
                }
                AssociationTarget::NetworkInterface(id) => {
                    super::kinds::ResourceKind::NetworkInterface.not_found(id)
                }
            })?;
        if instance.state == InstanceState::ShuttingDown {
            return Err(ApiError::IncorrectInstanceState(format!(
                "The instance '{instance_id}' is not in a valid state for this operation."
            )));
        }
        tx.touch(
            super::instances::INSTANCES,
            &super::instances::instance_key(account_id, &instance_id),
        )?;
        Ok(super::network_interfaces::primary_of(&instance))
    }

    /// Moves, in `tx`, the association with `private_ip` of interface
    /// `from` to interface `to` (the address was reassigned to it).
    pub(super) fn move_address_associations(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        from: &str,
        to: &NetworkInterface,
        private_ip: &str,
    ) -> ApiResult<()> {
        let stored: Vec<Address> = tx.scan(ADDRESSES, format!("{account_id}/").as_bytes())?;
        for listed in stored {
            let moves = listed
                .association
                .as_ref()
                .is_some_and(|a| a.interface_id() == from && a.private_ip == private_ip);
            if !moves {
                continue;
            }
            let key = address_key(account_id, &listed.allocation_id);
            if let Some(mut address) = tx.get::<Address>(ADDRESSES, &key)? {
                if let Some(association) = address.association.as_mut() {
                    association.network_interface_id = Some(to.id.clone());
                    association.instance_id = to
                        .attachment
                        .as_ref()
                        .map(|a| a.instance_id.clone())
                        .unwrap_or_default();
                }
                tx.put(ADDRESSES, key, &address);
            }
        }
        Ok(())
    }

    /// Ends, in `tx`, the associations of the account's addresses with any
    /// of `private_ips` on interface `interface_id`.
    pub(super) fn end_address_associations(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        interface_id: &str,
        private_ips: &[String],
    ) -> ApiResult<()> {
        for listed in self.addresses_in(tx, account_id)? {
            let Some(association) = &listed.association else {
                continue;
            };
            if association.interface_id() != interface_id
                || !private_ips.contains(&association.private_ip)
            {
                continue;
            }
            let key = address_key(account_id, &listed.allocation_id);
            if let Some(stored) = tx.get::<Address>(ADDRESSES, &key)? {
                tx.put(
                    ADDRESSES,
                    key,
                    &Address {
                        association: None,
                        ..stored
                    },
                );
            }
        }
        Ok(())
    }

    /// DisassociateAddress by association id or public IP.
    pub async fn disassociate_address(
        &self,
        account_id: &str,
        association_id: Option<&str>,
        public_ip: Option<&str>,
        dry_run: bool,
    ) -> ApiResult<()> {
        let selector = match (association_id, public_ip) {
            (Some(id), _) => {
                let address = self
                    .addresses(account_id)
                    .await?
                    .into_iter()
                    .find(|a| {
                        a.association
                            .as_ref()
                            .is_some_and(|x| x.association_id == id)
                    })
                    .ok_or_else(|| ApiError::NotFound {
                        code: crate::error::codes::INVALID_ASSOCIATION_ID_NOT_FOUND,
                        message: format!("The association ID '{id}' does not exist"),
                    })?;
                AddressSelector::AllocationId(address.allocation_id)
            }
            (None, Some(ip)) => AddressSelector::PublicIp(ip.to_string()),
            (None, None) => return Err(ApiError::MissingParameter("AssociationId".into())),
        };
        super::operation::run(&self.store, dry_run, |tx| {
            let address = self.address_in(tx, account_id, &selector)?;
            if let Some(nat) = &address.nat_gateway_id {
                return Err(held_by_nat(&address, nat));
            }
            let still = match (&address.association, association_id) {
                (Some(current), Some(id)) => current.association_id == id,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !still {
                return Err(match association_id {
                    Some(id) => ApiError::NotFound {
                        code: crate::error::codes::INVALID_ASSOCIATION_ID_NOT_FOUND,
                        message: format!("The association ID '{id}' does not exist"),
                    },
                    None => ApiError::NotFound {
                        code: crate::error::codes::INVALID_ASSOCIATION_ID_NOT_FOUND,
                        message: format!("The address {} is not associated", address.public_ip),
                    },
                });
            }
            let updated = Address {
                association: None,
                ..address
            };
            tx.put(
                ADDRESSES,
                address_key(account_id, &updated.allocation_id),
                &updated,
            );
            Ok(())
        })
        .await
    }

    /// ReleaseAddress.
    pub async fn release_address(
        &self,
        account_id: &str,
        selector: &AddressSelector,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::operation::run(&self.store, dry_run, |tx| {
            let address = self.address_in(tx, account_id, selector)?;
            if address.association.is_some() || address.nat_gateway_id.is_some() {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::INVALID_IP_ADDRESS_IN_USE,
                    message: format!("The address {} is in use.", address.public_ip),
                });
            }
            let mut usage = address_usage(tx, account_id)?;
            tx.delete(ADDRESSES, address_key(account_id, &address.allocation_id));
            tx.delete(PUBLIC_IPS, address.public_ip.as_bytes());
            usage.count = usage.count.saturating_sub(1);
            super::usage::write(tx, account_id, Kind::Addresses, &usage);
            Ok(())
        })
        .await
    }
}

impl Compute {
    /// Marks an address as held by a NAT gateway in `tx`; returns its
    /// public IP. It must be free: neither associated nor held.
    pub(super) fn hold_address_for_nat(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        allocation_id: &str,
        nat_gateway_id: &str,
    ) -> ApiResult<String> {
        super::kinds::ResourceKind::ElasticIp.check(allocation_id)?;
        let selector = AddressSelector::AllocationId(allocation_id.to_string());
        let mut address = self.address_in(tx, account_id, &selector)?;
        if let Some(nat) = &address.nat_gateway_id {
            return Err(held_by_nat(&address, nat));
        }
        if let Some(current) = &address.association {
            return Err(ApiError::NotFound {
                code: crate::error::codes::RESOURCE_ALREADY_ASSOCIATED,
                message: format!(
                    "resource {allocation_id} is already associated with associate-id {}",
                    current.association_id
                ),
            });
        }
        address.nat_gateway_id = Some(nat_gateway_id.to_string());
        tx.put(ADDRESSES, address_key(account_id, allocation_id), &address);
        Ok(address.public_ip)
    }

    /// Lets a deleted NAT gateway's address go in `tx`.
    pub(super) fn release_address_from_nat(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        allocation_id: &str,
        nat_gateway_id: &str,
    ) -> ApiResult<()> {
        let key = address_key(account_id, allocation_id);
        if let Some(mut address) = tx.get::<Address>(ADDRESSES, &key)? {
            if address.nat_gateway_id.as_deref() == Some(nat_gateway_id) {
                address.nat_gateway_id = None;
                tx.put(ADDRESSES, key, &address);
            }
        }
        Ok(())
    }
}

fn held_by_nat(address: &Address, nat_gateway_id: &str) -> ApiError {
    ApiError::NotFound {
        code: crate::error::codes::RESOURCE_ALREADY_ASSOCIATED,
        message: format!(
            "resource {} is in use by NAT gateway {nat_gateway_id}",
            address.allocation_id
        ),
    }
}

/// The address `selector` names among `addresses`.
fn pick_address(addresses: Vec<Address>, selector: &AddressSelector) -> ApiResult<Address> {
    match selector {
        AddressSelector::AllocationId(id) => addresses
            .into_iter()
            .find(|a| &a.allocation_id == id)
            .ok_or_else(|| ApiError::NotFound {
                code: super::kinds::ResourceKind::ElasticIp.not_found_code(),
                message: format!("The allocation ID '{id}' does not exist"),
            }),
        AddressSelector::PublicIp(ip) => addresses
            .into_iter()
            .find(|a| &a.public_ip == ip)
            .ok_or_else(|| ApiError::NotFound {
                code: crate::error::codes::INVALID_ADDRESS_NOT_FOUND,
                message: format!("The address '{ip}' does not belong to you."),
            }),
    }
}
