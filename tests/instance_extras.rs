//! Key pairs, registered images, instance status, console output and
//! instance attributes through the in-process server.

mod common;

use common::*;
use ec2_gateway::client::{text_of, Reply};
use ec2_gateway::config::StorageBackend;

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        TestServer::start(test_config(
            &dir.path().join("data"),
            StorageBackend::Memory,
        ))
        .await,
        dir,
    )
}

async fn launch(server: &TestServer, extra: &[(&str, &str)]) -> String {
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
    let reply = server.user("RunInstances", &params).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    text_of(&reply.body, "instanceId").unwrap()
}

#[tokio::test]
async fn key_pairs() {
    let (server, _dir) = server().await;
    let created = server
        .user(
            "CreateKeyPair",
            &[
                ("KeyName", "deploy"),
                ("TagSpecification.1.ResourceType", "key-pair"),
                ("TagSpecification.1.Tag.1.Key", "team"),
                ("TagSpecification.1.Tag.1.Value", "ops"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    // EC2's default type: RSA, as a PKCS#1 PEM.
    let material = text_of(&created.body, "keyMaterial").unwrap();
    assert!(
        material.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "{material}"
    );
    let modern = server
        .user(
            "CreateKeyPair",
            &[("KeyName", "modern"), ("KeyType", "ed25519")],
        )
        .await;
    assert!(text_of(&modern.body, "keyMaterial")
        .unwrap()
        .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert_eq!(
        server
            .user("DeleteKeyPair", &[("KeyName", "modern")])
            .await
            .status,
        200
    );
    let key_id = text_of(&created.body, "keyPairId").unwrap();
    assert!(key_id.starts_with("key-"));
    let rsa = server
        .user(
            "CreateKeyPair",
            &[
                ("KeyName", "legacy"),
                ("KeyType", "rsa"),
                ("KeyFormat", "ppk"),
            ],
        )
        .await;
    assert!(text_of(&rsa.body, "keyMaterial")
        .unwrap()
        .starts_with("PuTTY-User-Key-File-3: ssh-rsa"));
    let duplicate = server.user("CreateKeyPair", &[("KeyName", "deploy")]).await;
    assert_eq!(error_code(&duplicate), "InvalidKeyPair.Duplicate");
    let bad_type = server
        .user("CreateKeyPair", &[("KeyName", "x"), ("KeyType", "dsa")])
        .await;
    assert_eq!(error_code(&bad_type), "InvalidParameterValue");

    // Import an OpenSSH public key (what `fileb://id.pub` sends: base64 of the line).
    let public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIANuyg9S7hUj6EV0GBhqcgD9deA0PLoSuOm1SaLi5VRN me@laptop";
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(public);
    let imported = server
        .user(
            "ImportKeyPair",
            &[("KeyName", "laptop"), ("PublicKeyMaterial", &encoded)],
        )
        .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    let bad = base64::engine::general_purpose::STANDARD.encode("ssh-ed25519 nonsense");
    let reply = server
        .user(
            "ImportKeyPair",
            &[("KeyName", "bad"), ("PublicKeyMaterial", &bad)],
        )
        .await;
    assert_eq!(error_code(&reply), "InvalidKey.Format");

    let listed = server.user("DescribeKeyPairs", &[]).await;
    assert_eq!(
        column(&listed, "keySet", "keyName"),
        ["deploy", "laptop", "legacy"]
    );
    assert_eq!(
        column(&listed, "keySet", "keyType"),
        ["rsa", "ed25519", "rsa"]
    );
    assert!(
        !listed.body.contains("PRIVATE KEY"),
        "private keys are never listed"
    );
    assert!(!listed.body.contains("<publicKey>"));
    let with_public = server
        .user(
            "DescribeKeyPairs",
            &[("KeyName.1", "laptop"), ("IncludePublicKey", "true")],
        )
        .await;
    assert_eq!(
        text_of(&with_public.body, "publicKey").as_deref(),
        Some(public),
        "the imported line, comment included"
    );
    let by_id = server
        .user("DescribeKeyPairs", &[("KeyPairId.1", &key_id)])
        .await;
    assert_eq!(column(&by_id, "keySet", "keyName"), ["deploy"]);
    let by_tag = server
        .user(
            "DescribeKeyPairs",
            &[("Filter.1.Name", "tag:team"), ("Filter.1.Value.1", "ops")],
        )
        .await;
    assert_eq!(column(&by_tag, "keySet", "keyName"), ["deploy"]);
    let by_type = server
        .user(
            "DescribeKeyPairs",
            &[
                ("Filter.1.Name", "key-type"),
                ("Filter.1.Value.1", "ed25519"),
            ],
        )
        .await;
    assert_eq!(column(&by_type, "keySet", "keyName"), ["laptop"]);
    let missing = server
        .user("DescribeKeyPairs", &[("KeyName.1", "nope")])
        .await;
    assert_eq!(error_code(&missing), "InvalidKeyPair.NotFound");
    // Other accounts see nothing of it.
    let theirs = server.admin("DescribeKeyPairs", &[]).await;
    assert!(theirs.body.contains("<keySet/>"));

    // RunInstances with the key; deleting twice is fine.
    let id = launch(&server, &[("KeyName", "deploy")]).await;
    let reply = server
        .user(
            "DescribeInstances",
            &[
                ("Filter.1.Name", "key-name"),
                ("Filter.1.Value.1", "deploy"),
            ],
        )
        .await;
    assert!(reply.body.contains(&id));
    let reply = server
        .admin(
            "RunInstances",
            &[
                ("ImageId", IMAGE),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("KeyName", "deploy"),
            ],
        )
        .await;
    assert_eq!(
        error_code(&reply),
        "InvalidKeyPair.NotFound",
        "another account's key"
    );
    for _ in 0..2 {
        let reply = server.user("DeleteKeyPair", &[("KeyName", "deploy")]).await;
        assert!(reply.body.contains("<return>true</return>"));
    }
    let reply = server
        .user("DeleteKeyPair", &[("KeyPairId", "key-00000000")])
        .await;
    assert!(reply.body.contains("<return>true</return>"));
    let reply = server
        .user(
            "DeleteKeyPair",
            &[("KeyName", "laptop"), ("DryRun", "true")],
        )
        .await;
    assert_eq!(error_code(&reply), "DryRunOperation");
    let reply = server
        .user("CreateKeyPair", &[("KeyName", "dry"), ("DryRun", "true")])
        .await;
    assert_eq!(error_code(&reply), "DryRunOperation");
    let listed = server.user("DescribeKeyPairs", &[]).await;
    assert_eq!(column(&listed, "keySet", "keyName"), ["laptop", "legacy"]);
    server.stop().await;
}

#[tokio::test]
async fn registered_images() {
    let (server, _dir) = server().await;
    let reply = server
        .user(
            "RegisterImage",
            &[
                ("Name", "my-golden-image"),
                ("Description", "built by CI"),
                ("Architecture", "x86_64"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let image = text_of(&reply.body, "imageId").unwrap();
    let reply = server
        .user("RegisterImage", &[("Name", "my-golden-image")])
        .await;
    assert_eq!(error_code(&reply), "InvalidAMIName.Duplicate");
    let mine = server.user("DescribeImages", &[("Owner.1", "self")]).await;
    assert_eq!(
        column(&mine, "imagesSet", "imageId"),
        std::slice::from_ref(&image)
    );
    assert_eq!(column(&mine, "imagesSet", "isPublic"), ["false"]);
    let reply = server
        .user(
            "DescribeImageAttribute",
            &[("ImageId", &image), ("Attribute", "description")],
        )
        .await;
    assert_eq!(
        text_of(&reply.body, "value").as_deref(),
        Some("built by CI")
    );
    let reply = server
        .user(
            "DescribeImageAttribute",
            &[("ImageId", &image), ("Attribute", "launchPermission")],
        )
        .await;
    assert!(reply.body.contains("<launchPermission/>"));
    let reply = server
        .user(
            "DescribeImageAttribute",
            &[("ImageId", IMAGE), ("Attribute", "launchPermission")],
        )
        .await;
    assert!(reply.body.contains("<group>all</group>"));
    // Private to its account.
    let theirs = server
        .admin("DescribeImages", &[("ImageId.1", &image)])
        .await;
    assert_eq!(error_code(&theirs), "InvalidAMIID.NotFound");
    let reply = server
        .admin(
            "RunInstances",
            &[("ImageId", &image), ("MinCount", "1"), ("MaxCount", "1")],
        )
        .await;
    assert_eq!(error_code(&reply), "InvalidAMIID.NotFound");
    let id = launch(&server, &[("ImageId", &image)]).await;
    // Deregistering keeps the instance; the image is gone.
    let reply = server.user("DeregisterImage", &[("ImageId", &image)]).await;
    assert!(reply.body.contains("<return>true</return>"));
    let reply = server
        .user("DescribeImages", &[("ImageId.1", &image)])
        .await;
    assert_eq!(error_code(&reply), "InvalidAMIID.NotFound");
    let reply = server
        .user("DescribeInstances", &[("InstanceId.1", &id)])
        .await;
    assert!(reply.body.contains(&image));
    let reply = server.user("DeregisterImage", &[("ImageId", IMAGE)]).await;
    assert_eq!(error_code(&reply), "OperationNotPermitted");
    server.stop().await;
}

fn attribute_value(reply: &Reply) -> Option<String> {
    text_of(&reply.body, "value")
}

#[tokio::test]
async fn status_console_and_attributes() {
    let (server, _dir) = server().await;
    let id = launch(&server, &[("UserData", "aGVsbG8=")]).await;
    wait_for(&server, &id, "running").await;
    let reply = server.user("DescribeInstanceStatus", &[]).await;
    assert_eq!(
        column(&reply, "instanceStatusSet", "instanceId"),
        std::slice::from_ref(&id)
    );
    assert!(
        reply.body.contains("<systemStatus><status>ok</status>")
            || reply.body.contains("<status>ok</status>")
    );
    let reply = server
        .user(
            "DescribeInstanceStatus",
            &[
                ("Filter.1.Name", "instance-status.reachability"),
                ("Filter.1.Value.1", "passed"),
            ],
        )
        .await;
    assert_eq!(column(&reply, "instanceStatusSet", "instanceId").len(), 1);

    let console = server
        .user("GetConsoleOutput", &[("InstanceId", &id)])
        .await;
    use base64::Engine;
    let output = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(text_of(&console.body, "output").unwrap())
            .unwrap(),
    )
    .unwrap();
    let private_ip = text_of(
        &server
            .user("DescribeInstances", &[("InstanceId.1", &id)])
            .await
            .body,
        "privateIpAddress",
    )
    .unwrap();
    assert!(
        output.contains(&private_ip) && output.contains("login:"),
        "{output}"
    );
    assert!(text_of(&console.body, "timestamp").is_some());

    let reply = server
        .user(
            "DescribeInstanceAttribute",
            &[("InstanceId", &id), ("Attribute", "userData")],
        )
        .await;
    assert_eq!(attribute_value(&reply).as_deref(), Some("aGVsbG8="));
    let reply = server
        .user(
            "ModifyInstanceAttribute",
            &[("InstanceId", &id), ("InstanceType.Value", "m5.large")],
        )
        .await;
    assert_eq!(
        error_code(&reply),
        "IncorrectInstanceState",
        "type changes need a stopped instance"
    );
    let reply = server
        .user(
            "ModifyInstanceAttribute",
            &[("InstanceId", &id), ("DisableApiTermination.Value", "true")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = server
        .user("TerminateInstances", &[("InstanceId.1", &id)])
        .await;
    assert_eq!(error_code(&reply), "OperationNotPermitted");
    let reply = server
        .user(
            "DescribeInstanceAttribute",
            &[("InstanceId", &id), ("Attribute", "disableApiTermination")],
        )
        .await;
    assert_eq!(attribute_value(&reply).as_deref(), Some("true"));
    server
        .user(
            "ModifyInstanceAttribute",
            &[
                ("InstanceId", &id),
                ("Attribute", "disableApiTermination"),
                ("Value", "false"),
            ],
        )
        .await;

    server.user("StopInstances", &[("InstanceId.1", &id)]).await;
    wait_for(&server, &id, "stopped").await;
    let reply = server.user("DescribeInstanceStatus", &[]).await;
    assert!(
        reply.body.contains("<instanceStatusSet/>"),
        "only running instances by default"
    );
    let reply = server
        .user("DescribeInstanceStatus", &[("IncludeAllInstances", "true")])
        .await;
    assert!(reply.body.contains("<status>not-applicable</status>"));
    let reply = server
        .user(
            "ModifyInstanceAttribute",
            &[("InstanceId", &id), ("InstanceType.Value", "t4g.micro")],
        )
        .await;
    assert_eq!(
        error_code(&reply),
        "InvalidParameterValue",
        "architecture mismatch"
    );
    let reply = server
        .user(
            "ModifyInstanceAttribute",
            &[("InstanceId", &id), ("InstanceType.Value", "m5.large")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = server
        .user(
            "DescribeInstanceAttribute",
            &[("InstanceId", &id), ("Attribute", "instanceType")],
        )
        .await;
    assert_eq!(attribute_value(&reply).as_deref(), Some("m5.large"));
    server
        .user("StartInstances", &[("InstanceId.1", &id)])
        .await;
    wait_for(&server, &id, "running").await;
    let hosts = server.admin("AdminDescribeHosts", &[]).await;
    let used: u32 = column(&hosts, "hostSet", "vcpusUsed")
        .iter()
        .map(|v| v.parse::<u32>().unwrap())
        .sum();
    let memory: u64 = column(&hosts, "hostSet", "memoryMibUsed")
        .iter()
        .map(|v| v.parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        (used, memory),
        (2, 8192),
        "the new type's capacity is reserved"
    );
    let reply = server
        .user(
            "DescribeInstanceAttribute",
            &[("InstanceId", &id), ("Attribute", "kernel")],
        )
        .await;
    assert_eq!(error_code(&reply), "InvalidParameterValue");
    let reply = server
        .admin("GetConsoleOutput", &[("InstanceId", &id)])
        .await;
    assert_eq!(error_code(&reply), "InvalidInstanceID.NotFound");
    server.stop().await;
}

#[tokio::test]
async fn vcpu_and_instance_quotas_follow_state_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"), StorageBackend::Memory);
    config.quotas.max_instances = 5;
    config.quotas.max_vcpus = 8;
    let server = TestServer::start(config).await;
    let three_micro = [
        ("ImageId", IMAGE),
        ("InstanceType", "t3.micro"),
        ("MinCount", "3"),
        ("MaxCount", "3"),
    ];
    let a = launch(&server, &[("InstanceType", "m5.large")]).await;
    let b = launch(&server, &[("InstanceType", "m5.large")]).await;
    let reply = server.user("RunInstances", &three_micro).await;
    assert_eq!(error_code(&reply), "VcpuLimitExceeded", "4 + 6 vCPUs > 8");
    // A stopped instance frees its vCPUs but still counts as an instance.
    server.user("StopInstances", &[("InstanceId.1", &a)]).await;
    wait_for(&server, &a, "stopped").await;
    let reply = server.user("RunInstances", &three_micro).await;
    assert_eq!(reply.status, 200, "2 + 6 vCPUs fit now: {}", reply.body);
    let reply = server
        .user(
            "RunInstances",
            &[
                ("ImageId", IMAGE),
                ("InstanceType", "t2.nano"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
            ],
        )
        .await;
    assert_eq!(
        error_code(&reply),
        "InstanceLimitExceeded",
        "5 instances, one of them stopped"
    );
    // A terminated instance counts for nothing.
    server
        .user("TerminateInstances", &[("InstanceId.1", &b)])
        .await;
    wait_for(&server, &b, "terminated").await;
    launch(&server, &[("InstanceType", "t2.nano")]).await;
    server.stop().await;
}

#[tokio::test]
async fn dry_run_on_every_other_mutation() {
    let (server, _dir) = server().await;
    use base64::Engine;
    let public = base64::engine::general_purpose::STANDARD
        .encode("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIANuyg9S7hUj6EV0GBhqcgD9deA0PLoSuOm1SaLi5VRN");
    let reply = server
        .user(
            "ImportKeyPair",
            &[
                ("KeyName", "k"),
                ("PublicKeyMaterial", &public),
                ("DryRun", "true"),
            ],
        )
        .await;
    assert_eq!(error_code(&reply), "DryRunOperation");
    let reply = server
        .user(
            "RegisterImage",
            &[("Name", "dry-image"), ("DryRun", "true")],
        )
        .await;
    assert_eq!(error_code(&reply), "DryRunOperation");
    let image = text_of(
        &server
            .user("RegisterImage", &[("Name", "real-image")])
            .await
            .body,
        "imageId",
    )
    .unwrap();
    let reply = server
        .user(
            "DeregisterImage",
            &[("ImageId", &image), ("DryRun", "true")],
        )
        .await;
    assert_eq!(error_code(&reply), "DryRunOperation");
    let id = launch(&server, &[]).await;
    let reply = server
        .user(
            "ModifyInstanceAttribute",
            &[
                ("InstanceId", &id),
                ("DisableApiTermination.Value", "true"),
                ("DryRun", "true"),
            ],
        )
        .await;
    assert_eq!(error_code(&reply), "DryRunOperation");
    for (action, params) in [
        ("GetConsoleOutput", vec![("InstanceId", id.as_str())]),
        (
            "DescribeInstanceAttribute",
            vec![("InstanceId", id.as_str()), ("Attribute", "instanceType")],
        ),
        ("DescribeInstanceStatus", vec![]),
        ("DescribeKeyPairs", vec![]),
        (
            "DescribeImageAttribute",
            vec![("ImageId", image.as_str()), ("Attribute", "description")],
        ),
    ] {
        let mut params = params;
        params.push(("DryRun", "true"));
        assert_eq!(
            error_code(&server.user(action, &params).await),
            "DryRunOperation",
            "{action}"
        );
    }
    // Nothing changed.
    assert!(server
        .user("DescribeKeyPairs", &[])
        .await
        .body
        .contains("<keySet/>"));
    assert_eq!(
        column(
            &server.user("DescribeImages", &[("Owner.1", "self")]).await,
            "imagesSet",
            "name"
        ),
        ["real-image"]
    );
    let reply = server
        .user(
            "DescribeInstanceAttribute",
            &[("InstanceId", &id), ("Attribute", "disableApiTermination")],
        )
        .await;
    assert_eq!(attribute_value(&reply).as_deref(), Some("false"));
    server.stop().await;
}

#[tokio::test]
async fn key_pairs_and_images_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Sled);
    let server = TestServer::start(config.clone()).await;
    let created = server.user("CreateKeyPair", &[("KeyName", "kept")]).await;
    let fingerprint = text_of(&created.body, "keyFingerprint").unwrap();
    let image = text_of(
        &server
            .user("RegisterImage", &[("Name", "kept-image")])
            .await
            .body,
        "imageId",
    )
    .unwrap();
    server.stop().await;
    let server = TestServer::start(config).await;
    let keys = server.user("DescribeKeyPairs", &[]).await;
    assert_eq!(column(&keys, "keySet", "keyFingerprint"), [fingerprint]);
    let images = server.user("DescribeImages", &[("Owner.1", "self")]).await;
    assert_eq!(
        column(&images, "imagesSet", "imageId"),
        std::slice::from_ref(&image)
    );
    launch(&server, &[("ImageId", &image), ("KeyName", "kept")]).await;
    server.stop().await;
}
