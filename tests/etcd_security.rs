//! The etcd backend against a cluster that is secured (issue 12, item 1:
//! "optional user/password and TLS files"): a gateway process on a member
//! with authentication on, signed in as a user whose role reaches only its
//! prefix, and on a member that speaks TLS only and requires a client
//! certificate. Real etcd processes, started and stopped by the tests (by
//! PID); certificates made with `openssl` for the test.

#![cfg(feature = "etcd")]

mod common;

use common::etcd::{etcd_binary, free_port, EtcdCluster};
use common::process::{GatewayProcess, BINARY};
use common::*;
use ec2_gateway::client::{self, items};
use ec2_gateway::config::StorageBackend;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

/// The test configuration on etcd, with `etcd_table` as its `[etcd]`.
fn config_on_etcd(data_dir: &Path, etcd_table: &str) -> String {
    let text = test_config_text(data_dir, StorageBackend::Etcd);
    let first_table = text.find("\n[").unwrap() + 1;
    format!(
        "{}[etcd]\n{etcd_table}\nmax_txn_ops = 128\n\n{}",
        &text[..first_table],
        &text[first_table..]
    )
}

fn etcdctl(endpoint: &str, extra: &[&str], args: &[&str]) -> std::process::Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoint)
        .args(extra)
        .args(args)
        .output()
        .unwrap()
}

/// A launch and a read by id through `gateway`: the store works.
async fn launch_and_read(gateway: &GatewayProcess) -> String {
    let launched = client::call(
        &gateway.endpoint,
        &user(),
        "RunInstances",
        &[
            ("ImageId", IMAGE),
            ("InstanceType", "t3.micro"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(launched.status, 200, "{}", launched.body);
    let id = items(&launched.body, "instancesSet")[0]["instanceId"].clone();
    let read = client::call(
        &gateway.endpoint,
        &user(),
        "DescribeInstances",
        &[("InstanceId.1", id.as_str())],
    )
    .await
    .unwrap();
    assert_eq!(read.status, 200);
    assert!(read.body.contains(&id));
    id
}

/// Runs `ec2-gateway serve` with `config` expecting it to fail at start;
/// answers what it said. Stopped by PID if it runs past `within`.
fn start_refused(config: &Path, within: Duration) -> String {
    // Its output goes to a file: a pipe nobody reads could fill and hold
    // the process up.
    let said = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(BINARY)
        .args(["serve", "--config"])
        .arg(config)
        .env("EC2_GATEWAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(said.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
            panic!("the gateway did not refuse to start within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!child.wait().unwrap().success());
    std::fs::read_to_string(said.path()).unwrap()
}

/// Authentication on, the gateway signed in as a user whose role may read
/// and write its own prefix only: it serves; the keys it wrote are under
/// that prefix; a wrong password stops it at start with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_signs_in_to_etcd_as_a_user_limited_to_its_prefix() {
    let Some(binary) = etcd_binary("a_gateway_signs_in_to_etcd_as_a_user_limited_to_its_prefix")
    else {
        return;
    };
    let cluster = EtcdCluster::start(&binary, 1);
    let endpoint = cluster.endpoints()[0].clone();
    for args in [
        vec!["role", "add", "gateway"],
        vec![
            "role",
            "grant-permission",
            "gateway",
            "--prefix=true",
            "readwrite",
            "secured/",
        ],
        vec!["user", "add", "root:root-secret-1"],
        vec!["user", "add", "gw:gw-secret-1"],
        vec!["user", "grant-role", "gw", "gateway"],
        vec!["auth", "enable"],
    ] {
        let output = etcdctl(&endpoint, &[], &args);
        assert!(output.status.success(), "{args:?}: {output:?}");
    }
    let folder = tempfile::tempdir().unwrap();
    let config = folder.path().join("gateway.toml");
    std::fs::write(
        &config,
        config_on_etcd(
            &folder.path().join("data"),
            &format!(
                "endpoints = [\"{endpoint}\"]\nprefix = \"secured/\"\nuser = \"gw\"\npassword = \"gw-secret-1\""
            ),
        ),
    )
    .unwrap();
    let gateway = GatewayProcess::start(&config);
    let id = launch_and_read(&gateway).await;
    // Everything it wrote is under its prefix, and readable only with a
    // user's password.
    let anonymous = etcdctl(
        &endpoint,
        &[],
        &["get", "secured/", "--prefix", "--keys-only"],
    );
    assert!(!anonymous.status.success());
    let listed = etcdctl(
        &endpoint,
        &["--user", "root:root-secret-1"],
        &["get", "", "--prefix", "--keys-only"],
    );
    assert!(listed.status.success());
    let keys = String::from_utf8_lossy(&listed.stdout);
    assert!(
        keys.contains(&format!("secured/instances/{USER_ACCOUNT}/{id}")),
        "{keys}"
    );
    assert!(
        keys.lines()
            .filter(|k| !k.is_empty())
            .all(|k| k.starts_with("secured/")),
        "{keys}"
    );
    drop(gateway);

    // A wrong password: refused at start, saying why.
    let wrong = folder.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        config_on_etcd(
            &folder.path().join("data2"),
            &format!(
                "endpoints = [\"{endpoint}\"]\nprefix = \"secured/\"\nuser = \"gw\"\npassword = \"not-it\""
            ),
        ),
    )
    .unwrap();
    let said = start_refused(&wrong, Duration::from_secs(90));
    assert!(said.contains("authentication failed"), "{said}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate,
/// made with openssl in `folder`.
fn make_certificates(folder: &Path) -> [PathBuf; 5] {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(folder)
            .output()
            .unwrap();
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=ec2-gateway test CA",
    ]);
    std::fs::write(
        folder.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for (name, subject) in [("server", "/CN=127.0.0.1"), ("client", "/CN=gateway")] {
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }
    [
        "ca.crt",
        "server.crt",
        "server.key",
        "client.crt",
        "client.key",
    ]
    .map(|f| folder.join(f))
}

/// One etcd member serving clients over TLS only, with client
/// certificates required; stopped by PID when dropped.
struct TlsMember {
    child: Option<Child>,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl TlsMember {
    fn start(binary: &Path, ca: &Path, cert: &Path, key: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (client_port, peer_port) = (free_port(), free_port());
        let endpoint = format!("https://127.0.0.1:{client_port}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new(binary)
            .args(["--name", "tls0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
                "--initial-cluster",
                &format!("tls0=http://127.0.0.1:{peer_port}"),
            ])
            .arg("--cert-file")
            .arg(cert)
            .arg("--key-file")
            .arg(key)
            .arg("--trusted-ca-file")
            .arg(ca)
            .arg("--client-cert-auth")
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        Self {
            child: Some(child),
            endpoint,
            _dir: dir,
        }
    }
}

impl Drop for TlsMember {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// TLS with client certificates: the gateway connects with the CA and its
/// certificate and serves; etcdctl without a client certificate is
/// refused by the same member (the member really requires one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_reaches_etcd_over_tls_with_a_client_certificate() {
    let Some(binary) = etcd_binary("a_gateway_reaches_etcd_over_tls_with_a_client_certificate")
    else {
        return;
    };
    let certificates = tempfile::tempdir().unwrap();
    let [ca, server_cert, server_key, client_cert, client_key] =
        make_certificates(certificates.path());
    let member = TlsMember::start(&binary, &ca, &server_cert, &server_key);
    let tls_args = [
        format!("--cacert={}", ca.display()),
        format!("--cert={}", client_cert.display()),
        format!("--key={}", client_key.display()),
    ];
    let tls_args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !etcdctl(&member.endpoint, &tls_args, &["get", "ready-probe"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the TLS member never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let without_certificate = etcdctl(
        &member.endpoint,
        &[
            &format!("--cacert={}", ca.display()),
            "--dial-timeout=2s",
            "--command-timeout=3s",
        ],
        &["get", "ready-probe"],
    );
    assert!(!without_certificate.status.success());

    let folder = tempfile::tempdir().unwrap();
    let config = folder.path().join("gateway.toml");
    std::fs::write(
        &config,
        config_on_etcd(
            &folder.path().join("data"),
            &format!(
                "endpoints = [\"{}\"]\nprefix = \"tls/\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"",
                member.endpoint,
                ca.display(),
                client_cert.display(),
                client_key.display()
            ),
        ),
    )
    .unwrap();
    let gateway = GatewayProcess::start(&config);
    let id = launch_and_read(&gateway).await;
    let listed = etcdctl(
        &member.endpoint,
        &tls_args,
        &["get", "tls/", "--prefix", "--keys-only"],
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
}
