//! A listing longer than a page is streamed (`protocol::stream`): sent in
//! chunks while it is rendered, without a length, and with exactly the
//! bytes of the whole rendering. Reservations that straddle the pages it is
//! read in keep one item each. Short listings and paged ones keep a
//! `Content-Length`.

mod common;

use common::{test_config, TestServer};
use ec2_gateway::config::StorageBackend;

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

/// Every `<instanceId>` in `body`, each once, in order.
fn instance_ids(body: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for part in body.split("<instanceId>").skip(1) {
        let id = part.split('<').next().unwrap().to_string();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// `body` with its request id blanked (it differs between two answers).
fn without_request_id(body: &str) -> String {
    let start = body.find("<requestId>").unwrap() + "<requestId>".len();
    let end = body.find("</requestId>").unwrap();
    format!("{}{}", &body[..start], &body[end..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_listing_is_streamed_with_the_bytes_of_the_whole_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), StorageBackend::Memory);
    config.quotas.max_instances = 1_000;
    config.quotas.max_vcpus = 100_000;
    for host in &mut config.hosts {
        host.vcpus = 4_096;
        host.memory_mib = 1 << 24;
    }
    let server = TestServer::start(config).await;
    // Six reservations of 110: the 256-instance pages end inside the
    // third and the fifth.
    for _ in 0..6 {
        let reply = server
            .user(
                "RunInstances",
                &[
                    ("ImageId", IMAGE),
                    ("MinCount", "110"),
                    ("MaxCount", "110"),
                    ("InstanceType", "t2.micro"),
                ],
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    let streamed = server.user("DescribeInstances", &[]).await;
    assert_eq!(streamed.status, 200);
    assert!(
        streamed.headers.get("content-length").is_none(),
        "a streamed answer has no length"
    );
    assert_eq!(
        streamed
            .headers
            .get("transfer-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("chunked")
    );
    let ids = instance_ids(&streamed.body);
    assert_eq!(ids.len(), 660);
    assert_eq!(streamed.body.matches("<reservationId>").count(), 6);

    // The same instances named one by one are rendered whole.
    let named: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| (format!("InstanceId.{}", n + 1), id.clone()))
        .collect();
    let named: Vec<(&str, &str)> = named
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let whole = server.user("DescribeInstances", &named).await;
    assert_eq!(whole.status, 200);
    assert!(whole.headers.get("content-length").is_some());
    assert_eq!(
        without_request_id(&streamed.body),
        without_request_id(&whole.body)
    );

    // Paged and short listings are rendered whole.
    let page = server
        .user("DescribeInstances", &[("MaxResults", "300")])
        .await;
    assert!(page.headers.get("content-length").is_some());
    assert_eq!(instance_ids(&page.body).len(), 300);
    let filtered = server
        .user(
            "DescribeInstances",
            &[
                ("Filter.1.Name", "instance-id"),
                ("Filter.1.Value.1", ids[0].as_str()),
            ],
        )
        .await;
    assert!(filtered.headers.get("content-length").is_some());
    assert_eq!(instance_ids(&filtered.body), vec![ids[0].clone()]);
    server.stop().await;
}
