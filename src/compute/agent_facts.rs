//! What an agent that really runs its instances (the namespace driver) is
//! told beyond their states, and the console output it sends back.
//!
//! EC2's hypervisor hands an instance its user data, its key pair's public
//! key and its network through the instance metadata service; here the
//! agent asks for them (`AgentDescribeLaunch`) and writes them into the
//! instance before it boots. Security groups are enforced on the host, so
//! the agent reads the rules of the groups its instances are in, and the
//! members of those groups among its instances, on every look
//! (`AgentDescribeFirewall`): a rule changed is enforced within one poll.
//! What the instance writes to its console is sent back
//! (`AgentPutConsoleOutput`) and kept, the last 64 KiB as EC2 keeps it, for
//! GetConsoleOutput; it goes with the instance when it is purged. An agent
//! is only ever told of instances placed on its host, except whether an
//! instance it keeps a stopped layer of still exists.

use super::instances::{self, Instance, InstanceState};
use super::keypairs::KeyPair;
use super::operation;
use super::security_groups::{SecurityGroup, SECURITY_GROUPS};
use super::Compute;
use crate::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub(crate) const CONSOLE_OUTPUT: &str = "console_output";

/// EC2 returns the most recent 64 KiB of console output.
pub const CONSOLE_LIMIT: usize = 64 * 1024;

/// An instance's console output, as its agent last sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleRecord {
    /// Base64 of at most [`CONSOLE_LIMIT`] bytes.
    pub output: String,
}

impl crate::store::Record for ConsoleRecord {}

/// What the agent needs to boot an instance.
#[derive(Debug, Clone)]
pub struct LaunchFacts {
    pub instance: Instance,
    /// The key pair's public key (OpenSSH format), while the pair exists.
    pub public_key: Option<String>,
    pub subnet_cidr: Option<String>,
    /// The catalogue image's root filesystem, when it names one.
    pub root_filesystem: Option<String>,
}

/// The instances placed on a host and the groups they are in.
#[derive(Debug, Clone)]
pub struct FirewallFacts {
    pub instances: Vec<Instance>,
    pub groups: Vec<SecurityGroup>,
}

impl Compute {
    /// One instance placed on `host` (not found otherwise).
    async fn placed_instance(
        &self,
        host: &str,
        account_id: &str,
        instance_id: &str,
    ) -> ApiResult<Instance> {
        let found = operation::read(&self.store, |tx| {
            Ok::<_, ApiError>(instances::load(
                &self.instances,
                tx,
                account_id,
                instance_id,
            )?)
        })
        .await?;
        found
            .filter(|instance| instance.host.as_deref() == Some(host))
            .ok_or_else(|| super::kinds::ResourceKind::Instance.not_found(instance_id))
    }

    /// AgentDescribeLaunch.
    pub async fn agent_launch(
        &self,
        host: &str,
        account_id: &str,
        instance_id: &str,
    ) -> ApiResult<LaunchFacts> {
        let instance = self.placed_instance(host, account_id, instance_id).await?;
        let public_key = match &instance.key_name {
            Some(name) => self
                .key_pair(account_id, name)
                .await?
                .map(|pair: KeyPair| pair.public_key),
            None => None,
        };
        let subnet_cidr = match &instance.subnet_id {
            Some(id) => Some(self.account_subnet(account_id, id).await?.subnet.cidr_block),
            None => None,
        };
        let root_filesystem = self
            .catalog()
            .root_filesystem(&instance.image_id)
            .map(str::to_string);
        Ok(LaunchFacts {
            instance,
            public_key,
            subnet_cidr,
            root_filesystem,
        })
    }

    /// AgentDescribeFirewall.
    pub async fn agent_firewall(&self, host: &str) -> ApiResult<FirewallFacts> {
        let instances = self.agent_instances(host).await?;
        let wanted: BTreeSet<Vec<u8>> = instances
            .iter()
            .flat_map(|instance| {
                instance
                    .security_groups
                    .iter()
                    .map(|group| super::security_groups::group_key(&instance.account_id, &group.id))
            })
            .collect();
        let groups = operation::read(&self.store, |tx| {
            let mut groups = Vec::with_capacity(wanted.len());
            for key in &wanted {
                if let Some(group) = tx.get::<SecurityGroup>(SECURITY_GROUPS, key)? {
                    groups.push(group);
                }
            }
            Ok::<_, ApiError>(groups)
        })
        .await?;
        Ok(FirewallFacts { instances, groups })
    }

    /// AgentPutConsoleOutput: keeps the last [`CONSOLE_LIMIT`] bytes.
    pub async fn put_console_output(
        &self,
        host: &str,
        account_id: &str,
        instance_id: &str,
        output: &[u8],
    ) -> ApiResult<()> {
        use base64::Engine;
        let kept = &output[output.len().saturating_sub(CONSOLE_LIMIT)..];
        let record = ConsoleRecord {
            output: base64::engine::general_purpose::STANDARD.encode(kept),
        };
        operation::run(&self.store, false, |tx| {
            let placed = instances::load(&self.instances, tx, account_id, instance_id)?
                .is_some_and(|instance| instance.host.as_deref() == Some(host));
            if !placed {
                return Err(super::kinds::ResourceKind::Instance.not_found(instance_id));
            }
            tx.put(
                CONSOLE_OUTPUT,
                instances::instance_key(account_id, instance_id),
                &record,
            );
            Ok(())
        })
        .await
    }

    /// The console output an agent sent for the instance (base64), if any.
    pub async fn console_output(
        &self,
        account_id: &str,
        instance_id: &str,
    ) -> ApiResult<Option<String>> {
        Ok(self
            .store
            .get_record::<ConsoleRecord>(
                CONSOLE_OUTPUT,
                &instances::instance_key(account_id, instance_id),
            )
            .await?
            .map(|record| record.output))
    }

    /// The state of each `(account, instance)` an agent keeps a stopped
    /// layer of: `terminated` once it is gone.
    pub async fn agent_kept_states(
        &self,
        kept: &[(String, String)],
    ) -> ApiResult<Vec<&'static str>> {
        operation::read(&self.store, |tx| {
            let mut states = Vec::with_capacity(kept.len());
            for (account_id, instance_id) in kept {
                let state = instances::load(&self.instances, tx, account_id, instance_id)?
                    .map_or(InstanceState::Terminated.name(), |i| i.state.name());
                states.push(state);
            }
            Ok::<_, ApiError>(states)
        })
        .await
    }
}
