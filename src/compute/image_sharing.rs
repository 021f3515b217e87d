//! Launch permissions: ModifyImageAttribute and ResetImageAttribute on
//! `launchPermission`, and the images other accounts shared with an
//! account.
//!
//! An image's owner may make it public (`group=all`) or grant it to
//! account ids; those accounts then see it in DescribeImages (with
//! `ExecutableBy.N=self`), launch it, and copy it, and lose it when the
//! grant goes or the image is deregistered. The grants are kept on the image
//! and indexed by grantee, `image_grants/<grantee or all>/<image-id>` ->
//! owner, so an account finds what was shared with it without reading
//! every account's images; image and index are written in one commit.
//! Only the owner changes or reads an image's permissions; an account that
//! merely sees the image gets `UnauthorizedOperation`, one that does not
//! `InvalidAMIID.NotFound`.

use super::images::{Image, IMAGES};
use super::operation::{self, Tx};
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::store::StoreResult;

pub use super::grants::ALL;
use super::grants::{grantees, IMAGE_GRANTS};

/// Who a permission names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    Account(String),
    All,
}

/// A change to a resource's permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionChange {
    pub add: Vec<Grantee>,
    pub remove: Vec<Grantee>,
}

impl PermissionChange {
    /// Applies the change to `accounts` and `public` (the owner itself is
    /// never listed).
    pub fn apply(&self, owner: &str, accounts: &mut Vec<String>, public: &mut bool) {
        for grantee in &self.add {
            match grantee {
                Grantee::All => *public = true,
                Grantee::Account(id) if id == owner => {}
                Grantee::Account(id) => {
                    if !accounts.contains(id) {
                        accounts.push(id.clone());
                    }
                }
            }
        }
        for grantee in &self.remove {
            match grantee {
                Grantee::All => *public = false,
                Grantee::Account(id) => accounts.retain(|a| a != id),
            }
        }
    }

    /// Checks the account ids named (`InvalidUserID.Malformed`).
    pub fn check(&self) -> ApiResult<()> {
        for grantee in self.add.iter().chain(&self.remove) {
            if let Grantee::Account(id) = grantee {
                check_account_id(id)?;
            }
        }
        Ok(())
    }
}

fn image_key(account_id: &str, image_id: &str) -> Vec<u8> {
    format!("{account_id}/{image_id}").into_bytes()
}

/// Checks an account id as EC2 does (twelve digits).
pub fn check_account_id(id: &str) -> ApiResult<()> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ApiError::NotFound {
            code: crate::error::codes::INVALID_USER_ID_MALFORMED,
            message: format!("User ID '{id}' is invalid"),
        })
    }
}

/// Writes in `tx` the index entries of `image`'s permissions, removing
/// those of `before` that went.
pub(super) fn index_grants(tx: &mut Tx<'_>, before: Option<&Image>, image: &Image) {
    let before = before
        .map(|b| grantees(&b.launch_permissions, b.public))
        .unwrap_or_default();
    let now = grantees(&image.launch_permissions, image.public);
    IMAGE_GRANTS.reindex(tx, &image.owner_id, &image.id, &before, &now);
}

/// Images shared with `account_id` (granted to it or public), read now
/// (untracked).
pub(super) fn shared_with(tx: &Tx<'_>, account_id: &str) -> StoreResult<Vec<Image>> {
    let mut found = Vec::new();
    for (owner, image_id) in IMAGE_GRANTS.shared_with(tx, account_id)? {
        if let Some(image) = tx.peek_record::<Image>(IMAGES, &image_key(&owner, &image_id))? {
            found.push(image);
        }
    }
    Ok(found)
}

/// One image shared with `account_id`, if it is.
pub(super) fn shared_image(
    tx: &Tx<'_>,
    account_id: &str,
    image_id: &str,
) -> StoreResult<Option<Image>> {
    match IMAGE_GRANTS.owner_for(tx, account_id, image_id)? {
        Some(owner) => tx.peek_record::<Image>(IMAGES, &image_key(&owner, image_id)),
        None => Ok(None),
    }
}

/// An image the account owns or that is shared with it, read in `tx`
/// (tracked: a revoke, a reset or a deregistration meanwhile makes the
/// operation run again). Catalogue images are not stored.
pub(super) fn usable_image_in(
    tx: &mut Tx<'_>,
    account_id: &str,
    image_id: &str,
) -> StoreResult<Option<Image>> {
    if let Some(own) = tx.get::<Image>(IMAGES, &image_key(account_id, image_id))? {
        return Ok(Some(own));
    }
    for grantee in [account_id, ALL] {
        let grant = format!("{grantee}/{image_id}").into_bytes();
        if let Some(owner) = tx.get::<String>(IMAGE_GRANTS.tree(), &grant)? {
            return tx.get::<Image>(IMAGES, &image_key(&owner, image_id));
        }
    }
    Ok(None)
}

impl Compute {
    /// The caller's own image, for a change of its attributes: another
    /// account's visible image is `UnauthorizedOperation`, an invisible or
    /// unknown one `InvalidAMIID.NotFound`.
    pub(super) fn owned_image_in(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        image_id: &str,
    ) -> ApiResult<Image> {
        if let Some(image) = tx.get::<Image>(IMAGES, &image_key(account_id, image_id))? {
            return Ok(image);
        }
        if self.catalog.image(image_id).is_some()
            || shared_image(tx, account_id, image_id)?.is_some()
        {
            return Err(ApiError::UnauthorizedOperation);
        }
        Err(super::kinds::ResourceKind::Image.not_found(image_id))
    }

    /// ModifyImageAttribute `launchPermission`.
    pub async fn modify_launch_permissions(
        &self,
        account_id: &str,
        image_id: &str,
        change: PermissionChange,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::Image.check(image_id)?;
        change.check()?;
        operation::run(&self.store, dry_run, |tx| {
            let before = self.owned_image_in(tx, account_id, image_id)?;
            let mut image = before.clone();
            change.apply(account_id, &mut image.launch_permissions, &mut image.public);
            index_grants(tx, Some(&before), &image);
            tx.put(IMAGES, image_key(account_id, image_id), &image);
            Ok(())
        })
        .await
    }

    /// ResetImageAttribute `launchPermission`: private again.
    pub async fn reset_launch_permissions(
        &self,
        account_id: &str,
        image_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::Image.check(image_id)?;
        operation::run(&self.store, dry_run, |tx| {
            let before = self.owned_image_in(tx, account_id, image_id)?;
            let image = Image {
                public: false,
                launch_permissions: Vec::new(),
                ..before.clone()
            };
            index_grants(tx, Some(&before), &image);
            tx.put(IMAGES, image_key(account_id, image_id), &image);
            Ok(())
        })
        .await
    }

    /// ModifyImageAttribute `description`.
    pub async fn modify_image_description(
        &self,
        account_id: &str,
        image_id: &str,
        description: String,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::Image.check(image_id)?;
        if description.chars().count() > 255 {
            return Err(ApiError::invalid_value(
                "Image descriptions may be at most 255 characters",
            ));
        }
        operation::run(&self.store, dry_run, |tx| {
            let mut image = self.owned_image_in(tx, account_id, image_id)?;
            image.description = Some(description.clone());
            tx.put(IMAGES, image_key(account_id, image_id), &image);
            Ok(())
        })
        .await
    }
}
