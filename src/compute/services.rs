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

use super::scheduler::{choose, Demand};
use crate::config::{is_host_name, is_zone_name, HostConfig, SchedulerPolicy};
use crate::error::{ApiError, ApiResult};
use crate::store::{StoreHandle, StoreResult, WriteBatch};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

const SERVICES: &str = "services";
const REMOVED_SERVICES: &str = "removed_services";
const ZONE_IDS: &str = "zone_ids";

/// The binary name of compute services (Nova's `nova-compute`).
pub const COMPUTE_BINARY: &str = "compute";

/// One compute host's service record.
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
    pub vcpus_used: u32,
    pub memory_mib_used: u64,
    /// Heartbeats come from inside the server (true) or from an external agent.
    pub simulated: bool,
    pub created_at: DateTime<Utc>,
}

impl ServiceRecord {
    /// Time since the last heartbeat, whole (days included).
    pub fn heartbeat_age(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.last_heartbeat.map(|beat| now - beat)
    }

    /// Alive: heartbeated within `window`.
    pub fn is_alive(&self, now: DateTime<Utc>, window: Duration) -> bool {
        self.heartbeat_age(now).is_some_and(|age| age <= window)
    }
}

/// Whether a zone can take work.
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

/// An availability zone, as derived from its hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub zone_id: String,
    pub state: ZoneState,
    /// The zone's hosts, by name.
    pub hosts: Vec<ServiceRecord>,
}

/// What an operator supplies to register a host.
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

#[derive(Default)]
struct Registry {
    services: BTreeMap<String, ServiceRecord>,
    zone_ids: BTreeMap<String, String>,
}

/// The zone-id prefix of a region: `us-east-1` -> `use1`, `ap-southeast-2`
/// -> `apse2` (AWS's own abbreviations), any other name kept as it is.
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

/// All compute services, cached from the store.
pub struct ServiceRegistry {
    store: Arc<StoreHandle>,
    zone_id_prefix: String,
    liveness_window: Duration,
    registry: RwLock<Registry>,
}

impl ServiceRegistry {
    pub fn load(
        store: Arc<StoreHandle>,
        region: &str,
        liveness_window: Duration,
    ) -> StoreResult<Self> {
        let mut registry = Registry::default();
        for record in store.records::<ServiceRecord>(SERVICES, b"")? {
            registry.services.insert(record.host.clone(), record);
        }
        for (zone, id) in store.records::<(String, String)>(ZONE_IDS, b"")? {
            registry.zone_ids.insert(zone, id);
        }
        Ok(Self {
            store,
            zone_id_prefix: zone_id_prefix(region),
            liveness_window,
            registry: RwLock::new(registry),
        })
    }

    pub fn liveness_window(&self) -> Duration {
        self.liveness_window
    }

    /// Registers the configured hosts: new ones are added (unless an operator
    /// removed them), known ones take the configured zone and capacity.
    pub async fn seed(&self, hosts: &[HostConfig], now: DateTime<Utc>) -> StoreResult<()> {
        let mut batch = WriteBatch::new();
        let sequence = {
            let mut registry = crate::sync::write(&self.registry);
            for host in hosts {
                if self
                    .store
                    .get_record::<bool>(REMOVED_SERVICES, host.name.as_bytes())?
                    .is_some()
                {
                    continue;
                }
                let record = match registry.services.get(&host.name) {
                    Some(existing) => ServiceRecord {
                        availability_zone: host.availability_zone.clone(),
                        vcpus: host.vcpus,
                        memory_mib: host.memory_mib,
                        simulated: host.simulated,
                        ..existing.clone()
                    },
                    None => new_record(&NewHost::from(host), now),
                };
                self.stage(&mut registry, &mut batch, record);
            }
            self.store.apply(&batch)?
        };
        self.store.durable(sequence).await
    }

    /// Queues `record` (and its zone's id when the zone is new) and updates the cache.
    fn stage(&self, registry: &mut Registry, batch: &mut WriteBatch, record: ServiceRecord) {
        if !registry.zone_ids.contains_key(&record.availability_zone) {
            let zone_id = format!("{}-az{}", self.zone_id_prefix, registry.zone_ids.len() + 1);
            let entry = (record.availability_zone.clone(), zone_id.clone());
            batch.put_record(ZONE_IDS, record.availability_zone.as_bytes(), &entry);
            registry
                .zone_ids
                .insert(record.availability_zone.clone(), zone_id);
        }
        batch.put_record(SERVICES, record.host.as_bytes(), &record);
        registry.services.insert(record.host.clone(), record);
    }

    /// Applies `change` to host `name` and persists it durably.
    async fn update(
        &self,
        name: &str,
        change: impl FnOnce(&mut ServiceRecord),
    ) -> ApiResult<ServiceRecord> {
        let (record, sequence) = {
            let mut registry = crate::sync::write(&self.registry);
            let mut record = registry
                .services
                .get(name)
                .cloned()
                .ok_or_else(|| ApiError::HostNotFound(name.into()))?;
            change(&mut record);
            let mut batch = WriteBatch::new();
            self.stage(&mut registry, &mut batch, record.clone());
            (record, self.store.apply(&batch)?)
        };
        self.store.durable(sequence).await?;
        Ok(record)
    }

    /// Every host, by name.
    pub fn hosts(&self) -> Vec<ServiceRecord> {
        crate::sync::read(&self.registry)
            .services
            .values()
            .cloned()
            .collect()
    }

    /// vCPUs of every registered compute host together (the fleet).
    pub fn fleet_vcpus(&self) -> u64 {
        crate::sync::read(&self.registry)
            .services
            .values()
            .map(|r| u64::from(r.vcpus))
            .sum()
    }

    /// The zones that exist now, by name, with their hosts and state.
    pub fn zones(&self, now: DateTime<Utc>) -> Vec<Zone> {
        let registry = crate::sync::read(&self.registry);
        let mut zones: BTreeMap<&str, Zone> = BTreeMap::new();
        for record in registry.services.values() {
            let zone = zones
                .entry(record.availability_zone.as_str())
                .or_insert_with(|| Zone {
                    name: record.availability_zone.clone(),
                    zone_id: registry
                        .zone_ids
                        .get(&record.availability_zone)
                        .cloned()
                        .unwrap_or_default(),
                    state: ZoneState::Unavailable,
                    hosts: Vec::new(),
                });
            if !record.disabled && record.is_alive(now, self.liveness_window) {
                zone.state = ZoneState::Available;
            }
            zone.hosts.push(record.clone());
        }
        zones.into_values().collect()
    }

    /// Registers a new host at runtime.
    pub async fn add_host(&self, host: NewHost, now: DateTime<Utc>) -> ApiResult<ServiceRecord> {
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
        let record = new_record(&host, now);
        let sequence = {
            let mut registry = crate::sync::write(&self.registry);
            if registry.services.contains_key(&host.name) {
                return Err(ApiError::HostAlreadyExists(host.name));
            }
            let mut batch = WriteBatch::new();
            batch.delete(REMOVED_SERVICES, host.name.as_bytes());
            self.stage(&mut registry, &mut batch, record.clone());
            self.store.apply(&batch)?
        };
        self.store.durable(sequence).await?;
        Ok(record)
    }

    /// Removes a host; a configured host stays removed across restarts.
    pub async fn remove_host(&self, name: &str) -> ApiResult<()> {
        let sequence = {
            let mut registry = crate::sync::write(&self.registry);
            let record = registry
                .services
                .get(name)
                .ok_or_else(|| ApiError::HostNotFound(name.into()))?;
            if record.vcpus_used > 0 || record.memory_mib_used > 0 {
                return Err(ApiError::invalid_value(format!(
                    "The compute host '{name}' still runs instances"
                )));
            }
            let mut batch = WriteBatch::new();
            batch.delete(SERVICES, name.as_bytes());
            batch.put_record(REMOVED_SERVICES, name.as_bytes(), &true);
            registry.services.remove(name);
            self.store.apply(&batch)?
        };
        self.store.durable(sequence).await?;
        Ok(())
    }

    /// Disables (with a reason) or enables a host. A disabled host keeps its
    /// instances but receives no new ones.
    pub async fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
        reason: Option<String>,
    ) -> ApiResult<ServiceRecord> {
        self.update(name, |record| {
            record.disabled = disabled;
            record.disabled_reason = if disabled { reason } else { None };
        })
        .await
    }

    /// Records a heartbeat from an external agent.
    pub async fn heartbeat(&self, name: &str, now: DateTime<Utc>) -> ApiResult<ServiceRecord> {
        self.update(name, |record| record.last_heartbeat = Some(now))
            .await
    }

    /// Heartbeats every simulated host at once (no flush: a lost heartbeat
    /// is repeated by the next tick, and nobody waits on it).
    pub fn heartbeat_simulated(&self, now: DateTime<Utc>) -> StoreResult<()> {
        let mut registry = crate::sync::write(&self.registry);
        let mut batch = WriteBatch::new();
        let simulated: Vec<ServiceRecord> = registry
            .services
            .values()
            .filter(|r| r.simulated)
            .cloned()
            .collect();
        for record in simulated {
            self.stage(
                &mut registry,
                &mut batch,
                ServiceRecord {
                    last_heartbeat: Some(now),
                    ..record
                },
            );
        }
        if !batch.is_empty() {
            self.store.apply(&batch)?;
        }
        Ok(())
    }
}

/// Capacity changes made under the registry's lock and written in one
/// atomic batch together with the caller's own records (the instances that
/// use the capacity).
pub struct HostsTransaction<'a> {
    owner: &'a ServiceRegistry,
    registry: &'a mut Registry,
    /// Everything to write atomically: host records plus the caller's.
    pub batch: WriteBatch,
}

impl HostsTransaction<'_> {
    /// True while at least one host names `zone`.
    pub fn zone_exists(&self, zone: &str) -> bool {
        self.registry
            .services
            .values()
            .any(|s| s.availability_zone == zone)
    }

    /// The id of `zone` (`use1-az2`).
    pub fn zone_id(&self, zone: &str) -> Option<&str> {
        self.registry.zone_ids.get(zone).map(String::as_str)
    }

    /// Chooses a host for `demand` and reserves its capacity.
    pub fn place(
        &mut self,
        zone: Option<&str>,
        demand: Demand,
        policy: SchedulerPolicy,
        now: DateTime<Utc>,
    ) -> Option<ServiceRecord> {
        let hosts: Vec<ServiceRecord> = self.registry.services.values().cloned().collect();
        let index = choose(
            &hosts,
            zone,
            demand,
            policy,
            now,
            self.owner.liveness_window,
        )?;
        let mut host = hosts[index].clone();
        host.vcpus_used += demand.vcpus;
        host.memory_mib_used += demand.memory_mib;
        self.owner
            .stage(self.registry, &mut self.batch, host.clone());
        Some(host)
    }

    /// Gives `demand` back to `host` (a no-op for a host since removed).
    pub fn release(&mut self, host: &str, demand: Demand) {
        if let Some(record) = self.registry.services.get(host).cloned() {
            let released = ServiceRecord {
                vcpus_used: record.vcpus_used.saturating_sub(demand.vcpus),
                memory_mib_used: record.memory_mib_used.saturating_sub(demand.memory_mib),
                ..record
            };
            self.owner.stage(self.registry, &mut self.batch, released);
        }
    }
}

impl ServiceRegistry {
    /// Runs `change` under the registry lock; when it succeeds, applies its
    /// batch (still under the lock, so host records are written in the order
    /// they were changed) and returns the batch's sequence number, to wait on
    /// with `StoreHandle::durable`. A failed or dry-run `change` writes nothing
    /// and leaves the cached records untouched.
    pub fn transaction<R>(
        &self,
        change: impl FnOnce(&mut HostsTransaction<'_>) -> ApiResult<R>,
    ) -> ApiResult<(R, u64)> {
        let mut registry = crate::sync::write(&self.registry);
        let snapshot = registry.services.clone();
        let mut transaction = HostsTransaction {
            owner: self,
            registry: &mut registry,
            batch: WriteBatch::new(),
        };
        // A panic inside `change` must not leave half-reserved capacity
        // behind for the requests after it (the lock itself survives it).
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change(&mut transaction)));
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(panic) => {
                registry.services = snapshot;
                std::panic::resume_unwind(panic);
            }
        };
        match outcome {
            Ok(result) => {
                let batch = std::mem::take(&mut transaction.batch);
                match self.store.apply(&batch) {
                    Ok(sequence) => Ok((result, sequence)),
                    Err(error) => {
                        registry.services = snapshot;
                        Err(error.into())
                    }
                }
            }
            Err(error) => {
                registry.services = snapshot;
                Err(error)
            }
        }
    }
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
        let zones = registry.zones(now);
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
        assert_eq!(registry.zones(now)[1].state, ZoneState::Unavailable);
        registry.remove_host("h1").await.unwrap();
        assert_eq!(registry.zones(now).len(), 1);
        // The zone id stays reserved: a new zone gets the next number.
        registry
            .add_host(host("h4", "us-east-1c"), now)
            .await
            .unwrap();
        assert_eq!(registry.zones(now)[1].zone_id, "use1-az3");
        // Ids survive a reload from the store.
        let reloaded = ServiceRegistry::load(store, "us-east-1", Duration::seconds(60)).unwrap();
        assert_eq!(reloaded.zones(now)[1].zone_id, "use1-az3");
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
