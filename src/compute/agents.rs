//! Compute agents: hosts that are processes of their own (`ec2-gateway
//! agent`), as Nova's compute services were.
//!
//! An agent registers its host (zone, capacity, address, version), proves
//! liveness with heartbeats that write only the host's liveness key (never
//! the records placements compare on), lists the instances placed on it,
//! and reports what it observed of them. On an agent's host no timer moves
//! an instance on: pending -> running, stopping -> stopped and
//! shutting-down -> terminated complete when the agent reports them, so
//! what DescribeInstances says is what the host did. Each report is an
//! operation of its own that completes the transition only if the
//! instance is still placed on the reporting host and still in the state
//! the report moves it out of: a late or repeated report changes nothing.
//! An agent only ever acts for its own host: its credential names the host
//! (`api::agents`), and it never holds the store's keys.

use super::instances::{self, Instance, InstanceState, HOST_INSTANCES};
use super::operation;
use super::services::{AgentInfo, NewHost, ServiceRecord};
use super::Compute;
use crate::error::{ApiError, ApiResult};

/// What an agent may report of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Running,
    Stopped,
    Terminated,
}

impl Observed {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "running" => Some(Self::Running),
            "stopped" => Some(Self::Stopped),
            "terminated" => Some(Self::Terminated),
            _ => None,
        }
    }

    /// The state an instance must be in for this report to complete its
    /// transition.
    fn completes(self) -> InstanceState {
        match self {
            Self::Running => InstanceState::Pending,
            Self::Stopped => InstanceState::Stopping,
            Self::Terminated => InstanceState::ShuttingDown,
        }
    }
}

impl Compute {
    /// AgentRegister: the agent's host, registered or updated.
    pub async fn register_agent(
        &self,
        host: NewHost,
        agent: AgentInfo,
    ) -> ApiResult<ServiceRecord> {
        self.services
            .register_agent(host, agent, self.clock.now())
            .await
    }

    /// The instances placed on `host`, in key order (account, then id).
    pub async fn agent_instances(&self, host: &str) -> ApiResult<Vec<Instance>> {
        let prefix = format!("{host}/");
        operation::read(&self.store, |tx| {
            let keys: Vec<(String, String)> = tx
                .scan_entries(HOST_INSTANCES, prefix.as_bytes())?
                .into_iter()
                .filter_map(|(key, _)| {
                    let text = String::from_utf8(key).ok()?;
                    let mut parts = text.splitn(3, '/').skip(1);
                    Some((parts.next()?.to_string(), parts.next()?.to_string()))
                })
                .collect();
            let wanted: Vec<(&'static str, Vec<u8>)> = keys
                .iter()
                .flat_map(|(account, id)| {
                    let key = instances::instance_key(account, id);
                    [
                        (instances::INSTANCES, key.clone()),
                        (instances::INSTANCE_STATUS, key),
                    ]
                })
                .collect();
            tx.prefetch(&wanted)?;
            let mut found = Vec::with_capacity(keys.len());
            for (account, id) in &keys {
                if let Some(instance) = instances::load(&self.instances, tx, account, id)? {
                    if instance.host.as_deref() == Some(host) {
                        found.push(instance);
                    }
                }
            }
            Ok::<_, ApiError>(found)
        })
        .await
    }

    /// AgentReportInstanceState: `host`'s agent observed `observed` of an
    /// instance. Completes the instance's transition when it is placed on
    /// `host` and in the state the report completes; answers the state the
    /// instance is in afterwards.
    pub async fn report_observed(
        &self,
        host: &str,
        account_id: &str,
        instance_id: &str,
        observed: Observed,
    ) -> ApiResult<InstanceState> {
        let now = self.clock.now();
        operation::run(&self.store, false, |tx| {
            let Some(before) = instances::load(&self.instances, tx, account_id, instance_id)?
            else {
                return Err(super::kinds::ResourceKind::Instance.not_found(instance_id));
            };
            // Only what is placed on the agent's host is its to report
            // (a stopped or terminated instance has no host any more).
            if before.host.as_deref() != Some(host) {
                return Err(super::kinds::ResourceKind::Instance.not_found(instance_id));
            }
            if before.state != observed.completes() {
                return Ok(before.state);
            }
            Ok(self.complete_transition(tx, &before, now)?.state)
        })
        .await
    }
}
