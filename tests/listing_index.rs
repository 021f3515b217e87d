//! DescribeInstances listings are served from an index kept between calls
//! (`compute::instance_index`), and instances asked for by id from a book
//! of their own (`compute::polled_instances`), both with items kept
//! rendered: after every kind of change to an instance or to what its
//! item shows (tags, state, an Elastic IP, an interface or a volume
//! attached and detached, a termination, a new launch), a listing of
//! everything and a listing by id must both show it, byte for byte the
//! same. Each check also asserts the change itself, so two kept items
//! stale in the same way fail too.
//! (Every listing is taken once the lifecycle has nothing left to do, so
//! that the answers compared are of one state.)

mod common;

use common::{test_config, wait_for, without_request_id, TestServer};
use ec2_gateway::client::text_of;
use ec2_gateway::config::StorageBackend;

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

fn ok(reply: &ec2_gateway::client::Reply) {
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Lists everything twice (the second from what the first kept) and by
/// id (kept apart), asserts the three are the same bytes, and returns the
/// listing.
async fn listing(server: &TestServer, ids: &[String]) -> String {
    let first = server.user("DescribeInstances", &[]).await;
    ok(&first);
    let again = server.user("DescribeInstances", &[]).await;
    ok(&again);
    let by_id = server.describe_by_id(ids).await;
    ok(&by_id);
    let first = without_request_id(&first.body);
    assert_eq!(first, without_request_id(&again.body));
    assert_eq!(first, without_request_id(&by_id.body));
    first
}

/// The `<item>` of instance `id` in a listing.
fn item_of<'a>(listing: &'a str, id: &str) -> &'a str {
    let start = listing
        .find(&format!("<instanceId>{id}</instanceId>"))
        .unwrap_or_else(|| panic!("{id} not listed"));
    let end = listing[start..]
        .find("<platformDetails>")
        .map_or(listing.len(), |end| start + end);
    &listing[start..end]
}

async fn launch(server: &TestServer, count: &str) -> Vec<String> {
    let reply = server
        .user(
            "RunInstances",
            &[
                ("ImageId", IMAGE),
                ("MinCount", count),
                ("MaxCount", count),
                ("InstanceType", "t2.micro"),
            ],
        )
        .await;
    ok(&reply);
    reply
        .body
        .split("<instanceId>")
        .skip(1)
        .map(|part| part.split('<').next().unwrap().to_string())
        .collect()
}

async fn follows_every_change(storage: StorageBackend) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(&dir.path().join("data"), storage)).await;
    let mut ids = launch(&server, "3").await;
    ids.extend(launch(&server, "1").await);
    for id in &ids {
        wait_for(&server, id, "running").await;
    }
    let before = listing(&server, &ids).await;
    assert!(!item_of(&before, &ids[0]).contains("<key>team</key>"));

    // Tags.
    ok(&server
        .user(
            "CreateTags",
            &[
                ("ResourceId.1", &ids[0]),
                ("Tag.1.Key", "team"),
                ("Tag.1.Value", "blue"),
            ],
        )
        .await);
    let tagged = listing(&server, &ids).await;
    assert!(item_of(&tagged, &ids[0]).contains("<value>blue</value>"));
    assert_eq!(item_of(&tagged, &ids[1]), item_of(&before, &ids[1]));

    // State.
    ok(&server
        .user("StopInstances", &[("InstanceId.1", &ids[1])])
        .await);
    wait_for(&server, &ids[1], "stopped").await;
    let stopped = listing(&server, &ids).await;
    assert!(item_of(&stopped, &ids[1]).contains("<name>stopped</name>"));

    // An Elastic IP on it (another record), then off again.
    let allocation = server.user("AllocateAddress", &[("Domain", "vpc")]).await;
    ok(&allocation);
    let public_ip = text_of(&allocation.body, "publicIp").unwrap();
    let allocation = text_of(&allocation.body, "allocationId").unwrap();
    let associated = server
        .user(
            "AssociateAddress",
            &[("AllocationId", &allocation), ("InstanceId", &ids[2])],
        )
        .await;
    ok(&associated);
    let with_ip = listing(&server, &ids).await;
    assert!(item_of(&with_ip, &ids[2]).contains(&format!("<ipAddress>{public_ip}</ipAddress>")));
    let association = text_of(&associated.body, "associationId").unwrap();
    ok(&server
        .user("DisassociateAddress", &[("AssociationId", &association)])
        .await);
    let without_ip = listing(&server, &ids).await;
    assert!(!item_of(&without_ip, &ids[2]).contains(&public_ip));

    // A second interface attached (another record).
    let subnet = text_of(item_of(&before, &ids[3]), "subnetId").unwrap();
    let interface = server
        .user("CreateNetworkInterface", &[("SubnetId", &subnet)])
        .await;
    ok(&interface);
    let interface = text_of(&interface.body, "networkInterfaceId").unwrap();
    let attachment = server
        .user(
            "AttachNetworkInterface",
            &[
                ("NetworkInterfaceId", &interface),
                ("InstanceId", &ids[3]),
                ("DeviceIndex", "1"),
            ],
        )
        .await;
    ok(&attachment);
    let attached = listing(&server, &ids).await;
    assert!(item_of(&attached, &ids[3]).contains(&interface));
    assert!(!item_of(&before, &ids[3]).contains(&interface));
    // ... and detached again.
    let attachment = text_of(&attachment.body, "attachmentId").unwrap();
    ok(&server
        .user("DetachNetworkInterface", &[("AttachmentId", &attachment)])
        .await);
    let detached = listing(&server, &ids).await;
    assert!(!item_of(&detached, &ids[3]).contains(&interface));

    // A data volume attached (another record, and the instance's), then
    // detached.
    let zone = text_of(item_of(&before, &ids[3]), "availabilityZone").unwrap();
    let volume = server
        .user(
            "CreateVolume",
            &[("AvailabilityZone", &zone), ("Size", "1")],
        )
        .await;
    ok(&volume);
    let volume = text_of(&volume.body, "volumeId").unwrap();
    let attach = [
        ("VolumeId", volume.as_str()),
        ("InstanceId", ids[3].as_str()),
        ("Device", "/dev/sdf"),
    ];
    ok(&server.user("AttachVolume", &attach).await);
    let with_volume = listing(&server, &ids).await;
    assert!(item_of(&with_volume, &ids[3]).contains(&volume));
    ok(&server.user("DetachVolume", &[("VolumeId", &volume)]).await);
    let without_volume = listing(&server, &ids).await;
    assert!(!item_of(&without_volume, &ids[3]).contains(&volume));

    // A termination, and a new launch.
    ok(&server
        .user("TerminateInstances", &[("InstanceId.1", &ids[0])])
        .await);
    wait_for(&server, &ids[0], "terminated").await;
    let terminated = listing(&server, &ids).await;
    assert!(item_of(&terminated, &ids[0]).contains("<name>terminated</name>"));
    let newer = launch(&server, "1").await;
    ids.extend(newer.iter().cloned());
    wait_for(&server, &newer[0], "running").await;
    let grown = listing(&server, &ids).await;
    assert!(grown.contains(&format!("<instanceId>{}</instanceId>", newer[0])));

    // Pages come from the same index: they add up to the whole listing.
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = vec![("MaxResults", "5".to_string())];
        if let Some(token) = &token {
            params.push(("NextToken", token.clone()));
        }
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = server.user("DescribeInstances", &params).await;
        ok(&page);
        paged.extend(
            page.body
                .split("<instanceId>")
                .skip(1)
                .map(|part| part.split('<').next().unwrap().to_string()),
        );
        token = text_of(&page.body, "nextToken");
        if token.is_none() {
            break;
        }
    }
    assert_eq!(paged, ids);
    server.stop().await;
}

#[tokio::test]
async fn a_kept_listing_follows_every_change_in_memory() {
    follows_every_change(StorageBackend::Memory).await;
}

#[tokio::test]
async fn a_kept_listing_follows_every_change_on_sled() {
    follows_every_change(StorageBackend::Sled).await;
}
