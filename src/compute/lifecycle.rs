//! The lifecycle driver: moves transitional states on by themselves.
//!
//! RunInstances answers `pending` and `aws ec2 wait instance-running` polls
//! until the instance is `running`; stop and terminate pass through
//! `stopping` and `shutting-down` the same way. The driver sleeps until the
//! earliest scheduled transition (or until a new one is scheduled), applies
//! every transition that is due, and repeats. Transitions are scheduled
//! from persisted times, so after a crash or restart the instances left
//! mid-transition are simply due and complete at once. It sleeps on tokio's
//! clock, so tests drive it with `tokio::time::pause()`.

use super::Compute;
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
