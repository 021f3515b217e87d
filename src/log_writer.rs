//! The log's writer: lines gathered in memory and written to stderr a
//! batch at a time.
//!
//! At the default `info` level the gateway logs one line per request. Written
//! one `write` system call each, those lines cost about a fifth of a small
//! request (DescribeAvailabilityZones); a writer thread fed line by line
//! through a channel costs nearly as much, in wake-ups and in the thread's
//! own spinning. Here an event only appends its line to a buffer under a
//! short lock. The buffer is written out in one call when it holds
//! [`BATCH_BYTES`], at the latest [`FLUSH_EVERY`] after a line was added
//! (by a small thread that sleeps in between), at once after a warning or
//! an error (with everything before it, so lines keep their order), when a
//! thread panics, and when the guard returned by [`BatchedLog::start`] is
//! dropped. A process killed outright loses at most the lines of its last
//! [`FLUSH_EVERY`].

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{Level, Metadata};

/// A batch is written once it holds this many bytes.
pub const BATCH_BYTES: usize = 32 * 1024;

/// A line waits at most this long before it is written.
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
        let mut out = crate::sync::lock(&self.out);
        let batch = std::mem::take(&mut *crate::sync::lock(&self.pending));
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

/// A `tracing_subscriber` writer whose lines are written in batches.
#[derive(Clone)]
pub struct BatchedLog {
    shared: Arc<Shared>,
}

/// Writes what is pending when dropped (and stops the timed writes).
pub struct FlushOnDrop {
    shared: Arc<Shared>,
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.shared.flush();
    }
}

impl BatchedLog {
    /// A log writing to `out`, with the thread that writes pending lines
    /// every [`FLUSH_EVERY`] and a panic hook that writes them before the
    /// panic's own message. The thread ends once the log and its guard
    /// are gone.
    pub fn start(out: impl Write + Send + 'static) -> (Self, FlushOnDrop) {
        Self::start_every(out, FLUSH_EVERY)
    }

    /// [`BatchedLog::start`] with pending lines written every `period`.
    pub fn start_every(out: impl Write + Send + 'static, period: Duration) -> (Self, FlushOnDrop) {
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
        let on_panic = Arc::downgrade(&shared);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(shared) = on_panic.upgrade() {
                shared.flush();
            }
            previous(info);
        }));
        (
            Self {
                shared: shared.clone(),
            },
            FlushOnDrop { shared },
        )
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
    fn lines_wait_for_a_full_batch_or_the_guard() {
        let seen = Seen::default();
        let (log, guard) = BatchedLog::start_every(seen.clone(), NEVER);
        line(&log, "one\n");
        line(&log, "two\n");
        // Not written line by line.
        assert_eq!(seen.text(), "");
        // A full batch is written at once, whole lines only, in order.
        let long = format!("{}\n", "x".repeat(BATCH_BYTES));
        line(&log, &long);
        assert_eq!(seen.text(), format!("one\ntwo\n{long}"));
        // Dropping the guard writes what is pending.
        line(&log, "last\n");
        assert!(!seen.text().ends_with("last\n"));
        drop(guard);
        assert!(seen.text().ends_with("\nlast\n"), "{}", seen.text());
    }

    #[test]
    fn pending_lines_are_written_by_the_timer() {
        let seen = Seen::default();
        let (log, _guard) = BatchedLog::start_every(seen.clone(), Duration::from_millis(20));
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
        let (log, _guard) = BatchedLog::start_every(seen.clone(), NEVER);
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
