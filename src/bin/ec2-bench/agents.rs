//! `ec2-bench --agents N`: the scale simulation of a cluster with N compute
//! agents alive at once, all simulated by this process.
//!
//! The operator makes one key per agent (AdminCreateAgentKey), each agent
//! registers its host (AgentRegister, 16 zones) and then heartbeats every
//! `--agent-heartbeat-secs`, paced evenly over the interval, through both
//! gateways. While they do, one client measures DescribeAvailabilityZones
//! and one measures a placement (RunInstances with DryRun: the scheduler
//! runs over every host, nothing is committed) and real launches. The etcd
//! load is the cluster's revisions per second over the phase (every
//! heartbeat and launch is one transaction), read with etcdctl.

use crate::load::{error_code, signed_request, Connection, Report, Target};
use ec2_gateway::auth::signer::SigningCredentials;
use ec2_gateway::secret::Secret;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Zones the simulated hosts register in.
const ZONES: &str = "abcdefghijklmnop";

/// Connections used to make keys, register and heartbeat.
const WORKERS: usize = 16;

/// What the simulation measured.
pub struct Simulation {
    pub agents: usize,
    pub heartbeat: Duration,
    pub setup_seconds: f64,
    pub heartbeats: Report,
    /// How late the latest heartbeat left, against its schedule.
    pub worst_lag_ms: f64,
    pub zones: Report,
    pub available_zones: usize,
    pub placements: Report,
    /// DescribeInstances of one instance: what any request that catches up
    /// with the cluster pays besides its own work (set against placements).
    pub by_id: Report,
    pub launches: Report,
    /// The cluster's revisions per second over the phase.
    pub etcd_writes_per_sec: Option<f64>,
}

/// Errors an SDK sends again (after a pause), as the simulation does.
const RETRIED: [&str; 2] = ["ServiceUnavailable", "RequestLimitExceeded"];

/// One call on a kept connection, sent again up to 4 times on a retriable
/// error; the body of a 200, or the error code.
async fn call(
    connection: &mut Connection,
    target: &Target,
    params: &[(String, String)],
) -> Result<String, String> {
    let mut pause = Duration::from_millis(50);
    for _ in 0..4 {
        match call_once(connection, target, params).await {
            Err(code) if RETRIED.contains(&code.as_str()) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            other => return other,
        }
    }
    call_once(connection, target, params).await
}

async fn call_once(
    connection: &mut Connection,
    target: &Target,
    params: &[(String, String)],
) -> Result<String, String> {
    let (path, headers, body) = signed_request(target, params);
    let (status, bytes, _) = connection
        .send(&path, &headers, body)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if status == 200 {
        Ok(text)
    } else {
        Err(error_code(status, &bytes))
    }
}

fn text_of(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let rest = body.split(&open).nth(1)?;
    Some(rest.split('<').next()?.to_string())
}

fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Makes the agents' keys and registers their hosts; answers each agent's
/// signing credentials.
async fn set_up(
    admin: &Target,
    authorities: &[String],
    agents: usize,
) -> Result<Vec<SigningCredentials>, String> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let authority = authorities[worker % authorities.len()].clone();
        let admin = Target {
            authority: authority.clone(),
            ..admin.clone()
        };
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(&authority)
                .await
                .map_err(|e| e.to_string())?;
            let mut made = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= agents {
                    return Ok::<_, String>(made);
                }
                let host = format!("sim-{n:05}");
                let created = call(
                    &mut connection,
                    &admin,
                    &params(&[("Action", "AdminCreateAgentKey"), ("HostName", &host)]),
                )
                .await
                .map_err(|e| format!("AdminCreateAgentKey {host}: {e}"))?;
                let credentials = SigningCredentials {
                    access_key_id: text_of(&created, "accessKeyId").ok_or("no key id")?,
                    secret: Secret::new(text_of(&created, "secretAccessKey").ok_or("no secret")?),
                    ..admin.credentials.clone()
                };
                let agent = Target {
                    credentials: credentials.clone(),
                    ..admin.clone()
                };
                let zone = format!("us-east-1{}", &ZONES[n % ZONES.len()..][..1]);
                let address = format!("10.{}.{}.{}:7000", n >> 16, (n >> 8) & 255, n & 255);
                call(
                    &mut connection,
                    &agent,
                    &params(&[
                        ("Action", "AgentRegister"),
                        ("AvailabilityZone", &zone),
                        ("Vcpus", "64"),
                        ("MemoryMib", "262144"),
                        ("Address", &address),
                        ("AgentVersion", "ec2-bench"),
                    ]),
                )
                .await
                .map_err(|e| format!("AgentRegister {host}: {e}"))?;
                made.push((n, credentials));
            }
        }));
    }
    let mut all = Vec::with_capacity(agents);
    for task in tasks {
        all.extend(task.await.map_err(|e| e.to_string())??);
    }
    all.sort_by_key(|(n, _)| *n);
    Ok(all.into_iter().map(|(_, c)| c).collect())
}

/// Every agent heartbeats once per `interval` until `until`, agent `n`
/// at `n / agents` of the interval; answers the heartbeats' report and the
/// worst lag behind the schedule.
async fn heartbeat(
    template: &Target,
    authorities: &[String],
    agents: Arc<Vec<SigningCredentials>>,
    interval: Duration,
    start: Instant,
    until: Instant,
) -> (Report, f64) {
    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let authority = authorities[worker % authorities.len()].clone();
        let template = Target {
            authority: authority.clone(),
            ..template.clone()
        };
        let agents = agents.clone();
        tasks.push(tokio::spawn(async move {
            let mut report = Report::default();
            let mut worst_lag = Duration::ZERO;
            let Ok(mut connection) = Connection::open(&authority).await else {
                *report.errors.entry("connect".into()).or_default() += 1;
                return (report, worst_lag);
            };
            let count = agents.len();
            let beat = params(&[("Action", "AgentHeartbeat")]);
            'rounds: for round in 0u32.. {
                for n in (worker..count).step_by(WORKERS) {
                    let due = start + interval * round + interval.mul_f64(n as f64 / count as f64);
                    if due >= until {
                        break 'rounds;
                    }
                    let now = Instant::now();
                    if due > now {
                        tokio::time::sleep(due - now).await;
                    } else {
                        worst_lag = worst_lag.max(now - due);
                    }
                    let agent = Target {
                        credentials: agents[n].clone(),
                        ..template.clone()
                    };
                    let sent = Instant::now();
                    match call(&mut connection, &agent, &beat).await {
                        Ok(_) => {
                            report.requests += 1;
                            report.latencies_us.push(sent.elapsed().as_micros() as u64);
                        }
                        Err(code) => *report.errors.entry(code).or_default() += 1,
                    }
                }
            }
            (report, worst_lag)
        }));
    }
    let mut all = Report {
        seconds: (until - start).as_secs_f64(),
        ..Report::default()
    };
    let mut worst = Duration::ZERO;
    for task in tasks {
        if let Ok((report, lag)) = task.await {
            all.requests += report.requests;
            all.latencies_us.extend(report.latencies_us);
            for (code, n) in report.errors {
                *all.errors.entry(code).or_default() += n;
            }
            worst = worst.max(lag);
        }
    }
    (all, worst.as_secs_f64() * 1000.0)
}

/// Sends `request` back to back on one connection from `from` to `until`,
/// a pause of `pause` between calls; `observe` sees each 200's body.
async fn sequential(
    target: Target,
    request: Vec<(String, String)>,
    from: Instant,
    until: Instant,
    pause: Duration,
    expected_code: Option<&'static str>,
) -> (Report, String) {
    let mut report = Report {
        seconds: (until - from).as_secs_f64(),
        ..Report::default()
    };
    let mut last = String::new();
    let Ok(mut connection) = Connection::open(&target.authority).await else {
        *report.errors.entry("connect".into()).or_default() += 1;
        return (report, last);
    };
    tokio::time::sleep(from.saturating_duration_since(Instant::now())).await;
    while Instant::now() < until {
        let sent = Instant::now();
        let answer = call(&mut connection, &target, &request).await;
        let took = sent.elapsed().as_micros() as u64;
        match (answer, expected_code) {
            (Ok(body), None) => {
                report.requests += 1;
                report.latencies_us.push(took);
                last = body;
            }
            (Err(code), Some(expected)) if code == expected => {
                report.requests += 1;
                report.latencies_us.push(took);
            }
            (Ok(_), Some(_)) => *report.errors.entry("answered 200".into()).or_default() += 1,
            (Err(code), _) => *report.errors.entry(code).or_default() += 1,
        }
        tokio::time::sleep(pause).await;
    }
    (report, last)
}

/// The cluster's current revision, from `etcdctl endpoint status`.
fn etcd_revision(endpoint: &str) -> Option<u64> {
    let output = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "endpoint", "status", "-w", "json"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split("\"revision\":")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The whole simulation (see the module documentation): `admin` signs as
/// an administrator, `user` launches.
#[allow(clippy::too_many_arguments)]
pub async fn simulate(
    admin: &Target,
    user: &Target,
    authorities: &[String],
    etcd_endpoint: Option<&str>,
    agents: usize,
    interval: Duration,
    duration: Duration,
) -> Result<Simulation, String> {
    let started = Instant::now();
    let credentials = Arc::new(set_up(admin, authorities, agents).await?);
    let setup_seconds = started.elapsed().as_secs_f64();
    eprintln!("[agents] {agents} keys made and hosts registered in {setup_seconds:.0} s");
    let start = Instant::now();
    let until = start + duration;
    // Measured once every agent has heartbeated once on schedule.
    let from = start + interval.min(duration / 2);
    let revision_before = etcd_endpoint.and_then(etcd_revision);
    let phase_started = Instant::now();
    let zones = tokio::spawn(sequential(
        user.clone(),
        params(&[("Action", "DescribeAvailabilityZones")]),
        from,
        until,
        Duration::ZERO,
        None,
    ));
    let launch = |dry_run: bool| {
        let mut request = params(&[
            ("Action", "RunInstances"),
            ("ImageId", crate::IMAGE),
            ("InstanceType", "t2.nano"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
        ]);
        if dry_run {
            request.push(("DryRun".into(), "true".into()));
        }
        request
    };
    let placements = tokio::spawn(sequential(
        user.clone(),
        launch(true),
        from,
        until,
        Duration::from_millis(10),
        Some("DryRunOperation"),
    ));
    let launches = tokio::spawn(sequential(
        user.clone(),
        launch(false),
        from,
        until,
        Duration::from_millis(100),
        None,
    ));
    let first = crate::load::call(user, &launch(false)).await?;
    let instance = text_of(&first, "instanceId").ok_or("no instance launched")?;
    let by_id = tokio::spawn(sequential(
        user.clone(),
        params(&[("Action", "DescribeInstances"), ("InstanceId.1", &instance)]),
        from,
        until,
        Duration::from_millis(10),
        None,
    ));
    let (heartbeats, worst_lag_ms) =
        heartbeat(admin, authorities, credentials, interval, start, until).await;
    let (zones, zones_body) = zones.await.map_err(|e| e.to_string())?;
    let (placements, _) = placements.await.map_err(|e| e.to_string())?;
    let (launches, _) = launches.await.map_err(|e| e.to_string())?;
    let (by_id, _) = by_id.await.map_err(|e| e.to_string())?;
    let etcd_writes_per_sec = match (revision_before, etcd_endpoint.and_then(etcd_revision)) {
        (Some(before), Some(after)) => {
            Some((after - before) as f64 / phase_started.elapsed().as_secs_f64())
        }
        _ => None,
    };
    let available_zones = zones_body.matches("<zoneState>available<").count();
    Ok(Simulation {
        agents,
        heartbeat: interval,
        setup_seconds,
        heartbeats,
        worst_lag_ms,
        zones,
        available_zones,
        placements,
        by_id,
        launches,
        etcd_writes_per_sec,
    })
}

fn cell(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.2}"))
}

/// The simulation's table.
pub fn print(simulation: &Simulation) {
    println!();
    println!(
        "Scale simulation: {} agents alive at once (set up in {:.0} s), each heartbeating every {} s; 3 etcd members and 2 gateways on this machine.",
        simulation.agents,
        simulation.setup_seconds,
        simulation.heartbeat.as_secs()
    );
    println!();
    println!("| what | per second | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|");
    for (what, report) in [
        ("AgentHeartbeat (all agents)", &simulation.heartbeats),
        ("DescribeAvailabilityZones (one client)", &simulation.zones),
        (
            "placement: RunInstances DryRun (one client)",
            &simulation.placements,
        ),
        (
            "DescribeInstances by id (one client): a request's wait to catch up",
            &simulation.by_id,
        ),
        (
            "RunInstances (one client, 10/s at most)",
            &simulation.launches,
        ),
    ] {
        let errors = if report.errors.is_empty() {
            "0".to_string()
        } else {
            format!("{:?}", report.errors)
        };
        println!(
            "| {what} | {:.0} | {} | {} | {errors} |",
            report.rate(),
            cell(report.quantile_ms(0.5)),
            cell(report.quantile_ms(0.99)),
        );
    }
    println!();
    println!(
        "Zones available in the last answer: {}. Worst heartbeat lag behind schedule: {:.0} ms. etcd writes (revisions) per second over the phase: {}.",
        simulation.available_zones,
        simulation.worst_lag_ms,
        simulation
            .etcd_writes_per_sec
            .map_or("-".into(), |w| format!("{w:.0}"))
    );
}
