//! The lifecycle driver: moves transitional states on by themselves.
//!
//! RunInstances answers `pending` and `aws ec2 wait instance-running` polls
//! until the instance is `running`; stop and terminate pass through
//! `stopping` and `shutting-down` the same way. Every change that schedules
//! a transition writes a `schedule/<due>/...` entry in its own commit; the
//! driver sleeps until the earliest entry (or until woken), and applies
//! each due one as an operation of its own: it re-reads the instance, does
//! nothing if the entry is stale (the instance moved on), and otherwise
//! writes the new status, releases the host's capacity and the private
//! address where the state says so, and deletes the entry, all in one
//! commit. Two drivers (two gateways) doing the same entry are harmless: one
//! commit wins, the other finds the entry gone. After a crash the entries
//! left are simply due. It sleeps on tokio's clock, so tests drive it with
//! `tokio::time::pause()`. ClientTokens are forgotten a day after their
//! instances are purged, through the same schedule.

use super::instances::{
    self, parse_schedule_key, schedule_key, ClientTokenRecord, Due, InstanceState, InstanceStatus,
    CLIENT_TOKENS, CLIENT_TOKEN_RETENTION_HOURS, INSTANCES, INSTANCE_STATUS, SCHEDULE,
};
use super::operation::{self, Tx};
use super::Compute;
use crate::error::ApiResult;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The longest the driver sleeps without looking again.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// The longest it sleeps on a store other processes write too (etcd): a
/// launch at another gateway cannot wake it, so it looks this often (one
/// small scan each time).
const SHARED_STORE_SLEEP: Duration = Duration::from_millis(200);

/// How long entries that failed wait before the next attempt.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A schedule entry: its key, when it is due, for what, account and id.
type DueEntry = (Vec<u8>, DateTime<Utc>, Due, String, String);

/// Schedule entries read per scan (the driver wakes on every launch, so a
/// scan that finds nothing due must stay small).
const BATCH: usize = 32;

/// The least time between two passes: transitions coming due one after
/// the other (a gateway launching thousands a second) are applied together
/// rather than in a pass, with its scans and commit, each. A transition is
/// at most this much later than its due time.
const PASS_INTERVAL: Duration = Duration::from_millis(20);

/// Runs forever; abort the task to stop it.
pub async fn drive(compute: Arc<Compute>) {
    let longest_sleep = if compute.store.backend().shared() {
        SHARED_STORE_SLEEP
    } else {
        MAX_SLEEP
    };
    loop {
        let pass_started = tokio::time::Instant::now();
        // During the pass every new transition nudges (it may be missed by
        // the pass's scan).
        compute.instances.plan_wake(None);
        let now = compute.clock.now();
        let failed = compute.advance_due(now).await.is_err();
        let wait = match compute.next_due().await {
            // After a failure, entries still due wait a moment (no spinning).
            Ok(Some(due)) => (due - compute.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .max(if failed {
                    RETRY_AFTER_FAILURE
                } else {
                    Duration::ZERO
                })
                .min(longest_sleep),
            Ok(None) => longest_sleep,
            Err(error) => {
                tracing::error!(%error, "cannot read the schedule");
                longest_sleep.max(RETRY_AFTER_FAILURE)
            }
        };
        compute.instances.plan_wake(Some(
            compute.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default(),
        ));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = compute.instances.wake.notified() => {}
        }
        tokio::time::sleep_until(pass_started + PASS_INTERVAL).await;
    }
}

impl Compute {
    /// Applies every schedule entry due at `now`: pending -> running,
    /// stopping -> stopped, shutting-down -> terminated (releasing capacity
    /// and the private address), purges terminated instances past their
    /// retention and forgets expired ClientTokens. Returns how many
    /// entries did something.
    pub async fn advance_due(&self, now: DateTime<Utc>) -> ApiResult<usize> {
        let mut changed = 0;
        let mut first_failure = None;
        // Entries that failed this pass (they are retried on the next one).
        let mut failed: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
        // A transition writes a few keys (up to 8, and its account's
        // listing marker, `instance_index`): a batch fits in one commit of
        // a store that limits commits (etcd's max_txn_ops).
        let batch = self
            .store
            .backend()
            .max_commit_ops()
            .map_or(BATCH, |max| (max / 9).clamp(1, BATCH));
        loop {
            let entries = self
                .store
                .raw_scan(SCHEDULE, b"", None, batch + failed.len())
                .await?;
            let due: Vec<DueEntry> = entries
                .iter()
                .map_while(|(key, _)| {
                    let (at, what, account, id) = parse_schedule_key(key)?;
                    (at <= now).then(|| (key.clone(), at, what, account, id))
                })
                .filter(|(key, ..)| !failed.contains(key))
                .collect();
            if due.is_empty() {
                break;
            }
            let complete_batch = due.len() == batch;
            // The whole batch in one commit (one write for many transitions,
            // as a busy gateway needs); if that keeps failing, one by one,
            // so that one entry that fails holds up no other.
            let together = operation::run_background(&self.store, |tx| {
                let mut did = 0;
                for entry in &due {
                    did += usize::from(self.advance_entry(tx, entry, now)?);
                }
                Ok(did)
            })
            .await;
            if let Ok(did) = together {
                changed += did;
            } else {
                for entry in due {
                    let outcome = operation::run_background(&self.store, |tx| {
                        self.advance_entry(tx, &entry, now)
                    })
                    .await;
                    match outcome {
                        Ok(did) => changed += usize::from(did),
                        Err(error) => {
                            tracing::error!(%error, account = %entry.3, id = %entry.4, "a due transition failed");
                            failed.insert(entry.0);
                            first_failure.get_or_insert(error);
                        }
                    }
                }
            }
            if !complete_batch {
                break;
            }
        }
        match first_failure {
            Some(error) => Err(error),
            None => Ok(changed),
        }
    }

    /// One schedule entry, in `tx`: nothing when it is gone (another
    /// driver did it).
    fn advance_entry(
        &self,
        tx: &mut Tx<'_>,
        (key, at, what, account_id, id): &DueEntry,
        now: DateTime<Utc>,
    ) -> ApiResult<bool> {
        if tx.get::<bool>(SCHEDULE, key)?.is_none() {
            return Ok(false);
        }
        match what {
            Due::Instance => self.advance_instance(tx, key, *at, account_id, id, now),
            Due::Token => forget_token(tx, key, account_id, id, now),
        }
    }

    /// One instance's due transition or purge, in `tx`.
    fn advance_instance(
        &self,
        tx: &mut Tx<'_>,
        entry: &[u8],
        at: DateTime<Utc>,
        account_id: &str,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<bool> {
        if boot_completed(&self.services, tx, entry, at, account_id, instance_id)? {
            return Ok(true);
        }
        let Some(before) = instances::load(&self.instances, tx, account_id, instance_id)? else {
            tx.delete(SCHEDULE, entry);
            return Ok(false);
        };
        if before.due() != Some(at) {
            // The instance moved on since this entry was written.
            tx.delete(SCHEDULE, entry);
            return Ok(false);
        }
        if before.state == InstanceState::Terminated {
            if before.purge_at.is_some_and(|at| at <= now) {
                instances::remove(tx, &before);
                if let Some(token) = &before.client_token {
                    let retention = self.lifecycle.terminated_retention;
                    expire_token_when_unused(tx, account_id, token, &before.id, now - retention)?;
                }
                return Ok(true);
            }
            return Ok(false);
        }
        if self.agent_watchdog(tx, &before, now)? {
            return Ok(true);
        }
        self.complete_transition(tx, &before, now)?;
        Ok(true)
    }

    /// The watchdog of a transition on an agent's host, which its agent
    /// completes by reporting it: while the host is alive, the transition
    /// waits another liveness window (true); once the host is dead, the
    /// gateway completes it itself (false: complete it as due), except a
    /// launch, which failed: the instance goes to terminated with EC2's
    /// `Server.InternalError` (true).
    fn agent_watchdog(
        &self,
        tx: &mut Tx<'_>,
        before: &instances::Instance,
        now: DateTime<Utc>,
    ) -> ApiResult<bool> {
        let Some(host) = before.host.as_deref() else {
            return Ok(false);
        };
        if !self.services.is_agent_host(tx, host)? {
            return Ok(false);
        }
        if self.services.is_host_alive(tx, host, now)? {
            let mut after = before.clone();
            after.transition_at = Some(now + self.services.liveness_window());
            instances::write_status(tx, before, &after);
            return Ok(true);
        }
        if before.state != InstanceState::Pending {
            return Ok(false);
        }
        let failed = instances::Instance {
            state: InstanceState::ShuttingDown,
            ..before.clone()
        };
        let mut after = self.complete_transition(tx, &failed, now)?;
        after.state_reason = Some(instances::StateReason {
            code: "Server.InternalError".into(),
            message: "Server.InternalError: Internal error on launch".into(),
        });
        instances::write_status(tx, &failed, &after);
        Ok(true)
    }

    /// Completes `before`'s transition in `tx`: pending -> running,
    /// stopping -> stopped (giving the host back), shutting-down ->
    /// terminated (giving back the host, addresses, interfaces and
    /// volumes). Done by the driver when the transition is due, or when an
    /// agent reports that it happened.
    pub(super) fn complete_transition(
        &self,
        tx: &mut Tx<'_>,
        before: &instances::Instance,
        now: DateTime<Utc>,
    ) -> ApiResult<instances::Instance> {
        let account_id = before.account_id.as_str();
        let before = before.clone();
        let retention = self.lifecycle.terminated_retention;
        let mut after = before.clone();
        after.transition_at = None;
        match before.state {
            InstanceState::Pending => {
                after.state = InstanceState::Running;
                after.state_reason = None;
            }
            InstanceState::Stopping => {
                after.state = InstanceState::Stopped;
                if let Some(host) = after.host.take() {
                    super::scheduler::release(tx, &host, before.demand())?;
                }
                if after.public_ip.is_some() {
                    super::public_addresses::release(tx, &mut after);
                    tx.put(INSTANCES, after.key(), &after);
                }
            }
            InstanceState::ShuttingDown => {
                after.state = InstanceState::Terminated;
                after.purge_at = Some(now + retention);
                if let Some(host) = after.host.take() {
                    super::scheduler::release(tx, &host, before.demand())?;
                }
                super::launch::release_private_ip(tx, &before);
                self.release_attached_interfaces(tx, &before)?;
                self.release_instance_volumes(tx, &before)?;
                super::public_addresses::release(tx, &mut after);
                // What it held is given back: the spec keeps only what a
                // terminated instance shows.
                after.retire();
                tx.put(INSTANCES, after.key(), &after);
            }
            _ => {}
        }
        if before.is_live() != after.is_live()
            || before.state.holds_capacity() != after.state.holds_capacity()
        {
            let mut usage = instances::usage(tx, account_id)?;
            instances::account_change(&mut usage, Some(&before), Some(&after));
            super::usage::write(tx, account_id, super::usage::Kind::Instances, &usage);
        }
        instances::write_status(tx, &before, &after);
        Ok(after)
    }
}

/// pending -> running, the most frequent transition, changes the status
/// alone (no capacity, usage or address moves): done from the status
/// record, without reading or decoding the spec. False when the entry is
/// for something else.
fn boot_completed(
    services: &super::services::ServiceRegistry,
    tx: &mut Tx<'_>,
    entry: &[u8],
    at: DateTime<Utc>,
    account_id: &str,
    instance_id: &str,
) -> ApiResult<bool> {
    let key = instances::instance_key(account_id, instance_id);
    let Some(status) = tx.get::<InstanceStatus>(INSTANCE_STATUS, &key)? else {
        return Ok(false);
    };
    if status.state != InstanceState::Pending
        || status.transition_at != Some(at)
        || status.purge_at.is_some()
    {
        return Ok(false);
    }
    // On an agent's host the agent completes the boot (the full path
    // keeps its watchdog).
    if let Some(host) = &status.host {
        if services.is_agent_host(tx, host)? {
            return Ok(false);
        }
    }
    tx.delete(SCHEDULE, entry);
    let running = InstanceStatus {
        state: InstanceState::Running,
        transition_at: None,
        state_reason: None,
        ..status
    };
    tx.put(INSTANCE_STATUS, key, &running);
    Ok(true)
}

/// Once no instance of `token` remains (`purged` goes in this commit),
/// schedules the token to be forgotten 24 hours after `terminated_at`.
fn expire_token_when_unused(
    tx: &mut Tx<'_>,
    account_id: &str,
    token: &str,
    purged: &str,
    terminated_at: DateTime<Utc>,
) -> ApiResult<()> {
    let key = format!("{account_id}/{token}").into_bytes();
    let Some(record) = tx.get::<ClientTokenRecord>(CLIENT_TOKENS, &key)? else {
        return Ok(());
    };
    if record.expires_at.is_some() {
        return Ok(());
    }
    for id in record.instance_ids.iter().filter(|id| *id != purged) {
        if tx
            .get::<instances::Instance>(INSTANCES, &instances::instance_key(account_id, id))?
            .is_some()
        {
            return Ok(());
        }
    }
    let expiry = terminated_at + chrono::Duration::hours(CLIENT_TOKEN_RETENTION_HOURS);
    tx.put(
        SCHEDULE,
        schedule_key(expiry, Due::Token, account_id, token),
        &true,
    );
    tx.put(
        CLIENT_TOKENS,
        key,
        &ClientTokenRecord {
            expires_at: Some(expiry),
            ..record
        },
    );
    Ok(())
}

/// A token's expiry entry: forgets the token.
fn forget_token(
    tx: &mut Tx<'_>,
    entry: &[u8],
    account_id: &str,
    token: &str,
    now: DateTime<Utc>,
) -> ApiResult<bool> {
    tx.delete(SCHEDULE, entry);
    let key = format!("{account_id}/{token}").into_bytes();
    match tx.get::<ClientTokenRecord>(CLIENT_TOKENS, &key)? {
        Some(record) if record.expires_at.is_some_and(|at| at <= now) => {
            tx.delete(CLIENT_TOKENS, key);
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Lifecycle timing as durations.
#[derive(Debug, Clone)]
pub struct LifecycleTiming {
    pub boot_delay: chrono::Duration,
    pub stop_delay: chrono::Duration,
    pub terminate_delay: chrono::Duration,
    pub terminated_retention: chrono::Duration,
    /// NAT gateways: pending -> available, deleting -> deleted.
    pub nat_gateway_delay: chrono::Duration,
}

impl From<&crate::config::LifecycleConfig> for LifecycleTiming {
    fn from(config: &crate::config::LifecycleConfig) -> Self {
        let seconds = |s: u64| chrono::Duration::seconds(s as i64);
        Self {
            boot_delay: seconds(config.boot_delay_secs),
            stop_delay: seconds(config.stop_delay_secs),
            terminate_delay: seconds(config.terminate_delay_secs),
            terminated_retention: seconds(config.terminated_retention_secs),
            nat_gateway_delay: seconds(config.nat_gateway_delay_secs),
        }
    }
}
