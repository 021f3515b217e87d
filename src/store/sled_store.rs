//! The embedded default backend: sled 0.34.7.
//!
//! All named trees live in one sled tree under `<tree>\0<key>` keys, so a
//! [`WriteBatch`] touching several trees is a single `apply_batch`: atomic
//! without sled's multi-tree transactions. The page cache is bounded so the
//! server's memory stays predictable with many resources.
//!
//! Versions live beside the values in the same sled tree: `\x01<tree>\0<key>`
//! holds the version of `<tree>\0<key>`, and `\x02revision` the store-wide
//! revision, all written in the commit's one batch. A value written before
//! versions existed (no version entry) has version 0. Commits check their
//! expectations and apply under one lock (sled serves one process).

use super::memory::meets;
use super::{
    check_unique_keys, Committed, Entry, Expectation, Store, StoreError, StoreResult,
    VersionedValue, WriteBatch, WriteOp,
};
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

/// sled-backed [`Store`].
pub struct SledStore {
    db: sled::Db,
    data: sled::Tree,
    /// Held while a commit checks its expectations and applies.
    committing: Mutex<()>,
}

/// Where the store-wide revision is kept.
const REVISION_KEY: &[u8] = b"\x02revision";

fn version_key(tree: &str, key: &[u8]) -> Vec<u8> {
    let mut full = vec![1u8];
    full.extend_from_slice(&full_key(tree, key));
    full
}

fn decode_version(bytes: Option<sled::IVec>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
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
        Ok(Self {
            db,
            data,
            committing: Mutex::new(()),
        })
    }

    fn version(&self, tree: &str, key: &[u8]) -> StoreResult<u64> {
        Ok(decode_version(
            self.data
                .get(version_key(tree, key))
                .map_err(storage_error)?,
        ))
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

    fn get_versioned(&self, tree: &str, key: &[u8]) -> StoreResult<Option<VersionedValue>> {
        // Value and version are written in one batch; reading the version
        // on both sides of the value proves they belong together.
        loop {
            let before = self.version(tree, key)?;
            let value = self.get(tree, key)?;
            if self.version(tree, key)? == before {
                return Ok(value.map(|value| VersionedValue {
                    value,
                    version: before,
                }));
            }
        }
    }

    fn commit(&self, expectations: &[Expectation], writes: &WriteBatch) -> StoreResult<Committed> {
        check_unique_keys(writes)?;
        let _committing = crate::sync::lock(&self.committing);
        let mut conflicts = Vec::new();
        for expectation in expectations {
            let present = self
                .data
                .contains_key(full_key(expectation.tree, &expectation.key))
                .map_err(storage_error)?;
            let current = if present {
                Some(self.version(expectation.tree, &expectation.key)?)
            } else {
                None
            };
            if !meets(expectation.expect, current) {
                conflicts.push((expectation.tree.to_string(), expectation.key.clone()));
            }
        }
        if !conflicts.is_empty() {
            return Ok(Committed::Conflict { keys: conflicts });
        }
        let version = decode_version(self.data.get(REVISION_KEY).map_err(storage_error)?) + 1;
        let mut sled_batch = sled::Batch::default();
        sled_batch.insert(REVISION_KEY, &version.to_be_bytes());
        for op in &writes.ops {
            match op {
                WriteOp::Put { tree, key, value } => {
                    sled_batch.insert(full_key(tree, key), value.as_slice());
                    sled_batch.insert(version_key(tree, key), &version.to_be_bytes());
                }
                WriteOp::Delete { tree, key } => {
                    sled_batch.remove(full_key(tree, key));
                    sled_batch.remove(version_key(tree, key));
                }
            }
        }
        self.data.apply_batch(sled_batch).map_err(storage_error)?;
        Ok(Committed::Applied { version })
    }

    fn flush(&self) -> StoreResult<()> {
        self.db.flush().map(|_| ()).map_err(storage_error)
    }
}
