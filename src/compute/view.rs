//! Derived views: records read once and kept, never trusted unchecked.
//!
//! A few answers are read on nearly every request (the access keys a
//! signature is checked against, the hosts that make the zones): reading
//! and decoding them each time would dominate a DescribeAvailabilityZones.
//! Each such collection has a marker key that every change to it rewrites
//! (`meta/services_revision`, `meta/directory_revision`), and a view keeps
//! what was read together with the marker's version. A view is used only
//! when the marker still has that version (read now), or, cheaper, when the
//! store's own revision has not moved at all since the view was last
//! checked (nothing was written anywhere, so nothing it reflects changed).
//! The store revision is read before anything else, so a view is never
//! stamped newer than what it holds. This is the contract's rule for
//! caches (../shared/design/scale-out.md, §3): a derived view carrying the
//! version it reflects, never the basis of a decision on its own.

use super::operation::Tx;
use crate::store::StoreResult;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// No store revision known.
const UNCHECKED: u64 = u64::MAX;

/// A view of `T` as of one version of its marker key.
pub struct DerivedView<T> {
    marker_tree: &'static str,
    marker_key: &'static [u8],
    slot: RwLock<Option<Arc<Stamped<T>>>>,
}

/// A view's content and the versions it was checked at.
pub struct Stamped<T> {
    marker_version: u64,
    /// The store revision at the last check (or [`UNCHECKED`]).
    checked_at: AtomicU64,
    value: T,
}

impl<T> std::ops::Deref for Stamped<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerivedView<T> {
    pub fn new(marker_tree: &'static str, marker_key: &'static [u8]) -> Self {
        Self {
            marker_tree,
            marker_key,
            slot: RwLock::new(None),
        }
    }

    /// The view, checked as the module says, or read anew with `build`
    /// (and kept) when it no longer holds.
    pub fn current(
        &self,
        tx: &Tx<'_>,
        build: impl FnOnce(&Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<Arc<Stamped<T>>> {
        let revision = tx.store_revision();
        let kept = crate::sync::read(&self.slot).clone();
        if let (Some(revision), Some(view)) = (revision, &kept) {
            if view.checked_at.load(Ordering::SeqCst) == revision {
                return Ok(view.clone());
            }
        }
        let marker_version = tx
            .peek_version(self.marker_tree, self.marker_key)?
            .unwrap_or(0);
        let stamp = revision.unwrap_or(UNCHECKED);
        if let Some(view) = kept.filter(|view| view.marker_version == marker_version) {
            view.checked_at.store(stamp, Ordering::SeqCst);
            return Ok(view);
        }
        let view = Arc::new(Stamped {
            marker_version,
            checked_at: AtomicU64::new(stamp),
            value: build(tx)?,
        });
        *crate::sync::write(&self.slot) = Some(view.clone());
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::operation;
    use crate::store::{MemoryStore, StoreHandle, WriteBatch};
    use std::sync::atomic::AtomicUsize;

    async fn value(store: &StoreHandle, view: &DerivedView<u64>, builds: &AtomicUsize) -> u64 {
        operation::read(store, |tx| {
            Ok::<_, crate::store::StoreError>(**view.current(tx, |tx| {
                builds.fetch_add(1, Ordering::SeqCst);
                Ok(tx.peek_record::<u64>("data", b"n")?.unwrap_or(0))
            })?)
        })
        .await
        .unwrap()
    }

    /// The view follows its marker, and reads nothing while the store has
    /// not changed.
    #[tokio::test]
    async fn a_view_is_rebuilt_when_its_marker_moves_and_only_then() {
        let store = StoreHandle::new(Arc::new(MemoryStore::new()));
        let view: DerivedView<u64> = DerivedView::new("meta", b"marker");
        let builds = AtomicUsize::new(0);
        let write = |tree: &'static str, key: &'static [u8], n: u64| {
            let mut batch = WriteBatch::new();
            batch.put_record(tree, key.to_vec(), &n);
            batch
        };
        assert_eq!(value(&store, &view, &builds).await, 0);
        assert_eq!(value(&store, &view, &builds).await, 0);
        assert_eq!(
            builds.load(Ordering::SeqCst),
            1,
            "kept while nothing changed"
        );
        // Another collection changes: the view is checked, not rebuilt.
        store.apply(&write("other", b"x", 1)).await.unwrap();
        assert_eq!(value(&store, &view, &builds).await, 0);
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        // Its own data and marker change together: rebuilt.
        let mut batch = write("data", b"n", 7);
        batch.put_record("meta", b"marker".to_vec(), &1u64);
        store.apply(&batch).await.unwrap();
        assert_eq!(value(&store, &view, &builds).await, 7);
        assert_eq!(builds.load(Ordering::SeqCst), 2);
    }
}
