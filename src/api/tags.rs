//! Tags as every EC2 resource has them: `TagSpecification.N` on create
//! actions, `<tagSet>` in describes, and the `tag:<key>`, `tag-key` and
//! `tag-value` filters; CreateTags, DeleteTags and DescribeTags on every
//! resource type (see `compute::tags`). Limits as EC2: 50 tags per resource, keys of 1 to
//! 128 characters without the reserved `aws:` prefix, values up to 256.

use super::{dry_run_check, Context};
use crate::compute::instances::Tag;
use crate::compute::tags::{ResourceTag, TagChange};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::{check_names, matches_all};
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

/// Most tags on one resource.
const MAX_TAGS: usize = 50;

/// Parses `TagSpecification.N` for `resource_type`; specifications for
/// other resource types are refused: this action creates no such resource.
pub fn tag_specifications(params: &Params, resource_type: &str) -> ApiResult<Vec<Tag>> {
    Ok(tag_specifications_by_type(params, &[resource_type])?
        .remove(resource_type)
        .unwrap_or_default())
}

/// `TagSpecification.N` of an action that tags several kinds of resource
/// (RunInstances: `instance` and `volume`), by resource type; a type not
/// in `allowed` is `InvalidParameterValue`.
pub fn tag_specifications_by_type(
    params: &Params,
    allowed: &[&str],
) -> ApiResult<std::collections::BTreeMap<String, Vec<Tag>>> {
    let mut by_type: std::collections::BTreeMap<String, Vec<Tag>> = Default::default();
    for spec in params.structures("TagSpecification")? {
        let given = spec
            .required("ResourceType")
            .map_err(|_| ApiError::MissingParameter("TagSpecification.N.ResourceType".into()))?;
        if !allowed.contains(&given.as_str()) {
            return Err(ApiError::invalid_value(format!(
                "'{given}' is not a valid taggable resource type for this operation."
            )));
        }
        let tags = by_type.entry(given).or_default();
        for tag in spec.structures("Tag")? {
            let key = tag.get("Key").unwrap_or("").to_string();
            let value = tag.get("Value").unwrap_or("").to_string();
            check_tag(&key, &value)?;
            tags.retain(|t: &Tag| t.key != key);
            tags.push(Tag { key, value });
        }
    }
    if by_type.values().any(|tags| tags.len() > MAX_TAGS) {
        return Err(ApiError::invalid_value(format!(
            "A resource can have at most {MAX_TAGS} tags"
        )));
    }
    Ok(by_type)
}

/// EC2's tag rules: key 1..=128 characters without the reserved `aws:`
/// prefix, value up to 256 characters.
pub fn check_tag(key: &str, value: &str) -> ApiResult<()> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(ApiError::invalid_value(
            "Tag keys must be 1 to 128 characters long",
        ));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(ApiError::invalid_value(
            "Tag keys starting with 'aws:' are reserved for internal use",
        ));
    }
    if value.chars().count() > 256 {
        return Err(ApiError::invalid_value(
            "Tag values may be at most 256 characters long",
        ));
    }
    Ok(())
}

/// `<tagSet>` with `key`/`value` items.
pub fn write_tags(xml: &mut XmlWriter, tags: &[Tag]) {
    xml.list("tagSet", tags, |xml, tag| {
        xml.element("key", &tag.key);
        xml.element("value", &tag.value);
    });
}

/// Checks filter names, allowing `tag:<key>` besides `supported`.
pub fn check_filter_names(filters: &[Filter], supported: &[&str]) -> ApiResult<()> {
    let plain: Vec<Filter> = filters
        .iter()
        .filter(|f| !f.name.starts_with("tag:") || f.name.len() == 4)
        .cloned()
        .collect();
    check_names(&plain, supported)
}

/// Values of `tag:<key>`, `tag-key` and `tag-value` for a tagged resource.
pub fn tag_filter_values(tags: &[Tag], filter: &str) -> Option<Vec<String>> {
    if let Some(key) = filter.strip_prefix("tag:") {
        return Some(
            tags.iter()
                .filter(|t| t.key == key)
                .map(|t| t.value.clone())
                .collect(),
        );
    }
    match filter {
        "tag-key" => Some(tags.iter().map(|t| t.key.clone()).collect()),
        "tag-value" => Some(tags.iter().map(|t| t.value.clone()).collect()),
        _ => None,
    }
}

/// `Tag.N.Key` / `Tag.N.Value` pairs.
fn tag_list(params: &Params) -> ApiResult<Vec<(String, Option<String>)>> {
    params
        .structures("Tag")?
        .into_iter()
        .map(|tag| {
            let key = tag
                .get("Key")
                .ok_or_else(|| ApiError::MissingParameter("Tag.N.Key".into()))?
                .to_string();
            Ok((key, tag.get("Value").map(str::to_string)))
        })
        .collect()
}

#[derive(Debug)]
pub struct CreateTags {
    pub resource_ids: Vec<String>,
    pub tags: Vec<Tag>,
    pub dry_run: bool,
}

impl CreateTags {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let resource_ids = params.list("ResourceId")?;
        if resource_ids.is_empty() {
            return Err(ApiError::MissingParameter("ResourceId".into()));
        }
        let mut tags = Vec::new();
        for (key, value) in tag_list(params)? {
            let value = value.unwrap_or_default();
            check_tag(&key, &value)?;
            tags.push(Tag { key, value });
        }
        Ok(Self {
            resource_ids,
            tags,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .change_tags(
                &context.principal.account_id,
                &self.resource_ids,
                TagChange::Set(self.tags),
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct DeleteTags {
    pub resource_ids: Vec<String>,
    pub tags: Vec<(String, Option<String>)>,
    pub dry_run: bool,
}

impl DeleteTags {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let resource_ids = params.list("ResourceId")?;
        if resource_ids.is_empty() {
            return Err(ApiError::MissingParameter("ResourceId".into()));
        }
        Ok(Self {
            resource_ids,
            tags: tag_list(params)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .change_tags(
                &context.principal.account_id,
                &self.resource_ids,
                TagChange::Remove(self.tags),
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

const DESCRIBE_TAG_FILTERS: &[&str] = &["key", "value", "resource-id", "resource-type"];

#[derive(Debug)]
pub struct DescribeTags {
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeTags {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            filters: params.filters()?,
            max_results: super::pagination::check_max_results(
                params.number("MaxResults")?,
                5,
                1000,
            )?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        check_names(&request.filters, DESCRIBE_TAG_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<TagList> {
        dry_run_check(self.dry_run)?;
        let account = &context.principal.account_id;
        let mut tags = context.compute.resource_tags(account).await?;
        tags.sort_by(|a, b| (&a.resource_id, &a.key).cmp(&(&b.resource_id, &b.key)));
        let paging = super::pagination::Paging::start(
            context,
            "DescribeTags",
            &self.filters,
            &[],
            self.max_results,
            self.next_token.as_deref(),
        )?;
        let after = paging.after.clone();
        let position = |t: &ResourceTag| format!("{}\u{1}{}", t.resource_id, t.key);
        let matching = tags
            .into_iter()
            .filter(|t| after.as_ref().is_none_or(|after| &position(t) > after))
            .filter(|t| {
                matches_all(&self.filters, |name| match name {
                    "key" => vec![t.key.clone()],
                    "value" => vec![t.value.clone()],
                    "resource-id" => vec![t.resource_id.clone()],
                    _ => vec![t.resource_type.as_str().to_string()],
                })
            });
        let (page, next_token) = paging.cut(matching, position);
        Ok(TagList {
            tags: page,
            next_token,
        })
    }
}

#[derive(Debug)]
pub struct TagList {
    tags: Vec<ResourceTag>,
    next_token: Option<String>,
}

impl XmlOutput for TagList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("tagSet", &self.tags, |xml, tag| {
            xml.element("resourceId", &tag.resource_id);
            xml.element("resourceType", tag.resource_type.as_str());
            xml.element("key", &tag.key);
            xml.element("value", &tag.value);
        });
        xml.optional("nextToken", self.next_token.as_deref());
    }
}
