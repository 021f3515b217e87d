//! The whole gateway over a store whose every call waits, as a network
//! store's (etcd's) does: signatures are checked with keys the directory
//! had to wait for, launches and listings take the path where an attempt
//! runs again with the answers it waited for, and real signed requests get
//! the same answers as on memory or sled.

mod common;

use common::remote::RemoteShaped;
use common::*;
use ec2_gateway::app::App;
use ec2_gateway::client::{self, Endpoint};
use ec2_gateway::clock::OffsetClock;
use ec2_gateway::config::StorageBackend;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_a_waiting_store_answers_as_on_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Memory);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let store = Arc::new(RemoteShaped::new());
    let app = App::open_with_store(
        config.bound_to(address),
        store.clone(),
        Arc::new(OffsetClock::new()),
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    let endpoint = Endpoint {
        authority: address.to_string(),
        path: "/".into(),
    };
    let waited_before = store.waited_calls();

    let zones = client::call(&endpoint, &user(), "DescribeAvailabilityZones", &[])
        .await
        .unwrap();
    assert_eq!(zones.status, 200, "{}", zones.body);
    assert_eq!(
        column(&zones, "availabilityZoneInfo", "zoneName"),
        ["us-east-1a", "us-east-1b", "us-east-1c"]
    );

    let run = |token: &'static str| {
        let endpoint = endpoint.clone();
        async move {
            client::call(
                &endpoint,
                &user(),
                "RunInstances",
                &[
                    ("ImageId", "ami-0b1c2d3e4f5a6b7c8"),
                    ("InstanceType", "t3.micro"),
                    ("MinCount", "2"),
                    ("MaxCount", "2"),
                    ("ClientToken", token),
                ],
            )
            .await
            .unwrap()
        }
    };
    let first = run("remote-token").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let ids = column(&first, "instancesSet", "instanceId");
    assert_eq!(ids.len(), 2);
    let again = run("remote-token").await;
    assert_eq!(
        column(&again, "instancesSet", "instanceId"),
        ids,
        "one reservation per ClientToken"
    );

    let listed = client::call(&endpoint, &user(), "DescribeInstances", &[])
        .await
        .unwrap();
    assert_eq!(listed.status, 200, "{}", listed.body);
    let mut listed_ids = column(&listed, "instancesSet", "instanceId");
    listed_ids.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed_ids, expected);

    // A wrong secret is still refused after the key had to be waited for.
    let forged = client::call(
        &endpoint,
        &credentials(USER_KEY, "not-the-secret-of-this-key-at-all-0000000"),
        "DescribeInstances",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(error_code(&forged), "SignatureDoesNotMatch");

    // A new account's key: its id is drawn once, whatever the reruns.
    let created = client::call(
        &endpoint,
        &admin(),
        "AdminCreateAccessKey",
        &[("AccountId", "777788889999"), ("AccountName", "bob")],
    )
    .await
    .unwrap();
    assert_eq!(created.status, 200, "{}", created.body);
    let key = client::text_of(&created.body, "accessKeyId").unwrap();
    let secret = client::text_of(&created.body, "secretAccessKey").unwrap();
    let bob = client::call(
        &endpoint,
        &credentials(&key, &secret),
        "DescribeInstances",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(bob.status, 200, "{}", bob.body);
    assert!(column(&bob, "reservationSet", "reservationId").is_empty());

    assert!(
        store.waited_calls() > waited_before + 10,
        "the requests waited for the store"
    );
    let _ = stop.send(());
    serving.await.unwrap();
}
