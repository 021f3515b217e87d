//! The `ec2-gateway` command: `serve` runs the gateway, `admin` talks to one.

use clap::{Parser, Subcommand};
use ec2_gateway::admin_cli::{self, AdminArgs};
use ec2_gateway::agent::AgentCommand;
use ec2_gateway::app::App;
use ec2_gateway::clock::SystemClock;
use ec2_gateway::config::{Config, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// mimalloc: the gateway allocates small, short-lived buffers on every
/// request (and sled clones pages on every write); glibc's allocator spent
/// a fifth of a launch's CPU on them (see the README's Performance notes).
/// The `system-allocator` feature leaves it out, for heap profilers.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ec2-gateway",
    version,
    about = "An EC2-compatible query API gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (embedded default configuration unless --config).
    Serve {
        /// A TOML configuration file (see README.md, "Configuration").
        #[arg(long)]
        config: Option<PathBuf>,
        /// Development mode, for test suites written for moto or LocalStack:
        /// signatures are NOT verified, any access key is accepted, other
        /// regions are created on first use. Loopback only.
        #[arg(long)]
        dev: bool,
        /// Let development mode listen beyond loopback (anyone who reaches
        /// it can act as any account).
        #[arg(long)]
        dev_allow_remote: bool,
        /// With --dev: keep what the suite creates (sled, in
        /// `<data_dir>/dev`) instead of starting empty each time.
        #[arg(long)]
        dev_persist: bool,
    },
    /// Administer a running gateway with an admin account's keys.
    Admin(AdminArgs),
    /// Run one compute host as an agent of a gateway (or a cluster).
    Agent(ec2_gateway::agent::AgentArgs),
    /// Images for the namespace driver's real instances.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// PID 1 of an instance the namespace driver boots (internal).
    #[command(hide = true)]
    InstanceInit(ec2_gateway::instance_init::InstanceInitArgs),
    /// Rebuild a data folder from a backup (`ec2-gateway admin backup`).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The new data folder (its `db` must not exist yet).
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build a root filesystem from this machine's busybox-static and
    /// dropbear-bin packages, and print the `[[images]]` entry that
    /// registers it in the gateway's catalogue.
    Build {
        /// The folder to build it in (new or empty).
        #[arg(long)]
        output: PathBuf,
        /// The image id to register it as.
        #[arg(long, default_value = "ami-0e5c2a1b0c0d0e0f1")]
        id: String,
    },
}

/// `image build`: builds and prints the catalogue entry.
fn build_image(output: &std::path::Path, id: &str) -> Result<(), String> {
    let built = ec2_gateway::image_build::build(output)?;
    let root = built
        .root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", built.root.display()))?;
    println!("# built from: {}", built.packages.join(", "));
    println!("# add to the gateway's configuration ([[images]] replaces the built-in list):");
    println!("[[images]]");
    println!("id = \"{id}\"");
    println!("name = \"ec2-gateway-busybox\"");
    println!("description = \"busybox and dropbear, booted by the namespace driver\"");
    println!("root_filesystem = \"{}\"", root.display());
    Ok(())
}

/// `agent vpc-exec`: runs the command in the VPC's namespace, answering
/// its exit status.
fn vpc_exec(vpc_id: &str, command: &[String]) -> Result<ExitCode, String> {
    let namespace = ec2_gateway::agent::namespace::vpc_namespace(vpc_id)?;
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", &namespace])
        .args(command)
        .status()
        .map_err(|e| format!("ip netns exec: {e}"))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

/// What `serve`'s development-mode flags ask for.
struct DevFlags {
    dev: bool,
    allow_remote: bool,
    persist: bool,
}

/// True when file descriptor `fd` (1: stdout, 2: stderr) is the journal's
/// stream: systemd names its device and inode in `JOURNAL_STREAM`, which a
/// shell started from a service may pass on to programs whose output goes
/// elsewhere, so the variable alone proves nothing.
fn is_journal_stream(fd: u8) -> bool {
    let Some((device, inode)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
        v.split_once(':')
            .map(|(d, i)| (d.parse::<u64>(), i.parse::<u64>()))
    }) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .is_ok_and(|stream| device == Ok(stream.dev()) && inode == Ok(stream.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = (fd, device, inode);
        false
    }
}

/// Starts the log: to stderr, as text lines or (`log_format = "json"`)
/// JSON objects. Under systemd (stderr is the journal's stream), text
/// lines carry no timestamp: the journal adds its own.
///
/// Lines are written in batches (`ec2_gateway::log_writer`): one system
/// call per line cost a tenth of a small request. `main` writes what is
/// pending once the runtime has stopped.
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EC2_GATEWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let writer = ec2_gateway::log_writer::BatchedLog::start(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer)
        // Colours for a terminal only: a log file or journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let to_journal = is_journal_stream(2);
    match (format, to_journal) {
        (LogFormat::Json, _) => builder.json().init(),
        (LogFormat::Text, true) => builder.without_time().init(),
        (LogFormat::Text, false) => builder.init(),
    }
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is
/// called (before the gateway says it is listening), so a SIGTERM sent as
/// soon as the banner appears is a clean shutdown, not a kill.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate =
            signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
        let mut interrupt = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
        async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Opens the gateway; while its store is unavailable (an etcd cluster
/// electing a leader, or not up yet), tries again for up to a minute
/// rather than exiting.
async fn open_app(config: Config) -> Result<App, String> {
    let mut attempts = 0;
    loop {
        match App::open(config.clone(), Arc::new(SystemClock)).await {
            Err(error) if error.contains("unavailable") && attempts < 30 => {
                attempts += 1;
                tracing::warn!(%error, "the store is unavailable: trying again in 2 s");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            other => return other,
        }
    }
}

/// `ec2-gateway agent`: runs until SIGTERM or Ctrl-C.
async fn run_agent(args: ec2_gateway::agent::AgentArgs) -> Result<(), String> {
    use ec2_gateway::agent::namespace::NamespaceSettings;
    use ec2_gateway::agent::{
        Agent, AgentSettings, Driver, DriverKind, NamespaceDriver, SimulatedDriver,
    };
    let settings = AgentSettings::resolve(args)?;
    let driver: Box<dyn Driver> = match settings.driver {
        DriverKind::Simulated => Box::new(SimulatedDriver::new(settings.transition)),
        DriverKind::Namespace => Box::new(NamespaceDriver::new(NamespaceSettings {
            state_dir: settings.state_dir.clone(),
            stop_grace: settings.stop_grace,
            program: std::env::current_exe().map_err(|e| format!("this program's path: {e}"))?,
        })?),
    };
    let agent = Agent::new(settings, driver)?;
    let shutdown = shutdown_signal();
    tokio::select! {
        _ = agent.run() => {}
        _ = shutdown => tracing::info!("agent stopping"),
    }
    Ok(())
}

/// Loads the configuration `serve` runs with (and starts the log it names).
fn serve_config(config_path: Option<&std::path::Path>) -> Result<Config, String> {
    let config =
        Config::load(config_path, |name| std::env::var(name).ok()).map_err(|e| e.to_string())?;
    init_tracing(config.log_format);
    Ok(config)
}

async fn serve(mut config: Config, dev: DevFlags) -> Result<(), String> {
    config.dev_mode |= dev.dev;
    config.dev_allow_remote |= dev.allow_remote;
    if dev.dev && !dev.persist {
        // Like moto and LocalStack: each run starts empty.
        config.storage = ec2_gateway::config::StorageBackend::Memory;
    }
    // Before anything is bound or written.
    config.check_dev_listen().map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let operator = match config.operator_address().map_err(|e| e.to_string())? {
        Some(operator_address) => Some(
            tokio::net::TcpListener::bind(operator_address)
                .await
                .map_err(|e| {
                    format!("cannot listen on {operator_address} (operator_listen): {e}")
                })?,
        ),
        None => None,
    };
    let app = open_app(config.bound_to(address)).await?;
    let shutdown = shutdown_signal();
    // Under systemd, stdout is the journal: a secret printed there would be
    // kept in the log.
    let to_journal = is_journal_stream(1);
    if let (Some(_), true) = (&app.created_admin, to_journal) {
        match app.admin_credentials_path() {
            Some(path) => println!(
                "Created the admin credential: saved (mode 0600) as profile [ec2-gateway] in {} (its secret is not written to the journal)",
                path.display()
            ),
            None => println!(
                "Created an admin credential, which memory storage keeps nowhere: its secret is not written to the journal; configure [[accounts]] instead"
            ),
        }
    } else if let Some(key) = &app.created_admin {
        // Printed once, on stdout (never to the log): the operator's first key.
        println!("Created the admin credential (shown only now). Ready for the AWS CLI:");
        println!(
            "  aws configure set aws_access_key_id {}",
            key.access_key_id
        );
        println!(
            "  aws configure set aws_secret_access_key {}",
            key.secret.expose()
        );
        println!("  aws configure set region {}", app.config.region);
        if let Some(path) = app.admin_credentials_path() {
            println!(
                "Also saved (mode 0600) as profile [ec2-gateway] in {}",
                path.display()
            );
        }
    }
    if app.config.dev_mode {
        println!("DEVELOPMENT MODE: signatures are not verified and any access key is accepted.");
    }
    if let Some(operator) = &operator {
        let operator_address = operator.local_addr().map_err(|e| e.to_string())?;
        println!("operator listener (metrics, health, dashboard) on http://{operator_address}");
        tracing::info!(%operator_address, "operator listener");
    }
    println!(
        "ec2-gateway listening on http://{address} (region {})",
        app.config.region
    );
    tracing::info!(%address, region = %app.config.region, data_dir = %app.config.data_dir.display(), "listening");
    app.serve_with_operator(listener, operator, shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // These run before any thread starts: instance-init becomes an
    // instance's PID 1.
    let result = match cli.command {
        Command::InstanceInit(args) => Err(ec2_gateway::instance_init::run(args)),
        Command::Image {
            command: ImageCommand::Build { output, id },
        } => build_image(&output, &id),
        Command::Agent(ec2_gateway::agent::AgentArgs {
            command: Some(AgentCommand::VpcExec { vpc_id, command }),
            ..
        }) => {
            return vpc_exec(&vpc_id, &command).unwrap_or_else(|message| {
                eprintln!("ec2-gateway: {message}");
                ExitCode::FAILURE
            })
        }
        command => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))
            .and_then(|runtime| {
                let result = runtime.block_on(run_command(command));
                // Tasks still running log as they stop; then the log's
                // pending lines are written.
                drop(runtime);
                ec2_gateway::log_writer::flush_process_log();
                result
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ec2-gateway: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_command(command: Command) -> Result<(), String> {
    match command {
        Command::Serve {
            config,
            dev,
            dev_allow_remote,
            dev_persist,
        } => {
            let flags = DevFlags {
                dev,
                allow_remote: dev_allow_remote,
                persist: dev_persist,
            };
            match serve_config(config.as_deref()) {
                Ok(config) => serve(config, flags).await,
                Err(error) => Err(error),
            }
        }
        Command::Admin(args) => admin_cli::run(args)
            .await
            .map(|output| println!("{output}")),
        Command::Restore { file, data_dir } => {
            ec2_gateway::backup::restore(&file, &data_dir).map(|output| println!("{output}"))
        }
        Command::Agent(args) => {
            init_tracing(match std::env::var("EC2_GATEWAY_LOG_FORMAT").as_deref() {
                Ok("json") => LogFormat::Json,
                _ => LogFormat::Text,
            });
            run_agent(args).await
        }
        Command::InstanceInit(_) | Command::Image { .. } => {
            unreachable!("run before the runtime starts")
        }
    }
}
