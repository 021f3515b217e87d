//! The compute core: accounts, compute services and zones, catalogues,
//! the scheduler and instances with their lifecycle.
//!
//! No HTTP, no XML: the API layer calls into this with typed values, so
//! another front end (or a test) can drive it directly. Zones come from the
//! registered compute hosts (see `services`), never from a fixed list.

pub mod accounts;
pub mod addresses;
pub mod agent_facts;
pub mod agents;
pub mod catalog;
pub mod cidr;
pub mod dhcp_options;
pub mod grants;
pub mod idempotency;
pub mod ids;
pub mod image_creation;
pub mod image_sharing;
pub mod images;
pub mod instance_attributes;
pub mod instance_index;
pub mod instance_reads;
pub mod instances;
pub mod internet_gateways;
pub mod keymaterial;
pub mod keypairs;
pub mod kinds;
pub mod launch;
pub mod launch_templates;
pub mod launch_volumes;
pub mod lifecycle;
pub mod nat_gateways;
pub mod network;
pub mod network_acls;
pub mod network_interfaces;
pub mod operation;
pub mod overview;
pub mod passwords;
pub mod peering;
pub mod polled_instances;
pub mod public_addresses;
pub mod route_tables;
pub mod scheduler;
pub mod security_groups;
pub mod services;
pub mod snapshot_sharing;
pub mod snapshots;
pub mod state_changes;
pub mod subnets;
pub mod tags;
pub mod upgrade;
pub mod usage;
pub mod view;
pub mod volumes;
pub mod vpc_blocks;
pub mod vpcs;

use crate::clock::Clock;
use crate::config::{Config, PeerRegion, Quotas, SchedulerPolicy};
use crate::store::{StoreHandle, StoreResult};
use accounts::AccountDirectory;
use catalog::Catalog;
use chrono::Duration;
use instance_reads::InstanceBook;
use lifecycle::LifecycleTiming;
use services::ServiceRegistry;
use std::sync::Arc;

/// This gateway's region and the peers DescribeRegions lists.
#[derive(Debug, Clone)]
pub struct RegionInfo {
    pub name: String,
    pub endpoint: String,
    pub peers: Vec<PeerRegion>,
}

/// The compute core's state.
pub struct Compute {
    store: Arc<StoreHandle>,
    clock: Arc<dyn Clock>,
    accounts: Arc<AccountDirectory>,
    services: ServiceRegistry,
    region: RegionInfo,
    catalog: Catalog,
    instances: InstanceBook,
    /// DescribeInstances' listings kept between calls (`instance_index`).
    listings: instance_index::InstanceIndex,
    /// Instances asked for by id, kept with their rendered items
    /// (`polled_instances`).
    polled: polled_instances::PolledInstances,
    /// The Elastic IPs and interfaces shown beside instances, per account
    /// (`network_interfaces::AroundInstances`).
    around_instances: view::RevisionViews<network_interfaces::AroundInstances>,
    group_names: security_groups::GroupNameHints,
    scheduler_policy: SchedulerPolicy,
    quotas: Quotas,
    lifecycle: LifecycleTiming,
    /// Seals pagination tokens; created once and kept in the store.
    pagination_key: [u8; 32],
    address_pool: addresses::AddressPool,
    /// Where instances' public addresses come from (`public_addresses`).
    public_ip_pool: addresses::AddressPool,
    volume_capacity_gib_per_zone: u64,
    volume_delay: Duration,
    snapshot_delay: Duration,
}

/// The scheduler's host subset when several gateways share the store and
/// the configuration names none: launches placed at once by different
/// gateways then rarely book the same host.
const SHARED_STORE_HOST_SUBSET: usize = 8;

/// What the layers around the core may read of it.
impl Compute {
    /// The store the core keeps everything in.
    pub fn store(&self) -> &Arc<StoreHandle> {
        &self.store
    }

    /// The core's clock (tests set it back or forward).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Accounts and their access keys.
    pub fn accounts(&self) -> &Arc<AccountDirectory> {
        &self.accounts
    }

    /// DescribeInstances' listings kept in memory (`instance_index`).
    pub fn listings(&self) -> &instance_index::InstanceIndex {
        &self.listings
    }

    /// Instances asked for by id, kept in memory (`polled_instances`).
    pub fn polled_instances(&self) -> &polled_instances::PolledInstances {
        &self.polled
    }

    /// Drops the per-account views read before the store's present
    /// revision (they would be read again before any use), and those no
    /// request used for `idle`.
    pub fn forget_stale_views(&self, idle: std::time::Duration) {
        if let Some(revision) = self.store.backend().revision() {
            self.around_instances.forget(revision, idle);
        }
    }

    /// Compute hosts and the zones they make.
    pub fn services(&self) -> &ServiceRegistry {
        &self.services
    }

    /// This gateway's region and its peers.
    pub fn region(&self) -> &RegionInfo {
        &self.region
    }

    /// Instance types and public images.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The per-account quotas.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// The key that seals NextTokens.
    pub fn pagination_key(&self) -> &[u8; 32] {
        &self.pagination_key
    }
}

impl Compute {
    /// An account's vCPU limit: its quota, but never more than its share of
    /// the fleet (so one tenant cannot take every host).
    pub async fn vcpu_limit(&self) -> StoreResult<u32> {
        let share = self.fleet_share(self.services.fleet_vcpus().await?);
        Ok(self
            .quotas
            .max_vcpus
            .min(u32::try_from(share).unwrap_or(u32::MAX)))
    }

    /// An account's volume storage limit (GiB): its quota, but never more
    /// than its share of every zone's volume capacity together (and, zone
    /// by zone, see [`Compute::volume_zone_share`]).
    pub async fn volume_storage_limit(&self) -> StoreResult<u64> {
        let zones = self.services.zone_states(self.clock.now()).await?.len() as u64;
        let share = self.fleet_share(zones * self.volume_capacity_gib_per_zone);
        Ok(self.quotas.max_volume_storage_gib.min(share))
    }

    /// The most of one zone's volume pool an account may hold (GiB).
    pub fn volume_zone_share(&self) -> u64 {
        self.fleet_share(self.volume_capacity_gib_per_zone)
    }

    fn fleet_share(&self, total: u64) -> u64 {
        total * u64::from(self.quotas.max_fleet_share_percent) / 100
    }

    /// Loads everything from `store` and registers the configured accounts
    /// and hosts.
    pub async fn open(
        config: &Config,
        store: Arc<StoreHandle>,
        clock: Arc<dyn Clock>,
    ) -> StoreResult<Self> {
        let accounts = Arc::new(AccountDirectory::load(store.clone())?);
        let liveness = Duration::seconds(config.liveness_window_secs as i64);
        let subset = config
            .scheduler_host_subset_size
            .unwrap_or(if store.backend().shared() {
                SHARED_STORE_HOST_SUBSET
            } else {
                1
            });
        let services = ServiceRegistry::load(store.clone(), &config.region, liveness)?
            .with_host_subset_size(subset);
        let now = clock.now();
        accounts
            .seed(&config.accounts, now)
            .await
            .map_err(|e| crate::store::StoreError(e.to_string()))?;
        services
            .seed(&config.hosts, now)
            .await
            .map_err(|e| crate::store::StoreError(e.to_string()))?;
        let region = RegionInfo {
            name: config.region.clone(),
            endpoint: config.region_endpoint(),
            peers: config.peer_regions.clone(),
        };
        let instances = InstanceBook::default();
        // Created once, by whichever gateway starts first; the others adopt it.
        let fresh: [u8; 32] = rand::random();
        let stored = operation::run(&store, false, |tx| {
            match tx.get::<Vec<u8>>("meta", b"pagination_key")? {
                Some(bytes) if bytes.len() == 32 => Ok(bytes),
                _ => {
                    tx.put("meta", b"pagination_key".to_vec(), &fresh.to_vec());
                    Ok(fresh.to_vec())
                }
            }
        })
        .await
        .map_err(|e| crate::store::StoreError(format!("pagination key: {e}")))?;
        let pagination_key: [u8; 32] = stored.try_into().expect("32 bytes");
        let compute = Self {
            store,
            clock,
            accounts,
            services,
            region,
            catalog: Catalog::from_config(config),
            instances,
            listings: instance_index::InstanceIndex::new(config.listing_cache_instances),
            polled: polled_instances::PolledInstances::new(config.listing_cache_instances),
            around_instances: view::RevisionViews::new(network_interfaces::AROUND_INSTANCES_KEPT),
            group_names: security_groups::GroupNameHints::default(),
            scheduler_policy: config.scheduler_policy,
            quotas: config.quotas.clone(),
            lifecycle: LifecycleTiming::from(&config.lifecycle),
            pagination_key,
            address_pool: addresses::AddressPool::parse(&config.elastic_ip_pool)
                .expect("validated with the configuration"),
            public_ip_pool: addresses::AddressPool::parse_wide(&config.public_ip_pool)
                .expect("validated with the configuration"),
            volume_capacity_gib_per_zone: config.volume_capacity_gib_per_zone,
            volume_delay: volumes::delays(&config.lifecycle).0,
            snapshot_delay: volumes::delays(&config.lifecycle).1,
        };
        compute
            .services
            .upgrade_usage()
            .await
            .map_err(|e| crate::store::StoreError(format!("upgrading host usage: {e}")))?;
        compute
            .upgrade_instances()
            .await
            .map_err(|e| crate::store::StoreError(format!("upgrading instances: {e}")))?;
        compute
            .link_attached_volumes()
            .await
            .map_err(|e| crate::store::StoreError(format!("listing attached volumes: {e}")))?;
        Ok(compute)
    }
}
