//! Per-account usage records: the compare-and-swap point of each
//! collection.
//!
//! EC2's quotas (instances, vCPUs, key pairs, images, volumes and their
//! GiB, snapshots, security groups, Elastic IPs) and every decision that
//! rests on a listing (a name being free, a group not used by any instance,
//! a snapshot not used by any image) must hold when two requests (or two
//! gateways) race. Each account has one small record per kind,
//! `usage/<account>/<kind>`, that every create and delete of that kind
//! rewrites in the same commit; an operation that decides from a listing
//! reads the record in its `Tx`, so a concurrent change to the listing makes
//! its commit conflict and run again. A record missing (data written before
//! usage records existed) is counted from the listing the first time it is
//! needed and written by that operation.

use super::operation::Tx;
use crate::store::{Record, StoreResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub(crate) const USAGE: &str = "usage";

/// The kinds that have a usage record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// count: instances not terminated; amount: vCPUs holding capacity;
    /// next_sequence: launch order.
    Instances,
    KeyPairs,
    Images,
    /// amount: GiB.
    Volumes,
    Snapshots,
    SecurityGroups,
    Addresses,
    /// VPCs created (the default VPC apart).
    Vpcs,
    /// Subnets created (default subnets apart).
    Subnets,
    /// amount: gateways attached.
    InternetGateways,
    RouteTables,
    /// count: not deleted.
    NatGateways,
    NetworkAcls,
    DhcpOptions,
    NetworkInterfaces,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Instances => "instances",
            Kind::KeyPairs => "key_pairs",
            Kind::Images => "images",
            Kind::Volumes => "volumes",
            Kind::Snapshots => "snapshots",
            Kind::SecurityGroups => "security_groups",
            Kind::Addresses => "addresses",
            Kind::Vpcs => "vpcs",
            Kind::Subnets => "subnets",
            Kind::InternetGateways => "internet_gateways",
            Kind::RouteTables => "route_tables",
            Kind::NatGateways => "nat_gateways",
            Kind::NetworkAcls => "network_acls",
            Kind::DhcpOptions => "dhcp_options",
            Kind::NetworkInterfaces => "network_interfaces",
        }
    }
}

/// One account's usage of one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub count: u64,
    /// vCPUs (instances) or GiB (volumes).
    #[serde(default)]
    pub amount: u64,
    /// The next launch sequence (instances).
    #[serde(default)]
    pub next_sequence: u64,
    /// Where the next private address search starts, per zone (instances).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub next_address: BTreeMap<String, u32>,
}

impl Record for Usage {}

fn key(account_id: &str, kind: Kind) -> Vec<u8> {
    format!("{account_id}/{}", kind.name()).into_bytes()
}

/// The account's usage of `kind`, read in `tx` (so the commit requires it
/// unchanged); counted with `recount` when no record exists yet.
pub fn read(
    tx: &mut Tx<'_>,
    account_id: &str,
    kind: Kind,
    recount: impl FnOnce(&Tx<'_>) -> StoreResult<Usage>,
) -> StoreResult<Usage> {
    match tx.get::<Usage>(USAGE, &key(account_id, kind))? {
        Some(usage) => Ok(usage),
        None => recount(tx),
    }
}

/// The launch sequence the account's next instance will get (read now,
/// untracked); `None` before its first launch was counted.
pub fn next_launch_sequence(tx: &Tx<'_>, account_id: &str) -> StoreResult<Option<u64>> {
    Ok(tx
        .peek_record::<Usage>(USAGE, &key(account_id, Kind::Instances))?
        .map(|usage| usage.next_sequence))
}

/// True when the account's usage record of `kind` says it holds none (read
/// now, untracked): a listing can then skip its scan. False when the
/// record is missing (old data) or counts some.
pub fn known_empty(tx: &Tx<'_>, account_id: &str, kind: Kind) -> StoreResult<bool> {
    Ok(tx
        .peek_record::<Usage>(USAGE, &key(account_id, kind))?
        .is_some_and(|usage| usage.count == 0))
}

/// Writes the account's usage of `kind` in `tx` when it has no record yet,
/// counted with `recount` (so that [`known_empty`] can answer for it).
pub fn ensure(
    tx: &mut Tx<'_>,
    account_id: &str,
    kind: Kind,
    recount: impl FnOnce(&Tx<'_>) -> StoreResult<Usage>,
) -> StoreResult<()> {
    if tx.get::<Usage>(USAGE, &key(account_id, kind))?.is_none() {
        let usage = recount(tx)?;
        write(tx, account_id, kind, &usage);
    }
    Ok(())
}

/// Writes the account's usage of `kind` in `tx`.
pub fn write(tx: &mut Tx<'_>, account_id: &str, kind: Kind, usage: &Usage) {
    tx.put(USAGE, key(account_id, kind), usage);
}

/// Counts records under `prefix` (the recount of a simple collection;
/// nothing is decoded).
pub fn count_of(tx: &Tx<'_>, tree: &'static str, prefix: &[u8]) -> StoreResult<Usage> {
    Ok(Usage {
        count: tx.scan_entries(tree, prefix)?.len() as u64,
        ..Usage::default()
    })
}
