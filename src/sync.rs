//! Locks that survive a panic.
//!
//! A panic in one request's handler must not break the requests after it
//! (the issue of a poisoned `std::sync::Mutex`: every later `lock()` fails).
//! These helpers take the value a panicking holder left behind as it is.
//! Most holders validate first and mutate last; the host registry's
//! transaction puts its snapshot back when its closure panics. What remains
//! (in-memory views updated before their store write) is the subject of the
//! store-contract work that removes these caches as the basis of decisions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, recovering it from a panicked holder.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `lock`, recovering it from a panicked writer.
pub fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `lock`, recovering it from a panicked holder.
pub fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// One exclusive lock per account, for a family of resources: a request
/// that checks and writes one account's resources never waits for another
/// account's request, and waiting is asynchronous (a runtime worker is
/// never parked on it: with two workers, two requests of one account
/// waiting on each other would otherwise stall every account). Only
/// accounts whose lock is held or awaited take any memory.
#[derive(Default)]
pub struct AccountLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Holds one account's lock until dropped.
pub struct AccountGuard<'a> {
    locks: &'a AccountLocks,
    account_id: String,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl AccountLocks {
    /// Waits until no one holds `account_id`'s lock, then takes it.
    pub async fn lock(&self, account_id: &str) -> AccountGuard<'_> {
        let mutex = lock(&self.locks)
            .entry(account_id.to_string())
            .or_default()
            .clone();
        AccountGuard {
            locks: self,
            account_id: account_id.to_string(),
            held: Some(mutex.lock_owned().await),
        }
    }

    /// Accounts with a lock held or awaited.
    pub fn len(&self) -> usize {
        lock(&self.locks).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for AccountGuard<'_> {
    fn drop(&mut self) {
        let mut locks = lock(&self.locks.locks);
        drop(self.held.take());
        // Nobody else holds or awaits it (only the map's reference is
        // left): forget it. Lockers clone under the same map lock, so this
        // cannot race with a new one.
        if locks
            .get(&self.account_id)
            .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
        {
            locks.remove(&self.account_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicked_holder_does_not_break_later_lockers() {
        let shared = Arc::new(Mutex::new(1));
        let clone = shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = clone.lock().unwrap();
            panic!("handler bug");
        })
        .join();
        assert!(shared.is_poisoned());
        *lock(&shared) += 1;
        assert_eq!(*lock(&shared), 2);
    }

    #[tokio::test]
    async fn account_locks_exclude_one_account_only() {
        let locks = Arc::new(AccountLocks::default());
        let held = locks.lock("111111111111").await;
        // Another account is not held up.
        drop(locks.lock("222222222222").await);
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _guard = locks.lock("111111111111").await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        waiter.await.unwrap();
        assert!(locks.is_empty(), "released locks are forgotten");
    }
}
