//! Shared test harness: an in-process gateway on 127.0.0.1:0, known keys,
//! signed calls whose successful answers are checked against schemas/.
#![allow(dead_code)]

pub mod etcd;
pub mod process;
pub mod remote;
pub mod schema;

use ec2_gateway::app::App;
use ec2_gateway::auth::signer::SigningCredentials;
use ec2_gateway::client::{self, Endpoint, Reply};
use ec2_gateway::clock::OffsetClock;
use ec2_gateway::config::{Config, StorageBackend};
use ec2_gateway::secret::Secret;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_ACCOUNT: &str = "111122223333";
pub const ADMIN_KEY: &str = "AKIDEXAMPLE";
pub const ADMIN_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const USER_ACCOUNT: &str = "444455556666";
pub const USER_KEY: &str = "AKIAUSEREXAMPLE00001";
pub const USER_SECRET: &str = "userSecretKeyExample00000000000000000000";

/// A configuration with one admin and one user account, and zones
/// us-east-1a/b/c with two simulated hosts in a, one each in b and c.
pub fn test_config(data_dir: &Path, storage: StorageBackend) -> Config {
    Config::from_toml(&test_config_text(data_dir, storage)).expect("test configuration is valid")
}

/// [`test_config`] as TOML, for a gateway process (`operator_listen` on a
/// free loopback port).
pub fn test_config_text(data_dir: &Path, storage: StorageBackend) -> String {
    let storage = match storage {
        StorageBackend::Sled => "sled",
        StorageBackend::Memory => "memory",
        StorageBackend::Etcd => "etcd",
    };
    format!(
        r#"
listen = "127.0.0.1:0"
operator_listen = "127.0.0.1:0"
data_dir = "{data_dir}"
storage = "{storage}"
region = "us-east-1"
liveness_window_secs = 60
heartbeat_interval_secs = 5

[limits]
header_read_timeout_secs = 2
body_read_timeout_secs = 2

[lifecycle]
boot_delay_secs = 0
stop_delay_secs = 0
terminate_delay_secs = 0
volume_delay_secs = 0
snapshot_delay_secs = 0

[quotas]
max_instances = 40
max_vcpus = 200
max_elastic_ips = 3
# The tests fill hosts to capacity from one account; the default share
# (50 %) is tested in tests/security.rs.
max_fleet_share_percent = 100

[[peer_regions]]
name = "us-west-2"
endpoint = "ec2.us-west-2.example:8773"

[[accounts]]
id = "{ADMIN_ACCOUNT}"
name = "operator"
admin = true
access_key_id = "{ADMIN_KEY}"
secret_access_key = "{ADMIN_SECRET}"

[[accounts]]
id = "{USER_ACCOUNT}"
name = "alice"
access_key_id = "{USER_KEY}"
secret_access_key = "{USER_SECRET}"

[[hosts]]
name = "node-a1"
availability_zone = "us-east-1a"
vcpus = 16
memory_mib = 65536

[[hosts]]
name = "node-a2"
availability_zone = "us-east-1a"
vcpus = 16
memory_mib = 65536

[[hosts]]
name = "node-b1"
availability_zone = "us-east-1b"
vcpus = 16
memory_mib = 65536

[[hosts]]
name = "node-c1"
availability_zone = "us-east-1c"
vcpus = 16
memory_mib = 65536
"#,
        data_dir = data_dir.display()
    )
}

pub fn admin() -> SigningCredentials {
    credentials(ADMIN_KEY, ADMIN_SECRET)
}

pub fn user() -> SigningCredentials {
    credentials(USER_KEY, USER_SECRET)
}

pub fn credentials(key: &str, secret: &str) -> SigningCredentials {
    SigningCredentials {
        access_key_id: key.into(),
        secret: Secret::new(secret),
        region: "us-east-1".into(),
        service: "ec2".into(),
    }
}

/// A gateway served in-process.
pub struct TestServer {
    pub endpoint: Endpoint,
    /// The served gateway, for tests that look at the core or the store.
    pub gateway: Arc<ec2_gateway::gateway::Gateway>,
    pub clock: Arc<OffsetClock>,
    pub data_dir: PathBuf,
    pub app_admin_created: bool,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        Self::start_with_clock(config, Arc::new(OffsetClock::new())).await
    }

    pub async fn start_with_clock(config: Config, clock: Arc<OffsetClock>) -> Self {
        let data_dir = config.data_dir.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = App::open(config.bound_to(address), clock.clone())
            .await
            .expect("gateway opens");
        let app_admin_created = app.created_admin.is_some();
        let gateway = app.gateway.clone();
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async {
            let _ = signal.await;
        }));
        Self {
            gateway,
            endpoint: Endpoint {
                authority: address.to_string(),
                path: "/".into(),
            },
            clock,
            data_dir,
            app_admin_created,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Stops the server and waits until it has released the store.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        self.wait_stopped().await;
    }

    /// Signals shutdown (as SIGTERM would) without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Waits until the server has finished.
    pub async fn wait_stopped(mut self) {
        self.task.take().unwrap().await.unwrap();
    }

    /// A signed call; a 200 answer is checked against schemas/.
    pub async fn call(
        &self,
        credentials: &SigningCredentials,
        action: &str,
        params: &[(&str, &str)],
    ) -> Reply {
        let reply = client::call(&self.endpoint, credentials, action, params)
            .await
            .expect("gateway answers");
        check_reply(action, &reply);
        reply
    }

    pub async fn admin(&self, action: &str, params: &[(&str, &str)]) -> Reply {
        self.call(&admin(), action, params).await
    }

    pub async fn user(&self, action: &str, params: &[(&str, &str)]) -> Reply {
        self.call(&user(), action, params).await
    }
}

/// Every answer is XML with the right content type; successes match the
/// schema, errors are EC2 error documents with a non-2xx status.
pub fn check_reply(action: &str, reply: &Reply) {
    let content_type = reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(content_type, "text/xml;charset=UTF-8");
    if reply.status == 200 {
        if let Err(problem) = schema::validate(action, &reply.body) {
            panic!(
                "{action} response breaks schemas/: {problem}\n{}",
                reply.body
            );
        }
    } else {
        assert!(reply.status >= 400, "status {}", reply.status);
        assert_error_document(&reply.body);
    }
}

/// Asserts `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`.
pub fn assert_error_document(body: &str) {
    assert!(
        body.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>"
        ),
        "{body}"
    );
    assert!(
        body.contains("</Message></Error></Errors><RequestID>"),
        "{body}"
    );
    assert!(
        body.trim_end().ends_with("</RequestID></Response>"),
        "{body}"
    );
}

/// `body` with its request id blanked (it differs between two answers).
pub fn without_request_id(body: &str) -> String {
    let start = body.find("<requestId>").unwrap() + "<requestId>".len();
    let end = body.find("</requestId>").unwrap();
    format!("{}{}", &body[..start], &body[end..])
}

impl TestServer {
    /// DescribeInstances naming `ids` (`InstanceId.N`), as the test user.
    pub async fn describe_by_id(&self, ids: &[String]) -> Reply {
        let names: Vec<String> = (1..=ids.len()).map(|n| format!("InstanceId.{n}")).collect();
        let params: Vec<(&str, &str)> = names
            .iter()
            .map(String::as_str)
            .zip(ids.iter().map(String::as_str))
            .collect();
        self.user("DescribeInstances", &params).await
    }
}

/// The error code of an error answer.
pub fn error_code(reply: &Reply) -> String {
    client::text_of(&reply.body, "Code").unwrap_or_default()
}

pub fn items(reply: &Reply, set: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    client::items(&reply.body, set)
}

/// The values of `field` over the items of `set`.
pub fn column(reply: &Reply, set: &str, field: &str) -> Vec<String> {
    items(reply, set)
        .into_iter()
        .filter_map(|mut item| item.remove(field))
        .collect()
}

/// Polls DescribeInstances (as the test user) until instance `id` is in
/// `state`; panics after 5 s.
pub async fn wait_for(server: &TestServer, id: &str, state: &str) {
    for _ in 0..100 {
        let reply = server
            .user("DescribeInstances", &[("InstanceId.1", id)])
            .await;
        if reply.body.contains(&format!("<name>{state}</name>")) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{id} never became {state}");
}

/// Sends raw bytes and returns the raw answer (status line to the end).
pub async fn raw_exchange(endpoint: &Endpoint, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&endpoint.authority)
        .await
        .unwrap();
    // The server may answer and close before reading everything: that is fine.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}
