//! VPC peering connections: Create/Accept/Reject/DeleteVpcPeeringConnection
//! and the connections an account is a party to.
//!
//! A connection joins a VPC of the requester with a VPC of the accepter
//! (the same account or another of this gateway's accounts, in this
//! Region). It is `pending-acceptance` until the accepter accepts
//! (`active`) or rejects it (`rejected`), or a week passes (`expired`);
//! overlapping blocks or a peer VPC that does not exist make it `failed`,
//! in the same words either way, and the peer's blocks are shown only once
//! it is active, so a request tells nothing about another account's VPCs.
//! Two VPCs have at most one live connection
//! (`VpcPeeringConnectionAlreadyExists`), a VPC at most 25 outstanding
//! requests.
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

/// Forgets in `tx` the account's connections that ended over an hour ago
/// (run by every change an account makes to its connections).
fn forget_ended(tx: &mut Tx<'_>, account_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
    for old in account_connections_in(tx, account_id)?
        .into_iter()
        .filter(|c| c.ended_long_ago(now))
    {
        tx.delete(PEERINGS, old.id.as_bytes());
        for party in [&old.requester.account_id, &old.accepter.account_id] {
            tx.delete(PEERING_INDEX, index_key(party, &old.id));
        }
    }
    Ok(())
}

/// Blocks of two sides that overlap.
fn overlap(ours: &[String], theirs: &[String]) -> bool {
    theirs.iter().any(|theirs| {
        ours.iter().any(|ours| {
            match (
                super::cidr::Ipv4Cidr::parse(ours),
                super::cidr::Ipv4Cidr::parse(theirs),
            ) {
                (Some(a), Some(b)) => a.overlaps(&b),
                _ => false,
            }
        })
    })
}

/// Most outstanding (pending) requests of one VPC (EC2's quota).
const MAX_PENDING_PER_VPC: usize = 25;

/// One message for a missing peer and for overlapping blocks, as EC2
/// words it: a request tells nothing about another account's VPCs.
const FAILED: &str = "Failed due to incorrect VPC-ID, Account ID, or overlapping CIDR range.";

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

/// Rewrites a VPC unchanged in `tx`.
fn touch_vpc(tx: &mut Tx<'_>, vpc: &Vpc) -> StoreResult<()> {
    let created = format!("{}/{}", vpc.account_id, vpc.vpc_id).into_bytes();
    if !tx.touch(super::vpcs::VPCS, &created)? {
        tx.touch(super::network::VPCS, vpc.account_id.as_bytes())?;
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
            if connection.status_at(now) != connection.status {
                connection.message = "Expired".into();
            }
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
            // Both VPCs rewritten unchanged: a deletion of either meanwhile
            // conflicts (and DeleteVpc ends the connections it finds).
            touch_vpc(tx, &vpc)?;
            let requester = PeeringSide {
                account_id: account_id.to_string(),
                vpc_id: vpc_id.to_string(),
                cidr_blocks: vpc.blocks().into_iter().map(|(_, b)| b).collect(),
            };
            forget_ended(tx, account_id, now)?;
            let mine = account_connections_in(tx, account_id)?;
            let live = |c: &PeeringConnection| {
                matches!(
                    c.status_at(now),
                    PeeringStatus::PendingAcceptance | PeeringStatus::Active
                )
            };
            if mine.iter().filter(|c| live(c)).any(|c| {
                (c.requester.vpc_id == vpc_id && c.accepter.vpc_id == peer_vpc_id)
                    || (c.requester.vpc_id == peer_vpc_id && c.accepter.vpc_id == vpc_id)
            }) {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::VPC_PEERING_CONNECTION_ALREADY_EXISTS,
                    message: format!(
                        "A peering connection between {vpc_id} and {peer_vpc_id} already exists"
                    ),
                });
            }
            let pending = mine
                .iter()
                .filter(|c| {
                    c.requester.vpc_id == vpc_id
                        && c.status_at(now) == PeeringStatus::PendingAcceptance
                })
                .count();
            if pending >= MAX_PENDING_PER_VPC {
                return Err(ApiError::LimitExceeded {
                    code: crate::error::codes::OUTSTANDING_PEERING_LIMIT_EXCEEDED,
                    message: format!(
                        "{vpc_id} has {MAX_PENDING_PER_VPC} outstanding peering requests"
                    ),
                });
            }
            // A missing peer VPC or overlapping blocks make the request
            // fail, in the same words either way.
            let peer = vpc_in(tx, peer_account_id, peer_vpc_id)?;
            let accepter_blocks: Vec<String> = peer
                .as_ref()
                .map(|p| p.blocks().into_iter().map(|(_, b)| b).collect())
                .unwrap_or_default();
            let fails = peer.is_none() || overlap(&requester.cidr_blocks, &accepter_blocks);
            if let Some(peer) = &peer {
                touch_vpc(tx, peer)?;
            }
            let (status, message) = if fails {
                (PeeringStatus::Failed, FAILED.to_string())
            } else {
                (
                    PeeringStatus::PendingAcceptance,
                    format!("Pending Acceptance by {peer_account_id}"),
                )
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
            tx.put(PEERINGS, id.as_bytes(), &connection);
            tx.put(PEERING_INDEX, index_key(account_id, &id), &id);
            // The accepter sees a request it can act on; a failed one is
            // the requester's alone.
            if !fails && peer_account_id != account_id {
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
            forget_ended(tx, account_id, now)?;
            if accept {
                // Both VPCs as they are now: still there (rewritten, so a
                // deletion meanwhile conflicts) and still apart.
                let mut blocks = Vec::new();
                for side in [&connection.requester, &connection.accepter] {
                    let vpc = vpc_in(tx, &side.account_id, &side.vpc_id)?
                        .ok_or_else(|| super::kinds::ResourceKind::Vpc.not_found(&side.vpc_id))?;
                    touch_vpc(tx, &vpc)?;
                    blocks.push(vpc.blocks().into_iter().map(|(_, b)| b).collect::<Vec<_>>());
                }
                if overlap(&blocks[0], &blocks[1]) {
                    return Err(ApiError::invalid_value(format!(
                        "The blocks of {} and {} now overlap",
                        connection.requester.vpc_id, connection.accepter.vpc_id
                    )));
                }
                connection.requester.cidr_blocks = blocks[0].clone();
                connection.accepter.cidr_blocks = blocks[1].clone();
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
            forget_ended(tx, account_id, now)?;
            connection.status = PeeringStatus::Deleted;
            connection.message = format!("Deleted by {account_id}");
            connection.changed_at = now;
            tx.put(PEERINGS, id.as_bytes(), &connection);
            Ok(())
        })
        .await
    }
}
