//! Elastic network interfaces: CreateNetworkInterface,
//! DeleteNetworkInterface, Attach/DetachNetworkInterface,
//! Modify/Describe/ResetNetworkInterfaceAttribute,
//! Assign/UnassignPrivateIpAddresses, and the interfaces
//! DescribeNetworkInterfaces and DescribeInstances' `networkInterfaceSet`
//! show.
//!
//! As in EC2, every instance has a primary interface (device index 0) that
//! is made and deleted with it and cannot be detached. Here it is not a
//! record of its own: its id is the instance id's digits behind `eni-`
//! (`i-0abc…` has `eni-0abc…`, attachment `eni-attach-0abc…`), its address,
//! subnet and groups are the instance's, and what may change about it (its
//! description, source/destination check and secondary addresses) lives in
//! the instance's spec. A launch thus writes nothing more than before, and
//! the interface can never outlive or disagree with its instance.
//!
//! Interfaces made with CreateNetworkInterface are records,
//! `network_interfaces/<account>/<eni>`, holding their addresses in the
//! subnet's pool (`private_ips`, as instances do, so a subnet that still
//! has interfaces is not deleted) and their attachment. An attached
//! interface is also named in its instance's spec (`attached_interfaces`),
//! and both sides are written in one commit: an attach or detach rewrites
//! the instance, so two racing for one device index serialise. When the
//! instance terminates, an attached interface is deleted with it if its
//! attachment says `DeleteOnTermination` (EC2's default is false for an
//! attached interface) and detached otherwise.
//!
//! Limits follow EC2's shape, simplified to the instance type's vCPUs
//! (the README lists them): interfaces per instance
//! (`AttachmentLimitExceeded`) and addresses per interface
//! (`PrivateIpAddressLimitExceeded`), and 5,000 interfaces per account.

use super::instances::{self, GroupRef, Instance, InstanceState, Tag, INSTANCES};
use super::operation::{self, Tx};
use super::subnets::AccountSubnet;
use super::usage::{Kind, Usage};
use super::Compute;
use crate::error::{codes, ApiError, ApiResult};
use crate::store::StoreResult;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `<account>/<eni-id>`: the interfaces made with CreateNetworkInterface.
pub(crate) const NETWORK_INTERFACES: &str = "network_interfaces";

/// EC2's default quota of interfaces per Region.
pub const MAX_NETWORK_INTERFACES: u64 = 5000;

/// Most addresses an interface not attached to an instance may hold.
const MAX_ADDRESSES_DETACHED: usize = 50;

/// What an instance's primary interface keeps of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryInterface {
    #[serde(default)]
    pub description: String,
    pub source_dest_check: bool,
    #[serde(default)]
    pub secondary_private_ips: Vec<String>,
}

impl Default for PrimaryInterface {
    fn default() -> Self {
        Self {
            description: String::new(),
            source_dest_check: true,
            secondary_private_ips: Vec::new(),
        }
    }
}

/// An interface's attachment to an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAttachment {
    pub attachment_id: String,
    pub instance_id: String,
    pub device_index: u32,
    pub attach_time: DateTime<Utc>,
    pub delete_on_termination: bool,
}

/// What DescribeInstances shows of other resources beside an account's
/// instances: its Elastic IPs (as DescribeAddresses shows them) and its
/// stored interfaces (attached ones show beside the primary).
#[derive(Debug, Default)]
pub struct AroundInstances {
    pub addresses: Vec<super::addresses::Address>,
    pub interfaces: Vec<NetworkInterface>,
}

/// Most accounts whose [`AroundInstances`] are kept.
pub(super) const AROUND_INSTANCES_KEPT: usize = 1024;

/// A network interface: a stored one, or an instance's primary interface
/// as [`primary_of`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    pub id: String,
    pub account_id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub availability_zone: String,
    /// The pool its addresses are held in (see `launch::private_ip_key`).
    pub address_pool: String,
    pub private_ip: String,
    #[serde(default)]
    pub secondary_private_ips: Vec<String>,
    #[serde(default)]
    pub description: String,
    pub source_dest_check: bool,
    pub groups: Vec<GroupRef>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub attachment: Option<InterfaceAttachment>,
    /// The ClientToken it was made with (forgotten with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// The NAT gateway that manages it (a requester-managed interface,
    /// never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// An instance's public address (on its primary interface's primary
    /// address; see `public_addresses`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
}

impl crate::store::Record for NetworkInterface {}

impl NetworkInterface {
    /// `in-use` while attached, else `available`.
    pub fn status(&self) -> &'static str {
        if self.attachment.is_some() || self.managed_by.is_some() {
            "in-use"
        } else {
            "available"
        }
    }

    /// Its primary address, then its secondary ones.
    pub fn private_addresses(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.private_ip).chain(self.secondary_private_ips.iter())
    }

    /// True for an instance's primary interface.
    pub fn is_primary(&self) -> bool {
        self.attachment
            .as_ref()
            .is_some_and(|a| a.device_index == 0 && self.id == primary_interface_id(&a.instance_id))
    }

    /// A locally administered MAC address derived from its id.
    pub fn mac_address(&self) -> String {
        let digits = self.id.trim_start_matches("eni-");
        let padded = format!("{digits:0>10}");
        let last: Vec<char> = padded.chars().rev().take(10).collect();
        let pairs: Vec<String> = last
            .chunks(2)
            .map(|pair| pair.iter().collect::<String>())
            .collect();
        format!("02:{}", pairs.join(":"))
    }
}

/// The id of an instance's primary interface.
pub fn primary_interface_id(instance_id: &str) -> String {
    format!("eni-{}", instance_id.trim_start_matches("i-"))
}

/// The attachment id of an instance's primary interface.
pub fn primary_attachment_id(instance_id: &str) -> String {
    format!("eni-attach-{}", instance_id.trim_start_matches("i-"))
}

/// The instance whose primary interface `interface_id` would be.
fn primary_instance_id(interface_id: &str) -> String {
    format!("i-{}", interface_id.trim_start_matches("eni-"))
}

/// An instance's primary interface as EC2 shows it.
pub fn primary_of(instance: &Instance) -> NetworkInterface {
    let settings = instance.primary_interface.clone().unwrap_or_default();
    NetworkInterface {
        id: primary_interface_id(&instance.id),
        account_id: instance.account_id.clone(),
        subnet_id: instance.subnet_id.clone().unwrap_or_default(),
        vpc_id: instance.vpc_id.clone().unwrap_or_default(),
        availability_zone: instance.availability_zone.clone(),
        address_pool: instance.address_pool().to_string(),
        private_ip: instance.private_ip.clone(),
        secondary_private_ips: settings.secondary_private_ips,
        description: settings.description,
        source_dest_check: settings.source_dest_check,
        groups: instance.security_groups.clone(),
        tags: Vec::new(),
        attachment: Some(InterfaceAttachment {
            attachment_id: primary_attachment_id(&instance.id),
            instance_id: instance.id.clone(),
            device_index: 0,
            attach_time: instance.launch_time,
            delete_on_termination: true,
        }),
        client_token: None,
        managed_by: None,
        public_ip: instance.public_ip.clone(),
    }
}

/// Interfaces an instance of `vcpus` vCPUs may have (EC2's table, by size).
pub fn interface_limit(vcpus: u32) -> u32 {
    match vcpus {
        0..=1 => 2,
        2 => 3,
        3..=4 => 4,
        _ => 8,
    }
}

/// Addresses one interface of an instance of `vcpus` vCPUs may hold.
pub fn address_limit(vcpus: u32) -> usize {
    match vcpus {
        0..=1 => 2,
        2 => 6,
        3..=8 => 15,
        _ => 30,
    }
}

fn key(account_id: &str, id: &str) -> Vec<u8> {
    format!("{account_id}/{id}").into_bytes()
}

fn not_found(id: &str) -> ApiError {
    super::kinds::ResourceKind::NetworkInterface.not_found(id)
}

fn in_use(id: &str) -> ApiError {
    ApiError::NotFound {
        code: codes::INVALID_NETWORK_INTERFACE_IN_USE,
        message: format!("Interface: [{id}] in use."),
    }
}

fn attachment_not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        code: codes::INVALID_ATTACHMENT_ID_NOT_FOUND,
        message: format!("Attachment '{id}' not found."),
    }
}

fn address_limit_exceeded(id: &str, limit: usize) -> ApiError {
    ApiError::LimitExceeded {
        code: codes::PRIVATE_IP_ADDRESS_LIMIT_EXCEEDED,
        message: format!(
            "Number of private addresses will exceed limit of {limit} for the network interface {id}."
        ),
    }
}

/// The account's interface usage in `tx` (rewritten by every create and
/// delete).
fn interface_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<Usage> {
    super::usage::read(tx, account_id, Kind::NetworkInterfaces, |tx| {
        super::usage::count_of(tx, NETWORK_INTERFACES, format!("{account_id}/").as_bytes())
    })
}

/// Gives the account an interface usage record if it has none.
pub(super) fn ensure_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<()> {
    super::usage::ensure(tx, account_id, Kind::NetworkInterfaces, |tx| {
        super::usage::count_of(tx, NETWORK_INTERFACES, format!("{account_id}/").as_bytes())
    })
}

/// The account's stored interfaces as stored now (untracked: read the
/// interface usage with it to decide on it).
pub(super) fn stored_interfaces_in(
    tx: &Tx<'_>,
    account_id: &str,
) -> StoreResult<Vec<NetworkInterface>> {
    if super::usage::known_empty(tx, account_id, Kind::NetworkInterfaces)? {
        return Ok(Vec::new());
    }
    tx.scan(NETWORK_INTERFACES, format!("{account_id}/").as_bytes())
}

/// A stored interface of the account, read in `tx`.
pub(super) fn stored_interface_in(
    tx: &mut Tx<'_>,
    account_id: &str,
    id: &str,
) -> StoreResult<Option<NetworkInterface>> {
    tx.get(NETWORK_INTERFACES, &key(account_id, id))
}

/// Whether a stored interface of the account uses a security group, read
/// with the interface usage (so a concurrent create conflicts).
pub(super) fn group_in_use(tx: &mut Tx<'_>, account_id: &str, group_id: &str) -> StoreResult<bool> {
    interface_usage(tx, account_id)?;
    Ok(stored_interfaces_in(tx, account_id)?
        .iter()
        .any(|i| i.groups.iter().any(|g| g.id == group_id)))
}

/// Where an interface lives: its own record, or its instance's spec.
/// (Short-lived, one per operation: the size difference does not matter.)
#[allow(clippy::large_enum_variant)]
enum Holder {
    Stored(NetworkInterface),
    Primary(Instance),
}

impl Holder {
    fn view(&self) -> NetworkInterface {
        match self {
            Holder::Stored(interface) => interface.clone(),
            Holder::Primary(instance) => primary_of(instance),
        }
    }

    /// Writes `changed` (a changed [`Holder::view`]) back in `tx`.
    fn write(self, tx: &mut Tx<'_>, changed: NetworkInterface) {
        match self {
            Holder::Stored(_) => tx.put(
                NETWORK_INTERFACES,
                key(&changed.account_id, &changed.id),
                &changed,
            ),
            Holder::Primary(mut instance) => {
                instance.security_groups = changed.groups;
                instance.primary_interface = Some(PrimaryInterface {
                    description: changed.description,
                    source_dest_check: changed.source_dest_check,
                    secondary_private_ips: changed.secondary_private_ips,
                })
                .filter(|p| p != &PrimaryInterface::default());
                tx.put(INSTANCES, instance.key(), &instance);
            }
        }
    }
}

/// What CreateNetworkInterface asks for.
#[derive(Debug, Clone, Default)]
pub struct NewInterface {
    pub subnet_id: String,
    pub description: String,
    pub private_ip: Option<String>,
    pub secondary_private_ips: Vec<String>,
    pub secondary_count: u32,
    pub group_ids: Vec<String>,
    pub tags: Vec<Tag>,
    pub client_token: Option<super::idempotency::ClientToken>,
}

/// One change ModifyNetworkInterfaceAttribute makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceChange {
    Description(String),
    SourceDestCheck(bool),
    Groups(Vec<String>),
    DeleteOnTermination { attachment_id: String, delete: bool },
}

const CREATE: &str = "CreateNetworkInterface";

impl Compute {
    /// The account's interfaces: the stored ones and the primary interface
    /// of every instance not terminated.
    pub async fn network_interfaces(&self, account_id: &str) -> ApiResult<Vec<NetworkInterface>> {
        let mut interfaces = operation::read(&self.store, |tx| {
            let mut interfaces = stored_interfaces_in(tx, account_id)?;
            let (live, _) = self.instance_page_in(tx, account_id, None, None, &|i| {
                i.state != InstanceState::Terminated
            })?;
            interfaces.extend(live.iter().map(primary_of));
            Ok::<_, ApiError>(interfaces)
        })
        .await?;
        interfaces.extend(
            self.nat_gateways(account_id)
                .await?
                .iter()
                .filter_map(|nat| nat.interface()),
        );
        interfaces.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(interfaces)
    }

    /// What DescribeInstances shows of other resources beside the
    /// account's instances, kept while the store's revision holds.
    pub async fn around_instances(&self, account_id: &str) -> ApiResult<Arc<AroundInstances>> {
        operation::read(&self.store, |tx| {
            self.around_instances.current(tx, account_id, |tx| {
                Ok(AroundInstances {
                    addresses: self.addresses_in(tx, account_id)?,
                    interfaces: stored_interfaces_in(tx, account_id)?,
                })
            })
        })
        .await
    }

    /// The account's stored interfaces (what DescribeInstances adds to an
    /// instance's primary interface).
    pub async fn stored_network_interfaces(
        &self,
        account_id: &str,
    ) -> ApiResult<Vec<NetworkInterface>> {
        operation::read(&self.store, |tx| Ok(stored_interfaces_in(tx, account_id)?)).await
    }

    /// One interface of the account, read in `tx`.
    fn holder_in(&self, tx: &mut Tx<'_>, account_id: &str, id: &str) -> ApiResult<Holder> {
        super::kinds::ResourceKind::NetworkInterface.check(id)?;
        if let Some(stored) = stored_interface_in(tx, account_id, id)? {
            return Ok(Holder::Stored(stored));
        }
        let instance_id = primary_instance_id(id);
        match instances::load(&self.instances, tx, account_id, &instance_id)? {
            Some(instance) if instance.state != InstanceState::Terminated => {
                Ok(Holder::Primary(instance))
            }
            _ => match super::nat_gateways::managed_interface(tx, account_id, id)? {
                Some(managed) => Err(ApiError::OperationNotPermitted(format!(
                    "The network interface {id} is managed by {} and cannot be changed",
                    managed.managed_by.unwrap_or_default()
                ))),
                None => Err(not_found(id)),
            },
        }
    }

    /// One interface of the account as `tx` shows it.
    pub(super) fn network_interface_in(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        id: &str,
    ) -> ApiResult<NetworkInterface> {
        match self.holder_in(tx, account_id, id) {
            Ok(holder) => Ok(holder.view()),
            // A NAT gateway's interface is read, never changed.
            Err(ApiError::OperationNotPermitted(_)) => {
                super::nat_gateways::managed_interface(tx, account_id, id)?
                    .ok_or_else(|| not_found(id))
            }
            Err(other) => Err(other),
        }
    }

    /// One interface of the account.
    pub async fn network_interface(
        &self,
        account_id: &str,
        id: &str,
    ) -> ApiResult<NetworkInterface> {
        operation::read(&self.store, |tx| {
            self.network_interface_in(tx, account_id, id)
        })
        .await
    }

    /// The security groups of `ids` (or the VPC's `default` group), each
    /// in `vpc_id`, read in `tx`.
    pub(super) fn interface_groups(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        vpc_id: &str,
        ids: &[String],
    ) -> ApiResult<Vec<GroupRef>> {
        let vpc = super::vpcs::vpc_record_in(tx, account_id, vpc_id)?;
        let groups = self.launch_groups(tx, account_id, &vpc, &[], ids)?;
        // Rewritten unchanged: a DeleteSecurityGroup meanwhile conflicts.
        for group in &groups {
            tx.touch(
                super::security_groups::SECURITY_GROUPS,
                &super::security_groups::group_key(account_id, &group.id),
            )?;
        }
        Ok(groups)
    }

    /// CreateNetworkInterface: in a subnet of the account, with the
    /// addresses asked for (or the next free one) and the groups named
    /// (or the VPC's `default`); ClientToken honoured.
    pub async fn create_network_interface(
        &self,
        account_id: &str,
        request: NewInterface,
        dry_run: bool,
    ) -> ApiResult<NetworkInterface> {
        if let Some(token) = &request.client_token {
            let earlier: Option<NetworkInterface> = super::idempotency::earlier_record(
                &self.store,
                account_id,
                CREATE,
                token,
                NETWORK_INTERFACES,
            )
            .await?;
            if let Some(earlier) = earlier {
                if dry_run {
                    return Err(ApiError::DryRunOperation);
                }
                return Ok(earlier);
            }
        }
        let wanted = 1 + request.secondary_private_ips.len() + request.secondary_count as usize;
        if wanted > MAX_ADDRESSES_DETACHED {
            return Err(address_limit_exceeded(
                "being created",
                MAX_ADDRESSES_DETACHED,
            ));
        }
        let subnet = self.account_subnet(account_id, &request.subnet_id).await?;
        let id = super::ids::new_id("eni");
        operation::run(&self.store, dry_run, |tx| {
            if let Some(token) = &request.client_token {
                if let Some(earlier) = super::idempotency::earlier(tx, account_id, CREATE, token)? {
                    return stored_interface_in(tx, account_id, &earlier)?
                        .ok_or_else(|| not_found(&earlier));
                }
                super::idempotency::remember(tx, account_id, CREATE, token, &id);
            }
            let (tree, subnet_key) = super::subnets::subnet_key(&subnet);
            if !tx.touch(tree, &subnet_key)? {
                return Err(super::subnets::subnet_not_found(&request.subnet_id));
            }
            let mut usage = interface_usage(tx, account_id)?;
            if usage.count >= MAX_NETWORK_INTERFACES {
                return Err(ApiError::LimitExceeded {
                    code: codes::NETWORK_INTERFACE_LIMIT_EXCEEDED,
                    message: format!(
                        "The maximum number of network interfaces ({MAX_NETWORK_INTERFACES}) has been reached."
                    ),
                });
            }
            let groups =
                self.interface_groups(tx, account_id, &subnet.subnet.vpc_id, &request.group_ids)?;
            let (pool, private_ip) =
                self.take_address(tx, account_id, &subnet, &id, request.private_ip.as_deref())?;
            let mut secondary = Vec::new();
            for wanted in &request.secondary_private_ips {
                secondary.push(self.take_address(tx, account_id, &subnet, &id, Some(wanted))?.1);
            }
            for _ in 0..request.secondary_count {
                secondary.push(self.take_address(tx, account_id, &subnet, &id, None)?.1);
            }
            let interface = NetworkInterface {
                id: id.clone(),
                account_id: account_id.to_string(),
                subnet_id: subnet.subnet.subnet_id.clone(),
                vpc_id: subnet.subnet.vpc_id.clone(),
                availability_zone: subnet.subnet.availability_zone.clone(),
                address_pool: pool,
                private_ip,
                secondary_private_ips: secondary,
                description: request.description.clone(),
                source_dest_check: true,
                groups,
                tags: request.tags.clone(),
                attachment: None,
                client_token: request.client_token.as_ref().map(|t| t.token.clone()),
                managed_by: None,
                public_ip: None,
            };
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::NetworkInterfaces, &usage);
            tx.put(NETWORK_INTERFACES, key(account_id, &id), &interface);
            Ok(interface)
        })
        .await
    }

    /// One address of `subnet` for interface `holder_id`.
    fn take_address(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        subnet: &AccountSubnet,
        holder_id: &str,
        wanted: Option<&str>,
    ) -> ApiResult<(String, String)> {
        super::launch::take_subnet_address_at(
            tx,
            account_id,
            subnet,
            &subnet.subnet.availability_zone_id,
            holder_id,
            wanted,
        )
    }

    /// DeleteNetworkInterface: only a detached interface
    /// (`InvalidNetworkInterface.InUse`); its addresses go free.
    pub async fn delete_network_interface(
        &self,
        account_id: &str,
        id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        operation::run(&self.store, dry_run, |tx| {
            let interface = match self.holder_in(tx, account_id, id)? {
                Holder::Stored(interface) => interface,
                Holder::Primary(_) => return Err(in_use(id)),
            };
            if interface.attachment.is_some() {
                return Err(in_use(id));
            }
            delete_stored(tx, &interface)
        })
        .await
    }

    /// AttachNetworkInterface: a detached interface to an instance of its
    /// zone and VPC, at a free device index from 1; returns the
    /// attachment id.
    pub async fn attach_network_interface(
        &self,
        account_id: &str,
        id: &str,
        instance_id: &str,
        device_index: u32,
        dry_run: bool,
    ) -> ApiResult<String> {
        super::kinds::ResourceKind::Instance.check(instance_id)?;
        let attachment_id = super::ids::new_id("eni-attach");
        let now = self.clock.now();
        operation::run(&self.store, dry_run, |tx| {
            let mut interface = match self.holder_in(tx, account_id, id)? {
                Holder::Stored(interface) => interface,
                Holder::Primary(_) => return Err(in_use(id)),
            };
            let mut instance = instances::load(&self.instances, tx, account_id, instance_id)?
                .ok_or_else(|| instances::instances_not_found(&[instance_id.to_string()]))?;
            if !matches!(
                instance.state,
                InstanceState::Running | InstanceState::Stopped | InstanceState::Pending
            ) {
                return Err(ApiError::IncorrectInstanceState(format!(
                    "The instance '{instance_id}' is not in a valid state for this operation."
                )));
            }
            attach_in(
                tx,
                &mut interface,
                &mut instance,
                device_index,
                attachment_id.clone(),
                now,
            )?;
            tx.put(INSTANCES, instance.key(), &instance);
            tx.put(NETWORK_INTERFACES, key(account_id, id), &interface);
            Ok(attachment_id.clone())
        })
        .await
    }

    /// DetachNetworkInterface by attachment id; the primary interface
    /// cannot be detached (`OperationNotPermitted`).
    pub async fn detach_network_interface(
        &self,
        account_id: &str,
        attachment_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        check_attachment_id(attachment_id)?;
        let interface_id = self
            .network_interfaces(account_id)
            .await?
            .into_iter()
            .find(|i| {
                i.attachment
                    .as_ref()
                    .is_some_and(|a| a.attachment_id == attachment_id)
            })
            .ok_or_else(|| attachment_not_found(attachment_id))?
            .id;
        operation::run(&self.store, dry_run, |tx| {
            let mut interface = match self.holder_in(tx, account_id, &interface_id)? {
                Holder::Stored(interface) => interface,
                Holder::Primary(_) => {
                    return Err(ApiError::OperationNotPermitted(format!(
                    "The network interface at device index 0 cannot be detached ({attachment_id})."
                )))
                }
            };
            let Some(attachment) = interface
                .attachment
                .take()
                .filter(|a| a.attachment_id == attachment_id)
            else {
                return Err(attachment_not_found(attachment_id));
            };
            if let Some(mut instance) =
                instances::load(&self.instances, tx, account_id, &attachment.instance_id)?
            {
                instance.attached_interfaces.retain(|i| i != &interface.id);
                tx.put(INSTANCES, instance.key(), &instance);
            }
            tx.put(
                NETWORK_INTERFACES,
                key(account_id, &interface.id),
                &interface,
            );
            Ok(())
        })
        .await
    }

    /// ModifyNetworkInterfaceAttribute (and ResetNetworkInterfaceAttribute,
    /// which sets SourceDestCheck back to true).
    pub async fn modify_network_interface(
        &self,
        account_id: &str,
        id: &str,
        change: InterfaceChange,
        dry_run: bool,
    ) -> ApiResult<()> {
        operation::run(&self.store, dry_run, |tx| {
            let holder = self.holder_in(tx, account_id, id)?;
            let mut interface = holder.view();
            match &change {
                InterfaceChange::Description(text) => interface.description = text.clone(),
                InterfaceChange::SourceDestCheck(check) => interface.source_dest_check = *check,
                InterfaceChange::Groups(ids) => {
                    if ids.is_empty() {
                        return Err(ApiError::MissingParameter("SecurityGroupId".into()));
                    }
                    let vpc_id = interface.vpc_id.clone();
                    interface.groups = self.interface_groups(tx, account_id, &vpc_id, ids)?;
                }
                InterfaceChange::DeleteOnTermination {
                    attachment_id,
                    delete,
                } => {
                    let attachment = interface
                        .attachment
                        .as_mut()
                        .filter(|a| &a.attachment_id == attachment_id)
                        .ok_or_else(|| attachment_not_found(attachment_id))?;
                    if attachment.device_index == 0 {
                        // A primary interface always goes with its instance here.
                        if !*delete {
                            return Err(ApiError::OperationNotPermitted(
                                "The primary network interface of an instance is deleted with it here (see the README)".into(),
                            ));
                        }
                        return Ok(());
                    }
                    attachment.delete_on_termination = *delete;
                }
            }
            holder.write(tx, interface);
            Ok(())
        })
        .await
    }

    /// AssignPrivateIpAddresses: the addresses named (a secondary address
    /// of another interface moves only with `AllowReassignment`) or
    /// `count` free ones; returns the addresses assigned.
    pub async fn assign_private_addresses(
        &self,
        account_id: &str,
        id: &str,
        wanted: &[String],
        count: u32,
        allow_reassignment: bool,
    ) -> ApiResult<Vec<String>> {
        if wanted.is_empty() && count == 0 {
            return Err(ApiError::MissingParameter(
                "PrivateIpAddress or SecondaryPrivateIpAddressCount".into(),
            ));
        }
        let current = self.network_interface(account_id, id).await?;
        let subnet = self.account_subnet(account_id, &current.subnet_id).await?;
        operation::run(&self.store, false, |tx| {
            let holder = self.holder_in(tx, account_id, id)?;
            let mut interface = holder.view();
            let limit = self.interface_address_limit(tx, account_id, &interface)?;
            let new = wanted
                .iter()
                .filter(|w| !interface.private_addresses().any(|a| a == *w))
                .count();
            let total = interface.private_addresses().count() + new + count as usize;
            if total > limit {
                return Err(address_limit_exceeded(id, limit));
            }
            let mut assigned = Vec::new();
            for address in wanted {
                if interface.private_addresses().any(|a| a == address) {
                    continue;
                }
                if allow_reassignment {
                    self.take_back(tx, account_id, &interface, address)?;
                }
                assigned.push(
                    self.take_address(tx, account_id, &subnet, id, Some(address))?
                        .1,
                );
            }
            for _ in 0..count {
                assigned.push(self.take_address(tx, account_id, &subnet, id, None)?.1);
            }
            interface
                .secondary_private_ips
                .extend(assigned.iter().cloned());
            holder.write(tx, interface);
            Ok(assigned)
        })
        .await
    }

    /// How many addresses `interface` may hold: its instance type's limit
    /// while attached.
    fn interface_address_limit(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        interface: &NetworkInterface,
    ) -> ApiResult<usize> {
        let Some(attachment) = &interface.attachment else {
            return Ok(MAX_ADDRESSES_DETACHED);
        };
        Ok(
            instances::load(&self.instances, tx, account_id, &attachment.instance_id)?
                .map_or(MAX_ADDRESSES_DETACHED, |i| address_limit(i.vcpus)),
        )
    }

    /// Frees `address` from the interface of the same subnet that holds it
    /// as a secondary address, for a reassignment (a primary address never
    /// moves: `InvalidIPAddress.InUse`).
    fn take_back(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        to: &NetworkInterface,
        address: &str,
    ) -> ApiResult<()> {
        let ip_key = super::launch::private_ip_key(account_id, &to.address_pool, address);
        let Some(holder_id) = tx.get::<String>(super::launch::PRIVATE_IPS, &ip_key)? else {
            return Ok(());
        };
        let interface_id = if holder_id.starts_with("i-") {
            primary_interface_id(&holder_id)
        } else {
            holder_id
        };
        let in_use = || ApiError::NotFound {
            code: codes::INVALID_IP_ADDRESS_IN_USE,
            message: format!("Address {address} is in use."),
        };
        let Ok(holder) = self.holder_in(tx, account_id, &interface_id) else {
            return Err(in_use());
        };
        let mut other = holder.view();
        if !other.secondary_private_ips.iter().any(|a| a == address) {
            return Err(in_use());
        }
        other.secondary_private_ips.retain(|a| a != address);
        let from = other.id.clone();
        holder.write(tx, other);
        super::launch::release_address(tx, account_id, &to.address_pool, address);
        // An Elastic IP on the address moves with it, as in EC2.
        self.move_address_associations(tx, account_id, &from, to, address)?;
        Ok(())
    }

    /// UnassignPrivateIpAddresses: secondary addresses of the interface
    /// only (`InvalidParameterValue` otherwise); an Elastic IP associated
    /// with one lets go of it.
    pub async fn unassign_private_addresses(
        &self,
        account_id: &str,
        id: &str,
        addresses: &[String],
    ) -> ApiResult<()> {
        if addresses.is_empty() {
            return Err(ApiError::MissingParameter("PrivateIpAddress".into()));
        }
        operation::run(&self.store, false, |tx| {
            let holder = self.holder_in(tx, account_id, id)?;
            let mut interface = holder.view();
            for address in addresses {
                if !interface.secondary_private_ips.contains(address) {
                    return Err(ApiError::invalid_value(format!(
                        "Some of the specified addresses are not assigned to interface {id}"
                    )));
                }
            }
            interface
                .secondary_private_ips
                .retain(|a| !addresses.contains(a));
            for address in addresses {
                super::launch::release_address(tx, account_id, &interface.address_pool, address);
            }
            self.end_address_associations(tx, account_id, id, addresses)?;
            holder.write(tx, interface);
            Ok(())
        })
        .await
    }

    /// The stored interfaces attached to a terminating instance, in `tx`:
    /// deleted when their attachment says so, else detached.
    pub(super) fn release_attached_interfaces(
        &self,
        tx: &mut Tx<'_>,
        instance: &Instance,
    ) -> ApiResult<()> {
        for id in &instance.attached_interfaces {
            let Some(mut interface) = stored_interface_in(tx, &instance.account_id, id)? else {
                continue;
            };
            let Some(attachment) = interface.attachment.take() else {
                continue;
            };
            if attachment.instance_id != instance.id {
                continue;
            }
            if attachment.delete_on_termination {
                delete_stored(tx, &interface)?;
            } else {
                tx.put(
                    NETWORK_INTERFACES,
                    key(&interface.account_id, &interface.id),
                    &interface,
                );
            }
        }
        Ok(())
    }

    /// Attaches the stored interfaces a launch names to its (only)
    /// instance, in `tx`.
    pub(super) fn attach_at_launch(
        &self,
        tx: &mut Tx<'_>,
        instance: &mut Instance,
        wanted: &[super::instances::LaunchInterface],
        now: DateTime<Utc>,
    ) -> ApiResult<()> {
        for super::instances::LaunchInterface {
            id,
            device_index,
            delete_on_termination,
        } in wanted
        {
            let mut interface = match self.holder_in(tx, &instance.account_id, id)? {
                Holder::Stored(interface) => interface,
                Holder::Primary(_) => return Err(in_use(id)),
            };
            attach_in(
                tx,
                &mut interface,
                instance,
                *device_index,
                super::ids::new_id("eni-attach"),
                now,
            )?;
            if let Some(attachment) = interface.attachment.as_mut() {
                attachment.delete_on_termination = *delete_on_termination;
            }
            tx.put(
                NETWORK_INTERFACES,
                key(&instance.account_id, id),
                &interface,
            );
        }
        Ok(())
    }
}

/// Attaches `interface` to `instance` at `device_index` (both changed,
/// neither written), checking what EC2 checks.
fn attach_in(
    tx: &mut Tx<'_>,
    interface: &mut NetworkInterface,
    instance: &mut Instance,
    device_index: u32,
    attachment_id: String,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    if interface.attachment.is_some() {
        return Err(in_use(&interface.id));
    }
    if interface.availability_zone != instance.availability_zone {
        return Err(ApiError::InvalidParameterCombination(format!(
            "You may not attach a network interface to an instance if they are not in the same availability zone ({} and {})",
            interface.availability_zone, instance.availability_zone
        )));
    }
    if instance.vpc_id.as_deref() != Some(interface.vpc_id.as_str()) {
        return Err(ApiError::invalid_value(format!(
            "Network interface {} and instance {} belong to different networks.",
            interface.id, instance.id
        )));
    }
    if device_index == 0 {
        return Err(ApiError::invalid_value(format!(
            "Instance '{}' already has an interface attached at device index '0'.",
            instance.id
        )));
    }
    let limit = interface_limit(instance.vcpus);
    if instance.attached_interfaces.len() as u32 + 1 >= limit {
        return Err(ApiError::LimitExceeded {
            code: codes::ATTACHMENT_LIMIT_EXCEEDED,
            message: format!(
                "Interface count {} exceeds the limit for {}",
                instance.attached_interfaces.len() + 2,
                instance.instance_type
            ),
        });
    }
    if device_index >= limit {
        return Err(ApiError::invalid_value(format!(
            "Device index {device_index} is out of range for {} (0 to {})",
            instance.instance_type,
            limit - 1
        )));
    }
    for other in &instance.attached_interfaces {
        let taken = stored_interface_in(tx, &instance.account_id, other)?
            .and_then(|i| i.attachment)
            .is_some_and(|a| a.device_index == device_index && a.instance_id == instance.id);
        if taken {
            return Err(ApiError::invalid_value(format!(
                "Instance '{}' already has an interface attached at device index '{device_index}'.",
                instance.id
            )));
        }
    }
    let limit = address_limit(instance.vcpus);
    if interface.private_addresses().count() > limit {
        return Err(address_limit_exceeded(&interface.id, limit));
    }
    interface.attachment = Some(InterfaceAttachment {
        attachment_id,
        instance_id: instance.id.clone(),
        device_index,
        attach_time: now,
        delete_on_termination: false,
    });
    instance.attached_interfaces.push(interface.id.clone());
    Ok(())
}

/// Removes a detached stored interface in `tx`, freeing its addresses.
fn delete_stored(tx: &mut Tx<'_>, interface: &NetworkInterface) -> ApiResult<()> {
    let account_id = &interface.account_id;
    for address in interface.private_addresses() {
        super::launch::release_address(tx, account_id, &interface.address_pool, address);
    }
    let mut usage = interface_usage(tx, account_id)?;
    usage.count = usage.count.saturating_sub(1);
    super::usage::write(tx, account_id, Kind::NetworkInterfaces, &usage);
    tx.delete(NETWORK_INTERFACES, key(account_id, &interface.id));
    if let Some(token) = &interface.client_token {
        super::idempotency::forget(tx, account_id, CREATE, token);
    }
    Ok(())
}

/// `eni-attach-` and 8 or 17 hex digits (`InvalidParameterValue` else).
fn check_attachment_id(id: &str) -> ApiResult<()> {
    if crate::config::is_resource_id(id, "eni-attach") {
        Ok(())
    } else {
        Err(ApiError::invalid_value(format!(
            "Value ({id}) for parameter attachmentId is invalid. Expected: 'eni-attach-...'."
        )))
    }
}
