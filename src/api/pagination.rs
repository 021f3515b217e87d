//! NextTokens: opaque, stable and tamper-proof.
//!
//! A token carries the position after which the next page starts (an
//! instance's launch sequence, an instance type's name), bound to the
//! account, the action and a digest of the request's selection (filters and
//! ids), and sealed with an HMAC under a key kept in the store. A forged,
//! altered or foreign token is `InvalidNextToken`. Positions are launch
//! order, so instances added while a client pages through appear at the
//! end and nothing is skipped or repeated.

use crate::error::{ApiError, ApiResult};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// `MaxResults` as EC2 bounds it for most describes.
pub fn check_max_results(
    max_results: Option<u32>,
    low: u32,
    high: u32,
) -> ApiResult<Option<usize>> {
    match max_results {
        None => Ok(None),
        Some(n) if (low..=high).contains(&n) => Ok(Some(n as usize)),
        Some(n) => Err(ApiError::invalid_value(format!(
            "Value ( {n} ) for parameter maxResults is invalid. Expecting a value between {low} and {high}."
        ))),
    }
}

/// A digest of whatever selects the results (filters, ids...).
fn selection_digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..8])
}

fn seal(key: &[u8; 32], body: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(body.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Issues a token for `position`.
fn issue(key: &[u8; 32], account: &str, action: &str, selection: &str, position: &str) -> String {
    let body = format!("{account}\n{action}\n{selection}\n{position}");
    let mut bytes = body.clone().into_bytes();
    bytes.push(0);
    bytes.extend(seal(key, &body));
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The position a token carries, if it was issued for this account, action
/// and selection.
fn verify(
    key: &[u8; 32],
    token: &str,
    account: &str,
    action: &str,
    selection: &str,
) -> ApiResult<String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| ApiError::InvalidNextToken)?;
    let split = bytes
        .iter()
        .position(|b| *b == 0)
        .ok_or(ApiError::InvalidNextToken)?;
    let body = std::str::from_utf8(&bytes[..split]).map_err(|_| ApiError::InvalidNextToken)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(body.as_bytes());
    mac.verify_slice(&bytes[split + 1..])
        .map_err(|_| ApiError::InvalidNextToken)?;
    let mut parts = body.splitn(4, '\n');
    let (Some(a), Some(b), Some(c), Some(position)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiError::InvalidNextToken);
    };
    if a != account || b != action || c != selection {
        return Err(ApiError::InvalidNextToken);
    }
    Ok(position.to_string())
}

/// The paging of one describe request: where to resume, and how to cut the
/// page and seal the next token.
pub struct Paging {
    key: [u8; 32],
    account: String,
    action: &'static str,
    selection: String,
    max_results: Option<usize>,
    /// Where the previous page ended, from a verified NextToken.
    pub after: Option<String>,
}

impl Paging {
    /// Verifies `next_token` (if any) against this request's account, action
    /// and selection (its filters plus `extra`, e.g. requested ids).
    pub fn start(
        context: &super::Context<'_>,
        action: &'static str,
        filters: &[crate::protocol::Filter],
        extra: &[String],
        max_results: Option<usize>,
        next_token: Option<&str>,
    ) -> ApiResult<Self> {
        let mut parts: Vec<String> = filters
            .iter()
            .map(|f| format!("{}={}", f.name, f.values.join("\u{1}")))
            .collect();
        parts.extend(extra.iter().cloned());
        let selection = selection_digest(&parts.iter().map(String::as_str).collect::<Vec<_>>());
        let key = context.compute.pagination_key;
        let account = context.principal.account_id.clone();
        let after = next_token
            .map(|token| verify(&key, token, &account, action, &selection))
            .transpose()?;
        Ok(Self {
            key,
            account,
            action,
            selection,
            max_results,
            after,
        })
    }

    /// Takes one page from `items` (matching, in order, after `after`) and a
    /// NextToken naming the last item's `position` when more remain.
    pub fn cut<T>(
        &self,
        mut items: impl Iterator<Item = T>,
        position: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        let Some(max) = self.max_results else {
            return (items.collect(), None);
        };
        let page: Vec<T> = items.by_ref().take(max).collect();
        let more = items.next().is_some();
        let next = self.next_token(page.last().map(position), more);
        (page, next)
    }

    /// The page size asked for, if any.
    pub fn limit(&self) -> Option<usize> {
        self.max_results
    }

    /// The NextToken after a page ending at `last`, when `more` remain.
    pub fn next_token(&self, last: Option<String>, more: bool) -> Option<String> {
        match (self.max_results, last) {
            (Some(_), Some(last)) if more => Some(issue(
                &self.key,
                &self.account,
                self.action,
                &self.selection,
                &last,
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let key = [7u8; 32];
        let token = issue(&key, "111122223333", "DescribeInstances", "abc", "42");
        assert_eq!(
            verify(&key, &token, "111122223333", "DescribeInstances", "abc").unwrap(),
            "42"
        );
        assert!(
            verify(&key, &token, "444455556666", "DescribeInstances", "abc").is_err(),
            "another account"
        );
        assert!(
            verify(&key, &token, "111122223333", "DescribeInstances", "abd").is_err(),
            "other filters"
        );
        assert!(
            verify(
                &[8u8; 32],
                &token,
                "111122223333",
                "DescribeInstances",
                "abc"
            )
            .is_err(),
            "other key"
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        assert!(verify(
            &key,
            &URL_SAFE_NO_PAD.encode(bytes),
            "111122223333",
            "DescribeInstances",
            "abc"
        )
        .is_err());
        assert!(verify(&key, "garbage!", "a", "b", "c").is_err());
        assert!(check_max_results(Some(4), 5, 1000).is_err());
        assert_eq!(check_max_results(Some(5), 5, 1000).unwrap(), Some(5));
    }
}
