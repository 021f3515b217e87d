//! Regression tests for the security review, server side: what an anonymous
//! client can hold (connections, buffered bytes, time), how an oversized body
//! is refused, and what a panicking handler does to the requests after it.

mod common;

use common::*;
use ec2_gateway::app::App;
use ec2_gateway::client::{self, Endpoint};
use ec2_gateway::clock::OffsetClock;
use ec2_gateway::config::{Config, StorageBackend};
use ec2_gateway::store::{
    Committed, Entry, Expectation, MemoryStore, Store, StoreCall, VersionedValue, WriteBatch,
    WriteOp,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server_with(change: impl FnOnce(&mut Config)) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"), StorageBackend::Memory);
    change(&mut config);
    (TestServer::start(config).await, dir)
}

/// A signed DescribeRegions as raw HTTP/1.1 bytes.
fn signed_request(endpoint: &Endpoint) -> Vec<u8> {
    let body = "Action=DescribeRegions&Version=2016-11-15";
    let headers = ec2_gateway::auth::signer::sign_v4_post(
        &user(),
        &endpoint.authority,
        "/",
        body,
        chrono::Utc::now(),
    );
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
        endpoint.authority,
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    request.into_bytes()
}

/// Reads one answer's status line and headers (and whatever body came with them).
async fn read_head(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    while !String::from_utf8_lossy(&answer).contains("</Response>")
        && !String::from_utf8_lossy(&answer).contains("Response>\n")
    {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
        }
        let text = String::from_utf8_lossy(&answer);
        if text.starts_with("HTTP/1.1 200") && text.contains("</DescribeRegionsResponse>") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Medium 6: one client address could hold every connection slot. Past its
/// share, its next connection gets one 503 in EC2's XML and is closed.
#[tokio::test]
async fn one_client_address_cannot_take_every_connection() {
    let (server, _dir) = server_with(|config| {
        config.limits.max_connections_per_client = 2;
        // The held connections must outlive the test's steps.
        config.limits.header_read_timeout_secs = 60;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&server.endpoint.authority)
            .await
            .unwrap();
        stream
            .write_all(&signed_request(&server.endpoint))
            .await
            .unwrap();
        let answer = read_head(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(stream);
    }
    let mut third = TcpStream::connect(&server.endpoint.authority)
        .await
        .unwrap();
    third
        .write_all(&signed_request(&server.endpoint))
        .await
        .unwrap();
    let answer = read_head(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("<Code>ServiceUnavailable</Code>"),
        "{answer}"
    );
    // A slot given back is a slot to use.
    drop(held.pop());
    let mut reply = None;
    for _ in 0..50 {
        let mut stream = TcpStream::connect(&server.endpoint.authority)
            .await
            .unwrap();
        stream
            .write_all(&signed_request(&server.endpoint))
            .await
            .unwrap();
        let answer = read_head(&mut stream).await;
        if answer.starts_with("HTTP/1.1 200") {
            reply = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reply.is_some(), "the released slot was never reused");
    server.stop().await;
}

/// Opens a connection that announces a 64 KiB form body and sends `sent`
/// bytes of it.
async fn body_of_64k(server: &TestServer, sent: usize) -> TcpStream {
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 65536\r\n\r\n",
        server.endpoint.authority
    );
    let mut stream = TcpStream::connect(&server.endpoint.authority)
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'a'; sent]).await.unwrap();
    stream
}

/// One client holds 60 KiB of an unfinished body; what does a second 64 KiB
/// body get, with these budgets?
async fn second_body_answer(
    total: u64,
    per_client: u64,
) -> (TestServer, tempfile::TempDir, TcpStream, String) {
    let (server, dir) = server_with(|config| {
        config.limits.max_body_bytes = 64 * 1024;
        config.limits.max_buffered_body_bytes = total;
        config.limits.max_buffered_body_bytes_per_client = per_client;
    })
    .await;
    let hog = body_of_64k(&server, 60 * 1024).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut second = body_of_64k(&server, 64 * 1024).await;
    let answer = read_head(&mut second).await;
    (server, dir, hog, answer)
}

/// Medium 6: unfinished bodies were all buffered (1 MiB each, about 1 GiB at
/// 1,024 connections). Bodies now share a budget, counted as bytes arrive:
/// past it, 503 (after the rest of the body is drained, so it is read).
#[tokio::test]
async fn unfinished_bodies_share_a_bounded_budget() {
    let (server, _dir, hog, answer) = second_body_answer(100 * 1024, 100 * 1024).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("<Code>ServiceUnavailable</Code>"),
        "{answer}"
    );
    // The first still holds its share; a small request still fits.
    let reply = server.user("DescribeRegions", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    drop(hog);
    server.stop().await;
}

/// Medium 6: one client address may hold only its share of the budget
/// (here the whole budget would have room).
#[tokio::test]
async fn one_client_address_holds_only_its_share_of_the_budget() {
    let (server, _dir, hog, answer) = second_body_answer(1024 * 1024, 100 * 1024).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    drop(hog);
    server.stop().await;
}

/// Medium 6: a body trickled a byte at a time held its connection (and its
/// buffer) for the whole body timeout. Past a short grace, a body must keep
/// a minimum rate or the request ends with 408.
#[tokio::test]
async fn a_trickled_body_is_cut_off_at_the_minimum_rate() {
    let (server, _dir) = server_with(|config| {
        config.limits.body_read_timeout_secs = 120;
        config.limits.min_body_bytes_per_sec = 1000;
    })
    .await;
    let mut stream = TcpStream::connect(&server.endpoint.authority)
        .await
        .unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n",
        server.endpoint.authority
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let trickle = async {
        loop {
            if stream.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut probe = [0u8; 1];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut probe)).await
            {
                if n > 0 {
                    return;
                }
            }
        }
    };
    // Far less than the 120 s body timeout: the rate is what ends it.
    tokio::time::timeout(Duration::from_secs(20), trickle)
        .await
        .expect("the server never cut the trickle off");
    let answer = read_head(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    server.stop().await;
}

/// Low: a client sending a body over the limit sometimes got a reset
/// instead of the 413, because the connection closed while it was still
/// sending. The rest of the body is now drained first.
#[tokio::test]
async fn an_oversized_body_gets_its_413_read() {
    // 8 MiB does not fit in loopback socket buffers: before the fix, the
    // server closed while the client was still writing.
    let (server, _dir) = server_with(|config| config.limits.max_body_bytes = 1024 * 1024).await;
    for _ in 0..3 {
        let size = 8 * 1024 * 1024;
        let mut request = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {size}\r\n\r\n",
            server.endpoint.authority
        )
        .into_bytes();
        request.extend(std::iter::repeat_n(b'a', size));
        let mut stream = TcpStream::connect(&server.endpoint.authority)
            .await
            .unwrap();
        stream
            .write_all(&request)
            .await
            .expect("the whole body could be sent");
        let answer = read_head(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("<Code>RequestEntityTooLarge</Code>"));
    }
    server.stop().await;
}

/// A memory store whose writes panic when they touch a key containing
/// `panic`: a stand-in for a bug deep inside a handler.
struct PanickingStore(MemoryStore);

impl Store for PanickingStore {
    fn scan<'a>(
        &'a self,
        tree: &'a str,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
        limit: usize,
    ) -> StoreCall<'a, Vec<Entry>> {
        self.0.scan(tree, prefix, after, limit)
    }

    fn get_versioned<'a>(
        &'a self,
        tree: &'a str,
        key: &'a [u8],
    ) -> StoreCall<'a, Option<VersionedValue>> {
        self.0.get_versioned(tree, key)
    }

    fn commit<'a>(
        &'a self,
        expectations: &'a [Expectation],
        batch: &'a WriteBatch,
    ) -> StoreCall<'a, Committed> {
        for op in &batch.ops {
            let key = match op {
                WriteOp::Put { key, .. } | WriteOp::Delete { key, .. } => key,
            };
            if String::from_utf8_lossy(key).contains("panic") {
                panic!(
                    "injected bug while writing {}",
                    String::from_utf8_lossy(key)
                );
            }
        }
        self.0.commit(expectations, batch)
    }

    fn flush(&self) -> StoreCall<'_, ()> {
        self.0.flush()
    }
}

/// A panic in one handler answers 500 `InternalError` for that request
/// alone: no lock left poisoned, the next requests (of the same account,
/// through the same per-account lock) are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_only_its_own_request() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Memory);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = App::open_with_store(
        config.bound_to(address),
        Arc::new(PanickingStore(MemoryStore::new())),
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
    let call = |name: &'static str| {
        let endpoint = endpoint.clone();
        async move {
            client::call(&endpoint, &user(), "CreateKeyPair", &[("KeyName", name)])
                .await
                .unwrap()
        }
    };
    let reply = call("panic-now").await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_error_document(&reply.body);
    assert_eq!(error_code(&reply), "InternalError");
    for name in ["after-1", "after-2"] {
        let reply = call(name).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let _ = stop.send(());
    serving.await.unwrap();
}
