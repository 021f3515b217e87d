//! `ec2-bench`: signed load against ec2-gateway, side by side with moto and
//! with a bare-hyper ceiling.
//!
//! It starts the servers itself on loopback (the gateway binary beside this
//! one, moto's `moto_server` with `--compare moto`, and a minimal hyper server
//! answering a fixed 1 KiB XML body as the ceiling), seeds instances, runs each
//! scenario with N keep-alive connections for a fixed time after a warm-up,
//! signing every request (SigV4 by default, SigV2 with `--sigv2`), and prints
//! one table: requests/s, p50/p90/p99/max latency, errors by code, the
//! gateway's RSS, and the ratio to moto. `--fail-on-errors` makes any error
//! fatal (the CI regression guard runs `--quick` with it).
//!
//! `--cluster` runs the same programme a second time on a cluster started
//! on this machine (3 etcd members, 2 gateways on etcd, each connection to
//! one of them in turn) and prints both side by side.

mod agents;
mod load;
mod servers;

use clap::Parser;
use ec2_gateway::auth::signer::SigningCredentials;
use ec2_gateway::secret::Secret;
use load::{Report, Signing, Target};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ec2-bench",
    about = "Signed load against ec2-gateway, side by side with moto"
)]
struct Cli {
    /// Also run every scenario against moto's server (`moto`).
    #[arg(long)]
    compare: Option<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    /// Warm-up seconds per scenario (not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Sign with SigV2 instead of SigV4.
    #[arg(long)]
    sigv2: bool,
    /// Short runs and small seeds: checks the harness, not the speed.
    #[arg(long)]
    quick: bool,
    /// The numbers of instances the listings and the large launches run
    /// at (the scale curve: `--sizes 10,1000,10000,100000`; past 40,000
    /// the bench launches into subnets it creates, the default subnets
    /// holding 65,408 addresses per account).
    #[arg(long, value_delimiter = ',', default_values_t = [10, 1000, 10000])]
    sizes: Vec<usize>,
    /// Exit with failure when any request failed.
    #[arg(long)]
    fail_on_errors: bool,
    /// Only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Sign a pool of requests per connection before measuring and send
    /// them over and over: the client does no cryptography while it
    /// measures (also measures the bare-hyper ceiling, with `--only`).
    #[arg(long)]
    presigned: bool,
    /// The ec2-gateway binary (default: beside this one).
    #[arg(long)]
    gateway_binary: Option<std::path::PathBuf>,
    /// Measure an already running gateway (host:port) instead of starting one;
    /// it must accept the benchmark keys (AKIDEXAMPLE and AKIDEXAMPLEWRITER).
    #[arg(long)]
    endpoint: Option<String>,
    /// How long the started gateway keeps terminated instances (seconds).
    #[arg(long, default_value_t = 3600)]
    retention_secs: u64,
    /// The PID of the `--endpoint` server, to report its peak RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also run every scenario on 3 etcd members and 2 gateways (a gateway
    /// built with `--features etcd`, and Debian's etcd-server).
    #[arg(long)]
    cluster: bool,
    /// Instead of the programme, the scale simulation: this many compute
    /// agents registered and heartbeating at once on the cluster.
    #[arg(long, default_value_t = 0)]
    agents: usize,
    /// How often each simulated agent heartbeats (seconds).
    #[arg(long, default_value_t = 30)]
    agent_heartbeat_secs: u64,
    /// How long the simulated agents heartbeat while zones and placements
    /// are measured (seconds).
    #[arg(long, default_value_t = 60)]
    agent_phase_secs: u64,
    /// The ceiling answers a body of about this many bytes instead of
    /// 1 KiB (a full listing of 10,000 instances is about 26 MB): the
    /// floor of so large an answer with this client on this machine, to
    /// set `describe-instances full` against.
    #[arg(long)]
    ceiling_bytes: Option<usize>,
    /// Serve the bare-hyper ceiling on this address and do nothing else.
    #[arg(long, hide = true)]
    ceiling_server: Option<String>,
}

impl Cli {
    /// The sizes the programme runs at (small ones with `--quick`).
    fn sizes(&self) -> Vec<usize> {
        if self.quick {
            vec![10, 100, 300]
        } else {
            self.sizes.clone()
        }
    }
}

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const WRITER_KEY: &str = "AKIDEXAMPLEWRITER";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const ADMIN_KEY: &str = "AKIDEXAMPLEADMIN";
const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// One measured line of the table.
struct Row {
    scenario: String,
    gateway: Report,
    gateway_rss_mib: Option<f64>,
    moto: Option<Report>,
    /// The cluster's figures, and its gateways' peak RSS together.
    cluster: Option<(Report, Option<f64>)>,
}

/// Who a programme sends as: listings in the reader account, launches in
/// the writer account, and launches spread over the fleet accounts.
struct Targets {
    reader: Target,
    writer: Target,
    fleet: Target,
}

impl Targets {
    fn new(authorities: &[String], credentials: &SigningCredentials, signing: Signing) -> Self {
        let mut reader = Target::new(authorities[0].clone(), credentials.clone(), signing);
        reader.more_authorities = authorities[1..].to_vec();
        let as_key = |key: String| SigningCredentials {
            access_key_id: key,
            ..credentials.clone()
        };
        let writer = Target {
            credentials: as_key(WRITER_KEY.into()),
            ..reader.clone()
        };
        let fleet = Target {
            credentials: as_key(format!("{}0", servers::FLEET_KEY)),
            more_credentials: (1..servers::FLEET_ACCOUNTS)
                .map(|n| as_key(format!("{}{n}", servers::FLEET_KEY)))
                .collect(),
            ..reader.clone()
        };
        Self {
            reader,
            writer,
            fleet,
        }
    }
}

/// Instances launched into the default subnets before the seed moves to
/// subnets of its own (the sixteen default subnets hold 65,408 addresses;
/// what is left is for the launches measured afterwards).
const DEFAULT_SUBNETS_ROOM: usize = 40_000;

/// Instances the seed puts in each subnet it creates, at most (a /20
/// holds 4,091).
const PER_CREATED_SUBNET: usize = 4_000;

/// Instances per seeding launch; past the default subnets, consecutive
/// launches go to the sixteen created subnets in turn, one per zone, so
/// that every zone's host stays as full as the others and the launches
/// measured afterwards spread over every zone's default subnet.
const SEED_BATCH: usize = 500;

/// The VPC and subnets the seed created, for accounts past
/// [`DEFAULT_SUBNETS_ROOM`].
#[derive(Default)]
struct Subnets {
    ids: Vec<String>,
}

impl Subnets {
    /// The subnet the instance numbered `have` goes in (`None`: a default
    /// subnet), with the room left in its turn; the subnets (/20s of
    /// 10.0.0.0/16, one per zone) are created on first use.
    async fn for_instance(
        &mut self,
        target: &Target,
        have: usize,
    ) -> Result<(Option<String>, usize), String> {
        let Some(beyond) = have.checked_sub(DEFAULT_SUBNETS_ROOM) else {
            return Ok((None, DEFAULT_SUBNETS_ROOM - have));
        };
        let turn = beyond / SEED_BATCH;
        if (turn / 16 + 1) * SEED_BATCH > PER_CREATED_SUBNET {
            return Err(format!(
                "the seed's subnets hold {} instances at most",
                DEFAULT_SUBNETS_ROOM + 16 * PER_CREATED_SUBNET
            ));
        }
        if self.ids.is_empty() {
            let body = load::call(
                target,
                &params(&[("Action", "CreateVpc"), ("CidrBlock", "10.0.0.0/16")]),
            )
            .await?;
            let vpc = text_between(&body, "<vpcId>", "</vpcId>")?;
            for n in 0..16u8 {
                let cidr = format!("10.0.{}.0/20", u32::from(n) * 16);
                let zone = format!("us-east-1{}", (b'a' + n) as char);
                let body = load::call(
                    target,
                    &params(&[
                        ("Action", "CreateSubnet"),
                        ("VpcId", &vpc),
                        ("CidrBlock", &cidr),
                        ("AvailabilityZone", &zone),
                    ]),
                )
                .await?;
                self.ids
                    .push(text_between(&body, "<subnetId>", "</subnetId>")?);
            }
        }
        Ok((
            Some(self.ids[turn % 16].clone()),
            SEED_BATCH - beyond % SEED_BATCH,
        ))
    }
}

/// The text between the first `open` and the `close` after it.
fn text_between(body: &str, open: &str, close: &str) -> Result<String, String> {
    body.split(open)
        .nth(1)
        .and_then(|rest| rest.split(close).next())
        .map(str::to_string)
        .ok_or_else(|| format!("no {open} in the answer: {body}"))
}

/// Launches instances until `target` holds `total` (in batches of up to
/// 500: MinCount 1, so a gateway whose store limits a commit's size, etcd,
/// launches what fits and the next batch goes on). Past the default
/// subnets' room, into subnets it creates.
async fn seed(
    target: &Target,
    have: &mut usize,
    total: usize,
    subnets: &mut Subnets,
) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    while *have < total {
        // A batch stays within one subnet's turn.
        let (subnet, room) = subnets.for_instance(target, *have).await?;
        let batch = (total - *have).min(SEED_BATCH).min(room).to_string();
        let mut request = params(&[
            ("Action", "RunInstances"),
            ("ImageId", IMAGE),
            ("InstanceType", "t2.nano"),
            ("MinCount", "1"),
            ("MaxCount", &batch),
        ]);
        if let Some(subnet) = subnet {
            request.push(("SubnetId".into(), subnet));
        }
        let body = load::call(target, &request).await?;
        let launched: Vec<String> = body
            .split("<instanceId>")
            .skip(1)
            .filter_map(|s| s.split('<').next())
            .map(str::to_string)
            .collect();
        *have += launched.len();
        ids.extend(launched);
    }
    Ok(ids)
}

/// A scenario: its name and how to make each request.
struct Scenario {
    name: String,
    next: load::RequestMaker,
    /// Sees every successful answer (the churn learns launched ids from it).
    observe: Option<load::Observer>,
}

fn fixed(name: &str, request: Vec<(String, String)>) -> Scenario {
    Scenario {
        name: name.to_string(),
        next: Arc::new(move || request.clone()),
        observe: None,
    }
}

/// The run-instances and run-terminate scenarios launch one instance per call.
fn run_one() -> Vec<(String, String)> {
    params(&[
        ("Action", "RunInstances"),
        ("ImageId", IMAGE),
        ("InstanceType", "t2.nano"),
        ("MinCount", "1"),
        ("MaxCount", "1"),
    ])
}

/// Read mostly: 8 of 10 DescribeInstances by id, 1 DescribeAvailabilityZones, 1 RunInstances.
fn mixed(ids: Arc<Vec<String>>) -> Scenario {
    let counter = Arc::new(AtomicU64::new(0));
    Scenario {
        name: "mixed (80% by-id, 10% zones, 10% run)".into(),
        next: Arc::new(move || {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            match n % 10 {
                0 => params(&[("Action", "DescribeAvailabilityZones")]),
                1 => run_one(),
                _ => params(&[
                    ("Action", "DescribeInstances"),
                    ("InstanceId.1", &ids[(n as usize) % ids.len()]),
                ]),
            }
        }),
        observe: None,
    }
}

/// Alternates RunInstances and TerminateInstances of instances seeded for it.
/// Launches one instance, then terminates one it launched earlier, and so
/// on: a steady population with a stream of terminated instances.
fn churn() -> Scenario {
    let launched: Arc<std::sync::Mutex<std::collections::VecDeque<String>>> = Arc::default();
    let counter = Arc::new(AtomicU64::new(0));
    let queue = launched.clone();
    Scenario {
        name: "run-terminate churn".into(),
        next: Arc::new(move || {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let victim = if n % 2 == 1 {
                ec2_gateway::sync::lock(&queue).pop_front()
            } else {
                None
            };
            match victim {
                Some(id) => params(&[("Action", "TerminateInstances"), ("InstanceId.1", &id)]),
                None => run_one(),
            }
        }),
        observe: Some(Arc::new(move |body: &[u8]| {
            if body
                .starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<RunInstancesResponse")
            {
                let text = String::from_utf8_lossy(body);
                if let Some(id) = text
                    .split("<instanceId>")
                    .nth(1)
                    .and_then(|rest| rest.split('<').next())
                {
                    ec2_gateway::sync::lock(&launched).push_back(id.to_string());
                }
            }
        })),
    }
}

struct Plan {
    connections: usize,
    warmup: Duration,
    duration: Duration,
}

async fn measure(target: &Target, plan: &Plan, scenario: &Scenario, timeout: Duration) -> Report {
    load::run(
        target,
        plan.connections,
        plan.warmup,
        plan.duration,
        timeout,
        scenario.next.clone(),
        scenario.observe.clone(),
    )
    .await
}

/// Runs the whole programme against one server; `rss` reads its memory.
/// Listings run in a reader account seeded to 10, 1,000 and 10,000
/// instances; the write scenarios run in a writer account that holds 10
/// instances at the start (and once more in the reader account at 10,000),
/// so launches never inflate the listings.
#[allow(clippy::too_many_arguments)]
async fn programme(
    targets: &Targets,
    plan: &Plan,
    sizes: &[usize],
    only: &[String],
    timeout: Duration,
    rss: &dyn Fn() -> Option<f64>,
    label: &str,
    skip_slow: bool,
) -> Result<Vec<(String, Report, Option<f64>)>, String> {
    let (reader, writer) = (&targets.reader, &targets.writer);
    let (smallest, largest) = match (sizes.first(), sizes.last()) {
        (Some(smallest), Some(largest)) => (*smallest, *largest),
        _ => return Err("--sizes names no size".into()),
    };
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| name.starts_with(o.as_str()));
    let mut rows = Vec::new();
    let mut record = |name: String, report: Report| {
        eprintln!(
            "[{label}] {name}: {:.1} req/s, p50 {:.2} ms, errors {}",
            report.rate(),
            report.quantile_ms(0.5).unwrap_or(0.0),
            report.error_count()
        );
        rows.push((name, report, rss()));
    };
    let zones = fixed(
        "describe-zones",
        params(&[("Action", "DescribeAvailabilityZones")]),
    );
    if wanted("describe-zones") {
        record(
            zones.name.clone(),
            measure(reader, plan, &zones, timeout).await,
        );
    }
    let mut have = 0usize;
    let mut reader_ids = Vec::new();
    let mut subnets = Subnets::default();
    for &size in sizes {
        reader_ids.extend(seed(reader, &mut have, size, &mut subnets).await?);
        let by_id = fixed(
            &format!("describe-instances by id @{size}"),
            params(&[
                ("Action", "DescribeInstances"),
                ("InstanceId.1", &reader_ids[0]),
            ]),
        );
        let full = fixed(
            &format!("describe-instances full @{size}"),
            params(&[("Action", "DescribeInstances")]),
        );
        let paged = fixed(
            &format!("describe-instances MaxResults=100 @{size}"),
            params(&[("Action", "DescribeInstances"), ("MaxResults", "100")]),
        );
        for scenario in [by_id, full, paged] {
            // moto needs about half a minute per full listing of 1,000
            // instances; at 10,000 every call outlives any timeout.
            let hopeless = skip_slow && size >= 10000 && !scenario.name.contains("by id");
            // A full listing past 10,000 takes seconds per call.
            if size > 10000 && scenario.name.contains("full") {
                continue;
            }
            if hopeless {
                eprintln!(
                    "[{label}] {}: not measured (each call takes minutes)",
                    scenario.name
                );
                record(scenario.name.clone(), Report::default());
                continue;
            }
            if wanted(&scenario.name) && !(size == 10 && scenario.name.contains("MaxResults")) {
                record(
                    scenario.name.clone(),
                    measure(reader, plan, &scenario, timeout).await,
                );
            }
        }
    }
    let run_large = Scenario {
        name: format!("run-instances @{largest}"),
        next: Arc::new(run_one),
        observe: None,
    };
    let mut writer_have = 0usize;
    let writer_ids =
        Arc::new(seed(writer, &mut writer_have, smallest, &mut Subnets::default()).await?);
    let run_small = Scenario {
        name: format!("run-instances @{smallest}"),
        next: Arc::new(run_one),
        observe: None,
    };
    let run_fleet = Scenario {
        name: format!("run-instances, {} accounts", servers::FLEET_ACCOUNTS),
        next: Arc::new(run_one),
        observe: None,
    };
    for (target, scenario) in [
        (writer, run_small),
        (reader, run_large),
        (&targets.fleet, run_fleet),
        (writer, churn()),
        (writer, mixed(writer_ids)),
    ] {
        if wanted(&scenario.name) {
            record(
                scenario.name.clone(),
                measure(target, plan, &scenario, timeout).await,
            );
        }
    }
    Ok(rows)
}

fn cell(value: Option<f64>, precision: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.precision$}"))
}

fn print_table(
    rows: &[Row],
    ceiling: Option<&Report>,
    ceiling_bytes: Option<usize>,
    plan: &Plan,
    signing: Signing,
) {
    println!();
    println!(
        "{} connections, {:.0} s measured after {:.0} s warm-up per scenario, {} signing, {} cores",
        plan.connections,
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64(),
        if signing == Signing::V4 {
            "SigV4"
        } else {
            "SigV2"
        },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!();
    println!("| scenario | ec2-gateway req/s | p50 ms | p90 ms | p99 ms | max ms | errors | peak RSS MiB | moto req/s | moto p50 ms | ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let g = &row.gateway;
        let (moto_rate, moto_p50, ratio) = match &row.moto {
            Some(m) if m.requests > 0 => (
                format!("{:.1}", m.rate()),
                cell(m.quantile_ms(0.5), 1),
                format!("{:.0}x", g.rate() / m.rate()),
            ),
            Some(_) => ("not measured".into(), "-".into(), "-".into()),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let errors = if g.errors.is_empty() {
            "0".to_string()
        } else {
            format!("{:?}", g.errors)
        };
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            g.rate(),
            cell(g.quantile_ms(0.5), 2),
            cell(g.quantile_ms(0.9), 2),
            cell(g.quantile_ms(0.99), 2),
            cell(g.quantile_ms(1.0), 1),
            errors,
            cell(row.gateway_rss_mib, 0),
            moto_rate,
            moto_p50,
            ratio
        );
    }
    if let Some(ceiling) = ceiling {
        println!();
        println!(
            "bare-hyper ceiling (fixed {} XML, same client{}): {:.0} req/s, p50 {} ms",
            ceiling_bytes.map_or("1 KiB".to_string(), |b| format!("{b}-byte")),
            if load::presigned() { ", presigned" } else { "" },
            ceiling.rate(),
            cell(ceiling.quantile_ms(0.5), 2),
        );
        // A large ceiling is set against full listings, the small one
        // against the small answers.
        let compared = |r: &&Row| match ceiling_bytes {
            Some(_) => r.scenario.starts_with("describe-instances full"),
            None => {
                r.scenario == "describe-zones" || r.scenario.starts_with("describe-instances by id")
            }
        };
        for row in rows.iter().filter(compared) {
            println!(
                "{} reaches {:.0} % of it",
                row.scenario,
                100.0 * row.gateway.rate() / ceiling.rate().max(1.0)
            );
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(address) = &cli.ceiling_server {
        runtime.block_on(servers::serve_ceiling(address, cli.ceiling_bytes));
        return std::process::ExitCode::SUCCESS;
    }
    match runtime.block_on(bench(cli)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(message) => {
            eprintln!("ec2-bench: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn bench(cli: Cli) -> Result<bool, String> {
    let plan = if cli.quick {
        Plan {
            connections: cli.connections.min(4),
            warmup: Duration::from_millis(200),
            duration: Duration::from_millis(800),
        }
    } else {
        Plan {
            connections: cli.connections,
            warmup: Duration::from_secs_f64(cli.warmup),
            duration: Duration::from_secs_f64(cli.duration),
        }
    };
    let signing = if cli.sigv2 { Signing::V2 } else { Signing::V4 };
    let credentials = SigningCredentials {
        access_key_id: ACCESS_KEY.into(),
        secret: Secret::new(SECRET_KEY),
        region: "us-east-1".into(),
        service: "ec2".into(),
    };
    if cli.agents > 0 {
        return simulate_agents(&cli, &credentials, signing).await;
    }

    load::set_presigned(cli.presigned);
    // The ceiling first, on an otherwise idle machine.
    let ceiling = if cli.only.is_empty() || cli.presigned {
        let server = servers::Process::ceiling(cli.ceiling_bytes)?;
        let target = Target::new(server.authority.clone(), credentials.clone(), signing);
        let report = measure(
            &target,
            &plan,
            &fixed(
                "ceiling",
                params(&[("Action", "DescribeAvailabilityZones")]),
            ),
            Duration::from_secs(10),
        )
        .await;
        eprintln!("[ceiling] {:.0} req/s", report.rate());
        Some(report)
    } else {
        None
    };

    let (gateway, authority, pid) = match &cli.endpoint {
        Some(endpoint) => (None, endpoint.clone(), cli.server_pid),
        None => {
            let process = servers::Process::gateway(
                cli.gateway_binary.clone(),
                cli.retention_secs,
                &servers::Storage::Sled,
            )?;
            let (authority, pid) = (process.authority.clone(), Some(process.pid()));
            (Some(process), authority, pid)
        }
    };
    let rss = move || pid.and_then(servers::peak_rss_mib);
    let gateway_rows = programme(
        &Targets::new(&[authority], &credentials, signing),
        &plan,
        &cli.sizes(),
        &cli.only,
        Duration::from_secs(30),
        &rss,
        "ec2-gateway",
        false,
    )
    .await?;
    drop(gateway);

    let cluster_rows = if cli.cluster {
        Some(cluster_programme(&cli, &plan, &credentials, signing).await?)
    } else {
        None
    };

    let moto_rows = match cli.compare.as_deref() {
        Some("moto") => {
            let moto = servers::Process::moto()?;
            let none = || None;
            Some(
                programme(
                    &Targets::new(std::slice::from_ref(&moto.authority), &credentials, signing),
                    &plan,
                    &cli.sizes(),
                    &cli.only,
                    Duration::from_secs(30),
                    &none,
                    "moto",
                    true,
                )
                .await?,
            )
        }
        Some(other) => return Err(format!("unknown --compare target '{other}' (only moto)")),
        None => None,
    };

    let rows: Vec<Row> = gateway_rows
        .into_iter()
        .enumerate()
        .map(|(i, (scenario, gateway, gateway_rss_mib))| Row {
            moto: moto_rows
                .as_ref()
                .and_then(|m| m.get(i))
                .map(|(_, r, _)| r.clone()),
            cluster: cluster_rows
                .as_ref()
                .and_then(|c| c.get(i))
                .map(|(_, r, rss)| (r.clone(), *rss)),
            scenario,
            gateway,
            gateway_rss_mib,
        })
        .collect();
    print_table(&rows, ceiling.as_ref(), cli.ceiling_bytes, &plan, signing);
    if cli.cluster {
        print_cluster_table(&rows);
    }
    let cluster_errors = |r: &Row| r.cluster.as_ref().map_or(0, |(c, _)| c.error_count());
    let errors: u64 = rows
        .iter()
        .map(|r| r.gateway.error_count() + cluster_errors(r))
        .sum::<u64>()
        + ceiling.as_ref().map_or(0, |c| c.error_count());
    let silent = rows.iter().any(|r| {
        r.gateway.requests == 0 || r.cluster.as_ref().is_some_and(|(c, _)| c.requests == 0)
    });
    Ok(!(cli.fail_on_errors && (errors > 0 || silent)))
}

/// The programme on 3 etcd members and 2 gateways sharing them, with every
/// connection to one gateway or the other in turn; the gateways' peak RSS
/// is reported together.
async fn cluster_programme(
    cli: &Cli,
    plan: &Plan,
    credentials: &SigningCredentials,
    signing: Signing,
) -> Result<Vec<(String, Report, Option<f64>)>, String> {
    let (_members, gateways) = start_cluster(cli)?;
    let authorities: Vec<String> = gateways.iter().map(|g| g.authority.clone()).collect();
    let pids: Vec<u32> = gateways.iter().map(servers::Process::pid).collect();
    let rss = move || {
        pids.iter()
            .map(|pid| servers::peak_rss_mib(*pid))
            .sum::<Option<f64>>()
    };
    programme(
        &Targets::new(&authorities, credentials, signing),
        plan,
        &cli.sizes(),
        &cli.only,
        Duration::from_secs(30),
        &rss,
        "cluster",
        false,
    )
    .await
}

/// 3 etcd members and 2 gateways sharing them.
fn start_cluster(cli: &Cli) -> Result<(servers::EtcdMembers, [servers::Process; 2]), String> {
    let members = servers::EtcdMembers::start(3)?;
    let storage = servers::Storage::Etcd {
        endpoints: members.endpoints.clone(),
        prefix: "ec2-bench/".into(),
    };
    let gateways = [
        servers::Process::gateway(cli.gateway_binary.clone(), cli.retention_secs, &storage)?,
        servers::Process::gateway(cli.gateway_binary.clone(), cli.retention_secs, &storage)?,
    ];
    eprintln!(
        "[cluster] etcd members {:?} (pids {:?}), gateways {:?}",
        members.endpoints,
        members.pids(),
        gateways.iter().map(|g| &g.authority).collect::<Vec<_>>()
    );
    Ok((members, gateways))
}

/// `--agents N`: the scale simulation on a cluster (see [`agents`]).
async fn simulate_agents(
    cli: &Cli,
    credentials: &SigningCredentials,
    signing: Signing,
) -> Result<bool, String> {
    let (members, gateways) = start_cluster(cli)?;
    let authorities: Vec<String> = gateways.iter().map(|g| g.authority.clone()).collect();
    let admin = Target::new(
        authorities[0].clone(),
        SigningCredentials {
            access_key_id: ADMIN_KEY.into(),
            ..credentials.clone()
        },
        signing,
    );
    let user = Target::new(
        authorities[0].clone(),
        SigningCredentials {
            access_key_id: format!("{}0", servers::FLEET_KEY),
            ..credentials.clone()
        },
        signing,
    );
    let simulation = agents::simulate(
        &admin,
        &user,
        &authorities,
        members.endpoints.first().map(String::as_str),
        cli.agents,
        Duration::from_secs(cli.agent_heartbeat_secs.max(1)),
        Duration::from_secs(cli.agent_phase_secs.max(2)),
    )
    .await?;
    agents::print(&simulation);
    let failed = simulation.heartbeats.error_count()
        + simulation.zones.error_count()
        + simulation.placements.error_count();
    Ok(!(cli.fail_on_errors && failed > 0))
}

/// The single sled gateway and the cluster side by side.
fn print_cluster_table(rows: &[Row]) {
    println!();
    println!("Cluster: 3 etcd members and 2 gateways on this machine, connections spread over both gateways.");
    println!();
    println!("| scenario | sled gateway req/s | p50 ms | cluster req/s | p50 ms | p99 ms | errors | gateways' peak RSS MiB | cluster / sled |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let Some((cluster, rss)) = &row.cluster else {
            continue;
        };
        let errors = if cluster.errors.is_empty() {
            "0".to_string()
        } else {
            format!("{:?}", cluster.errors)
        };
        println!(
            "| {} | {:.0} | {} | {:.0} | {} | {} | {} | {} | {:.2} |",
            row.scenario,
            row.gateway.rate(),
            cell(row.gateway.quantile_ms(0.5), 2),
            cluster.rate(),
            cell(cluster.quantile_ms(0.5), 2),
            cell(cluster.quantile_ms(0.99), 2),
            errors,
            cell(*rss, 0),
            cluster.rate() / row.gateway.rate().max(f64::MIN_POSITIVE)
        );
    }
}
