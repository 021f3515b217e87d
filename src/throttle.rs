//! Per-account request rate limits, as EC2 throttles: token buckets.
//!
//! EC2 meters each account's API requests with token buckets per class of
//! action and answers `RequestLimitExceeded` (503) when a bucket is empty;
//! every SDK retries that with back-off. Here each account has two request
//! buckets: one for describes (reads are cheap but can be large) and one for
//! the actions that change something (each is a durable write). A bucket
//! holds up to `burst` tokens and refills at `per_second`; a request takes
//! one token. Like EC2's resource rate limit, a third bucket counts
//! instances launched (a RunInstances takes `MaxCount` tokens): every
//! launch leaves a terminated record behind for the retention hour, so the
//! rate of launches is what bounds the memory one account can fill. Only
//! authenticated accounts have buckets, so their number is bounded by the
//! accounts that exist.

use crate::config::RateLimits;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::time::Instant;

/// The class of an action, for metering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionClass {
    /// `Describe*` and `Get*`: reads.
    Describe,
    /// Everything else: writes.
    Mutate,
    /// Instances launched (not requests).
    InstanceLaunches,
}

impl ActionClass {
    /// Its name in the metrics' labels.
    pub fn name(self) -> &'static str {
        match self {
            ActionClass::Describe => "describe",
            ActionClass::Mutate => "mutate",
            ActionClass::InstanceLaunches => "instance_launches",
        }
    }

    pub fn of(action: &str) -> Self {
        if action.starts_with("Describe") || action.starts_with("Get") {
            ActionClass::Describe
        } else {
            ActionClass::Mutate
        }
    }
}

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// Every account's buckets.
pub struct Throttle {
    settings: RateLimits,
    buckets: Mutex<HashMap<(String, ActionClass), Bucket>>,
}

impl Throttle {
    pub fn new(settings: RateLimits) -> Self {
        Self {
            settings,
            buckets: Mutex::default(),
        }
    }

    /// Takes a token for one request of `account_id`; `false` when the
    /// account must slow down.
    pub fn admit(&self, account_id: &str, class: ActionClass) -> bool {
        self.admit_many(account_id, class, 1)
    }

    /// Takes `count` tokens of `class` for `account_id`, or none at all.
    pub fn admit_many(&self, account_id: &str, class: ActionClass, count: u32) -> bool {
        if !self.settings.enabled {
            return true;
        }
        let (per_second, burst) = match class {
            ActionClass::Describe => (
                self.settings.describe_per_second,
                self.settings.describe_burst,
            ),
            ActionClass::Mutate => (self.settings.mutate_per_second, self.settings.mutate_burst),
            ActionClass::InstanceLaunches => (
                self.settings.instances_per_second,
                self.settings.instance_burst,
            ),
        };
        let count = f64::from(count);
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        let bucket = buckets
            .entry((account_id.to_string(), class))
            .or_insert(Bucket {
                tokens: f64::from(burst),
                refilled_at: now,
            });
        let elapsed = now.duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * f64::from(per_second)).min(f64::from(burst));
        bucket.refilled_at = now;
        if bucket.tokens >= count {
            bucket.tokens -= count;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RateLimits {
        RateLimits {
            enabled: true,
            describe_per_second: 10,
            describe_burst: 3,
            mutate_per_second: 1,
            mutate_burst: 2,
            instances_per_second: 2,
            instance_burst: 10,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn launches_are_metered_by_instance() {
        let throttle = Throttle::new(limits());
        assert!(throttle.admit_many("a", ActionClass::InstanceLaunches, 8));
        assert!(!throttle.admit_many("a", ActionClass::InstanceLaunches, 3));
        assert!(throttle.admit_many("a", ActionClass::InstanceLaunches, 2));
        tokio::time::advance(std::time::Duration::from_secs(2)).await;
        assert!(throttle.admit_many("a", ActionClass::InstanceLaunches, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn buckets_empty_and_refill_per_account_and_class() {
        let throttle = Throttle::new(limits());
        for _ in 0..2 {
            assert!(throttle.admit("a", ActionClass::Mutate));
        }
        assert!(!throttle.admit("a", ActionClass::Mutate));
        // Another class and another account have their own buckets.
        assert!(throttle.admit("a", ActionClass::Describe));
        assert!(throttle.admit("b", ActionClass::Mutate));
        tokio::time::advance(std::time::Duration::from_millis(1100)).await;
        assert!(throttle.admit("a", ActionClass::Mutate));
        assert!(!throttle.admit("a", ActionClass::Mutate));
    }

    #[test]
    fn classes() {
        assert_eq!(ActionClass::of("DescribeInstances"), ActionClass::Describe);
        assert_eq!(ActionClass::of("GetConsoleOutput"), ActionClass::Describe);
        assert_eq!(ActionClass::of("RunInstances"), ActionClass::Mutate);
    }

    #[test]
    fn disabled_admits_everything() {
        let throttle = Throttle::new(RateLimits {
            enabled: false,
            ..limits()
        });
        for _ in 0..100 {
            assert!(throttle.admit("a", ActionClass::Mutate));
        }
    }
}
