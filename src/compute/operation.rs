//! One way to run an operation on the store: read, check, commit with
//! expectations, retry on conflict.
//!
//! An operation reads what it depends on (with versions), decides, and
//! returns a [`Commit`] whose expectations name what it read; the store
//! applies it only if nothing it read has changed. On a conflict the whole
//! operation runs again on fresh reads, a bounded number of times with
//! jittered back-off, so two gateways (or two requests) racing for one host,
//! one name or one ClientToken serialise on the store itself, with no lock
//! in the process. A DryRun stops just before the commit, after every check
//! has run. This is the contract every backend follows (memory and sled
//! today, etcd next): see ../shared/design/scale-out.md, section 3.

use crate::error::{ApiError, ApiResult};
use crate::store::{Commit, Committed, StoreHandle};
use std::time::Duration;

/// Attempts before an operation gives up on conflicts (each one re-reads).
pub const MAX_ATTEMPTS: u32 = 16;

/// What one attempt of an operation decided.
pub enum Decision<T> {
    /// Commit this, then answer `T`.
    Commit(Commit, T),
    /// Nothing to write (already done, e.g. a retried ClientToken): answer `T`.
    Answer(T),
}

/// Runs `attempt` until its commit applies (or it needs none), retrying on
/// conflicts with jittered back-off. With `dry_run`, answers
/// `DryRunOperation` where the commit would have been made; a refusal
/// (`Err`) from `attempt` always wins over the dry run.
pub async fn run<T>(
    store: &StoreHandle,
    dry_run: bool,
    mut attempt: impl FnMut() -> ApiResult<Decision<T>>,
) -> ApiResult<T> {
    for round in 0..MAX_ATTEMPTS {
        match attempt()? {
            Decision::Answer(output) => return Ok(output),
            Decision::Commit(commit, output) => {
                if dry_run {
                    return Err(ApiError::DryRunOperation);
                }
                match store.commit_checked(&commit).await? {
                    Committed::Applied { .. } => return Ok(output),
                    Committed::Conflict { keys } => {
                        tracing::debug!(
                            round,
                            conflicts = keys.len(),
                            "commit conflicted: retrying"
                        );
                        tokio::time::sleep(back_off(round)).await;
                    }
                }
            }
        }
    }
    tracing::warn!("an operation kept conflicting: gave up");
    Err(ApiError::ServiceUnavailable(
        "The request conflicted with concurrent changes too often; retry".into(),
    ))
}

/// 0 to 2^round milliseconds (at most 64), at random: concurrent losers do
/// not retry in lockstep.
fn back_off(round: u32) -> Duration {
    let ceiling = 1u64 << round.min(6);
    Duration::from_micros(rand::random::<u64>() % (ceiling * 1000 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Expect, MemoryStore, WriteBatch};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// Increments a counter by read-check-commit.
    async fn increment(store: &StoreHandle, attempts: &AtomicU32) -> ApiResult<u64> {
        run(store, false, || {
            attempts.fetch_add(1, Ordering::SeqCst);
            let current = store.get_versioned_record::<u64>("usage", b"counter")?;
            let mut commit = Commit::new();
            let next = match current {
                Some((value, version)) => {
                    commit.expect("usage", b"counter".to_vec(), Expect::At(version));
                    value + 1
                }
                None => {
                    commit.expect("usage", b"counter".to_vec(), Expect::Absent);
                    1
                }
            };
            commit
                .writes
                .put_record("usage", b"counter".to_vec(), &next);
            Ok(Decision::Commit(commit, next))
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_read_check_commit_loses_no_update() {
        let store = Arc::new(StoreHandle::new(Arc::new(MemoryStore::new())));
        let attempts = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (store, attempts) = (store.clone(), attempts.clone());
                tokio::spawn(async move { increment(&store, &attempts).await })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap().unwrap());
        }
        answers.sort();
        assert_eq!(
            answers,
            (1..=32).collect::<Vec<u64>>(),
            "each saw its own increment"
        );
        let (value, _) = store
            .get_versioned_record::<u64>("usage", b"counter")
            .unwrap()
            .unwrap();
        assert_eq!(value, 32);
        assert!(attempts.load(Ordering::SeqCst) >= 32);
    }

    #[tokio::test]
    async fn dry_run_stops_before_the_commit_and_refusals_win() {
        let store = StoreHandle::new(Arc::new(MemoryStore::new()));
        let mut commit = Commit::new();
        commit.writes = {
            let mut batch = WriteBatch::new();
            batch.put("names", b"web".to_vec(), b"x".to_vec());
            batch
        };
        let dry = run(&store, true, || Ok(Decision::Commit(commit.clone(), ()))).await;
        assert_eq!(dry.unwrap_err(), ApiError::DryRunOperation);
        assert!(
            store.raw("names", b"web").unwrap().is_none(),
            "nothing written"
        );
        let refused: ApiResult<()> =
            run(&store, true, || Err(ApiError::invalid_value("bad"))).await;
        assert_eq!(refused.unwrap_err().code(), "InvalidParameterValue");
        let answered = run(&store, false, || Ok(Decision::Answer(7))).await;
        assert_eq!(answered.unwrap(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn endless_conflicts_give_up_with_a_retryable_error() {
        let store = StoreHandle::new(Arc::new(MemoryStore::new()));
        let mut batch = WriteBatch::new();
        batch.put("names", b"web".to_vec(), b"x".to_vec());
        store.apply(&batch).unwrap();
        let mut commit = Commit::new();
        commit.expect("names", b"web".to_vec(), Expect::Absent);
        let outcome: ApiResult<()> =
            run(&store, false, || Ok(Decision::Commit(commit.clone(), ()))).await;
        assert_eq!(outcome.unwrap_err().code(), "ServiceUnavailable");
    }
}
