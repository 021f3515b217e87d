//! VPCs beside the default one: CreateVpc, DescribeVpcs, DeleteVpc and the
//! DNS attributes, through the in-process server, with EC2's error codes,
//! the quota, account isolation and a restart.

mod common;

use common::*;
use ec2_gateway::client::text_of;
use ec2_gateway::config::StorageBackend;

async fn create(server: &TestServer, block: &str) -> ec2_gateway::client::Reply {
    server.user("CreateVpc", &[("CidrBlock", block)]).await
}

/// DescribeVpcAttribute's `value` for `attribute` of `vpc`.
async fn attribute(server: &TestServer, vpc: &str, attribute: &str) -> String {
    let reply = server
        .user(
            "DescribeVpcAttribute",
            &[("VpcId", vpc), ("Attribute", attribute)],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    check_reply("DescribeVpcAttribute", &reply);
    let inner = reply.body.split(&format!("<{attribute}>")).nth(1).unwrap();
    text_of(inner, "value").unwrap()
}

#[tokio::test]
async fn vpcs_are_created_listed_tagged_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    // Host bits are cleared, as EC2 does; the new VPC answers `pending`.
    let reply = server
        .user(
            "CreateVpc",
            &[
                ("CidrBlock", "10.1.2.3/16"),
                ("TagSpecification.1.ResourceType", "vpc"),
                ("TagSpecification.1.Tag.1.Key", "Name"),
                ("TagSpecification.1.Tag.1.Value", "lab"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    check_reply("CreateVpc", &reply);
    let vpc = text_of(&reply.body, "vpcId").unwrap();
    assert!(vpc.starts_with("vpc-"));
    assert_eq!(text_of(&reply.body, "cidrBlock").unwrap(), "10.1.0.0/16");
    assert_eq!(text_of(&reply.body, "state").unwrap(), "pending");
    assert_eq!(text_of(&reply.body, "isDefault").unwrap(), "false");

    // Listed beside the default VPC, available; filters by default-ness,
    // block and tag.
    let all = server.user("DescribeVpcs", &[]).await;
    check_reply("DescribeVpcs", &all);
    assert_eq!(column(&all, "vpcSet", "vpcId").len(), 2);
    let created = server
        .user(
            "DescribeVpcs",
            &[
                ("Filter.1.Name", "is-default"),
                ("Filter.1.Value.1", "false"),
            ],
        )
        .await;
    assert_eq!(
        column(&created, "vpcSet", "vpcId"),
        std::slice::from_ref(&vpc)
    );
    assert_eq!(column(&created, "vpcSet", "state"), ["available"]);
    let by_block = server
        .user(
            "DescribeVpcs",
            &[
                ("Filter.1.Name", "cidr"),
                ("Filter.1.Value.1", "10.1.0.0/16"),
            ],
        )
        .await;
    assert_eq!(
        column(&by_block, "vpcSet", "vpcId"),
        std::slice::from_ref(&vpc)
    );
    let by_tag = server
        .user(
            "DescribeVpcs",
            &[("Filter.1.Name", "tag:Name"), ("Filter.1.Value.1", "lab")],
        )
        .await;
    assert_eq!(
        column(&by_tag, "vpcSet", "vpcId"),
        std::slice::from_ref(&vpc)
    );
    let tags = server
        .user(
            "DescribeTags",
            &[("Filter.1.Name", "resource-id"), ("Filter.1.Value.1", &vpc)],
        )
        .await;
    assert_eq!(column(&tags, "tagSet", "value"), ["lab"]);
    let retag = server
        .user(
            "CreateTags",
            &[
                ("ResourceId.1", &vpc),
                ("Tag.1.Key", "team"),
                ("Tag.1.Value", "net"),
            ],
        )
        .await;
    assert_eq!(retag.status, 200, "{}", retag.body);

    // DryRun deletes nothing; then it goes, and is gone.
    let dry = server
        .user("DeleteVpc", &[("VpcId", &vpc), ("DryRun", "true")])
        .await;
    assert_eq!(error_code(&dry), "DryRunOperation");
    let deleted = server.user("DeleteVpc", &[("VpcId", &vpc)]).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    check_reply("DeleteVpc", &deleted);
    let again = server.user("DeleteVpc", &[("VpcId", &vpc)]).await;
    assert_eq!(
        (again.status, error_code(&again).as_str()),
        (400, "InvalidVpcID.NotFound")
    );
    let listed = server.user("DescribeVpcs", &[("VpcId.1", &vpc)]).await;
    assert_eq!(error_code(&listed), "InvalidVpcID.NotFound");
    server.stop().await;
}

#[tokio::test]
async fn bad_blocks_the_quota_and_the_default_vpc_answer_as_ec2() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    for (block, code) in [
        ("10.0.0.0/15", "InvalidVpc.Range"),
        ("10.0.0.0/29", "InvalidVpc.Range"),
        ("10.0.0/16", "InvalidParameterValue"),
        ("10.0.0.0/16/1", "InvalidParameterValue"),
    ] {
        let reply = create(&server, block).await;
        assert_eq!(
            (reply.status, error_code(&reply).as_str()),
            (400, code),
            "{block}"
        );
    }
    let missing = server.user("CreateVpc", &[]).await;
    assert_eq!(error_code(&missing), "MissingParameter");
    // Five VPCs per account, the default one included (EC2's quota).
    for n in 0..4 {
        let reply = create(&server, &format!("10.{n}.0.0/16")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let over = create(&server, "10.9.0.0/16").await;
    assert_eq!(
        (over.status, error_code(&over).as_str()),
        (400, "VpcLimitExceeded")
    );
    // A DryRun within the quota is a DryRunOperation, over it the limit.
    let dry = server
        .user(
            "CreateVpc",
            &[("CidrBlock", "10.9.0.0/16"), ("DryRun", "true")],
        )
        .await;
    assert_eq!(error_code(&dry), "VpcLimitExceeded");
    // The default VPC keeps its default subnets: it has dependencies.
    let attributes = server.user("DescribeAccountAttributes", &[]).await;
    let default_vpc = attributes
        .body
        .split("<attributeName>default-vpc</attributeName>")
        .nth(1)
        .and_then(|rest| text_of(rest, "attributeValue"))
        .unwrap();
    let refused = server.user("DeleteVpc", &[("VpcId", &default_vpc)]).await;
    assert_eq!(
        (refused.status, error_code(&refused).as_str()),
        (400, "DependencyViolation")
    );
    let malformed = server.user("DeleteVpc", &[("VpcId", "vpc-nothex!")]).await;
    assert_eq!(error_code(&malformed), "InvalidVpcID.Malformed");
    server.stop().await;
}

#[tokio::test]
async fn dns_attributes_follow_ec2_rules() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let vpc = text_of(&create(&server, "192.168.0.0/24").await.body, "vpcId").unwrap();
    // A created VPC: DNS support on, hostnames off.
    assert_eq!(attribute(&server, &vpc, "enableDnsSupport").await, "true");
    assert_eq!(
        attribute(&server, &vpc, "enableDnsHostnames").await,
        "false"
    );
    let modify = |params: Vec<(&'static str, &'static str)>| {
        let (server, vpc) = (&server, vpc.clone());
        async move {
            let mut all = vec![("VpcId", vpc.as_str())];
            all.extend(params);
            server.user("ModifyVpcAttribute", &all).await
        }
    };
    let on = modify(vec![("EnableDnsHostnames.Value", "true")]).await;
    assert_eq!(on.status, 200, "{}", on.body);
    assert_eq!(attribute(&server, &vpc, "enableDnsHostnames").await, "true");
    // Hostnames need DNS support; both at once is refused.
    let off = modify(vec![("EnableDnsSupport.Value", "false")]).await;
    assert_eq!(error_code(&off), "InvalidParameterValue");
    let both = modify(vec![
        ("EnableDnsSupport.Value", "true"),
        ("EnableDnsHostnames.Value", "true"),
    ])
    .await;
    assert_eq!(error_code(&both), "InvalidParameterCombination");
    let unknown = server
        .user(
            "DescribeVpcAttribute",
            &[("VpcId", &vpc), ("Attribute", "colour")],
        )
        .await;
    assert_eq!(error_code(&unknown), "InvalidParameterValue");
    server.stop().await;
}

#[tokio::test]
async fn another_account_neither_sees_nor_deletes_a_vpc_and_vpcs_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Sled);
    let server = TestServer::start(config.clone()).await;
    let vpc = text_of(&create(&server, "10.20.0.0/16").await.body, "vpcId").unwrap();
    let theirs = server.admin("DescribeVpcs", &[("VpcId.1", &vpc)]).await;
    assert_eq!(error_code(&theirs), "InvalidVpcID.NotFound");
    let delete = server.admin("DeleteVpc", &[("VpcId", &vpc)]).await;
    assert_eq!(error_code(&delete), "InvalidVpcID.NotFound");
    let tag = server
        .admin("CreateTags", &[("ResourceId.1", &vpc), ("Tag.1.Key", "k")])
        .await;
    assert_eq!(error_code(&tag), "InvalidVpcID.NotFound");
    server.stop().await;

    let server = TestServer::start(config).await;
    let listed = server.user("DescribeVpcs", &[("VpcId.1", &vpc)]).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(column(&listed, "vpcSet", "cidrBlock"), ["10.20.0.0/16"]);
    server.stop().await;
}

#[tokio::test]
async fn each_vpc_has_its_own_groups_and_dry_runs_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let vpc = text_of(&create(&server, "10.30.0.0/16").await.body, "vpcId").unwrap();
    let group_in = |vpc_id: &str| {
        let (server, vpc_id) = (&server, vpc_id.to_string());
        async move {
            server
                .user(
                    "CreateSecurityGroup",
                    &[
                        ("GroupName", "web"),
                        ("GroupDescription", "web"),
                        ("VpcId", vpc_id.as_str()),
                    ],
                )
                .await
        }
    };
    // A created VPC has its own `default` group; names are unique per VPC,
    // so `web` may exist in both VPCs.
    let in_created = group_in(&vpc).await;
    assert_eq!(in_created.status, 200, "{}", in_created.body);
    let web_created = text_of(&in_created.body, "groupId").unwrap();
    let in_default = server
        .user(
            "CreateSecurityGroup",
            &[("GroupName", "web"), ("GroupDescription", "web")],
        )
        .await;
    assert_eq!(in_default.status, 200, "{}", in_default.body);
    let again = group_in(&vpc).await;
    assert_eq!(error_code(&again), "InvalidGroup.Duplicate");
    let unknown = group_in("vpc-0123456789abcdef0").await;
    assert_eq!(error_code(&unknown), "InvalidVpcID.NotFound");
    let of_vpc = server
        .user(
            "DescribeSecurityGroups",
            &[("Filter.1.Name", "vpc-id"), ("Filter.1.Value.1", &vpc)],
        )
        .await;
    let mut names = column(&of_vpc, "securityGroupInfo", "groupName");
    names.sort();
    assert_eq!(names, ["default", "web"]);
    let own_default = items(&of_vpc, "securityGroupInfo")
        .into_iter()
        .find(|g| g["groupName"] == "default")
        .map(|g| g["groupId"].clone())
        .unwrap();
    // Rules reference groups of the same VPC only (there is no peering).
    let default_web = text_of(&in_default.body, "groupId").unwrap();
    let across = server
        .user(
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupId", &web_created),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", "80"),
                ("IpPermissions.1.ToPort", "80"),
                ("IpPermissions.1.Groups.1.GroupId", &default_web),
            ],
        )
        .await;
    assert_eq!(error_code(&across), "InvalidGroup.NotFound");
    let within = server
        .user(
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupId", &web_created),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", "80"),
                ("IpPermissions.1.ToPort", "80"),
                ("IpPermissions.1.Groups.1.GroupId", &own_default),
            ],
        )
        .await;
    assert_eq!(within.status, 200, "{}", within.body);
    // A name means the default VPC's group: deleting `web` by name leaves
    // the created VPC's `web`; its `default` cannot be deleted.
    let by_name = server
        .user("DeleteSecurityGroup", &[("GroupName", "web")])
        .await;
    assert_eq!(by_name.status, 200, "{}", by_name.body);
    let kept = server
        .user("DescribeSecurityGroups", &[("GroupId.1", &web_created)])
        .await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    let protected = server
        .user("DeleteSecurityGroup", &[("GroupId", &own_default)])
        .await;
    assert_eq!(error_code(&protected), "CannotDelete");
    // The VPC is not deleted while `web` lives in it; then its `default`
    // goes with it.
    let busy = server.user("DeleteVpc", &[("VpcId", &vpc)]).await;
    assert_eq!(error_code(&busy), "DependencyViolation");
    let gone = server
        .user("DeleteSecurityGroup", &[("GroupId", &web_created)])
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    let deleted = server.user("DeleteVpc", &[("VpcId", &vpc)]).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let groups = server.user("DescribeSecurityGroups", &[]).await;
    assert_eq!(
        column(&groups, "securityGroupInfo", "groupName"),
        ["default"]
    );
    let vpc = text_of(&create(&server, "10.30.0.0/16").await.body, "vpcId").unwrap();

    // A DryRun of CreateVpc within the quota stores nothing.
    let dry = server
        .user(
            "CreateVpc",
            &[("CidrBlock", "10.40.0.0/16"), ("DryRun", "true")],
        )
        .await;
    assert_eq!(error_code(&dry), "DryRunOperation");
    let listed = server.user("DescribeVpcs", &[]).await;
    assert_eq!(column(&listed, "vpcSet", "vpcId").len(), 2);

    // The default VPC: DNS hostnames on, changeable; another account sees
    // none of this VPC's attributes.
    let default_vpc = server
        .user(
            "DescribeVpcs",
            &[
                ("Filter.1.Name", "is-default"),
                ("Filter.1.Value.1", "true"),
            ],
        )
        .await;
    let default_vpc = column(&default_vpc, "vpcSet", "vpcId").remove(0);
    assert_eq!(
        attribute(&server, &default_vpc, "enableDnsHostnames").await,
        "true"
    );
    let off = server
        .user(
            "ModifyVpcAttribute",
            &[
                ("VpcId", &default_vpc),
                ("EnableDnsHostnames.Value", "false"),
            ],
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(
        attribute(&server, &default_vpc, "enableDnsHostnames").await,
        "false"
    );
    assert_eq!(
        attribute(&server, &vpc, "enableNetworkAddressUsageMetrics").await,
        "false"
    );
    for action in ["DescribeVpcAttribute", "ModifyVpcAttribute"] {
        let theirs = server
            .admin(
                action,
                &[
                    ("VpcId", &vpc),
                    ("Attribute", "enableDnsSupport"),
                    ("EnableDnsSupport.Value", "false"),
                ],
            )
            .await;
        assert_eq!(error_code(&theirs), "InvalidVpcID.NotFound", "{action}");
    }
    server.stop().await;
}

#[tokio::test]
async fn secondary_blocks_hold_subnets_and_routes_and_the_default_vpc_exists() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let exists = server.user("CreateDefaultVpc", &[]).await;
    assert_eq!(
        (exists.status, error_code(&exists).as_str()),
        (400, "DefaultVpcAlreadyExists")
    );
    let vpc = text_of(&create(&server, "10.50.0.0/16").await.body, "vpcId").unwrap();
    let outside = server
        .user(
            "CreateSubnet",
            &[("VpcId", &vpc), ("CidrBlock", "10.51.0.0/24")],
        )
        .await;
    assert_eq!(error_code(&outside), "InvalidSubnet.Range");
    let associated = server
        .user(
            "AssociateVpcCidrBlock",
            &[("VpcId", &vpc), ("CidrBlock", "10.51.0.0/16")],
        )
        .await;
    assert_eq!(associated.status, 200, "{}", associated.body);
    let association = text_of(&associated.body, "associationId").unwrap();
    let overlapping = server
        .user(
            "AssociateVpcCidrBlock",
            &[("VpcId", &vpc), ("CidrBlock", "10.51.128.0/17")],
        )
        .await;
    assert_eq!(error_code(&overlapping), "InvalidVpc.Range");
    // Listed, routed locally, and subnets may be made in it.
    let listed = server.user("DescribeVpcs", &[("VpcId.1", &vpc)]).await;
    let mut blocks = column(&listed, "cidrBlockAssociationSet", "cidrBlock");
    blocks.sort();
    assert_eq!(blocks, ["10.50.0.0/16", "10.51.0.0/16"]);
    let tables = server
        .user(
            "DescribeRouteTables",
            &[
                ("Filter.1.Name", "route.destination-cidr-block"),
                ("Filter.1.Value.1", "10.51.0.0/16"),
            ],
        )
        .await;
    assert_eq!(column(&tables, "routeTableSet", "routeTableId").len(), 1);
    let subnet = server
        .user(
            "CreateSubnet",
            &[("VpcId", &vpc), ("CidrBlock", "10.51.0.0/24")],
        )
        .await;
    assert_eq!(subnet.status, 200, "{}", subnet.body);
    let subnet = text_of(&subnet.body, "subnetId").unwrap();
    // Not while it holds a subnet; never the primary block.
    let busy = server
        .user(
            "DisassociateVpcCidrBlock",
            &[("AssociationId", &association)],
        )
        .await;
    assert_eq!(error_code(&busy), "DependencyViolation");
    let primary = column(&listed, "cidrBlockAssociationSet", "associationId")
        .into_iter()
        .find(|id| id != &association)
        .unwrap();
    let refused = server
        .user("DisassociateVpcCidrBlock", &[("AssociationId", &primary)])
        .await;
    assert_eq!(error_code(&refused), "OperationNotPermitted");
    let theirs = server
        .admin(
            "DisassociateVpcCidrBlock",
            &[("AssociationId", &association)],
        )
        .await;
    assert_eq!(
        error_code(&theirs),
        "InvalidVpcCidrBlockAssociationID.NotFound"
    );
    server.user("DeleteSubnet", &[("SubnetId", &subnet)]).await;
    let gone = server
        .user(
            "DisassociateVpcCidrBlock",
            &[("AssociationId", &association)],
        )
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    let tables = server
        .user(
            "DescribeRouteTables",
            &[
                ("Filter.1.Name", "route.destination-cidr-block"),
                ("Filter.1.Value.1", "10.51.0.0/16"),
            ],
        )
        .await;
    assert!(tables.body.contains("<routeTableSet/>"), "{}", tables.body);
    // Five blocks at most.
    for n in 60..64 {
        let more = server
            .user(
                "AssociateVpcCidrBlock",
                &[("VpcId", &vpc), ("CidrBlock", &format!("10.{n}.0.0/16"))],
            )
            .await;
        assert_eq!(more.status, 200, "{}", more.body);
    }
    let sixth = server
        .user(
            "AssociateVpcCidrBlock",
            &[("VpcId", &vpc), ("CidrBlock", "10.70.0.0/16")],
        )
        .await;
    assert_eq!(error_code(&sixth), "CidrLimitExceeded");
    server.stop().await;
}
