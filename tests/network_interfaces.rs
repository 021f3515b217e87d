//! Network interfaces through the in-process server: every instance's
//! primary interface, CreateNetworkInterface with its addresses, attach and
//! detach, attributes, secondary addresses, Elastic IPs on interfaces,
//! RunInstances' `PrivateIpAddress` and `NetworkInterface.N`, what a
//! termination does to attached interfaces, deletion order, isolation and
//! a restart.

mod common;

use common::*;
use ec2_gateway::client::{text_of, Reply};
use ec2_gateway::config::StorageBackend;

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

fn ok(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// A VPC with one subnet in us-east-1a; returns (vpc, subnet).
async fn network(server: &TestServer, block: &str, subnet_block: &str) -> (String, String) {
    let reply = server.user("CreateVpc", &[("CidrBlock", block)]).await;
    ok(&reply);
    let vpc = text_of(&reply.body, "vpcId").unwrap();
    let reply = server
        .user(
            "CreateSubnet",
            &[
                ("VpcId", &vpc),
                ("CidrBlock", subnet_block),
                ("AvailabilityZone", "us-east-1a"),
            ],
        )
        .await;
    ok(&reply);
    (vpc, text_of(&reply.body, "subnetId").unwrap())
}

async fn launch(server: &TestServer, params: &[(&str, &str)]) -> Reply {
    let mut all = vec![("ImageId", IMAGE), ("MinCount", "1"), ("MaxCount", "1")];
    all.extend_from_slice(params);
    server.user("RunInstances", &all).await
}

async fn interface(server: &TestServer, id: &str) -> std::collections::BTreeMap<String, String> {
    let reply = server
        .user("DescribeNetworkInterfaces", &[("NetworkInterfaceId.1", id)])
        .await;
    ok(&reply);
    let mut fields = items(&reply, "networkInterfaceSet").remove(0);
    // The attachment's and the association's fields, one level down.
    for nested in [
        "instanceId",
        "attachmentId",
        "deleteOnTermination",
        "deviceIndex",
        "publicIp",
        "allocationId",
        "groupId",
    ] {
        if let Some(value) = text_of(&reply.body, nested) {
            fields.insert(nested.to_string(), value);
        }
    }
    fields
}

async fn available_addresses(server: &TestServer, subnet: &str) -> u32 {
    let reply = server
        .user("DescribeSubnets", &[("SubnetId.1", subnet)])
        .await;
    text_of(&reply.body, "availableIpAddressCount")
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn every_instance_has_a_primary_interface_that_goes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let reply = launch(&server, &[]).await;
    ok(&reply);
    let instance = text_of(&reply.body, "instanceId").unwrap();
    let address = text_of(&reply.body, "privateIpAddress").unwrap();
    let eni = format!("eni-{}", instance.trim_start_matches("i-"));
    // RunInstances and DescribeInstances render it as EC2 does.
    assert_eq!(
        column(&reply, "networkInterfaceSet", "networkInterfaceId"),
        vec![eni.clone()]
    );
    assert_eq!(text_of(&reply.body, "networkInterfaceId").unwrap(), eni);
    wait_for(&server, &instance, "running").await;
    let described = server
        .user("DescribeInstances", &[("InstanceId.1", &instance)])
        .await;
    assert_eq!(text_of(&described.body, "deviceIndex").unwrap(), "0");
    assert_eq!(text_of(&described.body, "sourceDestCheck").unwrap(), "true");
    let by_interface = server
        .user(
            "DescribeInstances",
            &[
                ("Filter.1.Name", "network-interface.network-interface-id"),
                ("Filter.1.Value.1", &eni),
            ],
        )
        .await;
    assert_eq!(
        column(&by_interface, "reservationSet", "reservationId").len(),
        1
    );

    let listed = interface(&server, &eni).await;
    assert_eq!(listed["status"], "in-use");
    assert_eq!(listed["privateIpAddress"], address);
    assert_eq!(
        listed["availabilityZone"],
        text_of(&reply.body, "availabilityZone").unwrap()
    );
    assert_eq!(listed["instanceId"], instance);
    assert_eq!(listed["deleteOnTermination"], "true");
    let attachment = listed["attachmentId"].clone();
    assert_eq!(
        attachment,
        format!("eni-attach-{}", instance.trim_start_matches("i-"))
    );

    // It is neither deleted nor detached on its own.
    let delete = server
        .user("DeleteNetworkInterface", &[("NetworkInterfaceId", &eni)])
        .await;
    assert_eq!(error_code(&delete), "InvalidNetworkInterface.InUse");
    let detach = server
        .user("DetachNetworkInterface", &[("AttachmentId", &attachment)])
        .await;
    assert_eq!(error_code(&detach), "OperationNotPermitted");
    let malformed = server
        .user(
            "DescribeNetworkInterfaces",
            &[("NetworkInterfaceId.1", "eni-xyz")],
        )
        .await;
    assert_eq!(
        error_code(&malformed),
        "InvalidNetworkInterfaceId.Malformed"
    );

    // Its attributes are the instance's: groups, description, the check.
    let check = server
        .user(
            "ModifyNetworkInterfaceAttribute",
            &[
                ("NetworkInterfaceId", &eni),
                ("SourceDestCheck.Value", "false"),
            ],
        )
        .await;
    ok(&check);
    let described = server
        .user("DescribeInstances", &[("InstanceId.1", &instance)])
        .await;
    assert!(described
        .body
        .contains("<sourceDestCheck>false</sourceDestCheck>"));
    let attribute = server
        .user(
            "DescribeNetworkInterfaceAttribute",
            &[
                ("NetworkInterfaceId", &eni),
                ("Attribute", "sourceDestCheck"),
            ],
        )
        .await;
    ok(&attribute);
    assert_eq!(text_of(&attribute.body, "value").unwrap(), "false");
    ok(&server
        .user(
            "ResetNetworkInterfaceAttribute",
            &[
                ("NetworkInterfaceId", &eni),
                ("SourceDestCheck", "sourceDestCheck"),
            ],
        )
        .await);
    assert_eq!(interface(&server, &eni).await["sourceDestCheck"], "true");

    let group = server
        .user(
            "CreateSecurityGroup",
            &[("GroupName", "web"), ("GroupDescription", "web")],
        )
        .await;
    let group = text_of(&group.body, "groupId").unwrap();
    ok(&server
        .user(
            "ModifyNetworkInterfaceAttribute",
            &[("NetworkInterfaceId", &eni), ("SecurityGroupId.1", &group)],
        )
        .await);
    let described = server
        .user("DescribeInstances", &[("InstanceId.1", &instance)])
        .await;
    // The instance's groups and its interface's are one and the same.
    assert_eq!(text_of(&described.body, "groupId").unwrap(), group);
    assert_eq!(
        described.body.matches("<groupId>").count(),
        2,
        "{}",
        described.body
    );
    let groups_attribute = server
        .user(
            "DescribeNetworkInterfaceAttribute",
            &[("NetworkInterfaceId", &eni), ("Attribute", "groupSet")],
        )
        .await;
    assert_eq!(
        column(&groups_attribute, "groupSet", "groupId"),
        vec![group.clone()]
    );
    let none_left = server
        .user(
            "ModifyNetworkInterfaceAttribute",
            &[
                ("NetworkInterfaceId", &eni),
                ("Description.Value", "front"),
                ("SourceDestCheck.Value", "true"),
            ],
        )
        .await;
    assert_eq!(error_code(&none_left), "InvalidParameterCombination");

    // A secondary address within the type's limit (t2.micro: 2).
    let assigned = server
        .user(
            "AssignPrivateIpAddresses",
            &[
                ("NetworkInterfaceId", &eni),
                ("SecondaryPrivateIpAddressCount", "1"),
            ],
        )
        .await;
    ok(&assigned);
    let secondary = column(
        &assigned,
        "assignedPrivateIpAddressesSet",
        "privateIpAddress",
    );
    assert_eq!(secondary.len(), 1);
    let over = server
        .user(
            "AssignPrivateIpAddresses",
            &[
                ("NetworkInterfaceId", &eni),
                ("SecondaryPrivateIpAddressCount", "1"),
            ],
        )
        .await;
    assert_eq!(error_code(&over), "PrivateIpAddressLimitExceeded");
    let listed = server
        .user(
            "DescribeNetworkInterfaces",
            &[("NetworkInterfaceId.1", &eni)],
        )
        .await;
    assert_eq!(
        column(&listed, "privateIpAddressesSet", "privateIpAddress"),
        vec![address.clone(), secondary[0].clone()]
    );

    // Terminated: the interface is gone with it.
    ok(&server
        .user("TerminateInstances", &[("InstanceId.1", &instance)])
        .await);
    wait_for(&server, &instance, "terminated").await;
    let gone = server
        .user(
            "DescribeNetworkInterfaces",
            &[("NetworkInterfaceId.1", &eni)],
        )
        .await;
    assert_eq!(error_code(&gone), "InvalidNetworkInterfaceID.NotFound");
    server.stop().await;
}

#[tokio::test]
async fn created_interfaces_hold_addresses_attach_detach_and_go_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let (vpc, subnet) = network(&server, "10.20.0.0/16", "10.20.1.0/24").await;
    let (_, other_subnet) = network(&server, "10.21.0.0/16", "10.21.1.0/24").await;
    let before = available_addresses(&server, &subnet).await;

    let reply = server
        .user(
            "CreateNetworkInterface",
            &[
                ("SubnetId", &subnet),
                ("PrivateIpAddress", "10.20.1.50"),
                ("SecondaryPrivateIpAddressCount", "2"),
                ("Description", "database"),
                ("TagSpecification.1.ResourceType", "network-interface"),
                ("TagSpecification.1.Tag.1.Key", "role"),
                ("TagSpecification.1.Tag.1.Value", "db"),
                ("ClientToken", "eni-token-1"),
            ],
        )
        .await;
    ok(&reply);
    let eni = text_of(&reply.body, "networkInterfaceId").unwrap();
    assert_eq!(text_of(&reply.body, "status").unwrap(), "available");
    assert_eq!(text_of(&reply.body, "vpcId").unwrap(), vpc);
    assert_eq!(
        text_of(&reply.body, "privateIpAddress").unwrap(),
        "10.20.1.50"
    );
    assert_eq!(available_addresses(&server, &subnet).await, before - 3);
    // The same token answers the same interface; other parameters do not.
    let again = server
        .user(
            "CreateNetworkInterface",
            &[
                ("SubnetId", &subnet),
                ("PrivateIpAddress", "10.20.1.50"),
                ("SecondaryPrivateIpAddressCount", "2"),
                ("Description", "database"),
                ("TagSpecification.1.ResourceType", "network-interface"),
                ("TagSpecification.1.Tag.1.Key", "role"),
                ("TagSpecification.1.Tag.1.Value", "db"),
                ("ClientToken", "eni-token-1"),
            ],
        )
        .await;
    assert_eq!(text_of(&again.body, "networkInterfaceId").unwrap(), eni);
    let mismatch = server
        .user(
            "CreateNetworkInterface",
            &[("SubnetId", &subnet), ("ClientToken", "eni-token-1")],
        )
        .await;
    assert_eq!(error_code(&mismatch), "IdempotentParameterMismatch");
    assert_eq!(available_addresses(&server, &subnet).await, before - 3);

    // Addresses in use, outside the subnet, or reserved are refused.
    for (address, code) in [
        ("10.20.1.50", "InvalidIPAddress.InUse"),
        ("10.20.2.9", "InvalidParameterValue"),
        ("10.20.1.1", "InvalidParameterValue"),
        ("10.20.1.255", "InvalidParameterValue"),
    ] {
        let reply = server
            .user(
                "CreateNetworkInterface",
                &[("SubnetId", &subnet), ("PrivateIpAddress", address)],
            )
            .await;
        assert_eq!(error_code(&reply), code, "{address}");
    }
    // Groups of another VPC are refused.
    let foreign = server
        .user(
            "DescribeSecurityGroups",
            &[("Filter.1.Name", "vpc-id"), ("Filter.1.Value.1", &vpc)],
        )
        .await;
    let own_default = column(&foreign, "securityGroupInfo", "groupId").remove(0);
    let wrong = server
        .user(
            "CreateNetworkInterface",
            &[
                ("SubnetId", &other_subnet),
                ("SecurityGroupId.1", &own_default),
            ],
        )
        .await;
    assert_eq!(error_code(&wrong), "InvalidParameter", "{}", wrong.body);
    let listed = interface(&server, &eni).await;
    assert_eq!(listed["groupId"], own_default);
    assert_eq!(listed["description"], "database");
    let tagged = server
        .user(
            "DescribeNetworkInterfaces",
            &[("Filter.1.Name", "tag:role"), ("Filter.1.Value.1", "db")],
        )
        .await;
    assert_eq!(
        column(&tagged, "networkInterfaceSet", "networkInterfaceId"),
        vec![eni.clone()]
    );

    // Attach to an instance of its subnet (m5.large: 3 interfaces).
    let launched = launch(
        &server,
        &[("SubnetId", &subnet), ("InstanceType", "m5.large")],
    )
    .await;
    ok(&launched);
    let instance = text_of(&launched.body, "instanceId").unwrap();
    let elsewhere = launch(&server, &[("SubnetId", &other_subnet)]).await;
    let elsewhere = text_of(&elsewhere.body, "instanceId").unwrap();
    wait_for(&server, &instance, "running").await;
    wait_for(&server, &elsewhere, "running").await;
    let zero = server
        .user(
            "AttachNetworkInterface",
            &[
                ("NetworkInterfaceId", &eni),
                ("InstanceId", &instance),
                ("DeviceIndex", "0"),
            ],
        )
        .await;
    assert_eq!(error_code(&zero), "InvalidParameterValue");
    let other_vpc = server
        .user(
            "AttachNetworkInterface",
            &[
                ("NetworkInterfaceId", &eni),
                ("InstanceId", &elsewhere),
                ("DeviceIndex", "1"),
            ],
        )
        .await;
    assert_eq!(
        error_code(&other_vpc),
        "InvalidParameterValue",
        "{}",
        other_vpc.body
    );
    let attached = server
        .user(
            "AttachNetworkInterface",
            &[
                ("NetworkInterfaceId", &eni),
                ("InstanceId", &instance),
                ("DeviceIndex", "1"),
            ],
        )
        .await;
    ok(&attached);
    let attachment = text_of(&attached.body, "attachmentId").unwrap();
    assert!(attachment.starts_with("eni-attach-"));
    let twice = server
        .user(
            "AttachNetworkInterface",
            &[
                ("NetworkInterfaceId", &eni),
                ("InstanceId", &instance),
                ("DeviceIndex", "2"),
            ],
        )
        .await;
    assert_eq!(error_code(&twice), "InvalidNetworkInterface.InUse");
    let second = server
        .user("CreateNetworkInterface", &[("SubnetId", &subnet)])
        .await;
    let second = text_of(&second.body, "networkInterfaceId").unwrap();
    let same_index = server
        .user(
            "AttachNetworkInterface",
            &[
                ("NetworkInterfaceId", &second),
                ("InstanceId", &instance),
                ("DeviceIndex", "1"),
            ],
        )
        .await;
    assert_eq!(error_code(&same_index), "InvalidParameterValue");
    ok(&server
        .user(
            "AttachNetworkInterface",
            &[
                ("NetworkInterfaceId", &second),
                ("InstanceId", &instance),
                ("DeviceIndex", "2"),
            ],
        )
        .await);
    let third = server
        .user("CreateNetworkInterface", &[("SubnetId", &subnet)])
        .await;
    let third = text_of(&third.body, "networkInterfaceId").unwrap();
    let too_many = server
        .user(
            "AttachNetworkInterface",
            &[
                ("NetworkInterfaceId", &third),
                ("InstanceId", &instance),
                ("DeviceIndex", "3"),
            ],
        )
        .await;
    assert_eq!(error_code(&too_many), "AttachmentLimitExceeded");

    let described = server
        .user("DescribeInstances", &[("InstanceId.1", &instance)])
        .await;
    let interfaces = column(&described, "networkInterfaceSet", "networkInterfaceId");
    assert_eq!(interfaces.len(), 3, "{}", described.body);
    assert_eq!(interfaces[1], eni);
    assert_eq!(interface(&server, &eni).await["status"], "in-use");
    let in_use = server
        .user("DeleteNetworkInterface", &[("NetworkInterfaceId", &eni)])
        .await;
    assert_eq!(error_code(&in_use), "InvalidNetworkInterface.InUse");

    // The second goes with the instance; the first is detached and stays.
    let attachment_of_second = interface(&server, &second).await["attachmentId"].clone();
    ok(&server
        .user(
            "ModifyNetworkInterfaceAttribute",
            &[
                ("NetworkInterfaceId", &second),
                ("Attachment.AttachmentId", &attachment_of_second),
                ("Attachment.DeleteOnTermination", "true"),
            ],
        )
        .await);
    // A group in use by an interface stays; so does the subnet.
    let group = server
        .user(
            "CreateSecurityGroup",
            &[
                ("GroupName", "db"),
                ("GroupDescription", "db"),
                ("VpcId", &vpc),
            ],
        )
        .await;
    let group = text_of(&group.body, "groupId").unwrap();
    ok(&server
        .user(
            "ModifyNetworkInterfaceAttribute",
            &[
                ("NetworkInterfaceId", &third),
                ("SecurityGroupId.1", &group),
            ],
        )
        .await);
    let group_in_use = server
        .user("DeleteSecurityGroup", &[("GroupId", &group)])
        .await;
    assert_eq!(error_code(&group_in_use), "DependencyViolation");

    ok(&server
        .user("TerminateInstances", &[("InstanceId.1", &instance)])
        .await);
    wait_for(&server, &instance, "terminated").await;
    let gone = server
        .user(
            "DescribeNetworkInterfaces",
            &[("NetworkInterfaceId.1", &second)],
        )
        .await;
    assert_eq!(error_code(&gone), "InvalidNetworkInterfaceID.NotFound");
    let kept = interface(&server, &eni).await;
    assert_eq!(kept["status"], "available");
    assert!(!kept.contains_key("attachmentId"));
    let unknown = server
        .user("DetachNetworkInterface", &[("AttachmentId", &attachment)])
        .await;
    assert_eq!(error_code(&unknown), "InvalidAttachmentID.NotFound");

    // Secondary addresses go back: unassign, then delete in order.
    let addresses: Vec<String> = kept
        .iter()
        .filter(|(k, _)| k.as_str() == "privateIpAddress")
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(addresses, vec!["10.20.1.50".to_string()]);
    let wrong_address = server
        .user(
            "UnassignPrivateIpAddresses",
            &[
                ("NetworkInterfaceId", &eni),
                ("PrivateIpAddress.1", "10.20.1.50"),
            ],
        )
        .await;
    assert_eq!(error_code(&wrong_address), "InvalidParameterValue");
    let subnet_in_use = server.user("DeleteSubnet", &[("SubnetId", &subnet)]).await;
    assert_eq!(error_code(&subnet_in_use), "DependencyViolation");
    for id in [&eni, &third] {
        ok(&server
            .user("DeleteNetworkInterface", &[("NetworkInterfaceId", id)])
            .await);
    }
    ok(&server
        .user("DeleteSecurityGroup", &[("GroupId", &group)])
        .await);
    assert_eq!(available_addresses(&server, &subnet).await, before);
    ok(&server.user("DeleteSubnet", &[("SubnetId", &subnet)]).await);
    server.stop().await;
}

#[tokio::test]
async fn elastic_ips_associate_with_interfaces_and_their_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let (_, subnet) = network(&server, "10.30.0.0/16", "10.30.0.0/24").await;
    let eni = server
        .user("CreateNetworkInterface", &[("SubnetId", &subnet)])
        .await;
    let eni_address = text_of(&eni.body, "privateIpAddress").unwrap();
    let eni = text_of(&eni.body, "networkInterfaceId").unwrap();
    let allocation = server.user("AllocateAddress", &[("Domain", "vpc")]).await;
    let public_ip = text_of(&allocation.body, "publicIp").unwrap();
    let allocation = text_of(&allocation.body, "allocationId").unwrap();

    // On a detached interface: no instance.
    let associated = server
        .user(
            "AssociateAddress",
            &[("AllocationId", &allocation), ("NetworkInterfaceId", &eni)],
        )
        .await;
    ok(&associated);
    let association = text_of(&associated.body, "associationId").unwrap();
    let addresses = server.user("DescribeAddresses", &[]).await;
    let listed = items(&addresses, "addressesSet").remove(0);
    assert_eq!(listed["networkInterfaceId"], eni);
    assert_eq!(listed["privateIpAddress"], eni_address);
    assert_eq!(listed["associationId"], association);
    assert!(!listed.contains_key("instanceId"));
    let shown = interface(&server, &eni).await;
    assert_eq!(shown["publicIp"], public_ip);
    assert_eq!(shown["allocationId"], allocation);

    // Attached, the address shows the instance; the instance's own
    // `ipAddress` stays its primary interface's.
    let launched = launch(
        &server,
        &[("SubnetId", &subnet), ("InstanceType", "m5.large")],
    )
    .await;
    let instance = text_of(&launched.body, "instanceId").unwrap();
    wait_for(&server, &instance, "running").await;
    ok(&server
        .user(
            "AttachNetworkInterface",
            &[
                ("NetworkInterfaceId", &eni),
                ("InstanceId", &instance),
                ("DeviceIndex", "1"),
            ],
        )
        .await);
    let addresses = server
        .user(
            "DescribeAddresses",
            &[
                ("Filter.1.Name", "network-interface-id"),
                ("Filter.1.Value.1", &eni),
            ],
        )
        .await;
    assert_eq!(
        column(&addresses, "addressesSet", "instanceId"),
        vec![instance.clone()]
    );
    let described = server
        .user("DescribeInstances", &[("InstanceId.1", &instance)])
        .await;
    assert!(
        !described.body.contains("<ipAddress>"),
        "{}",
        described.body
    );
    assert!(described
        .body
        .contains(&format!("<publicIp>{public_ip}</publicIp>")));

    // A second address on the instance's primary interface, with its own
    // Elastic IP; unassigning the address ends the association.
    let primary = format!("eni-{}", instance.trim_start_matches("i-"));
    let assigned = server
        .user(
            "AssignPrivateIpAddresses",
            &[
                ("NetworkInterfaceId", &primary),
                ("SecondaryPrivateIpAddressCount", "1"),
            ],
        )
        .await;
    let secondary = column(
        &assigned,
        "assignedPrivateIpAddressesSet",
        "privateIpAddress",
    )
    .remove(0);
    let second = server.user("AllocateAddress", &[]).await;
    let second = text_of(&second.body, "allocationId").unwrap();
    let not_its_address = server
        .user(
            "AssociateAddress",
            &[
                ("AllocationId", &second),
                ("InstanceId", &instance),
                ("PrivateIpAddress", &eni_address),
            ],
        )
        .await;
    assert_eq!(error_code(&not_its_address), "InvalidParameterValue");
    ok(&server
        .user(
            "AssociateAddress",
            &[
                ("AllocationId", &second),
                ("InstanceId", &instance),
                ("PrivateIpAddress", &secondary),
            ],
        )
        .await);
    let described = server
        .user("DescribeInstances", &[("InstanceId.1", &instance)])
        .await;
    assert!(
        !described.body.contains("<ipAddress>"),
        "{}",
        described.body
    );
    let both = server
        .user(
            "DescribeAddresses",
            &[
                ("Filter.1.Name", "instance-id"),
                ("Filter.1.Value.1", &instance),
            ],
        )
        .await;
    assert_eq!(column(&both, "addressesSet", "allocationId").len(), 2);
    ok(&server
        .user(
            "UnassignPrivateIpAddresses",
            &[
                ("NetworkInterfaceId", &primary),
                ("PrivateIpAddress.1", &secondary),
            ],
        )
        .await);
    let after = server
        .user("DescribeAddresses", &[("AllocationId.1", &second)])
        .await;
    assert!(!after.body.contains("<associationId>"), "{}", after.body);
    // Both addresses at once on the interface: the instance then shows it.
    let both_params = [
        ("InstanceId", instance.as_str()),
        ("AllocationId", second.as_str()),
    ];
    ok(&server.user("AssociateAddress", &both_params).await);
    let described = server
        .user("DescribeInstances", &[("InstanceId.1", &instance)])
        .await;
    assert!(described.body.contains("<ipAddress>"), "{}", described.body);

    // A secondary address moves between interfaces only when allowed, and
    // its Elastic IP moves with it.
    let moved = server
        .user(
            "AssignPrivateIpAddresses",
            &[
                ("NetworkInterfaceId", &eni),
                ("SecondaryPrivateIpAddressCount", "1"),
            ],
        )
        .await;
    let moving = column(&moved, "assignedPrivateIpAddressesSet", "privateIpAddress").remove(0);
    let third = server.user("AllocateAddress", &[]).await;
    let third = text_of(&third.body, "allocationId").unwrap();
    ok(&server
        .user(
            "AssociateAddress",
            &[
                ("AllocationId", &third),
                ("NetworkInterfaceId", &eni),
                ("PrivateIpAddress", &moving),
            ],
        )
        .await);
    let refused = server
        .user(
            "AssignPrivateIpAddresses",
            &[
                ("NetworkInterfaceId", &primary),
                ("PrivateIpAddress.1", &moving),
            ],
        )
        .await;
    assert_eq!(error_code(&refused), "InvalidIPAddress.InUse");
    ok(&server
        .user(
            "AssignPrivateIpAddresses",
            &[
                ("NetworkInterfaceId", &primary),
                ("PrivateIpAddress.1", &moving),
                ("AllowReassignment", "true"),
            ],
        )
        .await);
    let followed = server
        .user("DescribeAddresses", &[("AllocationId.1", &third)])
        .await;
    let followed = items(&followed, "addressesSet").remove(0);
    assert_eq!(followed["networkInterfaceId"], primary);
    assert_eq!(followed["privateIpAddress"], moving);
    assert_eq!(followed["instanceId"], instance);

    // Another account can neither see nor use the interface.
    for (action, params) in [
        (
            "DescribeNetworkInterfaces",
            vec![("NetworkInterfaceId.1", eni.as_str())],
        ),
        (
            "DeleteNetworkInterface",
            vec![("NetworkInterfaceId", eni.as_str())],
        ),
        (
            "ModifyNetworkInterfaceAttribute",
            vec![
                ("NetworkInterfaceId", eni.as_str()),
                ("Description.Value", "x"),
            ],
        ),
        (
            "DescribeNetworkInterfaceAttribute",
            vec![
                ("NetworkInterfaceId", primary.as_str()),
                ("Attribute", "description"),
            ],
        ),
    ] {
        let reply = server.admin(action, &params).await;
        assert_eq!(
            error_code(&reply),
            "InvalidNetworkInterfaceID.NotFound",
            "{action}"
        );
    }
    let theirs = server.admin("AllocateAddress", &[]).await;
    let theirs = text_of(&theirs.body, "allocationId").unwrap();
    let steal = server
        .admin(
            "AssociateAddress",
            &[("AllocationId", &theirs), ("NetworkInterfaceId", &eni)],
        )
        .await;
    assert_eq!(error_code(&steal), "InvalidNetworkInterfaceID.NotFound");
    let listed = server.admin("DescribeNetworkInterfaces", &[]).await;
    assert!(!listed.body.contains(&eni));
    server.stop().await;
}

#[tokio::test]
async fn launches_take_named_addresses_and_interfaces_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Sled);
    let server = TestServer::start(config.clone()).await;
    let (_, subnet) = network(&server, "10.40.0.0/16", "10.40.0.0/24").await;
    let spare = server
        .user(
            "CreateNetworkInterface",
            &[("SubnetId", &subnet), ("Description", "spare")],
        )
        .await;
    let spare = text_of(&spare.body, "networkInterfaceId").unwrap();

    let two = server
        .user(
            "RunInstances",
            &[
                ("ImageId", IMAGE),
                ("MinCount", "2"),
                ("MaxCount", "2"),
                ("SubnetId", &subnet),
                ("PrivateIpAddress", "10.40.0.10"),
            ],
        )
        .await;
    assert_eq!(error_code(&two), "InvalidParameterCombination");

    let reply = server
        .user(
            "RunInstances",
            &[
                ("ImageId", IMAGE),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("InstanceType", "m5.large"),
                ("NetworkInterface.1.DeviceIndex", "0"),
                ("NetworkInterface.1.SubnetId", &subnet),
                ("NetworkInterface.1.PrivateIpAddress", "10.40.0.10"),
                ("NetworkInterface.1.SecondaryPrivateIpAddressCount", "1"),
                ("NetworkInterface.1.Description", "front"),
                ("NetworkInterface.2.DeviceIndex", "1"),
                ("NetworkInterface.2.NetworkInterfaceId", &spare),
            ],
        )
        .await;
    ok(&reply);
    let instance = text_of(&reply.body, "instanceId").unwrap();
    assert_eq!(
        text_of(&reply.body, "privateIpAddress").unwrap(),
        "10.40.0.10"
    );
    let interfaces = column(&reply, "networkInterfaceSet", "networkInterfaceId");
    assert_eq!(interfaces.len(), 2, "{}", reply.body);
    assert_eq!(interfaces[1], spare);
    let taken = launch(
        &server,
        &[("SubnetId", &subnet), ("PrivateIpAddress", "10.40.0.10")],
    )
    .await;
    assert_eq!(error_code(&taken), "InvalidIPAddress.InUse");
    let in_use = server
        .user(
            "RunInstances",
            &[
                ("ImageId", IMAGE),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("NetworkInterface.1.DeviceIndex", "1"),
                ("NetworkInterface.1.NetworkInterfaceId", &spare),
                ("SubnetId", &subnet),
            ],
        )
        .await;
    assert_eq!(error_code(&in_use), "InvalidNetworkInterface.InUse");
    server.stop().await;

    let server = TestServer::start(config).await;
    let primary = format!("eni-{}", instance.trim_start_matches("i-"));
    let shown = interface(&server, &primary).await;
    assert_eq!(shown["description"], "front");
    let listed = server
        .user(
            "DescribeNetworkInterfaces",
            &[("NetworkInterfaceId.1", &primary)],
        )
        .await;
    assert_eq!(
        column(&listed, "privateIpAddressesSet", "privateIpAddress").len(),
        2
    );
    let spare_now = interface(&server, &spare).await;
    assert_eq!(spare_now["instanceId"], instance);
    assert_eq!(spare_now["deviceIndex"], "1");
    let by_attachment = server
        .user(
            "DescribeNetworkInterfaces",
            &[
                ("Filter.1.Name", "attachment.instance-id"),
                ("Filter.1.Value.1", &instance),
            ],
        )
        .await;
    assert_eq!(
        column(&by_attachment, "networkInterfaceSet", "networkInterfaceId").len(),
        2
    );
    ok(&server
        .user(
            "DetachNetworkInterface",
            &[("AttachmentId", &spare_now["attachmentId"])],
        )
        .await);
    assert_eq!(interface(&server, &spare).await["status"], "available");

    // Attached at launch to go with the instance.
    let reply = server
        .user(
            "RunInstances",
            &[
                ("ImageId", IMAGE),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("SubnetId", &subnet),
                ("NetworkInterface.1.DeviceIndex", "1"),
                ("NetworkInterface.1.NetworkInterfaceId", &spare),
                ("NetworkInterface.1.DeleteOnTermination", "true"),
            ],
        )
        .await;
    ok(&reply);
    let short_lived = text_of(&reply.body, "instanceId").unwrap();
    assert_eq!(
        interface(&server, &spare).await["deleteOnTermination"],
        "true"
    );
    wait_for(&server, &short_lived, "running").await;
    ok(&server
        .user("TerminateInstances", &[("InstanceId.1", &short_lived)])
        .await);
    wait_for(&server, &short_lived, "terminated").await;
    let gone = server
        .user(
            "DescribeNetworkInterfaces",
            &[("NetworkInterfaceId.1", &spare)],
        )
        .await;
    assert_eq!(error_code(&gone), "InvalidNetworkInterfaceID.NotFound");
    server.stop().await;
}

#[tokio::test]
async fn routes_send_traffic_to_interfaces_until_they_go() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let (vpc, subnet) = network(&server, "10.60.0.0/16", "10.60.0.0/24").await;
    let (_, other_subnet) = network(&server, "10.61.0.0/16", "10.61.0.0/24").await;
    let table = server.user("CreateRouteTable", &[("VpcId", &vpc)]).await;
    let table = text_of(&table.body, "routeTableId").unwrap();
    let eni = server
        .user("CreateNetworkInterface", &[("SubnetId", &subnet)])
        .await;
    let eni = text_of(&eni.body, "networkInterfaceId").unwrap();
    let foreign = server
        .user("CreateNetworkInterface", &[("SubnetId", &other_subnet)])
        .await;
    let foreign = text_of(&foreign.body, "networkInterfaceId").unwrap();
    let wrong_vpc = server
        .user(
            "CreateRoute",
            &[
                ("RouteTableId", &table),
                ("DestinationCidrBlock", "192.168.0.0/16"),
                ("NetworkInterfaceId", &foreign),
            ],
        )
        .await;
    assert_eq!(error_code(&wrong_vpc), "InvalidParameterValue");
    ok(&server
        .user(
            "CreateRoute",
            &[
                ("RouteTableId", &table),
                ("DestinationCidrBlock", "192.168.0.0/16"),
                ("NetworkInterfaceId", &eni),
            ],
        )
        .await);
    let route = |reply: &Reply| {
        items(reply, "routeSet")
            .into_iter()
            .find(|r| r.get("destinationCidrBlock").map(String::as_str) == Some("192.168.0.0/16"))
            .unwrap()
    };
    let described = server
        .user("DescribeRouteTables", &[("RouteTableId.1", &table)])
        .await;
    let listed = route(&described);
    assert_eq!(listed["networkInterfaceId"], eni);
    assert_eq!(listed["state"], "active");
    assert!(!listed.contains_key("instanceId"));

    // Attached: the route shows the instance too.
    let launched = launch(
        &server,
        &[("SubnetId", &subnet), ("InstanceType", "m5.large")],
    )
    .await;
    let instance = text_of(&launched.body, "instanceId").unwrap();
    wait_for(&server, &instance, "running").await;
    ok(&server
        .user(
            "AttachNetworkInterface",
            &[
                ("NetworkInterfaceId", &eni),
                ("InstanceId", &instance),
                ("DeviceIndex", "1"),
            ],
        )
        .await);
    let described = server
        .user(
            "DescribeRouteTables",
            &[
                ("Filter.1.Name", "route.network-interface-id"),
                ("Filter.1.Value.1", &eni),
            ],
        )
        .await;
    assert_eq!(route(&described)["instanceId"], instance);

    // Gone with its instance (DeleteOnTermination): the route is a blackhole.
    let attachment = interface(&server, &eni).await["attachmentId"].clone();
    ok(&server
        .user(
            "ModifyNetworkInterfaceAttribute",
            &[
                ("NetworkInterfaceId", &eni),
                ("Attachment.AttachmentId", &attachment),
                ("Attachment.DeleteOnTermination", "true"),
            ],
        )
        .await);
    ok(&server
        .user("TerminateInstances", &[("InstanceId.1", &instance)])
        .await);
    wait_for(&server, &instance, "terminated").await;
    let described = server
        .user("DescribeRouteTables", &[("RouteTableId.1", &table)])
        .await;
    assert_eq!(route(&described)["state"], "blackhole");
    server.stop().await;
}

#[tokio::test]
async fn public_addresses_follow_the_subnet_and_the_instance_state() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let public_of = |reply: &Reply| text_of(&reply.body, "ipAddress");
    let describe = |id: String| {
        let server = &server;
        async move {
            server
                .user("DescribeInstances", &[("InstanceId.1", &id)])
                .await
        }
    };
    // A default subnet maps public addresses on launch, as EC2's do.
    let first = launch(&server, &[]).await;
    let second = launch(&server, &[]).await;
    let (a, b) = (public_of(&first).unwrap(), public_of(&second).unwrap());
    assert!(a.starts_with("100.") && b.starts_with("100."), "{a} {b}");
    assert_ne!(a, b);
    assert_eq!(
        text_of(&first.body, "dnsName").unwrap(),
        format!("ec2-{}.compute-1.amazonaws.com", a.replace('.', "-"))
    );
    let instance = text_of(&first.body, "instanceId").unwrap();
    let by_address = server
        .user(
            "DescribeInstances",
            &[("Filter.1.Name", "ip-address"), ("Filter.1.Value.1", &a)],
        )
        .await;
    assert_eq!(
        column(&by_address, "instancesSet", "instanceId"),
        vec![instance.clone()]
    );
    // Unless the launch says otherwise.
    let without = launch(
        &server,
        &[("NetworkInterface.1.AssociatePublicIpAddress", "false")],
    )
    .await;
    ok(&without);
    assert_eq!(public_of(&without), None);

    // A created subnet maps none until asked.
    let (_, subnet) = network(&server, "10.70.0.0/16", "10.70.0.0/24").await;
    let private = launch(&server, &[("SubnetId", &subnet)]).await;
    assert_eq!(public_of(&private), None);
    let asked = launch(
        &server,
        &[
            ("NetworkInterface.1.DeviceIndex", "0"),
            ("NetworkInterface.1.SubnetId", &subnet),
            ("NetworkInterface.1.AssociatePublicIpAddress", "true"),
        ],
    )
    .await;
    assert!(public_of(&asked).is_some(), "{}", asked.body);
    ok(&server
        .user(
            "ModifySubnetAttribute",
            &[("SubnetId", &subnet), ("MapPublicIpOnLaunch.Value", "true")],
        )
        .await);
    assert!(public_of(&launch(&server, &[("SubnetId", &subnet)]).await).is_some());

    // An Elastic IP shows instead while associated.
    wait_for(&server, &instance, "running").await;
    let eip = server.user("AllocateAddress", &[]).await;
    let eip_ip = text_of(&eip.body, "publicIp").unwrap();
    let allocation = text_of(&eip.body, "allocationId").unwrap();
    let associated = server
        .user(
            "AssociateAddress",
            &[("AllocationId", &allocation), ("InstanceId", &instance)],
        )
        .await;
    let association = text_of(&associated.body, "associationId").unwrap();
    assert_eq!(public_of(&describe(instance.clone()).await), Some(eip_ip));
    ok(&server
        .user("DisassociateAddress", &[("AssociationId", &association)])
        .await);
    assert_eq!(
        public_of(&describe(instance.clone()).await),
        Some(a.clone())
    );

    // Let go at stop; a new one at start; none once terminated.
    ok(&server
        .user("StopInstances", &[("InstanceId.1", &instance)])
        .await);
    wait_for(&server, &instance, "stopped").await;
    assert_eq!(public_of(&describe(instance.clone()).await), None);
    ok(&server
        .user("StartInstances", &[("InstanceId.1", &instance)])
        .await);
    let started = public_of(&describe(instance.clone()).await);
    assert!(
        started.as_deref().is_some_and(|ip| ip.starts_with("100.")),
        "{started:?}"
    );
    ok(&server
        .user("TerminateInstances", &[("InstanceId.1", &instance)])
        .await);
    wait_for(&server, &instance, "terminated").await;
    assert_eq!(public_of(&describe(instance.clone()).await), None);
    server.stop().await;
}
