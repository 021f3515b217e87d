//! Configuration: the embedded default, a TOML file, environment overrides.
//!
//! A first `ec2-gateway serve` needs nothing: region `us-east-1`, zones
//! `us-east-1a/b/c` backed by simulated compute hosts, data in
//! `./ec2-gateway-data`. `--config FILE` is laid over the default (what it
//! leaves out keeps the default's value; the built-in hosts follow the
//! region); single `EC2_GATEWAY_*` variables override single keys. A bad file stops the
//! server at start with the key path and the reason (`hosts[1].vcpus: ...`),
//! because a gateway that starts with half its configuration is worse than
//! one that refuses to start.

use crate::secret::Secret;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The embedded default configuration.
pub const DEFAULT_CONFIG: &str = include_str!("default-config.toml");

/// Which storage backend holds the gateway's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// sled in `data_dir` (the default; durable).
    Sled,
    /// Nothing on disk; everything is lost at exit.
    Memory,
    /// An etcd v3 cluster (`[etcd]`), shared by every gateway of the
    /// deployment; needs a build with the `etcd` feature.
    Etcd,
}

/// Where the etcd backend finds its cluster (`[etcd]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdConfig {
    /// Client URLs of the members (`http://127.0.0.1:2379`, or `https://`
    /// with `ca_file`).
    pub endpoints: Vec<String>,
    /// Prepended to every key, so that several deployments share a cluster.
    pub prefix: String,
    /// etcd user and password, when the cluster has authentication on.
    pub user: Option<String>,
    pub password: Option<crate::secret::Secret>,
    /// TLS: the CA that signed the members' certificates, and a client
    /// certificate and key when the members require one.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The cluster's `--max-txn-ops` (128 unless the members were started
    /// with more): no commit is sent with more operations than this.
    pub max_txn_ops: usize,
    /// Time allowed for one call before its outcome is settled by reading.
    pub request_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// The lease behind the lifecycle driver's leadership: a driver that
    /// dies is replaced within this time.
    pub lease_ttl_secs: u64,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "ec2-gateway/".into(),
            user: None,
            password: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            max_txn_ops: 128,
            request_timeout_ms: 5_000,
            connect_timeout_ms: 2_000,
            lease_ttl_secs: 5,
        }
    }
}

/// Limits that keep one client from exhausting the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted (bytes).
    pub max_body_bytes: u64,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Largest request head (request line plus headers, bytes).
    pub max_header_bytes: usize,
    /// Time allowed to receive a request's headers, and the idle time a
    /// kept-alive connection may wait for its next request (seconds).
    pub header_read_timeout_secs: u64,
    /// Time allowed to receive a request's body (seconds).
    pub body_read_timeout_secs: u64,
    /// Longest time an answer may wait for the client to take its next
    /// bytes (seconds): a client that stops reading loses the connection.
    pub write_stall_timeout_secs: u64,
    /// Most connections served at once; further ones wait in the backlog.
    pub max_connections: usize,
    /// Most connections one client address may hold at once; more are
    /// answered `ServiceUnavailable` (503) and closed.
    pub max_connections_per_client: usize,
    /// Bytes all unfinished request bodies may hold together; past it a
    /// request is answered `ServiceUnavailable` (503) before it is read.
    pub max_buffered_body_bytes: u64,
    /// The share of that budget one client address may hold.
    pub max_buffered_body_bytes_per_client: u64,
    /// Slowest body accepted after a 2-second grace (bytes per second;
    /// 0: only `body_read_timeout_secs` applies).
    pub min_body_bytes_per_sec: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            header_read_timeout_secs: 30,
            body_read_timeout_secs: 30,
            write_stall_timeout_secs: 30,
            max_connections: 1024,
            max_connections_per_client: 128,
            max_buffered_body_bytes: 64 * 1024 * 1024,
            max_buffered_body_bytes_per_client: 8 * 1024 * 1024,
            min_body_bytes_per_sec: 4096,
        }
    }
}

/// Per-account request rates (token buckets, see `throttle`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Off: no request is ever throttled (benchmarks).
    pub enabled: bool,
    /// Describe*/Get* requests per second, per account, sustained.
    pub describe_per_second: u32,
    /// Describe*/Get* requests an account may send at once.
    pub describe_burst: u32,
    /// Other requests per second, per account, sustained.
    pub mutate_per_second: u32,
    /// Other requests an account may send at once.
    pub mutate_burst: u32,
    /// Instances an account may launch per second, sustained (EC2's
    /// RunInstances resource rate: 2).
    pub instances_per_second: u32,
    /// Instances an account may launch at once (EC2: 1,000).
    pub instance_burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            describe_per_second: 100,
            describe_burst: 500,
            mutate_per_second: 20,
            mutate_burst: 200,
            instances_per_second: 2,
            instance_burst: 1000,
        }
    }
}

/// An account with a fixed credential, so scripts and tests know its keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// 12-digit EC2 owner id.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub admin: bool,
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

/// A compute host registered at start and simulated inside the server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    pub name: String,
    pub availability_zone: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// `true` (default): the server heartbeats for this host. `false`: an
    /// external agent must call the admin heartbeat, or the host goes dead.
    #[serde(default = "default_true")]
    pub simulated: bool,
}

fn default_true() -> bool {
    true
}

/// An instance type of the catalogue.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InstanceTypeConfig {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    #[serde(default = "default_architecture")]
    pub architecture: String,
}

/// A public image of the catalogue, owned by the gateway's system account.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "default_architecture")]
    pub architecture: String,
    /// `linux` (default) or `windows`.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// A root filesystem (a folder or a tar archive on the agents' hosts)
    /// that the namespace driver boots (`ec2-gateway image build`).
    #[serde(default)]
    pub root_filesystem: Option<String>,
}

fn default_architecture() -> String {
    "x86_64".to_string()
}
fn default_platform() -> String {
    "linux".to_string()
}

/// How the scheduler weighs hosts that fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerPolicy {
    /// The host with the most free capacity (spreads load).
    #[default]
    Spread,
    /// The host with the least free capacity that still fits (packs hosts).
    Pack,
}

/// Per-account limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    /// Instances not yet terminated, per account.
    pub max_instances: u32,
    /// vCPUs of instances holding capacity, per account.
    pub max_vcpus: u32,
    /// Elastic IP addresses, per account.
    pub max_elastic_ips: u32,
    /// Security groups, per account.
    pub max_security_groups: u32,
    /// Inbound rules per security group, and outbound rules per group
    /// (EC2's default: 60 each). Also caps one Authorize request.
    pub max_rules_per_security_group: u32,
    /// Key pairs, per account (EC2: 5,000).
    pub max_key_pairs: u32,
    /// Registered images, per account.
    pub max_images: u32,
    /// Volumes, per account.
    pub max_volumes: u32,
    /// Total size of an account's volumes (GiB).
    pub max_volume_storage_gib: u64,
    /// Snapshots, per account.
    pub max_snapshots: u32,
    /// VPCs per account, the default VPC included (EC2: 5 per Region).
    pub max_vpcs: u32,
    /// The largest share of the fleet (vCPUs of all compute hosts, volume
    /// capacity of all zones) one account may hold, in percent: whatever
    /// `max_vcpus` and `max_volume_storage_gib` say, one tenant cannot take
    /// every host or a whole volume pool.
    pub max_fleet_share_percent: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_instances: 100,
            max_vcpus: 512,
            max_elastic_ips: 5,
            max_security_groups: 500,
            max_rules_per_security_group: 60,
            max_key_pairs: 5000,
            max_images: 1000,
            max_volumes: 5000,
            max_volume_storage_gib: 51_200,
            max_snapshots: 10_000,
            max_vpcs: 5,
            max_fleet_share_percent: 50,
        }
    }
}

/// Instance lifecycle timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// pending -> running.
    pub boot_delay_secs: u64,
    /// stopping -> stopped.
    pub stop_delay_secs: u64,
    /// shutting-down -> terminated.
    pub terminate_delay_secs: u64,
    /// How long terminated instances stay visible.
    pub terminated_retention_secs: u64,
    /// creating -> available, attaching -> attached, detaching -> detached.
    pub volume_delay_secs: u64,
    /// Snapshots: pending -> completed.
    pub snapshot_delay_secs: u64,
    /// NAT gateways: pending -> available, deleting -> deleted.
    pub nat_gateway_delay_secs: u64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            boot_delay_secs: 2,
            stop_delay_secs: 1,
            terminate_delay_secs: 1,
            terminated_retention_secs: 3600,
            volume_delay_secs: 1,
            snapshot_delay_secs: 2,
            nat_gateway_delay_secs: 2,
        }
    }
}

/// Another region DescribeRegions lists beside this gateway's own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerRegion {
    pub name: String,
    pub endpoint: String,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// The operator listener (metrics, health, dashboard): an address, or
    /// `"off"`. Default `127.0.0.1:9773`.
    #[serde(default = "default_operator_listen")]
    pub operator_listen: String,
    /// Whether the dashboard asks for an admin's key and secret; when
    /// absent, it does unless `operator_listen` is loopback.
    #[serde(default)]
    pub operator_login: Option<bool>,
    /// `text` (default) or `json` (one JSON object per line).
    #[serde(default)]
    pub log_format: LogFormat,
    pub data_dir: PathBuf,
    #[serde(default = "default_storage")]
    pub storage: StorageBackend,
    /// The cluster, when `storage = "etcd"`.
    #[serde(default)]
    pub etcd: EtcdConfig,
    /// sled page cache bound (MiB).
    #[serde(default = "default_cache_mib")]
    pub cache_capacity_mib: u64,
    /// Most instances DescribeInstances keeps listed in memory across all
    /// accounts (`compute::instance_index`); 0 reads every listing from
    /// the store.
    #[serde(default = "default_listing_cache_instances")]
    pub listing_cache_instances: usize,
    pub region: String,
    /// Host name (and port) DescribeRegions gives for this region; defaults
    /// to the listen address.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Require SigV4 scopes to name this region and service `ec2`. Off by
    /// default: boto 2, euca2ools and some SDKs sign other scopes.
    #[serde(default)]
    pub strict_signature_scope: bool,
    /// Accept the legacy SignatureVersion=1. Off by default: its string to
    /// sign concatenates names and values with no delimiter, so a signed
    /// `DryRun=true` also signs `DryRuntrue=` (AWS retired it for this).
    #[serde(default)]
    pub allow_signature_v1: bool,
    /// Development mode (for test suites that use moto or LocalStack):
    /// signatures are parsed but not verified, any access key is accepted
    /// and names its account, and other regions are created on first use.
    #[serde(default)]
    pub dev_mode: bool,
    /// Let development mode listen beyond loopback.
    #[serde(default)]
    pub dev_allow_remote: bool,
    /// A host is alive while its last heartbeat is at most this old.
    #[serde(default = "default_liveness")]
    pub liveness_window_secs: u64,
    /// How often simulated hosts heartbeat.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_interval_secs: u64,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub rate_limits: RateLimits,
    #[serde(default)]
    pub peer_regions: Vec<PeerRegion>,
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    #[serde(default)]
    pub hosts: Vec<HostConfig>,
    /// True when `hosts` are the built-in ones (none were configured): they
    /// then follow the region (two per zone `<region>a`, `b`, `c`).
    #[serde(skip)]
    pub hosts_are_builtin: bool,
    /// Instance types added to (or replacing, by name) the built-in catalogue.
    #[serde(default)]
    pub instance_types: Vec<InstanceTypeConfig>,
    /// Public images; the built-in catalogue when absent.
    #[serde(default)]
    pub images: Option<Vec<ImageConfig>>,
    #[serde(default)]
    pub scheduler_policy: SchedulerPolicy,
    /// Choose among this many of the best hosts at random (Nova's
    /// `host_subset_size`); when absent, 1 (always the best) on memory and
    /// sled, 8 on etcd, where several gateways place at once.
    #[serde(default)]
    pub scheduler_host_subset_size: Option<usize>,
    #[serde(default)]
    pub quotas: Quotas,
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// The public pool Elastic IPs come from.
    #[serde(default = "default_elastic_ip_pool")]
    pub elastic_ip_pool: String,
    /// Volume capacity of each zone (GiB).
    #[serde(default = "default_volume_capacity")]
    pub volume_capacity_gib_per_zone: u64,
    /// The pool instances' public IPv4 addresses come from (subnets with
    /// MapPublicIpOnLaunch, as EC2's default subnets).
    #[serde(default = "default_public_ip_pool")]
    pub public_ip_pool: String,
}

/// How the log is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

fn default_operator_listen() -> String {
    "127.0.0.1:9773".to_string()
}

fn default_elastic_ip_pool() -> String {
    "198.51.100.0/24".to_string()
}

fn default_public_ip_pool() -> String {
    "100.64.0.0/10".to_string()
}

fn default_volume_capacity() -> u64 {
    100_000
}

fn default_storage() -> StorageBackend {
    StorageBackend::Sled
}
fn default_cache_mib() -> u64 {
    32
}

fn default_listing_cache_instances() -> usize {
    crate::compute::instance_index::MAX_INDEXED
}
fn default_liveness() -> u64 {
    60
}
fn default_heartbeat() -> u64 {
    10
}

/// Why a configuration was refused: the key path and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "configuration: {}", self.reason)
        } else {
            write!(f, "configuration key `{}`: {}", self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The built-in hosts of `region`: two simulated hosts (64 vCPUs, 256 GiB)
/// in each of the zones `<region>a`, `b` and `c`, as the embedded default
/// lists them for `us-east-1`.
pub fn builtin_hosts(region: &str) -> Vec<HostConfig> {
    ["a", "b", "c"]
        .iter()
        .flat_map(|zone| {
            (1..=2).map(move |n| HostConfig {
                name: format!("compute-{region}{zone}-{n}"),
                availability_zone: format!("{region}{zone}"),
                vcpus: 64,
                memory_mib: 262_144,
                simulated: true,
            })
        })
        .collect()
}

/// Lays `given` over `base`: tables merge key by key, everything else
/// replaces.
fn overlay(base: &mut toml::Table, given: toml::Table) {
    for (key, value) in given {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => overlay(below, above),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn config_error(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// The embedded default.
    pub fn embedded_default() -> Self {
        Self::from_toml(DEFAULT_CONFIG).expect("the embedded default configuration is valid")
    }

    /// Parses and validates a TOML document.
    ///
    /// The document is laid over the embedded default, so a key it leaves
    /// out keeps the default's value: tables merge key by key, anything
    /// else (a value, a list such as `[[hosts]]`) replaces the default's
    /// whole. `hosts = []` therefore means "no built-in hosts".
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let given: toml::Table = text
            .parse()
            .map_err(|error: toml::de::Error| config_error("", error.to_string().trim()))?;
        let mut merged: toml::Table = DEFAULT_CONFIG
            .parse()
            .expect("the embedded default configuration is valid TOML");
        let hosts_are_builtin = !given.contains_key("hosts") || text == DEFAULT_CONFIG;
        overlay(&mut merged, given);
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(merged))
            .map_err(|error| {
                let key = error.path().to_string();
                let reason = error.inner().message().to_string();
                config_error(if key == "." { String::new() } else { key }, reason)
            })?;
        if hosts_are_builtin {
            config.hosts = builtin_hosts(&config.region);
            config.hosts_are_builtin = true;
        }
        config.validate()?;
        Ok(config)
    }

    /// Development mode accepts unverified signatures: it listens on
    /// loopback only unless `dev_allow_remote` says otherwise.
    pub fn check_dev_listen(&self) -> Result<(), ConfigError> {
        if self.dev_mode && !self.listen.ip().is_loopback() && !self.dev_allow_remote {
            return Err(config_error(
                "listen",
                format!(
                    "development mode accepts unverified signatures: it listens on loopback only, not {} (pass --dev-allow-remote, or set dev_allow_remote = true, to override)",
                    self.listen
                ),
            ));
        }
        Ok(())
    }

    /// Reads `path` (or the embedded default when `None`), then applies
    /// `EC2_GATEWAY_*` overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    config_error("", format!("cannot read {}: {e}", path.display()))
                })?;
                Self::from_toml(&text)?
            }
            None => Self::embedded_default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Where the operator listener listens (`None`: it is off).
    pub fn operator_address(&self) -> Result<Option<SocketAddr>, ConfigError> {
        match self.operator_listen.trim() {
            "off" => Ok(None),
            address => address.parse().map(Some).map_err(|_| {
                config_error(
                    "operator_listen",
                    "must be an address and port, like 127.0.0.1:9773, or \"off\"",
                )
            }),
        }
    }

    /// Records the address actually bound (the port may have been 0), so the
    /// default endpoint names a port clients can reach.
    pub fn bound_to(mut self, address: SocketAddr) -> Self {
        self.listen = address;
        self
    }

    /// The endpoint DescribeRegions reports for this region.
    pub fn region_endpoint(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value
                .parse()
                .map_err(|e| config_error(name, format!("{e}")))
        }
        if let Some(v) = env("EC2_GATEWAY_LISTEN") {
            self.listen = parsed("EC2_GATEWAY_LISTEN", &v)?;
        }
        if let Some(v) = env("EC2_GATEWAY_OPERATOR_LISTEN") {
            self.operator_listen = v;
        }
        if let Some(v) = env("EC2_GATEWAY_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(config_error(
                        "EC2_GATEWAY_LOG_FORMAT",
                        "expected `text` or `json`",
                    ))
                }
            };
        }
        if let Some(v) = env("EC2_GATEWAY_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("EC2_GATEWAY_STORAGE") {
            self.storage = match v.as_str() {
                "sled" => StorageBackend::Sled,
                "memory" => StorageBackend::Memory,
                "etcd" => StorageBackend::Etcd,
                _ => {
                    return Err(config_error(
                        "EC2_GATEWAY_STORAGE",
                        "expected `sled`, `memory` or `etcd`",
                    ))
                }
            };
        }
        if let Some(v) = env("EC2_GATEWAY_ETCD_ENDPOINTS") {
            self.etcd.endpoints = v.split(',').map(|e| e.trim().to_string()).collect();
        }
        if let Some(v) = env("EC2_GATEWAY_ETCD_PREFIX") {
            self.etcd.prefix = v;
        }
        if let Some(v) = env("EC2_GATEWAY_ETCD_MAX_TXN_OPS") {
            self.etcd.max_txn_ops = parsed("EC2_GATEWAY_ETCD_MAX_TXN_OPS", &v)?;
        }
        if let Some(v) = env("EC2_GATEWAY_REGION") {
            self.region = v;
            if self.hosts_are_builtin {
                self.hosts = builtin_hosts(&self.region);
            }
        }
        if let Some(v) = env("EC2_GATEWAY_ENDPOINT") {
            self.endpoint = Some(v);
        }
        if let Some(v) = env("EC2_GATEWAY_STRICT_SIGNATURE_SCOPE") {
            self.strict_signature_scope = parsed("EC2_GATEWAY_STRICT_SIGNATURE_SCOPE", &v)?;
        }
        if let Some(v) = env("EC2_GATEWAY_DEV_MODE") {
            self.dev_mode = parsed("EC2_GATEWAY_DEV_MODE", &v)?;
        }
        if let Some(v) = env("EC2_GATEWAY_ALLOW_SIGNATURE_V1") {
            self.allow_signature_v1 = parsed("EC2_GATEWAY_ALLOW_SIGNATURE_V1", &v)?;
        }
        if let Some(v) = env("EC2_GATEWAY_LIVENESS_WINDOW_SECS") {
            self.liveness_window_secs = parsed("EC2_GATEWAY_LIVENESS_WINDOW_SECS", &v)?;
        }
        if let Some(v) = env("EC2_GATEWAY_HEARTBEAT_INTERVAL_SECS") {
            self.heartbeat_interval_secs = parsed("EC2_GATEWAY_HEARTBEAT_INTERVAL_SECS", &v)?;
        }
        if let Some(v) = env("EC2_GATEWAY_MAX_CONNECTIONS") {
            self.limits.max_connections = parsed("EC2_GATEWAY_MAX_CONNECTIONS", &v)?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.operator_address()?;
        if !is_region_name(&self.region) {
            return Err(config_error(
                "region",
                "must be lower-case letters, digits and dashes, like us-east-1",
            ));
        }
        if self.liveness_window_secs == 0 {
            return Err(config_error("liveness_window_secs", "must be at least 1"));
        }
        if self.storage == StorageBackend::Etcd {
            if self.etcd.endpoints.is_empty() || self.etcd.endpoints.iter().any(|e| e.is_empty()) {
                return Err(config_error(
                    "etcd.endpoints",
                    "must name at least one member",
                ));
            }
            if self.etcd.max_txn_ops < 16 {
                return Err(config_error("etcd.max_txn_ops", "must be at least 16"));
            }
            if self.etcd.user.is_some() != self.etcd.password.is_some() {
                return Err(config_error(
                    "etcd.password",
                    "etcd.user and etcd.password go together",
                ));
            }
            if self.etcd.cert_file.is_some() != self.etcd.key_file.is_some() {
                return Err(config_error(
                    "etcd.key_file",
                    "etcd.cert_file and etcd.key_file go together",
                ));
            }
        }
        if self.heartbeat_interval_secs == 0
            || self.heartbeat_interval_secs >= self.liveness_window_secs
        {
            return Err(config_error(
                "heartbeat_interval_secs",
                "must be at least 1 and shorter than liveness_window_secs",
            ));
        }
        if self.limits.max_connections == 0 {
            return Err(config_error("limits.max_connections", "must be at least 1"));
        }
        if self.limits.max_connections_per_client == 0 {
            return Err(config_error(
                "limits.max_connections_per_client",
                "must be at least 1",
            ));
        }
        if self.limits.max_buffered_body_bytes < self.limits.max_body_bytes
            || self.limits.max_buffered_body_bytes > u64::from(u32::MAX)
        {
            return Err(config_error(
                "limits.max_buffered_body_bytes",
                "must be at least limits.max_body_bytes and at most 4 GiB",
            ));
        }
        if self.limits.max_buffered_body_bytes_per_client < self.limits.max_body_bytes {
            return Err(config_error(
                "limits.max_buffered_body_bytes_per_client",
                "must be at least limits.max_body_bytes",
            ));
        }
        for (key, secs) in [
            (
                "limits.header_read_timeout_secs",
                self.limits.header_read_timeout_secs,
            ),
            (
                "limits.body_read_timeout_secs",
                self.limits.body_read_timeout_secs,
            ),
            (
                "limits.write_stall_timeout_secs",
                self.limits.write_stall_timeout_secs,
            ),
        ] {
            if !(1..=3600).contains(&secs) {
                return Err(config_error(key, "must be 1 to 3600 seconds"));
            }
        }
        if self.rate_limits.describe_burst == 0
            || self.rate_limits.mutate_burst == 0
            || self.rate_limits.instance_burst == 0
        {
            return Err(config_error(
                "rate_limits",
                "bursts must be at least 1 (set enabled = false to turn rate limits off)",
            ));
        }
        if !(1..=100).contains(&self.quotas.max_fleet_share_percent) {
            return Err(config_error(
                "quotas.max_fleet_share_percent",
                "must be 1 to 100",
            ));
        }
        if self.limits.max_header_bytes < 8192 {
            return Err(config_error(
                "limits.max_header_bytes",
                "must be at least 8192",
            ));
        }
        for (i, peer) in self.peer_regions.iter().enumerate() {
            if !is_region_name(&peer.name) || peer.name == self.region {
                return Err(config_error(
                    format!("peer_regions[{i}].name"),
                    "must be a region name other than this gateway's own",
                ));
            }
        }
        let mut access_keys = std::collections::HashSet::new();
        for (i, account) in self.accounts.iter().enumerate() {
            if account.id.len() != 12 || !account.id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(config_error(
                    format!("accounts[{i}].id"),
                    "must be exactly 12 digits",
                ));
            }
            if account.name.trim().is_empty() {
                return Err(config_error(
                    format!("accounts[{i}].name"),
                    "must not be empty",
                ));
            }
            if !is_access_key_id(&account.access_key_id) {
                return Err(config_error(
                    format!("accounts[{i}].access_key_id"),
                    "must be 8 to 128 upper-case letters and digits",
                ));
            }
            if !access_keys.insert(account.access_key_id.clone()) {
                return Err(config_error(
                    format!("accounts[{i}].access_key_id"),
                    "is used by another account",
                ));
            }
            if account.secret_access_key.expose().len() < 16 {
                return Err(config_error(
                    format!("accounts[{i}].secret_access_key"),
                    "must be at least 16 characters",
                ));
            }
        }
        for (i, instance_type) in self.instance_types.iter().enumerate() {
            if !is_instance_type_name(&instance_type.name) {
                return Err(config_error(
                    format!("instance_types[{i}].name"),
                    "must look like family.size, e.g. m5.large",
                ));
            }
            if instance_type.vcpus == 0 || instance_type.memory_mib == 0 {
                return Err(config_error(
                    format!("instance_types[{i}]"),
                    "vcpus and memory_mib must be at least 1",
                ));
            }
        }
        for (i, image) in self.images.iter().flatten().enumerate() {
            if !is_resource_id(&image.id, "ami") {
                return Err(config_error(
                    format!("images[{i}].id"),
                    "must be ami- followed by 8 or 17 lower-case hex digits",
                ));
            }
            if !matches!(image.platform.as_str(), "linux" | "windows") {
                return Err(config_error(
                    format!("images[{i}].platform"),
                    "must be linux or windows",
                ));
            }
        }
        if crate::compute::addresses::AddressPool::parse(&self.elastic_ip_pool).is_none() {
            return Err(config_error(
                "elastic_ip_pool",
                "must be an IPv4 CIDR from /16 to /30, like 198.51.100.0/24",
            ));
        }
        let Some(public_pool) =
            crate::compute::addresses::AddressPool::parse_wide(&self.public_ip_pool)
        else {
            return Err(config_error(
                "public_ip_pool",
                "must be an IPv4 CIDR from /8 to /30, like 100.64.0.0/10",
            ));
        };
        let elastic_pool = crate::compute::addresses::AddressPool::parse(&self.elastic_ip_pool);
        if elastic_pool.is_some_and(|pool| pool.overlaps(&public_pool)) {
            return Err(config_error(
                "public_ip_pool",
                "must not overlap elastic_ip_pool",
            ));
        }
        let mut host_names = std::collections::HashSet::new();
        for (i, host) in self.hosts.iter().enumerate() {
            if !is_host_name(&host.name) {
                return Err(config_error(
                    format!("hosts[{i}].name"),
                    "must be 1 to 63 letters, digits, dots, dashes or underscores",
                ));
            }
            if !host_names.insert(host.name.clone()) {
                return Err(config_error(
                    format!("hosts[{i}].name"),
                    "names another host too",
                ));
            }
            if !is_zone_name(&host.availability_zone) {
                return Err(config_error(
                    format!("hosts[{i}].availability_zone"),
                    "must be lower-case letters, digits and dashes",
                ));
            }
            if host.vcpus == 0 {
                return Err(config_error(
                    format!("hosts[{i}].vcpus"),
                    "must be at least 1",
                ));
            }
            if host.memory_mib == 0 {
                return Err(config_error(
                    format!("hosts[{i}].memory_mib"),
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

/// A region name: lower-case letters, digits and dashes, like `us-east-1`.
pub fn is_region_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A zone name is shaped like a region name (`us-east-1a`, `lab-rack2`).
pub fn is_zone_name(name: &str) -> bool {
    is_region_name(name)
}

/// Compute host names: what a hostname or a Nova service host may be.
pub fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Instance type names: `family.size`.
pub fn is_instance_type_name(name: &str) -> bool {
    name.split_once('.').is_some_and(|(family, size)| {
        !family.is_empty()
            && !size.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    })
}

/// EC2 resource ids: `<prefix>-` then 8 or 17 lower-case hex digits.
pub fn is_resource_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// Access key ids: AWS uses 20 upper-case alphanumerics; accept 8..=128 (the documentation example `AKIDEXAMPLE` has 11).
pub fn is_access_key_id(id: &str) -> bool {
    (8..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn public_and_elastic_pools_must_not_overlap() {
        let mut config = Config::load(None, no_env).unwrap();
        assert!(config.validate().is_ok());
        config.public_ip_pool = "198.51.0.0/16".into();
        let refused = config.validate().unwrap_err().to_string();
        assert!(refused.contains("public_ip_pool"), "{refused}");
        config.public_ip_pool = "10.0.0.0/7".into();
        assert!(config.validate().is_err());
    }

    #[test]
    fn embedded_default_has_three_zones_on_the_loopback_port() {
        let config = Config::load(None, no_env).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8773");
        assert_eq!(config.region, "us-east-1");
        assert_eq!(config.storage, StorageBackend::Sled);
        let mut zones: Vec<_> = config
            .hosts
            .iter()
            .map(|h| h.availability_zone.as_str())
            .collect();
        zones.dedup();
        assert_eq!(zones, ["us-east-1a", "us-east-1b", "us-east-1c"]);
        assert!(config.accounts.is_empty());
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let mut text = DEFAULT_CONFIG.to_string();
        text = text.replacen("vcpus = 64", "vcpus = \"many\"", 1);
        let error = Config::from_toml(&text).unwrap_err();
        assert_eq!(error.key, "hosts[0].vcpus");
        assert!(error.reason.contains("invalid type"), "{}", error.reason);
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let error = Config::from_toml(&format!("lisen = 1\n{DEFAULT_CONFIG}")).unwrap_err();
        assert!(error.reason.contains("unknown field `lisen`"), "{error}");
    }

    #[test]
    fn a_bad_account_id_names_the_account() {
        let text = format!(
            "{DEFAULT_CONFIG}\n[[accounts]]\nid = \"12345\"\nname = \"x\"\naccess_key_id = \"AKIDEXAMPLE00000\"\nsecret_access_key = \"0123456789abcdef\"\n"
        );
        let error = Config::from_toml(&text).unwrap_err();
        assert_eq!(error.key, "accounts[0].id");
        assert!(error.to_string().contains("12 digits"));
    }

    #[test]
    fn environment_overrides_single_settings() {
        let env = |name: &str| match name {
            "EC2_GATEWAY_LISTEN" => Some("127.0.0.1:0".to_string()),
            "EC2_GATEWAY_REGION" => Some("eu-west-2".to_string()),
            _ => None,
        };
        let config = Config::load(None, env).unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.region, "eu-west-2");
        let bad =
            |name: &str| (name == "EC2_GATEWAY_LIVENESS_WINDOW_SECS").then(|| "soon".to_string());
        assert_eq!(
            Config::load(None, bad).unwrap_err().key,
            "EC2_GATEWAY_LIVENESS_WINDOW_SECS"
        );
    }

    /// Issue 10 (finding 4): a file is the embedded default plus its changes.
    #[test]
    fn a_file_changes_only_what_it_names() {
        let config =
            Config::from_toml("listen = \"127.0.0.1:9999\"\n[quotas]\nmax_instances = 7\n")
                .unwrap();
        assert_eq!(config.region, "us-east-1");
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.quotas.max_instances, 7);
        assert_eq!(config.quotas.max_vcpus, Quotas::default().max_vcpus);
        assert_eq!(config.hosts.len(), 6, "the built-in hosts");
        let agents_only = Config::from_toml("hosts = []\n").unwrap();
        assert!(agents_only.hosts.is_empty());
        let one_host = Config::from_toml(
            "[[hosts]]\nname = \"h\"\navailability_zone = \"us-east-1d\"\nvcpus = 2\nmemory_mib = 1024\n",
        )
        .unwrap();
        assert_eq!(one_host.hosts.len(), 1, "a list replaces the default's");
        let broken = Config::from_toml("listen = ").unwrap_err();
        assert!(!broken.reason.is_empty());
        // The built-in hosts follow the region, from the file or the environment.
        let west = Config::from_toml("region = \"eu-west-1\"\n").unwrap();
        assert!(west
            .hosts
            .iter()
            .all(|h| h.availability_zone.starts_with("eu-west-1")));
        let env = |name: &str| (name == "EC2_GATEWAY_REGION").then(|| "ap-south-1".to_string());
        let from_env = Config::load(None, env).unwrap();
        assert!(from_env
            .hosts
            .iter()
            .all(|h| h.availability_zone.starts_with("ap-south-1")));
    }

    #[test]
    fn builtin_hosts_are_the_embedded_defaults() {
        let text: toml::Table = DEFAULT_CONFIG.parse().unwrap();
        let listed: Vec<HostConfig> = text["hosts"].clone().try_into().unwrap();
        assert_eq!(listed, builtin_hosts("us-east-1"));
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../fixtures/example-config.toml");
        let config = Config::from_toml(text).unwrap();
        assert!(config.accounts.iter().any(|a| a.admin));
    }
}
