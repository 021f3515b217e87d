//! Query-string and form-body parameters, and typed access to them.
//!
//! EC2 clients send parameters in the query string (boto 2's GET, presigned
//! URLs), in an `application/x-www-form-urlencoded` body (every modern
//! client), or both; the action sees their union. Lists are flattened with
//! 1-based indexes (`ZoneName.1`, `Filter.2.Value.10`) and must be read in
//! numeric order, so `.10` comes after `.9`.

use super::filters::Filter;
use crate::error::{ApiError, ApiResult};
use std::collections::BTreeMap;

/// Decodes `application/x-www-form-urlencoded` text into pairs, in order.
/// `+` is a space (form encoding); a bad `%XX` escape or bytes that are not
/// UTF-8 are `MalformedQueryString`.
pub fn decode_form(input: &[u8]) -> ApiResult<Vec<(String, String)>> {
    input
        .split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = match part.iter().position(|&b| b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &b""[..]),
            };
            Ok((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> ApiResult<String> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = input
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::MalformedQueryString(
                            "The query string contains an invalid percent-encoding".into(),
                        )
                    })?;
                out.push(hex);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::MalformedQueryString("The query string is not valid UTF-8".into()))
}

/// The parameters of one request, in the order they arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// The names the action's parser asked for: what it does not ask for
    /// is unknown to it ([`Params::unread`]), so each action declares its
    /// parameters once, in the code that reads them.
    read: ReadNames,
}

/// Names read from a [`Params`] (bookkeeping: not part of its value).
#[derive(Debug, Default)]
struct ReadNames(std::sync::Mutex<std::collections::HashSet<String>>);

impl ReadNames {
    fn note(&self, name: &str) {
        let mut read = crate::sync::lock(&self.0);
        if !read.contains(name) {
            read.insert(name.to_string());
        }
    }

    fn contains(&self, name: &str) -> bool {
        crate::sync::lock(&self.0).contains(name)
    }
}

impl Clone for ReadNames {
    fn clone(&self) -> Self {
        Self(std::sync::Mutex::new(crate::sync::lock(&self.0).clone()))
    }
}

impl PartialEq for ReadNames {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ReadNames {}

/// Parameters that authenticate the request rather than describe the action.
/// Removed before the action sees the parameters.
const AUTH_PARAMETERS: &[&str] = &[
    "AWSAccessKeyId",
    "Signature",
    "SignatureVersion",
    "SignatureMethod",
    "Timestamp",
    "Expires",
    "SecurityToken",
];

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self {
            pairs,
            read: ReadNames::default(),
        }
    }

    /// The parameters of a request as received: refuses a name given twice
    /// (in the query, the body, or both) and characters XML cannot carry.
    ///
    /// Strict because a duplicate is how a signed request gets bent: readers
    /// that take the first value and readers that take the last would see
    /// different requests, and a presigned URL sent with an extra body would
    /// gain parameters its signer never saw. EC2's flattened lists index
    /// every member (`InstanceId.1`, `InstanceId.2`), so no real client ever
    /// repeats a name. Control characters are refused here, once, so that
    /// nothing stored can later render as malformed XML.
    pub fn from_request(pairs: Vec<(String, String)>) -> ApiResult<Self> {
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        for (name, value) in &pairs {
            if !seen.insert(name.as_str()) {
                return Err(ApiError::invalid_value(format!(
                    "The parameter {} is given more than once",
                    printable(name)
                )));
            }
            if !is_xml_text(name) || !is_xml_text(value) {
                return Err(ApiError::invalid_value(format!(
                    "The parameter {} contains a control character that is not allowed",
                    printable(name)
                )));
            }
        }
        Ok(Self::new(pairs))
    }

    /// Every pair, in arrival order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.read.note(name);
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The same parameters without the authentication ones.
    pub fn without_auth(&self) -> Params {
        Params::new(
            self.pairs
                .iter()
                .filter(|(n, _)| !AUTH_PARAMETERS.contains(&n.as_str()) && !n.starts_with("X-Amz-"))
                .cloned()
                .collect(),
        )
    }

    /// A required string parameter.
    pub fn required(&self, name: &str) -> ApiResult<String> {
        match self.get(name) {
            Some(value) if !value.is_empty() => Ok(value.to_string()),
            _ => Err(ApiError::MissingParameter(name.to_string())),
        }
    }

    /// An optional string parameter (empty counts as absent).
    pub fn optional(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).map(str::to_string)
    }

    /// An optional free-text parameter (a description) of at most
    /// `max_chars` characters, EC2's limit for it.
    pub fn optional_text(&self, name: &str, max_chars: usize) -> ApiResult<Option<String>> {
        match self.optional(name) {
            Some(text) if text.chars().count() > max_chars => Err(ApiError::invalid_value(
                format!("{name} may be at most {max_chars} characters long"),
            )),
            other => Ok(other),
        }
    }

    /// An optional boolean: `true`/`false` in any case.
    pub fn boolean(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(value) if value.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(value) if value.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(value) => Err(ApiError::invalid_value(format!(
                "Invalid value '{value}' for {name}: expected true or false"
            ))),
        }
    }

    /// An optional unsigned number.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> ApiResult<Option<T>> {
        self.get(name)
            .map(|value| {
                value.parse().map_err(|_| {
                    ApiError::invalid_value(format!("Invalid value '{value}' for {name}"))
                })
            })
            .transpose()
    }

    /// The list `name.1`, `name.2`, ... in numeric index order. A bare
    /// `name` (no index), as older clients send a single member, is member 1.
    pub fn list(&self, name: &str) -> ApiResult<Vec<String>> {
        self.read.note(name);
        let mut items = BTreeMap::new();
        for (key, value) in &self.pairs {
            let index = if key == name {
                1
            } else if let Some(index) = key
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('.'))
            {
                parse_index(key, index)?
            } else {
                continue;
            };
            if items.insert(index, value.clone()).is_some() {
                return Err(member_twice(name, index));
            }
        }
        Ok(items.into_values().collect())
    }

    /// The structures of list `name` (`TagSpecification.1.ResourceType`,
    /// `TagSpecification.1.Tag.1.Key`, ...), each as its own parameters with
    /// the `name.N.` prefix removed, in numeric index order.
    pub fn structures(&self, name: &str) -> ApiResult<Vec<Params>> {
        self.read.note(name);
        let mut by_index: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
        for (key, value) in &self.pairs {
            let Some(rest) = key
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('.'))
            else {
                continue;
            };
            let (index, field) = rest.split_once('.').unwrap_or((rest, ""));
            by_index
                .entry(parse_index(key, index)?)
                .or_default()
                .push((field.to_string(), value.clone()));
        }
        Ok(by_index.into_values().map(Params::new).collect())
    }

    /// `Filter.N.Name` with `Filter.N.Value.M`, in index order.
    pub fn filters(&self) -> ApiResult<Vec<Filter>> {
        self.read.note("Filter");
        let mut by_index: BTreeMap<u32, (Option<String>, BTreeMap<u32, String>)> = BTreeMap::new();
        for (key, value) in &self.pairs {
            let Some(rest) = key.strip_prefix("Filter.") else {
                continue;
            };
            let (index, field) = rest.split_once('.').unwrap_or((rest, ""));
            let entry = by_index.entry(parse_index(key, index)?).or_default();
            // `Filter.N.Value` with no index (VM::EC2, hand-written
            // scripts) is the filter's first value, as EC2 takes it.
            let value_index = match field {
                "Value" => Some(1),
                _ => field
                    .strip_prefix("Value.")
                    .map(|index| parse_index(key, index))
                    .transpose()?,
            };
            if field == "Name" {
                entry.0 = Some(value.clone());
            } else if let Some(value_index) = value_index {
                if entry.1.insert(value_index, value.clone()).is_some() {
                    return Err(member_twice(key, value_index));
                }
            } else {
                return Err(ApiError::invalid_value(format!(
                    "Unknown filter parameter {key}"
                )));
            }
        }
        let total: usize = by_index.values().map(|(_, values)| values.len()).sum();
        if total > super::filters::MAX_FILTER_VALUES {
            return Err(ApiError::LimitExceeded {
                code: crate::error::codes::FILTER_LIMIT_EXCEEDED,
                message: format!(
                    "The request uses {total} filter values: at most {} are allowed",
                    super::filters::MAX_FILTER_VALUES
                ),
            });
        }
        if let Some(long) = by_index
            .values()
            .flat_map(|(_, values)| values.values())
            .find(|v| v.chars().count() > super::wildcard::MAX_PATTERN_CHARS)
        {
            return Err(ApiError::invalid_value(format!(
                "A filter value of {} characters is too long: at most {} are allowed",
                long.chars().count(),
                super::wildcard::MAX_PATTERN_CHARS
            )));
        }
        by_index
            .into_iter()
            .map(|(index, (name, values))| {
                let name =
                    name.ok_or_else(|| ApiError::MissingParameter(format!("Filter.{index}.Name")))?;
                if values.is_empty() {
                    return Err(ApiError::invalid_value(format!(
                        "The filter '{name}' needs at least one value"
                    )));
                }
                Ok(Filter::new(name, values.into_values().collect()))
            })
            .collect()
    }

    /// Marks `name` (and everything under `name.`) as read, for a parser
    /// that reads a structure's members by walking [`Params::pairs`].
    pub fn mark_read(&self, name: &str) {
        self.read.note(name);
    }

    /// `DryRun`: the one place it is read.
    pub fn dry_run(&self) -> ApiResult<bool> {
        Ok(self.boolean("DryRun")?.unwrap_or(false))
    }

    /// Names the parser never read (neither the name itself nor the list or
    /// structure it belongs to); `Action` and `Version` are always known.
    pub fn unread(&self) -> Vec<&str> {
        self.pairs
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| {
                let top = name.split('.').next().unwrap_or(name);
                !["Action", "Version"].contains(name)
                    && !self.read.contains(name)
                    && !self.read.contains(top)
            })
            .collect()
    }
}

/// The same list member given twice (`name` and `name.1`).
fn member_twice(name: &str, index: u32) -> ApiError {
    ApiError::invalid_value(format!(
        "The list member {name} number {index} is given more than once"
    ))
}

/// True when every character of `text` may appear in an XML 1.0 document
/// (tab, line feed and carriage return are the only control characters it allows).
pub fn is_xml_text(text: &str) -> bool {
    text.chars().all(|c| {
        !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
    })
}

/// A parameter name safe to echo in a message (control characters dropped, at most 64 characters).
fn printable(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// A list index: 1, 2, ... written plainly. `01` or `+1` would name the same
/// member as `1` under another parameter name, slipping past the check for
/// repeated names, so they are refused.
fn parse_index(key: &str, index: &str) -> ApiResult<u32> {
    match index.parse::<u32>() {
        Ok(n) if n >= 1 && index.bytes().all(|b| b.is_ascii_digit()) && !index.starts_with('0') => {
            Ok(n)
        }
        _ => Err(ApiError::invalid_value(format!(
            "Invalid list index in parameter {key}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &str) -> Params {
        Params::new(decode_form(text.as_bytes()).unwrap())
    }

    #[test]
    fn form_decoding_turns_plus_into_space_and_keeps_escaped_plus() {
        let p = params("A=a+b&B=c%2Bd&C=&D");
        assert_eq!(p.get("A"), Some("a b"));
        assert_eq!(p.get("B"), Some("c+d"));
        assert_eq!(p.get("C"), Some(""));
        assert_eq!(p.get("D"), Some(""));
    }

    #[test]
    fn bad_escapes_and_bad_utf8_are_malformed() {
        assert_eq!(
            decode_form(b"A=%zz").unwrap_err().code(),
            "MalformedQueryString"
        );
        assert_eq!(
            decode_form(b"A=%4").unwrap_err().code(),
            "MalformedQueryString"
        );
        assert_eq!(
            decode_form(b"A=%ff%fe").unwrap_err().code(),
            "MalformedQueryString"
        );
    }

    #[test]
    fn lists_sort_numerically() {
        let p = params("ZoneName.10=j&ZoneName.2=b&ZoneName.1=a&ZoneNames=x&ZoneName.9=i");
        assert_eq!(p.list("ZoneName").unwrap(), ["a", "b", "i", "j"]);
        assert!(params("ZoneName.0=a").list("ZoneName").is_err());
        assert!(params("ZoneName.01=a").list("ZoneName").is_err());
        assert!(params("ZoneName.+1=a").list("ZoneName").is_err());
        assert!(params("Filter.1.Name=a&Filter.1.Value.01=b")
            .filters()
            .is_err());
        assert!(params("Tag.01.Key=a").structures("Tag").is_err());
        assert!(params("ZoneName.x=a").list("ZoneName").is_err());
    }

    #[test]
    fn filters_group_names_and_values() {
        let p = params("Filter.2.Name=state&Filter.2.Value.1=available&Filter.1.Value.2=b&Filter.1.Name=zone-name&Filter.1.Value.1=a");
        let filters = p.filters().unwrap();
        assert_eq!(filters.len(), 2);
        assert_eq!(filters[0].name, "zone-name");
        assert_eq!(filters[0].values, ["a", "b"]);
        assert_eq!(filters[1].name, "state");
        assert_eq!(
            params("Filter.1.Value.1=a").filters().unwrap_err().code(),
            "MissingParameter"
        );
    }

    /// Issue 10 (finding 1): a single member without its index.
    #[test]
    fn bare_members_are_the_first() {
        assert_eq!(params("ZoneName=a").list("ZoneName").unwrap(), ["a"]);
        assert_eq!(
            params("ZoneName=a&ZoneName.2=b").list("ZoneName").unwrap(),
            ["a", "b"]
        );
        assert!(params("ZoneName=a&ZoneName.1=b").list("ZoneName").is_err());
        let filters = params("Filter.1.Name=tag:Name&Filter.1.Value=web")
            .filters()
            .unwrap();
        assert_eq!(filters[0].values, ["web"]);
        let both = params("Filter.1.Name=a&Filter.1.Value=x&Filter.1.Value.1=y");
        assert_eq!(both.filters().unwrap_err().code(), "InvalidParameterValue");
        let more = params("Filter.1.Name=a&Filter.1.Value=x&Filter.1.Value.2=y");
        assert_eq!(more.filters().unwrap()[0].values, ["x", "y"]);
    }

    #[test]
    fn nested_structures() {
        let p = params("TagSpecification.2.ResourceType=volume&TagSpecification.1.Tag.2.Key=b&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=a&TagSpecification.1.Tag.1.Value=x");
        let specs = p.structures("TagSpecification").unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].get("ResourceType"), Some("instance"));
        let tags = specs[0].structures("Tag").unwrap();
        assert_eq!(
            (tags[0].get("Key"), tags[0].get("Value"), tags[1].get("Key")),
            (Some("a"), Some("x"), Some("b"))
        );
        assert_eq!(specs[1].get("ResourceType"), Some("volume"));
    }

    #[test]
    fn booleans_and_unknown_names() {
        let p = params("DryRun=TRUE&All=false&Bad=yes&ZoneName.1=a&Extra=1");
        assert_eq!(p.boolean("DryRun").unwrap(), Some(true));
        assert_eq!(p.boolean("All").unwrap(), Some(false));
        assert!(p.boolean("Bad").is_err());
        assert_eq!(p.unread(), ["ZoneName.1", "Extra"]);
        p.list("ZoneName").unwrap();
        assert_eq!(p.unread(), ["Extra"], "a list read covers its members");
    }

    #[test]
    fn duplicates_and_control_characters_are_refused() {
        let pairs = |text: &str| decode_form(text.as_bytes()).unwrap();
        assert!(Params::from_request(pairs("A=1&B=2&C.1=x&C.2=y")).is_ok());
        for bad in ["A=1&A=1", "A=1&B=2&A=3", "A=%01", "A%0B=1", "A=%EF%BF%BF"] {
            assert_eq!(
                Params::from_request(pairs(bad)).unwrap_err().code(),
                "InvalidParameterValue",
                "{bad}"
            );
        }
        assert!(Params::from_request(pairs("A=line%0Anext%09tab%0D")).is_ok());
    }

    #[test]
    fn auth_parameters_are_stripped() {
        let p = params(
            "Action=X&AWSAccessKeyId=K&Signature=s&SignatureVersion=2&X-Amz-Date=d&ZoneName.1=a",
        );
        assert_eq!(p.without_auth().pairs().len(), 2);
    }
}
