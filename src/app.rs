//! Assembling a gateway: storage, compute core, first admin, background work.
//!
//! `App::open` is what `ec2-gateway serve` and the in-process tests both
//! call, so tests run the same wiring as production: open the store (sled in
//! the data folder, created owner-only, or memory), load the compute core,
//! register configured accounts and hosts, and create an admin credential on
//! a first start. `App::serve` runs the server plus the simulated hosts'
//! heartbeats until shutdown, then flushes the store.

use crate::auth::{
    unknown_access_key, AuthRequest, CredentialSource, KeyRecord, Principal, Verifier,
};
use crate::clock::Clock;
use crate::compute::accounts::{AccessKey, Account, AccountDirectory};
use crate::compute::Compute;
use crate::config::{Config, StorageBackend};
use crate::error::ApiResult;
use crate::gateway::Gateway;
use crate::store::{MemoryStore, SledStore, Store, StoreHandle};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The account directory as the signature verifier's source of keys: the
/// one place where the compute core's accounts meet `auth`'s types (the
/// core itself knows nothing of signatures). The verifier never waits, so
/// this answers what the directory's store answers at once (memory and
/// sled: everything) and notes a key it would have to wait for; the caller
/// then fetches that key ([`FetchedKey`]) and verifies again.
struct DirectoryKeys<'a> {
    directory: &'a AccountDirectory,
    must_wait_for: std::sync::Mutex<Option<String>>,
}

impl DirectoryKeys<'_> {
    fn must_wait_for(&self) -> Option<String> {
        crate::sync::lock(&self.must_wait_for).take()
    }
}

impl CredentialSource for DirectoryKeys<'_> {
    fn lookup(&self, access_key_id: &str) -> ApiResult<KeyRecord> {
        match self.directory.active_key_now(access_key_id) {
            Some(found) => key_record(found?),
            None => {
                *crate::sync::lock(&self.must_wait_for) = Some(access_key_id.to_string());
                Err(unknown_access_key())
            }
        }
    }
}

/// One access key, fetched from the directory ahead of the check.
struct FetchedKey {
    access_key_id: String,
    found: Option<(AccessKey, Account)>,
}

impl CredentialSource for FetchedKey {
    fn lookup(&self, access_key_id: &str) -> ApiResult<KeyRecord> {
        if access_key_id != self.access_key_id {
            return Err(unknown_access_key());
        }
        key_record(self.found.clone())
    }
}

fn key_record(found: Option<(AccessKey, Account)>) -> ApiResult<KeyRecord> {
    let (key, account) = found.ok_or_else(unknown_access_key)?;
    Ok(KeyRecord {
        secret: key.secret,
        account_id: account.id,
        user_name: key.user_name,
        // An agent's key is no admin's, whatever account holds it.
        admin: account.admin && key.agent_host.is_none(),
        agent_host: key.agent_host,
    })
}

/// Verifies `request`'s signature with its key from `directory` and
/// resolves the caller.
pub async fn authenticate(
    verifier: &Verifier,
    directory: &AccountDirectory,
    request: &AuthRequest<'_>,
) -> ApiResult<Principal> {
    let keys = DirectoryKeys {
        directory,
        must_wait_for: std::sync::Mutex::new(None),
    };
    let answer = verifier.authenticate(request, &keys);
    match keys.must_wait_for() {
        None => answer,
        Some(access_key_id) => {
            let found = directory.active_key(&access_key_id).await?;
            verifier.authenticate(
                request,
                &FetchedKey {
                    access_key_id,
                    found,
                },
            )
        }
    }
}

/// The file (in the data folder) holding the first admin credential.
pub const ADMIN_CREDENTIALS_FILE: &str = "admin-credentials";

/// A ready-to-serve gateway.
pub struct App {
    pub gateway: Arc<Gateway>,
    pub config: Config,
    /// The admin key created by this start, if it was the first.
    pub created_admin: Option<AccessKey>,
}

/// Creates `folder` (and parents) readable by its owner only, and puts the
/// owner-only modes back on every start (the folder, and the admin
/// credential file when it exists): the folder holds every secret in
/// plaintext, and a mode loosened by hand or by a restore must not stay so.
pub(crate) fn create_private_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))?;
        let credentials = folder.join(ADMIN_CREDENTIALS_FILE);
        if credentials.exists() {
            std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Writes the admin credential as an AWS shared-credentials profile, mode 0600.
fn write_admin_credentials(
    folder: &Path,
    key: &AccessKey,
    region: &str,
) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let path = folder.join(ADMIN_CREDENTIALS_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    write!(
        file,
        "[ec2-gateway]\naws_access_key_id = {}\naws_secret_access_key = {}\nregion = {region}\n",
        key.access_key_id,
        key.secret.expose()
    )?;
    file.sync_all()?;
    Ok(path)
}

/// The store `config` asks for, kept in `folder` (sled: `folder/db`,
/// created owner-only).
pub async fn open_store(config: &Config, folder: &Path) -> Result<Arc<dyn Store>, String> {
    Ok(match config.storage {
        StorageBackend::Sled => {
            create_private_folder(folder)
                .map_err(|e| format!("cannot create data folder {}: {e}", folder.display()))?;
            let cache_bytes = config.cache_capacity_mib * 1024 * 1024;
            Arc::new(
                SledStore::open(&folder.join("db"), cache_bytes)
                    .map_err(|e| format!("cannot open the store in {}: {e}", folder.display()))?,
            )
        }
        StorageBackend::Memory => Arc::new(MemoryStore::new()),
        #[cfg(feature = "etcd")]
        StorageBackend::Etcd => {
            // The data folder keeps only what is this gateway's own (the
            // first admin credential, when this gateway created it).
            create_private_folder(folder)
                .map_err(|e| format!("cannot create data folder {}: {e}", folder.display()))?;
            Arc::new(
                crate::store::EtcdStore::connect(&config.etcd)
                    .await
                    .map_err(|e| e.to_string())?,
            )
        }
        #[cfg(not(feature = "etcd"))]
        StorageBackend::Etcd => {
            return Err(
                "storage = \"etcd\" needs a build with the etcd feature: cargo build --release --features etcd (protoc must be installed: Debian's protobuf-compiler)".into(),
            )
        }
    })
}

impl App {
    /// Opens storage and the compute core as `config` says.
    pub async fn open(mut config: Config, clock: Arc<dyn Clock>) -> Result<Self, String> {
        config.check_dev_listen().map_err(|e| e.to_string())?;
        if config.dev_mode {
            // Development mode never opens the real data.
            config.data_dir = config.data_dir.join("dev");
        }
        let store = open_store(&config, &config.data_dir).await?;
        Self::open_with_store(config, store, clock).await
    }

    /// Opens the compute core over `store` (tests inject their own).
    pub async fn open_with_store(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        config.check_dev_listen().map_err(|e| e.to_string())?;
        let store = Arc::new(StoreHandle::new(store));
        let compute = Compute::open(&config, store, clock.clone())
            .await
            .map_err(|e| e.to_string())?;
        let created_admin = compute
            .accounts()
            .ensure_admin(clock.now())
            .await
            .map_err(|e| e.to_string())?;
        if compute
            .services()
            .zones(clock.now())
            .await
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            tracing::warn!(
                "no availability zone: this gateway has no compute host, so no instance can launch; add [[hosts]] to the configuration, or hosts with `ec2-gateway admin hosts add`"
            );
        }
        compute
            .forget_phantom_accounts()
            .await
            .map_err(|e| format!("cannot clean up phantom accounts: {e}"))?;
        compute
            .provision_all_defaults()
            .await
            .map_err(|e| format!("cannot create the accounts' default resources: {e}"))?;
        if let (Some(key), StorageBackend::Sled | StorageBackend::Etcd) =
            (&created_admin, config.storage)
        {
            write_admin_credentials(&config.data_dir, key, &config.region)
                .map_err(|e| format!("cannot save the admin credential: {e}"))?;
        }
        let auth = crate::auth::AuthSettings {
            region: config.region.clone(),
            strict_scope: config.strict_signature_scope,
            allow_signature_v1: config.allow_signature_v1,
        };
        // Test suites hammer an emulator: development mode does not throttle.
        let mut rate_limits = config.rate_limits.clone();
        rate_limits.enabled &= !config.dev_mode;
        let mut gateway = Gateway::new(Arc::new(compute), config.limits.clone(), auth, rate_limits);
        if config.dev_mode {
            tracing::warn!(
                "DEVELOPMENT MODE: signatures are NOT verified, any access key is accepted; never expose this gateway"
            );
            gateway.dev = Some(crate::dev::DevMode::new(config.clone(), clock.clone()));
        }
        let gateway = Arc::new(gateway);
        Ok(Self {
            gateway,
            config,
            created_admin,
        })
    }

    /// Where the first admin credential was saved (on the gateway that
    /// created it; not with memory storage, which keeps nothing).
    pub fn admin_credentials_path(&self) -> Option<PathBuf> {
        (self.config.storage != StorageBackend::Memory)
            .then(|| self.config.data_dir.join(ADMIN_CREDENTIALS_FILE))
    }

    /// Serves until `shutdown`, then stops the heartbeats and flushes the store.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        self.serve_with_operator(listener, None, shutdown).await
    }

    /// [`App::serve`], plus the operator listener (metrics, health,
    /// dashboard) on `operator` when given; it stops with the gateway.
    pub async fn serve_with_operator(
        self,
        listener: TcpListener,
        operator: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) {
        let compute = self.gateway.compute.clone();
        let interval = Duration::from_secs(self.config.heartbeat_interval_secs);
        let mut tasks = background_tasks(&compute, interval);
        let (stop_operator, operator_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some(operator) = operator {
            let address = operator
                .local_addr()
                .expect("a bound listener has an address");
            let state = Arc::new(crate::operator::Operator::new(
                self.gateway.clone(),
                address,
                self.config.operator_login,
            ));
            tasks.push(tokio::spawn(crate::operator::run(
                operator,
                state,
                async move {
                    let _ = operator_stopped.await;
                },
            )));
        }
        crate::server::run(listener, self.gateway.clone(), shutdown).await;
        let _ = stop_operator.send(());
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        if let Some(dev) = &self.gateway.dev {
            dev.stop().await;
        }
        if let Err(error) = compute.store().flush_all().await {
            tracing::error!(%error, "final flush failed");
        }
    }
}

/// Starts a compute core's background work: the simulated hosts'
/// heartbeats, the lifecycle driver and the sweep of idle listings, each
/// restarted if it panics.
pub fn background_tasks(
    compute: &Arc<Compute>,
    heartbeat_interval: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    let heartbeats = tokio::spawn(supervise("heartbeats", {
        let compute = compute.clone();
        move || simulate_heartbeats(compute.clone(), heartbeat_interval)
    }));
    let lifecycle = tokio::spawn(supervise("lifecycle driver", {
        let compute = compute.clone();
        move || drive_while_leading(compute.clone())
    }));
    let listings = tokio::spawn(supervise("listing sweep", {
        let compute = compute.clone();
        move || forget_idle_listings(compute.clone())
    }));
    vec![heartbeats, lifecycle, listings]
}

/// How often the listings kept in memory are swept for idle accounts.
const LISTING_SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Drops, every [`LISTING_SWEEP_INTERVAL`], the listing indexes and the
/// instances polled by id that no request used for
/// `instance_index::IDLE_FOR`, and the per-account views the store has
/// moved past or no request used as long: a gateway at rest gives back
/// the memory of what it served.
async fn forget_idle_listings(compute: Arc<Compute>) {
    let mut ticker = tokio::time::interval(LISTING_SWEEP_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let idle = crate::compute::instance_index::IDLE_FOR;
        let forgotten = compute.listings().forget_idle(idle);
        if forgotten > 0 {
            tracing::debug!(instances = forgotten, "dropped idle listing indexes");
        }
        let forgotten = compute.polled_instances().forget_idle(idle);
        if forgotten > 0 {
            tracing::debug!(instances = forgotten, "dropped idle polled instances");
        }
        compute.forget_stale_views(idle);
    }
}

/// How long a background task that panicked waits before it restarts.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Runs the background task `start` makes, and starts it again (after a
/// log line and a short pause) whenever it panics: a bug in one transition
/// must not silently stop every later one. Dropping the supervisor stops
/// the task.
pub async fn supervise<F>(name: &'static str, start: impl Fn() -> F)
where
    F: Future<Output = ()> + Send + 'static,
{
    // Polled in this task (not spawned): stopping the supervisor drops the
    // task's future, and with it everything it holds (the store above all),
    // before the supervisor's own handle reports it finished.
    while crate::server::CatchUnwind(Box::pin(start()))
        .await
        .is_none()
    {
        tracing::error!(task = name, "background task panicked: restarting it");
        tokio::time::sleep(RESTART_DELAY).await;
    }
}

/// Runs the lifecycle driver while this gateway leads the `lifecycle`
/// election (always, on a store only this process opens): one driver at a
/// time across replicas, replaced within the lease's TTL when it dies. Each
/// transition is a compare-and-put anyway, so two drivers overlapping for a
/// moment (a leader that has not yet noticed its lease expired) do no harm.
async fn drive_while_leading(compute: Arc<Compute>) {
    let candidate = format!("{}/{}", std::process::id(), uuid::Uuid::new_v4().simple());
    loop {
        let Some(campaign) = compute.store().backend().campaign("lifecycle", &candidate) else {
            return crate::compute::lifecycle::drive(compute).await;
        };
        match campaign.await {
            Ok(mut leadership) => {
                tracing::info!(%candidate, "this gateway now drives the lifecycle");
                tokio::select! {
                    _ = crate::compute::lifecycle::drive(compute.clone()) => {}
                    _ = leadership.lost() => {
                        tracing::warn!(%candidate, "lost the lifecycle leadership");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot campaign for the lifecycle leadership");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Heartbeats every simulated host each `interval`.
async fn simulate_heartbeats(compute: Arc<Compute>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(error) = compute
            .services()
            .heartbeat_simulated(compute.clock().now())
            .await
        {
            tracing::error!(%error, "heartbeat failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A background task that panics is started again, not lost.
    #[tokio::test(start_paused = true)]
    async fn a_panicked_background_task_restarts() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        supervise("test task", move || {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if run < 2 {
                    panic!("bug in run {run}");
                }
            }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
