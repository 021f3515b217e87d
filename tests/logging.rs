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

/// A child process, killed by its PID if the test ends before it was
/// stopped.
struct Stopped(Option<std::process::Child>);

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// What one run of [`serve_once`] printed and logged, and the admin
/// secret it created.
struct Run {
    printed: String,
    log: String,
    secret: String,
}

/// Runs `ec2-gateway serve` (embedded default, a fresh folder) with `env`,
/// makes one signed request with the admin key it created, stops it with
/// SIGTERM. With `journal`, stdout and stderr are one file whose device
/// and inode `JOURNAL_STREAM` names, as systemd's journal stream is.
fn serve_once(env: &[(&str, &str)], journal: bool) -> Run {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    let cwd = tempfile::tempdir().unwrap();
    let mut command = Command::new(common::process::BINARY);
    command
        .arg("serve")
        .current_dir(cwd.path())
        .env("EC2_GATEWAY_LISTEN", "127.0.0.1:0")
        .env("EC2_GATEWAY_OPERATOR_LISTEN", "off")
        .env("EC2_GATEWAY_LOG", "info")
        .env_remove("JOURNAL_STREAM");
    for (name, value) in env {
        command.env(name, value);
    }
    let journal_file = cwd.path().join("journal");
    if journal {
        use std::os::unix::fs::MetadataExt;
        let file = std::fs::File::create(&journal_file).unwrap();
        let meta = file.metadata().unwrap();
        command
            .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
            .stdout(file.try_clone().unwrap())
            .stderr(file);
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = Stopped(Some(command.spawn().unwrap()));
    let process = child.0.as_mut().unwrap();
    let mut stdout = process.stdout.take().map(BufReader::new);
    let mut printed = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let url = loop {
        let line = match stdout.as_mut() {
            Some(stdout) => {
                let mut line = String::new();
                assert!(stdout.read_line(&mut line).unwrap() > 0, "exited early");
                printed.push_str(&line);
                line
            }
            None => {
                std::thread::sleep(std::time::Duration::from_millis(50));
                assert!(std::time::Instant::now() < deadline, "never listened");
                std::fs::read_to_string(&journal_file).unwrap()
            }
        };
        if let Some(rest) = line
            .lines()
            .find_map(|l| l.strip_prefix("ec2-gateway listening on "))
        {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let saved =
        std::fs::read_to_string(cwd.path().join("ec2-gateway-data/admin-credentials")).unwrap();
    let field = |name: &str| {
        saved
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")))
            .unwrap()
            .to_string()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let endpoint = ec2_gateway::client::Endpoint::parse(&url).unwrap();
    let reply = runtime
        .block_on(ec2_gateway::client::call(
            &endpoint,
            &credentials(&field("aws_access_key_id"), &field("aws_secret_access_key")),
            "DescribeAvailabilityZones",
            &[],
        ))
        .unwrap();
    assert_eq!(reply.status, 200);
    let pid = process.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut log = String::new();
    if let Some(stdout) = stdout.as_mut() {
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        printed.push_str(&rest);
        process
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
    }
    let mut process = child.0.take().unwrap();
    assert!(process.wait().unwrap().success());
    if journal {
        printed = std::fs::read_to_string(&journal_file).unwrap();
        log = printed.clone();
    }
    Run {
        printed,
        log,
        secret: field("aws_secret_access_key"),
    }
}

/// `log_format = "json"` (here from EC2_GATEWAY_LOG_FORMAT): every log
/// line is one JSON object, the request line with its fields.
#[test]
fn json_log_lines_are_json_objects() {
    let run = serve_once(&[("EC2_GATEWAY_LOG_FORMAT", "json")], false);
    let mut request_lines = 0;
    for line in run.log.lines() {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(object["level"].is_string(), "{line}");
        assert!(object["timestamp"].is_string(), "{line}");
        if object["fields"]["message"] == "request" {
            request_lines += 1;
            assert_eq!(object["fields"]["status"], 200, "{line}");
            assert_eq!(
                object["span"]["action"], "DescribeAvailabilityZones",
                "{line}"
            );
        }
    }
    assert_eq!(request_lines, 1, "{}", run.log);
    assert!(!run.log.contains(&run.secret));
}

/// Under systemd (stdout and stderr are the journal's stream, named by
/// JOURNAL_STREAM): the first start's admin secret is not printed (the
/// journal would keep it; it is in the data folder's credential file), and
/// text lines carry no timestamp of their own (the journal stamps them).
/// A JOURNAL_STREAM naming some other stream (inherited by a shell) changes
/// nothing.
#[test]
fn under_systemd_no_secret_reaches_the_journal() {
    let run = serve_once(&[], true);
    assert!(!run.printed.contains(&run.secret), "{}", run.printed);
    assert!(run.printed.contains("admin-credentials"), "{}", run.printed);
    assert!(run.log.contains("listening"), "{}", run.log);
    for line in run.log.lines() {
        assert!(!line.starts_with("20"), "a timestamp in: {line}");
    }
    let inherited = serve_once(&[("JOURNAL_STREAM", "8:12345")], false);
    assert!(inherited.printed.contains(&inherited.secret));
    assert!(inherited.log.lines().any(|l| l.starts_with("20")));
    let plain = serve_once(&[], false);
    assert!(plain.printed.contains(&plain.secret));
}
