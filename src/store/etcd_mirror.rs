//! A watch-fed copy of a deployment's keys in etcd, so that a gateway reads
//! from its own memory and goes to etcd only to commit.
//!
//! Why: every read a request makes was a linearizable round trip (0.7 ms
//! p50 here), several per request, and etcd's CPU is shared with the
//! gateways on one machine; reads were the ceiling of a cluster. This is
//! Kubernetes' "consistent reads from cache" (KEP-2340), kept within the
//! store contract (../shared/design/scale-out.md, §3):
//!
//! - The copy is loaded at one revision, then kept by a watch on the
//!   deployment's prefix from the next revision on. Every value keeps its
//!   `mod_revision`, so a commit still compares the version a decision was
//!   based on: a stale read can only make a commit conflict, never apply
//!   over a newer value.
//! - Freshness (read-your-writes across replicas): before a request reads,
//!   [`Mirror::catch_up`] takes the cluster's current revision with one
//!   linearizable read, then waits until the copy reflects it. Requests
//!   arriving while such a read is in flight share the next one, so etcd
//!   sees at most one of these reads per round trip however many requests
//!   a gateway answers.
//! - A revision may have moved because of writes outside the prefix (another
//!   deployment on the same cluster): the watch never sees those. When the
//!   copy does not reach the target at once, the gateway writes the
//!   beacon key inside the prefix and waits for that event instead: the
//!   watch delivers a prefix's events in revision order, so once the beacon
//!   is seen everything before it is too. (etcd's progress requests would
//!   spare the write, but before 3.4.25 / 3.5.8 they can claim a revision
//!   whose events are still on their way.)
//! - A watch that breaks starts again from the next revision; one whose
//!   revision was compacted away reloads the whole copy.
//! - Keys the store writes for its own bookkeeping (commit markers, the
//!   election, beacons) are not kept.

use super::{Entry, StoreError, StoreResult, VersionedValue};
use etcd_client::{Client, EventType, GetOptions, KvClient, WatchOptions};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{oneshot, watch, Notify};

/// Keys read per page while loading the copy.
const LOAD_PAGE: i64 = 1024;

/// How long the watch may take to deliver a revision before the beacon is
/// written (events arrive within a millisecond or two when the prefix is
/// the only writer).
const WATCH_GRACE: Duration = Duration::from_millis(20);

/// How long a request waits for the copy to catch up before it is answered
/// as unavailable (the watch is broken and being restarted).
const CATCH_UP_LIMIT: Duration = Duration::from_secs(10);

/// Pause before a broken watch is started again.
const WATCH_RESTART_PAUSE: Duration = Duration::from_millis(200);

/// Trees inside the prefix that are the store's own bookkeeping.
pub(super) const BOOKKEEPING: [&[u8]; 3] = [b"txn/", b"election/", b"beacon/"];

/// The copy, and the tasks that keep it.
pub(super) struct Mirror {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct Shared {
    /// `tree/key` (the prefix stripped) → value and `mod_revision`.
    data: RwLock<BTreeMap<Vec<u8>, VersionedValue>>,
    /// The revision the copy reflects: every event of the prefix up to it
    /// has been applied.
    reflected: watch::Sender<u64>,
    prefix: Vec<u8>,
    kv: KvClient,
    /// Requests waiting for the next linearizable revision read.
    waiting: std::sync::Mutex<Vec<oneshot::Sender<Result<u64, String>>>>,
    demand: Notify,
    /// The beacon key (one for every gateway: blind puts do not conflict).
    beacon: Vec<u8>,
    /// The revision of the newest beacon this gateway wrote; held while one
    /// is written, so that requests waiting at once share one write.
    last_beacon: tokio::sync::Mutex<u64>,
    /// Asks the watch to start again (the copy did not catch up in time).
    restart: Notify,
}

impl Mirror {
    /// Loads the copy and starts the tasks that keep it.
    pub(super) async fn start(client: &Client, kv: KvClient, prefix: &[u8]) -> StoreResult<Self> {
        let mut beacon = prefix.to_vec();
        beacon.extend_from_slice(BOOKKEEPING[2]);
        let (reflected, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            data: RwLock::new(BTreeMap::new()),
            reflected,
            prefix: prefix.to_vec(),
            kv,
            waiting: std::sync::Mutex::new(Vec::new()),
            demand: Notify::new(),
            beacon,
            last_beacon: tokio::sync::Mutex::new(0),
            restart: Notify::new(),
        });
        shared.load().await?;
        let watching = tokio::spawn(shared.clone().keep(client.clone()));
        let reading = tokio::spawn(shared.clone().read_revisions());
        Ok(Self {
            shared,
            tasks: vec![watching, reading],
        })
    }

    /// The value under `tree/key`, as the copy has it.
    pub(super) fn get(&self, tree: &str, key: &[u8]) -> Option<VersionedValue> {
        let data = crate::sync::read(&self.shared.data);
        data.get(&local_key(tree, key)).cloned()
    }

    /// The version of the value under `tree/key`, as the copy has it.
    pub(super) fn version(&self, tree: &str, key: &[u8]) -> Option<u64> {
        let data = crate::sync::read(&self.shared.data);
        data.get(&local_key(tree, key)).map(|v| v.version)
    }

    /// Up to `limit` entries of `tree` under `prefix`, after `after`.
    pub(super) fn scan(
        &self,
        tree: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Vec<Entry> {
        use std::ops::Bound;
        let start = local_key(tree, prefix);
        let lower = match after {
            Some(after) => {
                let after = local_key(tree, after);
                if after >= start {
                    Bound::Excluded(after)
                } else {
                    Bound::Included(start.clone())
                }
            }
            None => Bound::Included(start.clone()),
        };
        let strip = tree.len() + 1;
        let data = crate::sync::read(&self.shared.data);
        data.range((lower, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(&start))
            .take(limit)
            .map(|(key, value)| (key[strip..].to_vec(), value.value.clone()))
            .collect()
    }

    /// The whole prefix at the cluster's current revision, read from etcd
    /// page by page at that revision (so the copy's lock is never held
    /// for it, and nothing waits). The first page is a linearizable read:
    /// every commit answered anywhere before the call is in it.
    pub(super) async fn snapshot(&self) -> StoreResult<super::Snapshot> {
        let mut last = None;
        for pause in super::etcd_store::RETRY_PAUSES_MS {
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            match self.shared.read_prefix().await {
                Ok((revision, data)) => {
                    let entries = data
                        .into_iter()
                        .filter_map(|(local, value)| {
                            let split = local.iter().position(|&b| b == b'/')?;
                            Some(super::SnapshotEntry {
                                tree: String::from_utf8_lossy(&local[..split]).into_owned(),
                                key: local[split + 1..].to_vec(),
                                value: value.value,
                                version: value.version,
                            })
                        })
                        .collect();
                    return Ok(super::Snapshot { revision, entries });
                }
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::unavailable("etcd: reading a snapshot")))
    }

    /// The revision the copy reflects.
    pub(super) fn reflected(&self) -> u64 {
        *self.shared.reflected.borrow()
    }

    /// Waits until the copy reflects every commit made anywhere before
    /// this call (see the module documentation).
    pub(super) async fn catch_up(&self) -> StoreResult<()> {
        let (answer, answered) = oneshot::channel();
        crate::sync::lock(&self.shared.waiting).push(answer);
        self.shared.demand.notify_one();
        let target = answered
            .await
            .map_err(|_| StoreError::unavailable("etcd: the revision reader stopped"))?
            .map_err(StoreError)?;
        self.reach(target).await
    }

    /// Waits until the copy reflects `target`, a revision of the cluster.
    pub(super) async fn reach(&self, target: u64) -> StoreResult<()> {
        let mut reflected = self.shared.reflected.subscribe();
        if *reflected.borrow_and_update() >= target {
            return Ok(());
        }
        let grace = tokio::time::timeout(WATCH_GRACE, reflected.wait_for(|r| *r >= target));
        if matches!(grace.await, Ok(Ok(_))) {
            return Ok(());
        }
        // The revision may have moved outside the prefix: a beacon inside
        // it is a revision the watch will deliver.
        let target = self.shared.beacon_after(target).await?;
        let caught_up = tokio::time::timeout(CATCH_UP_LIMIT, reflected.wait_for(|r| *r >= target));
        if matches!(caught_up.await, Ok(Ok(_))) {
            return Ok(());
        }
        // The watch may be stuck (a member that stopped sending): the next
        // request finds it started again.
        self.shared.restart.notify_one();
        Err(StoreError::unavailable(format!(
            "etcd: this gateway's copy has not reached revision {target}"
        )))
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shared {
    /// [`Shared::load_once`], sent again while members are unavailable (a
    /// member that is down is tried after the others).
    async fn load(&self) -> StoreResult<()> {
        let mut last = None;
        for pause in super::etcd_store::RETRY_PAUSES_MS {
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            match self.load_once().await {
                Ok(()) => return Ok(()),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::unavailable("etcd: loading the copy")))
    }

    /// Reads the whole prefix at one revision and makes it the copy.
    async fn load_once(&self) -> StoreResult<()> {
        let (revision, data) = self.read_prefix().await?;
        *crate::sync::write(&self.data) = data;
        self.reflected.send_modify(|r| *r = (*r).max(revision));
        Ok(())
    }

    /// The whole prefix (bookkeeping left out), read in pages at the
    /// revision of the first page, and that revision.
    async fn read_prefix(&self) -> StoreResult<(u64, BTreeMap<Vec<u8>, VersionedValue>)> {
        let end = super::etcd_store::prefix_end(&self.prefix);
        let mut start = self.prefix.clone();
        let mut revision = 0;
        let mut data = BTreeMap::new();
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LOAD_PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let mut answer = self
                .kv
                .clone()
                .get(start.clone(), Some(options))
                .await
                .map_err(|e| StoreError::unavailable(format!("etcd: reading the prefix: {e}")))?;
            if revision == 0 {
                revision = answer.header().map_or(0, |h| h.revision());
            }
            let more = answer.more();
            let kvs = answer.take_kvs();
            let Some(last) = kvs.last() else { break };
            start = last.key().to_vec();
            start.push(0);
            for kv in kvs {
                let version = kv.mod_revision() as u64;
                let (key, value) = kv.into_key_value();
                if let Some(local) = self.local(&key) {
                    data.insert(local.to_vec(), VersionedValue { value, version });
                }
            }
            if !more {
                break;
            }
        }
        Ok((revision as u64, data))
    }

    /// The key without the deployment's prefix, unless it is outside the
    /// prefix or bookkeeping.
    fn local<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        let local = key.strip_prefix(self.prefix.as_slice())?;
        if BOOKKEEPING.iter().any(|tree| local.starts_with(tree)) {
            return None;
        }
        Some(local)
    }

    /// Keeps the copy: watches from the next revision, applies each answer
    /// whole, and starts again (reloading after a compaction) when the
    /// watch breaks.
    async fn keep(self: Arc<Self>, client: Client) {
        loop {
            let from = *self.reflected.borrow() + 1;
            let options = WatchOptions::new()
                .with_prefix()
                .with_start_revision(from as i64);
            let watching = client
                .watch_client()
                .max_decoding_message_size(super::etcd_store::MAX_DECODING_BYTES)
                .watch(self.prefix.clone(), Some(options))
                .await;
            let mut stream = match watching {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%error, "etcd: cannot watch: trying again");
                    tokio::time::sleep(WATCH_RESTART_PAUSE).await;
                    continue;
                }
            };
            loop {
                let message = tokio::select! {
                    message = stream.message() => message,
                    _ = self.restart.notified() => {
                        tracing::warn!("etcd: the copy fell behind: starting its watch again");
                        break;
                    }
                };
                match message {
                    Ok(Some(answer)) => {
                        if answer.canceled() {
                            if answer.compact_revision() > 0 {
                                tracing::info!(
                                    compacted = answer.compact_revision(),
                                    "etcd: the watch's revision was compacted: reloading the copy"
                                );
                                while let Err(error) = self.load().await {
                                    tracing::warn!(%error, "etcd: reloading the copy failed");
                                    tokio::time::sleep(WATCH_RESTART_PAUSE).await;
                                }
                            }
                            break;
                        }
                        self.apply(&answer);
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::debug!(%error, "etcd: the watch broke: starting it again");
                        break;
                    }
                }
            }
            tokio::time::sleep(WATCH_RESTART_PAUSE).await;
        }
    }

    /// Applies one watch answer (all the events of its revisions, which
    /// etcd never splits across answers without fragmentation).
    fn apply(&self, answer: &etcd_client::WatchResponse) {
        let mut newest = 0;
        {
            let mut data = crate::sync::write(&self.data);
            for event in answer.events() {
                let Some(kv) = event.kv() else { continue };
                let version = kv.mod_revision() as u64;
                newest = newest.max(version);
                let Some(local) = self.local(kv.key()) else {
                    continue;
                };
                match event.event_type() {
                    EventType::Put => {
                        data.insert(
                            local.to_vec(),
                            VersionedValue {
                                value: kv.value().to_vec(),
                                version,
                            },
                        );
                    }
                    EventType::Delete => {
                        data.remove(local);
                    }
                }
            }
        }
        if newest > 0 {
            self.reflected.send_modify(|r| *r = (*r).max(newest));
        }
    }

    /// Answers the requests waiting for a revision, one linearizable read
    /// for all who asked before it was sent.
    async fn read_revisions(self: Arc<Self>) {
        loop {
            self.demand.notified().await;
            let waiting = std::mem::take(&mut *crate::sync::lock(&self.waiting));
            if waiting.is_empty() {
                continue;
            }
            let revision = self.current_revision().await.map_err(|e| e.0);
            for answer in waiting {
                let _ = answer.send(revision.clone());
            }
        }
    }

    /// The cluster's current revision, read linearizably (a count of the
    /// beacon key: the answer's header carries the revision).
    async fn current_revision(&self) -> StoreResult<u64> {
        let mut last = String::new();
        for pause in super::etcd_store::RETRY_PAUSES_MS {
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            let options = GetOptions::new().with_count_only();
            match self
                .kv
                .clone()
                .get(self.beacon.clone(), Some(options))
                .await
            {
                Ok(answer) => return Ok(answer.header().map_or(0, |h| h.revision()) as u64),
                Err(error) => last = error.to_string(),
            }
        }
        Err(StoreError::unavailable(format!(
            "etcd: reading the revision: {last}"
        )))
    }

    /// A beacon revision at or after `target`: the newest this gateway
    /// wrote if it is one (requests that missed the grace together share
    /// one write), else a new one.
    async fn beacon_after(&self, target: u64) -> StoreResult<u64> {
        let mut last = self.last_beacon.lock().await;
        if *last < target {
            *last = self.put_beacon().await?;
        }
        Ok(*last)
    }

    /// Writes the beacon; answers its revision.
    async fn put_beacon(&self) -> StoreResult<u64> {
        let mut last = String::new();
        for pause in super::etcd_store::RETRY_PAUSES_MS {
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            match self
                .kv
                .clone()
                .put(self.beacon.clone(), Vec::new(), None)
                .await
            {
                Ok(answer) => return Ok(answer.header().map_or(0, |h| h.revision()) as u64),
                Err(error) => last = error.to_string(),
            }
        }
        Err(StoreError::unavailable(format!(
            "etcd: writing the beacon: {last}"
        )))
    }
}

/// `tree/key`.
fn local_key(tree: &str, key: &[u8]) -> Vec<u8> {
    let mut local = Vec::with_capacity(tree.len() + 1 + key.len());
    local.extend_from_slice(tree.as_bytes());
    local.push(b'/');
    local.extend_from_slice(key);
    local
}
