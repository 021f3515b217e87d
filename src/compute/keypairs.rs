//! Key pairs: created (the private key returned once, never stored),
//! imported, listed and deleted, per account.
//!
//! A key pair is stored with its public key, type and AWS-style fingerprint
//! under `<account>/<name>`; names are unique per account
//! (`InvalidKeyPair.Duplicate`), unknown ones `InvalidKeyPair.NotFound`.
//! DeleteKeyPair is idempotent, as in EC2. RunInstances checks `KeyName`
//! against these. The name is the record's key, so a create expects it
//! absent; the quota is the account's key pair usage record (see `usage`).

use super::instances::Tag;
use super::keymaterial::{self, KeyFormat, KeyType};
use super::usage::Kind;
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub(crate) const KEY_PAIRS: &str = "key_pairs";

/// A stored key pair (public half only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPair {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub key_type: KeyType,
    pub fingerprint: String,
    pub public_key: String,
    pub tags: Vec<Tag>,
    pub created_at: DateTime<Utc>,
}

impl crate::store::Record for KeyPair {}

fn key(account_id: &str, name: &str) -> Vec<u8> {
    format!("{account_id}/{name}").into_bytes()
}

/// Key names: 1 to 255 ASCII characters.
fn check_name(name: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > 255 || !name.is_ascii() {
        return Err(ApiError::invalid_value(
            "Key pair names must be 1 to 255 ASCII characters",
        ));
    }
    Ok(())
}

fn duplicate(name: &str) -> ApiError {
    ApiError::NotFound {
        code: crate::error::codes::INVALID_KEY_PAIR_DUPLICATE,
        message: format!("The keypair '{name}' already exists."),
    }
}

fn not_found(what: &str) -> ApiError {
    ApiError::NotFound {
        code: super::kinds::ResourceKind::KeyPair.not_found_code(),
        message: format!("The key pair '{what}' does not exist"),
    }
}

impl Compute {
    /// Every key pair of the account, by name.
    pub async fn key_pairs(&self, account_id: &str) -> ApiResult<Vec<KeyPair>> {
        Ok(self
            .store
            .records(KEY_PAIRS, format!("{account_id}/").as_bytes())
            .await?)
    }

    /// The key pair `name` of the account.
    pub async fn key_pair(&self, account_id: &str, name: &str) -> ApiResult<Option<KeyPair>> {
        Ok(self
            .store
            .get_record(KEY_PAIRS, &key(account_id, name))
            .await?)
    }

    /// Stores a new pair: its key (the name) must be absent and the
    /// account's key pair usage under the quota, in one operation.
    async fn store_new_key_pair(&self, pair: &KeyPair, dry_run: bool) -> ApiResult<()> {
        let account_id = pair.account_id.as_str();
        super::operation::run(&self.store, dry_run, |tx| {
            let mut usage = self.key_pair_usage(tx, account_id)?;
            let key = key(account_id, &pair.name);
            if tx.get::<KeyPair>(KEY_PAIRS, &key)?.is_some() {
                return Err(duplicate(&pair.name));
            }
            if usage.count >= u64::from(self.quotas.max_key_pairs) {
                return Err(ApiError::LimitExceeded {
                    code: crate::error::codes::KEY_PAIR_LIMIT_EXCEEDED,
                    message: format!("Maximum of {} key pairs reached", self.quotas.max_key_pairs),
                });
            }
            tx.put(KEY_PAIRS, key, pair);
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::KeyPairs, &usage);
            Ok(())
        })
        .await
    }

    fn key_pair_usage(
        &self,
        tx: &mut super::operation::Tx<'_>,
        account_id: &str,
    ) -> crate::store::StoreResult<super::usage::Usage> {
        super::usage::read(tx, account_id, Kind::KeyPairs, |tx| {
            super::usage::count_of(tx, KEY_PAIRS, format!("{account_id}/").as_bytes())
        })
    }

    /// True when the account has a key pair `name`, read in `tx` (a launch
    /// naming it then conflicts with its deletion).
    pub(crate) fn key_pair_in(
        &self,
        tx: &mut super::operation::Tx<'_>,
        account_id: &str,
        name: &str,
    ) -> crate::store::StoreResult<Option<KeyPair>> {
        tx.get::<KeyPair>(KEY_PAIRS, &key(account_id, name))
    }

    pub async fn create_key_pair(
        &self,
        account_id: &str,
        name: &str,
        key_type: KeyType,
        format: KeyFormat,
        tags: Vec<Tag>,
        dry_run: bool,
    ) -> ApiResult<(KeyPair, Secret)> {
        check_name(name)?;
        // Every check the real request makes, without making a key: a
        // DryRun ends here, and a request bound to fail (a duplicate name,
        // the quota) draws no key. The commit checks again.
        let placeholder = KeyPair {
            id: String::new(),
            account_id: account_id.to_string(),
            name: name.to_string(),
            key_type,
            fingerprint: String::new(),
            public_key: String::new(),
            tags: tags.clone(),
            created_at: self.clock.now(),
        };
        match self.store_new_key_pair(&placeholder, true).await {
            Err(ApiError::DryRunOperation) if !dry_run => {}
            Err(other) => return Err(other),
            Ok(()) => return Err(ApiError::InternalError),
        }
        // An RSA key takes a while to draw: off the request threads, and a
        // few at a time whatever the tenants ask (see `key_draws`).
        let _permit = key_draws()
            .acquire()
            .await
            .map_err(|_| ApiError::InternalError)?;
        let key_name = name.to_string();
        let generated =
            tokio::task::spawn_blocking(move || keymaterial::generate(key_type, format, &key_name))
                .await
                .map_err(|_| ApiError::InternalError)??;
        let pair = KeyPair {
            id: super::ids::new_id("key"),
            account_id: account_id.to_string(),
            name: name.to_string(),
            key_type,
            fingerprint: generated.fingerprint,
            public_key: generated.public_openssh,
            tags,
            created_at: self.clock.now(),
        };
        self.store_new_key_pair(&pair, false).await?;
        Ok((pair, generated.private_material))
    }

    /// ImportKeyPair from an OpenSSH public key.
    pub async fn import_key_pair(
        &self,
        account_id: &str,
        name: &str,
        material: &[u8],
        tags: Vec<Tag>,
        dry_run: bool,
    ) -> ApiResult<KeyPair> {
        check_name(name)?;
        let imported = keymaterial::import(material)?;
        let pair = KeyPair {
            id: super::ids::new_id("key"),
            account_id: account_id.to_string(),
            name: name.to_string(),
            key_type: imported.key_type,
            fingerprint: imported.fingerprint,
            public_key: imported.public_openssh,
            tags,
            created_at: self.clock.now(),
        };
        self.store_new_key_pair(&pair, dry_run).await?;
        Ok(pair)
    }

    /// The named pairs and pairs with the given ids (all must exist), or all.
    pub async fn find_key_pairs(
        &self,
        account_id: &str,
        names: &[String],
        ids: &[String],
    ) -> ApiResult<Vec<KeyPair>> {
        for id in ids {
            super::kinds::ResourceKind::KeyPair.check(id)?;
        }
        let all = self.key_pairs(account_id).await?;
        if let Some(missing) = names.iter().find(|n| !all.iter().any(|p| &p.name == *n)) {
            return Err(not_found(missing));
        }
        if let Some(missing) = ids.iter().find(|id| !all.iter().any(|p| &p.id == *id)) {
            return Err(not_found(missing));
        }
        Ok(all
            .into_iter()
            .filter(|p| {
                (names.is_empty() && ids.is_empty())
                    || names.contains(&p.name)
                    || ids.contains(&p.id)
            })
            .collect())
    }

    /// DeleteKeyPair by name or id; deleting what does not exist succeeds.
    /// Returns the id of the deleted pair.
    pub async fn delete_key_pair(
        &self,
        account_id: &str,
        name: Option<&str>,
        id: Option<&str>,
        dry_run: bool,
    ) -> ApiResult<Option<String>> {
        if let Some(id) = id {
            super::kinds::ResourceKind::KeyPair.check(id)?;
        }
        super::operation::run(&self.store, dry_run, |tx| {
            let pair = match (name, id) {
                (Some(name), _) => tx.get::<KeyPair>(KEY_PAIRS, &key(account_id, name))?,
                (None, Some(id)) => {
                    // Found by listing: the usage record guards the listing.
                    self.key_pair_usage(tx, account_id)?;
                    tx.scan::<KeyPair>(KEY_PAIRS, format!("{account_id}/").as_bytes())?
                        .into_iter()
                        .find(|p| p.id == id)
                }
                (None, None) => return Err(ApiError::MissingParameter("KeyName".into())),
            };
            let Some(pair) = pair else { return Ok(None) };
            let mut usage = self.key_pair_usage(tx, account_id)?;
            tx.delete(KEY_PAIRS, key(account_id, &pair.name));
            usage.count = usage.count.saturating_sub(1);
            super::usage::write(tx, account_id, Kind::KeyPairs, &usage);
            Ok(Some(pair.id))
        })
        .await
    }
}

/// Key pairs drawn at once, across all tenants: an RSA key costs tens of
/// milliseconds of one core, so a burst of CreateKeyPair waits its turn
/// rather than filling the blocking pool the store's durable writes use.
fn key_draws() -> &'static tokio::sync::Semaphore {
    static KEY_DRAWS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    KEY_DRAWS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}
