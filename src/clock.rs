//! The injectable wall clock.
//!
//! Signature windows (15 minutes), presign expiry and compute-host liveness
//! all compare against "now". Handlers read it from a [`Clock`] so tests can
//! verify captured requests at their own time and move a gateway's time
//! forward to watch a host's heartbeat go stale.

use chrono::{DateTime, Duration, Utc};
use std::sync::Mutex;

/// Milliseconds since the process first asked: a monotonic clock, apart
/// from the wall clock tests move.
fn uptime_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// When something kept in memory for requests (a listing index, an
/// instance polled by id, a per-account view) was last used: what the
/// idle sweeps and the least-recently-used choices read.
#[derive(Debug)]
pub struct LastUse(std::sync::atomic::AtomicU64);

impl LastUse {
    /// Used now.
    pub fn now() -> Self {
        Self(std::sync::atomic::AtomicU64::new(uptime_ms()))
    }

    /// Notes a use now.
    pub fn touch(&self) {
        self.0
            .store(uptime_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// When, in milliseconds of the process's monotonic clock (to order
    /// uses).
    pub fn millis(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// True when not used for `idle` or longer.
    pub fn idle_for(&self, idle: std::time::Duration) -> bool {
        uptime_ms().saturating_sub(self.millis()) >= idle.as_millis() as u64
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The real system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock shifted by an adjustable offset (tests).
#[derive(Default)]
pub struct OffsetClock {
    offset: Mutex<Duration>,
}

impl OffsetClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *crate::sync::lock(&self.offset) += by;
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *crate::sync::lock(&self.offset)
    }
}

/// Wall time that follows tokio's clock: under `tokio::time::pause()` it
/// moves only when tokio's time does, so lifecycle tests run instantly.
pub struct TokioClock {
    origin_wall: DateTime<Utc>,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at the current wall time (call inside a tokio runtime).
    pub fn new() -> Self {
        Self {
            origin_wall: Utc::now(),
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.origin;
        self.origin_wall + Duration::from_std(elapsed).unwrap_or_default()
    }
}

/// A clock stopped at one instant (signature vectors at their own time).
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// EC2's one timestamp format: `2016-11-15T12:34:56.000Z`.
pub fn format_timestamp(time: DateTime<Utc>) -> String {
    let mut text = Vec::with_capacity(TIMESTAMP_LENGTH);
    write_timestamp(&mut text, time);
    String::from_utf8(text).expect("digits and ASCII punctuation")
}

/// How long [`format_timestamp`]'s text is (for years 0 to 9999).
pub const TIMESTAMP_LENGTH: usize = 24;

/// Appends [`format_timestamp`]'s text to `out`, digit by digit for years
/// 0 to 9999 (others, through `format!`, the same way as before): chrono's
/// format strings are parsed on every call and `format!` goes through the
/// formatting machinery, both of which showed in profiles of listings (an
/// instance carries several timestamps).
pub fn write_timestamp(out: &mut Vec<u8>, time: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let year = time.year();
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                year,
                time.month(),
                time.day(),
                time.hour(),
                time.minute(),
                time.second(),
                time.timestamp_subsec_millis().min(999)
            )
            .as_bytes(),
        );
        return;
    }
    let digits = |out: &mut Vec<u8>, value: u32, width: u32| {
        for place in (0..width).rev() {
            out.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
        }
    };
    digits(out, year as u32, 4);
    out.push(b'-');
    digits(out, time.month(), 2);
    out.push(b'-');
    digits(out, time.day(), 2);
    out.push(b'T');
    digits(out, time.hour(), 2);
    out.push(b':');
    digits(out, time.minute(), 2);
    out.push(b':');
    digits(out, time.second(), 2);
    out.push(b'.');
    digits(out, time.timestamp_subsec_millis().min(999), 3);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_written_digit_by_digit_are_chronos() {
        let times = [
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap()
                + chrono::Duration::milliseconds(999),
            Utc.with_ymd_and_hms(9999, 2, 28, 7, 8, 9).unwrap() + chrono::Duration::milliseconds(5),
        ];
        for time in times {
            assert_eq!(
                format_timestamp(time),
                time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                "{time:?}"
            );
        }
        assert_eq!(format_timestamp(times[1]).len(), TIMESTAMP_LENGTH);
        // Past year 9999 the year simply grows (chrono would add a sign).
        assert_eq!(
            format_timestamp(Utc.with_ymd_and_hms(12026, 3, 4, 5, 6, 7).unwrap()),
            "12026-03-04T05:06:07.000Z"
        );
    }

    #[test]
    fn ec2_timestamps() {
        let time =
            Utc.with_ymd_and_hms(2016, 11, 15, 12, 34, 56).unwrap() + Duration::milliseconds(7);
        assert_eq!(format_timestamp(time), "2016-11-15T12:34:56.007Z");
        assert_eq!(
            format_timestamp(time),
            time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        );
    }
}
