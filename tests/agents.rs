//! Compute agents as processes of their own (`ec2-gateway agent`) against
//! a gateway process on sled, as they would against a cluster: the test
//! starts and stops both (by PID).
//!
//! An agent registers its host (its zone appears), its instances change
//! state only when it reports them (frozen with SIGSTOP, they stay
//! pending), its death turns its zone `unavailable` and its running
//! instances `impaired` within the liveness window, and started again it
//! takes its instances back. Its key acts for its host alone.

mod common;

use common::process::{AgentProcess, GatewayProcess};
use common::*;
use ec2_gateway::auth::signer::SigningCredentials;
use ec2_gateway::client::{self, text_of, Endpoint, Reply};
use ec2_gateway::secret::Secret;
use std::time::Duration;

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

fn config_text(data_dir: &std::path::Path) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
operator_listen = "127.0.0.1:0"
data_dir = "{data_dir}"
region = "us-east-1"
liveness_window_secs = 3
heartbeat_interval_secs = 1

[rate_limits]
enabled = false

[lifecycle]
boot_delay_secs = 0
stop_delay_secs = 0
terminate_delay_secs = 0

[quotas]
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

[[hosts]]
name = "node-a1"
availability_zone = "us-east-1a"
vcpus = 16
memory_mib = 65536
"#,
        data_dir = data_dir.display()
    )
}

async fn send(
    endpoint: &Endpoint,
    who: &SigningCredentials,
    action: &str,
    params: &[(&str, &str)],
) -> Reply {
    client::call(endpoint, who, action, params).await.unwrap()
}

/// Polls until `check` holds of `action`'s answer (at most 15 s).
async fn eventually(
    endpoint: &Endpoint,
    who: &SigningCredentials,
    action: &str,
    params: &[(&str, &str)],
    what: &str,
    check: impl Fn(&Reply) -> bool,
) -> Reply {
    for _ in 0..150 {
        let reply = send(endpoint, who, action, params).await;
        if check(&reply) {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never happened");
}

fn zone_state(reply: &Reply, zone: &str) -> Option<String> {
    items(reply, "availabilityZoneInfo")
        .into_iter()
        .find(|z| z.get("zoneName").map(String::as_str) == Some(zone))
        .and_then(|mut z| z.remove("zoneState"))
}

/// The `status` of the first `summary` (`instanceStatus`, `systemStatus`)
/// in a DescribeInstanceStatus answer.
fn summary_status(reply: &Reply, summary: &str) -> String {
    reply
        .body
        .split(&format!("<{summary}>"))
        .nth(1)
        .and_then(|rest| text_of(rest, "status"))
        .unwrap_or_default()
}

/// The state name of the first instance in a DescribeInstances answer.
fn instance_state(reply: &Reply) -> String {
    reply
        .body
        .split("<instanceState>")
        .nth(1)
        .and_then(|rest| text_of(rest, "name"))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_runs_its_host_and_its_death_shows() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, config_text(&dir.path().join("data"))).unwrap();
    let gateway = GatewayProcess::start(&config);
    let endpoint = gateway.endpoint.clone();
    let url = format!("http://{}", endpoint.authority);

    // The operator makes the agent's key.
    let created = send(
        &endpoint,
        &admin(),
        "AdminCreateAgentKey",
        &[("HostName", "node-d1")],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let key_id = text_of(&created.body, "accessKeyId").unwrap();
    let secret = text_of(&created.body, "secretAccessKey").unwrap();
    let agent_key = SigningCredentials {
        access_key_id: key_id.clone(),
        secret: Secret::new(secret.clone()),
        region: "us-east-1".into(),
        service: "ec2".into(),
    };
    let args = [
        "--endpoint",
        url.as_str(),
        "--zone",
        "us-east-1d",
        "--vcpus",
        "8",
        "--memory-mib",
        "16384",
        "--address",
        "10.9.0.4:7000",
        "--heartbeat-secs",
        "1",
        "--poll-millis",
        "100",
        "--transition-millis",
        "200",
    ];
    let mut agent = AgentProcess::start(&args, (&key_id, &secret));

    // Registered: its zone is there and available; the admin sees it.
    eventually(
        &endpoint,
        &user(),
        "DescribeAvailabilityZones",
        &[],
        "the agent's zone appearing",
        |r| zone_state(r, "us-east-1d").as_deref() == Some("available"),
    )
    .await;
    let hosts = send(&endpoint, &admin(), "AdminDescribeHosts", &[]).await;
    let d1 = items(&hosts, "hostSet")
        .into_iter()
        .find(|h| h.get("hostName").map(String::as_str) == Some("node-d1"))
        .expect("node-d1 listed");
    assert_eq!(d1["agentAddress"], "10.9.0.4:7000");
    assert_eq!(d1["agentVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(d1["simulated"], "false");

    // A built-in host is not an agent's to take.
    let taken = send(
        &endpoint,
        &admin(),
        "AdminCreateAgentKey",
        &[("HostName", "node-a1")],
    )
    .await;
    assert_eq!(
        error_code(&taken),
        "InvalidParameterValue",
        "{}",
        taken.body
    );

    // Its key acts for its host alone; no other key calls agent actions.
    let refused = send(&endpoint, &agent_key, "DescribeInstances", &[]).await;
    assert_eq!(error_code(&refused), "UnauthorizedOperation");
    assert_eq!(refused.status, 403);
    let refused = send(&endpoint, &user(), "AgentHeartbeat", &[]).await;
    assert_eq!(error_code(&refused), "UnauthorizedOperation");
    let refused = send(&endpoint, &admin(), "AgentDescribeInstances", &[]).await;
    assert_eq!(error_code(&refused), "UnauthorizedOperation");

    // Launched into its zone: running once the agent reports it.
    let run = send(
        &endpoint,
        &user(),
        "RunInstances",
        &[
            ("ImageId", IMAGE),
            ("InstanceType", "t3.micro"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("Placement.AvailabilityZone", "us-east-1d"),
        ],
    )
    .await;
    assert_eq!(run.status, 200, "{}", run.body);
    let id = column(&run, "instancesSet", "instanceId").remove(0);
    let by_id = [("InstanceId.1", id.as_str())];
    eventually(
        &endpoint,
        &user(),
        "DescribeInstances",
        &by_id,
        "running",
        |r| instance_state(r) == "running",
    )
    .await;

    // An instance elsewhere is not the agent's to report.
    let other = send(
        &endpoint,
        &user(),
        "RunInstances",
        &[
            ("ImageId", IMAGE),
            ("InstanceType", "t3.micro"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("Placement.AvailabilityZone", "us-east-1a"),
        ],
    )
    .await;
    let other_id = column(&other, "instancesSet", "instanceId").remove(0);
    let foreign = send(
        &endpoint,
        &agent_key,
        "AgentReportInstanceState",
        &[
            ("InstanceId", other_id.as_str()),
            ("OwnerId", USER_ACCOUNT),
            ("State", "terminated"),
        ],
    )
    .await;
    assert_eq!(error_code(&foreign), "InvalidInstanceID.NotFound");

    // Frozen, the agent reports nothing: a new launch stays pending (a
    // built-in host's would be running at once: boot_delay_secs = 0)...
    agent.signal("-STOP");
    let frozen = send(
        &endpoint,
        &user(),
        "RunInstances",
        &[
            ("ImageId", IMAGE),
            ("InstanceType", "t3.micro"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("Placement.AvailabilityZone", "us-east-1d"),
        ],
    )
    .await;
    assert_eq!(frozen.status, 200, "{}", frozen.body);
    let frozen_id = column(&frozen, "instancesSet", "instanceId").remove(0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let still = send(
        &endpoint,
        &user(),
        "DescribeInstances",
        &[("InstanceId.1", frozen_id.as_str())],
    )
    .await;
    assert_eq!(instance_state(&still), "pending");
    // ...until it goes on.
    agent.signal("-CONT");
    eventually(
        &endpoint,
        &user(),
        "DescribeInstances",
        &[("InstanceId.1", frozen_id.as_str())],
        "the thawed agent's report",
        |r| instance_state(r) == "running",
    )
    .await;

    // Dead: within the liveness window its zone is unavailable and its
    // running instances impaired.
    agent.kill();
    eventually(
        &endpoint,
        &user(),
        "DescribeAvailabilityZones",
        &[],
        "the dead agent's zone turning unavailable",
        |r| zone_state(r, "us-east-1d").as_deref() == Some("unavailable"),
    )
    .await;
    let status = send(&endpoint, &user(), "DescribeInstanceStatus", &by_id).await;
    assert_eq!(summary_status(&status, "instanceStatus"), "impaired");
    assert_eq!(summary_status(&status, "systemStatus"), "impaired");
    let healthy = send(
        &endpoint,
        &user(),
        "DescribeInstanceStatus",
        &[("InstanceId.1", other_id.as_str())],
    )
    .await;
    assert_eq!(summary_status(&healthy, "instanceStatus"), "ok");
    // Terminated while its host is dead: the gateway completes it itself
    // (its record wins; the agent finds the instance gone).
    let terminate = send(&endpoint, &user(), "TerminateInstances", &by_id).await;
    assert_eq!(terminate.status, 200, "{}", terminate.body);
    eventually(
        &endpoint,
        &user(),
        "DescribeInstances",
        &by_id,
        "the termination on a dead host completing",
        |r| instance_state(r) == "terminated",
    )
    .await;

    // Started again, it takes its instances back.
    let _agent = AgentProcess::start(&args, (&key_id, &secret));
    eventually(
        &endpoint,
        &user(),
        "DescribeAvailabilityZones",
        &[],
        "the zone coming back",
        |r| zone_state(r, "us-east-1d").as_deref() == Some("available"),
    )
    .await;
    let status = send(
        &endpoint,
        &user(),
        "DescribeInstanceStatus",
        &[("InstanceId.1", frozen_id.as_str())],
    )
    .await;
    assert_eq!(summary_status(&status, "instanceStatus"), "ok");
    // The host books exactly the one instance it still runs.
    let hosts = send(&endpoint, &admin(), "AdminDescribeHosts", &[]).await;
    let d1 = items(&hosts, "hostSet")
        .into_iter()
        .find(|h| h.get("hostName").map(String::as_str) == Some("node-d1"))
        .unwrap();
    assert_eq!(d1["vcpusUsed"], "2");
    drop(gateway);
}
