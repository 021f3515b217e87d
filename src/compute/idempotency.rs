//! ClientToken records of the create actions that take one besides
//! RunInstances (CreateNatGateway, CreateRouteTable).
//!
//! EC2 answers a retried create with the same ClientToken with what the
//! first request created, and a request that reuses a token with other
//! parameters with `IdempotentParameterMismatch`. The token's record,
//! `idempotency/<account>/<action>/<token>`, names the resource and a
//! digest of the request's parameters; it is written in the create's own
//! commit, read as absent, so of two racing retries one commits and the
//! other runs again and finds it.

use super::operation::Tx;
use crate::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};

const IDEMPOTENCY: &str = "idempotency";

/// What a token created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub resource_id: String,
    pub fingerprint: String,
}

impl crate::store::Record for TokenRecord {}

/// A create's ClientToken with the digest of its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientToken {
    pub token: String,
    pub fingerprint: String,
}

fn key(account_id: &str, action: &str, token: &str) -> Vec<u8> {
    format!("{account_id}/{action}/{token}").into_bytes()
}

/// The resource `token` created before, read in `tx`; mismatched
/// parameters are `IdempotentParameterMismatch`.
pub(super) fn earlier(
    tx: &mut Tx<'_>,
    account_id: &str,
    action: &str,
    token: &ClientToken,
) -> ApiResult<Option<String>> {
    match tx.get::<TokenRecord>(IDEMPOTENCY, &key(account_id, action, &token.token))? {
        Some(record) if record.fingerprint == token.fingerprint => Ok(Some(record.resource_id)),
        Some(_) => Err(mismatch(&token.token)),
        None => Ok(None),
    }
}

/// The record `token` created before, read now outside any operation (a
/// retry is answered from it before anything else is checked): its id
/// through the token, the record under `<account>/<id>` in `tree`. `None`
/// when the token is new or what it made is gone.
pub(super) async fn earlier_record<T: crate::store::Record>(
    store: &crate::store::StoreHandle,
    account_id: &str,
    action: &str,
    token: &ClientToken,
    tree: &'static str,
) -> ApiResult<Option<T>> {
    super::operation::read(store, |tx| match earlier(tx, account_id, action, token)? {
        Some(id) => Ok(tx.get::<T>(tree, format!("{account_id}/{id}").as_bytes())?),
        None => Ok(None),
    })
    .await
}

/// Records in `tx` that `token` created `resource_id`.
pub(super) fn remember(
    tx: &mut Tx<'_>,
    account_id: &str,
    action: &str,
    token: &ClientToken,
    resource_id: &str,
) {
    tx.put(
        IDEMPOTENCY,
        key(account_id, action, &token.token),
        &TokenRecord {
            resource_id: resource_id.to_string(),
            fingerprint: token.fingerprint.clone(),
        },
    );
}

/// Forgets a token in `tx` (its resource is gone for good).
pub(super) fn forget(tx: &mut Tx<'_>, account_id: &str, action: &str, token: &str) {
    tx.delete(IDEMPOTENCY, key(account_id, action, token));
}

fn mismatch(token: &str) -> ApiError {
    ApiError::IdempotentParameterMismatch(format!(
        "Arguments on this idempotent request are inconsistent with arguments used in previous request(s) with client token '{token}'"
    ))
}
