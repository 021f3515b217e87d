//! CreateImage and CopyImage: an image of an instance maps snapshots of its
//! volumes, is `pending` until they complete and cannot be launched before;
//! copies take their own snapshots; ClientToken retries, names, states,
//! regions and other accounts answer as EC2 does.

mod common;

use common::*;
use ec2_gateway::client::{text_of, Reply};
use ec2_gateway::config::StorageBackend;

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

async fn ok(server: &TestServer, action: &str, params: &[(&str, &str)]) -> Reply {
    let reply = server.user(action, params).await;
    assert_eq!(reply.status, 200, "{action}: {}", reply.body);
    reply
}

async fn image_of(server: &TestServer, image: &str) -> Reply {
    ok(server, "DescribeImages", &[("ImageId.1", image)]).await
}

#[tokio::test]
async fn an_image_of_an_instance_maps_its_volumes_and_becomes_available() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"), StorageBackend::Memory);
    config.lifecycle.snapshot_delay_secs = 5;
    let server = TestServer::start(config).await;
    let run = ok(
        &server,
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
    let instance = text_of(&run.body, "instanceId").unwrap();
    wait_for(&server, &instance, "running").await;
    let volume = ok(
        &server,
        "CreateVolume",
        &[
            ("AvailabilityZone", "us-east-1a"),
            ("Size", "12"),
            ("VolumeType", "gp3"),
        ],
    )
    .await;
    let volume = text_of(&volume.body, "volumeId").unwrap();
    ok(
        &server,
        "AttachVolume",
        &[
            ("VolumeId", &volume),
            ("InstanceId", &instance),
            ("Device", "/dev/sdf"),
        ],
    )
    .await;

    let created = ok(
        &server,
        "CreateImage",
        &[
            ("InstanceId", &instance),
            ("Name", "baked-1"),
            ("Description", "from a running instance"),
            ("NoReboot", "true"),
            ("TagSpecification.1.ResourceType", "image"),
            ("TagSpecification.1.Tag.1.Key", "stage"),
            ("TagSpecification.1.Tag.1.Value", "golden"),
            ("TagSpecification.2.ResourceType", "snapshot"),
            ("TagSpecification.2.Tag.1.Key", "from"),
            ("TagSpecification.2.Tag.1.Value", "baked-1"),
        ],
    )
    .await;
    let baked = text_of(&created.body, "imageId").unwrap();
    let pending = image_of(&server, &baked).await;
    assert_eq!(text_of(&pending.body, "imageState").unwrap(), "pending");
    // The root volume (8 GiB, gone with the instance) and the data volume.
    let mut devices = column(&pending, "blockDeviceMapping", "deviceName");
    devices.sort();
    assert_eq!(devices, vec!["/dev/sdf", "/dev/xvda"]);
    assert!(pending.body.contains("<volumeSize>12</volumeSize>"));
    assert!(pending.body.contains("<volumeSize>8</volumeSize>"));
    assert!(pending.body.contains("<key>stage</key>"));
    let of_data_volume = ok(
        &server,
        "DescribeSnapshots",
        &[
            ("Filter.1.Name", "volume-id"),
            ("Filter.1.Value.1", &volume),
        ],
    )
    .await;
    let snapshot = text_of(&of_data_volume.body, "snapshotId").unwrap();
    let too_soon = server
        .user(
            "RunInstances",
            &[("ImageId", &baked), ("MinCount", "1"), ("MaxCount", "1")],
        )
        .await;
    assert_eq!(error_code(&too_soon), "InvalidAMIID.Unavailable");
    let snapshots = ok(&server, "DescribeSnapshots", &[("SnapshotId.1", &snapshot)]).await;
    assert_eq!(text_of(&snapshots.body, "volumeId").unwrap(), volume);
    assert!(
        snapshots.body.contains("<value>baked-1</value>"),
        "{}",
        snapshots.body
    );

    server.clock.advance(chrono::Duration::seconds(6));
    let available = ok(
        &server,
        "DescribeImages",
        &[
            ("Filter.1.Name", "state"),
            ("Filter.1.Value.1", "available"),
            ("Owner.1", "self"),
        ],
    )
    .await;
    assert_eq!(
        column(&available, "imagesSet", "imageId"),
        std::slice::from_ref(&baked)
    );
    let launched = ok(
        &server,
        "RunInstances",
        &[("ImageId", &baked), ("MinCount", "1"), ("MaxCount", "1")],
    )
    .await;
    assert_eq!(text_of(&launched.body, "imageId").unwrap(), baked);
    // Its snapshot is in use; the name is taken.
    let in_use = server
        .user("DeleteSnapshot", &[("SnapshotId", &snapshot)])
        .await;
    assert_eq!(error_code(&in_use), "InvalidSnapshot.InUse");
    let again = server
        .user(
            "CreateImage",
            &[("InstanceId", &instance), ("Name", "baked-1")],
        )
        .await;
    assert_eq!(error_code(&again), "InvalidAMIName.Duplicate");
    // Not another account's instance, nor a terminated one.
    let theirs = server
        .admin(
            "CreateImage",
            &[("InstanceId", &instance), ("Name", "stolen")],
        )
        .await;
    assert_eq!(error_code(&theirs), "InvalidInstanceID.NotFound");
    let terminated = text_of(&launched.body, "instanceId").unwrap();
    ok(
        &server,
        "TerminateInstances",
        &[("InstanceId.1", &terminated)],
    )
    .await;
    wait_for(&server, &terminated, "terminated").await;
    let late = server
        .user(
            "CreateImage",
            &[("InstanceId", &terminated), ("Name", "late")],
        )
        .await;
    assert_eq!(error_code(&late), "IncorrectInstanceState");
    server.stop().await;
}

#[tokio::test]
async fn copies_take_their_own_snapshots_and_answer_retries_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let run = ok(
        &server,
        "RunInstances",
        &[
            ("ImageId", IMAGE),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("Placement.AvailabilityZone", "us-east-1b"),
        ],
    )
    .await;
    let instance = text_of(&run.body, "instanceId").unwrap();
    wait_for(&server, &instance, "running").await;
    let volume = ok(
        &server,
        "CreateVolume",
        &[("AvailabilityZone", "us-east-1b"), ("Size", "4")],
    )
    .await;
    let volume = text_of(&volume.body, "volumeId").unwrap();
    ok(
        &server,
        "AttachVolume",
        &[
            ("VolumeId", &volume),
            ("InstanceId", &instance),
            ("Device", "/dev/sdg"),
        ],
    )
    .await;
    let created = ok(
        &server,
        "CreateImage",
        &[
            ("InstanceId", &instance),
            ("Name", "source"),
            ("TagSpecification.1.ResourceType", "image"),
            ("TagSpecification.1.Tag.1.Key", "team"),
            ("TagSpecification.1.Tag.1.Value", "web"),
        ],
    )
    .await;
    let source = text_of(&created.body, "imageId").unwrap();
    let source_snapshot = text_of(&image_of(&server, &source).await.body, "snapshotId").unwrap();

    let copy = [
        ("SourceImageId", source.as_str()),
        ("SourceRegion", "us-east-1"),
        ("Name", "copy-1"),
        ("ClientToken", "copy-token"),
        ("CopyImageTags", "true"),
    ];
    let copied = ok(&server, "CopyImage", &copy).await;
    let copy_id = text_of(&copied.body, "imageId").unwrap();
    let retried = ok(&server, "CopyImage", &copy).await;
    assert_eq!(text_of(&retried.body, "imageId").unwrap(), copy_id);
    let described = image_of(&server, &copy_id).await;
    let copy_snapshot = text_of(&described.body, "snapshotId").unwrap();
    assert_ne!(copy_snapshot, source_snapshot);
    assert!(
        described.body.contains("<key>team</key>"),
        "{}",
        described.body
    );
    assert_eq!(
        column(
            &ok(&server, "DescribeImages", &[("Owner.1", "self")]).await,
            "imagesSet",
            "imageId"
        )
        .len(),
        2
    );
    let elsewhere = server
        .user(
            "CopyImage",
            &[
                ("SourceImageId", &source),
                ("SourceRegion", "eu-west-1"),
                ("Name", "far"),
            ],
        )
        .await;
    assert_eq!(error_code(&elsewhere), "UnsupportedOperation");
    // A catalogue image copies too (no snapshots to copy).
    ok(
        &server,
        "CopyImage",
        &[
            ("SourceImageId", IMAGE),
            ("SourceRegion", "us-east-1"),
            ("Name", "debian-copy"),
        ],
    )
    .await;
    // Another account copies only what it may launch: once shared, the
    // copy is its own.
    let hidden = server
        .admin(
            "CopyImage",
            &[
                ("SourceImageId", &source),
                ("SourceRegion", "us-east-1"),
                ("Name", "mine"),
            ],
        )
        .await;
    assert_eq!(error_code(&hidden), "InvalidAMIID.NotFound");
    ok(
        &server,
        "ModifyImageAttribute",
        &[
            ("ImageId", &source),
            ("LaunchPermission.Add.1.UserId", ADMIN_ACCOUNT),
        ],
    )
    .await;
    let copy_theirs = [
        ("SourceImageId", source.as_str()),
        ("SourceRegion", "us-east-1"),
        ("Name", "mine"),
        ("CopyImageTags", "true"),
    ];
    // The image alone is not its storage: its snapshot must be shared too.
    let storage = server.admin("CopyImage", &copy_theirs).await;
    assert_eq!(
        (storage.status, error_code(&storage).as_str()),
        (401, "AuthFailure")
    );
    for snapshot in all_text(&image_of(&server, &source).await.body, "snapshotId") {
        ok(
            &server,
            "ModifySnapshotAttribute",
            &[
                ("SnapshotId", &snapshot),
                ("CreateVolumePermission.Add.1.UserId", ADMIN_ACCOUNT),
            ],
        )
        .await;
    }
    let theirs = server.admin("CopyImage", &copy_theirs).await;
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    let their_copy = text_of(&theirs.body, "imageId").unwrap();
    let owned = server
        .admin("DescribeImages", &[("ImageId.1", &their_copy)])
        .await;
    assert_eq!(text_of(&owned.body, "imageOwnerId").unwrap(), ADMIN_ACCOUNT);
    // The owner's tags and volume ids stay with the owner.
    assert!(!owned.body.contains("<key>team</key>"), "{}", owned.body);
    let their_snapshot = text_of(&owned.body, "snapshotId").unwrap();
    let copied = server
        .admin("DescribeSnapshots", &[("SnapshotId.1", &their_snapshot)])
        .await;
    assert_eq!(text_of(&copied.body, "volumeId").unwrap(), "vol-ffffffff");
    let shared_view = server
        .admin("DescribeImages", &[("ImageId.1", &source)])
        .await;
    assert!(
        !shared_view.body.contains("<key>team</key>"),
        "{}",
        shared_view.body
    );
    server.stop().await;
}

/// The text of every element named `name`.
fn all_text(body: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    body.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(text, _)| text.to_string()))
        .collect()
}
