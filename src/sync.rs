//! Locks that survive a panic.
//!
//! A panic in one request's handler must not break the requests after it
//! (the issue of a poisoned `std::sync::Mutex`: every later `lock()` fails).
//! These helpers take the value a panicking holder left behind as it is.
//! No lock here guards an EC2 invariant (those are the store's, see
//! `compute::operation`): they protect process-local bookkeeping such as
//! rate-limit buckets, connection counts and derived caches.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

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

/// Removes from `map` the values `unwanted` picks and returns them, so
/// that the caller frees them after letting go of the lock `map` is under
/// (what a cache's idle sweep drops can be large).
pub fn take_where<K, V>(
    map: &mut std::collections::HashMap<K, V>,
    mut unwanted: impl FnMut(&V) -> bool,
) -> Vec<V>
where
    K: Eq + std::hash::Hash + Clone,
{
    let keys: Vec<K> = map
        .iter()
        .filter(|(_, value)| unwanted(value))
        .map(|(key, _)| key.clone())
        .collect();
    keys.iter().filter_map(|key| map.remove(key)).collect()
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
}
