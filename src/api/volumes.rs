//! Volumes: CreateVolume, DescribeVolumes, DeleteVolume, AttachVolume,
//! DetachVolume, ModifyVolume, DescribeVolumeStatus (snapshots are in
//! `snapshots`).
//!
//! States shown are derived from stored times (see `compute::volumes`), so
//! what a client polls for (`available`, `in-use`, snapshot `completed`)
//! arrives on its own. Volume types gp2, gp3, io1, io2, st1, sc1 and
//! standard, with EC2's size ranges; io1/io2 need `Iops`.

use super::pagination::{check_max_results, Paging};
use super::tags::{check_filter_names, tag_filter_values, tag_specifications, write_tags};
use super::{dry_run_check, Context};
use crate::clock::format_timestamp;
use crate::compute::volumes::{attachment_state, NewVolume, Volume};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::matches_all;
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

const VOLUME_TYPES: &[&str] = &["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"];

pub(super) fn volume_id(params: &Params) -> ApiResult<String> {
    let id = params.required("VolumeId")?;
    crate::compute::kinds::ResourceKind::Volume.check(&id)?;
    Ok(id)
}

fn check_type(volume_type: &str) -> ApiResult<()> {
    if VOLUME_TYPES.contains(&volume_type) {
        Ok(())
    } else {
        Err(ApiError::invalid_value(format!(
            "Value ({volume_type}) for parameter volumeType is invalid. Expected one of {}.",
            VOLUME_TYPES.join(", ")
        )))
    }
}

#[derive(Debug)]
pub struct CreateVolume {
    pub volume: NewVolume,
    pub dry_run: bool,
}

impl CreateVolume {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let volume_type = params
            .optional("VolumeType")
            .unwrap_or_else(|| "gp2".into());
        check_type(&volume_type)?;
        let iops: Option<u32> = params.number("Iops")?;
        match (volume_type.as_str(), iops) {
            ("io1" | "io2", None) => {
                return Err(ApiError::MissingParameter(
                    "Iops (required for io1 and io2)".into(),
                ))
            }
            ("gp2" | "st1" | "sc1" | "standard", Some(_)) => {
                return Err(ApiError::InvalidParameterCombination(format!(
                    "The parameter iops is not supported for {volume_type} volumes."
                )))
            }
            _ => {}
        }
        // Accepted and reported: no volume data is stored to encrypt.
        let encrypted = params.boolean("Encrypted")?.unwrap_or(false);
        let kms_key_id = params.optional("KmsKeyId");
        if kms_key_id.is_some() && !encrypted {
            return Err(ApiError::InvalidParameterCombination(
                "KmsKeyId needs Encrypted set to true".into(),
            ));
        }
        let snapshot_id = params.optional("SnapshotId");
        if let Some(id) = &snapshot_id {
            crate::compute::kinds::ResourceKind::Snapshot.check(id)?;
        }
        let mut fingerprint_parts: Vec<&(String, String)> = params
            .pairs()
            .iter()
            .filter(|(n, _)| !matches!(n.as_str(), "Action" | "Version" | "ClientToken" | "DryRun"))
            .collect();
        fingerprint_parts.sort();
        let fingerprint = hex::encode(Sha256::digest(format!("{fingerprint_parts:?}").as_bytes()));
        Ok(Self {
            volume: NewVolume {
                size_gib: params.number("Size")?,
                snapshot_id,
                availability_zone: params.required("AvailabilityZone")?,
                volume_type,
                iops,
                throughput: params.number("Throughput")?,
                tags: tag_specifications(params, "volume")?,
                client_token: params.optional("ClientToken"),
                fingerprint,
                encrypted,
                kms_key_id,
            },
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<VolumeOutput> {
        let volume = context
            .compute
            .create_volume(&context.principal.account_id, self.volume, self.dry_run)
            .await?;
        Ok(VolumeOutput {
            volume,
            now: context.compute.clock().now(),
        })
    }
}

fn write_attachment(xml: &mut XmlWriter, volume: &Volume, now: DateTime<Utc>) {
    if let Some(attachment) = &volume.attachment {
        xml.element("volumeId", &volume.id);
        xml.element("instanceId", &attachment.instance_id);
        xml.element("device", &attachment.device);
        xml.element("status", attachment_state(attachment, now));
        xml.timestamp("attachTime", attachment.attach_time);
        xml.boolean("deleteOnTermination", attachment.delete_on_termination);
    }
}

fn write_volume(xml: &mut XmlWriter, volume: &Volume, now: DateTime<Utc>) {
    xml.element("volumeId", &volume.id);
    xml.number("size", volume.size_gib);
    xml.optional("snapshotId", volume.snapshot_id.as_deref());
    xml.element("availabilityZone", &volume.availability_zone);
    xml.element("status", volume.state(now));
    xml.timestamp("createTime", volume.created_at);
    let attachments: Vec<&Volume> = volume.attachment.iter().map(|_| volume).collect();
    xml.list("attachmentSet", &attachments, |xml, volume| {
        write_attachment(xml, volume, now)
    });
    xml.element("volumeType", &volume.volume_type);
    if let Some(iops) = volume.iops.or(match volume.volume_type.as_str() {
        "gp2" => Some((volume.size_gib * 3).clamp(100, 16000)),
        "gp3" => Some(3000),
        _ => None,
    }) {
        xml.number("iops", iops);
    }
    if volume.volume_type == "gp3" {
        xml.number("throughput", volume.throughput.unwrap_or(125));
    }
    xml.boolean("encrypted", volume.encrypted);
    xml.optional("kmsKeyId", volume.kms_key_id.as_deref());
    xml.boolean("multiAttachEnabled", false);
    write_tags(xml, &volume.tags);
}

/// CreateVolume answers the volume under the root.
#[derive(Debug)]
pub struct VolumeOutput {
    volume: Volume,
    now: DateTime<Utc>,
}

impl XmlOutput for VolumeOutput {
    fn write_xml(&self, xml: &mut XmlWriter) {
        write_volume(xml, &self.volume, self.now);
    }
}

const VOLUME_FILTERS: &[&str] = &[
    "attachment.attach-time",
    "attachment.delete-on-termination",
    "attachment.device",
    "attachment.instance-id",
    "attachment.status",
    "availability-zone",
    "create-time",
    "encrypted",
    "size",
    "snapshot-id",
    "status",
    "volume-id",
    "volume-type",
    "tag-key",
    "tag-value",
];

fn volume_filter_values(volume: &Volume, name: &str, now: DateTime<Utc>) -> Vec<String> {
    if let Some(values) = tag_filter_values(&volume.tags, name) {
        return values;
    }
    let attachment = volume.attachment.as_ref();
    match name {
        "attachment.attach-time" => attachment
            .map(|a| format_timestamp(a.attach_time))
            .into_iter()
            .collect(),
        "attachment.delete-on-termination" => attachment
            .map(|a| a.delete_on_termination.to_string())
            .into_iter()
            .collect(),
        "attachment.device" => attachment.map(|a| a.device.clone()).into_iter().collect(),
        "attachment.instance-id" => attachment
            .map(|a| a.instance_id.clone())
            .into_iter()
            .collect(),
        "attachment.status" => attachment
            .map(|a| attachment_state(a, now).to_string())
            .into_iter()
            .collect(),
        "availability-zone" => vec![volume.availability_zone.clone()],
        "create-time" => vec![format_timestamp(volume.created_at)],
        "encrypted" => vec![volume.encrypted.to_string()],
        "size" => vec![volume.size_gib.to_string()],
        "snapshot-id" => volume.snapshot_id.iter().cloned().collect(),
        "status" => vec![volume.state(now).to_string()],
        "volume-id" => vec![volume.id.clone()],
        _ => vec![volume.volume_type.clone()],
    }
}

/// Selection by ids, filters and pages, shared by the volume describes.
struct VolumeQuery {
    volume_ids: Vec<String>,
    filters: Vec<Filter>,
    max_results: Option<usize>,
    next_token: Option<String>,
    dry_run: bool,
}

impl VolumeQuery {
    fn parse(params: &Params, filters: &[&str]) -> ApiResult<Self> {
        let query = Self {
            volume_ids: params.list("VolumeId")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        if query.max_results.is_some() && !query.volume_ids.is_empty() {
            return Err(ApiError::InvalidParameterCombination(
                "The parameter volumeSet cannot be used with the parameter maxResults".into(),
            ));
        }
        for id in &query.volume_ids {
            crate::compute::kinds::ResourceKind::Volume.check(id)?;
        }
        check_filter_names(&query.filters, filters)?;
        Ok(query)
    }

    /// The page of matching volumes and the token for the next one.
    async fn run(
        &self,
        context: &Context<'_>,
        action: &'static str,
    ) -> ApiResult<(Vec<Volume>, Option<String>)> {
        let account = &context.principal.account_id;
        let now = context.compute.clock().now();
        let volumes = context.compute.volumes(account).await?;
        if let Some(missing) = self
            .volume_ids
            .iter()
            .find(|id| !volumes.iter().any(|v| &v.id == *id))
        {
            return Err(ApiError::NotFound {
                code: crate::compute::kinds::ResourceKind::Volume.not_found_code(),
                message: format!("The volume '{missing}' does not exist."),
            });
        }
        dry_run_check(self.dry_run)?;
        let paging = Paging::start(
            context,
            action,
            &self.filters,
            &[],
            self.max_results,
            self.next_token.as_deref(),
        )?;
        let after = paging.after.clone();
        let matching = volumes
            .into_iter()
            .filter(|v| self.volume_ids.is_empty() || self.volume_ids.contains(&v.id))
            .filter(|v| after.as_ref().is_none_or(|after| &v.id > after))
            .filter(|v| matches_all(&self.filters, |name| volume_filter_values(v, name, now)));
        let (page, next_token) = paging.cut(matching, |volume| volume.id.clone());
        Ok((page, next_token))
    }
}

#[derive(Debug)]
pub struct DescribeVolumes {
    pub params: Params,
}

impl DescribeVolumes {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        VolumeQuery::parse(params, VOLUME_FILTERS)?;
        Ok(Self {
            params: params.clone(),
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<VolumeList> {
        let (volumes, next_token) = VolumeQuery::parse(&self.params, VOLUME_FILTERS)?
            .run(context, "DescribeVolumes")
            .await?;
        Ok(VolumeList {
            volumes,
            next_token,
            now: context.compute.clock().now(),
        })
    }
}

#[derive(Debug)]
pub struct VolumeList {
    volumes: Vec<Volume>,
    next_token: Option<String>,
    now: DateTime<Utc>,
}

impl XmlOutput for VolumeList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("volumeSet", &self.volumes, |xml, volume| {
            write_volume(xml, volume, self.now)
        });
        xml.optional("nextToken", self.next_token.as_deref());
    }
}

const VOLUME_STATUS_FILTERS: &[&str] = &[
    "availability-zone",
    "volume-status.status",
    "volume-status.details-name",
    "volume-status.details-status",
];

#[derive(Debug)]
pub struct DescribeVolumeStatus {
    pub params: Params,
}

impl DescribeVolumeStatus {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        VolumeQuery::parse(params, VOLUME_STATUS_FILTERS)?;
        Ok(Self {
            params: params.clone(),
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<VolumeStatusList> {
        let mut query = VolumeQuery::parse(&self.params, VOLUME_STATUS_FILTERS)?;
        // Status filters are answered here: every volume's I/O is enabled.
        let status_filters = std::mem::take(&mut query.filters);
        let (volumes, next_token) = query.run(context, "DescribeVolumeStatus").await?;
        let now = context.compute.clock().now();
        let volumes = volumes
            .into_iter()
            .filter(|v| {
                matches_all(&status_filters, |name| match name {
                    "availability-zone" => vec![v.availability_zone.clone()],
                    "volume-status.status" => vec![volume_status(v, now).to_string()],
                    "volume-status.details-name" => {
                        vec!["io-enabled".into(), "io-performance".into()]
                    }
                    _ => vec!["passed".into(), "not-applicable".into()],
                })
            })
            .collect();
        Ok(VolumeStatusList {
            volumes,
            next_token,
            now,
        })
    }
}

/// `ok` once created, `insufficient-data` while creating.
fn volume_status(volume: &Volume, now: DateTime<Utc>) -> &'static str {
    if volume.state(now) == "creating" {
        "insufficient-data"
    } else {
        "ok"
    }
}

#[derive(Debug)]
pub struct VolumeStatusList {
    volumes: Vec<Volume>,
    next_token: Option<String>,
    now: DateTime<Utc>,
}

impl XmlOutput for VolumeStatusList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("volumeStatusSet", &self.volumes, |xml, volume| {
            xml.element("volumeId", &volume.id);
            xml.element("availabilityZone", &volume.availability_zone);
            xml.nested("volumeStatus", |xml| {
                xml.element("status", volume_status(volume, self.now));
                xml.list(
                    "details",
                    &[
                        ("io-enabled", "passed"),
                        ("io-performance", "not-applicable"),
                    ],
                    |xml, (name, status)| {
                        xml.element("name", name);
                        xml.element("status", status);
                    },
                );
            });
            xml.list("eventsSet", &[] as &[String], |_, _| {});
            xml.list("actionsSet", &[] as &[String], |_, _| {});
        });
        xml.optional("nextToken", self.next_token.as_deref());
    }
}

#[derive(Debug)]
pub struct DeleteVolume {
    pub volume_id: String,
    pub dry_run: bool,
}

impl DeleteVolume {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            volume_id: volume_id(params)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .delete_volume(&context.principal.account_id, &self.volume_id, self.dry_run)
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct AttachVolume {
    pub volume_id: String,
    pub instance_id: String,
    pub device: String,
    pub dry_run: bool,
}

impl AttachVolume {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let instance_id = params.required("InstanceId")?;
        crate::compute::kinds::ResourceKind::Instance.check(&instance_id)?;
        Ok(Self {
            volume_id: volume_id(params)?,
            instance_id,
            device: params.required("Device")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<AttachmentOutput> {
        let volume = context
            .compute
            .attach_volume(
                &context.principal.account_id,
                &self.volume_id,
                &self.instance_id,
                &self.device,
                self.dry_run,
            )
            .await?;
        Ok(AttachmentOutput {
            volume,
            now: context.compute.clock().now(),
        })
    }
}

#[derive(Debug)]
pub struct DetachVolume {
    pub volume_id: String,
    pub instance_id: Option<String>,
    pub device: Option<String>,
    pub dry_run: bool,
}

impl DetachVolume {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        params.boolean("Force")?;
        Ok(Self {
            volume_id: volume_id(params)?,
            instance_id: params.optional("InstanceId"),
            device: params.optional("Device"),
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<AttachmentOutput> {
        let volume = context
            .compute
            .detach_volume(
                &context.principal.account_id,
                &self.volume_id,
                self.instance_id.as_deref(),
                self.device.as_deref(),
                self.dry_run,
            )
            .await?;
        Ok(AttachmentOutput {
            volume,
            now: context.compute.clock().now(),
        })
    }
}

/// Attach/DetachVolume answer the attachment under the root.
#[derive(Debug)]
pub struct AttachmentOutput {
    volume: Volume,
    now: DateTime<Utc>,
}

impl XmlOutput for AttachmentOutput {
    fn write_xml(&self, xml: &mut XmlWriter) {
        write_attachment(xml, &self.volume, self.now);
    }
}

#[derive(Debug)]
pub struct ModifyVolume {
    pub volume_id: String,
    pub size: Option<u32>,
    pub volume_type: Option<String>,
    pub iops: Option<u32>,
    pub dry_run: bool,
}

impl ModifyVolume {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let volume_type = params.optional("VolumeType");
        if let Some(volume_type) = &volume_type {
            check_type(volume_type)?;
        }
        let request = Self {
            volume_id: volume_id(params)?,
            size: params.number("Size")?,
            volume_type,
            iops: params.number("Iops")?,
            dry_run: params.dry_run()?,
        };
        if request.size.is_none() && request.volume_type.is_none() && request.iops.is_none() {
            return Err(ApiError::MissingParameter(
                "Size, VolumeType or Iops".into(),
            ));
        }
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<Modification> {
        let (original, modified) = context
            .compute
            .modify_volume(
                &context.principal.account_id,
                &self.volume_id,
                self.size,
                self.volume_type,
                self.iops,
                self.dry_run,
            )
            .await?;
        Ok(Modification {
            original,
            modified,
            at: context.compute.clock().now(),
        })
    }
}

#[derive(Debug)]
pub struct Modification {
    original: Volume,
    modified: Volume,
    at: DateTime<Utc>,
}

impl XmlOutput for Modification {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.nested("volumeModification", |xml| {
            xml.element("volumeId", &self.modified.id);
            xml.element("modificationState", "completed");
            xml.number("targetSize", self.modified.size_gib);
            xml.element("targetVolumeType", &self.modified.volume_type);
            if let Some(iops) = self.modified.iops {
                xml.number("targetIops", iops);
            }
            xml.number("originalSize", self.original.size_gib);
            xml.element("originalVolumeType", &self.original.volume_type);
            if let Some(iops) = self.original.iops {
                xml.number("originalIops", iops);
            }
            xml.number("progress", 100);
            xml.timestamp("startTime", self.at);
            xml.timestamp("endTime", self.at);
        });
    }
}
