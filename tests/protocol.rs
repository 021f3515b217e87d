//! The query protocol and authentication, end to end through the in-process
//! server: every failure is EC2 error XML with the right code and status.

mod common;

use common::*;
use ec2_gateway::auth::signer::{form_body, sign_v2, sign_v4_post};
use ec2_gateway::auth::sigv2::SignatureMethod;
use ec2_gateway::client::send;
use ec2_gateway::config::StorageBackend;

async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    (server, dir)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn missing_and_unknown_actions() {
    let (server, _dir) = server().await;
    let reply = server.admin("", &[]).await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "MissingAction")
    );
    let reply = server.admin("Frobnicate", &[]).await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "InvalidAction")
    );
    assert!(reply
        .body
        .contains("The action Frobnicate is not valid for this web service."));
    server.stop().await;
}

#[tokio::test]
async fn bad_signature_and_unknown_key() {
    let (server, _dir) = server().await;
    let wrong_secret = credentials(ADMIN_KEY, "not-the-secret-at-all-000000000000000000");
    let reply = server.call(&wrong_secret, "DescribeRegions", &[]).await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (403, "SignatureDoesNotMatch")
    );
    let unknown = credentials("AKIDNOBODYKNOWS00000", ADMIN_SECRET);
    let reply = server.call(&unknown, "DescribeRegions", &[]).await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (401, "AuthFailure")
    );
    server.stop().await;
}

#[tokio::test]
async fn no_credentials_and_malformed_authorization() {
    let (server, _dir) = server().await;
    let body = b"Action=DescribeRegions&Version=2016-11-15".to_vec();
    let form = (
        "Content-Type",
        "application/x-www-form-urlencoded".to_string(),
    );
    let reply = send(
        &server.endpoint,
        "POST",
        "/",
        std::slice::from_ref(&form),
        body.clone(),
    )
    .await
    .unwrap();
    check_reply("DescribeRegions", &reply);
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (403, "MissingAuthenticationToken")
    );
    let broken = (
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2026/x, Signature=00".to_string(),
    );
    let reply = send(
        &server.endpoint,
        "POST",
        "/",
        &[form.clone(), broken],
        body.clone(),
    )
    .await
    .unwrap();
    check_reply("DescribeRegions", &reply);
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "IncompleteSignature")
    );
    let other_scheme = ("Authorization", "Basic dXNlcjpwYXNz".to_string());
    let reply = send(&server.endpoint, "POST", "/", &[form, other_scheme], body)
        .await
        .unwrap();
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "IncompleteSignature")
    );
    server.stop().await;
}

#[tokio::test]
async fn expired_request_is_refused() {
    let (server, _dir) = server().await;
    let body = form_body(&pairs(&[
        ("Action", "DescribeRegions"),
        ("Version", "2016-11-15"),
    ]));
    let signed_at = chrono::Utc::now() - chrono::Duration::minutes(20);
    let mut headers = sign_v4_post(&admin(), &server.endpoint.authority, "/", &body, signed_at);
    headers.push(("Host", server.endpoint.authority.clone()));
    let reply = send(&server.endpoint, "POST", "/", &headers, body.into_bytes())
        .await
        .unwrap();
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "RequestExpired")
    );
    server.stop().await;
}

#[tokio::test]
async fn session_tokens_are_refused() {
    let (server, _dir) = server().await;
    let body = form_body(&pairs(&[
        ("Action", "DescribeRegions"),
        ("Version", "2016-11-15"),
    ]));
    // Sign with the token as an unsigned header: the signature verifies, the token does not.
    let mut headers = sign_v4_post(
        &admin(),
        &server.endpoint.authority,
        "/",
        &body,
        chrono::Utc::now(),
    );
    headers.push(("Host", server.endpoint.authority.clone()));
    headers.push((
        "X-Amz-Security-Token",
        "FwoGZXIvYXdzEXAMPLETOKEN".to_string(),
    ));
    let reply = send(&server.endpoint, "POST", "/", &headers, body.into_bytes())
        .await
        .unwrap();
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (401, "AuthFailure")
    );
    assert!(reply.body.contains("security token"));
    server.stop().await;
}

#[tokio::test]
async fn sigv2_get_and_post_with_both_hmacs_and_any_path() {
    let (server, _dir) = server().await;
    for method in [SignatureMethod::HmacSha256, SignatureMethod::HmacSha1] {
        // POST form body on euca2ools' path.
        let mut params = pairs(&[
            ("Action", "DescribeAvailabilityZones"),
            ("Version", "2009-11-30"),
        ]);
        sign_v2(
            &user(),
            "POST",
            &server.endpoint.authority,
            "/services/Eucalyptus",
            &mut params,
            method,
            chrono::Utc::now(),
        );
        let headers = [(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=UTF-8".to_string(),
        )];
        let reply = send(
            &server.endpoint,
            "POST",
            "/services/Eucalyptus",
            &headers,
            form_body(&params).into_bytes(),
        )
        .await
        .unwrap();
        check_reply("DescribeAvailabilityZones", &reply);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply
            .body
            .contains("xmlns=\"http://ec2.amazonaws.com/doc/2009-11-30/\""));
        // GET query string with a space in a value.
        let mut params = pairs(&[
            ("Action", "DescribeRegions"),
            ("Version", "2014-10-01"),
            ("Filter.1.Name", "region-name"),
            ("Filter.1.Value.1", "us-east-1 x"),
        ]);
        sign_v2(
            &user(),
            "GET",
            &server.endpoint.authority,
            "/",
            &mut params,
            method,
            chrono::Utc::now(),
        );
        let target = format!("/?{}", form_body(&params));
        let reply = send(&server.endpoint, "GET", &target, &[], vec![])
            .await
            .unwrap();
        check_reply("DescribeRegions", &reply);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            column(&reply, "regionInfo", "regionName"),
            Vec::<String>::new()
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn query_and_form_parameters_are_combined() {
    let (server, _dir) = server().await;
    // Action in the query string, the rest in the form body, SigV2 over both.
    let mut all = pairs(&[
        ("Action", "DescribeAvailabilityZones"),
        ("Version", "2016-11-15"),
        ("ZoneName.1", "us-east-1b"),
    ]);
    sign_v2(
        &user(),
        "POST",
        &server.endpoint.authority,
        "/",
        &mut all,
        SignatureMethod::HmacSha256,
        chrono::Utc::now(),
    );
    let (query, body): (Vec<_>, Vec<_>) = all.into_iter().partition(|(n, _)| n == "Action");
    let headers = [(
        "Content-Type",
        "application/x-www-form-urlencoded".to_string(),
    )];
    let reply = send(
        &server.endpoint,
        "POST",
        &format!("/?{}", form_body(&query)),
        &headers,
        form_body(&body).into_bytes(),
    )
    .await
    .unwrap();
    check_reply("DescribeAvailabilityZones", &reply);
    assert_eq!(
        column(&reply, "availabilityZoneInfo", "zoneName"),
        ["us-east-1b"]
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_query_is_ec2_xml() {
    let (server, _dir) = server().await;
    let reply = send(
        &server.endpoint,
        "GET",
        "/?Action=Describe%ZZ&Version=2016-11-15",
        &[],
        vec![],
    )
    .await
    .unwrap();
    check_reply("DescribeRegions", &reply);
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "MalformedQueryString")
    );
    let reply = send(&server.endpoint, "PUT", "/", &[], vec![])
        .await
        .unwrap();
    check_reply("DescribeRegions", &reply);
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (405, "UnsupportedHttpVerb")
    );
    let reply = server
        .user("DescribeAvailabilityZones", &[("ZoneName.x", "a")])
        .await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "InvalidParameterValue")
    );
    let reply = server
        .user("DescribeAvailabilityZones", &[("DryRun", "perhaps")])
        .await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "InvalidParameterValue")
    );
    server.stop().await;
}

#[tokio::test]
async fn oversized_body_is_refused_without_reading_it() {
    let (server, _dir) = server().await;
    // Announce 2 MiB but send only the head: the answer must come anyway.
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 2097152\r\n\r\n",
        server.endpoint.authority
    );
    let answer = raw_exchange(&server.endpoint, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("<Code>RequestEntityTooLarge</Code>"),
        "{answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    // A chunked body (no Content-Length) that grows past the limit is cut off too.
    let mut chunked = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        server.endpoint.authority,
        1024 * 1024 + 1
    )
    .into_bytes();
    chunked.extend(std::iter::repeat_n(b'a', 1024 * 1024 + 1));
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let answer = raw_exchange(&server.endpoint, &chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("<Code>RequestEntityTooLarge</Code>"),
        "{answer}"
    );
    // Just under the limit is read (and then fails on its missing signature).
    let reply = send(
        &server.endpoint,
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded".into())],
        vec![b'a'; 1024 * 1024],
    )
    .await
    .unwrap();
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (403, "MissingAuthenticationToken")
    );
    server.stop().await;
}

#[tokio::test]
async fn dry_run_answers_412_after_the_checks() {
    let (server, _dir) = server().await;
    let reply = server
        .user("DescribeAvailabilityZones", &[("DryRun", "true")])
        .await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (412, "DryRunOperation")
    );
    let reply = server
        .user(
            "DescribeAvailabilityZones",
            &[("DryRun", "true"), ("ZoneName.1", "nowhere-1z")],
        )
        .await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "InvalidParameterValue")
    );
    let reply = server.user("DescribeRegions", &[("DryRun", "true")]).await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (412, "DryRunOperation")
    );
    server.stop().await;
}

#[tokio::test]
async fn version_is_echoed_and_checked() {
    let (server, _dir) = server().await;
    let mut params = pairs(&[("Action", "DescribeRegions"), ("Version", "2013-02-01")]);
    sign_v2(
        &user(),
        "GET",
        &server.endpoint.authority,
        "/",
        &mut params,
        SignatureMethod::HmacSha256,
        chrono::Utc::now(),
    );
    let reply = send(
        &server.endpoint,
        "GET",
        &format!("/?{}", form_body(&params)),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert!(reply
        .body
        .contains("<DescribeRegionsResponse xmlns=\"http://ec2.amazonaws.com/doc/2013-02-01/\">"));
    let mut params = pairs(&[("Action", "DescribeRegions"), ("Version", "\"><x/>")]);
    sign_v2(
        &user(),
        "GET",
        &server.endpoint.authority,
        "/",
        &mut params,
        SignatureMethod::HmacSha256,
        chrono::Utc::now(),
    );
    let reply = send(
        &server.endpoint,
        "GET",
        &format!("/?{}", form_body(&params)),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "InvalidParameterValue")
    );
    server.stop().await;
}

#[tokio::test]
async fn request_id_is_in_header_and_body() {
    let (server, _dir) = server().await;
    let reply = server.user("DescribeRegions", &[]).await;
    let header = reply
        .headers
        .get("x-amzn-requestid")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ec2_gateway::client::text_of(&reply.body, "requestId").unwrap(),
        header
    );
    assert!(uuid::Uuid::parse_str(&header).is_ok());
    let reply = server.user("Nope", &[]).await;
    let header = reply
        .headers
        .get("x-amzn-requestid")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ec2_gateway::client::text_of(&reply.body, "RequestID").unwrap(),
        header
    );
    server.stop().await;
}

#[tokio::test]
async fn oversized_headers_are_refused_as_ec2_xml() {
    let (server, _dir) = server().await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let answer = raw_exchange(&server.endpoint, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(
        answer.contains("<Code>RequestHeaderSectionTooLarge</Code>"),
        "{answer}"
    );
    let many: String = (0..150).map(|i| format!("X-H{i}: 1\r\n")).collect();
    let answer = raw_exchange(
        &server.endpoint,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(
        answer.contains("<Code>RequestHeaderSectionTooLarge</Code>"),
        "{answer}"
    );
    server.stop().await;
}
