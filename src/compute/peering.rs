//! VPC peering connections: Create/Accept/Reject/DeleteVpcPeeringConnection
//! and the connections an account is a party to.
//!
//! A connection joins a VPC of the requester with a VPC of the accepter
//! (the same account or another of this gateway's accounts, in this
//! Region). It is `pending-acceptance` until the accepter accepts
//! (`active`) or rejects it (`rejected`), or a week passes (`expired`);
//! overlapping blocks or a peer VPC that does not exist make it `failed`.
//! Either party may delete an active connection (`deleted`); the requester
//! withdraws a pending one the same way. Ended connections stay listed for
//! an hour. Routes may lead to an active connection of the table's VPC
//! (`blackhole` otherwise), and security group rules may name groups of
//! the peer VPC while it is active. Deleting a VPC deletes its connections.
//!
//! A connection is one record, `peerings/<pcx-id>`, listed for each party
//! through `peering_index/<account>/<pcx-id>`; every change rewrites the
//! record, so accept, reject and delete racing each other serialise.

use super::instances::Tag;
use super::network::Vpc;
use super::operation::{self, Tx};
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::store::StoreResult;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// `<pcx-id>`.
pub(crate) const PEERINGS: &str = "peerings";
/// `<account>/<pcx-id>`: the connections an account is a party to.
const PEERING_INDEX: &str = "peering_index";

/// How long a request waits for its acceptance.
const EXPIRY_DAYS: i64 = 7;
/// How long an ended connection stays listed.
const ENDED_RETENTION_SECS: i64 = 3600;

/// A connection's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeeringStatus {
    PendingAcceptance,
    Active,
    Rejected,
    Deleted,
    Failed,
    Expired,
}

impl PeeringStatus {
    pub fn code(self) -> &'static str {
        match self {
            PeeringStatus::PendingAcceptance => "pending-acceptance",
            PeeringStatus::Active => "active",
            PeeringStatus::Rejected => "rejected",
            PeeringStatus::Deleted => "deleted",
            PeeringStatus::Failed => "failed",
            PeeringStatus::Expired => "expired",
        }
    }
}

/// One side of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeeringSide {
    pub account_id: String,
    pub vpc_id: String,
    /// The VPC's blocks when the connection was made.
    pub cidr_blocks: Vec<String>,
}

/// A peering connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeeringConnection {
    pub id: String,
    pub requester: PeeringSide,
    pub accepter: PeeringSide,
    pub status: PeeringStatus,
    pub message: String,
    pub created_at: DateTime<Utc>,
    /// When the status last changed.
    pub changed_at: DateTime<Utc>,
    /// The requester's tags (the accepter sees none).
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl crate::store::Record for PeeringConnection {}

impl PeeringConnection {
    /// The status at `now` (a pending request expires after a week).
    pub fn status_at(&self, now: DateTime<Utc>) -> PeeringStatus {
        if self.status == PeeringStatus::PendingAcceptance && now >= self.expires_at() {
            PeeringStatus::Expired
        } else {
            self.status
        }
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        self.created_at + Duration::days(EXPIRY_DAYS)
    }

    /// True while it joins these two VPCs.
    pub fn joins(&self, a: &str, b: &str, now: DateTime<Utc>) -> bool {
        self.status_at(now) == PeeringStatus::Active
            && ((self.requester.vpc_id == a && self.accepter.vpc_id == b)
                || (self.requester.vpc_id == b && self.accepter.vpc_id == a))
    }

    fn ended_long_ago(&self, now: DateTime<Utc>) -> bool {
        let ended = match self.status_at(now) {
            PeeringStatus::PendingAcceptance | PeeringStatus::Active => return false,
            PeeringStatus::Expired => self.expires_at(),
            _ => self.changed_at,
        };
        now >= ended + Duration::seconds(ENDED_RETENTION_SECS)
    }

    fn involves(&self, account_id: &str) -> bool {
        self.requester.account_id == account_id || self.accepter.account_id == account_id
    }
}

fn invalid_transition(id: &str, status: PeeringStatus, change: &str) -> ApiError {
    ApiError::NotFound {
        code: crate::error::codes::INVALID_STATE_TRANSITION,
        message: format!(
            "Invalid state transition for {id}: a connection that is {} cannot be {change} by this account",
            status.code()
        ),
    }
}

fn not_found(id: &str) -> ApiError {
    super::kinds::ResourceKind::VpcPeeringConnection.not_found(id)
}

fn index_key(account_id: &str, id: &str) -> Vec<u8> {
    format!("{account_id}/{id}").into_bytes()
}

/// A connection the account is a party to, read in `tx`.
pub(super) fn connection_in(
    tx: &mut Tx<'_>,
    account_id: &str,
    id: &str,
) -> ApiResult<PeeringConnection> {
    super::kinds::ResourceKind::VpcPeeringConnection.check(id)?;
    tx.get::<PeeringConnection>(PEERINGS, id.as_bytes())?
        .filter(|c| c.involves(account_id))
        .ok_or_else(|| not_found(id))
}

/// The account's connections as stored now (untracked).
pub(super) fn account_connections_in(
    tx: &Tx<'_>,
    account_id: &str,
) -> StoreResult<Vec<PeeringConnection>> {
    let mut found = Vec::new();
    for (key, _) in tx.scan_entries(PEERING_INDEX, format!("{account_id}/").as_bytes())? {
        let id = String::from_utf8_lossy(&key[account_id.len() + 1..]).into_owned();
        if let Some(connection) = tx.peek_record::<PeeringConnection>(PEERINGS, id.as_bytes())? {
            found.push(connection);
        }
    }
    Ok(found)
}

/// Ends in `tx` the connections of a VPC being deleted.
pub(super) fn end_for_vpc(
    tx: &mut Tx<'_>,
    account_id: &str,
    vpc_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for listed in account_connections_in(tx, account_id)? {
        let joined = listed.requester.vpc_id == vpc_id || listed.accepter.vpc_id == vpc_id;
        let live = matches!(
            listed.status_at(now),
            PeeringStatus::PendingAcceptance | PeeringStatus::Active
        );
        if joined && live {
            if let Some(mut connection) =
                tx.get::<PeeringConnection>(PEERINGS, listed.id.as_bytes())?
            {
                connection.status = PeeringStatus::Deleted;
                connection.message = format!("Deleted with {vpc_id}");
                connection.changed_at = now;
                tx.put(PEERINGS, listed.id.as_bytes(), &connection);
            }
        }
    }
    Ok(())
}

/// A VPC of `account_id` read in `tx` (default or created), if it exists.
fn vpc_in(tx: &mut Tx<'_>, account_id: &str, vpc_id: &str) -> StoreResult<Option<Vpc>> {
    if let Some(vpc) = tx.get::<Vpc>(
        super::vpcs::VPCS,
        format!("{account_id}/{vpc_id}").as_bytes(),
    )? {
        return Ok(Some(vpc));
    }
    Ok(tx
        .get::<Vpc>(super::network::VPCS, account_id.as_bytes())?
        .filter(|vpc| vpc.vpc_id == vpc_id))
}

impl Compute {
    /// The account's connections with their status now (ended ones an hour
    /// after they ended apart).
    pub async fn peering_connections(&self, account_id: &str) -> ApiResult<Vec<PeeringConnection>> {
        let now = self.clock.now();
        let mut connections = operation::read(&self.store, |tx| {
            Ok::<_, ApiError>(account_connections_in(tx, account_id)?)
        })
        .await?;
        connections.retain(|c| !c.ended_long_ago(now));
        for connection in &mut connections {
            connection.status = connection.status_at(now);
            if connection.requester.account_id != account_id {
                connection.tags.clear();
            }
        }
        Ok(connections)
    }

    /// CreateVpcPeeringConnection.
    pub async fn create_peering_connection(
        &self,
        account_id: &str,
        vpc_id: &str,
        peer_vpc_id: &str,
        peer_account_id: &str,
        tags: Vec<Tag>,
        dry_run: bool,
    ) -> ApiResult<PeeringConnection> {
        super::kinds::ResourceKind::Vpc.check(vpc_id)?;
        super::kinds::ResourceKind::Vpc.check(peer_vpc_id)?;
        super::image_sharing::check_account_id(peer_account_id)?;
        if vpc_id == peer_vpc_id {
            return Err(ApiError::invalid_value(
                "A VPC cannot be peered with itself",
            ));
        }
        let now = self.clock.now();
        let id = super::ids::new_id("pcx");
        operation::run(&self.store, dry_run, |tx| {
            let vpc = vpc_in(tx, account_id, vpc_id)?
                .ok_or_else(|| super::kinds::ResourceKind::Vpc.not_found(vpc_id))?;
            let requester = PeeringSide {
                account_id: account_id.to_string(),
                vpc_id: vpc_id.to_string(),
                cidr_blocks: vpc.blocks().into_iter().map(|(_, b)| b).collect(),
            };
            // The peer's VPC is looked up as EC2 does: a missing one, or
            // one whose blocks overlap, makes the request fail (listed
            // `failed`), without telling anything else about the peer.
            let peer = vpc_in(tx, peer_account_id, peer_vpc_id)?;
            let (status, message, accepter_blocks) = match &peer {
                None => (
                    PeeringStatus::Failed,
                    format!("Failed due to incorrect VPC-ID, Account ID, or Region: {peer_vpc_id}"),
                    Vec::new(),
                ),
                Some(peer) => {
                    let blocks: Vec<String> = peer.blocks().into_iter().map(|(_, b)| b).collect();
                    let overlap = blocks.iter().any(|theirs| {
                        requester.cidr_blocks.iter().any(|ours| {
                            match (
                                super::cidr::Ipv4Cidr::parse(ours),
                                super::cidr::Ipv4Cidr::parse(theirs),
                            ) {
                                (Some(a), Some(b)) => a.overlaps(&b),
                                _ => false,
                            }
                        })
                    });
                    if overlap {
                        (
                            PeeringStatus::Failed,
                            format!("Overlapping CIDR range between {vpc_id} and {peer_vpc_id}"),
                            blocks,
                        )
                    } else {
                        (
                            PeeringStatus::PendingAcceptance,
                            format!("Pending Acceptance by {peer_account_id}"),
                            blocks,
                        )
                    }
                }
            };
            let connection = PeeringConnection {
                id: id.clone(),
                requester: requester.clone(),
                accepter: PeeringSide {
                    account_id: peer_account_id.to_string(),
                    vpc_id: peer_vpc_id.to_string(),
                    cidr_blocks: accepter_blocks,
                },
                status,
                message,
                created_at: now,
                changed_at: now,
                tags: tags.clone(),
            };
            // Connections of this account that ended over an hour ago are
            // forgotten now.
            for old in account_connections_in(tx, account_id)?
                .into_iter()
                .filter(|c| c.ended_long_ago(now))
            {
                tx.delete(PEERINGS, old.id.as_bytes());
                for party in [&old.requester.account_id, &old.accepter.account_id] {
                    tx.delete(PEERING_INDEX, index_key(party, &old.id));
                }
            }
            tx.put(PEERINGS, id.as_bytes(), &connection);
            tx.put(PEERING_INDEX, index_key(account_id, &id), &id);
            // The accepter sees a request only if it can act on it.
            if peer.is_some() {
                tx.put(PEERING_INDEX, index_key(peer_account_id, &id), &id);
            }
            Ok(connection)
        })
        .await
    }

    /// AcceptVpcPeeringConnection or RejectVpcPeeringConnection: the
    /// accepter's answer to a pending request.
    pub async fn answer_peering_connection(
        &self,
        account_id: &str,
        id: &str,
        accept: bool,
        dry_run: bool,
    ) -> ApiResult<PeeringConnection> {
        let now = self.clock.now();
        operation::run(&self.store, dry_run, |tx| {
            let mut connection = connection_in(tx, account_id, id)?;
            if connection.accepter.account_id != account_id {
                return Err(ApiError::OperationNotPermitted(format!(
                    "The peering connection {id} can only be accepted or rejected by its accepter, {}",
                    connection.accepter.account_id
                )));
            }
            if connection.status_at(now) != PeeringStatus::PendingAcceptance {
                return Err(invalid_transition(id, connection.status_at(now), "answered"));
            }
            connection.status = if accept {
                PeeringStatus::Active
            } else {
                PeeringStatus::Rejected
            };
            connection.message = if accept {
                "Active".into()
            } else {
                format!("Rejected by {account_id}")
            };
            connection.changed_at = now;
            tx.put(PEERINGS, id.as_bytes(), &connection);
            Ok(connection)
        })
        .await
    }

    /// DeleteVpcPeeringConnection: either party an active one, the
    /// requester a pending one.
    pub async fn delete_peering_connection(
        &self,
        account_id: &str,
        id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        let now = self.clock.now();
        operation::run(&self.store, dry_run, |tx| {
            let mut connection = connection_in(tx, account_id, id)?;
            let allowed = match connection.status_at(now) {
                PeeringStatus::Active => true,
                PeeringStatus::PendingAcceptance => connection.requester.account_id == account_id,
                _ => false,
            };
            if !allowed {
                return Err(invalid_transition(id, connection.status_at(now), "deleted"));
            }
            connection.status = PeeringStatus::Deleted;
            connection.message = format!("Deleted by {account_id}");
            connection.changed_at = now;
            tx.put(PEERINGS, id.as_bytes(), &connection);
            Ok(())
        })
        .await
    }
}
