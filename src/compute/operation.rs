//! One way to run an operation on the store: read, check, commit with
//! expectations, retry on conflict.
//!
//! An operation reads what it depends on through a [`Tx`], which remembers
//! the version of every key it read (or that the key was absent) and
//! collects the writes; [`run`] then commits the writes on the condition
//! that nothing read has changed. On a conflict the whole operation runs
//! again on fresh reads, a bounded number of times with jittered back-off,
//! so two gateways (or two requests) racing for one host, one name or one
//! ClientToken serialise on the store itself, with no lock in the process.
//! A DryRun stops just before the commit, after every check has run.
//! Decisions that rest on a listing (a quota, a name being free, a group
//! not being in use) read the collection's usage record in the same `Tx`,
//! and every change to the collection writes it, so the listing cannot
//! change unseen (see `usage`). This is the contract every backend follows
//! (memory and sled today, etcd next): ../shared/design/scale-out.md, §3.

use crate::error::{ApiError, ApiResult};
use crate::store::{
    decode, encode, Commit, Committed, Entry, Expect, Record, StoreError, StoreHandle, StoreResult,
    VersionedValue, WriteBatch,
};
use std::collections::{BTreeMap, HashMap};
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
            reads: HashMap::new(),
            writes: BTreeMap::new(),
            newest_read: 0,
        }
    }

    /// The value under `key` with its version, from the answers awaited
    /// earlier or from the backend if it answers at once.
    fn versioned(&self, tree: &'static str, key: &[u8]) -> StoreResult<Option<VersionedValue>> {
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
        self.writes.insert((tree, key.into()), Some(encode(value)));
    }

    /// Writes an encoded record under `key`.
    pub fn put_raw(&mut self, tree: &'static str, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.writes.insert((tree, key.into()), Some(value));
    }

    /// Deletes `key` (replacing an earlier write of this attempt).
    pub fn delete(&mut self, tree: &'static str, key: impl Into<Vec<u8>>) {
        self.writes.insert((tree, key.into()), None);
    }

    /// Rewrites `key` unchanged, so that any concurrent operation that read
    /// it conflicts (a new reference to a group, a snapshot an image now
    /// uses). Returns false when the key holds nothing.
    pub fn touch(&mut self, tree: &'static str, key: &[u8]) -> StoreResult<bool> {
        match self.get_raw(tree, key)? {
            Some(value) => {
                self.writes.insert((tree, key.to_vec()), Some(value));
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
            if durable && store.may_be_volatile(tx.newest_read) {
                store.durable(store.last_applied()).await?;
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
