//! The injectable wall clock.
//!
//! Signature windows (15 minutes), presign expiry and compute-host liveness
//! all compare against "now". Handlers read it from a [`Clock`] so tests can
//! verify captured requests at their own time and move a gateway's time
//! forward to watch a host's heartbeat go stale.

use chrono::{DateTime, Duration, Utc};
use std::sync::Mutex;

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
    use chrono::{Datelike, Timelike};
    // Written field by field: chrono's format strings are parsed on every
    // call, which showed in profiles of large listings.
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.timestamp_subsec_millis().min(999)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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
