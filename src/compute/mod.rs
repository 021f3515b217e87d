//! The compute core: accounts, compute services and zones.
//!
//! No HTTP, no XML: the API layer calls into this with typed values, so
//! another front end (or a test) can drive it directly. Zones come from the
//! registered compute hosts (see `services`), never from a fixed list.

pub mod accounts;
pub mod services;

use crate::clock::Clock;
use crate::config::{Config, PeerRegion};
use crate::store::{StoreHandle, StoreResult};
use accounts::AccountDirectory;
use chrono::Duration;
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
    pub store: Arc<StoreHandle>,
    pub clock: Arc<dyn Clock>,
    pub accounts: Arc<AccountDirectory>,
    pub services: ServiceRegistry,
    pub region: RegionInfo,
}

impl Compute {
    /// Loads everything from `store` and registers the configured accounts
    /// and hosts.
    pub async fn open(
        config: &Config,
        store: Arc<StoreHandle>,
        clock: Arc<dyn Clock>,
    ) -> StoreResult<Self> {
        let accounts = Arc::new(AccountDirectory::load(store.clone())?);
        let liveness = Duration::seconds(config.liveness_window_secs as i64);
        let services = ServiceRegistry::load(store.clone(), &config.region, liveness)?;
        let now = clock.now();
        accounts.seed(&config.accounts, now).await?;
        services.seed(&config.hosts, now).await?;
        let region = RegionInfo {
            name: config.region.clone(),
            endpoint: config.region_endpoint(),
            peers: config.peer_regions.clone(),
        };
        Ok(Self {
            store,
            clock,
            accounts,
            services,
            region,
        })
    }
}
