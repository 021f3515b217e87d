//! The fleet at a glance, for the operator: zones with their state, every
//! host with its capacity, reservation and heartbeat, instances counted by
//! zone and state, and the lifecycle's backlog.
//!
//! The operator's metrics and dashboard read this, through the store like
//! every API read (so they show the same truth on every replica of a
//! cluster), never the gateway's private caches. It costs a scan of the
//! instances' records, which is why the operator listener keeps one answer
//! for a few seconds rather than reading it per scrape.

use super::instances::{InstanceStatus, INSTANCES, INSTANCE_STATUS, SCHEDULE};
use super::operation;
use super::services::{ServiceRecord, ZoneState};
use super::Compute;
use crate::store::{Record, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// One zone: its name, id and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSummary {
    pub name: String,
    pub zone_id: String,
    pub available: bool,
}

/// One host: its record (capacity, reservation, newest heartbeat) and
/// whether it counts as alive now.
#[derive(Debug, Clone)]
pub struct HostSummary {
    pub record: ServiceRecord,
    pub alive: bool,
    /// Seconds since its last heartbeat (none yet: `None`).
    pub heartbeat_age_secs: Option<f64>,
}

/// What [`Compute::overview`] reads.
#[derive(Debug, Clone)]
pub struct Overview {
    pub taken_at: DateTime<Utc>,
    pub zones: Vec<ZoneSummary>,
    /// By zone, then host name.
    pub hosts: Vec<HostSummary>,
    /// Instances by (zone, state name).
    pub instances: BTreeMap<(String, &'static str), u64>,
    /// Transitions and clean-ups scheduled, and how many of them are due.
    pub lifecycle_scheduled: u64,
    pub lifecycle_due: u64,
    pub liveness_window_secs: u64,
}

/// The one field of an instance's record the overview needs.
#[derive(Serialize, Deserialize)]
struct PlacedIn {
    availability_zone: String,
}

impl Record for PlacedIn {
    /// The instance record's version: every version has the zone.
    const VERSION: u32 = <super::instances::Instance as Record>::VERSION;

    fn upgrade(_version: u32, data: serde_json::Value) -> StoreResult<Self> {
        serde_json::from_value(data).map_err(|e| StoreError(format!("instance zone: {e}")))
    }
}

impl Compute {
    /// Reads the [`Overview`] as of now.
    pub async fn overview(&self) -> StoreResult<Overview> {
        let now = self.clock().now();
        let window = self.services().liveness_window();
        let zones = self.services().zones_with_usage(now).await?;
        let mut zone_summaries = Vec::new();
        let mut hosts = Vec::new();
        for zone in zones {
            zone_summaries.push(ZoneSummary {
                name: zone.name.clone(),
                zone_id: zone.zone_id.clone(),
                available: zone.state == ZoneState::Available,
            });
            for record in zone.hosts {
                let age = record.heartbeat_age(now);
                hosts.push(HostSummary {
                    alive: record.is_alive(now, window),
                    heartbeat_age_secs: age
                        .map(|age| age.num_milliseconds().max(0) as f64 / 1000.0),
                    record,
                });
            }
        }
        hosts.sort_by(|a, b| {
            (&a.record.availability_zone, &a.record.host)
                .cmp(&(&b.record.availability_zone, &b.record.host))
        });
        let (instances, lifecycle_scheduled, lifecycle_due) = operation::read(self.store(), |tx| {
            let mut states: HashMap<Vec<u8>, &'static str> = HashMap::new();
            for (key, value) in tx.scan_entries(INSTANCE_STATUS, b"")? {
                let status: InstanceStatus = crate::store::decode(&value)?;
                states.insert(key, status.state.name());
            }
            let mut counts: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
            for (key, value) in tx.scan_entries(INSTANCES, b"")? {
                let placed: PlacedIn = crate::store::decode(&value)?;
                let state = states.get(&key).copied().unwrap_or("pending");
                *counts.entry((placed.availability_zone, state)).or_default() += 1;
            }
            let schedule = tx.scan_entries(SCHEDULE, b"")?;
            let due = schedule
                .iter()
                .filter(|(key, _)| {
                    super::instances::parse_schedule_key(key).is_some_and(|(at, ..)| at <= now)
                })
                .count();
            Ok::<_, StoreError>((counts, schedule.len() as u64, due as u64))
        })
        .await?;
        Ok(Overview {
            taken_at: now,
            zones: zone_summaries,
            hosts,
            instances,
            lifecycle_scheduled,
            lifecycle_due,
            liveness_window_secs: window.num_seconds().max(0) as u64,
        })
    }
}
