//! Launch templates and their versions: CreateLaunchTemplate,
//! CreateLaunchTemplateVersion, ModifyLaunchTemplate, DeleteLaunchTemplate,
//! DeleteLaunchTemplateVersions, the listings, and the version a launch
//! names.
//!
//! A version's data is kept as RunInstances parameters (`ImageId`,
//! `SecurityGroupId.1`, `TagSpecification.1.Tag.1.Key`, ...), the names EC2
//! gives LaunchTemplateData's members on the wire, so a launch from a
//! template is the same launch as one that sent them: the request's own
//! parameters win member by member, as in EC2. Names are unique per account
//! (`InvalidLaunchTemplateName.AlreadyExistsException`), held by their own
//! key written on the condition that it is absent. Versions count from 1;
//! `$Latest` and `$Default` name the newest and the default one; a new
//! version from `SourceVersion` takes the source's data with the members it
//! gives replaced. The default version cannot be deleted; deleting a
//! template deletes its versions.

use super::idempotency::ClientToken;
use super::instances::Tag;
use super::operation::{self, Tx};
use super::Compute;
use crate::error::{codes, ApiError, ApiResult};
use crate::store::StoreResult;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `<account>/<lt-id>`.
pub(crate) const LAUNCH_TEMPLATES: &str = "launch_templates";
/// `<account>/<name>`: the template a name belongs to.
const LAUNCH_TEMPLATE_NAMES: &str = "launch_template_names";
/// `<account>/<lt-id>/<version, 20 digits>`.
const LAUNCH_TEMPLATE_VERSIONS: &str = "launch_template_versions";

const CREATE: &str = "CreateLaunchTemplate";
const CREATE_VERSION: &str = "CreateLaunchTemplateVersion";

/// Most versions one DeleteLaunchTemplateVersions may name (EC2's limit).
pub const MAX_VERSIONS_PER_DELETE: usize = 200;

/// EC2's quota of versions per template.
pub const MAX_VERSIONS: u64 = 10_000;

/// A launch template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchTemplate {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub default_version: u64,
    /// The newest version that exists.
    pub latest_version: u64,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The highest number ever given (a deleted version's number is not
    /// given again); `None`: `latest_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highest_version: Option<u64>,
}

impl crate::store::Record for LaunchTemplate {}

impl LaunchTemplate {
    fn highest(&self) -> u64 {
        self.highest_version.unwrap_or(self.latest_version)
    }
}

/// One version of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchTemplateVersion {
    pub template_id: String,
    pub template_name: String,
    pub account_id: String,
    pub number: u64,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    /// RunInstances parameters, by name.
    pub data: BTreeMap<String, String>,
}

impl crate::store::Record for LaunchTemplateVersion {}

/// What CreateLaunchTemplate asks for.
#[derive(Debug, Clone)]
pub struct NewLaunchTemplate {
    pub name: String,
    pub description: Option<String>,
    /// Version 1's data, as RunInstances parameters.
    pub data: BTreeMap<String, String>,
    pub tags: Vec<Tag>,
}

/// What CreateLaunchTemplateVersion asks for.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// The version whose data this one starts from.
    pub source: Option<VersionRef>,
    pub description: Option<String>,
    /// RunInstances parameters (replacing the source's, member by member).
    pub data: BTreeMap<String, String>,
}

/// How a request names a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateRef {
    Id(String),
    Name(String),
}

/// Which versions: a number, `$Latest` or `$Default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Number(u64),
    Latest,
    Default,
}

impl VersionRef {
    pub fn parse(text: &str) -> ApiResult<Self> {
        match text {
            "$Latest" => Ok(VersionRef::Latest),
            "$Default" => Ok(VersionRef::Default),
            number => number
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .map(VersionRef::Number)
                .ok_or_else(|| {
                    ApiError::invalid_value(format!(
                        "Value ({text}) for parameter version is invalid. Expecting a version number, $Latest or $Default."
                    ))
                }),
        }
    }

    fn number(self, template: &LaunchTemplate) -> u64 {
        match self {
            VersionRef::Number(n) => n,
            VersionRef::Latest => template.latest_version,
            VersionRef::Default => template.default_version,
        }
    }
}

/// The top-level member of a RunInstances parameter (`SecurityGroupId` of
/// `SecurityGroupId.2`).
pub fn member_of(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// `base` with every member `changes` gives replaced by its values there.
pub fn overlay(
    base: &BTreeMap<String, String>,
    changes: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let replaced: std::collections::HashSet<&str> =
        changes.keys().map(|name| member_of(name)).collect();
    base.iter()
        .filter(|(name, _)| !replaced.contains(member_of(name)))
        .chain(changes.iter())
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

fn template_key(account_id: &str, id: &str) -> Vec<u8> {
    format!("{account_id}/{id}").into_bytes()
}

fn name_key(account_id: &str, name: &str) -> Vec<u8> {
    format!("{account_id}/{name}").into_bytes()
}

fn version_key(account_id: &str, id: &str, number: u64) -> Vec<u8> {
    format!("{account_id}/{id}/{number:020}").into_bytes()
}

fn name_not_found(name: &str) -> ApiError {
    ApiError::NotFound {
        code: codes::INVALID_LAUNCH_TEMPLATE_NAME_NOT_FOUND,
        message: format!("At least one of the launch templates specified in the request does not exist: '{name}'"),
    }
}

fn version_not_found(id: &str, number: u64) -> ApiError {
    ApiError::NotFound {
        code: codes::INVALID_LAUNCH_TEMPLATE_VERSION_NOT_FOUND,
        message: format!("Could not find launch template version {number} of {id}"),
    }
}

/// Checks a template name as EC2 does: 3 to 128 of `[A-Za-z0-9().-/_]`.
pub fn check_name(name: &str) -> ApiResult<()> {
    let valid = (3..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "().-/_".contains(c));
    if valid {
        Ok(())
    } else {
        Err(ApiError::NotFound {
            code: codes::INVALID_LAUNCH_TEMPLATE_NAME_MALFORMED,
            message: format!(
                "A launch template name must be 3 to 128 characters of letters, digits and ().-/_: '{name}'"
            ),
        })
    }
}

/// The template `reference` names, read in `tx`.
fn template_in(
    tx: &mut Tx<'_>,
    account_id: &str,
    reference: &TemplateRef,
) -> ApiResult<LaunchTemplate> {
    let id = match reference {
        TemplateRef::Id(id) => {
            super::kinds::ResourceKind::LaunchTemplate.check(id)?;
            id.clone()
        }
        TemplateRef::Name(name) => tx
            .get::<String>(LAUNCH_TEMPLATE_NAMES, &name_key(account_id, name))?
            .ok_or_else(|| name_not_found(name))?,
    };
    tx.get::<LaunchTemplate>(LAUNCH_TEMPLATES, &template_key(account_id, &id))?
        .ok_or_else(|| match reference {
            TemplateRef::Name(name) => name_not_found(name),
            TemplateRef::Id(id) => super::kinds::ResourceKind::LaunchTemplate.not_found(id),
        })
}

fn version_in(
    tx: &mut Tx<'_>,
    template: &LaunchTemplate,
    number: u64,
) -> ApiResult<LaunchTemplateVersion> {
    tx.get::<LaunchTemplateVersion>(
        LAUNCH_TEMPLATE_VERSIONS,
        &version_key(&template.account_id, &template.id, number),
    )?
    .ok_or_else(|| version_not_found(&template.id, number))
}

/// Every version of a template, by number (untracked).
fn versions_in(tx: &Tx<'_>, template: &LaunchTemplate) -> StoreResult<Vec<LaunchTemplateVersion>> {
    tx.scan(
        LAUNCH_TEMPLATE_VERSIONS,
        format!("{}/{}/", template.account_id, template.id).as_bytes(),
    )
}

/// The outcome of deleting one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionDeletion {
    pub number: u64,
    /// EC2's `responseError` code and message when it was not deleted.
    pub error: Option<(&'static str, String)>,
}

impl Compute {
    /// CreateLaunchTemplate: the template and its version 1.
    pub async fn create_launch_template(
        &self,
        account_id: &str,
        new: NewLaunchTemplate,
        client_token: Option<&ClientToken>,
        dry_run: bool,
    ) -> ApiResult<LaunchTemplate> {
        let NewLaunchTemplate {
            name,
            description,
            data,
            tags,
        } = new;
        let name = name.as_str();
        check_name(name)?;
        let now = self.clock.now();
        let template = LaunchTemplate {
            id: super::ids::new_id("lt"),
            account_id: account_id.to_string(),
            name: name.to_string(),
            created_at: now,
            default_version: 1,
            latest_version: 1,
            tags,
            highest_version: Some(1),
        };
        let version = LaunchTemplateVersion {
            template_id: template.id.clone(),
            template_name: name.to_string(),
            account_id: account_id.to_string(),
            number: 1,
            description,
            created_at: now,
            data,
        };
        operation::run(&self.store, dry_run, |tx| {
            if let Some(token) = client_token {
                if let Some(id) = super::idempotency::earlier(tx, account_id, CREATE, token)? {
                    if let Some(earlier) =
                        tx.get::<LaunchTemplate>(LAUNCH_TEMPLATES, &template_key(account_id, &id))?
                    {
                        return Ok(earlier);
                    }
                }
                super::idempotency::remember(tx, account_id, CREATE, token, &template.id);
            }
            let names = name_key(account_id, name);
            if tx.get::<String>(LAUNCH_TEMPLATE_NAMES, &names)?.is_some() {
                return Err(ApiError::NotFound {
                    code: codes::INVALID_LAUNCH_TEMPLATE_NAME_EXISTS,
                    message: format!("Launch template name already in use: '{name}'"),
                });
            }
            tx.put(LAUNCH_TEMPLATE_NAMES, names, &template.id);
            tx.put(
                LAUNCH_TEMPLATES,
                template_key(account_id, &template.id),
                &template,
            );
            tx.put(
                LAUNCH_TEMPLATE_VERSIONS,
                version_key(account_id, &template.id, 1),
                &version,
            );
            Ok(template.clone())
        })
        .await
    }

    /// CreateLaunchTemplateVersion.
    pub async fn create_launch_template_version(
        &self,
        account_id: &str,
        reference: &TemplateRef,
        new: NewVersion,
        client_token: Option<&ClientToken>,
        dry_run: bool,
    ) -> ApiResult<LaunchTemplateVersion> {
        let NewVersion {
            source,
            description,
            data,
        } = new;
        let now = self.clock.now();
        operation::run(&self.store, dry_run, |tx| {
            let mut template = template_in(tx, account_id, reference)?;
            if let Some(token) = client_token {
                if let Some(id) =
                    super::idempotency::earlier(tx, account_id, CREATE_VERSION, token)?
                {
                    if let Some((template_id, number)) = id.split_once('/') {
                        let key = version_key(account_id, template_id, number.parse().unwrap_or(0));
                        if let Some(earlier) =
                            tx.get::<LaunchTemplateVersion>(LAUNCH_TEMPLATE_VERSIONS, &key)?
                        {
                            return Ok(earlier);
                        }
                    }
                }
            }
            if versions_in(tx, &template)?.len() as u64 >= MAX_VERSIONS {
                return Err(ApiError::LimitExceeded {
                    code: codes::VERSION_LIMIT_EXCEEDED,
                    message: format!("A launch template may have at most {MAX_VERSIONS} versions"),
                });
            }
            let data = match source {
                Some(source) => {
                    let base = version_in(tx, &template, source.number(&template))?;
                    overlay(&base.data, &data)
                }
                None => data.clone(),
            };
            let number = template.highest() + 1;
            template.latest_version = number;
            template.highest_version = Some(number);
            if let Some(token) = client_token {
                let id = format!("{}/{number}", template.id);
                super::idempotency::remember(tx, account_id, CREATE_VERSION, token, &id);
            }
            let version = LaunchTemplateVersion {
                template_id: template.id.clone(),
                template_name: template.name.clone(),
                account_id: account_id.to_string(),
                number,
                description: description.clone(),
                created_at: now,
                data,
            };
            tx.put(
                LAUNCH_TEMPLATES,
                template_key(account_id, &template.id),
                &template,
            );
            tx.put(
                LAUNCH_TEMPLATE_VERSIONS,
                version_key(account_id, &template.id, version.number),
                &version,
            );
            Ok(version)
        })
        .await
    }

    /// ModifyLaunchTemplate: the default version.
    pub async fn set_default_launch_template_version(
        &self,
        account_id: &str,
        reference: &TemplateRef,
        version: Option<VersionRef>,
        dry_run: bool,
    ) -> ApiResult<LaunchTemplate> {
        operation::run(&self.store, dry_run, |tx| {
            let mut template = template_in(tx, account_id, reference)?;
            if let Some(version) = version {
                let number = version.number(&template);
                version_in(tx, &template, number)?;
                template.default_version = number;
                tx.put(
                    LAUNCH_TEMPLATES,
                    template_key(account_id, &template.id),
                    &template,
                );
            }
            Ok(template)
        })
        .await
    }

    /// DeleteLaunchTemplate, with every version.
    pub async fn delete_launch_template(
        &self,
        account_id: &str,
        reference: &TemplateRef,
        dry_run: bool,
    ) -> ApiResult<LaunchTemplate> {
        operation::run(&self.store, dry_run, |tx| {
            let template = template_in(tx, account_id, reference)?;
            // Versions are created under the template record (read above):
            // one created meanwhile makes this run again.
            for version in versions_in(tx, &template)? {
                tx.delete(
                    LAUNCH_TEMPLATE_VERSIONS,
                    version_key(account_id, &template.id, version.number),
                );
            }
            tx.delete(LAUNCH_TEMPLATE_NAMES, name_key(account_id, &template.name));
            tx.delete(LAUNCH_TEMPLATES, template_key(account_id, &template.id));
            Ok(template)
        })
        .await
    }

    /// DeleteLaunchTemplateVersions: each version deleted or refused, as
    /// EC2 answers (an unknown template too: every version refused).
    pub async fn delete_launch_template_versions(
        &self,
        account_id: &str,
        reference: &TemplateRef,
        numbers: &[u64],
        dry_run: bool,
    ) -> ApiResult<(Option<LaunchTemplate>, Vec<VersionDeletion>)> {
        if numbers.len() > MAX_VERSIONS_PER_DELETE {
            return Err(ApiError::invalid_value(format!(
                "At most {MAX_VERSIONS_PER_DELETE} versions may be deleted in one request"
            )));
        }
        operation::run(&self.store, dry_run, |tx| {
            let mut template = match template_in(tx, account_id, reference) {
                Ok(template) => template,
                Err(ApiError::NotFound { code, message }) => {
                    let error_code = match (reference, code) {
                        (TemplateRef::Name(_), _) => "launchTemplateNameDoesNotExist",
                        (TemplateRef::Id(_), c) if c.ends_with("Malformed") => {
                            "launchTemplateIdMalformed"
                        }
                        (TemplateRef::Id(_), _) => "launchTemplateIdDoesNotExist",
                    };
                    let outcomes = numbers
                        .iter()
                        .map(|&number| VersionDeletion {
                            number,
                            error: Some((error_code, message.clone())),
                        })
                        .collect();
                    return Ok((None, outcomes));
                }
                Err(other) => return Err(other),
            };
            let mut outcomes = Vec::new();
            for &number in numbers {
                let key = version_key(account_id, &template.id, number);
                let error = if number == template.default_version {
                    Some((
                        "unexpectedError",
                        "Cannot delete the default version of a launch template".to_string(),
                    ))
                } else if tx
                    .get::<LaunchTemplateVersion>(LAUNCH_TEMPLATE_VERSIONS, &key)?
                    .is_none()
                {
                    Some((
                        "launchTemplateVersionDoesNotExist",
                        format!("The specified launch template version {number} does not exist"),
                    ))
                } else {
                    tx.delete(LAUNCH_TEMPLATE_VERSIONS, key);
                    None
                };
                outcomes.push(VersionDeletion { number, error });
            }
            // `$Latest` is the newest version left (the default one stays).
            let deleted: Vec<u64> = outcomes
                .iter()
                .filter(|o| o.error.is_none())
                .map(|o| o.number)
                .collect();
            if !deleted.is_empty() {
                let latest = versions_in(tx, &template)?
                    .iter()
                    .map(|v| v.number)
                    .filter(|n| !deleted.contains(n))
                    .max()
                    .unwrap_or(template.default_version);
                template.highest_version = Some(template.highest());
                template.latest_version = latest;
                tx.put(
                    LAUNCH_TEMPLATES,
                    template_key(account_id, &template.id),
                    &template,
                );
            }
            Ok((Some(template.clone()), outcomes))
        })
        .await
    }

    /// The account's templates, by id.
    pub async fn launch_templates(&self, account_id: &str) -> ApiResult<Vec<LaunchTemplate>> {
        Ok(self
            .store
            .records(LAUNCH_TEMPLATES, format!("{account_id}/").as_bytes())
            .await?)
    }

    /// A template and its versions, by number.
    pub async fn launch_template_versions(
        &self,
        account_id: &str,
        reference: &TemplateRef,
    ) -> ApiResult<(LaunchTemplate, Vec<LaunchTemplateVersion>)> {
        operation::read(&self.store, |tx| {
            let template = template_in(tx, account_id, reference)?;
            let versions = versions_in(tx, &template)?;
            Ok((template, versions))
        })
        .await
    }

    /// The version a launch names (`$Default` when none is given).
    pub async fn launch_template_version(
        &self,
        account_id: &str,
        reference: &TemplateRef,
        version: VersionRef,
    ) -> ApiResult<LaunchTemplateVersion> {
        operation::read(&self.store, |tx| {
            let template = template_in(tx, account_id, reference)?;
            version_in(tx, &template, version.number(&template))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_new_version_replaces_whole_members() {
        let base = data(&[
            ("ImageId", "ami-1"),
            ("SecurityGroupId.1", "sg-1"),
            ("SecurityGroupId.2", "sg-2"),
            ("InstanceType", "t3.micro"),
        ]);
        let changes = data(&[("SecurityGroupId.1", "sg-9"), ("KeyName", "k")]);
        assert_eq!(
            overlay(&base, &changes),
            data(&[
                ("ImageId", "ami-1"),
                ("InstanceType", "t3.micro"),
                ("KeyName", "k"),
                ("SecurityGroupId.1", "sg-9"),
            ])
        );
    }
}
