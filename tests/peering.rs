//! VPC peering connections through the in-process server: a request within
//! an account and across two accounts, acceptance, rejection, deletion,
//! failure on overlapping blocks or an unknown peer, routes and security
//! group references through an active connection, and isolation.

mod common;

use common::*;
use ec2_gateway::client::{text_of, Reply};
use ec2_gateway::config::StorageBackend;

async fn vpc_of(server: &TestServer, admin: bool, block: &str) -> String {
    let params = [("CidrBlock", block)];
    let reply = if admin {
        server.admin("CreateVpc", &params).await
    } else {
        server.user("CreateVpc", &params).await
    };
    assert_eq!(reply.status, 200, "{}", reply.body);
    text_of(&reply.body, "vpcId").unwrap()
}

/// The state of the route through `pcx` in the one table of `reply`.
fn route_state(reply: &Reply, pcx: &str) -> String {
    items(reply, "routeSet")
        .into_iter()
        .find(|route| route.get("vpcPeeringConnectionId").map(String::as_str) == Some(pcx))
        .and_then(|route| route.get("state").cloned())
        .unwrap_or_default()
}

fn status(reply: &Reply) -> String {
    let status = reply.body.split("<status>").nth(1).unwrap();
    text_of(status, "code").unwrap()
}

#[tokio::test]
async fn connections_are_requested_accepted_routed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let mine = vpc_of(&server, false, "10.1.0.0/16").await;
    let theirs = vpc_of(&server, true, "10.2.0.0/16").await;
    // Across accounts: pending until the accepter accepts.
    let requested = server
        .user(
            "CreateVpcPeeringConnection",
            &[
                ("VpcId", &mine),
                ("PeerVpcId", &theirs),
                ("PeerOwnerId", ADMIN_ACCOUNT),
                ("TagSpecification.1.ResourceType", "vpc-peering-connection"),
                ("TagSpecification.1.Tag.1.Key", "Name"),
                ("TagSpecification.1.Tag.1.Value", "to-ops"),
            ],
        )
        .await;
    assert_eq!(requested.status, 200, "{}", requested.body);
    let pcx = text_of(&requested.body, "vpcPeeringConnectionId").unwrap();
    assert_eq!(status(&requested), "pending-acceptance");
    // The requester cannot accept; the accepter sees it, without its tags.
    let self_accept = server
        .user(
            "AcceptVpcPeeringConnection",
            &[("VpcPeeringConnectionId", &pcx)],
        )
        .await;
    assert_eq!(error_code(&self_accept), "OperationNotPermitted");
    let seen = server
        .admin(
            "DescribeVpcPeeringConnections",
            &[("VpcPeeringConnectionId.1", &pcx)],
        )
        .await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert!(!seen.body.contains("to-ops"), "{}", seen.body);
    // A route through it is refused while it is pending.
    let main = server
        .user(
            "DescribeRouteTables",
            &[("Filter.1.Name", "vpc-id"), ("Filter.1.Value.1", &mine)],
        )
        .await;
    let main = text_of(&main.body, "routeTableId").unwrap();
    let route = [
        ("RouteTableId", main.as_str()),
        ("DestinationCidrBlock", "10.2.0.0/16"),
        ("VpcPeeringConnectionId", pcx.as_str()),
    ];
    assert_eq!(
        error_code(&server.user("CreateRoute", &route).await),
        "InvalidParameterValue"
    );
    let accepted = server
        .admin(
            "AcceptVpcPeeringConnection",
            &[("VpcPeeringConnectionId", &pcx)],
        )
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(status(&accepted), "active");
    let again = server
        .admin(
            "AcceptVpcPeeringConnection",
            &[("VpcPeeringConnectionId", &pcx)],
        )
        .await;
    assert_eq!(error_code(&again), "InvalidStateTransition");
    let routed = server.user("CreateRoute", &route).await;
    assert_eq!(routed.status, 200, "{}", routed.body);
    let table = server
        .user("DescribeRouteTables", &[("RouteTableId.1", &main)])
        .await;
    assert_eq!(route_state(&table, &pcx), "active", "{}", table.body);
    // A third party (none here) aside, the accepter deletes it: the route
    // is a blackhole.
    let deleted = server
        .admin(
            "DeleteVpcPeeringConnection",
            &[("VpcPeeringConnectionId", &pcx)],
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let table = server
        .user("DescribeRouteTables", &[("RouteTableId.1", &main)])
        .await;
    assert_eq!(route_state(&table, &pcx), "blackhole", "{}", table.body);
    let by_connection = server
        .user(
            "DescribeRouteTables",
            &[
                ("Filter.1.Name", "route.vpc-peering-connection-id"),
                ("Filter.1.Value.1", &pcx),
            ],
        )
        .await;
    assert_eq!(
        column(&by_connection, "routeTableSet", "routeTableId"),
        std::slice::from_ref(&main)
    );
    let listed = server
        .user(
            "DescribeVpcPeeringConnections",
            &[
                ("Filter.1.Name", "status-code"),
                ("Filter.1.Value.1", "deleted"),
            ],
        )
        .await;
    assert_eq!(
        column(&listed, "vpcPeeringConnectionSet", "vpcPeeringConnectionId"),
        std::slice::from_ref(&pcx)
    );
    server.stop().await;
}

#[tokio::test]
async fn overlaps_unknown_peers_rejections_and_group_references_follow_ec2() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let a = vpc_of(&server, false, "10.10.0.0/16").await;
    let b = vpc_of(&server, false, "10.11.0.0/16").await;
    let overlapping = vpc_of(&server, false, "10.10.128.0/20").await;
    let failed = server
        .user(
            "CreateVpcPeeringConnection",
            &[("VpcId", &a), ("PeerVpcId", &overlapping)],
        )
        .await;
    assert_eq!(status(&failed), "failed");
    let unknown = server
        .user(
            "CreateVpcPeeringConnection",
            &[("VpcId", &a), ("PeerVpcId", "vpc-0123456789abcdef0")],
        )
        .await;
    assert_eq!(status(&unknown), "failed");
    // Within one account: the same account accepts; a rejection ends it.
    let rejected = server
        .user(
            "CreateVpcPeeringConnection",
            &[("VpcId", &a), ("PeerVpcId", &b)],
        )
        .await;
    let rejected = text_of(&rejected.body, "vpcPeeringConnectionId").unwrap();
    let reply = server
        .user(
            "RejectVpcPeeringConnection",
            &[("VpcPeeringConnectionId", &rejected)],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let pcx = server
        .user(
            "CreateVpcPeeringConnection",
            &[("VpcId", &a), ("PeerVpcId", &b)],
        )
        .await;
    let pcx = text_of(&pcx.body, "vpcPeeringConnectionId").unwrap();
    // Groups of the other VPC are referenced only through an active one.
    let group_in = |vpc: &str, name: &'static str| {
        let (server, vpc) = (&server, vpc.to_string());
        async move {
            let reply = server
                .user(
                    "CreateSecurityGroup",
                    &[
                        ("GroupName", name),
                        ("GroupDescription", name),
                        ("VpcId", &vpc),
                    ],
                )
                .await;
            text_of(&reply.body, "groupId").unwrap()
        }
    };
    let web = group_in(&a, "web").await;
    let db = group_in(&b, "db").await;
    let reference = [
        ("GroupId", db.as_str()),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "5432"),
        ("IpPermissions.1.ToPort", "5432"),
        ("IpPermissions.1.Groups.1.GroupId", web.as_str()),
    ];
    let early = server
        .user("AuthorizeSecurityGroupIngress", &reference)
        .await;
    assert_eq!(error_code(&early), "InvalidGroup.NotFound");
    let accepted = server
        .user(
            "AcceptVpcPeeringConnection",
            &[("VpcPeeringConnectionId", &pcx)],
        )
        .await;
    assert_eq!(status(&accepted), "active");
    let referenced = server
        .user("AuthorizeSecurityGroupIngress", &reference)
        .await;
    assert_eq!(referenced.status, 200, "{}", referenced.body);
    // Another account sees none of these connections.
    let hidden = server
        .admin(
            "DescribeVpcPeeringConnections",
            &[("VpcPeeringConnectionId.1", &pcx)],
        )
        .await;
    assert_eq!(
        error_code(&hidden),
        "InvalidVpcPeeringConnectionID.NotFound"
    );
    let hidden = server
        .admin(
            "DeleteVpcPeeringConnection",
            &[("VpcPeeringConnectionId", &pcx)],
        )
        .await;
    assert_eq!(
        error_code(&hidden),
        "InvalidVpcPeeringConnectionID.NotFound"
    );
    server.stop().await;
}

#[tokio::test]
async fn deleting_a_vpc_ends_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let a = vpc_of(&server, false, "10.20.0.0/16").await;
    let b = vpc_of(&server, false, "10.21.0.0/16").await;
    let pcx = server
        .user(
            "CreateVpcPeeringConnection",
            &[("VpcId", &a), ("PeerVpcId", &b)],
        )
        .await;
    let pcx = text_of(&pcx.body, "vpcPeeringConnectionId").unwrap();
    let accepted = server
        .user(
            "AcceptVpcPeeringConnection",
            &[("VpcPeeringConnectionId", &pcx)],
        )
        .await;
    assert_eq!(status(&accepted), "active");
    let deleted = server.user("DeleteVpc", &[("VpcId", &b)]).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let listed = server
        .user(
            "DescribeVpcPeeringConnections",
            &[("VpcPeeringConnectionId.1", &pcx)],
        )
        .await;
    assert_eq!(status(&listed), "deleted");
    server.stop().await;
}

#[tokio::test]
async fn a_request_tells_nothing_about_another_accounts_vpcs() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let mine = vpc_of(&server, false, "10.30.0.0/16").await;
    let theirs = vpc_of(&server, true, "10.31.0.0/16").await;
    let overlapping = vpc_of(&server, true, "10.30.0.0/20").await;
    let request = |peer: &str| {
        let (server, mine, peer) = (&server, mine.clone(), peer.to_string());
        async move {
            server
                .user(
                    "CreateVpcPeeringConnection",
                    &[
                        ("VpcId", mine.as_str()),
                        ("PeerVpcId", peer.as_str()),
                        ("PeerOwnerId", ADMIN_ACCOUNT),
                    ],
                )
                .await
        }
    };
    // Pending: the peer's blocks are not shown to the requester.
    let pending = request(&theirs).await;
    assert_eq!(status(&pending), "pending-acceptance");
    assert!(!pending.body.contains("10.31."), "{}", pending.body);
    // Overlapping and unknown peers fail in the same words.
    let overlap = request(&overlapping).await;
    let unknown = request("vpc-0123456789abcdef0").await;
    assert_eq!(status(&overlap), "failed");
    assert_eq!(status(&unknown), "failed");
    let message = |reply: &Reply| {
        let status = reply.body.split("<status>").nth(1).unwrap();
        text_of(status, "message").unwrap()
    };
    assert_eq!(message(&overlap), message(&unknown));
    assert!(!overlap.body.contains("10.30.0.0/20"), "{}", overlap.body);
    // A failed request is the requester's alone; a second live one between
    // the same VPCs is refused.
    let listed = server.admin("DescribeVpcPeeringConnections", &[]).await;
    assert_eq!(
        column(&listed, "vpcPeeringConnectionSet", "vpcPeeringConnectionId").len(),
        1
    );
    let twice = request(&theirs).await;
    assert_eq!(error_code(&twice), "VpcPeeringConnectionAlreadyExists");
    server.stop().await;
}

#[tokio::test]
async fn groups_of_another_account_are_referenced_across_an_active_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let mine = vpc_of(&server, false, "10.50.0.0/16").await;
    let theirs = vpc_of(&server, true, "10.51.0.0/16").await;
    let app = server
        .user(
            "CreateSecurityGroup",
            &[
                ("GroupName", "app"),
                ("GroupDescription", "app"),
                ("VpcId", &mine),
            ],
        )
        .await;
    let app = text_of(&app.body, "groupId").unwrap();
    let clients = server
        .admin(
            "CreateSecurityGroup",
            &[
                ("GroupName", "clients"),
                ("GroupDescription", "clients"),
                ("VpcId", &theirs),
            ],
        )
        .await;
    let clients = text_of(&clients.body, "groupId").unwrap();
    // A group of their default VPC, which is not peered with mine.
    let elsewhere = server
        .admin(
            "CreateSecurityGroup",
            &[
                ("GroupName", "elsewhere"),
                ("GroupDescription", "elsewhere"),
            ],
        )
        .await;
    let elsewhere = text_of(&elsewhere.body, "groupId").unwrap();
    let reference = |group: &str| {
        vec![
            ("GroupId".to_string(), app.clone()),
            ("IpPermissions.1.IpProtocol".to_string(), "tcp".to_string()),
            ("IpPermissions.1.FromPort".to_string(), "443".to_string()),
            ("IpPermissions.1.ToPort".to_string(), "443".to_string()),
            (
                "IpPermissions.1.Groups.1.GroupId".to_string(),
                group.to_string(),
            ),
            (
                "IpPermissions.1.Groups.1.UserId".to_string(),
                ADMIN_ACCOUNT.to_string(),
            ),
        ]
    };
    let authorize = |group: String| {
        let server = &server;
        let params = reference(&group);
        async move {
            let params: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            server.user("AuthorizeSecurityGroupIngress", &params).await
        }
    };
    // Not peered yet: their group is as unknown as one that does not exist.
    let early = authorize(clients.clone()).await;
    let missing = authorize("sg-0123456789abcdef0".to_string()).await;
    assert_eq!(error_code(&early), "InvalidGroup.NotFound");
    assert_eq!(
        text_of(&early.body, "Message")
            .unwrap()
            .replace(&clients, "ID"),
        text_of(&missing.body, "Message")
            .unwrap()
            .replace("sg-0123456789abcdef0", "ID")
    );

    let pcx = server
        .user(
            "CreateVpcPeeringConnection",
            &[
                ("VpcId", &mine),
                ("PeerVpcId", &theirs),
                ("PeerOwnerId", ADMIN_ACCOUNT),
            ],
        )
        .await;
    let pcx = text_of(&pcx.body, "vpcPeeringConnectionId").unwrap();
    let pending = authorize(clients.clone()).await;
    assert_eq!(error_code(&pending), "InvalidGroup.NotFound");
    let accepted = server
        .admin(
            "AcceptVpcPeeringConnection",
            &[("VpcPeeringConnectionId", &pcx)],
        )
        .await;
    assert_eq!(status(&accepted), "active");

    let referenced = authorize(clients.clone()).await;
    assert_eq!(referenced.status, 200, "{}", referenced.body);
    let described = server
        .user("DescribeSecurityGroups", &[("GroupId.1", &app)])
        .await;
    assert!(
        described
            .body
            .contains(&format!("<userId>{ADMIN_ACCOUNT}</userId>"))
            && described.body.contains(&clients),
        "{}",
        described.body
    );
    // Their group's name stays theirs.
    assert!(!described.body.contains("<groupName>clients</groupName>"));
    // A user id names an account (twelve digits); one's own group under
    // another account's id is not one's own group.
    let malformed = {
        let mut params = reference(&clients);
        params[5].1 = "admin".to_string();
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        server.user("AuthorizeSecurityGroupIngress", &params).await
    };
    assert_eq!(error_code(&malformed), "InvalidParameterValue");
    assert_eq!(
        error_code(&authorize(app.clone()).await),
        "InvalidGroup.NotFound"
    );
    // Only the peered VPC's groups, and only by id.
    assert_eq!(
        error_code(&authorize(elsewhere).await),
        "InvalidGroup.NotFound"
    );
    let by_name = server
        .user(
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupId", &app),
                ("IpProtocol", "tcp"),
                ("FromPort", "22"),
                ("ToPort", "22"),
                ("SourceSecurityGroupName", "clients"),
                ("SourceSecurityGroupOwnerId", ADMIN_ACCOUNT),
            ],
        )
        .await;
    assert_eq!(error_code(&by_name), "InvalidGroup.NotFound");
    // They may still delete their group; the rule stays (stale, as EC2's).
    let deleted = server
        .admin("DeleteSecurityGroup", &[("GroupId", &clients)])
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let revoked = server
        .user(
            "RevokeSecurityGroupIngress",
            &reference(&clients)
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    server.stop().await;
}
