//! EBS snapshots: CreateSnapshot/CopySnapshot, DeleteSnapshot, listings.
//!
//! A snapshot is `pending` with a progress that grows with time, then
//! `completed`, derived from its stored times (no background work, and it
//! survives restarts). The account's snapshot usage record carries the
//! quota (`SnapshotLimitExceeded`); a snapshot a registered image uses
//! cannot be deleted (`InvalidSnapshot.InUse`): registrations rewrite the
//! snapshots they use, so a deletion racing one conflicts.

use super::instances::Tag;
use super::operation::{self, Tx};
use super::usage::{Kind, Usage};
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::store::StoreResult;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub(crate) const SNAPSHOTS: &str = "snapshots";

fn key(account_id: &str, id: &str) -> Vec<u8> {
    format!("{account_id}/{id}").into_bytes()
}

fn snapshot_not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        code: super::kinds::ResourceKind::Snapshot.not_found_code(),
        message: format!("The snapshot '{id}' does not exist."),
    }
}

/// A snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub account_id: String,
    pub volume_id: String,
    pub volume_size: u32,
    pub description: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    pub tags: Vec<Tag>,
    /// Accounts it is shared with (`snapshot_sharing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_volume_permissions: Vec<String>,
    /// Shared with everyone.
    #[serde(default)]
    pub public: bool,
    /// Of an encrypted volume (or an encrypted copy).
    #[serde(default)]
    pub encrypted: bool,
}

/// What a snapshot is taken of.
#[derive(Debug, Clone)]
pub struct SnapshotSource {
    pub volume_id: String,
    pub size_gib: u32,
    pub encrypted: bool,
}

impl crate::store::Record for Snapshot {}

impl Snapshot {
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if now >= self.completed_at {
            "completed"
        } else {
            "pending"
        }
    }

    /// `0%`..`100%`, in step with time.
    pub fn progress(&self, now: DateTime<Utc>) -> String {
        if now >= self.completed_at {
            return "100%".to_string();
        }
        let total = (self.completed_at - self.started_at)
            .num_milliseconds()
            .max(1);
        let done = (now - self.started_at).num_milliseconds().clamp(0, total);
        format!("{}%", done * 100 / total)
    }
}

impl Compute {
    /// The snapshots the account may use: its own, and those shared with
    /// it or public.
    pub async fn snapshots(&self, account_id: &str) -> ApiResult<Vec<Snapshot>> {
        operation::read(&self.store, |tx| {
            let mut snapshots: Vec<Snapshot> =
                tx.scan(SNAPSHOTS, format!("{account_id}/").as_bytes())?;
            snapshots.extend(super::snapshot_sharing::shared_with(tx, account_id)?);
            snapshots.sort_by(|a, b| a.id.cmp(&b.id));
            Ok::<_, ApiError>(snapshots)
        })
        .await
    }

    /// The account's own snapshots.
    pub async fn own_snapshots(&self, account_id: &str) -> ApiResult<Vec<Snapshot>> {
        Ok(self
            .store
            .records(SNAPSHOTS, format!("{account_id}/").as_bytes())
            .await?)
    }

    /// A snapshot the account may use (its own, shared with it or public).
    /// A snapshot of `owner`'s, read for the gateway's own use (the size
    /// and encryption of an image's snapshots for an instance launched
    /// from it); never shown to a caller.
    pub(super) async fn owned_snapshot(
        &self,
        owner: &str,
        id: &str,
    ) -> ApiResult<Option<Snapshot>> {
        if super::kinds::ResourceKind::Snapshot.check(id).is_err() {
            return Ok(None);
        }
        Ok(self
            .store
            .get_record::<Snapshot>(SNAPSHOTS, &key(owner, id))
            .await?)
    }

    pub async fn snapshot(&self, account_id: &str, id: &str) -> ApiResult<Snapshot> {
        super::kinds::ResourceKind::Snapshot.check(id)?;
        operation::read(&self.store, |tx| {
            Ok::<_, ApiError>(
                match tx.peek_record::<Snapshot>(SNAPSHOTS, &key(account_id, id))? {
                    Some(own) => Some(own),
                    None => super::snapshot_sharing::shared_snapshot(tx, account_id, id)?,
                },
            )
        })
        .await?
        .ok_or_else(|| snapshot_not_found(id))
    }

    /// CreateVolume (idempotent with a ClientToken).
    /// CreateSnapshot, or CopySnapshot when `from` names a source snapshot.
    pub async fn create_snapshot(
        &self,
        account_id: &str,
        source: SnapshotSource,
        description: Option<String>,
        tags: Vec<Tag>,
        dry_run: bool,
    ) -> ApiResult<Snapshot> {
        let now = self.clock.now();
        super::operation::run(&self.store, dry_run, |tx| {
            let mut usage = snapshot_usage(tx, account_id)?;
            if usage.count >= u64::from(self.quotas.max_snapshots) {
                return Err(ApiError::LimitExceeded {
                    code: crate::error::codes::SNAPSHOT_LIMIT_EXCEEDED,
                    message: format!(
                        "The maximum number of snapshots ({}) has been reached",
                        self.quotas.max_snapshots
                    ),
                });
            }
            let snapshot = Snapshot {
                id: super::ids::new_id("snap"),
                account_id: account_id.to_string(),
                volume_id: source.volume_id.clone(),
                volume_size: source.size_gib,
                description: description.clone(),
                started_at: now,
                completed_at: now + self.snapshot_delay,
                tags: tags.clone(),
                create_volume_permissions: Vec::new(),
                public: false,
                encrypted: source.encrypted,
            };
            tx.put(SNAPSHOTS, key(account_id, &snapshot.id), &snapshot);
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::Snapshots, &usage);
            Ok(snapshot)
        })
        .await
    }

    /// DeleteSnapshot: refused while a registered image uses it.
    pub async fn delete_snapshot(
        &self,
        account_id: &str,
        snapshot_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::Snapshot.check(snapshot_id)?;
        super::operation::run(&self.store, dry_run, |tx| {
            let key = key(account_id, snapshot_id);
            let Some(snapshot) = tx.get::<Snapshot>(SNAPSHOTS, &key)? else {
                return Err(snapshot_not_found(snapshot_id));
            };
            // Registrations rewrite the snapshots they use, so an image
            // registered after this listing makes the commit conflict.
            let in_use = self
                .visible_images_in(tx, account_id)?
                .into_iter()
                .find(|i| i.snapshot_ids.iter().any(|s| s == snapshot_id));
            if let Some(image) = in_use {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::INVALID_SNAPSHOT_IN_USE,
                    message: format!(
                        "The snapshot {snapshot_id} is currently in use by {}",
                        image.id
                    ),
                });
            }
            let mut usage = snapshot_usage(tx, account_id)?;
            // Those it was shared with lose it.
            let private = Snapshot {
                public: false,
                create_volume_permissions: Vec::new(),
                ..snapshot.clone()
            };
            super::snapshot_sharing::index_grants(tx, Some(&snapshot), &private);
            tx.delete(SNAPSHOTS, key);
            usage.count = usage.count.saturating_sub(1);
            super::usage::write(tx, account_id, Kind::Snapshots, &usage);
            Ok(())
        })
        .await
    }

    /// Rewrites a snapshot unchanged in `tx` (an image now uses it).
    pub(crate) fn touch_snapshot(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        snapshot_id: &str,
    ) -> StoreResult<bool> {
        tx.touch(SNAPSHOTS, &key(account_id, snapshot_id))
    }
}

/// The account's snapshot usage in `tx`.
fn snapshot_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<Usage> {
    super::usage::read(tx, account_id, Kind::Snapshots, |tx| {
        super::usage::count_of(tx, SNAPSHOTS, format!("{account_id}/").as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn snapshot_progress_follows_time() {
        let start = Utc::now();
        let snapshot = Snapshot {
            id: "snap-1".into(),
            account_id: "a".into(),
            volume_id: "vol-1".into(),
            volume_size: 1,
            description: None,
            started_at: start,
            completed_at: start + Duration::seconds(10),
            tags: Vec::new(),
            create_volume_permissions: Vec::new(),
            public: false,
            encrypted: false,
        };
        assert_eq!(
            (snapshot.state(start), snapshot.progress(start).as_str()),
            ("pending", "0%")
        );
        assert_eq!(snapshot.progress(start + Duration::seconds(4)), "40%");
        assert_eq!(
            (
                snapshot.state(start + Duration::seconds(10)),
                snapshot.progress(start + Duration::seconds(10)).as_str()
            ),
            ("completed", "100%")
        );
        let instant = Snapshot {
            completed_at: start,
            ..snapshot
        };
        assert_eq!(
            instant.progress(start),
            "100%",
            "a zero-delay snapshot is complete at once"
        );
    }
}
