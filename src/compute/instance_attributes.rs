//! ModifyInstanceAttribute: the instance type and user data (stopped
//! instances only, as EC2 requires), API termination protection, the
//! shutdown behaviour, its security groups and source/destination check
//! (its primary interface's), and `DeleteOnTermination` of its attached
//! volumes.
//!
//! A change rewrites the instance's spec; the state it depends on is read
//! in the same operation, so a start racing a type change makes one of them
//! run again.

use super::instances::{instances_not_found, load, InstanceState, INSTANCES};
use super::network_interfaces::PrimaryInterface;
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
    /// Group ids, of the instance's VPC.
    Groups(Vec<String>),
    SourceDestCheck(bool),
    /// `(device, delete)` per attached volume named by its device.
    DeleteOnTermination(Vec<(String, bool)>),
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
                AttributeChange::Groups(ids) => {
                    let vpc_id = before.vpc_id.clone().unwrap_or_default();
                    after.security_groups = self.interface_groups(tx, account_id, &vpc_id, ids)?;
                }
                AttributeChange::SourceDestCheck(check) => {
                    let mut settings = after.primary_interface.clone().unwrap_or_default();
                    settings.source_dest_check = *check;
                    after.primary_interface =
                        Some(settings).filter(|p| p != &PrimaryInterface::default());
                }
                AttributeChange::DeleteOnTermination(devices) => {
                    let now = self.clock.now();
                    for (device, delete) in devices {
                        let listed = after
                            .block_devices
                            .iter_mut()
                            .find(|v| v.is_live(now) && &v.device == device)
                            .ok_or_else(|| {
                                ApiError::invalid_value(format!(
                                    "No volume is attached to instance '{instance_id}' at {device}"
                                ))
                            })?;
                        listed.delete_on_termination = *delete;
                        // The volume's own attachment says the same.
                        if let Some(mut volume) =
                            super::volumes::stored(tx, account_id, &listed.volume_id)?
                        {
                            if let Some(attachment) = volume.attachment.as_mut() {
                                attachment.delete_on_termination = *delete;
                            }
                            super::volumes::put(tx, &volume);
                        }
                    }
                }
            }
            tx.put(INSTANCES, after.key(), &after);
            Ok(())
        })
        .await
    }
}
