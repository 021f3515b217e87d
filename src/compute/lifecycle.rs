//! The lifecycle driver: moves transitional states on by themselves.
//!
//! RunInstances answers `pending` and `aws ec2 wait instance-running` polls
//! until the instance is `running`; stop and terminate pass through
//! `stopping` and `shutting-down` the same way. The driver sleeps until the
//! earliest scheduled transition (or until a new one is scheduled), applies
//! every transition that is due, and repeats. Transitions are scheduled
//! from persisted times, so after a crash or restart the instances left
//! mid-transition are simply due and complete at once. It sleeps on tokio's
//! clock, so tests drive it with `tokio::time::pause()`. The transitions
//! themselves (`Compute::advance_due`) live here too, with the forgetting of
//! ClientTokens a day after their instances terminated.

use super::instances::{
    Book, ClientTokenRecord, InstanceState, CLIENT_TOKENS, CLIENT_TOKEN_RETENTION_HOURS, INSTANCES,
};
use super::Compute;
use crate::error::ApiResult;
use crate::store::WriteBatch;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The longest the driver sleeps without looking again.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Runs forever; abort the task to stop it.
pub async fn drive(compute: Arc<Compute>) {
    loop {
        let now = compute.clock.now();
        if let Err(error) = compute.advance_due(now) {
            tracing::error!(%error, "lifecycle transition failed");
        }
        let wait = match compute.instances.next_due() {
            Some(due) => (due - compute.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = compute.instances.wake.notified() => {}
        }
    }
}

impl Compute {
    /// Advances every transition due at `now`: pending -> running,
    /// stopping -> stopped, shutting-down -> terminated (releasing capacity),
    /// and purges terminated instances past their retention. Returns how
    /// many instances changed.
    pub fn advance_due(&self, now: DateTime<Utc>) -> ApiResult<usize> {
        let mut book = crate::sync::lock(&self.instances.book);
        let due: Vec<(String, String)> = book
            .schedule
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .map(|(_, account, id)| (account.clone(), id.clone()))
            .collect();
        let expired_tokens: Vec<(DateTime<Utc>, String, String)> = book
            .token_expiry
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .cloned()
            .collect();
        if due.is_empty() && expired_tokens.is_empty() {
            return Ok(0);
        }
        let book = &mut *book;
        let retention = self.lifecycle.terminated_retention;
        let (changed, _) = self.services.transaction(|hosts| {
            let mut changed = 0;
            for (account_id, id) in &due {
                let Some(before) = book.get(account_id, id).cloned() else {
                    continue;
                };
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
                            hosts.release(&host, before.demand());
                        }
                    }
                    InstanceState::ShuttingDown => {
                        after.state = InstanceState::Terminated;
                        after.retire();
                        after.purge_at = Some(now + retention);
                        if let Some(host) = after.host.take() {
                            hosts.release(&host, before.demand());
                        }
                    }
                    InstanceState::Terminated if before.purge_at.is_some_and(|at| at <= now) => {
                        hosts.batch.delete(INSTANCES, before.key());
                        book.remove(&before);
                        if let Some(token) = &before.client_token {
                            expire_token_when_unused(
                                book,
                                &mut hosts.batch,
                                account_id,
                                token,
                                now - retention,
                            );
                        }
                        changed += 1;
                        continue;
                    }
                    _ => {}
                }
                hosts.batch.put_record(INSTANCES, after.key(), &after);
                book.update(&before, after);
                changed += 1;
            }
            for entry in &expired_tokens {
                book.token_expiry.remove(entry);
                book.tokens.remove(&(entry.1.clone(), entry.2.clone()));
                hosts.batch.delete(
                    CLIENT_TOKENS,
                    format!("{}/{}", entry.1, entry.2).into_bytes(),
                );
            }
            Ok(changed)
        })?;
        Ok(changed)
    }
}

/// Once no instance of `token` remains, schedules the token to be forgotten
/// 24 hours after `terminated_at`.
fn expire_token_when_unused(
    book: &mut Book,
    batch: &mut WriteBatch,
    account_id: &str,
    token: &str,
    terminated_at: DateTime<Utc>,
) {
    let key = (account_id.to_string(), token.to_string());
    let Some(record) = book.tokens.get(&key) else {
        return;
    };
    if record.expires_at.is_some()
        || record
            .instance_ids
            .iter()
            .any(|id| book.get(account_id, id).is_some())
    {
        return;
    }
    let expiry = terminated_at + chrono::Duration::hours(CLIENT_TOKEN_RETENTION_HOURS);
    let record = ClientTokenRecord {
        expires_at: Some(expiry),
        ..record.clone()
    };
    batch.put_record(
        CLIENT_TOKENS,
        format!("{account_id}/{token}").into_bytes(),
        &record,
    );
    book.token_expiry
        .insert((expiry, key.0.clone(), key.1.clone()));
    book.tokens.insert(key, record);
}

/// Lifecycle timing as durations.
#[derive(Debug, Clone)]
pub struct LifecycleTiming {
    pub boot_delay: chrono::Duration,
    pub stop_delay: chrono::Duration,
    pub terminate_delay: chrono::Duration,
    pub terminated_retention: chrono::Duration,
}

impl From<&crate::config::LifecycleConfig> for LifecycleTiming {
    fn from(config: &crate::config::LifecycleConfig) -> Self {
        let seconds = |s: u64| chrono::Duration::seconds(s as i64);
        Self {
            boot_delay: seconds(config.boot_delay_secs),
            stop_delay: seconds(config.stop_delay_secs),
            terminate_delay: seconds(config.terminate_delay_secs),
            terminated_retention: seconds(config.terminated_retention_secs),
        }
    }
}
