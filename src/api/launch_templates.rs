//! CreateLaunchTemplate, CreateLaunchTemplateVersion, ModifyLaunchTemplate,
//! DeleteLaunchTemplate, DeleteLaunchTemplateVersions,
//! DescribeLaunchTemplates and DescribeLaunchTemplateVersions.
//!
//! `LaunchTemplateData` takes the members RunInstances honours here
//! (`ImageId`, `InstanceType`, `KeyName`, `SecurityGroupId.N`,
//! `SecurityGroup.N`, `UserData`, `Placement.AvailabilityZone`,
//! `DisableApiTermination`, `InstanceInitiatedShutdownBehavior`,
//! `TagSpecification.N`, `BlockDeviceMapping.N`, and a primary
//! `NetworkInterface.1` with `SubnetId` and `SecurityGroupId.N`); any other
//! member is `UnsupportedOperation` naming it. `BlockDeviceMapping.N` is
//! kept and shown, and a launch treats it as RunInstances treats its own
//! (the volumes each instance gets); tags are for instances and volumes.

use super::pagination::{check_max_results, Paging};
use super::tags::{check_filter_names, tag_filter_values, tag_specifications, write_tags};
use super::{dry_run_check, Context};
use crate::compute::idempotency::ClientToken;
use crate::compute::launch_templates::{
    LaunchTemplate, LaunchTemplateVersion, NewLaunchTemplate, NewVersion, TemplateRef,
    VersionDeletion, VersionRef,
};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::matches_all;
use crate::protocol::xml::{XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};
use std::collections::BTreeMap;

const DATA: &str = "LaunchTemplateData.";

/// The members of `LaunchTemplateData` offered, and their fields.
fn offered(name: &str) -> bool {
    let member = crate::compute::launch_templates::member_of(name);
    let rest = name.strip_prefix(member).unwrap_or("");
    match member {
        "ImageId"
        | "InstanceType"
        | "KeyName"
        | "UserData"
        | "DisableApiTermination"
        | "InstanceInitiatedShutdownBehavior" => rest.is_empty(),
        "Placement" => rest == ".AvailabilityZone",
        "SecurityGroupId" | "SecurityGroup" | "TagSpecification" | "BlockDeviceMapping" => true,
        "NetworkInterface" => {
            let field = rest.splitn(3, '.').nth(2).unwrap_or("");
            rest.starts_with(".1.")
                && (field == "DeviceIndex"
                    || field == "SubnetId"
                    || field == "DeleteOnTermination"
                    || field == "AssociatePublicIpAddress"
                    || field.starts_with("SecurityGroupId."))
        }
        _ => false,
    }
}

/// `LaunchTemplateData.*` as RunInstances parameters.
fn template_data(params: &Params, required: bool) -> ApiResult<BTreeMap<String, String>> {
    let mut data = BTreeMap::new();
    for (name, value) in params.pairs() {
        let Some(member) = name.strip_prefix(DATA) else {
            continue;
        };
        if !offered(member) {
            return Err(ApiError::UnsupportedOperation(format!(
                "LaunchTemplateData.{member} is not offered in launch templates"
            )));
        }
        data.insert(member.to_string(), value.clone());
    }
    params.mark_read("LaunchTemplateData");
    // Tags go on the instance and its volumes (a primary interface keeps
    // no tags of its own here).
    if let Some((_, kind)) = data.iter().find(|(name, kind)| {
        name.starts_with("TagSpecification.")
            && name.ends_with(".ResourceType")
            && !matches!(kind.as_str(), "instance" | "volume")
    }) {
        return Err(ApiError::UnsupportedOperation(format!(
            "Tags for '{kind}' in a launch template are not offered: only 'instance' and 'volume'"
        )));
    }
    if let Some(index) = data.get("NetworkInterface.1.DeviceIndex") {
        if index != "0" {
            return Err(ApiError::UnsupportedOperation(
                "Only the primary network interface (DeviceIndex 0) is offered".into(),
            ));
        }
    }
    if data.is_empty() && required {
        return Err(ApiError::MissingParameter("LaunchTemplateData".into()));
    }
    Ok(data)
}

/// `LaunchTemplateId` or `LaunchTemplateName`, exactly one.
pub fn template_ref(params: &Params, prefix: &str) -> ApiResult<TemplateRef> {
    let id = params.optional(&format!("{prefix}LaunchTemplateId"));
    let name = params.optional(&format!("{prefix}LaunchTemplateName"));
    match (id, name) {
        (Some(id), None) => Ok(TemplateRef::Id(id)),
        (None, Some(name)) => Ok(TemplateRef::Name(name)),
        (None, None) => Err(ApiError::MissingParameter(
            "LaunchTemplateId or LaunchTemplateName".into(),
        )),
        (Some(_), Some(_)) => Err(ApiError::InvalidParameterCombination(
            "Give LaunchTemplateId or LaunchTemplateName, not both".into(),
        )),
    }
}

fn created_by(template_account: &str) -> String {
    format!("arn:aws:iam::{template_account}:root")
}

/// One template as EC2 renders it (the `LaunchTemplate` shape).
fn write_template(xml: &mut XmlWriter, template: &LaunchTemplate) {
    xml.element("launchTemplateId", &template.id);
    xml.element("launchTemplateName", &template.name);
    xml.timestamp("createTime", template.created_at);
    xml.element("createdBy", &created_by(&template.account_id));
    xml.number("defaultVersionNumber", template.default_version);
    xml.number("latestVersionNumber", template.latest_version);
    write_tags(xml, &template.tags);
}

/// The values of `member.N` in `data`, by N.
fn listed(data: &BTreeMap<String, String>, member: &str) -> Vec<String> {
    let mut found: Vec<(u32, String)> = data
        .iter()
        .filter_map(|(name, value)| {
            let index = name.strip_prefix(member)?.strip_prefix('.')?;
            Some((index.parse().ok()?, value.clone()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, value)| value).collect()
}

/// `member.N.field...` of `data`, grouped by N: each item's fields with
/// `member.N.` cut off.
fn structures(data: &BTreeMap<String, String>, member: &str) -> Vec<BTreeMap<String, String>> {
    let mut items: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
    for (name, value) in data {
        let Some(rest) = name.strip_prefix(member).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        let Some((index, field)) = rest.split_once('.') else {
            continue;
        };
        if let Ok(index) = index.parse() {
            items
                .entry(index)
                .or_default()
                .insert(field.to_string(), value.clone());
        }
    }
    items.into_values().collect()
}

/// A version's data as EC2 renders `launchTemplateData`.
fn write_data(xml: &mut XmlWriter, data: &BTreeMap<String, String>) {
    let get = |name: &str| data.get(name).map(String::as_str);
    for (name, element) in [
        ("ImageId", "imageId"),
        ("InstanceType", "instanceType"),
        ("KeyName", "keyName"),
        ("UserData", "userData"),
        ("DisableApiTermination", "disableApiTermination"),
        (
            "InstanceInitiatedShutdownBehavior",
            "instanceInitiatedShutdownBehavior",
        ),
    ] {
        xml.optional(element, get(name));
    }
    if let Some(zone) = get("Placement.AvailabilityZone") {
        xml.nested("placement", |xml| xml.element("availabilityZone", zone));
    }
    let ids = listed(data, "SecurityGroupId");
    if !ids.is_empty() {
        xml.text_list("securityGroupIdSet", &ids);
    }
    let names = listed(data, "SecurityGroup");
    if !names.is_empty() {
        xml.text_list("securityGroupSet", &names);
    }
    let interfaces = structures(data, "NetworkInterface");
    if !interfaces.is_empty() {
        xml.list("networkInterfaceSet", &interfaces, |xml, interface| {
            xml.optional(
                "deleteOnTermination",
                interface.get("DeleteOnTermination").map(String::as_str),
            );
            xml.element(
                "deviceIndex",
                interface.get("DeviceIndex").map_or("0", String::as_str),
            );
            let groups = listed(interface, "SecurityGroupId");
            if !groups.is_empty() {
                // This list's members are `<groupId>`, not `<item>`.
                xml.nested("groupSet", |xml| {
                    for id in &groups {
                        xml.element("groupId", id);
                    }
                });
            }
            xml.optional("subnetId", interface.get("SubnetId").map(String::as_str));
        });
    }
    let mappings = structures(data, "BlockDeviceMapping");
    if !mappings.is_empty() {
        xml.list("blockDeviceMappingSet", &mappings, |xml, mapping| {
            xml.optional("deviceName", mapping.get("DeviceName").map(String::as_str));
            xml.optional(
                "virtualName",
                mapping.get("VirtualName").map(String::as_str),
            );
            let ebs: Vec<(&str, &str)> = [
                ("Ebs.Encrypted", "encrypted"),
                ("Ebs.DeleteOnTermination", "deleteOnTermination"),
                ("Ebs.Iops", "iops"),
                ("Ebs.SnapshotId", "snapshotId"),
                ("Ebs.VolumeSize", "volumeSize"),
                ("Ebs.VolumeType", "volumeType"),
                ("Ebs.Throughput", "throughput"),
            ]
            .into_iter()
            .filter_map(|(name, element)| Some((element, mapping.get(name)?.as_str())))
            .collect();
            if !ebs.is_empty() {
                xml.nested("ebs", |xml| {
                    for (element, value) in &ebs {
                        xml.element(element, value);
                    }
                });
            }
            xml.optional("noDevice", mapping.get("NoDevice").map(String::as_str));
        });
    }
    let specs = structures(data, "TagSpecification");
    if !specs.is_empty() {
        xml.list("tagSpecificationSet", &specs, |xml, spec| {
            xml.optional("resourceType", spec.get("ResourceType").map(String::as_str));
            let tags = structures(spec, "Tag");
            xml.list("tagSet", &tags, |xml, tag| {
                xml.element("key", tag.get("Key").map_or("", String::as_str));
                xml.element("value", tag.get("Value").map_or("", String::as_str));
            });
        });
    }
}

/// One version as EC2 renders it (the `LaunchTemplateVersion` shape).
fn write_version(xml: &mut XmlWriter, version: &LaunchTemplateVersion, default: u64) {
    xml.element("launchTemplateId", &version.template_id);
    xml.element("launchTemplateName", &version.template_name);
    xml.number("versionNumber", version.number);
    xml.optional("versionDescription", version.description.as_deref());
    xml.timestamp("createTime", version.created_at);
    xml.element("createdBy", &created_by(&version.account_id));
    xml.boolean("defaultVersion", version.number == default);
    xml.nested("launchTemplateData", |xml| write_data(xml, &version.data));
}

#[derive(Debug)]
pub struct CreateLaunchTemplate {
    pub name: String,
    pub description: Option<String>,
    pub data: BTreeMap<String, String>,
    pub tags: Vec<crate::compute::instances::Tag>,
    pub client_token: Option<ClientToken>,
    pub dry_run: bool,
}

impl CreateLaunchTemplate {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            name: params.required("LaunchTemplateName")?,
            description: params.optional("VersionDescription"),
            data: template_data(params, true)?,
            tags: tag_specifications(params, "launch-template")?,
            client_token: params.optional("ClientToken").map(|token| ClientToken {
                token,
                fingerprint: super::request_fingerprint(params),
            }),
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<TemplateOutput> {
        let template = context
            .compute
            .create_launch_template(
                &context.principal.account_id,
                NewLaunchTemplate {
                    name: self.name,
                    description: self.description,
                    data: self.data,
                    tags: self.tags,
                },
                self.client_token.as_ref(),
                self.dry_run,
            )
            .await?;
        Ok(TemplateOutput(template))
    }
}

/// The answer of CreateLaunchTemplate, ModifyLaunchTemplate and
/// DeleteLaunchTemplate.
#[derive(Debug)]
pub struct TemplateOutput(LaunchTemplate);

impl XmlOutput for TemplateOutput {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.nested("launchTemplate", |xml| write_template(xml, &self.0));
    }
}

#[derive(Debug)]
pub struct CreateLaunchTemplateVersion {
    pub template: TemplateRef,
    pub source: Option<VersionRef>,
    pub description: Option<String>,
    pub data: BTreeMap<String, String>,
    pub client_token: Option<ClientToken>,
    pub dry_run: bool,
}

impl CreateLaunchTemplateVersion {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let source = params
            .optional("SourceVersion")
            .map(|v| VersionRef::parse(&v))
            .transpose()?;
        Ok(Self {
            template: template_ref(params, "")?,
            description: params.optional("VersionDescription"),
            data: template_data(params, source.is_none())?,
            source,
            client_token: params.optional("ClientToken").map(|token| ClientToken {
                token,
                fingerprint: super::request_fingerprint(params),
            }),
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<VersionOutput> {
        let version = context
            .compute
            .create_launch_template_version(
                &context.principal.account_id,
                &self.template,
                NewVersion {
                    source: self.source,
                    description: self.description,
                    data: self.data,
                },
                self.client_token.as_ref(),
                self.dry_run,
            )
            .await?;
        Ok(VersionOutput(version))
    }
}

#[derive(Debug)]
pub struct VersionOutput(LaunchTemplateVersion);

impl XmlOutput for VersionOutput {
    fn write_xml(&self, xml: &mut XmlWriter) {
        // A new version is never the default one (version 1 is made with
        // the template).
        xml.nested("launchTemplateVersion", |xml| {
            write_version(xml, &self.0, 0)
        });
    }
}

#[derive(Debug)]
pub struct ModifyLaunchTemplate {
    pub template: TemplateRef,
    pub default_version: Option<VersionRef>,
    pub dry_run: bool,
}

impl ModifyLaunchTemplate {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            template: template_ref(params, "")?,
            default_version: params
                .optional("SetDefaultVersion")
                .map(|v| VersionRef::parse(&v))
                .transpose()?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<TemplateOutput> {
        let template = context
            .compute
            .set_default_launch_template_version(
                &context.principal.account_id,
                &self.template,
                self.default_version,
                self.dry_run,
            )
            .await?;
        Ok(TemplateOutput(template))
    }
}

#[derive(Debug)]
pub struct DeleteLaunchTemplate {
    pub template: TemplateRef,
    pub dry_run: bool,
}

impl DeleteLaunchTemplate {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            template: template_ref(params, "")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<TemplateOutput> {
        let template = context
            .compute
            .delete_launch_template(&context.principal.account_id, &self.template, self.dry_run)
            .await?;
        Ok(TemplateOutput(template))
    }
}

#[derive(Debug)]
pub struct DeleteLaunchTemplateVersions {
    pub template: TemplateRef,
    pub versions: Vec<u64>,
    pub dry_run: bool,
}

impl DeleteLaunchTemplateVersions {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let versions = params
            .list("LaunchTemplateVersion")?
            .iter()
            .map(|v| match VersionRef::parse(v)? {
                VersionRef::Number(n) => Ok(n),
                _ => Err(ApiError::invalid_value(format!(
                    "Versions to delete are given by number, not {v}"
                ))),
            })
            .collect::<ApiResult<Vec<u64>>>()?;
        if versions.is_empty() {
            return Err(ApiError::MissingParameter("LaunchTemplateVersion".into()));
        }
        Ok(Self {
            template: template_ref(params, "")?,
            versions,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<DeletedVersions> {
        let (template, outcomes) = context
            .compute
            .delete_launch_template_versions(
                &context.principal.account_id,
                &self.template,
                &self.versions,
                self.dry_run,
            )
            .await?;
        Ok(DeletedVersions {
            template,
            named: self.template,
            outcomes,
        })
    }
}

#[derive(Debug)]
pub struct DeletedVersions {
    /// The template, or how the request named one that does not exist.
    template: Option<LaunchTemplate>,
    named: TemplateRef,
    outcomes: Vec<VersionDeletion>,
}

impl XmlOutput for DeletedVersions {
    fn write_xml(&self, xml: &mut XmlWriter) {
        let (done, refused): (Vec<&VersionDeletion>, Vec<&VersionDeletion>) =
            self.outcomes.iter().partition(|o| o.error.is_none());
        let (id, name) = match (&self.template, &self.named) {
            (Some(template), _) => (Some(template.id.as_str()), Some(template.name.as_str())),
            (None, TemplateRef::Id(id)) => (Some(id.as_str()), None),
            (None, TemplateRef::Name(name)) => (None, Some(name.as_str())),
        };
        xml.list(
            "successfullyDeletedLaunchTemplateVersionSet",
            &done,
            |xml, outcome| {
                xml.optional("launchTemplateId", id);
                xml.optional("launchTemplateName", name);
                xml.number("versionNumber", outcome.number);
            },
        );
        xml.list(
            "unsuccessfullyDeletedLaunchTemplateVersionSet",
            &refused,
            |xml, outcome| {
                xml.optional("launchTemplateId", id);
                xml.optional("launchTemplateName", name);
                xml.number("versionNumber", outcome.number);
                if let Some((code, message)) = &outcome.error {
                    xml.nested("responseError", |xml| {
                        xml.element("code", code);
                        xml.element("message", message);
                    });
                }
            },
        );
    }
}

const TEMPLATE_FILTERS: &[&str] = &[
    "create-time",
    "launch-template-name",
    "tag-key",
    "tag-value",
];

#[derive(Debug)]
pub struct DescribeLaunchTemplates {
    pub ids: Vec<String>,
    pub names: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeLaunchTemplates {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            ids: params.list("LaunchTemplateId")?,
            names: params.list("LaunchTemplateName")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 1, 200)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        for id in &request.ids {
            crate::compute::kinds::ResourceKind::LaunchTemplate.check(id)?;
        }
        check_filter_names(&request.filters, TEMPLATE_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<TemplateList> {
        let templates = context
            .compute
            .launch_templates(&context.principal.account_id)
            .await?;
        if let Some(missing) = self
            .ids
            .iter()
            .find(|id| !templates.iter().any(|t| &t.id == *id))
        {
            return Err(crate::compute::kinds::ResourceKind::LaunchTemplate.not_found(missing));
        }
        if let Some(missing) = self
            .names
            .iter()
            .find(|name| !templates.iter().any(|t| &t.name == *name))
        {
            return Err(ApiError::NotFound {
                code: crate::error::codes::INVALID_LAUNCH_TEMPLATE_NAME_NOT_FOUND,
                message: format!("At least one of the launch templates specified in the request does not exist: '{missing}'"),
            });
        }
        dry_run_check(self.dry_run)?;
        let mut selection = self.ids.clone();
        selection.extend(self.names.iter().cloned());
        let paging = Paging::start(
            context,
            "DescribeLaunchTemplates",
            &self.filters,
            &selection,
            self.max_results,
            self.next_token.as_deref(),
        )?;
        let after = paging.after.clone();
        let matching = templates
            .into_iter()
            .filter(|t| {
                (self.ids.is_empty() && self.names.is_empty())
                    || self.ids.contains(&t.id)
                    || self.names.contains(&t.name)
            })
            .filter(|t| after.as_ref().is_none_or(|after| &t.id > after))
            .filter(|t| {
                matches_all(&self.filters, |name| {
                    tag_filter_values(&t.tags, name).unwrap_or_else(|| match name {
                        "create-time" => vec![crate::clock::format_timestamp(t.created_at)],
                        _ => vec![t.name.clone()],
                    })
                })
            });
        let (templates, next_token) = paging.cut(matching, |t| t.id.clone());
        Ok(TemplateList {
            templates,
            next_token,
        })
    }
}

#[derive(Debug)]
pub struct TemplateList {
    templates: Vec<LaunchTemplate>,
    next_token: Option<String>,
}

impl XmlOutput for TemplateList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("launchTemplates", &self.templates, write_template);
        xml.optional("nextToken", self.next_token.as_deref());
    }
}

#[derive(Debug)]
pub struct DescribeLaunchTemplateVersions {
    pub template: TemplateRef,
    pub versions: Vec<VersionRef>,
    pub min_version: Option<u64>,
    pub max_version: Option<u64>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeLaunchTemplateVersions {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        if !params.filters()?.is_empty() {
            return Err(ApiError::UnsupportedOperation(
                "Filters on launch template versions are not offered: name versions or a range"
                    .into(),
            ));
        }
        Ok(Self {
            template: template_ref(params, "")?,
            versions: params
                .list("LaunchTemplateVersion")?
                .iter()
                .map(|v| VersionRef::parse(v))
                .collect::<ApiResult<_>>()?,
            min_version: params.number("MinVersion")?,
            max_version: params.number("MaxVersion")?,
            max_results: check_max_results(params.number("MaxResults")?, 1, 200)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<VersionList> {
        let (template, versions) = context
            .compute
            .launch_template_versions(&context.principal.account_id, &self.template)
            .await?;
        let wanted: Vec<u64> = self
            .versions
            .iter()
            .map(|v| match v {
                VersionRef::Number(n) => *n,
                VersionRef::Latest => template.latest_version,
                VersionRef::Default => template.default_version,
            })
            .collect();
        if let Some(missing) = wanted
            .iter()
            .find(|n| !versions.iter().any(|v| v.number == **n))
        {
            return Err(ApiError::NotFound {
                code: crate::error::codes::INVALID_LAUNCH_TEMPLATE_VERSION_NOT_FOUND,
                message: format!(
                    "Could not find launch template version {missing} of {}",
                    template.id
                ),
            });
        }
        dry_run_check(self.dry_run)?;
        let paging = Paging::start(
            context,
            "DescribeLaunchTemplateVersions",
            &[],
            std::slice::from_ref(&template.id),
            self.max_results,
            self.next_token.as_deref(),
        )?;
        let after: Option<u64> = paging.after.as_ref().and_then(|a| a.parse().ok());
        let matching = versions
            .into_iter()
            .filter(|v| wanted.is_empty() || wanted.contains(&v.number))
            .filter(|v| self.min_version.is_none_or(|min| v.number >= min))
            .filter(|v| self.max_version.is_none_or(|max| v.number <= max))
            .filter(|v| after.is_none_or(|after| v.number > after));
        let (versions, next_token) = paging.cut(matching, |v| v.number.to_string());
        Ok(VersionList {
            default: template.default_version,
            versions,
            next_token,
        })
    }
}

#[derive(Debug)]
pub struct VersionList {
    default: u64,
    versions: Vec<LaunchTemplateVersion>,
    next_token: Option<String>,
}

impl XmlOutput for VersionList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list(
            "launchTemplateVersionSet",
            &self.versions,
            |xml, version| write_version(xml, version, self.default),
        );
        xml.optional("nextToken", self.next_token.as_deref());
    }
}
