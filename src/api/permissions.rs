//! The permission changes ModifyImageAttribute (`launchPermission`) and
//! ModifySnapshotAttribute (`createVolumePermission`) take, in both forms
//! EC2 accepts: `<List>.Add.N`/`.Remove.N` with `UserId` or `Group`, or
//! `OperationType` with `UserId.N` and `UserGroup.N`.

use crate::compute::image_sharing::{Grantee, PermissionChange};
use crate::error::{ApiError, ApiResult};
use crate::protocol::Params;

/// The change `params` ask for, `list` naming its structured form
/// (`LaunchPermission` or `CreateVolumePermission`).
pub fn permission_change(params: &Params, list: &str) -> ApiResult<PermissionChange> {
    let grantee = |user: Option<&str>, group: Option<&str>| -> ApiResult<Grantee> {
        match (user, group) {
            (Some(id), None) => Ok(Grantee::Account(id.to_string())),
            (None, Some("all")) => Ok(Grantee::All),
            (None, Some(other)) => Err(ApiError::invalid_value(format!(
                "Value ({other}) for parameter group is invalid. Expecting all."
            ))),
            _ => Err(ApiError::InvalidParameterCombination(format!(
                "A {list} names a UserId or a Group"
            ))),
        }
    };
    let mut change = PermissionChange::default();
    for permission in params.structures(&format!("{list}.Add"))? {
        change
            .add
            .push(grantee(permission.get("UserId"), permission.get("Group"))?);
    }
    for permission in params.structures(&format!("{list}.Remove"))? {
        change
            .remove
            .push(grantee(permission.get("UserId"), permission.get("Group"))?);
    }
    if let Some(operation) = params.optional("OperationType") {
        let mut named: Vec<Grantee> = params
            .list("UserId")?
            .into_iter()
            .map(Grantee::Account)
            .collect();
        for group in params.list("UserGroup")? {
            named.push(grantee(None, Some(&group))?);
        }
        match operation.as_str() {
            "add" => change.add.extend(named),
            "remove" => change.remove.extend(named),
            other => {
                return Err(ApiError::invalid_value(format!(
                "Value ({other}) for parameter operationType is invalid. Expecting add or remove."
            )))
            }
        }
    }
    if change.add.is_empty() && change.remove.is_empty() {
        return Err(ApiError::MissingParameter(list.to_string()));
    }
    Ok(change)
}
