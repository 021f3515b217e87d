//! Upgrades: a data folder written by an earlier release opens and serves
//! every resource as that release served it.
//!
//! fixtures/upgrade/pre-store-contract/ was written through the API by the
//! release before the store-contract rewrite (tests/tools/
//! make_upgrade_fixture.py): instances running, stopped, terminated and
//! pending, groups with rules (one referencing the other), key pairs, a
//! registered image with device mappings, volumes (one attached), a
//! snapshot, Elastic IPs (one associated), tags; its manifest.json holds
//! what that release answered. The folder is opened as a copy, with the
//! clock set back to when it was written (terminated instances are purged
//! an hour after termination, ClientTokens a day after).

mod common;

use chrono::{DateTime, Utc};
use common::*;
use ec2_gateway::auth::signer::{form_body, sign_v4_post};
use ec2_gateway::client::{self, Reply};
use ec2_gateway::clock::{Clock, OffsetClock};
use ec2_gateway::config::Config;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

const FIXTURE: &str = "fixtures/upgrade/pre-store-contract";

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The configuration the fixture was written with (same accounts and hosts).
fn fixture_config(data_dir: &Path) -> Config {
    Config::from_toml(&format!(
        r#"
listen = "127.0.0.1:0"
operator_listen = "127.0.0.1:0"
data_dir = "{data}"
storage = "sled"
region = "us-east-1"

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
vcpus = 32
memory_mib = 131072

[[hosts]]
name = "node-b1"
availability_zone = "us-east-1b"
vcpus = 32
memory_mib = 131072

[lifecycle]
boot_delay_secs = 36000
stop_delay_secs = 0
terminate_delay_secs = 0
volume_delay_secs = 0
snapshot_delay_secs = 0
"#,
        data = data_dir.display()
    ))
    .unwrap()
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(FIXTURE)
            .join("manifest.json"),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(manifest: &Value, kind: &str) -> Vec<String> {
    match &manifest["ids"][kind] {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
        Value::String(one) => vec![one.clone()],
        other => panic!("{kind}: {other}"),
    }
}

/// The instances the old release described, by id.
fn served_instances(manifest: &Value) -> Vec<&Value> {
    manifest["served"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap())
        .collect()
}

/// A call as the test user, signed at the gateway's (set back) time: a
/// signature made at the real time would be outside its 15-minute window.
async fn user(
    server: &TestServer,
    clock: &OffsetClock,
    action: &str,
    params: &[(&str, &str)],
) -> Reply {
    let mut pairs = vec![
        ("Action".to_string(), action.to_string()),
        ("Version".to_string(), "2016-11-15".to_string()),
    ];
    pairs.extend(params.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let body = form_body(&pairs);
    let mut headers = sign_v4_post(
        &common::user(),
        &server.endpoint.authority,
        "/",
        &body,
        clock.now(),
    );
    headers.push(("Host", server.endpoint.authority.clone()));
    let reply = client::send(&server.endpoint, "POST", "/", &headers, body.into_bytes())
        .await
        .unwrap();
    check_reply(action, &reply);
    reply
}

#[tokio::test]
async fn a_data_folder_of_the_previous_release_serves_everything_as_before() {
    let manifest = manifest();
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(FIXTURE)
            .join("data"),
        &dir.path().join("data"),
    );
    let written_at: DateTime<Utc> = manifest["written_at"].as_str().unwrap().parse().unwrap();
    let clock = Arc::new(OffsetClock::new());
    clock.advance(written_at - Utc::now() + chrono::Duration::seconds(5));
    let server =
        TestServer::start_with_clock(fixture_config(&dir.path().join("data")), clock.clone()).await;

    // Every instance in the state, zone and with the tags it had.
    let described = user(&server, &clock, "DescribeInstances", &[]).await;
    assert_eq!(described.status, 200, "{}", described.body);
    for old in served_instances(&manifest) {
        let id = old["InstanceId"].as_str().unwrap();
        let one = user(
            &server,
            &clock,
            "DescribeInstances",
            &[("InstanceId.1", id)],
        )
        .await;
        assert_eq!(one.status, 200, "{id}: {}", one.body);
        let state = one.body.split("<instanceState>").nth(1).unwrap();
        assert_eq!(
            client::text_of(state, "name").unwrap(),
            old["State"]["Name"].as_str().unwrap(),
            "{id}"
        );
        assert_eq!(
            client::text_of(&one.body, "availabilityZone").unwrap(),
            old["Placement"]["AvailabilityZone"].as_str().unwrap()
        );
        if let Some(ip) = old["PrivateIpAddress"].as_str() {
            assert!(one.body.contains(ip), "{id} lost {ip}");
        }
        for tag in old["Tags"].as_array().into_iter().flatten() {
            assert!(
                one.body.contains(tag["Value"].as_str().unwrap()),
                "{id} lost its tag"
            );
        }
    }
    // The attached volume and the associated address show on their instances.
    let running = ids(&manifest, "running");
    let volumes = ids(&manifest, "volumes");
    let first = user(
        &server,
        &clock,
        "DescribeInstances",
        &[("InstanceId.1", &running[0])],
    )
    .await;
    assert!(first.body.contains(&volumes[0]), "{}", first.body);
    let addresses = user(&server, &clock, "DescribeAddresses", &[]).await;
    assert_eq!(
        column(&addresses, "addressesSet", "allocationId").len(),
        2,
        "{}",
        addresses.body
    );
    assert!(addresses.body.contains(&running[1]));

    // Groups and their rules, key pairs, the image's devices, volumes,
    // the snapshot and the tags, as the old release described them.
    let groups = user(&server, &clock, "DescribeSecurityGroups", &[]).await;
    for group in ids(&manifest, "groups") {
        assert!(groups.body.contains(&group), "{group}");
    }
    assert!(groups.body.contains("<fromPort>443</fromPort>"));
    assert!(groups.body.contains("<fromPort>5432</fromPort>"));
    let pairs = user(&server, &clock, "DescribeKeyPairs", &[]).await;
    for old in manifest["served"]["key_pairs"].as_array().unwrap() {
        assert!(
            pairs.body.contains(old["KeyFingerprint"].as_str().unwrap()),
            "{old}"
        );
    }
    let image = user(
        &server,
        &clock,
        "DescribeImages",
        &[("ImageId.1", &ids(&manifest, "image")[0])],
    )
    .await;
    assert!(image.body.contains("/dev/sda1"), "{}", image.body);
    let described_volumes = user(&server, &clock, "DescribeVolumes", &[]).await;
    assert!(described_volumes.body.contains("<status>in-use</status>"));
    assert!(described_volumes
        .body
        .contains("<status>available</status>"));
    let snapshots = user(
        &server,
        &clock,
        "DescribeSnapshots",
        &[("SnapshotId.1", &ids(&manifest, "snapshot")[0])],
    )
    .await;
    assert!(snapshots.body.contains("<status>completed</status>"));
    let tags = user(&server, &clock, "DescribeTags", &[]).await;
    assert_eq!(
        tags.body.matches("<resourceId>").count(),
        manifest["served"]["tags"].as_array().unwrap().len(),
        "{}",
        tags.body
    );

    // The ClientToken still answers with the original reservation.
    let image = user(&server, &clock, "DescribeImages", &[("Owner.1", "amazon")]).await;
    let public = client::text_of(&image.body, "imageId").unwrap();
    let web = ids(&manifest, "groups")[0].clone();
    // boto3 base64-encodes UserData itself; the script gave it base64 text.
    let user_data = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "IyEvYmluL3NoCmVjaG8gZml4dHVyZQo=",
    );
    let retried = user(
        &server,
        &clock,
        "RunInstances",
        &[
            ("ImageId", &public),
            ("InstanceType", "t3.micro"),
            ("MinCount", "2"),
            ("MaxCount", "2"),
            ("KeyName", "fixture-ed25519"),
            ("SecurityGroupId.1", &web),
            ("Placement.AvailabilityZone", "us-east-1a"),
            ("ClientToken", "fixture-token-running"),
            ("UserData", &user_data),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "running"),
        ],
    )
    .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    let mut again = column(&retried, "instancesSet", "instanceId");
    let mut original = running.clone();
    again.sort();
    original.sort();
    assert_eq!(again, original);
    server.stop().await;
}
