//! The simulated driver: instances that boot, stop and shut down after
//! a configured delay each, as the built-in hosts' instances do inside
//! the gateway. Nothing runs; it is the default driver and the one the
//! load tests use.

use super::driver::{Assigned, Driver};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Instances that boot, stop and shut down after a fixed time each.
pub struct SimulatedDriver {
    transition: Duration,
    /// Instance id -> (the state it is heading for, when it gets there).
    underway: HashMap<String, (&'static str, Instant)>,
}

impl SimulatedDriver {
    pub fn new(transition: Duration) -> Self {
        Self {
            transition,
            underway: HashMap::new(),
        }
    }
}

impl Driver for SimulatedDriver {
    fn observe(&mut self, instance: &Assigned, now: Instant) -> Option<&'static str> {
        let target = match instance.state.as_str() {
            "pending" => "running",
            "stopping" => "stopped",
            "shutting-down" => "terminated",
            // Running (or taken back after a restart): nothing to do.
            _ => {
                self.underway.remove(&instance.instance_id);
                return None;
            }
        };
        let transition = self.transition;
        let (heading, ready_at) = self
            .underway
            .entry(instance.instance_id.clone())
            .or_insert((target, now + transition));
        if *heading != target {
            *heading = target;
            *ready_at = now + transition;
        }
        (now >= *ready_at).then_some(target)
    }

    fn retain(&mut self, placed: &[Assigned]) {
        self.underway
            .retain(|id, _| placed.iter().any(|p| &p.instance_id == id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigned(state: &str) -> Assigned {
        Assigned {
            instance_id: "i-1".into(),
            owner_id: "111122223333".into(),
            state: state.into(),
            instance_type: "t3.micro".into(),
            reboots: 0,
        }
    }

    #[test]
    fn the_simulated_driver_reports_after_its_delay() {
        let mut driver = SimulatedDriver::new(Duration::from_millis(100));
        let start = Instant::now();
        assert_eq!(driver.observe(&assigned("pending"), start), None);
        assert_eq!(
            driver.observe(&assigned("pending"), start + Duration::from_millis(100)),
            Some("running")
        );
        assert_eq!(driver.observe(&assigned("running"), start), None);
        // A new target starts its own delay.
        let later = start + Duration::from_secs(1);
        assert_eq!(driver.observe(&assigned("shutting-down"), later), None);
        assert_eq!(
            driver.observe(
                &assigned("shutting-down"),
                later + Duration::from_millis(100)
            ),
            Some("terminated")
        );
        driver.retain(&[]);
        assert!(driver.underway.is_empty());
    }
}
