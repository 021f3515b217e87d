//! EC2 filters: `Filter.N.Name` + `Filter.N.Value.M`.
//!
//! Values of one filter are OR'ed, separate filters AND'ed; `*` matches any
//! run of characters, `?` exactly one, and a backslash makes the next
//! character literal. A filter name the resource does not support is
//! `InvalidFilter`; no match is an empty list, never an error.

use crate::error::{ApiError, ApiResult};

/// One filter as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

impl Filter {
    pub fn new(name: String, values: Vec<String>) -> Self {
        Self { name, values }
    }

    /// True when any of this filter's patterns matches any of `candidates`.
    pub fn matches_any<'a>(&self, candidates: impl IntoIterator<Item = &'a str> + Clone) -> bool {
        self.values.iter().any(|pattern| {
            candidates
                .clone()
                .into_iter()
                .any(|c| wildcard_match(pattern, c))
        })
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

enum Token {
    Literal(char),
    AnyRun,
    AnyOne,
}

fn tokens(pattern: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => Token::AnyRun,
            '?' => Token::AnyOne,
            '\\' => Token::Literal(chars.next().unwrap_or('\\')),
            c => Token::Literal(c),
        });
    }
    out
}

/// EC2 wildcard matching over whole values.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    let pattern = tokens(pattern);
    let value: Vec<char> = value.chars().collect();
    // Iterative matcher with backtracking to the last `*` (linear for the
    // usual single-star patterns, never exponential).
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(Token::AnyOne) => {
                p += 1;
                v += 1;
            }
            Some(Token::Literal(c)) if *c == value[v] => {
                p += 1;
                v += 1;
            }
            Some(Token::AnyRun) => {
                star = Some((p, v));
                p += 1;
            }
            _ => match star {
                Some((star_p, star_v)) => {
                    p = star_p + 1;
                    v = star_v + 1;
                    star = Some((star_p, star_v + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|t| matches!(t, Token::AnyRun))
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
