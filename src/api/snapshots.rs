//! Snapshots: CreateSnapshot, DescribeSnapshots, DeleteSnapshot,
//! CopySnapshot, and Describe/Modify/ResetSnapshotAttribute.
//!
//! A snapshot is `pending` with a progress that grows with time, then
//! `completed` (see `compute::volumes`), so `aws ec2 wait
//! snapshot-completed` needs no background work; snapshots a registered
//! image uses cannot be deleted (`InvalidSnapshot.InUse`). Snapshots are
//! shared through `createVolumePermission` (`compute::snapshot_sharing`):
//! DescribeSnapshots lists the caller's own and those shared with it or
//! public, `Owner.N` and `RestorableBy.N` meaning what they mean in EC2.

use super::pagination::{check_max_results, Paging};
use super::permissions::permission_change;
use super::tags::{check_filter_names, tag_filter_values, tag_specifications, write_tags};
use super::volumes::volume_id;
use super::{dry_run_check, Context};
use crate::clock::format_timestamp;
use crate::compute::image_sharing::PermissionChange;
use crate::compute::snapshots::{Snapshot, SnapshotSource};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::matches_all;
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};
use chrono::{DateTime, Utc};

fn write_snapshot(xml: &mut XmlWriter, snapshot: &Snapshot, now: DateTime<Utc>) {
    xml.element("snapshotId", &snapshot.id);
    xml.element("volumeId", &snapshot.volume_id);
    xml.element("status", snapshot.state(now));
    xml.timestamp("startTime", snapshot.started_at);
    xml.element("progress", &snapshot.progress(now));
    xml.element("ownerId", &snapshot.account_id);
    xml.number("volumeSize", snapshot.volume_size);
    xml.optional("description", snapshot.description.as_deref());
    xml.boolean("encrypted", snapshot.encrypted);
    write_tags(xml, &snapshot.tags);
}

#[derive(Debug)]
pub struct CreateSnapshot {
    pub volume_id: String,
    pub description: Option<String>,
    pub tags: Vec<crate::compute::instances::Tag>,
    pub dry_run: bool,
}

impl CreateSnapshot {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            volume_id: volume_id(params)?,
            description: params.optional_text("Description", 255)?,
            tags: tag_specifications(params, "snapshot")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<SnapshotOutput> {
        let account = &context.principal.account_id;
        let volume = context.compute.volume(account, &self.volume_id).await?;
        let snapshot = context
            .compute
            .create_snapshot(
                account,
                SnapshotSource {
                    volume_id: volume.id.clone(),
                    size_gib: volume.size_gib,
                    encrypted: volume.encrypted,
                },
                self.description,
                self.tags,
                self.dry_run,
            )
            .await?;
        Ok(SnapshotOutput {
            snapshot,
            now: context.compute.clock().now(),
        })
    }
}

/// CreateSnapshot answers the snapshot under the root.
#[derive(Debug)]
pub struct SnapshotOutput {
    snapshot: Snapshot,
    now: DateTime<Utc>,
}

impl XmlOutput for SnapshotOutput {
    fn write_xml(&self, xml: &mut XmlWriter) {
        write_snapshot(xml, &self.snapshot, self.now);
    }
}

#[derive(Debug)]
pub struct CopySnapshot {
    pub source_region: String,
    pub source_snapshot_id: String,
    pub description: Option<String>,
    pub tags: Vec<crate::compute::instances::Tag>,
    pub encrypted: bool,
    pub dry_run: bool,
}

impl CopySnapshot {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let source_snapshot_id = params.required("SourceSnapshotId")?;
        crate::compute::kinds::ResourceKind::Snapshot.check(&source_snapshot_id)?;
        Ok(Self {
            source_region: params.required("SourceRegion")?,
            source_snapshot_id,
            description: params.optional_text("Description", 255)?,
            tags: tag_specifications(params, "snapshot")?,
            encrypted: params.boolean("Encrypted")?.unwrap_or(false),
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CopiedSnapshot> {
        let compute = context.compute;
        if self.source_region != compute.region().name {
            return Err(ApiError::invalid_value(format!(
                "Copies between regions are not supported: the source region must be {}",
                compute.region().name
            )));
        }
        let account = &context.principal.account_id;
        let source = compute.snapshot(account, &self.source_snapshot_id).await?;
        let description = self.description.or_else(|| {
            Some(format!(
                "Copied for DestinationSnapshot from SourceSnapshot {}",
                source.id
            ))
        });
        let copy = compute
            .create_snapshot(
                account,
                SnapshotSource {
                    volume_id: source.volume_id.clone(),
                    size_gib: source.volume_size,
                    // An encrypted copy when asked for, or of an encrypted one.
                    encrypted: source.encrypted || self.encrypted,
                },
                description,
                self.tags,
                self.dry_run,
            )
            .await?;
        Ok(CopiedSnapshot(copy))
    }
}

#[derive(Debug)]
pub struct CopiedSnapshot(Snapshot);

impl XmlOutput for CopiedSnapshot {
    fn write_xml(&self, xml: &mut XmlWriter) {
        write_tags(xml, &self.0.tags);
        xml.element("snapshotId", &self.0.id);
    }
}

const SNAPSHOT_FILTERS: &[&str] = &[
    "description",
    "owner-id",
    "progress",
    "snapshot-id",
    "start-time",
    "status",
    "volume-id",
    "volume-size",
    "encrypted",
    "tag-key",
    "tag-value",
];

#[derive(Debug)]
pub struct DescribeSnapshots {
    pub snapshot_ids: Vec<String>,
    pub owners: Vec<String>,
    pub restorable_by: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeSnapshots {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            snapshot_ids: params.list("SnapshotId")?,
            owners: params.list("Owner")?,
            restorable_by: params.list("RestorableBy")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        for id in &request.snapshot_ids {
            crate::compute::kinds::ResourceKind::Snapshot.check(id)?;
        }
        check_filter_names(&request.filters, SNAPSHOT_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<SnapshotList> {
        let account = context.principal.account_id.as_str();
        let now = context.compute.clock().now();
        // The caller's own snapshots, and those shared with it or public
        // (without their owner's tags).
        let snapshots: Vec<Snapshot> = context
            .compute
            .snapshots(account)
            .await?
            .into_iter()
            .map(|mut snapshot| {
                if snapshot.account_id != account {
                    snapshot.tags.clear();
                }
                snapshot
            })
            .collect();
        if let Some(missing) = self
            .snapshot_ids
            .iter()
            .find(|id| !snapshots.iter().any(|s| &s.id == *id))
        {
            return Err(ApiError::NotFound {
                code: crate::compute::kinds::ResourceKind::Snapshot.not_found_code(),
                message: format!("The snapshot '{missing}' does not exist."),
            });
        }
        dry_run_check(self.dry_run)?;
        let owner_matches = |s: &Snapshot| {
            self.owners.is_empty()
                || self.owners.iter().any(|o| {
                    let owner = if o == "self" { account } else { o.as_str() };
                    s.account_id == owner
                })
        };
        // EC2's RestorableBy: `all` is the public snapshots; `self` (or an
        // account id) those that account owns or has an explicit create
        // volume permission for.
        let restorable = |s: &Snapshot| {
            self.restorable_by.is_empty()
                || self.restorable_by.iter().any(|r| {
                    let who = match r.as_str() {
                        "all" => return s.public,
                        "self" => account,
                        id => id,
                    };
                    s.account_id == who
                        || ((s.account_id == account || who == account)
                            && s.create_volume_permissions.iter().any(|a| a == who))
                })
        };
        let paging = Paging::start(
            context,
            "DescribeSnapshots",
            &self.filters,
            &[],
            self.max_results,
            self.next_token.as_deref(),
        )?;
        let after = paging.after.clone();
        let matching = snapshots
            .into_iter()
            .filter(|s| owner_matches(s) && restorable(s))
            .filter(|s| self.snapshot_ids.is_empty() || self.snapshot_ids.contains(&s.id))
            .filter(|s| after.as_ref().is_none_or(|after| &s.id > after))
            .filter(|s| {
                matches_all(&self.filters, |name| {
                    tag_filter_values(&s.tags, name).unwrap_or_else(|| match name {
                        "description" => s.description.iter().cloned().collect(),
                        "owner-id" => vec![s.account_id.clone()],
                        "progress" => vec![s.progress(now)],
                        "snapshot-id" => vec![s.id.clone()],
                        "start-time" => vec![format_timestamp(s.started_at)],
                        "status" => vec![s.state(now).to_string()],
                        "volume-id" => vec![s.volume_id.clone()],
                        "volume-size" => vec![s.volume_size.to_string()],
                        _ => vec![s.encrypted.to_string()],
                    })
                })
            });
        let (page, next_token) = paging.cut(matching, |item| item.id.clone());
        Ok(SnapshotList {
            snapshots: page,
            next_token,
            now,
        })
    }
}

#[derive(Debug)]
pub struct SnapshotList {
    snapshots: Vec<Snapshot>,
    next_token: Option<String>,
    now: DateTime<Utc>,
}

impl XmlOutput for SnapshotList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("snapshotSet", &self.snapshots, |xml, snapshot| {
            write_snapshot(xml, snapshot, self.now)
        });
        xml.optional("nextToken", self.next_token.as_deref());
    }
}

#[derive(Debug)]
pub struct DeleteSnapshot {
    pub snapshot_id: String,
    pub dry_run: bool,
}

impl DeleteSnapshot {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let snapshot_id = params.required("SnapshotId")?;
        crate::compute::kinds::ResourceKind::Snapshot.check(&snapshot_id)?;
        Ok(Self {
            snapshot_id,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .delete_snapshot(
                &context.principal.account_id,
                &self.snapshot_id,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct ModifySnapshotAttribute {
    pub snapshot_id: String,
    pub change: PermissionChange,
    pub dry_run: bool,
}

/// `Attribute`, where given, must be `createVolumePermission`.
fn volume_permission_attribute(params: &Params, required: bool) -> ApiResult<()> {
    match params.optional("Attribute") {
        None if !required => Ok(()),
        Some(name) if name == "createVolumePermission" => Ok(()),
        Some(name) if name == "productCodes" => Err(ApiError::UnsupportedOperation(
            "Snapshots carry no product codes here".into(),
        )),
        None => Err(ApiError::MissingParameter("Attribute".into())),
        Some(other) => Err(ApiError::invalid_value(format!(
            "Value ({other}) for parameter attribute is invalid. Expecting createVolumePermission."
        ))),
    }
}

impl ModifySnapshotAttribute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        volume_permission_attribute(params, false)?;
        Ok(Self {
            snapshot_id: params.required("SnapshotId")?,
            change: permission_change(params, "CreateVolumePermission")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .modify_create_volume_permissions(
                &context.principal.account_id,
                &self.snapshot_id,
                self.change,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct ResetSnapshotAttribute {
    pub snapshot_id: String,
    pub dry_run: bool,
}

impl ResetSnapshotAttribute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        volume_permission_attribute(params, true)?;
        Ok(Self {
            snapshot_id: params.required("SnapshotId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .reset_create_volume_permissions(
                &context.principal.account_id,
                &self.snapshot_id,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct DescribeSnapshotAttribute {
    pub snapshot_id: String,
    pub dry_run: bool,
}

impl DescribeSnapshotAttribute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        volume_permission_attribute(params, true)?;
        let snapshot_id = params.required("SnapshotId")?;
        crate::compute::kinds::ResourceKind::Snapshot.check(&snapshot_id)?;
        Ok(Self {
            snapshot_id,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<SnapshotPermissions> {
        let snapshot = context
            .compute
            .create_volume_permissions(&context.principal.account_id, &self.snapshot_id)
            .await?;
        dry_run_check(self.dry_run)?;
        Ok(SnapshotPermissions(snapshot))
    }
}

#[derive(Debug)]
pub struct SnapshotPermissions(Snapshot);

impl XmlOutput for SnapshotPermissions {
    fn write_xml(&self, xml: &mut XmlWriter) {
        let snapshot = &self.0;
        let mut permissions: Vec<(&str, &str)> = Vec::new();
        if snapshot.public {
            permissions.push(("group", "all"));
        }
        permissions.extend(
            snapshot
                .create_volume_permissions
                .iter()
                .map(|id| ("userId", id.as_str())),
        );
        xml.list(
            "createVolumePermission",
            &permissions,
            |xml, (kind, value)| xml.element(kind, value),
        );
        xml.element("snapshotId", &snapshot.id);
    }
}
