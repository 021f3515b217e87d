//! StartInstances, StopInstances, RebootInstances, TerminateInstances.
//!
//! Every id must exist and be in a state the action accepts, or nothing
//! changes (EC2 answers the whole request or refuses it). One operation
//! reads the instances' status, the account's instance usage and, for a
//! start, the hosts' usage; it writes the new status with its scheduled
//! transition and the usage, on the condition that nothing it read moved
//! (the lifecycle advancing an instance meanwhile makes it run again).

use super::instances::{
    self, check_transition, instances_not_found, user_initiated, InstanceState, StateAction,
    StateChange, StateReason,
};
use super::operation;
use super::Compute;
use crate::error::{ApiError, ApiResult};
use std::collections::HashSet;

impl Compute {
    /// Start, Stop, Reboot or Terminate `ids`.
    pub async fn change_state(
        &self,
        account_id: &str,
        ids: &[String],
        action: StateAction,
        dry_run: bool,
    ) -> ApiResult<Vec<StateChange>> {
        for id in ids {
            super::kinds::ResourceKind::Instance.check(id)?;
        }
        let now = self.clock.now();
        let lifecycle = &self.lifecycle;
        let vcpu_limit = u64::from(self.vcpu_limit().await?);
        let changes = operation::run(&self.store, dry_run, |tx| {
            let mut seen = HashSet::new();
            let mut current = Vec::new();
            let mut missing = Vec::new();
            for id in ids {
                if !seen.insert(id.as_str()) {
                    continue;
                }
                match instances::load(&self.instances, tx, account_id, id)? {
                    Some(instance) => current.push(instance),
                    None => missing.push(id.clone()),
                }
            }
            if !missing.is_empty() {
                return Err(instances_not_found(&missing));
            }
            current.sort_by_key(|i| i.sequence);
            for instance in &current {
                check_transition(instance, action)?;
            }
            let mut usage = instances::usage(tx, account_id)?;
            let mut placement = None;
            let mut changes = Vec::new();
            for before in &current {
                let mut after = before.clone();
                match (action, before.state) {
                    // Its agent restarts a real instance's init; the state
                    // stays `running`, as in EC2.
                    (StateAction::Reboot, _) => after.reboots = before.reboots.wrapping_add(1),
                    (StateAction::Start, InstanceState::Stopped) => {
                        // A start takes vCPUs again: the quota holds here too.
                        if usage.amount + u64::from(before.vcpus) > vcpu_limit {
                            return Err(ApiError::VcpuLimitExceeded(format!(
                                "Starting {} would exceed your vCPU limit of {vcpu_limit}.",
                                before.id
                            )));
                        }
                        let placement = match &mut placement {
                            Some(placement) => placement,
                            None => placement.insert(self.services.placement(tx)?),
                        };
                        let host = placement
                            .place(
                                tx,
                                Some(&before.availability_zone),
                                before.demand(),
                                self.scheduler_policy,
                                now,
                            )?
                            .ok_or_else(|| {
                                ApiError::InsufficientInstanceCapacity(format!(
                                    "Insufficient capacity to start {} in {}: no compute host has room for {}",
                                    before.id, before.availability_zone, before.instance_type
                                ))
                            })?;
                        let on_agent = host.agent.is_some();
                        after.host = Some(host.host);
                        let boot = if on_agent {
                            self.services.liveness_window()
                        } else {
                            lifecycle.boot_delay
                        };
                        if after.assign_public_ip && after.public_ip.is_none() {
                            super::public_addresses::renew(tx, &self.public_ip_pool, &mut after, now)?;
                            tx.put(super::instances::INSTANCES, after.key(), &after);
                        }
                        after.state = InstanceState::Pending;
                        after.transition_at = Some(now + boot);
                        after.reason = None;
                        after.state_reason = Some(StateReason {
                            code: "pending".into(),
                            message: "pending".into(),
                        });
                    }
                    (StateAction::Stop, InstanceState::Pending | InstanceState::Running) => {
                        after.state = InstanceState::Stopping;
                        after.transition_at = Some(self.transition_due(
                            tx,
                            before.host.as_deref(),
                            lifecycle.stop_delay,
                            now,
                        )?);
                        after.reason = Some(user_initiated(now));
                        after.state_reason = Some(StateReason::user_initiated());
                    }
                    (StateAction::Terminate, state)
                        if state != InstanceState::Terminated
                            && state != InstanceState::ShuttingDown =>
                    {
                        after.state = InstanceState::ShuttingDown;
                        after.transition_at = Some(self.transition_due(
                            tx,
                            before.host.as_deref(),
                            lifecycle.terminate_delay,
                            now,
                        )?);
                        after.reason = Some(user_initiated(now));
                        after.state_reason = Some(StateReason::user_initiated());
                    }
                    // Already where the action leads (stop a stopped instance,
                    // start a running one, terminate twice): nothing to do.
                    _ => {}
                }
                changes.push(StateChange {
                    instance_id: before.id.clone(),
                    previous: before.state,
                    current: after.state,
                });
                if &after != before {
                    instances::account_change(&mut usage, Some(before), Some(&after));
                    instances::write_status(tx, before, &after);
                }
            }
            if tx.has_writes() {
                super::usage::write(tx, account_id, super::usage::Kind::Instances, &usage);
            }
            Ok(changes)
        })
        .await?;
        self.instances.wake.notify_one();
        Ok(changes)
    }

    /// When a transition of an instance on `host` that starts at `now`
    /// is due: after `delay` on a built-in or admin-heartbeated host (or
    /// none); on an agent's live host, when the agent reports it, with a
    /// watchdog at the liveness window (see [`Compute::agent_watchdog`]);
    /// on an agent's dead host, after `delay` (the gateway's record wins,
    /// and the agent finds the instance gone when it comes back).
    pub(super) fn transition_due(
        &self,
        tx: &operation::Tx<'_>,
        host: Option<&str>,
        delay: chrono::Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<chrono::DateTime<chrono::Utc>> {
        if let Some(host) = host {
            if self.services.is_agent_host(tx, host)?
                && self.services.is_host_alive(tx, host, now)?
            {
                return Ok(now + self.services.liveness_window());
            }
        }
        Ok(now + delay)
    }
}
