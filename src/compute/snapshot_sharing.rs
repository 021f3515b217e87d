//! Create-volume permissions: ModifySnapshotAttribute and
//! ResetSnapshotAttribute on `createVolumePermission`, and the snapshots
//! other accounts shared with an account.
//!
//! A snapshot's owner may make it public (`group=all`) or grant it to
//! account ids; those accounts then list it in DescribeSnapshots
//! (`RestorableBy.N=self`), create volumes from it and copy it, until the
//! grant goes, is reset, or the snapshot is deleted. Grants are kept on the
//! snapshot and indexed by grantee (`grants`) in the same commit. Only the
//! owner changes or reads them (`UnauthorizedOperation` for an account that
//! merely sees the snapshot).

use super::grants::{grantees, SNAPSHOT_GRANTS};
use super::image_sharing::PermissionChange;
use super::operation::{self, Tx};
use super::snapshots::{Snapshot, SNAPSHOTS};
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::store::StoreResult;

fn key(account_id: &str, id: &str) -> Vec<u8> {
    format!("{account_id}/{id}").into_bytes()
}

/// Writes in `tx` the index entries of `snapshot`'s permissions, removing
/// those of `before` that went.
pub(super) fn index_grants(tx: &mut Tx<'_>, before: Option<&Snapshot>, snapshot: &Snapshot) {
    let before = before
        .map(|b| grantees(&b.create_volume_permissions, b.public))
        .unwrap_or_default();
    let now = grantees(&snapshot.create_volume_permissions, snapshot.public);
    SNAPSHOT_GRANTS.reindex(tx, &snapshot.account_id, &snapshot.id, &before, &now);
}

/// Snapshots shared with `account_id` or public, read now (untracked).
pub(super) fn shared_with(tx: &Tx<'_>, account_id: &str) -> StoreResult<Vec<Snapshot>> {
    let mut found = Vec::new();
    for (owner, id) in SNAPSHOT_GRANTS.shared_with(tx, account_id)? {
        if let Some(snapshot) = tx.peek_record::<Snapshot>(SNAPSHOTS, &key(&owner, &id))? {
            found.push(snapshot);
        }
    }
    Ok(found)
}

/// One snapshot shared with `account_id`, if it is.
pub(super) fn shared_snapshot(
    tx: &Tx<'_>,
    account_id: &str,
    id: &str,
) -> StoreResult<Option<Snapshot>> {
    match SNAPSHOT_GRANTS.owner_for(tx, account_id, id)? {
        Some(owner) => tx.peek_record::<Snapshot>(SNAPSHOTS, &key(&owner, id)),
        None => Ok(None),
    }
}

impl Compute {
    /// The caller's own snapshot, for a change of its permissions.
    fn owned_snapshot_in(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        id: &str,
    ) -> ApiResult<Snapshot> {
        if let Some(snapshot) = tx.get::<Snapshot>(SNAPSHOTS, &key(account_id, id))? {
            return Ok(snapshot);
        }
        if shared_snapshot(tx, account_id, id)?.is_some() {
            return Err(ApiError::UnauthorizedOperation);
        }
        Err(super::kinds::ResourceKind::Snapshot.not_found(id))
    }

    /// ModifySnapshotAttribute `createVolumePermission`.
    pub async fn modify_create_volume_permissions(
        &self,
        account_id: &str,
        id: &str,
        change: PermissionChange,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::Snapshot.check(id)?;
        change.check()?;
        operation::run(&self.store, dry_run, |tx| {
            let before = self.owned_snapshot_in(tx, account_id, id)?;
            let mut snapshot = before.clone();
            change.apply(
                account_id,
                &mut snapshot.create_volume_permissions,
                &mut snapshot.public,
            );
            index_grants(tx, Some(&before), &snapshot);
            tx.put(SNAPSHOTS, key(account_id, id), &snapshot);
            Ok(())
        })
        .await
    }

    /// ResetSnapshotAttribute `createVolumePermission`: private again.
    pub async fn reset_create_volume_permissions(
        &self,
        account_id: &str,
        id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::Snapshot.check(id)?;
        operation::run(&self.store, dry_run, |tx| {
            let before = self.owned_snapshot_in(tx, account_id, id)?;
            let snapshot = Snapshot {
                public: false,
                create_volume_permissions: Vec::new(),
                ..before.clone()
            };
            index_grants(tx, Some(&before), &snapshot);
            tx.put(SNAPSHOTS, key(account_id, id), &snapshot);
            Ok(())
        })
        .await
    }

    /// A snapshot's permissions, for its owner only.
    pub async fn create_volume_permissions(
        &self,
        account_id: &str,
        id: &str,
    ) -> ApiResult<Snapshot> {
        let snapshot = self.snapshot(account_id, id).await?;
        if snapshot.account_id != account_id {
            return Err(ApiError::UnauthorizedOperation);
        }
        Ok(snapshot)
    }
}
