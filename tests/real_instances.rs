//! Real instances: the agent's namespace driver boots the image built by
//! `ec2-gateway image build`, and the AWS CLI drives it as a user would
//! (tests/e2e/aws_real_instances.sh): key pair, user data, console, ssh,
//! stop and start, terminate leaving nothing; two instances under security
//! group rules revoked and authorized; the limits of an instance. Then a
//! restarted agent takes its running instance back.
//!
//! Needs root, iproute2, nftables, util-linux, the image's packages
//! (busybox-static, dropbear-bin), an ssh client and the AWS CLI: `.ci/run`
//! installs them and sets EC2_GATEWAY_E2E_REQUIRED=1, which turns a
//! missing one into a failure; elsewhere the test prints SKIPPED. The test
//! starts the gateway and the agent and stops both by PID, and removes
//! whatever instance a failure left running.

mod common;

use common::process::{AgentProcess, GatewayProcess, BINARY};
use common::*;
use ec2_gateway::agent::namespace::{NamespaceDriver, NamespaceSettings};
use ec2_gateway::client::{self, text_of};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const IMAGE: &str = "ami-0e5c2a1b0c0d0e0f1";
/// The same image, registered as a tar archive of it.
const TAR_IMAGE: &str = "ami-0e5c2a1b0c0d0e0f2";

fn required() -> bool {
    std::env::var("EC2_GATEWAY_E2E_REQUIRED").is_ok_and(|v| v == "1")
}

/// What is missing to run real instances here, if anything.
fn missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("root".into());
    }
    let checks: &[(&str, &[&str])] = &[
        ("ip (iproute2)", &["ip", "-V"]),
        ("nft (nftables)", &["nft", "--version"]),
        ("nsenter (util-linux)", &["nsenter", "--version"]),
        ("unshare (util-linux)", &["unshare", "--version"]),
        ("ssh (openssh-client)", &["ssh", "-V"]),
        ("the AWS CLI", &["aws", "--version"]),
        ("busybox-static", &["dpkg-query", "-W", "busybox-static"]),
        ("dropbear-bin", &["dpkg-query", "-W", "dropbear-bin"]),
    ];
    checks
        .iter()
        .find(|(_, command)| {
            !Command::new(command[0])
                .args(&command[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|(what, _)| what.to_string())
}

fn config_text(data_dir: &Path, image: &Path, archive: &Path) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
operator_listen = "127.0.0.1:0"
data_dir = "{data_dir}"
region = "us-east-1"
liveness_window_secs = 10
heartbeat_interval_secs = 2
hosts = []

[rate_limits]
enabled = false

[quotas]
max_fleet_share_percent = 100

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

[[images]]
id = "{IMAGE}"
name = "ec2-gateway-busybox"
root_filesystem = "{image}"

[[images]]
id = "{TAR_IMAGE}"
name = "ec2-gateway-busybox-archive"
root_filesystem = "{archive}"
"#,
        data_dir = data_dir.display(),
        image = image.display(),
        archive = archive.display()
    )
}

/// Whether process `pid` runs (a zombie does not: once the agent that
/// started it is gone, whoever inherited it reaps it, or not).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("X")
            .to_string();
        state != "Z" && state != "X"
    })
}

/// Removes every instance the agent's state folder holds, whatever the
/// test's outcome (after the agent is stopped).
struct Leftovers(PathBuf);

impl Drop for Leftovers {
    fn drop(&mut self) {
        let settings = NamespaceSettings {
            state_dir: self.0.clone(),
            stop_grace: Duration::from_secs(1),
            program: PathBuf::from(BINARY),
        };
        if let Ok(mut driver) = NamespaceDriver::new(settings) {
            let left = driver.remove_everything();
            if !left.is_empty() {
                eprintln!("could not remove instances {left:?}");
            }
        }
    }
}

#[test]
fn the_aws_cli_drives_instances_that_really_run() {
    if let Some(what) = missing() {
        assert!(
            !required(),
            "{what} is required for real instances (EC2_GATEWAY_E2E_REQUIRED=1)"
        );
        println!("SKIPPED: real instances need {what}");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("image");
    let built = Command::new(BINARY)
        .args(["image", "build", "--output"])
        .arg(&image)
        .args(["--id", IMAGE])
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "image build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let registration = String::from_utf8_lossy(&built.stdout);
    assert!(
        registration.contains(&format!("id = \"{IMAGE}\"")),
        "{registration}"
    );
    assert!(image.join("sbin/ec2-init").is_file());
    assert!(image.join("usr/sbin/dropbear").is_file());

    let archive = work.path().join("image.tar");
    let packed = Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&image)
        .arg(".")
        .status()
        .unwrap();
    assert!(packed.success());
    let config = work.path().join("config.toml");
    std::fs::write(
        &config,
        config_text(&work.path().join("data"), &image, &archive),
    )
    .unwrap();
    let mut gateway = GatewayProcess::start(&config);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = runtime
        .block_on(client::call(
            &gateway.endpoint,
            &admin(),
            "AdminCreateAgentKey",
            &[("HostName", "real-host-1")],
        ))
        .unwrap();
    assert_eq!(key.status, 200, "{}", key.body);
    let (key_id, secret) = (
        text_of(&key.body, "accessKeyId").unwrap(),
        text_of(&key.body, "secretAccessKey").unwrap(),
    );
    let state_dir = work.path().join("agent");
    let leftovers = Leftovers(state_dir.clone());
    let endpoint = format!("http://{}", gateway.endpoint.authority);
    let state_arg = state_dir.display().to_string();
    let agent_args = [
        "--endpoint",
        &endpoint,
        "--zone",
        "us-east-1a",
        "--vcpus",
        "4",
        "--memory-mib",
        "4096",
        "--driver",
        "namespace",
        "--state-dir",
        &state_arg,
        "--stop-grace-secs",
        "3",
        "--heartbeat-secs",
        "2",
    ];
    let mut agent = AgentProcess::start(&agent_args, (&key_id, &secret));
    let host_secret = work.path().join("host-secret");
    std::fs::write(&host_secret, "not for instances").unwrap();
    let canary = work.path().join("canary");
    std::fs::create_dir(&canary).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/aws_real_instances.sh");
    let output = Command::new("bash")
        .arg(script)
        .env("EC2_GATEWAY_ENDPOINT", &endpoint)
        .env("EC2_GATEWAY_BINARY", BINARY)
        .env("IMAGE_ID", IMAGE)
        .env("TAR_IMAGE_ID", TAR_IMAGE)
        .env("AGENT_STATE_DIR", &state_dir)
        .env("HOST_SECRET_FILE", &host_secret)
        .env("HOST_CANARY_DIR", &canary)
        .env("AWS_ACCESS_KEY_ID", USER_KEY)
        .env("AWS_SECRET_ACCESS_KEY", USER_SECRET)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "aws_real_instances.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");

    // A restarted agent takes its running instance back: the same init
    // goes on running, and terminate still removes everything.
    let call = |action: &str, params: &[(&str, &str)]| {
        runtime
            .block_on(client::call(&gateway.endpoint, &user(), action, params))
            .unwrap()
    };
    let run = call(
        "RunInstances",
        &[
            ("ImageId", IMAGE),
            ("InstanceType", "t2.nano"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
        ],
    );
    assert_eq!(run.status, 200, "{}", run.body);
    let id = text_of(&run.body, "instanceId").unwrap();
    let state = |id: &str| {
        let reply = call("DescribeInstances", &[("InstanceId.1", id)]);
        reply
            .body
            .split("<instanceState>")
            .nth(1)
            .and_then(|rest| text_of(rest, "name"))
            .unwrap_or_default()
    };
    let wait_for = |id: &str, wanted: &str| {
        for _ in 0..120 {
            if state(id) == wanted {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("{id} never became {wanted}");
    };
    wait_for(&id, "running");
    let instance_dir = state_dir.join("instances").join(&id);
    let launcher = std::fs::read_to_string(instance_dir.join("launcher")).unwrap();
    let pid = launcher.split_whitespace().next().unwrap().to_string();
    agent.kill();
    let mut agent = AgentProcess::start(&agent_args, (&key_id, &secret));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        std::fs::read_to_string(instance_dir.join("launcher")).unwrap(),
        launcher,
        "the restarted agent booted the instance again instead of taking it back"
    );
    assert!(alive(&pid), "its launcher died");
    assert_eq!(state(&id), "running");
    // The new agent drives the old processes: a stop reaches the same init
    // (it says so on the console) and ends them.
    let console = || {
        use base64::Engine;
        let reply = call("GetConsoleOutput", &[("InstanceId", &id)]);
        let text = text_of(&reply.body, "output").unwrap_or_default();
        String::from_utf8_lossy(
            &base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap_or_default(),
        )
        .into_owned()
    };
    assert_eq!(console().matches("ec2-init: booting").count(), 1);
    let stop = call("StopInstances", &[("InstanceId.1", &id)]);
    assert_eq!(stop.status, 200, "{}", stop.body);
    wait_for(&id, "stopped");
    assert!(!alive(&pid), "its launcher outlived the stop");
    for _ in 0..40 {
        if console().contains("ec2-init: stopping") {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let shown = console();
    assert!(shown.contains("ec2-init: stopping"), "{shown}");
    assert_eq!(shown.matches("ec2-init: booting").count(), 1, "{shown}");
    let terminate = call("TerminateInstances", &[("InstanceId.1", &id)]);
    assert_eq!(terminate.status, 200, "{}", terminate.body);
    wait_for(&id, "terminated");
    // Terminated while stopped (placed nowhere): the agent learns it on its
    // next look at the layers it keeps, and removes what is left.
    for _ in 0..40 {
        if !instance_dir.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(!instance_dir.exists(), "its files are left");
    assert!(!Path::new(&format!("/run/netns/ec2-{id}")).exists());
    assert!(!alive(&pid));

    agent.kill();
    drop(leftovers);
    gateway.kill();
}
