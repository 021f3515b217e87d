//! Launch templates through the in-process server: create, versions from a
//! source, the default version, `$Latest`/`$Default`, launches from a
//! template with the request overriding it member by member, deletion of
//! versions and templates, EC2's error codes, isolation and a restart.

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

async fn refused(server: &TestServer, action: &str, params: &[(&str, &str)]) -> String {
    let reply = server.user(action, params).await;
    assert!(reply.status >= 400, "{action}: {}", reply.body);
    error_code(&reply)
}

/// The one instance a RunInstances answer launched: `(type, zone, key)`.
fn launched(reply: &Reply) -> (String, String, String) {
    (
        text_of(&reply.body, "instanceType").unwrap(),
        text_of(&reply.body, "availabilityZone").unwrap(),
        text_of(&reply.body, "keyName").unwrap_or_default(),
    )
}

#[tokio::test]
async fn templates_version_and_launch_with_the_request_winning() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Sled);
    let server = TestServer::start(config.clone()).await;
    ok(&server, "CreateKeyPair", &[("KeyName", "ops")]).await;
    let created = ok(
        &server,
        "CreateLaunchTemplate",
        &[
            ("LaunchTemplateName", "web-tier"),
            ("VersionDescription", "first"),
            ("LaunchTemplateData.ImageId", IMAGE),
            ("LaunchTemplateData.InstanceType", "t3.micro"),
            ("LaunchTemplateData.KeyName", "ops"),
            (
                "LaunchTemplateData.Placement.AvailabilityZone",
                "us-east-1b",
            ),
            ("LaunchTemplateData.SecurityGroup.1", "default"),
            (
                "LaunchTemplateData.BlockDeviceMapping.1.DeviceName",
                "/dev/xvda",
            ),
            (
                "LaunchTemplateData.BlockDeviceMapping.1.Ebs.VolumeSize",
                "20",
            ),
            (
                "LaunchTemplateData.TagSpecification.1.ResourceType",
                "instance",
            ),
            ("LaunchTemplateData.TagSpecification.1.Tag.1.Key", "tier"),
            ("LaunchTemplateData.TagSpecification.1.Tag.1.Value", "web"),
            ("TagSpecification.1.ResourceType", "launch-template"),
            ("TagSpecification.1.Tag.1.Key", "team"),
            ("TagSpecification.1.Tag.1.Value", "infra"),
        ],
    )
    .await;
    let template = text_of(&created.body, "launchTemplateId").unwrap();
    assert!(template.starts_with("lt-"));
    assert_eq!(text_of(&created.body, "defaultVersionNumber").unwrap(), "1");
    assert_eq!(
        refused(
            &server,
            "CreateLaunchTemplate",
            &[
                ("LaunchTemplateName", "web-tier"),
                ("LaunchTemplateData.ImageId", IMAGE)
            ]
        )
        .await,
        "InvalidLaunchTemplateName.AlreadyExistsException"
    );
    assert_eq!(
        refused(
            &server,
            "CreateLaunchTemplate",
            &[
                ("LaunchTemplateName", "a b"),
                ("LaunchTemplateData.ImageId", IMAGE)
            ]
        )
        .await,
        "InvalidLaunchTemplateName.MalformedException"
    );
    assert_eq!(
        refused(
            &server,
            "CreateLaunchTemplate",
            &[
                ("LaunchTemplateName", "metered"),
                ("LaunchTemplateData.MetadataOptions.HttpTokens", "required")
            ]
        )
        .await,
        "UnsupportedOperation"
    );

    // Version 2 from version 1: only the instance type changes.
    let v2 = ok(
        &server,
        "CreateLaunchTemplateVersion",
        &[
            ("LaunchTemplateName", "web-tier"),
            ("SourceVersion", "1"),
            ("VersionDescription", "bigger"),
            ("LaunchTemplateData.InstanceType", "t3.small"),
        ],
    )
    .await;
    assert_eq!(text_of(&v2.body, "versionNumber").unwrap(), "2");
    assert!(v2.body.contains("<imageId>ami-0b1c2d3e4f5a6b7c8</imageId>"));
    assert!(v2.body.contains("<instanceType>t3.small</instanceType>"));
    assert_eq!(text_of(&v2.body, "volumeSize").unwrap(), "20");
    assert!(v2.body.contains("<item>default</item>"), "{}", v2.body);

    // A launch from the template takes its default version (1) ...
    let run = |version: Option<&'static str>, extra: Vec<(&'static str, &'static str)>| {
        let (server, template) = (&server, template.clone());
        async move {
            let mut params: Vec<(&str, &str)> = vec![
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("LaunchTemplate.LaunchTemplateId", template.as_str()),
            ];
            if let Some(version) = version {
                params.push(("LaunchTemplate.Version", version));
            }
            params.extend(extra);
            server.user("RunInstances", &params).await
        }
    };
    let first = run(None, vec![]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        launched(&first),
        ("t3.micro".into(), "us-east-1b".into(), "ops".into())
    );
    assert!(first.body.contains("<key>tier</key>"), "{}", first.body);
    // ... `$Latest` the newest; the request's own members win.
    let latest = run(
        Some("$Latest"),
        vec![("Placement.AvailabilityZone", "us-east-1c")],
    )
    .await;
    assert_eq!(latest.status, 200, "{}", latest.body);
    assert_eq!(
        launched(&latest),
        ("t3.small".into(), "us-east-1c".into(), "ops".into())
    );
    // By name, and a version that does not exist.
    let by_name = server
        .user(
            "RunInstances",
            &[
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("LaunchTemplate.LaunchTemplateName", "web-tier"),
                ("LaunchTemplate.Version", "9"),
            ],
        )
        .await;
    assert_eq!(
        error_code(&by_name),
        "InvalidLaunchTemplateId.VersionNotFound"
    );
    let unknown = server
        .user(
            "RunInstances",
            &[
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("LaunchTemplate.LaunchTemplateName", "nope"),
            ],
        )
        .await;
    assert_eq!(
        error_code(&unknown),
        "InvalidLaunchTemplateName.NotFoundException"
    );

    // The default version moves; the default cannot be deleted.
    let modified = ok(
        &server,
        "ModifyLaunchTemplate",
        &[("LaunchTemplateId", &template), ("SetDefaultVersion", "2")],
    )
    .await;
    assert_eq!(
        text_of(&modified.body, "defaultVersionNumber").unwrap(),
        "2"
    );
    let default = run(None, vec![]).await;
    assert_eq!(launched(&default).0, "t3.small");
    let deleted = ok(
        &server,
        "DeleteLaunchTemplateVersions",
        &[
            ("LaunchTemplateId", &template),
            ("LaunchTemplateVersion.1", "1"),
            ("LaunchTemplateVersion.2", "2"),
        ],
    )
    .await;
    assert_eq!(
        column(
            &deleted,
            "successfullyDeletedLaunchTemplateVersionSet",
            "versionNumber"
        ),
        ["1"]
    );
    assert_eq!(
        column(
            &deleted,
            "unsuccessfullyDeletedLaunchTemplateVersionSet",
            "versionNumber"
        ),
        ["2"]
    );
    let versions = ok(
        &server,
        "DescribeLaunchTemplateVersions",
        &[("LaunchTemplateId", &template)],
    )
    .await;
    assert_eq!(
        column(&versions, "launchTemplateVersionSet", "versionNumber"),
        ["2"]
    );
    assert_eq!(
        column(&versions, "launchTemplateVersionSet", "defaultVersion"),
        ["true"]
    );

    // Another account sees nothing of it.
    let theirs = server
        .admin(
            "DescribeLaunchTemplates",
            &[("LaunchTemplateId.1", &template)],
        )
        .await;
    assert_eq!(error_code(&theirs), "InvalidLaunchTemplateId.NotFound");
    let theirs = server
        .admin(
            "RunInstances",
            &[
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("LaunchTemplate.LaunchTemplateId", &template),
            ],
        )
        .await;
    assert_eq!(error_code(&theirs), "InvalidLaunchTemplateId.NotFound");

    // Kept across a restart, tags included; then deleted with its versions.
    server.stop().await;
    let server = TestServer::start(config).await;
    let listed = ok(
        &server,
        "DescribeLaunchTemplates",
        &[("Filter.1.Name", "tag:team"), ("Filter.1.Value.1", "infra")],
    )
    .await;
    assert_eq!(
        column(&listed, "launchTemplates", "launchTemplateName"),
        ["web-tier"]
    );
    ok(
        &server,
        "DeleteLaunchTemplate",
        &[("LaunchTemplateName", "web-tier")],
    )
    .await;
    assert_eq!(
        refused(
            &server,
            "DescribeLaunchTemplateVersions",
            &[("LaunchTemplateId", &template)]
        )
        .await,
        "InvalidLaunchTemplateId.NotFound"
    );
    // The name is free again.
    ok(
        &server,
        "CreateLaunchTemplate",
        &[
            ("LaunchTemplateName", "web-tier"),
            ("LaunchTemplateData.ImageId", IMAGE),
        ],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_template_names_the_subnet_and_groups_of_its_network_interface() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let vpc = ok(&server, "CreateVpc", &[("CidrBlock", "10.9.0.0/16")]).await;
    let vpc = text_of(&vpc.body, "vpcId").unwrap();
    let subnet = ok(
        &server,
        "CreateSubnet",
        &[
            ("VpcId", &vpc),
            ("CidrBlock", "10.9.3.0/24"),
            ("AvailabilityZone", "us-east-1c"),
        ],
    )
    .await;
    let subnet = text_of(&subnet.body, "subnetId").unwrap();
    let group = ok(
        &server,
        "CreateSecurityGroup",
        &[
            ("GroupName", "app"),
            ("GroupDescription", "app"),
            ("VpcId", &vpc),
        ],
    )
    .await;
    let group = text_of(&group.body, "groupId").unwrap();
    ok(
        &server,
        "CreateLaunchTemplate",
        &[
            ("LaunchTemplateName", "in-subnet"),
            ("ClientToken", "lt-token"),
            ("LaunchTemplateData.ImageId", IMAGE),
            ("LaunchTemplateData.NetworkInterface.1.DeviceIndex", "0"),
            ("LaunchTemplateData.NetworkInterface.1.SubnetId", &subnet),
            (
                "LaunchTemplateData.NetworkInterface.1.SecurityGroupId.1",
                &group,
            ),
        ],
    )
    .await;
    // A ClientToken retry answers the same template.
    let retry = ok(
        &server,
        "CreateLaunchTemplate",
        &[
            ("LaunchTemplateName", "in-subnet"),
            ("ClientToken", "lt-token"),
            ("LaunchTemplateData.ImageId", IMAGE),
            ("LaunchTemplateData.NetworkInterface.1.DeviceIndex", "0"),
            ("LaunchTemplateData.NetworkInterface.1.SubnetId", &subnet),
            (
                "LaunchTemplateData.NetworkInterface.1.SecurityGroupId.1",
                &group,
            ),
        ],
    )
    .await;
    assert_eq!(
        text_of(&retry.body, "launchTemplateName").unwrap(),
        "in-subnet"
    );
    let described = ok(
        &server,
        "DescribeLaunchTemplateVersions",
        &[
            ("LaunchTemplateName", "in-subnet"),
            ("LaunchTemplateVersion.1", "$Latest"),
        ],
    )
    .await;
    assert_eq!(text_of(&described.body, "subnetId").unwrap(), subnet);
    assert_eq!(text_of(&described.body, "groupId").unwrap(), group);
    let run = ok(
        &server,
        "RunInstances",
        &[
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("LaunchTemplate.LaunchTemplateName", "in-subnet"),
        ],
    )
    .await;
    assert_eq!(text_of(&run.body, "subnetId").unwrap(), subnet);
    assert_eq!(text_of(&run.body, "vpcId").unwrap(), vpc);
    assert!(run.body.contains(&group), "{}", run.body);
    assert!(text_of(&run.body, "privateIpAddress")
        .unwrap()
        .starts_with("10.9.3."));
    server.stop().await;
}

#[tokio::test]
async fn versions_latest_tokens_and_retries_follow_ec2() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let created = ok(
        &server,
        "CreateLaunchTemplate",
        &[
            ("LaunchTemplateName", "base"),
            ("LaunchTemplateData.ImageId", IMAGE),
            ("LaunchTemplateData.InstanceType", "t3.micro"),
        ],
    )
    .await;
    let template = text_of(&created.body, "launchTemplateId").unwrap();
    // A version made with a ClientToken, retried: one version.
    let version = [
        ("LaunchTemplateId", template.as_str()),
        ("ClientToken", "v-1"),
        ("LaunchTemplateData.ImageId", IMAGE),
        ("LaunchTemplateData.InstanceType", "t3.small"),
    ];
    let v2 = ok(&server, "CreateLaunchTemplateVersion", &version).await;
    let again = ok(&server, "CreateLaunchTemplateVersion", &version).await;
    assert_eq!(text_of(&v2.body, "versionNumber").unwrap(), "2");
    assert_eq!(text_of(&again.body, "versionNumber").unwrap(), "2");
    // Deleting the newest: `$Latest` is the newest left, and a new version
    // takes a number never given before.
    ok(
        &server,
        "DeleteLaunchTemplateVersions",
        &[
            ("LaunchTemplateId", &template),
            ("LaunchTemplateVersion.1", "2"),
        ],
    )
    .await;
    let latest = ok(
        &server,
        "DescribeLaunchTemplateVersions",
        &[
            ("LaunchTemplateId", &template),
            ("LaunchTemplateVersion.1", "$Latest"),
        ],
    )
    .await;
    assert_eq!(text_of(&latest.body, "versionNumber").unwrap(), "1");
    let v3 = ok(
        &server,
        "CreateLaunchTemplateVersion",
        &[
            ("LaunchTemplateId", &template),
            ("SourceVersion", "$Latest"),
            ("LaunchTemplateData.KeyName", "none"),
        ],
    )
    .await;
    assert_eq!(text_of(&v3.body, "versionNumber").unwrap(), "3");
    // An unknown template: every version refused in the answer, as EC2 does.
    let unknown = ok(
        &server,
        "DeleteLaunchTemplateVersions",
        &[
            ("LaunchTemplateId", "lt-0123456789abcdef0"),
            ("LaunchTemplateVersion.1", "1"),
        ],
    )
    .await;
    assert!(
        unknown
            .body
            .contains("<code>launchTemplateIdDoesNotExist</code>"),
        "{}",
        unknown.body
    );
    // Interface tags have nothing to go on here (a primary interface
    // keeps no tags of its own).
    assert_eq!(
        refused(
            &server,
            "CreateLaunchTemplate",
            &[
                ("LaunchTemplateName", "tagged"),
                ("LaunchTemplateData.ImageId", IMAGE),
                (
                    "LaunchTemplateData.TagSpecification.1.ResourceType",
                    "network-interface"
                ),
                ("LaunchTemplateData.TagSpecification.1.Tag.1.Key", "k"),
            ]
        )
        .await,
        "UnsupportedOperation"
    );
    // A launch from the template with a ClientToken, retried after the
    // template is gone: the first reservation.
    let launch = [
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("ClientToken", "launch-1"),
        ("LaunchTemplate.LaunchTemplateName", "base"),
    ];
    let first = ok(&server, "RunInstances", &launch).await;
    ok(
        &server,
        "DeleteLaunchTemplate",
        &[("LaunchTemplateName", "base")],
    )
    .await;
    let retry = ok(&server, "RunInstances", &launch).await;
    assert_eq!(
        text_of(&retry.body, "instanceId"),
        text_of(&first.body, "instanceId")
    );
    // The primary network interface form of RunInstances names the subnet.
    let default_subnet = ok(
        &server,
        "DescribeSubnets",
        &[
            ("Filter.1.Name", "availability-zone"),
            ("Filter.1.Value.1", "us-east-1c"),
        ],
    )
    .await;
    let subnet = text_of(&default_subnet.body, "subnetId").unwrap();
    let by_interface = ok(
        &server,
        "RunInstances",
        &[
            ("ImageId", IMAGE),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("NetworkInterface.1.DeviceIndex", "0"),
            ("NetworkInterface.1.SubnetId", &subnet),
            ("NetworkInterface.1.AssociatePublicIpAddress", "true"),
        ],
    )
    .await;
    assert_eq!(text_of(&by_interface.body, "subnetId").unwrap(), subnet);
    assert_eq!(
        refused(
            &server,
            "RunInstances",
            &[
                ("ImageId", IMAGE),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("NetworkInterface.2.DeviceIndex", "1"),
            ]
        )
        .await,
        "UnsupportedOperation"
    );
    server.stop().await;
}
