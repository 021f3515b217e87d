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
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the verifier needs to know about an access key.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub secret: Secret,
    pub account_id: String,
    pub user_name: String,
    pub admin: bool,
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
}

/// SigV4 signing keys by (access key, date, region, service): deriving one
/// costs four HMACs, and a client keeps the same scope all day.
#[derive(Default)]
pub struct KeyCache {
    keys: Mutex<HashMap<ScopeId, [u8; 32]>>,
}

/// (access key, date, region, service).
type ScopeId = (String, String, String, String);

/// Entries kept before the cache starts over (scopes are per day, so a
/// handful per key is normal).
const KEY_CACHE_LIMIT: usize = 4096;

impl KeyCache {
    pub fn signing_key(&self, scope: &sigv4::CredentialScope, secret: &Secret) -> [u8; 32] {
        let id = (
            scope.access_key_id.clone(),
            scope.date.clone(),
            scope.region.clone(),
            scope.service.clone(),
        );
        let mut keys = self.keys.lock().expect("key cache lock");
        if let Some(key) = keys.get(&id) {
            return *key;
        }
        let key = sigv4::signing_key(secret.expose(), &scope.date, &scope.region, &scope.service);
        if keys.len() >= KEY_CACHE_LIMIT {
            keys.clear();
        }
        keys.insert(id, key);
        key
    }
}

/// Verifies signatures and resolves principals.
pub struct Verifier {
    credentials: Arc<dyn CredentialSource>,
    clock: Arc<dyn Clock>,
    keys: KeyCache,
    /// `Some(region)` in strict scope mode.
    strict_region: Option<String>,
}

impl Verifier {
    pub fn new(
        credentials: Arc<dyn CredentialSource>,
        clock: Arc<dyn Clock>,
        strict_region: Option<String>,
    ) -> Self {
        Self {
            credentials,
            clock,
            keys: KeyCache::default(),
            strict_region,
        }
    }

    pub fn key_cache(&self) -> &KeyCache {
        &self.keys
    }

    /// Checks the signature, whichever kind it is.
    pub fn verify(&self, request: &AuthRequest<'_>) -> ApiResult<Verified> {
        let now = self.clock.now();
        let strict = self.strict_region.as_deref();
        let credentials = self.credentials.as_ref();
        if let Some(authorization) = request.headers.get("authorization") {
            let authorization = authorization.to_str().map_err(|_| {
                ApiError::IncompleteSignature("The Authorization header is not valid text".into())
            })?;
            if authorization.starts_with(sigv4::ALGORITHM) {
                return sigv4::verify_header(
                    request,
                    authorization,
                    credentials,
                    &self.keys,
                    now,
                    strict,
                );
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
            return sigv4::verify_presigned(request, credentials, &self.keys, now, strict);
        }
        if let Some(version) = request.params.get("SignatureVersion") {
            return sigv2::verify(request, version, credentials, &self.keys, now);
        }
        if request.params.get("Signature").is_some()
            || request.params.get("AWSAccessKeyId").is_some()
        {
            return Err(ApiError::MissingParameter("SignatureVersion".into()));
        }
        Err(ApiError::MissingAuthenticationToken)
    }

    /// Verifies and resolves the caller. Session tokens are refused: this
    /// gateway issues none.
    pub fn authenticate(&self, request: &AuthRequest<'_>) -> ApiResult<Principal> {
        let verified = self.verify(request)?;
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
        })
    }
}
