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
//! Here, while one batch is being committed, the operations that arrive
//! run one after the other, each on top of the writes of those before it
//! (the batch's overlay), and their writes and expectations are merged
//! into the next batch: a serial order decided in this process, committed
//! by one round trip. Members read the same values for the keys they read
//! from the store (the batch keeps what was read first), so their
//! expectations agree; a key one member wrote, the next one reads from the
//! overlay and expects nothing of (the batch will write it). If the batch
//! conflicts with another process, nothing of it is applied and every
//! member runs again on fresh reads; if it applies, every member's
//! answer stands, exactly as if their commits had been made in order.
//!
//! The batch's size is bounded by what the store takes in one commit
//! ([`crate::store::Store::max_commit_ops`]) and by [`MAX_BATCH_BYTES`];
//! an operation that does not fit waits for the next batch. One batch is
//! committed at a time per process (unless one is slow: [`SLOW_COMMIT`]),
//! by whichever member gets there first; the commit itself runs in its own
//! task, so a member whose client went away cannot leave the others
//! waiting on a commit half sent.
//! ../shared/design/scale-out.md, §3: the contract is unchanged (a batch is
//! one commit with expectations); only who commits changes.

use super::{
    Commit, Committed, Expect, Store, StoreError, StoreMetrics, StoreResult, VersionedValue,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Mutex, MutexGuard};
use tokio::task::JoinHandle;

/// (tree, key).
pub type TreeKey = (&'static str, Vec<u8>);

/// The most bytes of values one batch carries: well under etcd's 1.5 MiB
/// request limit, whatever the members write.
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Versions given to values written by a batch not yet committed: counted
/// down from the top, so never a version the store gave (a revision), and
/// never the same twice (a cache keyed by version cannot mistake one
/// uncommitted value for another).
static UNCOMMITTED_VERSION: AtomicU64 = AtomicU64::new(u64::MAX - 1);

/// What became of a batch, as its members learn it.
type Outcome = Option<Result<Committed, String>>;

/// The batch being filled: its overlay, the values its members read from
/// the store, and what its commit will expect.
pub struct OpenBatch {
    id: u64,
    /// The members' writes, the last one per key, with the version each
    /// was given ([`UNCOMMITTED_VERSION`]); `None` deletes.
    overlay: BTreeMap<TreeKey, (Option<Vec<u8>>, u64)>,
    /// What members read from the store, kept so that later members read
    /// the same.
    seen: std::sync::Mutex<HashMap<TreeKey, Option<VersionedValue>>>,
    /// What the store must hold for the batch to apply: the first
    /// expectation on each key (later members read that key from `seen`
    /// or from the overlay).
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
            seen: std::sync::Mutex::new(HashMap::new()),
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

    /// What members of this batch read from the store, shared by all.
    pub fn seen(&self) -> &std::sync::Mutex<HashMap<TreeKey, Option<VersionedValue>>> {
        &self.seen
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
    pub fn join(
        &mut self,
        expectations: Vec<(TreeKey, Expect)>,
        writes: BTreeMap<TreeKey, Option<Vec<u8>>>,
    ) -> Ticket {
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
        self.ticket()
    }

    /// A claim on this batch's outcome, without joining it (a member whose
    /// answer rested on the overlay waits for it before running again).
    pub fn ticket(&self) -> Ticket {
        Ticket {
            id: self.id,
            outcome: self.outcome.subscribe(),
        }
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

/// A member's claim on the outcome of the batch it joined (or waits for).
pub struct Ticket {
    id: u64,
    outcome: watch::Receiver<Outcome>,
}

/// How long a batch's commit holds the next batch back. A commit slower
/// than this (a member down and its retries, a saturated cluster) lets the
/// next batch form and commit beside it: it reads without the slow one's
/// writes, and where they overlap, the compares decide (a conflict and a
/// retry); elsewhere (another account's launch) nothing waits for it.
pub const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Batches the commits of one process (see the module documentation).
///
/// One lock orders everything: a member holds it while it runs its attempt
/// and joins, and the member that commits holds it until the commit is
/// answered (and this process's reads show it), or for [`SLOW_COMMIT`] at
/// most. So the next batch forms on what the last one wrote, never beside
/// it: two batches of one process do not conflict with each other.
pub struct CommitBatcher {
    open: Mutex<OpenBatch>,
    metrics: StoreMetrics,
}

impl CommitBatcher {
    /// A batcher counting its commits' latency and conflicts in `metrics`.
    pub fn new(metrics: StoreMetrics) -> Self {
        Self {
            open: Mutex::new(OpenBatch::new(0)),
            metrics,
        }
    }

    /// The batch being filled, for one member at a time.
    pub async fn open(&self) -> MutexGuard<'_, OpenBatch> {
        self.open.lock().await
    }

    /// Sends the batch `open` holds as one commit, in a task of its own
    /// (it completes, and its members learn its outcome, even if the
    /// caller is dropped), and leaves a new empty batch in its place.
    fn send(
        &self,
        open: &mut OpenBatch,
        store: &Arc<dyn Store>,
    ) -> JoinHandle<StoreResult<Committed>> {
        let next = OpenBatch::new(open.id + 1);
        let members = open.members;
        let (commit, outcome) = std::mem::replace(open, next).into_commit();
        tracing::debug!(
            members,
            writes = commit.writes.ops.len(),
            expectations = commit.expectations.len(),
            "committing a batch"
        );
        let store = store.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = store.commit(&commit.expectations, &commit.writes).await;
            metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            if let Ok(Committed::Conflict { .. }) = result {
                metrics.conflicts.inc();
            }
            outcome.send_replace(Some(result.as_ref().map_err(|e| e.0.clone()).cloned()));
            result
        })
    }

    /// Commits the open batch now, for a caller holding it that will run
    /// again on what it leaves (it could not join it). Waits for the
    /// commit for [`SLOW_COMMIT`] at most; its members learn the outcome
    /// through their tickets.
    pub async fn commit_held(&self, open: &mut OpenBatch, store: &Arc<dyn Store>) {
        if open.is_empty() {
            return;
        }
        let sent = self.send(open, store);
        let _ = tokio::time::timeout(SLOW_COMMIT, sent).await;
    }

    /// The outcome of the batch `ticket` names, committing it if no one
    /// has yet: whoever waits drives, so a batch is committed as soon as
    /// the one before it is answered, with every member that joined
    /// meanwhile.
    pub async fn settle(
        &self,
        store: &Arc<dyn Store>,
        mut ticket: Ticket,
    ) -> StoreResult<Committed> {
        loop {
            if let Some(outcome) = ticket.outcome.borrow_and_update().clone() {
                return outcome.map_err(StoreError);
            }
            tokio::select! {
                biased;
                changed = ticket.outcome.changed() => {
                    if changed.is_err() && ticket.outcome.borrow().is_none() {
                        // The commit task ended without an answer (it
                        // panicked): whether it applied is unknown.
                        return Err(StoreError::unavailable("a batched commit was lost"));
                    }
                }
                mut open = self.open.lock() => {
                    if open.id != ticket.id {
                        // Taken by another member, whose lock this one
                        // waited behind: its outcome is published, or on
                        // its way (a slow commit, or a member that went
                        // away mid-commit).
                        drop(open);
                        if ticket.outcome.changed().await.is_err()
                            && ticket.outcome.borrow().is_none()
                        {
                            return Err(StoreError::unavailable("a batched commit was lost"));
                        }
                        continue;
                    }
                    let mut sent = self.send(&mut open, store);
                    let joined = match tokio::time::timeout(SLOW_COMMIT, &mut sent).await {
                        Ok(joined) => joined,
                        Err(_) => {
                            drop(open);
                            sent.await
                        }
                    };
                    return joined
                        .unwrap_or_else(|e| Err(StoreError(format!("a batched commit failed: {e}"))));
                }
            }
        }
    }
}
