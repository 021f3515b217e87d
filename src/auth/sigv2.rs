//! AWS Signature Version 2 (and the legacy Version 1) in the parameters.
//!
//! boto 2, euca2ools and boto3 with `signature_version='v2'` sign
//! `METHOD\nhost\npath\ncanonical-query` where the host is the `Host` header
//! exactly as received (boto 2 signs it without the port while connecting to
//! a non-default port) and the query is every parameter from the query string
//! and the body but `Signature`, RFC 3986-encoded and byte-sorted. Version 1
//! concatenates `name+value` pairs sorted case-insensitively. Version 0 signs
//! no parameters at all and is refused.

use super::{AuthRequest, CredentialSource, Verified};
use crate::error::{ApiError, ApiResult};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// The HMAC a V1/V2 request names in `SignatureMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureMethod {
    HmacSha1,
    HmacSha256,
}

impl SignatureMethod {
    fn parse(value: &str) -> ApiResult<Self> {
        match value {
            "HmacSHA256" => Ok(Self::HmacSha256),
            "HmacSHA1" => Ok(Self::HmacSha1),
            other => Err(ApiError::invalid_value(format!(
                "Unsupported SignatureMethod '{other}'"
            ))),
        }
    }

    /// The raw MAC of `data` (for signing; comparing goes through [`Self::verify`]).
    pub fn sign(self, secret: &str, data: &str) -> Vec<u8> {
        match self {
            Self::HmacSha256 => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
                mac.update(data.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            Self::HmacSha1 => {
                let mut mac =
                    Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
                mac.update(data.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// Constant-time comparison of a base64 signature.
    fn verify(self, secret: &str, data: &str, received_base64: &str) -> bool {
        let Ok(received) = STANDARD.decode(received_base64.trim()) else {
            return false;
        };
        match self {
            Self::HmacSha256 => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
                mac.update(data.as_bytes());
                mac.verify_slice(&received).is_ok()
            }
            Self::HmacSha1 => {
                let mut mac =
                    Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
                mac.update(data.as_bytes());
                mac.verify_slice(&received).is_ok()
            }
        }
    }
}

/// The V2 string to sign.
pub fn string_to_sign_v2(
    method: &str,
    host: &str,
    path: &str,
    pairs: &[(String, String)],
) -> String {
    let query = super::encoding::canonical_query(
        pairs
            .iter()
            .filter(|(n, _)| n != "Signature")
            .map(|(n, v)| (n.as_str(), v.as_str())),
    );
    let path = if path.is_empty() { "/" } else { path };
    format!("{method}\n{}\n{path}\n{query}", host.to_ascii_lowercase())
}

/// The V1 string to sign: `name+value` concatenated, sorted case-insensitively.
pub fn string_to_sign_v1(pairs: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> =
        pairs.iter().filter(|(n, _)| n != "Signature").collect();
    sorted.sort_by(|a, b| {
        a.0.to_lowercase()
            .cmp(&b.0.to_lowercase())
            .then_with(|| a.0.cmp(&b.0))
    });
    sorted.iter().map(|(n, v)| format!("{n}{v}")).collect()
}

/// Parses `Timestamp`/`Expires`: ISO 8601 with `Z`, an offset, fractional
/// seconds, or no zone at all (taken as UTC).
pub fn parse_timestamp(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Some(time.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value.trim_end_matches('Z'), format).ok())
        .map(|t| Utc.from_utc_datetime(&t))
}

/// How far ahead `Expires` may be (SigV4's presigned maximum, 7 days).
pub const MAX_EXPIRES_AHEAD_SECONDS: i64 = 604_800;

fn check_time(params: &crate::protocol::Params, now: DateTime<Utc>) -> ApiResult<()> {
    match (params.get("Timestamp"), params.get("Expires")) {
        (Some(_), Some(_)) => Err(ApiError::InvalidParameterCombination(
            "The parameters Timestamp and Expires cannot be used together".into(),
        )),
        (None, None) => Err(ApiError::MissingParameter("Timestamp".into())),
        (Some(timestamp), None) => {
            let signed_at = parse_timestamp(timestamp).ok_or_else(|| {
                ApiError::invalid_value(format!("Invalid Timestamp '{timestamp}'"))
            })?;
            if (now - signed_at).num_seconds().abs() > super::sigv4::MAX_SKEW_SECONDS {
                return Err(ApiError::RequestExpired(format!(
                    "Request has expired. Timestamp date is {timestamp}"
                )));
            }
            Ok(())
        }
        (None, Some(expires)) => {
            let expires_at = parse_timestamp(expires)
                .ok_or_else(|| ApiError::invalid_value(format!("Invalid Expires '{expires}'")))?;
            if now > expires_at {
                return Err(ApiError::RequestExpired(format!(
                    "Request has expired. Expires date is {expires}"
                )));
            }
            // A signature valid for years is a credential that leaks with
            // every log line: no more than SigV4's presigned maximum.
            if (expires_at - now).num_seconds() > MAX_EXPIRES_AHEAD_SECONDS {
                return Err(ApiError::invalid_value(format!(
                    "Expires '{expires}' is too far in the future: at most {} days ahead",
                    MAX_EXPIRES_AHEAD_SECONDS / 86_400
                )));
            }
            Ok(())
        }
    }
}

/// Verifies a V0, V1 or V2 request (`SignatureVersion` in the parameters).
pub fn verify(
    request: &AuthRequest<'_>,
    version: &str,
    credentials: &dyn CredentialSource,
    now: DateTime<Utc>,
) -> ApiResult<Verified> {
    let params = request.params;
    let access_key_id = params.required("AWSAccessKeyId")?;
    let received = params.required("Signature")?;
    let (method, to_sign) = match version {
        "2" => {
            let method = SignatureMethod::parse(&params.required("SignatureMethod")?)?;
            let host = request
                .headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .ok_or_else(|| ApiError::MissingParameter("Host".into()))?;
            (
                method,
                string_to_sign_v2(request.method, host, request.path, params.pairs()),
            )
        }
        "1" => {
            let method = match params.get("SignatureMethod") {
                Some(name) => SignatureMethod::parse(name)?,
                None => SignatureMethod::HmacSha1,
            };
            (method, string_to_sign_v1(params.pairs()))
        }
        "0" => {
            return Err(ApiError::AuthFailure(
                "Signature version 0 is not supported: it signs no parameters".into(),
            ))
        }
        other => {
            return Err(ApiError::invalid_value(format!(
                "Unsupported SignatureVersion '{other}'"
            )))
        }
    };
    check_time(params, now)?;
    let key = credentials.lookup(&access_key_id)?;
    if !method.verify(key.secret.expose(), &to_sign, &received) {
        return Err(ApiError::SignatureDoesNotMatch);
    }
    Ok(Verified {
        access_key_id,
        session_token: params.optional("SecurityToken"),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_sorts_case_insensitively() {
        let pairs = vec![
            ("Version".to_string(), "1".to_string()),
            ("action".to_string(), "A".to_string()),
            ("AWSAccessKeyId".to_string(), "K".to_string()),
            ("Signature".to_string(), "x".to_string()),
        ];
        assert_eq!(string_to_sign_v1(&pairs), "actionAAWSAccessKeyIdKVersion1");
    }

    #[test]
    fn timestamps() {
        let expected = Utc.with_ymd_and_hms(2026, 11, 24, 17, 56, 19).unwrap();
        for text in [
            "2026-11-24T17:56:19Z",
            "2026-11-24T17:56:19.000Z",
            "2026-11-24T17:56:19",
            "2026-11-24T17:56:19+00:00",
        ] {
            assert_eq!(parse_timestamp(text), Some(expected), "{text}");
        }
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
