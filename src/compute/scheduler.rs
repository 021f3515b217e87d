//! The ZoneScheduler: which compute host takes an instance.
//!
//! As Nova's ZoneScheduler did: candidates are compute hosts that are
//! enabled, alive (heartbeat within the liveness window), in the requested
//! zone (any zone when none is requested) and have the free vCPUs and memory
//! the instance type needs. They are weighed by the configured policy:
//! `spread` prefers the host with the most free capacity, `pack` the one
//! with the least that still fits. Ties go to the host name, so placement is
//! deterministic, unless a host subset is configured: then one of the best
//! `host_subset_size` is taken at random, as Nova's `host_subset_size` did,
//! so that launches placed at the same moment (by several gateways sharing a
//! store) do not all book the same host and conflict on its usage record.
//! A [`Placement`] chooses on the usage read when it began,
//! then reads the chosen host's `host_usage` in the operation's `Tx` and
//! reserves there, so the capacity is booked in the same commit that
//! records the instance and only a change to that host conflicts.

use super::operation::Tx;
use super::services::{usage_in, HostUsage, ServiceRecord, ServiceRegistry, HOST_USAGE, SERVICES};
use crate::config::SchedulerPolicy;
use crate::store::StoreResult;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// What one instance needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    pub vcpus: u32,
    pub memory_mib: u64,
}

/// Free capacity of a host, as fractions of its total (0.0..=1.0).
fn free_share(host: &ServiceRecord) -> f64 {
    let cpu = (host.vcpus - host.vcpus_used.min(host.vcpus)) as f64 / host.vcpus.max(1) as f64;
    let memory = (host.memory_mib - host.memory_mib_used.min(host.memory_mib)) as f64
        / host.memory_mib.max(1) as f64;
    cpu.min(memory)
}

/// True when `host` can take `demand` now.
pub fn fits(
    host: &ServiceRecord,
    zone: Option<&str>,
    demand: Demand,
    now: DateTime<Utc>,
    window: Duration,
) -> bool {
    !host.disabled
        && host.is_alive(now, window)
        && zone.is_none_or(|zone| host.availability_zone == zone)
        && host.vcpus.saturating_sub(host.vcpus_used) >= demand.vcpus
        && host.memory_mib.saturating_sub(host.memory_mib_used) >= demand.memory_mib
}

/// How many instances of one shape fit in a zone: still (on its enabled,
/// live hosts, with what they have free) and at most (on all its hosts,
/// empty). Eucalyptus's `euca-describe-instance-types` shows these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneCapacity {
    pub zone: String,
    pub available: u64,
    pub max: u64,
}

/// Instances of `demand` that fit in `vcpus` and `memory_mib`.
fn slots(vcpus: u32, memory_mib: u64, demand: Demand) -> u64 {
    let by_cpu = u64::from(vcpus) / u64::from(demand.vcpus.max(1));
    let by_memory = memory_mib / demand.memory_mib.max(1);
    by_cpu.min(by_memory)
}

/// [`ZoneCapacity`] of every zone of `zones`, for `demand`.
pub fn zone_capacity(
    zones: &[super::services::Zone],
    demand: Demand,
    now: DateTime<Utc>,
    window: Duration,
) -> Vec<ZoneCapacity> {
    zones
        .iter()
        .map(|zone| ZoneCapacity {
            zone: zone.name.clone(),
            available: zone
                .hosts
                .iter()
                .filter(|host| !host.disabled && host.is_alive(now, window))
                .map(|host| {
                    slots(
                        host.vcpus.saturating_sub(host.vcpus_used),
                        host.memory_mib.saturating_sub(host.memory_mib_used),
                        demand,
                    )
                })
                .sum(),
            max: zone
                .hosts
                .iter()
                .map(|host| slots(host.vcpus, host.memory_mib, demand))
                .sum(),
        })
        .collect()
}

/// The index of the host that should take `demand`, if any fits: the best
/// by `policy`, or one of the best `subset` at random.
pub fn choose(
    hosts: &[ServiceRecord],
    zone: Option<&str>,
    demand: Demand,
    policy: SchedulerPolicy,
    subset: usize,
    now: DateTime<Utc>,
    window: Duration,
) -> Option<usize> {
    choose_among(
        hosts.iter().enumerate(),
        zone,
        demand,
        policy,
        subset,
        now,
        window,
    )
}

/// [`choose`] over `(index, host)` pairs.
fn choose_among<'h>(
    hosts: impl Iterator<Item = (usize, &'h ServiceRecord)>,
    zone: Option<&str>,
    demand: Demand,
    policy: SchedulerPolicy,
    subset: usize,
    now: DateTime<Utc>,
    window: Duration,
) -> Option<usize> {
    let candidates = hosts.filter(|(_, host)| fits(host, zone, demand, now, window));
    let better = |a: &(usize, &ServiceRecord), b: &(usize, &ServiceRecord)| {
        let (share_a, share_b) = (free_share(a.1), free_share(b.1));
        let by_share = match policy {
            SchedulerPolicy::Spread => share_b.total_cmp(&share_a),
            SchedulerPolicy::Pack => share_a.total_cmp(&share_b),
        };
        by_share.then_with(|| a.1.host.cmp(&b.1.host))
    };
    if subset <= 1 {
        return candidates.min_by(better).map(|(index, _)| index);
    }
    let mut ranked: Vec<(usize, &ServiceRecord)> = candidates.collect();
    if ranked.len() > subset {
        ranked.select_nth_unstable_by(subset - 1, better);
        ranked.truncate(subset);
    }
    use rand::seq::SliceRandom;
    ranked
        .choose(&mut rand::thread_rng())
        .map(|(index, _)| *index)
}

/// The hosts one operation places instances on; every reservation is a
/// write of the host's usage in the operation's `Tx`.
pub struct Placement<'r> {
    /// Every host with its usage and heartbeat, shared by the placements
    /// of this gateway (the scheduler's view: see `services`).
    hosts: Arc<[ServiceRecord]>,
    /// When `hosts` is that view (it may be older than a release of
    /// capacity): the registry to read every host's usage anew from before
    /// refusing.
    refresh: Option<&'r ServiceRegistry>,
    /// The hosts this placement read again or booked, by name.
    booked: HashMap<String, ServiceRecord>,
    /// The zones the hosts name, each once, in order.
    zones: Vec<String>,
    liveness_window: Duration,
    /// Choose among this many of the best hosts (1: always the best).
    subset: usize,
}

impl<'r> Placement<'r> {
    /// Placement over `hosts` (with the usage read when it began, or from
    /// the placement view of `refresh`).
    pub(super) fn new(
        hosts: Arc<[ServiceRecord]>,
        refresh: Option<&'r ServiceRegistry>,
        zones: Vec<String>,
        liveness_window: Duration,
        subset: usize,
    ) -> Self {
        Self {
            hosts,
            refresh,
            booked: HashMap::new(),
            zones,
            liveness_window,
            subset,
        }
    }

    /// The zones its hosts name, each once.
    pub fn zones(&self) -> Vec<String> {
        self.zones.clone()
    }

    /// True when a host names `zone`.
    pub fn zone_exists(&self, zone: &str) -> bool {
        self.zones.iter().any(|z| z == zone)
    }

    /// Reserves `demand` on the host the scheduler picks (in `zone` when
    /// given) and returns that host. The choice is made on the usage read
    /// when the placement began; the chosen host's usage is then read in
    /// the `Tx` (so only a change to that host conflicts) and the fit
    /// checked again on it.
    pub fn place(
        &mut self,
        tx: &mut Tx<'_>,
        zone: Option<&str>,
        demand: Demand,
        policy: SchedulerPolicy,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ServiceRecord>> {
        for _ in 0..=self.hosts.len() {
            let booked = &self.booked;
            let hosts = self.hosts.iter().enumerate().map(|(index, host)| {
                let host = if booked.is_empty() {
                    host
                } else {
                    booked.get(&host.host).unwrap_or(host)
                };
                (index, host)
            });
            let Some(index) = choose_among(
                hosts,
                zone,
                demand,
                policy,
                self.subset,
                now,
                self.liveness_window,
            ) else {
                if let Some(registry) = self.refresh.take() {
                    // The view may predate a release of capacity: before
                    // refusing, choose again on usage as stored now.
                    self.hosts = registry.hosts_in(tx)?.into();
                    continue;
                }
                return Ok(None);
            };
            let chosen = &self.hosts[index];
            let host = self
                .booked
                .entry(chosen.host.clone())
                .or_insert_with(|| chosen.clone());
            let current = usage_in(tx, host)?;
            host.vcpus_used = current.vcpus_used;
            host.memory_mib_used = current.memory_mib_used;
            if !fits(host, zone, demand, now, self.liveness_window) {
                // It filled meanwhile: choose again on what is now known.
                continue;
            }
            host.vcpus_used += demand.vcpus;
            host.memory_mib_used += demand.memory_mib;
            tx.put(
                HOST_USAGE,
                host.host.as_bytes(),
                &HostUsage {
                    vcpus_used: host.vcpus_used,
                    memory_mib_used: host.memory_mib_used,
                },
            );
            return Ok(Some(host.clone()));
        }
        Ok(None)
    }
}

/// Gives `demand` back to `host` in `tx` (nothing when the host is gone).
pub fn release(tx: &mut Tx<'_>, host: &str, demand: Demand) -> StoreResult<()> {
    let usage = match tx.get::<HostUsage>(HOST_USAGE, host.as_bytes())? {
        Some(usage) => usage,
        None => match tx.get::<ServiceRecord>(SERVICES, host.as_bytes())? {
            Some(record) => usage_in(tx, &record)?,
            None => return Ok(()),
        },
    };
    tx.put(
        HOST_USAGE,
        host.as_bytes(),
        &HostUsage {
            vcpus_used: usage.vcpus_used.saturating_sub(demand.vcpus),
            memory_mib_used: usage.memory_mib_used.saturating_sub(demand.memory_mib),
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, zone: &str, vcpus: u32, used: u32) -> ServiceRecord {
        let now = Utc::now();
        ServiceRecord {
            host: name.into(),
            binary: "compute".into(),
            availability_zone: zone.into(),
            disabled: false,
            disabled_reason: None,
            last_heartbeat: Some(now),
            vcpus,
            memory_mib: vcpus as u64 * 1024,
            vcpus_used: used,
            memory_mib_used: used as u64 * 1024,
            simulated: true,
            created_at: now,
            agent: None,
        }
    }

    const SMALL: Demand = Demand {
        vcpus: 2,
        memory_mib: 2048,
    };
    const WINDOW: Duration = Duration::seconds(60);

    #[test]
    fn the_requested_zone_is_respected() {
        let hosts = [host("a1", "z-a", 16, 0), host("b1", "z-b", 64, 0)];
        assert_eq!(
            choose(
                &hosts,
                Some("z-a"),
                SMALL,
                SchedulerPolicy::Spread,
                1,
                Utc::now(),
                WINDOW
            ),
            Some(0)
        );
        assert_eq!(
            choose(
                &hosts,
                None,
                SMALL,
                SchedulerPolicy::Spread,
                1,
                Utc::now(),
                WINDOW
            ),
            Some(0),
            "equal shares: by name"
        );
        assert_eq!(
            choose(
                &hosts,
                Some("z-c"),
                SMALL,
                SchedulerPolicy::Spread,
                1,
                Utc::now(),
                WINDOW
            ),
            None
        );
    }

    #[test]
    fn disabled_and_dead_hosts_get_nothing() {
        let mut disabled = host("a1", "z", 16, 0);
        disabled.disabled = true;
        let mut dead = host("a2", "z", 16, 0);
        dead.last_heartbeat = Some(Utc::now() - Duration::seconds(61));
        let mut never = host("a3", "z", 16, 0);
        never.last_heartbeat = None;
        let hosts = [disabled, dead, never, host("a4", "z", 16, 15)];
        assert_eq!(
            choose(
                &hosts,
                Some("z"),
                SMALL,
                SchedulerPolicy::Spread,
                1,
                Utc::now(),
                WINDOW
            ),
            None
        );
        let one = Demand {
            vcpus: 1,
            memory_mib: 1024,
        };
        assert_eq!(
            choose(
                &hosts,
                Some("z"),
                one,
                SchedulerPolicy::Spread,
                1,
                Utc::now(),
                WINDOW
            ),
            Some(3)
        );
    }

    #[test]
    fn spread_and_pack() {
        let hosts = [
            host("a1", "z", 16, 8),
            host("a2", "z", 16, 2),
            host("a3", "z", 16, 12),
        ];
        assert_eq!(
            choose(
                &hosts,
                None,
                SMALL,
                SchedulerPolicy::Spread,
                1,
                Utc::now(),
                WINDOW
            ),
            Some(1)
        );
        assert_eq!(
            choose(
                &hosts,
                None,
                SMALL,
                SchedulerPolicy::Pack,
                1,
                Utc::now(),
                WINDOW
            ),
            Some(2)
        );
        let full = [host("a1", "z", 16, 15)];
        assert_eq!(
            choose(
                &full,
                None,
                SMALL,
                SchedulerPolicy::Pack,
                1,
                Utc::now(),
                WINDOW
            ),
            None,
            "capacity exhausted"
        );
    }

    #[test]
    fn a_subset_spreads_simultaneous_choices_over_the_best_hosts() {
        let hosts = [
            host("a", "z", 64, 0),
            host("b", "z", 64, 1),
            host("c", "z", 64, 2),
            host("d", "z", 64, 40),
        ];
        let mut chosen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let index = choose(
                &hosts,
                None,
                SMALL,
                SchedulerPolicy::Spread,
                3,
                Utc::now(),
                WINDOW,
            )
            .unwrap();
            chosen.insert(index);
        }
        // The three best, never the fullest.
        assert_eq!(chosen, [0, 1, 2].into_iter().collect());
    }
}
