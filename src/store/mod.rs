//! Storage: a narrow trait, a sled backend and an in-memory backend.
//!
//! EC2 promises that an answered mutation sticks: a `RunInstances` that
//! returned an instance id must find that instance after a crash. The trait is
//! kept to named trees with get, ordered scans and one atomic multi-key write,
//! so that a networked, replicated backend can replace sled later without the
//! compute core noticing. [`StoreHandle`] adds group commit on top: many
//! concurrent requests wait on one flush instead of each forcing its own.
//!
//! Every value carries a version (the store-wide revision of the commit that
//! wrote it, as etcd's `mod_revision`), and [`Store::commit`] applies a write
//! set only if the keys it names are as expected (absent, at a version, or
//! anything), reporting the conflicting keys otherwise: the contract of
//! ../shared/design/scale-out.md, on which `compute::operation` runs
//! read-check-commit operations with retries.

mod batch;
#[cfg(feature = "etcd")]
mod etcd_mirror;
#[cfg(feature = "etcd")]
mod etcd_store;
mod memory;
mod metrics;
mod record;
mod sled_store;

pub use batch::{is_uncommitted, CommitBatcher, OpenBatch, Ticket};
#[cfg(feature = "etcd")]
pub use etcd_store::EtcdStore;
pub use memory::MemoryStore;
pub use metrics::StoreMetrics;
pub use sled_store::SledStore;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{watch, Mutex};

/// A storage failure: I/O, corruption, or a value that no longer decodes.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// How a too large commit's errors begin (see [`StoreError::too_large`]).
const TOO_LARGE: &str = "too large: ";

/// The text of [`StoreError::awaiting`].
const AWAITING: &str = "a read is awaiting the store; the attempt runs again";

/// How an unavailable store's errors begin (see [`StoreError::unavailable`]).
const UNAVAILABLE: &str = "unavailable: ";

impl StoreError {
    /// The store cannot answer now (no quorum, no member reachable): the
    /// request may be retried, and clients are told so (503).
    pub fn unavailable(message: impl std::fmt::Display) -> Self {
        StoreError(format!("{UNAVAILABLE}{message}"))
    }

    /// True for [`StoreError::unavailable`] errors.
    pub fn is_unavailable(&self) -> bool {
        self.0.starts_with(UNAVAILABLE)
    }

    /// A commit larger than the store takes at once (etcd's
    /// `--max-txn-ops`): the request must be split (a client error).
    pub fn too_large(message: impl std::fmt::Display) -> Self {
        StoreError(format!("{TOO_LARGE}{message}"))
    }

    /// True for [`StoreError::too_large`] errors.
    pub fn is_too_large(&self) -> bool {
        self.0.starts_with(TOO_LARGE)
    }

    /// Not a failure: a read inside an operation's attempt must wait for
    /// the store, so the attempt's result means nothing and it runs again
    /// with the answer (`compute::operation`).
    pub fn awaiting() -> Self {
        StoreError(AWAITING.into())
    }

    /// True for [`StoreError::awaiting`].
    pub fn is_awaiting(&self) -> bool {
        self.0 == AWAITING
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One key-value pair from a scan.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One change inside an atomic [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put {
        tree: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        tree: &'static str,
        key: Vec<u8>,
    },
}

/// Changes applied all together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub ops: Vec<WriteOp>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, tree: &'static str, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.ops.push(WriteOp::Put {
            tree,
            key: key.into(),
            value,
        });
    }

    /// Serialises `value` with its schema version and queues it.
    pub fn put_record<T: Record>(
        &mut self,
        tree: &'static str,
        key: impl Into<Vec<u8>>,
        value: &T,
    ) {
        self.put(tree, key, encode(value));
    }

    pub fn delete(&mut self, tree: &'static str, key: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Delete {
            tree,
            key: key.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// What a commit requires of a key before it writes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key holds no value.
    Absent,
    /// The key holds a value at exactly this version.
    At(u64),
    /// Anything (the key is only written).
    Any,
}

/// One expectation of a [`Commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub tree: &'static str,
    pub key: Vec<u8>,
    pub expect: Expect,
}

/// A conditional write: expectations on keys (usually the ones the
/// operation read, at the versions it read them), then a write set with at
/// most one operation per key. It applies whole or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    pub expectations: Vec<Expectation>,
    pub writes: WriteBatch,
}

impl Commit {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `key` in `tree` to be as `expect` says.
    pub fn expect(&mut self, tree: &'static str, key: impl Into<Vec<u8>>, expect: Expect) {
        self.expectations.push(Expectation {
            tree,
            key: key.into(),
            expect,
        });
    }
}

/// What became of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Applied; every written key now has this version.
    Applied { version: u64 },
    /// Not applied: these keys (tree, key) were not as expected.
    Conflict { keys: Vec<(String, Vec<u8>)> },
}

/// The value under a key and the version it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedValue {
    pub value: Vec<u8>,
    /// The store-wide revision of the commit that wrote it (0 for a value
    /// written before versions existed).
    pub version: u64,
}

/// Refuses a write set naming a key twice (etcd refuses it too).
pub fn check_unique_keys(writes: &WriteBatch) -> StoreResult<()> {
    let mut seen = std::collections::HashSet::with_capacity(writes.ops.len());
    for op in &writes.ops {
        let (tree, key) = match op {
            WriteOp::Put { tree, key, .. } | WriteOp::Delete { tree, key } => (tree, key),
        };
        if !seen.insert((*tree, key.as_slice())) {
            return Err(StoreError(format!(
                "the key {tree}/{} is written twice in one commit",
                String::from_utf8_lossy(key)
            )));
        }
    }
    Ok(())
}

/// The last operation of each key, in first-seen order: what applying the
/// batch one operation after the other would leave.
fn last_write_per_key(batch: &WriteBatch) -> WriteBatch {
    let mut position = std::collections::HashMap::new();
    let mut ops: Vec<WriteOp> = Vec::with_capacity(batch.ops.len());
    for op in &batch.ops {
        let key = match op {
            WriteOp::Put { tree, key, .. } | WriteOp::Delete { tree, key } => (*tree, key.clone()),
        };
        match position.get(&key) {
            Some(&i) => ops[i] = op.clone(),
            None => {
                position.insert(key, ops.len());
                ops.push(op.clone());
            }
        }
    }
    WriteBatch { ops }
}

/// A store call's answer: ready at once (memory and sled answer from this
/// process) or a future to await (a networked store such as etcd).
///
/// The compute core runs its checks as plain functions over a [`Tx`]
/// (`compute::operation`): a ready answer is used on the spot, and a call
/// that would wait is noted, awaited by the operation's runner, and the
/// attempt runs again with the answer in hand. So the core stays free of
/// `.await` inside its checks while a backend is free to be remote; no
/// allocation is made on the local path.
///
/// [`Tx`]: crate::compute::operation::Tx
pub enum StoreCall<'a, T> {
    Ready(Option<StoreResult<T>>),
    Waiting(Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'a>>),
}

impl<'a, T> StoreCall<'a, T> {
    /// An answer already known.
    pub fn ready(answer: StoreResult<T>) -> Self {
        Self::Ready(Some(answer))
    }

    /// An answer still to come.
    pub fn waiting(future: impl Future<Output = StoreResult<T>> + Send + 'a) -> Self {
        Self::Waiting(Box::pin(future))
    }

    /// The answer if it is known without waiting.
    pub fn now(self) -> Option<StoreResult<T>> {
        match self {
            Self::Ready(answer) => answer,
            Self::Waiting(_) => None,
        }
    }
}

impl<T: Unpin> Future for StoreCall<'_, T> {
    type Output = StoreResult<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Ready(answer) => Poll::Ready(
                answer
                    .take()
                    .unwrap_or_else(|| Err(StoreError("a store call was awaited twice".into()))),
            ),
            Self::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}

/// The storage contract every backend implements.
///
/// Every value has a version: the store-wide revision of the commit that
/// last wrote it (as etcd's `mod_revision`). [`Store::commit`] checks
/// expectations on versions and applies its write set whole, or reports the
/// keys that conflicted; backends do the check and the write under their
/// own lock, so concurrent commits on one key serialise and exactly one of
/// them wins. Every call answers a [`StoreCall`]: local backends answer at
/// once, a network backend with a future.
pub trait Store: Send + Sync + 'static {
    /// The value under `key` in `tree`, with its version.
    fn get_versioned<'a>(
        &'a self,
        tree: &'a str,
        key: &'a [u8],
    ) -> StoreCall<'a, Option<VersionedValue>>;

    /// The version of the value under `key` in `tree`, without the value
    /// (a derived view checking it still reflects the key).
    fn version<'a>(&'a self, tree: &'a str, key: &'a [u8]) -> StoreCall<'a, Option<u64>> {
        match self.get_versioned(tree, key) {
            StoreCall::Ready(answer) => {
                StoreCall::Ready(answer.map(|found| found.map(|found| found.map(|v| v.version))))
            }
            StoreCall::Waiting(future) => {
                StoreCall::waiting(async move { Ok(future.await?.map(|v| v.version)) })
            }
        }
    }

    /// Checks `expectations` and applies `writes`, atomically (not yet
    /// durably: see [`Store::flush`]). A write set naming a key twice is an
    /// error.
    fn commit<'a>(
        &'a self,
        expectations: &'a [Expectation],
        writes: &'a WriteBatch,
    ) -> StoreCall<'a, Committed>;

    /// Up to `limit` entries of `tree` whose keys start with `prefix`, in key
    /// order, starting strictly after `after` when given.
    fn scan<'a>(
        &'a self,
        tree: &'a str,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
        limit: usize,
    ) -> StoreCall<'a, Vec<Entry>>;

    /// Makes everything applied so far durable.
    fn flush(&self) -> StoreCall<'_, ()>;

    /// True when reads answer at once (memory, sled, and etcd's copy in
    /// this process): the core then skips asking for many keys ahead of
    /// reading them one by one.
    fn answers_at_once(&self) -> bool {
        false
    }

    /// True when several processes share the store (etcd): a change may
    /// come from another gateway, which cannot wake this one's waiters, and
    /// commits take a network round trip.
    fn shared(&self) -> bool {
        false
    }

    /// True when concurrent operations should commit together (see
    /// `batch`): on a shared store, where each commit is a consensus round,
    /// and on sled, where a durable commit waits for a flush and
    /// concurrent launches in one account (or a launch and the lifecycle
    /// driver) all rewrite the account's usage record and would otherwise
    /// conflict. Memory commits in microseconds and needs no flush.
    fn batches_commits(&self) -> bool {
        self.shared()
    }

    /// Waits until reads reflect every commit made, by any process, before
    /// the call: what a request does first, so that it sees what another
    /// replica answered before it arrived. At once on a store only this
    /// process writes.
    fn catch_up(&self) -> StoreCall<'_, ()> {
        StoreCall::ready(Ok(()))
    }

    /// The most writes (and, apart, the most expectations) one commit may
    /// carry, when the backend limits them (etcd's `--max-txn-ops`).
    fn max_commit_ops(&self) -> Option<usize> {
        None
    }

    /// Waits until this process leads `name` among the processes sharing
    /// the store (one lifecycle driver at a time). `None` on a store that
    /// only one process opens (memory, sled): that process always leads.
    fn campaign<'a>(
        &'a self,
        _name: &'a str,
        _candidate: &'a str,
    ) -> Option<StoreCall<'a, Leadership>> {
        None
    }

    /// The store-wide revision of the last commit, if known without asking
    /// anyone (local backends): when it has not moved since a derived view
    /// was read, nothing changed, and the view needs no check.
    fn revision(&self) -> Option<u64> {
        None
    }

    /// Every entry of every tree as of one revision, including every
    /// commit answered before the call: what a backup holds. Commits go on
    /// meanwhile (sled saves what they overwrite until the pass ends; etcd
    /// reads its own history at one revision); the memory backend holds
    /// them for its copy. A backend that cannot (a test's wrapper) refuses.
    fn snapshot(&self) -> StoreCall<'_, Snapshot> {
        StoreCall::ready(Err(StoreError("this store cannot take a snapshot".into())))
    }
}

/// One entry of a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub tree: String,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub version: u64,
}

/// The whole store at one revision (see [`Store::snapshot`]).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The revision it reflects (every commit up to it, none after).
    pub revision: u64,
    /// In (tree, key) order.
    pub entries: Vec<SnapshotEntry>,
}

/// Leading an election won through [`Store::campaign`], until the lease
/// behind it cannot be renewed (then [`Leadership::lost`] completes, and
/// the leader must stop: another process may lead once the lease expires).
/// Dropping it resigns.
pub struct Leadership {
    still_leading: watch::Receiver<bool>,
    /// Renews the lease; stopped (and the lease given up) on drop.
    _keeper: Box<dyn Send + Sync>,
}

impl Leadership {
    pub fn new(still_leading: watch::Receiver<bool>, keeper: Box<dyn Send + Sync>) -> Self {
        Self {
            still_leading,
            _keeper: keeper,
        }
    }

    /// Completes when leadership is lost.
    pub async fn lost(&mut self) {
        while *self.still_leading.borrow_and_update() {
            if self.still_leading.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Applies every operation of `batch` atomically (not yet durably), without
/// expectations; a key written twice ends as its last write. Returns the
/// version it was applied at.
pub async fn apply_unconditionally(store: &dyn Store, batch: &WriteBatch) -> StoreResult<u64> {
    let outcome = if check_unique_keys(batch).is_ok() {
        store.commit(&[], batch).await?
    } else {
        store.commit(&[], &last_write_per_key(batch)).await?
    };
    match outcome {
        Committed::Applied { version } => Ok(version),
        Committed::Conflict { .. } => Err(StoreError(
            "a commit without expectations reported a conflict".into(),
        )),
    }
}

pub use record::{decode, encode, version_of, Record};

/// What has been applied through a [`StoreHandle`]. Shared with its
/// batcher's commit tasks, which note a batch as soon as it applies, before
/// its members learn of it: a read that sees the batch's writes then knows
/// they may still need a flush, even if every member went away.
#[derive(Debug, Default)]
pub struct Applied {
    /// Sequence number of the last commit applied.
    sequence: AtomicU64,
    /// The highest version applied.
    version: AtomicU64,
}

impl Applied {
    /// Notes a commit applied at `version`; returns its sequence number.
    pub fn note(&self, version: u64) -> u64 {
        self.version.fetch_max(version, Ordering::SeqCst);
        self.sequence.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// A store plus group commit: the handle the rest of the gateway uses.
pub struct StoreHandle {
    store: Arc<dyn Store>,
    /// What has been applied (sequence and version).
    applied: Arc<Applied>,
    /// Sequence number known to be durable.
    durable: watch::Sender<u64>,
    /// Held by the one task currently flushing.
    flushing: Mutex<()>,
    /// Every version up to this one is durable.
    durable_version: AtomicU64,
    metrics: StoreMetrics,
    /// Batches concurrent operations' commits (see `batch` and
    /// [`Store::batches_commits`]); `None` commits each operation on its own.
    batcher: Option<Arc<CommitBatcher>>,
}

impl StoreHandle {
    pub fn new(store: Arc<dyn Store>) -> Self {
        let batches = store.batches_commits();
        Self {
            store,
            applied: Arc::default(),
            durable: watch::Sender::new(0),
            flushing: Mutex::new(()),
            durable_version: AtomicU64::new(0),
            metrics: StoreMetrics::default(),
            batcher: None,
        }
        .batching_if(batches)
    }

    /// Batches commits (see `batch`) when `enabled`: the default where
    /// [`Store::batches_commits`] says so. Tests turn it on for any store.
    pub fn batching_if(mut self, enabled: bool) -> Self {
        self.batcher = enabled.then(|| {
            CommitBatcher::new(
                self.store.clone(),
                self.metrics.clone(),
                self.applied.clone(),
            )
        });
        self
    }

    /// The commit batcher, when commits are batched.
    pub fn batcher(&self) -> Option<&Arc<CommitBatcher>> {
        self.batcher.as_ref()
    }

    /// The outcome of the batch a member joined (`ticket`); once applied,
    /// and if `durable`, waits until it is durable, as
    /// [`StoreHandle::commit_checked`] does (background work does not wait:
    /// as [`StoreHandle::commit_applied`]).
    pub async fn settle_batch(&self, ticket: Ticket, durable: bool) -> StoreResult<Committed> {
        let outcome = ticket.outcome().await?;
        // The batch's committer noted it applied before publishing the
        // outcome: waiting on the latest sequence covers it.
        if durable && matches!(outcome, Committed::Applied { .. }) {
            self.durable(self.last_applied()).await?;
        }
        Ok(outcome)
    }

    /// Commit latency, conflicts and retries (for the operator's metrics).
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// The backend, for calls that may answer without waiting (see
    /// [`StoreCall`]).
    pub fn backend(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The encoded value under `key`, as stored.
    pub async fn raw(&self, tree: &str, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.store.get_versioned(tree, key).await?.map(|v| v.value))
    }

    pub async fn get_record<T: Record>(&self, tree: &str, key: &[u8]) -> StoreResult<Option<T>> {
        self.raw(tree, key)
            .await?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// Every record under `prefix`, in key order.
    pub async fn records<T: Record>(&self, tree: &str, prefix: &[u8]) -> StoreResult<Vec<T>> {
        self.store
            .scan(tree, prefix, None, usize::MAX)
            .await?
            .into_iter()
            .map(|(_, value)| decode(&value))
            .collect()
    }

    /// The value under `key` in `tree` with its version, as stored.
    pub async fn raw_versioned(
        &self,
        tree: &str,
        key: &[u8],
    ) -> StoreResult<Option<VersionedValue>> {
        self.store.get_versioned(tree, key).await
    }

    /// Up to `limit` entries under `prefix` after `after`, as stored.
    pub async fn raw_scan(
        &self,
        tree: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<Entry>> {
        self.store.scan(tree, prefix, after, limit).await
    }

    /// The value under `key` in `tree` with its version, decoded.
    pub async fn get_versioned_record<T: Record>(
        &self,
        tree: &str,
        key: &[u8],
    ) -> StoreResult<Option<(T, u64)>> {
        self.store
            .get_versioned(tree, key)
            .await?
            .map(|v| decode(&v.value).map(|record| (record, v.version)))
            .transpose()
    }

    /// Checks `commit`'s expectations and applies its writes; when applied,
    /// waits until they are durable.
    pub async fn commit_checked(&self, commit: &Commit) -> StoreResult<Committed> {
        let outcome = self.commit_applied(commit).await?;
        if let Committed::Applied { .. } = outcome {
            self.durable(self.last_applied()).await?;
        }
        Ok(outcome)
    }

    /// Checks `commit`'s expectations and applies its writes, without
    /// waiting for durability (work that is redone after a crash anyway,
    /// such as a due transition whose schedule entry it deletes).
    pub async fn commit_applied(&self, commit: &Commit) -> StoreResult<Committed> {
        let started = std::time::Instant::now();
        let outcome = self
            .store
            .commit(&commit.expectations, &commit.writes)
            .await?;
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Committed::Applied { version } => {
                self.note_applied(version);
            }
            Committed::Conflict { .. } => {
                self.metrics.conflicts.inc();
            }
        }
        Ok(outcome)
    }

    fn note_applied(&self, version: u64) -> u64 {
        self.applied.note(version)
    }

    /// Applies `batch` atomically and returns its sequence number, to pass to
    /// [`StoreHandle::durable`] before answering.
    pub async fn apply(&self, batch: &WriteBatch) -> StoreResult<u64> {
        let version = apply_unconditionally(self.store.as_ref(), batch).await?;
        Ok(self.note_applied(version))
    }

    /// True when a value read at `version` may not be on stable storage
    /// yet (so an answer resting on it must wait for the next flush).
    pub fn may_be_volatile(&self, version: u64) -> bool {
        version > self.durable_version.load(Ordering::SeqCst)
    }

    /// The sequence number of the latest applied batch: waiting on it makes
    /// everything applied so far durable (answers that repeat earlier writes).
    pub fn last_applied(&self) -> u64 {
        self.applied.sequence.load(Ordering::SeqCst)
    }

    /// Waits until the batch with sequence `sequence` is durable. Concurrent
    /// callers share flushes: whoever flushes covers every batch applied
    /// before the flush started.
    pub async fn durable(&self, sequence: u64) -> StoreResult<()> {
        let mut durable = self.durable.subscribe();
        loop {
            if *durable.borrow_and_update() >= sequence {
                return Ok(());
            }
            let _flushing = self.flushing.lock().await;
            if *self.durable.borrow() >= sequence {
                return Ok(());
            }
            self.flush_holding(0).await?;
        }
    }

    /// Waits until a value read at `version` is durable: an answer that
    /// writes nothing but rests on what it read (a retried ClientToken, a
    /// stop of a stopped instance) must not be undone by a crash. A value
    /// that was read was applied, so a flush that starts now covers it,
    /// whether or not its commit has been noted yet.
    pub async fn durable_through(&self, version: u64) -> StoreResult<()> {
        while self.may_be_volatile(version) {
            let _flushing = self.flushing.lock().await;
            if !self.may_be_volatile(version) {
                break;
            }
            self.flush_holding(version).await?;
        }
        Ok(())
    }

    /// Flushes, for a caller holding `flushing`: everything applied before
    /// the flush starts (and `version`, applied already) becomes durable.
    async fn flush_holding(&self, version: u64) -> StoreResult<()> {
        let target = self.applied.sequence.load(Ordering::SeqCst);
        let target_version = self.applied.version.load(Ordering::SeqCst).max(version);
        self.store.flush().await?;
        self.durable_version
            .fetch_max(target_version, Ordering::SeqCst);
        self.durable
            .send_modify(|durable| *durable = (*durable).max(target));
        Ok(())
    }

    /// Applies `batch` and waits until it is durable.
    pub async fn commit(&self, batch: &WriteBatch) -> StoreResult<()> {
        let sequence = self.apply(batch).await?;
        self.durable(sequence).await
    }

    /// Flushes everything applied so far (used at shutdown).
    pub async fn flush_all(&self) -> StoreResult<()> {
        self.durable(self.last_applied().max(1)).await
    }
}
