//! The dashboard in a real headless browser (Debian's `chromium`): the page
//! Chromium renders shows the zones, hosts and capacities the API reports,
//! and follows a host disabled with the admin CLI. A screenshot is kept as
//! a test artefact (`target/tmp/dashboard.png`).
//!
//! Chromium runs as the probe on this machine found it must: headless, no
//! sandbox (CI runs as root), no background networking (the machine has no
//! internet), a fresh profile folder; the test starts each run in a
//! process group of its own and stops the group by its PID if it has not
//! ended within a minute.

mod common;

use common::process::{GatewayProcess, BINARY};
use common::*;
use ec2_gateway::client::{self, items};
use ec2_gateway::config::StorageBackend;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

fn chromium() -> Option<PathBuf> {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return Some(PathBuf::from(candidate));
        }
    }
    if std::env::var("EC2_GATEWAY_E2E_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("chromium is required (EC2_GATEWAY_E2E_REQUIRED=1) but not installed: apt-get install chromium");
    }
    println!("SKIPPED dashboard_browser: chromium is not installed (apt-get install chromium)");
    None
}

/// Runs Chromium headless on `url` with `extra` arguments; answers its
/// stdout. Stopped by PID after a minute.
fn run_chromium(binary: &Path, profile: &Path, extra: &[&str], url: &str) -> String {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(binary)
        // Its own process group, so that a timeout stops its helpers too.
        .process_group(0)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut out = String::new();
        let mut stdout = stdout;
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-9", "--", &format!("-{pid}")])
                .status();
            let _ = child.wait();
            panic!("chromium did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// The `data-` attributes of every element of class `class` in `dom`.
fn rows(dom: &str, class: &str) -> Vec<BTreeMap<String, String>> {
    let marker = format!("class=\"{class}\"");
    dom.split("<tr ")
        .skip(1)
        .filter(|tag| tag.split('>').next().unwrap_or("").contains(&marker))
        .map(|tag| {
            let head = tag.split('>').next().unwrap_or("");
            head.split(" data-")
                .skip(1)
                .filter_map(|attribute| {
                    let (name, rest) = attribute.split_once("=\"")?;
                    Some((name.to_string(), rest.split('"').next()?.to_string()))
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_in_chromium_what_the_api_reports() {
    let Some(chromium) = chromium() else {
        return;
    };
    let folder = tempfile::tempdir().unwrap();
    let config = folder.path().join("gateway.toml");
    std::fs::write(
        &config,
        test_config_text(&folder.path().join("data"), StorageBackend::Sled),
    )
    .unwrap();
    let gateway = GatewayProcess::start(&config);
    let operator = gateway.operator.clone().unwrap();
    let url = format!("http://{operator}/");
    let launched = client::call(
        &gateway.endpoint,
        &user(),
        "RunInstances",
        &[
            ("ImageId", IMAGE),
            ("InstanceType", "m5.large"),
            ("MinCount", "2"),
            ("MaxCount", "2"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(launched.status, 200, "{}", launched.body);

    let api_hosts = || async {
        let reply = client::call(&gateway.endpoint, &admin(), "AdminDescribeHosts", &[])
            .await
            .unwrap();
        items(&reply.body, "hostSet")
    };
    let api_zones = || async {
        let reply = client::call(&gateway.endpoint, &user(), "DescribeAvailabilityZones", &[])
            .await
            .unwrap();
        items(&reply.body, "availabilityZoneInfo")
    };
    // The page (its overview is kept two seconds) must agree with the API.
    let agrees =
        |dom: &str, hosts: &[BTreeMap<String, String>], zones: &[BTreeMap<String, String>]| {
            let shown_hosts = rows(dom, "host");
            let shown_zones = rows(dom, "zone");
            shown_hosts.len() == hosts.len()
                && shown_zones.len() == zones.len()
                && hosts.iter().all(|host| {
                    shown_hosts.iter().any(|shown| {
                        shown["host"] == host["hostName"]
                            && shown["zone"] == host["availabilityZone"]
                            && shown["vcpus"] == host["vcpus"]
                            && shown["vcpus-used"] == host["vcpusUsed"]
                            && shown["memory-mib"] == host["memoryMib"]
                            && shown["memory-mib-used"] == host["memoryMibUsed"]
                            && shown["enabled"] == (host["status"] == "enabled").to_string()
                    })
                })
                && zones.iter().all(|zone| {
                    shown_zones.iter().any(|shown| {
                        shown["zone"] == zone["zoneName"] && shown["state"] == zone["zoneState"]
                    })
                })
        };
    let profile = tempfile::tempdir().unwrap();
    let wait_for_agreement = |what: &'static str| {
        let chromium = chromium.clone();
        let profile = profile.path().to_path_buf();
        let url = url.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let hosts = api_hosts().await;
                let zones = api_zones().await;
                let dom = run_chromium(&chromium, &profile, &["--dump-dom"], &url);
                if agrees(&dom, &hosts, &zones) {
                    return (dom, hosts, zones);
                }
                assert!(
                    Instant::now() < deadline,
                    "{what}: the page never agreed with the API:\n{dom}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let (dom, hosts, zones) = wait_for_agreement("after launching").await;
    assert!(dom.contains("<h1>ec2-gateway</h1>"));
    assert_eq!(zones.len(), 3);
    let used: u32 = hosts
        .iter()
        .map(|h| h["vcpusUsed"].parse::<u32>().unwrap())
        .sum();
    assert_eq!(used, 4, "two m5.large hold 2 vCPUs each");

    // Disable us-east-1b's only host with the admin CLI: the page shows
    // it disabled and the zone unavailable, as the API does.
    let disabled = Command::new(BINARY)
        .args(["admin", "--endpoint"])
        .arg(format!("http://{}", gateway.endpoint.authority))
        .args([
            "--access-key-id",
            ADMIN_KEY,
            "--secret-access-key",
            ADMIN_SECRET,
        ])
        .args(["hosts", "disable", "node-b1", "--reason", "maintenance"])
        .output()
        .unwrap();
    assert!(disabled.status.success(), "{disabled:?}");
    let (dom, _, zones) = wait_for_agreement("after disabling node-b1").await;
    let node = rows(&dom, "host")
        .into_iter()
        .find(|h| h["host"] == "node-b1")
        .unwrap();
    assert_eq!(node["enabled"], "false");
    assert!(dom.contains("(maintenance)"));
    let zone_b = zones
        .iter()
        .find(|z| z["zoneName"] == "us-east-1b")
        .unwrap();
    assert_eq!(zone_b["zoneState"], "unavailable");

    // The screenshot, kept as the test's artefact.
    let artefact = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&artefact);
    run_chromium(
        &chromium,
        profile.path(),
        &[
            &format!("--screenshot={}", artefact.display()),
            "--window-size=1200,1250",
        ],
        &url,
    );
    let png = std::fs::read(&artefact).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    println!("dashboard screenshot: {}", artefact.display());
}
