//! The index of what one account shared with another (or with everyone):
//! `<tree>/<grantee or all>/<resource-id>` -> owner account.
//!
//! Launch permissions on images and create-volume permissions on snapshots
//! are kept on the resource; this index lets an account find what was
//! shared with it without reading every account's resources. It is written
//! in the same commit as the resource's permissions, so the two never
//! disagree.

use super::operation::Tx;
use crate::store::StoreResult;

/// The group that means everyone.
pub const ALL: &str = "all";

/// One kind's index.
#[derive(Debug, Clone, Copy)]
pub struct GrantIndex {
    tree: &'static str,
}

pub const IMAGE_GRANTS: GrantIndex = GrantIndex {
    tree: "image_grants",
};
pub const SNAPSHOT_GRANTS: GrantIndex = GrantIndex {
    tree: "snapshot_grants",
};

fn grant_key(grantee: &str, resource_id: &str) -> Vec<u8> {
    format!("{grantee}/{resource_id}").into_bytes()
}

impl GrantIndex {
    /// The tree the index lives in.
    pub fn tree(&self) -> &'static str {
        self.tree
    }

    /// True when `resource_id` is shared with `account_id` (or with
    /// everyone), read in `tx` (tracked: a revoke meanwhile conflicts).
    pub fn granted_in(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        resource_id: &str,
    ) -> StoreResult<bool> {
        for grantee in [account_id, ALL] {
            if tx
                .get_raw(self.tree, &grant_key(grantee, resource_id))?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Rewrites in `tx` the entries of `resource_id`: `before` are the
    /// grantees it had (accounts, or `all`), `now` those it has.
    pub fn reindex(
        &self,
        tx: &mut Tx<'_>,
        owner: &str,
        resource_id: &str,
        before: &[String],
        now: &[String],
    ) {
        for gone in before.iter().filter(|n| !now.contains(n)) {
            tx.delete(self.tree, grant_key(gone, resource_id));
        }
        for grantee in now {
            tx.put(
                self.tree,
                grant_key(grantee, resource_id),
                &owner.to_string(),
            );
        }
    }

    /// `(owner, resource id)` of everything shared with `account_id` or
    /// with everyone by another account, read now (untracked).
    pub fn shared_with(&self, tx: &Tx<'_>, account_id: &str) -> StoreResult<Vec<(String, String)>> {
        let mut found: Vec<(String, String)> = Vec::new();
        for grantee in [account_id, ALL] {
            let prefix = format!("{grantee}/");
            for (key, owner) in tx.scan_entries(self.tree, prefix.as_bytes())? {
                let owner: String = crate::store::decode(&owner)?;
                let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                if owner != account_id && !found.iter().any(|(_, known)| known == &id) {
                    found.push((owner, id));
                }
            }
        }
        Ok(found)
    }

    /// The owner of `resource_id` when it is shared with `account_id` or
    /// with everyone (untracked).
    pub fn owner_for(
        &self,
        tx: &Tx<'_>,
        account_id: &str,
        resource_id: &str,
    ) -> StoreResult<Option<String>> {
        for grantee in [account_id, ALL] {
            if let Some(owner) =
                tx.peek_record::<String>(self.tree, &grant_key(grantee, resource_id))?
            {
                return Ok(Some(owner));
            }
        }
        Ok(None)
    }
}

/// The grantees of a resource: its accounts, and `all` when public.
pub fn grantees(accounts: &[String], public: bool) -> Vec<String> {
    let mut names = accounts.to_vec();
    if public {
        names.push(ALL.to_string());
    }
    names
}
