//! DescribeImages, RegisterImage, DeregisterImage, Describe/Modify/
//! ResetImageAttribute.
//!
//! DescribeImages: `ImageId.N`, `Owner.N` (`self`, `amazon` for the
//! catalogue's system account, or an account id), `ExecutableBy.N` (`all`:
//! public images; `self` or an account id: images that account owns or
//! has an explicit launch permission for), and the filters name, image-id, state,
//! architecture, owner-id, owner-alias, is-public, image-type,
//! root-device-type, platform, description and tags; only images the caller
//! may launch are visible. DescribeImageAttribute answers `description` and
//! `launchPermission` (`group=all` for public images, the accounts it is
//! shared with for its owner); ModifyImageAttribute shares an image with
//! accounts or everyone (`compute::image_sharing`) or changes its
//! description.

use super::permissions::permission_change;
use super::tags::{check_filter_names, tag_filter_values, tag_specifications, write_tags};
use super::{dry_run_check, Context};
use crate::compute::catalog::{SYSTEM_ACCOUNT_ID, SYSTEM_OWNER_ALIAS};
use crate::compute::idempotency::ClientToken;
use crate::compute::image_creation::ImageNaming;
use crate::compute::image_sharing::PermissionChange;
use crate::compute::images::{BlockDevice, Image, NewImage, DEFAULT_ROOT_DEVICE};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::matches_all;
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

const IMAGE_FILTERS: &[&str] = &[
    "name",
    "image-id",
    "state",
    "architecture",
    "owner-id",
    "owner-alias",
    "is-public",
    "image-type",
    "root-device-type",
    "platform",
    "description",
    "virtualization-type",
    "hypervisor",
    "tag-key",
    "tag-value",
];

#[derive(Debug)]
pub struct DescribeImages {
    pub image_ids: Vec<String>,
    pub owners: Vec<String>,
    pub executable_by: Vec<String>,
    pub filters: Vec<Filter>,
    pub dry_run: bool,
}

impl DescribeImages {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            image_ids: params.list("ImageId")?,
            owners: params.list("Owner")?,
            executable_by: params.list("ExecutableBy")?,
            filters: params.filters()?,
            dry_run: params.dry_run()?,
        };
        for id in &request.image_ids {
            crate::compute::kinds::ResourceKind::Image.check(id)?;
        }
        check_filter_names(&request.filters, IMAGE_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ImageList> {
        let account = context.principal.account_id.as_str();
        // Another account's tags are its own business, as in EC2.
        let visible: Vec<Image> = context
            .compute
            .visible_images(account)
            .await?
            .into_iter()
            .map(|mut image| {
                if image.owner_id != account {
                    image.tags.clear();
                }
                image
            })
            .collect();
        let missing: Vec<&str> = self
            .image_ids
            .iter()
            .filter(|id| !visible.iter().any(|i| &i.id == *id))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::NotFound {
                code: crate::compute::kinds::ResourceKind::Image.not_found_code(),
                message: format!("The image id '[{}]' does not exist", missing.join(", ")),
            });
        }
        dry_run_check(self.dry_run)?;
        let now = context.compute.clock().now();
        let owner_matches = |image: &Image| {
            self.owners.is_empty()
                || self.owners.iter().any(|owner| match owner.as_str() {
                    "self" => image.owner_id == account,
                    SYSTEM_OWNER_ALIAS => image.owner_id == SYSTEM_ACCOUNT_ID,
                    id => image.owner_id == id,
                })
        };
        // EC2's ExecutableBy: `all` is the public images; `self` (or an
        // account id) the images that account owns or has an explicit
        // launch permission for. A public image is not "explicitly"
        // executable.
        let executable = |image: &Image| {
            self.executable_by.is_empty()
                || self.executable_by.iter().any(|who| {
                    let who = match who.as_str() {
                        "all" => return image.public,
                        "self" => account,
                        id => id,
                    };
                    // Whom an image is shared with is for its owner to see.
                    image.owner_id == who
                        || ((image.owner_id == account || who == account)
                            && image.launch_permissions.iter().any(|a| a == who))
                })
        };
        let images = visible
            .into_iter()
            .filter(|image| self.image_ids.is_empty() || self.image_ids.contains(&image.id))
            .filter(|image| owner_matches(image) && executable(image))
            .filter(|image| {
                matches_all(&self.filters, |name| image_filter_values(image, name, now))
            })
            .collect();
        Ok(ImageList { images, now })
    }
}

fn image_filter_values(
    image: &Image,
    filter: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    if let Some(values) = tag_filter_values(&image.tags, filter) {
        return values;
    }
    let one = |value: &str| vec![value.to_string()];
    match filter {
        "name" => one(&image.name),
        "image-id" => one(&image.id),
        "state" => one(image.state(now)),
        "architecture" => one(&image.architecture),
        "owner-id" => one(&image.owner_id),
        "owner-alias" => {
            if image.owner_id == SYSTEM_ACCOUNT_ID {
                one(SYSTEM_OWNER_ALIAS)
            } else {
                Vec::new()
            }
        }
        "is-public" => one(if image.public { "true" } else { "false" }),
        "image-type" => one("machine"),
        "root-device-type" => one("ebs"),
        "platform" => {
            if image.platform == "windows" {
                one("windows")
            } else {
                Vec::new()
            }
        }
        "description" => image.description.iter().cloned().collect(),
        "virtualization-type" => one("hvm"),
        _ => one("xen"), // hypervisor
    }
}

fn write_block_device(xml: &mut XmlWriter, device: &BlockDevice) {
    xml.element("deviceName", &device.device_name);
    xml.optional("virtualName", device.virtual_name.as_deref());
    if device.snapshot_id.is_some() || device.volume_size.is_some() || device.volume_type.is_some()
    {
        xml.nested("ebs", |xml| {
            xml.boolean(
                "deleteOnTermination",
                device.delete_on_termination.unwrap_or(true),
            );
            if let Some(iops) = device.iops {
                xml.number("iops", iops);
            }
            xml.optional("snapshotId", device.snapshot_id.as_deref());
            if let Some(size) = device.volume_size {
                xml.number("volumeSize", size);
            }
            xml.optional("volumeType", device.volume_type.as_deref());
            if let Some(encrypted) = device.encrypted {
                xml.boolean("encrypted", encrypted);
            }
        });
    }
    if device.no_device {
        xml.element("noDevice", "");
    }
}

#[derive(Debug)]
pub struct ImageList {
    images: Vec<Image>,
    now: chrono::DateTime<chrono::Utc>,
}

impl XmlOutput for ImageList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("imagesSet", &self.images, |xml, image| {
            xml.element("imageId", &image.id);
            xml.element(
                "imageLocation",
                &format!("{}/{}", image.owner_id, image.name),
            );
            xml.element("imageState", image.state(self.now));
            xml.element("imageOwnerId", &image.owner_id);
            if let Some(created) = image.created_at {
                xml.element("creationDate", &crate::clock::format_timestamp(created));
            }
            xml.boolean("isPublic", image.public);
            xml.element("architecture", &image.architecture);
            xml.element("imageType", "machine");
            if image.platform == "windows" {
                xml.element("platform", "windows");
            }
            if image.owner_id == SYSTEM_ACCOUNT_ID {
                xml.element("imageOwnerAlias", SYSTEM_OWNER_ALIAS);
            }
            xml.element("name", &image.name);
            xml.optional("description", image.description.as_deref());
            xml.element("rootDeviceType", "ebs");
            xml.element(
                "rootDeviceName",
                image
                    .root_device_name
                    .as_deref()
                    .unwrap_or(DEFAULT_ROOT_DEVICE),
            );
            xml.list(
                "blockDeviceMapping",
                &image.block_devices,
                write_block_device,
            );
            xml.element("virtualizationType", "hvm");
            xml.element("hypervisor", "xen");
            write_tags(xml, &image.tags);
            xml.element(
                "platformDetails",
                if image.platform == "windows" {
                    "Windows"
                } else {
                    "Linux/UNIX"
                },
            );
        });
    }
}

#[derive(Debug)]
pub struct RegisterImage {
    pub image: NewImage,
    pub dry_run: bool,
}

impl RegisterImage {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        if let Some(virtualization) = params.optional("VirtualizationType") {
            if virtualization != "hvm" {
                return Err(ApiError::invalid_value(format!(
                    "Unsupported virtualization type '{virtualization}': only hvm"
                )));
            }
        }
        Ok(Self {
            image: NewImage {
                name: params.required("Name")?,
                description: params.optional("Description"),
                architecture: params
                    .optional("Architecture")
                    .unwrap_or_else(|| "x86_64".into()),
                tags: tag_specifications(params, "image")?,
                root_device_name: params
                    .optional("RootDeviceName")
                    .map(|name| device_name(&name, "RootDeviceName"))
                    .transpose()?,
                block_devices: block_devices(params)?,
            },
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<RegisteredImage> {
        let image = context
            .compute
            .register_image(&context.principal.account_id, self.image, self.dry_run)
            .await?;
        Ok(RegisteredImage(image.id))
    }
}

/// A device name as EC2 takes it: `/dev/sdf`, `/dev/xvdb`, `xvdh`...
fn device_name(name: &str, parameter: &str) -> ApiResult<String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'_' || b == b'-');
    if !valid {
        return Err(ApiError::invalid_value(format!(
            "Invalid device name '{name}' for {parameter}"
        )));
    }
    Ok(name.to_string())
}

/// One `BlockDeviceMapping.N`.
fn block_device(mapping: &Params, index: usize) -> ApiResult<BlockDevice> {
    let name = mapping.optional("DeviceName").ok_or_else(|| {
        ApiError::MissingParameter(format!("BlockDeviceMapping.{index}.DeviceName"))
    })?;
    Ok(BlockDevice {
        device_name: device_name(&name, &format!("BlockDeviceMapping.{index}.DeviceName"))?,
        virtual_name: mapping.optional("VirtualName"),
        no_device: mapping.get("NoDevice").is_some(),
        snapshot_id: mapping.optional("Ebs.SnapshotId"),
        volume_size: mapping.number("Ebs.VolumeSize")?,
        volume_type: mapping.optional("Ebs.VolumeType"),
        delete_on_termination: mapping.boolean("Ebs.DeleteOnTermination")?,
        encrypted: mapping.boolean("Ebs.Encrypted")?,
        iops: mapping.number("Ebs.Iops")?,
    })
}

/// `BlockDeviceMapping.N` of a request, each device once
/// (`InvalidBlockDeviceMapping`).
pub fn block_devices(params: &Params) -> ApiResult<Vec<BlockDevice>> {
    let devices = params
        .structures("BlockDeviceMapping")?
        .iter()
        .enumerate()
        .map(|(i, mapping)| block_device(mapping, i + 1))
        .collect::<ApiResult<Vec<BlockDevice>>>()?;
    let mut seen = std::collections::HashSet::new();
    for device in &devices {
        if !seen.insert(device.device_name.as_str()) {
            return Err(ApiError::NotFound {
                code: crate::error::codes::INVALID_BLOCK_DEVICE_MAPPING,
                message: format!("The device {} is mapped more than once", device.device_name),
            });
        }
    }
    Ok(devices)
}

#[derive(Debug)]
pub struct RegisteredImage(String);

impl XmlOutput for RegisteredImage {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("imageId", &self.0);
    }
}

#[derive(Debug)]
pub struct DeregisterImage {
    pub image_id: String,
    pub dry_run: bool,
}

impl DeregisterImage {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            image_id: params.required("ImageId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .deregister_image(&context.principal.account_id, &self.image_id, self.dry_run)
            .await?;
        Ok(ReturnTrue)
    }
}

/// The image attributes this gateway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageAttributeName {
    Description,
    LaunchPermission,
}

/// The naming parameters CreateImage and CopyImage share.
fn naming(params: &Params) -> ApiResult<ImageNaming> {
    let mut by_type = super::tags::tag_specifications_by_type(params, &["image", "snapshot"])?;
    Ok(ImageNaming {
        name: params.required("Name")?,
        description: params.optional("Description"),
        tags: by_type.remove("image").unwrap_or_default(),
        snapshot_tags: by_type.remove("snapshot").unwrap_or_default(),
        copy_source_tags: false,
    })
}

#[derive(Debug)]
pub struct CreateImage {
    pub instance_id: String,
    pub naming: ImageNaming,
    pub dry_run: bool,
}

impl CreateImage {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let instance_id = params.required("InstanceId")?;
        crate::compute::kinds::ResourceKind::Instance.check(&instance_id)?;
        // Accepted: nothing runs inside a simulated instance to reboot.
        params.boolean("NoReboot")?;
        if params
            .pairs()
            .iter()
            .any(|(n, _)| n.starts_with("BlockDeviceMapping."))
        {
            return Err(ApiError::UnsupportedOperation(
                "BlockDeviceMapping on CreateImage is not offered: the image maps the instance's volumes".into(),
            ));
        }
        Ok(Self {
            instance_id,
            naming: naming(params)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<NewImageId> {
        let image = context
            .compute
            .create_image(
                &context.principal.account_id,
                &self.instance_id,
                self.naming,
                self.dry_run,
            )
            .await?;
        Ok(NewImageId(image.id))
    }
}

/// The answer of CreateImage and CopyImage.
#[derive(Debug)]
pub struct NewImageId(String);

impl XmlOutput for NewImageId {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("imageId", &self.0);
    }
}

#[derive(Debug)]
pub struct CopyImage {
    pub source_id: String,
    pub source_region: String,
    pub naming: ImageNaming,
    pub client_token: Option<ClientToken>,
    pub dry_run: bool,
}

impl CopyImage {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        // Accepted: volumes are not stored, so there is nothing to encrypt.
        params.boolean("Encrypted")?;
        params.optional("KmsKeyId");
        let mut naming = naming(params)?;
        naming.copy_source_tags = params.boolean("CopyImageTags")?.unwrap_or(false);
        Ok(Self {
            source_id: params.required("SourceImageId")?,
            source_region: params.required("SourceRegion")?,
            naming,
            client_token: params.optional("ClientToken").map(|token| ClientToken {
                token,
                fingerprint: super::request_fingerprint(params),
            }),
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<NewImageId> {
        let region = &context.compute.region().name;
        if &self.source_region != region {
            return Err(ApiError::UnsupportedOperation(format!(
                "Copies between regions are not offered: the source region must be {region}"
            )));
        }
        let image = context
            .compute
            .copy_image(
                &context.principal.account_id,
                &self.source_id,
                self.naming,
                self.client_token.as_ref(),
                self.dry_run,
            )
            .await?;
        Ok(NewImageId(image.id))
    }
}

#[derive(Debug)]
pub struct ModifyImageAttribute {
    pub image_id: String,
    pub change: ImageChange,
    pub dry_run: bool,
}

/// What ModifyImageAttribute changes.
#[derive(Debug)]
pub enum ImageChange {
    LaunchPermission(PermissionChange),
    Description(String),
}

impl ModifyImageAttribute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let image_id = params.required("ImageId")?;
        let attribute = params.optional("Attribute");
        let description = params
            .get("Description.Value")
            .or_else(|| match attribute.as_deref() {
                Some("description") => params.get("Value"),
                _ => None,
            })
            .map(str::to_string);
        if attribute.as_deref() == Some("description") && description.is_none() {
            return Err(ApiError::MissingParameter("Value".into()));
        }
        let change = match (attribute.as_deref(), description) {
            (None | Some("description"), Some(text)) => ImageChange::Description(text),
            (None | Some("launchPermission"), None) => {
                ImageChange::LaunchPermission(permission_change(params, "LaunchPermission")?)
            }
            (Some(other), _) => {
                return Err(ApiError::UnsupportedOperation(format!(
                    "The image attribute {other} cannot be changed here: launchPermission and description can"
                )))
            }
        };
        Ok(Self {
            image_id,
            change,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        let account = &context.principal.account_id;
        match self.change {
            ImageChange::LaunchPermission(change) => {
                context
                    .compute
                    .modify_launch_permissions(account, &self.image_id, change, self.dry_run)
                    .await?
            }
            ImageChange::Description(text) => {
                context
                    .compute
                    .modify_image_description(account, &self.image_id, text, self.dry_run)
                    .await?
            }
        }
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct ResetImageAttribute {
    pub image_id: String,
    pub dry_run: bool,
}

impl ResetImageAttribute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let attribute = params.required("Attribute")?;
        if attribute != "launchPermission" {
            return Err(ApiError::invalid_value(format!(
                "Value ({attribute}) for parameter attribute is invalid. Only launchPermission can be reset."
            )));
        }
        Ok(Self {
            image_id: params.required("ImageId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .reset_launch_permissions(&context.principal.account_id, &self.image_id, self.dry_run)
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct DescribeImageAttribute {
    pub image_id: String,
    pub attribute: ImageAttributeName,
    pub dry_run: bool,
}

impl DescribeImageAttribute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let image_id = params.required("ImageId")?;
        crate::compute::kinds::ResourceKind::Image.check(&image_id)?;
        let attribute = match params.required("Attribute")?.as_str() {
            "description" => ImageAttributeName::Description,
            "launchPermission" => ImageAttributeName::LaunchPermission,
            other => {
                return Err(ApiError::invalid_value(format!(
                    "Value ({other}) for parameter attribute is invalid. Supported here: description, launchPermission."
                )))
            }
        };
        Ok(Self {
            image_id,
            attribute,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ImageAttributeOutput> {
        let account = &context.principal.account_id;
        let image = context
            .compute
            .visible_image(account, &self.image_id)
            .await?
            .ok_or_else(|| ApiError::NotFound {
                code: crate::compute::kinds::ResourceKind::Image.not_found_code(),
                message: format!("The image id '[{}]' does not exist", self.image_id),
            })?;
        // Who an image is shared with is its owner's business.
        if self.attribute == ImageAttributeName::LaunchPermission
            && &image.owner_id != account
            && !image.public
        {
            return Err(ApiError::UnauthorizedOperation);
        }
        dry_run_check(self.dry_run)?;
        Ok(ImageAttributeOutput {
            viewer_is_owner: &image.owner_id == account,
            image,
            attribute: self.attribute,
        })
    }
}

#[derive(Debug)]
pub struct ImageAttributeOutput {
    image: Image,
    attribute: ImageAttributeName,
    viewer_is_owner: bool,
}

impl XmlOutput for ImageAttributeOutput {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("imageId", &self.image.id);
        match self.attribute {
            ImageAttributeName::Description => match &self.image.description {
                Some(description) => {
                    xml.nested("description", |xml| xml.element("value", description))
                }
                None => xml.nested("description", |_| {}),
            },
            ImageAttributeName::LaunchPermission => {
                let mut permissions: Vec<(&str, &str)> = Vec::new();
                if self.image.public {
                    permissions.push(("group", "all"));
                }
                if self.viewer_is_owner {
                    permissions.extend(
                        self.image
                            .launch_permissions
                            .iter()
                            .map(|id| ("userId", id.as_str())),
                    );
                }
                xml.list("launchPermission", &permissions, |xml, (kind, value)| {
                    xml.element(kind, value)
                });
            }
        }
    }
}
