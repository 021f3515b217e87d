//! Network ACLs and DHCP options sets through the in-process server: every
//! VPC's default ACL and its subnets' associations, entries and their rules,
//! moving a subnet between ACLs, deletion order, the default DHCP options
//! set, custom sets and their associations, isolation and a restart.

mod common;

use common::*;
use ec2_gateway::client::{text_of, Reply};
use ec2_gateway::config::StorageBackend;

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

/// `(rule number, egress, action)` of the one ACL in `reply`.
fn entries(reply: &Reply) -> Vec<(String, String, String)> {
    items(reply, "entrySet")
        .into_iter()
        .map(|e| {
            (
                e["ruleNumber"].clone(),
                e["egress"].clone(),
                e["ruleAction"].clone(),
            )
        })
        .collect()
}

fn entry(rule: &str, egress: bool, action: &str) -> (String, String, String) {
    (rule.into(), egress.to_string(), action.into())
}

#[tokio::test]
async fn acls_hold_entries_and_subnets_move_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let vpc = ok(&server, "CreateVpc", &[("CidrBlock", "10.3.0.0/16")]).await;
    let vpc = text_of(&vpc.body, "vpcId").unwrap();
    let subnet = ok(
        &server,
        "CreateSubnet",
        &[("VpcId", &vpc), ("CidrBlock", "10.3.0.0/24")],
    )
    .await;
    let subnet = text_of(&subnet.body, "subnetId").unwrap();

    // The default ACL: allow all, then deny all, both ways; the new subnet
    // is associated with it.
    let default = ok(
        &server,
        "DescribeNetworkAcls",
        &[
            ("Filter.1.Name", "vpc-id"),
            ("Filter.1.Value.1", &vpc),
            ("Filter.2.Name", "default"),
            ("Filter.2.Value.1", "true"),
        ],
    )
    .await;
    let default_id = column(&default, "networkAclSet", "networkAclId").remove(0);
    assert_eq!(
        entries(&default),
        [
            entry("100", false, "allow"),
            entry("32767", false, "deny"),
            entry("100", true, "allow"),
            entry("32767", true, "deny")
        ]
    );
    assert_eq!(
        column(&default, "associationSet", "subnetId"),
        std::slice::from_ref(&subnet)
    );
    let implicit = column(&default, "associationSet", "networkAclAssociationId").remove(0);
    assert!(implicit.starts_with("aclassoc-"), "{implicit}");
    // Stable across listings.
    let again = ok(
        &server,
        "DescribeNetworkAcls",
        &[("NetworkAclId.1", &default_id)],
    )
    .await;
    assert_eq!(
        column(&again, "associationSet", "networkAclAssociationId"),
        std::slice::from_ref(&implicit)
    );

    // A custom ACL: only the final deny; entries by number and direction.
    let created = ok(
        &server,
        "CreateNetworkAcl",
        &[("VpcId", &vpc), ("ClientToken", "acl-1")],
    )
    .await;
    let acl = text_of(&created.body, "networkAclId").unwrap();
    let retried = ok(
        &server,
        "CreateNetworkAcl",
        &[("VpcId", &vpc), ("ClientToken", "acl-1")],
    )
    .await;
    assert_eq!(text_of(&retried.body, "networkAclId").unwrap(), acl);
    let ssh = [
        ("NetworkAclId", acl.as_str()),
        ("RuleNumber", "100"),
        ("Protocol", "tcp"),
        ("RuleAction", "allow"),
        ("Egress", "false"),
        ("CidrBlock", "203.0.113.0/24"),
        ("PortRange.From", "22"),
        ("PortRange.To", "22"),
    ];
    ok(&server, "CreateNetworkAclEntry", &ssh).await;
    assert_eq!(
        refused(&server, "CreateNetworkAclEntry", &ssh).await,
        "NetworkAclEntryAlreadyExists"
    );
    let mut no_ports = ssh.to_vec();
    no_ports.retain(|(n, _)| !n.starts_with("PortRange"));
    no_ports[1] = ("RuleNumber", "110");
    assert_eq!(
        refused(&server, "CreateNetworkAclEntry", &no_ports).await,
        "MissingParameter"
    );
    let mut outbound = ssh.to_vec();
    outbound[4] = ("Egress", "true");
    ok(&server, "CreateNetworkAclEntry", &outbound).await;
    let mut last = ssh.to_vec();
    last[1] = ("RuleNumber", "32767");
    assert_eq!(
        refused(&server, "CreateNetworkAclEntry", &last).await,
        "InvalidParameterValue"
    );
    let mut deny = ssh.to_vec();
    deny[3] = ("RuleAction", "deny");
    ok(&server, "ReplaceNetworkAclEntry", &deny).await;
    let listed = ok(&server, "DescribeNetworkAcls", &[("NetworkAclId.1", &acl)]).await;
    assert_eq!(
        entries(&listed),
        [
            entry("100", false, "deny"),
            entry("32767", false, "deny"),
            entry("100", true, "allow"),
            entry("32767", true, "deny")
        ]
    );
    assert!(listed.body.contains("<protocol>6</protocol>"));
    let mut missing = ssh.to_vec();
    missing[1] = ("RuleNumber", "200");
    assert_eq!(
        refused(&server, "ReplaceNetworkAclEntry", &missing).await,
        "InvalidNetworkAclEntry.NotFound"
    );
    ok(
        &server,
        "DeleteNetworkAclEntry",
        &[
            ("NetworkAclId", &acl),
            ("RuleNumber", "100"),
            ("Egress", "true"),
        ],
    )
    .await;
    assert_eq!(
        refused(
            &server,
            "DeleteNetworkAclEntry",
            &[
                ("NetworkAclId", &acl),
                ("RuleNumber", "100"),
                ("Egress", "true")
            ]
        )
        .await,
        "InvalidNetworkAclEntry.NotFound"
    );

    // Move the subnet: a new association id; the ACL it uses is kept.
    let moved = ok(
        &server,
        "ReplaceNetworkAclAssociation",
        &[("AssociationId", &implicit), ("NetworkAclId", &acl)],
    )
    .await;
    let association = text_of(&moved.body, "newAssociationId").unwrap();
    assert_ne!(association, implicit);
    let by_subnet = ok(
        &server,
        "DescribeNetworkAcls",
        &[
            ("Filter.1.Name", "association.subnet-id"),
            ("Filter.1.Value.1", &subnet),
        ],
    )
    .await;
    assert_eq!(
        column(&by_subnet, "networkAclSet", "networkAclId"),
        std::slice::from_ref(&acl)
    );
    assert_eq!(
        refused(&server, "DeleteNetworkAcl", &[("NetworkAclId", &acl)]).await,
        "DependencyViolation"
    );
    assert_eq!(
        refused(
            &server,
            "DeleteNetworkAcl",
            &[("NetworkAclId", &default_id)]
        )
        .await,
        "InvalidParameterValue"
    );
    assert_eq!(
        refused(
            &server,
            "ReplaceNetworkAclAssociation",
            &[("AssociationId", &implicit), ("NetworkAclId", &acl)]
        )
        .await,
        "InvalidAssociationID.NotFound"
    );
    // Another account: nothing.
    let theirs = server
        .admin("DescribeNetworkAcls", &[("NetworkAclId.1", &acl)])
        .await;
    assert_eq!(error_code(&theirs), "InvalidNetworkAclID.NotFound");
    let theirs = server
        .admin(
            "ReplaceNetworkAclAssociation",
            &[("AssociationId", &association), ("NetworkAclId", &acl)],
        )
        .await;
    assert_eq!(error_code(&theirs), "InvalidAssociationID.NotFound");

    // Back to the default one; then the ACL, the subnet and the VPC go.
    ok(
        &server,
        "ReplaceNetworkAclAssociation",
        &[
            ("AssociationId", &association),
            ("NetworkAclId", &default_id),
        ],
    )
    .await;
    assert_eq!(
        refused(&server, "DeleteVpc", &[("VpcId", &vpc)]).await,
        "DependencyViolation"
    );
    ok(&server, "DeleteNetworkAcl", &[("NetworkAclId", &acl)]).await;
    ok(&server, "DeleteSubnet", &[("SubnetId", &subnet)]).await;
    ok(&server, "DeleteVpc", &[("VpcId", &vpc)]).await;
    let gone = server
        .user("DescribeNetworkAcls", &[("NetworkAclId.1", &default_id)])
        .await;
    assert_eq!(error_code(&gone), "InvalidNetworkAclID.NotFound");
    server.stop().await;
}

#[tokio::test]
async fn dhcp_options_sets_are_created_associated_and_kept_while_used() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Sled);
    let server = TestServer::start(config.clone()).await;
    // The default set: what the default VPC names, with EC2's values.
    let vpcs = ok(&server, "DescribeVpcs", &[]).await;
    let default_set = text_of(&vpcs.body, "dhcpOptionsId").unwrap();
    let listed = ok(&server, "DescribeDhcpOptions", &[]).await;
    assert_eq!(
        column(&listed, "dhcpOptionsSet", "dhcpOptionsId"),
        std::slice::from_ref(&default_set)
    );
    assert!(
        listed.body.contains("<value>ec2.internal</value>"),
        "{}",
        listed.body
    );
    assert!(listed.body.contains("<value>AmazonProvidedDNS</value>"));

    let created = ok(
        &server,
        "CreateDhcpOptions",
        &[
            ("DhcpConfiguration.1.Key", "domain-name"),
            ("DhcpConfiguration.1.Value.1", "corp.example"),
            ("DhcpConfiguration.2.Key", "domain-name-servers"),
            ("DhcpConfiguration.2.Value.1", "10.0.0.2"),
            ("DhcpConfiguration.2.Value.2", "10.0.0.3"),
        ],
    )
    .await;
    let set = text_of(&created.body, "dhcpOptionsId").unwrap();
    assert_eq!(
        refused(
            &server,
            "CreateDhcpOptions",
            &[
                ("DhcpConfiguration.1.Key", "search-domains"),
                ("DhcpConfiguration.1.Value.1", "x")
            ]
        )
        .await,
        "InvalidParameterValue"
    );
    let by_value = ok(
        &server,
        "DescribeDhcpOptions",
        &[
            ("Filter.1.Name", "value"),
            ("Filter.1.Value.1", "corp.example"),
        ],
    )
    .await;
    assert_eq!(
        column(&by_value, "dhcpOptionsSet", "dhcpOptionsId"),
        std::slice::from_ref(&set)
    );

    // A created VPC starts with the default set; it takes the new one.
    let vpc = ok(&server, "CreateVpc", &[("CidrBlock", "10.4.0.0/16")]).await;
    let vpc_id = text_of(&vpc.body, "vpcId").unwrap();
    assert_eq!(text_of(&vpc.body, "dhcpOptionsId").unwrap(), default_set);
    ok(
        &server,
        "AssociateDhcpOptions",
        &[("DhcpOptionsId", &set), ("VpcId", &vpc_id)],
    )
    .await;
    let described = ok(&server, "DescribeVpcs", &[("VpcId.1", &vpc_id)]).await;
    assert_eq!(text_of(&described.body, "dhcpOptionsId").unwrap(), set);
    assert_eq!(
        refused(&server, "DeleteDhcpOptions", &[("DhcpOptionsId", &set)]).await,
        "DependencyViolation"
    );
    assert_eq!(
        refused(
            &server,
            "AssociateDhcpOptions",
            &[
                ("DhcpOptionsId", "dopt-0123456789abcdef0"),
                ("VpcId", &vpc_id)
            ]
        )
        .await,
        "InvalidDhcpOptionID.NotFound"
    );
    let theirs = server
        .admin(
            "AssociateDhcpOptions",
            &[("DhcpOptionsId", &set), ("VpcId", &vpc_id)],
        )
        .await;
    assert_eq!(error_code(&theirs), "InvalidVpcID.NotFound");

    // Kept across a restart.
    server.stop().await;
    let server = TestServer::start(config).await;
    let described = ok(&server, "DescribeVpcs", &[("VpcId.1", &vpc_id)]).await;
    assert_eq!(text_of(&described.body, "dhcpOptionsId").unwrap(), set);

    // `default` leaves the VPC with no options set, as in EC2; then the
    // set goes.
    ok(
        &server,
        "AssociateDhcpOptions",
        &[("DhcpOptionsId", "default"), ("VpcId", &vpc_id)],
    )
    .await;
    let described = ok(&server, "DescribeVpcs", &[("VpcId.1", &vpc_id)]).await;
    assert_eq!(
        text_of(&described.body, "dhcpOptionsId").unwrap(),
        "default"
    );
    ok(&server, "DeleteDhcpOptions", &[("DhcpOptionsId", &set)]).await;
    let gone = server
        .user("DescribeDhcpOptions", &[("DhcpOptionsId.1", &set)])
        .await;
    assert_eq!(error_code(&gone), "InvalidDhcpOptionID.NotFound");
    assert_eq!(
        refused(
            &server,
            "DeleteDhcpOptions",
            &[("DhcpOptionsId", &default_set)]
        )
        .await,
        "DependencyViolation"
    );
    server.stop().await;
}
