//! Server limits: slow clients, idle connections, the connection cap and
//! graceful shutdown. The test configuration sets 2-second header and body
//! timeouts.

mod common;

use common::*;
use ec2_gateway::auth::signer::{form_body, sign_v4_post};
use ec2_gateway::config::StorageBackend;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server_with(
    change: impl FnOnce(&mut ec2_gateway::config::Config),
) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"), StorageBackend::Memory);
    change(&mut config);
    (TestServer::start(config).await, dir)
}

/// Reads until the server closes the connection (or 10 s pass).
async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

fn signed_request(authority: &str) -> (String, Vec<u8>) {
    let body = form_body(&[
        ("Action".into(), "DescribeRegions".into()),
        ("Version".into(), "2016-11-15".into()),
    ]);
    let mut head = format!(
        "POST / HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in sign_v4_post(&user(), authority, "/", &body, chrono::Utc::now()) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    (head, body.into_bytes())
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let (server, _dir) = server_with(|_| {}).await;
    let mut stream = TcpStream::connect(&server.endpoint.authority)
        .await
        .unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (_, waited) = read_until_closed(&mut stream).await;
    assert!(
        waited < Duration::from_secs(8),
        "connection held for {waited:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let (server, _dir) = server_with(|_| {}).await;
    let mut stream = TcpStream::connect(&server.endpoint.authority)
        .await
        .unwrap();
    let (head, body) = signed_request(&server.endpoint.authority);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let (answer, waited) = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        waited < Duration::from_secs(8),
        "idle connection held for {waited:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_never_arrives_times_out_with_ec2_xml() {
    let (server, _dir) = server_with(|_| {}).await;
    let mut stream = TcpStream::connect(&server.endpoint.authority)
        .await
        .unwrap();
    let (head, body) = signed_request(&server.endpoint.authority);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..5]).await.unwrap();
    let (answer, waited) = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    assert!(waited < Duration::from_secs(8));
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_their_turn() {
    let (server, _dir) = server_with(|config| config.limits.max_connections = 1).await;
    let mut first = TcpStream::connect(&server.endpoint.authority)
        .await
        .unwrap();
    first
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The second connection is accepted by the kernel but not served while
    // the first holds the only slot.
    let mut second = TcpStream::connect(&server.endpoint.authority)
        .await
        .unwrap();
    let (head, body) = signed_request(&server.endpoint.authority);
    second.write_all(head.as_bytes()).await.unwrap();
    second.write_all(&body).await.unwrap();
    let mut buffer = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buffer)).await;
    assert!(early.is_err(), "served beyond the connection cap");
    drop(first);
    let (answer, _) = read_until_closed(&mut second).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let (mut server, _dir) = server_with(|_| {}).await;
    let authority = server.endpoint.authority.clone();
    let mut stream = TcpStream::connect(&authority).await.unwrap();
    let (head, body) = signed_request(&authority);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // New connections are no longer accepted...
    assert!(
        TcpStream::connect(&authority).await.is_err(),
        "still accepting after shutdown"
    );
    // ...but the request in flight completes.
    stream.write_all(&body[5..]).await.unwrap();
    let (answer, _) = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("<DescribeRegionsResponse"), "{answer}");
    server.wait_stopped().await;
}
