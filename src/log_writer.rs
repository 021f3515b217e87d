//! The log's writer: lines gathered in memory and written to stderr a
//! batch at a time.
//!
//! At the default `info` level the gateway logs one line per request. Written
//! one `write` system call each, those lines cost about a tenth of a small
//! request (DescribeAvailabilityZones); a writer thread fed line by line
//! through a channel (`tracing-appender`) cost nearly as much again, in
//! wake-ups and in the thread's own spinning. Here an event only appends
//! its line to a buffer under a short lock. The buffer is written out in one
//! call when it holds [`BATCH_BYTES`], by a small thread that wakes every
//! [`FLUSH_EVERY`], at once after a warning or an error (with everything
//! before it, so lines keep their order), when a thread panics, and when
//! the process log is flushed as the program ends
//! ([`flush_process_log`]). What is lost: the pending lines when the
//! process ends without unwinding (killed by a signal, a stack overflow, an
//! allocation failure), that is the lines of about the last
//! [`FLUSH_EVERY`], more if stderr is slow to take them; and the rest of a
//! batch whose write fails.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;
use tracing::{Level, Metadata};

/// A batch is written once it holds this many bytes.
pub const BATCH_BYTES: usize = 32 * 1024;

/// How often the pending lines are written (a line waits about this long,
/// longer while stderr is slow to take a batch).
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Where lines go, and those not yet written.
struct Shared {
    /// Held while a batch is taken and written, so batches go out in the
    /// order they were taken.
    out: Mutex<Box<dyn Write + Send>>,
    pending: Mutex<Vec<u8>>,
}

impl Shared {
    fn append(&self, line: &[u8]) -> bool {
        let mut pending = crate::sync::lock(&self.pending);
        pending.extend_from_slice(line);
        pending.len() >= BATCH_BYTES
    }

    /// Writes every line appended so far.
    fn flush(&self) {
        let out = crate::sync::lock(&self.out);
        let batch = std::mem::take(&mut *crate::sync::lock(&self.pending));
        self.write(out, batch);
    }

    /// [`Shared::flush`] unless a lock is held: from a panic hook, which
    /// must not wait on a lock its own thread may hold.
    fn flush_unless_busy(&self) {
        let Some(out) = lock_if_free(&self.out) else {
            return;
        };
        let Some(mut pending) = lock_if_free(&self.pending) else {
            return;
        };
        let batch = std::mem::take(&mut *pending);
        drop(pending);
        self.write(out, batch);
    }

    /// Writes `batch` while `out` is held, so that batches go out in the
    /// order they were taken.
    fn write(&self, mut out: MutexGuard<'_, Box<dyn Write + Send>>, batch: Vec<u8>) {
        if batch.is_empty() {
            return;
        }
        // A log that cannot be written has nowhere to say so.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        // Keep the buffer's room for the next batch when nothing was
        // appended meanwhile.
        let mut pending = crate::sync::lock(&self.pending);
        if pending.is_empty() && batch.capacity() <= 4 * BATCH_BYTES {
            let mut batch = batch;
            batch.clear();
            *pending = batch;
        }
    }
}

/// The lock's guard, unless another holds it (a poisoned lock is taken:
/// it holds bytes only).
fn lock_if_free<T>(lock: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match lock.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// A `tracing_subscriber` writer whose lines are written in batches.
#[derive(Clone)]
pub struct BatchedLog {
    shared: Arc<Shared>,
}

/// The log [`BatchedLog::start`] made for this process.
static PROCESS_LOG: std::sync::OnceLock<BatchedLog> = std::sync::OnceLock::new();

/// Writes what the process log holds: called as the program ends, after
/// the tasks that may still log have stopped.
pub fn flush_process_log() {
    if let Some(log) = PROCESS_LOG.get() {
        log.flush();
    }
}

/// [`flush_process_log`] from a panic hook: skipped when a write or an
/// append is under way (the panicking thread may be the one holding it).
fn flush_process_log_on_panic() {
    if let Some(log) = PROCESS_LOG.get() {
        log.shared.flush_unless_busy();
    }
}

impl BatchedLog {
    /// The process's log, writing to `out`: pending lines are written
    /// every [`FLUSH_EVERY`], by a panic hook before the panic's own
    /// message, and by [`flush_process_log`]. A second call gives the
    /// first log.
    pub fn start(out: impl Write + Send + 'static) -> Self {
        PROCESS_LOG
            .get_or_init(|| {
                let previous = std::panic::take_hook();
                std::panic::set_hook(Box::new(move |info| {
                    flush_process_log_on_panic();
                    previous(info);
                }));
                Self::start_every(out, FLUSH_EVERY)
            })
            .clone()
    }

    /// A log writing to `out`, with a thread that writes pending lines
    /// every `period` until every clone of the log is gone.
    pub fn start_every(out: impl Write + Send + 'static, period: Duration) -> Self {
        let shared = Arc::new(Shared {
            out: Mutex::new(Box::new(out)),
            pending: Mutex::new(Vec::with_capacity(BATCH_BYTES)),
        });
        let timed = Arc::downgrade(&shared);
        let _ = std::thread::Builder::new()
            .name("ec2-gateway-log".into())
            .spawn(move || loop {
                std::thread::sleep(period);
                match timed.upgrade() {
                    Some(shared) => shared.flush(),
                    None => return,
                }
            });
        Self { shared }
    }

    /// Writes every line appended so far.
    pub fn flush(&self) {
        self.shared.flush();
    }
}

/// One event's line: appended as it is written, the batch written when
/// full, or when the line (a warning or an error) is dropped.
pub struct LineWriter<'a> {
    log: &'a BatchedLog,
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.log.shared.append(bytes) {
            self.log.shared.flush();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if self.urgent {
            self.log.shared.flush();
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedLog {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            log: self,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter<'a> {
        LineWriter {
            log: self,
            // Less verbose than `info`: a warning or an error.
            urgent: *meta.level() < Level::INFO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    /// What reached the output, shared with the test.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<u8>>>);

    impl Write for Seen {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seen {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn line(log: &BatchedLog, text: &str) {
        log.make_writer().write_all(text.as_bytes()).unwrap();
    }

    /// Long enough that no timed write happens during a test.
    const NEVER: Duration = Duration::from_secs(3600);

    #[test]
    fn lines_wait_for_a_full_batch_or_a_flush() {
        let seen = Seen::default();
        let log = BatchedLog::start_every(seen.clone(), NEVER);
        line(&log, "one\n");
        line(&log, "two\n");
        // Not written line by line.
        assert_eq!(seen.text(), "");
        // A full batch is written at once, whole lines only, in order.
        let long = format!("{}\n", "x".repeat(BATCH_BYTES));
        line(&log, &long);
        assert_eq!(seen.text(), format!("one\ntwo\n{long}"));
        // A flush writes what is pending.
        line(&log, "last\n");
        assert!(!seen.text().ends_with("last\n"));
        log.flush();
        assert!(seen.text().ends_with("\nlast\n"), "{}", seen.text());
    }

    #[test]
    fn pending_lines_are_written_by_the_timer() {
        let seen = Seen::default();
        let log = BatchedLog::start_every(seen.clone(), Duration::from_millis(20));
        line(&log, "one\n");
        line(&log, "two\n");
        let waited = std::time::Instant::now();
        while seen.text().is_empty() && waited.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(seen.text(), "one\ntwo\n");
    }

    #[test]
    fn a_warning_is_written_at_once_after_the_lines_before_it() {
        let seen = Seen::default();
        let log = BatchedLog::start_every(seen.clone(), NEVER);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(log)
            .without_time()
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("answered");
            assert_eq!(seen.text(), "");
            tracing::warn!("trouble");
        });
        let text = seen.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("INFO") && lines[0].ends_with("answered"),
            "{text}"
        );
        assert!(
            lines[1].contains("WARN") && lines[1].ends_with("trouble"),
            "{text}"
        );
    }
}
