//! `ec2-gateway admin ...`: operator commands against a running gateway.
//!
//! Each command is one signed call to a gateway admin action (see
//! `api::admin`), made with an admin account's keys from flags or the
//! standard `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` variables, so the
//! server's own signature checks and `UnauthorizedOperation` apply.

use crate::auth::signer::SigningCredentials;
use crate::client::{call, items, text_of, Endpoint};
use crate::secret::Secret;
use clap::{Args, Subcommand};

/// Connection and credentials for admin commands.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The gateway's endpoint.
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL",
        default_value = "http://127.0.0.1:8773"
    )]
    pub endpoint: String,
    /// An admin account's access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub access_key_id: String,
    /// Its secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: String,
    /// The region to sign for.
    #[arg(long, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
    pub region: String,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Compute hosts.
    #[command(subcommand)]
    Hosts(HostCommand),
    /// Access keys.
    #[command(subcommand)]
    Keys(KeyCommand),
    /// Compute agents (`ec2-gateway agent`).
    #[command(subcommand)]
    Agents(AgentCommand),
    /// How many instances of each type still fit (and fit at most) in each
    /// zone, as euca-describe-instance-types shows it.
    Capacity,
    /// Writes a consistent backup of the gateway's whole state to FILE
    /// (mode 0600: it holds every secret); `ec2-gateway restore` reads it.
    Backup {
        /// Where to write it.
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// List hosts with zone, state and heartbeat age.
    List,
    /// Register a host.
    Add {
        name: String,
        #[arg(long)]
        zone: String,
        #[arg(long)]
        vcpus: u32,
        #[arg(long)]
        memory_mib: u64,
        /// The host heartbeats through `hosts heartbeat` instead of being simulated.
        #[arg(long)]
        external: bool,
    },
    /// Remove a host.
    Remove { name: String },
    /// Enable a host.
    Enable { name: String },
    /// Disable a host: it keeps its instances but gets no new ones.
    Disable {
        name: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Record a heartbeat for an external host.
    Heartbeat { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create the key the agent of host NAME signs with (it can act for
    /// that host only).
    CreateKey { name: String },
    /// List the hosts that are agents, with their address and version.
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an access key (and the account, when --account-name is given and it is new).
    Create {
        #[arg(long)]
        account_id: String,
        #[arg(long)]
        account_name: Option<String>,
        /// Make a new account an admin account.
        #[arg(long)]
        admin: bool,
    },
    /// List access keys.
    List {
        #[arg(long)]
        account_id: Option<String>,
    },
    /// Deactivate an access key.
    Deactivate { access_key_id: String },
}

fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs one admin command and returns what to print, or the error text.
pub async fn run(args: AdminArgs) -> Result<String, String> {
    let endpoint = Endpoint::parse(&args.endpoint)?;
    let credentials = SigningCredentials {
        access_key_id: args.access_key_id,
        secret: Secret::new(args.secret_access_key),
        region: args.region,
        service: "ec2".into(),
    };
    let (action, params): (&str, Vec<(&str, String)>) = match &args.command {
        AdminCommand::Hosts(HostCommand::List) | AdminCommand::Agents(AgentCommand::List) => {
            ("AdminDescribeHosts", vec![])
        }
        AdminCommand::Agents(AgentCommand::CreateKey { name }) => {
            ("AdminCreateAgentKey", vec![("HostName", name.clone())])
        }
        AdminCommand::Hosts(HostCommand::Add {
            name,
            zone,
            vcpus,
            memory_mib,
            external,
        }) => (
            "AdminAddHost",
            vec![
                ("HostName", name.clone()),
                ("AvailabilityZone", zone.clone()),
                ("Vcpus", vcpus.to_string()),
                ("MemoryMib", memory_mib.to_string()),
                ("Simulated", (!external).to_string()),
            ],
        ),
        AdminCommand::Hosts(HostCommand::Remove { name }) => {
            ("AdminRemoveHost", vec![("HostName", name.clone())])
        }
        AdminCommand::Hosts(HostCommand::Enable { name }) => {
            ("AdminEnableHost", vec![("HostName", name.clone())])
        }
        AdminCommand::Hosts(HostCommand::Disable { name, reason }) => {
            let mut params = vec![("HostName", name.clone())];
            params.extend(reason.clone().map(|r| ("Reason", r)));
            ("AdminDisableHost", params)
        }
        AdminCommand::Hosts(HostCommand::Heartbeat { name }) => {
            ("AdminHostHeartbeat", vec![("HostName", name.clone())])
        }
        AdminCommand::Keys(KeyCommand::Create {
            account_id,
            account_name,
            admin,
        }) => {
            let mut params = vec![
                ("AccountId", account_id.clone()),
                ("Admin", admin.to_string()),
            ];
            params.extend(account_name.clone().map(|n| ("AccountName", n)));
            ("AdminCreateAccessKey", params)
        }
        AdminCommand::Keys(KeyCommand::List { account_id }) => (
            "AdminDescribeAccessKeys",
            account_id
                .clone()
                .map(|id| ("AccountId", id))
                .into_iter()
                .collect(),
        ),
        AdminCommand::Keys(KeyCommand::Deactivate { access_key_id }) => (
            "AdminDeactivateAccessKey",
            vec![("AccessKeyId", access_key_id.clone())],
        ),
        AdminCommand::Capacity => (
            "DescribeInstanceTypes",
            vec![("Availability", "true".to_string())],
        ),
        AdminCommand::Backup { .. } => ("AdminExportBackup", vec![]),
    };
    let params: Vec<(&str, &str)> = params.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let reply = call(&endpoint, &credentials, action, &params)
        .await
        .map_err(|e| format!("cannot reach {}: {e}", args.endpoint))?;
    if reply.status != 200 {
        let code = text_of(&reply.body, "Code").unwrap_or_else(|| format!("HTTP {}", reply.status));
        let message = text_of(&reply.body, "Message").unwrap_or_default();
        return Err(format!("{code}: {message}"));
    }
    Ok(match &args.command {
        AdminCommand::Hosts(HostCommand::List) => {
            let mut rows = vec![[
                "HOST",
                "ZONE",
                "STATUS",
                "ALIVE",
                "HEARTBEAT AGE",
                "VCPUS",
                "MEMORY MIB",
                "REASON",
            ]
            .map(String::from)
            .to_vec()];
            for host in items(&reply.body, "hostSet") {
                let get = |k: &str| host.get(k).cloned().unwrap_or_default();
                let age = host
                    .get("heartbeatAgeSeconds")
                    .map_or("never".to_string(), |s| format!("{s}s"));
                rows.push(vec![
                    get("hostName"),
                    get("availabilityZone"),
                    get("status"),
                    if get("alive") == "true" {
                        ":-)".into()
                    } else {
                        "XXX".into()
                    },
                    age,
                    format!("{}/{}", get("vcpusUsed"), get("vcpus")),
                    format!("{}/{}", get("memoryMibUsed"), get("memoryMib")),
                    get("disabledReason"),
                ]);
            }
            table(&rows)
        }
        AdminCommand::Keys(KeyCommand::List { .. }) => {
            let mut rows = vec![[
                "ACCESS KEY ID",
                "ACCOUNT",
                "USER",
                "STATUS",
                "ADMIN",
                "CREATED",
            ]
            .map(String::from)
            .to_vec()];
            for key in items(&reply.body, "accessKeySet") {
                let get = |k: &str| key.get(k).cloned().unwrap_or_default();
                rows.push(vec![
                    get("accessKeyId"),
                    get("accountId"),
                    get("userName"),
                    get("status"),
                    get("admin"),
                    get("createTime"),
                ]);
            }
            table(&rows)
        }
        AdminCommand::Keys(KeyCommand::Create { .. }) => {
            let get = |k: &str| text_of(&reply.body, k).unwrap_or_default();
            format!(
                "account {}: new access key (the secret is shown only now)\naws configure set aws_access_key_id {}\naws configure set aws_secret_access_key {}",
                get("accountId"),
                get("accessKeyId"),
                get("secretAccessKey")
            )
        }
        AdminCommand::Agents(AgentCommand::List) => {
            let mut rows = vec![[
                "HOST",
                "ZONE",
                "ALIVE",
                "HEARTBEAT AGE",
                "ADDRESS",
                "VERSION",
            ]
            .map(String::from)
            .to_vec()];
            for host in items(&reply.body, "hostSet") {
                let get = |k: &str| host.get(k).cloned().unwrap_or_default();
                if !host.contains_key("agentVersion") {
                    continue;
                }
                rows.push(vec![
                    get("hostName"),
                    get("availabilityZone"),
                    if get("alive") == "true" { ":-)" } else { "XXX" }.into(),
                    host.get("heartbeatAgeSeconds")
                        .map_or("never".to_string(), |s| format!("{s}s")),
                    get("agentAddress"),
                    get("agentVersion"),
                ]);
            }
            table(&rows)
        }
        AdminCommand::Agents(AgentCommand::CreateKey { name }) => {
            let get = |k: &str| text_of(&reply.body, k).unwrap_or_default();
            format!(
                "agent key for host {name} (the secret is shown only now):\nEC2_AGENT_ACCESS_KEY_ID={}\nEC2_AGENT_SECRET_ACCESS_KEY={}",
                get("accessKeyId"),
                get("secretAccessKey")
            )
        }
        AdminCommand::Capacity => capacity_table(&reply.body),
        AdminCommand::Backup { file } => save_backup(&reply.body, file)?,
        _ => "ok".to_string(),
    })
}

/// Checks the backup in an `AdminExportBackup` answer and writes it.
fn save_backup(xml: &str, file: &std::path::Path) -> Result<String, String> {
    use base64::Engine;
    let encoded = text_of(xml, "backup").ok_or("the answer holds no backup")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| format!("the backup is not base64: {e}"))?;
    let (header, _) = crate::backup::decode(&bytes)?;
    crate::backup::write_private(file, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(format!(
        "backup of {} entries at revision {} written to {} ({} bytes, mode 0600)",
        header.entries,
        header.revision,
        file.display(),
        bytes.len()
    ))
}

/// `TYPE CPU MEMORY DISK` and one `available/max` column per zone, from
/// Eucalyptus's `instanceTypeDetails`.
fn capacity_table(xml: &str) -> String {
    let xml: String = xml.lines().map(str::trim).collect();
    let types: Vec<&str> = xml.split("<item><name>").skip(1).collect();
    let mut zones: Vec<String> = Vec::new();
    // Per type: its cells, and `available/max` by zone.
    type Parsed = (Vec<String>, Vec<(String, String)>);
    let parsed: Vec<Parsed> = types
        .iter()
        .map(|item| {
            let item = format!("<name>{item}");
            let get = |k: &str| text_of(&item, k).unwrap_or_default();
            let row = vec![get("name"), get("cpu"), get("memory"), get("disk")];
            let availability: Vec<(String, String)> = item
                .split("<zoneName>")
                .skip(1)
                .map(|rest| {
                    let zone = rest.split('<').next().unwrap_or("").to_string();
                    let element = |name: &str| {
                        rest.split(&format!("<{name}>"))
                            .nth(1)
                            .and_then(|after| after.split('<').next())
                            .unwrap_or("")
                            .to_string()
                    };
                    let (available, max) = (element("available"), element("max"));
                    (zone, format!("{available}/{max}"))
                })
                .collect();
            for (zone, _) in &availability {
                if !zones.contains(zone) {
                    zones.push(zone.clone());
                }
            }
            (row, availability)
        })
        .collect();
    let mut header: Vec<String> = ["TYPE", "CPU", "MEMORY MIB", "DISK GIB"]
        .map(String::from)
        .to_vec();
    header.extend(zones.iter().map(|z| format!("{z} (FREE/MAX)")));
    let mut rows = vec![header];
    for (mut row, availability) in parsed {
        for zone in &zones {
            row.push(
                availability
                    .iter()
                    .find(|(z, _)| z == zone)
                    .map_or(String::new(), |(_, cell)| cell.clone()),
            );
        }
        rows.push(row);
    }
    table(&rows)
}
