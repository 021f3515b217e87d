//! The namespace driver: instances that really run, each in Linux
//! namespaces of its own, on this machine (root only).
//!
//! An instance boots its image's root filesystem (`ec2-gateway image
//! build`) through an overlay whose upper layer is the instance's own
//! (`<state_dir>/instances/<id>/upper`): what it writes survives stop and
//! start, and terminate deletes it. Its init runs as PID 1 of new PID,
//! mount, UTS and IPC namespaces inside the instance's network namespace
//! (`network`), within cgroups sized by its instance type (`cgroups`), its
//! hostname from its private DNS name; everything it writes to its console
//! is kept in `console.log` and sent to the gateway for GetConsoleOutput.
//! It is `pending` until its init has started the SSH server, then
//! `running` (the user data runs then, in the background); stop sends its init SIGTERM and, after a
//! grace period, kills what is left (`stopping` -> `stopped`); terminate
//! does the same, then removes its namespaces, cgroups and files. Security
//! groups are enforced by `firewall`.
//!
//! The agent can be restarted: an instance's launcher process is recorded
//! (pid and start time) and taken back when it is still alive; a running
//! instance found dead is booted again, as EC2 recovers instances of a
//! failed host. RebootInstances (the instance's reboot count grows) stops
//! its init as a stop does and boots it again on the same layer, the state
//! staying `running` as in EC2.

mod cgroups;
mod command;
mod console;
mod firewall;
mod network;

pub use cgroups::InstanceCgroups;
pub use network::{instance_namespace, vpc_namespace};

use super::driver::{Assigned, ConsoleUpdate, Driver, Firewall, LaunchDetails};
use crate::image_build::BOOTED_MARKER;
use base64::Engine;
use console::{console_tail, CONSOLE_INTERVAL, CONSOLE_ROTATE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The namespace driver's settings.
#[derive(Debug, Clone)]
pub struct NamespaceSettings {
    /// Where instances' layers, consoles and records are kept.
    pub state_dir: PathBuf,
    /// How long stop and terminate wait after SIGTERM before killing.
    pub stop_grace: Duration,
    /// This program (run as `instance-init` inside each instance).
    pub program: PathBuf,
}

/// An instance's launcher: the process whose child is the instance's
/// PID 1.
#[derive(Debug)]
struct Launcher {
    pid: i32,
    /// Its start time (field 22 of `/proc/PID/stat`), so a pid reused by
    /// another process is never taken for it.
    started: u64,
    /// Set when this agent started it (so it is reaped).
    child: Option<Child>,
}

/// What the driver knows of one instance.
#[derive(Debug, Default)]
struct Local {
    owner_id: String,
    details: Option<LaunchDetails>,
    launcher: Option<Launcher>,
    /// When SIGTERM was sent to its init (stop or terminate under way).
    stopping_since: Option<Instant>,
    /// The console's length when last delivered, and when last sent.
    console_sent: u64,
    console_sent_at: Option<Instant>,
    /// The last state reported.
    reported: Option<&'static str>,
    /// When it was last booted: one whose init died is booted again no
    /// sooner than [`REBOOT_BACKOFF`] after.
    booted_at: Option<Instant>,
    /// The reboot count its running init was booted for (kept in the
    /// instance's folder, so a reboot asked while the agent was down is
    /// still done).
    reboots_done: Option<u32>,
}

const REBOOT_BACKOFF: Duration = Duration::from_secs(5);

pub struct NamespaceDriver {
    settings: NamespaceSettings,
    instances: HashMap<String, Local>,
    /// The last firewall, and the script applied in each VPC's namespace.
    firewall: Firewall,
    applied: BTreeMap<String, String>,
    /// Instances with a layer on disk that are placed nowhere (stopped).
    kept: BTreeMap<String, String>,
    /// The last console output of instances removed since the last send.
    final_consoles: Vec<ConsoleUpdate>,
}

/// A folder only root may enter.
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Writes a small record whole or not at all.
fn write_record(path: &Path, text: &str) -> Result<(), String> {
    let partial = path.with_extension("partial");
    fs::write(&partial, text).map_err(|e| format!("{}: {e}", partial.display()))?;
    fs::rename(&partial, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A live process's start time (field 22 of `/proc/PID/stat`); None for
/// no process, or a zombie (dead, waiting to be reaped by whoever
/// inherited it).
fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count after its ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

impl Launcher {
    fn alive(&mut self) -> bool {
        if let Some(child) = &mut self.child {
            if !matches!(child.try_wait(), Ok(None)) {
                return false;
            }
        }
        process_start_time(self.pid) == Some(self.started)
    }

    /// The instance's PID 1, as this machine numbers it.
    fn init_pid(&self) -> Option<i32> {
        fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pid))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

impl NamespaceDriver {
    /// Checks what the driver needs (root, the tools) and takes back the
    /// instances a previous run of the agent left.
    pub fn new(settings: NamespaceSettings) -> Result<Self, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("the namespace driver runs as root".into());
        }
        for tool in ["ip", "nft", "nsenter", "unshare"] {
            command::run("sh", &["-c", &format!("command -v {tool}")]).map_err(|_| {
                format!("the namespace driver needs `{tool}` (iproute2, nftables, util-linux)")
            })?;
        }
        // Root's alone: instances' layers may hold setuid files their root
        // made, and their consoles and user data are theirs.
        for dir in [
            settings.state_dir.clone(),
            settings.state_dir.join("instances"),
        ] {
            private_dir(&dir)?;
        }
        let mut driver = Self {
            settings,
            instances: HashMap::new(),
            firewall: Firewall::default(),
            applied: BTreeMap::new(),
            kept: BTreeMap::new(),
            final_consoles: Vec::new(),
        };
        driver.recover();
        Ok(driver)
    }

    fn instance_dir(&self, instance_id: &str) -> PathBuf {
        self.settings.state_dir.join("instances").join(instance_id)
    }

    /// The instances on disk, with their launchers when still alive.
    fn recover(&mut self) {
        let Ok(entries) = fs::read_dir(self.settings.state_dir.join("instances")) else {
            return;
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if instance_namespace(&id).is_err() {
                continue;
            }
            let dir = entry.path();
            let owner_id = fs::read_to_string(dir.join("owner")).unwrap_or_default();
            let launcher = fs::read_to_string(dir.join("launcher"))
                .ok()
                .and_then(|text| {
                    let (pid, started) = text.trim().split_once(' ')?;
                    Some(Launcher {
                        pid: pid.parse().ok()?,
                        started: started.parse().ok()?,
                        child: None,
                    })
                })
                .filter(|launcher| process_start_time(launcher.pid) == Some(launcher.started));
            let console_sent = 0;
            let reboots_done = fs::read_to_string(dir.join("reboots"))
                .ok()
                .and_then(|text| text.trim().parse().ok());
            tracing::info!(instance = %id, alive = launcher.is_some(), "found an instance of an earlier run");
            self.instances.insert(
                id,
                Local {
                    owner_id: owner_id.trim().to_string(),
                    launcher,
                    console_sent,
                    reboots_done,
                    ..Default::default()
                },
            );
        }
    }

    fn is_alive(&mut self, instance_id: &str) -> bool {
        let Some(local) = self.instances.get_mut(instance_id) else {
            return false;
        };
        let alive = local.launcher.as_mut().is_some_and(Launcher::alive);
        if !alive {
            local.launcher = None;
        }
        alive
    }

    /// Whether init marked the boot done, seen through its own root (not
    /// followed: a marker that is a link counts as there, and is only the
    /// instance's own business).
    fn has_booted(&self, instance_id: &str) -> bool {
        self.instances
            .get(instance_id)
            .and_then(|local| local.launcher.as_ref())
            .and_then(Launcher::init_pid)
            .is_some_and(|init| {
                Path::new(&format!("/proc/{init}/root"))
                    .join(BOOTED_MARKER)
                    .symlink_metadata()
                    .is_ok()
            })
    }

    /// The image's root filesystem: a folder, or a tar archive unpacked
    /// once under the state folder.
    fn root_filesystem(&self, details: &LaunchDetails) -> Result<PathBuf, String> {
        let named = details.root_filesystem.as_deref().ok_or_else(|| {
            format!(
                "image {} names no root_filesystem: the namespace driver cannot boot it",
                details.image_id
            )
        })?;
        let path = PathBuf::from(named);
        if path.is_dir() {
            return Ok(path);
        }
        if !path.is_file() {
            return Err(format!("root filesystem {named} does not exist"));
        }
        if !details.image_id.starts_with("ami-")
            || !details.image_id[4..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            return Err(format!("'{}' is not an image id", details.image_id));
        }
        let unpacked = self
            .settings
            .state_dir
            .join("images")
            .join(&details.image_id);
        if !unpacked.join(".unpacked").exists() {
            let _ = fs::remove_dir_all(&unpacked);
            fs::create_dir_all(&unpacked).map_err(|e| format!("{}: {e}", unpacked.display()))?;
            command::run(
                "tar",
                &[
                    "-xf",
                    named,
                    "-C",
                    &unpacked.to_string_lossy(),
                    "--numeric-owner",
                ],
            )?;
            fs::write(unpacked.join(".unpacked"), "").map_err(|e| e.to_string())?;
        }
        Ok(unpacked)
    }

    /// Network, cgroups and files, then the launcher.
    fn boot(&mut self, instance_id: &str) -> Result<(), String> {
        let details = self
            .instances
            .get(instance_id)
            .and_then(|local| local.details.clone())
            .ok_or("no launch details")?;
        // Whatever ran before (a launcher whose record was lost in a
        // crash) is gone first: two boots never share one layer.
        let cgroups = InstanceCgroups::of(instance_id);
        if !cgroups.processes().is_empty() {
            cgroups.kill_all();
            return Err("processes of an earlier boot are still exiting".into());
        }
        if !self
            .firewall
            .members
            .iter()
            .any(|m| m.instance_id == instance_id)
        {
            return Err("its security groups are not known yet".into());
        }
        let lower = self.root_filesystem(&details)?;
        let dir = self.instance_dir(instance_id);
        private_dir(&dir)?;
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for path in [&upper, &work, &merged] {
            fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        fs::write(dir.join("owner"), &details.owner_id).map_err(|e| e.to_string())?;
        fs::write(dir.join("vpc"), &details.vpc_id).map_err(|e| e.to_string())?;
        if let Some(reboots) = self.instances.get(instance_id).and_then(|l| l.reboots_done) {
            fs::write(dir.join("reboots"), reboots.to_string()).map_err(|e| e.to_string())?;
        }
        let meta = dir.join("meta");
        self.write_instance_data(&meta, &details)?;
        let vpc = network::ensure_vpc(&details.vpc_id)?;
        network::ensure_subnet(&vpc, &details.subnet_id, &details.subnet_cidr)?;
        let namespace = network::ensure_instance(
            &vpc,
            instance_id,
            &details.subnet_id,
            &details.subnet_cidr,
            &details.private_ip,
        )?;
        self.apply_firewall(&details.vpc_id)?;
        cgroups.create(details.vcpus, details.memory_mib)?;
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("console.log"))
            .map_err(|e| format!("console.log: {e}"))?;
        let hostname = details
            .private_dns_name
            .split('.')
            .next()
            .filter(|name| !name.is_empty())
            .unwrap_or(instance_id)
            .to_string();
        // The shell puts itself in the cgroups before anything else runs,
        // then becomes nsenter, unshare and (as PID 1) instance-init.
        let script = r#"for procs in $CGROUP_PROCS; do echo $$ > "$procs" || exit 1; done
exec nsenter --net="/run/netns/$NETNS" -- unshare --pid --fork --mount --uts --ipc --propagation private --kill-child -- "$@""#;
        let procs: Vec<String> = cgroups
            .procs_files()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("ec2-launcher")
            .arg(&self.settings.program)
            .arg("instance-init")
            .arg("--lower")
            .arg(&lower)
            .arg("--upper")
            .arg(&upper)
            .arg("--work")
            .arg(&work)
            .arg("--merged")
            .arg(&merged)
            .arg("--hostname")
            .arg(&hostname)
            .arg("--meta")
            .arg(&meta)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CGROUP_PROCS", procs.join(" "))
            .env("NETNS", &namespace)
            .stdin(Stdio::null())
            .stdout(console.try_clone().map_err(|e| e.to_string())?)
            .stderr(console)
            // Not in the agent's process group: a Ctrl-C to the agent
            // leaves its instances running.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting the launcher: {e}"))?;
        let pid = child.id() as i32;
        let started = process_start_time(pid).unwrap_or_default();
        write_record(&dir.join("launcher"), &format!("{pid} {started}"))?;
        let local = self.instances.get_mut(instance_id).expect("known");
        local.launcher = Some(Launcher {
            pid,
            started,
            child: Some(child),
        });
        local.stopping_since = None;
        tracing::info!(instance = %instance_id, pid, "booting");
        Ok(())
    }

    /// User data, public key, hostname and hosts files, in the agent's own
    /// folder for the instance (`meta`, mounted read-only at `/run/ec2`),
    /// never in the instance's layer.
    fn write_instance_data(&self, meta: &Path, details: &LaunchDetails) -> Result<(), String> {
        fs::create_dir_all(meta).map_err(|e| format!("{}: {e}", meta.display()))?;
        let user_data = match &details.user_data {
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| "user data is not base64".to_string())?,
            None => Vec::new(),
        };
        let short = details
            .private_dns_name
            .split('.')
            .next()
            .unwrap_or_default();
        let key = details.public_key.clone().unwrap_or_default();
        let files: [(&str, Vec<u8>); 4] = [
            ("user-data", user_data),
            ("authorized_keys", (key + "\n").into_bytes()),
            ("hostname", format!("{short}\n").into_bytes()),
            (
                "hosts",
                format!(
                    "127.0.0.1 localhost\n{} {} {short}\n",
                    details.private_ip, details.private_dns_name
                )
                .into_bytes(),
            ),
        ];
        for (name, content) in files {
            fs::write(meta.join(name), content).map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(())
    }

    /// SIGTERM to init, then (after the grace period) SIGKILL to every
    /// process. True once nothing of it runs (its cgroups are empty).
    fn stop(&mut self, instance_id: &str, now: Instant) -> bool {
        if !self.is_alive(instance_id) {
            let cgroups = InstanceCgroups::of(instance_id);
            cgroups.kill_all();
            return cgroups.processes().is_empty();
        }
        let grace = self.settings.stop_grace;
        let local = self.instances.get_mut(instance_id).expect("alive");
        let launcher = local.launcher.as_ref().expect("alive");
        match local.stopping_since {
            None => {
                local.stopping_since = Some(now);
                if let Some(init) = launcher.init_pid() {
                    let _ = kill(Pid::from_raw(init), Signal::SIGTERM);
                }
                tracing::info!(instance = %instance_id, "stopping");
            }
            Some(since) if now.duration_since(since) >= grace => {
                InstanceCgroups::of(instance_id).kill_all();
                let _ = kill(Pid::from_raw(launcher.pid), Signal::SIGKILL);
            }
            Some(_) => {}
        }
        !self.is_alive(instance_id) && InstanceCgroups::of(instance_id).processes().is_empty()
    }

    /// Removes everything of a terminated instance. True when done.
    fn destroy(&mut self, instance_id: &str) -> bool {
        let cgroups = InstanceCgroups::of(instance_id);
        cgroups.kill_all();
        if let Some(launcher) = self
            .instances
            .get(instance_id)
            .and_then(|l| l.launcher.as_ref())
        {
            let _ = kill(Pid::from_raw(launcher.pid), Signal::SIGKILL);
        }
        if self.is_alive(instance_id) || !cgroups.processes().is_empty() {
            return false;
        }
        if !cgroups.remove() {
            return false;
        }
        let dir = self.instance_dir(instance_id);
        let vpc_id = fs::read_to_string(dir.join("vpc")).unwrap_or_default();
        if let Ok(namespace) = instance_namespace(instance_id) {
            if let Err(error) = network::remove_namespace(&namespace) {
                tracing::warn!(instance = %instance_id, %error, "cannot remove its namespace yet");
                return false;
            }
        }
        if let Some(local) = self.instances.get(instance_id) {
            let console = dir.join("console.log");
            let grown = fs::metadata(&console).is_ok_and(|m| m.len() != local.console_sent);
            if grown && !local.owner_id.is_empty() {
                if let Ok(tail) = console_tail(&console) {
                    self.final_consoles.push(ConsoleUpdate {
                        instance_id: instance_id.to_string(),
                        owner_id: local.owner_id.clone(),
                        length: tail.mark,
                        output: tail.output,
                    });
                }
            }
        }
        if let Err(error) = fs::remove_dir_all(&dir) {
            if dir.exists() {
                tracing::warn!(instance = %instance_id, %error, "cannot remove its files yet");
                return false;
            }
        }
        self.instances.remove(instance_id);
        self.kept.remove(instance_id);
        self.release_vpc_if_unused(vpc_id.trim());
        tracing::info!(instance = %instance_id, "removed");
        true
    }

    /// Deletes a VPC's namespace once no instance here is in it.
    fn release_vpc_if_unused(&mut self, vpc_id: &str) {
        if vpc_id.is_empty() {
            return;
        }
        let in_use = self.instances.keys().any(|id| {
            fs::read_to_string(self.instance_dir(id).join("vpc")).is_ok_and(|v| v.trim() == vpc_id)
        });
        if !in_use {
            if let Ok(namespace) = vpc_namespace(vpc_id) {
                let _ = network::remove_namespace(&namespace);
            }
            self.applied.remove(vpc_id);
        }
    }

    /// Applies the VPC's ruleset when it changed.
    fn apply_firewall(&mut self, vpc_id: &str) -> Result<(), String> {
        let namespace = vpc_namespace(vpc_id)?;
        if !network::namespace_exists(&namespace) {
            return Ok(());
        }
        let script = firewall::render(&self.firewall, vpc_id);
        if self.applied.get(vpc_id) == Some(&script) {
            return Ok(());
        }
        let target = format!("--net=/run/netns/{namespace}");
        command::run_with_input("nsenter", &[&target, "--", "nft", "-f", "-"], &script)
            .map_err(|error| format!("cannot apply the security groups of {vpc_id}: {error}"))?;
        self.applied.insert(vpc_id.to_string(), script);
        Ok(())
    }

    /// Kills and removes every instance this driver's state folder holds
    /// (an operator's clean-up, and the tests' after a failure); answers
    /// the ids it could not remove.
    pub fn remove_everything(&mut self) -> Vec<String> {
        let ids: Vec<String> = self.instances.keys().cloned().collect();
        let mut left = Vec::new();
        for id in ids {
            let removed = (0..50).any(|_| {
                let done = self.destroy(&id);
                if !done {
                    std::thread::sleep(Duration::from_millis(100));
                }
                done
            });
            if !removed {
                left.push(id);
            }
        }
        left
    }

    /// Records the reboot count the next (or current) boot is for.
    fn note_reboots(&mut self, instance_id: &str, reboots: u32) {
        let dir = self.instance_dir(instance_id);
        let local = self.instances.get_mut(instance_id).expect("known");
        if local.reboots_done != Some(reboots) {
            local.reboots_done = Some(reboots);
            if dir.is_dir() {
                let _ = fs::write(dir.join("reboots"), reboots.to_string());
            }
        }
    }

    fn boot_or_log(&mut self, instance_id: &str, now: Instant) {
        let local = self.instances.get_mut(instance_id).expect("known");
        if local
            .booted_at
            .is_some_and(|at| now.duration_since(at) < REBOOT_BACKOFF)
        {
            return;
        }
        local.booted_at = Some(now);
        if let Err(error) = self.boot(instance_id) {
            tracing::warn!(instance = %instance_id, %error, "cannot boot");
            let console = self.instance_dir(instance_id).join("console.log");
            if let Ok(mut file) = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(console)
            {
                use std::io::Write;
                let _ = writeln!(file, "ec2-gateway agent: cannot boot: {error}");
            }
        }
    }
}

impl Driver for NamespaceDriver {
    fn observe(&mut self, instance: &Assigned, now: Instant) -> Option<&'static str> {
        let id = instance.instance_id.as_str();
        if !network::is_instance_id(id) {
            tracing::warn!(instance = %id, "not an instance id: ignored");
            return None;
        }
        self.instances
            .entry(id.to_string())
            .or_insert_with(|| Local {
                owner_id: instance.owner_id.clone(),
                ..Default::default()
            });
        self.kept.remove(id);
        match instance.state.as_str() {
            "pending" => {
                self.note_reboots(id, instance.reboots);
                if self.is_alive(id) {
                    return self.has_booted(id).then_some("running");
                }
                if self.instances[id].details.is_some() {
                    self.boot_or_log(id, now);
                }
                None
            }
            "running" => {
                let done = *self
                    .instances
                    .get_mut(id)
                    .expect("known")
                    .reboots_done
                    .get_or_insert(instance.reboots);
                if done != instance.reboots {
                    // RebootInstances: init stops as in a stop, then boots
                    // again on the same layer.
                    if self.stop(id, now) && self.instances[id].details.is_some() {
                        tracing::info!(instance = %id, "rebooting");
                        self.note_reboots(id, instance.reboots);
                        self.instances.get_mut(id).expect("known").booted_at = None;
                        self.boot_or_log(id, now);
                    }
                    return None;
                }
                if !self.is_alive(id) && self.instances[id].details.is_some() {
                    tracing::warn!(instance = %id, "running instance found dead: booting it again");
                    self.boot_or_log(id, now);
                }
                None
            }
            "stopping" => self.stop(id, now).then_some("stopped"),
            "shutting-down" => (self.stop(id, now) && self.destroy(id)).then_some("terminated"),
            _ => None,
        }
    }

    fn retain(&mut self, placed: &[Assigned]) {
        let gone: Vec<String> = self
            .instances
            .keys()
            .filter(|id| !placed.iter().any(|p| &p.instance_id == *id))
            .cloned()
            .collect();
        for id in gone {
            // Stopped (or moved): its layer stays until the gateway says
            // it is terminated; nothing of it runs.
            if self.is_alive(&id) {
                InstanceCgroups::of(&id).kill_all();
            }
            let owner = self.instances[&id].owner_id.clone();
            self.kept.insert(id, owner);
        }
    }

    fn wants_launch(&self, instance: &Assigned) -> bool {
        matches!(instance.state.as_str(), "pending" | "running")
            && self
                .instances
                .get(&instance.instance_id)
                .is_none_or(|local| local.details.is_none())
    }

    fn launch(&mut self, details: LaunchDetails) {
        if !network::is_instance_id(&details.instance_id) {
            return;
        }
        let local = self
            .instances
            .entry(details.instance_id.clone())
            .or_default();
        local.owner_id = details.owner_id.clone();
        local.details = Some(details);
    }

    fn wants_firewall(&self) -> bool {
        true
    }

    fn firewall(&mut self, firewall: &Firewall) {
        self.firewall = firewall.clone();
        let vpcs: Vec<String> = firewall
            .members
            .iter()
            .map(|m| m.vpc_id.clone())
            .chain(self.applied.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for vpc in vpcs {
            if let Err(error) = self.apply_firewall(&vpc) {
                tracing::warn!(vpc = %vpc, %error, "security groups not applied");
            }
        }
    }

    fn console_updates(&mut self, urgent: &[String]) -> Vec<ConsoleUpdate> {
        let now = Instant::now();
        let mut updates = std::mem::take(&mut self.final_consoles);
        let ids: Vec<String> = self.instances.keys().cloned().collect();
        for id in ids {
            let path = self.instance_dir(&id).join("console.log");
            let local = self.instances.get_mut(&id).expect("listed");
            if local.owner_id.is_empty()
                || (!urgent.contains(&id)
                    && local
                        .console_sent_at
                        .is_some_and(|at| now.duration_since(at) < CONSOLE_INTERVAL))
            {
                continue;
            }
            if fs::metadata(&path).map_or(true, |m| m.len() == local.console_sent) {
                continue;
            }
            let Ok(tail) = console_tail(&path) else {
                continue;
            };
            if tail.cut {
                // The file restarted: whatever mark was delivered before
                // means nothing now.
                local.console_sent = u64::MAX;
            }
            local.console_sent_at = Some(now);
            updates.push(ConsoleUpdate {
                instance_id: id,
                owner_id: local.owner_id.clone(),
                output: tail.output,
                length: tail.mark,
            });
        }
        updates
    }

    fn housekeeping(&mut self) {
        // Consoles are cut here too, so an instance cannot fill the disk
        // while the gateway does not answer.
        let ids: Vec<String> = self.instances.keys().cloned().collect();
        for id in ids {
            let path = self.instance_dir(&id).join("console.log");
            if fs::metadata(&path).is_ok_and(|m| m.len() > CONSOLE_ROTATE)
                && console_tail(&path).is_ok()
            {
                if let Some(local) = self.instances.get_mut(&id) {
                    local.console_sent = u64::MAX;
                }
            }
        }
    }

    fn console_delivered(&mut self, update: &ConsoleUpdate) {
        if let Some(local) = self.instances.get_mut(&update.instance_id) {
            local.console_sent = update.length;
        }
    }

    fn kept(&self) -> Vec<(String, String)> {
        self.kept
            .iter()
            .map(|(id, owner)| (owner.clone(), id.clone()))
            .collect()
    }

    fn forget(&mut self, instance_id: &str) {
        if !self.kept.contains_key(instance_id) {
            return;
        }
        if self.destroy(instance_id) {
            self.kept.remove(instance_id);
        }
    }

    fn reported(&mut self, instance: &Assigned, state: &'static str) {
        if let Some(local) = self.instances.get_mut(&instance.instance_id) {
            local.reported = Some(state);
            if state == "stopped" {
                local.stopping_since = None;
            }
        }
    }
}
