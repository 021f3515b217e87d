//! Accounts and their access keys.
//!
//! Every EC2 resource belongs to one account (a 12-digit owner id) and is
//! invisible to the others; every access key maps to one account and user.
//! Keys live in the store; the signature verifier reads them through a view
//! checked against the directory's revision on every request, so
//! deactivating a key takes effect at once on every gateway. The secret
//! of a new key is returned once to its creator and otherwise only used to
//! verify signatures. Every change to accounts or keys is an operation that
//! also rewrites `meta/directory_revision`, which the checks over the whole
//! directory (an admin exists; this is not the last admin key) read, so
//! they hold under concurrent changes.

use super::operation::{self, Tx};
use super::view::{DerivedView, Stamped};
use crate::config::AccountConfig;
use crate::error::{ApiError, ApiResult};
use crate::secret::Secret;
use crate::store::{StoreHandle, StoreResult};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const ACCOUNTS: &str = "accounts";
const ACCESS_KEYS: &str = "access_keys";

/// An EC2 account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub admin: bool,
    pub created_at: DateTime<Utc>,
}

impl crate::store::Record for Account {}

/// An access key and the secret it signs with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret: Secret,
    pub account_id: String,
    pub user_name: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    /// Set for a compute agent's key: the host it acts for (and nothing
    /// else; see `compute::agents`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_host: Option<String>,
}

impl crate::store::Record for AccessKey {}

/// All accounts and keys, in the store.
pub struct AccountDirectory {
    store: Arc<StoreHandle>,
    /// Active keys with their accounts as of one version of
    /// `meta/directory_revision`: a derived view for the signature
    /// verifier, used only after checking that version is current.
    view: DerivedView<KeysView>,
}

/// Every active key and its account, at one directory revision.
struct KeysView {
    keys: std::collections::HashMap<String, (AccessKey, Account)>,
}

const META: &str = "meta";
const DIRECTORY_REVISION: &[u8] = b"directory_revision";

/// Reads the directory's revision in `tx` and writes the next one: the
/// operation now conflicts with any other change to accounts or keys.
fn bump_revision(tx: &mut Tx<'_>) -> StoreResult<()> {
    let revision = tx.get::<u64>(META, DIRECTORY_REVISION)?.unwrap_or(0);
    tx.put(META, DIRECTORY_REVISION, &(revision + 1));
    Ok(())
}

/// True when `key` is an active key of an admin account (read in `tx`).
fn is_admin_key(tx: &mut Tx<'_>, key: &AccessKey) -> StoreResult<bool> {
    Ok(key.active
        && tx
            .get::<Account>(ACCOUNTS, key.account_id.as_bytes())?
            .is_some_and(|a| a.admin))
}

/// Alphabet of generated access key ids (as AWS's: upper-case base32).
const KEY_ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Alphabet of generated secrets (as AWS's: base64 characters).
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_string(alphabet: &[u8], length: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..length)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

fn new_account_id() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{:012}",
        rng.gen_range(100_000_000_000u64..1_000_000_000_000)
    )
}

impl AccountDirectory {
    /// The directory over `store`.
    pub fn load(store: Arc<StoreHandle>) -> StoreResult<Self> {
        Ok(Self {
            store,
            view: DerivedView::new(META, DIRECTORY_REVISION),
        })
    }

    /// Creates or updates the accounts and fixed keys of the configuration.
    /// The file sets a key's account and secret; whether the key is active
    /// is decided at runtime and kept across restarts (see README,
    /// "Security").
    pub async fn seed(&self, configured: &[AccountConfig], now: DateTime<Utc>) -> ApiResult<()> {
        if configured.is_empty() {
            return Ok(());
        }
        operation::run(&self.store, false, |tx| {
            bump_revision(tx)?;
            for config in configured {
                let existing_account = tx.get::<Account>(ACCOUNTS, config.id.as_bytes())?;
                let existing_key =
                    tx.get::<AccessKey>(ACCESS_KEYS, config.access_key_id.as_bytes())?;
                let account = Account {
                    id: config.id.clone(),
                    name: config.name.clone(),
                    admin: config.admin,
                    created_at: existing_account.map_or(now, |a| a.created_at),
                };
                let key = AccessKey {
                    access_key_id: config.access_key_id.clone(),
                    secret: config.secret_access_key.clone(),
                    account_id: config.id.clone(),
                    user_name: config.name.clone(),
                    // An operator's runtime decision outlives the file: a
                    // key deactivated at runtime stays deactivated.
                    active: existing_key.as_ref().is_none_or(|k| k.active),
                    created_at: existing_key.map_or(now, |k| k.created_at),
                    agent_host: None,
                };
                tx.put(ACCOUNTS, account.id.as_bytes(), &account);
                tx.put(ACCESS_KEYS, key.access_key_id.as_bytes(), &key);
            }
            Ok(())
        })
        .await
    }

    /// On a first start with no admin key at all, creates an admin account
    /// and key and returns them (to print once).
    pub async fn ensure_admin(&self, now: DateTime<Utc>) -> ApiResult<Option<AccessKey>> {
        let account_id = new_account_id();
        let key = new_key(&account_id, "admin", now);
        operation::run(&self.store, false, |tx| {
            bump_revision(tx)?;
            for existing in tx.scan::<AccessKey>(ACCESS_KEYS, b"")? {
                if is_admin_key(tx, &existing)? {
                    return Ok(None);
                }
            }
            let account = Account {
                id: account_id.clone(),
                name: "admin".into(),
                admin: true,
                created_at: now,
            };
            tx.put(ACCOUNTS, account.id.as_bytes(), &account);
            tx.put(ACCESS_KEYS, key.access_key_id.as_bytes(), &key);
            Ok(Some(key.clone()))
        })
        .await
    }

    /// Creates a key for `account_id`, creating the account first when it
    /// does not exist (then `account_name` is required).
    pub async fn create_access_key(
        &self,
        account_id: &str,
        account_name: Option<&str>,
        admin: Option<bool>,
        now: DateTime<Utc>,
    ) -> ApiResult<AccessKey> {
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid_value(format!(
                "Invalid account id '{account_id}': expected 12 digits"
            )));
        }
        // Drawn once: every run of the attempt (a retry, or a rerun with
        // answers a networked store had to wait for) reads the same key id.
        let fresh = new_key(account_id, "", now);
        operation::run(&self.store, false, |tx| {
            bump_revision(tx)?;
            let account = match tx.get::<Account>(ACCOUNTS, account_id.as_bytes())? {
                Some(account) => account,
                None => {
                    let name = account_name
                        .ok_or_else(|| ApiError::MissingParameter("AccountName".into()))?;
                    let account = Account {
                        id: account_id.to_string(),
                        name: name.to_string(),
                        admin: admin.unwrap_or(false),
                        created_at: now,
                    };
                    tx.put(ACCOUNTS, account.id.as_bytes(), &account);
                    account
                }
            };
            let key = AccessKey {
                user_name: account.name.clone(),
                ..fresh.clone()
            };
            if tx
                .get::<AccessKey>(ACCESS_KEYS, key.access_key_id.as_bytes())?
                .is_some()
            {
                return Err(ApiError::ServiceUnavailable(
                    "An access key id collided; retry".into(),
                ));
            }
            tx.put(ACCESS_KEYS, key.access_key_id.as_bytes(), &key);
            Ok(key)
        })
        .await
    }

    /// Creates a compute agent's key for `host`, in the admin account
    /// `account_id` (the agent acts for that host only; see `compute::agents`).
    pub async fn create_agent_key(
        &self,
        account_id: &str,
        host: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<AccessKey> {
        if !crate::config::is_host_name(host) {
            return Err(ApiError::invalid_value(format!(
                "Invalid host name '{host}'"
            )));
        }
        let fresh = AccessKey {
            agent_host: Some(host.to_string()),
            ..new_key(account_id, &format!("agent:{host}"), now)
        };
        operation::run(&self.store, false, |tx| {
            bump_revision(tx)?;
            if tx
                .get::<Account>(ACCOUNTS, account_id.as_bytes())?
                .is_none()
            {
                return Err(ApiError::invalid_value(format!(
                    "The account {account_id} does not exist"
                )));
            }
            if tx
                .get::<AccessKey>(ACCESS_KEYS, fresh.access_key_id.as_bytes())?
                .is_some()
            {
                return Err(ApiError::ServiceUnavailable(
                    "An access key id collided; retry".into(),
                ));
            }
            tx.put(ACCESS_KEYS, fresh.access_key_id.as_bytes(), &fresh);
            Ok(fresh.clone())
        })
        .await
    }

    /// Creates the account `account_id` (no key) unless it exists: for
    /// development mode, where any access key names its account.
    pub async fn ensure_account(
        &self,
        account_id: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<()> {
        if self.account(account_id).await.is_some() {
            return Ok(());
        }
        operation::run(&self.store, false, |tx| {
            if tx
                .get::<Account>(ACCOUNTS, account_id.as_bytes())?
                .is_some()
            {
                return Ok(());
            }
            bump_revision(tx)?;
            let account = Account {
                id: account_id.to_string(),
                name: name.to_string(),
                admin: false,
                created_at: now,
            };
            tx.put(ACCOUNTS, account.id.as_bytes(), &account);
            Ok(())
        })
        .await
    }

    /// Keys of one account (or of all), secrets left in place for the caller
    /// to drop; sorted by account then creation.
    pub async fn access_keys(&self, account_id: Option<&str>) -> StoreResult<Vec<AccessKey>> {
        let mut keys: Vec<AccessKey> = self
            .store
            .records::<AccessKey>(ACCESS_KEYS, b"")
            .await?
            .into_iter()
            .filter(|k| account_id.is_none_or(|id| k.account_id == id))
            .collect();
        keys.sort_by(|a, b| {
            (&a.account_id, a.created_at, &a.access_key_id).cmp(&(
                &b.account_id,
                b.created_at,
                &b.access_key_id,
            ))
        });
        Ok(keys)
    }

    /// Every account's id.
    pub async fn account_ids(&self) -> StoreResult<Vec<String>> {
        Ok(self
            .store
            .records::<Account>(ACCOUNTS, b"")
            .await?
            .into_iter()
            .map(|a| a.id)
            .collect())
    }

    /// The account `account_id`, if it exists (a store failure reads as
    /// absent and is logged).
    pub async fn account(&self, account_id: &str) -> Option<Account> {
        self.store
            .get_record::<Account>(ACCOUNTS, account_id.as_bytes())
            .await
            .unwrap_or_else(|error| {
                tracing::error!(%error, "cannot read an account");
                None
            })
    }

    /// Deactivates a key. Refused when it is the last active admin key,
    /// which would lock every operator out.
    pub async fn deactivate(&self, access_key_id: &str) -> ApiResult<()> {
        operation::run(&self.store, false, |tx| {
            bump_revision(tx)?;
            let key = tx
                .get::<AccessKey>(ACCESS_KEYS, access_key_id.as_bytes())?
                .ok_or_else(|| ApiError::AccessKeyNotFound(access_key_id.into()))?;
            if is_admin_key(tx, &key)? {
                let mut admins = 0;
                for other in tx.scan::<AccessKey>(ACCESS_KEYS, b"")? {
                    admins += usize::from(is_admin_key(tx, &other)?);
                }
                if admins <= 1 {
                    return Err(ApiError::invalid_value(
                        "Refusing to deactivate the last active admin access key",
                    ));
                }
            }
            tx.put(
                ACCESS_KEYS,
                access_key_id.as_bytes(),
                &AccessKey {
                    active: false,
                    ..key
                },
            );
            Ok(())
        })
        .await
    }
}

/// A new key of `account_id` with a fresh id and secret.
fn new_key(account_id: &str, user_name: &str, now: DateTime<Utc>) -> AccessKey {
    AccessKey {
        access_key_id: format!("AKIA{}", random_string(KEY_ID_ALPHABET, 16)),
        secret: Secret::new(random_string(SECRET_ALPHABET, 40)),
        account_id: account_id.to_string(),
        user_name: user_name.to_string(),
        active: true,
        created_at: now,
        agent_host: None,
    }
}

impl AccountDirectory {
    /// The active key `access_key_id` and its account, if there is one
    /// (what the signature verifier needs: see `app`'s credential adapter).
    pub async fn active_key(
        &self,
        access_key_id: &str,
    ) -> StoreResult<Option<(AccessKey, Account)>> {
        operation::read(&self.store, |tx| {
            Ok(self.keys_view(tx)?.keys.get(access_key_id).cloned())
        })
        .await
    }

    /// [`AccountDirectory::active_key`] if the store answers at once
    /// (`None`: it must wait; use `active_key`).
    pub fn active_key_now(
        &self,
        access_key_id: &str,
    ) -> Option<StoreResult<Option<(AccessKey, Account)>>> {
        operation::read_now(&self.store, |tx| {
            Ok(self.keys_view(tx)?.keys.get(access_key_id).cloned())
        })
    }

    /// The active keys with their accounts, from the view when it is still
    /// at the stored directory revision, else read and kept.
    fn keys_view(&self, tx: &Tx<'_>) -> StoreResult<Arc<Stamped<KeysView>>> {
        self.view.current(tx, |tx| {
            let accounts: std::collections::HashMap<String, Account> = tx
                .scan::<Account>(ACCOUNTS, b"")?
                .into_iter()
                .map(|a| (a.id.clone(), a))
                .collect();
            let keys = tx
                .scan::<AccessKey>(ACCESS_KEYS, b"")?
                .into_iter()
                .filter(|k| k.active)
                .filter_map(|k| {
                    let account = accounts.get(&k.account_id)?.clone();
                    Some((k.access_key_id.clone(), (k, account)))
                })
                .collect();
            Ok(KeysView { keys })
        })
    }
}
