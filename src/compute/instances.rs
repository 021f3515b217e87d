//! Instances: launch, state changes, listing, idempotency and quotas.
//!
//! Every instance belongs to one account and is placed by the ZoneScheduler
//! on a compute host when it is launched or started; the host's capacity is
//! reserved in the same atomic store write that records the instance, and
//! released when the instance stops or terminates. States follow EC2:
//! `pending` (0) -> `running` (16), `stopping` (64) -> `stopped` (80),
//! `shutting-down` (32) -> `terminated` (48); the transitional ones advance
//! on their own (see `lifecycle`). A ClientToken makes RunInstances
//! idempotent per account: the same token and parameters return the original
//! reservation, other parameters are `IdempotentParameterMismatch`, and
//! concurrent retries create one reservation because the check and the
//! launch happen under one lock. All instances are also kept in memory,
//! indexed per account in launch order, so no request scans every account.

use super::scheduler::Demand;
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::store::{StoreHandle, StoreResult, WriteBatch};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

pub(crate) const INSTANCES: &str = "instances";
pub(super) const CLIENT_TOKENS: &str = "client_tokens";
const META: &str = "meta";
const ADDRESS_COUNTER: &str = "address_counter/";

/// EC2's instance states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl InstanceState {
    pub fn code(self) -> u16 {
        match self {
            InstanceState::Pending => 0,
            InstanceState::Running => 16,
            InstanceState::ShuttingDown => 32,
            InstanceState::Terminated => 48,
            InstanceState::Stopping => 64,
            InstanceState::Stopped => 80,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    /// States in which the instance holds capacity on a host.
    pub fn holds_capacity(self) -> bool {
        matches!(
            self,
            InstanceState::Pending
                | InstanceState::Running
                | InstanceState::Stopping
                | InstanceState::ShuttingDown
        )
    }
}

/// `stateReason`: why the instance is in its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReason {
    pub code: String,
    pub message: String,
}

impl StateReason {
    fn user_initiated() -> Self {
        Self {
            code: "Client.UserInitiatedShutdown".into(),
            message: "Client.UserInitiatedShutdown: User initiated shutdown".into(),
        }
    }
}

/// A security group reference in `groupSet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    pub id: String,
    pub name: String,
}

/// A resource tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// One instance, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    /// Launch order (per gateway); orders listings and pagination.
    pub sequence: u64,
    pub account_id: String,
    pub reservation_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub architecture: String,
    pub platform: String,
    pub key_name: Option<String>,
    pub state: InstanceState,
    /// When the current transitional state advances on its own.
    pub transition_at: Option<DateTime<Utc>>,
    /// `reason` (StateTransitionReason).
    pub reason: Option<String>,
    pub state_reason: Option<StateReason>,
    pub launch_time: DateTime<Utc>,
    pub ami_launch_index: u32,
    /// The compute host while the instance holds capacity.
    pub host: Option<String>,
    pub availability_zone: String,
    pub private_ip: String,
    pub private_dns_name: String,
    pub client_token: Option<String>,
    /// Base64, as sent.
    pub user_data: Option<String>,
    pub security_groups: Vec<GroupRef>,
    pub tags: Vec<Tag>,
    pub disable_api_termination: bool,
    /// `stop` or `terminate`.
    pub shutdown_behavior: String,
    /// When a terminated instance disappears.
    pub purge_at: Option<DateTime<Utc>>,
    /// The account's default VPC and the zone's default subnet.
    #[serde(default)]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// The root device of the image it was launched from (`/dev/xvda`
    /// when that image named none; older records have none).
    #[serde(default)]
    pub root_device_name: Option<String>,
}

impl Instance {
    /// The root device name DescribeInstances shows.
    pub fn root_device(&self) -> &str {
        self.root_device_name
            .as_deref()
            .unwrap_or(super::images::DEFAULT_ROOT_DEVICE)
    }

    pub(super) fn demand(&self) -> Demand {
        Demand {
            vcpus: self.vcpus,
            memory_mib: self.memory_mib,
        }
    }

    pub(super) fn key(&self) -> Vec<u8> {
        instance_key(&self.account_id, &self.id)
    }

    /// Keeps only what a terminated instance still shows for its retention
    /// hour (DescribeInstances' fields): its user data (up to 16 KiB, and
    /// readable only while the instance exists) goes, so that churn cannot
    /// make a tenant's terminated instances weigh on memory.
    /// (The host's capacity is released by the transition itself.)
    pub(super) fn retire(&mut self) {
        self.user_data = None;
    }
}

fn instance_key(account_id: &str, instance_id: &str) -> Vec<u8> {
    format!("{account_id}/{instance_id}").into_bytes()
}

/// A ClientToken and what it launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ClientTokenRecord {
    pub(super) account_id: String,
    pub(super) token: String,
    /// Digest of the launch parameters the token was first used with.
    pub(super) fingerprint: String,
    pub(super) reservation_id: String,
    pub(super) instance_ids: Vec<String>,
    pub(super) created_at: DateTime<Utc>,
    /// Set once every instance of the token is gone: 24 hours after they
    /// terminated, the token is forgotten.
    #[serde(default)]
    pub(super) expires_at: Option<DateTime<Utc>>,
}

/// How long a ClientToken outlives the termination of its instances.
pub(super) const CLIENT_TOKEN_RETENTION_HOURS: i64 = 24;

/// A reservation: one RunInstances call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub reservation_id: String,
    pub owner_id: String,
    pub instances: Vec<Instance>,
}

/// Launch parameters, validated by the API layer's parser.
#[derive(Debug, Clone, Default)]
pub struct LaunchRequest {
    pub image_id: String,
    pub instance_type: String,
    pub min_count: u32,
    pub max_count: u32,
    pub availability_zone: Option<String>,
    pub key_name: Option<String>,
    pub security_group_names: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub user_data: Option<String>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
    pub disable_api_termination: bool,
    pub shutdown_behavior: String,
    pub dry_run: bool,
    /// Digest of every launch parameter but ClientToken and DryRun.
    pub fingerprint: String,
    /// A default subnet of the account (it names the zone).
    pub subnet_id: Option<String>,
}

/// What a launch resolved before taking the instance lock.
struct LaunchPlan<'a> {
    image: &'a super::catalog::Image,
    instance_type: &'a super::catalog::InstanceType,
    demand: Demand,
    now: DateTime<Utc>,
    vpc: &'a super::network::Vpc,
    subnets: &'a [super::network::Subnet],
    groups: &'a [GroupRef],
}

/// A state change of one instance, as Start/Stop/Terminate answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub instance_id: String,
    pub previous: InstanceState,
    pub current: InstanceState,
}

/// What a state-changing action asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateAction {
    Start,
    Stop,
    Reboot,
    Terminate,
}

#[derive(Default)]
struct AccountInstances {
    by_sequence: BTreeMap<u64, Instance>,
    sequence_of: HashMap<String, u64>,
    /// Instances not yet terminated (the instance quota counts these).
    live: u32,
    /// vCPUs of instances holding capacity (the vCPU quota counts these).
    vcpus_holding: u32,
}

impl AccountInstances {
    /// Adds (`sign` 1) or removes (`sign` -1) an instance's quota usage.
    fn count(&mut self, instance: &Instance, sign: i64) {
        let apply = |value: u32, amount: u32| (value as i64 + sign * amount as i64).max(0) as u32;
        if instance.state != InstanceState::Terminated {
            self.live = apply(self.live, 1);
        }
        if instance.state.holds_capacity() {
            self.vcpus_holding = apply(self.vcpus_holding, instance.vcpus);
        }
    }
}

#[derive(Default)]
pub(super) struct Book {
    accounts: HashMap<String, AccountInstances>,
    /// (due, account, instance id) of every pending transition or purge.
    pub(super) schedule: BTreeSet<(DateTime<Utc>, String, String)>,
    next_sequence: u64,
    pub(super) tokens: HashMap<(String, String), ClientTokenRecord>,
    /// (expiry, account, token) of tokens whose instances are all gone.
    pub(super) token_expiry: BTreeSet<(DateTime<Utc>, String, String)>,
    /// Next address offset per `account/zone` (each account's default VPC
    /// has its own address space).
    address_counters: HashMap<String, u32>,
    /// (account, address) held by instances not yet terminated.
    addresses_in_use: HashSet<(String, String)>,
}

impl Book {
    fn insert(&mut self, instance: Instance) {
        if let Some(due) = instance.transition_at.or(instance.purge_at) {
            self.schedule
                .insert((due, instance.account_id.clone(), instance.id.clone()));
        }
        self.next_sequence = self.next_sequence.max(instance.sequence + 1);
        if instance.state != InstanceState::Terminated {
            self.addresses_in_use
                .insert((instance.account_id.clone(), instance.private_ip.clone()));
        }
        let account = self
            .accounts
            .entry(instance.account_id.clone())
            .or_default();
        account
            .sequence_of
            .insert(instance.id.clone(), instance.sequence);
        account.count(&instance, 1);
        account.by_sequence.insert(instance.sequence, instance);
    }

    /// Replaces a stored instance, keeping the schedule in step.
    pub(super) fn update(&mut self, before: &Instance, after: Instance) {
        // A terminated instance gives its private address back at once.
        if after.state == InstanceState::Terminated && before.state != InstanceState::Terminated {
            self.addresses_in_use
                .remove(&(after.account_id.clone(), after.private_ip.clone()));
        }
        if let Some(due) = before.transition_at.or(before.purge_at) {
            self.schedule
                .remove(&(due, before.account_id.clone(), before.id.clone()));
        }
        if let Some(due) = after.transition_at.or(after.purge_at) {
            self.schedule
                .insert((due, after.account_id.clone(), after.id.clone()));
        }
        if let Some(account) = self.accounts.get_mut(&after.account_id) {
            account.count(before, -1);
            account.count(&after, 1);
            account.by_sequence.insert(after.sequence, after);
        }
    }

    pub(super) fn remove(&mut self, instance: &Instance) {
        if let Some(due) = instance.transition_at.or(instance.purge_at) {
            self.schedule
                .remove(&(due, instance.account_id.clone(), instance.id.clone()));
        }
        self.addresses_in_use
            .remove(&(instance.account_id.clone(), instance.private_ip.clone()));
        if let Some(account) = self.accounts.get_mut(&instance.account_id) {
            account.sequence_of.remove(&instance.id);
            if let Some(stored) = account.by_sequence.remove(&instance.sequence) {
                account.count(&stored, -1);
            }
        }
    }

    pub(super) fn get(&self, account_id: &str, instance_id: &str) -> Option<&Instance> {
        let account = self.accounts.get(account_id)?;
        account
            .by_sequence
            .get(account.sequence_of.get(instance_id)?)
    }
}

/// Every instance, cached from the store, plus what launches need.
pub struct InstanceBook {
    pub(super) book: Mutex<Book>,
    /// Wakes the lifecycle driver when a transition is scheduled.
    pub(crate) wake: tokio::sync::Notify,
}

impl InstanceBook {
    pub fn load(store: &StoreHandle) -> StoreResult<Self> {
        let mut book = Book::default();
        for instance in store.records::<Instance>(INSTANCES, b"")? {
            book.insert(instance);
        }
        for token in store.records::<ClientTokenRecord>(CLIENT_TOKENS, b"")? {
            book.tokens
                .insert((token.account_id.clone(), token.token.clone()), token);
        }
        for (account_zone, counter) in
            store.records::<(String, u32)>(META, ADDRESS_COUNTER.as_bytes())?
        {
            book.address_counters.insert(account_zone, counter);
        }
        Ok(Self {
            book: Mutex::new(book),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// The earliest scheduled transition or purge.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let book = crate::sync::lock(&self.book);
        let instance = book.schedule.first().map(|(due, _, _)| *due);
        let token = book.token_expiry.first().map(|(due, _, _)| *due);
        instance.into_iter().chain(token).min()
    }
}

/// The instance id error for ids that do not exist in the account.
fn instances_not_found(missing: &[String]) -> ApiError {
    let message = match missing {
        [one] => format!("The instance ID '{one}' does not exist"),
        many => format!("The instance IDs '{}' do not exist", many.join(", ")),
    };
    ApiError::NotFound {
        code: "InvalidInstanceID.NotFound",
        message,
    }
}

/// `User initiated (2016-11-15 12:34:56 GMT)`.
fn user_initiated(now: DateTime<Utc>) -> String {
    format!("User initiated ({} GMT)", now.format("%Y-%m-%d %H:%M:%S"))
}

fn format_ip(address: u32) -> String {
    std::net::Ipv4Addr::from(address).to_string()
}

impl Compute {
    /// The next free private address in `zone`.
    fn allocate_private_address(
        &self,
        book: &mut Book,
        account_id: &str,
        zone: &str,
        zone_id: &str,
        batch: &mut WriteBatch,
    ) -> ApiResult<String> {
        let network = super::network::zone_network(zone_id);
        // Offsets 4..4091 of the /20 (AWS reserves the first four and the last).
        const FIRST: u32 = 4;
        const COUNT: u32 = 4088;
        let counter_key = format!("{account_id}/{zone}");
        let start = book
            .address_counters
            .get(&counter_key)
            .copied()
            .unwrap_or(0);
        for step in 0..COUNT {
            let offset = FIRST + (start + step) % COUNT;
            let address = (account_id.to_string(), format_ip(network + offset));
            if !book.addresses_in_use.contains(&address) {
                let next = (start + step + 1) % COUNT;
                book.address_counters.insert(counter_key.clone(), next);
                batch.put_record(
                    META,
                    format!("{ADDRESS_COUNTER}{counter_key}").into_bytes(),
                    &(counter_key, next),
                );
                book.addresses_in_use.insert(address.clone());
                return Ok(address.1);
            }
        }
        Err(ApiError::NotFound {
            code: "InsufficientFreeAddressesInSubnet",
            message: format!("The default subnet in {zone} has no free private addresses left"),
        })
    }

    fn private_dns_name(&self, address: &str) -> String {
        let host = format!("ip-{}", address.replace('.', "-"));
        if self.region.name == "us-east-1" {
            format!("{host}.ec2.internal")
        } else {
            format!("{host}.{}.compute.internal", self.region.name)
        }
    }

    /// The reservation a token launched, with the instances' current state.
    fn reservation_of(&self, book: &Book, record: &ClientTokenRecord) -> Reservation {
        let instances = record
            .instance_ids
            .iter()
            .filter_map(|id| book.get(&record.account_id, id).cloned())
            .collect();
        Reservation {
            reservation_id: record.reservation_id.clone(),
            owner_id: record.account_id.clone(),
            instances,
        }
    }

    /// RunInstances: validate, check the token, check quotas, place each
    /// instance, record everything in one atomic write, wait for durability.
    pub async fn run_instances(
        &self,
        account_id: &str,
        request: LaunchRequest,
    ) -> ApiResult<Reservation> {
        let image = self
            .visible_image(account_id, &request.image_id)?
            .ok_or_else(|| ApiError::NotFound {
                code: "InvalidAMIID.NotFound",
                message: format!("The image id '[{}]' does not exist", request.image_id),
            })?;
        let instance_type = self
            .catalog
            .instance_type(&request.instance_type)
            .ok_or_else(|| {
                ApiError::invalid_value(format!(
                    "The instance type '{}' does not exist",
                    request.instance_type
                ))
            })?;
        if instance_type.architecture != image.architecture {
            return Err(ApiError::invalid_value(format!(
                "The architecture '{}' of the specified instance type does not match the architecture '{}' of the specified AMI.",
                instance_type.architecture, image.architecture
            )));
        }
        if let Some(key_name) = &request.key_name {
            if self.key_pair(account_id, key_name)?.is_none() {
                return Err(ApiError::NotFound {
                    code: "InvalidKeyPair.NotFound",
                    message: format!("The key pair '{key_name}' does not exist"),
                });
            }
        }
        let now = self.clock.now();
        let demand = Demand {
            vcpus: instance_type.vcpus,
            memory_mib: instance_type.memory_mib,
        };
        let (vpc, subnets) = self.default_network(account_id).await?;
        let mut request = request;
        if let Some(subnet_id) = &request.subnet_id {
            super::ids::check_id(subnet_id, "subnet", "InvalidSubnetID.Malformed")?;
            let subnet = subnets
                .iter()
                .find(|s| &s.subnet_id == subnet_id)
                .ok_or_else(|| ApiError::NotFound {
                    code: "InvalidSubnetID.NotFound",
                    message: format!("The subnet ID '{subnet_id}' does not exist"),
                })?;
            match &request.availability_zone {
                Some(zone) if zone != &subnet.availability_zone => {
                    return Err(ApiError::InvalidParameterCombination(format!(
                        "The subnet {subnet_id} is in {}, not in the requested {zone}",
                        subnet.availability_zone
                    )))
                }
                _ => request.availability_zone = Some(subnet.availability_zone.clone()),
            }
        }
        let groups = self
            .launch_groups(
                account_id,
                &request.security_group_names,
                &request.security_group_ids,
            )
            .await?;
        let plan = LaunchPlan {
            groups: &groups,
            image: &image,
            instance_type,
            demand,
            now,
            vpc: &vpc,
            subnets: &subnets,
        };
        let (reservation, sequence) = self.launch_locked(account_id, &request, plan)?;
        self.instances.wake.notify_one();
        self.store.durable(sequence).await?;
        Ok(reservation)
    }

    /// The part of RunInstances done under the instance lock (synchronous,
    /// so the lock is never held across an await).
    fn launch_locked(
        &self,
        account_id: &str,
        request: &LaunchRequest,
        plan: LaunchPlan<'_>,
    ) -> ApiResult<(Reservation, u64)> {
        let LaunchPlan {
            image,
            instance_type,
            demand,
            now,
            vpc,
            subnets,
            groups,
        } = plan;
        let mut book = crate::sync::lock(&self.instances.book);
        if let Some(token) = &request.client_token {
            if let Some(record) = book.tokens.get(&(account_id.to_string(), token.clone())) {
                if record.fingerprint != request.fingerprint {
                    return Err(ApiError::IdempotentParameterMismatch(format!(
                        "Arguments on this idempotent request are inconsistent with arguments used in previous request(s) with client token '{token}'"
                    )));
                }
                if request.dry_run {
                    return Err(ApiError::DryRunOperation);
                }
                // The original launch may still be waiting for its flush.
                return Ok((
                    self.reservation_of(&book, record),
                    self.store.last_applied(),
                ));
            }
        }
        // Quotas: instances not yet terminated, and vCPUs holding capacity.
        let (count, vcpus_in_use) = book
            .accounts
            .get(account_id)
            .map_or((0, 0), |account| (account.live, account.vcpus_holding));
        let instance_room = self.quotas.max_instances.saturating_sub(count);
        let vcpu_limit = self.vcpu_limit();
        let vcpu_room = vcpu_limit.saturating_sub(vcpus_in_use) / demand.vcpus.max(1);
        if instance_room < request.min_count {
            return Err(ApiError::InstanceLimitExceeded(format!(
                "Your quota allows for {instance_room} more running instance(s). You requested at least {}.",
                request.min_count
            )));
        }
        if vcpu_room < request.min_count {
            return Err(ApiError::VcpuLimitExceeded(format!(
                "You have requested more vCPU capacity than your current vCPU limit of {vcpu_limit} allows for the instance bucket that the specified instance type belongs to."
            )));
        }
        let wanted = request.max_count.min(instance_room).min(vcpu_room);
        let book = &mut *book;
        self.services.transaction(|hosts| {
            if let Some(zone) = &request.availability_zone {
                if !hosts.zone_exists(zone) {
                    return Err(ApiError::invalid_value(format!("Invalid availability zone: [{zone}]")));
                }
            }
            let mut placed = Vec::new();
            for _ in 0..wanted {
                match hosts.place(request.availability_zone.as_deref(), demand, self.scheduler_policy, now) {
                    Some(host) => placed.push(host),
                    None => break,
                }
            }
            if (placed.len() as u32) < request.min_count {
                let zone = request.availability_zone.clone().map_or(String::new(), |z| format!(" in {z}"));
                return Err(ApiError::InsufficientInstanceCapacity(format!(
                    "We currently do not have sufficient {} capacity{zone}. Our system will be working on provisioning additional capacity.",
                    request.instance_type
                )));
            }
            if request.dry_run {
                return Err(ApiError::DryRunOperation);
            }
            let reservation_id = super::ids::new_id("r");
            let mut instances = Vec::new();
            for (index, host) in placed.into_iter().enumerate() {
                let zone_id = hosts.zone_id(&host.availability_zone).unwrap_or_default().to_string();
                let private_ip =
                    self.allocate_private_address(book, account_id, &host.availability_zone, &zone_id, &mut hosts.batch)?;
                let instance = Instance {
                    id: super::ids::new_id("i"),
                    sequence: book.next_sequence + index as u64,
                    account_id: account_id.to_string(),
                    reservation_id: reservation_id.clone(),
                    image_id: image.id.clone(),
                    instance_type: instance_type.name.clone(),
                    vcpus: instance_type.vcpus,
                    memory_mib: instance_type.memory_mib,
                    architecture: image.architecture.clone(),
                    platform: image.platform.clone(),
                    key_name: request.key_name.clone(),
                    state: InstanceState::Pending,
                    transition_at: Some(now + self.lifecycle.boot_delay),
                    reason: None,
                    state_reason: Some(StateReason { code: "pending".into(), message: "pending".into() }),
                    launch_time: now,
                    ami_launch_index: index as u32,
                    host: Some(host.host.clone()),
                    availability_zone: host.availability_zone.clone(),
                    private_dns_name: self.private_dns_name(&private_ip),
                    private_ip,
                    client_token: request.client_token.clone(),
                    user_data: request.user_data.clone(),
                    security_groups: groups.to_vec(),
                    tags: request.tags.clone(),
                    disable_api_termination: request.disable_api_termination,
                    shutdown_behavior: request.shutdown_behavior.clone(),
                    purge_at: None,
                    vpc_id: Some(vpc.vpc_id.clone()),
                    subnet_id: subnets
                        .iter()
                        .find(|s| s.availability_zone == host.availability_zone)
                        .map(|s| s.subnet_id.clone()),
                    root_device_name: image.root_device_name.clone(),
                };
                hosts.batch.put_record(INSTANCES, instance.key(), &instance);
                instances.push(instance);
            }
            if let Some(token) = &request.client_token {
                let record = ClientTokenRecord {
                    account_id: account_id.to_string(),
                    token: token.clone(),
                    fingerprint: request.fingerprint.clone(),
                    reservation_id: reservation_id.clone(),
                    instance_ids: instances.iter().map(|i| i.id.clone()).collect(),
                    created_at: now,
                    expires_at: None,
                };
                hosts.batch.put_record(CLIENT_TOKENS, format!("{account_id}/{token}").into_bytes(), &record);
                book.tokens.insert((account_id.to_string(), token.clone()), record);
            }
            for instance in &instances {
                book.insert(instance.clone());
            }
            Ok(Reservation { reservation_id, owner_id: account_id.to_string(), instances })
        })
    }

    /// One page of the account's instances in launch order: up to `limit`
    /// (all without one) after sequence `after` that pass `keep`, and whether
    /// more would follow. Walks only as far as the page needs, cloning only
    /// what it returns.
    pub fn instance_page(
        &self,
        account_id: &str,
        after: Option<u64>,
        limit: Option<usize>,
        keep: impl Fn(&Instance) -> bool,
    ) -> (Vec<Instance>, bool) {
        let book = crate::sync::lock(&self.instances.book);
        let Some(account) = book.accounts.get(account_id) else {
            return (Vec::new(), false);
        };
        let start = after.map_or(0, |a| a + 1);
        let mut matching = account
            .by_sequence
            .range(start..)
            .map(|(_, i)| i)
            .filter(|i| keep(i));
        let page: Vec<Instance> = match limit {
            Some(limit) => matching.by_ref().take(limit).cloned().collect(),
            None => matching.by_ref().cloned().collect(),
        };
        let more = limit.is_some() && matching.next().is_some();
        (page, more)
    }

    /// How many of the account's instances (not terminated) are in `zone`.
    pub fn instances_in_zone(&self, account_id: &str, zone: &str) -> usize {
        let book = crate::sync::lock(&self.instances.book);
        book.accounts.get(account_id).map_or(0, |account| {
            account
                .by_sequence
                .values()
                .filter(|i| i.availability_zone == zone && i.state != InstanceState::Terminated)
                .count()
        })
    }

    /// The account's instances: those named (all must exist), or all, in
    /// launch order, starting after sequence `after`.
    pub fn instances(
        &self,
        account_id: &str,
        ids: &[String],
        after: Option<u64>,
    ) -> ApiResult<Vec<Instance>> {
        for id in ids {
            super::ids::check_id(id, "i", "InvalidInstanceID.Malformed")?;
        }
        let book = crate::sync::lock(&self.instances.book);
        if !ids.is_empty() {
            let missing: Vec<String> = ids
                .iter()
                .filter(|id| book.get(account_id, id).is_none())
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(instances_not_found(&missing));
            }
            let mut found: Vec<Instance> = ids
                .iter()
                .filter_map(|id| book.get(account_id, id).cloned())
                .collect();
            found.sort_by_key(|i| i.sequence);
            found.dedup_by_key(|i| i.sequence);
            return Ok(found);
        }
        let Some(account) = book.accounts.get(account_id) else {
            return Ok(Vec::new());
        };
        let start = after.map_or(0, |a| a + 1);
        Ok(account
            .by_sequence
            .range(start..)
            .map(|(_, i)| i.clone())
            .collect())
    }

    /// Start, Stop, Reboot or Terminate `ids`: every id must exist and be in
    /// a state the action accepts, or nothing changes.
    pub async fn change_state(
        &self,
        account_id: &str,
        ids: &[String],
        action: StateAction,
        dry_run: bool,
    ) -> ApiResult<Vec<StateChange>> {
        let current = self.instances(account_id, ids, None)?;
        let now = self.clock.now();
        let (changes, sequence) =
            self.change_state_locked(account_id, ids, &current, action, dry_run, now)?;
        self.instances.wake.notify_one();
        self.store.durable(sequence).await?;
        Ok(changes)
    }

    fn change_state_locked(
        &self,
        account_id: &str,
        ids: &[String],
        current: &[Instance],
        action: StateAction,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> ApiResult<(Vec<StateChange>, u64)> {
        let mut book = crate::sync::lock(&self.instances.book);
        // Re-read under the lock: the lifecycle may have moved them on.
        let current: Vec<Instance> = current
            .iter()
            .filter_map(|i| book.get(account_id, &i.id).cloned())
            .collect();
        if current.len() != ids.iter().collect::<HashSet<_>>().len() {
            let missing: Vec<String> = ids
                .iter()
                .filter(|id| book.get(account_id, id).is_none())
                .cloned()
                .collect();
            return Err(instances_not_found(&missing));
        }
        for instance in &current {
            check_transition(instance, action)?;
        }
        let book = &mut *book;
        let lifecycle = &self.lifecycle;
        self.services.transaction(|hosts| {
            let mut changes = Vec::new();
            let mut updated = Vec::new();
            for before in &current {
                let mut after = before.clone();
                match (action, before.state) {
                    (StateAction::Reboot, _) => {}
                    (StateAction::Start, InstanceState::Stopped) => {
                        let host = hosts.place(Some(&before.availability_zone), before.demand(), self.scheduler_policy, now).ok_or_else(|| {
                            ApiError::InsufficientInstanceCapacity(format!(
                                "Insufficient capacity to start {} in {}: no compute host has room for {}",
                                before.id, before.availability_zone, before.instance_type
                            ))
                        })?;
                        after.host = Some(host.host);
                        after.state = InstanceState::Pending;
                        after.transition_at = Some(now + lifecycle.boot_delay);
                        after.reason = None;
                        after.state_reason = Some(StateReason { code: "pending".into(), message: "pending".into() });
                    }
                    (StateAction::Stop, InstanceState::Pending | InstanceState::Running) => {
                        after.state = InstanceState::Stopping;
                        after.transition_at = Some(now + lifecycle.stop_delay);
                        after.reason = Some(user_initiated(now));
                        after.state_reason = Some(StateReason::user_initiated());
                    }
                    (StateAction::Terminate, state) if state != InstanceState::Terminated && state != InstanceState::ShuttingDown => {
                        after.state = InstanceState::ShuttingDown;
                        after.transition_at = Some(now + lifecycle.terminate_delay);
                        after.reason = Some(user_initiated(now));
                        after.state_reason = Some(StateReason::user_initiated());
                    }
                    // Already where the action leads (stop a stopped instance,
                    // start a running one, terminate twice): nothing to do.
                    _ => {}
                }
                changes.push(StateChange { instance_id: before.id.clone(), previous: before.state, current: after.state });
                if &after != before {
                    hosts.batch.put_record(INSTANCES, after.key(), &after);
                    updated.push(after);
                }
            }
            if dry_run {
                return Err(ApiError::DryRunOperation);
            }
            for after in updated {
                let before = current.iter().find(|i| i.id == after.id).expect("changed instance was read");
                book.update(before, after);
            }
            Ok(changes)
        })
    }
}

/// EC2's rules for which states each action starts from.
fn check_transition(instance: &Instance, action: StateAction) -> ApiResult<()> {
    use InstanceState::*;
    let allowed = match action {
        StateAction::Start => matches!(instance.state, Stopped | Pending | Running),
        StateAction::Stop => matches!(instance.state, Pending | Running | Stopping | Stopped),
        StateAction::Reboot => matches!(instance.state, Running),
        StateAction::Terminate => {
            if instance.disable_api_termination && instance.state != Terminated {
                return Err(ApiError::OperationNotPermitted(format!(
                    "The instance '{}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.",
                    instance.id
                )));
            }
            true
        }
    };
    if allowed {
        Ok(())
    } else {
        let verb = match action {
            StateAction::Start => "started",
            StateAction::Stop => "stopped",
            StateAction::Reboot => "rebooted",
            StateAction::Terminate => "terminated",
        };
        Err(ApiError::IncorrectInstanceState(format!(
            "The instance '{}' is not in a state from which it can be {verb}.",
            instance.id
        )))
    }
}

impl Compute {
    /// Applies a tag change to instances and writes it together with `batch`
    /// (other resources' changes) in one atomic apply; returns its sequence.
    pub(crate) fn retag_instances(
        &self,
        account_id: &str,
        ids: &[String],
        change: &super::tags::TagChange,
        batch: WriteBatch,
        dry_run: bool,
    ) -> ApiResult<u64> {
        let mut batch = batch;
        let mut book = crate::sync::lock(&self.instances.book);
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| book.get(account_id, id).is_none())
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(instances_not_found(&missing));
        }
        let mut updated = Vec::new();
        for id in ids {
            let before = book.get(account_id, id).cloned().expect("checked above");
            let mut after = before.clone();
            change.apply_to(&mut after.tags);
            if after.tags.len() > super::tags::MAX_TAGS {
                return Err(super::tags::too_many_tags(id));
            }
            batch.put_record(INSTANCES, after.key(), &after);
            updated.push((before, after));
        }
        if dry_run {
            return Err(ApiError::DryRunOperation);
        }
        let sequence = self.store.apply(&batch)?;
        for (before, after) in updated {
            book.update(&before, after);
        }
        Ok(sequence)
    }
}

/// A change ModifyInstanceAttribute makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeChange {
    /// Stopped instances only; the type must exist and match the image.
    InstanceType(String),
    /// Base64; stopped instances only.
    UserData(String),
    DisableApiTermination(bool),
    /// `stop` or `terminate`.
    ShutdownBehavior(String),
}

impl Compute {
    /// ModifyInstanceAttribute.
    pub async fn modify_instance(
        &self,
        account_id: &str,
        instance_id: &str,
        change: AttributeChange,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::ids::check_id(instance_id, "i", "InvalidInstanceID.Malformed")?;
        let sequence = {
            let mut book = crate::sync::lock(&self.instances.book);
            let before = book
                .get(account_id, instance_id)
                .cloned()
                .ok_or_else(|| instances_not_found(&[instance_id.to_string()]))?;
            if before.state == InstanceState::Terminated {
                return Err(ApiError::IncorrectInstanceState(format!(
                    "The instance '{instance_id}' is terminated."
                )));
            }
            let must_be_stopped = matches!(
                change,
                AttributeChange::InstanceType(_) | AttributeChange::UserData(_)
            );
            if must_be_stopped && before.state != InstanceState::Stopped {
                return Err(ApiError::IncorrectInstanceState(format!(
                    "The instance '{instance_id}' is not in the 'stopped' state."
                )));
            }
            let mut after = before.clone();
            match change {
                AttributeChange::InstanceType(name) => {
                    let instance_type = self.catalog.instance_type(&name).ok_or_else(|| {
                        ApiError::invalid_value(format!(
                            "The instance type '{name}' does not exist"
                        ))
                    })?;
                    if instance_type.architecture != before.architecture {
                        return Err(ApiError::invalid_value(format!(
                            "The instance type '{name}' ({}) does not match the architecture of the instance's image ({})",
                            instance_type.architecture, before.architecture
                        )));
                    }
                    after.instance_type = instance_type.name.clone();
                    after.vcpus = instance_type.vcpus;
                    after.memory_mib = instance_type.memory_mib;
                }
                AttributeChange::UserData(data) => after.user_data = Some(data),
                AttributeChange::DisableApiTermination(value) => {
                    after.disable_api_termination = value
                }
                AttributeChange::ShutdownBehavior(value) => after.shutdown_behavior = value,
            }
            if dry_run {
                return Err(ApiError::DryRunOperation);
            }
            let mut batch = WriteBatch::new();
            batch.put_record(INSTANCES, after.key(), &after);
            let sequence = self.store.apply(&batch)?;
            book.update(&before, after);
            sequence
        };
        self.store.durable(sequence).await?;
        Ok(())
    }
}
