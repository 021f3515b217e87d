//! Fuzz-style property tests of the query parser, the three signature
//! verifiers and the action parsers, fed with real client captures
//! (fixtures/wire/) that are mutated: bytes flipped, inserted, removed,
//! parameters repeated, renamed, emptied, the body moved to the query. The
//! properties: nothing panics, every refusal is an EC2 error with a 4xx/5xx
//! status whose XML document is well formed, and a request whose signature
//! no longer covers what it says is never accepted.
//!
//! CI runs a few thousand cases. For a long run:
//!
//! ```text
//! EC2_GATEWAY_FUZZ_CASES=500000 cargo test --release --test fuzz -- --nocapture
//! ```

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use ec2_gateway::api::Action;
use ec2_gateway::auth::{
    AuthRequest, AuthSettings, CredentialSource, KeyRecord, Principal, Verifier,
};
use ec2_gateway::clock::FixedClock;
use ec2_gateway::error::{ApiError, ApiResult};
use ec2_gateway::gateway::request_params;
use ec2_gateway::protocol::xml::render_error;
use ec2_gateway::secret::Secret;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct ExampleKeys;

impl CredentialSource for ExampleKeys {
    fn lookup(&self, access_key_id: &str) -> ApiResult<KeyRecord> {
        if access_key_id == "AKIDEXAMPLE" {
            Ok(KeyRecord {
                secret: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                account_id: "111122223333".into(),
                user_name: "example".into(),
                admin: false,
                agent_host: None,
            })
        } else {
            Err(ec2_gateway::auth::unknown_access_key())
        }
    }
}

/// A capture split into what the verifiers see.
#[derive(Debug, Clone)]
struct Capture {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn captures() -> Vec<Capture> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/wire");
    let mut files: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "http"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let text = String::from_utf8(std::fs::read(path).unwrap()).unwrap();
            let text = text.replace("\r\n", "\n");
            let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
            let mut lines = head.lines();
            let (method, rest) = lines.next().unwrap().split_once(' ').unwrap();
            let target = rest.trim_end_matches(" HTTP/1.1").to_string();
            let mut headers: Vec<(String, String)> = Vec::new();
            for line in lines {
                if line.starts_with(' ') || line.starts_with('\t') {
                    let last = headers.last_mut().unwrap();
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                } else if let Some((name, value)) = line.split_once(':') {
                    headers.push((name.trim().to_string(), value.trim().to_string()));
                }
            }
            Capture {
                method: method.to_string(),
                target,
                headers,
                body: body.as_bytes().to_vec(),
            }
        })
        .collect()
}

/// When a capture was signed (from X-Amz-Date, the presigned date or the
/// SigV2 Timestamp), so that it verifies unmutated.
fn signed_at(capture: &Capture) -> DateTime<Utc> {
    let all = format!(
        "{}&{}&{}",
        capture.target,
        String::from_utf8_lossy(&capture.body),
        capture
            .headers
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    );
    for part in all.split(['&', '?']) {
        if let Some(date) = part
            .strip_prefix("X-Amz-Date=")
            .or_else(|| part.strip_prefix("x-amz-date="))
            .or_else(|| part.strip_prefix("X-Amz-Date="))
        {
            if let Ok(t) = NaiveDateTime::parse_from_str(date.trim(), "%Y%m%dT%H%M%SZ") {
                return Utc.from_utc_datetime(&t);
            }
        }
        if let Some(stamp) = part.strip_prefix("Timestamp=") {
            let stamp = percent_encoding::percent_decode_str(stamp).decode_utf8_lossy();
            if let Some(t) = ec2_gateway::auth::sigv2::parse_timestamp(&stamp) {
                return t;
            }
        }
    }
    Utc::now()
}

/// One mutation of a capture.
#[derive(Debug, Clone)]
enum Mutation {
    FlipByte {
        in_body: bool,
        at: usize,
        bit: u8,
    },
    InsertByte {
        in_body: bool,
        at: usize,
        byte: u8,
    },
    RemoveBytes {
        in_body: bool,
        at: usize,
        count: usize,
    },
    RepeatParameter {
        index: usize,
    },
    RenameParameter {
        index: usize,
        suffix: String,
    },
    EmptyValue {
        index: usize,
    },
    BodyToQuery,
    AddBodyParameter {
        name: String,
        value: String,
    },
    ChangeMethod(&'static str),
    DropHeader {
        index: usize,
    },
    /// Moves a pair's `=` (`DryRun=true` -> `DryRuntrue=`): the SigV1 attack.
    ShiftEquals {
        index: usize,
        by: i8,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<bool>(), any::<usize>(), 0u8..8).prop_map(|(in_body, at, bit)| Mutation::FlipByte {
            in_body,
            at,
            bit
        }),
        (any::<bool>(), any::<usize>(), any::<u8>())
            .prop_map(|(in_body, at, byte)| { Mutation::InsertByte { in_body, at, byte } }),
        (any::<bool>(), any::<usize>(), 1usize..16)
            .prop_map(|(in_body, at, count)| { Mutation::RemoveBytes { in_body, at, count } }),
        any::<usize>().prop_map(|index| Mutation::RepeatParameter { index }),
        (any::<usize>(), "[a-zA-Z0-9.]{0,6}")
            .prop_map(|(index, suffix)| Mutation::RenameParameter { index, suffix }),
        any::<usize>().prop_map(|index| Mutation::EmptyValue { index }),
        Just(Mutation::BodyToQuery),
        ("[A-Za-z.0-9]{1,20}", "[ -~]{0,20}")
            .prop_map(|(name, value)| Mutation::AddBodyParameter { name, value }),
        prop_oneof![Just("GET"), Just("POST"), Just("PUT")].prop_map(Mutation::ChangeMethod),
        any::<usize>().prop_map(|index| Mutation::DropHeader { index }),
        (any::<usize>(), -3i8..=3).prop_map(|(index, by)| Mutation::ShiftEquals { index, by }),
    ]
}

fn apply(capture: &mut Capture, mutation: &Mutation) {
    let edit_bytes = |capture: &mut Capture, in_body: bool, edit: &dyn Fn(&mut Vec<u8>)| {
        if in_body || !capture.target.contains('?') {
            edit(&mut capture.body);
        } else {
            let mut bytes = capture.target.clone().into_bytes();
            edit(&mut bytes);
            capture.target = String::from_utf8_lossy(&bytes).into_owned();
        }
    };
    let pairs_of = |capture: &Capture| -> (bool, Vec<String>) {
        if capture.body.is_empty() {
            let query = capture.target.split_once('?').map_or("", |(_, q)| q);
            (false, query.split('&').map(str::to_string).collect())
        } else {
            (
                true,
                String::from_utf8_lossy(&capture.body)
                    .split('&')
                    .map(str::to_string)
                    .collect(),
            )
        }
    };
    let set_pairs = |capture: &mut Capture, in_body: bool, pairs: Vec<String>| {
        if in_body {
            capture.body = pairs.join("&").into_bytes();
        } else {
            let path = capture.target.split('?').next().unwrap_or("/").to_string();
            capture.target = format!("{path}?{}", pairs.join("&"));
        }
    };
    match mutation {
        Mutation::FlipByte { in_body, at, bit } => edit_bytes(capture, *in_body, &|b| {
            if !b.is_empty() {
                let i = at % b.len();
                b[i] ^= 1 << bit;
            }
        }),
        Mutation::InsertByte { in_body, at, byte } => edit_bytes(capture, *in_body, &|b| {
            let i = at % (b.len() + 1);
            b.insert(i, *byte);
        }),
        Mutation::RemoveBytes { in_body, at, count } => edit_bytes(capture, *in_body, &|b| {
            if !b.is_empty() {
                let i = at % b.len();
                let end = (i + count).min(b.len());
                b.drain(i..end);
            }
        }),
        Mutation::RepeatParameter { index } => {
            let (in_body, mut pairs) = pairs_of(capture);
            if !pairs.is_empty() {
                let pair = pairs[index % pairs.len()].clone();
                pairs.push(pair);
                set_pairs(capture, in_body, pairs);
            }
        }
        Mutation::RenameParameter { index, suffix } => {
            let (in_body, mut pairs) = pairs_of(capture);
            if !pairs.is_empty() {
                let i = index % pairs.len();
                pairs[i] = match pairs[i].split_once('=') {
                    Some((name, value)) => format!("{name}{suffix}={value}"),
                    None => format!("{}{suffix}", pairs[i]),
                };
                set_pairs(capture, in_body, pairs);
            }
        }
        Mutation::EmptyValue { index } => {
            let (in_body, mut pairs) = pairs_of(capture);
            if !pairs.is_empty() {
                let i = index % pairs.len();
                let name = pairs[i].split('=').next().unwrap_or("").to_string();
                pairs[i] = format!("{name}=");
                set_pairs(capture, in_body, pairs);
            }
        }
        Mutation::BodyToQuery => {
            if !capture.body.is_empty() {
                let body = String::from_utf8_lossy(&capture.body).into_owned();
                capture.target = if capture.target.contains('?') {
                    format!("{}&{body}", capture.target)
                } else {
                    format!("{}?{body}", capture.target)
                };
                capture.body.clear();
            }
        }
        Mutation::AddBodyParameter { name, value } => {
            let extra = ec2_gateway::auth::signer::form_body(&[(name.clone(), value.clone())]);
            if capture.body.is_empty() {
                capture.body = extra.into_bytes();
            } else {
                capture.body.extend(format!("&{extra}").into_bytes());
            }
        }
        Mutation::ChangeMethod(method) => capture.method = method.to_string(),
        Mutation::ShiftEquals { index, by } => {
            let (in_body, mut pairs) = pairs_of(capture);
            if !pairs.is_empty() {
                let i = index % pairs.len();
                let joined: String = pairs[i].replace('=', "");
                let at = pairs[i].find('=').unwrap_or(joined.len()) as i64 + i64::from(*by);
                let at = at.clamp(0, joined.len() as i64) as usize;
                if joined.is_char_boundary(at) {
                    pairs[i] = format!("{}={}", &joined[..at], &joined[at..]);
                    set_pairs(capture, in_body, pairs);
                }
            }
        }
        Mutation::DropHeader { index } => {
            if !capture.headers.is_empty() {
                let i = index % capture.headers.len();
                capture.headers.remove(i);
            }
        }
    }
}

/// What the gateway made of a (mutated) capture.
struct Outcome {
    /// The action's parameters (sorted), when the signature verified.
    verified: Option<Vec<(String, String)>>,
    /// Parameters, signature and action parsing together.
    result: ApiResult<()>,
}

/// Runs a (mutated) capture through parameters, signature and action
/// parsing, as the gateway does before any handler runs.
fn process(capture: &Capture, at: DateTime<Utc>) -> Outcome {
    let mut verified = None;
    let result = (|| {
        let method = Method::from_bytes(capture.method.as_bytes())
            .map_err(|_| ApiError::UnsupportedHttpVerb(capture.method.clone()))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &capture.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(name, value);
            }
        }
        let (path, query) = match capture.target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (capture.target.as_str(), None),
        };
        let (query_pairs, params) = request_params(&method, query, &headers, &capture.body)?;
        // The gateway's defaults: SigV1 refused (with it allowed, ShiftEquals
        // finds its ambiguity at once).
        let settings = AuthSettings::new("us-east-1");
        let verifier = Verifier::new(Arc::new(FixedClock(at)), settings);
        let principal: Principal = verifier.authenticate(
            &AuthRequest {
                method: &capture.method,
                path,
                query_pairs: &query_pairs,
                headers: &headers,
                body: &capture.body,
                params: &params,
            },
            &ExampleKeys,
        )?;
        let mut pairs = params.without_auth().pairs().to_vec();
        pairs.sort();
        verified = Some(pairs);
        let action = params.get("Action").unwrap_or("").to_string();
        Action::parse(&action, &params.without_auth(), &principal)?;
        Ok(())
    })();
    Outcome { verified, result }
}

/// Every refusal renders as a well-formed EC2 error document with a
/// 4xx/5xx status.
fn check_refusal(error: &ApiError) -> Result<(), TestCaseError> {
    let status = ec2_gateway::protocol::xml::http_status(error).as_u16();
    prop_assert!(
        (400..600).contains(&status),
        "{error:?} has status {status}"
    );
    let xml = render_error(error, "00000000-0000-0000-0000-000000000000");
    let text = String::from_utf8(xml).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut reader = quick_xml::Reader::from_str(&text);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(TestCaseError::fail(format!("{e}: {text}"))),
        }
    }
    let code = format!("<Code>{}</Code>", error.code());
    prop_assert!(text.contains(&code), "{}", text);
    Ok(())
}

fn cases(default: u32) -> u32 {
    std::env::var("EC2_GATEWAY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn mutated_captures_never_panic_and_every_refusal_is_ec2_xml() {
    let captures = captures();
    assert!(captures.len() >= 15, "captures are missing");
    // Unmutated, every capture's signature verifies (so that mutations are
    // what fail); two carry a session token and one is SigV1 (AuthFailure),
    // one names a filter the zones do not have (InvalidFilter, after
    // verification).
    for capture in &captures {
        let outcome = process(capture, signed_at(capture)).result;
        assert!(
            outcome.is_ok()
                || ["AuthFailure", "InvalidFilter"].contains(&outcome.as_ref().unwrap_err().code()),
            "{}: {outcome:?}",
            capture.target
        );
    }
    let count = cases(3000);
    let accepted = AtomicU64::new(0);
    let mut runner = TestRunner::new(RunnerConfig {
        cases: count,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    runner
        .run(
            &(
                0..captures.len(),
                proptest::collection::vec(mutation(), 1..4),
            ),
            |(index, mutations)| {
                let mut capture = captures[index].clone();
                for mutation in &mutations {
                    apply(&mut capture, mutation);
                }
                let outcome = process(&capture, signed_at(&captures[index]));
                if let Some(params) = &outcome.verified {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    // A mutation that still verifies must have left every
                    // signed byte's meaning as it was: the same parameters.
                    let original = process(&captures[index], signed_at(&captures[index]));
                    prop_assert_eq!(
                        Some(params),
                        original.verified.as_ref(),
                        "a mutated request verified with other parameters: {:?}",
                        mutations
                    );
                }
                if let Err(error) = &outcome.result {
                    check_refusal(error)?;
                }
                Ok(())
            },
        )
        .unwrap();
    println!(
        "fuzz: {count} mutated captures, {} still verified unchanged in meaning",
        accepted.load(Ordering::Relaxed)
    );
}

#[test]
fn every_error_renders_as_a_well_formed_document() {
    let mut runner = TestRunner::new(RunnerConfig {
        cases: cases(500),
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    runner
        .run(&"\\PC{0,64}", |text| {
            for error in [
                ApiError::InvalidParameterValue(text.clone()),
                ApiError::InvalidAction(text.clone()),
                ApiError::MissingParameter(text.clone()),
                ApiError::InvalidFilter(text.clone()),
                ApiError::AuthFailure(text.clone()),
            ] {
                if ec2_gateway::protocol::params::is_xml_text(&text) {
                    check_refusal(&error)?;
                }
            }
            Ok(())
        })
        .unwrap();
}
