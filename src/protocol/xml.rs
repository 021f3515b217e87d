//! EC2's XML: one writer for success envelopes, one renderer for errors.
//!
//! A success is `<{Action}Response xmlns="http://ec2.amazonaws.com/doc/{Version}/">`
//! with `<requestId>` first and the output members directly under the root.
//! Lists are a wrapper holding literal `<item>` elements (boto 2, euca2ools
//! and Perl clients need the name even though botocore does not), an empty
//! list is `<xxxSet/>`, absent optional values are left out (an empty
//! timestamp crashes botocore), booleans are `true`/`false`, and timestamps
//! use one format: `2016-11-15T12:34:56.000Z`. Errors are
//! `<Response><Errors><Error>...</Errors><RequestID>` (note the spelling).

use crate::clock::format_timestamp;
use crate::error::ApiError;
use chrono::{DateTime, Utc};
use hyper::StatusCode;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

/// The API version answered when a request names none.
pub const DEFAULT_VERSION: &str = "2016-11-15";

/// Writes the elements of one response.
pub struct XmlWriter {
    writer: Writer<Vec<u8>>,
}

/// An action's output: writes its members under the response root.
pub trait XmlOutput: Send {
    fn write_xml(&self, xml: &mut XmlWriter);

    /// About how many bytes the XML will take, so large answers are written
    /// into one buffer instead of growing (and copying) it many times.
    fn size_hint(&self) -> usize {
        2048
    }
}

/// Actions without an output shape answer `<return>true</return>`.
pub struct ReturnTrue;

impl XmlOutput for ReturnTrue {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.boolean("return", true);
    }
}

impl XmlWriter {
    fn new(indent: bool, capacity: usize) -> Self {
        let writer = if indent {
            Writer::new_with_indent(Vec::with_capacity(capacity), b' ', 4)
        } else {
            Writer::new(Vec::with_capacity(capacity))
        };
        Self { writer }
    }

    fn event(&mut self, event: Event<'_>) {
        self.writer
            .write_event(event)
            .expect("writing XML to memory cannot fail");
    }

    /// `<name>` ... `</name>` around whatever `body` writes.
    pub fn nested(&mut self, name: &str, body: impl FnOnce(&mut XmlWriter)) {
        self.event(Event::Start(BytesStart::new(name)));
        body(self);
        self.event(Event::End(BytesEnd::new(name)));
    }

    /// `<name>text</name>`, escaped.
    pub fn element(&mut self, name: &str, text: &str) {
        self.event(Event::Start(BytesStart::new(name)));
        self.event(Event::Text(BytesText::new(text)));
        self.event(Event::End(BytesEnd::new(name)));
    }

    /// `<name>text</name>` when present; nothing when absent.
    pub fn optional(&mut self, name: &str, text: Option<&str>) {
        if let Some(text) = text {
            self.element(name, text);
        }
    }

    pub fn boolean(&mut self, name: &str, value: bool) {
        self.element(name, if value { "true" } else { "false" });
    }

    pub fn number(&mut self, name: &str, value: impl std::fmt::Display) {
        self.element(name, &value.to_string());
    }

    pub fn timestamp(&mut self, name: &str, time: DateTime<Utc>) {
        self.element(name, &format_timestamp(time));
    }

    /// `<name/>` for an empty list, else one `<item>` per element.
    pub fn list<T>(&mut self, name: &str, items: &[T], mut item: impl FnMut(&mut XmlWriter, &T)) {
        if items.is_empty() {
            self.event(Event::Empty(BytesStart::new(name)));
            return;
        }
        self.nested(name, |xml| {
            for element in items {
                xml.nested("item", |xml| item(xml, element));
            }
        });
    }

    /// A list of plain values: `<name><item>value</item>...</name>`.
    pub fn text_list(&mut self, name: &str, items: &[impl AsRef<str>]) {
        if items.is_empty() {
            self.event(Event::Empty(BytesStart::new(name)));
            return;
        }
        self.nested(name, |xml| {
            for item in items {
                xml.element("item", item.as_ref());
            }
        });
    }

    fn finish(self) -> Vec<u8> {
        let mut bytes = self.writer.into_inner();
        bytes.push(b'\n');
        bytes
    }
}

/// True for versions shaped like an EC2 API date (`2016-11-15`); anything else
/// is refused so the namespace stays a well-formed URL.
pub fn is_api_version(version: &str) -> bool {
    let bytes = version.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// Renders a success: root, namespace echoing `version`, `requestId` first.
pub fn render_response(
    action: &str,
    version: &str,
    request_id: &str,
    output: &dyn XmlOutput,
) -> Vec<u8> {
    let mut xml = XmlWriter::new(true, output.size_hint());
    xml.event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let root = format!("{action}Response");
    let namespace = format!("http://ec2.amazonaws.com/doc/{version}/");
    xml.event(Event::Start(
        BytesStart::new(root.as_str()).with_attributes([("xmlns", namespace.as_str())]),
    ));
    xml.element("requestId", request_id);
    output.write_xml(&mut xml);
    xml.event(Event::End(BytesEnd::new(root.as_str())));
    xml.finish()
}

/// The HTTP status EC2 sends with `error` (the status belongs to the wire,
/// not to the error: the compute core's errors know nothing of HTTP).
pub fn http_status(error: &ApiError) -> StatusCode {
    match error {
        ApiError::AuthFailure(_) => StatusCode::UNAUTHORIZED,
        ApiError::SignatureDoesNotMatch
        | ApiError::MissingAuthenticationToken
        | ApiError::UnauthorizedOperation => StatusCode::FORBIDDEN,
        ApiError::DryRunOperation => StatusCode::PRECONDITION_FAILED,
        ApiError::RequestEntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::RequestHeaderSectionTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ApiError::UnsupportedHttpVerb(_) => StatusCode::METHOD_NOT_ALLOWED,
        ApiError::RequestLimitExceeded | ApiError::ServiceUnavailable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ApiError::InternalError
        | ApiError::InsufficientInstanceCapacity(_)
        | ApiError::InsufficientCapacity { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Renders an error document.
pub fn render_error(error: &ApiError, request_id: &str) -> Vec<u8> {
    let mut xml = XmlWriter::new(false, 512);
    xml.event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    xml.writer.get_mut().push(b'\n');
    xml.nested("Response", |xml| {
        xml.nested("Errors", |xml| {
            xml.nested("Error", |xml| {
                xml.element("Code", error.code());
                xml.element("Message", &error.message());
            })
        });
        xml.element("RequestID", request_id);
    });
    xml.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sample;

    impl XmlOutput for Sample {
        fn write_xml(&self, xml: &mut XmlWriter) {
            xml.list("itemSet", &["a<b", "c"], |xml, v| xml.element("name", v));
            xml.list("emptySet", &[] as &[&str], |_, _| {});
            xml.optional("absent", None);
            xml.boolean("flag", false);
        }
    }

    #[test]
    fn envelope_bytes() {
        let body = render_response("DescribeThings", "2014-10-01", "req-1", &Sample);
        let expected = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeThingsResponse xmlns="http://ec2.amazonaws.com/doc/2014-10-01/">
    <requestId>req-1</requestId>
    <itemSet>
        <item>
            <name>a&lt;b</name>
        </item>
        <item>
            <name>c</name>
        </item>
    </itemSet>
    <emptySet/>
    <flag>false</flag>
</DescribeThingsResponse>
"#;
        assert_eq!(String::from_utf8(body).unwrap(), expected);
    }

    #[test]
    fn error_bytes() {
        let body = render_error(&ApiError::InvalidAction("Frobnicate<".into()), "req-2");
        let expected = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidAction</Code><Message>The action Frobnicate&lt; is not valid for this web service.</Message></Error></Errors><RequestID>req-2</RequestID></Response>\n";
        assert_eq!(String::from_utf8(body).unwrap(), expected);
    }

    #[test]
    fn versions() {
        assert!(is_api_version("2016-11-15"));
        assert!(!is_api_version("2016-11-1\""));
        assert!(!is_api_version("latest"));
    }
}
