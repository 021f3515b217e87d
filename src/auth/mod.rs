//! Authentication: which signature a request carries, and whose it is.
//!
//! Real EC2 clients sign in four ways: SigV4 in the `Authorization` header
//! (botocore, boto 2), SigV4 in the query string (presigned URLs), SigV2 in
//! the parameters (boto 2, euca2ools, boto3 with `signature_version='v2'`)
//! and the legacy SigV1. Every request must carry one: there is no anonymous
//! EC2. The result is a [`Principal`]: account, user and admin flag. Session
//! tokens are refused because this gateway issues none, so a token can only
//! be someone else's.

pub mod encoding;
pub mod signer;
pub mod sigv2;
pub mod sigv4;

use crate::clock::Clock;
use crate::error::{ApiError, ApiResult};
use crate::protocol::Params;
use crate::secret::Secret;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the verifier needs to know about an access key.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub secret: Secret,
    pub account_id: String,
    pub user_name: String,
    pub admin: bool,
    /// The host whose agent this key is (see `compute::agents`).
    pub agent_host: Option<String>,
}

/// Where access keys are looked up (the account directory, or a test table).
pub trait CredentialSource: Send + Sync {
    /// The active key `access_key_id`; unknown or inactive keys are `AuthFailure`.
    fn lookup(&self, access_key_id: &str) -> ApiResult<KeyRecord>;
}

/// The error for an unknown or inactive access key, worded as EC2 words it.
pub fn unknown_access_key() -> ApiError {
    ApiError::AuthFailure("AWS was not able to validate the provided access credentials".into())
}

/// The parts of an HTTP request a signature covers.
pub struct AuthRequest<'a> {
    pub method: &'a str,
    /// The path exactly as received.
    pub path: &'a str,
    /// Decoded query-string parameters only (SigV4 signs these).
    pub query_pairs: &'a [(String, String)],
    pub headers: &'a hyper::HeaderMap,
    pub body: &'a [u8],
    /// Query and form parameters together (SigV2 signs these).
    pub params: &'a Params,
}

/// A request whose signature verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub access_key_id: String,
    pub session_token: Option<String>,
    pub key: KeyRecord,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account_id: String,
    pub user_name: String,
    pub access_key_id: String,
    pub admin: bool,
    /// Set for a compute agent's key: the one host it may act for. Such a
    /// caller may call the `Agent*` actions and nothing else.
    pub agent_host: Option<String>,
}

/// SigV4 signing keys by (access key, date, region, service): deriving one
/// costs four HMACs, and a client keeps the same scope all day. A key is
/// remembered only once a signature made with it verified, so requests with
/// invented scopes (anyone can send them) cannot fill the cache.
#[derive(Default)]
pub struct KeyCache {
    keys: Mutex<HashMap<ScopeId, [u8; 32]>>,
}

/// (access key, date, region, service).
type ScopeId = (String, String, String, String);

/// A signing key, and whether it still has to be remembered.
pub struct SigningKey {
    pub key: [u8; 32],
    scope: Option<ScopeId>,
}

/// Entries kept before the cache starts over (scopes are per day, so a
/// handful per key is normal).
const KEY_CACHE_LIMIT: usize = 4096;

impl KeyCache {
    /// The cached key for `scope`, or a newly derived one (not cached yet:
    /// see [`KeyCache::remember`]).
    pub fn signing_key(&self, scope: &sigv4::CredentialScope, secret: &Secret) -> SigningKey {
        let id = (
            scope.access_key_id.clone(),
            scope.date.clone(),
            scope.region.clone(),
            scope.service.clone(),
        );
        if let Some(key) = lock(&self.keys).get(&id) {
            return SigningKey {
                key: *key,
                scope: None,
            };
        }
        SigningKey {
            key: sigv4::signing_key(secret.expose(), &scope.date, &scope.region, &scope.service),
            scope: Some(id),
        }
    }

    /// Caches a key whose signature verified.
    pub fn remember(&self, key: SigningKey) {
        let Some(id) = key.scope else { return };
        let mut keys = lock(&self.keys);
        if keys.len() >= KEY_CACHE_LIMIT {
            keys.clear();
        }
        keys.insert(id, key.key);
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        lock(&self.keys).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the operator chose about signatures.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// This gateway's region.
    pub region: String,
    /// Require SigV4 scopes to name `region` and service `ec2`.
    pub strict_scope: bool,
    /// Accept the legacy (ambiguous) SignatureVersion=1.
    pub allow_signature_v1: bool,
}

impl AuthSettings {
    /// Lenient scope, no SigV1: the defaults.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            strict_scope: false,
            allow_signature_v1: false,
        }
    }
}

/// Verifies signatures and resolves principals.
pub struct Verifier {
    clock: Arc<dyn Clock>,
    keys: KeyCache,
    settings: AuthSettings,
    /// Foreign SigV4 scopes already reported in the log (bounded).
    reported_scopes: Mutex<std::collections::HashSet<(String, String)>>,
}

/// Foreign scopes reported before the reports stop.
const REPORTED_SCOPES_LIMIT: usize = 64;

impl Verifier {
    pub fn new(clock: Arc<dyn Clock>, settings: AuthSettings) -> Self {
        Self {
            clock,
            keys: KeyCache::default(),
            settings,
            reported_scopes: Mutex::default(),
        }
    }

    /// Logs, once per region/service pair, a verified request whose SigV4
    /// scope names another region or service than this gateway's. Accepted
    /// in lenient mode (boto 2 and euca2ools invent scopes), but a request
    /// signed for another region may have been meant for another endpoint.
    fn report_foreign_scope(&self, region: &str, service: &str) {
        if region == self.settings.region && service == "ec2" {
            return;
        }
        let mut reported = lock(&self.reported_scopes);
        if reported.len() < REPORTED_SCOPES_LIMIT
            && reported.insert((region.to_string(), service.to_string()))
        {
            tracing::warn!(
                region,
                service,
                "accepted a SigV4 request scoped to another region or service (strict_signature_scope is off)"
            );
        }
    }

    pub fn key_cache(&self) -> &KeyCache {
        &self.keys
    }

    /// Checks the signature, whichever kind it is, with the key
    /// `credentials` has for the access key id the request names.
    pub fn verify(
        &self,
        request: &AuthRequest<'_>,
        credentials: &dyn CredentialSource,
    ) -> ApiResult<Verified> {
        let now = self.clock.now();
        let strict = self
            .settings
            .strict_scope
            .then_some(self.settings.region.as_str());
        if let Some(authorization) = request.headers.get("authorization") {
            let authorization = authorization.to_str().map_err(|_| {
                ApiError::IncompleteSignature("The Authorization header is not valid text".into())
            })?;
            if authorization.starts_with(sigv4::ALGORITHM) {
                let (verified, scope) = sigv4::verify_header(
                    request,
                    authorization,
                    credentials,
                    &self.keys,
                    now,
                    strict,
                )?;
                self.report_foreign_scope(&scope.region, &scope.service);
                return Ok(verified);
            }
            return Err(ApiError::IncompleteSignature(
                "Unsupported Authorization header: expected AWS4-HMAC-SHA256".into(),
            ));
        }
        if request
            .query_pairs
            .iter()
            .any(|(n, _)| n == "X-Amz-Algorithm")
        {
            let (verified, scope) =
                sigv4::verify_presigned(request, credentials, &self.keys, now, strict)?;
            self.report_foreign_scope(&scope.region, &scope.service);
            return Ok(verified);
        }
        if let Some(version) = request.params.get("SignatureVersion") {
            if version == "1" && !self.settings.allow_signature_v1 {
                return Err(ApiError::AuthFailure(
                    "Signature version 1 is not accepted: its string to sign is ambiguous. Use SigV4 or SigV2 (an operator can allow it with allow_signature_v1)".into(),
                ));
            }
            return sigv2::verify(request, version, credentials, now);
        }
        if request.params.get("Signature").is_some()
            || request.params.get("AWSAccessKeyId").is_some()
        {
            return Err(ApiError::MissingParameter("SignatureVersion".into()));
        }
        Err(ApiError::MissingAuthenticationToken)
    }

    /// Development mode: the access key a request names, and the region
    /// its SigV4 scope names (none for SigV2/SigV1), parsed as for
    /// verification but with the signature left unchecked.
    pub fn claimed_identity(
        &self,
        request: &AuthRequest<'_>,
    ) -> ApiResult<(String, Option<String>)> {
        if let Some(authorization) = request.headers.get("authorization") {
            let authorization = authorization.to_str().map_err(|_| {
                ApiError::IncompleteSignature("The Authorization header is not valid text".into())
            })?;
            let parsed = sigv4::AuthorizationHeader::parse(authorization)?;
            return Ok((
                parsed.credential.access_key_id,
                Some(parsed.credential.region),
            ));
        }
        if let Some((_, credential)) = request
            .query_pairs
            .iter()
            .find(|(n, _)| n == "X-Amz-Credential")
        {
            let scope = sigv4::CredentialScope::parse(credential)?;
            return Ok((scope.access_key_id, Some(scope.region)));
        }
        match request.params.get("AWSAccessKeyId") {
            Some(key) if !key.is_empty() => Ok((key.to_string(), None)),
            _ => Err(ApiError::MissingAuthenticationToken),
        }
    }

    /// Verifies and resolves the caller. Session tokens are refused: this
    /// gateway issues none.
    pub fn authenticate(
        &self,
        request: &AuthRequest<'_>,
        credentials: &dyn CredentialSource,
    ) -> ApiResult<Principal> {
        let verified = self.verify(request, credentials)?;
        if verified.session_token.is_some() {
            return Err(ApiError::AuthFailure(
                "The security token included in the request is invalid: this gateway issues no session tokens".into(),
            ));
        }
        Ok(Principal {
            account_id: verified.key.account_id,
            user_name: verified.key.user_name,
            access_key_id: verified.access_key_id,
            admin: verified.key.admin,
            agent_host: verified.key.agent_host,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    struct OneKey;

    impl CredentialSource for OneKey {
        fn lookup(&self, access_key_id: &str) -> ApiResult<KeyRecord> {
            if access_key_id != "AKIDEXAMPLE" {
                return Err(unknown_access_key());
            }
            Ok(KeyRecord {
                secret: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                account_id: "111122223333".into(),
                user_name: "operator".into(),
                admin: false,
                agent_host: None,
            })
        }
    }

    fn request_for(
        region: &str,
        secret: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (hyper::HeaderMap, String) {
        let credentials = signer::SigningCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret: Secret::new(secret),
            region: region.into(),
            service: "ec2".into(),
        };
        let body = "Action=DescribeRegions&Version=2016-11-15".to_string();
        let mut headers = hyper::HeaderMap::new();
        for (name, value) in signer::sign_v4_post(&credentials, "127.0.0.1:1", "/", &body, now) {
            headers.insert(name, value.parse().unwrap());
        }
        headers.insert("host", "127.0.0.1:1".parse().unwrap());
        (headers, body)
    }

    /// Medium 5: scopes were cached before the signature was checked, so
    /// anyone could fill the cache with invented regions.
    #[test]
    fn only_verified_scopes_are_cached() {
        let now = chrono::Utc::now();
        let verifier = Verifier::new(Arc::new(FixedClock(now)), AuthSettings::new("us-east-1"));
        let verify = |region: &str, secret: &str| {
            let (headers, body) = request_for(region, secret, now);
            let params = Params::new(Vec::new());
            verifier
                .verify(
                    &AuthRequest {
                        method: "POST",
                        path: "/",
                        query_pairs: &[],
                        headers: &headers,
                        body: body.as_bytes(),
                        params: &params,
                    },
                    &OneKey,
                )
                .map(|_| ())
        };
        for n in 0..100 {
            let refused = verify(&format!("region-{n}"), "not-the-secret-at-all");
            assert_eq!(refused.unwrap_err(), ApiError::SignatureDoesNotMatch);
        }
        assert!(verifier.key_cache().is_empty());
        verify("us-east-1", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY").unwrap();
        verify("us-east-1", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY").unwrap();
        assert_eq!(verifier.key_cache().len(), 1);
    }
}
