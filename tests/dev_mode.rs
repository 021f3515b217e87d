//! Development mode (issue 10): any access key, accounts from keys, other
//! regions on first use, loopback only. For suites written for moto or
//! LocalStack.

mod common;

use common::*;
use ec2_gateway::app::App;
use ec2_gateway::client::{self, Reply};
use ec2_gateway::clock::OffsetClock;
use ec2_gateway::config::{Config, StorageBackend};
use ec2_gateway::store::MemoryStore;
use std::sync::Arc;

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

async fn dev_server(storage: StorageBackend) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"), storage);
    config.dev_mode = true;
    (TestServer::start(config).await, dir)
}

fn key(
    access_key_id: &str,
    secret: &str,
    region: &str,
) -> ec2_gateway::auth::signer::SigningCredentials {
    let mut credentials = credentials(access_key_id, secret);
    credentials.region = region.into();
    credentials
}

async fn launch(server: &TestServer, who: &ec2_gateway::auth::signer::SigningCredentials) -> Reply {
    server
        .call(
            who,
            "RunInstances",
            &[("ImageId", IMAGE), ("MinCount", "1"), ("MaxCount", "1")],
        )
        .await
}

#[tokio::test]
async fn any_key_is_accepted_and_names_its_account() {
    let (server, _dir) = dev_server(StorageBackend::Memory).await;
    // moto's and LocalStack's dummy keys, any secret.
    let test = key("test", "test", "us-east-1");
    let reply = launch(&server, &test).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        client::text_of(&reply.body, "ownerId").unwrap(),
        "123456789012"
    );
    let id = client::text_of(&reply.body, "instanceId").unwrap();
    // Another dummy key (and secret) is the same default account.
    let foobar = key("FOOBARKEY", "FOOBARSECRET", "us-east-1");
    let seen = server
        .call(&foobar, "DescribeInstances", &[("InstanceId.1", &id)])
        .await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    // A 12-digit key is its own account, created on first use with its
    // default VPC, and sees nothing of the default account's.
    let own = key("000011112222", "whatever", "us-east-1");
    let other = server
        .call(&own, "DescribeInstances", &[("InstanceId.1", &id)])
        .await;
    assert_eq!(error_code(&other), "InvalidInstanceID.NotFound");
    let vpcs = server.call(&own, "DescribeVpcs", &[]).await;
    assert_eq!(column(&vpcs, "vpcSet", "ownerId"), ["000011112222"]);
    let launched = launch(&server, &own).await;
    assert_eq!(
        client::text_of(&launched.body, "ownerId").unwrap(),
        "000011112222"
    );
    server.stop().await;
}

#[tokio::test]
async fn another_region_is_created_on_first_use_with_its_own_zones() {
    let (server, _dir) = dev_server(StorageBackend::Sled).await;
    let west = key("test", "test", "us-west-2");
    let zones = server.call(&west, "DescribeAvailabilityZones", &[]).await;
    assert_eq!(zones.status, 200, "{}", zones.body);
    assert_eq!(
        column(&zones, "availabilityZoneInfo", "zoneName"),
        ["us-west-2a", "us-west-2b", "us-west-2c"]
    );
    assert_eq!(
        column(&zones, "availabilityZoneInfo", "regionName"),
        ["us-west-2", "us-west-2", "us-west-2"]
    );
    let launched = launch(&server, &west).await;
    assert_eq!(launched.status, 200, "{}", launched.body);
    let zone = client::text_of(&launched.body, "availabilityZone").unwrap();
    assert!(zone.starts_with("us-west-2"), "{zone}");
    let id = client::text_of(&launched.body, "instanceId").unwrap();
    // The configured region does not see it; its own zones are unchanged.
    let east = key("test", "test", "us-east-1");
    let elsewhere = server
        .call(&east, "DescribeInstances", &[("InstanceId.1", &id)])
        .await;
    assert_eq!(error_code(&elsewhere), "InvalidInstanceID.NotFound");
    let east_zones = server.call(&east, "DescribeAvailabilityZones", &[]).await;
    assert_eq!(
        column(&east_zones, "availabilityZoneInfo", "zoneName"),
        ["us-east-1a", "us-east-1b", "us-east-1c"]
    );
    // Guessed scopes (boto 2's `0`, euca2ools' `undefined-<pid>`) are not
    // regions: they go to the configured one.
    for guessed in ["0", "undefined-4242"] {
        let reply = server
            .call(
                &key("test", "test", guessed),
                "DescribeAvailabilityZones",
                &[],
            )
            .await;
        assert_eq!(
            column(&reply, "availabilityZoneInfo", "zoneName"),
            ["us-east-1a", "us-east-1b", "us-east-1c"],
            "{guessed}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn outside_development_mode_the_same_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let reply = server
        .call(&key("test", "test", "us-east-1"), "DescribeRegions", &[])
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(error_code(&reply), "AuthFailure");
    // And another region's scope does not create anything.
    let reply = server
        .call(
            &key(USER_KEY, USER_SECRET, "us-west-2"),
            "DescribeAvailabilityZones",
            &[],
        )
        .await;
    assert_eq!(
        column(&reply, "availabilityZoneInfo", "zoneName"),
        ["us-east-1a", "us-east-1b", "us-east-1c"]
    );
    server.stop().await;
}

fn dev_config(listen: &str, allow_remote: bool) -> (Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"), StorageBackend::Memory);
    config.dev_mode = true;
    config.dev_allow_remote = allow_remote;
    config.listen = listen.parse().unwrap();
    (config, dir)
}

#[tokio::test]
async fn development_mode_stays_on_loopback_unless_told() {
    let open = |config: Config| async move {
        App::open_with_store(
            config,
            Arc::new(MemoryStore::new()),
            Arc::new(OffsetClock::new()),
        )
        .await
        .map(|_| ())
    };
    let (config, _a) = dev_config("0.0.0.0:8773", false);
    let refused = open(config).await.unwrap_err();
    assert!(refused.contains("loopback"), "{refused}");
    let (config, _b) = dev_config("[::]:8773", false);
    assert!(open(config).await.is_err());
    let (config, _c) = dev_config("127.0.0.1:8773", false);
    assert!(open(config).await.is_ok());
    let (config, _d) = dev_config("0.0.0.0:8773", true);
    assert!(open(config).await.is_ok(), "the explicit flag");
}

/// Test suites hammer an emulator: development mode does not throttle.
#[tokio::test]
async fn development_mode_does_not_throttle() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"), StorageBackend::Memory);
    config.dev_mode = true;
    config.rate_limits.mutate_burst = 1;
    config.rate_limits.mutate_per_second = 0;
    let server = TestServer::start(config).await;
    for n in 0..5 {
        let reply = server
            .call(
                &key("test", "test", "us-east-1"),
                "CreateKeyPair",
                &[("KeyName", &format!("k{n}"))],
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    server.stop().await;
}

/// Real keys keep their rights in development mode (the admin CLI, external
/// hosts' heartbeats); SigV2 with a dummy key works too; DescribeRegions
/// lists the regions made on first use.
#[tokio::test]
async fn real_keys_sigv2_and_the_region_list() {
    let (server, _dir) = dev_server(StorageBackend::Memory).await;
    let hosts = server.admin("AdminDescribeHosts", &[]).await;
    assert_eq!(hosts.status, 200, "{}", hosts.body);
    let mut params = vec![
        ("Action".to_string(), "DescribeKeyPairs".to_string()),
        ("Version".to_string(), "2014-10-01".to_string()),
    ];
    ec2_gateway::auth::signer::sign_v2(
        &key("FOOBARKEY", "FOOBARSECRET", "us-east-1"),
        "GET",
        &server.endpoint.authority,
        "/",
        &mut params,
        ec2_gateway::auth::sigv2::SignatureMethod::HmacSha256,
        chrono::Utc::now(),
    );
    let query = ec2_gateway::auth::signer::form_body(&params);
    let reply = client::send(
        &server.endpoint,
        "GET",
        &format!("/?{query}"),
        &[],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let west = key("test", "test", "us-west-2");
    server.call(&west, "DescribeAvailabilityZones", &[]).await;
    let east = key("test", "test", "us-east-1");
    let regions = server.call(&east, "DescribeRegions", &[]).await;
    let names = column(&regions, "regionInfo", "regionName");
    assert!(names.contains(&"us-west-2".to_string()), "{names:?}");
    assert!(names.contains(&"us-east-1".to_string()), "{names:?}");
    let from_west = server
        .call(&west, "DescribeRegions", &[("RegionName.1", "us-east-1")])
        .await;
    assert_eq!(from_west.status, 200, "{}", from_west.body);
    server.stop().await;
}
