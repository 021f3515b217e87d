//! Reading a request body before anyone has been authenticated, safely.
//!
//! The signature covers the body, so the body must be read before the
//! gateway knows who is calling: an anonymous client decides how much
//! memory it holds and for how long. Four limits keep that small:
//! - a size cap per request (`max_body_bytes`; over it `RequestEntityTooLarge`,
//!   refused from `Content-Length` before reading anything);
//! - a budget of bytes held by all unfinished bodies together
//!   (`max_buffered_body_bytes`; over it `ServiceUnavailable` 503, which
//!   clients retry), reserved from `Content-Length` up front or frame by
//!   frame for chunked bodies, and released when the request is answered;
//! - a minimum rate (`min_body_bytes_per_sec` after a short grace), so a
//!   client trickling bytes is cut off long before the overall timeout;
//! - the overall body timeout (`body_read_timeout_secs`).
//!
//! A refused oversized body is drained (up to a bound) before the 413 is
//! sent: closing a connection while the client is still sending makes its
//! kernel reset the connection and the client never reads the answer
//! (RFC 9112, section 9.6, advises reading on for a while).

use crate::config::Limits;
use crate::error::{ApiError, ApiResult};
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How much of a refused oversized body is read and dropped so that the
/// client gets to read the 413, in multiples of the body limit.
const DRAIN_FACTOR: u64 = 8;
/// How long a refused body is drained at most.
const DRAIN_TIME: Duration = Duration::from_secs(5);
/// Time a body may take before the minimum rate applies.
const RATE_GRACE: Duration = Duration::from_secs(2);

/// The body limits and the shared budget of buffered bytes.
pub struct BodyReader {
    max_bytes: u64,
    timeout: Duration,
    min_bytes_per_sec: u64,
    budget: Arc<Semaphore>,
}

/// A body read in full, holding its share of the budget until dropped.
pub struct ReadBody {
    pub bytes: Bytes,
    _reservation: Option<OwnedSemaphorePermit>,
}

impl BodyReader {
    pub fn new(limits: &Limits) -> Self {
        Self {
            max_bytes: limits.max_body_bytes,
            timeout: Duration::from_secs(limits.body_read_timeout_secs),
            min_bytes_per_sec: limits.min_body_bytes_per_sec,
            budget: Arc::new(Semaphore::new(limits.max_buffered_body_bytes as usize)),
        }
    }

    /// Bytes of the budget not held by unfinished bodies.
    pub fn budget_available(&self) -> usize {
        self.budget.available_permits()
    }

    fn reserve(&self, bytes: u64) -> ApiResult<OwnedSemaphorePermit> {
        u32::try_from(bytes)
            .ok()
            .and_then(|bytes| self.budget.clone().try_acquire_many_owned(bytes).ok())
            .ok_or_else(|| {
                ApiError::ServiceUnavailable(
                    "The gateway is receiving too many requests at once; retry shortly".into(),
                )
            })
    }

    /// Reads `body` (announced as `announced` bytes, if it was) within the
    /// limits. An error means the connection must close after the answer.
    pub async fn read<B>(&self, mut body: B, announced: Option<u64>) -> ApiResult<ReadBody>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let started = Instant::now();
        if announced.is_some_and(|length| length > self.max_bytes) {
            self.drain(&mut body, announced).await;
            return Err(ApiError::RequestEntityTooLarge);
        }
        let mut reservation = match announced {
            Some(0) | None => None,
            Some(length) => Some(self.reserve(length)?),
        };
        let mut collected = Vec::with_capacity(announced.unwrap_or(0) as usize);
        loop {
            let deadline = self.deadline(started, collected.len() as u64);
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => return Err(ApiError::RequestTimeout),
                Ok(None) => break,
                Ok(Some(Err(error))) => {
                    tracing::debug!(%error, "request body could not be read");
                    return Err(ApiError::MalformedQueryString(
                        "The request body could not be read".into(),
                    ));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if collected.len() as u64 + data.len() as u64 > self.max_bytes {
                self.drain(&mut body, None).await;
                return Err(ApiError::RequestEntityTooLarge);
            }
            if announced.is_none() && !data.is_empty() {
                let more = self.reserve(data.len() as u64)?;
                match reservation.as_mut() {
                    Some(held) => held.merge(more),
                    None => reservation = Some(more),
                }
            }
            collected.extend_from_slice(&data);
        }
        Ok(ReadBody {
            bytes: Bytes::from(collected),
            _reservation: reservation,
        })
    }

    /// When the next bytes must have arrived: the minimum rate (after the
    /// grace) or the overall timeout, whichever comes first.
    fn deadline(&self, started: Instant, received: u64) -> Instant {
        let overall = started + self.timeout;
        if self.min_bytes_per_sec == 0 {
            return overall;
        }
        let at_min_rate =
            Duration::from_secs_f64((received + 1) as f64 / self.min_bytes_per_sec as f64);
        overall.min(started + RATE_GRACE + at_min_rate)
    }

    /// Reads and drops what is left of a refused body, within bounds.
    async fn drain<B>(&self, body: &mut B, announced: Option<u64>)
    where
        B: Body<Data = Bytes> + Unpin,
    {
        let bound = self.max_bytes.saturating_mul(DRAIN_FACTOR);
        if announced.is_some_and(|length| length > bound) {
            return;
        }
        let deadline = Instant::now() + DRAIN_TIME;
        let mut drained = 0u64;
        while drained <= bound {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    drained += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use hyper::body::Frame;

    fn reader(max_bytes: u64, budget: u64) -> BodyReader {
        BodyReader::new(&Limits {
            max_body_bytes: max_bytes,
            max_buffered_body_bytes: budget,
            ..Limits::default()
        })
    }

    /// A chunked body (no length announced) made of `parts`.
    struct Chunks(std::collections::VecDeque<&'static [u8]>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(
                self.0
                    .pop_front()
                    .map(|part| Ok(Frame::data(Bytes::from_static(part)))),
            )
        }
    }

    fn chunked(parts: Vec<&'static [u8]>) -> Chunks {
        Chunks(parts.into())
    }

    #[tokio::test]
    async fn reads_and_holds_its_share_of_the_budget() {
        let reader = reader(100, 150);
        let first = reader
            .read(Full::new(Bytes::from_static(&[b'a'; 100])), Some(100))
            .await
            .unwrap();
        assert_eq!(first.bytes.len(), 100);
        assert_eq!(reader.budget_available(), 50);
        // A second body of 100 bytes does not fit while the first is held.
        let refused = reader
            .read(Full::new(Bytes::from_static(&[b'b'; 100])), Some(100))
            .await;
        assert_eq!(refused.err().unwrap().code(), "ServiceUnavailable");
        drop(first);
        assert_eq!(reader.budget_available(), 150);
    }

    #[tokio::test]
    async fn chunked_bodies_reserve_frame_by_frame_and_are_capped() {
        let reader = reader(10, 1000);
        let body = reader
            .read(chunked(vec![b"abc", b"def"]), None)
            .await
            .unwrap();
        assert_eq!(&body.bytes[..], b"abcdef");
        assert_eq!(reader.budget_available(), 994);
        let too_big = reader.read(chunked(vec![b"abcdef", b"ghijk"]), None).await;
        assert_eq!(too_big.err().unwrap().code(), "RequestEntityTooLarge");
    }

    #[tokio::test]
    async fn announced_oversize_is_refused_unread() {
        let reader = reader(10, 1000);
        let refused = reader
            .read(Full::new(Bytes::from_static(b"01234567890")), Some(11))
            .await;
        assert_eq!(refused.err().unwrap().code(), "RequestEntityTooLarge");
    }
}
