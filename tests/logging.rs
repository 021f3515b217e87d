//! The request log: one line per request with its id, action, account and
//! status, and never a secret, even at trace level.

mod common;

use common::*;
use ec2_gateway::config::StorageBackend;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Captures what is logged at `level` and above on this thread while the
/// guard lives (the tests run on a current-thread runtime, so every task of
/// the server logs here).
fn capture(level: tracing::Level) -> (Buffer, tracing::subscriber::DefaultGuard) {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buffer.clone())
        .with_ansi(false)
        .with_max_level(level)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (buffer, guard)
}

// A current-thread runtime: every task of the server logs through the
// subscriber installed on this thread.
#[tokio::test(flavor = "current_thread")]
async fn one_line_per_request_and_no_secrets() {
    let (buffer, _guard) = capture(tracing::Level::TRACE);

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let ok = server
        .user("DescribeAvailabilityZones", &[("Extra", "ignored")])
        .await;
    let created = server
        .admin(
            "AdminCreateAccessKey",
            &[("AccountId", "777788889999"), ("AccountName", "bob")],
        )
        .await;
    let new_secret = ec2_gateway::client::text_of(&created.body, "secretAccessKey").unwrap();
    let wrong = server
        .call(
            &credentials(USER_KEY, "a-wrong-secret-that-must-not-be-logged00"),
            "DescribeRegions",
            &[],
        )
        .await;
    server.stop().await;

    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    for secret in [
        ADMIN_SECRET,
        USER_SECRET,
        new_secret.as_str(),
        "a-wrong-secret-that-must-not-be-logged00",
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
    let request_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" request ") || l.ends_with(" request"))
        .filter(|l| l.contains("status="))
        .collect();
    assert_eq!(request_lines.len(), 3, "{log}");
    let request_id = ok.headers["x-amzn-requestid"].to_str().unwrap();
    let first = request_lines
        .iter()
        .find(|l| l.contains(request_id))
        .expect("request id in the log line");
    assert!(
        first.contains("action=\"DescribeAvailabilityZones\"")
            && first.contains(&format!("account=\"{USER_ACCOUNT}\""))
            && first.contains("status=200"),
        "{first}"
    );
    assert!(first.contains("latency_us="), "{first}");
    let failed = request_lines
        .iter()
        .find(|l| l.contains(wrong.headers["x-amzn-requestid"].to_str().unwrap()))
        .unwrap();
    assert!(
        failed.contains("status=403") && failed.contains("SignatureDoesNotMatch"),
        "{failed}"
    );
    // Ignored parameters are named at debug level.
    assert!(
        log.contains("ignoring unknown parameters") && log.contains("Extra"),
        "{log}"
    );
}

/// Low (security review): a request signed for another region was accepted
/// silently. It is still accepted (lenient scope is the default, for boto 2
/// and euca2ools), but the first one per region/service pair is a warning.
#[tokio::test(flavor = "current_thread")]
async fn a_request_signed_for_another_region_is_logged_once() {
    let (buffer, _guard) = capture(tracing::Level::WARN);
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let mut elsewhere = user();
    elsewhere.region = "eu-west-9".into();
    for _ in 0..3 {
        let reply = server.call(&elsewhere, "DescribeRegions", &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(server.user("DescribeRegions", &[]).await.status, 200);
    server.stop().await;
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("scoped to another region"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("eu-west-9"), "{}", warnings[0]);
}

/// Issue 10 (finding 4): a gateway with no host (`hosts = []`) starts, and
/// says clearly that it has no zone.
#[tokio::test(flavor = "current_thread")]
async fn a_gateway_without_hosts_warns_that_it_has_no_zone() {
    let (buffer, _guard) = capture(tracing::Level::WARN);
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"), StorageBackend::Memory);
    config.hosts.clear();
    let server = TestServer::start(config).await;
    let zones = server.user("DescribeAvailabilityZones", &[]).await;
    assert_eq!(zones.status, 200);
    assert!(!zones.body.contains("<zoneName>"), "{}", zones.body);
    server.stop().await;
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("WARN") && log.contains("no availability zone"),
        "{log}"
    );
}

/// Issue 10: in development mode every request's log line says that its
/// signature was not verified.
#[tokio::test(flavor = "current_thread")]
async fn development_mode_marks_every_request_line() {
    let (buffer, _guard) = capture(tracing::Level::INFO);
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"), StorageBackend::Memory);
    config.dev_mode = true;
    let server = TestServer::start(config).await;
    let reply = server
        .call(&credentials("test", "test"), "DescribeRegions", &[])
        .await;
    assert_eq!(reply.status, 200);
    server.stop().await;
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("DEVELOPMENT MODE"), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("status=200"))
        .expect("the request's line");
    assert!(line.contains("signatures=\"unverified\""), "{line}");
}
