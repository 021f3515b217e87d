//! Internet gateways: CreateInternetGateway, Attach/DetachInternetGateway,
//! DeleteInternetGateway, and the account's gateways for
//! DescribeInternetGateways.
//!
//! As in EC2, a gateway is attached to at most one VPC and a VPC has at
//! most one gateway (`Resource.AlreadyAssociated`); detaching from a VPC it
//! is not attached to is `Gateway.NotAttached`; an attached gateway is not
//! deleted (`DependencyViolation`), nor a VPC with a gateway attached.
//! Routes that name a detached or deleted gateway turn `blackhole`
//! (`route_tables`). Gateways live under `internet_gateways/<account>/<id>`.
//! An attach rewrites the VPC record unchanged and reads the account's
//! gateways with the gateway usage record, so a concurrent DeleteVpc or a
//! second attach to the same VPC conflicts and runs again.

use super::instances::Tag;
use super::operation::{self, Tx};
use super::usage::{Kind, Usage};
use super::Compute;
use crate::error::{codes, ApiError, ApiResult};
use crate::store::StoreResult;
use serde::{Deserialize, Serialize};

/// `<account>/<igw-id>`.
pub(crate) const INTERNET_GATEWAYS: &str = "internet_gateways";

/// An internet gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternetGateway {
    pub id: String,
    pub account_id: String,
    /// The VPC it is attached to.
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl crate::store::Record for InternetGateway {}

fn key(account_id: &str, id: &str) -> Vec<u8> {
    format!("{account_id}/{id}").into_bytes()
}

fn not_found(id: &str) -> ApiError {
    super::kinds::ResourceKind::InternetGateway.not_found(id)
}

/// The account's gateway usage in `tx` (rewritten by every create,
/// attach, detach and delete).
pub(super) fn gateway_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<Usage> {
    super::usage::read(tx, account_id, Kind::InternetGateways, |tx| {
        super::usage::count_of(tx, INTERNET_GATEWAYS, format!("{account_id}/").as_bytes())
    })
}

/// A gateway of the account, read in `tx`.
pub(super) fn gateway_in(
    tx: &mut Tx<'_>,
    account_id: &str,
    id: &str,
) -> ApiResult<InternetGateway> {
    tx.get::<InternetGateway>(INTERNET_GATEWAYS, &key(account_id, id))?
        .ok_or_else(|| not_found(id))
}

/// Every gateway of the account, as stored now (untracked: read the
/// gateway usage record with it to decide on it).
pub(super) fn account_gateways_in(
    tx: &Tx<'_>,
    account_id: &str,
) -> StoreResult<Vec<InternetGateway>> {
    tx.scan(INTERNET_GATEWAYS, format!("{account_id}/").as_bytes())
}

/// Stores a new gateway, already attached (a default VPC's), in `tx`.
pub(super) fn put_new_attached(tx: &mut Tx<'_>, gateway: &InternetGateway) -> StoreResult<()> {
    let account_id = &gateway.account_id;
    let mut usage = gateway_usage(tx, account_id)?;
    usage.count += 1;
    usage.amount += 1;
    super::usage::write(tx, account_id, Kind::InternetGateways, &usage);
    tx.put(INTERNET_GATEWAYS, key(account_id, &gateway.id), gateway);
    Ok(())
}

impl Compute {
    /// CreateInternetGateway.
    pub async fn create_internet_gateway(
        &self,
        account_id: &str,
        tags: Vec<Tag>,
        dry_run: bool,
    ) -> ApiResult<InternetGateway> {
        let gateway = InternetGateway {
            id: super::ids::new_id("igw"),
            account_id: account_id.to_string(),
            vpc_id: None,
            tags,
        };
        operation::run(&self.store, dry_run, |tx| {
            let mut usage = gateway_usage(tx, account_id)?;
            // EC2's default quota equals its VPC quota (5 per Region).
            let limit = u64::from(self.quotas.max_vpcs);
            if usage.count >= limit {
                return Err(ApiError::LimitExceeded {
                    code: codes::INTERNET_GATEWAY_LIMIT_EXCEEDED,
                    message: format!(
                        "The maximum number of internet gateways ({limit}) has been reached."
                    ),
                });
            }
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::InternetGateways, &usage);
            tx.put(INTERNET_GATEWAYS, key(account_id, &gateway.id), &gateway);
            Ok(gateway.clone())
        })
        .await
    }

    /// The account's gateways, by id.
    pub async fn internet_gateways(&self, account_id: &str) -> ApiResult<Vec<InternetGateway>> {
        Ok(self
            .store
            .records(INTERNET_GATEWAYS, format!("{account_id}/").as_bytes())
            .await?)
    }

    /// AttachInternetGateway: to a VPC of the account (created or default).
    pub async fn attach_internet_gateway(
        &self,
        account_id: &str,
        gateway_id: &str,
        vpc_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::InternetGateway.check(gateway_id)?;
        let found = self.account_vpc(account_id, vpc_id).await?;
        operation::run(&self.store, dry_run, |tx| {
            let mut gateway = gateway_in(tx, account_id, gateway_id)?;
            // The VPC still there, and its deletion meanwhile a conflict.
            let vpc_key = super::vpcs::vpc_key(account_id, vpc_id, found.is_default);
            if !tx.touch(vpc_key.0, &vpc_key.1)? {
                return Err(super::kinds::ResourceKind::Vpc.not_found(vpc_id));
            }
            if let Some(attached) = &gateway.vpc_id {
                return Err(already_associated(gateway_id, attached));
            }
            let mut usage = gateway_usage(tx, account_id)?;
            if let Some(other) = account_gateways_in(tx, account_id)?
                .into_iter()
                .find(|g| g.vpc_id.as_deref() == Some(vpc_id))
            {
                return Err(already_associated(&other.id, vpc_id));
            }
            gateway.vpc_id = Some(vpc_id.to_string());
            // amount: gateways attached.
            usage.amount += 1;
            super::usage::write(tx, account_id, Kind::InternetGateways, &usage);
            tx.put(INTERNET_GATEWAYS, key(account_id, gateway_id), &gateway);
            Ok(())
        })
        .await
    }

    /// DetachInternetGateway.
    pub async fn detach_internet_gateway(
        &self,
        account_id: &str,
        gateway_id: &str,
        vpc_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::InternetGateway.check(gateway_id)?;
        super::kinds::ResourceKind::Vpc.check(vpc_id)?;
        operation::run(&self.store, dry_run, |tx| {
            let mut gateway = gateway_in(tx, account_id, gateway_id)?;
            if gateway.vpc_id.as_deref() != Some(vpc_id) {
                return Err(ApiError::NotFound {
                    code: codes::GATEWAY_NOT_ATTACHED,
                    message: format!("resource {gateway_id} is not attached to network {vpc_id}"),
                });
            }
            let mut usage = gateway_usage(tx, account_id)?;
            usage.amount = usage.amount.saturating_sub(1);
            super::usage::write(tx, account_id, Kind::InternetGateways, &usage);
            gateway.vpc_id = None;
            tx.put(INTERNET_GATEWAYS, key(account_id, gateway_id), &gateway);
            Ok(())
        })
        .await
    }

    /// DeleteInternetGateway: only a detached one.
    pub async fn delete_internet_gateway(
        &self,
        account_id: &str,
        gateway_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::InternetGateway.check(gateway_id)?;
        operation::run(&self.store, dry_run, |tx| {
            let gateway = gateway_in(tx, account_id, gateway_id)?;
            if gateway.vpc_id.is_some() {
                return Err(ApiError::NotFound {
                    code: codes::DEPENDENCY_VIOLATION,
                    message: format!(
                        "The internetGateway '{gateway_id}' has dependencies and cannot be deleted."
                    ),
                });
            }
            let mut usage = gateway_usage(tx, account_id)?;
            usage.count = usage.count.saturating_sub(1);
            super::usage::write(tx, account_id, Kind::InternetGateways, &usage);
            tx.delete(INTERNET_GATEWAYS, key(account_id, gateway_id));
            Ok(())
        })
        .await
    }
}

fn already_associated(gateway_id: &str, vpc_id: &str) -> ApiError {
    ApiError::NotFound {
        code: codes::RESOURCE_ALREADY_ASSOCIATED,
        message: format!("resource {gateway_id} is already attached to network {vpc_id}"),
    }
}
