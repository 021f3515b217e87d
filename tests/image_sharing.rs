//! Launch permissions: an image shared with another account (or made
//! public) is seen, described and launched there, and no longer once the
//! grant goes, is reset, or the image is deregistered; only the owner
//! changes or reads the permissions.

mod common;

use common::*;
use ec2_gateway::client::{text_of, Reply};
use ec2_gateway::config::StorageBackend;

async fn theirs_see(server: &TestServer, image: &str) -> Reply {
    server
        .admin("DescribeImages", &[("ImageId.1", image)])
        .await
}

#[tokio::test]
async fn images_are_shared_with_accounts_and_everyone_and_unshared() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Sled);
    let server = TestServer::start(config.clone()).await;
    let registered = server
        .user(
            "RegisterImage",
            &[("Name", "golden-2026"), ("Architecture", "x86_64")],
        )
        .await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    let image = text_of(&registered.body, "imageId").unwrap();
    assert_eq!(
        error_code(&theirs_see(&server, &image).await),
        "InvalidAMIID.NotFound"
    );

    // Shared with the other account: seen, executable by it, launched.
    let share = server
        .user(
            "ModifyImageAttribute",
            &[
                ("ImageId", &image),
                ("LaunchPermission.Add.1.UserId", ADMIN_ACCOUNT),
            ],
        )
        .await;
    assert_eq!(share.status, 200, "{}", share.body);
    let seen = theirs_see(&server, &image).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(text_of(&seen.body, "imageOwnerId").unwrap(), USER_ACCOUNT);
    let executable = server
        .admin("DescribeImages", &[("ExecutableBy.1", "self")])
        .await;
    assert_eq!(
        column(&executable, "imagesSet", "imageId"),
        std::slice::from_ref(&image)
    );
    let launched = server
        .admin(
            "RunInstances",
            &[
                ("ImageId", &image),
                ("InstanceType", "t3.micro"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
            ],
        )
        .await;
    assert_eq!(launched.status, 200, "{}", launched.body);
    // Only the owner reads and changes the permissions.
    let attribute = server
        .user(
            "DescribeImageAttribute",
            &[("ImageId", &image), ("Attribute", "launchPermission")],
        )
        .await;
    assert_eq!(attribute.status, 200, "{}", attribute.body);
    assert_eq!(text_of(&attribute.body, "userId").unwrap(), ADMIN_ACCOUNT);
    let peek = server
        .admin(
            "DescribeImageAttribute",
            &[("ImageId", &image), ("Attribute", "launchPermission")],
        )
        .await;
    assert_eq!(error_code(&peek), "UnauthorizedOperation");
    let grab = server
        .admin(
            "ModifyImageAttribute",
            &[("ImageId", &image), ("LaunchPermission.Add.1.Group", "all")],
        )
        .await;
    assert_eq!(error_code(&grab), "UnauthorizedOperation");
    let malformed = server
        .user(
            "ModifyImageAttribute",
            &[("ImageId", &image), ("LaunchPermission.Add.1.UserId", "12")],
        )
        .await;
    assert_eq!(error_code(&malformed), "InvalidUserID.Malformed");

    // The older form removes it again.
    let unshare = server
        .user(
            "ModifyImageAttribute",
            &[
                ("ImageId", &image),
                ("Attribute", "launchPermission"),
                ("OperationType", "remove"),
                ("UserId.1", ADMIN_ACCOUNT),
            ],
        )
        .await;
    assert_eq!(unshare.status, 200, "{}", unshare.body);
    assert_eq!(
        error_code(&theirs_see(&server, &image).await),
        "InvalidAMIID.NotFound"
    );

    // Public: seen by everyone as public, kept across a restart, then reset.
    let public = server
        .user(
            "ModifyImageAttribute",
            &[("ImageId", &image), ("LaunchPermission.Add.1.Group", "all")],
        )
        .await;
    assert_eq!(public.status, 200, "{}", public.body);
    server.stop().await;
    let server = TestServer::start(config).await;
    let listed = server
        .admin(
            "DescribeImages",
            &[
                ("Filter.1.Name", "is-public"),
                ("Filter.1.Value.1", "true"),
                ("Owner.1", USER_ACCOUNT),
            ],
        )
        .await;
    assert_eq!(
        column(&listed, "imagesSet", "imageId"),
        std::slice::from_ref(&image)
    );
    let described = server
        .user(
            "ModifyImageAttribute",
            &[("ImageId", &image), ("Description.Value", "hardened")],
        )
        .await;
    assert_eq!(described.status, 200, "{}", described.body);
    assert_eq!(
        text_of(&theirs_see(&server, &image).await.body, "description").unwrap(),
        "hardened"
    );
    let reset = server
        .user(
            "ResetImageAttribute",
            &[("ImageId", &image), ("Attribute", "launchPermission")],
        )
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(
        error_code(&theirs_see(&server, &image).await),
        "InvalidAMIID.NotFound"
    );

    // Deregistered: gone for those it was shared with too.
    server
        .user(
            "ModifyImageAttribute",
            &[
                ("ImageId", &image),
                ("LaunchPermission.Add.1.UserId", ADMIN_ACCOUNT),
            ],
        )
        .await;
    assert_eq!(theirs_see(&server, &image).await.status, 200);
    let gone = server.user("DeregisterImage", &[("ImageId", &image)]).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(
        error_code(&theirs_see(&server, &image).await),
        "InvalidAMIID.NotFound"
    );
    let executable = server
        .admin("DescribeImages", &[("ExecutableBy.1", "self")])
        .await;
    assert!(
        executable.body.contains("<imagesSet/>"),
        "{}",
        executable.body
    );
    server.stop().await;
}
