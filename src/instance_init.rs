//! `ec2-gateway instance-init` (hidden): the first moments of an instance
//! that the namespace driver boots, before the image's own init runs.
//!
//! The agent starts it as PID 1 of new PID, mount, UTS and IPC namespaces
//! (util-linux `unshare`), already inside the instance's network namespace
//! (`nsenter`) and cgroups. It mounts the instance's overlay (the image
//! below, the instance's own layer above, so data survives stop and start),
//! a `/proc` of its own PID namespace, a small `/dev` and `/dev/pts`, a new
//! `/run` holding the agent's files for the instance read-only (`/run/ec2`:
//! the agent never writes into the instance's layer, where the instance's
//! root could have planted symbolic links to the machine's files); makes
//! `/proc/sys` and `/proc/sysrq-trigger` read-only; sets the hostname;
//! moves into the overlay with `pivot_root` and detaches the machine's own
//! root, so no file of the host is reachable; drops the capabilities a
//! container's root must not have (mounts, modules, raw devices, network
//! configuration, handles to host files); and runs `/sbin/ec2-init`. The
//! mounts live in the instance's mount namespace only, so they go away with
//! its last process: nothing to unmount on the host.

use caps::{CapSet, Capability};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chdir, execve, pivot_root, sethostname};
use std::ffi::CString;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// `ec2-gateway instance-init` flags.
#[derive(Debug, clap::Args)]
pub struct InstanceInitArgs {
    /// The image's root filesystem (the overlay's lower layer).
    #[arg(long)]
    pub lower: PathBuf,
    /// The instance's own layer.
    #[arg(long)]
    pub upper: PathBuf,
    /// Overlayfs's work folder (beside `upper`, on the same filesystem).
    #[arg(long)]
    pub work: PathBuf,
    /// Where the overlay is mounted (inside this mount namespace only).
    #[arg(long)]
    pub merged: PathBuf,
    #[arg(long)]
    pub hostname: String,
    /// The agent's files for the instance (mounted read-only at `/run/ec2`).
    #[arg(long)]
    pub meta: PathBuf,
}

/// The capabilities an instance's root keeps: Docker's default set, which
/// lets it own files, switch users (the SSH server) and ping, and nothing
/// that reaches beyond its namespaces.
const KEPT: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_NET_RAW,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_AUDIT_WRITE,
    Capability::CAP_SETFCAP,
];

/// Parts of `/proc` an instance sees read-only.
const READ_ONLY_PROC: &[&str] = &[
    "proc/sys",
    "proc/sysrq-trigger",
    "proc/irq",
    "proc/bus",
    "proc/fs",
];

/// Files of `/proc` an instance sees empty.
const MASKED_PROC: &[&str] = &[
    "proc/kcore",
    "proc/keys",
    "proc/timer_list",
    "proc/sched_debug",
    "proc/latency_stats",
];

/// Folders of `/proc` an instance sees empty.
const MASKED_PROC_DIRS: &[&str] = &["proc/acpi", "proc/scsi"];

/// Sets the instance up and becomes its init; answers only on failure.
pub fn run(args: InstanceInitArgs) -> String {
    match set_up(&args) {
        Ok(never) => match never {},
        Err(error) => format!("instance-init: {error}"),
    }
}

fn set_up(args: &InstanceInitArgs) -> Result<std::convert::Infallible, String> {
    let fail = |what: &str| {
        let what = what.to_string();
        move |e: nix::Error| format!("{what}: {e}")
    };
    // Nothing mounted here propagates back to the machine.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(fail("making / private"))?;
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        args.lower.display(),
        args.upper.display(),
        args.work.display()
    );
    let root = &args.merged;
    // No device node of the image or the layer works (the instance's
    // devices are the few made on its own /dev).
    mount(
        Some("overlay"),
        root,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(fail("mounting the overlay"))?;
    let inside = |path: &str| root.join(path);
    for dir in ["proc", "dev", "tmp", "run", ".oldroot"] {
        real_dir(&inside(dir))?;
    }
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("proc"),
        &inside("proc"),
        Some("proc"),
        hardened,
        None::<&str>,
    )
    .map_err(fail("mounting /proc"))?;
    // As Docker does: the kernel's settings read-only, its memory, keys
    // and timers out of sight. (A kernel may lack some of them.)
    for path in READ_ONLY_PROC {
        if inside(path).exists() {
            read_only_bind(&inside(path)).map_err(fail(path))?;
        }
    }
    for path in MASKED_PROC_DIRS {
        if inside(path).is_dir() {
            mount(
                Some("tmpfs"),
                &inside(path),
                Some("tmpfs"),
                MsFlags::MS_RDONLY | hardened,
                Some("size=0"),
            )
            .map_err(fail(path))?;
        }
    }
    for path in MASKED_PROC {
        if inside(path).is_file() {
            mount(
                Some("/dev/null"),
                &inside(path),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(fail(path))?;
        }
    }
    mount(
        Some("tmpfs"),
        &inside("dev"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=1m"),
    )
    .map_err(fail("mounting /dev"))?;
    make_devices(&inside("dev"))?;
    mount(
        Some("devpts"),
        &inside("dev/pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(fail("mounting /dev/pts"))?;
    mount(
        Some("tmpfs"),
        &inside("run"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755,size=16m"),
    )
    .map_err(fail("mounting /run"))?;
    let meta = inside(crate::image_build::META_MOUNT);
    std::fs::create_dir_all(&meta).map_err(|e| format!("/run/ec2: {e}"))?;
    mount(
        Some(args.meta.as_path()),
        &meta,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(fail("mounting /run/ec2"))?;
    mount(
        None::<&str>,
        &meta,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | hardened,
        None::<&str>,
    )
    .map_err(fail("making /run/ec2 read-only"))?;
    sethostname(&args.hostname).map_err(fail("setting the hostname"))?;
    chdir(root.as_path()).map_err(fail("entering the overlay"))?;
    pivot_root(".", ".oldroot").map_err(fail("pivot_root"))?;
    chdir("/").map_err(fail("chdir /"))?;
    umount2("/.oldroot", MntFlags::MNT_DETACH).map_err(fail("detaching the host's root"))?;
    std::fs::remove_dir("/.oldroot").map_err(|e| format!("/.oldroot: {e}"))?;
    drop_capabilities()?;
    let init = CString::new("/sbin/ec2-init").expect("no NUL");
    let env = [
        CString::new("PATH=/usr/sbin:/usr/bin:/sbin:/bin").expect("no NUL"),
        CString::new("HOME=/root").expect("no NUL"),
        CString::new("TERM=linux").expect("no NUL"),
    ];
    execve(&init, std::slice::from_ref(&init), &env).map_err(fail("running /sbin/ec2-init"))
}

/// `path` as a real folder of the instance's layer: a symbolic link (or a
/// file) the instance left there is removed first, so no mount lands
/// where it points.
fn real_dir(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(found) if found.is_dir() => return Ok(()),
        Ok(_) => std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?,
        Err(_) => {}
    }
    std::fs::create_dir(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_only_bind(path: &Path) -> nix::Result<()> {
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
}

/// The few devices a Linux userland expects.
fn make_devices(dev: &Path) -> Result<(), String> {
    let devices: &[(&str, u64, u64)] = &[
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ];
    for (name, major, minor) in devices {
        mknod(
            &dev.join(name),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(*major, *minor),
        )
        .map_err(|e| format!("/dev/{name}: {e}"))?;
        // (mknod's mode went through the umask.)
        std::fs::set_permissions(dev.join(name), std::fs::Permissions::from_mode(0o666))
            .map_err(|e| format!("/dev/{name}: {e}"))?;
    }
    std::fs::create_dir_all(dev.join("pts")).map_err(|e| e.to_string())?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, dev.join(link)).map_err(|e| format!("/dev/{link}: {e}"))?;
    }
    Ok(())
}

fn drop_capabilities() -> Result<(), String> {
    let all = caps::all();
    for capability in all.iter().filter(|c| !KEPT.contains(c)) {
        caps::drop(None, CapSet::Bounding, *capability)
            .map_err(|e| format!("dropping {capability}: {e}"))?;
    }
    caps::clear(None, CapSet::Inheritable).map_err(|e| format!("inheritable: {e}"))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("ambient: {e}"))?;
    Ok(())
}
