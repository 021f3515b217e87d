//! Backups of a gateway's whole state, and restoring one into a data
//! folder.
//!
//! `ec2-gateway admin backup FILE` asks a running gateway (admin action
//! `AdminExportBackup`) for a [`Snapshot`] of its store: every record of
//! every tree at one revision, so the backup is consistent (an instance is
//! never there without the capacity it holds, or a key without its
//! account). Taking it does not stop the gateway: on sled, commits wait
//! for one pass over the data; on etcd, the gateway's copy is caught up
//! with the cluster and copied, and nothing waits. `ec2-gateway restore
//! FILE --data-dir DIR` writes the snapshot into a new sled data folder,
//! which a gateway then opens as its own.
//!
//! The file is JSON lines: a header (format, version, revision, time,
//! region, entry count), one line per entry (tree, key and value in
//! base64, version), and a trailer with the count and a SHA-256 of every
//! line before it, so that a truncated or altered file is refused whole
//! rather than half restored. The file holds every secret the gateway
//! keeps (access keys' secrets among them), so it is written readable by
//! its owner only.

use crate::store::{Snapshot, SnapshotEntry};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// What the header's `format` says.
pub const FORMAT: &str = "ec2-gateway-backup";
/// The format's version this release writes and reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub revision: u64,
    pub created_at: DateTime<Utc>,
    pub region: String,
    pub entries: u64,
}

#[derive(Serialize, Deserialize)]
struct Line {
    t: String,
    k: String,
    v: String,
    r: u64,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    end: bool,
    entries: u64,
    sha256: String,
}

/// The backup file of `snapshot`.
pub fn encode(snapshot: &Snapshot, region: &str, now: DateTime<Utc>) -> Vec<u8> {
    let header = Header {
        format: FORMAT.to_string(),
        version: FORMAT_VERSION,
        revision: snapshot.revision,
        created_at: now,
        region: region.to_string(),
        entries: snapshot.entries.len() as u64,
    };
    // Sized up front (base64 of key and value, the tree, the JSON around
    // them): the file is the largest buffer a backup makes.
    let size: usize = snapshot
        .entries
        .iter()
        .map(|e| {
            (e.key.len() + 2).div_ceil(3) * 4
                + (e.value.len() + 2).div_ceil(3) * 4
                + e.tree.len()
                + 48
        })
        .sum();
    let mut out = Vec::with_capacity(size + 512);
    let mut digest = Sha256::new();
    let mut push = |out: &mut Vec<u8>, line: Vec<u8>| {
        digest.update(&line);
        digest.update(b"\n");
        out.extend_from_slice(&line);
        out.push(b'\n');
    };
    push(
        &mut out,
        serde_json::to_vec(&header).expect("a header serialises"),
    );
    for entry in &snapshot.entries {
        let line = Line {
            t: entry.tree.clone(),
            k: BASE64.encode(&entry.key),
            v: BASE64.encode(&entry.value),
            r: entry.version,
        };
        push(
            &mut out,
            serde_json::to_vec(&line).expect("a line serialises"),
        );
    }
    let trailer = Trailer {
        end: true,
        entries: snapshot.entries.len() as u64,
        sha256: hex::encode(digest.finalize()),
    };
    out.extend_from_slice(&serde_json::to_vec(&trailer).expect("a trailer serialises"));
    out.push(b'\n');
    out
}

/// Reads a backup file, checking its format, count and checksum.
pub fn decode(bytes: &[u8]) -> Result<(Header, Snapshot), String> {
    let mut lines = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let mut digest = Sha256::new();
    let first = lines.next().ok_or("the backup is empty")?;
    digest.update(first);
    digest.update(b"\n");
    let header: Header =
        serde_json::from_slice(first).map_err(|e| format!("not a backup header: {e}"))?;
    if header.format != FORMAT {
        return Err(format!("not an {FORMAT} file"));
    }
    if header.version != FORMAT_VERSION {
        return Err(format!(
            "backup format version {} (this release reads {FORMAT_VERSION})",
            header.version
        ));
    }
    // The header's count is only a claim: no more room than the file's
    // lines could fill.
    let mut entries = Vec::with_capacity((header.entries as usize).min(bytes.len() / 32));
    let mut trailer = None;
    for (number, line) in lines.enumerate() {
        if trailer.is_some() {
            return Err("data after the backup's trailer".into());
        }
        if let Ok(end) = serde_json::from_slice::<Trailer>(line) {
            trailer = Some(end);
            continue;
        }
        digest.update(line);
        digest.update(b"\n");
        let line: Line =
            serde_json::from_slice(line).map_err(|e| format!("entry {}: {e}", number + 1))?;
        let decode = |what: &str, text: &str| {
            BASE64
                .decode(text)
                .map_err(|e| format!("entry {}: {what}: {e}", number + 1))
        };
        entries.push(SnapshotEntry {
            key: decode("key", &line.k)?,
            value: decode("value", &line.v)?,
            tree: line.t,
            version: line.r,
        });
    }
    let trailer = trailer.ok_or("the backup is truncated (no trailer)")?;
    if !trailer.end || trailer.entries != entries.len() as u64 || header.entries != trailer.entries
    {
        return Err(format!(
            "the backup is incomplete: {} entries announced, {} found",
            header.entries,
            entries.len()
        ));
    }
    if hex::encode(digest.finalize()) != trailer.sha256 {
        return Err("the backup's checksum does not match: it was altered or damaged".into());
    }
    Ok((
        header.clone(),
        Snapshot {
            revision: header.revision,
            entries,
        },
    ))
}

/// Writes `bytes` to `path` readable by its owner only, whole or not at
/// all (a temporary file renamed into place once synced).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(folder)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// `ec2-gateway restore FILE --data-dir DIR`: a new sled data folder from
/// a backup file.
pub fn restore(file: &Path, data_dir: &Path) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let (header, snapshot) = decode(&bytes)?;
    let db = data_dir.join("db");
    if db.exists() {
        return Err(format!(
            "{} already exists: restore into a new data folder",
            db.display()
        ));
    }
    crate::app::create_private_folder(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    crate::store::SledStore::restore(&db, &snapshot).map_err(|e| e.to_string())?;
    Ok(format!(
        "restored {} entries (revision {}, region {}, taken {}) into {}",
        header.entries,
        header.revision,
        header.region,
        header.created_at.to_rfc3339(),
        data_dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            revision: 42,
            entries: vec![
                SnapshotEntry {
                    tree: "instances".into(),
                    key: b"123456789012/i-1".to_vec(),
                    value: b"{\"v\":4}".to_vec(),
                    version: 40,
                },
                SnapshotEntry {
                    tree: "meta".into(),
                    key: vec![0, 255, 10],
                    value: vec![10, 10, 0],
                    version: 42,
                },
            ],
        }
    }

    #[test]
    fn a_backup_reads_back_as_written() {
        let bytes = encode(&sample(), "us-east-1", Utc::now());
        let (header, snapshot) = decode(&bytes).unwrap();
        assert_eq!(header.entries, 2);
        assert_eq!(snapshot.revision, 42);
        assert_eq!(snapshot.entries, sample().entries);
    }

    #[test]
    fn a_truncated_or_altered_backup_is_refused() {
        let bytes = encode(&sample(), "us-east-1", Utc::now());
        let text = String::from_utf8(bytes.clone()).unwrap();
        let without_trailer: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert!(decode(without_trailer.as_bytes())
            .unwrap_err()
            .contains("truncated"));
        let altered = text.replace("\"r\":40", "\"r\":41");
        assert!(decode(altered.as_bytes()).unwrap_err().contains("checksum"));
        let dropped: String = text
            .lines()
            .enumerate()
            .filter(|(n, _)| *n != 1)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        assert!(decode(dropped.as_bytes())
            .unwrap_err()
            .contains("incomplete"));
    }
}
