//! What the store does, for the operator's metrics: commit latency,
//! conflicts and the operations that ran again because of them.
//!
//! The counters live with the [`super::StoreHandle`] every commit goes
//! through, whatever the backend; the operator listener registers them
//! (they are shared handles, so the registry reads the live values).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// The store's counters.
#[derive(Clone)]
pub struct StoreMetrics {
    /// Seconds per commit (checked and applied; durability excluded).
    pub commit_seconds: Histogram,
    /// Commits refused because a key they compared had changed.
    pub conflicts: Counter,
    /// Operations run again (after a conflict, or a refusal resting on
    /// reads that changed).
    pub retries: Counter,
    /// Operations that gave up after too many conflicts (answered 503).
    pub exhausted: Counter,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self {
            // 50 µs to about 26 s (a launch on a slow cluster must not fall
            // in +Inf).
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 20)),
            conflicts: Counter::default(),
            retries: Counter::default(),
            exhausted: Counter::default(),
        }
    }
}
