//! Accounts and their access keys.
//!
//! Every EC2 resource belongs to one account (a 12-digit owner id) and is
//! invisible to the others; every access key maps to one account and user.
//! Keys live in the store and in a read-mostly map the signature verifier
//! consults on every request. Deactivating a key takes effect at once. The
//! secret of a new key is returned once to its creator and otherwise only
//! used to verify signatures.

use crate::config::AccountConfig;
use crate::error::{ApiError, ApiResult};
use crate::secret::Secret;
use crate::store::{StoreHandle, StoreResult, WriteBatch};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

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
}

impl crate::store::Record for AccessKey {}

#[derive(Default)]
struct Directory {
    accounts: HashMap<String, Account>,
    keys: HashMap<String, AccessKey>,
}

/// All accounts and keys, cached from the store.
pub struct AccountDirectory {
    store: Arc<StoreHandle>,
    directory: RwLock<Directory>,
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
    /// Loads every account and key from the store.
    pub fn load(store: Arc<StoreHandle>) -> StoreResult<Self> {
        let mut directory = Directory::default();
        for account in store.records::<Account>(ACCOUNTS, b"")? {
            directory.accounts.insert(account.id.clone(), account);
        }
        for key in store.records::<AccessKey>(ACCESS_KEYS, b"")? {
            directory.keys.insert(key.access_key_id.clone(), key);
        }
        Ok(Self {
            store,
            directory: RwLock::new(directory),
        })
    }

    /// Creates or updates the accounts and fixed keys of the configuration.
    /// The file sets a key's account and secret; whether the key is active
    /// is decided at runtime and kept across restarts (see README,
    /// "Security").
    pub async fn seed(&self, configured: &[AccountConfig], now: DateTime<Utc>) -> StoreResult<()> {
        let mut batch = WriteBatch::new();
        let sequence = {
            let mut directory = crate::sync::write(&self.directory);
            for config in configured {
                let account = Account {
                    id: config.id.clone(),
                    name: config.name.clone(),
                    admin: config.admin,
                    created_at: directory
                        .accounts
                        .get(&config.id)
                        .map_or(now, |a| a.created_at),
                };
                let key = AccessKey {
                    access_key_id: config.access_key_id.clone(),
                    secret: config.secret_access_key.clone(),
                    account_id: config.id.clone(),
                    user_name: config.name.clone(),
                    // An operator's runtime decision outlives the file: a
                    // key deactivated at runtime stays deactivated.
                    active: directory
                        .keys
                        .get(&config.access_key_id)
                        .is_none_or(|k| k.active),
                    created_at: directory
                        .keys
                        .get(&config.access_key_id)
                        .map_or(now, |k| k.created_at),
                };
                batch.put_record(ACCOUNTS, account.id.as_bytes(), &account);
                batch.put_record(ACCESS_KEYS, key.access_key_id.as_bytes(), &key);
                directory.accounts.insert(account.id.clone(), account);
                directory.keys.insert(key.access_key_id.clone(), key);
            }
            self.store.apply(&batch)?
        };
        self.store.durable(sequence).await
    }

    /// On a first start with no admin key at all, creates an admin account
    /// and key and returns them (to print once).
    pub async fn ensure_admin(&self, now: DateTime<Utc>) -> ApiResult<Option<AccessKey>> {
        let has_admin = {
            let directory = crate::sync::read(&self.directory);
            directory.keys.values().any(|k| {
                k.active
                    && directory
                        .accounts
                        .get(&k.account_id)
                        .is_some_and(|a| a.admin)
            })
        };
        if has_admin {
            return Ok(None);
        }
        let key = self
            .create_access_key(&new_account_id(), Some("admin"), Some(true), now)
            .await?;
        Ok(Some(key))
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
        let mut batch = WriteBatch::new();
        let (key, sequence) = {
            let mut directory = crate::sync::write(&self.directory);
            let account = match directory.accounts.get(account_id) {
                Some(account) => account.clone(),
                None => {
                    let name = account_name
                        .ok_or_else(|| ApiError::MissingParameter("AccountName".into()))?;
                    let account = Account {
                        id: account_id.to_string(),
                        name: name.to_string(),
                        admin: admin.unwrap_or(false),
                        created_at: now,
                    };
                    batch.put_record(ACCOUNTS, account.id.as_bytes(), &account);
                    directory
                        .accounts
                        .insert(account.id.clone(), account.clone());
                    account
                }
            };
            let key = AccessKey {
                access_key_id: format!("AKIA{}", random_string(KEY_ID_ALPHABET, 16)),
                secret: Secret::new(random_string(SECRET_ALPHABET, 40)),
                account_id: account.id.clone(),
                user_name: account.name.clone(),
                active: true,
                created_at: now,
            };
            batch.put_record(ACCESS_KEYS, key.access_key_id.as_bytes(), &key);
            let sequence = self.store.apply(&batch)?;
            directory
                .keys
                .insert(key.access_key_id.clone(), key.clone());
            (key, sequence)
        };
        self.store.durable(sequence).await?;
        Ok(key)
    }

    /// Creates the account `account_id` (no key) unless it exists: for
    /// development mode, where any access key names its account.
    pub async fn ensure_account(
        &self,
        account_id: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<()> {
        let sequence = {
            let mut directory = crate::sync::write(&self.directory);
            if directory.accounts.contains_key(account_id) {
                return Ok(());
            }
            let account = Account {
                id: account_id.to_string(),
                name: name.to_string(),
                admin: false,
                created_at: now,
            };
            let mut batch = WriteBatch::new();
            batch.put_record(ACCOUNTS, account.id.as_bytes(), &account);
            let sequence = self.store.apply(&batch)?;
            directory.accounts.insert(account.id.clone(), account);
            sequence
        };
        self.store.durable(sequence).await?;
        Ok(())
    }

    /// Keys of one account (or of all), secrets left in place for the caller
    /// to drop; sorted by account then creation.
    pub fn access_keys(&self, account_id: Option<&str>) -> Vec<AccessKey> {
        let directory = crate::sync::read(&self.directory);
        let mut keys: Vec<AccessKey> = directory
            .keys
            .values()
            .filter(|k| account_id.is_none_or(|id| k.account_id == id))
            .cloned()
            .collect();
        keys.sort_by(|a, b| {
            (&a.account_id, a.created_at, &a.access_key_id).cmp(&(
                &b.account_id,
                b.created_at,
                &b.access_key_id,
            ))
        });
        keys
    }

    /// Every account's id.
    pub fn account_ids(&self) -> Vec<String> {
        crate::sync::read(&self.directory)
            .accounts
            .keys()
            .cloned()
            .collect()
    }

    pub fn account(&self, account_id: &str) -> Option<Account> {
        crate::sync::read(&self.directory)
            .accounts
            .get(account_id)
            .cloned()
    }

    /// Deactivates a key. Refused when it is the last active admin key,
    /// which would lock every operator out.
    pub async fn deactivate(&self, access_key_id: &str) -> ApiResult<()> {
        let sequence = {
            let mut directory = crate::sync::write(&self.directory);
            let key = directory
                .keys
                .get(access_key_id)
                .cloned()
                .ok_or_else(|| ApiError::AccessKeyNotFound(access_key_id.into()))?;
            let is_admin = |d: &Directory, k: &AccessKey| {
                k.active && d.accounts.get(&k.account_id).is_some_and(|a| a.admin)
            };
            if is_admin(&directory, &key)
                && directory
                    .keys
                    .values()
                    .filter(|k| is_admin(&directory, k))
                    .count()
                    == 1
            {
                return Err(ApiError::invalid_value(
                    "Refusing to deactivate the last active admin access key",
                ));
            }
            let updated = AccessKey {
                active: false,
                ..key
            };
            let mut batch = WriteBatch::new();
            batch.put_record(ACCESS_KEYS, access_key_id.as_bytes(), &updated);
            let sequence = self.store.apply(&batch)?;
            directory.keys.insert(access_key_id.to_string(), updated);
            sequence
        };
        self.store.durable(sequence).await?;
        Ok(())
    }
}

impl AccountDirectory {
    /// The active key `access_key_id` and its account, if there is one
    /// (what the signature verifier needs: see `app`'s credential adapter).
    pub fn active_key(&self, access_key_id: &str) -> Option<(AccessKey, Account)> {
        let directory = crate::sync::read(&self.directory);
        let key = directory.keys.get(access_key_id).filter(|k| k.active)?;
        let account = directory.accounts.get(&key.account_id)?;
        Some((key.clone(), account.clone()))
    }
}
