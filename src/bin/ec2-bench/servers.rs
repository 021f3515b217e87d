//! The servers a benchmark run starts: ec2-gateway (with a benchmark
//! configuration: big hosts, big quotas) on sled or on etcd, etcd members
//! for the cluster mode, moto's server, and the bare-hyper ceiling. Each is
//! a child process on a free loopback port, killed on drop.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The benchmark configuration: sixteen zones (each account's default subnet
/// in a zone holds 4,088 addresses) with one huge host each, quotas out of
/// the way.
const GATEWAY_CONFIG: &str = r#"
listen = "127.0.0.1:0"
operator_listen = "127.0.0.1:0"
data_dir = "DATA_DIR"
region = "us-east-1"
storage = "STORAGE"
# Room for the scale simulation's agents heartbeating every 30 s.
liveness_window_secs = 90
cache_capacity_mib = 32
# Every instance has a root volume (8 GiB).
volume_capacity_gib_per_zone = 1000000000

[quotas]
max_instances = 10000000
max_vcpus = 100000000
max_fleet_share_percent = 100
max_key_pairs = 10000000
max_volumes = 10000000
max_volume_storage_gib = 100000000000

[limits]
max_connections = 4096
max_connections_per_client = 4096

[rate_limits]
enabled = false

[lifecycle]
terminated_retention_secs = RETENTION

[[accounts]]
id = "111122223333"
name = "bench"
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

[[accounts]]
id = "444455556666"
name = "bench-writer"
access_key_id = "AKIDEXAMPLEWRITER"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

[[accounts]]
id = "999988887777"
name = "bench-admin"
access_key_id = "AKIDEXAMPLEADMIN"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
admin = true

FLEET_ACCOUNTS
[[hosts]]
name = "bench-a"
availability_zone = "us-east-1a"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-b"
availability_zone = "us-east-1b"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-c"
availability_zone = "us-east-1c"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-d"
availability_zone = "us-east-1d"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-e"
availability_zone = "us-east-1e"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-f"
availability_zone = "us-east-1f"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-g"
availability_zone = "us-east-1g"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-h"
availability_zone = "us-east-1h"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-i"
availability_zone = "us-east-1i"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-j"
availability_zone = "us-east-1j"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-k"
availability_zone = "us-east-1k"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-l"
availability_zone = "us-east-1l"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-m"
availability_zone = "us-east-1m"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-n"
availability_zone = "us-east-1n"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-o"
availability_zone = "us-east-1o"
vcpus = 1000000
memory_mib = 1000000000

[[hosts]]
name = "bench-p"
availability_zone = "us-east-1p"
vcpus = 1000000
memory_mib = 1000000000
"#;

/// Accounts beside the reader and the writer, for launches spread over
/// tenants (`FLEET_KEY` followed by the account's number).
pub const FLEET_ACCOUNTS: usize = 8;
pub const FLEET_KEY: &str = "AKIDEXAMPLEFLEET";

fn fleet_accounts() -> String {
    (0..FLEET_ACCOUNTS)
        .map(|n| {
            format!(
                "[[accounts]]\nid = \"{}\"\nname = \"bench-fleet-{n}\"\naccess_key_id = \"{FLEET_KEY}{n}\"\nsecret_access_key = \"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\"\n\n",
                500_000_000_000u64 + n as u64
            )
        })
        .collect()
}

/// Where a started gateway keeps its state.
pub enum Storage {
    /// Its own sled folder.
    Sled,
    /// A prefix on etcd members, shared with the other gateways given the
    /// same.
    Etcd {
        endpoints: Vec<String>,
        prefix: String,
    },
}

/// etcd members on loopback ports, each in a folder of its own; killed on
/// drop.
pub struct EtcdMembers {
    children: Vec<Child>,
    pub endpoints: Vec<String>,
    _dir: tempfile::TempDir,
}

impl EtcdMembers {
    /// Starts `count` members of a new cluster (`etcd` from Debian's
    /// etcd-server), with room for a launch of 100 instances per
    /// transaction, and waits until each takes connections.
    pub fn start(count: usize) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ports: Vec<(u16, u16)> = (0..count)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<Result<_, String>>()?;
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(n, (_, peer))| format!("m{n}=http://127.0.0.1:{peer}"))
            .collect();
        let mut members = Self {
            children: Vec::new(),
            endpoints: Vec::new(),
            _dir: dir,
        };
        for (n, (client, peer)) in ports.iter().enumerate() {
            let endpoint = format!("http://127.0.0.1:{client}");
            let child = Command::new("etcd")
                .args(["--name", &format!("m{n}")])
                .arg("--data-dir")
                .arg(members._dir.path().join(format!("m{n}")))
                .args(["--listen-client-urls", &endpoint])
                .args(["--advertise-client-urls", &endpoint])
                .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
                .args([
                    "--initial-advertise-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                ])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "ec2-bench"])
                .args(["--max-txn-ops", "1024"])
                .args(["--logger", "zap", "--log-level", "error"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    format!("cannot start etcd: {e} (apt-get install etcd-server etcd-client)")
                })?;
            members.children.push(child);
            members.endpoints.push(endpoint);
        }
        for (client, _) in &ports {
            wait_for(&format!("127.0.0.1:{client}"))?;
        }
        Ok(members)
    }

    /// The members' PIDs.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for EtcdMembers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A server child process.
pub struct Process {
    child: Child,
    pub authority: String,
    _dir: Option<tempfile::TempDir>,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// ec2-gateway with the benchmark configuration in a fresh data folder,
    /// its state in `storage`.
    pub fn gateway(
        binary: Option<PathBuf>,
        retention_secs: u64,
        storage: &Storage,
    ) -> Result<Self, String> {
        let binary = match binary {
            Some(binary) => binary,
            None => std::env::current_exe()
                .map_err(|e| e.to_string())?
                .with_file_name("ec2-gateway"),
        };
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let config = dir.path().join("bench.toml");
        let mut text = GATEWAY_CONFIG
            .replace("DATA_DIR", &dir.path().join("data").display().to_string())
            .replace("RETENTION", &retention_secs.to_string())
            .replace("FLEET_ACCOUNTS", &fleet_accounts());
        match storage {
            Storage::Sled => text = text.replace("STORAGE", "sled"),
            Storage::Etcd { endpoints, prefix } => {
                text = text.replace("STORAGE", "etcd");
                let endpoints: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
                text.push_str(&format!(
                    "\n[etcd]\nendpoints = [{}]\nprefix = {prefix:?}\nmax_txn_ops = 1024\n",
                    endpoints.join(", ")
                ));
            }
        }
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let mut child = Command::new(&binary)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            // Quiet unless asked (EC2_GATEWAY_BENCH_LOG, e.g. to count
            // commit conflicts while profiling).
            .env(
                "EC2_GATEWAY_LOG",
                std::env::var("EC2_GATEWAY_BENCH_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {}: {e} (build it with cargo build --release, \
                     --features etcd for the cluster mode)",
                    binary.display()
                )
            })?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let authority = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("ec2-gateway listening on http://") {
                        break rest
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string();
                    }
                }
                _ => return Err("ec2-gateway exited before listening".into()),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            child,
            authority,
            _dir: Some(dir),
        })
    }

    /// moto's server (`pip install 'moto[server]'`).
    pub fn moto() -> Result<Self, String> {
        let port = free_port()?;
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start moto_server: {e} (pip install 'moto[server]')"))?;
        let authority = format!("127.0.0.1:{port}");
        wait_for(&authority)?;
        Ok(Self {
            child,
            authority,
            _dir: None,
        })
    }

    /// The bare-hyper ceiling: this binary with `--ceiling-server`,
    /// answering about `bytes` (1 KiB unless given).
    pub fn ceiling(bytes: Option<usize>) -> Result<Self, String> {
        let port = free_port()?;
        let authority = format!("127.0.0.1:{port}");
        let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        command.args(["--ceiling-server", &authority]);
        if let Some(bytes) = bytes {
            command.args(["--ceiling-bytes", &bytes.to_string()]);
        }
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        wait_for(&authority)?;
        Ok(Self {
            child,
            authority,
            _dir: None,
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn wait_for(authority: &str) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(authority).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("nothing listens on {authority} after 30 s"))
}

/// Peak resident memory of a process so far (MiB), from /proc (`VmHWM`).
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// A fixed EC2-shaped XML body of about `bytes` (at least 1 KiB).
fn ceiling_body(bytes: usize) -> Bytes {
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeAvailabilityZonesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\n    <requestId>00000000-0000-0000-0000-000000000000</requestId>\n    <availabilityZoneInfo>\n");
    while body.len() < bytes.max(1000) {
        body.push_str("        <item><zoneName>us-east-1a</zoneName><zoneState>available</zoneState></item>\n");
    }
    body.push_str("    </availabilityZoneInfo>\n</DescribeAvailabilityZonesResponse>\n");
    Bytes::from(body)
}

/// Serves the fixed body (about `bytes`, 1 KiB unless given) to every
/// request, reading (and ignoring) the request's body.
pub async fn serve_ceiling(address: &str, bytes: Option<usize>) {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("bind the ceiling server");
    let body = ceiling_body(bytes.unwrap_or(1000));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        use http_body_util::BodyExt;
                        let _ = request.into_body().collect().await;
                        let mut response = Response::new(Full::new(body));
                        response.headers_mut().insert(
                            "content-type",
                            "text/xml;charset=UTF-8".parse().expect("static header"),
                        );
                        Ok::<_, Infallible>(response)
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
