//! `ec2-gateway image build`: a small root filesystem that the namespace
//! driver (`agent::namespace`) boots, made from Debian packages installed
//! on this machine.
//!
//! EC2 boots an AMI whose first boot runs cloud-init: it sets the hostname,
//! installs the key pair's public key for the default user, runs a `#!`
//! user-data script once, and an SSH server lets the user in. The image
//! built here does the same with two packages: `busybox-static` (init's
//! shell and every command) and `dropbear-bin` (the SSH server, with the
//! shared libraries `ldd` names copied beside it). Its `/sbin/ec2-init` is
//! the instance's PID 1; it finds the instance's user data, public key and
//! hostname in `/run/ec2` (the agent's files, mounted read-only), and keeps
//! its own records in `/var/lib/ec2`. The login user is
//! `ec2-user` (uid 1000), as on Amazon Linux. `/bin/ping` works for every
//! user, as on Debian: it is a copy of busybox with the raw-socket file
//! capability (set with `setcap` from libcap2-bin, a tool of the building
//! machine); a bare `ping` typed in busybox's shell runs the shell's own
//! applet, which only root may use.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian packages the image is made of.
pub const PACKAGES: &[&str] = &["busybox-static", "dropbear-bin"];

/// The login user, as on Amazon Linux.
pub const LOGIN_USER: &str = "ec2-user";
pub const LOGIN_UID: u32 = 1000;

/// Where init keeps its records (the user data, whether it ran), inside
/// the image.
pub const INSTANCE_DATA_DIR: &str = "var/lib/ec2";

/// Where the agent's files for the instance are mounted, read-only.
pub const META_MOUNT: &str = "run/ec2";

/// What init creates once the instance has booted (`/run` is a new tmpfs
/// at every boot).
pub const BOOTED_MARKER: &str = "run/booted";

/// PID 1 of every instance: it runs the user data once, starts the SSH
/// server, marks the boot done, and on SIGTERM stops everything.
const EC2_INIT: &str = r##"#!/bin/sh
# ec2-init: PID 1 of an ec2-gateway instance (the agent's namespace driver).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
data=/var/lib/ec2
meta=/run/ec2
echo "ec2-init: booting $(hostname)"
mkdir -p "$data"
[ -s "$meta/hosts" ] && cp "$meta/hosts" /etc/hosts
[ -s "$meta/hostname" ] && cp "$meta/hostname" /etc/hostname
stopping() {
    echo "ec2-init: stopping"
    kill -TERM -1 2>/dev/null
    sleep 1
    kill -KILL -1 2>/dev/null
    echo "ec2-init: stopped"
    exit 0
}
trap stopping TERM INT
if [ -s "$meta/authorized_keys" ]; then
    mkdir -p /home/ec2-user/.ssh
    cp "$meta/authorized_keys" /home/ec2-user/.ssh/authorized_keys
    chown -R ec2-user:ec2-user /home/ec2-user/.ssh
    chmod 700 /home/ec2-user/.ssh
    chmod 600 /home/ec2-user/.ssh/authorized_keys
    echo "ec2-init: installed the key pair's public key for ec2-user"
fi
mkdir -p /etc/dropbear
dropbear -R -E -p 22
echo "ec2-init: $(hostname) ready"
: > /run/booted
# As cloud-init: the instance is up (running) while its user data runs, in
# the background so a stop is not held up by it.
if [ -s "$meta/user-data" ] && [ ! -e "$data/user-data.done" ]; then
    : > "$data/user-data.done"
    cp "$meta/user-data" "$data/user-data"
    if [ "$(head -c 2 "$data/user-data")" = "#!" ]; then
        (
            echo "ec2-init: running user data"
            chmod 700 "$data/user-data"
            "$data/user-data"
            echo "ec2-init: user data exited with status $?"
        ) &
    else
        echo "ec2-init: user data is not a script (no #!): not run"
    fi
fi
while :; do
    sleep 1 &
    wait
done
"##;

/// What `image build` made.
#[derive(Debug)]
pub struct BuiltImage {
    pub root: PathBuf,
    /// `package version` lines.
    pub packages: Vec<String>,
}

/// Builds the image into `output` (which must not exist or be empty).
pub fn build(output: &Path) -> Result<BuiltImage, String> {
    if output.exists()
        && fs::read_dir(output)
            .map_err(|e| format!("{}: {e}", output.display()))?
            .next()
            .is_some()
    {
        return Err(format!("{} is not empty", output.display()));
    }
    let packages = installed_versions()?;
    let busybox = find_program(&["/usr/bin/busybox", "/bin/busybox"])?;
    let dropbear = find_program(&["/usr/sbin/dropbear"])?;
    for dir in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc/dropbear",
        "proc",
        "dev",
        "sys",
        "run",
        "root",
        "var/log",
        INSTANCE_DATA_DIR,
        "home/ec2-user",
    ] {
        fs::create_dir_all(output.join(dir)).map_err(|e| format!("{dir}: {e}"))?;
    }
    for tmp in ["tmp", "var/tmp"] {
        let tmp = output.join(tmp);
        fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
        set_mode(&tmp, 0o1777)?;
    }
    set_mode(&output.join("root"), 0o700)?;
    copy_file(&busybox, &output.join("bin/busybox"))?;
    for applet in busybox_applets(&busybox)? {
        let link = output.join(&applet);
        if link.exists() || applet == "bin/busybox" {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        symlink("/bin/busybox", &link).map_err(|e| format!("{applet}: {e}"))?;
    }
    // ping for every user, as distributions give it: a copy of busybox
    // (which runs the applet its name says) with the raw-socket capability.
    let ping = output.join("bin/ping");
    let _ = fs::remove_file(&ping);
    copy_file(&busybox, &ping)?;
    let setcap = Command::new("setcap")
        .arg("cap_net_raw+ep")
        .arg(&ping)
        .output()
        .map_err(|e| format!("setcap (install libcap2-bin): {e}"))?;
    if !setcap.status.success() {
        return Err(format!(
            "setcap cap_net_raw+ep bin/ping: {}",
            String::from_utf8_lossy(&setcap.stderr).trim()
        ));
    }
    copy_file(&dropbear, &output.join("usr/sbin/dropbear"))?;
    for library in shared_libraries(&dropbear)? {
        let inside = output.join(library.strip_prefix("/").unwrap_or(&library));
        if let Some(parent) = inside.parent() {
            fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        copy_file(&library, &inside)?;
    }
    let files: &[(&str, String, u32)] = &[
        (
            "etc/passwd",
            format!(
                "root:x:0:0:root:/root:/bin/sh\n{LOGIN_USER}:x:{LOGIN_UID}:{LOGIN_UID}:EC2 Default User:/home/{LOGIN_USER}:/bin/sh\n"
            ),
            0o644,
        ),
        (
            "etc/group",
            format!("root:x:0:\n{LOGIN_USER}:x:{LOGIN_UID}:\n"),
            0o644,
        ),
        (
            "etc/shadow",
            format!("root:*:20000:0:99999:7:::\n{LOGIN_USER}:*:20000:0:99999:7:::\n"),
            0o600,
        ),
        ("etc/shells", "/bin/sh\n".into(), 0o644),
        (
            "etc/os-release",
            "NAME=\"ec2-gateway busybox\"\nID=ec2-gateway-busybox\nPRETTY_NAME=\"ec2-gateway busybox image (busybox-static, dropbear-bin)\"\n".into(),
            0o644,
        ),
        ("etc/ec2-image-packages", packages.join("\n") + "\n", 0o644),
        ("sbin/ec2-init", EC2_INIT.into(), 0o755),
    ];
    for (path, text, mode) in files {
        let target = output.join(path);
        fs::write(&target, text).map_err(|e| format!("{path}: {e}"))?;
        set_mode(&target, *mode)?;
    }
    std::os::unix::fs::chown(
        output.join("home/ec2-user"),
        Some(LOGIN_UID),
        Some(LOGIN_UID),
    )
    .map_err(|e| format!("home/ec2-user: {e}"))?;
    Ok(BuiltImage {
        root: output.to_path_buf(),
        packages,
    })
}

/// `package version` of each package, or which ones are missing.
fn installed_versions() -> Result<Vec<String>, String> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${Version} ${db:Status-Status}\\n"])
        .args(PACKAGES)
        .output()
        .map_err(|e| format!("dpkg-query: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let installed: Vec<String> = text
        .lines()
        .filter(|line| line.ends_with(" installed"))
        .map(|line| line.trim_end_matches(" installed").to_string())
        .collect();
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|p| {
            !installed
                .iter()
                .any(|line| line.starts_with(&format!("{p} ")))
        })
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "install the image's packages first: apt-get install {}",
            missing.join(" ")
        ));
    }
    Ok(installed)
}

fn find_program(candidates: &[&str]) -> Result<PathBuf, String> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .ok_or_else(|| format!("none of {} exists", candidates.join(", ")))
}

/// Every applet as a path inside the image (`bin/sh`, `usr/bin/tail`).
fn busybox_applets(busybox: &Path) -> Result<Vec<String>, String> {
    let output = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| format!("busybox --list-full: {e}"))?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim_start_matches('/').to_string())
        .filter(|line| !line.is_empty() && !line.contains(".."))
        .collect())
}

/// The shared libraries a program loads, as `ldd` lists them.
fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>, String> {
    let output = Command::new("ldd")
        .arg(program)
        .output()
        .map_err(|e| format!("ldd: {e}"))?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// Copies the file behind `from` (symbolic links followed), keeping its
/// mode.
fn copy_file(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copying {}: {e}", from.display()))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}
