//! Several gateways on one etcd cluster (cargo feature `etcd`): three real
//! etcd members and two `ec2-gateway serve` processes, started and stopped
//! by the test (by PID).
//!
//! Concurrent clients spread RunInstances (with and without ClientTokens),
//! TerminateInstances and CreateTags over both gateways; mid-load, one
//! gateway and the etcd leader are killed with SIGKILL. Afterwards every
//! answered write is in the store, each host books exactly what its
//! instances take, quotas held, the surviving gateway answered only EC2
//! XML (a brief run of 503s at most while etcd elected a new leader), a
//! restarted gateway rejoins, and 50 concurrent retries of one ClientToken
//! split over both gateways give one reservation.

#![cfg(feature = "etcd")]

mod common;

use common::etcd::{etcd_binary, EtcdCluster};
use common::process::{AgentProcess, GatewayProcess};
use common::*;
use ec2_gateway::client::{self, Endpoint, Reply};
use ec2_gateway::clock::SystemClock;
use ec2_gateway::compute::instances::InstanceState;
use ec2_gateway::compute::Compute;
use ec2_gateway::config::Config;
use ec2_gateway::store::{EtcdStore, StoreHandle};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";
const PREFIX: &str = "cluster-test/";

/// Simulated hosts inside the gateways (the cluster test runs agents instead).
const BUILT_IN_HOSTS: &str = r#"
[[hosts]]
name = "node-a1"
availability_zone = "us-east-1a"
vcpus = 16
memory_mib = 65536

[[hosts]]
name = "node-a2"
availability_zone = "us-east-1a"
vcpus = 16
memory_mib = 65536

[[hosts]]
name = "node-b1"
availability_zone = "us-east-1b"
vcpus = 16
memory_mib = 65536

[[hosts]]
name = "node-c1"
availability_zone = "us-east-1c"
vcpus = 16
memory_mib = 65536
"#;

/// No host of the gateways' own: every host is an agent process.
const AGENT_HOSTS_ONLY: &str = "hosts = []";

/// The gateways' configuration: the test accounts and `hosts`, on etcd.
fn config_text(data_dir: &std::path::Path, endpoints: &[String], hosts: &str) -> String {
    let endpoints = endpoints
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
listen = "127.0.0.1:0"
operator_listen = "127.0.0.1:0"
data_dir = "{data_dir}"
storage = "etcd"
region = "us-east-1"
{hosts_line}
liveness_window_secs = 60
heartbeat_interval_secs = 5

[etcd]
endpoints = [{endpoints}]
prefix = "{PREFIX}"
lease_ttl_secs = 3

[rate_limits]
enabled = false

[lifecycle]
boot_delay_secs = 1
stop_delay_secs = 1
terminate_delay_secs = 1

[quotas]
max_instances = 40
max_vcpus = 200
max_fleet_share_percent = 100

[[accounts]]
id = "{ADMIN_ACCOUNT}"
name = "operator"
admin = true
access_key_id = "{ADMIN_KEY}"
secret_access_key = "{ADMIN_SECRET}"

[[accounts]]
id = "{USER_ACCOUNT}"
name = "alice"
access_key_id = "{USER_KEY}"
secret_access_key = "{USER_SECRET}"

"#,
        data_dir = data_dir.display(),
        hosts_line = if hosts == AGENT_HOSTS_ONLY { hosts } else { "" },
    ) + if hosts == AGENT_HOSTS_ONLY { "" } else { hosts }
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Instance ids answered by a RunInstances, with the account.
    launched: BTreeSet<String>,
    /// Instance ids answered by a TerminateInstances.
    terminated: BTreeSet<String>,
    /// (instance, tag key, value) answered by a CreateTags.
    tagged: Vec<(String, String, String)>,
    /// 503s answered by the surviving gateway.
    unavailable: usize,
    /// Requests sent to the killed gateway that got no answer.
    lost_connections: usize,
}

/// Sends `action` to gateway `first` (or the other when it is down),
/// retrying 503s a few times as SDKs do. Every answer must be EC2 XML, and
/// never a 500.
async fn send(
    gateways: &[Endpoint; 2],
    a_down: &AtomicBool,
    first: usize,
    action: &str,
    params: &[(&str, &str)],
    seen: &Mutex<Seen>,
) -> Option<Reply> {
    let mut target = if a_down.load(Ordering::SeqCst) {
        1
    } else {
        first
    };
    for attempt in 0..12 {
        match client::call(&gateways[target], &user(), action, params).await {
            Ok(reply) => {
                if reply.status != 200 {
                    assert_error_document(&reply.body);
                    assert_ne!(reply.status, 500, "{action}: {}", reply.body);
                }
                if reply.status == 503 {
                    seen.lock().unwrap().unavailable += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
                    continue;
                }
                return Some(reply);
            }
            Err(_) if target == 0 => {
                // The gateway died (or is dying): the client moves on to
                // the other one, as behind a load balancer.
                seen.lock().unwrap().lost_connections += 1;
                target = 1;
            }
            Err(error) => panic!("the surviving gateway did not answer {action}: {error}"),
        }
    }
    panic!("{action}: still unavailable after 12 attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_three_etcd_members_survive_kills() {
    let Some(binary) = etcd_binary("two_gateways_on_three_etcd_members_survive_kills") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let mut cluster = EtcdCluster::start(&binary, 3);
    let dir = tempfile::tempdir().unwrap();
    let text_a = config_text(
        &dir.path().join("a"),
        &cluster.endpoints(),
        AGENT_HOSTS_ONLY,
    );
    let text_b = config_text(
        &dir.path().join("b"),
        &cluster.endpoints(),
        AGENT_HOSTS_ONLY,
    );
    std::fs::write(dir.path().join("a.toml"), &text_a).unwrap();
    std::fs::write(dir.path().join("b.toml"), &text_b).unwrap();
    let mut gateway_a = GatewayProcess::start(&dir.path().join("a.toml"));
    let gateway_b = GatewayProcess::start(&dir.path().join("b.toml"));
    let gateways = Arc::new([gateway_a.endpoint.clone(), gateway_b.endpoint.clone()]);
    // Three agents, one host of 16 vCPUs in each zone, each told of both
    // gateways (it moves to the other when one does not answer).
    let both = format!(
        "http://{},http://{}",
        gateways[0].authority, gateways[1].authority
    );
    let mut agents = Vec::new();
    for zone in ["us-east-1a", "us-east-1b", "us-east-1c"] {
        let host = format!("agent-{zone}");
        let created = client::call(
            &gateways[1],
            &admin(),
            "AdminCreateAgentKey",
            &[("HostName", &host)],
        )
        .await
        .unwrap();
        assert_eq!(created.status, 200, "{}", created.body);
        let key = client::text_of(&created.body, "accessKeyId").unwrap();
        let secret = client::text_of(&created.body, "secretAccessKey").unwrap();
        agents.push(AgentProcess::start(
            &[
                "--endpoint",
                &both,
                "--zone",
                zone,
                "--vcpus",
                "16",
                "--memory-mib",
                "65536",
                "--heartbeat-secs",
                "1",
                "--poll-millis",
                "100",
                "--transition-millis",
                "300",
            ],
            (&key, &secret),
        ));
    }
    for _ in 0..200 {
        let zones = client::call(&gateways[0], &user(), "DescribeAvailabilityZones", &[])
            .await
            .unwrap();
        if zones
            .body
            .matches("<zoneState>available</zoneState>")
            .count()
            == 3
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a_down = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let operations = Arc::new(AtomicUsize::new(0));

    // Read-your-writes across replicas: launched at A, seen at B at once.
    let first = client::call(
        &gateways[0],
        &user(),
        "RunInstances",
        &[
            ("ImageId", IMAGE),
            ("InstanceType", "t3.micro"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(first.status, 200, "{}", first.body);
    let first_id = column(&first, "instancesSet", "instanceId").remove(0);
    let at_b = client::call(
        &gateways[1],
        &user(),
        "DescribeInstances",
        &[("InstanceId.1", &first_id)],
    )
    .await
    .unwrap();
    assert_eq!(at_b.status, 200, "{}", at_b.body);
    seen.lock().unwrap().launched.insert(first_id.clone());

    // The load: 6 clients, each alternating between the gateways.
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let (gateways, a_down, seen, operations) = (
                gateways.clone(),
                a_down.clone(),
                seen.clone(),
                operations.clone(),
            );
            tokio::spawn(async move {
                let mut mine: Vec<String> = Vec::new();
                for n in 0..30usize {
                    operations.fetch_add(1, Ordering::SeqCst);
                    let first = (c + n) % 2;
                    match n % 3 {
                        0 => {
                            let token = format!("client-{c}-{n}");
                            let mut params = vec![
                                ("ImageId", IMAGE),
                                ("InstanceType", "t3.micro"),
                                ("MinCount", "1"),
                                ("MaxCount", "2"),
                            ];
                            if n % 2 == 0 {
                                params.push(("ClientToken", &token));
                            }
                            let Some(reply) =
                                send(&gateways, &a_down, first, "RunInstances", &params, &seen)
                                    .await
                            else {
                                continue;
                            };
                            if reply.status == 200 {
                                let ids = column(&reply, "instancesSet", "instanceId");
                                seen.lock().unwrap().launched.extend(ids.iter().cloned());
                                mine.extend(ids);
                            } else {
                                let code = error_code(&reply);
                                assert!(
                                    [
                                        "InsufficientInstanceCapacity",
                                        "InstanceLimitExceeded",
                                        "VcpuLimitExceeded"
                                    ]
                                    .contains(&code.as_str()),
                                    "{code}: {}",
                                    reply.body
                                );
                            }
                        }
                        1 => {
                            let Some(id) = mine.last().cloned() else {
                                continue;
                            };
                            let value = format!("{c}-{n}");
                            let params = [
                                ("ResourceId.1", id.as_str()),
                                ("Tag.1.Key", "step"),
                                ("Tag.1.Value", value.as_str()),
                            ];
                            if let Some(reply) =
                                send(&gateways, &a_down, first, "CreateTags", &params, &seen).await
                            {
                                assert_eq!(reply.status, 200, "{}", reply.body);
                                seen.lock().unwrap().tagged.push((id, "step".into(), value));
                            }
                        }
                        _ => {
                            if mine.len() < 3 {
                                continue;
                            }
                            let id = mine.remove(0);
                            let params = [("InstanceId.1", id.as_str())];
                            if let Some(reply) = send(
                                &gateways,
                                &a_down,
                                first,
                                "TerminateInstances",
                                &params,
                                &seen,
                            )
                            .await
                            {
                                assert_eq!(reply.status, 200, "{}", reply.body);
                                seen.lock().unwrap().terminated.insert(id);
                            }
                        }
                    }
                }
            })
        })
        .collect();

    // Mid-load: gateway A and the etcd leader die.
    while operations.load(Ordering::SeqCst) < 40 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a_down.store(true, Ordering::SeqCst);
    gateway_a.kill();
    let leader = cluster.leader();
    cluster.kill(leader);
    for task in clients {
        task.await.unwrap();
    }

    // A gateway started again rejoins, and the two together give one
    // reservation to 50 concurrent retries of one ClientToken (once the
    // load's instances have given their capacity back).
    let gateway_a = GatewayProcess::start(&dir.path().join("a.toml"));
    let gateways = [gateway_a.endpoint.clone(), gateway_b.endpoint.clone()];
    let live: Vec<String> = seen
        .lock()
        .unwrap()
        .launched
        .iter()
        .filter(|id| **id != first_id)
        .cloned()
        .collect();
    for chunk in live.chunks(8) {
        let names: Vec<String> = (1..=chunk.len())
            .map(|n| format!("InstanceId.{n}"))
            .collect();
        let params: Vec<(&str, &str)> = names
            .iter()
            .map(String::as_str)
            .zip(chunk.iter().map(String::as_str))
            .collect();
        let reply = client::call(&gateways[0], &user(), "TerminateInstances", &params)
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    for _ in 0..300 {
        let reply = client::call(
            &gateways[1],
            &user(),
            "DescribeInstances",
            &[
                ("Filter.1.Name", "instance-state-name"),
                ("Filter.1.Value.1", "shutting-down"),
            ],
        )
        .await
        .unwrap();
        if !reply.body.contains("<instanceId>") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let retries: Vec<_> = (0..50)
        .map(|n| {
            let endpoint = gateways[n % 2].clone();
            tokio::spawn(async move {
                loop {
                    let reply = client::call(
                        &endpoint,
                        &user(),
                        "RunInstances",
                        &[
                            ("ImageId", IMAGE),
                            ("InstanceType", "t3.micro"),
                            ("MinCount", "1"),
                            ("MaxCount", "1"),
                            ("ClientToken", "one-token-fifty-retries"),
                        ],
                    )
                    .await
                    .unwrap();
                    if reply.status == 503 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    assert_eq!(reply.status, 200, "{}", reply.body);
                    return column(&reply, "instancesSet", "instanceId");
                }
            })
        })
        .collect();
    let mut answers = BTreeSet::new();
    for retry in retries {
        answers.insert(retry.await.unwrap());
    }
    assert_eq!(answers.len(), 1, "one reservation: {answers:?}");

    // The lifecycle goes on from a surviving driver: the first instance runs.
    let mut running = false;
    for _ in 0..300 {
        let reply = client::call(
            &gateways[1],
            &user(),
            "DescribeInstances",
            &[("InstanceId.1", &first_id)],
        )
        .await
        .unwrap();
        if reply.body.contains("<name>running</name>") {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(running, "{first_id} never ran after the kills");

    // A listing of everything on one gateway (which keeps it, see
    // `compute::instance_index`) shows at once what the other changed.
    for (n, (lister, writer)) in [(1, 0), (0, 1)].into_iter().enumerate() {
        let all = client::call(&gateways[lister], &user(), "DescribeInstances", &[])
            .await
            .unwrap();
        assert_eq!(all.status, 200, "{}", all.body);
        let value = format!("seen-{n}");
        let tagged = client::call(
            &gateways[writer],
            &user(),
            "CreateTags",
            &[
                ("ResourceId.1", &first_id),
                ("Tag.1.Key", "listing"),
                ("Tag.1.Value", &value),
            ],
        )
        .await
        .unwrap();
        assert_eq!(tagged.status, 200, "{}", tagged.body);
        let again = client::call(&gateways[lister], &user(), "DescribeInstances", &[])
            .await
            .unwrap();
        assert!(
            again.body.contains(&format!("<value>{value}</value>")),
            "gateway {lister} listed without the tag gateway {writer} wrote"
        );
    }

    // What the store holds, read by a core of the test's own.
    let config = Config::from_toml(&text_b).unwrap();
    let store = Arc::new(StoreHandle::new(Arc::new(
        EtcdStore::connect(&config.etcd).await.unwrap(),
    )));
    let core = Compute::open(&config, store, Arc::new(SystemClock))
        .await
        .unwrap();
    let instances = core.instances(USER_ACCOUNT, &[], None).await.unwrap();
    let by_id: BTreeMap<&str, _> = instances.iter().map(|i| (i.id.as_str(), i)).collect();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    for id in &seen.launched {
        assert!(
            by_id.contains_key(id.as_str()),
            "{id} was answered but is gone"
        );
    }
    for id in &seen.terminated {
        let state = by_id[id.as_str()].state;
        assert!(
            matches!(
                state,
                InstanceState::ShuttingDown | InstanceState::Terminated
            ),
            "{id} answered terminated is {state:?}"
        );
    }
    // Each client tags only its own instances, one request after the
    // other: the last value answered is the one kept.
    let mut last_tag: BTreeMap<&str, &str> = BTreeMap::new();
    for (id, _, value) in &seen.tagged {
        last_tag.insert(id, value);
    }
    for (id, value) in last_tag {
        let tags: Vec<(&str, &str)> = by_id[id]
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        assert!(
            tags.contains(&("step", value)),
            "{id}: {tags:?}, not step={value}"
        );
    }
    // Capacity booked exactly once; quotas held.
    for host in core.services().hosts().await.unwrap() {
        let holding: u32 = instances
            .iter()
            .filter(|i| i.host.as_deref() == Some(host.host.as_str()))
            .map(|i| i.vcpus)
            .sum();
        assert_eq!(host.vcpus_used, holding, "vCPUs booked on {}", host.host);
        assert!(host.vcpus_used <= host.vcpus);
    }
    let live = instances
        .iter()
        .filter(|i| i.state != InstanceState::Terminated)
        .count();
    assert!(live <= 40, "{live} instances over the quota of 40");
    println!(
        "cluster: {} launched, {} terminated, {} tagged; {} answers were 503 at the survivor, {} requests lost with the killed gateway",
        seen.launched.len(),
        seen.terminated.len(),
        seen.tagged.len(),
        seen.unavailable,
        seen.lost_connections
    );
    assert!(seen.launched.len() > 10, "the load launched instances");
    // Every host's used capacity is what its instances take, and each
    // agent runs what is placed on it.
    assert_eq!(core.services().hosts().await.unwrap().len(), 3);
    drop(agents);
    drop(gateway_a);
    drop(gateway_b);
    drop(cluster);
}

/// Runs a client script of tests/e2e against gateways A and B as the test
/// user; a SKIPPED line instead when the client is not installed and
/// not required.
fn client_script(program: &str, probe: &[&str], script: &str, a: &str, b: &str) {
    let installed = Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert!(
            std::env::var("EC2_GATEWAY_E2E_REQUIRED").map_or(true, |v| v != "1"),
            "{program} is required (EC2_GATEWAY_E2E_REQUIRED=1) but not installed"
        );
        println!("SKIPPED {script}: {program} is not installed");
        return;
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e")
        .join(script);
    let output = Command::new(program)
        .arg(&path)
        .env("EC2_GATEWAY_ENDPOINT_A", a)
        .env("EC2_GATEWAY_ENDPOINT_B", b)
        .env("AWS_ACCESS_KEY_ID", USER_KEY)
        .env("AWS_SECRET_ACCESS_KEY", USER_SECRET)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.contains("all checks passed"),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// boto3 and the AWS CLI, unchanged, against two gateways alternately.
#[test]
fn real_clients_against_two_gateways_alternately() {
    let Some(binary) = etcd_binary("real_clients_against_two_gateways_alternately") else {
        return;
    };
    let cluster = EtcdCluster::start(&binary, 3);
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        std::fs::write(
            dir.path().join(format!("{name}.toml")),
            config_text(&dir.path().join(name), &cluster.endpoints(), BUILT_IN_HOSTS),
        )
        .unwrap();
    }
    let a = GatewayProcess::start(&dir.path().join("a.toml"));
    let b = GatewayProcess::start(&dir.path().join("b.toml"));
    let (url_a, url_b) = (
        format!("http://{}", a.endpoint.authority),
        format!("http://{}", b.endpoint.authority),
    );
    client_script(
        "python3",
        &["-c", "import boto3"],
        "boto3_two_gateways.py",
        &url_a,
        &url_b,
    );
    client_script(
        "bash",
        &["-c", "command -v aws"],
        "aws_two_gateways.sh",
        &url_a,
        &url_b,
    );
    drop(a);
    drop(b);
    drop(cluster);
}
