//! Instances through the in-process server: launch, idempotency, DryRun,
//! isolation, pagination, quotas, capacity, restart. The test configuration
//! has zero lifecycle delays, so transitions complete at once.

mod common;

use common::*;
use ec2_gateway::client::Reply;
use ec2_gateway::config::StorageBackend;
use std::collections::HashSet;

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

async fn server_with(
    storage: StorageBackend,
    change: impl FnOnce(&mut ec2_gateway::config::Config),
) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"), storage);
    change(&mut config);
    (TestServer::start(config).await, dir)
}

fn instance_ids(reply: &Reply) -> Vec<String> {
    ec2_gateway::client::items(&reply.body, "instancesSet")
        .into_iter()
        .filter_map(|mut i| i.remove("instanceId"))
        .collect()
}

/// Every instance id in a DescribeInstances answer (all reservations).
fn described_ids(reply: &Reply) -> Vec<String> {
    reply
        .body
        .split("<instanceId>")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap().to_string())
        .collect()
}

async fn run(server: &TestServer, extra: &[(&str, &str)]) -> Reply {
    let mut params = vec![
        ("ImageId", IMAGE),
        ("InstanceType", "t3.micro"),
        ("MinCount", "1"),
        ("MaxCount", "1"),
    ];
    for (name, value) in extra {
        params.retain(|(n, _)| n != name);
        params.push((name, value));
    }
    server.user("RunInstances", &params).await
}

#[tokio::test]
async fn launch_describe_and_change_states() {
    let (server, _dir) = server_with(StorageBackend::Memory, |_| {}).await;
    let reply = run(
        &server,
        &[
            ("MinCount", "2"),
            ("MaxCount", "2"),
            ("Placement.AvailabilityZone", "us-east-1b"),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "web server"),
            ("UserData", "aGVsbG8g\nd29ybGQ="),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let items = items(&reply, "instancesSet");
    assert_eq!(items.len(), 2);
    assert!(
        reply.body.contains("<reservationId>r-")
            && reply
                .body
                .contains(&format!("<ownerId>{USER_ACCOUNT}</ownerId>"))
    );
    assert!(reply.body.contains("<code>0</code>") && reply.body.contains("<name>pending</name>"));
    assert_eq!(column(&reply, "instancesSet", "amiLaunchIndex"), ["0", "1"]);
    assert!(
        reply
            .body
            .matches("<availabilityZone>us-east-1b</availabilityZone>")
            .count()
            == 2
    );
    assert!(column(&reply, "instancesSet", "privateIpAddress")
        .iter()
        .all(|ip| ip.starts_with("172.31.16.")));
    let ids = instance_ids(&reply);
    wait_for(&server, &ids[0], "running").await;

    // Filters, including a tag with a space and wildcards.
    let reply = server
        .user(
            "DescribeInstances",
            &[
                ("Filter.1.Name", "tag:Name"),
                ("Filter.1.Value.1", "web s*"),
                ("Filter.2.Name", "availability-zone"),
                ("Filter.2.Value.1", "us-east-1b"),
            ],
        )
        .await;
    assert_eq!(described_ids(&reply).len(), 2);
    for (name, value, expected) in [
        ("instance-state-name", "running", 2),
        ("instance-state-code", "16", 2),
        ("instance-type", "t3.micro", 2),
        ("image-id", IMAGE, 2),
        ("owner-id", USER_ACCOUNT, 2),
        ("tag-key", "Name", 2),
        ("tag-value", "nothing", 0),
        ("instance.group-name", "default", 2),
        ("availability-zone", "us-east-1a", 0),
        ("architecture", "x86_64", 2),
    ] {
        let reply = server
            .user(
                "DescribeInstances",
                &[("Filter.1.Name", name), ("Filter.1.Value.1", value)],
            )
            .await;
        assert_eq!(described_ids(&reply).len(), expected, "{name}={value}");
    }
    let reply = server
        .user(
            "DescribeInstances",
            &[("Filter.1.Name", "flavour"), ("Filter.1.Value.1", "x")],
        )
        .await;
    assert_eq!(error_code(&reply), "InvalidFilter");

    // Stop, start, reboot, terminate (twice).
    let reply = server
        .user("StopInstances", &[("InstanceId.1", &ids[0])])
        .await;
    assert!(
        reply.body.contains("<currentState><code>64</code>")
            || reply.body.contains("<name>stopping</name>"),
        "{}",
        reply.body
    );
    wait_for(&server, &ids[0], "stopped").await;
    let reply = server
        .user("RebootInstances", &[("InstanceId.1", &ids[0])])
        .await;
    assert_eq!(error_code(&reply), "IncorrectInstanceState");
    let reply = server
        .user("StartInstances", &[("InstanceId.1", &ids[0])])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait_for(&server, &ids[0], "running").await;
    let reply = server
        .user("RebootInstances", &[("InstanceId.1", &ids[0])])
        .await;
    assert!(reply.body.contains("<return>true</return>"));
    let reply = server
        .user(
            "TerminateInstances",
            &[("InstanceId.1", &ids[0]), ("InstanceId.2", &ids[1])],
        )
        .await;
    assert_eq!(reply.status, 200);
    wait_for(&server, &ids[0], "terminated").await;
    let reply = server
        .user("TerminateInstances", &[("InstanceId.1", &ids[0])])
        .await;
    assert!(
        reply
            .body
            .contains("<currentState><code>48</code><name>terminated</name></currentState>")
            || reply.body.contains("<name>terminated</name>")
    );
    let reply = server
        .user("StartInstances", &[("InstanceId.1", &ids[0])])
        .await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "IncorrectInstanceState")
    );
    server.stop().await;
}

#[tokio::test]
async fn validation_errors() {
    let (server, _dir) = server_with(StorageBackend::Memory, |_| {}).await;
    for (extra, code) in [
        (vec![("ImageId", "ami-00000000")], "InvalidAMIID.NotFound"),
        (vec![("ImageId", "image-1")], "InvalidAMIID.Malformed"),
        (vec![("InstanceType", "x9.mega")], "InvalidParameterValue"),
        (vec![("InstanceType", "t4g.micro")], "InvalidParameterValue"),
        (
            vec![("Placement.AvailabilityZone", "us-east-1z")],
            "InvalidParameterValue",
        ),
        (vec![("KeyName", "nokey")], "InvalidKeyPair.NotFound"),
        (vec![("SecurityGroup.1", "web")], "InvalidGroup.NotFound"),
        (
            vec![("SecurityGroupId.1", "sg-zz")],
            "InvalidGroupId.Malformed",
        ),
        (vec![("UserData", "not base64!")], "InvalidParameterValue"),
        (
            vec![("MinCount", "3"), ("MaxCount", "2")],
            "InvalidParameterValue",
        ),
        (vec![("MinCount", "0")], "InvalidParameterValue"),
        (
            vec![
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "aws:x"),
            ],
            "InvalidParameterValue",
        ),
        (
            vec![
                ("TagSpecification.1.ResourceType", "network-interface"),
                ("TagSpecification.1.Tag.1.Key", "a"),
            ],
            "InvalidParameterValue",
        ),
        (
            vec![("InstanceInitiatedShutdownBehavior", "explode")],
            "InvalidParameterValue",
        ),
    ] {
        let reply = run(&server, &extra).await;
        assert_eq!(
            (reply.status, error_code(&reply)),
            (400, code.to_string()),
            "{extra:?}: {}",
            reply.body
        );
    }
    let reply = server
        .user("RunInstances", &[("ImageId", IMAGE), ("MinCount", "1")])
        .await;
    assert_eq!(error_code(&reply), "MissingParameter");
    let reply = server
        .user(
            "DescribeInstances",
            &[
                ("InstanceId.1", "i-0123456789abcdef0"),
                ("InstanceId.2", "i-0123456789abcdef1"),
            ],
        )
        .await;
    assert_eq!(error_code(&reply), "InvalidInstanceID.NotFound");
    assert!(
        reply
            .body
            .contains("i-0123456789abcdef0, i-0123456789abcdef1"),
        "{}",
        reply.body
    );
    let reply = server
        .user(
            "DescribeInstances",
            &[("InstanceId.1", "i-0123456789abcdef0"), ("MaxResults", "5")],
        )
        .await;
    assert_eq!(error_code(&reply), "InvalidParameterCombination");
    let reply = server
        .user("DescribeInstances", &[("MaxResults", "4")])
        .await;
    assert_eq!(error_code(&reply), "InvalidParameterValue");
    let reply = server
        .user(
            "DescribeInstances",
            &[("MaxResults", "5"), ("NextToken", "forged")],
        )
        .await;
    assert_eq!(error_code(&reply), "InvalidNextToken");
    let reply = server.user("TerminateInstances", &[]).await;
    assert_eq!(error_code(&reply), "MissingParameter");
    let reply = run(&server, &[("DisableApiTermination", "true")]).await;
    let id = instance_ids(&reply).remove(0);
    let reply = server
        .user("TerminateInstances", &[("InstanceId.1", &id)])
        .await;
    assert_eq!(error_code(&reply), "OperationNotPermitted");
    server.stop().await;
}

#[tokio::test]
async fn dry_run_checks_everything_and_changes_nothing() {
    let (server, _dir) = server_with(StorageBackend::Memory, |_| {}).await;
    let reply = run(&server, &[("DryRun", "true")]).await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (412, "DryRunOperation")
    );
    let reply = run(&server, &[("DryRun", "true"), ("ImageId", "ami-00000000")]).await;
    assert_eq!(
        error_code(&reply),
        "InvalidAMIID.NotFound",
        "a validation error wins over DryRun"
    );
    let reply = server.user("DescribeInstances", &[]).await;
    assert!(
        reply.body.contains("<reservationSet/>"),
        "a dry run launched something: {}",
        reply.body
    );
    let id = instance_ids(&run(&server, &[]).await).remove(0);
    wait_for(&server, &id, "running").await;
    for action in [
        "StopInstances",
        "RebootInstances",
        "TerminateInstances",
        "DescribeInstances",
    ] {
        let reply = server
            .user(action, &[("InstanceId.1", &id), ("DryRun", "true")])
            .await;
        assert_eq!(
            (reply.status, error_code(&reply).as_str()),
            (412, "DryRunOperation"),
            "{action}"
        );
    }
    let reply = server
        .user(
            "StartInstances",
            &[("InstanceId.1", &id), ("DryRun", "true")],
        )
        .await;
    assert_eq!(error_code(&reply), "DryRunOperation");
    wait_for(&server, &id, "running").await;
    for action in ["DescribeImages", "DescribeInstanceTypes"] {
        let reply = server.user(action, &[("DryRun", "true")]).await;
        assert_eq!(error_code(&reply), "DryRunOperation", "{action}");
    }
    server.stop().await;
}

#[tokio::test]
async fn client_tokens_make_launches_idempotent() {
    let (server, _dir) = server_with(StorageBackend::Memory, |_| {}).await;
    let first = run(&server, &[("ClientToken", "token-1"), ("MaxCount", "2")]).await;
    let again = run(&server, &[("ClientToken", "token-1"), ("MaxCount", "2")]).await;
    assert_eq!(instance_ids(&first), instance_ids(&again));
    assert_eq!(
        ec2_gateway::client::text_of(&first.body, "reservationId"),
        ec2_gateway::client::text_of(&again.body, "reservationId")
    );
    let mismatch = run(&server, &[("ClientToken", "token-1"), ("MaxCount", "3")]).await;
    assert_eq!(
        (mismatch.status, error_code(&mismatch).as_str()),
        (400, "IdempotentParameterMismatch")
    );
    // Tokens are per account.
    let other = server
        .call(
            &admin(),
            "RunInstances",
            &[
                ("ImageId", IMAGE),
                ("InstanceType", "t3.micro"),
                ("MinCount", "1"),
                ("MaxCount", "2"),
                ("ClientToken", "token-1"),
            ],
        )
        .await;
    assert_eq!(other.status, 200);
    assert!(instance_ids(&other)
        .iter()
        .all(|id| !instance_ids(&first).contains(id)));

    // 50 concurrent retries with one token: one reservation.
    let endpoint = server.endpoint.clone();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                ec2_gateway::client::call(
                    &endpoint,
                    &user(),
                    "RunInstances",
                    &[
                        ("ImageId", IMAGE),
                        ("InstanceType", "t2.nano"),
                        ("MinCount", "1"),
                        ("MaxCount", "1"),
                        ("ClientToken", "concurrent"),
                    ],
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut reservations = HashSet::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        reservations.insert(ec2_gateway::client::text_of(&reply.body, "reservationId").unwrap());
    }
    assert_eq!(reservations.len(), 1);
    let reply = server
        .user(
            "DescribeInstances",
            &[
                ("Filter.1.Name", "client-token"),
                ("Filter.1.Value.1", "concurrent"),
            ],
        )
        .await;
    assert_eq!(described_ids(&reply).len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn accounts_never_see_each_other() {
    let (server, _dir) = server_with(StorageBackend::Memory, |_| {}).await;
    let mine = instance_ids(&run(&server, &[]).await).remove(0);
    let reply = server.admin("DescribeInstances", &[]).await;
    assert!(!reply.body.contains(&mine));
    for action in [
        "DescribeInstances",
        "StopInstances",
        "TerminateInstances",
        "RebootInstances",
        "StartInstances",
    ] {
        let reply = server.admin(action, &[("InstanceId.1", &mine)]).await;
        assert_eq!(error_code(&reply), "InvalidInstanceID.NotFound", "{action}");
    }
    let reply = server
        .user("DescribeInstances", &[("InstanceId.1", &mine)])
        .await;
    assert_eq!(described_ids(&reply), [mine]);
    server.stop().await;
}

#[tokio::test]
async fn pagination_walks_every_instance_once_while_instances_are_added() {
    let (server, _dir) = server_with(StorageBackend::Memory, |_| {}).await;
    let mut launched: Vec<String> = Vec::new();
    for _ in 0..4 {
        launched.extend(instance_ids(
            &run(&server, &[("InstanceType", "t2.nano"), ("MaxCount", "5")]).await,
        ));
    }
    assert_eq!(launched.len(), 20);
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut params = vec![("MaxResults", "6".to_string())];
        if let Some(token) = &token {
            params.push(("NextToken", token.clone()));
        }
        let params: Vec<(&str, &str)> = params.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let reply = server.user("DescribeInstances", &params).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let page = described_ids(&reply);
        assert!(page.len() <= 6);
        seen.extend(page);
        pages += 1;
        if pages == 2 {
            // Launched mid-walk: shows up at the end, nothing is skipped or repeated.
            launched.extend(instance_ids(
                &run(&server, &[("InstanceType", "t2.nano")]).await,
            ));
        }
        let next = ec2_gateway::client::text_of(&reply.body, "nextToken");
        assert_ne!(next, token, "the same token came back");
        match next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, launched);
    // A token is bound to its filters.
    let reply = server
        .user("DescribeInstances", &[("MaxResults", "5")])
        .await;
    let token = ec2_gateway::client::text_of(&reply.body, "nextToken").unwrap();
    let reply = server
        .user(
            "DescribeInstances",
            &[
                ("MaxResults", "5"),
                ("NextToken", &token),
                ("Filter.1.Name", "instance-type"),
                ("Filter.1.Value.1", "t2.nano"),
            ],
        )
        .await;
    assert_eq!(error_code(&reply), "InvalidNextToken");
    let reply = server
        .admin(
            "DescribeInstances",
            &[("MaxResults", "5"), ("NextToken", &token)],
        )
        .await;
    assert_eq!(
        error_code(&reply),
        "InvalidNextToken",
        "another account's token"
    );
    server.stop().await;
}

#[tokio::test]
async fn quotas_and_capacity() {
    // Zone c has one 16-vCPU host: two m5.2xlarge (8 vCPUs) fit, a third does not.
    let (server, _dir) = server_with(StorageBackend::Memory, |config| {
        config.quotas.max_instances = 6;
    })
    .await;
    let reply = run(
        &server,
        &[
            ("InstanceType", "m5.2xlarge"),
            ("Placement.AvailabilityZone", "us-east-1c"),
            ("MinCount", "1"),
            ("MaxCount", "5"),
        ],
    )
    .await;
    assert_eq!(
        instance_ids(&reply).len(),
        2,
        "partial launch up to capacity"
    );
    let reply = run(
        &server,
        &[
            ("InstanceType", "m5.2xlarge"),
            ("Placement.AvailabilityZone", "us-east-1c"),
        ],
    )
    .await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (500, "InsufficientInstanceCapacity")
    );
    let reply = run(&server, &[("MinCount", "5"), ("MaxCount", "5")]).await;
    assert_eq!(error_code(&reply), "InstanceLimitExceeded", "2 + 5 > 6");
    let reply = run(&server, &[("MinCount", "2"), ("MaxCount", "9")]).await;
    assert_eq!(instance_ids(&reply).len(), 4, "up to the quota");
    // Disabling zone c's only host: its instances keep running, the zone is unavailable.
    server
        .admin("AdminDisableHost", &[("HostName", "node-c1")])
        .await;
    let reply = server
        .user("DescribeAvailabilityZones", &[("ZoneName.1", "us-east-1c")])
        .await;
    assert!(reply.body.contains("<zoneState>unavailable</zoneState>"));
    let reply = server
        .user(
            "DescribeInstances",
            &[
                ("Filter.1.Name", "availability-zone"),
                ("Filter.1.Value.1", "us-east-1c"),
                ("Filter.2.Name", "instance-state-name"),
                ("Filter.2.Value.1", "running"),
                ("Filter.2.Value.2", "pending"),
            ],
        )
        .await;
    assert_eq!(described_ids(&reply).len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn instances_and_tokens_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Sled);
    let server = TestServer::start(config.clone()).await;
    let first = run(&server, &[("ClientToken", "persisted"), ("MaxCount", "3")]).await;
    let ids = instance_ids(&first);
    wait_for(&server, &ids[0], "running").await;
    server
        .user("StopInstances", &[("InstanceId.1", &ids[1])])
        .await;
    wait_for(&server, &ids[1], "stopped").await;
    server.stop().await;

    let server = TestServer::start(config).await;
    let reply = server.user("DescribeInstances", &[]).await;
    assert_eq!(described_ids(&reply), ids);
    let again = run(&server, &[("ClientToken", "persisted"), ("MaxCount", "3")]).await;
    assert_eq!(
        instance_ids(&again),
        ids,
        "the token still returns the original reservation"
    );
    let reply = server.admin("AdminDescribeHosts", &[]).await;
    let used: u32 = column(&reply, "hostSet", "vcpusUsed")
        .iter()
        .map(|v| v.parse::<u32>().unwrap())
        .sum();
    assert_eq!(
        used, 4,
        "two running t3.micro hold 2 vCPUs each; the stopped one none"
    );
    server.stop().await;
}

#[tokio::test]
async fn catalogues() {
    let (server, _dir) = server_with(StorageBackend::Memory, |_| {}).await;
    let reply = server
        .user(
            "DescribeInstanceTypes",
            &[
                ("InstanceType.1", "t3.micro"),
                ("InstanceType.2", "m5.large"),
            ],
        )
        .await;
    assert_eq!(
        column(&reply, "instanceTypeSet", "instanceType"),
        ["m5.large", "t3.micro"]
    );
    assert!(
        reply.body.contains("<defaultVCpus>2</defaultVCpus>")
            && reply.body.contains("<sizeInMiB>8192</sizeInMiB>")
    );
    let reply = server
        .user(
            "DescribeInstanceTypes",
            &[
                ("Filter.1.Name", "processor-info.supported-architecture"),
                ("Filter.1.Value.1", "arm64"),
            ],
        )
        .await;
    assert_eq!(
        column(&reply, "instanceTypeSet", "instanceType"),
        ["t4g.micro", "t4g.small"]
    );
    let reply = server
        .user("DescribeInstanceTypes", &[("InstanceType.1", "x1.nothing")])
        .await;
    assert_eq!(error_code(&reply), "InvalidInstanceType");
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let mut params = vec![("MaxResults".to_string(), "5".to_string())];
        params.extend(token.clone().map(|t| ("NextToken".to_string(), t)));
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let reply = server.user("DescribeInstanceTypes", &params).await;
        names.extend(column(&reply, "instanceTypeSet", "instanceType"));
        token = ec2_gateway::client::text_of(&reply.body, "nextToken");
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names.len(), 18);

    let reply = server
        .user("DescribeImages", &[("Owner.1", "amazon")])
        .await;
    assert_eq!(column(&reply, "imagesSet", "imageId").len(), 5);
    let reply = server.user("DescribeImages", &[("Owner.1", "self")]).await;
    assert!(reply.body.contains("<imagesSet/>"));
    let reply = server
        .user(
            "DescribeImages",
            &[
                ("Filter.1.Name", "name"),
                ("Filter.1.Value.1", "debian-12-*"),
                ("Filter.2.Name", "architecture"),
                ("Filter.2.Value.1", "arm64"),
            ],
        )
        .await;
    assert_eq!(
        column(&reply, "imagesSet", "name"),
        ["debian-12-arm64-20261101"]
    );
    let reply = server
        .user("DescribeImages", &[("ImageId.1", "ami-00000000")])
        .await;
    assert_eq!(error_code(&reply), "InvalidAMIID.NotFound");
    let reply = server.user("DescribeImages", &[("ImageId.1", "bad")]).await;
    assert_eq!(error_code(&reply), "InvalidAMIID.Malformed");
    let reply = server
        .user(
            "DescribeImages",
            &[
                ("Filter.1.Name", "is-public"),
                ("Filter.1.Value.1", "true"),
                ("ExecutableBy.1", "all"),
            ],
        )
        .await;
    assert_eq!(column(&reply, "imagesSet", "imageId").len(), 5);
    server.stop().await;
}

#[tokio::test]
async fn each_account_has_its_own_address_space() {
    let (server, _dir) = server_with(StorageBackend::Memory, |_| {}).await;
    let params = [
        ("ImageId", IMAGE),
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("Placement.AvailabilityZone", "us-east-1b"),
    ];
    let mine = server.user("RunInstances", &params).await;
    let theirs = server.admin("RunInstances", &params).await;
    let ip = |reply: &Reply| ec2_gateway::client::text_of(&reply.body, "privateIpAddress").unwrap();
    assert_eq!(ip(&mine), "172.31.16.4");
    assert_eq!(
        ip(&theirs),
        "172.31.16.4",
        "default VPCs are separate networks"
    );
    let id = instance_ids(&mine).remove(0);
    server
        .user("TerminateInstances", &[("InstanceId.1", &id)])
        .await;
    wait_for(&server, &id, "terminated").await;
    let reply = server
        .user("DescribeInstances", &[("InstanceId.1", &id)])
        .await;
    assert!(
        !reply.body.contains("<privateIpAddress>"),
        "a terminated instance holds no address: {}",
        reply.body
    );
    server.stop().await;
}
