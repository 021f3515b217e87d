//! Locks that survive a panic.
//!
//! A panic in one request's handler must not break the requests after it
//! (the issue of a poisoned `std::sync::Mutex`: every later `lock()` fails).
//! The state these locks guard is kept consistent by the code that holds
//! them (it validates first and mutates last), so the value left behind by
//! a panicking holder is still usable: these helpers take it as it is.

use std::collections::HashSet;
use std::sync::{
    Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

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
/// account's request. Only accounts whose lock is held take any memory.
#[derive(Default)]
pub struct AccountLocks {
    busy: Mutex<HashSet<String>>,
    released: Condvar,
}

/// Holds one account's lock until dropped.
pub struct AccountGuard<'a> {
    locks: &'a AccountLocks,
    account_id: String,
}

impl AccountLocks {
    /// Waits until no one holds `account_id`'s lock, then takes it.
    pub fn lock(&self, account_id: &str) -> AccountGuard<'_> {
        let mut busy = lock(&self.busy);
        while busy.contains(account_id) {
            busy = self
                .released
                .wait(busy)
                .unwrap_or_else(PoisonError::into_inner);
        }
        busy.insert(account_id.to_string());
        AccountGuard {
            locks: self,
            account_id: account_id.to_string(),
        }
    }
}

impl Drop for AccountGuard<'_> {
    fn drop(&mut self) {
        lock(&self.locks.busy).remove(&self.account_id);
        self.locks.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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

    #[test]
    fn account_locks_exclude_one_account_only() {
        let locks = Arc::new(AccountLocks::default());
        let held = locks.lock("111111111111");
        // Another account is not held up.
        drop(locks.lock("222222222222"));
        let (sender, receiver) = std::sync::mpsc::channel();
        let waiter = {
            let locks = locks.clone();
            std::thread::spawn(move || {
                let _guard = locks.lock("111111111111");
                sender.send(()).unwrap();
            })
        };
        assert!(receiver
            .recv_timeout(std::time::Duration::from_millis(100))
            .is_err());
        drop(held);
        receiver
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        waiter.join().unwrap();
        assert!(lock(&locks.busy).is_empty());
    }
}
