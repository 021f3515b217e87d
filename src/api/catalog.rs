//! DescribeInstanceTypes and DescribeImages: the catalogues.
//!
//! Instance types: `InstanceType.N` (unknown names are
//! `InvalidInstanceType`), filters instance-type, vcpu-info.default-vcpus,
//! memory-info.size-in-mib, processor-info.supported-architecture,
//! current-generation, with pagination (MaxResults 5..100). Images:
//! `ImageId.N`, `Owner.N` (`self`, `amazon` for the catalogue's system
//! account, or an account id), `ExecutableBy.N` (`self`, `all`, an account
//! id), and the filters name, image-id, state, architecture, owner-id,
//! owner-alias, is-public, image-type, root-device-type, platform,
//! description and tags; only images the caller may launch are visible.

use super::pagination::{check_max_results, issue, selection_digest, verify};
use super::tags::{check_filter_names, tag_filter_values};
use super::{dry_run_check, Context};
use crate::compute::catalog::{Image, InstanceType, SYSTEM_ACCOUNT_ID, SYSTEM_OWNER_ALIAS};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::{check_names, matches_all};
use crate::protocol::xml::{XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

const TYPE_FILTERS: &[&str] = &[
    "instance-type",
    "vcpu-info.default-vcpus",
    "memory-info.size-in-mib",
    "processor-info.supported-architecture",
    "current-generation",
];

#[derive(Debug)]
pub struct DescribeInstanceTypes {
    pub instance_types: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeInstanceTypes {
    pub const PARAMETERS: &'static [&'static str] = &[
        "InstanceType",
        "Filter",
        "MaxResults",
        "NextToken",
        "DryRun",
    ];

    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            instance_types: params.list("InstanceType")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 100)?,
            next_token: params.optional("NextToken"),
            dry_run: params.boolean("DryRun")?.unwrap_or(false),
        };
        check_names(&request.filters, TYPE_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<InstanceTypeList> {
        let catalog = &context.compute.catalog;
        let unknown: Vec<&str> = self
            .instance_types
            .iter()
            .filter(|name| catalog.instance_type(name).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::NotFound {
                code: "InvalidInstanceType",
                message: format!(
                    "The following supplied instance types do not exist: [{}]",
                    unknown.join(", ")
                ),
            });
        }
        dry_run_check(self.dry_run)?;
        let account = &context.principal.account_id;
        let mut parts: Vec<String> = self
            .filters
            .iter()
            .map(|f| format!("{}={}", f.name, f.values.join("\u{1}")))
            .collect();
        parts.extend(self.instance_types.iter().cloned());
        let selection = selection_digest(&parts.iter().map(String::as_str).collect::<Vec<_>>());
        let after = match &self.next_token {
            Some(token) => Some(verify(
                &context.compute.pagination_key,
                token,
                account,
                "DescribeInstanceTypes",
                &selection,
            )?),
            None => None,
        };
        let mut matching = catalog
            .instance_types()
            .filter(|t| self.instance_types.is_empty() || self.instance_types.contains(&t.name))
            .filter(|t| after.as_ref().is_none_or(|after| &t.name > after))
            .filter(|t| matches_all(&self.filters, |name| type_filter_values(t, name)))
            .cloned();
        let types: Vec<InstanceType> = match self.max_results {
            Some(max) => matching.by_ref().take(max).collect(),
            None => matching.by_ref().collect(),
        };
        let next_token = match (self.max_results, matching.next(), types.last()) {
            (Some(_), Some(_), Some(last)) => Some(issue(
                &context.compute.pagination_key,
                account,
                "DescribeInstanceTypes",
                &selection,
                &last.name,
            )),
            _ => None,
        };
        Ok(InstanceTypeList { types, next_token })
    }
}

fn type_filter_values(instance_type: &InstanceType, filter: &str) -> Vec<String> {
    match filter {
        "instance-type" => vec![instance_type.name.clone()],
        "vcpu-info.default-vcpus" => vec![instance_type.vcpus.to_string()],
        "memory-info.size-in-mib" => vec![instance_type.memory_mib.to_string()],
        "processor-info.supported-architecture" => vec![instance_type.architecture.clone()],
        _ => vec!["true".to_string()], // current-generation: every type offered here is
    }
}

#[derive(Debug)]
pub struct InstanceTypeList {
    types: Vec<InstanceType>,
    next_token: Option<String>,
}

impl XmlOutput for InstanceTypeList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("instanceTypeSet", &self.types, |xml, t| {
            xml.element("instanceType", &t.name);
            xml.boolean("currentGeneration", true);
            xml.text_list("supportedRootDeviceTypes", &["ebs"]);
            xml.text_list("supportedVirtualizationTypes", &["hvm"]);
            xml.boolean("bareMetal", false);
            xml.element("hypervisor", "xen");
            xml.nested("processorInfo", |xml| {
                xml.text_list(
                    "supportedArchitectures",
                    std::slice::from_ref(&t.architecture),
                );
            });
            xml.nested("vCpuInfo", |xml| xml.number("defaultVCpus", t.vcpus));
            xml.nested("memoryInfo", |xml| xml.number("sizeInMiB", t.memory_mib));
        });
        xml.optional("nextToken", self.next_token.as_deref());
    }
}

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
    pub const PARAMETERS: &'static [&'static str] = &[
        "ImageId",
        "Owner",
        "ExecutableBy",
        "Filter",
        "IncludeDeprecated",
        "IncludeDisabled",
        "DryRun",
    ];

    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            image_ids: params.list("ImageId")?,
            owners: params.list("Owner")?,
            executable_by: params.list("ExecutableBy")?,
            filters: params.filters()?,
            dry_run: params.boolean("DryRun")?.unwrap_or(false),
        };
        for id in &request.image_ids {
            crate::compute::ids::check_id(id, "ami", "InvalidAMIID.Malformed")?;
        }
        check_filter_names(&request.filters, IMAGE_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ImageList> {
        let account = context.principal.account_id.as_str();
        let visible = |image: &&Image| image.public || image.owner_id == account;
        let catalog = &context.compute.catalog;
        let missing: Vec<&str> = self
            .image_ids
            .iter()
            .filter(|id| catalog.image(id).filter(|i| visible(i)).is_none())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::NotFound {
                code: "InvalidAMIID.NotFound",
                message: format!("The image id '[{}]' does not exist", missing.join(", ")),
            });
        }
        dry_run_check(self.dry_run)?;
        let owner_matches = |image: &Image| {
            self.owners.is_empty()
                || self.owners.iter().any(|owner| match owner.as_str() {
                    "self" => image.owner_id == account,
                    SYSTEM_OWNER_ALIAS => image.owner_id == SYSTEM_ACCOUNT_ID,
                    id => image.owner_id == id,
                })
        };
        let executable = |image: &Image| {
            self.executable_by.is_empty()
                || self.executable_by.iter().any(|who| match who.as_str() {
                    "all" => image.public,
                    "self" => image.public || image.owner_id == account,
                    id => image.public || image.owner_id == id,
                })
        };
        let images = catalog
            .images()
            .filter(visible)
            .filter(|image| self.image_ids.is_empty() || self.image_ids.contains(&image.id))
            .filter(|image| owner_matches(image) && executable(image))
            .filter(|image| matches_all(&self.filters, |name| image_filter_values(image, name)))
            .cloned()
            .collect();
        Ok(ImageList { images })
    }
}

fn image_filter_values(image: &Image, filter: &str) -> Vec<String> {
    if let Some(values) = tag_filter_values(&[], filter) {
        return values;
    }
    let one = |value: &str| vec![value.to_string()];
    match filter {
        "name" => one(&image.name),
        "image-id" => one(&image.id),
        "state" => one("available"),
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

#[derive(Debug)]
pub struct ImageList {
    images: Vec<Image>,
}

impl XmlOutput for ImageList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("imagesSet", &self.images, |xml, image| {
            xml.element("imageId", &image.id);
            xml.element(
                "imageLocation",
                &format!("{}/{}", image.owner_id, image.name),
            );
            xml.element("imageState", "available");
            xml.element("imageOwnerId", &image.owner_id);
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
            xml.element("rootDeviceName", "/dev/xvda");
            xml.list("blockDeviceMapping", &[] as &[String], |_, _| {});
            xml.element("virtualizationType", "hvm");
            xml.element("hypervisor", "xen");
            xml.list("tagSet", &[] as &[String], |_, _| {});
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
