//! The in-memory backend: same contract as sled, nothing on disk.
//!
//! Used by tests (the storage suite runs on both backends) and by anyone who
//! wants a throwaway gateway. `flush` is a no-op because there is nothing more
//! durable to reach.

use super::{Entry, Store, StoreResult, WriteBatch, WriteOp};
use std::collections::BTreeMap;
use std::sync::RwLock;

/// `BTreeMap`-backed [`Store`].
#[derive(Default)]
pub struct MemoryStore {
    data: RwLock<BTreeMap<TreeKey, Vec<u8>>>,
}

/// (tree name, key).
type TreeKey = (String, Vec<u8>);

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn get(&self, tree: &str, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let data = crate::sync::read(&self.data);
        Ok(data.get(&(tree.to_string(), key.to_vec())).cloned())
    }

    fn scan(
        &self,
        tree: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<Entry>> {
        use std::ops::Bound;
        let data = crate::sync::read(&self.data);
        let start = match after {
            Some(after) => Bound::Excluded((tree.to_string(), after.to_vec())),
            None => Bound::Included((tree.to_string(), prefix.to_vec())),
        };
        Ok(data
            .range((start, Bound::Unbounded))
            .take_while(|((t, k), _)| t == tree && k.starts_with(prefix))
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply(&self, batch: &WriteBatch) -> StoreResult<()> {
        let mut data = crate::sync::write(&self.data);
        for op in &batch.ops {
            match op {
                WriteOp::Put { tree, key, value } => {
                    data.insert((tree.to_string(), key.clone()), value.clone());
                }
                WriteOp::Delete { tree, key } => {
                    data.remove(&(tree.to_string(), key.clone()));
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}
