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

use crate::clock::write_timestamp;
use crate::error::ApiError;
use chrono::{DateTime, Utc};
use hyper::StatusCode;
use quick_xml::escape::escape;

/// The API version answered when a request names none.
pub const DEFAULT_VERSION: &str = "2016-11-15";

/// Writes the elements of one response, straight into its buffer.
///
/// The layout is quick-xml's indenting writer's, byte for byte (what the
/// gateway answered with before, and what `tests/exact_bytes.rs` pins): a
/// tag starts a new line indented four spaces a level, except right after
/// text, so `<name>text</name>` stays on one line. Text and attribute
/// values go through quick-xml's `escape` (`<`, `>`, `&`, `'`, `"`).
/// Writing tags directly rather than through quick-xml's event writer
/// took a describe-zones answer's rendering from about a tenth of the
/// gateway's CPU to a fraction of it (perf, see README "Performance").
pub struct XmlWriter {
    out: Vec<u8>,
    indent: bool,
    depth: usize,
    /// False right after text (and before anything is written).
    line_break: bool,
}

/// An action's output: writes its members under the response root.
pub trait XmlOutput: Send {
    fn write_xml(&self, xml: &mut XmlWriter);

    /// The answer as a stream rendered while the client reads it (see
    /// `protocol::stream`), taken once; `None` (the default) renders it
    /// whole with [`XmlOutput::write_xml`].
    fn take_stream(&mut self) -> Option<super::stream::XmlStream> {
        None
    }

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

/// Enough spaces for any depth the answers reach (deeper levels repeat).
const SPACES: &[u8; 128] = &[b' '; 128];

impl XmlWriter {
    pub(crate) fn new(indent: bool, capacity: usize) -> Self {
        Self {
            out: Vec::with_capacity(capacity),
            indent,
            depth: 0,
            line_break: false,
        }
    }

    /// A new line at the current depth, unless text came just before.
    fn line(&mut self) {
        if self.indent && self.line_break {
            self.out.push(b'\n');
            let mut width = self.depth * 4;
            while width > 0 {
                let chunk = width.min(SPACES.len());
                self.out.extend_from_slice(&SPACES[..chunk]);
                width -= chunk;
            }
        }
    }

    fn start(&mut self, name: &str) {
        self.line();
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
        self.depth += 1;
        self.line_break = true;
    }

    fn end(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.line();
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
        self.line_break = true;
    }

    fn empty(&mut self, name: &str) {
        self.line();
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"/>");
        self.line_break = true;
    }

    fn text(&mut self, text: &str) {
        self.out.extend_from_slice(escape(text).as_bytes());
        self.line_break = false;
    }

    /// `<?xml version="1.0" encoding="UTF-8"?>`
    fn declaration(&mut self) {
        self.line();
        self.out
            .extend_from_slice(br#"<?xml version="1.0" encoding="UTF-8"?>"#);
        self.line_break = true;
    }

    /// `<name>` ... `</name>` around whatever `body` writes.
    pub fn nested(&mut self, name: &str, body: impl FnOnce(&mut XmlWriter)) {
        self.start(name);
        body(self);
        self.end(name);
    }

    /// `<name>text</name>`, escaped.
    pub fn element(&mut self, name: &str, text: &str) {
        self.start(name);
        self.text(text);
        self.end(name);
    }

    /// `<name>` `bytes` in base64 `</name>`, encoded straight into the
    /// answer (base64 needs no escaping).
    pub fn base64(&mut self, name: &str, bytes: &[u8]) {
        use base64::Engine;
        self.start(name);
        let start = self.out.len();
        self.out.resize(start + bytes.len().div_ceil(3) * 4, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(bytes, &mut self.out[start..])
            .expect("the room is what base64 needs");
        self.out.truncate(start + written);
        self.line_break = false;
        self.end(name);
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

    /// `<name>value</name>` for an integer (digits need no escaping).
    pub fn number(&mut self, name: &str, value: impl itoa::Integer) {
        self.start(name);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self.line_break = false;
        self.end(name);
    }

    /// `<name>2016-11-15T12:34:56.000Z</name>`.
    pub fn timestamp(&mut self, name: &str, time: DateTime<Utc>) {
        self.start(name);
        write_timestamp(&mut self.out, time);
        self.line_break = false;
        self.end(name);
    }

    /// `<name/>` for an empty list, else one `<item>` per element.
    pub fn list<T>(&mut self, name: &str, items: &[T], mut item: impl FnMut(&mut XmlWriter, &T)) {
        if items.is_empty() {
            self.empty(name);
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
            self.empty(name);
            return;
        }
        self.nested(name, |xml| {
            for item in items {
                xml.element("item", item.as_ref());
            }
        });
    }

    fn finish(mut self) -> Vec<u8> {
        self.end_document();
        self.out
    }

    /// The newline that ends every answer.
    pub(crate) fn end_document(&mut self) {
        self.out.push(b'\n');
    }

    /// Bytes written and not yet taken.
    pub(crate) fn len(&self) -> usize {
        self.out.len()
    }

    /// Takes the bytes written so far (a streamed answer's chunk), leaving
    /// the writer at the same depth with an empty buffer of `capacity`.
    pub(crate) fn take_bytes(&mut self, capacity: usize) -> Vec<u8> {
        std::mem::replace(&mut self.out, Vec::with_capacity(capacity))
    }

    /// What a fragment written at this point depends on besides its
    /// content (the indentation and the depth), as one number: a fragment
    /// kept for reuse ([`XmlWriter::fragment`]) fits where this matches.
    pub fn layout(&self) -> u32 {
        (u32::from(self.indent) << 16) | self.depth.min(0xffff) as u32
    }

    /// Writes with `body` into a buffer of its own, laid out as it would
    /// be here, and returns the bytes (to keep and reuse with
    /// [`XmlWriter::raw_fragment`] where the layout is the same). For
    /// elements that follow a tag (a list's items), as `body`'s must.
    pub fn fragment(&self, capacity: usize, body: impl FnOnce(&mut XmlWriter)) -> Vec<u8> {
        let mut part = XmlWriter {
            out: Vec::with_capacity(capacity),
            indent: self.indent,
            depth: self.depth,
            line_break: true,
        };
        body(&mut part);
        debug_assert_eq!(part.depth, self.depth, "a fragment closes what it opens");
        part.out
    }

    /// Appends bytes written by [`XmlWriter::fragment`] at the same layout,
    /// after a tag.
    pub fn raw_fragment(&mut self, bytes: &[u8]) {
        debug_assert!(self.line_break || !self.indent, "a fragment follows a tag");
        self.out.extend_from_slice(bytes);
        self.line_break = true;
    }

    /// `<name>`, for content written piece by piece (a streamed list);
    /// [`XmlWriter::close`] ends it.
    pub fn open(&mut self, name: &str) {
        self.start(name);
    }

    /// `</name>` after [`XmlWriter::open`].
    pub fn close(&mut self, name: &str) {
        self.end(name);
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
    open_response(&mut xml, action, version, request_id);
    output.write_xml(&mut xml);
    close_response(&mut xml, action);
    xml.finish()
}

/// The declaration, the root element (namespace echoing `version`) and the
/// `requestId`: what precedes every answer's content.
pub(crate) fn open_response(xml: &mut XmlWriter, action: &str, version: &str, request_id: &str) {
    xml.declaration();
    // `<{action}Response xmlns="http://ec2.amazonaws.com/doc/{version}/">`
    xml.line();
    xml.out.push(b'<');
    xml.out.extend_from_slice(action.as_bytes());
    xml.out
        .extend_from_slice(b"Response xmlns=\"http://ec2.amazonaws.com/doc/");
    xml.out.extend_from_slice(escape(version).as_bytes());
    xml.out.extend_from_slice(b"/\">");
    xml.depth += 1;
    xml.line_break = true;
    xml.element("requestId", request_id);
}

/// The root element's closing tag.
pub(crate) fn close_response(xml: &mut XmlWriter, action: &str) {
    xml.depth -= 1;
    xml.line();
    xml.out.extend_from_slice(b"</");
    xml.out.extend_from_slice(action.as_bytes());
    xml.out.extend_from_slice(b"Response>");
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
    xml.declaration();
    xml.out.push(b'\n');
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

    /// The same document through quick-xml's indenting event writer (what
    /// the gateway used before) and through [`XmlWriter`]: byte for byte
    /// equal, for nesting, empty lists, an empty body, empty text and every
    /// character that is escaped.
    #[test]
    fn the_same_bytes_as_quick_xmls_indenting_writer() {
        use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
        let texts = ["plain", "", "<&>'\"", "naïve ☃", "a]]>b"];
        let mut reference = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 4);
        let mut ours = XmlWriter::new(true, 0);
        reference
            .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
            .unwrap();
        ours.declaration();
        for (depth, text) in texts.iter().enumerate() {
            for level in 0..=depth {
                let name = format!("level{level}");
                reference
                    .write_event(Event::Start(BytesStart::new(name.as_str())))
                    .unwrap();
                ours.start(&name);
            }
            reference
                .write_event(Event::Start(BytesStart::new("value")))
                .unwrap();
            reference
                .write_event(Event::Text(BytesText::new(text)))
                .unwrap();
            reference
                .write_event(Event::End(BytesEnd::new("value")))
                .unwrap();
            ours.element("value", text);
            reference
                .write_event(Event::Empty(BytesStart::new("emptySet")))
                .unwrap();
            ours.empty("emptySet");
            reference
                .write_event(Event::Start(BytesStart::new("hollow")))
                .unwrap();
            reference
                .write_event(Event::End(BytesEnd::new("hollow")))
                .unwrap();
            ours.nested("hollow", |_| {});
            for level in (0..=depth).rev() {
                let name = format!("level{level}");
                reference
                    .write_event(Event::End(BytesEnd::new(name.as_str())))
                    .unwrap();
                ours.end(&name);
            }
        }
        assert_eq!(
            String::from_utf8(reference.into_inner()).unwrap(),
            String::from_utf8(ours.out).unwrap()
        );
    }

    #[test]
    fn base64_is_written_as_element_would_write_it() {
        use base64::Engine;
        for bytes in [&b""[..], b"a", b"ab", b"abc", b"\x00\xff<&>"] {
            let mut direct = XmlWriter::new(true, 0);
            direct.nested("outer", |xml| xml.base64("backup", bytes));
            let mut through_text = XmlWriter::new(true, 0);
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            through_text.nested("outer", |xml| xml.element("backup", &encoded));
            assert_eq!(direct.out, through_text.out);
        }
    }

    #[test]
    fn versions() {
        assert!(is_api_version("2016-11-15"));
        assert!(!is_api_version("2016-11-1\""));
        assert!(!is_api_version("latest"));
    }
}
