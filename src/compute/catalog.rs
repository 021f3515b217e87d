//! The instance-type and image catalogues.
//!
//! Instance types give RunInstances the vCPUs and memory the scheduler
//! reserves; images are what instances boot. Both come from the
//! configuration, on top of a built-in default (t2/t3/t4g/m5 sizes, a few
//! public Linux images), so a first start can launch instances at once.
//! Catalogue images are public and owned by the gateway's system account,
//! which DescribeImages also answers to as the owner alias `amazon`.

use crate::config::{Config, ImageConfig, InstanceTypeConfig};
use std::collections::BTreeMap;

/// The owner id of catalogue images.
pub const SYSTEM_ACCOUNT_ID: &str = "000000000000";

/// The owner alias DescribeImages maps to the system account.
pub const SYSTEM_OWNER_ALIAS: &str = "amazon";

/// Built-in instance types: (name, vCPUs, MiB, architecture).
const BUILT_IN_TYPES: &[(&str, u32, u64, &str)] = &[
    ("t2.nano", 1, 512, "x86_64"),
    ("t2.micro", 1, 1024, "x86_64"),
    ("t2.small", 1, 2048, "x86_64"),
    ("t2.medium", 2, 4096, "x86_64"),
    ("t2.large", 2, 8192, "x86_64"),
    ("t2.xlarge", 4, 16384, "x86_64"),
    ("t3.nano", 2, 512, "x86_64"),
    ("t3.micro", 2, 1024, "x86_64"),
    ("t3.small", 2, 2048, "x86_64"),
    ("t3.medium", 2, 4096, "x86_64"),
    ("t3.large", 2, 8192, "x86_64"),
    ("t3.xlarge", 4, 16384, "x86_64"),
    ("t4g.micro", 2, 1024, "arm64"),
    ("t4g.small", 2, 2048, "arm64"),
    ("m5.large", 2, 8192, "x86_64"),
    ("m5.xlarge", 4, 16384, "x86_64"),
    ("m5.2xlarge", 8, 32768, "x86_64"),
    ("m5.4xlarge", 16, 65536, "x86_64"),
];

/// Built-in public images: (id, name, description, architecture,
/// platform).
const BUILT_IN_IMAGES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "ami-0b1c2d3e4f5a6b7c8",
        "debian-12-amd64-20261101",
        "Debian 12 (bookworm), amd64",
        "x86_64",
        "linux",
    ),
    (
        "ami-0c1d2e3f4a5b6c7d8",
        "debian-12-arm64-20261101",
        "Debian 12 (bookworm), arm64",
        "arm64",
        "linux",
    ),
    (
        "ami-0a0b0c0d0e0f10111",
        "ubuntu-noble-24.04-amd64-server-20261101",
        "Ubuntu 24.04 LTS, amd64",
        "x86_64",
        "linux",
    ),
    (
        "ami-0f0e0d0c0b0a09080",
        "Windows_Server-2022-English-Full-Base-2026.11.01",
        "Microsoft Windows Server 2022 Full Locale English AMI",
        "x86_64",
        "windows",
    ),
    (
        "ami-12345678",
        "ec2-gateway-example",
        "The image id the AWS documentation's examples use",
        "x86_64",
        "linux",
    ),
];

/// An instance type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceType {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub architecture: String,
}

pub use super::images::Image;

/// Both catalogues.
#[derive(Debug, Clone)]
pub struct Catalog {
    instance_types: BTreeMap<String, InstanceType>,
    images: BTreeMap<String, Image>,
    /// Image id -> the root filesystem it names.
    root_filesystems: BTreeMap<String, String>,
}

impl Catalog {
    pub fn from_config(config: &Config) -> Self {
        let mut instance_types: BTreeMap<String, InstanceType> = BUILT_IN_TYPES
            .iter()
            .map(|(name, vcpus, memory_mib, architecture)| {
                let t = InstanceType {
                    name: name.to_string(),
                    vcpus: *vcpus,
                    memory_mib: *memory_mib,
                    architecture: architecture.to_string(),
                };
                (t.name.clone(), t)
            })
            .collect();
        for InstanceTypeConfig {
            name,
            vcpus,
            memory_mib,
            architecture,
        } in &config.instance_types
        {
            instance_types.insert(
                name.clone(),
                InstanceType {
                    name: name.clone(),
                    vcpus: *vcpus,
                    memory_mib: *memory_mib,
                    architecture: architecture.clone(),
                },
            );
        }
        let configured: Vec<ImageConfig> = match &config.images {
            Some(images) => images.clone(),
            None => BUILT_IN_IMAGES
                .iter()
                .map(
                    |(id, name, description, architecture, platform)| ImageConfig {
                        id: id.to_string(),
                        name: name.to_string(),
                        description: Some(description.to_string()),
                        architecture: architecture.to_string(),
                        platform: platform.to_string(),
                        root_filesystem: None,
                    },
                )
                .collect(),
        };
        let root_filesystems = configured
            .iter()
            .filter_map(|image| Some((image.id.clone(), image.root_filesystem.clone()?)))
            .collect();
        let images = configured
            .into_iter()
            .map(|image| {
                let image = Image {
                    id: image.id,
                    name: image.name,
                    description: image.description,
                    architecture: image.architecture,
                    platform: image.platform,
                    owner_id: SYSTEM_ACCOUNT_ID.to_string(),
                    public: true,
                    tags: Vec::new(),
                    created_at: None,
                    snapshot_ids: Vec::new(),
                    root_device_name: None,
                    block_devices: Vec::new(),
                    launch_permissions: Vec::new(),
                    available_at: None,
                };
                (image.id.clone(), image)
            })
            .collect();
        Self {
            instance_types,
            images,
            root_filesystems,
        }
    }

    pub fn instance_type(&self, name: &str) -> Option<&InstanceType> {
        self.instance_types.get(name)
    }

    pub fn instance_types(&self) -> impl Iterator<Item = &InstanceType> {
        self.instance_types.values()
    }

    pub fn image(&self, id: &str) -> Option<&Image> {
        self.images.get(id)
    }

    /// The root filesystem a catalogue image names, if any.
    pub fn root_filesystem(&self, image_id: &str) -> Option<&str> {
        self.root_filesystems.get(image_id).map(String::as_str)
    }

    pub fn images(&self) -> impl Iterator<Item = &Image> {
        self.images.values()
    }
}
