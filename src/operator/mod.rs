//! The operator listener: metrics for Prometheus, health checks for load
//! balancers, and a read-only dashboard, off the EC2 port.
//!
//! EC2 itself has no such endpoint (CloudWatch and the console play the
//! part), so nothing here is EC2 wire protocol: `/metrics` answers
//! Prometheus' exposition format, `/healthz` and `/readyz` plain text, the
//! dashboard HTML. It listens on `operator_listen` (default
//! `127.0.0.1:9773`). On loopback the dashboard is open to whoever is on
//! the machine (only to requests addressed to an IP address or
//! `localhost`, against DNS rebinding); on any other address, or with
//! `operator_login = true`, it asks for an admin access key and secret
//! first (see [`session`]). `/metrics`, `/healthz` and `/readyz`
//! stay open on any address, for the scraper and the load balancer: they
//! show no account's data (no label is an account's or a caller's choice).
//!
//! Everything shown is read through the compute core (see
//! [`crate::compute::overview`]), so every replica of a cluster shows the
//! same fleet.

mod dashboard;
pub mod metrics;
mod session;

use crate::compute::overview::Overview;
use crate::gateway::Gateway;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::MetricsRegistry;
use session::Sessions;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How long one read of the fleet serves scrapes and page loads: the
/// overview scans every instance record, so a scraper (or a reload loop)
/// must not make it run per request.
const OVERVIEW_REUSE: Duration = Duration::from_secs(2);

/// How long a read of the fleet may take.
const OVERVIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// Traffic samples: one every [`SAMPLE_EVERY`], the last [`SAMPLES`] kept
/// (ten minutes), for the dashboard's request and error rates.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const SAMPLES: usize = 60;

/// The most connections the operator listener serves at once, and from
/// one client address (a scraper and a health checker need one or two).
const MAX_CONNECTIONS: usize = 64;
const MAX_CONNECTIONS_PER_CLIENT: usize = 32;

/// The largest login form read.
const MAX_FORM_BYTES: usize = 4096;

/// The operator listener's state.
pub struct Operator {
    gateway: Arc<Gateway>,
    registry: MetricsRegistry,
    /// The last overview read, and when.
    overview: tokio::sync::Mutex<Option<(Instant, Arc<Overview>)>>,
    traffic: Mutex<VecDeque<TrafficSample>>,
    /// Present when the dashboard needs a sign-in.
    sessions: Option<Sessions>,
    address: SocketAddr,
    /// Connections open per client address.
    clients: Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// Requests and errors answered in one sample period.
#[derive(Debug, Clone, Copy)]
pub struct TrafficSample {
    pub at: chrono::DateTime<chrono::Utc>,
    pub requests: u64,
    pub errors: u64,
}

impl Operator {
    /// The listener's state for `gateway`, listening on `address`; the
    /// dashboard asks for a sign-in when `login` says so, or, when it says
    /// nothing, when `address` is not loopback.
    pub fn new(gateway: Arc<Gateway>, address: SocketAddr, login: Option<bool>) -> Self {
        let login = login.unwrap_or(!address.ip().is_loopback());
        let registry = MetricsRegistry::new(&gateway.metrics, gateway.compute.store().metrics());
        Self {
            gateway,
            registry,
            overview: tokio::sync::Mutex::new(None),
            traffic: Mutex::new(VecDeque::with_capacity(SAMPLES)),
            sessions: login.then(Sessions::new),
            address,
            clients: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The fleet as read at most [`OVERVIEW_REUSE`] ago. A read that takes
    /// longer than [`OVERVIEW_TIMEOUT`] (a store that does not answer)
    /// fails, so that scrapes and page loads do not pile up behind it.
    async fn overview(&self) -> Result<Arc<Overview>, String> {
        let mut kept = tokio::time::timeout(OVERVIEW_TIMEOUT, self.overview.lock())
            .await
            .map_err(|_| "another read of the fleet is still waiting for the store".to_string())?;
        if let Some((at, overview)) = kept.as_ref() {
            if at.elapsed() < OVERVIEW_REUSE {
                return Ok(overview.clone());
            }
        }
        let read = tokio::time::timeout(OVERVIEW_TIMEOUT, self.gateway.compute.overview())
            .await
            .map_err(|_| "the store did not answer in time".to_string())?;
        let overview = Arc::new(read.map_err(|e| e.to_string())?);
        *kept = Some((Instant::now(), overview.clone()));
        Ok(overview)
    }

    /// Samples the request totals every [`SAMPLE_EVERY`]; runs until dropped.
    async fn sample_traffic(&self) {
        let mut last = self.gateway.metrics.totals();
        let mut ticker = tokio::time::interval(SAMPLE_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let now = self.gateway.metrics.totals();
            let mut traffic = crate::sync::lock(&self.traffic);
            if traffic.len() == SAMPLES {
                traffic.pop_front();
            }
            traffic.push_back(TrafficSample {
                at: chrono::Utc::now(),
                requests: now.0.saturating_sub(last.0),
                errors: now.1.saturating_sub(last.1),
            });
            last = now;
        }
    }

    async fn route(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_string();
        let dashboard_path = matches!(path.as_str(), "/" | "/login" | "/logout");
        if dashboard_path && self.sessions.is_none() && !addressed_directly(&request) {
            // Without a sign-in, the page answers only requests addressed to
            // an IP address or `localhost`: a web page elsewhere cannot
            // read it through a name it points at this machine (DNS
            // rebinding).
            return text(
                StatusCode::MISDIRECTED_REQUEST,
                "the dashboard answers requests to an IP address or localhost; behind a proxy that keeps the Host header, set operator_login = true\n",
            );
        }
        match (request.method().clone(), path.as_str()) {
            (Method::GET | Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
            (Method::GET | Method::HEAD, "/readyz") => self.readiness().await,
            (Method::GET, "/metrics") => self.metrics().await,
            (Method::GET, "/") => match self.signed_in(&request).await {
                true => self.dashboard().await,
                false => redirect("/login"),
            },
            (Method::GET, "/login") => match &self.sessions {
                Some(_) => html(StatusCode::OK, dashboard::login_page(None)),
                None => redirect("/"),
            },
            (Method::POST, "/login") => self.login(request).await,
            (Method::POST, "/logout") => self.logout(&request),
            (Method::GET | Method::HEAD | Method::POST, _) => {
                text(StatusCode::NOT_FOUND, "not found\n")
            }
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        }
    }

    /// Ready when the store answers (on a cluster: this replica reaches a
    /// quorum and its copy has caught up) within [`READY_TIMEOUT`].
    async fn readiness(&self) -> Response<Full<Bytes>> {
        let compute = &self.gateway.compute;
        let check = async {
            compute.store().backend().catch_up().await?;
            compute.services().zone_states(compute.clock().now()).await
        };
        match tokio::time::timeout(READY_TIMEOUT, check).await {
            Ok(Ok(_)) => text(StatusCode::OK, "ready\n"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "readiness check: the store did not answer");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: the store did not answer\n",
                )
            }
            Err(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store did not answer in time\n",
            ),
        }
    }

    async fn metrics(&self) -> Response<Full<Bytes>> {
        let overview = match self.overview().await {
            Ok(overview) => Some(overview),
            Err(error) => {
                tracing::warn!(%error, "metrics: cannot read the fleet");
                None
            }
        };
        let body = self.registry.render(overview.as_deref());
        let mut response = Response::new(Full::new(Bytes::from(body)));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        response
    }

    async fn dashboard(&self) -> Response<Full<Bytes>> {
        match self.overview().await {
            Ok(overview) => {
                let traffic: Vec<TrafficSample> =
                    crate::sync::lock(&self.traffic).iter().copied().collect();
                let page = dashboard::render(&dashboard::Page {
                    overview: &overview,
                    traffic: &traffic,
                    sample_secs: SAMPLE_EVERY.as_secs(),
                    totals: self.gateway.metrics.totals(),
                    recent_errors: &self.gateway.metrics.recent_errors(),
                    region: &self.gateway.compute.region().name,
                    signed_in: self.sessions.is_some(),
                });
                html(StatusCode::OK, page)
            }
            Err(error) => {
                tracing::warn!(%error, "dashboard: cannot read the fleet");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store did not answer: try again\n",
                )
            }
        }
    }

    /// True when the dashboard may be shown: on loopback always, elsewhere
    /// with a live session whose admin key is still active.
    async fn signed_in(&self, request: &Request<Incoming>) -> bool {
        let Some(sessions) = &self.sessions else {
            return true;
        };
        let Some(access_key_id) = sessions.check(request.headers()) else {
            return false;
        };
        let directory = self.gateway.compute.accounts();
        let still_admin = matches!(
            directory.active_key(&access_key_id).await,
            Ok(Some((key, account))) if account.admin && key.agent_host.is_none()
        );
        if !still_admin {
            sessions.revoke(&access_key_id);
        }
        still_admin
    }

    async fn login(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(sessions) = &self.sessions else {
            return redirect("/");
        };
        if !same_origin(&request) {
            return text(StatusCode::FORBIDDEN, "cross-origin sign-in refused\n");
        }
        if !sessions.may_try() {
            return text(
                StatusCode::TOO_MANY_REQUESTS,
                "too many refused sign-ins: wait a minute\n",
            );
        }
        // Behind a TLS proxy (which says so), the cookie is sent over TLS only.
        let over_https = request
            .headers()
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
        let body = match Limited::new(request.into_body(), MAX_FORM_BYTES)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "form too large\n"),
        };
        let form: Vec<(String, String)> = url_form(&body);
        let field = |name: &str| {
            form.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
                .unwrap_or("")
        };
        let directory = self.gateway.compute.accounts();
        match sessions
            .sign_in(
                directory,
                field("access_key_id"),
                field("secret_access_key"),
                over_https,
            )
            .await
        {
            Some(cookie) => {
                let mut response = redirect("/");
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().insert(SET_COOKIE, value);
                }
                response
            }
            None => html(
                StatusCode::UNAUTHORIZED,
                dashboard::login_page(Some(
                    "Unknown access key, wrong secret, or not an admin's key.",
                )),
            ),
        }
    }

    fn logout(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if !same_origin(request) {
            return text(StatusCode::FORBIDDEN, "cross-origin sign-out refused\n");
        }
        let mut response = redirect(if self.sessions.is_some() {
            "/login"
        } else {
            "/"
        });
        if let Some(sessions) = &self.sessions {
            sessions.sign_out(request.headers());
            response.headers_mut().insert(
                SET_COOKIE,
                HeaderValue::from_static(session::CLEARED_COOKIE),
            );
        }
        response
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// True when the request's `Host` is an IP address or `localhost` (with
/// or without a port).
fn addressed_directly(request: &Request<Incoming>) -> bool {
    let Some(host) = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return true;
    };
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// False when a browser says the form was sent from another site (its
/// `Origin` names a host other than the one it sent the form to).
fn same_origin(request: &Request<Incoming>) -> bool {
    let headers = request.headers();
    let Some(origin) = headers
        .get(hyper::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return true;
    };
    let host = headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    origin_host.eq_ignore_ascii_case(host)
}

/// Decodes an `application/x-www-form-urlencoded` body.
fn url_form(body: &[u8]) -> Vec<(String, String)> {
    crate::protocol::params::decode_form(body).unwrap_or_default()
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn html(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Everything is served by the binary: no other origin, no framing.
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn redirect(to: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static(to));
    response
}

/// One connection of a client address, counted until dropped.
struct ClientSlot {
    operator: Arc<Operator>,
    address: std::net::IpAddr,
}

impl ClientSlot {
    fn take(operator: &Arc<Operator>, address: std::net::IpAddr) -> Option<Self> {
        let mut clients = crate::sync::lock(&operator.clients);
        let open = clients.entry(address).or_insert(0);
        if *open >= MAX_CONNECTIONS_PER_CLIENT {
            return None;
        }
        *open += 1;
        Some(Self {
            operator: operator.clone(),
            address,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut clients = crate::sync::lock(&self.operator.clients);
        if let Some(open) = clients.get_mut(&self.address) {
            *open -= 1;
            if *open == 0 {
                clients.remove(&self.address);
            }
        }
    }
}

/// Serves the operator listener until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    operator: Arc<Operator>,
    shutdown: impl Future<Output = ()>,
) {
    let sampler = tokio::spawn({
        let operator = operator.clone();
        async move { operator.sample_traffic().await }
    });
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(64 * 1024);
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "operator listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(client) = ClientSlot::take(&operator, peer.ip()) else {
            // Over its share: closed at once.
            drop(stream);
            continue;
        };
        let operator = operator.clone();
        let service = service_fn(move |request| {
            let operator = operator.clone();
            async move { Ok::<_, Infallible>(operator.route(request).await) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        connections.spawn(async move {
            // Bounded: a client cannot hold an operator connection for ever.
            let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
            drop(client);
            drop(permit);
        });
    }
    sampler.abort();
    connections.shutdown().await;
}
