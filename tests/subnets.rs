//! Subnets of created VPCs: CreateSubnet, DescribeSubnets, DeleteSubnet,
//! ModifySubnetAttribute, and launches that take their addresses from a
//! subnet, through the in-process server: EC2's error codes, the five
//! reserved addresses, a full subnet, deletion order, account isolation
//! and a restart.

mod common;

use common::*;
use ec2_gateway::client::text_of;
use ec2_gateway::config::StorageBackend;
use std::net::Ipv4Addr;

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

async fn vpc(server: &TestServer, block: &str) -> String {
    let reply = server.user("CreateVpc", &[("CidrBlock", block)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    text_of(&reply.body, "vpcId").unwrap()
}

async fn create_subnet(server: &TestServer, params: &[(&str, &str)]) -> ec2_gateway::client::Reply {
    server.user("CreateSubnet", params).await
}

/// The subnet's one item in DescribeSubnets.
async fn describe(server: &TestServer, subnet: &str) -> std::collections::BTreeMap<String, String> {
    let reply = server
        .user("DescribeSubnets", &[("SubnetId.1", subnet)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    items(&reply, "subnetSet").remove(0)
}

#[tokio::test]
async fn subnets_are_created_checked_listed_and_deleted_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let vpc = vpc(&server, "10.0.0.0/16").await;
    let reply = create_subnet(
        &server,
        &[
            ("VpcId", &vpc),
            ("CidrBlock", "10.0.1.7/24"),
            ("AvailabilityZone", "us-east-1b"),
            ("TagSpecification.1.ResourceType", "subnet"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "public"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let subnet = text_of(&reply.body, "subnetId").unwrap();
    assert!(subnet.starts_with("subnet-"));
    assert_eq!(text_of(&reply.body, "state").unwrap(), "pending");
    assert_eq!(text_of(&reply.body, "cidrBlock").unwrap(), "10.0.1.0/24");
    // 256 addresses less EC2's five reserved ones.
    assert_eq!(
        text_of(&reply.body, "availableIpAddressCount").unwrap(),
        "251"
    );

    let listed = describe(&server, &subnet).await;
    assert_eq!(listed["state"], "available");
    assert_eq!(listed["vpcId"], vpc);
    assert_eq!(listed["availabilityZone"], "us-east-1b");
    assert_eq!(listed["defaultForAz"], "false");
    assert_eq!(listed["mapPublicIpOnLaunch"], "false");

    // A zone by its id; filters tell created subnets from default ones.
    let zones = server.user("DescribeAvailabilityZones", &[]).await;
    let zone_c = items(&zones, "availabilityZoneInfo")
        .into_iter()
        .find(|z| z["zoneName"] == "us-east-1c")
        .map(|z| z["zoneId"].clone())
        .unwrap();
    let by_id = create_subnet(
        &server,
        &[
            ("VpcId", &vpc),
            ("CidrBlock", "10.0.2.0/28"),
            ("AvailabilityZoneId", &zone_c),
        ],
    )
    .await;
    assert_eq!(by_id.status, 200, "{}", by_id.body);
    assert_eq!(
        text_of(&by_id.body, "availabilityZone").unwrap(),
        "us-east-1c"
    );
    let second = text_of(&by_id.body, "subnetId").unwrap();
    let mine = server
        .user(
            "DescribeSubnets",
            &[("Filter.1.Name", "vpc-id"), ("Filter.1.Value.1", &vpc)],
        )
        .await;
    let mut ids = column(&mine, "subnetSet", "subnetId");
    ids.sort();
    let mut expected = vec![subnet.clone(), second.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    let defaults = server
        .user(
            "DescribeSubnets",
            &[
                ("Filter.1.Name", "default-for-az"),
                ("Filter.1.Value.1", "true"),
            ],
        )
        .await;
    assert_eq!(column(&defaults, "subnetSet", "subnetId").len(), 3);
    let tagged = server
        .user(
            "DescribeSubnets",
            &[
                ("Filter.1.Name", "tag:Name"),
                ("Filter.1.Value.1", "public"),
            ],
        )
        .await;
    assert_eq!(
        column(&tagged, "subnetSet", "subnetId"),
        std::slice::from_ref(&subnet)
    );

    // EC2's refusals.
    for (block, code) in [
        ("10.1.0.0/24", "InvalidSubnet.Range"),
        ("10.0.0.0/29", "InvalidSubnet.Range"),
        ("10.0.0.0/15", "InvalidSubnet.Range"),
        ("10.0.1.128/25", "InvalidSubnet.Conflict"),
        ("10.0.0.0/23", "InvalidSubnet.Conflict"),
        ("10.0.1/24", "InvalidParameterValue"),
    ] {
        let reply = create_subnet(&server, &[("VpcId", &vpc), ("CidrBlock", block)]).await;
        assert_eq!(
            (reply.status, error_code(&reply).as_str()),
            (400, code),
            "{block}: {}",
            reply.body
        );
    }
    let bad_zone = create_subnet(
        &server,
        &[
            ("VpcId", &vpc),
            ("CidrBlock", "10.0.3.0/24"),
            ("AvailabilityZone", "us-east-1z"),
        ],
    )
    .await;
    assert_eq!(error_code(&bad_zone), "InvalidParameterValue");
    let no_vpc = create_subnet(
        &server,
        &[
            ("VpcId", "vpc-0123456789abcdef0"),
            ("CidrBlock", "10.0.3.0/24"),
        ],
    )
    .await;
    assert_eq!(error_code(&no_vpc), "InvalidVpcID.NotFound");
    let missing = create_subnet(&server, &[("VpcId", &vpc)]).await;
    assert_eq!(error_code(&missing), "MissingParameter");
    let dry = create_subnet(
        &server,
        &[
            ("VpcId", &vpc),
            ("CidrBlock", "10.0.3.0/24"),
            ("DryRun", "true"),
        ],
    )
    .await;
    assert_eq!(error_code(&dry), "DryRunOperation");
    let after_dry = server
        .user(
            "DescribeSubnets",
            &[("Filter.1.Name", "vpc-id"), ("Filter.1.Value.1", &vpc)],
        )
        .await;
    assert_eq!(column(&after_dry, "subnetSet", "subnetId").len(), 2);

    // Deletion in EC2's order: the VPC only once its subnets are gone.
    let busy = server.user("DeleteVpc", &[("VpcId", &vpc)]).await;
    assert_eq!(error_code(&busy), "DependencyViolation");
    for id in [&subnet, &second] {
        let gone = server.user("DeleteSubnet", &[("SubnetId", id)]).await;
        assert_eq!(gone.status, 200, "{}", gone.body);
    }
    let again = server.user("DeleteSubnet", &[("SubnetId", &subnet)]).await;
    assert_eq!(error_code(&again), "InvalidSubnetID.NotFound");
    let listed = server
        .user("DescribeSubnets", &[("SubnetId.1", &subnet)])
        .await;
    assert_eq!(error_code(&listed), "InvalidSubnetID.NotFound");
    let deleted = server.user("DeleteVpc", &[("VpcId", &vpc)]).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    server.stop().await;
}

#[tokio::test]
async fn launches_take_addresses_from_their_subnet_until_it_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let vpc = vpc(&server, "10.5.0.0/16").await;
    let reply = create_subnet(
        &server,
        &[
            ("VpcId", &vpc),
            ("CidrBlock", "10.5.9.16/28"),
            ("AvailabilityZone", "us-east-1a"),
        ],
    )
    .await;
    let subnet = text_of(&reply.body, "subnetId").unwrap();
    assert_eq!(
        describe(&server, &subnet).await["availableIpAddressCount"],
        "11"
    );

    // Groups of the subnet's VPC only: the default VPC's `default` is
    // refused, the VPC's own `default` is the one taken when none is named.
    let default_groups = server
        .user(
            "DescribeSecurityGroups",
            &[
                ("Filter.1.Name", "group-name"),
                ("Filter.1.Value.1", "default"),
            ],
        )
        .await;
    let groups = items(&default_groups, "securityGroupInfo");
    let own_default = groups
        .iter()
        .find(|g| g["vpcId"] == vpc)
        .map(|g| g["groupId"].clone())
        .unwrap();
    let foreign = groups
        .iter()
        .find(|g| g["vpcId"] != vpc)
        .map(|g| g["groupId"].clone())
        .unwrap();
    let launch = |counts: (&'static str, &'static str), extra: Vec<(&'static str, String)>| {
        let (server, subnet) = (&server, subnet.clone());
        async move {
            let mut params: Vec<(&str, String)> = vec![
                ("ImageId", IMAGE.into()),
                ("InstanceType", "t3.micro".into()),
                ("MinCount", counts.0.into()),
                ("MaxCount", counts.1.into()),
                ("SubnetId", subnet),
            ];
            params.extend(extra);
            let params: Vec<(&str, &str)> = params.iter().map(|(n, v)| (*n, v.as_str())).collect();
            server.user("RunInstances", &params).await
        }
    };
    let wrong_vpc = launch(("1", "1"), vec![("SecurityGroupId.1", foreign)]).await;
    assert_eq!(error_code(&wrong_vpc), "InvalidParameter");
    let wrong_zone = launch(
        ("1", "1"),
        vec![("Placement.AvailabilityZone", "us-east-1b".into())],
    )
    .await;
    assert_eq!(error_code(&wrong_zone), "InvalidParameterCombination");

    // More than fit: EC2 launches as many as the subnet has addresses for.
    let reply = launch(("1", "15"), vec![]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let launched = items(&reply, "instancesSet");
    assert_eq!(launched.len(), 11);
    let block_start = u32::from(Ipv4Addr::new(10, 5, 9, 16));
    let mut addresses: Vec<u32> = launched
        .iter()
        .map(|i| u32::from(i["privateIpAddress"].parse::<Ipv4Addr>().unwrap()))
        .collect();
    addresses.sort();
    // .20 to .30: the first four and the last of the /28 are EC2's.
    assert_eq!(
        addresses,
        (block_start + 4..=block_start + 14).collect::<Vec<_>>()
    );
    let ids: Vec<String> = launched.iter().map(|i| i["instanceId"].clone()).collect();
    let described = server
        .user("DescribeInstances", &[("InstanceId.1", &ids[0])])
        .await;
    assert_eq!(text_of(&described.body, "subnetId").unwrap(), subnet);
    assert_eq!(text_of(&described.body, "vpcId").unwrap(), vpc);
    assert!(described.body.contains(&own_default), "{}", described.body);
    assert_eq!(
        describe(&server, &subnet).await["availableIpAddressCount"],
        "0"
    );

    // Full: EC2's code; the subnet cannot go while instances live in it.
    let full = launch(("1", "1"), vec![]).await;
    assert_eq!(
        (full.status, error_code(&full).as_str()),
        (400, "InsufficientFreeAddressesInSubnet")
    );
    let busy = server.user("DeleteSubnet", &[("SubnetId", &subnet)]).await;
    assert_eq!(error_code(&busy), "DependencyViolation");

    // Terminating frees the addresses; then the subnet and the VPC go.
    let mut terminate: Vec<(String, String)> = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        terminate.push((format!("InstanceId.{}", n + 1), id.clone()));
    }
    let params: Vec<(&str, &str)> = terminate
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let reply = server.user("TerminateInstances", &params).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for id in &ids {
        wait_for(&server, id, "terminated").await;
    }
    assert_eq!(
        describe(&server, &subnet).await["availableIpAddressCount"],
        "11"
    );
    let reused = launch(("1", "1"), vec![]).await;
    assert_eq!(reused.status, 200, "{}", reused.body);
    let last = text_of(&reused.body, "instanceId").unwrap();
    let reply = server
        .user("TerminateInstances", &[("InstanceId.1", &last)])
        .await;
    assert_eq!(reply.status, 200);
    wait_for(&server, &last, "terminated").await;
    let gone = server.user("DeleteSubnet", &[("SubnetId", &subnet)]).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    let deleted = server.user("DeleteVpc", &[("VpcId", &vpc)]).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    server.stop().await;
}

#[tokio::test]
async fn map_public_ip_is_kept_other_accounts_see_nothing_and_subnets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Sled);
    let server = TestServer::start(config.clone()).await;
    let vpc = vpc(&server, "10.7.0.0/16").await;
    let reply = create_subnet(&server, &[("VpcId", &vpc), ("CidrBlock", "10.7.0.0/20")]).await;
    let subnet = text_of(&reply.body, "subnetId").unwrap();
    let on = server
        .user(
            "ModifySubnetAttribute",
            &[("SubnetId", &subnet), ("MapPublicIpOnLaunch.Value", "true")],
        )
        .await;
    assert_eq!(on.status, 200, "{}", on.body);
    let public = server
        .user(
            "DescribeSubnets",
            &[
                ("Filter.1.Name", "map-public-ip-on-launch"),
                ("Filter.1.Value.1", "true"),
                ("Filter.2.Name", "vpc-id"),
                ("Filter.2.Value.1", &vpc),
            ],
        )
        .await;
    assert_eq!(
        column(&public, "subnetSet", "subnetId"),
        std::slice::from_ref(&subnet)
    );
    let unoffered = server
        .user(
            "ModifySubnetAttribute",
            &[
                ("SubnetId", &subnet),
                ("AssignIpv6AddressOnCreation.Value", "true"),
            ],
        )
        .await;
    assert_eq!(error_code(&unoffered), "UnsupportedOperation");

    // Another account: not found, whatever it tries.
    for (action, params) in [
        ("DescribeSubnets", vec![("SubnetId.1", subnet.as_str())]),
        ("DeleteSubnet", vec![("SubnetId", subnet.as_str())]),
        (
            "ModifySubnetAttribute",
            vec![
                ("SubnetId", subnet.as_str()),
                ("MapPublicIpOnLaunch.Value", "false"),
            ],
        ),
    ] {
        let reply = server.admin(action, &params).await;
        assert_eq!(error_code(&reply), "InvalidSubnetID.NotFound", "{action}");
    }
    let theirs = server
        .admin(
            "CreateSubnet",
            &[("VpcId", &vpc), ("CidrBlock", "10.7.16.0/20")],
        )
        .await;
    assert_eq!(error_code(&theirs), "InvalidVpcID.NotFound");
    let tag = server
        .admin(
            "CreateTags",
            &[
                ("ResourceId.1", &subnet),
                ("Tag.1.Key", "k"),
                ("Tag.1.Value", "v"),
            ],
        )
        .await;
    assert_eq!(error_code(&tag), "InvalidSubnetID.NotFound");
    let own_tag = server
        .user(
            "CreateTags",
            &[
                ("ResourceId.1", &subnet),
                ("Tag.1.Key", "tier"),
                ("Tag.1.Value", "web"),
            ],
        )
        .await;
    assert_eq!(own_tag.status, 200, "{}", own_tag.body);

    server.stop().await;
    let server = TestServer::start(config).await;
    let kept = describe(&server, &subnet).await;
    assert_eq!(kept["cidrBlock"], "10.7.0.0/20");
    assert_eq!(kept["mapPublicIpOnLaunch"], "true");
    assert_eq!(kept["availableIpAddressCount"], "4091");
    let tags = server
        .user(
            "DescribeTags",
            &[
                ("Filter.1.Name", "resource-id"),
                ("Filter.1.Value.1", &subnet),
            ],
        )
        .await;
    assert_eq!(column(&tags, "tagSet", "value"), ["web"]);
    server.stop().await;
}
