//! Images: the public catalogue plus each account's registered images.
//!
//! RegisterImage records a private image owned by the caller (names unique
//! per account: `InvalidAMIName.Duplicate`); DeregisterImage removes one of
//! the caller's own images (instances launched from it keep running);
//! another account's private image is `InvalidAMIID.NotFound`, as if it did
//! not exist, and catalogue images cannot be deregistered. Names and the
//! image quota are checked against the account's image usage record, read
//! in the same operation (see `usage`).

use super::instances::Tag;
use super::operation::{self, Tx};
use super::usage::Kind;
use super::Compute;
use crate::error::{ApiError, ApiResult};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub(crate) const IMAGES: &str = "images";

/// An image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub architecture: String,
    pub platform: String,
    pub owner_id: String,
    pub public: bool,
    pub tags: Vec<Tag>,
    /// When it was registered (catalogue images have none).
    pub created_at: Option<DateTime<Utc>>,
    /// Snapshots its block device mappings use (they cannot be deleted).
    #[serde(default)]
    pub snapshot_ids: Vec<String>,
    /// The root device, as RegisterImage named it (`/dev/xvda` when it did not).
    #[serde(default)]
    pub root_device_name: Option<String>,
    /// The block device mappings, as RegisterImage gave them.
    #[serde(default)]
    pub block_devices: Vec<BlockDevice>,
    /// Accounts it is shared with (`image_sharing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_permissions: Vec<String>,
    /// `pending` until then (an image made by CreateImage or CopyImage
    /// while its snapshots complete); `None`: available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_at: Option<DateTime<Utc>>,
}

impl crate::store::Record for Image {
    /// 2: block devices say whether they are encrypted and their IOPS,
    /// which a release before would drop when rewriting a record.
    const VERSION: u32 = 2;

    fn upgrade(version: u32, data: serde_json::Value) -> crate::store::StoreResult<Self> {
        match version {
            1 => serde_json::from_value(data)
                .map_err(|e| crate::store::StoreError(format!("image record v1: {e}"))),
            _ => Err(crate::store::StoreError(format!(
                "no upgrade from version {version} of an image record"
            ))),
        }
    }
}

impl Image {
    /// `pending` or `available` at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        match self.available_at {
            Some(at) if now < at => "pending",
            _ => "available",
        }
    }
}

/// Checks an image's name and description as EC2 does.
pub fn check_naming(name: &str, description: Option<&str>) -> ApiResult<()> {
    let name_length = name.chars().count();
    if !(3..=128).contains(&name_length) {
        return Err(ApiError::invalid_value(
            "Image names must be 3 to 128 characters long",
        ));
    }
    if description.is_some_and(|d| d.chars().count() > 255) {
        return Err(ApiError::invalid_value(
            "Image descriptions may be at most 255 characters",
        ));
    }
    Ok(())
}

/// One `BlockDeviceMapping` of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    pub device_name: String,
    /// `ephemeralN` for an instance store volume.
    pub virtual_name: Option<String>,
    /// Suppresses a device of the image (`NoDevice`).
    pub no_device: bool,
    pub snapshot_id: Option<String>,
    pub volume_size: Option<u32>,
    pub volume_type: Option<String>,
    pub delete_on_termination: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<u32>,
}

/// The root device an image reports when RegisterImage named none.
pub const DEFAULT_ROOT_DEVICE: &str = "/dev/xvda";

/// What RegisterImage supplies.
#[derive(Debug, Clone)]
pub struct NewImage {
    pub name: String,
    pub description: Option<String>,
    pub architecture: String,
    pub tags: Vec<Tag>,
    pub root_device_name: Option<String>,
    pub block_devices: Vec<BlockDevice>,
}

fn image_key(account_id: &str, image_id: &str) -> Vec<u8> {
    format!("{account_id}/{image_id}").into_bytes()
}

fn not_found(image_id: &str) -> ApiError {
    ApiError::NotFound {
        code: super::kinds::ResourceKind::Image.not_found_code(),
        message: format!("The image id '[{image_id}]' does not exist"),
    }
}

impl Compute {
    /// The images `account_id` may see and launch: the catalogue, its own,
    /// and those shared with it or made public.
    pub async fn visible_images(&self, account_id: &str) -> ApiResult<Vec<Image>> {
        operation::read(&self.store, |tx| self.visible_images_in(tx, account_id)).await
    }

    /// [`Compute::visible_images`] as `tx` reads them now.
    pub(super) fn visible_images_in(&self, tx: &Tx<'_>, account_id: &str) -> ApiResult<Vec<Image>> {
        let mut images: Vec<Image> = self.catalog.images().cloned().collect();
        images.extend(tx.scan::<Image>(IMAGES, format!("{account_id}/").as_bytes())?);
        images.extend(super::image_sharing::shared_with(tx, account_id)?);
        images.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(images)
    }

    /// One visible image.
    pub async fn visible_image(
        &self,
        account_id: &str,
        image_id: &str,
    ) -> ApiResult<Option<Image>> {
        if let Some(image) = self.catalog.image(image_id) {
            return Ok(Some(image.clone()));
        }
        operation::read(&self.store, |tx| {
            Ok::<_, ApiError>(
                match tx.peek_record::<Image>(IMAGES, &image_key(account_id, image_id))? {
                    Some(own) => Some(own),
                    None => super::image_sharing::shared_image(tx, account_id, image_id)?,
                },
            )
        })
        .await
    }

    /// RegisterImage: a private image of the caller.
    pub async fn register_image(
        &self,
        account_id: &str,
        image: NewImage,
        dry_run: bool,
    ) -> ApiResult<Image> {
        check_naming(&image.name, image.description.as_deref())?;
        if !matches!(image.architecture.as_str(), "x86_64" | "arm64" | "i386") {
            return Err(ApiError::invalid_value(format!(
                "Invalid architecture '{}'",
                image.architecture
            )));
        }
        let snapshot_ids: Vec<String> = image
            .block_devices
            .iter()
            .filter_map(|device| device.snapshot_id.clone())
            .collect();
        let now = self.clock.now();
        super::operation::run(&self.store, dry_run, |tx| {
            let mut usage = super::usage::read(tx, account_id, Kind::Images, |tx| {
                super::usage::count_of(tx, IMAGES, format!("{account_id}/").as_bytes())
            })?;
            let own = tx.scan::<Image>(IMAGES, format!("{account_id}/").as_bytes())?;
            if own.iter().any(|i| i.name == image.name) {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::INVALID_AMI_NAME_DUPLICATE,
                    message: format!(
                        "AMI name {} is already in use by AMI of this account",
                        image.name
                    ),
                });
            }
            if usage.count >= u64::from(self.quotas.max_images) {
                return Err(ApiError::LimitExceeded {
                    code: crate::error::codes::RESOURCE_LIMIT_EXCEEDED,
                    message: format!(
                        "You have reached the limit of {} registered images",
                        self.quotas.max_images
                    ),
                });
            }
            // The snapshots it is made of: rewritten unchanged, so that a
            // DeleteSnapshot racing this registration runs again and sees it.
            for snapshot_id in &snapshot_ids {
                if !self.touch_snapshot(tx, account_id, snapshot_id)? {
                    return Err(ApiError::NotFound {
                        code: super::kinds::ResourceKind::Snapshot.not_found_code(),
                        message: format!("The snapshot '{snapshot_id}' does not exist."),
                    });
                }
            }
            let record = Image {
                id: super::ids::new_id("ami"),
                name: image.name.clone(),
                description: image.description.clone(),
                architecture: image.architecture.clone(),
                platform: "linux".into(),
                owner_id: account_id.to_string(),
                public: false,
                tags: image.tags.clone(),
                created_at: Some(now),
                snapshot_ids: snapshot_ids.clone(),
                root_device_name: image.root_device_name.clone(),
                block_devices: image.block_devices.clone(),
                launch_permissions: Vec::new(),
                available_at: None,
            };
            tx.put(IMAGES, image_key(account_id, &record.id), &record);
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::Images, &usage);
            Ok(record)
        })
        .await
    }

    /// DeregisterImage: only the caller's own images.
    pub async fn deregister_image(
        &self,
        account_id: &str,
        image_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::Image.check(image_id)?;
        if self.catalog.image(image_id).is_some() {
            return Err(ApiError::OperationNotPermitted(format!(
                "The image {image_id} is a public catalogue image and cannot be deregistered"
            )));
        }
        super::operation::run(&self.store, dry_run, |tx| {
            let mut usage = super::usage::read(tx, account_id, Kind::Images, |tx| {
                super::usage::count_of(tx, IMAGES, format!("{account_id}/").as_bytes())
            })?;
            let key = image_key(account_id, image_id);
            let Some(image) = tx.get::<Image>(IMAGES, &key)? else {
                return Err(not_found(image_id));
            };
            // Those it was shared with lose it.
            let private = Image {
                public: false,
                launch_permissions: Vec::new(),
                ..image.clone()
            };
            super::image_sharing::index_grants(tx, Some(&image), &private);
            tx.delete(IMAGES, key);
            usage.count = usage.count.saturating_sub(1);
            super::usage::write(tx, account_id, Kind::Images, &usage);
            Ok(())
        })
        .await
    }
}
