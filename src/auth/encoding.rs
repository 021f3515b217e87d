//! RFC 3986 percent-encoding as AWS signatures need it.
//!
//! Both SigV4 and SigV2 re-encode every decoded parameter: unreserved
//! characters (`A-Z a-z 0-9 - _ . ~`) stay literal, every other byte becomes
//! `%XX` with upper-case hex (so a space is `%20`, never `+`, and `*` is `%2A`).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but the unreserved characters.
const UNRESERVED_ONLY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Like [`UNRESERVED_ONLY`] but keeping `/` (SigV4 canonical URIs).
const PATH: &AsciiSet = &UNRESERVED_ONLY.remove(b'/');

/// Encodes a parameter name or value.
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED_ONLY).to_string()
}

/// Encodes a path, keeping its slashes.
pub fn encode_path(text: &str) -> String {
    utf8_percent_encode(text, PATH).to_string()
}

/// `name=value` pairs encoded, sorted by name then value (byte order), joined by `&`.
pub fn canonical_query<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .map(|(n, v)| (encode_component(n), encode_component(v)))
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (name, value)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3986() {
        assert_eq!(encode_component("a b*c~d/e+f=g"), "a%20b%2Ac~d%2Fe%2Bf%3Dg");
        assert_eq!(encode_component("é"), "%C3%A9");
        assert_eq!(encode_path("/services/Cloud x/"), "/services/Cloud%20x/");
    }

    #[test]
    fn sorted_by_encoded_name_then_value() {
        let pairs = [("b", "2"), ("a", "z"), ("a", "y"), ("AWSAccessKeyId", "k")];
        assert_eq!(
            canonical_query(pairs.iter().map(|(n, v)| (*n, *v))),
            "AWSAccessKeyId=k&a=y&a=z&b=2"
        );
    }
}
