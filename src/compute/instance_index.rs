//! DescribeInstances' listings from memory while the account's instances
//! have not changed.
//!
//! A listing reads every instance of its page (spec and status, two point
//! reads of the store) and renders it; a full listing of 10,000 instances
//! did that 10,000 times per call, though between two listings of an
//! account usually nothing of its instances changed. Each account's
//! instances therefore have a marker key, `meta/instances_marker/<account>`,
//! that every change to one of its instance records rewrites (the
//! transaction does it for any write under `instances`, `instance_status`
//! or `instance_order`: no call site can forget it; a blind write, so
//! concurrent changes do not conflict on it). An [`InstanceIndex`] keeps,
//! per account, the instances in launch order as of one version of that
//! marker, and serves a page from memory when the marker still has that
//! version, or, cheaper, when the store's own revision has not moved since
//! it was last checked: a derived view in the sense of `view` and of the
//! contract (../shared/design/scale-out.md, §3), never the basis of a
//! decision (writes read their instances in their own transaction).
//!
//! When the marker moved (or the index is [`MAX_AGE`] old), the index is
//! rebuilt from the store by one request at a time per account, reusing
//! every entry whose spec and status versions did not change (so what was
//! decoded and rendered of it is kept: [`Listed::rendered`] is where the
//! API keeps an item's XML). Who rebuilds, and who reads the store page
//! by page instead, is `Compute::instance_page`'s choice. An index is
//! kept only for accounts of at most [`MAX_INDEXED_PER_ACCOUNT`] instances
//! and for at most `listing_cache_instances` ([`MAX_INDEXED`] unless
//! configured) instances in all (least recently used
//! dropped first), so its memory is bounded; beyond that listings read
//! the store page by page as before. An index no listing used for
//! [`IDLE_FOR`] is dropped too, so a gateway at rest does not hold the
//! listings it served once.

use super::instances::{Instance, InstanceStatus, INSTANCES, INSTANCE_ORDER, INSTANCE_STATUS};
use super::operation::Tx;
use crate::store::StoreResult;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The tree the markers live in.
pub(super) const MARKER_TREE: &str = "meta";

/// Most instances one account's index holds (a bigger account is listed
/// from the store page by page).
pub const MAX_INDEXED_PER_ACCOUNT: usize = 20_000;

/// Accounts whose rebuild turns are remembered before the unused ones are
/// forgotten.
const MAX_TURNS: usize = 4096;

/// Most instances all accounts' indexes hold together by default
/// (`listing_cache_instances`; the least recently
/// used accounts' indexes are dropped to make room). An entry holds the
/// instance's status and its rendered item (about 2.6 KiB; items over
/// 8 KiB are not kept) and shares its spec with the decoded-spec book;
/// measured, an index of 10,000 instances added about 60 MiB of RSS.
pub const MAX_INDEXED: usize = 30_000;

/// How long an index is trusted without being read again whole, even
/// when its marker did not move: bounds what a writer that does not move
/// the marker (a gateway of an earlier release during a rolling upgrade,
/// an edit made directly in etcd) can hide from listings.
const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30);

/// How long an account's index is kept while no listing uses it (see
/// [`InstanceIndex::forget_idle`]): an account listed (any page) more
/// often than once a minute keeps its index; one listed once does not
/// hold its memory for ever.
pub const IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// No store revision known.
const UNCHECKED: u64 = u64::MAX;

/// The marker that a write under `key` in `tree` also rewrites, if any.
pub(super) fn marker_of(tree: &str, key: &[u8]) -> Option<Vec<u8>> {
    if ![INSTANCES, INSTANCE_STATUS, INSTANCE_ORDER].contains(&tree) {
        return None;
    }
    let account = key.split(|&b| b == b'/').next()?;
    Some(marker_key(account))
}

fn marker_key(account: &[u8]) -> Vec<u8> {
    [b"instances_marker/".as_slice(), account].concat()
}

/// One instance of a listing, and what was rendered of it.
#[derive(Debug)]
pub struct Listed {
    /// Its spec, shared with the decoded-spec book (`instance_reads`).
    spec: Arc<Instance>,
    /// Its status, when not already in `spec`.
    status: Option<InstanceStatus>,
    /// The stored versions it was read at (0: not from the index).
    spec_version: u64,
    status_version: u64,
    /// Filled by whoever renders the item, once: its bytes and the layout
    /// they were written for. Kept as long as the instance's records keep
    /// their versions.
    pub rendered: OnceLock<Rendered>,
}

/// An item's rendered bytes.
#[derive(Debug)]
pub struct Rendered {
    /// What the bytes depend on besides the instance (depth, indentation),
    /// as the renderer encodes it.
    pub layout: u32,
    pub bytes: Box<[u8]>,
}

impl Listed {
    /// An instance read for one listing only.
    pub fn unindexed(instance: Instance) -> Arc<Self> {
        Arc::new(Self {
            spec: Arc::new(instance),
            status: None,
            spec_version: 0,
            status_version: 0,
            rendered: OnceLock::new(),
        })
    }

    /// An instance read at the stored versions of its spec and status (0:
    /// no status record): what is rendered of it is kept with it.
    pub(super) fn at_versions(
        (spec, status): Parts,
        spec_version: u64,
        status_version: u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            spec,
            status,
            spec_version,
            status_version,
            rendered: OnceLock::new(),
        })
    }

    /// The stored versions of its spec and status it was read at.
    pub(super) fn versions(&self) -> (u64, u64) {
        (self.spec_version, self.status_version)
    }

    /// True when what is rendered of it is worth keeping (it is an
    /// entry of an index, or of the instances polled by id, not read for
    /// one listing only).
    pub fn keeps_rendering(&self) -> bool {
        self.spec_version != 0
    }

    /// Its spec: the fields a status does not change (id, sequence,
    /// reservation, owner, volumes, ...).
    pub fn spec(&self) -> &Instance {
        &self.spec
    }

    /// Runs `f` on the whole instance (spec and status), put together
    /// only when the status is apart.
    pub fn with_instance<R>(&self, f: impl FnOnce(&Instance) -> R) -> R {
        match &self.status {
            None => f(&self.spec),
            Some(status) => {
                let mut instance = (*self.spec).clone();
                instance.set_status(status.clone());
                f(&instance)
            }
        }
    }
}

/// One account's instances in launch order, as of one marker version.
struct AccountIndex {
    marker_version: u64,
    /// The store revision at the last check (or [`UNCHECKED`]).
    checked_at: AtomicU64,
    built_at: std::time::Instant,
    /// When a listing last used it, to drop the least recently used
    /// first.
    last_used: crate::clock::LastUse,
    /// `None`: the account has more than [`MAX_INDEXED_PER_ACCOUNT`]
    /// instances (noted so that listings do not try again for
    /// [`TOO_BIG_FOR`]).
    entries: Option<Vec<Arc<Listed>>>,
}

/// How long an account found too big to index is listed from the store
/// without trying again (each try reads its instances' versions).
const TOO_BIG_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// The accounts' indexes (see the module documentation).
pub struct InstanceIndex {
    /// Most instances held in all (the configuration's
    /// `listing_cache_instances`; 0: no index).
    total: usize,
    /// Most instances of one account.
    per_account: usize,
    accounts: Mutex<HashMap<String, Arc<AccountIndex>>>,
    /// Per account, the turn to rebuild its index.
    rebuilding: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A page: its instances, and whether more follow.
pub type Page = (Vec<Arc<Listed>>, bool);

/// An instance's spec (shared) and status, as read.
pub(super) type Parts = (Arc<Instance>, Option<InstanceStatus>);

/// What the index answers for a page.
pub(super) enum Lookup {
    Page(Page),
    /// The account has more instances than an index holds.
    TooBig,
    /// The index no longer holds and rebuilding it was not asked for.
    Stale,
}

/// The turn to rebuild one account's index.
pub(super) type RebuildTurn = tokio::sync::OwnedMutexGuard<()>;

impl InstanceIndex {
    /// Indexes of at most `total` instances in all (and
    /// [`MAX_INDEXED_PER_ACCOUNT`] of one account); 0 keeps none.
    pub fn new(total: usize) -> Self {
        Self {
            total,
            per_account: total.min(MAX_INDEXED_PER_ACCOUNT),
            accounts: Mutex::default(),
            rebuilding: Mutex::default(),
        }
    }

    /// A page of the account's instances from the index (up to `limit`
    /// after sequence `after` that pass `filter`), checked as the module
    /// says; rebuilt when it no longer holds only if `rebuild` (by the
    /// holder of the account's [`RebuildTurn`]). `read_parts` reads one
    /// instance's parts as `tx` sees them.
    pub(super) fn page(
        &self,
        tx: &Tx<'_>,
        account_id: &str,
        (after, limit): (Option<u64>, Option<usize>),
        filter: Option<&(dyn Fn(&Instance) -> bool + Sync)>,
        rebuild: bool,
        read_parts: impl Fn(&Tx<'_>, &str) -> StoreResult<Option<Parts>>,
    ) -> StoreResult<Lookup> {
        if self.total == 0 {
            return Ok(Lookup::TooBig);
        }
        let Some(index) = self.current(tx, account_id, rebuild, read_parts)? else {
            return Ok(Lookup::Stale);
        };
        index.last_used.touch();
        let Some(entries) = &index.entries else {
            return Ok(Lookup::TooBig);
        };
        let start = after.map_or(0, |after| {
            entries.partition_point(|listed| listed.spec.sequence <= after)
        });
        let mut page = Vec::new();
        for listed in &entries[start..] {
            if filter.is_some_and(|keep| !listed.with_instance(keep)) {
                continue;
            }
            if limit.is_some_and(|limit| page.len() == limit) {
                return Ok(Lookup::Page((page, true)));
            }
            page.push(listed.clone());
        }
        Ok(Lookup::Page((page, false)))
    }

    /// The turn to rebuild the account's index, waited for: requests that
    /// found it stale wait for the one rebuilding it, then check it again,
    /// instead of all reading every instance at once.
    pub(super) async fn rebuild_turn(&self, account_id: &str) -> RebuildTurn {
        self.turn_lock(account_id).lock_owned().await
    }

    /// The turn to rebuild the account's index if no one holds it.
    pub(super) fn free_rebuild_turn(&self, account_id: &str) -> Option<RebuildTurn> {
        self.turn_lock(account_id).try_lock_owned().ok()
    }

    fn turn_lock(&self, account_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut rebuilding = crate::sync::lock(&self.rebuilding);
        if rebuilding.len() >= MAX_TURNS {
            // Forget the turns no one holds or waits for.
            rebuilding.retain(|_, turn| Arc::strong_count(turn) > 1);
        }
        rebuilding
            .entry(account_id.to_string())
            .or_default()
            .clone()
    }

    /// The account's index, checked against the store, or rebuilt if
    /// `rebuild` (else `None` when it no longer holds).
    fn current(
        &self,
        tx: &Tx<'_>,
        account_id: &str,
        rebuild: bool,
        read_parts: impl Fn(&Tx<'_>, &str) -> StoreResult<Option<Parts>>,
    ) -> StoreResult<Option<Arc<AccountIndex>>> {
        // The store revision first: an index is never stamped newer than
        // what it holds.
        let revision = tx.store_revision();
        let kept = crate::sync::lock(&self.accounts).get(account_id).cloned();
        let young = |index: &AccountIndex| index.built_at.elapsed() < MAX_AGE;
        if let (Some(revision), Some(index)) = (revision, &kept) {
            if index.checked_at.load(Ordering::SeqCst) == revision && young(index) {
                return Ok(Some(index.clone()));
            }
        }
        let marker_version = tx
            .peek_version(MARKER_TREE, &marker_key(account_id.as_bytes()))?
            .unwrap_or(0);
        let stamp = revision.unwrap_or(UNCHECKED);
        if let Some(index) = kept.as_ref().filter(|index| {
            (index.marker_version == marker_version && young(index))
                // Too big a while ago: still too big (see `TOO_BIG_FOR`).
                || (index.entries.is_none() && index.built_at.elapsed() < TOO_BIG_FOR)
        }) {
            if stamp != UNCHECKED && index.marker_version == marker_version {
                index.checked_at.store(stamp, Ordering::SeqCst);
            }
            return Ok(Some(index.clone()));
        }
        if !rebuild {
            return Ok(None);
        }
        let overlay_reads = tx.overlay_reads();
        let entries = rebuild_entries(
            tx,
            account_id,
            self.per_account,
            kept.as_deref(),
            read_parts,
        )?;
        let index = Arc::new(AccountIndex {
            marker_version,
            checked_at: AtomicU64::new(stamp),
            built_at: std::time::Instant::now(),
            last_used: crate::clock::LastUse::now(),
            entries,
        });
        // An index read from a batch's uncommitted writes serves that read
        // only.
        if tx.overlay_reads() == overlay_reads && !crate::store::is_uncommitted(marker_version) {
            self.keep(account_id, index.clone());
        }
        Ok(Some(index))
    }

    /// Drops the indexes no listing used for `idle` or longer (the
    /// gateway does it every few seconds with [`IDLE_FOR`]); answers how
    /// many instances they held. The next listing of such an account reads
    /// its instances from the store again.
    pub fn forget_idle(&self, idle: std::time::Duration) -> usize {
        // Freed when `dropped` goes, after the lock: listings need it
        // meanwhile.
        let dropped = crate::sync::take_where(&mut crate::sync::lock(&self.accounts), |index| {
            index.last_used.idle_for(idle)
        });
        dropped
            .iter()
            .map(|index| index.entries.as_ref().map_or(0, Vec::len))
            .sum()
    }

    /// Keeps `index` for the account, within `total` in all: the
    /// least recently used accounts' indexes are dropped to make room.
    fn keep(&self, account_id: &str, index: Arc<AccountIndex>) {
        // An account too big to index still takes a place.
        let weight = |index: &AccountIndex| index.entries.as_ref().map_or(1, |e| e.len().max(1));
        let mut accounts = crate::sync::lock(&self.accounts);
        accounts.remove(account_id);
        let mut held: usize = accounts.values().map(|index| weight(index)).sum();
        if held + weight(&index) > self.total {
            let mut by_use: Vec<(u64, String)> = accounts
                .iter()
                .map(|(id, index)| (index.last_used.millis(), id.clone()))
                .collect();
            by_use.sort_unstable();
            for (_, id) in by_use {
                if held + weight(&index) <= self.total {
                    break;
                }
                if let Some(dropped) = accounts.remove(&id) {
                    held -= weight(&dropped);
                }
            }
        }
        accounts.insert(account_id.to_string(), index);
    }
}

/// The account's instances read anew in launch order, taking over from
/// `kept` every entry whose records did not change; `None` past `limit`
/// instances.
fn rebuild_entries(
    tx: &Tx<'_>,
    account_id: &str,
    limit: usize,
    kept: Option<&AccountIndex>,
    read_parts: impl Fn(&Tx<'_>, &str) -> StoreResult<Option<Parts>>,
) -> StoreResult<Option<Vec<Arc<Listed>>>> {
    const CHUNK: usize = 256;
    let mut reusable = kept
        .and_then(|index| index.entries.as_deref())
        .unwrap_or_default()
        .iter()
        .peekable();
    let prefix = format!("{account_id}/");
    let mut cursor: Option<Vec<u8>> = None;
    let mut entries = Vec::new();
    loop {
        let chunk = tx.scan_after(INSTANCE_ORDER, prefix.as_bytes(), cursor.as_deref(), CHUNK)?;
        let ids = chunk
            .iter()
            .map(|(_, value)| crate::store::decode::<String>(value))
            .collect::<StoreResult<Vec<String>>>()?;
        tx.prefetch(&super::instance_reads::instance_keys(account_id, &ids))?;
        for ((order, _), id) in chunk.iter().zip(&ids) {
            let sequence = sequence_of(order);
            let key = super::instances::instance_key(account_id, id);
            let Some(spec_version) = tx.peek_version(INSTANCES, &key)? else {
                continue;
            };
            let status_version = tx.peek_version(INSTANCE_STATUS, &key)?.unwrap_or(0);
            // Both are in launch order: pass what was purged since.
            while reusable
                .peek()
                .is_some_and(|old| Some(old.spec.sequence) < sequence)
            {
                reusable.next();
            }
            let same = reusable.peek().filter(|old| {
                old.spec.id == *id
                    && old.spec_version == spec_version
                    && old.status_version == status_version
            });
            let listed = match same {
                Some(old) => (*old).clone(),
                None => {
                    let Some(parts) = read_parts(tx, id)? else {
                        continue;
                    };
                    Listed::at_versions(parts, spec_version, status_version)
                }
            };
            if entries.len() == limit {
                return Ok(None);
            }
            entries.push(listed);
        }
        match chunk.last() {
            Some((key, _)) if chunk.len() == CHUNK => cursor = Some(key.clone()),
            _ => return Ok(Some(entries)),
        }
    }
}

/// The launch sequence in an `instance_order` key (`<account>/<20 digits>`).
fn sequence_of(order: &[u8]) -> Option<u64> {
    let digits = order.rsplit(|&b| b == b'/').next()?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}
