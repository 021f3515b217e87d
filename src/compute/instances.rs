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
//! reservation, other parameters are `IdempotentParameterMismatch`.
//!
//! An instance is kept as two records, as Kubernetes keeps spec and status:
//! `instances/<account>/<id>` holds what the API wrote (type, tags,
//! attributes) and `instance_status/<account>/<id>` its state, host and
//! pending transition, so tagging an instance never conflicts with the
//! lifecycle moving it on. `instance_order/<account>/<sequence>` lists an
//! account's instances in launch order (listings and NextTokens walk it),
//! and `schedule/<due>/...` holds every transition due, written in the same
//! commit as the change that schedules it. Launches and state changes are
//! in `launch` and `state_changes`, attribute changes in
//! `instance_attributes`, the reads (by id, pages in launch order) in
//! `instance_reads`, the upgrade of older records in `upgrade`; this module
//! has the records and the writes they share.

use super::operation::Tx;
use super::scheduler::Demand;
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::store::{Record, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub(crate) const INSTANCES: &str = "instances";
pub(crate) const INSTANCE_STATUS: &str = "instance_status";
pub(crate) const INSTANCE_ORDER: &str = "instance_order";
pub(crate) const SCHEDULE: &str = "schedule";
pub(super) const CLIENT_TOKENS: &str = "client_tokens";

/// EC2's instance states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    #[default]
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
    pub(super) fn user_initiated() -> Self {
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

/// One instance: its spec (persisted in `instances`) joined with its
/// status (the fields marked `skip_serializing`, persisted in
/// `instance_status`; version 1 records carried them inline).
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
    #[serde(default, skip_serializing)]
    pub state: InstanceState,
    /// When the current transitional state advances on its own.
    #[serde(default, skip_serializing)]
    pub transition_at: Option<DateTime<Utc>>,
    /// `reason` (StateTransitionReason).
    #[serde(default, skip_serializing)]
    pub reason: Option<String>,
    #[serde(default, skip_serializing)]
    pub state_reason: Option<StateReason>,
    pub launch_time: DateTime<Utc>,
    pub ami_launch_index: u32,
    /// The compute host while the instance holds capacity.
    #[serde(default, skip_serializing)]
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
    #[serde(default, skip_serializing)]
    pub purge_at: Option<DateTime<Utc>>,
    /// How many times RebootInstances asked it to reboot (its agent
    /// restarts a real instance when this grows).
    #[serde(default, skip_serializing)]
    pub reboots: u32,
    /// Its VPC and subnet (a zone's default subnet unless launched in a
    /// created one).
    #[serde(default)]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// The root device of the image it was launched from (`/dev/xvda`
    /// when that image named none; older records have none).
    #[serde(default)]
    pub root_device_name: Option<String>,
    /// Where its private address is held: a created subnet's id (`None`:
    /// the zone's default subnet, keyed by zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_pool: Option<String>,
    /// A Windows instance's password, encrypted with its key pair's public
    /// key (see `passwords`); the password itself is never kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_data: Option<String>,
    /// Its primary network interface's own settings (`None`: EC2's
    /// defaults; see `network_interfaces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_interface: Option<super::network_interfaces::PrimaryInterface>,
    /// The network interfaces attached besides the primary (their records
    /// hold the attachment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached_interfaces: Vec<String>,
    /// The volumes attached to it (its launch volumes, then those
    /// AttachVolume added), as their attachments stand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block_devices: Vec<super::volumes::AttachedVolume>,
    /// Its public IPv4 address while it has one (`public_addresses`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    /// Whether it gets a public address (again) when it starts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub assign_public_ip: bool,
}

impl Instance {
    /// The pool its private address is held in (see `address_pool`).
    pub fn address_pool(&self) -> &str {
        self.address_pool
            .as_deref()
            .unwrap_or(&self.availability_zone)
    }

    /// Every private address it holds: its primary address, then its
    /// primary interface's secondary addresses.
    pub fn private_addresses(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.private_ip).chain(
            self.primary_interface
                .iter()
                .flat_map(|p| p.secondary_private_ips.iter()),
        )
    }

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

    /// The state part of the instance.
    pub fn status(&self) -> InstanceStatus {
        InstanceStatus {
            state: self.state,
            transition_at: self.transition_at,
            reason: self.reason.clone(),
            state_reason: self.state_reason.clone(),
            host: self.host.clone(),
            purge_at: self.purge_at,
            reboots: self.reboots,
        }
    }

    pub(super) fn set_status(&mut self, status: InstanceStatus) {
        self.state = status.state;
        self.transition_at = status.transition_at;
        self.reason = status.reason;
        self.state_reason = status.state_reason;
        self.host = status.host;
        self.purge_at = status.purge_at;
        self.reboots = status.reboots;
    }

    /// When the lifecycle next looks at it (a transition or the purge).
    pub(super) fn due(&self) -> Option<DateTime<Utc>> {
        self.transition_at.or(self.purge_at)
    }

    /// True while it counts against the instance quota.
    pub(super) fn is_live(&self) -> bool {
        self.state != InstanceState::Terminated
    }

    /// Keeps only what a terminated instance still shows for its retention
    /// hour (DescribeInstances' fields, its ClientToken and its tags, and
    /// the private address its console log names): its user data (up to
    /// 16 KiB, and readable only while the instance exists), encrypted
    /// password, DNS name, interface settings (but sourceDestCheck) and
    /// volumes go, so that churn cannot make a tenant's terminated
    /// instances weigh on the store or on memory. Called once everything
    /// it held has been released (the releases read what this clears).
    pub(super) fn retire(&mut self) {
        self.user_data = None;
        self.password_data = None;
        self.private_dns_name = String::new();
        self.address_pool = None;
        // Its sourceDestCheck attribute is still readable: kept when off.
        self.primary_interface = self
            .primary_interface
            .take()
            .filter(|primary| !primary.source_dest_check)
            .map(|_| super::network_interfaces::PrimaryInterface {
                source_dest_check: false,
                ..Default::default()
            });
        self.attached_interfaces = Vec::new();
        self.block_devices = Vec::new();
        self.public_ip = None;
        self.assign_public_ip = false;
    }
}

impl Record for Instance {
    /// 3: network interfaces (`primary_interface`, `attached_interfaces`)
    /// and attached volumes (`block_devices`); 4: its public address
    /// (`public_ip`, `assign_public_ip`). A release before them would drop
    /// them when rewriting a record.
    const VERSION: u32 = 4;

    /// Version 1 kept the status inline; the open-time upgrade
    /// (`Compute::upgrade_instances`) moves it to its own record. Version 2
    /// lacks the interface fields (their defaults).
    fn upgrade(version: u32, data: serde_json::Value) -> StoreResult<Self> {
        match version {
            1..=3 => serde_json::from_value(data)
                .map_err(|e| StoreError(format!("instance record v{version}: {e}"))),
            _ => Err(StoreError(format!(
                "no upgrade from version {version} of an instance record"
            ))),
        }
    }
}

/// An instance's observed state: what the lifecycle (and, later, its
/// compute agent) writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub state: InstanceState,
    pub transition_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub state_reason: Option<StateReason>,
    pub host: Option<String>,
    pub purge_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reboots: u32,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

impl Record for InstanceStatus {}

pub(crate) fn instance_key(account_id: &str, instance_id: &str) -> Vec<u8> {
    format!("{account_id}/{instance_id}").into_bytes()
}

/// `instance_order` key: launch order within the account.
pub(super) fn order_key(account_id: &str, sequence: u64) -> Vec<u8> {
    format!("{account_id}/{sequence:020}").into_bytes()
}

/// What a `schedule` entry is due for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// An instance's transition or purge.
    Instance,
    /// A ClientToken to forget.
    Token,
}

/// `schedule` key: `<due, ns since the epoch, 20 digits>/<i|t>/<account>/<id>`,
/// so a scan from the start meets the earliest first.
pub(super) fn schedule_key(due: DateTime<Utc>, what: Due, account_id: &str, id: &str) -> Vec<u8> {
    let nanos = due.timestamp_nanos_opt().unwrap_or(i64::MAX).max(0);
    let tag = match what {
        Due::Instance => 'i',
        Due::Token => 't',
    };
    format!("{nanos:020}/{tag}/{account_id}/{id}").into_bytes()
}

/// Parses a [`schedule_key`].
pub(super) fn parse_schedule_key(key: &[u8]) -> Option<(DateTime<Utc>, Due, String, String)> {
    let text = std::str::from_utf8(key).ok()?;
    let mut parts = text.splitn(4, '/');
    let nanos: i64 = parts.next()?.parse().ok()?;
    let what = match parts.next()? {
        "i" => Due::Instance,
        "t" => Due::Token,
        _ => return None,
    };
    let account_id = parts.next()?.to_string();
    let id = parts.next()?.to_string();
    Some((DateTime::from_timestamp_nanos(nanos), what, account_id, id))
}

/// Reads an instance (spec and status) in `tx`.
pub(super) fn load(
    book: &super::instance_reads::InstanceBook,
    tx: &mut Tx<'_>,
    account_id: &str,
    instance_id: &str,
) -> StoreResult<Option<Instance>> {
    let key = instance_key(account_id, instance_id);
    let Some(bytes) = tx.get_raw(INSTANCES, &key)? else {
        return Ok(None);
    };
    let version = tx.read_version(INSTANCES, &key);
    let mut instance = book.decode_spec(&key, version, &bytes)?;
    if let Some(status) = tx.get::<InstanceStatus>(INSTANCE_STATUS, &key)? {
        instance.set_status(status);
    }
    Ok(Some(instance))
}

/// `host_instances/<host>/<account>/<id>`: the instances placed on a host,
/// which its agent lists (`AgentDescribeInstances`). Kept with the status:
/// written when an instance gets a host, deleted when it gives it back.
pub const HOST_INSTANCES: &str = "host_instances";

/// The [`HOST_INSTANCES`] key of `instance` on `host`.
pub(super) fn host_instance_key(host: &str, instance: &Instance) -> Vec<u8> {
    format!("{host}/{}/{}", instance.account_id, instance.id).into_bytes()
}

/// Moves `instance`'s entry in [`HOST_INSTANCES`] from `before` to `after`.
fn move_host_entry(
    tx: &mut Tx<'_>,
    instance: &Instance,
    before: Option<&str>,
    after: Option<&str>,
) {
    if before == after {
        return;
    }
    if let Some(host) = before {
        tx.delete(HOST_INSTANCES, host_instance_key(host, instance));
    }
    if let Some(host) = after {
        tx.put(HOST_INSTANCES, host_instance_key(host, instance), &true);
    }
}

/// Writes a new instance whole in `tx`: spec, status, order and schedule.
pub(super) fn insert(tx: &mut Tx<'_>, instance: &Instance) {
    move_host_entry(tx, instance, None, instance.host.as_deref());
    tx.put(INSTANCES, instance.key(), instance);
    tx.put(INSTANCE_STATUS, instance.key(), &instance.status());
    tx.put(
        INSTANCE_ORDER,
        order_key(&instance.account_id, instance.sequence),
        &instance.id,
    );
    if let Some(due) = instance.due() {
        tx.put(
            SCHEDULE,
            schedule_key(due, Due::Instance, &instance.account_id, &instance.id),
            &true,
        );
    }
}

/// Writes a changed status in `tx`, moving its schedule entry along.
pub(super) fn write_status(tx: &mut Tx<'_>, before: &Instance, after: &Instance) {
    if before.due() != after.due() {
        if let Some(due) = before.due() {
            tx.delete(
                SCHEDULE,
                schedule_key(due, Due::Instance, &before.account_id, &before.id),
            );
        }
        if let Some(due) = after.due() {
            tx.put(
                SCHEDULE,
                schedule_key(due, Due::Instance, &after.account_id, &after.id),
                &true,
            );
        }
    }
    move_host_entry(tx, after, before.host.as_deref(), after.host.as_deref());
    tx.put(INSTANCE_STATUS, after.key(), &after.status());
}

/// Removes a purged instance whole in `tx`.
pub(super) fn remove(tx: &mut Tx<'_>, instance: &Instance) {
    move_host_entry(tx, instance, instance.host.as_deref(), None);
    tx.delete(INSTANCES, instance.key());
    tx.delete(INSTANCE_STATUS, instance.key());
    tx.delete(super::agent_facts::CONSOLE_OUTPUT, instance.key());
    tx.delete(
        INSTANCE_ORDER,
        order_key(&instance.account_id, instance.sequence),
    );
    if let Some(due) = instance.due() {
        tx.delete(
            SCHEDULE,
            schedule_key(due, Due::Instance, &instance.account_id, &instance.id),
        );
    }
}

/// The account's instance usage in `tx` (counted from its instances when
/// no usage record exists yet).
pub(super) fn usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<super::usage::Usage> {
    super::usage::read(tx, account_id, super::usage::Kind::Instances, |tx| {
        let prefix = format!("{account_id}/");
        let mut statuses: std::collections::HashMap<Vec<u8>, InstanceStatus> = tx
            .scan_entries(INSTANCE_STATUS, prefix.as_bytes())?
            .into_iter()
            .map(|(key, value)| Ok((key, crate::store::decode(&value)?)))
            .collect::<StoreResult<_>>()?;
        let mut usage = super::usage::Usage::default();
        for mut instance in tx.scan::<Instance>(INSTANCES, prefix.as_bytes())? {
            if let Some(status) = statuses.remove(&instance.key()) {
                instance.set_status(status);
            }
            usage.next_sequence = usage.next_sequence.max(instance.sequence + 1);
            usage.count += u64::from(instance.is_live());
            if instance.state.holds_capacity() {
                usage.amount += u64::from(instance.vcpus);
            }
        }
        Ok(usage)
    })
}

/// Adjusts `usage` for an instance going from `before` to `after`.
pub(super) fn account_change(
    usage: &mut super::usage::Usage,
    before: Option<&Instance>,
    after: Option<&Instance>,
) {
    let weigh = |i: Option<&Instance>| {
        i.map_or((0, 0), |i| {
            (
                u64::from(i.is_live()),
                if i.state.holds_capacity() {
                    u64::from(i.vcpus)
                } else {
                    0
                },
            )
        })
    };
    let (live_before, vcpus_before) = weigh(before);
    let (live_after, vcpus_after) = weigh(after);
    usage.count = (usage.count + live_after).saturating_sub(live_before);
    usage.amount = (usage.amount + vcpus_after).saturating_sub(vcpus_before);
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

impl crate::store::Record for ClientTokenRecord {}

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
    /// The primary private address asked for (one instance only).
    pub private_ip: Option<String>,
    /// Secondary addresses for the primary interface.
    pub secondary_private_ip_count: u32,
    /// The primary interface's description.
    pub interface_description: String,
    /// Created interfaces to attach (one instance only).
    pub attach_interfaces: Vec<LaunchInterface>,
    /// `BlockDeviceMapping.N`: changes to the image's volumes.
    pub block_devices: Vec<super::images::BlockDevice>,
    /// Tags for the volumes the launch makes.
    pub volume_tags: Vec<Tag>,
    /// `AssociatePublicIpAddress` of the primary interface (`None`: the
    /// subnet's MapPublicIpOnLaunch decides).
    pub associate_public_ip: Option<bool>,
}

/// A created interface a launch attaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchInterface {
    pub id: String,
    pub device_index: u32,
    pub delete_on_termination: bool,
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

/// The instance id error for ids that do not exist in the account.
pub(super) fn instances_not_found(missing: &[String]) -> ApiError {
    let message = match missing {
        [one] => format!("The instance ID '{one}' does not exist"),
        many => format!("The instance IDs '{}' do not exist", many.join(", ")),
    };
    ApiError::NotFound {
        code: super::kinds::ResourceKind::Instance.not_found_code(),
        message,
    }
}

/// `User initiated (2016-11-15 12:34:56 GMT)`.
pub(super) fn user_initiated(now: DateTime<Utc>) -> String {
    format!("User initiated ({} GMT)", now.format("%Y-%m-%d %H:%M:%S"))
}

impl Compute {
    /// Applies a tag change to one instance's spec in `tx`.
    pub(crate) fn retag_instance(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        instance_id: &str,
        change: &super::tags::TagChange,
    ) -> ApiResult<()> {
        let key = instance_key(account_id, instance_id);
        let mut spec = tx
            .get::<Instance>(INSTANCES, &key)?
            .ok_or_else(|| instances_not_found(&[instance_id.to_string()]))?;
        change.apply_to(&mut spec.tags);
        if spec.tags.len() > super::tags::MAX_TAGS {
            return Err(super::tags::too_many_tags(instance_id));
        }
        tx.put(INSTANCES, key, &spec);
        Ok(())
    }
}

/// EC2's rules for which states each action starts from.
pub(super) fn check_transition(instance: &Instance, action: StateAction) -> ApiResult<()> {
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
