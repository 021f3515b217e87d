//! The embedded default backend: sled 0.34.7.
//!
//! All named trees live in one sled tree under `<tree>\0<key>` keys, so a
//! [`WriteBatch`] touching several trees is a single `apply_batch`: atomic
//! without sled's multi-tree transactions. The page cache is bounded so the
//! server's memory stays predictable with many resources.
//!
//! Each value is stored behind a 9-byte header, a marker byte `0xFF` and its
//! version (big-endian u64), so a value and its version are one sled entry,
//! read and written together. `\x02revision` holds a ceiling on the
//! store-wide revision: revisions are taken from memory, and the commit
//! that passes the ceiling writes a new one [`REVISION_BLOCK`] higher in its
//! batch, so most commits write no extra key, and after a restart the
//! revision starts at the ceiling (versions only ever grow). A
//! value written before versions existed has no header (every record was
//! JSON, which never starts with `0xFF`) and reads as version 0. Commits
//! check their expectations and apply under one lock (sled serves one
//! process).

use super::memory::meets;
use super::{
    check_unique_keys, Committed, Entry, Expectation, Store, StoreCall, StoreError, StoreResult,
    VersionedValue, WriteBatch, WriteOp,
};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// sled-backed [`Store`].
pub struct SledStore {
    db: sled::Db,
    data: sled::Tree,
    /// The revision of the last commit; held while a commit checks its
    /// expectations and applies.
    revision: Mutex<Revision>,
    /// The revision of the last commit, for [`Store::revision`] (set after
    /// the commit applied).
    published: AtomicU64,
    /// While a snapshot runs: the value each key had when it began, saved
    /// by the first commit that changes the key (see [`Store::snapshot`]).
    before_images: Mutex<Option<BeforeImages>>,
    /// Held by the one snapshot running (they share `before_images`).
    snapshotting: Mutex<()>,
}

/// Stops saving before-images when a snapshot ends, however it ends.
struct SavingImages<'a>(&'a SledStore);

impl SavingImages<'_> {
    /// What commits saved, under the commit lock (no commit half done).
    fn take(self) -> BeforeImages {
        let _revision = crate::sync::lock(&self.0.revision);
        crate::sync::lock(&self.0.before_images)
            .take()
            .unwrap_or_default()
    }
}

impl Drop for SavingImages<'_> {
    fn drop(&mut self) {
        crate::sync::lock(&self.0.before_images).take();
    }
}

/// Keys' stored values (`None`: absent) as of a snapshot's revision.
type BeforeImages = std::collections::HashMap<Vec<u8>, Option<sled::IVec>>;

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

/// Where the ceiling of the store-wide revision is kept.
const REVISION_KEY: &[u8] = b"\x02revision";

/// How far each stored ceiling reaches beyond the revision that wrote it.
const REVISION_BLOCK: u64 = 1024;

/// The revision of the last commit and the stored ceiling.
struct Revision {
    last: u64,
    ceiling: u64,
}
/// First byte of a versioned value.
const VERSIONED: u8 = 0xFF;
/// Marker and version.
const HEADER: usize = 9;

/// A value as stored: header, then the value.
fn with_version(value: &[u8], version: u64) -> Vec<u8> {
    let mut stored = Vec::with_capacity(HEADER + value.len());
    stored.push(VERSIONED);
    stored.extend_from_slice(&version.to_be_bytes());
    stored.extend_from_slice(value);
    stored
}

/// A stored value and its version (0 for a value from before versions).
fn split_version(stored: &[u8]) -> (&[u8], u64) {
    match stored.split_first() {
        Some((&VERSIONED, rest)) if rest.len() >= 8 => {
            let (version, value) = rest.split_at(8);
            (
                value,
                u64::from_be_bytes(version.try_into().expect("8 bytes")),
            )
        }
        _ => (stored, 0),
    }
}

/// How long opening waits for the folder's lock: a store closed a moment
/// ago in this process (a restart in place) lets go of it once sled's
/// background work on it ends; another process holding it is refused.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens sled in `folder`, waiting up to [`LOCK_WAIT`] for its lock.
fn open_locked(folder: &Path, cache_bytes: u64) -> StoreResult<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(folder)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open();
        match opened {
            // sled (pinned at 0.34.7) reports the held lock as an I/O error
            // of kind `Other` whose text names it.
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.map_err(storage_error),
        }
    }
}

impl SledStore {
    /// Opens (or creates) the database in `folder`, with a page cache of at
    /// most `cache_bytes`.
    pub fn open(folder: &Path, cache_bytes: u64) -> StoreResult<Self> {
        let db = open_locked(folder, cache_bytes)?;
        let data = db.open_tree("data").map_err(storage_error)?;
        let revision = data
            .get(REVISION_KEY)
            .map_err(storage_error)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        Ok(Self {
            db,
            data,
            // Revisions below the stored ceiling may have been used.
            revision: Mutex::new(Revision {
                last: revision,
                ceiling: revision,
            }),
            published: AtomicU64::new(revision),
            before_images: Mutex::new(None),
            snapshotting: Mutex::new(()),
        })
    }
}

impl SledStore {
    /// Creates the database in `folder` (which must not exist) from a
    /// snapshot: every entry with its version, and a revision ceiling
    /// beyond the highest, so that versions keep growing. Everything is
    /// checked first, written into a folder beside `folder`, flushed, and
    /// only then renamed into place: a failure or a crash leaves no
    /// half-restored database where a gateway would open it.
    pub fn restore(folder: &Path, snapshot: &super::Snapshot) -> StoreResult<()> {
        if folder.exists() {
            return Err(StoreError(format!(
                "{} already exists: restore into a new data folder",
                folder.display()
            )));
        }
        if let Some(bad) = snapshot
            .entries
            .iter()
            .find(|entry| entry.tree.is_empty() || entry.tree.as_bytes().contains(&0))
        {
            return Err(StoreError(format!("invalid tree name {:?}", bad.tree)));
        }
        let Some(name) = folder.file_name() else {
            return Err(StoreError(format!(
                "{} names no folder to restore into",
                folder.display()
            )));
        };
        let mut partial_name = name.to_owned();
        partial_name.push(".restoring");
        let partial = folder.with_file_name(partial_name);
        if partial.exists() {
            // Left by a restore that did not finish.
            std::fs::remove_dir_all(&partial)
                .map_err(|e| StoreError(format!("cannot remove {}: {e}", partial.display())))?;
        }
        let newest = snapshot
            .entries
            .iter()
            .map(|entry| entry.version)
            .max()
            .unwrap_or(0)
            .max(snapshot.revision);
        {
            let db = open_locked(&partial, 64 * 1024 * 1024)?;
            let data = db.open_tree("data").map_err(storage_error)?;
            let mut batch = sled::Batch::default();
            for entry in &snapshot.entries {
                batch.insert(
                    full_key(&entry.tree, &entry.key),
                    with_version(&entry.value, entry.version),
                );
            }
            batch.insert(REVISION_KEY, &(newest + REVISION_BLOCK).to_be_bytes());
            data.apply_batch(batch).map_err(storage_error)?;
            db.flush().map_err(storage_error)?;
        }
        std::fs::rename(&partial, folder).map_err(|e| {
            StoreError(format!(
                "cannot move {} to {}: {e}",
                partial.display(),
                folder.display()
            ))
        })
    }

    /// Every entry as of one revision, without holding commits up: the
    /// pass over the data runs with commits going on, and each commit made
    /// meanwhile first saves the value of every key it changes, unless
    /// one before it already did ([`SledStore::before_images`]). An entry
    /// whose key was changed is then taken from what was saved; one
    /// written after the snapshot began and never there before is left
    /// out; a key deleted meanwhile comes back from what was saved.
    fn snapshot_now(&self) -> StoreResult<super::Snapshot> {
        let _one_at_a_time = crate::sync::lock(&self.snapshotting);
        let (revision, saving) = {
            // No commit is half applied while the images are installed.
            let revision = crate::sync::lock(&self.revision);
            *crate::sync::lock(&self.before_images) = Some(BeforeImages::new());
            (revision.last, SavingImages(self))
        };
        let pass = self.pass_over_the_data();
        let saved = saving.take();
        let mut current = pass?;
        // The pass is in key order: each saved image replaces, removes or
        // adds its key in place (a few keys: those written during the pass).
        for (key, before) in saved {
            let found = current.binary_search_by(|(k, _)| k.as_ref().cmp(key.as_slice()));
            match (found, before) {
                (Ok(at), Some(stored)) => current[at].1 = stored,
                (Ok(at), None) => {
                    current.remove(at);
                }
                (Err(at), Some(stored)) => current.insert(at, (sled::IVec::from(key), stored)),
                (Err(_), None) => {}
            }
        }
        let mut entries = Vec::with_capacity(current.len());
        for (key, stored) in current {
            let Some(split) = key.iter().position(|&b| b == 0) else {
                // The revision ceiling and other bookkeeping.
                continue;
            };
            let (value, version) = split_version(&stored);
            debug_assert!(version <= revision, "a write after the snapshot began");
            entries.push(super::SnapshotEntry {
                tree: String::from_utf8_lossy(&key[..split]).into_owned(),
                key: key[split + 1..].to_vec(),
                value: value.to_vec(),
                version,
            });
        }
        Ok(super::Snapshot { revision, entries })
    }

    /// Every stored entry as the pass finds it, in key order (sled's own
    /// buffers: nothing is copied until the entries are made).
    fn pass_over_the_data(&self) -> StoreResult<Vec<(sled::IVec, sled::IVec)>> {
        self.data
            .iter()
            .map(|item| item.map_err(storage_error))
            .collect()
    }

    /// Saves the stored value of each key `writes` changes, the first time
    /// one changes while a snapshot runs (called under the commit lock).
    fn save_before_images(&self, writes: &WriteBatch) -> StoreResult<()> {
        let mut images = crate::sync::lock(&self.before_images);
        let Some(images) = images.as_mut() else {
            return Ok(());
        };
        for op in &writes.ops {
            let key = match op {
                WriteOp::Put { tree, key, .. } | WriteOp::Delete { tree, key } => {
                    full_key(tree, key)
                }
            };
            if let std::collections::hash_map::Entry::Vacant(image) = images.entry(key) {
                let stored = self.data.get(image.key()).map_err(storage_error)?;
                image.insert(stored);
            }
        }
        Ok(())
    }

    fn scan_now(
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
            entries.push((key[skip..].to_vec(), split_version(&value).0.to_vec()));
        }
        Ok(entries)
    }

    fn version_now(&self, tree: &str, key: &[u8]) -> StoreResult<Option<u64>> {
        Ok(self
            .data
            .get(full_key(tree, key))
            .map_err(storage_error)?
            .map(|stored| split_version(&stored).1))
    }

    fn get_now(&self, tree: &str, key: &[u8]) -> StoreResult<Option<VersionedValue>> {
        Ok(self
            .data
            .get(full_key(tree, key))
            .map_err(storage_error)?
            .map(|stored| {
                let (value, version) = split_version(&stored);
                VersionedValue {
                    value: value.to_vec(),
                    version,
                }
            }))
    }

    fn commit_now(
        &self,
        expectations: &[Expectation],
        writes: &WriteBatch,
    ) -> StoreResult<Committed> {
        check_unique_keys(writes)?;
        let mut revision = crate::sync::lock(&self.revision);
        let mut conflicts = Vec::new();
        for expectation in expectations {
            let current = self
                .data
                .get(full_key(expectation.tree, &expectation.key))
                .map_err(storage_error)?
                .map(|stored| split_version(&stored).1);
            if !meets(expectation.expect, current) {
                conflicts.push((expectation.tree.to_string(), expectation.key.clone()));
            }
        }
        if !conflicts.is_empty() {
            return Ok(Committed::Conflict { keys: conflicts });
        }
        self.save_before_images(writes)?;
        let version = revision.last + 1;
        let mut sled_batch = sled::Batch::default();
        let ceiling = if version > revision.ceiling {
            let ceiling = version + REVISION_BLOCK - 1;
            sled_batch.insert(REVISION_KEY, &ceiling.to_be_bytes());
            ceiling
        } else {
            revision.ceiling
        };
        for op in &writes.ops {
            match op {
                WriteOp::Put { tree, key, value } => {
                    sled_batch.insert(full_key(tree, key), with_version(value, version));
                }
                WriteOp::Delete { tree, key } => sled_batch.remove(full_key(tree, key)),
            }
        }
        self.data.apply_batch(sled_batch).map_err(storage_error)?;
        *revision = Revision {
            last: version,
            ceiling,
        };
        self.published.store(version, Ordering::SeqCst);
        Ok(Committed::Applied { version })
    }
}

impl Store for SledStore {
    fn get_versioned<'a>(
        &'a self,
        tree: &'a str,
        key: &'a [u8],
    ) -> StoreCall<'a, Option<VersionedValue>> {
        StoreCall::ready(self.get_now(tree, key))
    }

    fn scan<'a>(
        &'a self,
        tree: &'a str,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
        limit: usize,
    ) -> StoreCall<'a, Vec<Entry>> {
        StoreCall::ready(self.scan_now(tree, prefix, after, limit))
    }

    fn answers_at_once(&self) -> bool {
        true
    }

    fn batches_commits(&self) -> bool {
        true
    }

    fn snapshot(&self) -> StoreCall<'_, super::Snapshot> {
        StoreCall::ready(self.snapshot_now())
    }

    fn revision(&self) -> Option<u64> {
        Some(self.published.load(Ordering::SeqCst))
    }

    /// The version from the stored header, the value left uncopied.
    fn version<'a>(&'a self, tree: &'a str, key: &'a [u8]) -> StoreCall<'a, Option<u64>> {
        StoreCall::ready(self.version_now(tree, key))
    }

    fn commit<'a>(
        &'a self,
        expectations: &'a [Expectation],
        writes: &'a WriteBatch,
    ) -> StoreCall<'a, Committed> {
        StoreCall::ready(self.commit_now(expectations, writes))
    }

    /// An fsync: run off the async workers.
    fn flush(&self) -> StoreCall<'_, ()> {
        let db = self.db.clone();
        StoreCall::waiting(async move {
            tokio::task::spawn_blocking(move || db.flush().map(|_| ()).map_err(storage_error))
                .await
                .map_err(|e| StoreError(format!("flush task failed: {e}")))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_in_use_is_refused_and_opens_once_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let held = SledStore::open(dir.path(), 1 << 20).unwrap();
        // Refused (after the bounded wait), not hung.
        let second = SledStore::open(dir.path(), 1 << 20);
        assert!(second.is_err(), "two stores on one folder");
        drop(held);
        // Once let go, the folder opens again.
        SledStore::open(dir.path(), 1 << 20).unwrap();
    }
}
