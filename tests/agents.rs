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

/// A gateway process on sled in `dir`: it, its endpoint, and its URL for
/// the agent.
fn start_gateway(dir: &std::path::Path) -> (GatewayProcess, Endpoint, String) {
    let config = dir.join("gateway.toml");
    std::fs::write(&config, config_text(&dir.join("data"))).unwrap();
    let gateway = GatewayProcess::start(&config);
    let endpoint = gateway.endpoint.clone();
    let url = format!("http://{}", endpoint.authority);
    (gateway, endpoint, url)
}

/// An agent key for `host`, made by the admin: its id, its secret, and
/// credentials signing with it.
async fn create_agent_key(endpoint: &Endpoint, host: &str) -> (String, String, SigningCredentials) {
    let created = send(
        endpoint,
        &admin(),
        "AdminCreateAgentKey",
        &[("HostName", host)],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let key_id = text_of(&created.body, "accessKeyId").unwrap();
    let secret = text_of(&created.body, "secretAccessKey").unwrap();
    let credentials = SigningCredentials {
        access_key_id: key_id.clone(),
        secret: Secret::new(secret.clone()),
        region: "us-east-1".into(),
        service: "ec2".into(),
    };
    (key_id, secret, credentials)
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
    let (gateway, endpoint, url) = start_gateway(dir.path());

    // The operator makes the agent's key.
    let (key_id, secret, agent_key) = create_agent_key(&endpoint, "node-d1").await;
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

/// What a real-instance agent is told (launch facts, firewall) and sends
/// (console output) concerns instances on its host only; every answer
/// matches schemas/gateway-admin.json.
#[tokio::test]
async fn an_agent_is_told_of_its_own_instances_only() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let dir = tempfile::tempdir().unwrap();
    let (_gateway, endpoint, url) = start_gateway(dir.path());
    let (key_id, secret, agent_key) = create_agent_key(&endpoint, "node-f1").await;
    let args = [
        "--endpoint",
        url.as_str(),
        "--zone",
        "us-east-1f",
        "--vcpus",
        "8",
        "--memory-mib",
        "16384",
        "--heartbeat-secs",
        "1",
        "--poll-millis",
        "100",
        "--transition-millis",
        "100",
    ];
    let mut agent = AgentProcess::start(&args, (&key_id, &secret));
    eventually(
        &endpoint,
        &user(),
        "DescribeAvailabilityZones",
        &[],
        "the agent's zone appearing",
        |r| zone_state(r, "us-east-1f").as_deref() == Some("available"),
    )
    .await;
    let key_pair = send(&endpoint, &user(), "CreateKeyPair", &[("KeyName", "facts")]).await;
    assert_eq!(key_pair.status, 200, "{}", key_pair.body);
    let user_data = b64.encode("#!/bin/sh\necho hi\n");
    let launch = |zone: &'static str| {
        let user_data = user_data.clone();
        let endpoint = endpoint.clone();
        async move {
            let run = send(
                &endpoint,
                &user(),
                "RunInstances",
                &[
                    ("ImageId", IMAGE),
                    ("InstanceType", "t3.micro"),
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("KeyName", "facts"),
                    ("UserData", &user_data),
                    ("Placement.AvailabilityZone", zone),
                ],
            )
            .await;
            assert_eq!(run.status, 200, "{}", run.body);
            (
                column(&run, "instancesSet", "instanceId").remove(0),
                column(&run, "instancesSet", "privateIpAddress").remove(0),
            )
        }
    };
    let (mine, my_address) = launch("us-east-1f").await;
    let (elsewhere, _) = launch("us-east-1a").await;

    let facts = send(
        &endpoint,
        &agent_key,
        "AgentDescribeLaunch",
        &[("InstanceId", &mine), ("OwnerId", USER_ACCOUNT)],
    )
    .await;
    check_reply("AgentDescribeLaunch", &facts);
    assert_eq!(facts.status, 200, "{}", facts.body);
    assert_eq!(text_of(&facts.body, "userData").unwrap(), user_data);
    assert!(text_of(&facts.body, "publicKey")
        .unwrap()
        .starts_with("ssh-rsa "));
    assert_eq!(
        text_of(&facts.body, "privateIpAddress").unwrap(),
        my_address
    );
    let block = text_of(&facts.body, "subnetCidrBlock").unwrap();
    assert!(block.ends_with("/20"), "{block}");
    // The built-in catalogue names no root filesystem.
    assert_eq!(text_of(&facts.body, "rootFilesystem"), None);
    for (action, params) in [
        (
            "AgentDescribeLaunch",
            vec![
                ("InstanceId", elsewhere.as_str()),
                ("OwnerId", USER_ACCOUNT),
            ],
        ),
        (
            "AgentPutConsoleOutput",
            vec![
                ("InstanceId", elsewhere.as_str()),
                ("OwnerId", USER_ACCOUNT),
                ("Output", "aGk="),
            ],
        ),
    ] {
        let refused = send(&endpoint, &agent_key, action, &params).await;
        check_reply(action, &refused);
        assert_eq!(
            error_code(&refused),
            "InvalidInstanceID.NotFound",
            "{action}"
        );
    }
    let refused = send(&endpoint, &user(), "AgentDescribeFirewall", &[]).await;
    assert_eq!(error_code(&refused), "UnauthorizedOperation");

    let firewall = send(&endpoint, &agent_key, "AgentDescribeFirewall", &[]).await;
    check_reply("AgentDescribeFirewall", &firewall);
    let members = items(&firewall, "instanceSet");
    assert_eq!(members.len(), 1, "{}", firewall.body);
    assert_eq!(members[0]["instanceId"], mine);
    let group = members[0]["groupIds"].clone();
    assert!(group.starts_with("sg-"), "{group}");
    // The default group: everything in from its own members, out to all.
    let rules = items(&firewall, "ruleSet");
    assert!(rules.iter().any(|r| r["direction"] == "ingress"
        && r.get("peerGroupId") == Some(&group)
        && r["ipProtocol"] == "-1"));
    assert!(rules
        .iter()
        .any(|r| r["direction"] == "egress"
            && r.get("cidrIp").map(String::as_str) == Some("0.0.0.0/0")));

    // Console output: what the agent sent is what GetConsoleOutput gives,
    // the last 64 KiB of it.
    let mut console = vec![b'x'; 70 * 1024];
    console.extend_from_slice(b"\nthe last line\n");
    let put = send(
        &endpoint,
        &agent_key,
        "AgentPutConsoleOutput",
        &[
            ("InstanceId", &mine),
            ("OwnerId", USER_ACCOUNT),
            ("Output", &b64.encode(&console)),
        ],
    )
    .await;
    check_reply("AgentPutConsoleOutput", &put);
    assert_eq!(put.status, 200, "{}", put.body);
    let shown = send(
        &endpoint,
        &user(),
        "GetConsoleOutput",
        &[("InstanceId", &mine)],
    )
    .await;
    let output = b64.decode(text_of(&shown.body, "output").unwrap()).unwrap();
    assert_eq!(output.len(), 64 * 1024);
    assert!(output.ends_with(b"\nthe last line\n"));
    let bad = send(
        &endpoint,
        &agent_key,
        "AgentPutConsoleOutput",
        &[
            ("InstanceId", &mine),
            ("OwnerId", USER_ACCOUNT),
            ("Output", "%%%"),
        ],
    )
    .await;
    assert_eq!(error_code(&bad), "InvalidParameterValue");

    // Kept layers: a live instance is live, one that does not exist is
    // terminated.
    let live = format!("{USER_ACCOUNT}/{elsewhere}");
    let gone = format!("{USER_ACCOUNT}/i-0123456789abcdef0");
    let kept = send(
        &endpoint,
        &agent_key,
        "AgentDescribeKeptInstances",
        &[("Instance.1", &live), ("Instance.2", &gone)],
    )
    .await;
    check_reply("AgentDescribeKeptInstances", &kept);
    assert_eq!(
        column(&kept, "instanceSet", "instanceState"),
        vec!["running".to_string(), "terminated".to_string()]
    );
    let malformed = send(
        &endpoint,
        &agent_key,
        "AgentDescribeKeptInstances",
        &[("Instance.1", "no-slash")],
    )
    .await;
    assert_eq!(error_code(&malformed), "InvalidParameterValue");

    // A reboot shows in the agent's listing as a grown count.
    let before = send(&endpoint, &agent_key, "AgentDescribeInstances", &[]).await;
    assert_eq!(column(&before, "instanceSet", "rebootCount"), vec!["0"]);
    eventually(
        &endpoint,
        &user(),
        "DescribeInstances",
        &[("InstanceId.1", mine.as_str())],
        "running",
        |r| instance_state(r) == "running",
    )
    .await;
    let reboot = send(
        &endpoint,
        &user(),
        "RebootInstances",
        &[("InstanceId.1", &mine)],
    )
    .await;
    assert_eq!(reboot.status, 200, "{}", reboot.body);
    let after = send(&endpoint, &agent_key, "AgentDescribeInstances", &[]).await;
    check_reply("AgentDescribeInstances", &after);
    assert_eq!(column(&after, "instanceSet", "rebootCount"), vec!["1"]);
    agent.kill();
}
