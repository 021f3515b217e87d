//! Security groups, tags, volumes and snapshots, Elastic IPs, account
//! attributes and the default VPC through the in-process server.

mod common;

use common::*;
use ec2_gateway::client::{text_of, Reply};
use ec2_gateway::config::StorageBackend;

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

async fn server() -> (TestServer, tempfile::TempDir) {
    server_with(StorageBackend::Memory, |_| {}).await
}

async fn launch(server: &TestServer, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("ImageId", IMAGE),
        ("InstanceType", "t3.micro"),
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("Placement.AvailabilityZone", "us-east-1a"),
    ];
    for (name, value) in extra {
        params.retain(|(n, _)| n != name);
        params.push((name, value));
    }
    let reply = server.user("RunInstances", &params).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = text_of(&reply.body, "instanceId").unwrap();
    for _ in 0..100 {
        if server
            .user("DescribeInstances", &[("InstanceId.1", &id)])
            .await
            .body
            .contains("<name>running</name>")
        {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{id} never ran");
}

fn code(reply: &Reply) -> String {
    error_code(reply)
}

#[tokio::test]
async fn security_groups() {
    let (server, _dir) = server().await;
    let created = server
        .user(
            "CreateSecurityGroup",
            &[("GroupName", "web"), ("GroupDescription", "web tier")],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let web = text_of(&created.body, "groupId").unwrap();
    assert_eq!(
        code(
            &server
                .user(
                    "CreateSecurityGroup",
                    &[("GroupName", "web"), ("GroupDescription", "again")]
                )
                .await
        ),
        "InvalidGroup.Duplicate"
    );
    assert_eq!(
        code(
            &server
                .user("CreateSecurityGroup", &[("GroupName", "x")])
                .await
        ),
        "MissingParameter"
    );
    assert_eq!(
        code(
            &server
                .user(
                    "CreateSecurityGroup",
                    &[("GroupName", "sg-bad"), ("GroupDescription", "d")]
                )
                .await
        ),
        "InvalidParameterValue"
    );

    // Flat legacy parameters (boto 2, euca2ools) and the IpPermissions form.
    let flat = server
        .user(
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupName", "web"),
                ("IpProtocol", "tcp"),
                ("FromPort", "22"),
                ("ToPort", "22"),
                ("CidrIp", "203.0.113.0/24"),
            ],
        )
        .await;
    assert_eq!(flat.status, 200, "{}", flat.body);
    let ssh_rule = text_of(&flat.body, "securityGroupRuleId").unwrap();
    assert!(ssh_rule.starts_with("sgr-"));
    let dup = server
        .user(
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupId", &web),
                ("IpPermissions.1.IpProtocol", "6"),
                ("IpPermissions.1.FromPort", "22"),
                ("IpPermissions.1.ToPort", "22"),
                ("IpPermissions.1.IpRanges.1.CidrIp", "203.0.113.0/24"),
            ],
        )
        .await;
    assert_eq!(
        code(&dup),
        "InvalidPermission.Duplicate",
        "tcp and 6 are the same protocol"
    );
    let structured = server
        .user(
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupId", &web),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", "443"),
                ("IpPermissions.1.ToPort", "443"),
                ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
                ("IpPermissions.1.IpRanges.1.Description", "https"),
                ("IpPermissions.1.Ipv6Ranges.1.CidrIpv6", "::/0"),
                ("IpPermissions.2.IpProtocol", "-1"),
                ("IpPermissions.2.Groups.1.GroupName", "default"),
            ],
        )
        .await;
    assert_eq!(structured.status, 200, "{}", structured.body);
    assert_eq!(
        column(&structured, "securityGroupRuleSet", "securityGroupRuleId").len(),
        3
    );
    for (params, expected) in [
        (
            vec![("IpProtocol", "tcp"), ("FromPort", "80")],
            "InvalidParameterValue",
        ),
        (
            vec![
                ("IpProtocol", "tcp"),
                ("FromPort", "90"),
                ("ToPort", "80"),
                ("CidrIp", "0.0.0.0/0"),
            ],
            "InvalidParameterValue",
        ),
        (
            vec![("IpProtocol", "gopher"), ("CidrIp", "0.0.0.0/0")],
            "InvalidParameterValue",
        ),
        (
            vec![
                ("IpProtocol", "tcp"),
                ("FromPort", "1"),
                ("ToPort", "2"),
                ("CidrIp", "10.0.0.0/33"),
            ],
            "InvalidParameterValue",
        ),
        (
            vec![("SourceSecurityGroupName", "nope")],
            "InvalidGroup.NotFound",
        ),
    ] {
        let mut all = vec![("GroupId", web.as_str())];
        all.extend(params.iter().copied());
        assert_eq!(
            code(&server.user("AuthorizeSecurityGroupIngress", &all).await),
            expected,
            "{params:?}"
        );
    }

    let described = server
        .user("DescribeSecurityGroups", &[("GroupName.1", "web")])
        .await;
    assert_eq!(
        column(&described, "securityGroupInfo", "groupId"),
        std::slice::from_ref(&web)
    );
    assert!(
        described.body.contains("<cidrIp>203.0.113.0/24</cidrIp>")
            && described.body.contains("<cidrIpv6>::/0</cidrIpv6>")
    );
    assert!(
        described.body.contains("<groupName>default</groupName>"),
        "group peers carry their names"
    );
    for (name, value, expected) in [
        ("ip-permission.from-port", "22", 1),
        ("ip-permission.cidr", "203.0.113.*", 1),
        ("ip-permission.ipv6-cidr", "::/0", 1),
        ("group-name", "w*", 1),
        ("egress.ip-permission.cidr", "0.0.0.0/0", 2),
        ("description", "default VPC security group", 1),
    ] {
        let reply = server
            .user(
                "DescribeSecurityGroups",
                &[("Filter.1.Name", name), ("Filter.1.Value.1", value)],
            )
            .await;
        assert_eq!(
            column(&reply, "securityGroupInfo", "groupId").len(),
            expected,
            "{name}={value}"
        );
    }
    let rules = server
        .user(
            "DescribeSecurityGroupRules",
            &[("Filter.1.Name", "group-id"), ("Filter.1.Value.1", &web)],
        )
        .await;
    assert_eq!(
        column(&rules, "securityGroupRuleSet", "securityGroupRuleId").len(),
        5,
        "4 ingress + 1 egress"
    );

    // Revoke by content (flat) and by rule id; unknown rules are NotFound.
    let revoked = server
        .user(
            "RevokeSecurityGroupIngress",
            &[
                ("GroupId", &web),
                ("IpProtocol", "tcp"),
                ("FromPort", "22"),
                ("ToPort", "22"),
                ("CidrIp", "203.0.113.0/24"),
            ],
        )
        .await;
    assert!(
        revoked.body.contains("<return>true</return>"),
        "{}",
        revoked.body
    );
    let again = server
        .user(
            "RevokeSecurityGroupIngress",
            &[
                ("GroupId", &web),
                ("IpProtocol", "tcp"),
                ("FromPort", "22"),
                ("ToPort", "22"),
                ("CidrIp", "203.0.113.0/24"),
            ],
        )
        .await;
    assert_eq!(code(&again), "InvalidPermission.NotFound");
    let rule_id = column(&structured, "securityGroupRuleSet", "securityGroupRuleId")[0].clone();
    let by_id = server
        .user(
            "RevokeSecurityGroupIngress",
            &[("GroupId", &web), ("SecurityGroupRuleId.1", &rule_id)],
        )
        .await;
    assert_eq!(by_id.status, 200, "{}", by_id.body);
    let egress = server
        .user(
            "AuthorizeSecurityGroupEgress",
            &[
                ("GroupId", &web),
                ("IpPermissions.1.IpProtocol", "udp"),
                ("IpPermissions.1.FromPort", "53"),
                ("IpPermissions.1.ToPort", "53"),
                ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.2/32"),
            ],
        )
        .await;
    assert_eq!(egress.status, 200, "{}", egress.body);
    assert_eq!(
        code(
            &server
                .user(
                    "RevokeSecurityGroupEgress",
                    &[
                        ("GroupId", &web),
                        ("IpProtocol", "udp"),
                        ("FromPort", "53"),
                        ("ToPort", "54"),
                        ("CidrIp", "10.0.0.2/32")
                    ]
                )
                .await
        ),
        "InvalidPermission.NotFound"
    );

    // Launch validation, groupSet, and delete dependencies.
    assert_eq!(
        code(
            &server
                .user(
                    "RunInstances",
                    &[
                        ("ImageId", IMAGE),
                        ("MinCount", "1"),
                        ("MaxCount", "1"),
                        ("SecurityGroup.1", "db")
                    ]
                )
                .await
        ),
        "InvalidGroup.NotFound"
    );
    let instance = launch(&server, &[("SecurityGroupId.1", &web)]).await;
    let reply = server
        .user(
            "DescribeInstances",
            &[
                ("Filter.1.Name", "instance.group-name"),
                ("Filter.1.Value.1", "web"),
            ],
        )
        .await;
    assert!(reply.body.contains(&instance));
    assert_eq!(
        code(
            &server
                .user("DeleteSecurityGroup", &[("GroupId", &web)])
                .await
        ),
        "DependencyViolation"
    );
    assert_eq!(
        code(
            &server
                .user("DeleteSecurityGroup", &[("GroupName", "default")])
                .await
        ),
        "CannotDelete"
    );
    let db = text_of(
        &server
            .user(
                "CreateSecurityGroup",
                &[("GroupName", "db"), ("GroupDescription", "db tier")],
            )
            .await
            .body,
        "groupId",
    )
    .unwrap();
    server
        .user(
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupId", &db),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", "5432"),
                ("IpPermissions.1.ToPort", "5432"),
                ("IpPermissions.1.Groups.1.GroupId", &web),
            ],
        )
        .await;
    server
        .user("TerminateInstances", &[("InstanceId.1", &instance)])
        .await;
    for _ in 0..100 {
        if server
            .user("DescribeInstances", &[("InstanceId.1", &instance)])
            .await
            .body
            .contains("<name>terminated</name>")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        code(
            &server
                .user("DeleteSecurityGroup", &[("GroupId", &web)])
                .await
        ),
        "DependencyViolation",
        "db's rule references web"
    );
    assert_eq!(
        code(
            &server
                .user(
                    "DeleteSecurityGroup",
                    &[("GroupId", &db), ("DryRun", "true")]
                )
                .await
        ),
        "DryRunOperation"
    );
    assert!(server
        .user("DeleteSecurityGroup", &[("GroupId", &db)])
        .await
        .body
        .contains("<return>true</return>"));
    assert!(server
        .user("DeleteSecurityGroup", &[("GroupId", &web)])
        .await
        .body
        .contains("<return>true</return>"));
    assert_eq!(
        code(
            &server
                .user("DescribeSecurityGroups", &[("GroupId.1", &web)])
                .await
        ),
        "InvalidGroup.NotFound"
    );
    // Another account sees only its own default group.
    let theirs = server.admin("DescribeSecurityGroups", &[]).await;
    assert_eq!(
        column(&theirs, "securityGroupInfo", "groupName"),
        ["default"]
    );
    assert_eq!(
        code(
            &server
                .admin("DescribeSecurityGroups", &[("GroupName.1", "web")])
                .await
        ),
        "InvalidGroup.NotFound"
    );
    server.stop().await;
}

#[tokio::test]
async fn tags_on_every_resource() {
    let (server, _dir) = server().await;
    let instance = launch(&server, &[]).await;
    let group = text_of(
        &server
            .user(
                "CreateSecurityGroup",
                &[("GroupName", "tagged"), ("GroupDescription", "d")],
            )
            .await
            .body,
        "groupId",
    )
    .unwrap();
    let volume = text_of(
        &server
            .user(
                "CreateVolume",
                &[("AvailabilityZone", "us-east-1a"), ("Size", "8")],
            )
            .await
            .body,
        "volumeId",
    )
    .unwrap();
    let snapshot = text_of(
        &server
            .user("CreateSnapshot", &[("VolumeId", &volume)])
            .await
            .body,
        "snapshotId",
    )
    .unwrap();
    let address = text_of(
        &server.user("AllocateAddress", &[]).await.body,
        "allocationId",
    )
    .unwrap();
    let key = text_of(
        &server
            .user("CreateKeyPair", &[("KeyName", "tagged")])
            .await
            .body,
        "keyPairId",
    )
    .unwrap();
    let image = text_of(
        &server
            .user("RegisterImage", &[("Name", "tagged-image")])
            .await
            .body,
        "imageId",
    )
    .unwrap();
    let vpc = text_of(&server.user("DescribeVpcs", &[]).await.body, "vpcId").unwrap();
    let subnet = text_of(
        &server
            .user(
                "DescribeSubnets",
                &[
                    ("Filter.1.Name", "availability-zone"),
                    ("Filter.1.Value.1", "us-east-1a"),
                ],
            )
            .await
            .body,
        "subnetId",
    )
    .unwrap();
    let all = [
        &instance, &group, &volume, &snapshot, &address, &key, &image, &vpc, &subnet,
    ];
    let mut params = vec![
        ("Tag.1.Key", "team"),
        ("Tag.1.Value", "blue"),
        ("Tag.2.Key", "cost-center"),
        ("Tag.2.Value", "42"),
    ];
    let names: Vec<String> = (1..=all.len()).map(|i| format!("ResourceId.{i}")).collect();
    for (name, id) in names.iter().zip(all) {
        params.push((name.as_str(), id.as_str()));
    }
    let reply = server.user("CreateTags", &params).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Every describe filters by tag.
    for (action, set, field) in [
        ("DescribeInstances", "instancesSet", "instanceId"),
        ("DescribeSecurityGroups", "securityGroupInfo", "groupId"),
        ("DescribeVolumes", "volumeSet", "volumeId"),
        ("DescribeSnapshots", "snapshotSet", "snapshotId"),
        ("DescribeAddresses", "addressesSet", "allocationId"),
        ("DescribeKeyPairs", "keySet", "keyPairId"),
        ("DescribeImages", "imagesSet", "imageId"),
        ("DescribeVpcs", "vpcSet", "vpcId"),
        ("DescribeSubnets", "subnetSet", "subnetId"),
    ] {
        for (filter, value) in [
            ("tag:team", "bl*"),
            ("tag-key", "cost-center"),
            ("tag-value", "42"),
        ] {
            let reply = server
                .user(
                    action,
                    &[("Filter.1.Name", filter), ("Filter.1.Value.1", value)],
                )
                .await;
            assert_eq!(reply.status, 200, "{action}: {}", reply.body);
            let found = if action == "DescribeInstances" {
                vec![text_of(&reply.body, "instanceId").unwrap_or_default()]
            } else {
                column(&reply, set, field)
            };
            assert_eq!(found.len(), 1, "{action} {filter}={value}: {}", reply.body);
        }
        let none = server
            .user(
                action,
                &[("Filter.1.Name", "tag:team"), ("Filter.1.Value.1", "red")],
            )
            .await;
        assert!(
            !none.body.contains("<key>team</key>"),
            "{action} tag:team=red"
        );
    }

    let described = server
        .user(
            "DescribeTags",
            &[("Filter.1.Name", "key"), ("Filter.1.Value.1", "team")],
        )
        .await;
    let types = column(&described, "tagSet", "resourceType");
    assert_eq!(types.len(), 9, "{}", described.body);
    for expected in [
        "instance",
        "security-group",
        "volume",
        "snapshot",
        "elastic-ip",
        "key-pair",
        "image",
        "vpc",
        "subnet",
    ] {
        assert!(types.iter().any(|t| t == expected), "{expected} missing");
    }
    let by_type = server
        .user(
            "DescribeTags",
            &[
                ("Filter.1.Name", "resource-type"),
                ("Filter.1.Value.1", "volume"),
                ("Filter.2.Name", "value"),
                ("Filter.2.Value.1", "4?"),
            ],
        )
        .await;
    assert_eq!(
        column(&by_type, "tagSet", "resourceId"),
        std::slice::from_ref(&volume)
    );
    // Paging through DescribeTags sees all 18 tags once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = vec![("MaxResults".to_string(), "5".to_string())];
        params.extend(token.clone().map(|t| ("NextToken".to_string(), t)));
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let reply = server.user("DescribeTags", &params).await;
        seen.extend(
            items(&reply, "tagSet")
                .into_iter()
                .map(|t| format!("{}/{}", t["resourceId"], t["key"])),
        );
        token = text_of(&reply.body, "nextToken");
        if token.is_none() {
            break;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 18);

    // DeleteTags: with a value that does not match (kept), matching, and by key.
    server
        .user(
            "DeleteTags",
            &[
                ("ResourceId.1", &volume),
                ("Tag.1.Key", "team"),
                ("Tag.1.Value", "red"),
            ],
        )
        .await;
    assert!(server
        .user("DescribeVolumes", &[("VolumeId.1", &volume)])
        .await
        .body
        .contains("<key>team</key>"));
    server
        .user(
            "DeleteTags",
            &[
                ("ResourceId.1", &volume),
                ("Tag.1.Key", "team"),
                ("Tag.1.Value", "blue"),
            ],
        )
        .await;
    assert!(!server
        .user("DescribeVolumes", &[("VolumeId.1", &volume)])
        .await
        .body
        .contains("<key>team</key>"));
    server
        .user(
            "DeleteTags",
            &[("ResourceId.1", &instance), ("Tag.1.Key", "cost-center")],
        )
        .await;
    let reply = server
        .user(
            "DescribeTags",
            &[
                ("Filter.1.Name", "resource-id"),
                ("Filter.1.Value.1", &instance),
            ],
        )
        .await;
    assert_eq!(column(&reply, "tagSet", "key"), ["team"]);

    // Errors: all or nothing.
    let mut many: Vec<(String, String)> = vec![("ResourceId.1".into(), group.clone())];
    for i in 1..=51 {
        many.push((format!("Tag.{i}.Key"), format!("k{i}")));
    }
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(
        code(&server.user("CreateTags", &many).await),
        "TagLimitExceeded"
    );
    assert_eq!(
        code(
            &server
                .user(
                    "CreateTags",
                    &[("ResourceId.1", &group), ("Tag.1.Key", "aws:reserved")]
                )
                .await
        ),
        "InvalidParameterValue"
    );
    let long = "k".repeat(129);
    assert_eq!(
        code(
            &server
                .user(
                    "CreateTags",
                    &[("ResourceId.1", &group), ("Tag.1.Key", &long)]
                )
                .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            &server
                .user(
                    "CreateTags",
                    &[("ResourceId.1", "thing-1234"), ("Tag.1.Key", "a")]
                )
                .await
        ),
        "InvalidID"
    );
    let reply = server
        .user(
            "CreateTags",
            &[
                ("ResourceId.1", &group),
                ("ResourceId.2", "vol-00000000000000000"),
                ("Tag.1.Key", "partial"),
            ],
        )
        .await;
    assert_eq!(code(&reply), "InvalidVolume.NotFound");
    assert!(
        !server
            .user("DescribeSecurityGroups", &[("GroupId.1", &group)])
            .await
            .body
            .contains("partial"),
        "nothing changed"
    );
    assert_eq!(
        code(
            &server
                .user(
                    "CreateTags",
                    &[
                        ("ResourceId.1", &group),
                        ("Tag.1.Key", "dry"),
                        ("DryRun", "true")
                    ]
                )
                .await
        ),
        "DryRunOperation"
    );
    assert!(!server
        .user("DescribeSecurityGroups", &[("GroupId.1", &group)])
        .await
        .body
        .contains("<key>dry</key>"));
    // Another account cannot tag or see these.
    assert_eq!(
        code(
            &server
                .admin(
                    "CreateTags",
                    &[("ResourceId.1", &instance), ("Tag.1.Key", "x")]
                )
                .await
        ),
        "InvalidInstanceID.NotFound"
    );
    assert!(server
        .admin("DescribeTags", &[])
        .await
        .body
        .contains("<tagSet/>"));
    server.stop().await;
}

#[tokio::test]
async fn volumes_and_snapshots() {
    let (server, _dir) = server_with(StorageBackend::Memory, |c| {
        c.volume_capacity_gib_per_zone = 100
    })
    .await;
    let instance = launch(&server, &[]).await;
    let created = server
        .user(
            "CreateVolume",
            &[
                ("AvailabilityZone", "us-east-1a"),
                ("Size", "20"),
                ("VolumeType", "gp3"),
                ("ClientToken", "vol-token"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let volume = text_of(&created.body, "volumeId").unwrap();
    let retried = server
        .user(
            "CreateVolume",
            &[
                ("AvailabilityZone", "us-east-1a"),
                ("Size", "20"),
                ("VolumeType", "gp3"),
                ("ClientToken", "vol-token"),
            ],
        )
        .await;
    assert_eq!(
        text_of(&retried.body, "volumeId").unwrap(),
        volume,
        "ClientToken retry"
    );
    assert_eq!(
        code(
            &server
                .user(
                    "CreateVolume",
                    &[
                        ("AvailabilityZone", "us-east-1a"),
                        ("Size", "21"),
                        ("ClientToken", "vol-token")
                    ]
                )
                .await
        ),
        "IdempotentParameterMismatch"
    );
    for (params, expected) in [
        (vec![("Size", "8")], "MissingParameter"),
        (
            vec![("AvailabilityZone", "us-east-1q"), ("Size", "8")],
            "InvalidParameterValue",
        ),
        (
            vec![("AvailabilityZone", "us-east-1a"), ("Size", "0")],
            "InvalidParameterValue",
        ),
        (
            vec![
                ("AvailabilityZone", "us-east-1a"),
                ("Size", "8"),
                ("VolumeType", "io1"),
            ],
            "MissingParameter",
        ),
        (
            vec![
                ("AvailabilityZone", "us-east-1a"),
                ("Size", "8"),
                ("VolumeType", "gp2"),
                ("Iops", "100"),
            ],
            "InvalidParameterCombination",
        ),
        (
            vec![
                ("AvailabilityZone", "us-east-1a"),
                ("Size", "8"),
                ("VolumeType", "floppy"),
            ],
            "InvalidParameterValue",
        ),
        (
            vec![("AvailabilityZone", "us-east-1a"), ("Size", "90")],
            "InsufficientVolumeCapacity",
        ),
    ] {
        assert_eq!(
            code(&server.user("CreateVolume", &params).await),
            expected,
            "{params:?}"
        );
    }
    assert_eq!(
        server
            .user(
                "CreateVolume",
                &[("AvailabilityZone", "us-east-1a"), ("Size", "90")]
            )
            .await
            .status,
        500
    );
    let other_zone = text_of(
        &server
            .user(
                "CreateVolume",
                &[("AvailabilityZone", "us-east-1b"), ("Size", "5")],
            )
            .await
            .body,
        "volumeId",
    )
    .unwrap();

    // Attach: zone, device rules; then the instance shows it.
    assert_eq!(
        code(
            &server
                .user(
                    "AttachVolume",
                    &[
                        ("VolumeId", &other_zone),
                        ("InstanceId", &instance),
                        ("Device", "/dev/sdf")
                    ]
                )
                .await
        ),
        "InvalidVolume.ZoneMismatch"
    );
    assert_eq!(
        code(
            &server
                .user(
                    "AttachVolume",
                    &[
                        ("VolumeId", &volume),
                        ("InstanceId", &instance),
                        ("Device", "sdf")
                    ]
                )
                .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            &server
                .user(
                    "AttachVolume",
                    &[
                        ("VolumeId", &volume),
                        ("InstanceId", &instance),
                        ("Device", "/dev/xvda")
                    ]
                )
                .await
        ),
        "InvalidParameterValue"
    );
    let attached = server
        .user(
            "AttachVolume",
            &[
                ("VolumeId", &volume),
                ("InstanceId", &instance),
                ("Device", "/dev/sdf"),
            ],
        )
        .await;
    assert_eq!(attached.status, 200, "{}", attached.body);
    assert_eq!(
        text_of(&attached.body, "device").as_deref(),
        Some("/dev/sdf")
    );
    let described = server
        .user("DescribeVolumes", &[("VolumeId.1", &volume)])
        .await;
    assert!(
        described.body.contains("<status>in-use</status>")
            && described.body.contains("<status>attached</status>"),
        "{}",
        described.body
    );
    let shown = server
        .user("DescribeInstances", &[("InstanceId.1", &instance)])
        .await;
    assert!(
        shown.body.contains("<deviceName>/dev/sdf</deviceName>") && shown.body.contains(&volume)
    );
    let filtered = server
        .user(
            "DescribeVolumes",
            &[
                ("Filter.1.Name", "attachment.instance-id"),
                ("Filter.1.Value.1", &instance),
                ("Filter.2.Name", "attachment.device"),
                ("Filter.2.Value.1", "/dev/sdf"),
            ],
        )
        .await;
    assert_eq!(
        column(&filtered, "volumeSet", "volumeId"),
        std::slice::from_ref(&volume)
    );
    // Beside its root volume.
    let all_of_it = server
        .user(
            "DescribeVolumes",
            &[
                ("Filter.1.Name", "attachment.instance-id"),
                ("Filter.1.Value.1", &instance),
            ],
        )
        .await;
    assert_eq!(column(&all_of_it, "volumeSet", "volumeId").len(), 2);
    let second = text_of(
        &server
            .user(
                "CreateVolume",
                &[("AvailabilityZone", "us-east-1a"), ("Size", "5")],
            )
            .await
            .body,
        "volumeId",
    )
    .unwrap();
    assert_eq!(
        code(
            &server
                .user(
                    "AttachVolume",
                    &[
                        ("VolumeId", &second),
                        ("InstanceId", &instance),
                        ("Device", "/dev/sdf")
                    ]
                )
                .await
        ),
        "InvalidParameterValue",
        "device in use"
    );
    assert_eq!(
        code(
            &server
                .user(
                    "AttachVolume",
                    &[
                        ("VolumeId", &volume),
                        ("InstanceId", &instance),
                        ("Device", "/dev/sdg")
                    ]
                )
                .await
        ),
        "VolumeInUse"
    );
    assert_eq!(
        code(&server.user("DeleteVolume", &[("VolumeId", &volume)]).await),
        "VolumeInUse"
    );

    // Modify, status, snapshots.
    let modified = server
        .user("ModifyVolume", &[("VolumeId", &volume), ("Size", "30")])
        .await;
    assert_eq!(text_of(&modified.body, "targetSize").as_deref(), Some("30"));
    assert_eq!(
        code(
            &server
                .user("ModifyVolume", &[("VolumeId", &volume), ("Size", "10")])
                .await
        ),
        "InvalidParameterValue"
    );
    let status = server
        .user("DescribeVolumeStatus", &[("VolumeId.1", &volume)])
        .await;
    assert!(
        status.body.contains("<status>ok</status>"),
        "{}",
        status.body
    );
    let snap = text_of(
        &server
            .user(
                "CreateSnapshot",
                &[("VolumeId", &volume), ("Description", "nightly")],
            )
            .await
            .body,
        "snapshotId",
    )
    .unwrap();
    let snaps = server
        .user(
            "DescribeSnapshots",
            &[
                ("Owner.1", "self"),
                ("Filter.1.Name", "volume-id"),
                ("Filter.1.Value.1", &volume),
            ],
        )
        .await;
    assert_eq!(
        column(&snaps, "snapshotSet", "snapshotId"),
        std::slice::from_ref(&snap)
    );
    assert_eq!(column(&snaps, "snapshotSet", "status"), ["completed"]);
    assert_eq!(column(&snaps, "snapshotSet", "volumeSize"), ["30"]);
    assert!(server
        .user("DescribeSnapshots", &[("Owner.1", "amazon")])
        .await
        .body
        .contains("<snapshotSet/>"));
    let copy = server
        .user(
            "CopySnapshot",
            &[("SourceRegion", "us-east-1"), ("SourceSnapshotId", &snap)],
        )
        .await;
    assert_eq!(copy.status, 200, "{}", copy.body);
    assert_eq!(
        code(
            &server
                .user(
                    "CopySnapshot",
                    &[("SourceRegion", "eu-west-1"), ("SourceSnapshotId", &snap)]
                )
                .await
        ),
        "InvalidParameterValue"
    );
    let restored = server
        .user(
            "CreateVolume",
            &[("AvailabilityZone", "us-east-1c"), ("SnapshotId", &snap)],
        )
        .await;
    assert_eq!(
        text_of(&restored.body, "size").as_deref(),
        Some("30"),
        "size from the snapshot"
    );
    let image = server
        .user(
            "RegisterImage",
            &[
                ("Name", "from-snap"),
                ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
                ("BlockDeviceMapping.1.Ebs.SnapshotId", &snap),
            ],
        )
        .await;
    let image = text_of(&image.body, "imageId").unwrap();
    assert_eq!(
        code(
            &server
                .user("DeleteSnapshot", &[("SnapshotId", &snap)])
                .await
        ),
        "InvalidSnapshot.InUse"
    );
    server.user("DeregisterImage", &[("ImageId", &image)]).await;
    assert!(server
        .user("DeleteSnapshot", &[("SnapshotId", &snap)])
        .await
        .body
        .contains("<return>true</return>"));
    assert_eq!(
        code(
            &server
                .user("DescribeSnapshots", &[("SnapshotId.1", &snap)])
                .await
        ),
        "InvalidSnapshot.NotFound"
    );

    // Detach, then delete; a terminated instance lets go of its volumes.
    let detached = server
        .user("DetachVolume", &[("VolumeId", &volume), ("Force", "true")])
        .await;
    assert_eq!(detached.status, 200, "{}", detached.body);
    assert!(server
        .user("DescribeVolumes", &[("VolumeId.1", &volume)])
        .await
        .body
        .contains("<status>available</status>"));
    assert_eq!(
        code(&server.user("DetachVolume", &[("VolumeId", &volume)]).await),
        "IncorrectState"
    );
    assert!(server
        .user("DeleteVolume", &[("VolumeId", &volume)])
        .await
        .body
        .contains("<return>true</return>"));
    server
        .user(
            "AttachVolume",
            &[
                ("VolumeId", &second),
                ("InstanceId", &instance),
                ("Device", "/dev/sdh"),
            ],
        )
        .await;
    server
        .user("TerminateInstances", &[("InstanceId.1", &instance)])
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(server
        .user("DescribeVolumes", &[("VolumeId.1", &second)])
        .await
        .body
        .contains("<status>available</status>"));
    // Isolation.
    assert_eq!(
        code(
            &server
                .admin("DescribeVolumes", &[("VolumeId.1", &second)])
                .await
        ),
        "InvalidVolume.NotFound"
    );
    assert_eq!(
        code(&server.admin("DeleteVolume", &[("VolumeId", &second)]).await),
        "InvalidVolume.NotFound"
    );
    server.stop().await;
}

#[tokio::test]
async fn elastic_ips() {
    let (server, _dir) = server().await;
    let instance = launch(&server, &[]).await;
    let other = launch(&server, &[]).await;
    let first = server.user("AllocateAddress", &[("Domain", "vpc")]).await;
    let allocation = text_of(&first.body, "allocationId").unwrap();
    let public_ip = text_of(&first.body, "publicIp").unwrap();
    assert!(public_ip.starts_with("198.51.100."));
    server.user("AllocateAddress", &[]).await;
    server.user("AllocateAddress", &[]).await;
    assert_eq!(
        code(&server.user("AllocateAddress", &[]).await),
        "AddressLimitExceeded",
        "quota of 3"
    );
    let associated = server
        .user(
            "AssociateAddress",
            &[("AllocationId", &allocation), ("InstanceId", &instance)],
        )
        .await;
    let association = text_of(&associated.body, "associationId").unwrap();
    assert!(association.starts_with("eipassoc-"));
    let shown = server
        .user("DescribeInstances", &[("InstanceId.1", &instance)])
        .await;
    assert_eq!(
        text_of(&shown.body, "ipAddress").as_deref(),
        Some(public_ip.as_str())
    );
    assert_eq!(
        text_of(&shown.body, "dnsName"),
        Some(format!(
            "ec2-{}.compute-1.amazonaws.com",
            public_ip.replace('.', "-")
        ))
    );
    let by_ip = server
        .user(
            "DescribeInstances",
            &[
                ("Filter.1.Name", "ip-address"),
                ("Filter.1.Value.1", &public_ip),
            ],
        )
        .await;
    assert!(by_ip.body.contains(&instance));
    assert_eq!(
        code(
            &server
                .user(
                    "AssociateAddress",
                    &[("AllocationId", &allocation), ("InstanceId", &other)]
                )
                .await
        ),
        "Resource.AlreadyAssociated"
    );
    let moved = server
        .user(
            "AssociateAddress",
            &[
                ("PublicIp", &public_ip),
                ("InstanceId", &other),
                ("AllowReassociation", "true"),
            ],
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    // The first instance shows its own public address again (it is in a
    // default subnet), no longer the Elastic IP.
    let first = text_of(
        &server
            .user("DescribeInstances", &[("InstanceId.1", &instance)])
            .await
            .body,
        "ipAddress",
    )
    .unwrap();
    assert_ne!(first, public_ip);
    assert!(first.starts_with("100."), "{first}");
    let listed = server
        .user(
            "DescribeAddresses",
            &[
                ("Filter.1.Name", "instance-id"),
                ("Filter.1.Value.1", &other),
            ],
        )
        .await;
    assert_eq!(
        column(&listed, "addressesSet", "publicIp"),
        std::slice::from_ref(&public_ip)
    );
    assert_eq!(
        code(
            &server
                .user("ReleaseAddress", &[("AllocationId", &allocation)])
                .await
        ),
        "InvalidIPAddress.InUse"
    );
    assert_eq!(
        code(
            &server
                .user("DisassociateAddress", &[("AssociationId", &association)])
                .await
        ),
        "InvalidAssociationID.NotFound",
        "the old association ended"
    );
    server
        .user("DisassociateAddress", &[("PublicIp", &public_ip)])
        .await;
    assert!(server
        .user("ReleaseAddress", &[("AllocationId", &allocation)])
        .await
        .body
        .contains("<return>true</return>"));
    assert_eq!(
        code(
            &server
                .user("DescribeAddresses", &[("AllocationId.1", &allocation)])
                .await
        ),
        "InvalidAllocationID.NotFound"
    );
    let again = text_of(&server.user("AllocateAddress", &[]).await.body, "publicIp").unwrap();
    assert_eq!(again, public_ip, "released addresses return to the pool");
    assert_eq!(
        code(&server.user("AllocateAddress", &[("DryRun", "true")]).await),
        "AddressLimitExceeded"
    );
    assert!(server
        .admin("DescribeAddresses", &[])
        .await
        .body
        .contains("<addressesSet/>"));
    server.stop().await;
}

#[tokio::test]
async fn account_attributes_vpcs_and_subnets() {
    let (server, _dir) = server().await;
    let reply = server.user("DescribeAccountAttributes", &[]).await;
    let names = column(&reply, "accountAttributeSet", "attributeName");
    assert_eq!(
        names,
        [
            "supported-platforms",
            "default-vpc",
            "max-instances",
            "vpc-max-security-groups-per-interface",
            "max-elastic-ips",
            "vpc-max-elastic-ips"
        ]
    );
    let vpc = text_of(&server.user("DescribeVpcs", &[]).await.body, "vpcId").unwrap();
    assert!(
        reply.body.contains(&vpc),
        "default-vpc names the default VPC"
    );
    assert!(
        reply.body.contains("<attributeValue>40</attributeValue>"),
        "max-instances from the quotas"
    );
    let one = server
        .user(
            "DescribeAccountAttributes",
            &[("AttributeName.1", "max-elastic-ips")],
        )
        .await;
    assert_eq!(
        column(&one, "accountAttributeSet", "attributeName"),
        ["max-elastic-ips"]
    );
    assert_eq!(
        code(
            &server
                .user("DescribeAccountAttributes", &[("AttributeName.1", "color")])
                .await
        ),
        "InvalidParameterValue"
    );

    let vpcs = server
        .user(
            "DescribeVpcs",
            &[
                ("Filter.1.Name", "is-default"),
                ("Filter.1.Value.1", "true"),
            ],
        )
        .await;
    assert!(vpcs.body.contains("<cidrBlock>172.31.0.0/16</cidrBlock>"));
    assert_eq!(
        code(
            &server
                .user("DescribeVpcs", &[("VpcId.1", "vpc-00000000")])
                .await
        ),
        "InvalidVpcID.NotFound"
    );
    let subnets = server.user("DescribeSubnets", &[]).await;
    let cidrs: Vec<(String, String)> = items(&subnets, "subnetSet")
        .into_iter()
        .map(|s| (s["availabilityZone"].clone(), s["cidrBlock"].clone()))
        .collect();
    assert_eq!(
        cidrs,
        [
            ("us-east-1a", "172.31.0.0/20"),
            ("us-east-1b", "172.31.16.0/20"),
            ("us-east-1c", "172.31.32.0/20")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let b = server
        .user(
            "DescribeSubnets",
            &[
                ("Filter.1.Name", "availability-zone"),
                ("Filter.1.Value.1", "us-east-1b"),
                ("Filter.2.Name", "default-for-az"),
                ("Filter.2.Value.1", "true"),
            ],
        )
        .await;
    let subnet_b = text_of(&b.body, "subnetId").unwrap();
    // Instances land in their zone's default subnet, inside its range.
    let reply = server
        .user(
            "RunInstances",
            &[
                ("ImageId", IMAGE),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("SubnetId", &subnet_b),
            ],
        )
        .await;
    assert_eq!(
        text_of(&reply.body, "subnetId").as_deref(),
        Some(subnet_b.as_str())
    );
    assert!(text_of(&reply.body, "privateIpAddress")
        .unwrap()
        .starts_with("172.31.16."));
    assert_eq!(text_of(&reply.body, "vpcId").as_deref(), Some(vpc.as_str()));
    assert_eq!(
        code(
            &server
                .user(
                    "RunInstances",
                    &[
                        ("ImageId", IMAGE),
                        ("MinCount", "1"),
                        ("MaxCount", "1"),
                        ("SubnetId", "subnet-00000000")
                    ]
                )
                .await
        ),
        "InvalidSubnetID.NotFound"
    );
    // Each account has its own default VPC.
    let theirs = text_of(&server.admin("DescribeVpcs", &[]).await.body, "vpcId").unwrap();
    assert_ne!(theirs, vpc);
    // The default VPC keeps one default subnet per zone (subnets of created
    // VPCs: see tests/subnets.rs).
    let reply = server
        .user(
            "CreateSubnet",
            &[("VpcId", vpc.as_str()), ("CidrBlock", "172.31.200.0/24")],
        )
        .await;
    assert_eq!(
        (reply.status, code(&reply).as_str()),
        (400, "UnsupportedOperation")
    );
    assert!(reply.body.contains("default subnet"));
    server.stop().await;
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Sled);
    let server = TestServer::start(config.clone()).await;
    let instance = launch(&server, &[]).await;
    let group = text_of(
        &server
            .user(
                "CreateSecurityGroup",
                &[("GroupName", "kept"), ("GroupDescription", "d")],
            )
            .await
            .body,
        "groupId",
    )
    .unwrap();
    server
        .user(
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupId", &group),
                ("IpProtocol", "tcp"),
                ("FromPort", "22"),
                ("ToPort", "22"),
                ("CidrIp", "0.0.0.0/0"),
            ],
        )
        .await;
    let volume = text_of(
        &server
            .user(
                "CreateVolume",
                &[("AvailabilityZone", "us-east-1a"), ("Size", "8")],
            )
            .await
            .body,
        "volumeId",
    )
    .unwrap();
    server
        .user(
            "AttachVolume",
            &[
                ("VolumeId", &volume),
                ("InstanceId", &instance),
                ("Device", "/dev/sdf"),
            ],
        )
        .await;
    let snapshot = text_of(
        &server
            .user("CreateSnapshot", &[("VolumeId", &volume)])
            .await
            .body,
        "snapshotId",
    )
    .unwrap();
    let address = text_of(
        &server.user("AllocateAddress", &[]).await.body,
        "allocationId",
    )
    .unwrap();
    server
        .user(
            "AssociateAddress",
            &[("AllocationId", &address), ("InstanceId", &instance)],
        )
        .await;
    server
        .user(
            "CreateTags",
            &[
                ("ResourceId.1", &group),
                ("ResourceId.2", &volume),
                ("Tag.1.Key", "kept"),
                ("Tag.1.Value", "yes"),
            ],
        )
        .await;
    let vpc = text_of(&server.user("DescribeVpcs", &[]).await.body, "vpcId").unwrap();
    server.stop().await;

    let server = TestServer::start(config).await;
    let groups = server
        .user("DescribeSecurityGroups", &[("GroupId.1", &group)])
        .await;
    assert!(
        groups.body.contains("<fromPort>22</fromPort>") && groups.body.contains("<key>kept</key>")
    );
    let volumes = server
        .user("DescribeVolumes", &[("VolumeId.1", &volume)])
        .await;
    assert!(
        volumes.body.contains("<status>in-use</status>")
            && volumes.body.contains("<key>kept</key>")
    );
    assert_eq!(
        column(
            &server.user("DescribeSnapshots", &[]).await,
            "snapshotSet",
            "snapshotId"
        ),
        [snapshot]
    );
    let addresses = server.user("DescribeAddresses", &[]).await;
    assert_eq!(
        column(&addresses, "addressesSet", "instanceId"),
        std::slice::from_ref(&instance)
    );
    assert_eq!(
        text_of(&server.user("DescribeVpcs", &[]).await.body, "vpcId"),
        Some(vpc)
    );
    // The pool remembers the address is taken.
    let next = text_of(&server.user("AllocateAddress", &[]).await.body, "publicIp").unwrap();
    assert_ne!(next, column(&addresses, "addressesSet", "publicIp")[0]);
    server.stop().await;
}

#[tokio::test]
async fn dry_run_changes_nothing_on_any_resource() {
    let (server, _dir) = server().await;
    let instance = launch(&server, &[]).await;
    let group = text_of(
        &server
            .user(
                "CreateSecurityGroup",
                &[("GroupName", "g"), ("GroupDescription", "d")],
            )
            .await
            .body,
        "groupId",
    )
    .unwrap();
    let volume = text_of(
        &server
            .user(
                "CreateVolume",
                &[("AvailabilityZone", "us-east-1a"), ("Size", "8")],
            )
            .await
            .body,
        "volumeId",
    )
    .unwrap();
    let snapshot = text_of(
        &server
            .user("CreateSnapshot", &[("VolumeId", &volume)])
            .await
            .body,
        "snapshotId",
    )
    .unwrap();
    let allocation = text_of(
        &server.user("AllocateAddress", &[]).await.body,
        "allocationId",
    )
    .unwrap();
    let before = [
        server.user("DescribeSecurityGroups", &[]).await.body,
        server.user("DescribeVolumes", &[]).await.body,
        server.user("DescribeSnapshots", &[]).await.body,
        server.user("DescribeAddresses", &[]).await.body,
        server.user("DescribeTags", &[]).await.body,
    ]
    .map(|b| b.split("</requestId>").nth(1).unwrap().to_string());
    let rule = [
        ("IpProtocol", "tcp"),
        ("FromPort", "22"),
        ("ToPort", "22"),
        ("CidrIp", "0.0.0.0/0"),
    ];
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "CreateSecurityGroup",
            vec![("GroupName", "dry"), ("GroupDescription", "d")],
        ),
        (
            "AuthorizeSecurityGroupIngress",
            [vec![("GroupId", group.as_str())], rule.to_vec()].concat(),
        ),
        (
            "AuthorizeSecurityGroupEgress",
            [vec![("GroupId", group.as_str())], rule.to_vec()].concat(),
        ),
        (
            "RevokeSecurityGroupEgress",
            vec![
                ("GroupId", group.as_str()),
                ("IpProtocol", "-1"),
                ("CidrIp", "0.0.0.0/0"),
            ],
        ),
        ("DeleteSecurityGroup", vec![("GroupId", group.as_str())]),
        (
            "CreateTags",
            vec![("ResourceId.1", volume.as_str()), ("Tag.1.Key", "k")],
        ),
        (
            "CreateVolume",
            vec![("AvailabilityZone", "us-east-1a"), ("Size", "8")],
        ),
        (
            "AttachVolume",
            vec![
                ("VolumeId", volume.as_str()),
                ("InstanceId", instance.as_str()),
                ("Device", "/dev/sdf"),
            ],
        ),
        (
            "ModifyVolume",
            vec![("VolumeId", volume.as_str()), ("Size", "9")],
        ),
        ("CreateSnapshot", vec![("VolumeId", volume.as_str())]),
        (
            "CopySnapshot",
            vec![
                ("SourceRegion", "us-east-1"),
                ("SourceSnapshotId", snapshot.as_str()),
            ],
        ),
        ("DeleteSnapshot", vec![("SnapshotId", snapshot.as_str())]),
        ("DeleteVolume", vec![("VolumeId", volume.as_str())]),
        (
            "AssociateAddress",
            vec![
                ("AllocationId", allocation.as_str()),
                ("InstanceId", instance.as_str()),
            ],
        ),
        (
            "ReleaseAddress",
            vec![("AllocationId", allocation.as_str())],
        ),
        ("DescribeAccountAttributes", vec![]),
        ("DescribeVpcs", vec![]),
        ("DescribeSubnets", vec![]),
        ("DescribeVolumeStatus", vec![]),
        ("DescribeSecurityGroupRules", vec![]),
    ];
    for (action, mut params) in cases {
        params.push(("DryRun", "true"));
        let reply = server.user(action, &params).await;
        assert_eq!(
            (reply.status, code(&reply)),
            (412, "DryRunOperation".to_string()),
            "{action}: {}",
            reply.body
        );
    }
    let after = [
        server.user("DescribeSecurityGroups", &[]).await.body,
        server.user("DescribeVolumes", &[]).await.body,
        server.user("DescribeSnapshots", &[]).await.body,
        server.user("DescribeAddresses", &[]).await.body,
        server.user("DescribeTags", &[]).await.body,
    ]
    .map(|b| b.split("</requestId>").nth(1).unwrap().to_string());
    assert_eq!(before, after, "a dry run changed something");
    server.stop().await;
}
