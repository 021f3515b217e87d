//! EBS volumes (snapshots are in `snapshots`).
//!
//! A volume lives in one zone and draws on that zone's capacity pool
//! (`volumes.capacity_gib_per_zone`; `InsufficientVolumeCapacity` when it is
//! used up). Transitional states are derived from stored times, so they
//! need no background work and survive restarts: a volume is `creating`
//! until its creation delay has passed, then `available`, or `in-use` while
//! an attachment is live; an attachment is `attaching`, then `attached`, and
//! `detaching` until it ends. An attachment ends with its instance
//! (terminated or purged). Attached volumes cannot be deleted
//! (`VolumeInUse`). Each change is one operation on the store: a zone
//! pool's `volume_pools/<zone>` record and the account's volume usage
//! record are read and rewritten with the change.

use super::instances::{InstanceState, Tag};
use super::operation::{self, Tx};
use super::usage::{Kind, Usage};
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::store::StoreResult;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub(crate) const VOLUMES: &str = "volumes";

/// An attachment of a volume to an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub instance_id: String,
    pub device: String,
    pub attach_time: DateTime<Utc>,
    /// `attaching` until then.
    pub attached_at: DateTime<Utc>,
    /// Set by DetachVolume: `detaching` until then, gone after.
    pub detached_at: Option<DateTime<Utc>>,
    pub delete_on_termination: bool,
}

/// A volume attached to an instance, as the instance's record keeps it
/// (what DescribeInstances' `blockDeviceMapping` shows without reading
/// every volume); written in the same commits as the volume's attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedVolume {
    pub volume_id: String,
    pub device: String,
    pub attach_time: DateTime<Utc>,
    pub attached_at: DateTime<Utc>,
    pub detached_at: Option<DateTime<Utc>>,
    pub delete_on_termination: bool,
}

impl AttachedVolume {
    pub fn of(volume_id: &str, attachment: &Attachment) -> Self {
        Self {
            volume_id: volume_id.to_string(),
            device: attachment.device.clone(),
            attach_time: attachment.attach_time,
            attached_at: attachment.attached_at,
            detached_at: attachment.detached_at,
            delete_on_termination: attachment.delete_on_termination,
        }
    }

    /// Still attached (or attaching, or detaching) at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.detached_at.is_none_or(|at| at > now)
    }

    /// `attaching`, `attached` or `detaching` at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        match self.detached_at {
            Some(_) => "detaching",
            None if now < self.attached_at => "attaching",
            None => "attached",
        }
    }
}

/// A volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub id: String,
    pub account_id: String,
    pub size_gib: u32,
    pub snapshot_id: Option<String>,
    pub availability_zone: String,
    pub volume_type: String,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    pub created_at: DateTime<Utc>,
    /// `creating` until then.
    pub available_at: DateTime<Utc>,
    pub attachment: Option<Attachment>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
    /// Digest of the creation parameters (for ClientToken retries).
    pub fingerprint: String,
    /// Encrypted (asked for, or made from an encrypted snapshot), with the
    /// key it names.
    #[serde(default)]
    pub encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

impl crate::store::Record for Volume {}

/// The state of an attachment now.
pub fn attachment_state(attachment: &Attachment, now: DateTime<Utc>) -> &'static str {
    match attachment.detached_at {
        Some(_) => "detaching",
        None if now < attachment.attached_at => "attaching",
        None => "attached",
    }
}

impl Volume {
    /// `creating`, `available` or `in-use`.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if now < self.available_at {
            "creating"
        } else if self.attachment.is_some() {
            "in-use"
        } else {
            "available"
        }
    }
}

/// What CreateVolume asks for (validated by the API layer).
#[derive(Debug, Clone)]
pub struct NewVolume {
    pub size_gib: Option<u32>,
    pub snapshot_id: Option<String>,
    pub availability_zone: String,
    pub volume_type: String,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
    pub fingerprint: String,
    pub encrypted: bool,
    /// The key named (`None`: the account's default EBS key).
    pub kms_key_id: Option<String>,
}

/// The account's default EBS key, as EC2 names it.
pub fn default_ebs_key(region: &str, account_id: &str) -> String {
    format!("arn:aws:kms:{region}:{account_id}:alias/aws/ebs")
}

/// Volume sizes EC2 allows per type (GiB).
pub fn size_range(volume_type: &str) -> (u32, u32) {
    match volume_type {
        "io1" | "io2" => (4, 16384),
        "st1" | "sc1" => (125, 16384),
        "standard" => (1, 1024),
        _ => (1, 16384),
    }
}

/// Capacity in use per zone, across accounts.
const VOLUME_POOLS: &str = "volume_pools";

/// GiB of volumes in `zone` (all accounts), read in `tx`: the zone pool's
/// compare-and-swap point, summed from the volumes when no record exists.
fn pool_used(tx: &mut Tx<'_>, zone: &str) -> StoreResult<u64> {
    match tx.get::<u64>(VOLUME_POOLS, zone.as_bytes())? {
        Some(used) => Ok(used),
        None => Ok(tx
            .scan::<Volume>(VOLUMES, b"")?
            .iter()
            .filter(|v| v.availability_zone == zone)
            .map(|v| u64::from(v.size_gib))
            .sum()),
    }
}

/// The account's volume usage in `tx` (count and GiB).
fn volume_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<Usage> {
    super::usage::read(tx, account_id, Kind::Volumes, |tx| {
        count_volumes(tx, account_id)
    })
}

fn count_volumes(tx: &Tx<'_>, account_id: &str) -> StoreResult<Usage> {
    let volumes = tx.scan::<Volume>(VOLUMES, format!("{account_id}/").as_bytes())?;
    Ok(Usage {
        count: volumes.len() as u64,
        amount: volumes.iter().map(|v| u64::from(v.size_gib)).sum(),
        ..Usage::default()
    })
}

/// Gives the account a volume usage record if it has none.
pub(super) fn ensure_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<()> {
    super::usage::ensure(tx, account_id, Kind::Volumes, |tx| {
        count_volumes(tx, account_id)
    })
}

fn key(account_id: &str, id: &str) -> Vec<u8> {
    format!("{account_id}/{id}").into_bytes()
}

fn volume_not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        code: super::kinds::ResourceKind::Volume.not_found_code(),
        message: format!("The volume '{id}' does not exist."),
    }
}

/// Writes a volume record in `tx`.
pub(super) fn put(tx: &mut Tx<'_>, volume: &Volume) {
    tx.put(VOLUMES, key(&volume.account_id, &volume.id), volume);
}

/// A volume of the account as stored, read in `tx`.
pub(super) fn stored(tx: &mut Tx<'_>, account_id: &str, id: &str) -> StoreResult<Option<Volume>> {
    tx.get(VOLUMES, &key(account_id, id))
}

/// Devices a data volume may use: `/dev/sd[b-z]`, `/dev/xvd[b-z]`, with an
/// optional second letter (`/dev/xvdba`) or partition digit (`/dev/sdf1`).
pub fn is_device_name(device: &str) -> bool {
    let Some(rest) = device
        .strip_prefix("/dev/xvd")
        .or_else(|| device.strip_prefix("/dev/sd"))
    else {
        return false;
    };
    let bytes = rest.as_bytes();
    match bytes {
        [first] => (b'b'..=b'z').contains(first),
        [first, second] => {
            (b'b'..=b'z').contains(first)
                && (second.is_ascii_lowercase() || (b'1'..=b'9').contains(second))
        }
        _ => false,
    }
}

impl Compute {
    /// The account's volumes, attachments of ended or ended-detaching
    /// instances dropped.
    pub async fn volumes(&self, account_id: &str) -> ApiResult<Vec<Volume>> {
        operation::read(&self.store, |tx| self.volumes_in(tx, account_id)).await
    }

    fn volumes_in(&self, tx: &Tx<'_>, account_id: &str) -> ApiResult<Vec<Volume>> {
        if super::usage::known_empty(tx, account_id, Kind::Volumes)? {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let mut volumes: Vec<Volume> = tx.scan(VOLUMES, format!("{account_id}/").as_bytes())?;
        let attached: Vec<String> = volumes
            .iter()
            .filter_map(|v| Some(v.attachment.as_ref()?.instance_id.clone()))
            .collect();
        tx.prefetch(&super::instance_reads::instance_keys(account_id, &attached))?;
        for volume in &mut volumes {
            let ended = volume.attachment.as_ref().is_some_and(|a| {
                a.detached_at.is_some_and(|at| at <= now)
                    || !self.instance_holds_volumes(tx, account_id, &a.instance_id)
            });
            if ended {
                volume.attachment = None;
            }
        }
        volumes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(volumes)
    }

    fn instance_holds_volumes(&self, tx: &Tx<'_>, account_id: &str, instance_id: &str) -> bool {
        self.instances_in(tx, account_id, &[instance_id.to_string()], None)
            .ok()
            .and_then(|found| found.into_iter().next())
            .is_some_and(|i| i.state != InstanceState::Terminated)
    }

    pub async fn volume(&self, account_id: &str, id: &str) -> ApiResult<Volume> {
        super::kinds::ResourceKind::Volume.check(id)?;
        self.volumes(account_id)
            .await?
            .into_iter()
            .find(|v| v.id == id)
            .ok_or_else(|| volume_not_found(id))
    }

    pub async fn create_volume(
        &self,
        account_id: &str,
        request: NewVolume,
        dry_run: bool,
    ) -> ApiResult<Volume> {
        let zone_exists = self
            .services
            .zone_states(self.clock.now())
            .await?
            .iter()
            .any(|z| z.name == request.availability_zone);
        if !zone_exists {
            return Err(ApiError::invalid_value(format!(
                "Invalid availability zone: [{}]",
                request.availability_zone
            )));
        }
        let snapshot = match request.snapshot_id.as_deref() {
            Some(id) => Some(self.snapshot(account_id, id).await?),
            None => None,
        };
        if let Some(snapshot) = &snapshot {
            if snapshot.state(self.clock.now()) != "completed" {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::INCORRECT_STATE,
                    message: format!("Snapshot '{}' is not completed yet", snapshot.id),
                });
            }
        }
        let size = match (request.size_gib, &snapshot) {
            (Some(size), Some(snapshot)) if size < snapshot.volume_size => {
                return Err(ApiError::invalid_value(format!(
                    "Volume of {size}GiB is too small; minimum is {}GiB (the snapshot's size).",
                    snapshot.volume_size
                )))
            }
            (Some(size), _) => size,
            (None, Some(snapshot)) => snapshot.volume_size,
            (None, None) => return Err(ApiError::MissingParameter("Size".into())),
        };
        let (low, high) = size_range(&request.volume_type);
        if !(low..=high).contains(&size) {
            return Err(ApiError::invalid_value(format!(
                "Volume of size {size}GiB is not valid for type {}: {low} to {high} GiB",
                request.volume_type
            )));
        }
        // A volume of an encrypted snapshot is encrypted, as in EC2.
        let encrypted = request.encrypted || snapshot.as_ref().is_some_and(|s| s.encrypted);
        let kms_key_id = encrypted.then(|| {
            request
                .kms_key_id
                .clone()
                .unwrap_or_else(|| default_ebs_key(&self.region.name, account_id))
        });
        let now = self.clock.now();
        let storage_limit = self.volume_storage_limit().await?;
        super::operation::run(&self.store, dry_run, |tx| {
            let mut usage = volume_usage(tx, account_id)?;
            let own = tx.scan::<Volume>(VOLUMES, format!("{account_id}/").as_bytes())?;
            if let Some(token) = &request.client_token {
                if let Some(volume) = own.iter().find(|v| v.client_token.as_ref() == Some(token)) {
                    if volume.fingerprint != request.fingerprint {
                        return Err(ApiError::IdempotentParameterMismatch(format!(
                            "Client token '{token}' was used with different parameters"
                        )));
                    }
                    return Ok(volume.clone());
                }
            }
            let zone = &request.availability_zone;
            let pool = pool_used(tx, zone)?;
            if pool + u64::from(size) > self.volume_capacity_gib_per_zone {
                return Err(ApiError::InsufficientCapacity {
                    code: crate::error::codes::INSUFFICIENT_VOLUME_CAPACITY,
                    message: format!(
                        "There is not enough capacity for a {size}GiB volume in {zone}"
                    ),
                });
            }
            self.check_volume_quota(&own, &usage, zone, 1, u64::from(size), storage_limit)?;
            let volume = Volume {
                id: super::ids::new_id("vol"),
                account_id: account_id.to_string(),
                size_gib: size,
                snapshot_id: request.snapshot_id.clone(),
                availability_zone: zone.clone(),
                volume_type: request.volume_type.clone(),
                iops: request.iops,
                throughput: request.throughput,
                created_at: now,
                available_at: now + self.volume_delay,
                attachment: None,
                tags: request.tags.clone(),
                client_token: request.client_token.clone(),
                fingerprint: request.fingerprint.clone(),
                encrypted,
                kms_key_id: kms_key_id.clone(),
            };
            tx.put(VOLUMES, key(account_id, &volume.id), &volume);
            tx.put(VOLUME_POOLS, zone.as_bytes(), &(pool + u64::from(size)));
            usage.count += 1;
            usage.amount += u64::from(size);
            super::usage::write(tx, account_id, Kind::Volumes, &usage);
            Ok(volume)
        })
        .await
    }

    /// A volume read in `tx`, its attachment cleared when it has ended
    /// (detached, or its instance terminated or gone).
    fn volume_in(&self, tx: &mut Tx<'_>, account_id: &str, id: &str) -> ApiResult<Volume> {
        super::kinds::ResourceKind::Volume.check(id)?;
        let mut volume = tx
            .get::<Volume>(VOLUMES, &key(account_id, id))?
            .ok_or_else(|| volume_not_found(id))?;
        let now = self.clock.now();
        if let Some(attachment) = &volume.attachment {
            let ended = attachment.detached_at.is_some_and(|at| at <= now)
                || !super::instances::load(
                    &self.instances,
                    tx,
                    account_id,
                    &attachment.instance_id,
                )?
                .is_some_and(|i| i.state != InstanceState::Terminated);
            if ended {
                volume.attachment = None;
            }
        }
        Ok(volume)
    }

    /// Changes one volume in one operation: `change` sees it as stored
    /// (attachment ended when it has), growth is checked against the zone
    /// pool and the account's limits.
    async fn update_volume(
        &self,
        account_id: &str,
        id: &str,
        dry_run: bool,
        change: impl Fn(&mut Tx<'_>, &mut Volume, DateTime<Utc>) -> ApiResult<()>,
    ) -> ApiResult<Volume> {
        let storage_limit = self.volume_storage_limit().await?;
        super::operation::run(&self.store, dry_run, |tx| {
            let mut volume = self.volume_in(tx, account_id, id)?;
            let before_size = volume.size_gib;
            change(tx, &mut volume, self.clock.now())?;
            let grown = u64::from(volume.size_gib.saturating_sub(before_size));
            if grown > 0 {
                let zone = volume.availability_zone.clone();
                let mut usage = volume_usage(tx, account_id)?;
                let own = tx.scan::<Volume>(VOLUMES, format!("{account_id}/").as_bytes())?;
                let pool = pool_used(tx, &zone)?;
                if pool + grown > self.volume_capacity_gib_per_zone {
                    return Err(ApiError::InsufficientCapacity {
                        code: crate::error::codes::INSUFFICIENT_VOLUME_CAPACITY,
                        message: format!("There is not enough capacity to grow {id} in {zone}"),
                    });
                }
                self.check_volume_quota(&own, &usage, &zone, 0, grown, storage_limit)?;
                tx.put(VOLUME_POOLS, zone.as_bytes(), &(pool + grown));
                usage.amount += grown;
                super::usage::write(tx, account_id, Kind::Volumes, &usage);
            }
            tx.put(VOLUMES, key(account_id, &volume.id), &volume);
            Ok(volume)
        })
        .await
    }

    /// AttachVolume.
    pub async fn attach_volume(
        &self,
        account_id: &str,
        volume_id: &str,
        instance_id: &str,
        device: &str,
        dry_run: bool,
    ) -> ApiResult<Volume> {
        let invalid_device = || {
            ApiError::invalid_value(format!("Value ({device}) for parameter device is invalid. {device} is not a valid EBS device name."))
        };
        // A root device name (any the instance's image named) is checked
        // against the instance below.
        if !is_device_name(device) && !device.starts_with("/dev/") {
            return Err(invalid_device());
        }
        super::kinds::ResourceKind::Instance.check(instance_id)?;
        let delay = self.volume_delay;
        self.update_volume(account_id, volume_id, dry_run, |tx, volume, now| {
            let instance = super::instances::load(&self.instances, tx, account_id, instance_id)?.ok_or_else(|| {
                super::instances::instances_not_found(&[instance_id.to_string()])
            })?;
            if !matches!(
                instance.state,
                InstanceState::Running | InstanceState::Stopped
            ) {
                return Err(ApiError::IncorrectInstanceState(format!(
                    "Instance '{instance_id}' is not 'running' or 'stopped'."
                )));
            }
            if volume.availability_zone != instance.availability_zone {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::INVALID_VOLUME_ZONE_MISMATCH,
                    message: format!(
                        "The volume '{volume_id}' is not in the same availability zone as instance '{instance_id}'"
                    ),
                });
            }
            match volume.state(now) {
                "creating" => {
                    return Err(ApiError::NotFound { code: crate::error::codes::INCORRECT_STATE, message: format!("Volume '{volume_id}' is in the 'creating' state.") })
                }
                "in-use" => {
                    return Err(ApiError::NotFound { code: crate::error::codes::VOLUME_IN_USE, message: format!("{volume_id} is already attached to an instance") })
                }
                _ => {}
            }
            // Devices are unique per instance: the instance's record lists
            // its volumes and is rewritten with the new one, so two
            // attachments racing for one instance serialise.
            let mut instance = instance;
            let taken = instance.block_devices.iter().any(|v| v.is_live(now) && v.device == device);
            if taken {
                return Err(ApiError::invalid_value(format!("Attachment point {device} is already in use")));
            }
            // A root volume goes back only at the instance's root device,
            // and only while it is stopped.
            if !is_device_name(device) && device != instance.root_device() {
                return Err(invalid_device());
            }
            if device == instance.root_device() && instance.state != InstanceState::Stopped {
                return Err(ApiError::IncorrectInstanceState(format!(
                    "A root volume is attached to instance '{instance_id}' only while it is stopped"
                )));
            }
            let attachment = Attachment {
                instance_id: instance_id.to_string(),
                device: device.to_string(),
                attach_time: now,
                attached_at: now + delay,
                detached_at: None,
                delete_on_termination: false,
            };
            instance.block_devices.retain(|v| v.is_live(now));
            instance.block_devices.push(AttachedVolume::of(volume_id, &attachment));
            tx.put(super::instances::INSTANCES, instance.key(), &instance);
            volume.attachment = Some(attachment);
            Ok(())
        })
        .await
    }

    /// DetachVolume (`Force` changes nothing here: nothing can hang).
    pub async fn detach_volume(
        &self,
        account_id: &str,
        volume_id: &str,
        instance_id: Option<&str>,
        device: Option<&str>,
        dry_run: bool,
    ) -> ApiResult<Volume> {
        let delay = self.volume_delay;
        self.update_volume(account_id, volume_id, dry_run, |tx, volume, now| {
            let Some(attachment) = volume.attachment.as_mut() else {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::INCORRECT_STATE,
                    message: format!(
                        "Volume '{volume_id}' is in the '{}' state.",
                        volume.state(now)
                    ),
                });
            };
            if instance_id.is_some_and(|id| id != attachment.instance_id)
                || device.is_some_and(|d| d != attachment.device)
            {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::INVALID_ATTACHMENT_NOT_FOUND,
                    message: format!(
                        "Volume '{volume_id}' is not attached to that instance and device"
                    ),
                });
            }
            if attachment.detached_at.is_none() {
                let owner = &attachment.instance_id;
                if let Some(mut instance) = super::instances::load(&self.instances, tx, account_id, owner)? {
                    // A root volume leaves a stopped instance only, as in EC2.
                    if attachment.device == instance.root_device() && instance.state != InstanceState::Stopped {
                        return Err(ApiError::IncorrectInstanceState(format!(
                            "Unable to detach root volume '{volume_id}' from instance '{owner}': the instance is not stopped"
                        )));
                    }
                    attachment.detached_at = Some(now + delay);
                    for listed in &mut instance.block_devices {
                        if listed.volume_id == volume_id && listed.detached_at.is_none() {
                            listed.detached_at = attachment.detached_at;
                        }
                    }
                    tx.put(super::instances::INSTANCES, instance.key(), &instance);
                } else {
                    attachment.detached_at = Some(now + delay);
                }
            }
            Ok(())
        })
        .await
    }

    /// ModifyVolume: grow, change type or performance.
    pub async fn modify_volume(
        &self,
        account_id: &str,
        volume_id: &str,
        size: Option<u32>,
        volume_type: Option<String>,
        iops: Option<u32>,
        dry_run: bool,
    ) -> ApiResult<(Volume, Volume)> {
        let original = self.volume(account_id, volume_id).await?;
        let modified = self
            .update_volume(account_id, volume_id, dry_run, |_, volume, _| {
                if let Some(size) = size {
                    if size < volume.size_gib {
                        return Err(ApiError::invalid_value(format!(
                            "New size {size}GiB is smaller than the current {}GiB: volumes can only grow",
                            volume.size_gib
                        )));
                    }
                    volume.size_gib = size;
                }
                if let Some(volume_type) = &volume_type {
                    volume.volume_type = volume_type.clone();
                }
                if iops.is_some() {
                    volume.iops = iops;
                }
                let (low, high) = size_range(&volume.volume_type);
                if !(low..=high).contains(&volume.size_gib) {
                    return Err(ApiError::invalid_value(format!("Size {}GiB is not valid for type {}", volume.size_gib, volume.volume_type)));
                }
                Ok(())
            })
            .await?;
        Ok((original, modified))
    }

    /// DeleteVolume.
    pub async fn delete_volume(
        &self,
        account_id: &str,
        volume_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::operation::run(&self.store, dry_run, |tx| {
            let volume = self.volume_in(tx, account_id, volume_id)?;
            if volume.attachment.is_some() {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::VOLUME_IN_USE,
                    message: format!("Volume {volume_id} is currently attached to an instance"),
                });
            }
            self.remove_volume(tx, &volume)
        })
        .await
    }

    /// Deletes a volume in `tx`, giving its GiB back to the account and
    /// the zone's pool.
    pub(super) fn remove_volume(&self, tx: &mut Tx<'_>, volume: &Volume) -> ApiResult<()> {
        let account_id = &volume.account_id;
        let zone = volume.availability_zone.clone();
        let size = u64::from(volume.size_gib);
        let mut usage = volume_usage(tx, account_id)?;
        let pool = pool_used(tx, &zone)?;
        tx.delete(VOLUMES, key(account_id, &volume.id));
        tx.put(VOLUME_POOLS, zone.as_bytes(), &pool.saturating_sub(size));
        usage.count = usage.count.saturating_sub(1);
        usage.amount = usage.amount.saturating_sub(size);
        super::usage::write(tx, account_id, Kind::Volumes, &usage);
        Ok(())
    }

    /// How many instances' worth of `planned` volumes the account's volume
    /// count and storage quotas leave room for, read in `tx`.
    pub(super) fn launch_volume_room(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        planned: &[super::launch_volumes::PlannedVolume],
        storage_limit: u64,
    ) -> ApiResult<u32> {
        let usage = volume_usage(tx, account_id)?;
        let count = planned.len() as u64;
        let gib: u64 = planned.iter().map(|v| u64::from(v.size_gib)).sum();
        let by_count =
            u64::from(self.quotas.max_volumes).saturating_sub(usage.count) / count.max(1);
        let by_storage = storage_limit.saturating_sub(usage.amount) / gib.max(1);
        Ok(u32::try_from(by_count.min(by_storage)).unwrap_or(u32::MAX))
    }

    /// Books a launch's volumes in `tx`: `by_zone` gives, per zone, how
    /// many volumes of how many GiB; refused past the account's volume
    /// quotas (`VolumeLimitExceeded`) or a zone's pool
    /// (`InsufficientVolumeCapacity`).
    pub(super) fn book_launch_volumes(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        by_zone: &std::collections::BTreeMap<String, (u64, u64)>,
        storage_limit: u64,
    ) -> ApiResult<()> {
        if by_zone.is_empty() {
            return Ok(());
        }
        let mut usage = volume_usage(tx, account_id)?;
        let mut own = None;
        for (zone, (count, gib)) in by_zone {
            let pool = pool_used(tx, zone)?;
            if pool + gib > self.volume_capacity_gib_per_zone {
                return Err(ApiError::InsufficientCapacity {
                    code: crate::error::codes::INSUFFICIENT_VOLUME_CAPACITY,
                    message: format!(
                        "There is not enough capacity for the instances' {gib}GiB of volumes in {zone}"
                    ),
                });
            }
            // The account's share of the zone needs its listing only when
            // all its storage together could exceed it.
            let listed: &[Volume] = if usage.amount + gib > self.volume_zone_share() {
                own.get_or_insert(tx.scan::<Volume>(VOLUMES, format!("{account_id}/").as_bytes())?)
            } else {
                &[]
            };
            self.check_volume_quota(listed, &usage, zone, *count, *gib, storage_limit)?;
            tx.put(VOLUME_POOLS, zone.as_bytes(), &(pool + gib));
            usage.count += count;
            usage.amount += gib;
        }
        super::usage::write(tx, account_id, Kind::Volumes, &usage);
        Ok(())
    }

    /// Refuses `more` volumes of `more_gib` GiB in `zone` beyond the
    /// account's limits (`VolumeLimitExceeded`): its volume count, its
    /// storage, and its share of the zone's volume pool (so one account
    /// cannot fill a zone). Called under the account's volume lock.
    fn check_volume_quota(
        &self,
        own: &[Volume],
        usage: &Usage,
        zone: &str,
        more: u64,
        more_gib: u64,
        storage_limit: u64,
    ) -> ApiResult<()> {
        let in_zone: u64 = own
            .iter()
            .filter(|v| v.availability_zone == zone)
            .map(|v| u64::from(v.size_gib))
            .sum();
        let zone_limit = self.volume_zone_share();
        if usage.count + more > u64::from(self.quotas.max_volumes)
            || usage.amount + more_gib > storage_limit
            || in_zone + more_gib > zone_limit
        {
            return Err(ApiError::LimitExceeded {
                code: crate::error::codes::VOLUME_LIMIT_EXCEEDED,
                message: format!(
                    "You have exceeded your maximum volume limits: {} volumes, {storage_limit} GiB of storage, {zone_limit} GiB in {zone}",
                    self.quotas.max_volumes
                ),
            });
        }
        Ok(())
    }
}

/// Lifecycle delays of volumes and snapshots.
pub fn delays(config: &crate::config::LifecycleConfig) -> (Duration, Duration) {
    (
        Duration::seconds(config.volume_delay_secs as i64),
        Duration::seconds(config.snapshot_delay_secs as i64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        for good in ["/dev/sdf", "/dev/xvdb", "/dev/sdf1", "/dev/xvdba"] {
            assert!(is_device_name(good), "{good}");
        }
        for bad in [
            "sdf",
            "/dev/sda",
            "/dev/xvda",
            "/dev/sdf10",
            "/dev/nvme1n1",
            "/dev/sdZ",
        ] {
            assert!(!is_device_name(bad), "{bad}");
        }
    }
}
