//! One storage suite, run on both backends (sled and memory), plus group
//! commit and sled's durability across reopen.

use ec2_gateway::store::{MemoryStore, SledStore, Store, StoreHandle, StoreResult, WriteBatch};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn suite(store: Arc<dyn Store>) {
    // Put, get, overwrite, delete.
    let mut batch = WriteBatch::new();
    batch.put("hosts", b"b".to_vec(), b"2".to_vec());
    batch.put("hosts", b"a".to_vec(), b"1".to_vec());
    batch.put("hosts", b"c".to_vec(), b"3".to_vec());
    batch.put("zones", b"a".to_vec(), b"zone".to_vec());
    store.apply(&batch).unwrap();
    assert_eq!(store.get("hosts", b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(
        store.get("zones", b"a").unwrap(),
        Some(b"zone".to_vec()),
        "trees are separate"
    );
    assert_eq!(store.get("hosts", b"zz").unwrap(), None);
    assert_eq!(store.get("nothing", b"a").unwrap(), None);

    // Ordered scans with prefix, start-after and limit.
    let keys = |entries: Vec<(Vec<u8>, Vec<u8>)>| {
        entries
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(store.scan("hosts", b"", None, usize::MAX).unwrap()),
        ["a", "b", "c"]
    );
    assert_eq!(
        keys(store.scan("hosts", b"", Some(b"a"), 1).unwrap()),
        ["b"]
    );
    assert_eq!(
        keys(store.scan("hosts", b"", Some(b"c"), 10).unwrap()),
        Vec::<String>::new()
    );
    let mut batch = WriteBatch::new();
    for key in ["acct1/i-1", "acct1/i-2", "acct2/i-1", "acct10/i-1"] {
        batch.put("instances", key.as_bytes().to_vec(), b"x".to_vec());
    }
    store.apply(&batch).unwrap();
    assert_eq!(
        keys(
            store
                .scan("instances", b"acct1/", None, usize::MAX)
                .unwrap()
        ),
        ["acct1/i-1", "acct1/i-2"]
    );
    assert_eq!(
        keys(
            store
                .scan("instances", b"acct1/", Some(b"acct1/i-1"), usize::MAX)
                .unwrap()
        ),
        ["acct1/i-2"]
    );
    assert_eq!(
        keys(store.scan("hosts", b"b", None, usize::MAX).unwrap()),
        ["b"]
    );

    // A batch mixing trees, puts and deletes applies as a whole.
    let mut batch = WriteBatch::new();
    batch.delete("hosts", b"a".to_vec());
    batch.put("zones", b"b".to_vec(), b"zone-b".to_vec());
    batch.put("hosts", b"c".to_vec(), b"33".to_vec());
    store.apply(&batch).unwrap();
    assert_eq!(store.get("hosts", b"a").unwrap(), None);
    assert_eq!(store.get("hosts", b"c").unwrap(), Some(b"33".to_vec()));
    assert_eq!(
        keys(store.scan("zones", b"", None, usize::MAX).unwrap()),
        ["a", "b"]
    );
    store.flush().unwrap();
}

#[test]
fn memory_backend() {
    suite(Arc::new(MemoryStore::new()));
}

#[test]
fn sled_backend() {
    let dir = tempfile::tempdir().unwrap();
    suite(Arc::new(
        SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap(),
    ));
}

#[tokio::test]
async fn sled_keeps_committed_writes_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let handle = StoreHandle::new(Arc::new(
            SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap(),
        ));
        let mut batch = WriteBatch::new();
        batch.put_record("accounts", b"111122223333".to_vec(), &("operator", true));
        handle.commit(&batch).await.unwrap();
    }
    let handle = StoreHandle::new(Arc::new(
        SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap(),
    ));
    let record: Option<(String, bool)> = handle.get_record("accounts", b"111122223333").unwrap();
    assert_eq!(record, Some(("operator".to_string(), true)));
}

/// Counts flushes and makes each one slow, like a disk.
struct SlowFlushes {
    inner: MemoryStore,
    flushes: AtomicUsize,
}

impl Store for SlowFlushes {
    fn get(&self, tree: &str, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get(tree, key)
    }
    fn scan(
        &self,
        tree: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(tree, prefix, after, limit)
    }
    fn apply(&self, batch: &WriteBatch) -> StoreResult<()> {
        self.inner.apply(batch)
    }
    fn flush(&self) -> StoreResult<()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(20));
        Ok(())
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
    assert_eq!(store.scan("t", b"", None, usize::MAX).unwrap().len(), 64);
    // A commit after everything is durable still flushes its own write.
    let mut batch = WriteBatch::new();
    batch.put("t", b"late".to_vec(), vec![2]);
    handle.commit(&batch).await.unwrap();
    assert_eq!(store.flushes.load(Ordering::SeqCst), flushes + 1);
}
