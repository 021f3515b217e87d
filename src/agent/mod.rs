//! `ec2-gateway agent`: one compute host as a process of its own.
//!
//! As Nova's nova-compute was, a host here is a service that registers
//! itself and keeps the cloud told of what it runs, without ever touching
//! the database: the agent calls the gateway's `Agent*` actions, signed
//! with its own key, which names its host and allows nothing else
//! (`api::agents`). It registers its host (zone, vCPUs, memory, address,
//! version), heartbeats (on a task of their own), lists the instances
//! placed on it, drives them
//! through a [`Driver`], and reports what it observed, so an instance on
//! its host is `running` only once the agent says so. Restarted, it lists
//! its instances again and takes them back.
//!
//! Two drivers: the [`SimulatedDriver`] (the default: an instance boots,
//! stops and shuts down after configured delays, as the built-in hosts'
//! instances do inside the gateway) and the [`NamespaceDriver`], whose
//! instances really run, each in Linux namespaces of its own
//! (`agent::namespace`).

pub mod driver;
mod facts;
pub mod namespace;
pub mod simulated;

pub use driver::{Assigned, ConsoleUpdate, Driver, Firewall, LaunchDetails};
pub use namespace::NamespaceDriver;
pub use simulated::SimulatedDriver;

use crate::auth::signer::SigningCredentials;
use crate::client::{call, items, text_of, Endpoint, Reply};
use crate::secret::Secret;
use clap::Args;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `ec2-gateway agent` flags (each also from the config file).
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// A TOML file with any of the settings below (flags win).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The gateway, the load balancer in front of the gateways, or several
    /// gateways separated by commas (the agent moves to the next one when
    /// one does not answer).
    #[arg(long, env = "EC2_AGENT_ENDPOINT")]
    pub endpoint: Option<String>,
    /// The agent's access key id (from `admin agents create-key HOST`).
    #[arg(long, env = "EC2_AGENT_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,
    /// Its secret access key.
    #[arg(long, env = "EC2_AGENT_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: Option<String>,
    /// The region to sign for.
    #[arg(long)]
    pub region: Option<String>,
    /// The availability zone this host is in.
    #[arg(long)]
    pub zone: Option<String>,
    #[arg(long)]
    pub vcpus: Option<u32>,
    #[arg(long)]
    pub memory_mib: Option<u64>,
    /// Where operators reach this host (shown by `admin hosts list`).
    #[arg(long)]
    pub address: Option<String>,
    /// Seconds between heartbeats (keep well under the gateway's
    /// liveness_window_secs).
    #[arg(long)]
    pub heartbeat_secs: Option<u64>,
    /// Milliseconds between two looks at the instances placed here.
    #[arg(long)]
    pub poll_millis: Option<u64>,
    /// The simulated driver's boot, stop and shutdown time (milliseconds).
    #[arg(long)]
    pub transition_millis: Option<u64>,
    /// `simulated` (the default) or `namespace` (instances really run in
    /// Linux namespaces; root only, see the README's "Real instances").
    #[arg(long)]
    pub driver: Option<String>,
    /// The namespace driver's folder for instances' layers and consoles.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Seconds stop and terminate wait after SIGTERM before killing.
    #[arg(long)]
    pub stop_grace_secs: Option<u64>,
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
}

/// What `ec2-gateway agent` does besides running the host.
#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// Run a command inside a VPC's network namespace on this machine, as
    /// root (the namespace driver's instances are reachable only there),
    /// e.g. `ec2-gateway agent vpc-exec vpc-0123 -- ssh -i key.pem
    /// ec2-user@10.0.0.5`.
    VpcExec {
        vpc_id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
}

/// The agent's settings, as a config file gives them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    endpoint: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    region: Option<String>,
    zone: Option<String>,
    vcpus: Option<u32>,
    memory_mib: Option<u64>,
    address: Option<String>,
    heartbeat_secs: Option<u64>,
    poll_millis: Option<u64>,
    transition_millis: Option<u64>,
    driver: Option<String>,
    state_dir: Option<PathBuf>,
    stop_grace_secs: Option<u64>,
}

/// Which driver runs the instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    Simulated,
    Namespace,
}

/// Everything the agent runs with.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub endpoint: String,
    pub credentials: SigningCredentials,
    pub zone: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub address: String,
    pub heartbeat: Duration,
    pub poll: Duration,
    pub transition: Duration,
    pub driver: DriverKind,
    pub state_dir: PathBuf,
    pub stop_grace: Duration,
}

impl AgentSettings {
    /// Flags over the config file over defaults; an error names what is
    /// missing.
    pub fn resolve(args: AgentArgs) -> Result<Self, String> {
        let file: AgentFile = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => AgentFile::default(),
        };
        let missing = |what: &str| format!("the agent needs --{what} (or `{what}` in --config)");
        let key = args
            .access_key_id
            .or(file.access_key_id)
            .ok_or_else(|| missing("access-key-id"))?;
        let secret = args
            .secret_access_key
            .map(Secret::new)
            .or(file.secret_access_key)
            .ok_or_else(|| missing("secret-access-key"))?;
        let driver = match args.driver.or(file.driver).as_deref() {
            None | Some("simulated") => DriverKind::Simulated,
            Some("namespace") => DriverKind::Namespace,
            Some(other) => {
                return Err(format!(
                    "unknown driver '{other}': expected simulated or namespace"
                ))
            }
        };
        Ok(Self {
            driver,
            state_dir: args
                .state_dir
                .or(file.state_dir)
                .unwrap_or_else(|| PathBuf::from("/var/lib/ec2-gateway-agent")),
            stop_grace: Duration::from_secs(
                args.stop_grace_secs.or(file.stop_grace_secs).unwrap_or(10),
            ),
            endpoint: args
                .endpoint
                .or(file.endpoint)
                .unwrap_or_else(|| "http://127.0.0.1:8773".into()),
            credentials: SigningCredentials {
                access_key_id: key,
                secret,
                region: args
                    .region
                    .or(file.region)
                    .unwrap_or_else(|| "us-east-1".into()),
                service: "ec2".into(),
            },
            zone: args.zone.or(file.zone).ok_or_else(|| missing("zone"))?,
            vcpus: args.vcpus.or(file.vcpus).ok_or_else(|| missing("vcpus"))?,
            memory_mib: args
                .memory_mib
                .or(file.memory_mib)
                .ok_or_else(|| missing("memory-mib"))?,
            address: args.address.or(file.address).unwrap_or_default(),
            heartbeat: Duration::from_secs(
                args.heartbeat_secs.or(file.heartbeat_secs).unwrap_or(5),
            ),
            poll: Duration::from_millis(args.poll_millis.or(file.poll_millis).unwrap_or(500)),
            transition: Duration::from_millis(
                args.transition_millis
                    .or(file.transition_millis)
                    .unwrap_or(1000),
            ),
        })
    }
}

/// Stops a task when dropped (the agent's heartbeats end with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One signed call to the first of `endpoints` (from `current` on) that
/// answers; a 503 or no answer moves `current` to the next one.
async fn call_any(
    endpoints: &[Endpoint],
    current: &mut usize,
    credentials: &SigningCredentials,
    action: &str,
    params: &[(&str, &str)],
) -> Result<Reply, String> {
    let mut last = String::new();
    for _ in 0..endpoints.len() {
        match call(&endpoints[*current], credentials, action, params).await {
            Ok(reply) if reply.status == 200 => return Ok(reply),
            Ok(reply) if reply.status == 503 => last = failure(action, &reply),
            Ok(reply) => return Err(failure(action, &reply)),
            Err(error) => last = format!("{action}: {error}"),
        }
        *current = (*current + 1) % endpoints.len();
    }
    Err(last)
}

/// Why a call failed.
fn failure(action: &str, reply: &Reply) -> String {
    format!(
        "{action}: {} {}: {}",
        reply.status,
        text_of(&reply.body, "Code").unwrap_or_default(),
        text_of(&reply.body, "Message").unwrap_or_default()
    )
}

/// The agent: its settings, the gateways and its driver.
pub struct Agent {
    settings: AgentSettings,
    /// The gateways it may call; it uses `current` until it does not answer.
    endpoints: Vec<Endpoint>,
    current: usize,
    driver: Box<dyn Driver>,
    host: Option<String>,
}

impl Agent {
    pub fn new(settings: AgentSettings, driver: Box<dyn Driver>) -> Result<Self, String> {
        let endpoints = settings
            .endpoint
            .split(',')
            .map(|url| Endpoint::parse(url.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            settings,
            endpoints,
            current: 0,
            driver,
            host: None,
        })
    }

    /// One signed call; a gateway that does not answer (or answers 503)
    /// hands the agent on to the next one for this and later calls.
    async fn call(&mut self, action: &str, params: &[(&str, &str)]) -> Result<Reply, String> {
        call_any(
            &self.endpoints,
            &mut self.current,
            &self.settings.credentials,
            action,
            params,
        )
        .await
    }

    /// Heartbeats on a task of their own, so a slow step of the driver
    /// (an image to unpack, instances to boot) never makes the host look
    /// dead; `lost` is raised when the gateway no longer knows the host.
    fn spawn_heartbeats(&self, lost: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
        let endpoints = self.endpoints.clone();
        let credentials = self.settings.credentials.clone();
        let period = self.settings.heartbeat;
        tokio::spawn(async move {
            let mut current = 0;
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(error) = call_any(
                    &endpoints,
                    &mut current,
                    &credentials,
                    "AgentHeartbeat",
                    &[],
                )
                .await
                {
                    tracing::warn!(%error, "heartbeat failed");
                    if error.contains("HostNotFound") || error.contains("InvalidHost") {
                        lost.store(true, Ordering::SeqCst);
                    }
                }
            }
        })
    }

    /// AgentRegister; answers the host's name.
    pub async fn register(&mut self) -> Result<String, String> {
        let (zone, address) = (self.settings.zone.clone(), self.settings.address.clone());
        let (vcpus, memory) = (
            self.settings.vcpus.to_string(),
            self.settings.memory_mib.to_string(),
        );
        let reply = self
            .call(
                "AgentRegister",
                &[
                    ("AvailabilityZone", &zone),
                    ("Vcpus", &vcpus),
                    ("MemoryMib", &memory),
                    ("Address", &address),
                    ("AgentVersion", env!("CARGO_PKG_VERSION")),
                ],
            )
            .await?;
        let host = text_of(&reply.body, "hostName").ok_or("AgentRegister: no hostName")?;
        self.host = Some(host.clone());
        Ok(host)
    }

    /// One look at the instances placed here: gives the driver what it
    /// asks for, drives them, reports what was observed and sends console
    /// output. Answers how many reports were accepted.
    pub async fn step(&mut self) -> Result<usize, String> {
        let reply = self.call("AgentDescribeInstances", &[]).await?;
        let placed: Vec<Assigned> = items(&reply.body, "instanceSet")
            .into_iter()
            .filter_map(|mut item| {
                Some(Assigned {
                    instance_id: item.remove("instanceId")?,
                    owner_id: item.remove("ownerId")?,
                    state: item.remove("instanceState")?,
                    instance_type: item.remove("instanceType").unwrap_or_default(),
                    reboots: item
                        .get("rebootCount")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_default(),
                })
            })
            .collect();
        self.driver.retain(&placed);
        // One instance's failure does not stop the others: the first is
        // answered once all had their turn.
        let mut first_error = None;
        if let Err(error) = self.forget_terminated().await {
            first_error.get_or_insert(error);
        }
        if self.driver.wants_firewall() {
            let reply = self.call("AgentDescribeFirewall", &[]).await?;
            self.driver.firewall(&facts::firewall(&reply.body));
        }
        for instance in &placed {
            if self.driver.wants_launch(instance) {
                match self
                    .call(
                        "AgentDescribeLaunch",
                        &[
                            ("InstanceId", &instance.instance_id),
                            ("OwnerId", &instance.owner_id),
                        ],
                    )
                    .await
                {
                    Ok(reply) => self.driver.launch(facts::launch(&reply.body)),
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        let now = Instant::now();
        let observations: Vec<(&Assigned, &'static str)> = placed
            .iter()
            .filter_map(|instance| Some((instance, self.driver.observe(instance, now)?)))
            .collect();
        // The console first: an instance that stopped or terminated is no
        // longer placed here once reported, and its last lines would be
        // refused.
        let urgent: Vec<String> = observations
            .iter()
            .map(|(instance, _)| instance.instance_id.clone())
            .collect();
        for update in self.driver.console_updates(&urgent) {
            use base64::Engine;
            let output = base64::engine::general_purpose::STANDARD.encode(&update.output);
            match self
                .call(
                    "AgentPutConsoleOutput",
                    &[
                        ("InstanceId", &update.instance_id),
                        ("OwnerId", &update.owner_id),
                        ("Output", &output),
                    ],
                )
                .await
            {
                Ok(_) => self.driver.console_delivered(&update),
                Err(error) => {
                    tracing::debug!(instance = %update.instance_id, %error, "console output not sent")
                }
            }
        }
        let mut reported = 0;
        for (instance, observed) in observations {
            let report = self
                .call(
                    "AgentReportInstanceState",
                    &[
                        ("InstanceId", &instance.instance_id),
                        ("OwnerId", &instance.owner_id),
                        ("State", observed),
                    ],
                )
                .await;
            if let Err(error) = report {
                first_error.get_or_insert(error);
                continue;
            }
            self.driver.reported(instance, observed);
            tracing::info!(instance = %instance.instance_id, state = observed, "reported");
            reported += 1;
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        Ok(reported)
    }

    /// Asks which kept instances are gone and lets the driver delete them.
    async fn forget_terminated(&mut self) -> Result<(), String> {
        let kept = self.driver.kept();
        for chunk in kept.chunks(100) {
            let names: Vec<String> = (1..=chunk.len()).map(|n| format!("Instance.{n}")).collect();
            let values: Vec<String> = chunk
                .iter()
                .map(|(owner, id)| format!("{owner}/{id}"))
                .collect();
            let params: Vec<(&str, &str)> = names
                .iter()
                .map(String::as_str)
                .zip(values.iter().map(String::as_str))
                .collect();
            let reply = self.call("AgentDescribeKeptInstances", &params).await?;
            for item in items(&reply.body, "instanceSet") {
                if item.get("instanceState").map(String::as_str) == Some("terminated") {
                    if let Some(id) = item.get("instanceId") {
                        self.driver.forget(id);
                    }
                }
            }
        }
        Ok(())
    }

    /// Registers (until the gateway answers), then heartbeats and steps
    /// forever; a failure is logged and tried again on the next tick.
    pub async fn run(mut self) {
        let mut pause = Duration::from_millis(200);
        loop {
            match self.register().await {
                Ok(host) => {
                    tracing::info!(%host, zone = %self.settings.zone, "registered");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot register yet");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        let lost = Arc::new(AtomicBool::new(false));
        let _heartbeats = AbortOnDrop(self.spawn_heartbeats(lost.clone()));
        let mut poll = tokio::time::interval(self.settings.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            poll.tick().await;
            if lost.swap(false, Ordering::SeqCst) {
                // Removed by an operator meanwhile: register again.
                if let Err(error) = self.register().await {
                    tracing::warn!(%error, "cannot register again yet");
                    lost.store(true, Ordering::SeqCst);
                }
            }
            self.driver.housekeeping();
            if let Err(error) = self.step().await {
                tracing::warn!(%error, "cannot drive the instances");
            }
        }
    }
}
