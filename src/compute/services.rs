//! The compute-service registry: hosts, their zones, liveness.
//!
//! As in OpenStack Nova once its Service record gained `availability_zone`:
//! a compute host is a record (host, binary, zone, disabled + reason, last
//! heartbeat, capacity), and availability zones are derived from those
//! records, never configured on their own. A zone exists while at least one
//! host names it and is `available` while at least one enabled host has
//! heartbeated within the liveness window. Liveness uses the whole age of the
//! heartbeat (Nova once used `timedelta.seconds` and lost the days, so a host
//! dead for a day and ten seconds looked alive). Zone ids (`use1-az1`) are
//! assigned when a zone first appears and never change or get reused.
//!
//! Liveness lives apart from the record too: a heartbeat (an agent's, or
//! the built-in simulated hosts') writes only the host's `host_liveness`
//! key, never the record or its usage, so heartbeats neither conflict with
//! placements and admin changes nor invalidate the hosts view; answers
//! overlay the newest heartbeat on each record (Kubernetes moved node
//! heartbeats to Lease objects for the same reason, KEP-0009).
//!
//! What the scheduler reserves lives apart from the record: each host's
//! `host_usage` record is the compare-and-swap point of placement (a launch
//! reads it, adds its demand and commits on the condition that it did not
//! change), so heartbeats and admin changes never conflict with launches,
//! and two gateways never book the same capacity twice.
//!
//! What is kept in memory is derived, never trusted unchecked: the hosts
//! and heartbeats views are checked against their markers in the store
//! (`compute::view`), and the zone states DescribeAvailabilityZones shows
//! are kept only with the very views they came from and until a host they
//! count alive could age out of the liveness window.

use super::operation::{self, Tx};
use super::scheduler::Placement;
use super::view::{DerivedView, Stamped};
use crate::config::{is_host_name, is_zone_name, HostConfig};
use crate::error::{ApiError, ApiResult};
use crate::store::{Record, StoreHandle, StoreResult};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) const SERVICES: &str = "services";
const REMOVED_SERVICES: &str = "removed_services";
const ZONE_IDS: &str = "zone_ids";
/// `host_liveness/<host>`: the time of the host's last heartbeat.
const HOST_LIVENESS: &str = "host_liveness";
pub(super) const HOST_USAGE: &str = "host_usage";
const META: &str = "meta";
/// Rewritten with every liveness write: the version the liveness view is
/// checked against.
const LIVENESS_REVISION: &[u8] = b"liveness_revision";
/// Rewritten with every liveness write that may change a host's state as a
/// reader sees it (see `put_liveness`).
const LIVENESS_STATUS_REVISION: &[u8] = b"liveness_status_revision";
/// How many zone ids were ever assigned (the next one is this plus one).
const ZONE_COUNT: &[u8] = b"zone_count";
/// Rewritten with every change to the services or zone ids: the version
/// the zone view is checked against.
const SERVICES_REVISION: &[u8] = b"services_revision";

/// The binary name of compute services (Nova's `nova-compute`).
pub const COMPUTE_BINARY: &str = "compute";

/// A compute service record, as Nova's `services` table with capacity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceRecord {
    pub host: String,
    pub binary: String,
    pub availability_zone: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Reserved capacity, from the host's `host_usage` record (version 1
    /// records carried it here; version 2 no longer writes it).
    #[serde(default, skip_serializing)]
    pub vcpus_used: u32,
    #[serde(default, skip_serializing)]
    pub memory_mib_used: u64,
    pub simulated: bool,
    pub created_at: DateTime<Utc>,
    /// Set when the host is an agent process (`ec2-gateway agent`) that
    /// registered itself: its instances change state when it reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
}

/// A host's `host_liveness` record.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct Liveness {
    last_heartbeat: DateTime<Utc>,
}

impl Record for Liveness {}

/// What an agent said of itself when it registered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentInfo {
    /// Where the operator reaches it (its advertised address).
    pub address: String,
    /// Its `ec2-gateway` version.
    pub version: String,
    pub registered_at: DateTime<Utc>,
}

impl Record for ServiceRecord {
    const VERSION: u32 = 2;

    /// Version 1 kept the reserved capacity in the record itself; it is
    /// read from there until the host's first `host_usage` write.
    fn upgrade(version: u32, data: serde_json::Value) -> StoreResult<Self> {
        match version {
            1 => serde_json::from_value(data)
                .map_err(|e| crate::store::StoreError(format!("service record v1: {e}"))),
            _ => Err(crate::store::StoreError(format!(
                "no upgrade from version {version} of a service record"
            ))),
        }
    }
}

impl ServiceRecord {
    /// How long ago the host last heartbeated.
    pub fn heartbeat_age(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.last_heartbeat.map(|beat| now - beat)
    }

    /// Heartbeated within `window` (the whole age, days included).
    pub fn is_alive(&self, now: DateTime<Utc>, window: Duration) -> bool {
        self.heartbeat_age(now).is_some_and(|age| age <= window)
    }
}

/// Capacity reserved on one host: the scheduler's compare-and-swap point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostUsage {
    pub vcpus_used: u32,
    pub memory_mib_used: u64,
}

impl Record for HostUsage {}

/// A zone's state as DescribeAvailabilityZones shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    Available,
    Unavailable,
}

impl ZoneState {
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneState::Available => "available",
            ZoneState::Unavailable => "unavailable",
        }
    }
}

/// A zone derived from its hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub zone_id: String,
    pub state: ZoneState,
    pub hosts: Vec<ServiceRecord>,
}

/// A host to register.
#[derive(Debug, Clone)]
pub struct NewHost {
    pub name: String,
    pub availability_zone: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub simulated: bool,
}

impl From<&HostConfig> for NewHost {
    fn from(config: &HostConfig) -> Self {
        Self {
            name: config.name.clone(),
            availability_zone: config.availability_zone.clone(),
            vcpus: config.vcpus,
            memory_mib: config.memory_mib,
            simulated: config.simulated,
        }
    }
}

/// The short form of a region in zone ids: `us-east-1` -> `use1`,
/// `ap-southeast-2` -> `apse2`.
pub fn zone_id_prefix(region: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    if parts.len() < 3 {
        return region.to_string();
    }
    let mut prefix = parts[0].to_string();
    for part in &parts[1..parts.len() - 1] {
        let short = match *part {
            "northeast" => "ne",
            "northwest" => "nw",
            "southeast" => "se",
            "southwest" => "sw",
            other => &other[..1.min(other.len())],
        };
        prefix.push_str(short);
    }
    prefix.push_str(parts[parts.len() - 1]);
    prefix
}

/// The registry of compute services, over the store.
pub struct ServiceRegistry {
    store: Arc<StoreHandle>,
    zone_id_prefix: String,
    liveness_window: Duration,
    /// The hosts and zone ids as of a version of `services_revision`: a
    /// derived view for DescribeAvailabilityZones, used only after checking
    /// that version is still the stored one.
    view: DerivedView<HostsView>,
    /// The hosts' heartbeats as of a version of `liveness_revision` (read
    /// on every DescribeAvailabilityZones and placement; a derived view,
    /// checked before use like `view`).
    liveness: DerivedView<Heartbeats>,
    /// The scheduler chooses among this many of the best hosts.
    host_subset_size: usize,
    /// Every host with its usage and heartbeat, for placements among more
    /// than [`FRESH_PLACEMENT_HOSTS`]: checked against `services_revision`
    /// like `view`, and rebuilt once it is [`PLACEMENT_VIEW_AGE`] old
    /// (launches change usage without moving the marker). Only a first
    /// choice: the chosen host's usage is read in the launch's transaction,
    /// and its commit compares it.
    placement_view: DerivedView<Arc<[ServiceRecord]>>,
    /// The zones' states as last derived from `view` and `liveness` (see
    /// [`ServiceRegistry::zone_states`]).
    states: std::sync::RwLock<Option<DerivedStates>>,
}

/// Zone states derived from one hosts view and one heartbeats view. They
/// stay true from `from` until `until`: the first moment a host counted
/// alive could be past the liveness window (a host counted dead stays dead
/// until a heartbeat, which brings new views).
struct DerivedStates {
    hosts: Arc<Stamped<HostsView>>,
    beats: Arc<Stamped<Heartbeats>>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    zones: Arc<[Zone]>,
}

impl DerivedStates {
    /// True when derived from these very views and `now` is within the
    /// time they hold for. The kept views are held here, so an address
    /// cannot be reused by another view while this compares against it.
    fn serves(
        &self,
        hosts: &Arc<Stamped<HostsView>>,
        beats: &Arc<Stamped<Heartbeats>>,
        now: DateTime<Utc>,
    ) -> bool {
        Arc::ptr_eq(&self.hosts, hosts)
            && Arc::ptr_eq(&self.beats, beats)
            && self.from <= now
            && now <= self.until
    }
}

/// Hosts (without their usage) and zone ids at one `services_revision`.
struct HostsView {
    hosts: Vec<ServiceRecord>,
    /// Each zone's hosts (indices into `hosts`), by zone name.
    by_zone: BTreeMap<String, Vec<usize>>,
    zone_ids: BTreeMap<String, String>,
    /// The hosts that are agent processes.
    agents: std::collections::HashSet<String>,
}

/// How long the liveness view is kept after it was built even when a
/// heartbeat moved its marker: a host then looks at most this much older
/// than it is, against a liveness window of seconds (a minute by default).
const LIVENESS_VIEW_AGE: std::time::Duration = std::time::Duration::from_millis(250);

/// Up to this many hosts, a placement reads every host's usage as stored
/// now (a few microseconds each); above it, from the placement view.
const FRESH_PLACEMENT_HOSTS: usize = 256;

/// How old the scheduler's view of the hosts' free capacity may grow
/// before it is read again: a choice made on it is checked on the chosen
/// host's own usage record, so an older view costs only a worse first
/// choice, never a double booking.
const PLACEMENT_VIEW_AGE: std::time::Duration = std::time::Duration::from_millis(500);

/// Every host's last heartbeat from `host_liveness`, by host name.
struct Heartbeats {
    beats: std::collections::HashMap<String, DateTime<Utc>>,
    /// The version of the hosts view it was read beside: a view read before
    /// a host registered is not kept past that (the new host would look
    /// dead), however young it is.
    hosts_version: u64,
    /// The version of `liveness_status_revision` it was read at: likewise.
    status_version: u64,
}

/// Gives each of `hosts` its newest heartbeat: the record's own (hosts
/// that heartbeated before liveness had its own key) or `beats`'.
fn overlay_beats(beats: &Heartbeats, hosts: &mut [ServiceRecord]) {
    for host in hosts {
        if let Some(&beat) = beats.beats.get(&host.host) {
            host.last_heartbeat = Some(host.last_heartbeat.map_or(beat, |own| own.max(beat)));
        }
    }
}

/// Writes `host`'s liveness in `tx`, and the markers the liveness view is
/// checked against (blind writes: heartbeats never conflict). A heartbeat
/// that may change what a reader concludes (the host had none, or its last
/// one is older than the liveness window less the view's tolerated age)
/// also moves the status marker, which a tolerated view never outlives: a
/// view kept after routine heartbeats only ever shows a host's heartbeat
/// older than it is, never dead while it is alive.
fn put_liveness(
    tx: &mut Tx<'_>,
    host: &str,
    now: DateTime<Utc>,
    window: Duration,
) -> StoreResult<()> {
    let previous = tx.peek_record::<Liveness>(HOST_LIVENESS, host.as_bytes())?;
    let tolerated = Duration::from_std(LIVENESS_VIEW_AGE).unwrap_or_default();
    let routine =
        previous.is_some_and(|previous| now - previous.last_heartbeat <= window - tolerated);
    tx.put(
        HOST_LIVENESS,
        host.as_bytes(),
        &Liveness {
            last_heartbeat: now,
        },
    );
    tx.put(META, LIVENESS_REVISION, &true);
    if !routine {
        tx.put(META, LIVENESS_STATUS_REVISION, &true);
    }
    Ok(())
}

/// Deletes `host`'s liveness in `tx` (and moves the view's markers).
fn delete_liveness(tx: &mut Tx<'_>, host: &str) {
    tx.delete(HOST_LIVENESS, host.as_bytes());
    tx.put(META, LIVENESS_REVISION, &true);
    tx.put(META, LIVENESS_STATUS_REVISION, &true);
}

/// Marks a change to the services in `tx`: a blind write (only the key's
/// version matters to the view), so that hosts registering at once do not
/// conflict on it; what must not happen together (a name taken twice, a
/// zone id given twice) conflicts on its own keys.
fn bump_services_revision(tx: &mut Tx<'_>) {
    tx.put(META, SERVICES_REVISION, &0u64);
}

/// The usage of `record`'s host as `tx` sees it (version 1 records carry
/// their own until the first write).
pub(super) fn usage_in(tx: &mut Tx<'_>, record: &ServiceRecord) -> StoreResult<HostUsage> {
    Ok(tx
        .get::<HostUsage>(HOST_USAGE, record.host.as_bytes())?
        .unwrap_or(HostUsage {
            vcpus_used: record.vcpus_used,
            memory_mib_used: record.memory_mib_used,
        }))
}

impl ServiceRegistry {
    pub fn load(
        store: Arc<StoreHandle>,
        region: &str,
        liveness_window: Duration,
    ) -> StoreResult<Self> {
        Ok(Self {
            store,
            zone_id_prefix: zone_id_prefix(region),
            liveness_window,
            view: DerivedView::new(META, SERVICES_REVISION),
            liveness: DerivedView::new(META, LIVENESS_REVISION).tolerating(LIVENESS_VIEW_AGE),
            host_subset_size: 1,
            placement_view: DerivedView::new(META, SERVICES_REVISION)
                .refreshing_after(PLACEMENT_VIEW_AGE),
            states: std::sync::RwLock::new(None),
        })
    }

    /// The scheduler chooses among `size` of the best hosts at random
    /// (see [`super::scheduler`]).
    pub fn with_host_subset_size(mut self, size: usize) -> Self {
        self.host_subset_size = size.max(1);
        self
    }

    /// How long a heartbeat keeps a host alive.
    pub fn liveness_window(&self) -> Duration {
        self.liveness_window
    }

    /// Registers or updates the configured hosts (not those an admin
    /// removed), keeping their heartbeats, state and reservations.
    pub async fn seed(&self, hosts: &[HostConfig], now: DateTime<Utc>) -> ApiResult<()> {
        operation::run(&self.store, false, |tx| {
            for host in hosts {
                if tx
                    .get::<bool>(REMOVED_SERVICES, host.name.as_bytes())?
                    .is_some()
                {
                    continue;
                }
                let record = match tx.get::<ServiceRecord>(SERVICES, host.name.as_bytes())? {
                    Some(existing) if existing.agent.is_some() => {
                        tracing::warn!(host = %host.name, "a configured host has the name of an agent's host: the agent keeps it");
                        continue;
                    }
                    Some(existing) => {
                        let usage = usage_in(tx, &existing)?;
                        tx.put(HOST_USAGE, host.name.as_bytes(), &usage);
                        ServiceRecord {
                            availability_zone: host.availability_zone.clone(),
                            vcpus: host.vcpus,
                            memory_mib: host.memory_mib,
                            simulated: host.simulated,
                            ..existing
                        }
                    }
                    None => {
                        tx.put(HOST_USAGE, host.name.as_bytes(), &HostUsage::default());
                        new_record(&NewHost::from(host), now)
                    }
                };
                self.stage(tx, &record)?;
            }
            Ok(())
        })
        .await
    }

    /// Writes `record` in `tx`, assigning its zone an id when it is new.
    fn stage(&self, tx: &mut Tx<'_>, record: &ServiceRecord) -> StoreResult<()> {
        bump_services_revision(tx);
        let zone = record.availability_zone.as_bytes();
        if tx.get::<(String, String)>(ZONE_IDS, zone)?.is_none() {
            let assigned = match tx.get::<u64>(META, ZONE_COUNT)? {
                Some(count) => count,
                None => tx.scan::<(String, String)>(ZONE_IDS, b"")?.len() as u64,
            };
            let zone_id = format!("{}-az{}", self.zone_id_prefix, assigned + 1);
            tx.put(ZONE_IDS, zone, &(record.availability_zone.clone(), zone_id));
            tx.put(META, ZONE_COUNT, &(assigned + 1));
        }
        tx.put(SERVICES, record.host.as_bytes(), record);
        Ok(())
    }

    /// Changes one host's record.
    async fn update(
        &self,
        name: &str,
        change: impl Fn(&mut ServiceRecord),
    ) -> ApiResult<ServiceRecord> {
        let record = operation::run(&self.store, false, |tx| {
            let mut record = tx
                .get::<ServiceRecord>(SERVICES, name.as_bytes())?
                .ok_or_else(|| ApiError::HostNotFound(name.into()))?;
            change(&mut record);
            self.stage(tx, &record)?;
            Ok(record)
        })
        .await?;
        self.with_usage(record).await
    }

    /// `record` with its reserved capacity and newest heartbeat filled in.
    async fn with_usage(&self, mut record: ServiceRecord) -> ApiResult<ServiceRecord> {
        if let Some(beat) = self
            .store
            .get_record::<Liveness>(HOST_LIVENESS, record.host.as_bytes())
            .await?
        {
            record.last_heartbeat = Some(
                record
                    .last_heartbeat
                    .map_or(beat.last_heartbeat, |own| own.max(beat.last_heartbeat)),
            );
        }
        if let Some(usage) = self
            .store
            .get_record::<HostUsage>(HOST_USAGE, record.host.as_bytes())
            .await?
        {
            record.vcpus_used = usage.vcpus_used;
            record.memory_mib_used = usage.memory_mib_used;
        }
        Ok(record)
    }

    /// Every host with its reserved capacity, by name.
    pub async fn hosts(&self) -> StoreResult<Vec<ServiceRecord>> {
        operation::read(&self.store, |tx| self.hosts_in(tx)).await
    }

    /// Every host with its reserved capacity as `tx` reads them now.
    pub(super) fn hosts_in(&self, tx: &Tx<'_>) -> StoreResult<Vec<ServiceRecord>> {
        // One read per host rather than a scan: a handful of hosts, and a
        // point read costs far less than a range in sled.
        let mut hosts = self.current_view(tx)?.hosts.clone();
        self.overlay_liveness(tx, &mut hosts)?;
        for host in &mut hosts {
            if let Some(used) = tx.peek_record::<HostUsage>(HOST_USAGE, host.host.as_bytes())? {
                host.vcpus_used = used.vcpus_used;
                host.memory_mib_used = used.memory_mib_used;
            }
        }
        Ok(hosts)
    }

    /// Gives each of `hosts` its newest heartbeat, from the liveness view.
    fn overlay_liveness(&self, tx: &Tx<'_>, hosts: &mut [ServiceRecord]) -> StoreResult<()> {
        let beats = self.liveness_view(tx)?;
        overlay_beats(&beats, hosts);
        Ok(())
    }

    /// Every host's last heartbeat (see [`LIVENESS_VIEW_AGE`]).
    fn liveness_view(&self, tx: &Tx<'_>) -> StoreResult<Arc<Stamped<Heartbeats>>> {
        let hosts_version = self.current_view(tx)?.version();
        // Read only when the store moved since the view was last checked
        // (a read that must wait fails the check, and the build asks again).
        let status_version = |tx: &Tx<'_>| {
            tx.peek_version(META, LIVENESS_STATUS_REVISION)
                .map(|version| version.unwrap_or(0))
        };
        self.liveness.current_if(
            tx,
            |kept| {
                kept.hosts_version == hosts_version
                    && status_version(tx).is_ok_and(|version| kept.status_version == version)
            },
            |tx| {
                let status_version = status_version(tx)?;
                let beats = tx
                    .scan_entries(HOST_LIVENESS, b"")?
                    .into_iter()
                    .map(|(key, value)| {
                        let host = String::from_utf8_lossy(&key).into_owned();
                        Ok((
                            host,
                            crate::store::decode::<Liveness>(&value)?.last_heartbeat,
                        ))
                    })
                    .collect::<StoreResult<_>>()?;
                Ok(Heartbeats {
                    beats,
                    hosts_version,
                    status_version,
                })
            },
        )
    }

    /// True when `host` heartbeated within the liveness window at `now`.
    pub(super) fn is_host_alive(
        &self,
        tx: &Tx<'_>,
        host: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let Some(record) = self
            .current_view(tx)?
            .hosts
            .iter()
            .find(|r| r.host == host)
            .cloned()
        else {
            return Ok(false);
        };
        let mut one = [record];
        self.overlay_liveness(tx, &mut one)?;
        Ok(one[0].is_alive(now, self.liveness_window))
    }

    /// True when `host` is an agent process (its instances wait for its
    /// reports), as `tx` reads the hosts now.
    pub(super) fn is_agent_host(&self, tx: &Tx<'_>, host: &str) -> StoreResult<bool> {
        Ok(self.current_view(tx)?.agents.contains(host))
    }

    /// The vCPUs of every host together (the fleet an account shares).
    pub async fn fleet_vcpus(&self) -> StoreResult<u64> {
        operation::read(&self.store, |tx| {
            Ok(self
                .current_view(tx)?
                .hosts
                .iter()
                .map(|r| u64::from(r.vcpus))
                .sum())
        })
        .await
    }

    /// The hosts (without usage) and zone ids, from the view when it is
    /// still at the stored `services_revision`, else read and kept.
    fn current_view(&self, tx: &Tx<'_>) -> StoreResult<Arc<Stamped<HostsView>>> {
        self.view.current(tx, |tx| {
            let hosts = tx.scan::<ServiceRecord>(SERVICES, b"")?;
            let mut by_zone: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (index, host) in hosts.iter().enumerate() {
                by_zone
                    .entry(host.availability_zone.clone())
                    .or_default()
                    .push(index);
            }
            Ok(HostsView {
                by_zone,
                agents: hosts
                    .iter()
                    .filter(|h| h.agent.is_some())
                    .map(|h| h.host.clone())
                    .collect(),
                hosts,
                zone_ids: tx
                    .scan::<(String, String)>(ZONE_IDS, b"")?
                    .into_iter()
                    .collect(),
            })
        })
    }

    /// The zones, derived from the hosts: a zone exists while a host names
    /// it and is available while one of its enabled hosts is alive. The
    /// hosts carry no usage (see [`ServiceRegistry::zones_with_usage`]).
    pub async fn zones(&self, now: DateTime<Utc>) -> StoreResult<Vec<Zone>> {
        operation::read(&self.store, |tx| self.zones_in(tx, now)).await
    }

    /// [`ServiceRegistry::zones`] as `tx` reads them now.
    pub(super) fn zones_in(&self, tx: &Tx<'_>, now: DateTime<Utc>) -> StoreResult<Vec<Zone>> {
        let view = self.current_view(tx)?;
        let mut hosts = view.hosts.clone();
        self.overlay_liveness(tx, &mut hosts)?;
        Ok(self.group_zones(hosts, &view.zone_ids, now))
    }

    /// The zones with their names, ids and states only (no hosts): what
    /// DescribeAvailabilityZones shows. Read without copying any host, and a
    /// zone's hosts are looked at only until one is enabled and alive, so
    /// the answer costs little however many hosts a zone has. The states
    /// derived last are shared while the hosts and heartbeats views they
    /// came from are still the current ones and no host they count alive
    /// can have aged out: the common request copies nothing.
    pub async fn zone_states(&self, now: DateTime<Utc>) -> StoreResult<Arc<[Zone]>> {
        operation::read(&self.store, |tx| {
            let hosts = self.current_view(tx)?;
            let beats = self.liveness_view(tx)?;
            let kept = crate::sync::read(&self.states)
                .as_ref()
                .filter(|kept| kept.serves(&hosts, &beats, now))
                .map(|kept| kept.zones.clone());
            if let Some(zones) = kept {
                return Ok(zones);
            }
            let derived = self.derive_states(hosts, beats, now);
            let zones = derived.zones.clone();
            *crate::sync::write(&self.states) = Some(derived);
            Ok(zones)
        })
        .await
    }

    /// Each zone's state at `now` from the hosts and heartbeats views. The
    /// zones last derived are shared again when nothing in them changed
    /// (a heartbeat that moved no zone), so that what was rendered from
    /// them can be recognised by their address.
    fn derive_states(
        &self,
        hosts: Arc<Stamped<HostsView>>,
        beats: Arc<Stamped<Heartbeats>>,
        now: DateTime<Utc>,
    ) -> DerivedStates {
        // Until when each host counts alive (None: dead at `now`).
        let alive_until = |record: &ServiceRecord| {
            let beat = beats.beats.get(&record.host).copied();
            let newest = match (record.last_heartbeat, beat) {
                (Some(own), Some(beat)) => Some(own.max(beat)),
                (own, beat) => own.or(beat),
            };
            newest
                .map(|beat| {
                    beat.checked_add_signed(self.liveness_window)
                        .unwrap_or(DateTime::<Utc>::MAX_UTC)
                })
                .filter(|until| now <= *until)
        };
        let mut until = DateTime::<Utc>::MAX_UTC;
        let zones: Vec<Zone> = hosts
            .by_zone
            .iter()
            .map(|(name, members)| {
                let mut state = ZoneState::Unavailable;
                for record in members.iter().map(|&index| &hosts.hosts[index]) {
                    if let Some(alive) = alive_until(record) {
                        until = until.min(alive);
                        if !record.disabled {
                            state = ZoneState::Available;
                        }
                    }
                }
                Zone {
                    name: name.clone(),
                    zone_id: hosts.zone_ids.get(name).cloned().unwrap_or_default(),
                    state,
                    hosts: Vec::new(),
                }
            })
            .collect();
        let previous = crate::sync::read(&self.states)
            .as_ref()
            .filter(|kept| *kept.zones == *zones)
            .map(|kept| kept.zones.clone());
        DerivedStates {
            hosts,
            beats,
            from: now,
            until,
            zones: previous.unwrap_or_else(|| zones.into()),
        }
    }

    /// [`ServiceRegistry::zones`] with every host's reserved capacity.
    pub async fn zones_with_usage(&self, now: DateTime<Utc>) -> StoreResult<Vec<Zone>> {
        operation::read(&self.store, |tx| {
            let view = self.current_view(tx)?;
            Ok(self.group_zones(self.hosts_in(tx)?, &view.zone_ids, now))
        })
        .await
    }

    fn group_zones(
        &self,
        hosts: Vec<ServiceRecord>,
        zone_ids: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Vec<Zone> {
        let mut zones: BTreeMap<String, Zone> = BTreeMap::new();
        for record in hosts {
            let zone = zones
                .entry(record.availability_zone.clone())
                .or_insert_with(|| Zone {
                    name: record.availability_zone.clone(),
                    zone_id: zone_ids
                        .get(&record.availability_zone)
                        .cloned()
                        .unwrap_or_default(),
                    state: ZoneState::Unavailable,
                    hosts: Vec::new(),
                });
            if !record.disabled && record.is_alive(now, self.liveness_window) {
                zone.state = ZoneState::Available;
            }
            zone.hosts.push(record);
        }
        zones.into_values().collect()
    }

    /// AdminAddHost: a new compute host (external ones must heartbeat).
    pub async fn add_host(&self, host: NewHost, now: DateTime<Utc>) -> ApiResult<ServiceRecord> {
        check_new_host(&host)?;
        let record = new_record(&host, now);
        operation::run(&self.store, false, |tx| {
            if tx
                .get::<ServiceRecord>(SERVICES, host.name.as_bytes())?
                .is_some()
            {
                return Err(ApiError::HostAlreadyExists(host.name.clone()));
            }
            tx.delete(REMOVED_SERVICES, host.name.as_bytes());
            // Alive only once it heartbeats (an earlier host of the name
            // may have left its liveness behind).
            delete_liveness(tx, &host.name);
            if tx
                .get::<HostUsage>(HOST_USAGE, host.name.as_bytes())?
                .is_none()
            {
                tx.put(HOST_USAGE, host.name.as_bytes(), &HostUsage::default());
            }
            self.stage(tx, &record)?;
            Ok(())
        })
        .await?;
        Ok(record)
    }

    /// AdminRemoveHost: only a host that runs nothing.
    pub async fn remove_host(&self, name: &str) -> ApiResult<()> {
        operation::run(&self.store, false, |tx| {
            let record = tx
                .get::<ServiceRecord>(SERVICES, name.as_bytes())?
                .ok_or_else(|| ApiError::HostNotFound(name.into()))?;
            let usage = usage_in(tx, &record)?;
            if usage.vcpus_used > 0 || usage.memory_mib_used > 0 {
                return Err(ApiError::invalid_value(format!(
                    "The compute host '{name}' still runs instances"
                )));
            }
            bump_services_revision(tx);
            tx.delete(SERVICES, name.as_bytes());
            tx.delete(HOST_USAGE, name.as_bytes());
            delete_liveness(tx, name);
            tx.put(REMOVED_SERVICES, name.as_bytes(), &true);
            Ok(())
        })
        .await
    }

    /// Disables (with a reason) or enables a host.
    pub async fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
        reason: Option<String>,
    ) -> ApiResult<ServiceRecord> {
        self.update(name, |record| {
            record.disabled = disabled;
            record.disabled_reason = if disabled { reason.clone() } else { None };
        })
        .await
    }

    /// Records a heartbeat of an external host (its `host_liveness` key
    /// alone: see the module documentation). A heartbeat lost in a crash is
    /// simply the next one, so it does not wait for a flush.
    pub async fn heartbeat(&self, name: &str, now: DateTime<Utc>) -> ApiResult<ServiceRecord> {
        let record = operation::run_background(&self.store, |tx| {
            // Read in the operation: a removal meanwhile makes it run
            // again (and refuse), so no liveness outlives its host.
            let mut record = tx
                .get::<ServiceRecord>(SERVICES, name.as_bytes())?
                .ok_or_else(|| ApiError::HostNotFound(name.into()))?;
            put_liveness(tx, name, now, self.liveness_window)?;
            record.last_heartbeat = Some(now);
            Ok(record)
        })
        .await?;
        self.with_usage(record).await
    }

    /// Readies `host` for an agent's key: refused for a built-in or
    /// admin-added host (not an agent's to take); a host an operator
    /// removed may register again (creating its key is the operator's
    /// word for it).
    pub async fn admit_agent(&self, host: &str) -> ApiResult<()> {
        operation::run(&self.store, false, |tx| {
            if let Some(existing) = tx.get::<ServiceRecord>(SERVICES, host.as_bytes())? {
                if existing.agent.is_none() {
                    return Err(ApiError::invalid_value(format!(
                        "The compute host '{host}' is not an agent's host"
                    )));
                }
            }
            if tx.get::<bool>(REMOVED_SERVICES, host.as_bytes())?.is_some() {
                tx.delete(REMOVED_SERVICES, host.as_bytes());
            }
            Ok(())
        })
        .await
    }

    /// Registers (or updates) the host of an agent process: its zone and
    /// capacity as the agent says, its address and version; its state
    /// (disabled or not) and reservations are kept. Refused for a built-in
    /// or admin-added host, for a host an operator removed (until it gets a
    /// new key: [`ServiceRegistry::admit_agent`]), and for a zone other
    /// than the one it first registered in.
    pub async fn register_agent(
        &self,
        host: NewHost,
        agent: AgentInfo,
        now: DateTime<Utc>,
    ) -> ApiResult<ServiceRecord> {
        check_new_host(&host)?;
        let record = operation::run(&self.store, false, |tx| {
            if tx
                .get::<bool>(REMOVED_SERVICES, host.name.as_bytes())?
                .is_some()
            {
                return Err(ApiError::invalid_value(format!(
                    "The compute host '{}' was removed by an operator; a new agent key for it lets it register again",
                    host.name
                )));
            }
            let usage = tx.get::<HostUsage>(HOST_USAGE, host.name.as_bytes())?;
            let record = match tx.get::<ServiceRecord>(SERVICES, host.name.as_bytes())? {
                Some(existing) => {
                    // A built-in or admin-added host is not an agent's to take.
                    if existing.agent.is_none() {
                        return Err(ApiError::invalid_value(format!(
                            "The compute host '{}' is not an agent's host",
                            host.name
                        )));
                    }
                    // The zone is fixed at the first registration (its
                    // instances, subnets and zone id were made for it).
                    if existing.availability_zone != host.availability_zone {
                        return Err(ApiError::invalid_value(format!(
                            "The compute host '{}' is in {}: it cannot move to {}",
                            host.name, existing.availability_zone, host.availability_zone
                        )));
                    }
                    ServiceRecord {
                        availability_zone: host.availability_zone.clone(),
                        vcpus: host.vcpus,
                        memory_mib: host.memory_mib,
                        simulated: false,
                        agent: Some(agent.clone()),
                        ..existing
                    }
                }
                None => ServiceRecord {
                    agent: Some(agent.clone()),
                    ..new_record(&host, now)
                },
            };
            if usage.is_none() {
                tx.put(HOST_USAGE, host.name.as_bytes(), &HostUsage::default());
            }
            put_liveness(tx, &host.name, now, self.liveness_window)?;
            self.stage(tx, &record)?;
            Ok(record)
        })
        .await?;
        self.with_usage(record).await
    }

    /// Heartbeats every simulated host (they live inside this process). A
    /// heartbeat lost in a crash is simply the next one, so it does not
    /// wait for a flush.
    pub async fn heartbeat_simulated(&self, now: DateTime<Utc>) -> ApiResult<()> {
        operation::run_background(&self.store, |tx| {
            for record in &self.current_view(tx)?.hosts {
                if record.simulated {
                    put_liveness(tx, &record.host, now, self.liveness_window)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// The hosts, for placing instances: their usage as stored now (not
    /// tracked; [`Placement::place`] reads the chosen host's in the `Tx`).
    pub fn placement(&self, tx: &Tx<'_>) -> StoreResult<Placement<'_>> {
        let view = self.current_view(tx)?;
        let zones = view.by_zone.keys().cloned().collect();
        let (hosts, refresh): (Arc<[ServiceRecord]>, _) =
            if view.hosts.len() <= FRESH_PLACEMENT_HOSTS {
                (self.hosts_in(tx)?.into(), None)
            } else {
                let view = self
                    .placement_view
                    .current(tx, |tx| Ok(self.hosts_in(tx)?.into()))?;
                (Arc::clone(&view), Some(self))
            };
        Ok(Placement::new(
            hosts,
            refresh,
            zones,
            self.liveness_window,
            self.host_subset_size,
        ))
    }

    /// Gives every host a `host_usage` record (version 1 records carried
    /// their reservations inline): run at start, before anything places.
    pub async fn upgrade_usage(&self) -> ApiResult<()> {
        for record in self.store.records::<ServiceRecord>(SERVICES, b"").await? {
            if self
                .store
                .raw(HOST_USAGE, record.host.as_bytes())
                .await?
                .is_some()
            {
                continue;
            }
            operation::run(&self.store, false, |tx| {
                let Some(current) = tx.get::<ServiceRecord>(SERVICES, record.host.as_bytes())?
                else {
                    return Ok(());
                };
                if tx
                    .get::<HostUsage>(HOST_USAGE, record.host.as_bytes())?
                    .is_none()
                {
                    let usage = HostUsage {
                        vcpus_used: current.vcpus_used,
                        memory_mib_used: current.memory_mib_used,
                    };
                    tx.put(HOST_USAGE, record.host.as_bytes(), &usage);
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// The id of `zone`, if it has one (ids never change once assigned).
    pub fn zone_id(&self, tx: &Tx<'_>, zone: &str) -> StoreResult<Option<String>> {
        Ok(self.current_view(tx)?.zone_ids.get(zone).cloned())
    }
}

/// A host's name, zone and capacity, checked before it is registered.
fn check_new_host(host: &NewHost) -> ApiResult<()> {
    if !is_host_name(&host.name) {
        return Err(ApiError::invalid_value(format!(
            "Invalid host name '{}'",
            host.name
        )));
    }
    if !is_zone_name(&host.availability_zone) {
        return Err(ApiError::invalid_value(format!(
            "Invalid availability zone name '{}'",
            host.availability_zone
        )));
    }
    if host.vcpus == 0 || host.memory_mib == 0 {
        return Err(ApiError::invalid_value(
            "A host needs at least 1 vCPU and 1 MiB of memory",
        ));
    }
    Ok(())
}

fn new_record(host: &NewHost, now: DateTime<Utc>) -> ServiceRecord {
    ServiceRecord {
        host: host.name.clone(),
        binary: COMPUTE_BINARY.to_string(),
        availability_zone: host.availability_zone.clone(),
        disabled: false,
        disabled_reason: None,
        // A simulated host is up from the moment it is registered.
        last_heartbeat: host.simulated.then_some(now),
        vcpus: host.vcpus,
        memory_mib: host.memory_mib,
        vcpus_used: 0,
        memory_mib_used: 0,
        simulated: host.simulated,
        created_at: now,
        agent: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn zone_id_prefixes() {
        assert_eq!(zone_id_prefix("us-east-1"), "use1");
        assert_eq!(zone_id_prefix("eu-west-2"), "euw2");
        assert_eq!(zone_id_prefix("ap-southeast-2"), "apse2");
        assert_eq!(zone_id_prefix("lab"), "lab");
    }

    #[test]
    fn liveness_counts_whole_days() {
        let now = Utc::now();
        let record = new_record(
            &NewHost {
                name: "h".into(),
                availability_zone: "z".into(),
                vcpus: 1,
                memory_mib: 1,
                simulated: true,
            },
            now - Duration::days(1) - Duration::seconds(10),
        );
        assert!(!record.is_alive(now, Duration::seconds(60)));
        assert!(record.is_alive(now - Duration::days(1), Duration::seconds(60)));
    }

    #[tokio::test]
    async fn zones_follow_their_hosts() {
        let store = Arc::new(StoreHandle::new(Arc::new(MemoryStore::new())));
        let registry =
            ServiceRegistry::load(store.clone(), "us-east-1", Duration::seconds(60)).unwrap();
        let now = Utc::now();
        let host = |name: &str, zone: &str| NewHost {
            name: name.into(),
            availability_zone: zone.into(),
            vcpus: 4,
            memory_mib: 1024,
            simulated: true,
        };
        registry
            .add_host(host("h1", "us-east-1b"), now)
            .await
            .unwrap();
        registry
            .add_host(host("h2", "us-east-1a"), now)
            .await
            .unwrap();
        registry
            .add_host(host("h3", "us-east-1a"), now)
            .await
            .unwrap();
        let zones = registry.zones(now).await.unwrap();
        let summary: Vec<_> = zones
            .iter()
            .map(|z| (z.name.as_str(), z.zone_id.as_str(), z.state, z.hosts.len()))
            .collect();
        assert_eq!(
            summary,
            [
                ("us-east-1a", "use1-az2", ZoneState::Available, 2),
                ("us-east-1b", "use1-az1", ZoneState::Available, 1)
            ]
        );
        registry
            .set_disabled("h1", true, Some("maintenance".into()))
            .await
            .unwrap();
        assert_eq!(
            registry.zones(now).await.unwrap()[1].state,
            ZoneState::Unavailable
        );
        registry.remove_host("h1").await.unwrap();
        assert_eq!(registry.zones(now).await.unwrap().len(), 1);
        // The zone id stays reserved: a new zone gets the next number.
        registry
            .add_host(host("h4", "us-east-1c"), now)
            .await
            .unwrap();
        assert_eq!(registry.zones(now).await.unwrap()[1].zone_id, "use1-az3");
        // Ids survive a reload from the store.
        let reloaded = ServiceRegistry::load(store, "us-east-1", Duration::seconds(60)).unwrap();
        assert_eq!(reloaded.zones(now).await.unwrap()[1].zone_id, "use1-az3");
        assert_eq!(
            registry
                .add_host(host("h4", "x"), now)
                .await
                .unwrap_err()
                .code(),
            "InvalidHost.Duplicate"
        );
    }
}
