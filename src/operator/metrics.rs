//! The gateway's metrics in Prometheus' exposition format (OpenMetrics
//! text, through the `prometheus-client` crate).
//!
//! Two kinds live here:
//! - counters and histograms the request path updates as it goes
//!   ([`RequestMetrics`]): requests by action, code and status, latency by
//!   action, signature failures by kind, throttled requests by class, open
//!   connections, plus the store's commit latency, conflicts and retries
//!   ([`crate::store::StoreMetrics`]);
//! - gauges of the fleet, set from the core's [`Overview`] at scrape time:
//!   instances by zone and state, each host's and zone's vCPUs and memory
//!   used and free, heartbeat age, the lifecycle's backlog.
//!
//! Labels are bounded sets only: an action label is a name the gateway
//! implements (anything else is `other`), a code is one of the gateway's
//! own error codes, a host or zone is one an operator registered. Never an
//! instance id, an account id or anything else a caller chooses.

use crate::compute::overview::Overview;
use crate::store::StoreMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What the request path records.
pub struct RequestMetrics {
    /// Per action (see [`ActionId`]), so that a request's answer touches
    /// no family lock.
    handles: Vec<std::sync::OnceLock<ActionHandles>>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ActionLabel, Histogram>,
    signature_failures: Family<KindLabel, Counter>,
    throttled: Family<KindLabel, Counter>,
    connections: Gauge,
    /// Totals the dashboard's traffic chart samples.
    total: AtomicU64,
    errors: AtomicU64,
    recent_errors: Mutex<VecDeque<RecentError>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    action: &'static str,
    code: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// One refused request, as the dashboard lists the last ones.
#[derive(Debug, Clone)]
pub struct RecentError {
    pub at: chrono::DateTime<chrono::Utc>,
    pub request_id: String,
    pub action: &'static str,
    pub code: &'static str,
    pub status: u16,
}

/// How many refused requests the dashboard keeps.
const RECENT_ERRORS: usize = 20;

/// An action as the metrics know it: its place among the names the
/// gateway implements, then `other` (a name it does not implement) and
/// `none` (no `Action` at all). Found by a hash lookup once per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionId(usize);

impl ActionId {
    /// A request that named no action (or was refused before naming one).
    pub const NONE: ActionId = ActionId(usize::MAX);

    /// The action named `name`.
    pub fn of(name: &str) -> Self {
        static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, usize>> =
            std::sync::OnceLock::new();
        if name.is_empty() {
            return Self::NONE;
        }
        let index = INDEX.get_or_init(|| {
            crate::api::ACTION_NAMES
                .iter()
                .enumerate()
                .map(|(n, name)| (*name, n))
                .collect()
        });
        ActionId(
            index
                .get(name)
                .copied()
                .unwrap_or(crate::api::ACTION_NAMES.len()),
        )
    }

    /// Its label value.
    pub fn label(self) -> &'static str {
        match crate::api::ACTION_NAMES.get(self.0) {
            Some(name) => name,
            None if self == Self::NONE => "none",
            None => "other",
        }
    }

    /// Its slot in [`RequestMetrics`]' handles.
    fn slot(self) -> usize {
        self.0.min(crate::api::ACTION_NAMES.len() + 1)
    }
}

/// One action's latency histogram and success counter, taken from their
/// families on its first request (series appear only for actions used).
struct ActionHandles {
    latency: Histogram,
    /// Taken on the action's first success (no `Success` series at 0 for
    /// an action that never succeeded).
    succeeded: std::sync::OnceLock<Counter>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            handles: (0..crate::api::ACTION_NAMES.len() + 2)
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            requests: Family::default(),
            latency: Family::new_with_constructor(|| {
                // 50 µs to about 26 s (a launch on a slow cluster must not fall
                // in +Inf).
                Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
            }),
            signature_failures: Family::default(),
            throttled: Family::default(),
            connections: Gauge::default(),
            total: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            recent_errors: Mutex::new(VecDeque::with_capacity(RECENT_ERRORS)),
        }
    }
}

/// An open connection, counted until dropped.
pub struct OpenConnection<'a>(&'a Gauge);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl RequestMetrics {
    /// Records one answered request.
    pub fn answered(
        &self,
        action: ActionId,
        code: Option<&'static str>,
        status: u16,
        seconds: f64,
        request_id: &str,
    ) {
        let label = action.label();
        let handles = self.handles[action.slot()].get_or_init(|| ActionHandles {
            latency: self
                .latency
                .get_or_create(&ActionLabel { action: label })
                .clone(),
            succeeded: std::sync::OnceLock::new(),
        });
        handles.latency.observe(seconds);
        match code {
            None if status == 200 => {
                handles
                    .succeeded
                    .get_or_init(|| {
                        self.requests
                            .get_or_create(&RequestLabels {
                                action: label,
                                code: "Success",
                                status: 200,
                            })
                            .clone()
                    })
                    .inc();
            }
            _ => {
                self.requests
                    .get_or_create(&RequestLabels {
                        action: label,
                        code: code.unwrap_or("Success"),
                        status,
                    })
                    .inc();
            }
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(code) = code {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let mut recent = crate::sync::lock(&self.recent_errors);
            if recent.len() == RECENT_ERRORS {
                recent.pop_front();
            }
            recent.push_back(RecentError {
                at: chrono::Utc::now(),
                request_id: request_id.to_string(),
                action: label,
                code,
                status,
            });
        }
    }

    /// Records a signature (or credential) refused, by its error code.
    pub fn signature_failed(&self, kind: &'static str) {
        self.signature_failures
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    /// Records a request refused by the rate limits, by action class.
    pub fn throttled(&self, class: &'static str) {
        self.throttled
            .get_or_create(&KindLabel { kind: class })
            .inc();
    }

    /// Counts a connection open until the guard drops.
    pub fn connection_opened(&self) -> OpenConnection<'_> {
        self.connections.inc();
        OpenConnection(&self.connections)
    }

    /// Requests and errors answered since start.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.total.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }

    /// The last refused requests, newest first.
    pub fn recent_errors(&self) -> Vec<RecentError> {
        crate::sync::lock(&self.recent_errors)
            .iter()
            .rev()
            .cloned()
            .collect()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ZoneStateLabels {
    zone: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabels {
    host: String,
    zone: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ZoneLabel {
    zone: String,
}

/// Gauges set from an [`Overview`] at each scrape.
#[derive(Default)]
struct FleetGauges {
    instances: Family<ZoneStateLabels, Gauge>,
    zone_available: Family<ZoneLabel, Gauge>,
    host_vcpus_used: Family<HostLabels, Gauge>,
    host_vcpus_free: Family<HostLabels, Gauge>,
    host_memory_used: Family<HostLabels, Gauge>,
    host_memory_free: Family<HostLabels, Gauge>,
    host_heartbeat_age: Family<HostLabels, Gauge<f64, AtomicU64>>,
    host_up: Family<HostLabels, Gauge>,
    host_enabled: Family<HostLabels, Gauge>,
    zone_vcpus_used: Family<ZoneLabel, Gauge>,
    zone_vcpus_free: Family<ZoneLabel, Gauge>,
    zone_memory_used: Family<ZoneLabel, Gauge>,
    zone_memory_free: Family<ZoneLabel, Gauge>,
    lifecycle_scheduled: Gauge,
    lifecycle_due: Gauge,
}

const MIB: i64 = 1024 * 1024;

impl FleetGauges {
    /// Removes every fleet series (a host removed, a state emptied, or a
    /// fleet that could not be read: no stale value outlives it).
    fn clear(&self) {
        self.instances.clear();
        self.zone_available.clear();
        for family in [
            &self.host_vcpus_used,
            &self.host_vcpus_free,
            &self.host_memory_used,
            &self.host_memory_free,
            &self.host_up,
            &self.host_enabled,
        ] {
            family.clear();
        }
        self.host_heartbeat_age.clear();
        for family in [
            &self.zone_vcpus_used,
            &self.zone_vcpus_free,
            &self.zone_memory_used,
            &self.zone_memory_free,
        ] {
            family.clear();
        }
        self.lifecycle_scheduled.set(0);
        self.lifecycle_due.set(0);
    }

    fn set(&self, overview: &Overview) {
        self.clear();
        for ((zone, state), count) in &overview.instances {
            self.instances
                .get_or_create(&ZoneStateLabels {
                    zone: zone.clone(),
                    state,
                })
                .set(*count as i64);
        }
        // Per zone: vCPUs used and free, memory used and free (summed here,
        // then set once).
        let mut zones: BTreeMap<&str, [i64; 4]> = overview
            .zones
            .iter()
            .map(|zone| (zone.name.as_str(), [0; 4]))
            .collect();
        for zone in &overview.zones {
            self.zone_available
                .get_or_create(&ZoneLabel {
                    zone: zone.name.clone(),
                })
                .set(i64::from(zone.available));
        }
        for host in &overview.hosts {
            let record = &host.record;
            let labels = HostLabels {
                host: record.host.clone(),
                zone: record.availability_zone.clone(),
            };
            let vcpus_used = i64::from(record.vcpus_used);
            let vcpus_free = i64::from(record.vcpus.saturating_sub(record.vcpus_used));
            let memory_used = record.memory_mib_used as i64 * MIB;
            let memory_free = record.memory_mib.saturating_sub(record.memory_mib_used) as i64 * MIB;
            self.host_vcpus_used.get_or_create(&labels).set(vcpus_used);
            self.host_vcpus_free.get_or_create(&labels).set(vcpus_free);
            self.host_memory_used
                .get_or_create(&labels)
                .set(memory_used);
            self.host_memory_free
                .get_or_create(&labels)
                .set(memory_free);
            self.host_up
                .get_or_create(&labels)
                .set(i64::from(host.alive));
            self.host_enabled
                .get_or_create(&labels)
                .set(i64::from(!record.disabled));
            if let Some(age) = host.heartbeat_age_secs {
                self.host_heartbeat_age.get_or_create(&labels).set(age);
            }
            let sums = zones.entry(record.availability_zone.as_str()).or_default();
            for (sum, value) in
                sums.iter_mut()
                    .zip([vcpus_used, vcpus_free, memory_used, memory_free])
            {
                *sum += value;
            }
        }
        for (zone, [vcpus_used, vcpus_free, memory_used, memory_free]) in zones {
            let label = ZoneLabel {
                zone: zone.to_string(),
            };
            self.zone_vcpus_used.get_or_create(&label).set(vcpus_used);
            self.zone_vcpus_free.get_or_create(&label).set(vcpus_free);
            self.zone_memory_used.get_or_create(&label).set(memory_used);
            self.zone_memory_free.get_or_create(&label).set(memory_free);
        }
        self.lifecycle_scheduled
            .set(overview.lifecycle_scheduled as i64);
        self.lifecycle_due.set(overview.lifecycle_due as i64);
    }
}

/// The registry of one gateway: what `/metrics` encodes.
pub struct MetricsRegistry {
    registry: Registry,
    fleet: FleetGauges,
    fleet_read_ok: Gauge,
    /// Held while the fleet gauges are set and the text encoded: two
    /// scrapes at once must not interleave a clear with an encode.
    rendering: Mutex<()>,
}

impl MetricsRegistry {
    /// Registers the request path's and the store's metrics.
    pub fn new(requests: &RequestMetrics, store: &StoreMetrics) -> Self {
        let mut registry = Registry::with_prefix("ec2");
        registry.register(
            "requests",
            "Requests answered, by action, error code (Success when none) and HTTP status",
            requests.requests.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Time from the request's head to its answer, by action",
            Unit::Seconds,
            requests.latency.clone(),
        );
        registry.register(
            "signature_failures",
            "Requests whose signature or credential was refused, by error code",
            requests.signature_failures.clone(),
        );
        registry.register(
            "throttled_requests",
            "Requests refused with RequestLimitExceeded, by action class",
            requests.throttled.clone(),
        );
        registry.register(
            "http_connections",
            "HTTP connections open on the EC2 listener",
            requests.connections.clone(),
        );
        registry.register_with_unit(
            "store_commit_duration",
            "Time a store commit takes to check and apply (durability excluded)",
            Unit::Seconds,
            store.commit_seconds.clone(),
        );
        registry.register(
            "store_commit_conflicts",
            "Commits refused because a key they compared had changed",
            store.conflicts.clone(),
        );
        registry.register(
            "store_operation_retries",
            "Operations run again after a conflict",
            store.retries.clone(),
        );
        registry.register(
            "store_operations_exhausted",
            "Operations that conflicted too often and answered ServiceUnavailable",
            store.exhausted.clone(),
        );
        let fleet = FleetGauges::default();
        registry.register(
            "instances",
            "Instances by availability zone and state (terminated ones while retained)",
            fleet.instances.clone(),
        );
        registry.register(
            "zone_available",
            "1 when the zone is available (an enabled host in it is alive), else 0",
            fleet.zone_available.clone(),
        );
        registry.register(
            "host_vcpus_used",
            "vCPUs reserved on the host by its instances",
            fleet.host_vcpus_used.clone(),
        );
        registry.register(
            "host_vcpus_free",
            "vCPUs the host has left",
            fleet.host_vcpus_free.clone(),
        );
        registry.register_with_unit(
            "host_memory_used",
            "Memory reserved on the host by its instances",
            Unit::Bytes,
            fleet.host_memory_used.clone(),
        );
        registry.register_with_unit(
            "host_memory_free",
            "Memory the host has left",
            Unit::Bytes,
            fleet.host_memory_free.clone(),
        );
        registry.register_with_unit(
            "host_heartbeat_age",
            "Time since the host's last heartbeat",
            Unit::Seconds,
            fleet.host_heartbeat_age.clone(),
        );
        registry.register(
            "host_up",
            "1 when the host heartbeated within the liveness window, else 0",
            fleet.host_up.clone(),
        );
        registry.register(
            "host_enabled",
            "1 when the host takes new instances, 0 when an admin disabled it",
            fleet.host_enabled.clone(),
        );
        registry.register(
            "zone_vcpus_used",
            "vCPUs reserved in the zone",
            fleet.zone_vcpus_used.clone(),
        );
        registry.register(
            "zone_vcpus_free",
            "vCPUs the zone's hosts have left",
            fleet.zone_vcpus_free.clone(),
        );
        registry.register_with_unit(
            "zone_memory_used",
            "Memory reserved in the zone",
            Unit::Bytes,
            fleet.zone_memory_used.clone(),
        );
        registry.register_with_unit(
            "zone_memory_free",
            "Memory the zone's hosts have left",
            Unit::Bytes,
            fleet.zone_memory_free.clone(),
        );
        registry.register(
            "lifecycle_scheduled",
            "Transitions and clean-ups the lifecycle driver has scheduled",
            fleet.lifecycle_scheduled.clone(),
        );
        registry.register(
            "lifecycle_due",
            "Scheduled transitions already due (the driver's queue depth)",
            fleet.lifecycle_due.clone(),
        );
        let fleet_read_ok = Gauge::default();
        registry.register(
            "fleet_read_ok",
            "1 when the last read of the fleet's state (for the gauges above) succeeded",
            fleet_read_ok.clone(),
        );
        Self {
            registry,
            fleet,
            fleet_read_ok,
            rendering: Mutex::new(()),
        }
    }

    /// The text `/metrics` answers, with the fleet gauges set from
    /// `overview`; when the fleet could not be read, they are left out
    /// (and `ec2_fleet_read_ok` is 0) rather than kept at stale values.
    pub fn render(&self, overview: Option<&Overview>) -> String {
        let _rendering = crate::sync::lock(&self.rendering);
        match overview {
            Some(overview) => {
                self.fleet.set(overview);
                self.fleet_read_ok.set(1);
            }
            None => {
                self.fleet.clear();
                self.fleet_read_ok.set(0);
            }
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
