//! An instance's limits, from its instance type, through cgroups: memory
//! (no swap), CPU time (its vCPUs as a CFS quota) and a cap on processes.
//! The unified hierarchy (cgroup v2) is used where the machine mounts it,
//! else the v1 controllers (`memory`, `cpu`, `pids`). Every process of the
//! instance is in its cgroups from its launcher on, so the driver finds
//! and kills them all through `cgroup.procs`, and an empty cgroup is
//! removed with the instance.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
const PARENT: &str = "ec2-gateway";
/// Processes an instance may have at once.
const MAX_PROCESSES: u32 = 4096;
const CPU_PERIOD_US: u64 = 100_000;

/// The cgroups of one instance.
#[derive(Debug, Clone)]
pub struct InstanceCgroups {
    /// The first is the one whose `cgroup.procs` lists every process.
    dirs: Vec<PathBuf>,
    unified: bool,
}

fn is_unified() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

impl InstanceCgroups {
    pub fn of(instance_id: &str) -> Self {
        let unified = is_unified();
        let dirs = if unified {
            vec![Path::new(ROOT).join(PARENT).join(instance_id)]
        } else {
            ["memory", "cpu", "pids"]
                .iter()
                .map(|controller| Path::new(ROOT).join(controller))
                .filter(|controller| controller.is_dir())
                .map(|controller| controller.join(PARENT).join(instance_id))
                .collect()
        };
        Self { dirs, unified }
    }

    /// Creates them with the instance type's limits.
    pub fn create(&self, vcpus: u32, memory_mib: u64) -> Result<(), String> {
        if self.dirs.is_empty() {
            return Err("no cgroup controllers are mounted under /sys/fs/cgroup".into());
        }
        let memory = (memory_mib << 20).to_string();
        let quota = (u64::from(vcpus.max(1)) * CPU_PERIOD_US).to_string();
        if self.unified {
            let parent = Path::new(ROOT).join(PARENT);
            fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            for dir in [Path::new(ROOT), parent.as_path()] {
                write(&dir.join("cgroup.subtree_control"), "+memory +cpu +pids")?;
            }
            let dir = &self.dirs[0];
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            write(&dir.join("memory.max"), &memory)?;
            let _ = write(&dir.join("memory.swap.max"), "0");
            write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
            write(&dir.join("pids.max"), &MAX_PROCESSES.to_string())?;
            return Ok(());
        }
        for dir in &self.dirs {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let controller = dir
                .parent()
                .and_then(Path::parent)
                .and_then(Path::file_name)
                .and_then(|name| name.to_str())
                .unwrap_or_default();
            match controller {
                "memory" => {
                    write(&dir.join("memory.limit_in_bytes"), &memory)?;
                    let swap = dir.join("memory.memsw.limit_in_bytes");
                    if swap.exists() {
                        write(&swap, &memory)?;
                    }
                }
                "cpu" => {
                    write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    write(&dir.join("cpu.cfs_quota_us"), &quota)?;
                }
                "pids" => write(&dir.join("pids.max"), &MAX_PROCESSES.to_string())?,
                _ => {}
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` files a new process writes its pid into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|dir| dir.join("cgroup.procs"))
            .collect()
    }

    /// Every process of the instance.
    pub fn processes(&self) -> Vec<i32> {
        self.dirs
            .first()
            .and_then(|dir| fs::read_to_string(dir.join("cgroup.procs")).ok())
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    pub fn kill_all(&self) {
        for pid in self.processes() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// Removes them (once empty); true when none is left.
    pub fn remove(&self) -> bool {
        self.dirs
            .iter()
            .all(|dir| !dir.exists() || fs::remove_dir(dir).is_ok())
    }

    /// Whether any of them is still there.
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|dir| dir.exists())
    }

    /// The memory limit the kernel enforces, in bytes.
    pub fn memory_limit(&self) -> Option<u64> {
        let file = if self.unified {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        self.dirs
            .iter()
            .find_map(|dir| fs::read_to_string(dir.join(file)).ok())
            .and_then(|text| text.trim().parse().ok())
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("{}: {e}", path.display()))
}
