//! Tags as every EC2 resource has them: `TagSpecification.N` on create
//! actions, `<tagSet>` in describes, and the `tag:<key>`, `tag-key` and
//! `tag-value` filters. Limits as EC2: 50 tags per resource, keys of 1 to
//! 128 characters without the reserved `aws:` prefix, values up to 256.

use crate::compute::instances::Tag;
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::check_names;
use crate::protocol::xml::XmlWriter;
use crate::protocol::{Filter, Params};

/// Most tags on one resource.
const MAX_TAGS: usize = 50;

/// Parses `TagSpecification.N` for `resource_type`; specifications for
/// other resource types are refused: this action creates no such resource.
pub fn tag_specifications(params: &Params, resource_type: &str) -> ApiResult<Vec<Tag>> {
    let mut tags = Vec::new();
    for spec in params.structures("TagSpecification")? {
        let given = spec
            .required("ResourceType")
            .map_err(|_| ApiError::MissingParameter("TagSpecification.N.ResourceType".into()))?;
        if given != resource_type {
            return Err(ApiError::invalid_value(format!(
                "'{given}' is not a valid taggable resource type for this operation."
            )));
        }
        for tag in spec.structures("Tag")? {
            let key = tag.get("Key").unwrap_or("").to_string();
            let value = tag.get("Value").unwrap_or("").to_string();
            check_tag(&key, &value)?;
            tags.retain(|t: &Tag| t.key != key);
            tags.push(Tag { key, value });
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(ApiError::invalid_value(format!(
            "A resource can have at most {MAX_TAGS} tags"
        )));
    }
    Ok(tags)
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
