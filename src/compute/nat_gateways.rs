//! NAT gateways: CreateNatGateway, DeleteNatGateway, and the account's
//! gateways for DescribeNatGateways.
//!
//! A NAT gateway lives in a subnet, takes a private address from it (held
//! like an instance's, so the subnet cannot be deleted under it) and, when
//! public, an Elastic IP named by `AllocationId` that is neither associated
//! nor used by another NAT gateway. Its state follows EC2's machine:
//! `pending` for `lifecycle.nat_gateway_delay_secs`, then `available`;
//! DeleteNatGateway makes it `deleting` for as long, then `deleted`, and it
//! stays listed an hour as EC2 keeps it. Its Elastic IP and subnet address
//! are let go when the delete is asked, but its subnet cannot be deleted
//! until it is `deleted`. A public gateway in a VPC without an internet
//! gateway is `failed` (`Gateway.NotAttached`), holds nothing, and is
//! listed an hour. ClientToken retries answer the first
//! gateway (see `idempotency`). Gateways live under
//! `nat_gateways/<account>/<id>`; every create and delete rewrites the
//! account's NAT gateway usage record and the address it holds, so two
//! creates cannot take one Elastic IP. While it holds its address it has
//! a requester-managed network interface (`eni-` and its id's digits,
//! listed by DescribeNetworkInterfaces, changed by nobody), on which its
//! Elastic IP shows as associated.

use super::instances::Tag;
use super::network_interfaces::NetworkInterface;
use super::operation::{self, Tx};
use super::usage::{Kind, Usage};
use super::Compute;
use crate::error::{codes, ApiError, ApiResult};
use crate::store::StoreResult;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// `<account>/<nat-id>`.
pub(crate) const NAT_GATEWAYS: &str = "nat_gateways";
/// The action whose ClientTokens `idempotency` keeps.
const CREATE: &str = "CreateNatGateway";

/// Most NAT gateways (not deleted) per account: EC2's default is 5 per
/// zone.
pub const MAX_NAT_GATEWAYS_PER_ZONE: usize = 5;

/// How long a deleted gateway stays listed.
const DELETED_RETENTION_SECS: i64 = 3600;

/// A NAT gateway's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatGatewayState {
    Pending,
    Available,
    Deleting,
    Deleted,
    /// It could not be made (`failure` says why); it holds nothing.
    Failed,
}

impl NatGatewayState {
    pub fn as_str(self) -> &'static str {
        match self {
            NatGatewayState::Pending => "pending",
            NatGatewayState::Available => "available",
            NatGatewayState::Deleting => "deleting",
            NatGatewayState::Deleted => "deleted",
            NatGatewayState::Failed => "failed",
        }
    }
}

/// A NAT gateway as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatGateway {
    pub id: String,
    pub account_id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub availability_zone: String,
    /// The pool its private address is held in (see `launch`).
    pub address_pool: String,
    pub private_ip: String,
    /// `public` or `private`.
    pub connectivity_type: String,
    pub allocation_id: Option<String>,
    pub public_ip: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `pending` until then.
    pub available_at: DateTime<Utc>,
    /// Set by DeleteNatGateway: `deleting` until then, `deleted` after.
    pub deleted_at: Option<DateTime<Utc>>,
    pub client_token: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Why it failed: EC2's failure code and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<(String, String)>,
}

impl crate::store::Record for NatGateway {}

/// A NAT gateway with its state now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatGatewayView {
    pub gateway: NatGateway,
    pub state: NatGatewayState,
}

impl std::ops::Deref for NatGatewayView {
    type Target = NatGateway;
    fn deref(&self) -> &NatGateway {
        &self.gateway
    }
}

impl NatGateway {
    /// The state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> NatGatewayState {
        if self.failure.is_some() {
            return NatGatewayState::Failed;
        }
        match self.deleted_at {
            Some(at) if now < at => NatGatewayState::Deleting,
            Some(_) => NatGatewayState::Deleted,
            None if now < self.available_at => NatGatewayState::Pending,
            None => NatGatewayState::Available,
        }
    }

    /// Gone from view: deleted, or failed, over an hour ago.
    fn expired(&self, now: DateTime<Utc>) -> bool {
        let ended = match (&self.failure, self.deleted_at) {
            (Some(_), _) => Some(self.created_at),
            (None, at) => at,
        };
        ended.is_some_and(|at| now >= at + Duration::seconds(DELETED_RETENTION_SECS))
    }

    /// True while it holds an address of its subnet.
    pub(super) fn holds_address(&self, now: DateTime<Utc>) -> bool {
        self.failure.is_none() && self.deleted_at.is_none_or(|at| now < at)
    }

    /// The requester-managed network interface EC2 gives it, until its
    /// deletion is asked (its address is let go then).
    pub fn interface(&self) -> Option<NetworkInterface> {
        (self.failure.is_none() && self.deleted_at.is_none()).then(|| NetworkInterface {
            id: nat_interface_id(&self.id),
            account_id: self.account_id.clone(),
            subnet_id: self.subnet_id.clone(),
            vpc_id: self.vpc_id.clone(),
            availability_zone: self.availability_zone.clone(),
            address_pool: self.address_pool.clone(),
            private_ip: self.private_ip.clone(),
            secondary_private_ips: Vec::new(),
            description: format!("Interface for NAT Gateway {}", self.id),
            source_dest_check: false,
            groups: Vec::new(),
            tags: Vec::new(),
            attachment: None,
            client_token: None,
            managed_by: Some(self.id.clone()),
            public_ip: None,
        })
    }
}

/// The id of a NAT gateway's network interface.
pub fn nat_interface_id(nat_id: &str) -> String {
    format!("eni-{}", nat_id.trim_start_matches("nat-"))
}

/// The association id a NAT gateway's Elastic IP shows.
pub fn nat_association_id(nat_id: &str) -> String {
    format!("eipassoc-{}", nat_id.trim_start_matches("nat-"))
}

/// The interface of the NAT gateway `interface_id` would be, read now
/// (untracked), while the gateway has one.
pub(super) fn managed_interface(
    tx: &Tx<'_>,
    account_id: &str,
    interface_id: &str,
) -> StoreResult<Option<NetworkInterface>> {
    let nat_id = format!("nat-{}", interface_id.trim_start_matches("eni-"));
    Ok(tx
        .peek_record::<NatGateway>(NAT_GATEWAYS, &key(account_id, &nat_id))?
        .and_then(|nat| nat.interface()))
}

/// What CreateNatGateway asks for.
#[derive(Debug, Clone)]
pub struct NewNatGateway {
    pub subnet_id: String,
    pub allocation_id: Option<String>,
    pub private: bool,
    pub tags: Vec<Tag>,
    pub client_token: Option<super::idempotency::ClientToken>,
}

fn key(account_id: &str, id: &str) -> Vec<u8> {
    format!("{account_id}/{id}").into_bytes()
}

fn not_found(id: &str) -> ApiError {
    super::kinds::ResourceKind::NatGateway.not_found(id)
}

/// The account's NAT gateway usage in `tx` (count: not deleted).
fn nat_usage(tx: &mut Tx<'_>, account_id: &str, now: DateTime<Utc>) -> StoreResult<Usage> {
    super::usage::read(tx, account_id, Kind::NatGateways, |tx| {
        let live = tx
            .scan::<NatGateway>(NAT_GATEWAYS, format!("{account_id}/").as_bytes())?
            .iter()
            .filter(|n| n.holds_address(now))
            .count();
        Ok(Usage {
            count: live as u64,
            ..Usage::default()
        })
    })
}

/// True when a NAT gateway not yet `deleted` lives in the subnet (read
/// with the account's NAT gateway usage, which creates and deletes
/// rewrite).
pub(super) fn in_subnet(
    tx: &mut Tx<'_>,
    account_id: &str,
    subnet_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    nat_usage(tx, account_id, now)?;
    Ok(tx
        .scan::<NatGateway>(NAT_GATEWAYS, format!("{account_id}/").as_bytes())?
        .iter()
        .any(|n| n.subnet_id == subnet_id && n.holds_address(now)))
}

/// A NAT gateway of the account, read in `tx` (not yet gone from view).
pub(super) fn nat_gateway_in(tx: &mut Tx<'_>, account_id: &str, id: &str) -> ApiResult<NatGateway> {
    super::kinds::ResourceKind::NatGateway.check(id)?;
    tx.get::<NatGateway>(NAT_GATEWAYS, &key(account_id, id))?
        .ok_or_else(|| not_found(id))
}

impl Compute {
    /// The account's NAT gateways with their state now (deleted ones an
    /// hour after their deletion apart).
    pub async fn nat_gateways(&self, account_id: &str) -> ApiResult<Vec<NatGatewayView>> {
        let now = self.clock.now();
        let stored: Vec<NatGateway> = self
            .store
            .records(NAT_GATEWAYS, format!("{account_id}/").as_bytes())
            .await?;
        Ok(stored
            .into_iter()
            .filter(|n| !n.expired(now))
            .map(|gateway| NatGatewayView {
                state: gateway.state(now),
                gateway,
            })
            .collect())
    }

    /// CreateNatGateway.
    pub async fn create_nat_gateway(
        &self,
        account_id: &str,
        request: NewNatGateway,
        dry_run: bool,
    ) -> ApiResult<NatGatewayView> {
        let now = self.clock.now();
        // A retry is answered from its token, whatever changed since.
        if let Some(token) = &request.client_token {
            let earlier: Option<NatGateway> = super::idempotency::earlier_record(
                &self.store,
                account_id,
                CREATE,
                token,
                NAT_GATEWAYS,
            )
            .await?;
            if let Some(earlier) = earlier {
                if dry_run {
                    return Err(ApiError::DryRunOperation);
                }
                return Ok(NatGatewayView {
                    state: earlier.state(now),
                    gateway: earlier,
                });
            }
        }
        let subnet = self.account_subnet(account_id, &request.subnet_id).await?;
        let zone_id = subnet.subnet.availability_zone_id.clone();
        let gateway_id = super::ids::new_id("nat");
        let delay = self.lifecycle.nat_gateway_delay;
        operation::run(&self.store, dry_run, |tx| {
            if let Some(token) = &request.client_token {
                if let Some(id) = super::idempotency::earlier(tx, account_id, CREATE, token)? {
                    let earlier = nat_gateway_in(tx, account_id, &id)?;
                    return Ok(NatGatewayView {
                        state: earlier.state(now),
                        gateway: earlier,
                    });
                }
                super::idempotency::remember(tx, account_id, CREATE, token, &gateway_id);
            }
            let (tree, subnet_key) = super::subnets::subnet_key(&subnet);
            if !tx.touch(tree, &subnet_key)? {
                return Err(super::subnets::subnet_not_found(&request.subnet_id));
            }
            let mut usage = nat_usage(tx, account_id, now)?;
            let in_zone = tx
                .scan::<NatGateway>(NAT_GATEWAYS, format!("{account_id}/").as_bytes())?
                .into_iter()
                .filter(|n| {
                    n.deleted_at.is_none() && n.availability_zone == subnet.subnet.availability_zone
                })
                .count();
            if in_zone >= MAX_NAT_GATEWAYS_PER_ZONE {
                return Err(ApiError::LimitExceeded {
                    code: codes::NAT_GATEWAY_LIMIT_EXCEEDED,
                    message: format!(
                        "The maximum number of NAT gateways ({MAX_NAT_GATEWAYS_PER_ZONE}) in this zone has been reached."
                    ),
                });
            }
            // EC2 fails a public NAT gateway in a VPC without an internet
            // gateway: it is listed `failed` and holds nothing.
            if !request.private {
                super::internet_gateways::gateway_usage(tx, account_id)?;
                let attached = super::internet_gateways::account_gateways_in(tx, account_id)?
                    .iter()
                    .any(|g| g.vpc_id.as_deref() == Some(subnet.subnet.vpc_id.as_str()));
                if !attached {
                    let failed = NatGateway {
                        id: gateway_id.clone(),
                        account_id: account_id.to_string(),
                        vpc_id: subnet.subnet.vpc_id.clone(),
                        subnet_id: subnet.subnet.subnet_id.clone(),
                        availability_zone: subnet.subnet.availability_zone.clone(),
                        address_pool: String::new(),
                        private_ip: String::new(),
                        connectivity_type: "public".into(),
                        allocation_id: request.allocation_id.clone(),
                        public_ip: None,
                        created_at: now,
                        available_at: now,
                        deleted_at: None,
                        client_token: request.client_token.as_ref().map(|t| t.token.clone()),
                        tags: request.tags.clone(),
                        failure: Some((
                            "Gateway.NotAttached".into(),
                            format!(
                                "Network {} has no Internet gateway attached",
                                subnet.subnet.vpc_id
                            ),
                        )),
                    };
                    tx.put(NAT_GATEWAYS, key(account_id, &failed.id), &failed);
                    return Ok(NatGatewayView {
                        state: NatGatewayState::Pending,
                        gateway: failed,
                    });
                }
            }
            let public_ip = match &request.allocation_id {
                Some(allocation_id) => Some(self.hold_address_for_nat(
                    tx,
                    account_id,
                    allocation_id,
                    &gateway_id,
                )?),
                None => None,
            };
            let (pool, private_ip) = super::launch::take_subnet_address(
                tx,
                account_id,
                &subnet,
                &zone_id,
                &gateway_id,
            )?;
            let gateway = NatGateway {
                id: gateway_id.clone(),
                account_id: account_id.to_string(),
                vpc_id: subnet.subnet.vpc_id.clone(),
                subnet_id: subnet.subnet.subnet_id.clone(),
                availability_zone: subnet.subnet.availability_zone.clone(),
                address_pool: pool,
                private_ip,
                connectivity_type: if request.private { "private" } else { "public" }.into(),
                allocation_id: request.allocation_id.clone(),
                public_ip,
                created_at: now,
                available_at: now + delay,
                deleted_at: None,
                client_token: request.client_token.as_ref().map(|t| t.token.clone()),
                tags: request.tags.clone(),
                failure: None,
            };
            // Gateways deleted over an hour ago are forgotten now.
            for old in tx
                .scan::<NatGateway>(NAT_GATEWAYS, format!("{account_id}/").as_bytes())?
                .into_iter()
                .filter(|n| n.expired(now))
            {
                tx.delete(NAT_GATEWAYS, key(account_id, &old.id));
                if let Some(token) = &old.client_token {
                    super::idempotency::forget(tx, account_id, CREATE, token);
                }
            }
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::NatGateways, &usage);
            tx.put(NAT_GATEWAYS, key(account_id, &gateway.id), &gateway);
            // EC2 answers a new gateway `pending`, whatever the delay.
            Ok(NatGatewayView {
                state: NatGatewayState::Pending,
                gateway,
            })
        })
        .await
    }

    /// DeleteNatGateway: `deleting`, its addresses let go at once.
    pub async fn delete_nat_gateway(
        &self,
        account_id: &str,
        gateway_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        let now = self.clock.now();
        let delay = self.lifecycle.nat_gateway_delay;
        operation::run(&self.store, dry_run, |tx| {
            let mut gateway = nat_gateway_in(tx, account_id, gateway_id)?;
            if gateway.expired(now) {
                return Err(not_found(gateway_id));
            }
            if gateway.deleted_at.is_some() || gateway.failure.is_some() {
                // Deleting again, or a failed one, changes nothing.
                return Ok(());
            }
            let mut usage = nat_usage(tx, account_id, now)?;
            usage.count = usage.count.saturating_sub(1);
            super::usage::write(tx, account_id, Kind::NatGateways, &usage);
            if let Some(allocation_id) = &gateway.allocation_id {
                self.release_address_from_nat(tx, account_id, allocation_id, gateway_id)?;
            }
            super::launch::release_address(
                tx,
                account_id,
                &gateway.address_pool,
                &gateway.private_ip,
            );
            gateway.deleted_at = Some(now + delay);
            tx.put(NAT_GATEWAYS, key(account_id, gateway_id), &gateway);
            Ok(())
        })
        .await
    }
}
