//! Batched commits: the operations one process runs side by side, committed
//! as one conditional write.
//!
//! On a shared store (etcd) a commit is a round trip through consensus, and
//! concurrent `RunInstances` calls all touch a few hot records: the
//! account's usage (its quota), the chosen host's capacity, the zone's
//! volume and address pools. Committed side by side, all but one of them
//! conflict, read again and retry; with 64 connections that was about seven
//! failed commits per launch, each one a consensus round that etcd paid for.
//!
//! On sled a commit is local but a durable answer waits for a flush, and
//! the same hot records made concurrent launches in one account, and the
//! lifecycle driver's passes, conflict with each other (about one
//! conflict per request in a run-terminate churn); batching there too
//! took that to none, and the churn from 972 and 1,065 to 1,403 and
//! 1,735 requests/s (two alternated 60 s runs).
//!
//! Here, while one batch is being committed, the operations that arrive
//! run one after the other, each on top of the writes of those before it
//! (the batch's overlay), and their writes and expectations are merged
//! into the next batch: a serial order decided in this process, committed
//! by one round trip. A key one member wrote, the next one reads from the
//! overlay and expects nothing of (the batch will write it); keys read from
//! the store keep the first member's expectation, so if the store changed
//! between two members' reads, the batch conflicts, as the first member's
//! own commit would have. If the batch conflicts, nothing of it is applied
//! and every member runs again on fresh reads; if it applies, every
//! member's answer stands, exactly as if their commits had been made in
//! that order.
//!
//! The batch's size is bounded by what the store takes in one commit
//! ([`crate::store::Store::max_commit_ops`]) and by [`MAX_BATCH_BYTES`]; an
//! operation that does not fit has the open batch committed first. A batch
//! is committed by a task of its own, started when its first member joins:
//! it takes the lock behind the members already waiting for it (so they
//! join first), and no member's going away (a client that hung up) can
//! leave a batch unsent or an outcome unpublished. One batch is committed
//! at a time, and the next forms on what it wrote, unless it is slow
//! ([`SLOW_COMMIT`]); at most [`MAX_IN_FLIGHT`] are ever in flight.
//! ../shared/design/scale-out.md, §3: the contract is unchanged (a batch is
//! one commit with expectations); only who commits changes.

use super::{Applied, Commit, Committed, Expect, Store, StoreError, StoreMetrics, StoreResult};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Mutex, MutexGuard, Semaphore};

/// (tree, key).
pub type TreeKey = (&'static str, Vec<u8>);

/// The most bytes of values one batch carries: well under etcd's 1.5 MiB
/// request limit, whatever the members write.
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// How long a batch's commit holds the next batch back. A commit slower
/// than this (a member down and its retries, a saturated cluster) lets the
/// next batch form and commit beside it: it reads without the slow one's
/// writes, and where they overlap, the compares decide (a conflict and a
/// retry); elsewhere (another account's launch) nothing waits for it.
pub const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(100);

/// The most batches in flight at once: when etcd is down, commits are not
/// piled up every [`SLOW_COMMIT`]; the open batch waits (and grows).
pub const MAX_IN_FLIGHT: usize = 2;

/// Versions given to values written by a batch not yet committed: counted
/// down from the top, so never a version the store gave (a revision), and
/// never the same twice (a cache keyed by version cannot mistake one
/// uncommitted value for another).
static UNCOMMITTED_VERSION: AtomicU64 = AtomicU64::new(u64::MAX - 1);

/// Versions at or above this one were given by [`UNCOMMITTED_VERSION`].
const UNCOMMITTED_FLOOR: u64 = u64::MAX / 2;

/// True when `version` is one a batch gave a value it has not committed:
/// nothing derived from it may be kept.
pub fn is_uncommitted(version: u64) -> bool {
    version >= UNCOMMITTED_FLOOR
}

/// What became of a batch, as its members learn it.
type Outcome = Option<Result<Committed, String>>;

/// The batch being filled: its overlay and what its commit will expect.
pub struct OpenBatch {
    id: u64,
    /// The members' writes, the last one per key, with the version each
    /// was given ([`UNCOMMITTED_VERSION`]); `None` deletes.
    overlay: BTreeMap<TreeKey, (Option<Vec<u8>>, u64)>,
    /// What the store must hold for the batch to apply: the first
    /// expectation on each key.
    expectations: BTreeMap<TreeKey, Expect>,
    bytes: usize,
    members: usize,
    outcome: watch::Sender<Outcome>,
}

impl OpenBatch {
    fn new(id: u64) -> Self {
        Self {
            id,
            overlay: BTreeMap::new(),
            expectations: BTreeMap::new(),
            bytes: 0,
            members: 0,
            outcome: watch::Sender::new(None),
        }
    }

    /// True when nothing has been merged yet (reads need no overlay).
    pub fn is_empty(&self) -> bool {
        self.members == 0
    }

    /// What an earlier member wrote under `key` (`Some(None)`: deleted),
    /// with the version it was given.
    pub fn written(&self, tree: &'static str, key: &[u8]) -> Option<(Option<&[u8]>, u64)> {
        if self.overlay.is_empty() {
            return None;
        }
        // The map is keyed by owned keys; a lookup builds one.
        self.overlay
            .get(&(tree, key.to_vec()))
            .map(|(value, version)| (value.as_deref(), *version))
    }

    /// The overlay's writes under `prefix` in `tree`, after `after`, in
    /// key order (`None` values are deletes).
    pub fn written_under<'b>(
        &'b self,
        tree: &'static str,
        prefix: &'b [u8],
        after: Option<&'b [u8]>,
    ) -> impl Iterator<Item = (&'b [u8], Option<&'b [u8]>)> + 'b {
        self.overlay
            .range((tree, prefix.to_vec())..)
            .take_while(move |((t, key), _)| *t == tree && key.starts_with(prefix))
            .filter(move |((_, key), _)| after.is_none_or(|after| key.as_slice() > after))
            .map(|((_, key), (value, _))| (key.as_slice(), value.as_deref()))
    }

    /// True when a member with these expectations and writes fits beside
    /// the members already in (`max_ops`: the store's limit per commit).
    pub fn fits(
        &self,
        expectations: &[(TreeKey, Expect)],
        writes: &BTreeMap<TreeKey, Option<Vec<u8>>>,
        max_ops: Option<usize>,
    ) -> bool {
        if self.members == 0 {
            // Alone, it is the commit it would have made anyway.
            return true;
        }
        let new_writes = writes
            .keys()
            .filter(|key| !self.overlay.contains_key(*key))
            .count();
        let new_expectations = expectations
            .iter()
            .filter(|(key, expect)| *expect != Expect::Any && !self.expectations.contains_key(key))
            .count();
        let bytes: usize = writes.values().flatten().map(Vec::len).sum();
        let within_ops = max_ops.is_none_or(|max| {
            self.overlay.len() + new_writes <= max
                && self.expectations.len() + new_expectations <= max
        });
        within_ops && self.bytes + bytes <= MAX_BATCH_BYTES
    }

    /// Merges one member's attempt: its expectations on what it read from
    /// the store, and its writes over those of the members before it.
    /// Returns the member's claim on the outcome, and whether it is the
    /// first member (then the caller starts the batch's committer).
    fn join(
        &mut self,
        expectations: Vec<(TreeKey, Expect)>,
        writes: BTreeMap<TreeKey, Option<Vec<u8>>>,
    ) -> (Ticket, bool) {
        for (key, expect) in expectations {
            if expect != Expect::Any {
                self.expectations.entry(key).or_insert(expect);
            }
        }
        for (key, value) in writes {
            self.bytes += value.as_ref().map_or(0, Vec::len);
            let version = UNCOMMITTED_VERSION.fetch_sub(1, Ordering::Relaxed);
            self.overlay.insert(key, (value, version));
        }
        self.members += 1;
        let ticket = Ticket {
            outcome: self.outcome.subscribe(),
        };
        (ticket, self.members == 1)
    }

    fn into_commit(self) -> (Commit, watch::Sender<Outcome>) {
        let mut commit = Commit::new();
        for ((tree, key), expect) in self.expectations {
            commit.expect(tree, key, expect);
        }
        for ((tree, key), (value, _)) in self.overlay {
            match value {
                Some(value) => commit.writes.put(tree, key, value),
                None => commit.writes.delete(tree, key),
            }
        }
        (commit, self.outcome)
    }
}

/// A member's claim on the outcome of the batch it joined.
pub struct Ticket {
    outcome: watch::Receiver<Outcome>,
}

impl Ticket {
    /// What became of the batch (the member's own commit, as far as it
    /// can tell).
    pub async fn outcome(mut self) -> StoreResult<Committed> {
        loop {
            if let Some(outcome) = self.outcome.borrow_and_update().clone() {
                return outcome.map_err(StoreError);
            }
            if self.outcome.changed().await.is_err() && self.outcome.borrow().is_none() {
                // The commit task ended without an answer (it panicked,
                // or the runtime is shutting down): whether it applied is
                // unknown.
                return Err(StoreError::unavailable("a batched commit was lost"));
            }
        }
    }
}

/// Batches the commits of one process (see the module documentation).
///
/// One lock orders everything: a member holds it while it runs its attempt
/// and joins, and the batch's committer holds it until the commit is
/// answered (and this process's reads show it), or for [`SLOW_COMMIT`] at
/// most. So the next batch forms on what the last one wrote, never beside
/// it: two batches of one process do not conflict with each other.
pub struct CommitBatcher {
    open: Mutex<OpenBatch>,
    in_flight: Arc<Semaphore>,
    store: Arc<dyn Store>,
    metrics: StoreMetrics,
    /// Where an applied batch is noted before its members hear of it.
    applied: Arc<Applied>,
}

impl CommitBatcher {
    /// A batcher committing to `store`, counting its commits' latency and
    /// conflicts in `metrics` and noting those that apply in `applied`.
    pub fn new(store: Arc<dyn Store>, metrics: StoreMetrics, applied: Arc<Applied>) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new(OpenBatch::new(0)),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            store,
            metrics,
            applied,
        })
    }

    /// The batch being filled, for one member at a time.
    pub async fn open(&self) -> MutexGuard<'_, OpenBatch> {
        self.open.lock().await
    }

    /// Merges a member into `open` (see [`OpenBatch::join`]); the first
    /// member starts the batch's committer.
    pub fn join(
        self: &Arc<Self>,
        open: &mut OpenBatch,
        expectations: Vec<(TreeKey, Expect)>,
        writes: BTreeMap<TreeKey, Option<Vec<u8>>>,
    ) -> Ticket {
        let (ticket, first) = open.join(expectations, writes);
        if first {
            let batcher = self.clone();
            let id = open.id;
            tokio::spawn(async move { batcher.commit_when_due(id).await });
        }
        ticket
    }

    /// The committer of batch `id`: it queues for the lock behind the
    /// members already waiting (they join first), then commits the batch,
    /// unless a member that did not fit committed it already.
    async fn commit_when_due(&self, id: u64) {
        let mut open = self.open.lock().await;
        if open.id != id {
            return;
        }
        self.commit_holding(&mut open).await;
    }

    /// Commits the open batch now, for a caller holding the lock that will
    /// run again on what the batch leaves (it could not join it). Nothing
    /// happens to an empty batch.
    pub async fn commit_open(&self, open: &mut MutexGuard<'_, OpenBatch>) {
        if !open.is_empty() {
            self.commit_holding(open).await;
        }
    }

    /// Sends the batch `open` holds as one commit, in a task of its own
    /// (it completes, and its members learn its outcome, whatever becomes
    /// of the caller), leaves a new empty batch, and waits for the commit
    /// for [`SLOW_COMMIT`] at most.
    async fn commit_holding(&self, open: &mut OpenBatch) {
        let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
            return;
        };
        let next = OpenBatch::new(open.id + 1);
        let members = open.members;
        let (commit, outcome) = std::mem::replace(open, next).into_commit();
        tracing::debug!(
            members,
            writes = commit.writes.ops.len(),
            expectations = commit.expectations.len(),
            "committing a batch"
        );
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let applied = self.applied.clone();
        let sent = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = store.commit(&commit.expectations, &commit.writes).await;
            metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            match result {
                // Noted before anyone hears of it (a later read of its
                // writes then waits for the flush that covers them).
                Ok(Committed::Applied { version }) => {
                    applied.note(version);
                }
                Ok(Committed::Conflict { .. }) => {
                    metrics.conflicts.inc();
                }
                Err(_) => {}
            }
            outcome.send_replace(Some(result.map_err(|e| e.0)));
            drop(permit);
        });
        let _ = tokio::time::timeout(SLOW_COMMIT, sent).await;
    }
}
