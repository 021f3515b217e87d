//! EC2 filters: `Filter.N.Name` + `Filter.N.Value.M`.
//!
//! Values of one filter are OR'ed, separate filters AND'ed; `*` matches any
//! run of characters, `?` exactly one, and a backslash makes the next
//! character literal. A filter name the resource does not support is
//! `InvalidFilter`; no match is an empty list, never an error.

use super::wildcard::Pattern;
use crate::error::{ApiError, ApiResult};

/// Most filter values in one request, all filters together (EC2's limit;
/// more is `FilterLimitExceeded`).
pub const MAX_FILTER_VALUES: usize = 200;

/// One filter as the client sent it, its values compiled once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
    patterns: Vec<Pattern>,
}

impl Filter {
    pub fn new(name: String, values: Vec<String>) -> Self {
        let patterns = values.iter().map(|v| Pattern::compile(v)).collect();
        Self {
            name,
            values,
            patterns,
        }
    }

    /// True when any of this filter's patterns matches any of `candidates`.
    pub fn matches_any<'a>(&self, candidates: impl IntoIterator<Item = &'a str> + Clone) -> bool {
        self.patterns
            .iter()
            .any(|pattern| candidates.clone().into_iter().any(|c| pattern.matches(c)))
    }
}

/// Checks every filter name against what the resource supports.
pub fn check_names(filters: &[Filter], supported: &[&str]) -> ApiResult<()> {
    match filters
        .iter()
        .find(|f| !supported.contains(&f.name.as_str()))
    {
        Some(filter) => Err(ApiError::InvalidFilter(filter.name.clone())),
        None => Ok(()),
    }
}

/// True when the resource passes every filter; `field` gives the resource's
/// values for a filter name.
pub fn matches_all(filters: &[Filter], field: impl Fn(&str) -> Vec<String>) -> bool {
    filters.iter().all(|filter| {
        let values = field(&filter.name);
        filter.matches_any(values.iter().map(String::as_str))
    })
}

/// EC2 wildcard matching over whole values (compiles `pattern` each call:
/// describes go through [`Filter`], which compiles once).
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    Pattern::compile(pattern).matches(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("us-east-1a", "us-east-1a"));
        assert!(!wildcard_match("us-east-1a", "us-east-1b"));
        assert!(wildcard_match("us-east-1*", "us-east-1c"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("us-?ast-1?", "us-east-1b"));
        assert!(!wildcard_match("us-east-1?", "us-east-1"));
        assert!(wildcard_match("*east*b", "us-east-1b"));
        assert!(!wildcard_match("*east*b", "us-east-1c"));
        assert!(wildcard_match("a\\*b", "a*b"));
        assert!(!wildcard_match("a\\*b", "axb"));
        assert!(wildcard_match("web server*", "web server 1"));
    }

    #[test]
    fn or_within_and_across() {
        let filters = vec![
            Filter::new("zone-name".into(), vec!["x".into(), "us-*".into()]),
            Filter::new("state".into(), vec!["available".into()]),
        ];
        let field = |state: &'static str| {
            move |name: &str| match name {
                "zone-name" => vec!["us-east-1a".to_string()],
                _ => vec![state.to_string()],
            }
        };
        assert!(matches_all(&filters, field("available")));
        assert!(!matches_all(&filters, field("unavailable")));
        assert_eq!(
            check_names(&filters, &["zone-name"]).unwrap_err().code(),
            "InvalidFilter"
        );
    }
}
