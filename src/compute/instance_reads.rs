//! Reading instances: DescribeInstances by id and page by page.
//!
//! An instance is two records (spec and status, see `instances`); a listing
//! walks `instance_order/<account>/<sequence>` only as far as its page
//! needs and reads each instance's spec and status, asking a store that
//! must wait for all of a chunk's records at once. Specs are decoded once
//! per stored version ([`InstanceBook`]'s decoded-spec view, checked with a
//! version-only read), since listings read the same instances again and
//! again while they seldom change. The book also carries the lifecycle
//! driver's wake-up: a transition due before the driver's planned pass
//! nudges it.

use super::instance_index::{Listed, Lookup, Page};
use super::instances::{
    instance_key, instances_not_found, order_key, parse_schedule_key, Instance, InstanceStatus,
    INSTANCES, INSTANCE_ORDER, INSTANCE_STATUS, SCHEDULE,
};
use super::operation::{self, Tx};
use super::Compute;
use crate::error::ApiResult;
use crate::store::StoreResult;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The spec and status keys of `ids` (to read them in one round).
pub(super) fn instance_keys(account_id: &str, ids: &[String]) -> Vec<(&'static str, Vec<u8>)> {
    ids.iter()
        .flat_map(|id| {
            let key = instance_key(account_id, id);
            [(INSTANCES, key.clone()), (INSTANCE_STATUS, key)]
        })
        .collect()
}

/// What the lifecycle driver needs from instance changes (a nudge when a
/// transition is scheduled earlier than it planned to wake), and decoded
/// specs for listings.
pub struct InstanceBook {
    pub(crate) wake: tokio::sync::Notify,
    /// When the driver plans its next pass (Unix milliseconds on the
    /// core's clock; `i64::MAX` while a pass runs, so that every new
    /// transition nudges): a transition due later needs no nudge.
    planned_wake: std::sync::atomic::AtomicI64,
    /// Decoded specs by key, each with the version it was decoded from: a
    /// derived view that saves decoding, used only when the stored version
    /// read just before is the same. Bounded: emptied when full.
    specs: std::sync::RwLock<DecodedSpecs>,
}

/// Decoded specs by key, with the version each was decoded from.
type DecodedSpecs = std::collections::HashMap<Vec<u8>, (u64, Arc<Instance>)>;

/// Most specs [`InstanceBook`] keeps decoded.
const MAX_DECODED_SPECS: usize = 20_000;

impl Default for InstanceBook {
    fn default() -> Self {
        Self {
            wake: tokio::sync::Notify::new(),
            // No pass planned yet: every new transition nudges.
            planned_wake: std::sync::atomic::AtomicI64::new(i64::MAX),
            specs: Default::default(),
        }
    }
}

impl InstanceBook {
    /// Notes when the driver's next pass is planned (`None`: a pass runs).
    pub(super) fn plan_wake(&self, at: Option<DateTime<Utc>>) {
        let millis = at.map_or(i64::MAX, |at| at.timestamp_millis());
        self.planned_wake
            .store(millis, std::sync::atomic::Ordering::SeqCst);
    }

    /// Wakes the driver if a transition due at `due` would come before its
    /// planned pass.
    pub(super) fn nudge(&self, due: DateTime<Utc>) {
        let planned = self.planned_wake.load(std::sync::atomic::Ordering::SeqCst);
        if due.timestamp_millis() < planned {
            self.wake.notify_one();
        }
    }

    /// The spec stored as `bytes` under `key` at `version`, decoded once
    /// per version (a value without a known version is decoded and not
    /// kept).
    pub(super) fn decode_spec(
        &self,
        key: &[u8],
        version: Option<u64>,
        bytes: &[u8],
    ) -> StoreResult<Instance> {
        Ok(Arc::unwrap_or_clone(self.shared_spec(key, version, bytes)?))
    }

    /// [`InstanceBook::decode_spec`], shared with the book.
    fn shared_spec(
        &self,
        key: &[u8],
        version: Option<u64>,
        bytes: &[u8],
    ) -> StoreResult<Arc<Instance>> {
        if let Some(version) = version {
            if let Some(spec) = self.kept_spec(key, version) {
                return Ok(spec);
            }
        }
        let instance: Arc<Instance> = Arc::new(crate::store::decode(bytes)?);
        // A batch's uncommitted value is decoded for its reader only.
        if let Some(version) = version.filter(|v| !crate::store::is_uncommitted(*v)) {
            let mut specs = crate::sync::write(&self.specs);
            if specs.len() >= MAX_DECODED_SPECS {
                specs.clear();
            }
            specs.insert(key.to_vec(), (version, instance.clone()));
        }
        Ok(instance)
    }

    /// The spec decoded from `version` of `key`, if kept.
    fn kept_spec(&self, key: &[u8], version: u64) -> Option<Arc<Instance>> {
        crate::sync::read(&self.specs)
            .get(key)
            .filter(|(cached, _)| *cached == version)
            .map(|(_, spec)| spec.clone())
    }
}

impl Compute {
    /// One instance, as `tx` reads it now (untracked).
    fn read_instance(
        &self,
        tx: &Tx<'_>,
        account_id: &str,
        instance_id: &str,
    ) -> StoreResult<Option<Instance>> {
        Ok(self
            .read_parts(tx, account_id, instance_id)?
            .map(|(spec, status)| {
                let mut instance = Arc::unwrap_or_clone(spec);
                if let Some(status) = status {
                    instance.set_status(status);
                }
                instance
            }))
    }

    /// One instance's spec (shared with the decoded-spec book) and status,
    /// as `tx` reads them now (untracked).
    fn read_parts(
        &self,
        tx: &Tx<'_>,
        account_id: &str,
        instance_id: &str,
    ) -> StoreResult<Option<(Arc<Instance>, Option<InstanceStatus>)>> {
        let key = instance_key(account_id, instance_id);
        let Some(version) = tx.peek_version(INSTANCES, &key)? else {
            return Ok(None);
        };
        let spec = match self.instances.kept_spec(&key, version) {
            Some(spec) => spec,
            None => {
                let Some(stored) = tx.peek(INSTANCES, &key)? else {
                    return Ok(None);
                };
                self.instances
                    .shared_spec(&key, Some(stored.version), &stored.value)?
            }
        };
        let status = tx.peek_record::<InstanceStatus>(INSTANCE_STATUS, &key)?;
        Ok(Some((spec, status)))
    }

    /// One page of the account's instances in launch order, for
    /// DescribeInstances: up to `limit` (all without one) after sequence
    /// `after` that pass `filter` (all without one), and whether more
    /// would follow. From the
    /// account's index while it holds (`instance_index`), else read from
    /// the store as far as the page needs.
    ///
    /// `whole` is true for the first page of a listing of everything: when
    /// the index no longer holds, that request waits for its turn to
    /// rebuild it (reading every instance's versions). A paged listing's
    /// first page rebuilds it only if no one else is; a later page never
    /// does (while the account keeps changing, a listing's later pages
    /// are read from the store, as far as each needs).
    pub async fn instance_page(
        &self,
        account_id: &str,
        (after, limit): (Option<u64>, Option<usize>),
        filter: Option<&(dyn Fn(&Instance) -> bool + Sync)>,
        whole: bool,
    ) -> ApiResult<Page> {
        if let Some(page) = self
            .indexed_page(account_id, (after, limit), filter, false)
            .await?
        {
            return Ok(page);
        }
        let turn = match (after, whole) {
            (None, true) => Some(self.listings.rebuild_turn(account_id).await),
            (None, false) => self.listings.free_rebuild_turn(account_id),
            (Some(_), _) => None,
        };
        if let Some(turn) = turn {
            let page = self
                .indexed_page(account_id, (after, limit), filter, true)
                .await?;
            drop(turn);
            if let Some(page) = page {
                return Ok(page);
            }
        }
        operation::read(&self.store, |tx| {
            self.unindexed_page(tx, account_id, (after, limit), filter)
        })
        .await
    }

    /// A page read from the store as `tx` sees it (not from the index).
    fn unindexed_page(
        &self,
        tx: &Tx<'_>,
        account_id: &str,
        (after, limit): (Option<u64>, Option<usize>),
        filter: Option<&(dyn Fn(&Instance) -> bool + Sync)>,
    ) -> ApiResult<Page> {
        let keep = |i: &Instance| filter.is_none_or(|f| f(i));
        let (page, more) = self.instance_page_in(tx, account_id, after, limit, &keep)?;
        Ok((page.into_iter().map(Listed::unindexed).collect(), more))
    }

    /// A page from the account's index (`None`: it no longer holds and
    /// `rebuild` was not asked); read from the store when the account is
    /// too big to index.
    async fn indexed_page(
        &self,
        account_id: &str,
        (after, limit): (Option<u64>, Option<usize>),
        filter: Option<&(dyn Fn(&Instance) -> bool + Sync)>,
        rebuild: bool,
    ) -> ApiResult<Option<Page>> {
        let read_parts = |tx: &Tx<'_>, id: &str| self.read_parts(tx, account_id, id);
        operation::read(&self.store, |tx| {
            let lookup =
                self.listings
                    .page(tx, account_id, (after, limit), filter, rebuild, read_parts)?;
            Ok::<_, crate::error::ApiError>(match lookup {
                Lookup::Page(page) => Some(page),
                Lookup::Stale => None,
                Lookup::TooBig => {
                    Some(self.unindexed_page(tx, account_id, (after, limit), filter)?)
                }
            })
        })
        .await
    }

    /// A page of the account's instances as `tx` reads them now (see
    /// [`Compute::instance_page`]).
    pub(super) fn instance_page_in(
        &self,
        tx: &Tx<'_>,
        account_id: &str,
        after: Option<u64>,
        limit: Option<usize>,
        keep: &impl Fn(&Instance) -> bool,
    ) -> ApiResult<(Vec<Instance>, bool)> {
        const MAX_CHUNK: usize = 256;
        // A page of N needs N + 1 entries (the one after tells whether more
        // follow) unless a filter skips some: start there, grow if needed.
        let mut chunk = limit.map_or(MAX_CHUNK, |l| (l + 1).min(MAX_CHUNK));
        let prefix = format!("{account_id}/");
        let mut cursor = after.map(|a| order_key(account_id, a));
        let mut page = Vec::new();
        loop {
            let entries =
                tx.scan_after(INSTANCE_ORDER, prefix.as_bytes(), cursor.as_deref(), chunk)?;
            let ids = entries
                .iter()
                .map(|(_, value)| crate::store::decode::<String>(value))
                .collect::<StoreResult<Vec<String>>>()?;
            tx.prefetch(&instance_keys(account_id, &ids))?;
            for id in &ids {
                let Some(instance) = self.read_instance(tx, account_id, id)? else {
                    continue;
                };
                if !keep(&instance) {
                    continue;
                }
                if limit.is_some_and(|limit| page.len() == limit) {
                    return Ok((page, true));
                }
                page.push(instance);
            }
            match entries.last() {
                Some((key, _)) if entries.len() == chunk => cursor = Some(key.clone()),
                _ => return Ok((page, false)),
            }
            chunk = MAX_CHUNK;
        }
    }

    /// The launch sequence the account's next instance will get: a listing
    /// that stops there shows what was launched before it began, however
    /// long its client takes to read it (`None`: no launch counted yet).
    pub async fn launch_horizon(&self, account_id: &str) -> ApiResult<Option<u64>> {
        operation::read(&self.store, |tx| {
            Ok(super::usage::next_launch_sequence(tx, account_id)?)
        })
        .await
    }

    /// The account's instances: those named (all must exist), or all, in
    /// launch order, starting after sequence `after`.
    pub async fn instances(
        &self,
        account_id: &str,
        ids: &[String],
        after: Option<u64>,
    ) -> ApiResult<Vec<Instance>> {
        operation::read(&self.store, |tx| {
            self.instances_in(tx, account_id, ids, after)
        })
        .await
    }

    /// The named instances (all must exist) in launch order, for
    /// DescribeInstances by id: each the one kept from the last time it
    /// was asked for while its records did not change, with what was
    /// rendered of it (`polled_instances`).
    pub async fn listed_instances(
        &self,
        account_id: &str,
        ids: &[String],
    ) -> ApiResult<Vec<Arc<Listed>>> {
        for id in ids {
            super::kinds::ResourceKind::Instance.check(id)?;
        }
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| instance_key(account_id, id)).collect();
        operation::read(&self.store, |tx| {
            let revision = tx.store_revision();
            let unchanged: Option<Vec<Arc<Listed>>> = keys
                .iter()
                .map(|key| self.polled.unchanged(key, revision))
                .collect();
            let mut found = match unchanged {
                Some(all) => all,
                None => {
                    tx.prefetch(&instance_keys(account_id, ids))?;
                    let mut found = Vec::with_capacity(ids.len());
                    let mut missing = Vec::new();
                    for (id, key) in ids.iter().zip(&keys) {
                        let read_parts = |tx: &Tx<'_>| self.read_parts(tx, account_id, id);
                        match self.polled.current(tx, key, revision, read_parts)? {
                            Some(listed) => found.push(listed),
                            None => missing.push(id.clone()),
                        }
                    }
                    if !missing.is_empty() {
                        return Err(instances_not_found(&missing));
                    }
                    found
                }
            };
            found.sort_by_key(|listed| listed.spec().sequence);
            found.dedup_by_key(|listed| listed.spec().sequence);
            Ok(found)
        })
        .await
    }

    /// [`Compute::instances`] as `tx` reads them now.
    pub(super) fn instances_in(
        &self,
        tx: &Tx<'_>,
        account_id: &str,
        ids: &[String],
        after: Option<u64>,
    ) -> ApiResult<Vec<Instance>> {
        for id in ids {
            super::kinds::ResourceKind::Instance.check(id)?;
        }
        if ids.is_empty() {
            return Ok(self
                .instance_page_in(tx, account_id, after, None, &|_| true)?
                .0);
        }
        tx.prefetch(&instance_keys(account_id, ids))?;
        let mut found = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.read_instance(tx, account_id, id)? {
                Some(instance) => found.push(instance),
                None => missing.push(id.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(instances_not_found(&missing));
        }
        found.sort_by_key(|i| i.sequence);
        found.dedup_by_key(|i| i.sequence);
        Ok(found)
    }

    /// The earliest scheduled transition, purge or token expiry.
    pub async fn next_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self
            .store
            .raw_scan(SCHEDULE, b"", None, 1)
            .await?
            .first()
            .and_then(|(key, _)| parse_schedule_key(key))
            .map(|(due, ..)| due))
    }
}
