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
//! cannot be released (`InvalidIPAddress.InUse`).

use super::instances::{InstanceState, Tag};
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::store::{StoreHandle, StoreResult, WriteBatch};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

pub(crate) const ADDRESSES: &str = "addresses";

/// An association of an address with an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Association {
    pub association_id: String,
    pub instance_id: String,
    pub private_ip: String,
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
        let (address, length) = cidr.split_once('/')?;
        let address: Ipv4Addr = address.parse().ok()?;
        let length: u32 = length.parse().ok().filter(|l| (16..=30).contains(l))?;
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
}

/// Which pool addresses are taken, across all accounts.
pub struct AddressBook {
    taken: Mutex<HashSet<String>>,
}

impl AddressBook {
    pub fn load(store: &StoreHandle) -> StoreResult<Self> {
        let taken = store
            .records::<Address>(ADDRESSES, b"")?
            .into_iter()
            .map(|a| a.public_ip)
            .collect();
        Ok(Self {
            taken: Mutex::new(taken),
        })
    }
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
    pub fn addresses(&self, account_id: &str) -> ApiResult<Vec<Address>> {
        let mut addresses: Vec<Address> = self
            .store
            .records(ADDRESSES, format!("{account_id}/").as_bytes())?;
        for address in &mut addresses {
            let ended = address
                .association
                .as_ref()
                .is_some_and(|a| !self.instance_is_live(account_id, &a.instance_id));
            if ended {
                address.association = None;
            }
        }
        addresses.sort_by(|a, b| a.public_ip.cmp(&b.public_ip));
        Ok(addresses)
    }

    fn instance_is_live(&self, account_id: &str, instance_id: &str) -> bool {
        self.instances(account_id, &[instance_id.to_string()], None)
            .ok()
            .and_then(|found| found.into_iter().next())
            .is_some_and(|i| i.state != InstanceState::Terminated)
    }

    /// One of the account's addresses.
    pub fn address(&self, account_id: &str, selector: &AddressSelector) -> ApiResult<Address> {
        let addresses = self.addresses(account_id)?;
        match selector {
            AddressSelector::AllocationId(id) => addresses
                .into_iter()
                .find(|a| &a.allocation_id == id)
                .ok_or_else(|| ApiError::NotFound {
                    code: "InvalidAllocationID.NotFound",
                    message: format!("The allocation ID '{id}' does not exist"),
                }),
            AddressSelector::PublicIp(ip) => addresses
                .into_iter()
                .find(|a| &a.public_ip == ip)
                .ok_or_else(|| ApiError::NotFound {
                    code: "InvalidAddress.NotFound",
                    message: format!("The address '{ip}' does not belong to you."),
                }),
        }
    }

    /// AllocateAddress.
    pub async fn allocate_address(
        &self,
        account_id: &str,
        tags: Vec<Tag>,
        dry_run: bool,
    ) -> ApiResult<Address> {
        let (address, sequence) = {
            let _guard = self.address_lock.lock(account_id).await;
            let held = self
                .store
                .records::<Address>(ADDRESSES, format!("{account_id}/").as_bytes())?
                .len() as u32;
            if held >= self.quotas.max_elastic_ips {
                return Err(ApiError::NotFound {
                    code: "AddressLimitExceeded",
                    message: "The maximum number of addresses has been reached.".into(),
                });
            }
            let mut taken = crate::sync::lock(&self.address_book.taken);
            let public_ip = self
                .address_pool
                .addresses()
                .find(|ip| !taken.contains(ip))
                .ok_or_else(|| ApiError::InsufficientCapacity {
                    code: "InsufficientAddressCapacity",
                    message: "There are no more Elastic IP addresses in the pool".into(),
                })?;
            if dry_run {
                return Err(ApiError::DryRunOperation);
            }
            let address = Address {
                allocation_id: super::ids::new_id("eipalloc"),
                public_ip: public_ip.clone(),
                account_id: account_id.to_string(),
                association: None,
                tags,
                allocated_at: self.clock.now(),
            };
            let mut batch = WriteBatch::new();
            batch.put_record(
                ADDRESSES,
                address_key(account_id, &address.allocation_id),
                &address,
            );
            let sequence = self.store.apply(&batch)?;
            taken.insert(public_ip);
            (address, sequence)
        };
        self.store.durable(sequence).await?;
        Ok(address)
    }

    /// AssociateAddress; returns the association id.
    pub async fn associate_address(
        &self,
        account_id: &str,
        selector: &AddressSelector,
        instance_id: &str,
        private_ip: Option<&str>,
        allow_reassociation: bool,
        dry_run: bool,
    ) -> ApiResult<String> {
        let instance = self
            .instances(account_id, &[instance_id.to_string()], None)?
            .remove(0);
        if instance.state == InstanceState::Terminated
            || instance.state == InstanceState::ShuttingDown
        {
            return Err(ApiError::IncorrectInstanceState(format!(
                "The instance '{instance_id}' is not in a valid state for this operation."
            )));
        }
        if let Some(ip) = private_ip {
            if ip != instance.private_ip {
                return Err(ApiError::invalid_value(format!(
                    "The private IP address {ip} is not assigned to instance {instance_id}"
                )));
            }
        }
        let (association_id, sequence) = {
            let _guard = self.address_lock.lock(account_id).await;
            let addresses = self.addresses(account_id)?;
            let address = self.address(account_id, selector)?;
            if let Some(current) = &address.association {
                if current.instance_id == instance_id {
                    if dry_run {
                        return Err(ApiError::DryRunOperation);
                    }
                    return Ok(current.association_id.clone());
                }
                if !allow_reassociation {
                    return Err(ApiError::NotFound {
                        code: "Resource.AlreadyAssociated",
                        message: format!(
                            "resource {} is already associated with associate-id {}",
                            address.allocation_id, current.association_id
                        ),
                    });
                }
            }
            if dry_run {
                return Err(ApiError::DryRunOperation);
            }
            let mut batch = WriteBatch::new();
            // The instance's previous address, if any, lets go of it.
            for other in addresses
                .iter()
                .filter(|a| a.allocation_id != address.allocation_id)
            {
                if other
                    .association
                    .as_ref()
                    .is_some_and(|a| a.instance_id == instance_id)
                {
                    let released = Address {
                        association: None,
                        ..other.clone()
                    };
                    batch.put_record(
                        ADDRESSES,
                        address_key(account_id, &released.allocation_id),
                        &released,
                    );
                }
            }
            let association = Association {
                association_id: super::ids::new_id("eipassoc"),
                instance_id: instance_id.to_string(),
                private_ip: instance.private_ip.clone(),
            };
            let id = association.association_id.clone();
            let updated = Address {
                association: Some(association),
                ..address
            };
            batch.put_record(
                ADDRESSES,
                address_key(account_id, &updated.allocation_id),
                &updated,
            );
            (id, self.store.apply(&batch)?)
        };
        self.store.durable(sequence).await?;
        Ok(association_id)
    }

    /// DisassociateAddress by association id or public IP.
    pub async fn disassociate_address(
        &self,
        account_id: &str,
        association_id: Option<&str>,
        public_ip: Option<&str>,
        dry_run: bool,
    ) -> ApiResult<()> {
        let sequence = {
            let _guard = self.address_lock.lock(account_id).await;
            let addresses = self.addresses(account_id)?;
            let address = match (association_id, public_ip) {
                (Some(id), _) => addresses
                    .into_iter()
                    .find(|a| {
                        a.association
                            .as_ref()
                            .is_some_and(|x| x.association_id == id)
                    })
                    .ok_or_else(|| ApiError::NotFound {
                        code: "InvalidAssociationID.NotFound",
                        message: format!("The association ID '{id}' does not exist"),
                    })?,
                (None, Some(ip)) => {
                    self.address(account_id, &AddressSelector::PublicIp(ip.to_string()))?
                }
                (None, None) => return Err(ApiError::MissingParameter("AssociationId".into())),
            };
            if address.association.is_none() {
                return Err(ApiError::NotFound {
                    code: "InvalidAssociationID.NotFound",
                    message: format!("The address {} is not associated", address.public_ip),
                });
            }
            if dry_run {
                return Err(ApiError::DryRunOperation);
            }
            let updated = Address {
                association: None,
                ..address
            };
            let mut batch = WriteBatch::new();
            batch.put_record(
                ADDRESSES,
                address_key(account_id, &updated.allocation_id),
                &updated,
            );
            self.store.apply(&batch)?
        };
        self.store.durable(sequence).await?;
        Ok(())
    }

    /// ReleaseAddress.
    pub async fn release_address(
        &self,
        account_id: &str,
        selector: &AddressSelector,
        dry_run: bool,
    ) -> ApiResult<()> {
        let sequence = {
            let _guard = self.address_lock.lock(account_id).await;
            let address = self.address(account_id, selector)?;
            if address.association.is_some() {
                return Err(ApiError::NotFound {
                    code: "InvalidIPAddress.InUse",
                    message: format!("The address {} is in use.", address.public_ip),
                });
            }
            if dry_run {
                return Err(ApiError::DryRunOperation);
            }
            let mut batch = WriteBatch::new();
            batch.delete(ADDRESSES, address_key(account_id, &address.allocation_id));
            let sequence = self.store.apply(&batch)?;
            crate::sync::lock(&self.address_book.taken).remove(&address.public_ip);
            sequence
        };
        self.store.durable(sequence).await?;
        Ok(())
    }
}
