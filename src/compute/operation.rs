//! One way to run an operation on the store: read, check, commit with
//! expectations, retry on conflict.
//!
//! An operation reads what it depends on through a [`Tx`], which remembers
//! the version of every key it read (or that the key was absent) and
//! collects the writes; [`run`] then commits the writes on the condition
//! that nothing read has changed. On a conflict the whole operation runs
//! again on fresh reads, a bounded number of times with jittered back-off,
//! so two gateways (or two requests) racing for one host, one name or one
//! ClientToken serialise on the store itself: correctness rests on no lock
//! in the process. On etcd and on sled one gateway's concurrent
//! operations (requests and the lifecycle driver's passes) are also
//! ordered among themselves and committed together ([`run_batched`],
//! `crate::store::batch`), which spares their conflicts with each other;
//! the commit's compares still decide.
//! A DryRun stops just before the commit, after every check has run.
//! Decisions that rest on a listing (a quota, a name being free, a group
//! not being in use) read the collection's usage record in the same `Tx`,
//! and every change to the collection writes it, so the listing cannot
//! change unseen (see `usage`). This is the contract every backend follows
//! (memory, sled and etcd): ../shared/design/scale-out.md, §3.

use crate::error::{ApiError, ApiResult};
use crate::store::{
    decode, encode, Commit, CommitBatcher, Committed, Entry, Expect, OpenBatch, Record, StoreError,
    StoreHandle, StoreResult, VersionedValue, WriteBatch,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Attempts before an operation gives up on conflicts (each one re-reads).
pub const MAX_ATTEMPTS: u32 = 16;

/// Times one attempt may run again to take in answers it had to wait for
/// (a networked store); each time adds at least one answer.
const MAX_FETCH_ROUNDS: u32 = 1_000;

/// (tree, key).
type TreeKey = (&'static str, Vec<u8>);

/// (tree, prefix, after, limit): one scan.
type ScanKey = (&'static str, Vec<u8>, Option<Vec<u8>>, usize);

/// A store call an attempt could not answer without waiting.
enum Miss {
    Value(TreeKey),
    Scan(ScanKey),
}

/// Answers awaited for earlier runs of this attempt: when a backend cannot
/// answer a read at once, the attempt is run again with the answer here,
/// until it needs nothing it does not have (see [`crate::store::StoreCall`]).
#[derive(Default)]
struct Fetched {
    values: HashMap<TreeKey, Option<VersionedValue>>,
    scans: HashMap<ScanKey, Vec<Entry>>,
}

impl Fetched {
    async fn take_in(&mut self, store: &StoreHandle, missing: Vec<Miss>) -> StoreResult<()> {
        for miss in missing {
            match miss {
                Miss::Value((tree, key)) => {
                    let value = store.raw_versioned(tree, &key).await?;
                    self.values.insert((tree, key), value);
                }
                Miss::Scan((tree, prefix, after, limit)) => {
                    let entries = store
                        .raw_scan(tree, &prefix, after.as_deref(), limit)
                        .await?;
                    self.scans.insert((tree, prefix, after, limit), entries);
                }
            }
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.values.clear();
        self.scans.clear();
    }
}

/// What a read that must wait answers inside an attempt; the runner looks
/// at the attempt's misses, not at how the attempt passed this on.
fn awaiting_answer() -> StoreError {
    StoreError::awaiting()
}

/// One attempt's reads (with the versions seen) and writes.
pub struct Tx<'s> {
    store: &'s StoreHandle,
    fetched: &'s Fetched,
    /// Reads the backend could not answer at once.
    missing: std::sync::Mutex<Vec<Miss>>,
    /// What the backend answered this attempt, so that a key is read from
    /// it once (a peek then a tracked read of the same key, a view checked
    /// twice).
    answered: std::sync::Mutex<HashMap<TreeKey, Option<VersionedValue>>>,
    /// The batch this attempt runs in, on top of the writes of the members
    /// before it (`crate::store::batch`).
    batch: Option<&'s OpenBatch>,
    /// True once a read was answered from the batch's overlay: the answer
    /// then stands only if the batch applies.
    used_overlay: AtomicBool,
    /// How many reads the overlay answered (a derived view built without
    /// any may be kept).
    overlay_reads: AtomicUsize,
    /// What each key read held: the expectation the commit carries and the
    /// value seen (so a second read answers the same).
    reads: HashMap<TreeKey, (Expect, Option<Vec<u8>>)>,
    /// The write set: one operation per key (`None` deletes).
    writes: BTreeMap<TreeKey, Option<Vec<u8>>>,
    /// The highest version among the values read.
    newest_read: u64,
}

impl<'s> Tx<'s> {
    fn new(store: &'s StoreHandle, fetched: &'s Fetched) -> Self {
        Self {
            store,
            fetched,
            missing: std::sync::Mutex::new(Vec::new()),
            answered: std::sync::Mutex::new(HashMap::new()),
            batch: None,
            used_overlay: AtomicBool::new(false),
            overlay_reads: AtomicUsize::new(0),
            reads: HashMap::new(),
            writes: BTreeMap::new(),
            newest_read: 0,
        }
    }

    /// An attempt joining `batch`: it reads what the members before it
    /// wrote.
    fn in_batch(store: &'s StoreHandle, fetched: &'s Fetched, batch: &'s OpenBatch) -> Self {
        let mut tx = Self::new(store, fetched);
        tx.batch = Some(batch);
        tx
    }

    /// What an earlier member of this attempt's batch wrote under `key`
    /// (`Some(None)`: deleted), with the version it was given; noted, as
    /// this attempt's answer then rests on the batch.
    fn overlay_write(&self, tree: &'static str, key: &[u8]) -> Option<(Option<&'s [u8]>, u64)> {
        let written = self.batch?.written(tree, key)?;
        self.note_overlay_read();
        Some(written)
    }

    /// True when this attempt may read writes not yet committed (an
    /// earlier member's in its batch).
    pub fn sees_uncommitted(&self) -> bool {
        self.batch.is_some_and(|batch| !batch.is_empty())
    }

    fn note_overlay_read(&self) {
        self.used_overlay.store(true, Ordering::Relaxed);
        self.overlay_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// How many reads the batch's overlay has answered so far: a view
    /// built while this did not move rests on committed values only.
    pub fn overlay_reads(&self) -> usize {
        self.overlay_reads.load(Ordering::Relaxed)
    }

    /// The value under `key` with its version, from the answers awaited
    /// earlier or from the backend if it answers at once.
    fn versioned(&self, tree: &'static str, key: &[u8]) -> StoreResult<Option<VersionedValue>> {
        if let Some((value, version)) = self.overlay_write(tree, key) {
            return Ok(value.map(|value| VersionedValue {
                value: value.to_vec(),
                version,
            }));
        }
        let tree_key = (tree, key.to_vec());
        if let Some(value) = crate::sync::lock(&self.answered).get(&tree_key) {
            return Ok(value.clone());
        }
        if let Some(value) = self.fetched.values.get(&tree_key) {
            return Ok(value.clone());
        }
        match self.store.backend().get_versioned(tree, key).now() {
            Some(answer) => {
                let value = answer?;
                crate::sync::lock(&self.answered).insert(tree_key, value.clone());
                Ok(value)
            }
            None => {
                crate::sync::lock(&self.missing).push(Miss::Value((tree, key.to_vec())));
                Err(awaiting_answer())
            }
        }
    }

    /// Asks for every one of `keys` at once when the backend would make
    /// each read wait: a listing then waits one round for all its records
    /// (the attempt runs again once with all of them), not one round, and
    /// one rerun, per record. Nothing to do on a backend that answers at
    /// once.
    pub fn prefetch(&self, keys: &[(&'static str, Vec<u8>)]) -> StoreResult<()> {
        if self.store.backend().answers_at_once() {
            return Ok(());
        }
        let mut waiting = false;
        for (tree, key) in keys {
            let tree_key = (*tree, key.clone());
            if crate::sync::lock(&self.answered).contains_key(&tree_key)
                || self.fetched.values.contains_key(&tree_key)
            {
                continue;
            }
            match self.store.backend().get_versioned(tree, key).now() {
                Some(answer) => {
                    let value = answer?;
                    crate::sync::lock(&self.answered).insert(tree_key, value);
                }
                None => {
                    crate::sync::lock(&self.missing).push(Miss::Value(tree_key));
                    waiting = true;
                }
            }
        }
        if waiting {
            Err(awaiting_answer())
        } else {
            Ok(())
        }
    }

    /// Up to `limit` entries under `prefix` after `after` (untracked), from
    /// the answers awaited earlier or from the backend if it answers at once.
    pub fn scan_after(
        &self,
        tree: &'static str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<Entry>> {
        let written: Vec<(&[u8], Option<&[u8]>)> = match self.batch {
            Some(batch) if !batch.is_empty() => batch.written_under(tree, prefix, after).collect(),
            _ => Vec::new(),
        };
        if written.is_empty() {
            return self.scan_store(tree, prefix, after, limit);
        }
        self.note_overlay_read();
        // Each overlay write removes at most one stored entry from the
        // first `limit`: with that many more, the stored entries read are
        // complete up to the last one, and the first `limit` of the merge
        // all lie within them.
        let stored = self.scan_store(tree, prefix, after, limit.saturating_add(written.len()))?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = stored.into_iter().collect();
        for (key, value) in written {
            match value {
                Some(value) => merged.insert(key.to_vec(), value.to_vec()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    /// [`Tx::scan_after`] on the store alone.
    fn scan_store(
        &self,
        tree: &'static str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<Entry>> {
        let scan_key = || (tree, prefix.to_vec(), after.map(<[u8]>::to_vec), limit);
        if !self.fetched.scans.is_empty() {
            if let Some(entries) = self.fetched.scans.get(&scan_key()) {
                return Ok(entries.clone());
            }
        }
        match self.store.backend().scan(tree, prefix, after, limit).now() {
            Some(answer) => answer,
            None => {
                crate::sync::lock(&self.missing).push(Miss::Scan(scan_key()));
                Err(awaiting_answer())
            }
        }
    }

    /// The raw value under `key`, as this attempt sees it (its own writes
    /// first); the commit will require it unchanged.
    pub fn get_raw(&mut self, tree: &'static str, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let tree_key = (tree, key.to_vec());
        if let Some(written) = self.writes.get(&tree_key) {
            return Ok(written.clone());
        }
        if let Some((_, seen)) = self.reads.get(&tree_key) {
            return Ok(seen.clone());
        }
        if let Some((value, _)) = self.overlay_write(tree, key) {
            // The batch writes it: nothing to expect of the store.
            let value = value.map(<[u8]>::to_vec);
            self.reads.insert(tree_key, (Expect::Any, value.clone()));
            return Ok(value);
        }
        let (expect, value) = match self.versioned(tree, key)? {
            Some(v) => {
                self.newest_read = self.newest_read.max(v.version);
                (Expect::At(v.version), Some(v.value))
            }
            None => (Expect::Absent, None),
        };
        self.reads.insert(tree_key, (expect, value.clone()));
        Ok(value)
    }

    /// The version `key` was read at in this attempt (`None` when it was
    /// not read, was absent, or holds this attempt's own write).
    pub fn read_version(&self, tree: &'static str, key: &[u8]) -> Option<u64> {
        if self.writes.contains_key(&(tree, key.to_vec())) {
            return None;
        }
        match self.reads.get(&(tree, key.to_vec())) {
            Some((Expect::At(version), _)) => Some(*version),
            _ => None,
        }
    }

    /// The record under `key`; the commit will require it unchanged.
    pub fn get<T: Record>(&mut self, tree: &'static str, key: &[u8]) -> StoreResult<Option<T>> {
        self.get_raw(tree, key)?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// The value under `key` with its version as stored now, not tracked:
    /// for checking a derived view against the version it reflects.
    pub fn peek(&self, tree: &'static str, key: &[u8]) -> StoreResult<Option<VersionedValue>> {
        self.versioned(tree, key)
    }

    /// The version of the value under `key` as stored now (not tracked,
    /// the value not copied): to check a derived view.
    pub fn peek_version(&self, tree: &'static str, key: &[u8]) -> StoreResult<Option<u64>> {
        if let Some((value, version)) = self.overlay_write(tree, key) {
            return Ok(value.map(|_| version));
        }
        let tree_key = (tree, key.to_vec());
        if let Some(value) = crate::sync::lock(&self.answered).get(&tree_key) {
            return Ok(value.as_ref().map(|v| v.version));
        }
        if let Some(value) = self.fetched.values.get(&tree_key) {
            return Ok(value.as_ref().map(|v| v.version));
        }
        match self.store.backend().version(tree, key).now() {
            Some(answer) => answer,
            None => {
                crate::sync::lock(&self.missing).push(Miss::Value((tree, key.to_vec())));
                Err(awaiting_answer())
            }
        }
    }

    /// The store-wide revision of its last commit, if the store knows it
    /// without asking anyone (see `view`).
    pub fn store_revision(&self) -> Option<u64> {
        if self.sees_uncommitted() {
            // The store's revision says nothing of the batch's writes.
            return None;
        }
        if !self.fetched.values.is_empty() || !self.fetched.scans.is_empty() {
            // This attempt reads answers awaited earlier: the revision now
            // may be newer than they are.
            return None;
        }
        self.store.backend().revision()
    }

    /// The record under `key` as stored now, not tracked (see [`Tx::peek`]).
    pub fn peek_record<T: Record>(&self, tree: &'static str, key: &[u8]) -> StoreResult<Option<T>> {
        self.versioned(tree, key)?
            .map(|v| decode(&v.value))
            .transpose()
    }

    /// Writes `value` under `key` (replacing an earlier write of this attempt).
    pub fn put<T: Record>(&mut self, tree: &'static str, key: impl Into<Vec<u8>>, value: &T) {
        self.write(tree, key.into(), Some(encode(value)));
    }

    /// Writes an encoded record under `key`.
    pub fn put_raw(&mut self, tree: &'static str, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.write(tree, key.into(), Some(value));
    }

    /// Deletes `key` (replacing an earlier write of this attempt).
    pub fn delete(&mut self, tree: &'static str, key: impl Into<Vec<u8>>) {
        self.write(tree, key.into(), None);
    }

    /// Every write goes through here: a write to a collection with a
    /// marker (an account's instances, see `instance_index`) rewrites the
    /// marker too, blindly.
    fn write(&mut self, tree: &'static str, key: Vec<u8>, value: Option<Vec<u8>>) {
        if let Some(marker) = super::instance_index::marker_of(tree, &key) {
            self.writes.insert(
                (super::instance_index::MARKER_TREE, marker),
                Some(encode(&0u64)),
            );
        }
        self.writes.insert((tree, key), value);
    }

    /// Rewrites `key` unchanged, so that any concurrent operation that read
    /// it conflicts (a new reference to a group, a snapshot an image now
    /// uses). Returns false when the key holds nothing.
    pub fn touch(&mut self, tree: &'static str, key: &[u8]) -> StoreResult<bool> {
        match self.get_raw(tree, key)? {
            Some(value) => {
                self.write(tree, key.to_vec(), Some(value));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Every record under `prefix`, in key order, as stored now. Not
    /// tracked: a decision resting on it must also read the collection's
    /// usage record (see the module documentation).
    pub fn scan<T: Record>(&self, tree: &'static str, prefix: &[u8]) -> StoreResult<Vec<T>> {
        self.scan_entries(tree, prefix)?
            .into_iter()
            .map(|(_, value)| decode(&value))
            .collect()
    }

    /// The entries under `prefix`, keys with encoded values, in one scan
    /// (untracked, as [`Tx::scan`]).
    pub fn scan_entries(&self, tree: &'static str, prefix: &[u8]) -> StoreResult<Vec<Entry>> {
        self.scan_after(tree, prefix, None, usize::MAX)
    }

    /// Reads the backend could not answer at once (the attempt's result
    /// means nothing while there are some).
    fn take_missing(&self) -> Vec<Miss> {
        std::mem::take(&mut *crate::sync::lock(&self.missing))
    }

    /// True when every key read still holds the version it was read at
    /// (or is still absent): then the reads were all true at one moment,
    /// now, and a refusal based on them stands.
    async fn reads_still_current(&self) -> StoreResult<bool> {
        for ((tree, key), (expect, _)) in &self.reads {
            let current = self
                .store
                .raw_versioned(tree, key)
                .await?
                .map(|v| v.version);
            let same = match expect {
                Expect::Absent => current.is_none(),
                Expect::At(version) => current == Some(*version),
                Expect::Any => true,
            };
            if !same {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The size of this attempt's commit (the larger of its writes and
    /// its expectations) and the store's limit, when it is over that limit
    /// (etcd's `--max-txn-ops`): the caller asks for less, or refuses.
    pub fn over_commit_limit(&self) -> Option<(usize, usize)> {
        let max = self.store.backend().max_commit_ops()?;
        let size = self.writes.len().max(self.reads.len());
        (size > max).then_some((size, max))
    }

    /// Forgets this attempt's writes: it answers without committing.
    pub fn discard_writes(&mut self) {
        self.writes.clear();
    }

    /// True when this attempt writes something.
    pub fn has_writes(&self) -> bool {
        !self.writes.is_empty()
    }

    /// This attempt as a batch member: what it expects of the store (its
    /// reads from the overlay expect nothing) and its writes.
    #[allow(clippy::type_complexity)]
    fn into_member(self) -> (Vec<(TreeKey, Expect)>, BTreeMap<TreeKey, Option<Vec<u8>>>) {
        let expectations = self
            .reads
            .into_iter()
            .map(|(key, (expect, _))| (key, expect))
            .collect();
        (expectations, self.writes)
    }

    fn into_commit(self) -> Commit {
        let mut commit = Commit::new();
        for ((tree, key), (expect, _)) in self.reads {
            commit.expect(tree, key, expect);
        }
        let mut writes = WriteBatch::new();
        for ((tree, key), value) in self.writes {
            match value {
                Some(value) => writes.put(tree, key, value),
                None => writes.delete(tree, key),
            }
        }
        commit.writes = writes;
        commit
    }
}

/// Runs `view`, a function of reads only, against the store as it is now,
/// taking in answers the backend had to wait for: how paths outside an
/// operation (listings, views) read through the same synchronous code.
/// Nothing is committed and nothing waits for a flush.
pub async fn read<T, E: From<StoreError>>(
    store: &StoreHandle,
    mut view: impl FnMut(&mut Tx<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let mut fetched = Fetched::default();
    for _ in 0..MAX_FETCH_ROUNDS {
        let mut tx = Tx::new(store, &fetched);
        let output = view(&mut tx);
        let missing = tx.take_missing();
        if missing.is_empty() {
            debug_assert!(!tx.has_writes(), "a read wrote");
            return output;
        }
        drop(tx);
        fetched.take_in(store, missing).await?;
    }
    Err(StoreError("a read kept needing more answers".into()).into())
}

/// Runs `view` once on what the store answers at once: `None` when it
/// needed an answer the store must wait for (then [`read`] it). For paths
/// that cannot wait in the middle (a signature check).
pub fn read_now<T, E>(
    store: &StoreHandle,
    view: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
) -> Option<Result<T, E>> {
    let fetched = Fetched::default();
    let mut tx = Tx::new(store, &fetched);
    let output = view(&mut tx);
    tx.take_missing().is_empty().then_some(output)
}

/// Runs `attempt` until its writes commit (or it writes nothing),
/// retrying on conflicts with jittered back-off, and answers once the
/// commit is durable. With `dry_run`, answers `DryRunOperation` where the
/// commit would have been made; a refusal (`Err`) from `attempt` always
/// wins over the dry run. An answer that writes nothing (a retried
/// ClientToken) still waits until what it read is durable.
pub async fn run<T>(
    store: &StoreHandle,
    dry_run: bool,
    attempt: impl FnMut(&mut Tx<'_>) -> ApiResult<T>,
) -> ApiResult<T> {
    run_with(store, dry_run, true, attempt).await
}

/// [`run`] for background work that a crash simply redoes (the lifecycle's
/// due transitions): the commit is applied, and becomes durable with the
/// next flush, without waiting for it.
pub async fn run_background<T>(
    store: &StoreHandle,
    attempt: impl FnMut(&mut Tx<'_>) -> ApiResult<T>,
) -> ApiResult<T> {
    run_with(store, false, false, attempt).await
}

async fn run_with<T>(
    store: &StoreHandle,
    dry_run: bool,
    durable: bool,
    mut attempt: impl FnMut(&mut Tx<'_>) -> ApiResult<T>,
) -> ApiResult<T> {
    if let Some(batcher) = store.batcher() {
        // A dry run commits nothing: it goes on its own. Background work
        // joins the batch as requests do (the lifecycle driver rewrites the
        // usage records launches rewrite; on its own it would conflict with
        // every batch), without waiting for the commit to be durable.
        if !dry_run && store.backend().answers_at_once() {
            if let Some(answer) = run_batched(store, batcher, durable, &mut attempt).await {
                return answer;
            }
        }
    }
    let mut fetched = Fetched::default();
    let mut fetch_rounds = 0;
    let mut round = 0;
    while round < MAX_ATTEMPTS {
        let mut tx = Tx::new(store, &fetched);
        let result = attempt(&mut tx);
        let missing = tx.take_missing();
        if !missing.is_empty() {
            // The attempt needed answers the backend had to wait for: its
            // result means nothing yet. Await them and run it again.
            drop(tx);
            fetch_rounds += 1;
            if fetch_rounds > MAX_FETCH_ROUNDS {
                return Err(StoreError("an operation kept needing more answers".into()).into());
            }
            fetched.take_in(store, missing).await?;
            continue;
        }
        let output = match result {
            Ok(output) => output,
            // A refusal must rest on reads that were true together: if one
            // changed meanwhile (a ClientToken's launch committed between
            // the token read and a quota read), decide again.
            Err(refusal) if tx.reads_still_current().await? => return Err(refusal),
            Err(_) => {
                drop(tx);
                fetched.clear();
                store.metrics().retries.inc();
                tokio::time::sleep(back_off(round)).await;
                round += 1;
                continue;
            }
        };
        if dry_run {
            return Err(ApiError::DryRunOperation);
        }
        if !tx.has_writes() {
            // An answer resting on values not yet flushed waits for them.
            if durable {
                store.durable_through(tx.newest_read).await?;
            }
            return Ok(output);
        }
        let commit = tx.into_commit();
        let outcome = if durable {
            store.commit_checked(&commit).await?
        } else {
            store.commit_applied(&commit).await?
        };
        match outcome {
            Committed::Applied { .. } => return Ok(output),
            Committed::Conflict { keys } => {
                tracing::debug!(
                    round,
                    conflicts = keys.len(),
                    first = ?keys.first().map(|(tree, key)| (tree, String::from_utf8_lossy(key))),
                    "commit conflicted: retrying"
                );
                fetched.clear();
                store.metrics().retries.inc();
                tokio::time::sleep(back_off(round)).await;
                round += 1;
            }
        }
    }
    store.metrics().exhausted.inc();
    tracing::warn!("an operation kept conflicting: gave up");
    Err(ApiError::ServiceUnavailable(
        "The request conflicted with concurrent changes too often; retry".into(),
    ))
}

/// Times an attempt may run again for reasons not its own (see
/// [`run_batched`]): it did not fit in the open batch or refused on its
/// uncommitted writes (it had the batch committed first), or its batch
/// conflicted on keys it had not read. Each time, a batch was committed.
const MAX_BATCH_RERUNS: u32 = 64;

/// Conflicts after which a batch member backs off before running again:
/// the first retries go straight into the next batch, which forms on what
/// beat the last one.
const BATCH_RETRIES_WITHOUT_PAUSE: u32 = 3;

/// [`run_with`] as a member of the process's commit batch
/// (`crate::store::batch`): the attempt runs on top of the writes of the
/// members before it and its commit is theirs; it answers once the batch
/// is durable (`durable`) or applied (background work). `None` when
/// the attempt needed a read the store could not answer at once (it then
/// runs on its own).
async fn run_batched<T>(
    store: &StoreHandle,
    batcher: &Arc<CommitBatcher>,
    durable: bool,
    attempt: &mut impl FnMut(&mut Tx<'_>) -> ApiResult<T>,
) -> Option<ApiResult<T>> {
    let fetched = Fetched::default();
    let mut round = 0;
    let mut reruns = 0;
    // The batch's lock, kept from one run to the next when this attempt
    // had the batch committed and runs again first in the next one.
    let mut held = None;
    while round < MAX_ATTEMPTS && reruns < MAX_BATCH_RERUNS {
        let mut open = match held.take() {
            Some(open) => open,
            None => batcher.open().await,
        };
        let mut tx = Tx::in_batch(store, &fetched, &open);
        let result = attempt(&mut tx);
        if !tx.take_missing().is_empty() {
            return None;
        }
        let used_overlay = tx.used_overlay.load(Ordering::Relaxed);
        let output = match result {
            // Refused on writes not yet committed: have them committed
            // (or not), then decide again on what the store holds.
            Err(_) if used_overlay => {
                drop(tx);
                batcher.commit_open(&mut open).await;
                held = Some(open);
                reruns += 1;
                continue;
            }
            // Refused on what the store holds: as on its own (see
            // `run_with`).
            Err(refusal) => match tx.reads_still_current().await {
                Ok(true) => return Some(Err(refusal)),
                Ok(false) => {
                    drop(tx);
                    drop(open);
                    store.metrics().retries.inc();
                    tokio::time::sleep(back_off(round)).await;
                    round += 1;
                    continue;
                }
                Err(error) => return Some(Err(error.into())),
            },
            Ok(output) => output,
        };
        if !tx.has_writes() && !used_overlay {
            // An answer resting on the store alone commits nothing.
            let newest_read = tx.newest_read;
            drop(tx);
            drop(open);
            if durable {
                if let Err(error) = store.durable_through(newest_read).await {
                    return Some(Err(error.into()));
                }
            }
            return Some(Ok(output));
        }
        // Writes, or an answer resting on the batch's writes (a retried
        // ClientToken finding a launch made earlier in the batch): it
        // stands once the batch applies.
        let (expectations, writes) = tx.into_member();
        if !open.fits(&expectations, &writes, store.backend().max_commit_ops()) {
            // Commit the batch as it is; this attempt runs again first in
            // the next one.
            batcher.commit_open(&mut open).await;
            held = Some(open);
            reruns += 1;
            continue;
        }
        let read: Vec<TreeKey> = expectations
            .iter()
            .filter(|(_, expect)| *expect != Expect::Any)
            .map(|(key, _)| key.clone())
            .collect();
        let ticket = batcher.join(&mut open, expectations, writes);
        drop(open);
        match store.settle_batch(ticket, durable).await {
            Ok(Committed::Applied { .. }) => return Some(Ok(output)),
            Ok(Committed::Conflict { keys }) => {
                store.metrics().retries.inc();
                // A member whose own reads all held (and that read nothing
                // another member wrote) lost only its place: it runs again
                // at once, and the conflict is not counted against it.
                let its_own = used_overlay
                    || keys.is_empty()
                    || keys.iter().any(|(tree, key)| {
                        read.iter()
                            .any(|(read_tree, read_key)| read_tree == tree && read_key == key)
                    });
                tracing::debug!(
                    round,
                    its_own,
                    conflicts = keys.len(),
                    first = ?keys.first().map(|(tree, key)| (tree, String::from_utf8_lossy(key))),
                    "batched commit conflicted: retrying"
                );
                if !its_own {
                    reruns += 1;
                    continue;
                }
                if round >= BATCH_RETRIES_WITHOUT_PAUSE {
                    tokio::time::sleep(back_off(round - BATCH_RETRIES_WITHOUT_PAUSE)).await;
                }
                round += 1;
            }
            Err(error) => return Some(Err(error.into())),
        }
    }
    store.metrics().exhausted.inc();
    tracing::warn!("a batched operation kept conflicting: gave up");
    Some(Err(ApiError::ServiceUnavailable(
        "The request conflicted with concurrent changes too often; retry".into(),
    )))
}

/// 0 to 2^round milliseconds (at most 64), at random: concurrent losers do
/// not retry in lockstep.
fn back_off(round: u32) -> Duration {
    let ceiling = 1u64 << round.min(6);
    Duration::from_micros(rand::random::<u64>() % (ceiling * 1000 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// Increments a counter by read-check-commit.
    async fn increment(store: &StoreHandle, attempts: &AtomicU32) -> ApiResult<u64> {
        run(store, false, |tx| {
            attempts.fetch_add(1, Ordering::SeqCst);
            let next = tx.get::<u64>("usage", b"counter")?.unwrap_or(0) + 1;
            tx.put("usage", b"counter".to_vec(), &next);
            Ok(next)
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_read_check_commit_loses_no_update() {
        let store = Arc::new(StoreHandle::new(Arc::new(MemoryStore::new())));
        let attempts = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (store, attempts) = (store.clone(), attempts.clone());
                tokio::spawn(async move { increment(&store, &attempts).await })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap().unwrap());
        }
        answers.sort();
        assert_eq!(
            answers,
            (1..=32).collect::<Vec<u64>>(),
            "each saw its own increment"
        );
        let (value, _) = store
            .get_versioned_record::<u64>("usage", b"counter")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(value, 32);
        assert!(attempts.load(Ordering::SeqCst) >= 32);
    }

    #[tokio::test]
    async fn dry_run_stops_before_the_commit_and_refusals_win() {
        let store = StoreHandle::new(Arc::new(MemoryStore::new()));
        let dry = run(&store, true, |tx| {
            tx.put("names", b"web".to_vec(), &true);
            Ok(())
        })
        .await;
        assert_eq!(dry.unwrap_err(), ApiError::DryRunOperation);
        assert!(
            store.raw("names", b"web").await.unwrap().is_none(),
            "nothing written"
        );
        let refused: ApiResult<()> =
            run(&store, true, |_| Err(ApiError::invalid_value("bad"))).await;
        assert_eq!(refused.unwrap_err().code(), "InvalidParameterValue");
        let answered = run(&store, false, |_| Ok(7)).await;
        assert_eq!(answered.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_second_read_sees_the_first_and_own_writes() {
        let store = StoreHandle::new(Arc::new(MemoryStore::new()));
        let mut batch = WriteBatch::new();
        batch.put_record("names", b"web".to_vec(), &1u64);
        store.apply(&batch).await.unwrap();
        let fetched = Fetched::default();
        let mut tx = Tx::new(&store, &fetched);
        assert_eq!(tx.get::<u64>("names", b"web").unwrap(), Some(1));
        let mut other = WriteBatch::new();
        other.put_record("names", b"web".to_vec(), &2u64);
        store.apply(&other).await.unwrap();
        assert_eq!(tx.get::<u64>("names", b"web").unwrap(), Some(1));
        tx.put("names", b"web".to_vec(), &3u64);
        assert_eq!(tx.get::<u64>("names", b"web").unwrap(), Some(3));
        // The write was based on version 1's value: the commit conflicts.
        let outcome = store.commit_checked(&tx.into_commit()).await.unwrap();
        assert!(matches!(outcome, Committed::Conflict { .. }));
        assert_eq!(
            store.get_record::<u64>("names", b"web").await.unwrap(),
            Some(2)
        );
    }

    /// A store whose every call waits (as a network store's would).
    struct Waiting(MemoryStore);

    impl crate::store::Store for Waiting {
        fn get_versioned<'a>(
            &'a self,
            tree: &'a str,
            key: &'a [u8],
        ) -> crate::store::StoreCall<'a, Option<VersionedValue>> {
            crate::store::StoreCall::waiting(async move {
                tokio::task::yield_now().await;
                self.0.get_versioned(tree, key).await
            })
        }
        fn commit<'a>(
            &'a self,
            expectations: &'a [crate::store::Expectation],
            writes: &'a WriteBatch,
        ) -> crate::store::StoreCall<'a, Committed> {
            crate::store::StoreCall::waiting(async move {
                tokio::task::yield_now().await;
                self.0.commit(expectations, writes).await
            })
        }
        fn scan<'a>(
            &'a self,
            tree: &'a str,
            prefix: &'a [u8],
            after: Option<&'a [u8]>,
            limit: usize,
        ) -> crate::store::StoreCall<'a, Vec<Entry>> {
            crate::store::StoreCall::waiting(async move {
                tokio::task::yield_now().await;
                self.0.scan(tree, prefix, after, limit).await
            })
        }
        fn flush(&self) -> crate::store::StoreCall<'_, ()> {
            crate::store::StoreCall::ready(Ok(()))
        }
    }

    /// On a waiting store an attempt runs again once per round of answers:
    /// reads one by one would take a round (and a rerun) each, so a
    /// listing asks for all its keys at once and runs three times whatever
    /// its length (the scan, the records, then the answer).
    #[tokio::test]
    async fn a_listing_on_a_waiting_store_waits_one_round_for_all_its_records() {
        let store = StoreHandle::new(Arc::new(Waiting(MemoryStore::new())));
        let mut batch = WriteBatch::new();
        for n in 0..1_500u64 {
            batch.put_record("records", format!("{n:05}").into_bytes(), &n);
        }
        store.apply(&batch).await.unwrap();
        let runs = AtomicU32::new(0);
        let sum = read(&store, |tx| {
            runs.fetch_add(1, Ordering::SeqCst);
            let keys: Vec<(&'static str, Vec<u8>)> = tx
                .scan_entries("records", b"")?
                .into_iter()
                .map(|(key, _)| ("records", key))
                .collect();
            tx.prefetch(&keys)?;
            let mut sum = 0;
            for (tree, key) in &keys {
                sum += tx.peek_record::<u64>(tree, key)?.unwrap_or(0);
            }
            Ok::<u64, StoreError>(sum)
        })
        .await
        .unwrap();
        assert_eq!(sum, (0..1_500).sum::<u64>());
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    /// A store like etcd's: reads answer at once (from a copy), a commit
    /// takes a round trip; commits are counted.
    struct RoundTrip {
        inner: MemoryStore,
        commits: AtomicU32,
        /// Refuses commits with more writes or expectations (as etcd).
        max_ops: Option<usize>,
    }

    impl RoundTrip {
        fn new(max_ops: Option<usize>) -> Arc<Self> {
            Arc::new(Self {
                inner: MemoryStore::new(),
                commits: AtomicU32::new(0),
                max_ops,
            })
        }
    }

    impl crate::store::Store for RoundTrip {
        fn get_versioned<'a>(
            &'a self,
            tree: &'a str,
            key: &'a [u8],
        ) -> crate::store::StoreCall<'a, Option<VersionedValue>> {
            self.inner.get_versioned(tree, key)
        }
        fn commit<'a>(
            &'a self,
            expectations: &'a [crate::store::Expectation],
            writes: &'a WriteBatch,
        ) -> crate::store::StoreCall<'a, Committed> {
            crate::store::StoreCall::waiting(async move {
                self.commits.fetch_add(1, Ordering::SeqCst);
                if let Some(max) = self.max_ops {
                    if writes.ops.len() > max || expectations.len() > max {
                        return Err(StoreError::too_large("over the limit"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                self.inner.commit(expectations, writes).await
            })
        }
        fn scan<'a>(
            &'a self,
            tree: &'a str,
            prefix: &'a [u8],
            after: Option<&'a [u8]>,
            limit: usize,
        ) -> crate::store::StoreCall<'a, Vec<Entry>> {
            self.inner.scan(tree, prefix, after, limit)
        }
        fn flush(&self) -> crate::store::StoreCall<'_, ()> {
            crate::store::StoreCall::ready(Ok(()))
        }
        fn answers_at_once(&self) -> bool {
            true
        }
        fn max_commit_ops(&self) -> Option<usize> {
            self.max_ops
        }
    }

    /// Batched, 64 concurrent increments of one counter each see their
    /// own increment, none is lost, and they take far fewer commits than
    /// increments, none of which conflicts: each member reads the writes of
    /// those before it in its batch, and the next batch forms on the last.
    /// Each also records itself under a key of its own, which a member
    /// after it finds by scanning (the scan sees the batch's writes).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batched_operations_commit_together_without_conflicts() {
        let backend = RoundTrip::new(None);
        let store = Arc::new(StoreHandle::new(backend.clone()).batching_if(true));
        let tasks: Vec<_> = (0..64u64)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    run(&store, false, |tx| {
                        let next = tx.get::<u64>("usage", b"counter")?.unwrap_or(0) + 1;
                        tx.put("usage", b"counter".to_vec(), &next);
                        let seen = tx.scan_entries("members", b"")?.len() as u64;
                        tx.put("members", format!("{n:03}").into_bytes(), &next);
                        Ok((next, seen))
                    })
                    .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            let (next, seen) = task.await.unwrap().unwrap();
            assert_eq!(seen, next - 1, "the scan showed every member before it");
            answers.push(next);
        }
        answers.sort();
        assert_eq!(answers, (1..=64).collect::<Vec<u64>>());
        let counter = store.get_record::<u64>("usage", b"counter").await.unwrap();
        assert_eq!(counter, Some(64));
        let members = store.records::<u64>("members", b"").await.unwrap();
        assert_eq!(members.len(), 64);
        let commits = backend.commits.load(Ordering::SeqCst);
        assert!(commits < 32, "{commits} commits for 64 operations");
        assert_eq!(store.metrics().conflicts.get(), 0);
    }

    /// A member refused on a batch's uncommitted writes (the name taken by
    /// a member before it) is decided again once the batch applied: one
    /// name, one winner, the rest refused; a refusal never rests on writes
    /// that were not committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_refusal_on_a_batch_writes_waits_for_the_batch() {
        let backend = RoundTrip::new(None);
        let store = Arc::new(StoreHandle::new(backend.clone()).batching_if(true));
        let tasks: Vec<_> = (0..16u64)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    run(&store, false, |tx| {
                        if tx.get::<u64>("names", b"web")?.is_some() {
                            return Err(ApiError::invalid_value("taken"));
                        }
                        tx.put("names", b"web".to_vec(), &n);
                        Ok(n)
                    })
                    .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(n) => winners.push(n),
                Err(refusal) => assert_eq!(refusal.code(), "InvalidParameterValue"),
            }
        }
        assert_eq!(winners.len(), 1);
        let stored = store.get_record::<u64>("names", b"web").await.unwrap();
        assert_eq!(stored, Some(winners[0]));
    }

    /// A batched attempt reads the store as it is now, whatever earlier
    /// attempts read: a name refused, then freed by another process, is
    /// granted on the next try.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batched_attempt_reads_what_another_process_changed() {
        let backend = RoundTrip::new(None);
        let batched = StoreHandle::new(backend.clone()).batching_if(true);
        let other = StoreHandle::new(backend.clone());
        async fn take(store: &StoreHandle, owner: u64) -> ApiResult<u64> {
            run(store, false, |tx| {
                if tx.get::<u64>("names", b"web")?.is_some() {
                    return Err(ApiError::invalid_value("taken"));
                }
                tx.put("names", b"web".to_vec(), &owner);
                Ok(owner)
            })
            .await
        }
        assert_eq!(take(&other, 1).await.unwrap(), 1);
        assert_eq!(
            take(&batched, 2).await.unwrap_err().code(),
            "InvalidParameterValue"
        );
        run(&other, false, |tx| {
            tx.delete("names", b"web".to_vec());
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(take(&batched, 2).await.unwrap(), 2);
    }

    /// A batch is committed by a task of its own: a member that joined
    /// and then went away (its client hung up, its future was dropped)
    /// leaves nothing unsent for a later request to find.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_whose_members_went_away_is_still_committed() {
        let backend = RoundTrip::new(None);
        let store = StoreHandle::new(backend.clone()).batching_if(true);
        let batcher = store.batcher().expect("batching").clone();
        {
            let mut open = batcher.open().await;
            let mut writes = BTreeMap::new();
            writes.insert(("names", b"web".to_vec()), Some(encode(&7u64)));
            let ticket = batcher.join(
                &mut open,
                vec![(("names", b"web".to_vec()), Expect::Absent)],
                writes,
            );
            drop(ticket);
        }
        let mut stored = None;
        for _ in 0..200 {
            stored = store.get_record::<u64>("names", b"web").await.unwrap();
            if stored.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(stored, Some(7));
        assert_eq!(backend.commits.load(Ordering::SeqCst), 1);
    }

    /// Batches stay within the store's limit per commit: an operation
    /// that would take a batch over it has the batch committed first and
    /// runs again at the head of the next one. Every operation succeeds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batches_split_at_the_store_limit() {
        let backend = RoundTrip::new(Some(10));
        let store = Arc::new(StoreHandle::new(backend.clone()).batching_if(true));
        let tasks: Vec<_> = (0..32u64)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    run(&store, false, |tx| {
                        let next = tx.get::<u64>("usage", b"counter")?.unwrap_or(0) + 1;
                        tx.put("usage", b"counter".to_vec(), &next);
                        for part in 0..3 {
                            tx.put("parts", format!("{n:03}/{part}").into_bytes(), &next);
                        }
                        Ok(next)
                    })
                    .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().expect("every operation commits");
        }
        let counter = store.get_record::<u64>("usage", b"counter").await.unwrap();
        assert_eq!(counter, Some(32));
        let parts = store.records::<u64>("parts", b"").await.unwrap();
        assert_eq!(parts.len(), 96);
        let commits = backend.commits.load(Ordering::SeqCst);
        // At most three operations (1 + 3 x 3 writes) fit in one commit.
        assert!((11..32).contains(&commits), "{commits} commits");
    }

    #[tokio::test(start_paused = true)]
    async fn endless_conflicts_give_up_with_a_retryable_error() {
        let store = StoreHandle::new(Arc::new(MemoryStore::new()));
        let outcome: ApiResult<()> = run(&store, false, |tx| {
            tx.get::<u64>("names", b"web")?;
            // Someone else always writes between the read and the commit.
            let mut batch = WriteBatch::new();
            batch.put_record("names", b"web".to_vec(), &rand::random::<u64>());
            store
                .backend()
                .commit(&[], &batch)
                .now()
                .expect("memory answers at once")?;
            tx.put("names", b"web".to_vec(), &0u64);
            Ok(())
        })
        .await;
        assert_eq!(outcome.unwrap_err().code(), "ServiceUnavailable");
    }
}
