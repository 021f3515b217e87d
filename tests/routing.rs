//! Internet gateways, route tables and NAT gateways through the in-process
//! server: the default VPC's gateway and main table, attachments, routes and
//! their `blackhole` state, associations, ClientToken retries, the NAT
//! gateway's states and the addresses it holds, deletion order, account
//! isolation and a restart.

mod common;

use common::*;
use ec2_gateway::client::{text_of, Reply};
use ec2_gateway::config::StorageBackend;
use std::collections::BTreeMap;

async fn ok(server: &TestServer, action: &str, params: &[(&str, &str)]) -> Reply {
    let reply = server.user(action, params).await;
    assert_eq!(reply.status, 200, "{action}: {}", reply.body);
    reply
}

async fn refused(server: &TestServer, action: &str, params: &[(&str, &str)]) -> String {
    let reply = server.user(action, params).await;
    assert_eq!(reply.status, 400, "{action}: {}", reply.body);
    error_code(&reply)
}

async fn new_vpc(server: &TestServer, block: &str) -> String {
    let reply = ok(server, "CreateVpc", &[("CidrBlock", block)]).await;
    text_of(&reply.body, "vpcId").unwrap()
}

async fn new_subnet(server: &TestServer, vpc: &str, block: &str) -> String {
    let reply = ok(
        server,
        "CreateSubnet",
        &[
            ("VpcId", vpc),
            ("CidrBlock", block),
            ("AvailabilityZone", "us-east-1a"),
        ],
    )
    .await;
    text_of(&reply.body, "subnetId").unwrap()
}

/// The route tables DescribeRouteTables lists for `filter` = `value`.
async fn tables(server: &TestServer, filter: &str, value: &str) -> Reply {
    ok(
        server,
        "DescribeRouteTables",
        &[("Filter.1.Name", filter), ("Filter.1.Value.1", value)],
    )
    .await
}

/// `(destination, state)` of every route of the one table in `reply`.
fn routes(reply: &Reply) -> Vec<(String, String)> {
    let table = reply.body.split("<routeSet>").nth(1).unwrap();
    let table = table.split("</routeSet>").next().unwrap();
    ec2_gateway::client::items(&format!("<routeSet>{table}</routeSet>"), "routeSet")
        .into_iter()
        .map(|r: BTreeMap<String, String>| (r["destinationCidrBlock"].clone(), r["state"].clone()))
        .collect()
}

#[tokio::test]
async fn the_default_vpc_has_a_gateway_and_a_main_table_that_routes_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let default_vpc = {
        let reply = ok(
            &server,
            "DescribeVpcs",
            &[
                ("Filter.1.Name", "is-default"),
                ("Filter.1.Value.1", "true"),
            ],
        )
        .await;
        text_of(&reply.body, "vpcId").unwrap()
    };
    let gateways = ok(
        &server,
        "DescribeInternetGateways",
        &[
            ("Filter.1.Name", "attachment.vpc-id"),
            ("Filter.1.Value.1", &default_vpc),
        ],
    )
    .await;
    let gateway = column(&gateways, "internetGatewaySet", "internetGatewayId");
    assert_eq!(gateway.len(), 1);
    let main = tables(&server, "vpc-id", &default_vpc).await;
    assert_eq!(column(&main, "routeTableSet", "routeTableId").len(), 1);
    assert!(main.body.contains("<main>true</main>"), "{}", main.body);
    assert_eq!(
        routes(&main),
        [
            ("172.31.0.0/16".to_string(), "active".to_string()),
            ("0.0.0.0/0".to_string(), "active".to_string())
        ]
    );
    assert!(main
        .body
        .contains(&format!("<gatewayId>{}</gatewayId>", gateway[0])));
    server.stop().await;
}

#[tokio::test]
async fn internet_gateways_attach_detach_and_go_in_ec2_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let vpc = new_vpc(&server, "10.0.0.0/16").await;
    let created = ok(
        &server,
        "CreateInternetGateway",
        &[
            ("TagSpecification.1.ResourceType", "internet-gateway"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "edge"),
        ],
    )
    .await;
    let igw = text_of(&created.body, "internetGatewayId").unwrap();
    let attach = [("InternetGatewayId", igw.as_str()), ("VpcId", vpc.as_str())];
    ok(&server, "AttachInternetGateway", &attach).await;
    assert_eq!(
        refused(&server, "AttachInternetGateway", &attach).await,
        "Resource.AlreadyAssociated"
    );
    // One gateway per VPC.
    let second = ok(&server, "CreateInternetGateway", &[]).await;
    let second = text_of(&second.body, "internetGatewayId").unwrap();
    assert_eq!(
        refused(
            &server,
            "AttachInternetGateway",
            &[("InternetGatewayId", &second), ("VpcId", &vpc)]
        )
        .await,
        "Resource.AlreadyAssociated"
    );
    let tagged = ok(
        &server,
        "DescribeInternetGateways",
        &[("Filter.1.Name", "tag:Name"), ("Filter.1.Value.1", "edge")],
    )
    .await;
    assert_eq!(
        column(&tagged, "internetGatewaySet", "internetGatewayId"),
        std::slice::from_ref(&igw)
    );
    assert_eq!(
        column(&tagged, "attachmentSet", "vpcId"),
        std::slice::from_ref(&vpc)
    );
    assert_eq!(column(&tagged, "attachmentSet", "state"), ["available"]);

    // Nothing attached is deleted, neither gateway nor VPC.
    assert_eq!(
        refused(
            &server,
            "DeleteInternetGateway",
            &[("InternetGatewayId", &igw)]
        )
        .await,
        "DependencyViolation"
    );
    assert_eq!(
        refused(&server, "DeleteVpc", &[("VpcId", &vpc)]).await,
        "DependencyViolation"
    );
    assert_eq!(
        refused(
            &server,
            "DetachInternetGateway",
            &[("InternetGatewayId", &second), ("VpcId", &vpc)]
        )
        .await,
        "Gateway.NotAttached"
    );
    assert_eq!(
        refused(
            &server,
            "DetachInternetGateway",
            &[
                ("InternetGatewayId", "igw-0123456789abcdef0"),
                ("VpcId", &vpc)
            ]
        )
        .await,
        "InvalidInternetGatewayID.NotFound"
    );
    assert_eq!(
        refused(
            &server,
            "DeleteInternetGateway",
            &[("InternetGatewayId", "igw-x")]
        )
        .await,
        "InvalidInternetGatewayID.Malformed"
    );
    // Another account sees none of it.
    let theirs = server
        .admin("DescribeInternetGateways", &[("InternetGatewayId.1", &igw)])
        .await;
    assert_eq!(error_code(&theirs), "InvalidInternetGatewayID.NotFound");
    let theirs = server
        .admin(
            "DetachInternetGateway",
            &[("InternetGatewayId", &igw), ("VpcId", &vpc)],
        )
        .await;
    assert_eq!(error_code(&theirs), "InvalidInternetGatewayID.NotFound");

    ok(&server, "DetachInternetGateway", &attach).await;
    ok(
        &server,
        "DeleteInternetGateway",
        &[("InternetGatewayId", &igw)],
    )
    .await;
    ok(
        &server,
        "DeleteInternetGateway",
        &[("InternetGatewayId", &second)],
    )
    .await;
    ok(&server, "DeleteVpc", &[("VpcId", &vpc)]).await;

    // The quota is the VPC quota (5), the default VPC's gateway included.
    for _ in 0..4 {
        ok(&server, "CreateInternetGateway", &[]).await;
    }
    assert_eq!(
        refused(&server, "CreateInternetGateway", &[]).await,
        "InternetGatewayLimitExceeded"
    );
    server.stop().await;
}

#[tokio::test]
async fn routes_follow_their_targets_and_tables_follow_their_subnets() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let vpc = new_vpc(&server, "10.1.0.0/16").await;
    let subnet = new_subnet(&server, &vpc, "10.1.1.0/24").await;
    // The main table, made with the VPC: its local route, its main
    // association, and it cannot be deleted.
    let main = tables(&server, "vpc-id", &vpc).await;
    let main_id = column(&main, "routeTableSet", "routeTableId").remove(0);
    assert_eq!(
        routes(&main),
        [("10.1.0.0/16".to_string(), "active".to_string())]
    );
    assert!(main.body.contains("<origin>CreateRouteTable</origin>"));
    assert_eq!(
        refused(&server, "DeleteRouteTable", &[("RouteTableId", &main_id)]).await,
        "DependencyViolation"
    );

    // A ClientToken retry answers the first table; other parameters with
    // the same token are refused.
    let create = [("VpcId", vpc.as_str()), ("ClientToken", "rt-1")];
    let first = ok(&server, "CreateRouteTable", &create).await;
    let table = text_of(&first.body, "routeTableId").unwrap();
    let retry = ok(&server, "CreateRouteTable", &create).await;
    assert_eq!(text_of(&retry.body, "routeTableId").unwrap(), table);
    let other = refused(
        &server,
        "CreateRouteTable",
        &[
            ("VpcId", vpc.as_str()),
            ("ClientToken", "rt-1"),
            ("TagSpecification.1.ResourceType", "route-table"),
            ("TagSpecification.1.Tag.1.Key", "k"),
        ],
    )
    .await;
    assert_eq!(other, "IdempotentParameterMismatch");
    assert_eq!(
        column(
            &tables(&server, "vpc-id", &vpc).await,
            "routeTableSet",
            "routeTableId"
        )
        .len(),
        2
    );

    // A route to a gateway not attached to the VPC is refused; attached, it
    // is active; detached, a blackhole.
    let igw = ok(&server, "CreateInternetGateway", &[]).await;
    let igw = text_of(&igw.body, "internetGatewayId").unwrap();
    let route = [
        ("RouteTableId", table.as_str()),
        ("DestinationCidrBlock", "0.0.0.0/0"),
        ("GatewayId", igw.as_str()),
    ];
    assert_eq!(
        refused(&server, "CreateRoute", &route).await,
        "InvalidParameterValue"
    );
    ok(
        &server,
        "AttachInternetGateway",
        &[("InternetGatewayId", &igw), ("VpcId", &vpc)],
    )
    .await;
    ok(&server, "CreateRoute", &route).await;
    assert_eq!(
        refused(&server, "CreateRoute", &route).await,
        "RouteAlreadyExists"
    );
    let listed = ok(
        &server,
        "DescribeRouteTables",
        &[("RouteTableId.1", &table)],
    )
    .await;
    assert_eq!(
        routes(&listed),
        [
            ("10.1.0.0/16".to_string(), "active".to_string()),
            ("0.0.0.0/0".to_string(), "active".to_string())
        ]
    );
    let by_gateway = tables(&server, "route.gateway-id", &igw).await;
    assert_eq!(
        column(&by_gateway, "routeTableSet", "routeTableId"),
        std::slice::from_ref(&table)
    );
    ok(
        &server,
        "DetachInternetGateway",
        &[("InternetGatewayId", &igw), ("VpcId", &vpc)],
    )
    .await;
    let listed = ok(
        &server,
        "DescribeRouteTables",
        &[("RouteTableId.1", &table)],
    )
    .await;
    assert_eq!(routes(&listed)[1], ("0.0.0.0/0".into(), "blackhole".into()));
    let blackholes = tables(&server, "route.state", "blackhole").await;
    assert_eq!(
        column(&blackholes, "routeTableSet", "routeTableId"),
        std::slice::from_ref(&table)
    );

    // Replace and delete; the local route stays.
    let instance = ok(
        &server,
        "RunInstances",
        &[
            ("ImageId", "ami-0b1c2d3e4f5a6b7c8"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("SubnetId", &subnet),
        ],
    )
    .await;
    let instance = text_of(&instance.body, "instanceId").unwrap();
    ok(
        &server,
        "ReplaceRoute",
        &[
            ("RouteTableId", &table),
            ("DestinationCidrBlock", "0.0.0.0/0"),
            ("InstanceId", &instance),
        ],
    )
    .await;
    let listed = ok(
        &server,
        "DescribeRouteTables",
        &[("RouteTableId.1", &table)],
    )
    .await;
    assert_eq!(routes(&listed)[1], ("0.0.0.0/0".into(), "active".into()));
    assert!(listed
        .body
        .contains(&format!("<instanceId>{instance}</instanceId>")));
    assert_eq!(
        refused(
            &server,
            "ReplaceRoute",
            &[
                ("RouteTableId", &table),
                ("DestinationCidrBlock", "192.168.0.0/16"),
                ("InstanceId", &instance),
            ]
        )
        .await,
        "InvalidRoute.NotFound"
    );
    assert_eq!(
        refused(
            &server,
            "DeleteRoute",
            &[
                ("RouteTableId", &table),
                ("DestinationCidrBlock", "10.1.0.0/16")
            ]
        )
        .await,
        "InvalidParameterValue"
    );
    ok(
        &server,
        "DeleteRoute",
        &[
            ("RouteTableId", &table),
            ("DestinationCidrBlock", "0.0.0.0/0"),
        ],
    )
    .await;
    assert_eq!(
        refused(
            &server,
            "DeleteRoute",
            &[
                ("RouteTableId", &table),
                ("DestinationCidrBlock", "0.0.0.0/0")
            ]
        )
        .await,
        "InvalidRoute.NotFound"
    );

    // One explicit association per subnet; a table with one is kept, and
    // the association goes with its subnet.
    let associated = ok(
        &server,
        "AssociateRouteTable",
        &[("RouteTableId", &table), ("SubnetId", &subnet)],
    )
    .await;
    let association = text_of(&associated.body, "associationId").unwrap();
    assert!(association.starts_with("rtbassoc-"));
    assert_eq!(
        refused(
            &server,
            "AssociateRouteTable",
            &[("RouteTableId", &main_id), ("SubnetId", &subnet)]
        )
        .await,
        "Resource.AlreadyAssociated"
    );
    let of_subnet = tables(&server, "association.subnet-id", &subnet).await;
    assert_eq!(
        column(&of_subnet, "routeTableSet", "routeTableId"),
        std::slice::from_ref(&table)
    );
    assert_eq!(
        refused(&server, "DeleteRouteTable", &[("RouteTableId", &table)]).await,
        "DependencyViolation"
    );
    // A subnet of another VPC cannot be associated.
    let default_subnet = ok(
        &server,
        "DescribeSubnets",
        &[
            ("Filter.1.Name", "default-for-az"),
            ("Filter.1.Value.1", "true"),
        ],
    )
    .await;
    let default_subnet = column(&default_subnet, "subnetSet", "subnetId").remove(0);
    assert_eq!(
        refused(
            &server,
            "AssociateRouteTable",
            &[("RouteTableId", &table), ("SubnetId", &default_subnet)]
        )
        .await,
        "InvalidParameterValue"
    );
    ok(
        &server,
        "DisassociateRouteTable",
        &[("AssociationId", &association)],
    )
    .await;
    assert_eq!(
        refused(
            &server,
            "DisassociateRouteTable",
            &[("AssociationId", &association)]
        )
        .await,
        "InvalidAssociationID.NotFound"
    );
    let main_association = main.body.split("<routeTableAssociationId>").nth(1).unwrap();
    let main_association = main_association.split('<').next().unwrap().to_string();
    assert_eq!(
        refused(
            &server,
            "DisassociateRouteTable",
            &[("AssociationId", &main_association)]
        )
        .await,
        "InvalidParameterValue"
    );
    ok(
        &server,
        "AssociateRouteTable",
        &[("RouteTableId", &table), ("SubnetId", &subnet)],
    )
    .await;
    ok(
        &server,
        "TerminateInstances",
        &[("InstanceId.1", &instance)],
    )
    .await;
    wait_for(&server, &instance, "terminated").await;
    ok(&server, "DeleteSubnet", &[("SubnetId", &subnet)]).await;
    let after = ok(
        &server,
        "DescribeRouteTables",
        &[("RouteTableId.1", &table)],
    )
    .await;
    assert!(!after.body.contains("<subnetId>"), "{}", after.body);

    // The main association moves; then the old main table can go, and the
    // VPC only once its other tables and its gateway are gone.
    let moved = ok(
        &server,
        "ReplaceRouteTableAssociation",
        &[
            ("AssociationId", &main_association),
            ("RouteTableId", &table),
        ],
    )
    .await;
    assert!(text_of(&moved.body, "newAssociationId").is_some());
    let mains = tables(&server, "association.main", "true").await;
    assert!(column(&mains, "routeTableSet", "routeTableId").contains(&table));
    ok(&server, "DeleteRouteTable", &[("RouteTableId", &main_id)]).await;
    ok(
        &server,
        "DeleteInternetGateway",
        &[("InternetGatewayId", &igw)],
    )
    .await;
    let extra = ok(&server, "CreateRouteTable", &[("VpcId", &vpc)]).await;
    let extra = text_of(&extra.body, "routeTableId").unwrap();
    assert_eq!(
        refused(&server, "DeleteVpc", &[("VpcId", &vpc)]).await,
        "DependencyViolation"
    );
    ok(&server, "DeleteRouteTable", &[("RouteTableId", &extra)]).await;
    ok(&server, "DeleteVpc", &[("VpcId", &vpc)]).await;
    let gone = server
        .user("DescribeRouteTables", &[("RouteTableId.1", &table)])
        .await;
    assert_eq!(error_code(&gone), "InvalidRouteTableID.NotFound");
    server.stop().await;
}

#[tokio::test]
async fn nat_gateways_hold_their_addresses_and_pass_through_ec2_states() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Sled);
    let server = TestServer::start(config.clone()).await;
    let vpc = new_vpc(&server, "10.2.0.0/16").await;
    let subnet = new_subnet(&server, &vpc, "10.2.0.0/24").await;
    let eip = ok(&server, "AllocateAddress", &[("Domain", "vpc")]).await;
    let allocation = text_of(&eip.body, "allocationId").unwrap();

    assert_eq!(
        refused(&server, "CreateNatGateway", &[("SubnetId", &subnet)]).await,
        "MissingParameter"
    );
    // Without an internet gateway in the VPC a public NAT gateway fails, as
    // in EC2, holding nothing.
    let failed = ok(
        &server,
        "CreateNatGateway",
        &[("SubnetId", &subnet), ("AllocationId", &allocation)],
    )
    .await;
    let failed = text_of(&failed.body, "natGatewayId").unwrap();
    let listed = ok(
        &server,
        "DescribeNatGateways",
        &[("NatGatewayId.1", &failed)],
    )
    .await;
    assert_eq!(text_of(&listed.body, "state").unwrap(), "failed");
    assert_eq!(
        text_of(&listed.body, "failureCode").unwrap(),
        "Gateway.NotAttached"
    );
    let igw = ok(&server, "CreateInternetGateway", &[]).await;
    let igw = text_of(&igw.body, "internetGatewayId").unwrap();
    ok(
        &server,
        "AttachInternetGateway",
        &[("InternetGatewayId", &igw), ("VpcId", &vpc)],
    )
    .await;
    let create = [
        ("SubnetId", subnet.as_str()),
        ("AllocationId", allocation.as_str()),
        ("ClientToken", "nat-1"),
    ];
    let created = ok(&server, "CreateNatGateway", &create).await;
    let nat = text_of(&created.body, "natGatewayId").unwrap();
    assert_eq!(text_of(&created.body, "state").unwrap(), "pending");
    let public_ip = text_of(&created.body, "publicIp").unwrap();
    let private_ip = text_of(&created.body, "privateIp").unwrap();
    assert!(private_ip.starts_with("10.2.0."), "{private_ip}");
    let retry = ok(&server, "CreateNatGateway", &create).await;
    assert_eq!(text_of(&retry.body, "natGatewayId").unwrap(), nat);
    let live = ok(
        &server,
        "DescribeNatGateways",
        &[("Filter.1.Name", "state"), ("Filter.1.Value.1", "pending")],
    )
    .await;
    assert_eq!(
        column(&live, "natGatewaySet", "natGatewayId"),
        std::slice::from_ref(&nat)
    );

    // Its Elastic IP and its address in the subnet are held.
    let eip2 = ok(&server, "AllocateAddress", &[("Domain", "vpc")]).await;
    let _ = eip2;
    assert_eq!(
        refused(
            &server,
            "CreateNatGateway",
            &[("SubnetId", &subnet), ("AllocationId", &allocation)]
        )
        .await,
        "Resource.AlreadyAssociated"
    );
    assert_eq!(
        refused(&server, "ReleaseAddress", &[("AllocationId", &allocation)]).await,
        "InvalidIPAddress.InUse"
    );
    let listed = ok(&server, "DescribeSubnets", &[("SubnetId.1", &subnet)]).await;
    assert_eq!(
        text_of(&listed.body, "availableIpAddressCount").unwrap(),
        "250"
    );
    assert_eq!(
        refused(&server, "DeleteSubnet", &[("SubnetId", &subnet)]).await,
        "DependencyViolation"
    );

    // pending until the delay passes, then available; a route through it
    // is active only then.
    let main = tables(&server, "vpc-id", &vpc).await;
    let main = column(&main, "routeTableSet", "routeTableId").remove(0);
    ok(
        &server,
        "CreateRoute",
        &[
            ("RouteTableId", &main),
            ("DestinationCidrBlock", "0.0.0.0/0"),
            ("NatGatewayId", &nat),
        ],
    )
    .await;
    let pending = tables(&server, "route.nat-gateway-id", &nat).await;
    assert_eq!(routes(&pending)[1].1, "blackhole");
    server.clock.advance(chrono::Duration::seconds(3));
    let available = ok(
        &server,
        "DescribeNatGateways",
        &[
            ("Filter.1.Name", "state"),
            ("Filter.1.Value.1", "available"),
        ],
    )
    .await;
    assert_eq!(
        column(&available, "natGatewaySet", "natGatewayId"),
        std::slice::from_ref(&nat)
    );
    assert!(available
        .body
        .contains(&format!("<publicIp>{public_ip}</publicIp>")));
    let active = tables(&server, "route.nat-gateway-id", &nat).await;
    assert_eq!(routes(&active)[1].1, "active");

    // Its Elastic IP shows associated with its requester-managed interface,
    // which nobody changes.
    let interface = text_of(&available.body, "networkInterfaceId").unwrap();
    assert_eq!(interface, format!("eni-{}", nat.trim_start_matches("nat-")));
    let address = ok(
        &server,
        "DescribeAddresses",
        &[("AllocationId.1", &allocation)],
    )
    .await;
    let address = items(&address, "addressesSet").remove(0);
    assert_eq!(address["networkInterfaceId"], interface);
    assert_eq!(address["privateIpAddress"], private_ip);
    assert!(!address.contains_key("instanceId"));
    let association = address["associationId"].clone();
    assert_eq!(
        refused(
            &server,
            "DisassociateAddress",
            &[("AssociationId", &association)]
        )
        .await,
        "Resource.AlreadyAssociated"
    );
    let managed = ok(
        &server,
        "DescribeNetworkInterfaces",
        &[
            ("Filter.1.Name", "interface-type"),
            ("Filter.1.Value.1", "nat_gateway"),
        ],
    )
    .await;
    let listed = items(&managed, "networkInterfaceSet");
    assert_eq!(listed.len(), 1, "{}", managed.body);
    assert_eq!(listed[0]["networkInterfaceId"], interface);
    assert_eq!(listed[0]["status"], "in-use");
    assert_eq!(listed[0]["requesterManaged"], "true");
    assert_eq!(listed[0]["privateIpAddress"], private_ip);
    assert!(managed
        .body
        .contains(&format!("<publicIp>{public_ip}</publicIp>")));
    assert_eq!(
        refused(
            &server,
            "DeleteNetworkInterface",
            &[("NetworkInterfaceId", &interface)]
        )
        .await,
        "OperationNotPermitted"
    );
    assert_eq!(
        refused(
            &server,
            "CreateRoute",
            &[
                ("RouteTableId", &main),
                ("DestinationCidrBlock", "172.16.0.0/12"),
                ("NetworkInterfaceId", &interface),
            ]
        )
        .await,
        "InvalidParameterValue"
    );

    // Another account: not found; errors for unknown and malformed ids.
    let theirs = server
        .admin("DeleteNatGateway", &[("NatGatewayId", &nat)])
        .await;
    assert_eq!(error_code(&theirs), "NatGatewayNotFound");
    assert_eq!(
        refused(
            &server,
            "DescribeNatGateways",
            &[("NatGatewayId.1", "nat-0123456789abcdef0")]
        )
        .await,
        "NatGatewayNotFound"
    );
    assert_eq!(
        refused(&server, "DeleteNatGateway", &[("NatGatewayId", "nat-zz")]).await,
        "NatGatewayMalformed"
    );

    // It survives a restart.
    server.stop().await;
    let server = TestServer::start(config).await;
    server.clock.advance(chrono::Duration::seconds(3));
    let kept = ok(&server, "DescribeNatGateways", &[("NatGatewayId.1", &nat)]).await;
    assert_eq!(text_of(&kept.body, "state").unwrap(), "available");

    // Deleting: `deleting`, its addresses let go at once, then `deleted`.
    let deleted = ok(&server, "DeleteNatGateway", &[("NatGatewayId", &nat)]).await;
    assert_eq!(text_of(&deleted.body, "natGatewayId").unwrap(), nat);
    let deleting = ok(&server, "DescribeNatGateways", &[("NatGatewayId.1", &nat)]).await;
    assert_eq!(text_of(&deleting.body, "state").unwrap(), "deleting");
    // Its interface went with the addresses.
    assert!(
        !deleting.body.contains("<networkInterfaceId>"),
        "{}",
        deleting.body
    );
    let managed = ok(
        &server,
        "DescribeNetworkInterfaces",
        &[
            ("Filter.1.Name", "interface-type"),
            ("Filter.1.Value.1", "nat_gateway"),
        ],
    )
    .await;
    assert!(
        items(&managed, "networkInterfaceSet").is_empty(),
        "{}",
        managed.body
    );
    let blackhole = tables(&server, "route.nat-gateway-id", &nat).await;
    assert_eq!(routes(&blackhole)[1].1, "blackhole");
    // No new route to it, and its subnet stays until it is `deleted`.
    assert_eq!(
        refused(
            &server,
            "CreateRoute",
            &[
                ("RouteTableId", &main),
                ("DestinationCidrBlock", "192.168.0.0/16"),
                ("NatGatewayId", &nat),
            ]
        )
        .await,
        "NatGatewayNotFound"
    );
    assert_eq!(
        refused(&server, "DeleteSubnet", &[("SubnetId", &subnet)]).await,
        "DependencyViolation"
    );
    server.clock.advance(chrono::Duration::seconds(3));
    let gone = ok(&server, "DescribeNatGateways", &[("NatGatewayId.1", &nat)]).await;
    assert_eq!(text_of(&gone.body, "state").unwrap(), "deleted");
    ok(
        &server,
        "DeleteRoute",
        &[
            ("RouteTableId", &main),
            ("DestinationCidrBlock", "0.0.0.0/0"),
        ],
    )
    .await;
    ok(&server, "DeleteSubnet", &[("SubnetId", &subnet)]).await;
    ok(&server, "ReleaseAddress", &[("AllocationId", &allocation)]).await;

    // A private NAT gateway takes no Elastic IP.
    let private_subnet = new_subnet(&server, &vpc, "10.2.1.0/24").await;
    let private = ok(
        &server,
        "CreateNatGateway",
        &[
            ("SubnetId", &private_subnet),
            ("ConnectivityType", "private"),
        ],
    )
    .await;
    assert_eq!(
        text_of(&private.body, "connectivityType").unwrap(),
        "private"
    );
    assert!(text_of(&private.body, "publicIp").is_none());
    server.stop().await;
}
