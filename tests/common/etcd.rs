//! Real etcd members for the tests: a cluster of one or three `etcd`
//! processes on loopback ports, each in its own folder of a temporary
//! directory, started by the test and stopped by it (by PID, on drop or
//! when a test kills one). Debian's `etcd-server` provides the binary;
//! without it a test prints a SKIPPED line, unless
//! `EC2_GATEWAY_E2E_REQUIRED=1` (set by `.ci/run`, which installs it).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd binary, or `None` (after a SKIPPED line) when it is missing
/// and not required.
pub fn etcd_binary(test: &str) -> Option<PathBuf> {
    for candidate in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
        let path = PathBuf::from(candidate);
        if path.exists() {
            return Some(path);
        }
    }
    if std::env::var("EC2_GATEWAY_E2E_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("etcd is required (EC2_GATEWAY_E2E_REQUIRED=1) but not installed: apt-get install etcd-server");
    }
    println!("SKIPPED {test}: etcd is not installed (apt-get install etcd-server etcd-client)");
    None
}

/// A free loopback port for a member to bind next. Drawn below the
/// kernel's ephemeral range (32768 and up here), so that processes binding
/// port 0 meanwhile (gateways, clients) cannot take it, and never the same
/// twice in one test process.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = 20_000 + (rand::random::<u16>() % 12_000);
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
}

/// One member: its ports, folder and process.
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    process: Option<Child>,
}

impl Member {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }
}

/// A cluster the test started.
pub struct EtcdCluster {
    binary: PathBuf,
    dir: tempfile::TempDir,
    pub members: Vec<Member>,
    max_txn_ops: usize,
}

/// The `--max-txn-ops` of a cluster started with [`EtcdCluster::start`]
/// (etcd's own default).
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

impl EtcdCluster {
    /// Starts `size` members with etcd's default limits and waits until
    /// the cluster has a leader and answers.
    pub fn start(binary: &Path, size: usize) -> Self {
        Self::start_with(binary, size, DEFAULT_MAX_TXN_OPS)
    }

    /// [`EtcdCluster::start`] with members started with `--max-txn-ops`.
    pub fn start_with(binary: &Path, size: usize, max_txn_ops: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                process: None,
            })
            .collect();
        let mut cluster = Self {
            binary: binary.to_path_buf(),
            dir,
            members,
            max_txn_ops,
        };
        for i in 0..size {
            cluster.spawn(i, true);
        }
        cluster.wait_ready(Duration::from_secs(30));
        cluster
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, index: usize, new: bool) {
        let initial = self.initial_cluster();
        let member = &self.members[index];
        let folder = self.dir.path().join(&member.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", member.name)))
            .unwrap();
        let child = Command::new(&self.binary)
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(&folder)
            .arg("--listen-client-urls")
            .arg(member.endpoint())
            .arg("--advertise-client-urls")
            .arg(member.endpoint())
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{}", member.peer_port))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://127.0.0.1:{}", member.peer_port))
            .arg("--initial-cluster")
            .arg(initial)
            .arg("--initial-cluster-state")
            .arg(if new { "new" } else { "existing" })
            .arg("--initial-cluster-token")
            .arg("ec2-gateway-test")
            .arg("--max-txn-ops")
            .arg(self.max_txn_ops.to_string())
            .arg("--logger")
            .arg("zap")
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[index].process = Some(child);
    }

    /// The client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// The members' client URLs joined by commas (`EC2_GATEWAY_ETCD_ENDPOINTS`).
    pub fn endpoint_list(&self) -> String {
        self.endpoints().join(",")
    }

    /// Waits until every running member answers a linearizable read.
    pub fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for member in self.members.iter().filter(|m| m.is_running()) {
            loop {
                let answered = Command::new("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .arg("--endpoints")
                    .arg(member.endpoint())
                    .arg("--dial-timeout=1s")
                    .arg("--command-timeout=2s")
                    .arg("get")
                    .arg("ready-probe")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if answered {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd member {} did not become ready: {}",
                    member.name,
                    std::fs::read_to_string(self.dir.path().join(format!("{}.log", member.name)))
                        .unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The index of the member that leads now.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            for (index, member) in self.members.iter().enumerate() {
                if !member.is_running() {
                    continue;
                }
                let output = Command::new("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .arg("--endpoints")
                    .arg(member.endpoint())
                    .arg("endpoint")
                    .arg("status")
                    .arg("--write-out=json")
                    .output();
                let Ok(output) = output else { continue };
                let text = String::from_utf8_lossy(&output.stdout);
                let Ok(status) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                let status = &status[0]["Status"];
                let (me, leader) = (
                    status["header"]["member_id"].as_u64(),
                    status["leader"].as_u64(),
                );
                if me.is_some() && me == leader {
                    return index;
                }
            }
            assert!(Instant::now() < deadline, "no etcd leader");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills member `index` with SIGKILL (by its PID) and reaps it.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].process.take() {
            let _ = Command::new("kill")
                .arg("-9")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// Starts member `index` again on its folder (it rejoins).
    pub fn restart(&mut self, index: usize) {
        assert!(!self.members[index].is_running());
        self.spawn(index, false);
        self.wait_ready(Duration::from_secs(30));
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.kill(index);
        }
    }
}
