//! The HTTP server: accept loop, connection limits, timeouts, graceful shutdown.
//!
//! `run(listener, gateway, shutdown)` serves HTTP/1.1 with keep-alive until
//! `shutdown` resolves, then stops accepting, lets in-flight requests finish
//! (up to a grace period) and returns. A slow client cannot hold a connection
//! forever: the request head must arrive within the header timeout (also the
//! idle limit between kept-alive requests), the body within the body timeout.
//! At most `max_connections` connections are served at once; the rest wait in
//! the kernel's backlog. One client address may hold at most
//! `max_connections_per_client` of them: past that, its next connection is
//! answered `ServiceUnavailable` (503) and closed, so one client cannot take
//! every slot. A handler that panics answers `InternalError` (500) for its
//! own request only; the connection closes and the server carries on.

use crate::body::ClientKey;
use crate::error::ApiError;
use crate::gateway::{refusal, Gateway};
use crate::protocol::xml::render_error;
use crate::sync::lock;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long in-flight requests may take to finish after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `listener` until `shutdown` resolves.
pub async fn run(listener: TcpListener, gateway: Arc<Gateway>, shutdown: impl Future<Output = ()>) {
    let limits = gateway.limits().clone();
    let connection_permits = Arc::new(Semaphore::new(limits.max_connections));
    let clients: Clients = Arc::default();
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let graceful = GracefulShutdown::new();
    // Every connection's task, so that shutdown can wait until each has
    // ended and let go of the gateway (and the store it holds).
    let mut connections = tokio::task::JoinSet::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs))
        // Backstops at twice the limits the gateway checks itself (hyper's
        // own refusal is an empty 431, not EC2 XML).
        .max_buf_size(limits.max_header_bytes * 2)
        .max_headers(limits.max_headers * 2)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = connection_permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let client = ClientKey::of(remote.ip());
        let Some(slot) = ClientSlot::take(&clients, client, limits.max_connections_per_client)
        else {
            // Over its share: the connection slot goes back at once, and a
            // short task answers one 503 in EC2's XML and closes, without
            // waiting for a request (a client over its share must not hold
            // anything for the header timeout).
            drop(permit);
            if let Ok(refusing) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse_connection(stream).await;
                    drop(refusing);
                });
            }
            continue;
        };
        let counted = gateway.clone();
        let gateway = gateway.clone();
        let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let gateway = gateway.clone();
            request.extensions_mut().insert(client);
            async move {
                let answer = CatchUnwind(Box::pin(gateway.handle(request))).await;
                Ok::<_, Infallible>(answer.unwrap_or_else(|| {
                    tracing::error!("a request handler panicked: answered InternalError");
                    refusal(&ApiError::InternalError)
                }))
            }
        });
        let stream = crate::write_deadline::WriteDeadline::new(
            stream,
            Duration::from_secs(limits.write_stall_timeout_secs),
        );
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            let _open = counted.metrics.connection_opened();
            if let Err(error) = connection.await {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
            drop(slot);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
        graceful.shutdown().await;
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!("some connections did not finish within the grace period");
    }
    // Whatever outlived the grace period is stopped now.
    connections.shutdown().await;
}

/// Refusals being written at once; past it, a refused connection is simply
/// closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 256;
/// How long a refusal may take to write and linger.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// How much a refused client may send while its refusal lingers.
const REFUSAL_DRAIN_BYTES: usize = 64 * 1024;

/// Writes one `ServiceUnavailable` answer, half-closes, and reads (and
/// drops) what the client still sends for a moment, so that its kernel does
/// not reset the connection before it has read the answer.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let error =
        ApiError::ServiceUnavailable("Too many connections from this client address".into());
    let body = render_error(&error, &crate::gateway::new_request_id());
    let mut answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend(body);
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < REFUSAL_DRAIN_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Open connections per client.
type Clients = Arc<Mutex<HashMap<ClientKey, usize>>>;

/// One connection's place in its client's count; given back on drop.
struct ClientSlot {
    clients: Clients,
    address: ClientKey,
}

impl ClientSlot {
    /// A slot for `address`, unless it already holds `limit` connections.
    fn take(clients: &Clients, address: ClientKey, limit: usize) -> Option<Self> {
        let mut counts = lock(clients);
        let count = counts.entry(address).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Self {
            clients: clients.clone(),
            address,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.clients);
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// Runs a future and turns a panic inside it into `None`: a bug answers one
/// request with `InternalError` instead of killing the connection's task
/// silently, and a background task can be restarted. The panic itself is
/// logged by the hook (and by the caller).
pub(crate) struct CatchUnwind<F>(pub(crate) F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(context))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Some(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        }
    }
}
