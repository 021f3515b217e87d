//! The load loop: N keep-alive connections, each sending signed requests
//! back to back until the deadline; latencies after the warm-up are kept.
//!
//! With [`set_presigned`], each connection signs a pool of requests before
//! it starts and sends them over and over, so that the client does no
//! cryptography while it measures: the lightweight client the per-request
//! overhead is measured with (the gateway accepts a signed request again
//! for as long as its time is within the allowed skew, as EC2 does).
//! Scenarios that learn from their answers (the churn) still sign each
//! request.

use ec2_gateway::auth::signer::{form_body, sign_v2, sign_v4_post, SigningCredentials};
use ec2_gateway::auth::sigv2::SignatureMethod;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How requests are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    V4,
    V2,
}

/// Where to send and as whom.
#[derive(Clone)]
pub struct Target {
    pub authority: String,
    pub credentials: SigningCredentials,
    pub signing: Signing,
    /// More gateways of the same deployment: connection `i` goes to the
    /// `i`-th of `authority` and these, round robin.
    pub more_authorities: Vec<String>,
    /// More accounts: connection `i` signs as the `i`-th of
    /// `credentials` and these, round robin.
    pub more_credentials: Vec<SigningCredentials>,
}

impl Target {
    /// One gateway, one account.
    pub fn new(authority: String, credentials: SigningCredentials, signing: Signing) -> Self {
        Self {
            authority,
            credentials,
            signing,
            more_authorities: Vec::new(),
            more_credentials: Vec::new(),
        }
    }

    /// What connection `index` of a run uses.
    fn for_connection(&self, index: usize) -> Target {
        let authorities = 1 + self.more_authorities.len();
        let accounts = 1 + self.more_credentials.len();
        let mut one = self.clone();
        if index % authorities > 0 {
            one.authority = self.more_authorities[index % authorities - 1].clone();
        }
        if index % accounts > 0 {
            one.credentials = self.more_credentials[index % accounts - 1].clone();
        }
        one
    }
}

/// Requests each connection signs ahead in presigned mode.
const PRESIGNED_POOL: usize = 256;

static PRESIGNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Presigned mode for every later run (see the module documentation).
pub fn set_presigned(on: bool) {
    PRESIGNED.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// True in presigned mode.
pub fn presigned() -> bool {
    PRESIGNED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Sees every successful answer's body.
pub type Observer = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Makes each request's parameters.
pub type RequestMaker = Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>;

/// What one run measured.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub requests: u64,
    pub seconds: f64,
    pub latencies_us: Vec<u64>,
    pub errors: BTreeMap<String, u64>,
}

impl Report {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The latency at quantile `q` (0..=1), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.latencies_us.is_empty() {
            return None;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        Some(sorted[index] as f64 / 1000.0)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Builds the (path, headers, body) of one signed request.
pub fn signed_request(
    target: &Target,
    params: &[(String, String)],
) -> (String, Vec<(&'static str, String)>, String) {
    let mut all = vec![("Version".to_string(), "2016-11-15".to_string())];
    all.extend(params.iter().cloned());
    let now = chrono::Utc::now();
    match target.signing {
        Signing::V4 => {
            let body = form_body(&all);
            let mut headers = sign_v4_post(&target.credentials, &target.authority, "/", &body, now);
            headers.push(("Host", target.authority.clone()));
            ("/".into(), headers, body)
        }
        Signing::V2 => {
            sign_v2(
                &target.credentials,
                "POST",
                &target.authority,
                "/",
                &mut all,
                SignatureMethod::HmacSha256,
                now,
            );
            let headers = vec![
                ("Host", target.authority.clone()),
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8".to_string(),
                ),
            ];
            ("/".into(), headers, form_body(&all))
        }
    }
}

/// One keep-alive connection.
pub struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    pub async fn open(authority: &str) -> std::io::Result<Self> {
        let stream = tokio::net::TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(Self { sender })
    }

    /// Sends one request; returns the status, the body, and whether the
    /// server keeps the connection open (moto's server closes it every time).
    pub async fn send(
        &mut self,
        path: &str,
        headers: &[(&'static str, String)],
        body: String,
    ) -> std::io::Result<(u16, Bytes, bool)> {
        self.exchange(path, headers, body, true).await
    }

    /// [`Connection::send`]; unless `keep_body`, a 200 answer's body is
    /// read frame by frame and only its last bytes are kept (what the load
    /// loop checks), as a lightweight client (wrk) reads: collecting a
    /// listing of 26 MB into one fresh buffer cost this client more CPU
    /// than the gateway spent answering it (page faults, copies).
    pub async fn exchange(
        &mut self,
        path: &str,
        headers: &[(&'static str, String)],
        body: String,
        keep_body: bool,
    ) -> std::io::Result<(u16, Bytes, bool)> {
        let mut request = Request::builder().method("POST").uri(path);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(std::io::Error::other)?;
        self.sender.ready().await.map_err(std::io::Error::other)?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(std::io::Error::other)?;
        let status = response.status().as_u16();
        let close = response
            .headers()
            .get(hyper::header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let bytes = if keep_body || status != 200 {
            response
                .into_body()
                .collect()
                .await
                .map_err(std::io::Error::other)?
                .to_bytes()
        } else {
            body_end(response.into_body()).await?
        };
        Ok((status, bytes, !close && !self.sender.is_closed()))
    }
}

/// The last [`BODY_END`] bytes of `body`, read frame by frame.
async fn body_end(mut body: hyper::body::Incoming) -> std::io::Result<Bytes> {
    let mut end: Vec<u8> = Vec::with_capacity(2 * BODY_END);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(std::io::Error::other)?;
        if let Some(data) = frame.data_ref() {
            end.extend_from_slice(&data[data.len().saturating_sub(BODY_END)..]);
            if end.len() > BODY_END {
                end.drain(..end.len() - BODY_END);
            }
        }
    }
    Ok(Bytes::from(end))
}

/// How much of a discarded body the client keeps: enough for its end tag.
const BODY_END: usize = 64;

/// True when `end` (an answer's last bytes) closes an EC2 answer document
/// (`</...Response>` and the final newline): a cut answer does not.
fn ends_an_answer(end: &[u8]) -> bool {
    end.trim_ascii_end().ends_with(b"Response>")
}

/// The error code in an EC2 error body (or the status when there is none).
pub fn error_code(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// Runs `connections` loops for `warmup + duration`, measuring after the
/// warm-up. `next` makes each request's parameters (it may count calls).
pub async fn run(
    target: &Target,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    timeout: Duration,
    next: RequestMaker,
    observe: Option<Observer>,
) -> Report {
    let start = Instant::now();
    let measure_from = start + warmup;
    let deadline = measure_from + duration;
    let mut tasks = Vec::new();
    for index in 0..connections {
        let target = target.for_connection(index);
        let next = next.clone();
        let observe = observe.clone();
        tasks.push(tokio::spawn(async move {
            let mut report = Report::default();
            let mut connection = match Connection::open(&target.authority).await {
                Ok(connection) => connection,
                Err(error) => {
                    *report
                        .errors
                        .entry(format!("connect: {error}"))
                        .or_default() += 1;
                    return report;
                }
            };
            // A scenario that learns from its answers (the churn terminates
            // what it launched) is signed per request even so.
            let pool: Vec<_> = if presigned() && observe.is_none() {
                (0..PRESIGNED_POOL)
                    .map(|_| signed_request(&target, &next()))
                    .collect()
            } else {
                Vec::new()
            };
            let mut sent_count = 0usize;
            while Instant::now() < deadline {
                let (path, headers, body) = if pool.is_empty() {
                    signed_request(&target, &next())
                } else {
                    sent_count += 1;
                    pool[sent_count % pool.len()].clone()
                };
                let sent = Instant::now();
                let keep_body = observe.is_some();
                let result = tokio::time::timeout(
                    timeout,
                    connection.exchange(&path, &headers, body, keep_body),
                )
                .await;
                let took = sent.elapsed();
                let measured = sent >= measure_from && Instant::now() <= deadline + timeout;
                let keep_alive = matches!(result, Ok(Ok((_, _, true))));
                match result {
                    Ok(Ok((200, ref body, _))) if !ends_an_answer(body) => {
                        *report.errors.entry("cut answer".into()).or_default() += 1;
                    }
                    Ok(Ok((200, ref body, _))) => {
                        if let Some(observe) = &observe {
                            observe(body);
                        }
                        if measured {
                            report.requests += 1;
                            report.latencies_us.push(took.as_micros() as u64);
                        }
                    }
                    Ok(Ok((status, body, _))) => {
                        if measured {
                            *report.errors.entry(error_code(status, &body)).or_default() += 1;
                        }
                    }
                    Ok(Err(error)) => {
                        *report.errors.entry(format!("io: {error}")).or_default() += 1;
                        match Connection::open(&target.authority).await {
                            Ok(fresh) => connection = fresh,
                            Err(_) => break,
                        }
                    }
                    Err(_) => {
                        *report.errors.entry("client timeout".into()).or_default() += 1;
                        match Connection::open(&target.authority).await {
                            Ok(fresh) => connection = fresh,
                            Err(_) => break,
                        }
                    }
                }
                if !keep_alive {
                    match Connection::open(&target.authority).await {
                        Ok(fresh) => connection = fresh,
                        Err(_) => break,
                    }
                }
            }
            report
        }));
    }
    let mut total = Report {
        seconds: duration.as_secs_f64(),
        ..Report::default()
    };
    for task in tasks {
        if let Ok(report) = task.await {
            total.requests += report.requests;
            total.latencies_us.extend(report.latencies_us);
            for (code, count) in report.errors {
                *total.errors.entry(code).or_default() += count;
            }
        }
    }
    total
}

/// Sends one request and returns its body, failing on a non-200.
pub async fn call(target: &Target, params: &[(String, String)]) -> Result<String, String> {
    let mut connection = Connection::open(&target.authority)
        .await
        .map_err(|e| e.to_string())?;
    let (path, headers, body) = signed_request(target, params);
    let (status, bytes, _) = connection
        .send(&path, &headers, body)
        .await
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status} {}", error_code(status, &bytes)));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
