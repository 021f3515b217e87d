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

/// `<grantee or all>/<image-id>` -> owner account.
const IMAGE_GRANTS: &str = "image_grants";

/// The group that means everyone.
pub const ALL: &str = "all";

/// Who a permission names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    Account(String),
    All,
}

/// A change to an image's launch permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionChange {
    pub add: Vec<Grantee>,
    pub remove: Vec<Grantee>,
}

fn grant_key(grantee: &str, image_id: &str) -> Vec<u8> {
    format!("{grantee}/{image_id}").into_bytes()
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
    let names = |image: &Image| -> Vec<String> {
        let mut names = image.launch_permissions.clone();
        if image.public {
            names.push(ALL.to_string());
        }
        names
    };
    let now = names(image);
    if let Some(before) = before {
        for gone in names(before).into_iter().filter(|n| !now.contains(n)) {
            tx.delete(IMAGE_GRANTS, grant_key(&gone, &image.id));
        }
    }
    for grantee in now {
        tx.put(
            IMAGE_GRANTS,
            grant_key(&grantee, &image.id),
            &image.owner_id,
        );
    }
}

/// Images shared with `account_id` (granted to it or public), read now
/// (untracked).
pub(super) fn shared_with(tx: &Tx<'_>, account_id: &str) -> StoreResult<Vec<Image>> {
    let mut found = Vec::new();
    for grantee in [account_id, ALL] {
        for (key, owner) in tx.scan_entries(IMAGE_GRANTS, format!("{grantee}/").as_bytes())? {
            let owner: String = crate::store::decode(&owner)?;
            let image_id = String::from_utf8_lossy(&key[grantee.len() + 1..]).into_owned();
            if owner == account_id {
                continue;
            }
            if let Some(image) = tx.peek_record::<Image>(IMAGES, &image_key(&owner, &image_id))? {
                if !found.iter().any(|i: &Image| i.id == image.id) {
                    found.push(image);
                }
            }
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
    for grantee in [account_id, ALL] {
        if let Some(owner) =
            tx.peek_record::<String>(IMAGE_GRANTS, &grant_key(grantee, image_id))?
        {
            if let Some(image) = tx.peek_record::<Image>(IMAGES, &image_key(&owner, image_id))? {
                return Ok(Some(image));
            }
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
        for grantee in change.add.iter().chain(&change.remove) {
            if let Grantee::Account(id) = grantee {
                check_account_id(id)?;
            }
        }
        operation::run(&self.store, dry_run, |tx| {
            let before = self.owned_image_in(tx, account_id, image_id)?;
            let mut image = before.clone();
            for grantee in &change.add {
                match grantee {
                    Grantee::All => image.public = true,
                    Grantee::Account(id) if id == account_id => {}
                    Grantee::Account(id) => {
                        if !image.launch_permissions.contains(id) {
                            image.launch_permissions.push(id.clone());
                        }
                    }
                }
            }
            for grantee in &change.remove {
                match grantee {
                    Grantee::All => image.public = false,
                    Grantee::Account(id) => image.launch_permissions.retain(|a| a != id),
                }
            }
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
