//! One HTTP request, top to bottom: limits, parameters, signature, action, XML.
//!
//! Every request gets a UUID request id, a tracing span carrying it, and
//! exactly one log line at the end (request id, action, account, status,
//! latency). Every failure, from an oversized body to a bad signature, is
//! answered as EC2 error XML with a non-2xx status: botocore reads an error
//! sent with 200 as an empty success, and HTML breaks every client.

use crate::api::{Action, Context};
use crate::auth::{AuthRequest, AuthSettings, Principal, Verifier};
use crate::body::{BodyReader, ClientKey, ReadBody};
use crate::compute::Compute;
use crate::config::{Limits, RateLimits};
use crate::dev::DevMode;
use crate::error::{ApiError, ApiResult};
use crate::operator::metrics::{ActionId, RequestMetrics};
use crate::protocol::params::decode_form;
use crate::protocol::stream::AnswerBody;
use crate::protocol::xml::{
    is_api_version, render_error, render_response, XmlOutput, DEFAULT_VERSION,
};
use crate::protocol::Params;
use crate::throttle::{ActionClass, Throttle};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{field, Instrument};

/// The content type of every answer.
const XML_CONTENT_TYPE: &str = "text/xml;charset=UTF-8";

/// The request pipeline's shared state.
pub struct Gateway {
    pub compute: Arc<Compute>,
    /// Development mode, when on (see [`crate::dev`]).
    pub dev: Option<DevMode>,
    verifier: Verifier,
    limits: Limits,
    body_reader: BodyReader,
    throttle: Throttle,
    /// Turns for filtered listings (one per core).
    filtered_listings: Arc<tokio::sync::Semaphore>,
    /// What the operator's metrics and dashboard show of the requests.
    pub metrics: Arc<RequestMetrics>,
}

/// Actions answered from this gateway's copy of a shared store as it is,
/// without first catching up with the other replicas (which costs etcd a
/// linearizable read per round trip):
/// - reads of state no account writes: zones (from the compute hosts and
///   their liveness), regions, the instance-type catalogue. The copy trails
///   the other replicas by the watch's delay (milliseconds); EC2's own API
///   is eventually consistent, and these change only by an operator's
///   action or a host's heartbeat;
/// - an agent's heartbeat: a blind write of its liveness, whose read of its
///   host's record the commit compares (a record changed meanwhile makes it
///   decide again on the newer one).
///
/// One of these that fails is decided again once the copy has caught up
/// (a zone or host registered at another replica a moment ago). Every other
/// action first catches up, so that an account reads its own writes
/// whichever replica answered them.
const ANSWERED_FROM_THE_COPY: [&str; 4] = [
    "DescribeAvailabilityZones",
    "DescribeRegions",
    "DescribeInstanceTypes",
    "AgentHeartbeat",
];

/// A successful answer, or an error plus whether the connection must close
/// (the body was left unread).
struct Answer {
    status: StatusCode,
    /// The error code, when it is an error.
    code: Option<&'static str>,
    body: AnswerBody,
    close: bool,
}

impl Gateway {
    pub fn new(
        compute: Arc<Compute>,
        limits: Limits,
        auth: AuthSettings,
        rate_limits: RateLimits,
    ) -> Self {
        let verifier = Verifier::new(compute.clock().clone(), auth);
        Self {
            compute,
            dev: None,
            verifier,
            body_reader: BodyReader::new(&limits),
            limits,
            throttle: Throttle::new(rate_limits),
            filtered_listings: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            metrics: Arc::default(),
        }
    }

    /// Verifies the request's signature against the account directory.
    /// A request answered from the copy (not `caught_up`) that the copy's
    /// directory refuses is checked again once the copy has caught up (a
    /// key created at another replica a moment ago).
    async fn authenticate(
        &self,
        request: &AuthRequest<'_>,
        caught_up: &mut bool,
    ) -> ApiResult<Principal> {
        let directory = self.compute.accounts();
        let answer = crate::app::authenticate(&self.verifier, directory, request).await;
        if !matches!(answer, Err(ApiError::AuthFailure(_)))
            || *caught_up
            || !self.compute.store().backend().shared()
        {
            return answer;
        }
        self.catch_up(caught_up).await?;
        crate::app::authenticate(&self.verifier, directory, request).await
    }

    /// Runs `action`; a filtered listing takes one of the turns.
    async fn execute(
        &self,
        action: Action,
        context: &Context<'_>,
        filtered: bool,
    ) -> ApiResult<(Box<dyn XmlOutput>, Option<OwnedSemaphorePermit>)> {
        if filtered {
            // At most one filtered listing per core at a time; the others
            // wait here without holding a thread. A streamed answer keeps
            // the turn until its last byte is rendered.
            let turn = self
                .filtered_listings
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| ApiError::InternalError)?;
            let output = run_off_the_workers(action.execute(context)).await?;
            Ok((output, Some(turn)))
        } else {
            Ok((action.execute(context).await?, None))
        }
    }

    /// Waits until reads see every write answered before now, at any
    /// replica sharing the store (at once on a store only this one writes).
    async fn catch_up(&self, caught_up: &mut bool) -> ApiResult<()> {
        if !*caught_up {
            self.compute.store().backend().catch_up().await?;
            *caught_up = true;
        }
        Ok(())
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Answers one request; never fails.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<AnswerBody> {
        let request_id = new_request_id();
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            action = field::Empty,
            account = field::Empty,
            signatures = field::Empty
        );
        if self.dev.is_some() {
            span.record("signatures", "unverified");
        }
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let mut action = ActionId::NONE;
        let answer = self
            .answer(&parts, body, &request_id, &span, &mut action)
            .instrument(span.clone())
            .await;
        let elapsed = started.elapsed();
        self.metrics.answered(
            action,
            answer.code,
            answer.status.as_u16(),
            elapsed.as_secs_f64(),
            &request_id,
        );
        let _entered = span.enter();
        tracing::info!(
            method = %parts.method,
            status = answer.status.as_u16(),
            code = answer.code,
            latency_us = elapsed.as_micros() as u64,
            "request"
        );
        into_response(answer, &request_id)
    }

    async fn answer(
        &self,
        parts: &Parts,
        body: Incoming,
        request_id: &str,
        span: &tracing::Span,
        action: &mut ActionId,
    ) -> Answer {
        let body = match self.read_body(parts, body).await {
            Ok(body) => body,
            Err(error) => return error_answer(&error, request_id, true),
        };
        match self.run(parts, &body.bytes, request_id, span, action).await {
            Ok(body) => Answer {
                status: StatusCode::OK,
                code: None,
                body,
                close: false,
            },
            Err(error) => error_answer(&error, request_id, false),
        }
    }

    /// Reads the body within the size, budget, rate and time limits (see
    /// [`crate::body`]); only GET and POST are accepted.
    async fn read_body(&self, parts: &Parts, body: Incoming) -> ApiResult<ReadBody> {
        if parts.method != Method::GET && parts.method != Method::POST {
            return Err(ApiError::UnsupportedHttpVerb(parts.method.to_string()));
        }
        // hyper enforces twice these limits as a backstop (with an empty
        // 431); the exact limits are checked here so the answer is EC2 XML.
        let header_bytes: usize = parts.uri.to_string().len()
            + parts
                .headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 4)
                .sum::<usize>();
        if parts.headers.len() > self.limits.max_headers
            || header_bytes > self.limits.max_header_bytes
        {
            return Err(ApiError::RequestHeaderSectionTooLarge);
        }
        let announced = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let client = parts.extensions.get::<ClientKey>().copied();
        self.body_reader.read(body, announced, client).await
    }

    async fn run(
        &self,
        parts: &Parts,
        body: &[u8],
        request_id: &str,
        span: &tracing::Span,
        action_id: &mut ActionId,
    ) -> ApiResult<AnswerBody> {
        let (query_pairs, params) =
            request_params(&parts.method, parts.uri.query(), &parts.headers, body)?;
        let action_name = params.get("Action").unwrap_or("").to_string();
        *action_id = ActionId::of(&action_name);
        span.record("action", action_name.as_str());
        let request = AuthRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query_pairs: &query_pairs,
            headers: &parts.headers,
            body,
            params: &params,
        };
        let from_the_copy = ANSWERED_FROM_THE_COPY.contains(&action_name.as_str())
            && self.compute.store().backend().shared();
        let mut caught_up = false;
        if !from_the_copy {
            // What the request reads, its credentials first, includes every
            // write answered before it arrived, at any replica:
            // read-your-writes.
            self.catch_up(&mut caught_up).await?;
        }
        let mut other_regions = Vec::new();
        let (principal, compute) = match &self.dev {
            None => match self.authenticate(&request, &mut caught_up).await {
                Ok(principal) => (principal, self.compute.clone()),
                Err(error) => {
                    if is_authentication_refusal(&error) {
                        self.metrics.signature_failed(error.code());
                    }
                    return Err(error);
                }
            },
            Some(dev) => {
                let (access_key_id, region) = self.verifier.claimed_identity(&request)?;
                let compute = match region.filter(|r| {
                    *r != self.compute.region().name && crate::dev::looks_like_aws_region(r)
                }) {
                    Some(region) => dev.region(&region).await?,
                    None => self.compute.clone(),
                };
                other_regions = dev.other_regions(&self.compute, &compute.region().name);
                // A real key that verifies keeps its account and rights
                // (the admin CLI, external hosts' heartbeats); any other
                // key names its account.
                let principal = match self.authenticate(&request, &mut caught_up).await {
                    Ok(principal) => principal,
                    Err(_) => crate::dev::dev_principal(&access_key_id),
                };
                dev.ensure_account(&compute, &principal.account_id).await?;
                (principal, compute)
            }
        };
        span.record("account", principal.account_id.as_str());
        let class = ActionClass::of(&action_name);
        if !self.throttle.admit(&principal.account_id, class) {
            self.metrics.throttled(class.name());
            return Err(ApiError::RequestLimitExceeded);
        }
        let version = match params.get("Version") {
            Some(version) if is_api_version(version) => version.to_string(),
            Some(version) => {
                return Err(ApiError::invalid_value(format!(
                    "Invalid Version '{version}'"
                )))
            }
            None => DEFAULT_VERSION.to_string(),
        };
        let action = Action::parse(&action_name, &params.without_auth(), &principal)?;
        if let Action::RunInstances(run) = &action {
            if !self.throttle.admit_many(
                &principal.account_id,
                ActionClass::InstanceLaunches,
                run.max_count,
            ) {
                self.metrics.throttled(ActionClass::InstanceLaunches.name());
                return Err(ApiError::RequestLimitExceeded);
            }
        }
        let context = Context {
            compute: &compute,
            principal: &principal,
            other_regions,
            may_stream: parts.version == hyper::Version::HTTP_11,
        };
        let filtered = carries_filters(&params);
        let (mut output, _turn) = match self.execute(action, &context, filtered).await {
            Err(_) if from_the_copy && !caught_up => {
                // Decided on a copy a moment behind: decide again on one
                // that has caught up.
                self.catch_up(&mut caught_up).await?;
                let again = Action::parse(&action_name, &params.without_auth(), &principal)?;
                self.execute(again, &context, filtered).await?
            }
            answer => answer?,
        };
        Ok(match output.take_stream() {
            // A filtered listing's later pages take their turns one by
            // one, off the workers, as the first did (`StreamWriter::read`).
            Some(stream) => AnswerBody::Streamed(crate::protocol::stream::start(
                &action_name,
                &version,
                request_id,
                stream,
                filtered.then(|| self.filtered_listings.clone()),
            )),
            None => AnswerBody::whole(render_response(
                &action_name,
                &version,
                request_id,
                output.as_ref(),
            )),
        })
    }
}

/// True for a refused signature or credential (not a store that did not
/// answer while the key was looked up).
fn is_authentication_refusal(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::AuthFailure(_)
            | ApiError::SignatureDoesNotMatch
            | ApiError::IncompleteSignature(_)
            | ApiError::MissingAuthenticationToken
            | ApiError::RequestExpired(_)
    )
}

/// The decoded query-string pairs (what SigV4 signs) and the union of query
/// and form parameters (what the action and SigV2 see).
///
/// Every byte that can become a parameter is covered by the signature that
/// authenticates the request, so nothing is read that was not signed: a GET
/// carries no body (its signature covers the query only), a body is read
/// only as a form, and a name may appear once (see [`Params::from_request`]).
pub fn request_params(
    method: &Method,
    query: Option<&str>,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> ApiResult<(Vec<(String, String)>, Params)> {
    let query_pairs = decode_form(query.unwrap_or("").as_bytes())?;
    let mut pairs = query_pairs.clone();
    if !body.is_empty() {
        if method == Method::GET {
            return Err(ApiError::MalformedQueryString(
                "A GET request cannot carry a body: send the parameters in the query string, or use POST".into(),
            ));
        }
        if !is_form_body(method, headers) {
            return Err(ApiError::MalformedQueryString(
                "The request body must be application/x-www-form-urlencoded".into(),
            ));
        }
        pairs.extend(decode_form(body)?);
    }
    Ok((query_pairs, Params::from_request(pairs)?))
}

/// True when the request filters a listing: the only requests whose CPU
/// cost grows with what the client sends (up to 200 patterns against every
/// value of every resource).
fn carries_filters(params: &Params) -> bool {
    params
        .pairs()
        .iter()
        .any(|(name, _)| name.starts_with("Filter."))
}

/// Runs `work` where it cannot hold up other requests: on a multi-threaded
/// runtime the worker hands its other tasks to a new worker first
/// (`block_in_place`), so a heavy filtered listing occupies a blocking-pool
/// thread instead of a runtime worker (and the caller lets only one such
/// listing per core run at once). On a single-threaded runtime (some tests)
/// it simply runs.
pub(crate) async fn run_off_the_workers<T>(work: impl std::future::Future<Output = T>) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let handle = Handle::current();
    if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| handle.block_on(work))
    } else {
        work.await
    }
}

/// A body is a form when it is declared as one, or when a POST declares no
/// type at all (some old clients).
fn is_form_body(method: &Method, headers: &hyper::HeaderMap) -> bool {
    match headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        Some(content_type) => content_type
            .trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded"),
        None => method == Method::POST,
    }
}

fn into_response(answer: Answer, request_id: &str) -> Response<AnswerBody> {
    let mut response = Response::new(answer.body);
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(XML_CONTENT_TYPE));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    if answer.close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// An EC2 error answer made outside the request pipeline (for a handler
/// that panicked); the connection closes.
pub fn refusal(error: &ApiError) -> Response<AnswerBody> {
    let request_id = new_request_id();
    into_response(error_answer(error, &request_id, true), &request_id)
}

/// A request id as EC2 writes them: a random (version 4) UUID, lower-case
/// and hyphenated. Drawn from the thread's ChaCha generator (seeded from
/// the system and reseeded by `rand`), not from a `getrandom` system call
/// per request; nothing trusts a request id to be unguessable.
pub fn new_request_id() -> String {
    let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid.hyphenated().encode_lower(&mut text).to_owned()
}

fn error_answer(error: &ApiError, request_id: &str, close: bool) -> Answer {
    if *error == ApiError::InternalError {
        tracing::error!(request_id, "internal error");
    } else {
        tracing::debug!(code = error.code(), "request refused");
    }
    Answer {
        status: crate::protocol::xml::http_status(error),
        code: Some(error.code()),
        body: AnswerBody::whole(render_error(error, request_id)),
        close,
    }
}
