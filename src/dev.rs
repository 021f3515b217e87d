//! Development mode: a drop-in for test suites that use moto or LocalStack.
//!
//! Those suites sign with dummy credentials (`test`/`test`,
//! `FOOBARKEY`/`FOOBARSECRET`) and often use several regions. In development
//! mode (`serve --dev`, or `dev_mode = true`):
//! - signatures are parsed but not verified: the access key a request names
//!   is who it is. As LocalStack does, a 12-digit access key id is the
//!   account id, and any other key is the default account
//!   ([`DEFAULT_DEV_ACCOUNT`], moto's). Accounts are created on first use,
//!   with their default VPC, subnets and security group;
//! - a request signed (SigV4) for another AWS-shaped region is served by
//!   that region, created on first use: its own compute core and store, with
//!   built-in simulated hosts in zones `<region>a`, `b` and `c` (zones still
//!   come from hosts, as everywhere). Other scopes (boto 2's `0`,
//!   euca2ools' `undefined-<pid>`) and SigV2 go to the configured region.
//!
//! It never runs unnoticed: the gateway refuses to listen beyond loopback
//! in this mode unless told so explicitly, warns at start, and every
//! request's log line carries `signatures="unverified"`.

use crate::app::{background_tasks, open_store};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::compute::Compute;
use crate::config::{Config, PeerRegion};
use crate::error::{ApiError, ApiResult};
use crate::store::StoreHandle;
use crate::sync::{lock, read, write};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The account of an access key that is not 12 digits (moto's default).
pub const DEFAULT_DEV_ACCOUNT: &str = "123456789012";

/// Regions development mode creates at most (each has its own store).
pub const MAX_DEV_REGIONS: usize = 32;

/// A region created on first use, and its background work.
struct DevRegion {
    compute: Arc<Compute>,
    tasks: Vec<JoinHandle<()>>,
}

/// Development mode's state: the regions made so far.
pub struct DevMode {
    config: Config,
    clock: Arc<dyn Clock>,
    regions: RwLock<HashMap<String, Arc<Compute>>>,
    /// Serialises the creation of regions (and keeps their tasks).
    created: tokio::sync::Mutex<HashMap<String, DevRegion>>,
    /// Accounts already created, per region.
    accounts: Mutex<std::collections::HashSet<(String, String)>>,
}

/// The account an access key names in development mode.
pub fn dev_account(access_key_id: &str) -> String {
    let is_account_id =
        access_key_id.len() == 12 && access_key_id.bytes().all(|b| b.is_ascii_digit());
    // `000000000000` owns the public catalogue: never a tenant.
    if is_account_id && access_key_id != crate::compute::catalog::SYSTEM_ACCOUNT_ID {
        access_key_id.to_string()
    } else {
        DEFAULT_DEV_ACCOUNT.to_string()
    }
}

/// The principal of an access key in development mode.
pub fn dev_principal(access_key_id: &str) -> Principal {
    Principal {
        account_id: dev_account(access_key_id),
        user_name: "dev".into(),
        access_key_id: access_key_id.to_string(),
        admin: false,
        agent_host: None,
    }
}

/// True for names shaped like AWS regions (`us-west-2`, `ap-southeast-1`,
/// `us-gov-west-1`): two letters, words, a number. Guessed scopes (boto 2's
/// `0`, `localhost`, euca2ools' `undefined-1234`) are not.
pub fn looks_like_aws_region(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() <= 2
        && !parts[parts.len() - 1].is_empty()
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

impl DevMode {
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            clock,
            regions: RwLock::default(),
            created: tokio::sync::Mutex::default(),
            accounts: Mutex::default(),
        }
    }

    /// The compute core of `region`, created on first use.
    pub async fn region(&self, region: &str) -> ApiResult<Arc<Compute>> {
        if let Some(compute) = read(&self.regions).get(region) {
            return Ok(compute.clone());
        }
        let mut created = self.created.lock().await;
        if let Some(existing) = created.get(region) {
            return Ok(existing.compute.clone());
        }
        if created.len() >= MAX_DEV_REGIONS {
            return Err(ApiError::invalid_value(format!(
                "Development mode serves at most {MAX_DEV_REGIONS} regions besides the configured one"
            )));
        }
        let compute = Arc::new(self.open_region(region).await.map_err(|error| {
            tracing::error!(region, %error, "cannot create a development region");
            ApiError::InternalError
        })?);
        tracing::warn!(region, "development mode: created region on first use");
        let interval = Duration::from_secs(self.config.heartbeat_interval_secs);
        created.insert(
            region.to_string(),
            DevRegion {
                compute: compute.clone(),
                tasks: background_tasks(&compute, interval),
            },
        );
        write(&self.regions).insert(region.to_string(), compute.clone());
        Ok(compute)
    }

    async fn open_region(&self, region: &str) -> Result<Compute, String> {
        let mut config = self.config.clone();
        config.region = region.to_string();
        config.accounts.clear();
        config.hosts = crate::config::builtin_hosts(region);
        config.peer_regions.clear();
        // Each region its own store: its own folder, or its own etcd prefix.
        config.etcd.prefix = format!("{}regions/{region}/", self.config.etcd.prefix);
        let folder = self.config.data_dir.join("regions").join(region);
        let store = Arc::new(StoreHandle::new(open_store(&config, &folder).await?));
        let compute = Compute::open(&config, store, self.clock.clone())
            .await
            .map_err(|e| e.to_string())?;
        compute
            .provision_all_defaults()
            .await
            .map_err(|e| e.to_string())?;
        Ok(compute)
    }

    /// The regions served besides `serving`: the configured one and those
    /// made so far, all at this gateway's endpoint.
    pub fn other_regions(&self, configured: &Compute, serving: &str) -> Vec<PeerRegion> {
        let endpoint = configured.region().endpoint.clone();
        std::iter::once(configured.region().name.clone())
            .chain(read(&self.regions).keys().cloned())
            .filter(|name| name != serving)
            .map(|name| PeerRegion {
                name,
                endpoint: endpoint.clone(),
            })
            .collect()
    }

    /// Creates `account_id` in `compute` (with its default network and
    /// group) when this is its first request there.
    pub async fn ensure_account(&self, compute: &Compute, account_id: &str) -> ApiResult<()> {
        let key = (compute.region().name.clone(), account_id.to_string());
        if lock(&self.accounts).contains(&key) {
            return Ok(());
        }
        compute
            .accounts()
            .ensure_account(account_id, "dev", compute.clock().now())
            .await?;
        compute.provision_defaults(account_id).await?;
        lock(&self.accounts).insert(key);
        Ok(())
    }

    /// Stops the regions' background work and flushes their stores.
    pub async fn stop(&self) {
        let mut created = self.created.lock().await;
        for (region, dev) in created.drain() {
            for task in dev.tasks {
                task.abort();
                let _ = task.await;
            }
            if let Err(error) = dev.compute.store().flush_all().await {
                tracing::error!(region, %error, "final flush failed");
            }
        }
        write(&self.regions).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_from_keys_as_localstack() {
        assert_eq!(dev_account("000000000042"), "000000000042");
        assert_eq!(dev_account("test"), DEFAULT_DEV_ACCOUNT);
        assert_eq!(dev_account("FOOBARKEY"), DEFAULT_DEV_ACCOUNT);
        assert_eq!(dev_account("1234567890123"), DEFAULT_DEV_ACCOUNT);
        assert_eq!(dev_account("000000000000"), DEFAULT_DEV_ACCOUNT);
    }

    #[test]
    fn region_shapes() {
        for region in [
            "us-west-2",
            "eu-central-1",
            "ap-southeast-2",
            "us-gov-west-1",
        ] {
            assert!(looks_like_aws_region(region), "{region}");
        }
        for scope in [
            "0",
            "localhost",
            "undefined-31337",
            "us",
            "us-west",
            "US-WEST-2",
            "x-y-1",
        ] {
            assert!(!looks_like_aws_region(scope), "{scope}");
        }
    }
}
