//! A listing longer than a page is streamed (`protocol::stream`): sent in
//! chunks while it is rendered, without a length, and with exactly the
//! bytes of the whole rendering. Reservations that straddle the pages it is
//! read in keep one item each. Short listings and paged ones keep a
//! `Content-Length`.

mod common;

use common::{test_config, without_request_id, TestServer};
use ec2_gateway::config::StorageBackend;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// Launches one reservation of 110 instances in the user account.
async fn launch_reservation(server: &TestServer) {
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

/// A gateway whose user account holds `reservations` launches of 110.
async fn gateway_with(
    reservations: usize,
    write_stall_secs: u64,
) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), StorageBackend::Memory);
    config.quotas.max_instances = 10_000;
    config.quotas.max_vcpus = 100_000;
    config.limits.write_stall_timeout_secs = write_stall_secs;
    config.rate_limits.enabled = false;
    for host in &mut config.hosts {
        host.vcpus = 4_096;
        host.memory_mib = 1 << 24;
    }
    let server = TestServer::start(config).await;
    for _ in 0..reservations {
        launch_reservation(&server).await;
    }
    (server, dir)
}

/// Sends a signed DescribeInstances with `params` on a connection whose
/// receive buffer is small, reads the status line, and then stops reading.
async fn stalled_listing(server: &TestServer, params: &[(&str, &str)]) -> tokio::net::TcpStream {
    let mut all = vec![
        ("Action".to_string(), "DescribeInstances".to_string()),
        ("Version".to_string(), "2016-11-15".to_string()),
    ];
    all.extend(params.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let body = ec2_gateway::auth::signer::form_body(&all);
    let authority = &server.endpoint.authority;
    let headers = ec2_gateway::auth::signer::sign_v4_post(
        &common::user(),
        authority,
        "/",
        &body,
        chrono::Utc::now(),
    );
    let mut request = format!("POST / HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(authority.parse().unwrap()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    stream
}

/// Clients that stop reading hold no filtered listing's turn while they
/// stall (other filtered listings go on at once), and lose their
/// connection after `limits.write_stall_timeout_secs`: what they read then
/// ends without the closing chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_nothing_and_is_cut() {
    let (server, _dir) = gateway_with(20, 2).await;
    let filter = [
        ("Filter.1.Name", "instance-type"),
        ("Filter.1.Value.1", "t2.micro"),
    ];
    // More stalled filtered listings than there are turns (one per core).
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(stalled_listing(&server, &filter).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let reply = server
        .user(
            "DescribeInstances",
            &[
                ("Filter.1.Name", "instance-state-name"),
                ("Filter.1.Value.1", "stopped"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "a filtered listing waited {:?} behind stalled ones",
        started.elapsed()
    );
    // Past the stall limit the gateway has closed them: reading now
    // drains what was sent and ends, without the closing zero chunk.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for mut stream in stalled {
        let mut rest = Vec::new();
        let outcome =
            tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest)).await;
        assert!(outcome.is_ok(), "the connection was still open");
        assert!(
            !rest.ends_with(b"0\r\n\r\n"),
            "a stalled listing was completed ({} bytes)",
            rest.len()
        );
    }
    server.stop().await;
}

/// The body of a chunked answer whose headers start `raw`.
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut rest = &raw[start..];
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// A streamed listing ends where it began: instances launched while its
/// client is still reading are not added to it (the next listing has
/// them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_listing_ends_where_it_began() {
    let (server, _dir) = gateway_with(20, 30).await;
    let mut stream = stalled_listing(&server, &[]).await;
    // The reader has taken the status line only; the renderer waits.
    launch_reservation(&server).await;
    let mut raw = b"HTTP/1.1 200".to_vec();
    let mut buffer = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !raw.ends_with(b"\r\n0\r\n\r\n") {
        assert!(Instant::now() < deadline, "the listing never ended");
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("the gateway kept sending")
            .unwrap();
        assert!(n > 0, "the connection closed before the end");
        raw.extend_from_slice(&buffer[..n]);
    }
    let body = String::from_utf8(dechunk(&raw)).unwrap();
    assert_eq!(instance_ids(&body).len(), 2_200);
    assert!(body.ends_with("</DescribeInstancesResponse>\n"));
    let after = server.user("DescribeInstances", &[]).await;
    assert_eq!(instance_ids(&after.body).len(), 2_310);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_listing_is_streamed_with_the_bytes_of_the_whole_rendering() {
    // Six reservations of 110: the 256-instance pages end inside the
    // third and the fifth.
    let (server, _dir) = gateway_with(6, 30).await;

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
    let whole = server.describe_by_id(&ids).await;
    assert_eq!(whole.status, 200);
    assert!(whole.headers.get("content-length").is_some());
    assert_eq!(
        without_request_id(&streamed.body),
        without_request_id(&whole.body)
    );
    // Listed again, its items are the ones kept rendered with the
    // listing index: the same bytes.
    let again = server.user("DescribeInstances", &[]).await;
    assert!(again.headers.get("content-length").is_none());
    assert_eq!(
        without_request_id(&again.body),
        without_request_id(&whole.body)
    );
    // Filtered (every instance matches), it is streamed the same.
    let filtered_all = server
        .user(
            "DescribeInstances",
            &[
                ("Filter.1.Name", "instance-type"),
                ("Filter.1.Value.1", "t2.micro"),
            ],
        )
        .await;
    assert!(filtered_all.headers.get("content-length").is_none());
    assert_eq!(
        without_request_id(&filtered_all.body),
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
