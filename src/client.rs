//! A small signed EC2 query client: the admin CLI and the tests use it.
//!
//! Sends one SigV4-signed form POST per call over its own HTTP/1.1
//! connection, and reads the flat parts of EC2 XML answers (the items of a
//! set, an error's code and message). Not a general XML or HTTP client.

use crate::auth::signer::{form_body, sign_v4_post, SigningCredentials};
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use quick_xml::events::Event;
use quick_xml::Reader;
use std::collections::BTreeMap;

/// Where the gateway listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`, sent as the `Host` header and used to connect.
    pub authority: String,
    /// The request path (`/` by default).
    pub path: String,
}

impl Endpoint {
    /// Parses `http://host:port[/path]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("endpoint '{url}' must start with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("endpoint '{url}' has no host"));
        }
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            path: path.to_string(),
        })
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

/// Sends one request and reads the whole answer.
pub async fn send(
    endpoint: &Endpoint,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> std::io::Result<Reply> {
    let stream = tokio::net::TcpStream::connect(&endpoint.authority).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    let mut request = Request::builder().method(method).uri(path_and_query);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request = request.header("Host", &endpoint.authority);
    }
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(std::io::Error::other)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(std::io::Error::other)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Calls `action` with `params`, signed with SigV4 as botocore signs.
pub async fn call(
    endpoint: &Endpoint,
    credentials: &SigningCredentials,
    action: &str,
    params: &[(&str, &str)],
) -> std::io::Result<Reply> {
    let mut all = vec![
        ("Action".to_string(), action.to_string()),
        ("Version".to_string(), "2016-11-15".to_string()),
    ];
    all.extend(params.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let body = form_body(&all);
    let mut headers = sign_v4_post(
        credentials,
        &endpoint.authority,
        &endpoint.path,
        &body,
        Utc::now(),
    );
    headers.push(("Host", endpoint.authority.clone()));
    send(
        endpoint,
        "POST",
        &endpoint.path,
        &headers,
        body.into_bytes(),
    )
    .await
}

/// The `<item>` children of the first element named `set`, each as a map of
/// its direct text children.
pub fn items(xml: &str, set: &str) -> Vec<BTreeMap<String, String>> {
    let mut reader = Reader::from_str(xml);
    let mut items = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut set_depth = None;
    let mut current: Option<BTreeMap<String, String>> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                if set_depth.is_none() && name == set {
                    set_depth = Some(path.len() + 1);
                } else if Some(path.len()) == set_depth && name == "item" {
                    current = Some(BTreeMap::new());
                }
                path.push(name);
            }
            Ok(Event::Text(text)) => {
                if let (Some(item), Some(depth)) = (current.as_mut(), set_depth) {
                    if path.len() == depth + 2 {
                        let value = text.unescape().map(|t| t.into_owned()).unwrap_or_default();
                        item.insert(path[path.len() - 1].clone(), value);
                    }
                }
            }
            Ok(Event::End(_)) => {
                path.pop();
                if Some(path.len()) == set_depth && current.is_some() {
                    items.extend(current.take());
                } else if set_depth.is_some_and(|depth| path.len() < depth) {
                    break;
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    items
}

/// The text of the first element named `name`.
pub fn text_of(xml: &str, name: &str) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    let mut inside = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => inside = start.name().as_ref() == name.as_bytes(),
            Ok(Event::Text(text)) if inside => return text.unescape().ok().map(|t| t.into_owned()),
            Ok(Event::End(_)) if inside => return Some(String::new()),
            Ok(Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8773").unwrap(),
            Endpoint {
                authority: "127.0.0.1:8773".into(),
                path: "/".into()
            }
        );
        assert_eq!(
            Endpoint::parse("http://localhost/services/Cloud")
                .unwrap()
                .path,
            "/services/Cloud"
        );
        assert!(Endpoint::parse("https://x").is_err());
    }

    #[test]
    fn items_and_text() {
        let xml = "<R><requestId>1</requestId><hostSet><item><hostName>a</hostName><n><x>deep</x></n></item><item><hostName>b&amp;c</hostName></item></hostSet></R>";
        let items = items(xml, "hostSet");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["hostName"], "a");
        assert!(!items[0].contains_key("x"));
        assert_eq!(items[1]["hostName"], "b&c");
        assert_eq!(text_of(xml, "requestId").as_deref(), Some("1"));
    }
}
