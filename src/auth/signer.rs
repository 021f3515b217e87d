//! Client-side signing, for the admin CLI, tests and the load generator.
//!
//! Uses the same pure functions the verifier uses, so a request signed here
//! is signed exactly as botocore signs a form POST (`content-type;host;
//! x-amz-date`) or as boto 2 signs SigV2.

use super::encoding::encode_component;
use super::sigv2::{string_to_sign_v2, SignatureMethod};
use super::sigv4;
use crate::secret::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// The form content type botocore sends.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Keys and scope to sign with.
#[derive(Debug, Clone)]
pub struct SigningCredentials {
    pub access_key_id: String,
    pub secret: Secret,
    pub region: String,
    pub service: String,
}

/// `X-Amz-Date` for `now` and the credential scope of that day.
fn date_and_scope(
    credentials: &SigningCredentials,
    now: DateTime<Utc>,
) -> (String, sigv4::CredentialScope) {
    let amz_date = sigv4::format_amz_date(now);
    let scope = sigv4::CredentialScope {
        access_key_id: credentials.access_key_id.clone(),
        date: amz_date[..8].to_string(),
        region: credentials.region.clone(),
        service: credentials.service.clone(),
    };
    (amz_date, scope)
}

/// Encodes parameters as a form body.
pub fn form_body(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(n, v)| format!("{}={}", encode_component(n), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The headers of a SigV4-signed form POST of `body` to `host` + `path`:
/// `Content-Type`, `X-Amz-Date` and `Authorization` (the caller sends `Host`
/// with exactly the value given here).
pub fn sign_v4_post(
    credentials: &SigningCredentials,
    host: &str,
    path: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let (amz_date, scope) = date_and_scope(credentials, now);
    let signed_headers = vec![
        "content-type".to_string(),
        "host".to_string(),
        "x-amz-date".to_string(),
    ];
    let canonical_headers =
        format!("content-type:{FORM_CONTENT_TYPE}\nhost:{host}\nx-amz-date:{amz_date}\n");
    let payload_hash = hex::encode(Sha256::digest(body.as_bytes()));
    let canonical = sigv4::canonical_request(
        "POST",
        &sigv4::canonical_uri(path),
        "",
        &canonical_headers,
        &signed_headers,
        &payload_hash,
    );
    let to_sign = sigv4::string_to_sign(&amz_date, &scope.scope(), &canonical);
    let key = sigv4::signing_key(
        credentials.secret.expose(),
        &scope.date,
        &scope.region,
        &scope.service,
    );
    let signature = sigv4::signature(&key, &to_sign);
    vec![
        ("Content-Type", FORM_CONTENT_TYPE.to_string()),
        ("X-Amz-Date", amz_date),
        (
            "Authorization",
            format!(
                "{} Credential={}/{}, SignedHeaders={}, Signature={signature}",
                sigv4::ALGORITHM,
                credentials.access_key_id,
                scope.scope(),
                signed_headers.join(";")
            ),
        ),
    ]
}

/// Adds SigV2 parameters (`AWSAccessKeyId`, `SignatureVersion`,
/// `SignatureMethod`, `Timestamp`, `Signature`) to `params`.
pub fn sign_v2(
    credentials: &SigningCredentials,
    method: &str,
    host: &str,
    path: &str,
    params: &mut Vec<(String, String)>,
    signature_method: SignatureMethod,
    now: DateTime<Utc>,
) {
    params.push(("AWSAccessKeyId".into(), credentials.access_key_id.clone()));
    params.push(("SignatureVersion".into(), "2".into()));
    let method_name = match signature_method {
        SignatureMethod::HmacSha256 => "HmacSHA256",
        SignatureMethod::HmacSha1 => "HmacSHA1",
    };
    params.push(("SignatureMethod".into(), method_name.into()));
    params.push((
        "Timestamp".into(),
        now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    ));
    let to_sign = string_to_sign_v2(method, host, path, params);
    let signature = STANDARD.encode(signature_method.sign(credentials.secret.expose(), &to_sign));
    params.push(("Signature".into(), signature));
}

/// A presigned SigV4 query string (`X-Amz-*` added to `params`, host the
/// only signed header) for `method` on `host` + `path`, valid for
/// `expires_secs`, as boto3's `generate_presigned_url` builds one.
pub fn presign_v4(
    credentials: &SigningCredentials,
    method: &str,
    host: &str,
    path: &str,
    params: &[(String, String)],
    expires_secs: u32,
    now: DateTime<Utc>,
) -> String {
    let (amz_date, scope) = date_and_scope(credentials, now);
    let mut query: Vec<(String, String)> = params.to_vec();
    query.extend([
        ("X-Amz-Algorithm".to_string(), sigv4::ALGORITHM.to_string()),
        (
            "X-Amz-Credential".to_string(),
            format!("{}/{}", credentials.access_key_id, scope.scope()),
        ),
        ("X-Amz-Date".to_string(), amz_date.clone()),
        ("X-Amz-Expires".to_string(), expires_secs.to_string()),
        ("X-Amz-SignedHeaders".to_string(), "host".to_string()),
    ]);
    let canonical_query =
        super::encoding::canonical_query(query.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let canonical = sigv4::canonical_request(
        method,
        &sigv4::canonical_uri(path),
        &canonical_query,
        &format!("host:{host}\n"),
        &["host".to_string()],
        sigv4::EMPTY_PAYLOAD_HASH,
    );
    let to_sign = sigv4::string_to_sign(&amz_date, &scope.scope(), &canonical);
    let key = sigv4::signing_key(
        credentials.secret.expose(),
        &scope.date,
        &scope.region,
        &scope.service,
    );
    format!(
        "{canonical_query}&X-Amz-Signature={}",
        sigv4::signature(&key, &to_sign)
    )
}
