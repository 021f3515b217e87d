//! The in-memory backend: same contract as sled, nothing on disk.
//!
//! Used by tests (the storage suite runs on both backends) and by anyone who
//! wants a throwaway gateway. `flush` is a no-op because there is nothing more
//! durable to reach. Versions are the store-wide revision of the commit that
//! wrote a key, kept under the same lock as the data, so an expectation is
//! checked and the write applied in one step.

use super::{
    check_unique_keys, Committed, Entry, Expect, Expectation, Store, StoreCall, StoreResult,
    VersionedValue, WriteBatch, WriteOp,
};
use std::collections::BTreeMap;
use std::sync::RwLock;

/// `BTreeMap`-backed [`Store`].
#[derive(Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    data: BTreeMap<TreeKey, VersionedValue>,
    /// The revision of the last commit.
    revision: u64,
}

/// (tree name, key).
type TreeKey = (String, Vec<u8>);

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

/// True when `current` (a key's version, if it has a value) meets `expect`.
pub(super) fn meets(expect: Expect, current: Option<u64>) -> bool {
    match expect {
        Expect::Any => true,
        Expect::Absent => current.is_none(),
        Expect::At(version) => current == Some(version),
    }
}

impl MemoryStore {
    fn get_now(&self, tree: &str, key: &[u8]) -> Option<VersionedValue> {
        let inner = crate::sync::read(&self.inner);
        inner.data.get(&(tree.to_string(), key.to_vec())).cloned()
    }

    fn scan_now(
        &self,
        tree: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Vec<Entry> {
        use std::ops::Bound;
        let inner = crate::sync::read(&self.inner);
        let start = match after {
            Some(after) => Bound::Excluded((tree.to_string(), after.to_vec())),
            None => Bound::Included((tree.to_string(), prefix.to_vec())),
        };
        inner
            .data
            .range((start, Bound::Unbounded))
            .take_while(|((t, k), _)| t == tree && k.starts_with(prefix))
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.value.clone()))
            .collect()
    }

    fn commit_now(
        &self,
        expectations: &[Expectation],
        writes: &WriteBatch,
    ) -> StoreResult<Committed> {
        check_unique_keys(writes)?;
        let mut inner = crate::sync::write(&self.inner);
        let conflicts: Vec<(String, Vec<u8>)> = expectations
            .iter()
            .filter(|e| {
                let current = inner
                    .data
                    .get(&(e.tree.to_string(), e.key.clone()))
                    .map(|v| v.version);
                !meets(e.expect, current)
            })
            .map(|e| (e.tree.to_string(), e.key.clone()))
            .collect();
        if !conflicts.is_empty() {
            return Ok(Committed::Conflict { keys: conflicts });
        }
        inner.revision += 1;
        let version = inner.revision;
        for op in &writes.ops {
            match op {
                WriteOp::Put { tree, key, value } => {
                    inner.data.insert(
                        (tree.to_string(), key.clone()),
                        VersionedValue {
                            value: value.clone(),
                            version,
                        },
                    );
                }
                WriteOp::Delete { tree, key } => {
                    inner.data.remove(&(tree.to_string(), key.clone()));
                }
            }
        }
        Ok(Committed::Applied { version })
    }
}

impl Store for MemoryStore {
    fn get_versioned<'a>(
        &'a self,
        tree: &'a str,
        key: &'a [u8],
    ) -> StoreCall<'a, Option<VersionedValue>> {
        StoreCall::ready(Ok(self.get_now(tree, key)))
    }

    fn scan<'a>(
        &'a self,
        tree: &'a str,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
        limit: usize,
    ) -> StoreCall<'a, Vec<Entry>> {
        StoreCall::ready(Ok(self.scan_now(tree, prefix, after, limit)))
    }

    fn commit<'a>(
        &'a self,
        expectations: &'a [Expectation],
        writes: &'a WriteBatch,
    ) -> StoreCall<'a, Committed> {
        StoreCall::ready(self.commit_now(expectations, writes))
    }

    fn flush(&self) -> StoreCall<'_, ()> {
        StoreCall::ready(Ok(()))
    }

    fn answers_at_once(&self) -> bool {
        true
    }

    fn snapshot(&self) -> StoreCall<'_, super::Snapshot> {
        let inner = crate::sync::read(&self.inner);
        StoreCall::ready(Ok(super::Snapshot {
            revision: inner.revision,
            entries: inner
                .data
                .iter()
                .map(|((tree, key), value)| super::SnapshotEntry {
                    tree: tree.clone(),
                    key: key.clone(),
                    value: value.value.clone(),
                    version: value.version,
                })
                .collect(),
        }))
    }

    fn revision(&self) -> Option<u64> {
        Some(crate::sync::read(&self.inner).revision)
    }
}
