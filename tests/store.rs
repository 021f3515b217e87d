//! One storage suite, run on both backends (sled and memory), plus group
//! commit and sled's durability across reopen.

mod common;

use common::remote::RemoteShaped;
use ec2_gateway::store::{
    apply_unconditionally, Committed, Expect, Expectation, MemoryStore, SledStore, Store,
    StoreCall, StoreHandle, VersionedValue, WriteBatch,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

async fn suite(store: Arc<dyn Store>) {
    // Put, get, overwrite, delete.
    let mut batch = WriteBatch::new();
    batch.put("hosts", b"b".to_vec(), b"2".to_vec());
    batch.put("hosts", b"a".to_vec(), b"1".to_vec());
    batch.put("hosts", b"c".to_vec(), b"3".to_vec());
    batch.put("zones", b"a".to_vec(), b"zone".to_vec());
    apply_unconditionally(store.as_ref(), &batch).await.unwrap();
    assert_eq!(
        get(store.as_ref(), "hosts", b"a").await,
        Some(b"1".to_vec())
    );
    assert_eq!(
        get(store.as_ref(), "zones", b"a").await,
        Some(b"zone".to_vec()),
        "trees are separate"
    );
    assert_eq!(get(store.as_ref(), "hosts", b"zz").await, None);
    assert_eq!(get(store.as_ref(), "nothing", b"a").await, None);

    // Ordered scans with prefix, start-after and limit.
    let keys = |entries: Vec<(Vec<u8>, Vec<u8>)>| {
        entries
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(store.scan("hosts", b"", None, usize::MAX).await.unwrap()),
        ["a", "b", "c"]
    );
    assert_eq!(
        keys(store.scan("hosts", b"", Some(b"a"), 1).await.unwrap()),
        ["b"]
    );
    assert_eq!(
        keys(store.scan("hosts", b"", Some(b"c"), 10).await.unwrap()),
        Vec::<String>::new()
    );
    let mut batch = WriteBatch::new();
    for key in ["acct1/i-1", "acct1/i-2", "acct2/i-1", "acct10/i-1"] {
        batch.put("instances", key.as_bytes().to_vec(), b"x".to_vec());
    }
    apply_unconditionally(store.as_ref(), &batch).await.unwrap();
    assert_eq!(
        keys(
            store
                .scan("instances", b"acct1/", None, usize::MAX)
                .await
                .unwrap()
        ),
        ["acct1/i-1", "acct1/i-2"]
    );
    assert_eq!(
        keys(
            store
                .scan("instances", b"acct1/", Some(b"acct1/i-1"), usize::MAX)
                .await
                .unwrap()
        ),
        ["acct1/i-2"]
    );
    assert_eq!(
        keys(store.scan("hosts", b"b", None, usize::MAX).await.unwrap()),
        ["b"]
    );

    // A batch mixing trees, puts and deletes applies as a whole.
    let mut batch = WriteBatch::new();
    batch.delete("hosts", b"a".to_vec());
    batch.put("zones", b"b".to_vec(), b"zone-b".to_vec());
    batch.put("hosts", b"c".to_vec(), b"33".to_vec());
    apply_unconditionally(store.as_ref(), &batch).await.unwrap();
    assert_eq!(get(store.as_ref(), "hosts", b"a").await, None);
    assert_eq!(
        get(store.as_ref(), "hosts", b"c").await,
        Some(b"33".to_vec())
    );
    assert_eq!(
        keys(store.scan("zones", b"", None, usize::MAX).await.unwrap()),
        ["a", "b"]
    );
    store.flush().await.unwrap();
}

/// The versioned contract: versions, expectations, conflicts, atomicity,
/// one operation per key.
async fn versioned_suite(store: Arc<dyn Store>) {
    let expect = |tree: &'static str, key: &str, expect: Expect| Expectation {
        tree,
        key: key.as_bytes().to_vec(),
        expect,
    };
    let put = |pairs: &[(&'static str, &str, &str)]| {
        let mut batch = WriteBatch::new();
        for (tree, key, value) in pairs {
            batch.put(tree, key.as_bytes().to_vec(), value.as_bytes().to_vec());
        }
        batch
    };
    // Expect absent: the first of two creators wins.
    let created = store
        .commit(
            &[expect("names", "web", Expect::Absent)],
            &put(&[("names", "web", "sg-1")]),
        )
        .await
        .unwrap();
    let Committed::Applied { version: first } = created else {
        panic!("{created:?}")
    };
    let again = store
        .commit(
            &[expect("names", "web", Expect::Absent)],
            &put(&[("names", "web", "sg-2")]),
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        Committed::Conflict {
            keys: vec![("names".to_string(), b"web".to_vec())]
        }
    );
    let read = store.get_versioned("names", b"web").await.unwrap().unwrap();
    assert_eq!((read.value.as_slice(), read.version), (&b"sg-1"[..], first));
    // Expect a version: a stale reader loses, and nothing of its commit applies.
    let updated = store
        .commit(
            &[expect("names", "web", Expect::At(first))],
            &put(&[("names", "web", "sg-1b"), ("usage", "acct", "1")]),
        )
        .await
        .unwrap();
    let Committed::Applied { version: second } = updated else {
        panic!("{updated:?}")
    };
    assert!(second > first, "versions grow");
    let stale = store
        .commit(
            &[
                expect("names", "web", Expect::At(first)),
                expect("usage", "other", Expect::Absent),
            ],
            &put(&[("usage", "acct", "2"), ("usage", "other", "9")]),
        )
        .await
        .unwrap();
    assert_eq!(
        stale,
        Committed::Conflict {
            keys: vec![("names".to_string(), b"web".to_vec())]
        }
    );
    assert_eq!(
        get(store.as_ref(), "usage", b"acct").await,
        Some(b"1".to_vec()),
        "all or nothing"
    );
    assert_eq!(get(store.as_ref(), "usage", b"other").await, None);
    // Any: only written.
    assert!(matches!(
        store
            .commit(
                &[expect("usage", "acct", Expect::Any)],
                &put(&[("usage", "acct", "3")])
            )
            .await
            .unwrap(),
        Committed::Applied { .. }
    ));
    // A key written twice in one commit is refused (etcd refuses it too).
    let mut twice = put(&[("usage", "acct", "4")]);
    twice.delete("usage", b"acct".to_vec());
    assert!(store.commit(&[], &twice).await.is_err());
    assert_eq!(
        get(store.as_ref(), "usage", b"acct").await,
        Some(b"3".to_vec())
    );
    // ...but the blind apply keeps its old meaning: the last write wins.
    apply_unconditionally(store.as_ref(), &twice).await.unwrap();
    assert_eq!(get(store.as_ref(), "usage", b"acct").await, None);
    // Deleted keys are absent again; blind writes get versions too.
    assert!(matches!(
        store
            .commit(
                &[expect("usage", "acct", Expect::Absent)],
                &put(&[("usage", "acct", "5")])
            )
            .await
            .unwrap(),
        Committed::Applied { .. }
    ));
    apply_unconditionally(store.as_ref(), &put(&[("usage", "acct", "6")]))
        .await
        .unwrap();
    let latest = store
        .get_versioned("usage", b"acct")
        .await
        .unwrap()
        .unwrap();
    assert!(latest.version > second);
    // Concurrent compare-and-set on one key: exactly one winner per round.
    let winners = Arc::new(AtomicUsize::new(0));
    let racers: Vec<_> = (0..8)
        .map(|n| {
            let (store, winners) = (store.clone(), winners.clone());
            let batch = put(&[("usage", "acct", format!("{n}").as_str())]);
            tokio::spawn(async move {
                let expectation = Expectation {
                    tree: "usage",
                    key: b"acct".to_vec(),
                    expect: Expect::At(latest.version),
                };
                if let Committed::Applied { .. } =
                    store.commit(&[expectation], &batch).await.unwrap()
                {
                    winners.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for racer in racers {
        racer.await.unwrap();
    }
    assert_eq!(winners.load(Ordering::SeqCst), 1);
}

/// The value under `key`, without its version.
async fn get(store: &dyn Store, tree: &str, key: &[u8]) -> Option<Vec<u8>> {
    store
        .get_versioned(tree, key)
        .await
        .unwrap()
        .map(|v| v.value)
}

/// A store every call of which waits, as a network store's would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_shaped_backend() {
    let store = Arc::new(RemoteShaped::new());
    suite(store.clone()).await;
    versioned_suite(store.clone()).await;
    assert!(store.waited_calls() > 20, "every call waited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend_versions() {
    versioned_suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_backend_versions() {
    let dir = tempfile::tempdir().unwrap();
    versioned_suite(Arc::new(
        SledStore::open(&dir.path().join("db"), 8 << 20).unwrap(),
    ))
    .await;
}

/// Versions survive a reopen, and values written before versions existed
/// read as version 0 (and a commit can expect exactly that).
#[tokio::test]
async fn sled_versions_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let version = {
        let store = SledStore::open(&path, 8 << 20).unwrap();
        let mut batch = WriteBatch::new();
        batch.put("hosts", b"a".to_vec(), b"1".to_vec());
        let Committed::Applied { version } = store.commit(&[], &batch).await.unwrap() else {
            panic!()
        };
        store.flush().await.unwrap();
        version
    };
    let store = SledStore::open(&path, 8 << 20).unwrap();
    assert_eq!(
        store
            .get_versioned("hosts", b"a")
            .await
            .unwrap()
            .unwrap()
            .version,
        version
    );
    let mut batch = WriteBatch::new();
    batch.put("hosts", b"b".to_vec(), b"2".to_vec());
    let Committed::Applied { version: next } = store.commit(&[], &batch).await.unwrap() else {
        panic!()
    };
    assert!(next > version, "the revision keeps growing across restarts");
    // A value from before versions (the upgrade fixture's kind) is version 0.
    drop(store);
    let raw = sled::open(&path).unwrap();
    let data = raw.open_tree("data").unwrap();
    data.insert(b"hosts\0legacy", b"old".to_vec()).unwrap();
    raw.flush().unwrap();
    drop((data, raw));
    let store = SledStore::open(&path, 8 << 20).unwrap();
    let legacy = store
        .get_versioned("hosts", b"legacy")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((legacy.value.as_slice(), legacy.version), (&b"old"[..], 0));
    let mut batch = WriteBatch::new();
    batch.put("hosts", b"legacy".to_vec(), b"new".to_vec());
    let expectation = Expectation {
        tree: "hosts",
        key: b"legacy".to_vec(),
        expect: Expect::At(0),
    };
    assert!(matches!(
        store.commit(&[expectation], &batch).await.unwrap(),
        Committed::Applied { .. }
    ));
}

#[tokio::test]
async fn memory_backend() {
    suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn sled_backend() {
    let dir = tempfile::tempdir().unwrap();
    suite(Arc::new(
        SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn sled_keeps_committed_writes_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let handle = StoreHandle::new(Arc::new(
            SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap(),
        ));
        let mut batch = WriteBatch::new();
        batch.put_record(
            "accounts",
            b"111122223333".to_vec(),
            &("operator".to_string(), "admin".to_string()),
        );
        handle.commit(&batch).await.unwrap();
    }
    let handle = StoreHandle::new(Arc::new(
        SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap(),
    ));
    let record: Option<(String, String)> = handle
        .get_record("accounts", b"111122223333")
        .await
        .unwrap();
    assert_eq!(record, Some(("operator".to_string(), "admin".to_string())));
}

/// Counts flushes and makes each one slow, like a disk.
struct SlowFlushes {
    inner: MemoryStore,
    flushes: AtomicUsize,
}

impl Store for SlowFlushes {
    fn scan<'a>(
        &'a self,
        tree: &'a str,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
        limit: usize,
    ) -> StoreCall<'a, Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(tree, prefix, after, limit)
    }
    fn get_versioned<'a>(
        &'a self,
        tree: &'a str,
        key: &'a [u8],
    ) -> StoreCall<'a, Option<VersionedValue>> {
        self.inner.get_versioned(tree, key)
    }
    fn commit<'a>(
        &'a self,
        expectations: &'a [Expectation],
        batch: &'a WriteBatch,
    ) -> StoreCall<'a, Committed> {
        self.inner.commit(expectations, batch)
    }
    fn flush(&self) -> StoreCall<'_, ()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        StoreCall::waiting(async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_share_flushes() {
    let store = Arc::new(SlowFlushes {
        inner: MemoryStore::new(),
        flushes: AtomicUsize::new(0),
    });
    let handle = Arc::new(StoreHandle::new(store.clone()));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let handle = handle.clone();
            tokio::spawn(async move {
                let mut batch = WriteBatch::new();
                batch.put("t", format!("{i:03}").into_bytes(), vec![1]);
                handle.commit(&batch).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let flushes = store.flushes.load(Ordering::SeqCst);
    assert!(flushes >= 1, "commits must flush");
    assert!(flushes < 16, "64 concurrent commits used {flushes} flushes");
    assert_eq!(
        store.scan("t", b"", None, usize::MAX).await.unwrap().len(),
        64
    );
    // A commit after everything is durable still flushes its own write.
    let mut batch = WriteBatch::new();
    batch.put("t", b"late".to_vec(), vec![2]);
    handle.commit(&batch).await.unwrap();
    assert_eq!(store.flushes.load(Ordering::SeqCst), flushes + 1);
}

/// The same suites on real etcd members (cargo feature `etcd`), plus what
/// only a cluster has: limits, pages, prefixes, a leader's death.
/// A snapshot taken while commits go on (two at a time) shows one revision: two keys every
/// commit writes together (with the same value) agree, keys moved by a
/// commit (one deleted, another created) are neither both there nor both
/// missing, and nothing in it is newer than its revision.
async fn snapshots_under_commits(store: Arc<dyn Store>) {
    const KEYS: usize = 2000;
    for chunk in 0..KEYS / 100 {
        let mut seed = WriteBatch::new();
        for n in chunk * 100..(chunk + 1) * 100 {
            seed.put("items", format!("{n:06}").into_bytes(), vec![b'x'; 200]);
        }
        apply_unconditionally(store.as_ref(), &seed).await.unwrap();
    }
    let mut seed = WriteBatch::new();
    seed.put("pair", b"a".to_vec(), b"0".to_vec());
    seed.put("pair", b"b".to_vec(), b"0".to_vec());
    apply_unconditionally(store.as_ref(), &seed).await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut next = KEYS;
            let mut commits = 0;
            // Bounded: at most 20,000 commits.
            while !done.load(Ordering::SeqCst) && commits < 20_000 {
                let mut batch = WriteBatch::new();
                let value = commits.to_string().into_bytes();
                batch.put("pair", b"a".to_vec(), value.clone());
                batch.put("pair", b"b".to_vec(), value);
                // Move one item: delete the oldest, create a new one.
                batch.delete("items", format!("{:06}", next - KEYS).into_bytes());
                batch.put("items", format!("{next:06}").into_bytes(), vec![b'y'; 200]);
                next += 1;
                apply_unconditionally(store.as_ref(), &batch).await.unwrap();
                commits += 1;
                tokio::task::yield_now().await;
            }
            commits
        })
    };
    // Two checkers at once (two backups asked for together).
    let checkers: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    let snapshot = store.snapshot().await.unwrap();
                    let value = |key: &[u8]| {
                        snapshot
                            .entries
                            .iter()
                            .find(|e| e.tree == "pair" && e.key == key)
                            .map(|e| e.value.clone())
                    };
                    assert_eq!(value(b"a"), value(b"b"), "a torn commit in the snapshot");
                    let items = snapshot
                        .entries
                        .iter()
                        .filter(|e| e.tree == "items")
                        .count();
                    assert_eq!(items, KEYS, "a moved item is in it twice or not at all");
                    assert!(snapshot
                        .entries
                        .iter()
                        .all(|e| e.version <= snapshot.revision));
                }
            })
        })
        .collect();
    for checker in checkers {
        checker.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let commits = writer.await.unwrap();
    assert!(
        commits > 10,
        "the commits ran beside the snapshots: {commits}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_snapshots_under_commits() {
    let dir = tempfile::tempdir().unwrap();
    snapshots_under_commits(Arc::new(
        SledStore::open(&dir.path().join("db"), 8 << 20).unwrap(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_snapshots_under_commits() {
    snapshots_under_commits(Arc::new(MemoryStore::new())).await;
}

#[cfg(feature = "etcd")]
mod on_etcd {
    use super::*;
    use common::etcd::{etcd_binary, EtcdCluster, DEFAULT_MAX_TXN_OPS};
    use ec2_gateway::config::EtcdConfig;
    use ec2_gateway::store::EtcdStore;

    async fn connect(cluster: &EtcdCluster, prefix: &str) -> Arc<EtcdStore> {
        let config = EtcdConfig {
            endpoints: cluster.endpoints(),
            prefix: prefix.into(),
            request_timeout_ms: 2_000,
            ..EtcdConfig::default()
        };
        Arc::new(EtcdStore::connect(&config).await.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd_backend() {
        let Some(binary) = etcd_binary("etcd_backend") else {
            return;
        };
        let cluster = EtcdCluster::start(&binary, 1);
        suite(connect(&cluster, "suite/").await).await;
        versioned_suite(connect(&cluster, "versioned/").await).await;
        snapshots_under_commits(connect(&cluster, "snapshots/").await).await;
    }

    /// etcd's own limits are kept by the backend: no commit over
    /// `--max-txn-ops` is sent, listings of any size come back whole and in
    /// order through pages, and deployments under other prefixes are apart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd_limits_pages_and_prefixes() {
        let Some(binary) = etcd_binary("etcd_limits_pages_and_prefixes") else {
            return;
        };
        let cluster = EtcdCluster::start(&binary, 1);
        let store = connect(&cluster, "one/").await;
        let other = connect(&cluster, "two/").await;
        // One operation of each transaction is the commit's marker.
        let mut too_many = WriteBatch::new();
        for n in 0..DEFAULT_MAX_TXN_OPS {
            too_many.put("records", format!("{n:05}").into_bytes(), b"x".to_vec());
        }
        let refused = store.commit(&[], &too_many).await.unwrap_err();
        assert!(refused.is_too_large(), "{refused}");
        assert_eq!(store.max_commit_ops(), Some(DEFAULT_MAX_TXN_OPS - 1));
        too_many.ops.pop();
        apply_unconditionally(store.as_ref(), &too_many)
            .await
            .unwrap();
        // 1,300 records in commits that fit, then listed in pages.
        for chunk in 0..13 {
            let mut batch = WriteBatch::new();
            for n in chunk * 100..(chunk + 1) * 100 {
                batch.put(
                    "records",
                    format!("{n:05}").into_bytes(),
                    n.to_string().into_bytes(),
                );
            }
            apply_unconditionally(store.as_ref(), &batch).await.unwrap();
        }
        let all = store.scan("records", b"", None, usize::MAX).await.unwrap();
        assert_eq!(all.len(), 1_300);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "in key order");
        assert_eq!(all[1_299], (b"01299".to_vec(), b"1299".to_vec()));
        let after = store
            .scan("records", b"01", Some(b"01100"), 150)
            .await
            .unwrap();
        assert_eq!(after.len(), 150);
        assert_eq!(after[0].0, b"01101".to_vec());
        // A tree whose name extends another's is not in its scans.
        let mut near = WriteBatch::new();
        near.put("records_old", b"1".to_vec(), b"x".to_vec());
        apply_unconditionally(store.as_ref(), &near).await.unwrap();
        assert_eq!(
            store
                .scan("records", b"", None, usize::MAX)
                .await
                .unwrap()
                .len(),
            1_300
        );
        // A replica that connects now loads all of it (in pages).
        let late = connect(&cluster, "one/").await;
        assert_eq!(
            late.scan("records", b"", None, usize::MAX)
                .await
                .unwrap()
                .len(),
            1_300
        );
        // Another prefix sees none of it.
        assert!(other
            .scan("records", b"", None, usize::MAX)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(get(other.as_ref(), "records", b"00001").await, None);
    }

    /// Two replicas on one prefix: once a replica has caught up, it reads
    /// every write the other answered before (puts and deletes), a commit
    /// that lost to the other's answers only after the winner is readable,
    /// and catching up still ends when the cluster's revision moved
    /// because of another deployment's writes (which the watch never sees).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd_replicas_read_each_others_writes() {
        let Some(binary) = etcd_binary("etcd_replicas_read_each_others_writes") else {
            return;
        };
        let cluster = EtcdCluster::start(&binary, 1);
        let first = connect(&cluster, "shared/").await;
        let second = connect(&cluster, "shared/").await;
        let foreign = connect(&cluster, "foreign/").await;
        for n in 0..200u32 {
            let key = format!("k{n:03}").into_bytes();
            let mut batch = WriteBatch::new();
            batch.put("records", key.clone(), n.to_be_bytes().to_vec());
            apply_unconditionally(first.as_ref(), &batch).await.unwrap();
            second.catch_up().await.unwrap();
            assert_eq!(
                get(second.as_ref(), "records", &key).await,
                Some(n.to_be_bytes().to_vec()),
                "write {n} unseen by the other replica"
            );
            if n % 2 == 0 {
                let mut batch = WriteBatch::new();
                batch.delete("records", key.clone());
                apply_unconditionally(first.as_ref(), &batch).await.unwrap();
                second.catch_up().await.unwrap();
                assert_eq!(get(second.as_ref(), "records", &key).await, None);
            }
        }
        // Both expect a key absent; the loser reads the winner's value.
        let absent = Expectation {
            tree: "records",
            key: b"race".to_vec(),
            expect: Expect::Absent,
        };
        let mut winner = WriteBatch::new();
        winner.put("records", b"race".to_vec(), b"first".to_vec());
        let mut loser = WriteBatch::new();
        loser.put("records", b"race".to_vec(), b"second".to_vec());
        assert!(matches!(
            first
                .commit(std::slice::from_ref(&absent), &winner)
                .await
                .unwrap(),
            Committed::Applied { .. }
        ));
        assert!(matches!(
            second
                .commit(std::slice::from_ref(&absent), &loser)
                .await
                .unwrap(),
            Committed::Conflict { .. }
        ));
        assert_eq!(
            get(second.as_ref(), "records", b"race").await,
            Some(b"first".to_vec())
        );
        // Another deployment's writes move the revision past anything the
        // watch of this prefix delivers.
        for n in 0..20u32 {
            let mut batch = WriteBatch::new();
            batch.put("records", n.to_be_bytes().to_vec(), vec![1]);
            apply_unconditionally(foreign.as_ref(), &batch)
                .await
                .unwrap();
        }
        second.catch_up().await.unwrap();
        assert_eq!(
            second
                .scan("records", b"", None, usize::MAX)
                .await
                .unwrap()
                .len(),
            101,
            "100 records kept, and the race's"
        );
    }

    /// kill -9 of the leader of three members while commits run: the
    /// backend sends again through the election, every commit that
    /// answered Applied is there afterwards, and writes go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd_commits_survive_the_leader_s_death() {
        let Some(binary) = etcd_binary("etcd_commits_survive_the_leader_s_death") else {
            return;
        };
        let mut cluster = EtcdCluster::start(&binary, 3);
        let store = connect(&cluster, "leader/").await;
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut answered = Vec::new();
                    let mut unavailable = 0;
                    for n in 0..150 {
                        let key = format!("w{w}-{n:04}");
                        let mut batch = WriteBatch::new();
                        batch.put("records", key.clone().into_bytes(), b"v".to_vec());
                        let expectation = Expectation {
                            tree: "records",
                            key: key.clone().into_bytes(),
                            expect: Expect::Absent,
                        };
                        match store.commit(&[expectation], &batch).await {
                            Ok(Committed::Applied { .. }) => answered.push(key),
                            Ok(conflict) => panic!("{key}: {conflict:?}"),
                            Err(error) => {
                                assert!(error.is_unavailable(), "{error}");
                                unavailable += 1;
                            }
                        }
                    }
                    (answered, unavailable)
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let leader = cluster.leader();
        cluster.kill(leader);
        let mut answered = Vec::new();
        let mut unavailable = 0;
        for writer in writers {
            let (keys, errors) = writer.await.unwrap();
            answered.extend(keys);
            unavailable += errors;
        }
        assert!(
            answered.len() >= 550,
            "most commits answered ({} of 600; {unavailable} unavailable)",
            answered.len()
        );
        for key in &answered {
            assert!(
                get(store.as_ref(), "records", key.as_bytes())
                    .await
                    .is_some(),
                "{key} was answered but is gone"
            );
        }
        // The survivors go on.
        let mut batch = WriteBatch::new();
        batch.put("records", b"after".to_vec(), b"v".to_vec());
        apply_unconditionally(store.as_ref(), &batch).await.unwrap();
    }
}
