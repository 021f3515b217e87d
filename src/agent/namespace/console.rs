//! An instance's console: everything its init and programs write to
//! their standard output, kept in a file of the agent's, of which
//! GetConsoleOutput shows the last 64 KiB as EC2 does. The file is cut
//! back to those 64 KiB when it passes 1 MiB, so an instance cannot fill
//! the machine's disk by writing to its console.

use crate::compute::agent_facts::CONSOLE_LIMIT;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

/// A console is sent at most this often.
pub const CONSOLE_INTERVAL: Duration = Duration::from_secs(2);

/// A console file longer than this is cut to its last 64 KiB (what
/// GetConsoleOutput shows), so an instance cannot fill the disk with it.
pub const CONSOLE_ROTATE: u64 = 1 << 20;

/// What was read of a console.
pub struct ConsoleTail {
    /// Its last [`CONSOLE_LIMIT`] bytes.
    pub output: Vec<u8>,
    /// How far it was read (the file's length then).
    pub mark: u64,
    /// Whether the file was cut.
    pub cut: bool,
}

/// The last [`CONSOLE_LIMIT`] bytes of a console, after cutting the file
/// when it outgrew [`CONSOLE_ROTATE`] (lines written meanwhile may be
/// lost: it is a console, not a log).
pub fn console_tail(path: &Path) -> std::io::Result<ConsoleTail> {
    let mut file = fs::OpenOptions::new().read(true).write(true).open(path)?;
    let length = file.metadata()?.len();
    let start = length.saturating_sub(CONSOLE_LIMIT as u64);
    file.seek(SeekFrom::Start(start))?;
    let mut output = Vec::new();
    (&mut file)
        .take(CONSOLE_LIMIT as u64)
        .read_to_end(&mut output)?;
    let mut mark = start + output.len() as u64;
    let cut = length > CONSOLE_ROTATE;
    if cut {
        use std::io::Write;
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&output)?;
        mark = output.len() as u64;
    }
    Ok(ConsoleTail { output, mark, cut })
}
