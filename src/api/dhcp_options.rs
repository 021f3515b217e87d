//! CreateDhcpOptions, DeleteDhcpOptions, AssociateDhcpOptions and
//! DescribeDhcpOptions.

use super::pagination::{check_max_results, Selection};
use super::tags::{check_filter_names, tag_filter_values, tag_specifications};
use super::Context;
use crate::compute::dhcp_options::DhcpOptions;
use crate::compute::kinds::ResourceKind;
use crate::error::{ApiError, ApiResult};
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

/// One set as EC2 renders it (the `DhcpOptions` shape).
fn write_options(xml: &mut XmlWriter, options: &DhcpOptions) {
    xml.element("ownerId", &options.account_id);
    super::tags::write_tags(xml, &options.tags);
    xml.element("dhcpOptionsId", &options.id);
    xml.list(
        "dhcpConfigurationSet",
        &options.configurations,
        |xml, (name, values)| {
            xml.element("key", name);
            xml.list("valueSet", values, |xml, value| xml.element("value", value));
        },
    );
}

#[derive(Debug)]
pub struct CreateDhcpOptions {
    pub configurations: Vec<(String, Vec<String>)>,
    pub tags: Vec<crate::compute::instances::Tag>,
    pub dry_run: bool,
}

impl CreateDhcpOptions {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let mut configurations = Vec::new();
        for configuration in params.structures("DhcpConfiguration")? {
            let name = configuration
                .get("Key")
                .ok_or_else(|| ApiError::MissingParameter("DhcpConfiguration.N.Key".into()))?
                .to_string();
            configurations.push((name, configuration.list("Value")?));
        }
        Ok(Self {
            configurations,
            tags: tag_specifications(params, "dhcp-options")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedDhcpOptions> {
        let options = context
            .compute
            .create_dhcp_options(
                &context.principal.account_id,
                self.configurations,
                self.tags,
                self.dry_run,
            )
            .await?;
        Ok(CreatedDhcpOptions(options))
    }
}

#[derive(Debug)]
pub struct CreatedDhcpOptions(DhcpOptions);

impl XmlOutput for CreatedDhcpOptions {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.nested("dhcpOptions", |xml| write_options(xml, &self.0));
    }
}

#[derive(Debug)]
pub struct DeleteDhcpOptions {
    pub options_id: String,
    pub dry_run: bool,
}

impl DeleteDhcpOptions {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            options_id: params.required("DhcpOptionsId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .delete_dhcp_options(
                &context.principal.account_id,
                &self.options_id,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct AssociateDhcpOptions {
    pub options_id: String,
    pub vpc_id: String,
    pub dry_run: bool,
}

impl AssociateDhcpOptions {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            options_id: params.required("DhcpOptionsId")?,
            vpc_id: params.required("VpcId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        ResourceKind::Vpc.check(&self.vpc_id)?;
        context
            .compute
            .associate_dhcp_options(
                &context.principal.account_id,
                &self.options_id,
                &self.vpc_id,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

const OPTIONS_FILTERS: &[&str] = &[
    "dhcp-options-id",
    "key",
    "value",
    "owner-id",
    "tag-key",
    "tag-value",
];

#[derive(Debug)]
pub struct DescribeDhcpOptions {
    pub ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeDhcpOptions {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            ids: params.list("DhcpOptionsId")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        for id in &request.ids {
            ResourceKind::DhcpOptions.check(id)?;
        }
        check_filter_names(&request.filters, OPTIONS_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<DhcpOptionsList> {
        let sets = context
            .compute
            .dhcp_options(&context.principal.account_id)
            .await?;
        let (sets, next_token) = Selection {
            action: "DescribeDhcpOptions",
            kind: ResourceKind::DhcpOptions,
            ids: &self.ids,
            filters: &self.filters,
            max_results: self.max_results,
            next_token: self.next_token.as_deref(),
            dry_run: self.dry_run,
        }
        .page(
            context,
            sets,
            |s| &s.id,
            |s, name| {
                tag_filter_values(&s.tags, name).unwrap_or_else(|| match name {
                    "dhcp-options-id" => vec![s.id.clone()],
                    "key" => s.configurations.iter().map(|(k, _)| k.clone()).collect(),
                    "value" => s
                        .configurations
                        .iter()
                        .flat_map(|(_, values)| values.iter().cloned())
                        .collect(),
                    _ => vec![s.account_id.clone()],
                })
            },
        )?;
        Ok(DhcpOptionsList { sets, next_token })
    }
}

#[derive(Debug)]
pub struct DhcpOptionsList {
    sets: Vec<DhcpOptions>,
    next_token: Option<String>,
}

impl XmlOutput for DhcpOptionsList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("dhcpOptionsSet", &self.sets, write_options);
        xml.optional("nextToken", self.next_token.as_deref());
    }
}
