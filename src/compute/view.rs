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
//!
//! A view of data that is time-based by nature (heartbeats, read against a
//! liveness window of many seconds) may be built to tolerate an age
//! ([`DerivedView::tolerating`]): it is then kept for that long even when
//! its marker moved. Without it, ten thousand hosts heartbeating would
//! rebuild the view of all their heartbeats for nearly every request.
//! A view may also be rebuilt once it is older than an age
//! ([`DerivedView::refreshing_after`]) though its marker did not move: the
//! scheduler's view of every host's free capacity, which launches change
//! without moving the hosts' marker, and which is only a first choice (the
//! chosen host's usage is read in the launch's own transaction).

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
    /// Kept this long after it was built even when its marker moved.
    tolerated_age: Option<std::time::Duration>,
    /// Rebuilt once this old even when its marker did not move.
    refresh_age: Option<std::time::Duration>,
    /// Held by the request refreshing an aged view.
    refreshing: std::sync::Mutex<()>,
}

/// A view's content and the versions it was checked at.
pub struct Stamped<T> {
    marker_version: u64,
    /// The store revision at the last check (or [`UNCHECKED`]).
    checked_at: AtomicU64,
    built_at: std::time::Instant,
    value: T,
}

impl<T> Stamped<T> {
    /// The version of the marker it reflects.
    pub fn version(&self) -> u64 {
        self.marker_version
    }
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
            tolerated_age: None,
            refresh_age: None,
            refreshing: std::sync::Mutex::new(()),
        }
    }

    /// A view rebuilt once it is `age` old, whatever its marker says (see
    /// the module documentation).
    pub fn refreshing_after(mut self, age: std::time::Duration) -> Self {
        self.refresh_age = Some(age);
        self
    }

    /// A view used for up to `age` after it was built whatever its marker
    /// says (see the module documentation).
    pub fn tolerating(mut self, age: std::time::Duration) -> Self {
        self.tolerated_age = Some(age);
        self
    }

    /// The view, checked as the module says, or read anew with `build`
    /// (and kept) when it no longer holds.
    pub fn current(
        &self,
        tx: &Tx<'_>,
        build: impl FnOnce(&Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<Arc<Stamped<T>>> {
        self.current_if(tx, |_| true, build)
    }

    /// [`DerivedView::current`], where a view whose marker moved is kept
    /// for its tolerated age only if `tolerable` says so.
    pub fn current_if(
        &self,
        tx: &Tx<'_>,
        tolerable: impl FnOnce(&T) -> bool,
        build: impl FnOnce(&Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<Arc<Stamped<T>>> {
        let revision = tx.store_revision();
        let kept = crate::sync::read(&self.slot).clone();
        if let (Some(revision), Some(view)) = (revision, &kept) {
            if view.checked_at.load(Ordering::SeqCst) == revision {
                return Ok(view.clone());
            }
        }
        if let (Some(age), Some(view)) = (self.tolerated_age, &kept) {
            if view.built_at.elapsed() < age && tolerable(&view.value) {
                return Ok(view.clone());
            }
        }
        let marker_version = tx
            .peek_version(self.marker_tree, self.marker_key)?
            .unwrap_or(0);
        let stamp = revision.unwrap_or(UNCHECKED);
        if let Some(view) = kept.filter(|view| view.marker_version == marker_version) {
            let over_age = self
                .refresh_age
                .is_some_and(|age| view.built_at.elapsed() >= age);
            // Only one request refreshes a view that merely aged; the
            // others go on with it meanwhile.
            let refreshing = over_age
                .then(|| match self.refreshing.try_lock() {
                    Ok(guard) => Some(guard),
                    // A refresh that panicked leaves nothing half-done here.
                    Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                    Err(std::sync::TryLockError::WouldBlock) => None,
                })
                .flatten();
            if !over_age || refreshing.is_none() {
                if stamp != UNCHECKED {
                    view.checked_at.store(stamp, Ordering::SeqCst);
                }
                return Ok(view);
            }
            let view = self.build(marker_version, stamp, tx, build)?;
            drop(refreshing);
            return Ok(view);
        }
        self.build(marker_version, stamp, tx, build)
    }

    fn build(
        &self,
        marker_version: u64,
        stamp: u64,
        tx: &Tx<'_>,
        build: impl FnOnce(&Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<Arc<Stamped<T>>> {
        // A view built on a batch's uncommitted writes serves that attempt
        // only: the batch may not apply.
        let overlay_reads = tx.overlay_reads();
        let view = Arc::new(Stamped {
            marker_version,
            checked_at: AtomicU64::new(stamp),
            built_at: std::time::Instant::now(),
            value: build(tx)?,
        });
        if tx.overlay_reads() == overlay_reads && !crate::store::is_uncommitted(marker_version) {
            *crate::sync::write(&self.slot) = Some(view.clone());
        }
        Ok(view)
    }
}

/// Per account, a value read from the store and used only while the
/// store's revision has not moved since (no marker: once anything was
/// written, it is read again). For what most requests of a kind read
/// besides their own records, when reading it costs more than looking at
/// the revision: the Elastic IPs and interfaces DescribeInstances shows
/// beside the instances. A backend that cannot tell its revision at once
/// gets it read each time. What the store moved past, or no request used
/// for a while, goes with [`RevisionViews::forget`].
pub struct RevisionViews<T> {
    kept: RwLock<std::collections::HashMap<String, Arc<Revisioned<T>>>>,
    /// Most accounts kept (emptied when full).
    capacity: usize,
}

/// One account's value and the store revision it was read at.
struct Revisioned<T> {
    revision: u64,
    value: Arc<T>,
    /// When a request last used it.
    last_used: crate::clock::LastUse,
}

impl<T> RevisionViews<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            kept: RwLock::default(),
            capacity,
        }
    }

    /// The account's value: kept if read at the store's present revision,
    /// else read with `build` (and kept).
    pub fn current<E>(
        &self,
        tx: &Tx<'_>,
        account_id: &str,
        build: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        // Read first: a value is never stamped newer than what it holds.
        let Some(revision) = tx.store_revision() else {
            return build(tx).map(Arc::new);
        };
        if let Some(kept) = crate::sync::read(&self.kept).get(account_id) {
            if kept.revision == revision {
                kept.last_used.touch();
                return Ok(kept.value.clone());
            }
        }
        let overlay_reads = tx.overlay_reads();
        let value = Arc::new(build(tx)?);
        // One read from a batch's uncommitted writes serves that read only.
        if tx.overlay_reads() == overlay_reads && self.capacity > 0 {
            let mut kept = crate::sync::write(&self.kept);
            if kept.len() >= self.capacity && !kept.contains_key(account_id) {
                kept.clear();
            }
            kept.insert(
                account_id.to_string(),
                Arc::new(Revisioned {
                    revision,
                    value: value.clone(),
                    last_used: crate::clock::LastUse::now(),
                }),
            );
        }
        Ok(value)
    }

    /// Drops what was read before `revision` (the store's now: it would
    /// be read again before any use) and what no request used for `idle`.
    /// Answers how many accounts' values went.
    pub fn forget(&self, revision: u64, idle: std::time::Duration) -> usize {
        // Freed when `dropped` goes, after the lock.
        let dropped = crate::sync::take_where(&mut crate::sync::write(&self.kept), |kept| {
            kept.revision != revision || kept.last_used.idle_for(idle)
        });
        dropped.len()
    }

    /// How many accounts' values are kept.
    pub fn len(&self) -> usize {
        crate::sync::read(&self.kept).len()
    }

    /// True when none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    async fn account_value(
        store: &StoreHandle,
        views: &RevisionViews<u64>,
        account: &str,
        builds: &AtomicUsize,
    ) -> u64 {
        let key = account.as_bytes().to_vec();
        *operation::read(store, |tx| {
            views.current(tx, account, |tx| {
                builds.fetch_add(1, Ordering::SeqCst);
                Ok::<_, crate::store::StoreError>(tx.peek_record::<u64>("data", &key)?.unwrap_or(0))
            })
        })
        .await
        .unwrap()
    }

    /// A revision view is read once per store revision and account: any
    /// write reads it again, each account has its own; the sweep drops
    /// what the store moved past or no one used; a full book is emptied.
    #[tokio::test]
    async fn a_revision_view_holds_while_nothing_is_written() {
        let store = StoreHandle::new(Arc::new(MemoryStore::new()));
        let views: RevisionViews<u64> = RevisionViews::new(2);
        let builds = AtomicUsize::new(0);
        let set = |account: &str, n: u64| {
            let mut batch = WriteBatch::new();
            batch.put_record("data", account.as_bytes().to_vec(), &n);
            batch
        };
        store.apply(&set("a", 1)).await.unwrap();
        assert_eq!(account_value(&store, &views, "a", &builds).await, 1);
        assert_eq!(account_value(&store, &views, "a", &builds).await, 1);
        assert_eq!(
            builds.load(Ordering::SeqCst),
            1,
            "kept while nothing was written"
        );
        assert_eq!(account_value(&store, &views, "b", &builds).await, 0);
        assert_eq!(builds.load(Ordering::SeqCst), 2, "each account its own");
        // Any write, even to another account's data: read again.
        store.apply(&set("b", 5)).await.unwrap();
        assert_eq!(account_value(&store, &views, "a", &builds).await, 1);
        assert_eq!(account_value(&store, &views, "b", &builds).await, 5);
        assert_eq!(builds.load(Ordering::SeqCst), 4);
        let revision = store.backend().revision().unwrap();
        let long = std::time::Duration::from_secs(3600);
        assert_eq!(views.forget(revision, long), 0, "current and used");
        assert_eq!(views.len(), 2);
        // A third account in a book of two empties it.
        assert_eq!(account_value(&store, &views, "c", &builds).await, 0);
        assert_eq!(views.len(), 1);
        store.apply(&set("c", 2)).await.unwrap();
        let revision = store.backend().revision().unwrap();
        assert_eq!(views.forget(revision, long), 1, "the store moved past it");
        assert!(views.is_empty());
        assert_eq!(account_value(&store, &views, "c", &builds).await, 2);
        assert_eq!(views.forget(revision, std::time::Duration::ZERO), 1, "idle");
        assert!(views.is_empty());
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

    /// A tolerant view is kept while young though its marker moved, then
    /// rebuilt; a refreshing view is rebuilt once old though its marker
    /// did not move.
    #[tokio::test]
    async fn tolerated_and_refreshed_ages() {
        let store = StoreHandle::new(Arc::new(MemoryStore::new()));
        let age = std::time::Duration::from_millis(200);
        let tolerant: DerivedView<u64> = DerivedView::new("meta", b"marker").tolerating(age);
        let refreshing: DerivedView<u64> =
            DerivedView::new("meta", b"marker").refreshing_after(age);
        let (tolerant_builds, refreshing_builds) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let set = |n: u64, marker: bool| {
            let mut batch = WriteBatch::new();
            batch.put_record("data", b"n".to_vec(), &n);
            if marker {
                batch.put_record("meta", b"marker".to_vec(), &n);
            }
            batch
        };
        assert_eq!(value(&store, &tolerant, &tolerant_builds).await, 0);
        assert_eq!(value(&store, &refreshing, &refreshing_builds).await, 0);
        // The data and the marker move: the tolerant view is still young.
        store.apply(&set(1, true)).await.unwrap();
        assert_eq!(value(&store, &tolerant, &tolerant_builds).await, 0);
        assert_eq!(value(&store, &refreshing, &refreshing_builds).await, 1);
        // The data moves without its marker: the refreshing view is young.
        store.apply(&set(2, false)).await.unwrap();
        assert_eq!(value(&store, &refreshing, &refreshing_builds).await, 1);
        tokio::time::sleep(age * 2).await;
        // Both aged: each reads the data anew.
        store.apply(&set(3, false)).await.unwrap();
        assert_eq!(value(&store, &tolerant, &tolerant_builds).await, 3);
        assert_eq!(value(&store, &refreshing, &refreshing_builds).await, 3);
        assert_eq!(tolerant_builds.load(Ordering::SeqCst), 2);
        assert_eq!(refreshing_builds.load(Ordering::SeqCst), 3);
    }
}
