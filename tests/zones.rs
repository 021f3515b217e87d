//! Availability zones and regions: derived from compute hosts, changed by
//! admin actions at runtime, persisted across restarts.

mod common;

use common::*;
use ec2_gateway::config::StorageBackend;

async fn server(storage: StorageBackend) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(&dir.path().join("data"), storage)).await;
    (server, dir)
}

async fn zone_states(server: &TestServer) -> Vec<(String, String)> {
    let reply = server.user("DescribeAvailabilityZones", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    items(&reply, "availabilityZoneInfo")
        .into_iter()
        .map(|z| (z["zoneName"].clone(), z["zoneState"].clone()))
        .collect()
}

fn states(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn zones_come_from_the_configured_hosts() {
    let (server, _dir) = server(StorageBackend::Memory).await;
    let reply = server.user("DescribeAvailabilityZones", &[]).await;
    let zones = items(&reply, "availabilityZoneInfo");
    assert_eq!(zones.len(), 3);
    let first = &zones[0];
    assert_eq!(first["zoneName"], "us-east-1a");
    assert_eq!(first["zoneState"], "available");
    assert_eq!(first["zoneId"], "use1-az1");
    assert_eq!(first["regionName"], "us-east-1");
    assert_eq!(first["optInStatus"], "opt-in-not-required");
    assert_eq!(first["zoneType"], "availability-zone");
    assert_eq!(first["groupName"], "us-east-1-zg-1");
    assert_eq!(first["networkBorderGroup"], "us-east-1");
    assert!(reply.body.contains("<messageSet/>"));
    assert_eq!(
        column(&reply, "availabilityZoneInfo", "zoneId"),
        ["use1-az1", "use1-az2", "use1-az3"]
    );
    server.stop().await;
}

#[tokio::test]
async fn zone_names_ids_and_filters() {
    let (server, _dir) = server(StorageBackend::Memory).await;
    let names =
        |reply: &ec2_gateway::client::Reply| column(reply, "availabilityZoneInfo", "zoneName");
    let reply = server
        .user(
            "DescribeAvailabilityZones",
            &[("ZoneName.2", "us-east-1c"), ("ZoneName.1", "us-east-1a")],
        )
        .await;
    assert_eq!(names(&reply), ["us-east-1a", "us-east-1c"]);
    let reply = server
        .user("DescribeAvailabilityZones", &[("ZoneId.1", "use1-az2")])
        .await;
    assert_eq!(names(&reply), ["us-east-1b"]);
    let reply = server
        .user("DescribeAvailabilityZones", &[("ZoneName.1", "us-east-1q")])
        .await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "InvalidParameterValue")
    );
    assert!(reply
        .body
        .contains("Invalid availability zone: [us-east-1q]"));
    let reply = server
        .user("DescribeAvailabilityZones", &[("ZoneId.1", "use1-az9")])
        .await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "InvalidParameterValue")
    );

    let filtered = |filters: Vec<(&'static str, &'static str)>| {
        let server = &server;
        async move {
            let mut params = filters;
            params.push(("AllAvailabilityZones", "true"));
            names(&server.user("DescribeAvailabilityZones", &params).await)
        }
    };
    assert_eq!(
        filtered(vec![
            ("Filter.1.Name", "zone-name"),
            ("Filter.1.Value.1", "*1b")
        ])
        .await,
        ["us-east-1b"]
    );
    assert_eq!(
        filtered(vec![
            ("Filter.1.Name", "zone-name"),
            ("Filter.1.Value.1", "us-east-1?")
        ])
        .await
        .len(),
        3
    );
    assert_eq!(
        filtered(vec![
            ("Filter.1.Name", "zone-id"),
            ("Filter.1.Value.1", "use1-az1"),
            ("Filter.1.Value.2", "use1-az3")
        ])
        .await,
        ["us-east-1a", "us-east-1c"]
    );
    assert_eq!(
        filtered(vec![
            ("Filter.1.Name", "zone-id"),
            ("Filter.1.Value.1", "use1-az1"),
            ("Filter.1.Value.2", "use1-az3"),
            ("Filter.2.Name", "zone-name"),
            ("Filter.2.Value.1", "*c")
        ])
        .await,
        ["us-east-1c"]
    );
    for (name, value, count) in [
        ("state", "available", 3),
        ("state", "unavailable", 0),
        ("region-name", "us-east-1", 3),
        ("zone-type", "availability-zone", 3),
        ("group-name", "us-east-1-zg-1", 3),
        ("opt-in-status", "opt-in-not-required", 3),
        ("message", "*", 0),
    ] {
        let got = filtered(vec![("Filter.1.Name", name), ("Filter.1.Value.1", value)]).await;
        assert_eq!(got.len(), count, "{name}={value}");
    }
    let reply = server
        .user(
            "DescribeAvailabilityZones",
            &[("Filter.1.Name", "colour"), ("Filter.1.Value.1", "x")],
        )
        .await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "InvalidFilter")
    );
    server.stop().await;
}

#[tokio::test]
async fn verbose_tree_for_admins_only() {
    let (server, _dir) = server(StorageBackend::Memory).await;
    let reply = server
        .admin("DescribeAvailabilityZones", &[("ZoneName.1", "verbose")])
        .await;
    let rows: Vec<(String, Option<String>)> = items(&reply, "availabilityZoneInfo")
        .into_iter()
        .map(|item| (item["zoneName"].clone(), item.get("zoneState").cloned()))
        .collect();
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "us-east-1a",
            "|- node-a1",
            "| |- compute",
            "|- node-a2",
            "| |- compute",
            "us-east-1b",
            "|- node-b1",
            "| |- compute",
            "us-east-1c",
            "|- node-c1",
            "| |- compute"
        ]
    );
    let service_state = rows[2].1.clone().unwrap();
    assert!(
        service_state.starts_with("enabled :-) 20"),
        "{service_state}"
    );
    assert!(service_state.ends_with("s ago)"), "{service_state}");
    // A non-admin asking for verbose gets the plain list.
    let reply = server
        .user("DescribeAvailabilityZones", &[("ZoneName.1", "verbose")])
        .await;
    assert_eq!(
        column(&reply, "availabilityZoneInfo", "zoneName"),
        ["us-east-1a", "us-east-1b", "us-east-1c"]
    );
    server.stop().await;
}

#[tokio::test]
async fn disabling_hosts_changes_zone_state_at_once() {
    let (server, _dir) = server(StorageBackend::Memory).await;
    let reply = server
        .admin(
            "AdminDisableHost",
            &[("HostName", "node-b1"), ("Reason", "disk swap")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("<return>true</return>"));
    // node-b1 was zone b's only host; zone a keeps node-a2 when node-a1 goes.
    server
        .admin("AdminDisableHost", &[("HostName", "node-a1")])
        .await;
    assert_eq!(
        zone_states(&server).await,
        states(&[
            ("us-east-1a", "available"),
            ("us-east-1b", "unavailable"),
            ("us-east-1c", "available")
        ])
    );
    let reply = server
        .admin("DescribeAvailabilityZones", &[("ZoneName.1", "verbose")])
        .await;
    let tree = items(&reply, "availabilityZoneInfo");
    let b_service = tree
        .iter()
        .position(|i| i["zoneName"] == "|- node-b1")
        .unwrap()
        + 1;
    let state = &tree[b_service]["zoneState"];
    assert!(
        state.starts_with("disabled :-) ") && state.ends_with("reason: disk swap"),
        "{state}"
    );
    let reply = server.admin("AdminDescribeHosts", &[]).await;
    let hosts = items(&reply, "hostSet");
    let b = hosts.iter().find(|h| h["hostName"] == "node-b1").unwrap();
    assert_eq!(
        (
            b["status"].as_str(),
            b["disabledReason"].as_str(),
            b["alive"].as_str()
        ),
        ("disabled", "disk swap", "true")
    );

    server
        .admin("AdminEnableHost", &[("HostName", "node-b1")])
        .await;
    assert_eq!(
        zone_states(&server).await[1],
        ("us-east-1b".to_string(), "available".to_string())
    );
    let reply = server
        .admin("AdminEnableHost", &[("HostName", "node-zz")])
        .await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "InvalidHost.NotFound")
    );
    server.stop().await;
}

#[tokio::test]
async fn external_hosts_live_by_their_heartbeats() {
    let (server, _dir) = server(StorageBackend::Memory).await;
    let reply = server
        .admin(
            "AdminAddHost",
            &[
                ("HostName", "edge-1"),
                ("AvailabilityZone", "us-east-1d"),
                ("Vcpus", "8"),
                ("MemoryMib", "16384"),
                ("Simulated", "false"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The zone exists as soon as a host names it, with the next zone id,
    // but is unavailable until the host heartbeats.
    let reply = server
        .user("DescribeAvailabilityZones", &[("ZoneName.1", "us-east-1d")])
        .await;
    let zone = &items(&reply, "availabilityZoneInfo")[0];
    assert_eq!(
        (zone["zoneId"].as_str(), zone["zoneState"].as_str()),
        ("use1-az4", "unavailable")
    );
    server
        .admin("AdminHostHeartbeat", &[("HostName", "edge-1")])
        .await;
    assert_eq!(
        zone_states(&server).await[3],
        ("us-east-1d".to_string(), "available".to_string())
    );
    // Past the 60 s liveness window the host is dead and its zone unavailable.
    server.clock.advance(chrono::Duration::seconds(90));
    assert_eq!(
        zone_states(&server).await[3],
        ("us-east-1d".to_string(), "unavailable".to_string())
    );
    let reply = server
        .admin("DescribeAvailabilityZones", &[("ZoneName.1", "verbose")])
        .await;
    let tree = items(&reply, "availabilityZoneInfo");
    let edge = tree
        .iter()
        .position(|i| i["zoneName"] == "|- edge-1")
        .unwrap()
        + 1;
    let state = &tree[edge]["zoneState"];
    assert!(
        state.starts_with("enabled XXX ") && state.ends_with("(00:01:30 ago)"),
        "{state}"
    );
    // Simulated hosts keep beating on their own (their heartbeat age stays small).
    let reply = server.admin("AdminDescribeHosts", &[]).await;
    let edge_host = items(&reply, "hostSet")
        .into_iter()
        .find(|h| h["hostName"] == "edge-1")
        .unwrap();
    assert_eq!(edge_host["alive"], "false");
    // Removing the zone's last host removes the zone.
    server
        .admin("AdminRemoveHost", &[("HostName", "edge-1")])
        .await;
    assert_eq!(zone_states(&server).await.len(), 3);
    let reply = server
        .admin("AdminRemoveHost", &[("HostName", "edge-1")])
        .await;
    assert_eq!(error_code(&reply), "InvalidHost.NotFound");
    let reply = server
        .admin(
            "AdminAddHost",
            &[
                ("HostName", "node-a1"),
                ("AvailabilityZone", "us-east-1a"),
                ("Vcpus", "1"),
                ("MemoryMib", "1"),
            ],
        )
        .await;
    assert_eq!(error_code(&reply), "InvalidHost.Duplicate");
    let reply = server
        .admin(
            "AdminAddHost",
            &[
                ("HostName", "x"),
                ("AvailabilityZone", "us-east-1a"),
                ("MemoryMib", "1"),
            ],
        )
        .await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "MissingParameter")
    );
    server.stop().await;
}

#[tokio::test]
async fn admin_actions_need_an_admin() {
    let (server, _dir) = server(StorageBackend::Memory).await;
    for action in [
        "AdminDescribeHosts",
        "AdminDisableHost",
        "AdminCreateAccessKey",
        "AdminDescribeAccessKeys",
    ] {
        let reply = server.user(action, &[("HostName", "node-a1")]).await;
        assert_eq!(
            (reply.status, error_code(&reply).as_str()),
            (403, "UnauthorizedOperation"),
            "{action}"
        );
    }
    assert_eq!(zone_states(&server).await[0].1, "available");
    server.stop().await;
}

#[tokio::test]
async fn access_keys_are_created_listed_and_deactivated() {
    let (server, _dir) = server(StorageBackend::Memory).await;
    let reply = server
        .admin(
            "AdminCreateAccessKey",
            &[("AccountId", "777788889999"), ("AccountName", "bob")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let key = ec2_gateway::client::text_of(&reply.body, "accessKeyId").unwrap();
    let secret = ec2_gateway::client::text_of(&reply.body, "secretAccessKey").unwrap();
    assert!(key.starts_with("AKIA") && key.len() == 20);
    assert_eq!(secret.len(), 40);
    let bob = credentials(&key, &secret);
    let reply = server.call(&bob, "DescribeRegions", &[]).await;
    assert_eq!(reply.status, 200);
    // Listing never shows secrets.
    let reply = server
        .admin("AdminDescribeAccessKeys", &[("AccountId", "777788889999")])
        .await;
    assert_eq!(
        column(&reply, "accessKeySet", "accessKeyId"),
        std::slice::from_ref(&key)
    );
    assert!(!reply.body.contains(&secret));
    let reply = server
        .admin("AdminDeactivateAccessKey", &[("AccessKeyId", &key)])
        .await;
    assert_eq!(reply.status, 200);
    let reply = server.call(&bob, "DescribeRegions", &[]).await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (401, "AuthFailure")
    );
    let reply = server.admin("AdminDescribeAccessKeys", &[]).await;
    let statuses: Vec<(String, String)> = items(&reply, "accessKeySet")
        .into_iter()
        .map(|k| (k["accessKeyId"].clone(), k["status"].clone()))
        .collect();
    assert!(statuses.contains(&(key.clone(), "Inactive".to_string())));
    // A new account needs a name; the last admin key cannot be deactivated.
    let reply = server
        .admin("AdminCreateAccessKey", &[("AccountId", "000011112222")])
        .await;
    assert_eq!(error_code(&reply), "MissingParameter");
    let reply = server
        .admin("AdminDeactivateAccessKey", &[("AccessKeyId", ADMIN_KEY)])
        .await;
    assert_eq!(error_code(&reply), "InvalidParameterValue");
    let reply = server
        .admin(
            "AdminDeactivateAccessKey",
            &[("AccessKeyId", "AKIANOSUCHKEY0000000")],
        )
        .await;
    assert_eq!(error_code(&reply), "InvalidAccessKeyId.NotFound");
    server.stop().await;
}

#[tokio::test]
async fn regions() {
    let (server, _dir) = server(StorageBackend::Memory).await;
    let reply = server
        .user("DescribeRegions", &[("AllRegions", "true")])
        .await;
    assert_eq!(
        column(&reply, "regionInfo", "regionName"),
        ["us-east-1", "us-west-2"]
    );
    // Without a configured endpoint, the region's endpoint is the bound address.
    assert_eq!(
        column(&reply, "regionInfo", "regionEndpoint")[0],
        server.endpoint.authority
    );
    let reply = server
        .user("DescribeRegions", &[("RegionName.1", "us-west-2")])
        .await;
    assert_eq!(
        column(&reply, "regionInfo", "regionEndpoint"),
        ["ec2.us-west-2.example:8773"]
    );
    let reply = server
        .user(
            "DescribeRegions",
            &[
                ("Filter.1.Name", "endpoint"),
                ("Filter.1.Value.1", "*example*"),
            ],
        )
        .await;
    assert_eq!(column(&reply, "regionInfo", "regionName"), ["us-west-2"]);
    let reply = server
        .user(
            "DescribeRegions",
            &[
                ("Filter.1.Name", "opt-in-status"),
                ("Filter.1.Value.1", "opted-in"),
            ],
        )
        .await;
    assert!(reply.body.contains("<regionInfo/>"));
    let reply = server
        .user("DescribeRegions", &[("RegionName.1", "mars-north-1")])
        .await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "InvalidParameterValue")
    );
    let reply = server
        .user(
            "DescribeRegions",
            &[("Filter.1.Name", "zone"), ("Filter.1.Value.1", "x")],
        )
        .await;
    assert_eq!(error_code(&reply), "InvalidFilter");
    server.stop().await;
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Sled);
    let server = TestServer::start(config.clone()).await;
    server
        .admin(
            "AdminAddHost",
            &[
                ("HostName", "late-1"),
                ("AvailabilityZone", "us-east-1e"),
                ("Vcpus", "4"),
                ("MemoryMib", "4096"),
            ],
        )
        .await;
    server
        .admin(
            "AdminDisableHost",
            &[("HostName", "node-c1"), ("Reason", "retired")],
        )
        .await;
    server
        .admin("AdminRemoveHost", &[("HostName", "node-a2")])
        .await;
    let reply = server
        .admin(
            "AdminCreateAccessKey",
            &[("AccountId", "777788889999"), ("AccountName", "bob")],
        )
        .await;
    let key = ec2_gateway::client::text_of(&reply.body, "accessKeyId").unwrap();
    let secret = ec2_gateway::client::text_of(&reply.body, "secretAccessKey").unwrap();
    let before = server.user("DescribeAvailabilityZones", &[]).await;
    server.stop().await;

    let server = TestServer::start(config).await;
    let after = server.user("DescribeAvailabilityZones", &[]).await;
    let summary = |reply: &ec2_gateway::client::Reply| -> Vec<(String, String, String)> {
        items(reply, "availabilityZoneInfo")
            .into_iter()
            .map(|z| {
                (
                    z["zoneName"].clone(),
                    z["zoneId"].clone(),
                    z["zoneState"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(summary(&before), summary(&after));
    assert_eq!(
        summary(&after),
        [
            ("us-east-1a".into(), "use1-az1".into(), "available".into()),
            ("us-east-1b".into(), "use1-az2".into(), "available".into()),
            ("us-east-1c".into(), "use1-az3".into(), "unavailable".into()),
            ("us-east-1e".into(), "use1-az4".into(), "available".into()),
        ]
    );
    // The configured host removed at runtime stays removed.
    let reply = server.admin("AdminDescribeHosts", &[]).await;
    assert_eq!(
        column(&reply, "hostSet", "hostName"),
        ["late-1", "node-a1", "node-b1", "node-c1"]
    );
    // The key created at runtime still signs.
    let reply = server
        .call(&credentials(&key, &secret), "DescribeRegions", &[])
        .await;
    assert_eq!(reply.status, 200);
    server.stop().await;
}
