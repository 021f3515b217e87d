//! Reading a request body before anyone has been authenticated, safely.
//!
//! The signature covers the body, so the body must be read before the
//! gateway knows who is calling: an anonymous client decides how much
//! memory it holds and for how long. Four limits keep that small:
//! - a size cap per request (`max_body_bytes`; over it `RequestEntityTooLarge`,
//!   refused from `Content-Length` before reading anything);
//! - a budget of bytes held by all unfinished bodies together
//!   (`max_buffered_body_bytes`) and a share of it per client address
//!   (`max_buffered_body_bytes_per_client`); over either,
//!   `ServiceUnavailable` 503, which clients retry. Bytes are counted as they
//!   arrive (announcing a length costs nothing) and given back when the
//!   request is answered;
//! - a minimum rate (`min_body_bytes_per_sec` after a short grace) and a
//!   longest pause between pieces, so a client trickling bytes, or sending a
//!   burst and then nothing, is cut off long before the overall timeout;
//! - the overall body timeout (`body_read_timeout_secs`).
//!
//! A refused body (413, or 503 past the budget) is drained (up to a bound)
//! before the answer is sent: closing a connection while the client is still sending makes its
//! kernel reset the connection and the client never reads the answer
//! (RFC 9112, section 9.6, advises reading on for a while).

use crate::config::Limits;
use crate::error::{ApiError, ApiResult};
use crate::sync::lock;
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Who a request comes from, for per-client limits: its IPv4 address, or the
/// /64 network of its IPv6 address (one IPv6 client usually holds a whole
/// /64, and would otherwise have endless addresses to spread over).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(std::net::IpAddr);

impl ClientKey {
    pub fn of(address: std::net::IpAddr) -> Self {
        use std::net::{IpAddr, Ipv6Addr};
        match address {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let network = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(network)))
                }
            },
        }
    }
}

/// How much of a refused body is read and dropped so that the client gets
/// to read the answer, in multiples of the body limit.
const DRAIN_FACTOR: u64 = 8;
/// How long a refused body is drained at most.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Time a body may take before the minimum rate applies.
const RATE_GRACE: Duration = Duration::from_secs(2);
/// Longest pause between two pieces of a body.
const MAX_IDLE: Duration = Duration::from_secs(5);
/// Most of a body's announced length allocated before its bytes arrive.
const PREALLOCATE_AT_MOST: u64 = 64 * 1024;

/// The body limits, the shared budget of buffered bytes, and what each
/// client holds of it.
pub struct BodyReader {
    max_bytes: u64,
    timeout: Duration,
    min_bytes_per_sec: u64,
    per_client_bytes: u64,
    budget: Arc<Semaphore>,
    held_by_client: Arc<Mutex<HashMap<ClientKey, u64>>>,
}

/// Bytes of the budget held by one body, given back on drop.
struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    client: Option<ClientKey>,
    bytes: u64,
    held_by_client: Arc<Mutex<HashMap<ClientKey, u64>>>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(client) = self.client else { return };
        let mut held = lock(&self.held_by_client);
        if let Some(count) = held.get_mut(&client) {
            *count = count.saturating_sub(self.bytes);
            if *count == 0 {
                held.remove(&client);
            }
        }
    }
}

/// A body read in full, holding its share of the budget until dropped.
pub struct ReadBody {
    pub bytes: Bytes,
    _reservation: Reservation,
}

fn busy() -> ApiError {
    ApiError::ServiceUnavailable(
        "The gateway is receiving too many requests at once; retry shortly".into(),
    )
}

impl BodyReader {
    pub fn new(limits: &Limits) -> Self {
        Self {
            max_bytes: limits.max_body_bytes,
            timeout: Duration::from_secs(limits.body_read_timeout_secs),
            min_bytes_per_sec: limits.min_body_bytes_per_sec,
            per_client_bytes: limits.max_buffered_body_bytes_per_client,
            budget: Arc::new(Semaphore::new(limits.max_buffered_body_bytes as usize)),
            held_by_client: Arc::default(),
        }
    }

    /// Bytes of the budget not held by unfinished bodies.
    pub fn budget_available(&self) -> usize {
        self.budget.available_permits()
    }

    /// Takes `bytes` more of the budget for `reservation`: refused when the
    /// whole budget, or the client's share of it, is used up.
    fn reserve(&self, reservation: &mut Reservation, bytes: u64) -> ApiResult<()> {
        if let Some(client) = reservation.client {
            let mut held = lock(&self.held_by_client);
            let count = held.entry(client).or_default();
            if *count + bytes > self.per_client_bytes {
                return Err(busy());
            }
            *count += bytes;
            reservation.bytes += bytes;
        }
        let more = u32::try_from(bytes)
            .ok()
            .and_then(|bytes| self.budget.clone().try_acquire_many_owned(bytes).ok())
            .ok_or_else(busy)?;
        match reservation.permit.as_mut() {
            Some(held) => held.merge(more),
            None => reservation.permit = Some(more),
        }
        Ok(())
    }

    /// Reads `body` (announced as `announced` bytes, if it was) from
    /// `client` within the limits. Budget is taken as bytes arrive (an
    /// announced length costs nothing until it is sent). An error means the
    /// connection must close after the answer.
    pub async fn read<B>(
        &self,
        mut body: B,
        announced: Option<u64>,
        client: Option<ClientKey>,
    ) -> ApiResult<ReadBody>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let started = Instant::now();
        if announced.is_some_and(|length| length > self.max_bytes) {
            self.drain(&mut body, announced).await;
            return Err(ApiError::RequestEntityTooLarge);
        }
        let mut reservation = Reservation {
            permit: None,
            client,
            bytes: 0,
            held_by_client: self.held_by_client.clone(),
        };
        let mut collected =
            Vec::with_capacity(announced.unwrap_or(0).min(PREALLOCATE_AT_MOST) as usize);
        let mut last_progress = started;
        loop {
            let deadline = self.deadline(started, last_progress, collected.len() as u64);
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
            if data.is_empty() {
                continue;
            }
            if collected.len() as u64 + data.len() as u64 > self.max_bytes {
                self.drain(&mut body, None).await;
                return Err(ApiError::RequestEntityTooLarge);
            }
            if let Err(error) = self.reserve(&mut reservation, data.len() as u64) {
                self.drain(&mut body, announced).await;
                return Err(error);
            }
            collected.extend_from_slice(&data);
            last_progress = Instant::now();
        }
        Ok(ReadBody {
            bytes: Bytes::from(collected),
            _reservation: reservation,
        })
    }

    /// When the next bytes must have arrived: the minimum rate (after the
    /// grace), the longest pause, or the overall timeout, whichever is first.
    fn deadline(&self, started: Instant, last_progress: Instant, received: u64) -> Instant {
        let overall = started + self.timeout;
        if self.min_bytes_per_sec == 0 {
            return overall;
        }
        let at_min_rate =
            Duration::from_secs_f64((received + 1) as f64 / self.min_bytes_per_sec as f64);
        overall
            .min(started + RATE_GRACE + at_min_rate)
            .min(last_progress + MAX_IDLE)
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
            max_buffered_body_bytes_per_client: 120,
            ..Limits::default()
        })
    }

    fn client(n: u8) -> Option<ClientKey> {
        Some(ClientKey::of(std::net::IpAddr::from([10, 0, 0, n])))
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
            .read(
                Full::new(Bytes::from_static(&[b'a'; 100])),
                Some(100),
                client(1),
            )
            .await
            .unwrap();
        assert_eq!(first.bytes.len(), 100);
        assert_eq!(reader.budget_available(), 50);
        // A second body of 100 bytes does not fit while the first is held.
        let refused = reader
            .read(
                Full::new(Bytes::from_static(&[b'b'; 100])),
                Some(100),
                client(2),
            )
            .await;
        assert_eq!(refused.err().unwrap().code(), "ServiceUnavailable");
        drop(first);
        assert_eq!(reader.budget_available(), 150);
        assert!(lock(&reader.held_by_client).is_empty());
    }

    #[tokio::test]
    async fn chunked_bodies_reserve_frame_by_frame_and_are_capped() {
        let reader = reader(10, 1000);
        let body = reader
            .read(chunked(vec![b"abc", b"def"]), None, client(1))
            .await
            .unwrap();
        assert_eq!(&body.bytes[..], b"abcdef");
        assert_eq!(reader.budget_available(), 994);
        let too_big = reader
            .read(chunked(vec![b"abcdef", b"ghijk"]), None, client(1))
            .await;
        assert_eq!(too_big.err().unwrap().code(), "RequestEntityTooLarge");
    }

    #[tokio::test]
    async fn announced_oversize_is_refused_unread() {
        let reader = reader(10, 1000);
        let refused = reader
            .read(
                Full::new(Bytes::from_static(b"01234567890")),
                Some(11),
                client(1),
            )
            .await;
        assert_eq!(refused.err().unwrap().code(), "RequestEntityTooLarge");
    }

    #[tokio::test]
    async fn one_client_holds_at_most_its_share() {
        let reader = reader(100, 1000);
        let first = reader
            .read(
                Full::new(Bytes::from_static(&[b'a'; 100])),
                Some(100),
                client(1),
            )
            .await
            .unwrap();
        // The same client's next body passes its share of 120 bytes...
        let refused = reader
            .read(
                Full::new(Bytes::from_static(&[b'b'; 30])),
                Some(30),
                client(1),
            )
            .await;
        assert_eq!(refused.err().unwrap().code(), "ServiceUnavailable");
        // ...another client's does not.
        let other = reader
            .read(
                Full::new(Bytes::from_static(&[b'c'; 30])),
                Some(30),
                client(2),
            )
            .await;
        assert!(other.is_ok());
        drop(first);
        assert!(reader
            .read(
                Full::new(Bytes::from_static(&[b'b'; 30])),
                Some(30),
                client(1)
            )
            .await
            .is_ok());
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(c));
        let mapped: std::net::IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(ClientKey::of(mapped), ClientKey::of([192, 0, 2, 7].into()));
    }
}
