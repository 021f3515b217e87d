//! NextTokens: opaque, stable and tamper-proof.
//!
//! A token carries the position after which the next page starts (an
//! instance's launch sequence, an instance type's name), encrypted and
//! authenticated (ChaCha20-Poly1305 under a key kept in the store, a random
//! nonce per token) and bound, as associated data, to the account, the
//! action and a digest of the request's selection (filters and ids). A
//! client learns nothing from a token (not even how many instances the
//! gateway launched before its own), and a forged, altered or foreign token
//! is `InvalidNextToken`. Positions are launch order, so instances added
//! while a client pages through appear at the end and nothing is skipped or
//! repeated.

use crate::error::{ApiError, ApiResult};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
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

/// Positions are padded to at least this many bytes before encryption.
const PADDED_POSITION: usize = 48;

/// The associated data a token is bound to.
fn binding(account: &str, action: &str, selection: &str) -> String {
    format!("{account}\n{action}\n{selection}")
}

/// Issues a token for `position`: nonce then ciphertext, base64url.
fn issue(key: &[u8; 32], account: &str, action: &str, selection: &str, position: &str) -> String {
    let cipher = ChaCha20Poly1305::new(key.into());
    let nonce: [u8; 12] = rand::random();
    // Padded (with NULs, which no position contains) so that a token's
    // length says nothing about its position, e.g. how many digits the
    // gateway-wide launch count has.
    let mut padded = position.as_bytes().to_vec();
    padded.resize(padded.len().max(PADDED_POSITION).next_multiple_of(16), 0);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &padded,
                aad: binding(account, action, selection).as_bytes(),
            },
        )
        .expect("encrypting a short position cannot fail");
    let mut bytes = nonce.to_vec();
    bytes.extend(sealed);
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
    if bytes.len() < 12 {
        return Err(ApiError::InvalidNextToken);
    }
    let (nonce, sealed) = bytes.split_at(12);
    let position = ChaCha20Poly1305::new(key.into())
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: binding(account, action, selection).as_bytes(),
            },
        )
        .map_err(|_| ApiError::InvalidNextToken)?;
    let length = position
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(position.len());
    String::from_utf8(position[..length].to_vec()).map_err(|_| ApiError::InvalidNextToken)
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
        let key = *context.compute.pagination_key();
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

/// What a describe request selects: the ids it names, its filters and its
/// page. Shared by the describes whose items are the account's records in
/// id order.
pub struct Selection<'a> {
    pub action: &'static str,
    pub kind: crate::compute::kinds::ResourceKind,
    pub ids: &'a [String],
    pub filters: &'a [crate::protocol::Filter],
    pub max_results: Option<usize>,
    pub next_token: Option<&'a str>,
    pub dry_run: bool,
}

impl Selection<'_> {
    /// The page of `items` (in id order) the request selects. Every id it
    /// names must be among them (the kind's `.NotFound` otherwise), a
    /// DryRun is answered after that check, and `values` gives an item's
    /// values for a filter name.
    pub fn page<T>(
        &self,
        context: &super::Context<'_>,
        items: Vec<T>,
        id: impl Fn(&T) -> &str,
        values: impl Fn(&T, &str) -> Vec<String>,
    ) -> ApiResult<(Vec<T>, Option<String>)> {
        if let Some(missing) = self
            .ids
            .iter()
            .find(|wanted| !items.iter().any(|item| id(item) == wanted.as_str()))
        {
            return Err(self.kind.not_found(missing));
        }
        super::dry_run_check(self.dry_run)?;
        let paging = Paging::start(
            context,
            self.action,
            self.filters,
            self.ids,
            self.max_results,
            self.next_token,
        )?;
        let after = paging.after.clone();
        let matching = items
            .into_iter()
            .filter(|item| self.ids.is_empty() || self.ids.iter().any(|w| w == id(item)))
            .filter(|item| after.as_deref().is_none_or(|after| id(item) > after))
            .filter(|item| {
                crate::protocol::filters::matches_all(self.filters, |name| values(item, name))
            });
        Ok(paging.cut(matching, |item| id(item).to_string()))
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
        bytes[12] ^= 1;
        assert!(verify(
            &key,
            &URL_SAFE_NO_PAD.encode(bytes),
            "111122223333",
            "DescribeInstances",
            "abc"
        )
        .is_err());
        assert!(verify(&key, "garbage!", "a", "b", "c").is_err());
        assert!(verify(&key, "", "a", "b", "c").is_err());
        assert!(check_max_results(Some(4), 5, 1000).is_err());
        assert_eq!(check_max_results(Some(5), 5, 1000).unwrap(), Some(5));
    }

    /// Low (security review): tokens were readable and showed the
    /// gateway-wide launch count. Now nothing of the position, account or
    /// action can be read from one, and two tokens for one position differ.
    #[test]
    fn tokens_are_opaque() {
        let key = [7u8; 32];
        let token = issue(&key, "111122223333", "DescribeInstances", "abc", "1234567");
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in ["1234567", "111122223333", "DescribeInstances"] {
            assert!(!text.contains(secret), "{secret} readable in the token");
        }
        assert_ne!(
            token,
            issue(&key, "111122223333", "DescribeInstances", "abc", "1234567")
        );
        // Nor its length: positions of any usual size give tokens of one size.
        let sizes: std::collections::HashSet<usize> =
            ["1", "1234567", "99999999999", "m5.24xlarge"]
                .iter()
                .map(|position| {
                    issue(&key, "111122223333", "DescribeInstances", "abc", position).len()
                })
                .collect();
        assert_eq!(sizes.len(), 1);
    }
}
