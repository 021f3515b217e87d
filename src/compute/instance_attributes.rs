//! ModifyInstanceAttribute: the instance type and user data (stopped
//! instances only, as EC2 requires), API termination protection and the
//! shutdown behaviour.
//!
//! A change rewrites the instance's spec; the state it depends on is read
//! in the same operation, so a start racing a type change makes one of them
//! run again.

use super::instances::{instances_not_found, load, InstanceState, INSTANCES};
use super::Compute;
use crate::error::{ApiError, ApiResult};

/// A change ModifyInstanceAttribute makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeChange {
    /// Stopped instances only; the type must exist and match the image.
    InstanceType(String),
    /// Base64; stopped instances only.
    UserData(String),
    DisableApiTermination(bool),
    /// `stop` or `terminate`.
    ShutdownBehavior(String),
}

impl Compute {
    /// ModifyInstanceAttribute: changes the spec; the state it depends on
    /// (stopped, not terminated) is read in the same operation.
    pub async fn modify_instance(
        &self,
        account_id: &str,
        instance_id: &str,
        change: AttributeChange,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::Instance.check(instance_id)?;
        super::operation::run(&self.store, dry_run, |tx| {
            let before = load(&self.instances, tx, account_id, instance_id)?
                .ok_or_else(|| instances_not_found(&[instance_id.to_string()]))?;
            if before.state == InstanceState::Terminated {
                return Err(ApiError::IncorrectInstanceState(format!(
                    "The instance '{instance_id}' is terminated."
                )));
            }
            let must_be_stopped = matches!(
                change,
                AttributeChange::InstanceType(_) | AttributeChange::UserData(_)
            );
            if must_be_stopped && before.state != InstanceState::Stopped {
                return Err(ApiError::IncorrectInstanceState(format!(
                    "The instance '{instance_id}' is not in the 'stopped' state."
                )));
            }
            let mut after = before.clone();
            match &change {
                AttributeChange::InstanceType(name) => {
                    let instance_type = self.catalog.instance_type(name).ok_or_else(|| {
                        ApiError::invalid_value(format!(
                            "The instance type '{name}' does not exist"
                        ))
                    })?;
                    if instance_type.architecture != before.architecture {
                        return Err(ApiError::invalid_value(format!(
                            "The instance type '{name}' ({}) does not match the architecture of the instance's image ({})",
                            instance_type.architecture, before.architecture
                        )));
                    }
                    after.instance_type = instance_type.name.clone();
                    after.vcpus = instance_type.vcpus;
                    after.memory_mib = instance_type.memory_mib;
                }
                AttributeChange::UserData(data) => after.user_data = Some(data.clone()),
                AttributeChange::DisableApiTermination(value) => {
                    after.disable_api_termination = *value
                }
                AttributeChange::ShutdownBehavior(value) => after.shutdown_behavior = value.clone(),
            }
            tx.put(INSTANCES, after.key(), &after);
            Ok(())
        })
        .await
    }
}
