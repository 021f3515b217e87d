//! DescribeInstances by id for the instances clients poll.
//!
//! Tools wait for an instance by asking for it by id again and again:
//! boto3's and the AWS CLI's waiters every 15 s, Terraform every few
//! seconds, scripts in a loop, often many clients for the same instances.
//! Each such call read the instance's spec and status, copied the spec,
//! and rendered its item anew, though between two polls it seldom
//! changed. [`PolledInstances`] keeps, per instance asked for by id, the
//! [`Listed`] last answered with the stored versions of its two records,
//! and what was rendered of it (`Listed::rendered`, as the listing index
//! keeps it for its entries). It is used when the store's own revision
//! has not moved since it was last checked (nothing was written anywhere),
//! or when its two records still have those versions (two version-only
//! reads); else the instance is read anew and kept in its place. A
//! derived view in the sense of `view` (../shared/design/scale-out.md,
//! §3): the store revision is read first, so an entry is never stamped
//! newer than what it holds, and no write is decided on it (writes read
//! their instances in their own transaction).
//!
//! Bounded: at most [`MAX_POLLED`] instances, fewer when the
//! configuration's `listing_cache_instances` is lower (none at 0); when
//! full, the least recently asked-for half is dropped. Those no request
//! asked for in the last [`IDLE_FOR`](super::instance_index::IDLE_FOR)
//! are dropped by the gateway's sweep, so a gateway at rest does not hold
//! them.

use super::instance_index::{Listed, Parts};
use super::instances::{INSTANCES, INSTANCE_STATUS};
use super::operation::Tx;
use crate::clock::LastUse;
use crate::store::StoreResult;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Most instances kept (a rendered item is about 2.6 KiB).
pub const MAX_POLLED: usize = 1024;

/// No store revision known.
const UNCHECKED: u64 = u64::MAX;

/// The instances asked for by id, by instance key (see the module
/// documentation).
pub struct PolledInstances {
    kept: RwLock<HashMap<Vec<u8>, Arc<Polled>>>,
    /// Most instances kept (0: none).
    capacity: usize,
}

/// One kept instance.
struct Polled {
    listed: Arc<Listed>,
    /// The store revision at the last check (or [`UNCHECKED`]).
    checked_at: AtomicU64,
    /// When a request last asked for it.
    last_used: LastUse,
}

impl Polled {
    fn used(&self) -> Arc<Listed> {
        self.last_used.touch();
        self.listed.clone()
    }
}

/// Drops the less recently asked-for half of `kept`: one client polling
/// more instances than the book holds does not empty it for the others
/// each time it goes round.
fn drop_least_recent_half(kept: &mut HashMap<Vec<u8>, Arc<Polled>>) {
    let mut used: Vec<u64> = kept
        .values()
        .map(|polled| polled.last_used.millis())
        .collect();
    let middle = used.len() / 2;
    let (_, &mut median, _) = used.select_nth_unstable(middle);
    kept.retain(|_, polled| polled.last_used.millis() > median);
}

impl PolledInstances {
    /// A book of at most `capacity` instances (and [`MAX_POLLED`]).
    pub fn new(capacity: usize) -> Self {
        Self {
            kept: RwLock::default(),
            capacity: capacity.min(MAX_POLLED),
        }
    }

    /// The instance under `key` if kept and nothing at all was written
    /// since it was last checked (`revision`: the store's, read before).
    pub(super) fn unchanged(&self, key: &[u8], revision: Option<u64>) -> Option<Arc<Listed>> {
        let revision = revision?;
        let kept = crate::sync::read(&self.kept).get(key)?.clone();
        (kept.checked_at.load(Ordering::SeqCst) == revision).then(|| kept.used())
    }

    /// The instance under `key` as `tx` reads it now (`None`: no such
    /// instance): the kept one while its records keep their versions, else
    /// read with `read_parts` and kept. `revision` is the store's, read
    /// before anything else in `tx`.
    pub(super) fn current(
        &self,
        tx: &Tx<'_>,
        key: &[u8],
        revision: Option<u64>,
        read_parts: impl FnOnce(&Tx<'_>) -> StoreResult<Option<Parts>>,
    ) -> StoreResult<Option<Arc<Listed>>> {
        if let Some(listed) = self.unchanged(key, revision) {
            return Ok(Some(listed));
        }
        let Some(spec_version) = tx.peek_version(INSTANCES, key)? else {
            return Ok(None);
        };
        let status_version = tx.peek_version(INSTANCE_STATUS, key)?.unwrap_or(0);
        let stamp = revision.unwrap_or(UNCHECKED);
        let kept = crate::sync::read(&self.kept).get(key).cloned();
        if let Some(kept) =
            kept.filter(|kept| kept.listed.versions() == (spec_version, status_version))
        {
            if stamp != UNCHECKED {
                kept.checked_at.store(stamp, Ordering::SeqCst);
            }
            return Ok(Some(kept.used()));
        }
        // Read after the versions: what is read is at least that new, so
        // the entry, if anything, looks older than it is and is read again.
        let overlay_reads = tx.overlay_reads();
        let Some(parts) = read_parts(tx)? else {
            return Ok(None);
        };
        let listed = Listed::at_versions(parts, spec_version, status_version);
        // What a batch's uncommitted writes show serves that read only.
        let uncommitted = [spec_version, status_version]
            .iter()
            .any(|v| crate::store::is_uncommitted(*v));
        if tx.overlay_reads() == overlay_reads && !uncommitted && self.capacity > 0 {
            let mut kept = crate::sync::write(&self.kept);
            if kept.len() >= self.capacity && !kept.contains_key(key) {
                drop_least_recent_half(&mut kept);
            }
            kept.insert(
                key.to_vec(),
                Arc::new(Polled {
                    listed: listed.clone(),
                    checked_at: AtomicU64::new(stamp),
                    last_used: LastUse::now(),
                }),
            );
        }
        Ok(Some(listed))
    }

    /// Drops the instances no request asked for in `idle` or longer;
    /// answers how many.
    pub fn forget_idle(&self, idle: std::time::Duration) -> usize {
        // Freed when `dropped` goes, after the lock.
        let dropped = crate::sync::take_where(&mut crate::sync::write(&self.kept), |polled| {
            polled.last_used.idle_for(idle)
        });
        dropped.len()
    }

    /// How many instances are kept.
    pub fn len(&self) -> usize {
        crate::sync::read(&self.kept).len()
    }

    /// True when none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
