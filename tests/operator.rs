//! The operator listener (issue 13): Prometheus metrics, health checks and
//! the dashboard's sign-in, against a real gateway process.
//!
//! The metrics must count what was answered (by action, code and status),
//! show the fleet as the API reports it, and carry no label a caller
//! chooses; `/readyz` must fail when the store (an etcd cluster) is gone;
//! off loopback, the dashboard must ask for an admin's key and secret and
//! keep its session in an HttpOnly cookie.

mod common;

use common::etcd::{etcd_binary, EtcdCluster};
use common::process::GatewayProcess;
use common::*;
use ec2_gateway::client::{self, items, text_of, Endpoint, Reply};
use ec2_gateway::config::StorageBackend;
use std::time::{Duration, Instant};

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

fn start_gateway(folder: &std::path::Path, text: String) -> GatewayProcess {
    let config = folder.join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    GatewayProcess::start(&config)
}

async fn get(operator: &str, path: &str, cookie: Option<&str>) -> Reply {
    let endpoint = Endpoint::parse(&format!("http://{operator}")).unwrap();
    let headers: Vec<(&str, String)> = cookie
        .map(|c| vec![("Cookie", c.to_string())])
        .unwrap_or_default();
    client::send(&endpoint, "GET", path, &headers, Vec::new())
        .await
        .unwrap()
}

async fn post_form(operator: &str, path: &str, form: &str) -> Reply {
    let endpoint = Endpoint::parse(&format!("http://{operator}")).unwrap();
    client::send(
        &endpoint,
        "POST",
        path,
        &[(
            "Content-Type",
            "application/x-www-form-urlencoded".to_string(),
        )],
        form.as_bytes().to_vec(),
    )
    .await
    .unwrap()
}

/// The value of the sample `name{labels}` in a metrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

/// The sum of every sample of metric `name`.
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_answers_and_show_the_fleet_as_the_api_does() {
    let folder = tempfile::tempdir().unwrap();
    let gateway = start_gateway(
        folder.path(),
        test_config_text(&folder.path().join("data"), StorageBackend::Sled),
    );
    let operator = gateway
        .operator
        .clone()
        .expect("the operator listener is on");
    let endpoint = &gateway.endpoint;

    let launched = client::call(
        endpoint,
        &user(),
        "RunInstances",
        &[
            ("ImageId", IMAGE),
            ("InstanceType", "t3.micro"),
            ("MinCount", "3"),
            ("MaxCount", "3"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(launched.status, 200, "{}", launched.body);
    let ids: Vec<String> = items(&launched.body, "instancesSet")
        .into_iter()
        .map(|item| item["instanceId"].clone())
        .collect();
    assert_eq!(ids.len(), 3);
    let refused = client::call(
        endpoint,
        &user(),
        "DescribeInstances",
        &[("InstanceId.1", "i-nonsense")],
    )
    .await
    .unwrap();
    assert_eq!(refused.status, 400);
    let forged = client::call(
        endpoint,
        &credentials(USER_KEY, "not-the-secret-at-all-000000000000000000"),
        "DescribeRegions",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(forged.status, 403);
    let unknown = client::call(endpoint, &user(), "MakeMeASandwich", &[])
        .await
        .unwrap();
    assert_eq!(unknown.status, 400);

    // The lifecycle boots them at once (boot_delay_secs = 0); the overview
    // is kept two seconds, so wait until a scrape shows them running.
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let reply = get(&operator, "/metrics", None).await;
        assert_eq!(reply.status, 200);
        assert!(reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        if total(&reply.body, "ec2_instances") == 3.0
            && sample(&reply.body, "ec2_lifecycle_due") == Some(0.0)
            && reply.body.contains("state=\"running\"")
        {
            break reply.body;
        }
        assert!(Instant::now() < deadline, "{}", reply.body);
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    assert_eq!(
        sample(
            &metrics,
            "ec2_requests_total{action=\"RunInstances\",code=\"Success\",status=\"200\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "ec2_requests_total{action=\"DescribeInstances\",code=\"InvalidInstanceID.Malformed\",status=\"400\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "ec2_signature_failures_total{kind=\"SignatureDoesNotMatch\"}"
        ),
        Some(1.0)
    );
    // An action the gateway does not know is counted under `other`, never
    // under the name the caller sent.
    assert_eq!(
        sample(
            &metrics,
            "ec2_requests_total{action=\"other\",code=\"InvalidAction\",status=\"400\"}"
        ),
        Some(1.0)
    );
    assert!(!metrics.contains("MakeMeASandwich"));
    assert_eq!(
        sample(
            &metrics,
            "ec2_request_duration_seconds_count{action=\"RunInstances\"}"
        ),
        Some(1.0)
    );
    assert!(sample(&metrics, "ec2_store_commit_duration_seconds_count").unwrap() >= 1.0);
    // No instance or account id is a label.
    for id in &ids {
        assert!(!metrics.contains(id.as_str()), "{id} in the metrics");
    }
    assert!(!metrics.contains(USER_ACCOUNT));

    // The fleet as the admin API reports it: every host's vCPUs used and
    // free, and the instances per zone.
    let hosts = client::call(endpoint, &admin(), "AdminDescribeHosts", &[])
        .await
        .unwrap();
    let hosts = items(&hosts.body, "hostSet");
    assert_eq!(hosts.len(), 4);
    let mut used_total = 0.0;
    for host in &hosts {
        let labels = format!(
            "{{host=\"{}\",zone=\"{}\"}}",
            host["hostName"], host["availabilityZone"]
        );
        let used: f64 = host["vcpusUsed"].parse().unwrap();
        let vcpus: f64 = host["vcpus"].parse().unwrap();
        assert_eq!(
            sample(&metrics, &format!("ec2_host_vcpus_used{labels}")),
            Some(used)
        );
        assert_eq!(
            sample(&metrics, &format!("ec2_host_vcpus_free{labels}")),
            Some(vcpus - used)
        );
        assert_eq!(sample(&metrics, &format!("ec2_host_up{labels}")), Some(1.0));
        assert!(sample(&metrics, &format!("ec2_host_heartbeat_age_seconds{labels}")).is_some());
        used_total += used;
    }
    assert_eq!(used_total, 6.0, "three t3.micro hold 2 vCPUs each");
    let described = client::call(endpoint, &user(), "DescribeInstances", &[])
        .await
        .unwrap();
    let mut per_zone = std::collections::BTreeMap::<String, f64>::new();
    for zone in text_all(&described.body, "availabilityZone") {
        *per_zone.entry(zone).or_default() += 1.0;
    }
    for (zone, count) in per_zone {
        assert_eq!(
            sample(
                &metrics,
                &format!("ec2_instances{{zone=\"{zone}\",state=\"running\"}}")
            ),
            Some(count)
        );
    }
    let zones = client::call(endpoint, &user(), "DescribeAvailabilityZones", &[])
        .await
        .unwrap();
    for zone in items(&zones.body, "availabilityZoneInfo") {
        assert_eq!(
            sample(
                &metrics,
                &format!("ec2_zone_available{{zone=\"{}\"}}", zone["zoneName"])
            ),
            Some(if zone["zoneState"] == "available" {
                1.0
            } else {
                0.0
            })
        );
    }

    // Scrapes at once (two Prometheus servers) each see whole numbers:
    // every zone's sum equals its hosts' values.
    let scrapes: Vec<_> = (0..8)
        .map(|_| {
            let operator = operator.clone();
            tokio::spawn(async move { get(&operator, "/metrics", None).await.body })
        })
        .collect();
    for scrape in scrapes {
        let text = scrape.await.unwrap();
        for zone in ["us-east-1a", "us-east-1b", "us-east-1c"] {
            let hosts: f64 = text
                .lines()
                .filter(|l| {
                    l.starts_with("ec2_host_vcpus_used{") && l.contains(&format!("zone=\"{zone}\""))
                })
                .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
                .sum();
            assert_eq!(
                sample(&text, &format!("ec2_zone_vcpus_used{{zone=\"{zone}\"}}")),
                Some(hosts),
                "{text}"
            );
        }
    }

    // Health: the process answers, and the store does.
    let health = get(&operator, "/healthz", None).await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = get(&operator, "/readyz", None).await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    // On loopback the dashboard needs no sign-in.
    let page = get(&operator, "/", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-zone=\"us-east-1a\""));
    assert_eq!(get(&operator, "/nothing-here", None).await.status, 404);
    // ... but only to requests addressed to an IP address or localhost: a
    // page elsewhere cannot read it through a name pointed at 127.0.0.1.
    let port = operator.rsplit(':').next().unwrap();
    let endpoint = Endpoint::parse(&format!("http://{operator}")).unwrap();
    for (host, status) in [
        (format!("evil.example:{port}"), 421),
        (format!("localhost:{port}"), 200),
        (format!("[::1]:{port}"), 200),
    ] {
        let reply = client::send(&endpoint, "GET", "/", &[("Host", host.clone())], Vec::new())
            .await
            .unwrap();
        assert_eq!(reply.status, status, "{host}");
    }
    // Metrics stay readable by any name (a scraper's DNS name).
    let reply = client::send(
        &endpoint,
        "GET",
        "/metrics",
        &[("Host", format!("gateway.internal:{port}"))],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
}

/// `operator_login = true` asks for a sign-in on loopback too (behind a
/// reverse proxy on the same machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_login_asks_for_a_sign_in_on_loopback_too() {
    let folder = tempfile::tempdir().unwrap();
    let text = test_config_text(&folder.path().join("data"), StorageBackend::Memory).replace(
        "operator_listen = \"127.0.0.1:0\"",
        "operator_listen = \"127.0.0.1:0\"\noperator_login = true",
    );
    let gateway = start_gateway(folder.path(), text);
    let operator = gateway.operator.clone().unwrap();
    let page = get(&operator, "/", None).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.headers["location"], "/login");
}

/// Every text of elements named `name`.
fn text_all(xml: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(text, _)| text.to_string()))
        .collect()
}

/// `/readyz` answers 503 once the etcd cluster behind the gateway is gone,
/// while `/healthz` (the process) still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_etcd_cluster() {
    let Some(binary) = etcd_binary("readiness_follows_the_etcd_cluster") else {
        return;
    };
    let mut cluster = EtcdCluster::start(&binary, 1);
    let folder = tempfile::tempdir().unwrap();
    let text = test_config_text(&folder.path().join("data"), StorageBackend::Etcd).replace(
        "region = \"us-east-1\"",
        &format!(
            "region = \"us-east-1\"\n[etcd]\nendpoints = [\"{}\"]\nprefix = \"ready-test/\"\nmax_txn_ops = 128\n",
            cluster.endpoints()[0]
        ),
    );
    // The [etcd] table must come after the top-level keys.
    let text = reorder_etcd_table(&text);
    let gateway = start_gateway(folder.path(), text);
    let operator = gateway.operator.clone().unwrap();
    let ready = get(&operator, "/readyz", None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    cluster.kill(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = get(&operator, "/readyz", None).await;
        if ready.status == 503 {
            assert!(ready.body.starts_with("not ready"), "{}", ready.body);
            break;
        }
        assert!(Instant::now() < deadline, "still ready without etcd");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(&operator, "/healthz", None).await.status, 200);
    drop(gateway);
}

/// Moves the `[etcd]` table inserted after `region` to the end of the
/// top-level keys (before the first other table).
fn reorder_etcd_table(text: &str) -> String {
    let start = text.find("[etcd]").unwrap();
    let end =
        text[start..].find("max_txn_ops = 128\n").unwrap() + start + "max_txn_ops = 128\n".len();
    let table = &text[start..end];
    let rest = format!("{}{}", &text[..start], &text[end..]);
    let first_table = rest.find("\n[").unwrap() + 1;
    format!(
        "{}{}\n{}",
        &rest[..first_table],
        table,
        &rest[first_table..]
    )
}

/// Off loopback, the dashboard asks for an admin's access key and secret,
/// keeps the session in an HttpOnly cookie, and ends it on sign-out or
/// when the key is deactivated. Metrics and health stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_dashboard_asks_an_admin_to_sign_in() {
    let folder = tempfile::tempdir().unwrap();
    let text = test_config_text(&folder.path().join("data"), StorageBackend::Sled).replace(
        "operator_listen = \"127.0.0.1:0\"",
        "operator_listen = \"0.0.0.0:0\"",
    );
    let gateway = start_gateway(folder.path(), text);
    let port = gateway
        .operator
        .clone()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let operator = format!("127.0.0.1:{port}");

    let page = get(&operator, "/", None).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.headers["location"], "/login");
    let form = get(&operator, "/login", None).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("name=\"secret_access_key\""));
    assert_eq!(get(&operator, "/metrics", None).await.status, 200);
    assert_eq!(get(&operator, "/healthz", None).await.status, 200);

    let encode = |s: &str| s.replace('+', "%2B").replace('/', "%2F");
    // A user's key, a wrong secret, an unknown key: refused alike.
    for (key, secret) in [
        (USER_KEY, USER_SECRET),
        (ADMIN_KEY, "wrong-secret"),
        ("AKIDNOSUCHKEY0000000", ADMIN_SECRET),
    ] {
        let refused = post_form(
            &operator,
            "/login",
            &format!("access_key_id={key}&secret_access_key={}", encode(secret)),
        )
        .await;
        assert_eq!(refused.status, 401, "{key}");
        assert!(refused.headers.get("set-cookie").is_none());
    }

    // A second admin key, so that deactivating it leaves the first.
    let created = client::call(
        &gateway.endpoint,
        &admin(),
        "AdminCreateAccessKey",
        &[("AccountId", ADMIN_ACCOUNT), ("Admin", "true")],
    )
    .await
    .unwrap();
    assert_eq!(created.status, 200, "{}", created.body);
    let second_key = text_of(&created.body, "accessKeyId").unwrap();
    let second_secret = text_of(&created.body, "secretAccessKey").unwrap();

    let mut cookies = Vec::new();
    for (key, secret) in [
        (ADMIN_KEY, ADMIN_SECRET),
        (second_key.as_str(), second_secret.as_str()),
    ] {
        let signed_in = post_form(
            &operator,
            "/login",
            &format!("access_key_id={key}&secret_access_key={}", encode(secret)),
        )
        .await;
        assert_eq!(signed_in.status, 303);
        let cookie = signed_in.headers["set-cookie"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        cookies.push(cookie.split(';').next().unwrap().to_string());
    }
    let page = get(&operator, "/", Some(&cookies[0])).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-host=\"node-a1\""));
    assert!(page.body.contains("Sign out"));
    // A forged token is no session.
    let forged = format!("ec2gw_session={}", "0".repeat(64));
    assert_eq!(get(&operator, "/", Some(&forged)).await.status, 303);

    // Deactivating the second key ends its session.
    assert_eq!(get(&operator, "/", Some(&cookies[1])).await.status, 200);
    let deactivated = client::call(
        &gateway.endpoint,
        &admin(),
        "AdminDeactivateAccessKey",
        &[("AccessKeyId", second_key.as_str())],
    )
    .await
    .unwrap();
    assert_eq!(deactivated.status, 200);
    assert_eq!(get(&operator, "/", Some(&cookies[1])).await.status, 303);

    // Signing out ends the first.
    let endpoint = Endpoint::parse(&format!("http://{operator}")).unwrap();
    let out = client::send(
        &endpoint,
        "POST",
        "/logout",
        &[("Cookie", cookies[0].clone())],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(out.status, 303);
    assert!(out.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(get(&operator, "/", Some(&cookies[0])).await.status, 303);

    // A form posted from another site is refused (login CSRF).
    let cross = client::send(
        &endpoint,
        "POST",
        "/login",
        &[
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("Origin", "http://evil.example".to_string()),
        ],
        format!(
            "access_key_id={ADMIN_KEY}&secret_access_key={}",
            encode(ADMIN_SECRET)
        )
        .into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(cross.status, 403);

    // Guessing is limited: after 20 refusals a minute, even the right
    // secret waits.
    let mut refused = 0;
    loop {
        let reply = post_form(
            &operator,
            "/login",
            &format!("access_key_id={ADMIN_KEY}&secret_access_key=guess{refused}"),
        )
        .await;
        if reply.status == 429 {
            break;
        }
        assert_eq!(reply.status, 401);
        refused += 1;
        assert!(refused <= 20, "no limit on guesses");
    }
    assert!(
        refused >= 15,
        "the limit counts the earlier refusals too: {refused}"
    );
    let right = post_form(
        &operator,
        "/login",
        &format!(
            "access_key_id={ADMIN_KEY}&secret_access_key={}",
            encode(ADMIN_SECRET)
        ),
    )
    .await;
    assert_eq!(right.status, 429);
}
