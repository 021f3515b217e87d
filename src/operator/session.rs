//! Dashboard sign-in when the operator listener is not on loopback.
//!
//! An admin signs in with an access key and its secret (the admin
//! account's, never an agent's). The secret is compared in constant time
//! (both sides through HMAC with a per-process key, then
//! `Mac::verify_slice`, also for a key that does not exist), and refused
//! sign-ins are limited to 20 a minute. A successful sign-in gets a random 256-bit session
//! token in an `HttpOnly`, `SameSite=Strict` cookie; the token lives in
//! this process's memory only (a restart signs everyone out) and expires
//! after [`SESSION_LIFETIME`]. Every page load checks the session; a key
//! deactivated (or an account no longer admin) since sign-in ends its
//! sessions at the next page load (sessions remember which key opened them).

use crate::compute::accounts::AccountDirectory;
use hmac::{Hmac, Mac};
use hyper::header::COOKIE;
use hyper::HeaderMap;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
const COOKIE_NAME: &str = "ec2gw_session";

/// How long a session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The most sessions kept at once (the oldest go first).
const MAX_SESSIONS: usize = 256;

/// A `Set-Cookie` that ends the session in the browser.
pub const CLEARED_COOKIE: &str = "ec2gw_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0";

/// The signed-in sessions of this process.
pub struct Sessions {
    /// Per-process key for comparing secrets in constant time.
    compare_key: [u8; 32],
    live: Mutex<HashMap<String, Session>>,
    /// Refused sign-ins in the current minute, and when it began.
    refusals: Mutex<(Instant, u32)>,
}

/// Refused sign-ins allowed per minute (for the whole listener: a guesser
/// gets at most this many tries a minute, whatever its addresses).
const REFUSALS_PER_MINUTE: u32 = 20;

struct Session {
    access_key_id: String,
    expires: Instant,
}

impl Sessions {
    pub fn new() -> Self {
        Self {
            compare_key: rand::random(),
            live: Mutex::new(HashMap::new()),
            refusals: Mutex::new((Instant::now(), 0)),
        }
    }

    /// False while the refused sign-ins of the last minute are at the limit.
    pub fn may_try(&self) -> bool {
        let mut refusals = crate::sync::lock(&self.refusals);
        if refusals.0.elapsed() >= Duration::from_secs(60) {
            *refusals = (Instant::now(), 0);
        }
        refusals.1 < REFUSALS_PER_MINUTE
    }

    fn refused(&self) {
        let mut refusals = crate::sync::lock(&self.refusals);
        refusals.1 = refusals.1.saturating_add(1);
    }

    fn digest(&self, secret: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.compare_key)
            .expect("HMAC takes a key of any length");
        mac.update(secret.as_bytes());
        mac
    }

    /// Checks an admin's access key and secret; answers the `Set-Cookie`
    /// of a new session (`Secure` when the browser reached a TLS proxy in
    /// front), or `None` (for any reason, the same answer).
    pub async fn sign_in(
        &self,
        directory: &AccountDirectory,
        access_key_id: &str,
        secret: &str,
        over_https: bool,
    ) -> Option<String> {
        if access_key_id.is_empty() || access_key_id.len() > 128 || secret.len() > 256 {
            self.refused();
            return None;
        }
        let found = directory.active_key(access_key_id).await.ok().flatten();
        // The comparison runs whether the key exists or not, so the time
        // taken does not tell which.
        let stored = found
            .as_ref()
            .map_or("not a key's secret", |(key, _)| key.secret.expose());
        let expected = self.digest(stored).finalize().into_bytes();
        let matches = self.digest(secret).verify_slice(&expected).is_ok();
        let admin = found
            .as_ref()
            .is_some_and(|(key, account)| account.admin && key.agent_host.is_none());
        if !matches || !admin {
            self.refused();
            tracing::warn!(access_key_id, "dashboard sign-in refused");
            return None;
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut live = crate::sync::lock(&self.live);
        let now = Instant::now();
        live.retain(|_, session| session.expires > now);
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live
                .iter()
                .min_by_key(|(_, session)| session.expires)
                .map(|(token, _)| token.clone())
            {
                live.remove(&oldest);
            }
        }
        live.insert(
            token.clone(),
            Session {
                access_key_id: access_key_id.to_string(),
                expires: now + SESSION_LIFETIME,
            },
        );
        tracing::info!(access_key_id, "dashboard sign-in");
        Some(format!(
            "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            SESSION_LIFETIME.as_secs(),
            if over_https { "; Secure" } else { "" }
        ))
    }

    /// The access key of the live session the request's cookie names.
    pub fn check(&self, headers: &HeaderMap) -> Option<String> {
        let token = session_token(headers)?;
        let live = crate::sync::lock(&self.live);
        live.get(&token)
            .filter(|session| session.expires > Instant::now())
            .map(|session| session.access_key_id.clone())
    }

    /// Ends the session the request's cookie names.
    pub fn sign_out(&self, headers: &HeaderMap) {
        if let Some(token) = session_token(headers) {
            crate::sync::lock(&self.live).remove(&token);
        }
    }

    /// Ends every session opened with `access_key_id` (it is no longer an
    /// active admin key).
    pub fn revoke(&self, access_key_id: &str) {
        crate::sync::lock(&self.live).retain(|_, session| session.access_key_id != access_key_id);
    }
}

/// The session token in the request's `Cookie` headers.
fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, token)| token.to_string())
        .filter(|token| token.len() == 64)
}
