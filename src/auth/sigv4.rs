//! AWS Signature Version 4: pure functions and the verifier.
//!
//! The canonical request is rebuilt from what the client actually sent: the
//! path as received, the query re-encoded and sorted, exactly the headers
//! named in `SignedHeaders` with their received values (clients sign very
//! different sets, and boto 2 signs `host` without the port while another
//! sends it), and the payload hash. The signing key comes from the scope the
//! client sent, because boto 2 guesses region `0`/service `127` from
//! `127.0.0.1` and euca2ools invents regions; strict scope checking is a
//! setting. Signatures are compared with `Mac::verify_slice` (constant time).

use super::{AuthRequest, CredentialSource, KeyCache, Verified};
use crate::error::{ApiError, ApiResult};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Hex SHA-256 of the empty body.
pub const EMPTY_PAYLOAD_HASH: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Allowed clock skew either way.
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// `Credential=AKID/date/region/service/aws4_request`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

impl CredentialScope {
    pub fn parse(credential: &str) -> ApiResult<Self> {
        let parts: Vec<&str> = credential.split('/').collect();
        match parts.as_slice() {
            [key, date, region, service, "aws4_request"]
                if !key.is_empty() && date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(Self {
                    access_key_id: key.to_string(),
                    date: date.to_string(),
                    region: region.to_string(),
                    service: service.to_string(),
                })
            }
            _ => Err(ApiError::IncompleteSignature(format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/aws4_request, got '{credential}'"
            ))),
        }
    }

    /// `date/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// The three parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationHeader {
    pub credential: CredentialScope,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl AuthorizationHeader {
    /// Parses loosely: parts separated by `,` with or without spaces (boto 2
    /// sends none), in any order.
    pub fn parse(value: &str) -> ApiResult<Self> {
        let rest = value.strip_prefix(ALGORITHM).ok_or_else(|| {
            ApiError::IncompleteSignature("Unsupported Authorization algorithm".into())
        })?;
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed_headers = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => {
                    return Err(ApiError::IncompleteSignature(format!(
                        "Authorization header has an unexpected part '{part}'"
                    )))
                }
            }
        }
        let missing = |name: &str| {
            ApiError::IncompleteSignature(format!(
                "Authorization header requires '{name}' parameter"
            ))
        };
        Ok(Self {
            credential: CredentialScope::parse(credential.ok_or_else(|| missing("Credential"))?)?,
            signed_headers: parse_signed_headers(
                signed_headers.ok_or_else(|| missing("SignedHeaders"))?,
            )?,
            signature: signature.ok_or_else(|| missing("Signature"))?.to_string(),
        })
    }
}

fn parse_signed_headers(list: &str) -> ApiResult<Vec<String>> {
    let names: Vec<String> = list
        .split(';')
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    if names.iter().any(String::is_empty) {
        return Err(ApiError::IncompleteSignature(
            "SignedHeaders contains an empty name".into(),
        ));
    }
    if !names.iter().any(|n| n == "host") {
        return Err(ApiError::IncompleteSignature(
            "'Host' must be a signed header".into(),
        ));
    }
    Ok(names)
}

/// Canonical headers block: `name:value\n` for each signed name, values of
/// repeated headers joined by `,`, trimmed, inner whitespace runs collapsed.
pub fn canonical_headers(headers: &hyper::HeaderMap, signed_names: &[String]) -> String {
    collect_text(|put| put_canonical_headers(headers, signed_names, put))
}

/// Writes [`canonical_headers`]' block to `put`, piece by piece (the one
/// place the headers are canonicalized, for strings and digests alike).
fn put_canonical_headers(
    headers: &hyper::HeaderMap,
    signed_names: &[String],
    put: &mut dyn FnMut(&[u8]),
) {
    for name in signed_names {
        put(name.as_bytes());
        put(b":");
        for (index, value) in headers.get_all(name.as_str()).iter().enumerate() {
            if index > 0 {
                put(b",");
            }
            put_collapsed(&String::from_utf8_lossy(value.as_bytes()), put);
        }
        put(b"\n");
    }
}

/// Writes `value` trimmed, each inner run of whitespace as one space.
fn put_collapsed(value: &str, put: &mut dyn FnMut(&[u8])) {
    for (index, word) in value.split_whitespace().enumerate() {
        if index > 0 {
            put(b" ");
        }
        put(word.as_bytes());
    }
}

/// The text the pieces `write` puts make (all of them UTF-8).
fn collect_text(write: impl FnOnce(&mut dyn FnMut(&[u8]))) -> String {
    let mut out = Vec::new();
    write(&mut |piece| out.extend_from_slice(piece));
    String::from_utf8(out).expect("pieces of UTF-8 text")
}

/// SHA-256 of the bytes the pieces `write` puts.
fn digest_of(write: impl FnOnce(&mut dyn FnMut(&[u8]))) -> [u8; 32] {
    let mut hash = Sha256::new();
    write(&mut |piece| hash.update(piece));
    hash.finalize().into()
}

/// The canonical URI: the path as received, `/` when empty, each byte outside
/// the unreserved set and `/` percent-encoded (so an already-encoded path is
/// encoded again, as AWS does for every service but S3).
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        super::encoding::encode_path(path)
    }
}

/// The canonical request.
pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &[String],
    payload_hash: &str,
) -> String {
    collect_text(|put| {
        put_canonical_request(
            [method, canonical_uri, canonical_query],
            |put| put(canonical_headers.as_bytes()),
            signed_headers,
            payload_hash,
            put,
        )
    })
}

/// SHA-256 of the [`canonical_request`] with the [`canonical_headers`] of
/// `headers`, hashed piece by piece as they are produced instead of built
/// into strings first: the check runs on every request.
pub fn canonical_request_digest(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    headers: &hyper::HeaderMap,
    signed_names: &[String],
    payload_hash: &str,
) -> [u8; 32] {
    digest_of(|put| {
        put_canonical_request(
            [method, canonical_uri, canonical_query],
            |put| put_canonical_headers(headers, signed_names, put),
            signed_names,
            payload_hash,
            put,
        )
    })
}

/// Writes the canonical request to `put`: method, URI and query, the
/// headers block `put_headers` writes, the signed names, the payload hash.
fn put_canonical_request(
    method_uri_query: [&str; 3],
    put_headers: impl FnOnce(&mut dyn FnMut(&[u8])),
    signed_headers: &[String],
    payload_hash: &str,
    put: &mut dyn FnMut(&[u8]),
) {
    for part in method_uri_query {
        put(part.as_bytes());
        put(b"\n");
    }
    put_headers(put);
    put(b"\n");
    for (index, name) in signed_headers.iter().enumerate() {
        if index > 0 {
            put(b";");
        }
        put(name.as_bytes());
    }
    put(b"\n");
    put(payload_hash.as_bytes());
}

/// The string to sign.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let digest: [u8; 32] = Sha256::digest(canonical_request.as_bytes()).into();
    collect_text(|put| put_string_to_sign(amz_date, &[scope], &digest, put))
}

/// Writes the string to sign to `put`: the algorithm, the date, the scope
/// (given in pieces), the canonical request's digest in hex.
fn put_string_to_sign(
    amz_date: &str,
    scope: &[&str],
    canonical_digest: &[u8; 32],
    put: &mut dyn FnMut(&[u8]),
) {
    let mut digest_hex = [0u8; 64];
    hex::encode_to_slice(canonical_digest, &mut digest_hex).expect("64 hex digits for 32 bytes");
    put(ALGORITHM.as_bytes());
    put(b"\n");
    put(amz_date.as_bytes());
    put(b"\n");
    for piece in scope {
        put(piece.as_bytes());
    }
    put(b"\n");
    put(&digest_hex);
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The signing key: `"AWS4"+secret -> date -> region -> service -> "aws4_request"`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The hex signature of `string_to_sign` (for signing, not for comparing).
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(signing_key, string_to_sign.as_bytes()))
}

/// Constant-time check of a hex signature.
pub fn signature_matches(signing_key: &[u8; 32], string_to_sign: &str, received_hex: &str) -> bool {
    let Ok(received) = hex::decode(received_hex) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(signing_key).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&received).is_ok()
}

/// [`signature_matches`] on the string to sign that [`string_to_sign`]
/// would build for `canonical_digest` (fed to the HMAC piece by piece),
/// compared in constant time.
pub fn signature_matches_digest(
    signing_key: &[u8; 32],
    amz_date: &str,
    scope: &CredentialScope,
    canonical_digest: &[u8; 32],
    received_hex: &str,
) -> bool {
    let mut received = [0u8; 32];
    if hex::decode_to_slice(received_hex, &mut received).is_err() {
        return false;
    }
    let mut mac = HmacSha256::new_from_slice(signing_key).expect("HMAC takes any key length");
    let scope = [
        scope.date.as_str(),
        "/",
        &scope.region,
        "/",
        &scope.service,
        "/aws4_request",
    ];
    put_string_to_sign(amz_date, &scope, canonical_digest, &mut |piece| {
        mac.update(piece)
    });
    mac.verify_slice(&received).is_ok()
}

/// Parses `20261124T175147Z`.
pub fn parse_amz_date(value: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| Utc.from_utc_datetime(&t))
}

/// Formats `20261124T175147Z`.
pub fn format_amz_date(time: DateTime<Utc>) -> String {
    time.format("%Y%m%dT%H%M%SZ").to_string()
}

fn header<'a>(request: &'a AuthRequest<'_>, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The payload hash: the body's own. An `X-Amz-Content-SHA256` header, when
/// sent, must equal it; `UNSIGNED-PAYLOAD` (an S3 convention) is refused,
/// because an EC2 request's parameters are in its body and every one of
/// them must be covered by the signature.
fn payload_hash(request: &AuthRequest<'_>) -> ApiResult<String> {
    let actual = hex::encode(Sha256::digest(request.body));
    match header(request, "x-amz-content-sha256") {
        Some(claimed) if claimed.eq_ignore_ascii_case("UNSIGNED-PAYLOAD") => {
            Err(ApiError::IncompleteSignature(
                "X-Amz-Content-SHA256 UNSIGNED-PAYLOAD is not accepted: sign the request body"
                    .into(),
            ))
        }
        Some(claimed) if claimed.eq_ignore_ascii_case(&actual) => Ok(actual),
        Some(_) => Err(ApiError::SignatureDoesNotMatch),
        None => Ok(actual),
    }
}

fn check_scope(
    scope: &CredentialScope,
    amz_date: &str,
    strict_region: Option<&str>,
) -> ApiResult<()> {
    if !amz_date.starts_with(&scope.date) {
        return Err(ApiError::IncompleteSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            scope.date,
            amz_date.get(..8).unwrap_or(amz_date)
        )));
    }
    if let Some(region) = strict_region {
        if scope.region != region || scope.service != "ec2" {
            return Err(ApiError::AuthFailure(format!(
                "Credential should be scoped to region '{region}' and service 'ec2', not '{}/{}'",
                scope.region, scope.service
            )));
        }
    }
    Ok(())
}

/// Verifies a request signed in the `Authorization` header.
pub fn verify_header(
    request: &AuthRequest<'_>,
    authorization: &str,
    credentials: &dyn CredentialSource,
    keys: &KeyCache,
    now: DateTime<Utc>,
    strict_region: Option<&str>,
) -> ApiResult<(Verified, CredentialScope)> {
    let auth = AuthorizationHeader::parse(authorization)?;
    let amz_date = match header(request, "x-amz-date") {
        Some(date) => date.to_string(),
        None => {
            let date = header(request, "date").ok_or_else(|| {
                ApiError::IncompleteSignature("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header".into())
            })?;
            let parsed = DateTime::parse_from_rfc2822(date).map_err(|_| {
                ApiError::IncompleteSignature(format!("Invalid Date header '{date}'"))
            })?;
            format_amz_date(parsed.with_timezone(&Utc))
        }
    };
    let signed_at = parse_amz_date(&amz_date)
        .ok_or_else(|| ApiError::IncompleteSignature(format!("Invalid X-Amz-Date '{amz_date}'")))?;
    check_scope(&auth.credential, &amz_date, strict_region)?;
    let skew = (now - signed_at).num_seconds();
    if skew.abs() > MAX_SKEW_SECONDS {
        return Err(ApiError::RequestExpired(format!(
            "Request has expired. Timestamp date is {amz_date}, now is {}",
            format_amz_date(now)
        )));
    }
    let key = credentials.lookup(&auth.credential.access_key_id)?;
    let canonical_query = super::encoding::canonical_query(
        request
            .query_pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str())),
    );
    let canonical = canonical_request_digest(
        request.method,
        &canonical_uri(request.path),
        &canonical_query,
        request.headers,
        &auth.signed_headers,
        &payload_hash(request)?,
    );
    let signing_key = keys.signing_key(&auth.credential, &key.secret);
    if !signature_matches_digest(
        &signing_key.key,
        &amz_date,
        &auth.credential,
        &canonical,
        &auth.signature,
    ) {
        return Err(ApiError::SignatureDoesNotMatch);
    }
    keys.remember(signing_key);
    let verified = Verified {
        access_key_id: auth.credential.access_key_id.clone(),
        session_token: header(request, "x-amz-security-token").map(str::to_string),
        key,
    };
    Ok((verified, auth.credential))
}

/// Verifies a presigned request (`X-Amz-*` in the query string).
pub fn verify_presigned(
    request: &AuthRequest<'_>,
    credentials: &dyn CredentialSource,
    keys: &KeyCache,
    now: DateTime<Utc>,
    strict_region: Option<&str>,
) -> ApiResult<(Verified, CredentialScope)> {
    let query = |name: &str| {
        request
            .query_pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let required = |name: &str| {
        query(name).ok_or_else(|| {
            ApiError::IncompleteSignature(format!(
                "Query-string authentication requires the {name} parameter"
            ))
        })
    };
    if required("X-Amz-Algorithm")? != ALGORITHM {
        return Err(ApiError::IncompleteSignature(
            "Unsupported X-Amz-Algorithm".into(),
        ));
    }
    let credential = CredentialScope::parse(required("X-Amz-Credential")?)?;
    let amz_date = required("X-Amz-Date")?;
    let signed_headers = parse_signed_headers(required("X-Amz-SignedHeaders")?)?;
    let received_signature = required("X-Amz-Signature")?;
    let expires: i64 = required("X-Amz-Expires")?
        .parse()
        .ok()
        .filter(|e| (1..=604_800).contains(e))
        .ok_or_else(|| {
            ApiError::IncompleteSignature(
                "X-Amz-Expires must be a number of seconds from 1 to 604800".into(),
            )
        })?;
    let signed_at = parse_amz_date(amz_date)
        .ok_or_else(|| ApiError::IncompleteSignature(format!("Invalid X-Amz-Date '{amz_date}'")))?;
    check_scope(&credential, amz_date, strict_region)?;
    if (signed_at - now).num_seconds() > MAX_SKEW_SECONDS {
        return Err(ApiError::RequestExpired(format!(
            "Request is not yet valid: X-Amz-Date is {amz_date}"
        )));
    }
    if (now - signed_at).num_seconds() > expires {
        return Err(ApiError::RequestExpired(format!(
            "Request has expired: signed at {amz_date}, valid for {expires} seconds"
        )));
    }
    let key = credentials.lookup(&credential.access_key_id)?;
    let canonical_query = super::encoding::canonical_query(
        request
            .query_pairs
            .iter()
            .filter(|(n, _)| n != "X-Amz-Signature")
            .map(|(n, v)| (n.as_str(), v.as_str())),
    );
    // A presigned URL signs its query string only: a body would add
    // parameters its signer never saw.
    if !request.body.is_empty() {
        return Err(ApiError::IncompleteSignature(
            "A presigned request carries its parameters in the query string: its body must be empty".into(),
        ));
    }
    if header(request, "x-amz-content-sha256").is_some() {
        payload_hash(request)?;
    }
    let uri = canonical_uri(request.path);
    let signing_key = keys.signing_key(&credential, &key.secret);
    let matches_as = |method: &str| {
        let canonical = canonical_request_digest(
            method,
            &uri,
            &canonical_query,
            request.headers,
            &signed_headers,
            EMPTY_PAYLOAD_HASH,
        );
        signature_matches_digest(
            &signing_key.key,
            amz_date,
            &credential,
            &canonical,
            received_signature,
        )
    };
    // boto3's generate_presigned_url signs EC2 URLs as POST although they are
    // then fetched with GET: accept a GET that verifies as POST.
    let verified = matches_as(request.method) || (request.method == "GET" && matches_as("POST"));
    if !verified {
        return Err(ApiError::SignatureDoesNotMatch);
    }
    keys.remember(signing_key);
    let verified = Verified {
        access_key_id: credential.access_key_id.clone(),
        session_token: query("X-Amz-Security-Token").map(str::to_string),
        key,
    };
    Ok((verified, credential))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest hashed piece by piece is the hash of the strings built
    /// whole, and the signature checked on it is the one on the string to
    /// sign: repeated headers, whitespace runs, text that is not UTF-8.
    #[test]
    fn digests_hashed_piece_by_piece_are_those_of_the_strings() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("host", "ec2.local:8773".parse().unwrap());
        headers.append("x-amz-meta", "  a   b \t c ".parse().unwrap());
        headers.append("x-amz-meta", "second".parse().unwrap());
        headers.insert(
            "x-odd",
            hyper::header::HeaderValue::from_bytes(b"caf\xe9  x").unwrap(),
        );
        let names: Vec<String> = ["host", "x-amz-meta", "x-missing", "x-odd"]
            .map(String::from)
            .to_vec();
        let whole = canonical_request(
            "POST",
            "/",
            "Action=Describe&b=%20",
            &canonical_headers(&headers, &names),
            &names,
            EMPTY_PAYLOAD_HASH,
        );
        let digest = canonical_request_digest(
            "POST",
            "/",
            "Action=Describe&b=%20",
            &headers,
            &names,
            EMPTY_PAYLOAD_HASH,
        );
        assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(whole.as_bytes())));

        let scope = CredentialScope::parse("AKID/20261124/us-east-1/ec2/aws4_request").unwrap();
        let key = signing_key("secret", &scope.date, &scope.region, &scope.service);
        let to_sign = string_to_sign("20261124T175147Z", &scope.scope(), &whole);
        let good = signature(&key, &to_sign);
        assert!(signature_matches_digest(
            &key,
            "20261124T175147Z",
            &scope,
            &digest,
            &good
        ));
        let mut bad = good.clone();
        bad.replace_range(..1, if good.starts_with('0') { "1" } else { "0" });
        for wrong in [bad.as_str(), &good[..63], "zz", ""] {
            assert!(!signature_matches_digest(
                &key,
                "20261124T175147Z",
                &scope,
                &digest,
                wrong
            ));
        }
        assert!(!signature_matches_digest(
            &key,
            "20261124T175148Z",
            &scope,
            &digest,
            &good
        ));
    }

    #[test]
    fn authorization_header_parses_with_and_without_spaces() {
        let spaced = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261124/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=abcd";
        let tight = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261124/0/127/aws4_request,SignedHeaders=host;x-amz-date,Signature=abcd";
        let a = AuthorizationHeader::parse(spaced).unwrap();
        assert_eq!(a.credential.region, "us-east-1");
        assert_eq!(a.signed_headers, ["content-type", "host", "x-amz-date"]);
        let b = AuthorizationHeader::parse(tight).unwrap();
        assert_eq!(
            (b.credential.region.as_str(), b.credential.service.as_str()),
            ("0", "127")
        );
        assert_eq!(b.signature, "abcd");
    }

    #[test]
    fn malformed_authorization_is_incomplete() {
        for bad in [
            "AWS4-HMAC-SHA256 Credential=AKID/20261124/us-east-1/ec2/aws4_request, SignedHeaders=host",
            "AWS4-HMAC-SHA256 Credential=AKID/2026/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=a",
            "AWS4-HMAC-SHA256 Credential=AKID/20261124/us-east-1/ec2/aws4_request, SignedHeaders=x-amz-date, Signature=a",
            "AWS4-HMAC-SHA256 Garbage",
        ] {
            assert_eq!(AuthorizationHeader::parse(bad).unwrap_err().code(), "IncompleteSignature", "{bad}");
        }
    }

    #[test]
    fn aws_documentation_signing_key() {
        // From the AWS SigV4 documentation's worked example.
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn whitespace_collapses() {
        assert_eq!(
            collect_text(|put| put_collapsed("  a   b  c ", put)),
            "a b c"
        );
    }
}
