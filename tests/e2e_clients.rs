//! Real clients end to end: the `ec2-gateway` binary started as a user
//! would start it, driven by the AWS CLI, boto3, boto 2 and the admin CLI.
//!
//! A client that is not installed prints a SKIPPED line, unless
//! EC2_GATEWAY_E2E_REQUIRED=1 (set by .ci/run, which installs them all).

mod common;

use common::{ADMIN_KEY, ADMIN_SECRET, USER_KEY, USER_SECRET};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_ec2-gateway");

fn required() -> bool {
    std::env::var("EC2_GATEWAY_E2E_REQUIRED").is_ok_and(|v| v == "1")
}

/// True when `program --version`-style probing works; otherwise SKIPPED (or
/// a failure when clients are required).
fn available(what: &str, program: &str, args: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !required(),
            "{what} is required (EC2_GATEWAY_E2E_REQUIRED=1) but not installed"
        );
        println!(
            "SKIPPED: {what} is not installed ({program} {})",
            args.join(" ")
        );
    }
    ok
}

/// A gateway process.
struct Gateway {
    child: Child,
    endpoint: String,
    /// What `serve` printed before "listening".
    banner: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Gateway {
    /// Starts `ec2-gateway serve` in `cwd`, with `--config` when given.
    fn start(cwd: &Path, config: Option<&Path>) -> Self {
        Self::start_with(cwd, config, &[])
    }

    /// Starts `ec2-gateway serve` with extra arguments (`--dev`).
    fn start_with(cwd: &Path, config: Option<&Path>, extra: &[&str]) -> Self {
        let mut command = Command::new(BINARY);
        command
            .arg("serve")
            .args(extra)
            .current_dir(cwd)
            .env("EC2_GATEWAY_LISTEN", "127.0.0.1:0")
            .env("EC2_GATEWAY_OPERATOR_LISTEN", "127.0.0.1:0")
            .env("EC2_GATEWAY_OPERATOR_LISTEN", "127.0.0.1:0")
            .env("EC2_GATEWAY_LOG", "warn");
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ec2-gateway");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("gateway exited before listening")
                .unwrap();
            if let Some(rest) = line.strip_prefix("ec2-gateway listening on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
            banner.push(line);
        };
        // Keep draining stdout so the process never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            endpoint,
            banner,
            _dir: None,
        }
    }

    /// Starts a gateway with the test accounts and hosts of common::test_config.
    fn with_test_config() -> Self {
        Self::with_edited_test_config(|text| text)
    }

    /// Starts a gateway with the test configuration as `edit` changes it.
    fn with_edited_test_config(edit: impl FnOnce(String) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/test-config.toml"),
        )
        .unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            edit(text.replace("DATA_DIR", &dir.path().join("data").display().to_string())),
        )
        .unwrap();
        let mut gateway = Self::start(dir.path(), Some(&path));
        gateway._dir = Some(dir);
        gateway
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("gateway did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn aws(endpoint: &str, key: &str, secret: &str, args: &[&str]) -> Output {
    Command::new("aws")
        .arg("--endpoint-url")
        .arg(endpoint)
        .args(["--region", "us-east-1", "--output", "json", "ec2"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run aws")
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "aws failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn zone_names(value: &serde_json::Value) -> Vec<String> {
    value["AvailabilityZones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["ZoneName"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn aws_cli() {
    if !available("the AWS CLI", "aws", &["--version"]) {
        return;
    }
    let gateway = Gateway::with_test_config();
    let ep = gateway.endpoint.as_str();
    let zones = json(&aws(
        ep,
        USER_KEY,
        USER_SECRET,
        &["describe-availability-zones"],
    ));
    assert_eq!(
        zone_names(&zones),
        ["us-east-1a", "us-east-1b", "us-east-1c"]
    );
    assert_eq!(zones["AvailabilityZones"][1]["State"], "available");
    assert_eq!(zones["AvailabilityZones"][1]["ZoneId"], "use1-az2");
    let filtered = json(&aws(
        ep,
        USER_KEY,
        USER_SECRET,
        &[
            "describe-availability-zones",
            "--filters",
            "Name=zone-name,Values=*1b,*1c",
            "Name=state,Values=available",
        ],
    ));
    assert_eq!(zone_names(&filtered), ["us-east-1b", "us-east-1c"]);
    let named = json(&aws(
        ep,
        USER_KEY,
        USER_SECRET,
        &[
            "describe-availability-zones",
            "--zone-names",
            "us-east-1c",
            "--all-availability-zones",
        ],
    ));
    assert_eq!(zone_names(&named), ["us-east-1c"]);
    let regions = json(&aws(
        ep,
        USER_KEY,
        USER_SECRET,
        &["describe-regions", "--all-regions"],
    ));
    let names: Vec<&str> = regions["Regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["RegionName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["us-east-1", "us-west-2"]);
    let west = json(&aws(
        ep,
        USER_KEY,
        USER_SECRET,
        &[
            "describe-regions",
            "--filters",
            "Name=endpoint,Values=*west*",
        ],
    ));
    assert_eq!(west["Regions"][0]["Endpoint"], "ec2.us-west-2.example:8773");

    let wrong = aws(
        ep,
        USER_KEY,
        "this-is-not-the-secret-key-000000000000",
        &["describe-regions"],
    );
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("(SignatureDoesNotMatch)"), "{stderr}");
    let dry = aws(
        ep,
        USER_KEY,
        USER_SECRET,
        &["describe-availability-zones", "--dry-run"],
    );
    assert!(String::from_utf8_lossy(&dry.stderr).contains("(DryRunOperation)"));
    let bad_zone = aws(
        ep,
        USER_KEY,
        USER_SECRET,
        &["describe-availability-zones", "--zone-names", "us-east-1q"],
    );
    assert!(String::from_utf8_lossy(&bad_zone.stderr)
        .contains("Invalid availability zone: [us-east-1q]"));
    assert!(gateway.terminate().success());
}

/// A VPC made, waited for, tuned and removed with the AWS CLI (its
/// `vpc-available` waiter polls DescribeVpcs).
#[test]
fn aws_cli_vpc() {
    if !available("the AWS CLI", "aws", &["--version"]) {
        return;
    }
    let gateway = Gateway::with_test_config();
    let ep = gateway.endpoint.as_str();
    let created = json(&aws(
        ep,
        USER_KEY,
        USER_SECRET,
        &[
            "create-vpc",
            "--cidr-block",
            "10.0.0.0/16",
            "--tag-specifications",
            "ResourceType=vpc,Tags=[{Key=Name,Value=cli}]",
        ],
    ));
    let vpc = created["Vpc"]["VpcId"].as_str().unwrap().to_string();
    assert_eq!(created["Vpc"]["CidrBlock"], "10.0.0.0/16");
    let waited = aws(
        ep,
        USER_KEY,
        USER_SECRET,
        &["wait", "vpc-available", "--vpc-ids", &vpc],
    );
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    let modified = aws(
        ep,
        USER_KEY,
        USER_SECRET,
        &[
            "modify-vpc-attribute",
            "--vpc-id",
            &vpc,
            "--enable-dns-hostnames",
            "{\"Value\":true}",
        ],
    );
    assert!(
        modified.status.success(),
        "{}",
        String::from_utf8_lossy(&modified.stderr)
    );
    let attribute = json(&aws(
        ep,
        USER_KEY,
        USER_SECRET,
        &[
            "describe-vpc-attribute",
            "--vpc-id",
            &vpc,
            "--attribute",
            "enableDnsHostnames",
        ],
    ));
    assert_eq!(attribute["EnableDnsHostnames"]["Value"], true);
    let listed = json(&aws(
        ep,
        USER_KEY,
        USER_SECRET,
        &["describe-vpcs", "--filters", "Name=tag:Name,Values=cli"],
    ));
    assert_eq!(listed["Vpcs"][0]["VpcId"], vpc.as_str());
    assert_eq!(listed["Vpcs"][0]["IsDefault"], false);
    let deleted = aws(ep, USER_KEY, USER_SECRET, &["delete-vpc", "--vpc-id", &vpc]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    let gone = aws(
        ep,
        USER_KEY,
        USER_SECRET,
        &["describe-vpcs", "--vpc-ids", &vpc],
    );
    assert!(String::from_utf8_lossy(&gone.stderr).contains("(InvalidVpcID.NotFound)"));
    assert!(gateway.terminate().success());
}

/// The AWS CLI flow of the instances issue, as a user would type it.
#[test]
fn aws_cli_instances() {
    if !available("the AWS CLI", "aws", &["--version"])
        || !available("ssh-keygen", "sh", &["-c", "command -v ssh-keygen"])
    {
        return;
    }
    let gateway = Gateway::with_test_config();
    let ep = gateway.endpoint.as_str();
    let cli = |args: &[&str]| json(&aws(ep, USER_KEY, USER_SECRET, args));
    let work = tempfile::tempdir().unwrap();

    // A key pair whose private key ssh-keygen accepts.
    let key = cli(&["create-key-pair", "--key-name", "e2e"]);
    let pem = work.path().join("e2e.pem");
    std::fs::write(&pem, key["KeyMaterial"].as_str().unwrap()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let derived = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&pem)
        .output()
        .unwrap();
    assert!(
        derived.status.success(),
        "ssh-keygen refused the key: {}",
        String::from_utf8_lossy(&derived.stderr)
    );
    let listed = cli(&[
        "describe-key-pairs",
        "--key-names",
        "e2e",
        "--include-public-key",
    ]);
    let public = listed["KeyPairs"][0]["PublicKey"]
        .as_str()
        .unwrap()
        .to_string();
    let derived = String::from_utf8(derived.stdout).unwrap();
    assert_eq!(
        derived.split_whitespace().nth(1),
        public.split_whitespace().nth(1),
        "same public key"
    );

    // Launch two in a chosen zone, with the key and a Name tag.
    let run = cli(&[
        "run-instances",
        "--image-id",
        "ami-0b1c2d3e4f5a6b7c8",
        "--instance-type",
        "t3.micro",
        "--count",
        "2",
        "--placement",
        "AvailabilityZone=us-east-1b",
        "--key-name",
        "e2e",
        "--tag-specifications",
        "ResourceType=instance,Tags=[{Key=Name,Value=e2e web}]",
    ]);
    let ids: Vec<String> = run["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["InstanceId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(run["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["Placement"]["AvailabilityZone"] == "us-east-1b" && i["KeyName"] == "e2e"));
    let mut wait = vec!["wait", "instance-running", "--instance-ids"];
    wait.extend(ids.iter().map(String::as_str));
    let waited = aws(ep, USER_KEY, USER_SECRET, &wait);
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    let filtered = cli(&[
        "describe-instances",
        "--filters",
        "Name=tag:Name,Values=e2e*",
        "Name=instance-state-name,Values=running",
        "Name=availability-zone,Values=us-east-1b",
    ]);
    let found: Vec<&str> = filtered["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap())
        .map(|i| i["InstanceId"].as_str().unwrap())
        .collect();
    assert_eq!(found.len(), 2);

    // Five more, then a paged listing (the CLI follows NextToken itself).
    cli(&[
        "run-instances",
        "--image-id",
        "ami-0b1c2d3e4f5a6b7c8",
        "--instance-type",
        "t2.nano",
        "--count",
        "5",
    ]);
    let paged = cli(&["describe-instances", "--page-size", "5"]);
    let total: usize = paged["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Instances"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 7);

    // Stop, start, terminate, each waited for.
    for (action, waiter) in [
        ("stop-instances", "instance-stopped"),
        ("start-instances", "instance-running"),
        ("terminate-instances", "instance-terminated"),
    ] {
        let mut args = vec![action, "--instance-ids"];
        args.extend(ids.iter().map(String::as_str));
        cli(&args);
        let mut args = vec!["wait", waiter, "--instance-ids"];
        args.extend(ids.iter().map(String::as_str));
        let waited = aws(ep, USER_KEY, USER_SECRET, &args);
        assert!(
            waited.status.success(),
            "{waiter}: {}",
            String::from_utf8_lossy(&waited.stderr)
        );
    }

    let images = cli(&[
        "describe-images",
        "--owners",
        "amazon",
        "--filters",
        "Name=name,Values=debian-*",
    ]);
    assert_eq!(images["Images"].as_array().unwrap().len(), 2);
    let types = cli(&["describe-instance-types", "--instance-types", "t3.micro"]);
    assert_eq!(types["InstanceTypes"][0]["VCpuInfo"]["DefaultVCpus"], 2);
    assert_eq!(types["InstanceTypes"][0]["MemoryInfo"]["SizeInMiB"], 1024);
    let status = cli(&["describe-instance-status"]);
    assert_eq!(
        status["InstanceStatuses"].as_array().unwrap().len(),
        5,
        "the five still running"
    );
    assert!(gateway.terminate().success());
}

/// Runs a client script (`program script`) against `endpoint` as the test
/// user, prints what it printed, and requires it to succeed and to end with
/// "all checks passed".
fn client_script(program: &str, script: &str, endpoint: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let output = Command::new(program)
        .arg(path)
        .env("EC2_GATEWAY_ENDPOINT", endpoint)
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
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

fn python_script(interpreter: &str, script: &str, endpoint: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e")
        .join(script);
    let output = Command::new(interpreter)
        .arg(&path)
        .env("EC2_GATEWAY_ENDPOINT", endpoint)
        .env("AWS_ACCESS_KEY_ID", USER_KEY)
        .env("AWS_SECRET_ACCESS_KEY", USER_SECRET)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("BOTO_CONFIG", "/dev/null")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn boto3_sigv4_sigv2_and_presigned() {
    if !available("boto3", "python3", &["-c", "import boto3"]) {
        return;
    }
    let gateway = Gateway::with_test_config();
    python_script("python3", "boto3_zones.py", &gateway.endpoint);
}

#[test]
fn boto3_retries_run_instances_with_the_same_client_token() {
    if !available("boto3", "python3", &["-c", "import boto3"]) {
        return;
    }
    let gateway = Gateway::with_test_config();
    python_script("python3", "boto3_instances.py", &gateway.endpoint);
}

/// A listing longer than a page is streamed (chunked, no length): boto3,
/// the AWS CLI and boto 2 read it whole.
#[test]
fn real_clients_read_a_streamed_listing() {
    if !available("boto3", "python3", &["-c", "import boto3"]) {
        return;
    }
    let gateway = Gateway::with_edited_test_config(|text| {
        text.replace("vcpus = 16", "vcpus = 4096")
            .replace("memory_mib = 65536", "memory_mib = 16777216")
            + "\n[quotas]\nmax_instances = 1000\nmax_vcpus = 100000\nmax_fleet_share_percent = 100\n"
    });
    python_script("python3", "boto3_streamed_listing.py", &gateway.endpoint);
    if available(
        "boto 2 (python3-boto)",
        SYSTEM_PYTHON,
        &["-c", "import boto"],
    ) {
        python_script(
            SYSTEM_PYTHON,
            "boto2_streamed_listing.py",
            &gateway.endpoint,
        );
    }
}

#[test]
fn boto2_launches_lists_and_terminates_over_sigv2() {
    if !available(
        "boto 2 (python3-boto)",
        SYSTEM_PYTHON,
        &["-c", "import boto"],
    ) {
        return;
    }
    let gateway = Gateway::with_test_config();
    python_script(SYSTEM_PYTHON, "boto2_instances.py", &gateway.endpoint);
}

#[test]
fn aws_cli_getting_started_guide() {
    if !available("the AWS CLI", "aws", &["--version"])
        || !available("ssh-keygen", "sh", &["-c", "command -v ssh-keygen"])
    {
        return;
    }
    let gateway = Gateway::with_test_config();
    client_script(
        "bash",
        "tests/e2e/aws_getting_started.sh",
        &gateway.endpoint,
    );
}

#[test]
fn aws_cli_builds_and_tears_down_a_vpc_network() {
    if !available("the AWS CLI", "aws", &["--version"]) {
        return;
    }
    let gateway = Gateway::with_test_config();
    client_script("bash", "tests/e2e/aws_vpc_network.sh", &gateway.endpoint);
}

#[test]
fn boto3_builds_and_tears_down_a_vpc_network() {
    if !available("boto3", "python3", &["-c", "import boto3"]) {
        return;
    }
    let gateway = Gateway::with_test_config();
    python_script("python3", "boto3_vpc_network.py", &gateway.endpoint);
}

#[test]
fn javascript_sdk_builds_a_vpc_and_launches_from_a_template() {
    let modules =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/js/node_modules/@aws-sdk/client-ec2");
    if !available("node", "node", &["--version"])
        || !available(
            "the AWS SDK for JavaScript (npm ci in tests/e2e/js)",
            "test",
            &["-d", &modules.display().to_string()],
        )
    {
        return;
    }
    let gateway = Gateway::with_test_config();
    client_script("node", "tests/e2e/js/vpc_network.mjs", &gateway.endpoint);
}

#[test]
fn boto3_getting_started_guide() {
    if !available("boto3", "python3", &["-c", "import boto3"]) {
        return;
    }
    let gateway = Gateway::with_test_config();
    python_script("python3", "boto3_getting_started.py", &gateway.endpoint);
}

#[test]
fn boto2_security_groups_volumes_and_addresses_over_sigv2() {
    if !available(
        "boto 2 (python3-boto)",
        SYSTEM_PYTHON,
        &["-c", "import boto"],
    ) {
        return;
    }
    let gateway = Gateway::with_test_config();
    python_script(SYSTEM_PYTHON, "boto2_resources.py", &gateway.endpoint);
}

/// Debian's python3-boto runs on the system interpreter.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

#[test]
fn boto2_sigv4_sigv2_sigv1() {
    if !available(
        "boto 2 (python3-boto)",
        SYSTEM_PYTHON,
        &["-c", "import boto"],
    ) {
        return;
    }
    let gateway = Gateway::with_test_config();
    python_script(SYSTEM_PYTHON, "boto2_zones.py", &gateway.endpoint);
}

fn admin_cli(endpoint: &str, key: &str, secret: &str, args: &[&str]) -> Output {
    Command::new(BINARY)
        .arg("admin")
        .args(["--endpoint", endpoint])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn admin_cli_changes_what_clients_see() {
    let gateway = Gateway::with_test_config();
    let ep = gateway.endpoint.as_str();
    let hosts = stdout(&admin_cli(ep, ADMIN_KEY, ADMIN_SECRET, &["hosts", "list"]));
    assert!(hosts.lines().next().unwrap().starts_with("HOST"), "{hosts}");
    assert!(
        hosts.lines().any(|l| l.starts_with("node-b1")
            && l.contains("us-east-1b")
            && l.contains("enabled")
            && l.contains(":-)")),
        "{hosts}"
    );
    stdout(&admin_cli(
        ep,
        ADMIN_KEY,
        ADMIN_SECRET,
        &["hosts", "disable", "node-b1", "--reason", "new disks"],
    ));
    let hosts = stdout(&admin_cli(ep, ADMIN_KEY, ADMIN_SECRET, &["hosts", "list"]));
    assert!(
        hosts.lines().any(|l| l.starts_with("node-b1")
            && l.contains("disabled")
            && l.ends_with("new disks")),
        "{hosts}"
    );
    // Capacity per type and zone, as euca-describe-instance-types shows it:
    // a disabled host has nothing free, but still counts for the maximum.
    let capacity = stdout(&admin_cli(ep, ADMIN_KEY, ADMIN_SECRET, &["capacity"]));
    let header = capacity.lines().next().unwrap();
    assert!(
        header.starts_with("TYPE") && header.contains("us-east-1b (FREE/MAX)"),
        "{capacity}"
    );
    let m5 = capacity
        .lines()
        .find(|l| l.starts_with("m5.2xlarge "))
        .expect("m5.2xlarge listed");
    let cells: Vec<&str> = m5.split_whitespace().collect();
    assert_eq!(
        cells,
        ["m5.2xlarge", "8", "32768", "0", "2/2", "0/2", "2/2"],
        "{capacity}"
    );
    // The disable shows at once through the EC2 API.
    let zones = ec2_zone_states(ep);
    assert_eq!(
        zones,
        [
            ("us-east-1a", "available"),
            ("us-east-1b", "unavailable"),
            ("us-east-1c", "available")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    stdout(&admin_cli(
        ep,
        ADMIN_KEY,
        ADMIN_SECRET,
        &["hosts", "enable", "node-b1"],
    ));
    stdout(&admin_cli(
        ep,
        ADMIN_KEY,
        ADMIN_SECRET,
        &[
            "hosts",
            "add",
            "edge-1",
            "--zone",
            "us-east-1d",
            "--vcpus",
            "4",
            "--memory-mib",
            "8192",
            "--external",
        ],
    ));
    assert_eq!(
        ec2_zone_states(ep).last().unwrap(),
        &("us-east-1d".to_string(), "unavailable".to_string())
    );
    stdout(&admin_cli(
        ep,
        ADMIN_KEY,
        ADMIN_SECRET,
        &["hosts", "heartbeat", "edge-1"],
    ));
    assert_eq!(
        ec2_zone_states(ep).last().unwrap(),
        &("us-east-1d".to_string(), "available".to_string())
    );
    stdout(&admin_cli(
        ep,
        ADMIN_KEY,
        ADMIN_SECRET,
        &["hosts", "remove", "edge-1"],
    ));
    assert_eq!(ec2_zone_states(ep).len(), 3);
    // Credentials.
    let created = stdout(&admin_cli(
        ep,
        ADMIN_KEY,
        ADMIN_SECRET,
        &[
            "keys",
            "create",
            "--account-id",
            "777788889999",
            "--account-name",
            "bob",
        ],
    ));
    let key = created
        .lines()
        .find_map(|l| l.strip_prefix("aws configure set aws_access_key_id "))
        .unwrap()
        .to_string();
    let secret = created
        .lines()
        .find_map(|l| l.strip_prefix("aws configure set aws_secret_access_key "))
        .unwrap()
        .to_string();
    let listed = stdout(&admin_cli(
        ep,
        ADMIN_KEY,
        ADMIN_SECRET,
        &["keys", "list", "--account-id", "777788889999"],
    ));
    assert!(
        listed.contains(&key) && !listed.contains(&secret),
        "{listed}"
    );
    // A non-admin key is refused.
    let refused = admin_cli(ep, &key, &secret, &["hosts", "list"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("UnauthorizedOperation"));
    stdout(&admin_cli(
        ep,
        ADMIN_KEY,
        ADMIN_SECRET,
        &["keys", "deactivate", &key],
    ));
    let refused = admin_cli(ep, &key, &secret, &["hosts", "list"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("AuthFailure"));
    assert!(gateway.terminate().success());
}

/// Zone states through the gateway's own signed client, as the test user.
fn ec2_zone_states(endpoint: &str) -> Vec<(String, String)> {
    ec2_zone_states_with(endpoint, USER_KEY, USER_SECRET)
}

#[test]
fn first_run_needs_no_configuration() {
    let cwd = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(cwd.path(), None);
    // The admin credential is printed once, ready for `aws configure`...
    let key = gateway
        .banner
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("aws configure set aws_access_key_id ")
        })
        .expect("key printed")
        .to_string();
    let secret = gateway
        .banner
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("aws configure set aws_secret_access_key ")
        })
        .expect("secret printed")
        .to_string();
    // ...and saved owner-only in the visible default data folder.
    let data: PathBuf = cwd.path().join("ec2-gateway-data");
    let saved = std::fs::read_to_string(data.join("admin-credentials")).unwrap();
    assert!(saved.contains(&key) && saved.contains(&secret));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("admin-credentials"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    let zones = ec2_zone_states_with(&gateway.endpoint, &key, &secret);
    assert_eq!(
        zones.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["us-east-1a", "us-east-1b", "us-east-1c"]
    );
    assert!(zones.iter().all(|(_, s)| s == "available"));
    if available("the AWS CLI", "aws", &["--version"]) {
        let output = Command::new("aws")
            .args([
                "--endpoint-url",
                &gateway.endpoint,
                "ec2",
                "describe-availability-zones",
                "--output",
                "json",
            ])
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                data.join("admin-credentials"),
            )
            .env("AWS_PROFILE", "ec2-gateway")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .output()
            .unwrap();
        assert_eq!(zone_names(&json(&output)).len(), 3);
    }
    assert!(gateway.terminate().success(), "SIGTERM is a clean exit");
    // Modes loosened while it was stopped are made owner-only again.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let loosen = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        loosen(&data, 0o755);
        loosen(&data.join("admin-credentials"), 0o644);
    }
    // A second start keeps the credential and prints none.
    let again = Gateway::start(cwd.path(), None);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("admin-credentials")), 0o600);
    }
    assert!(
        !again
            .banner
            .iter()
            .any(|l| l.contains("aws_secret_access_key")),
        "{:?}",
        again.banner
    );
    assert_eq!(
        ec2_zone_states_with(&again.endpoint, &key, &secret).len(),
        3
    );
    assert!(again.terminate().success());
}

fn ec2_zone_states_with(endpoint: &str, key: &str, secret: &str) -> Vec<(String, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let endpoint = ec2_gateway::client::Endpoint::parse(endpoint).unwrap();
        let reply = ec2_gateway::client::call(
            &endpoint,
            &common::credentials(key, secret),
            "DescribeAvailabilityZones",
            &[],
        )
        .await
        .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        ec2_gateway::client::items(&reply.body, "availabilityZoneInfo")
            .into_iter()
            .map(|z| (z["zoneName"].clone(), z["zoneState"].clone()))
            .collect()
    })
}

#[test]
fn a_bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\ndata_dir = \"d\"\nregion = \"us-east-1\"\n[[hosts]]\nname = \"h\"\navailability_zone = \"us-east-1a\"\nvcpus = -4\nmemory_mib = 1\n").unwrap();
    let output = Command::new(BINARY)
        .args(["serve", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("hosts[0].vcpus"), "{stderr}");
}

#[test]
fn trimmed_model_is_fresh() {
    if !available("botocore", "python3", &["-c", "import botocore"]) {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/trim_ec2_model.py");
    let output = Command::new("python3")
        .arg(script)
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Low (security review): the log went to stdout, the stream that carries
/// the one-time admin secret. The log now goes to stderr; stdout carries
/// only the banner.
#[test]
fn the_log_goes_to_stderr_and_stdout_holds_only_the_banner() {
    use std::io::Read;
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(BINARY)
        .arg("serve")
        .current_dir(cwd.path())
        .env("EC2_GATEWAY_LISTEN", "127.0.0.1:0")
        .env("EC2_GATEWAY_OPERATOR_LISTEN", "127.0.0.1:0")
        .env("EC2_GATEWAY_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ec2-gateway");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = Vec::new();
    loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "exited early");
        let done = line.starts_with("ec2-gateway listening on ");
        printed.push(line);
        if done {
            break;
        }
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(child.wait().unwrap().success());
    printed.push(rest);
    let printed = printed.concat();
    assert!(printed.contains("aws_secret_access_key"), "{printed}");
    assert!(
        !printed.contains(" INFO "),
        "log lines on stdout: {printed}"
    );
    assert!(log.contains(" INFO ") && log.contains("listening"), "{log}");
    assert!(!log.contains("aws_secret_access_key"), "{log}");
}

/// Issue 10: a boto3 suite written for moto/LocalStack (dummy `test` keys,
/// two regions) runs unchanged against `serve --dev`.
#[test]
fn boto3_suite_with_dummy_keys_against_dev_mode() {
    if !available("boto3", "python3", &["-c", "import boto3"]) {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(cwd.path(), None, &["--dev"]);
    assert!(
        gateway
            .banner
            .iter()
            .any(|l| l.starts_with("DEVELOPMENT MODE")),
        "{:?}",
        gateway.banner
    );
    python_script("python3", "boto3_dev_mode.py", &gateway.endpoint);
    assert!(gateway.terminate().success());
}

/// Issue 10: `serve --dev` refuses to listen beyond loopback unless told,
/// before binding or writing anything.
#[test]
fn dev_mode_refuses_a_non_loopback_address() {
    let cwd = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .args(["serve", "--dev"])
        .current_dir(cwd.path())
        .env("EC2_GATEWAY_LISTEN", "0.0.0.0:0")
        .env("EC2_GATEWAY_OPERATOR_LISTEN", "127.0.0.1:0")
        .env("EC2_GATEWAY_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
    assert!(
        !cwd.path().join("ec2-gateway-data").exists(),
        "nothing is written before the refusal"
    );
}
