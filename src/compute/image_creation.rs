//! CreateImage (an image of an instance) and CopyImage (an image of an
//! image this account may launch).
//!
//! CreateImage snapshots every volume attached to the instance (each a new
//! snapshot of the caller's, `pending` then `completed`) and maps them at
//! their devices beside the root device of the image the instance was
//! launched from; the image is `pending` until its snapshots complete, then
//! `available`, and cannot be launched before (`InvalidAMIID.Unavailable`).
//! The instance must be running or stopped (`IncorrectInstanceState`); the
//! gateway does not reboot it, whatever `NoReboot` says, since nothing
//! runs inside it to flush. CopyImage copies an image the caller may launch
//! (its own, shared with it, public, or the catalogue's) within this
//! Region, its snapshots copied into the caller's account; `ClientToken`
//! retries answer the first copy. Both check the name (unique per account)
//! and the image and snapshot quotas in the one operation that writes the
//! image and its snapshots.

use super::idempotency::ClientToken;
use super::images::{BlockDevice, Image, IMAGES};
use super::instances::{InstanceState, Tag};
use super::operation::{self, Tx};
use super::snapshots::{Snapshot, SNAPSHOTS};
use super::usage::Kind;
use super::volumes::{Volume, VOLUMES};
use super::Compute;
use crate::error::{codes, ApiError, ApiResult};
use chrono::{DateTime, Utc};

const COPY: &str = "CopyImage";

/// What CreateImage and CopyImage name the new image.
#[derive(Debug, Clone)]
pub struct ImageNaming {
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    /// Tags for the snapshots made with it.
    pub snapshot_tags: Vec<Tag>,
    /// CopyImage's `CopyImageTags`: the source's tags too (the request's
    /// win on the same key).
    pub copy_source_tags: bool,
}

fn key(account_id: &str, id: &str) -> Vec<u8> {
    format!("{account_id}/{id}").into_bytes()
}

impl Compute {
    /// Checks the name is free and the image quota has room, in `tx`
    /// (with the account's image usage record: a concurrent registration
    /// conflicts); returns the usage to rewrite.
    fn image_room(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        name: &str,
    ) -> ApiResult<super::usage::Usage> {
        let usage = super::usage::read(tx, account_id, Kind::Images, |tx| {
            super::usage::count_of(tx, IMAGES, format!("{account_id}/").as_bytes())
        })?;
        let own = tx.scan::<Image>(IMAGES, format!("{account_id}/").as_bytes())?;
        if own.iter().any(|i| i.name == name) {
            return Err(ApiError::NotFound {
                code: codes::INVALID_AMI_NAME_DUPLICATE,
                message: format!("AMI name {name} is already in use by AMI of this account"),
            });
        }
        if usage.count >= u64::from(self.quotas.max_images) {
            return Err(ApiError::LimitExceeded {
                code: codes::RESOURCE_LIMIT_EXCEEDED,
                message: format!(
                    "You have reached the limit of {} registered images",
                    self.quotas.max_images
                ),
            });
        }
        Ok(usage)
    }

    /// Writes new snapshots of the caller's in `tx`, within the snapshot
    /// quota.
    fn put_snapshots(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        snapshots: &[Snapshot],
    ) -> ApiResult<()> {
        if snapshots.is_empty() {
            return Ok(());
        }
        let mut usage = super::usage::read(tx, account_id, Kind::Snapshots, |tx| {
            super::usage::count_of(tx, SNAPSHOTS, format!("{account_id}/").as_bytes())
        })?;
        if usage.count + snapshots.len() as u64 > u64::from(self.quotas.max_snapshots) {
            return Err(ApiError::LimitExceeded {
                code: codes::SNAPSHOT_LIMIT_EXCEEDED,
                message: format!(
                    "The maximum number of snapshots ({}) has been reached",
                    self.quotas.max_snapshots
                ),
            });
        }
        for snapshot in snapshots {
            tx.put(SNAPSHOTS, key(account_id, &snapshot.id), snapshot);
        }
        usage.count += snapshots.len() as u64;
        super::usage::write(tx, account_id, Kind::Snapshots, &usage);
        Ok(())
    }

    fn new_snapshot(
        &self,
        account_id: &str,
        source: super::snapshots::SnapshotSource,
        description: String,
        tags: &[Tag],
        now: DateTime<Utc>,
    ) -> Snapshot {
        Snapshot {
            id: super::ids::new_id("snap"),
            account_id: account_id.to_string(),
            volume_id: source.volume_id,
            volume_size: source.size_gib,
            description: Some(description),
            started_at: now,
            completed_at: now + self.snapshot_delay,
            tags: tags.to_vec(),
            create_volume_permissions: Vec::new(),
            public: false,
            encrypted: source.encrypted,
        }
    }

    /// CreateImage.
    pub async fn create_image(
        &self,
        account_id: &str,
        instance_id: &str,
        naming: ImageNaming,
        dry_run: bool,
    ) -> ApiResult<Image> {
        super::images::check_naming(&naming.name, naming.description.as_deref())?;
        let instance = self
            .instances(account_id, &[instance_id.to_string()], None)
            .await?
            .remove(0);
        if !matches!(
            instance.state,
            InstanceState::Running | InstanceState::Stopped
        ) {
            return Err(ApiError::IncorrectInstanceState(format!(
                "The instance '{instance_id}' is not in a state from which it can be imaged: {}",
                instance.state.name()
            )));
        }
        let source = self.visible_image(account_id, &instance.image_id).await?;
        let now = self.clock.now();
        let image_id = super::ids::new_id("ami");
        operation::run(&self.store, dry_run, |tx| {
            // Its state as the operation reads it (a termination meanwhile
            // makes this run again).
            let current = super::instances::load(&self.instances, tx, account_id, instance_id)?
                .ok_or_else(|| super::instances::instances_not_found(&[instance_id.to_string()]))?;
            if !matches!(current.state, InstanceState::Running | InstanceState::Stopped) {
                return Err(ApiError::IncorrectInstanceState(format!(
                    "The instance '{instance_id}' is not in a state from which it can be imaged: {}",
                    current.state.name()
                )));
            }
            let mut usage = self.image_room(tx, account_id, &naming.name)?;
            // The instance's volumes as they are attached now.
            let volumes: Vec<Volume> = tx
                .scan::<Volume>(VOLUMES, format!("{account_id}/").as_bytes())?
                .into_iter()
                .filter(|v| {
                    v.attachment
                        .as_ref()
                        .is_some_and(|a| a.instance_id == instance_id && a.detached_at.is_none())
                })
                .collect();
            let root_device = instance.root_device().to_string();
            let mut devices: Vec<BlockDevice> = source
                .iter()
                .flat_map(|image| image.block_devices.iter())
                .filter(|d| d.device_name == root_device)
                .cloned()
                .collect();
            // The root device's snapshot, when the caller's own, is used by
            // the new image too (rewritten: its deletion meanwhile
            // conflicts); another account's is not carried over.
            let mut used_snapshots = Vec::new();
            for device in &mut devices {
                if let Some(snapshot_id) = device.snapshot_id.clone() {
                    if self.touch_snapshot(tx, account_id, &snapshot_id)? {
                        used_snapshots.push(snapshot_id);
                    } else {
                        device.snapshot_id = None;
                    }
                }
            }
            let mut snapshots = Vec::new();
            for volume in &volumes {
                let attachment = volume.attachment.as_ref().expect("filtered on attachment");
                let snapshot = self.new_snapshot(
                    account_id,
                    super::snapshots::SnapshotSource {
                        volume_id: volume.id.clone(),
                        size_gib: volume.size_gib,
                        encrypted: volume.encrypted,
                    },
                    format!("Created by CreateImage({instance_id}) for {image_id}"),
                    &naming.snapshot_tags,
                    now,
                );
                devices.retain(|d| d.device_name != attachment.device);
                devices.push(BlockDevice {
                    device_name: attachment.device.clone(),
                    virtual_name: None,
                    no_device: false,
                    snapshot_id: Some(snapshot.id.clone()),
                    volume_size: Some(volume.size_gib),
                    volume_type: Some(volume.volume_type.clone()),
                    delete_on_termination: Some(attachment.delete_on_termination),
                    encrypted: Some(volume.encrypted),
                    iops: volume.iops,
                });
                snapshots.push(snapshot);
            }
            self.put_snapshots(tx, account_id, &snapshots)?;
            let image = Image {
                id: image_id.clone(),
                name: naming.name.clone(),
                description: naming.description.clone(),
                architecture: instance.architecture.clone(),
                platform: instance.platform.clone(),
                owner_id: account_id.to_string(),
                public: false,
                tags: naming.tags.clone(),
                created_at: Some(now),
                snapshot_ids: used_snapshots
                    .iter()
                    .cloned()
                    .chain(snapshots.iter().map(|s| s.id.clone()))
                    .collect(),
                root_device_name: Some(root_device.clone()),
                block_devices: devices,
                launch_permissions: Vec::new(),
                available_at: Some(now + self.snapshot_delay),
            };
            tx.put(IMAGES, key(account_id, &image.id), &image);
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::Images, &usage);
            Ok(image)
        })
        .await
    }

    /// CopyImage, within this Region.
    pub async fn copy_image(
        &self,
        account_id: &str,
        source_id: &str,
        naming: ImageNaming,
        client_token: Option<&ClientToken>,
        dry_run: bool,
    ) -> ApiResult<Image> {
        super::kinds::ResourceKind::Image.check(source_id)?;
        super::images::check_naming(&naming.name, naming.description.as_deref())?;
        // A retry is answered from its token, whatever became of the source.
        if let Some(token) = client_token {
            let earlier: Option<Image> =
                super::idempotency::earlier_record(&self.store, account_id, COPY, token, IMAGES)
                    .await?;
            if let Some(image) = earlier {
                return match dry_run {
                    true => Err(ApiError::DryRunOperation),
                    false => Ok(image),
                };
            }
        }
        let listed = self
            .visible_image(account_id, source_id)
            .await?
            .ok_or_else(|| super::kinds::ResourceKind::Image.not_found(source_id))?;
        let now = self.clock.now();
        if listed.state(now) != "available" {
            return Err(ApiError::NotFound {
                code: codes::INVALID_AMI_ID_UNAVAILABLE,
                message: format!("The image {source_id} is not available yet"),
            });
        }
        let image_id = super::ids::new_id("ami");
        operation::run(&self.store, dry_run, |tx| {
            if let Some(token) = client_token {
                if let Some(id) = super::idempotency::earlier(tx, account_id, COPY, token)? {
                    if let Some(image) = tx.get::<Image>(IMAGES, &key(account_id, &id))? {
                        return Ok(image);
                    }
                }
                super::idempotency::remember(tx, account_id, COPY, token, &image_id);
            }
            // The source as the operation reads it: a revoke or a
            // deregistration meanwhile makes this run again.
            let source = match self.catalog.image(source_id) {
                Some(catalogue) => catalogue.clone(),
                None => super::image_sharing::usable_image_in(tx, account_id, source_id)?
                    .ok_or_else(|| super::kinds::ResourceKind::Image.not_found(source_id))?,
            };
            let foreign = source.owner_id != account_id;
            let mut usage = self.image_room(tx, account_id, &naming.name)?;
            // Each snapshot of the source, copied into the caller's account.
            let mut snapshots = Vec::new();
            let mut devices = source.block_devices.clone();
            for device in &mut devices {
                let Some(snapshot_id) = &device.snapshot_id else {
                    continue;
                };
                // Another account's storage needs its own grant, as in EC2.
                if foreign
                    && !super::grants::SNAPSHOT_GRANTS.granted_in(tx, account_id, snapshot_id)?
                {
                    return Err(ApiError::AuthFailure(format!(
                        "You do not have permission to access the storage of {source_id}: its snapshot {snapshot_id} is not shared with you"
                    )));
                }
                let original = tx
                    .get::<Snapshot>(SNAPSHOTS, &key(&source.owner_id, snapshot_id))?
                    .ok_or_else(|| super::kinds::ResourceKind::Snapshot.not_found(snapshot_id))?;
                // Another account's volume id is not shown, as in EC2.
                let volume_id = if foreign {
                    "vol-ffffffff".to_string()
                } else {
                    original.volume_id.clone()
                };
                let copy = self.new_snapshot(
                    account_id,
                    super::snapshots::SnapshotSource {
                        volume_id,
                        size_gib: original.volume_size,
                        encrypted: original.encrypted,
                    },
                    format!("Copied for {image_id} from {snapshot_id} of {source_id}"),
                    &naming.snapshot_tags,
                    now,
                );
                device.snapshot_id = Some(copy.id.clone());
                snapshots.push(copy);
            }
            self.put_snapshots(tx, account_id, &snapshots)?;
            let mut tags = naming.tags.clone();
            // Only the caller's own tags (another account's are its own).
            if naming.copy_source_tags && !foreign {
                for tag in &source.tags {
                    if !tags.iter().any(|t| t.key == tag.key) {
                        tags.push(tag.clone());
                    }
                }
            }
            let image = Image {
                id: image_id.clone(),
                name: naming.name.clone(),
                description: naming.description.clone(),
                architecture: source.architecture.clone(),
                platform: source.platform.clone(),
                owner_id: account_id.to_string(),
                public: false,
                tags,
                created_at: Some(now),
                snapshot_ids: snapshots.iter().map(|s| s.id.clone()).collect(),
                root_device_name: source.root_device_name.clone(),
                block_devices: devices,
                launch_permissions: Vec::new(),
                available_at: Some(now + self.snapshot_delay),
            };
            tx.put(IMAGES, key(account_id, &image.id), &image);
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::Images, &usage);
            Ok(image)
        })
        .await
    }
}
