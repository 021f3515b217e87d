//! The embedded default backend: sled 0.34.7.
//!
//! All named trees live in one sled tree under `<tree>\0<key>` keys, so a
//! [`WriteBatch`] touching several trees is a single `apply_batch`: atomic
//! without sled's multi-tree transactions. The page cache is bounded so the
//! server's memory stays predictable with many resources.

use super::{Entry, Store, StoreError, StoreResult, WriteBatch, WriteOp};
use std::ops::Bound;
use std::path::Path;

/// sled-backed [`Store`].
pub struct SledStore {
    db: sled::Db,
    data: sled::Tree,
}

fn storage_error(error: sled::Error) -> StoreError {
    StoreError(error.to_string())
}

fn full_key(tree: &str, key: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(tree.len() + 1 + key.len());
    full.extend_from_slice(tree.as_bytes());
    full.push(0);
    full.extend_from_slice(key);
    full
}

impl SledStore {
    /// Opens (or creates) the database in `folder`, with a page cache of at
    /// most `cache_bytes`.
    pub fn open(folder: &Path, cache_bytes: u64) -> StoreResult<Self> {
        let db = sled::Config::new()
            .path(folder)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(storage_error)?;
        let data = db.open_tree("data").map_err(storage_error)?;
        Ok(Self { db, data })
    }
}

impl Store for SledStore {
    fn get(&self, tree: &str, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .data
            .get(full_key(tree, key))
            .map_err(storage_error)?
            .map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        tree: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<Entry>> {
        let full_prefix = full_key(tree, prefix);
        let skip = tree.len() + 1;
        let start = match after {
            Some(after) => Bound::Excluded(full_key(tree, after)),
            None => Bound::Included(full_prefix.clone()),
        };
        let iter = self.data.range::<Vec<u8>, _>((start, Bound::Unbounded));
        let mut entries = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(storage_error)?;
            if !key.starts_with(&full_prefix) {
                break;
            }
            if entries.len() >= limit {
                break;
            }
            entries.push((key[skip..].to_vec(), value.to_vec()));
        }
        Ok(entries)
    }

    fn apply(&self, batch: &WriteBatch) -> StoreResult<()> {
        let mut sled_batch = sled::Batch::default();
        for op in &batch.ops {
            match op {
                WriteOp::Put { tree, key, value } => {
                    sled_batch.insert(full_key(tree, key), value.as_slice())
                }
                WriteOp::Delete { tree, key } => sled_batch.remove(full_key(tree, key)),
            }
        }
        self.data.apply_batch(sled_batch).map_err(storage_error)
    }

    fn flush(&self) -> StoreResult<()> {
        self.db.flush().map(|_| ()).map_err(storage_error)
    }
}
