//! The volumes instances are launched with, through the in-process server:
//! a root volume from the image's block device mapping, RunInstances'
//! `BlockDeviceMapping.N` (size, type, `DeleteOnTermination`, encryption,
//! added and suppressed devices), what a termination does to them, the
//! root volume's detachment rules, an image baked from them and launched,
//! and a restart.

mod common;

use common::*;
use ec2_gateway::client::{text_of, Reply};
use ec2_gateway::config::StorageBackend;

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

fn ok(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.body);
}

async fn launch(server: &TestServer, extra: &[(&str, &str)]) -> Reply {
    let mut params = vec![
        ("ImageId", IMAGE),
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("Placement.AvailabilityZone", "us-east-1a"),
    ];
    params.extend_from_slice(extra);
    server.user("RunInstances", &params).await
}

/// The volume attached to `instance` at `device`, from DescribeVolumes.
async fn volume_at(
    server: &TestServer,
    instance: &str,
    device: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    let reply = server
        .user(
            "DescribeVolumes",
            &[
                ("Filter.1.Name", "attachment.instance-id"),
                ("Filter.1.Value.1", instance),
                ("Filter.2.Name", "attachment.device"),
                ("Filter.2.Value.1", device),
            ],
        )
        .await;
    ok(&reply);
    items(&reply, "volumeSet").into_iter().next()
}

async fn volume(server: &TestServer, id: &str) -> Reply {
    server.user("DescribeVolumes", &[("VolumeId.1", id)]).await
}

#[tokio::test]
async fn instances_get_root_volumes_that_go_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Sled);
    let server = TestServer::start(config.clone()).await;
    let reply = launch(&server, &[]).await;
    ok(&reply);
    let instance = text_of(&reply.body, "instanceId").unwrap();
    // RunInstances already shows it.
    assert_eq!(text_of(&reply.body, "deviceName").unwrap(), "/dev/xvda");
    let root_id = text_of(&reply.body, "volumeId").unwrap();
    wait_for(&server, &instance, "running").await;
    let root = volume_at(&server, &instance, "/dev/xvda").await.unwrap();
    assert_eq!(root["volumeId"], root_id);
    assert_eq!(root["size"], "8");
    assert_eq!(root["volumeType"], "gp3");
    assert_eq!(root["status"], "in-use");
    assert_eq!(root["availabilityZone"], "us-east-1a");
    let described = volume(&server, &root_id).await;
    assert_eq!(
        text_of(&described.body, "deleteOnTermination").unwrap(),
        "true"
    );
    let by_volume = server
        .user(
            "DescribeInstances",
            &[
                ("Filter.1.Name", "block-device-mapping.volume-id"),
                ("Filter.1.Value.1", &root_id),
            ],
        )
        .await;
    assert!(by_volume.body.contains(&instance));

    // It is neither deleted nor detached while the instance runs.
    let delete = server.user("DeleteVolume", &[("VolumeId", &root_id)]).await;
    assert_eq!(error_code(&delete), "VolumeInUse");
    let detach = server.user("DetachVolume", &[("VolumeId", &root_id)]).await;
    assert_eq!(
        error_code(&detach),
        "IncorrectInstanceState",
        "{}",
        detach.body
    );
    let taken = server
        .user(
            "CreateVolume",
            &[("AvailabilityZone", "us-east-1a"), ("Size", "1")],
        )
        .await;
    let data = text_of(&taken.body, "volumeId").unwrap();
    let on_root = server
        .user(
            "AttachVolume",
            &[
                ("VolumeId", &data),
                ("InstanceId", &instance),
                ("Device", "/dev/xvda"),
            ],
        )
        .await;
    assert_eq!(error_code(&on_root), "InvalidParameterValue");

    // Stopped, the root volume may leave, and comes back.
    ok(&server
        .user("StopInstances", &[("InstanceId.1", &instance)])
        .await);
    wait_for(&server, &instance, "stopped").await;
    ok(&server.user("DetachVolume", &[("VolumeId", &root_id)]).await);
    let shown = server
        .user("DescribeInstances", &[("InstanceId.1", &instance)])
        .await;
    assert!(!shown.body.contains(&root_id), "{}", shown.body);
    assert_eq!(
        text_of(&volume(&server, &root_id).await.body, "status").unwrap(),
        "available"
    );
    ok(&server
        .user(
            "AttachVolume",
            &[
                ("VolumeId", &root_id),
                ("InstanceId", &instance),
                ("Device", "/dev/xvda"),
            ],
        )
        .await);
    server.stop().await;

    // Kept across a restart; terminated, the instance takes it along.
    let server = TestServer::start(config).await;
    let shown = server
        .user("DescribeInstances", &[("InstanceId.1", &instance)])
        .await;
    assert!(shown.body.contains(&root_id), "{}", shown.body);
    ok(&server.user("DeleteVolume", &[("VolumeId", &data)]).await);
    ok(&server
        .user("TerminateInstances", &[("InstanceId.1", &instance)])
        .await);
    wait_for(&server, &instance, "terminated").await;
    // (Reattached by AttachVolume, it is a data volume now: it stays.)
    assert_eq!(
        text_of(&volume(&server, &root_id).await.body, "status").unwrap(),
        "available"
    );
    ok(&server.user("DeleteVolume", &[("VolumeId", &root_id)]).await);
    let none = server.user("DescribeVolumes", &[]).await;
    assert!(
        column(&none, "volumeSet", "volumeId").is_empty(),
        "{}",
        none.body
    );
    server.stop().await;
}

#[tokio::test]
async fn block_device_mappings_change_add_and_suppress_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let reply = launch(
        &server,
        &[
            ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
            ("BlockDeviceMapping.1.Ebs.VolumeSize", "20"),
            ("BlockDeviceMapping.1.Ebs.VolumeType", "gp2"),
            ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "false"),
            ("BlockDeviceMapping.2.DeviceName", "/dev/sdb"),
            ("BlockDeviceMapping.2.Ebs.VolumeSize", "5"),
            ("BlockDeviceMapping.2.Ebs.Encrypted", "true"),
            ("BlockDeviceMapping.3.DeviceName", "/dev/sdc"),
            ("BlockDeviceMapping.3.NoDevice", ""),
            ("BlockDeviceMapping.4.DeviceName", "/dev/sdd"),
            ("BlockDeviceMapping.4.VirtualName", "ephemeral0"),
            ("TagSpecification.1.ResourceType", "volume"),
            ("TagSpecification.1.Tag.1.Key", "backup"),
            ("TagSpecification.1.Tag.1.Value", "nightly"),
            ("TagSpecification.2.ResourceType", "instance"),
            ("TagSpecification.2.Tag.1.Key", "Name"),
            ("TagSpecification.2.Tag.1.Value", "db"),
        ],
    )
    .await;
    ok(&reply);
    // Volume tags go on its volumes, instance tags on the instance.
    let tagged = server
        .user(
            "DescribeVolumes",
            &[
                ("Filter.1.Name", "tag:backup"),
                ("Filter.1.Value.1", "nightly"),
            ],
        )
        .await;
    assert_eq!(column(&tagged, "volumeSet", "volumeId").len(), 2);
    assert!(!tagged.body.contains("<key>Name</key>"), "{}", tagged.body);
    let instance = text_of(&reply.body, "instanceId").unwrap();
    let mut devices = column(&reply, "blockDeviceMapping", "deviceName");
    devices.sort();
    assert_eq!(devices, vec!["/dev/sdb", "/dev/xvda"]);
    let root = volume_at(&server, &instance, "/dev/xvda").await.unwrap();
    assert_eq!(
        (root["size"].as_str(), root["volumeType"].as_str()),
        ("20", "gp2")
    );
    assert_eq!(root["encrypted"], "false");
    let extra = volume_at(&server, &instance, "/dev/sdb").await.unwrap();
    assert_eq!(extra["size"], "5");
    assert_eq!(extra["encrypted"], "true");
    assert!(volume(&server, &extra["volumeId"])
        .await
        .body
        .contains("alias/aws/ebs"));

    for (mapping, code) in [
        (
            vec![
                ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
                ("BlockDeviceMapping.1.NoDevice", ""),
            ],
            "InvalidBlockDeviceMapping",
        ),
        (
            vec![("BlockDeviceMapping.1.DeviceName", "/dev/sdf")],
            "InvalidBlockDeviceMapping",
        ),
        (
            vec![
                ("BlockDeviceMapping.1.DeviceName", "/dev/sdf"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "2"),
                ("BlockDeviceMapping.1.Ebs.VolumeType", "st1"),
            ],
            "InvalidParameterValue",
        ),
        (
            vec![
                ("BlockDeviceMapping.1.DeviceName", "/dev/sdf"),
                (
                    "BlockDeviceMapping.1.Ebs.SnapshotId",
                    "snap-0123456789abcdef0",
                ),
            ],
            "InvalidSnapshot.NotFound",
        ),
        (
            vec![
                ("BlockDeviceMapping.1.DeviceName", "/dev/sdf"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "2"),
                ("BlockDeviceMapping.2.DeviceName", "/dev/sdf"),
                ("BlockDeviceMapping.2.Ebs.VolumeSize", "3"),
            ],
            "InvalidBlockDeviceMapping",
        ),
        (
            vec![
                ("TagSpecification.1.ResourceType", "network-interface"),
                ("TagSpecification.1.Tag.1.Key", "k"),
            ],
            "InvalidParameterValue",
        ),
    ] {
        let refused = launch(&server, &mapping).await;
        assert_eq!(error_code(&refused), code, "{mapping:?}");
    }
    // Nothing was made by the refused launches.
    let all = server.user("DescribeVolumes", &[]).await;
    assert_eq!(column(&all, "volumeSet", "volumeId").len(), 2);

    // Terminated: the extra volume goes (DeleteOnTermination by default),
    // the root stays as asked.
    wait_for(&server, &instance, "running").await;
    ok(&server
        .user("TerminateInstances", &[("InstanceId.1", &instance)])
        .await);
    wait_for(&server, &instance, "terminated").await;
    let gone = volume(&server, &extra["volumeId"]).await;
    assert_eq!(error_code(&gone), "InvalidVolume.NotFound");
    let kept = volume(&server, &root["volumeId"]).await;
    assert_eq!(text_of(&kept.body, "status").unwrap(), "available");
    let shown = server
        .user("DescribeInstances", &[("InstanceId.1", &instance)])
        .await;
    assert!(
        shown.body.contains("<blockDeviceMapping/>"),
        "{}",
        shown.body
    );
    server.stop().await;
}

#[tokio::test]
async fn baked_images_give_their_instances_volumes_of_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let reply = launch(
        &server,
        &[
            ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
            ("BlockDeviceMapping.1.Ebs.VolumeSize", "12"),
            ("BlockDeviceMapping.2.DeviceName", "/dev/sdf"),
            ("BlockDeviceMapping.2.Ebs.VolumeSize", "3"),
            ("BlockDeviceMapping.2.Ebs.DeleteOnTermination", "false"),
        ],
    )
    .await;
    let instance = text_of(&reply.body, "instanceId").unwrap();
    wait_for(&server, &instance, "running").await;
    let image = server
        .user(
            "CreateImage",
            &[
                ("InstanceId", &instance),
                ("Name", "two-volumes"),
                ("NoReboot", "true"),
            ],
        )
        .await;
    ok(&image);
    let image = text_of(&image.body, "imageId").unwrap();
    server.clock.advance(chrono::Duration::seconds(10));
    let described = server
        .user("DescribeImages", &[("ImageId.1", &image)])
        .await;
    assert!(
        described.body.contains("<volumeSize>12</volumeSize>"),
        "{}",
        described.body
    );
    assert!(described.body.contains("<volumeSize>3</volumeSize>"));

    // Launched from it: volumes of its snapshots, at least their size.
    let small = server
        .user(
            "RunInstances",
            &[
                ("ImageId", &image),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("Placement.AvailabilityZone", "us-east-1a"),
                ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "4"),
            ],
        )
        .await;
    assert_eq!(
        error_code(&small),
        "InvalidBlockDeviceMapping",
        "{}",
        small.body
    );
    let baked = server
        .user(
            "RunInstances",
            &[
                ("ImageId", &image),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("Placement.AvailabilityZone", "us-east-1a"),
            ],
        )
        .await;
    ok(&baked);
    let baked = text_of(&baked.body, "instanceId").unwrap();
    let root = volume_at(&server, &baked, "/dev/xvda").await.unwrap();
    assert_eq!(root["size"], "12");
    assert!(root["snapshotId"].starts_with("snap-"), "{root:?}");
    let data = volume_at(&server, &baked, "/dev/sdf").await.unwrap();
    assert_eq!(data["size"], "3");
    let data_volume = volume(&server, &data["volumeId"]).await;
    assert_eq!(
        text_of(&data_volume.body, "deleteOnTermination").unwrap(),
        "false"
    );
    server.stop().await;
}

#[tokio::test]
async fn volumes_of_shared_images_and_quota_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"), StorageBackend::Memory);
    config.quotas.max_volumes = 4;
    let server = TestServer::start(config).await;
    let reply = launch(
        &server,
        &[
            ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
            ("BlockDeviceMapping.1.Ebs.VolumeSize", "30"),
            ("BlockDeviceMapping.1.Ebs.Encrypted", "true"),
        ],
    )
    .await;
    let instance = text_of(&reply.body, "instanceId").unwrap();
    wait_for(&server, &instance, "running").await;
    let image = server
        .user(
            "CreateImage",
            &[("InstanceId", &instance), ("Name", "shared-root")],
        )
        .await;
    let image = text_of(&image.body, "imageId").unwrap();
    server.clock.advance(chrono::Duration::seconds(10));
    let root_snapshot = text_of(
        &server
            .user("DescribeImages", &[("ImageId.1", &image)])
            .await
            .body,
        "snapshotId",
    )
    .unwrap();
    // A snapshot of the caller's: an added device smaller than it is refused.
    let small = launch(
        &server,
        &[
            ("BlockDeviceMapping.1.DeviceName", "/dev/sdg"),
            ("BlockDeviceMapping.1.Ebs.SnapshotId", &root_snapshot),
            ("BlockDeviceMapping.1.Ebs.VolumeSize", "10"),
        ],
    )
    .await;
    assert_eq!(
        error_code(&small),
        "InvalidBlockDeviceMapping",
        "{}",
        small.body
    );

    // Shared with another account, without its snapshot: the launch still
    // gets the snapshot's size and encryption.
    ok(&server
        .user(
            "ModifyImageAttribute",
            &[
                ("ImageId", &image),
                ("LaunchPermission.Add.1.UserId", ADMIN_ACCOUNT),
            ],
        )
        .await);
    let theirs = server
        .admin(
            "RunInstances",
            &[("ImageId", &image), ("MinCount", "1"), ("MaxCount", "1")],
        )
        .await;
    ok(&theirs);
    let their_root = text_of(&theirs.body, "volumeId").unwrap();
    let described = server
        .admin("DescribeVolumes", &[("VolumeId.1", &their_root)])
        .await;
    assert_eq!(text_of(&described.body, "size").unwrap(), "30");
    assert_eq!(text_of(&described.body, "encrypted").unwrap(), "true");
    assert_eq!(
        text_of(&described.body, "snapshotId").unwrap(),
        root_snapshot
    );

    // Four volumes allowed: one held, so a launch of up to five instances
    // gets three, and one more launch gets none.
    let many = server
        .user(
            "RunInstances",
            &[("ImageId", IMAGE), ("MinCount", "1"), ("MaxCount", "5")],
        )
        .await;
    ok(&many);
    assert_eq!(column(&many, "instancesSet", "instanceId").len(), 3);
    let none = launch(&server, &[]).await;
    assert_eq!(error_code(&none), "VolumeLimitExceeded", "{}", none.body);
    server.stop().await;
}

#[tokio::test]
async fn instance_attributes_change_volumes_groups_and_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let reply = launch(&server, &[]).await;
    let instance = text_of(&reply.body, "instanceId").unwrap();
    let root = text_of(&reply.body, "volumeId").unwrap();
    wait_for(&server, &instance, "running").await;
    // What `aws ec2 modify-instance-attribute --block-device-mappings` sends.
    ok(&server
        .user(
            "ModifyInstanceAttribute",
            &[
                ("InstanceId", &instance),
                ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
                ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "false"),
            ],
        )
        .await);
    let attribute = server
        .user(
            "DescribeInstanceAttribute",
            &[
                ("InstanceId", &instance),
                ("Attribute", "blockDeviceMapping"),
            ],
        )
        .await;
    ok(&attribute);
    assert_eq!(text_of(&attribute.body, "volumeId").unwrap(), root);
    assert_eq!(
        text_of(&attribute.body, "deleteOnTermination").unwrap(),
        "false"
    );
    let described = volume(&server, &root).await;
    assert_eq!(
        text_of(&described.body, "deleteOnTermination").unwrap(),
        "false"
    );
    let unknown = server
        .user(
            "ModifyInstanceAttribute",
            &[
                ("InstanceId", &instance),
                ("BlockDeviceMapping.1.DeviceName", "/dev/sdz"),
                ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true"),
            ],
        )
        .await;
    assert_eq!(error_code(&unknown), "InvalidParameterValue");

    // Its groups and source/destination check are its primary interface's.
    let group = server
        .user(
            "CreateSecurityGroup",
            &[("GroupName", "attr"), ("GroupDescription", "attr")],
        )
        .await;
    let group = text_of(&group.body, "groupId").unwrap();
    ok(&server
        .user(
            "ModifyInstanceAttribute",
            &[("InstanceId", &instance), ("GroupId.1", &group)],
        )
        .await);
    ok(&server
        .user(
            "ModifyInstanceAttribute",
            &[
                ("InstanceId", &instance),
                ("SourceDestCheck.Value", "false"),
            ],
        )
        .await);
    let check = server
        .user(
            "DescribeInstanceAttribute",
            &[("InstanceId", &instance), ("Attribute", "sourceDestCheck")],
        )
        .await;
    assert_eq!(text_of(&check.body, "value").unwrap(), "false");
    let eni = format!("eni-{}", instance.trim_start_matches("i-"));
    let interface = server
        .user(
            "DescribeNetworkInterfaces",
            &[("NetworkInterfaceId.1", &eni)],
        )
        .await;
    assert_eq!(text_of(&interface.body, "groupId").unwrap(), group);
    assert!(interface
        .body
        .contains("<sourceDestCheck>false</sourceDestCheck>"));
    let both = server
        .user(
            "ModifyInstanceAttribute",
            &[
                ("InstanceId", &instance),
                ("GroupId.1", &group),
                ("SourceDestCheck.Value", "true"),
            ],
        )
        .await;
    assert_eq!(error_code(&both), "InvalidParameterCombination");

    // Terminated: the root volume stays, as now asked.
    ok(&server
        .user("TerminateInstances", &[("InstanceId.1", &instance)])
        .await);
    wait_for(&server, &instance, "terminated").await;
    assert_eq!(
        text_of(&volume(&server, &root).await.body, "status").unwrap(),
        "available"
    );
    server.stop().await;
}

/// A zone added after the account's first launch: a launch into it makes
/// exactly its instances, their volumes and their booked vCPUs.
#[tokio::test]
async fn a_launch_into_a_zone_added_later_books_exactly_its_instances() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    // The account's default network exists before the new zone does.
    ok(&launch(&server, &[]).await);
    ok(&server
        .admin(
            "AdminAddHost",
            &[
                ("HostName", "late-d1"),
                ("AvailabilityZone", "us-east-1d"),
                ("Vcpus", "8"),
                ("MemoryMib", "16384"),
            ],
        )
        .await);
    let reply = server
        .user(
            "RunInstances",
            &[
                ("ImageId", IMAGE),
                ("MinCount", "2"),
                ("MaxCount", "2"),
                ("Placement.AvailabilityZone", "us-east-1d"),
            ],
        )
        .await;
    ok(&reply);
    let in_zone = server
        .user(
            "DescribeInstances",
            &[
                ("Filter.1.Name", "availability-zone"),
                ("Filter.1.Value.1", "us-east-1d"),
            ],
        )
        .await;
    assert_eq!(
        column(&in_zone, "instancesSet", "instanceId").len(),
        2,
        "{}",
        in_zone.body
    );
    let volumes = server
        .user(
            "DescribeVolumes",
            &[
                ("Filter.1.Name", "availability-zone"),
                ("Filter.1.Value.1", "us-east-1d"),
            ],
        )
        .await;
    assert_eq!(column(&volumes, "volumeSet", "volumeId").len(), 2);
    // The host holds the two instances' vCPUs (t2.micro: 1 each), no more.
    let hosts = server.admin("AdminDescribeHosts", &[]).await;
    let late = hosts
        .body
        .split("<hostName>late-d1</hostName>")
        .nth(1)
        .unwrap();
    assert_eq!(text_of(late, "vcpusUsed").unwrap(), "2", "{}", hosts.body);
    server.stop().await;
}
