//! The EBS volumes an instance is launched with, and what its termination
//! does to them.
//!
//! As in EC2, an instance gets a volume for every EBS device of its image's
//! block device mapping, and always one for its root device (8 GiB `gp3`
//! when the image maps none, a catalogue image's case). RunInstances'
//! `BlockDeviceMapping.N` changes a mapped device (size, type,
//! `DeleteOnTermination`, encryption), adds a device (from `Ebs.VolumeSize`
//! or `Ebs.SnapshotId`) or suppresses one (`NoDevice`; never the root
//! device); `VirtualName` (instance store) mappings are ignored, as EC2
//! ignores them for instance types without instance store, which every
//! type here is. The volumes are made with the instance, in the launch's
//! commit, attached at once, and count against the account's volume
//! quotas and the zone's pool like any other. When the instance
//! terminates, each volume whose attachment says `DeleteOnTermination`
//! (EC2's default for launch volumes) is deleted with it; the others stay,
//! `available`.

use super::images::{BlockDevice, Image};
use super::instances::Instance;
use super::operation::Tx;
use super::volumes::{self, AttachedVolume, Attachment, Volume};
use super::Compute;
use crate::error::{codes, ApiError, ApiResult};
use chrono::{DateTime, Utc};

/// A root volume's size when the image says none (GiB).
pub const DEFAULT_ROOT_GIB: u32 = 8;

/// A launch volume's type when neither the image nor the request says.
pub const DEFAULT_VOLUME_TYPE: &str = "gp3";

/// One volume a launch makes for each of its instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedVolume {
    pub device: String,
    pub size_gib: u32,
    pub volume_type: String,
    pub snapshot_id: Option<String>,
    pub delete_on_termination: bool,
    pub encrypted: bool,
    pub iops: Option<u32>,
}

fn invalid_mapping(message: String) -> ApiError {
    ApiError::NotFound {
        code: codes::INVALID_BLOCK_DEVICE_MAPPING,
        message,
    }
}

/// The volumes of a launch from `image` with the request's `requested`
/// mappings; `snapshot` tells a snapshot's size and encryption when the
/// caller may read it.
pub fn plan(
    image: &Image,
    requested: &[BlockDevice],
    snapshot: impl Fn(&str) -> Option<(u32, bool)>,
) -> ApiResult<Vec<PlannedVolume>> {
    let root = image
        .root_device_name
        .clone()
        .unwrap_or_else(|| super::images::DEFAULT_ROOT_DEVICE.to_string());
    let from_mapping = |device: &BlockDevice, added: bool| -> ApiResult<PlannedVolume> {
        let known = device.snapshot_id.as_deref().and_then(&snapshot);
        let size = match (device.volume_size, known) {
            (Some(size), Some((floor, _))) if size < floor => {
                return Err(invalid_mapping(format!(
                    "Volume of {size}GiB is smaller than snapshot {}, expect size >= {floor}GiB",
                    device.snapshot_id.as_deref().unwrap_or_default()
                )))
            }
            (Some(size), _) => size,
            (None, Some((size, _))) => size,
            (None, None) if device.snapshot_id.is_some() || device.device_name == root => {
                DEFAULT_ROOT_GIB
            }
            (None, None) if added => {
                return Err(invalid_mapping(format!(
                    "The device {} needs Ebs.VolumeSize or Ebs.SnapshotId",
                    device.device_name
                )))
            }
            (None, None) => DEFAULT_ROOT_GIB,
        };
        Ok(PlannedVolume {
            device: device.device_name.clone(),
            size_gib: size,
            volume_type: device
                .volume_type
                .clone()
                .unwrap_or_else(|| DEFAULT_VOLUME_TYPE.to_string()),
            snapshot_id: device.snapshot_id.clone(),
            delete_on_termination: device.delete_on_termination.unwrap_or(true),
            encrypted: device.encrypted.unwrap_or(false) || known.is_some_and(|(_, e)| e),
            iops: device.iops,
        })
    };
    let mut planned: Vec<PlannedVolume> = Vec::new();
    for device in image.block_devices.iter().filter(|d| is_ebs(d)) {
        // (An image mapping one device twice: the first one counts.)
        if !planned.iter().any(|p| p.device == device.device_name) {
            planned.push(from_mapping(device, false)?);
        }
    }
    let mut named = std::collections::HashSet::new();
    for device in requested {
        if !named.insert(device.device_name.as_str()) {
            return Err(invalid_mapping(format!(
                "The device {} is mapped more than once",
                device.device_name
            )));
        }
    }
    if !planned.iter().any(|p| p.device == root) {
        planned.insert(
            0,
            PlannedVolume {
                device: root.clone(),
                size_gib: DEFAULT_ROOT_GIB,
                volume_type: DEFAULT_VOLUME_TYPE.to_string(),
                snapshot_id: None,
                delete_on_termination: true,
                encrypted: false,
                iops: None,
            },
        );
    }
    for device in requested {
        if device.virtual_name.is_some() {
            continue;
        }
        let existing = planned.iter().position(|p| p.device == device.device_name);
        if device.no_device {
            match existing {
                Some(_) if device.device_name == root => {
                    return Err(invalid_mapping(format!(
                        "The root device {root} cannot be suppressed"
                    )))
                }
                Some(index) => {
                    planned.remove(index);
                }
                None => {}
            }
            continue;
        }
        if !volumes::is_device_name(&device.device_name) && device.device_name != root {
            return Err(invalid_mapping(format!(
                "Invalid device name {}",
                device.device_name
            )));
        }
        match existing {
            Some(index) => {
                let current = &mut planned[index];
                if let Some(size) = device.volume_size {
                    let floor = current
                        .snapshot_id
                        .as_deref()
                        .and_then(&snapshot)
                        .map_or(0, |(size, _)| size);
                    if size < floor {
                        return Err(invalid_mapping(format!(
                            "Volume of {size}GiB is smaller than snapshot {}, expect size >= {floor}GiB",
                            current.snapshot_id.as_deref().unwrap_or_default()
                        )));
                    }
                    current.size_gib = size;
                }
                if let Some(volume_type) = &device.volume_type {
                    current.volume_type = volume_type.clone();
                }
                if let Some(delete) = device.delete_on_termination {
                    current.delete_on_termination = delete;
                }
                if device.encrypted == Some(true) {
                    current.encrypted = true;
                }
                if device.iops.is_some() {
                    current.iops = device.iops;
                }
                if device.snapshot_id.is_some() && device.snapshot_id != current.snapshot_id {
                    return Err(invalid_mapping(format!(
                        "The snapshot of the image's device {} cannot be replaced",
                        device.device_name
                    )));
                }
            }
            None => planned.push(from_mapping(device, true)?),
        }
    }
    for volume in &planned {
        let (low, high) = volumes::size_range(&volume.volume_type);
        if !(low..=high).contains(&volume.size_gib) {
            return Err(ApiError::invalid_value(format!(
                "Volume of size {}GiB is not valid for type {} on {}: {low} to {high} GiB",
                volume.size_gib, volume.volume_type, volume.device
            )));
        }
        if !matches!(
            volume.volume_type.as_str(),
            "gp2" | "gp3" | "io1" | "io2" | "st1" | "sc1" | "standard"
        ) {
            return Err(ApiError::invalid_value(format!(
                "Invalid volume type {} on {}",
                volume.volume_type, volume.device
            )));
        }
    }
    Ok(planned)
}

/// An EBS mapping (not instance store, not suppressed).
fn is_ebs(device: &BlockDevice) -> bool {
    device.virtual_name.is_none() && !device.no_device
}

impl Compute {
    /// Makes `planned` for `instance`, attached, in `tx`: the volume
    /// records and the instance's list of them (the caller writes the
    /// instance). Quotas and pools are checked by the caller for the whole
    /// launch ([`Compute::book_launch_volumes`]).
    pub(super) fn make_launch_volumes(
        &self,
        tx: &mut Tx<'_>,
        instance: &mut Instance,
        planned: &[PlannedVolume],
        tags: &[super::instances::Tag],
        now: DateTime<Utc>,
    ) {
        for plan in planned {
            let attachment = Attachment {
                instance_id: instance.id.clone(),
                device: plan.device.clone(),
                attach_time: now,
                attached_at: now,
                detached_at: None,
                delete_on_termination: plan.delete_on_termination,
            };
            let volume = Volume {
                id: super::ids::new_id("vol"),
                account_id: instance.account_id.clone(),
                size_gib: plan.size_gib,
                snapshot_id: plan.snapshot_id.clone(),
                availability_zone: instance.availability_zone.clone(),
                volume_type: plan.volume_type.clone(),
                iops: plan.iops,
                throughput: None,
                created_at: now,
                available_at: now,
                attachment: Some(attachment.clone()),
                tags: tags.to_vec(),
                client_token: None,
                fingerprint: String::new(),
                encrypted: plan.encrypted,
                kms_key_id: plan
                    .encrypted
                    .then(|| volumes::default_ebs_key(&self.region.name, &instance.account_id)),
            };
            instance
                .block_devices
                .push(AttachedVolume::of(&volume.id, &attachment));
            volumes::put(tx, &volume);
        }
    }

    /// The volumes of a terminating instance, in `tx`: those whose
    /// attachment says `DeleteOnTermination` are deleted, the others
    /// detached.
    pub(super) fn release_instance_volumes(
        &self,
        tx: &mut Tx<'_>,
        instance: &Instance,
    ) -> ApiResult<()> {
        // (A volume being detached is let go, whatever its attachment said.)
        for listed in instance
            .block_devices
            .iter()
            .filter(|v| v.detached_at.is_none())
        {
            let Some(mut volume) = volumes::stored(tx, &instance.account_id, &listed.volume_id)?
            else {
                continue;
            };
            let Some(attachment) = volume.attachment.take() else {
                continue;
            };
            if attachment.instance_id != instance.id || attachment.detached_at.is_some() {
                continue;
            }
            if attachment.delete_on_termination {
                self.remove_volume(tx, &volume)?;
            } else {
                volumes::put(tx, &volume);
            }
        }
        Ok(())
    }
}
