//! Create-volume permissions: a snapshot shared with another account (or
//! made public) is listed (`RestorableBy`), restored into a volume and
//! copied there, and no longer once the grant goes or the snapshot is
//! deleted; only the owner changes or reads the permissions.

mod common;

use common::*;
use ec2_gateway::client::{text_of, Reply};
use ec2_gateway::config::StorageBackend;

async fn theirs_see(server: &TestServer, snapshot: &str) -> Reply {
    server
        .admin("DescribeSnapshots", &[("SnapshotId.1", snapshot)])
        .await
}

#[tokio::test]
async fn snapshots_are_shared_restored_copied_and_unshared() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        TestServer::start(test_config(&dir.path().join("data"), StorageBackend::Sled)).await;
    let volume = server
        .user(
            "CreateVolume",
            &[("AvailabilityZone", "us-east-1a"), ("Size", "6")],
        )
        .await;
    let volume = text_of(&volume.body, "volumeId").unwrap();
    let snapshot = server
        .user("CreateSnapshot", &[("VolumeId", &volume)])
        .await;
    let snapshot = text_of(&snapshot.body, "snapshotId").unwrap();
    assert_eq!(
        error_code(&theirs_see(&server, &snapshot).await),
        "InvalidSnapshot.NotFound"
    );

    let shared = server
        .user(
            "ModifySnapshotAttribute",
            &[
                ("SnapshotId", &snapshot),
                ("Attribute", "createVolumePermission"),
                ("OperationType", "add"),
                ("UserId.1", ADMIN_ACCOUNT),
            ],
        )
        .await;
    assert_eq!(shared.status, 200, "{}", shared.body);
    let seen = theirs_see(&server, &snapshot).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(text_of(&seen.body, "ownerId").unwrap(), USER_ACCOUNT);
    let restorable = server
        .admin("DescribeSnapshots", &[("RestorableBy.1", "self")])
        .await;
    assert_eq!(
        column(&restorable, "snapshotSet", "snapshotId"),
        std::slice::from_ref(&snapshot)
    );
    let owned = server
        .admin("DescribeSnapshots", &[("Owner.1", "self")])
        .await;
    assert!(owned.body.contains("<snapshotSet/>"), "{}", owned.body);
    // Restored and copied there, into its own account.
    let restored = server
        .admin(
            "CreateVolume",
            &[
                ("AvailabilityZone", "us-east-1b"),
                ("SnapshotId", &snapshot),
            ],
        )
        .await;
    assert_eq!(restored.status, 200, "{}", restored.body);
    assert_eq!(text_of(&restored.body, "size").unwrap(), "6");
    let copied = server
        .admin(
            "CopySnapshot",
            &[
                ("SourceSnapshotId", &snapshot),
                ("SourceRegion", "us-east-1"),
            ],
        )
        .await;
    assert_eq!(copied.status, 200, "{}", copied.body);
    // Only the owner reads or changes the permissions.
    let attribute = server
        .user(
            "DescribeSnapshotAttribute",
            &[
                ("SnapshotId", &snapshot),
                ("Attribute", "createVolumePermission"),
            ],
        )
        .await;
    assert_eq!(attribute.status, 200, "{}", attribute.body);
    assert_eq!(text_of(&attribute.body, "userId").unwrap(), ADMIN_ACCOUNT);
    let peek = server
        .admin(
            "DescribeSnapshotAttribute",
            &[
                ("SnapshotId", &snapshot),
                ("Attribute", "createVolumePermission"),
            ],
        )
        .await;
    assert_eq!(error_code(&peek), "UnauthorizedOperation");
    let grab = server
        .admin(
            "ModifySnapshotAttribute",
            &[
                ("SnapshotId", &snapshot),
                ("CreateVolumePermission.Add.1.Group", "all"),
            ],
        )
        .await;
    assert_eq!(error_code(&grab), "UnauthorizedOperation");
    // Another account cannot tag or delete it.
    let delete = server
        .admin("DeleteSnapshot", &[("SnapshotId", &snapshot)])
        .await;
    assert_eq!(error_code(&delete), "InvalidSnapshot.NotFound");

    // Public, then reset; deleted, gone for everyone.
    let public = server
        .user(
            "ModifySnapshotAttribute",
            &[
                ("SnapshotId", &snapshot),
                ("CreateVolumePermission.Remove.1.UserId", ADMIN_ACCOUNT),
                ("CreateVolumePermission.Add.1.Group", "all"),
            ],
        )
        .await;
    assert_eq!(public.status, 200, "{}", public.body);
    let everyone = server
        .admin("DescribeSnapshots", &[("RestorableBy.1", "all")])
        .await;
    assert_eq!(
        column(&everyone, "snapshotSet", "snapshotId"),
        std::slice::from_ref(&snapshot)
    );
    let reset = server
        .user(
            "ResetSnapshotAttribute",
            &[
                ("SnapshotId", &snapshot),
                ("Attribute", "createVolumePermission"),
            ],
        )
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(
        error_code(&theirs_see(&server, &snapshot).await),
        "InvalidSnapshot.NotFound"
    );
    server
        .user(
            "ModifySnapshotAttribute",
            &[
                ("SnapshotId", &snapshot),
                ("CreateVolumePermission.Add.1.UserId", ADMIN_ACCOUNT),
            ],
        )
        .await;
    let deleted = server
        .user("DeleteSnapshot", &[("SnapshotId", &snapshot)])
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(
        error_code(&theirs_see(&server, &snapshot).await),
        "InvalidSnapshot.NotFound"
    );
    server.stop().await;
}

#[tokio::test]
async fn encrypted_volumes_and_their_snapshots_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let volume = server
        .user(
            "CreateVolume",
            &[
                ("AvailabilityZone", "us-east-1a"),
                ("Size", "2"),
                ("Encrypted", "true"),
            ],
        )
        .await;
    assert_eq!(volume.status, 200, "{}", volume.body);
    assert_eq!(text_of(&volume.body, "encrypted").unwrap(), "true");
    assert!(text_of(&volume.body, "kmsKeyId")
        .unwrap()
        .ends_with(":alias/aws/ebs"));
    let volume = text_of(&volume.body, "volumeId").unwrap();
    let plain = server
        .user(
            "CreateVolume",
            &[("AvailabilityZone", "us-east-1a"), ("Size", "2")],
        )
        .await;
    assert_eq!(text_of(&plain.body, "encrypted").unwrap(), "false");
    let encrypted = server
        .user(
            "DescribeVolumes",
            &[("Filter.1.Name", "encrypted"), ("Filter.1.Value.1", "true")],
        )
        .await;
    assert_eq!(
        column(&encrypted, "volumeSet", "volumeId"),
        std::slice::from_ref(&volume)
    );
    // Its snapshot is encrypted, and so is a volume restored from it.
    let snapshot = server
        .user("CreateSnapshot", &[("VolumeId", &volume)])
        .await;
    assert_eq!(text_of(&snapshot.body, "encrypted").unwrap(), "true");
    let snapshot = text_of(&snapshot.body, "snapshotId").unwrap();
    let restored = server
        .user(
            "CreateVolume",
            &[
                ("AvailabilityZone", "us-east-1b"),
                ("SnapshotId", &snapshot),
            ],
        )
        .await;
    assert_eq!(text_of(&restored.body, "encrypted").unwrap(), "true");
    let key_alone = server
        .user(
            "CreateVolume",
            &[
                ("AvailabilityZone", "us-east-1a"),
                ("Size", "2"),
                ("KmsKeyId", "alias/mine"),
            ],
        )
        .await;
    assert_eq!(error_code(&key_alone), "InvalidParameterCombination");
    server.stop().await;
}
