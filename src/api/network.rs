//! DescribeAccountAttributes and DescribeVpcs.
//!
//! Every account has one default VPC with a default subnet per zone
//! (`compute::network`), which is what tools look for before a launch.
//! Account attributes come from the configured quotas. DescribeVpcs lists
//! the default VPC and those created (`api::vpcs`); subnets are in
//! `api::subnets`.

use super::tags::{check_filter_names, tag_filter_values};
use super::{dry_run_check, Context};
use crate::compute::network::Vpc;
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::matches_all;
use crate::protocol::xml::{XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

const ACCOUNT_ATTRIBUTES: &[&str] = &[
    "supported-platforms",
    "default-vpc",
    "max-instances",
    "vpc-max-security-groups-per-interface",
    "max-elastic-ips",
    "vpc-max-elastic-ips",
];

#[derive(Debug)]
pub struct DescribeAccountAttributes {
    pub attribute_names: Vec<String>,
    pub dry_run: bool,
}

impl DescribeAccountAttributes {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let attribute_names = params.list("AttributeName")?;
        if let Some(unknown) = attribute_names
            .iter()
            .find(|n| !ACCOUNT_ATTRIBUTES.contains(&n.as_str()))
        {
            return Err(ApiError::invalid_value(format!(
                "Value ({unknown}) for parameter attributeName is invalid."
            )));
        }
        Ok(Self {
            attribute_names,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<AccountAttributes> {
        dry_run_check(self.dry_run)?;
        let (vpc, _) = context
            .compute
            .default_network(&context.principal.account_id)
            .await?;
        let quotas = &context.compute.quotas();
        let attributes = ACCOUNT_ATTRIBUTES
            .iter()
            .filter(|name| {
                self.attribute_names.is_empty() || self.attribute_names.iter().any(|n| n == *name)
            })
            .map(|name| {
                let values = match *name {
                    "supported-platforms" => vec!["VPC".to_string()],
                    "default-vpc" => vec![vpc.vpc_id.clone()],
                    "max-instances" => vec![quotas.max_instances.to_string()],
                    "vpc-max-security-groups-per-interface" => vec!["5".to_string()],
                    _ => vec![quotas.max_elastic_ips.to_string()],
                };
                (name.to_string(), values)
            })
            .collect();
        Ok(AccountAttributes(attributes))
    }
}

#[derive(Debug)]
pub struct AccountAttributes(Vec<(String, Vec<String>)>);

impl XmlOutput for AccountAttributes {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("accountAttributeSet", &self.0, |xml, (name, values)| {
            xml.element("attributeName", name);
            xml.list("attributeValueSet", values, |xml, value| {
                xml.element("attributeValue", value)
            });
        });
    }
}

const VPC_FILTERS: &[&str] = &[
    "vpc-id",
    "cidr",
    "cidr-block-association.cidr-block",
    "cidr-block-association.association-id",
    "cidr-block-association.state",
    "is-default",
    "state",
    "owner-id",
    "dhcp-options-id",
    "tag-key",
    "tag-value",
];

/// MaxResults for VPC and subnet listings (one page always holds them all).
pub(super) fn check_page_size(params: &Params) -> ApiResult<()> {
    super::pagination::check_max_results(params.number("MaxResults")?, 5, 1000).map(|_| ())
}

#[derive(Debug)]
pub struct DescribeVpcs {
    pub vpc_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub dry_run: bool,
}

impl DescribeVpcs {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        check_page_size(params)?;
        let request = Self {
            vpc_ids: params.list("VpcId")?,
            filters: params.filters()?,
            dry_run: params.dry_run()?,
        };
        check_filter_names(&request.filters, VPC_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<VpcList> {
        let vpcs = context
            .compute
            .account_vpcs(&context.principal.account_id)
            .await?;
        if let Some(missing) = self
            .vpc_ids
            .iter()
            .find(|id| !vpcs.iter().any(|v| &v.vpc.vpc_id == *id))
        {
            return Err(ApiError::NotFound {
                code: crate::compute::kinds::ResourceKind::Vpc.not_found_code(),
                message: format!("The vpc ID '{missing}' does not exist"),
            });
        }
        dry_run_check(self.dry_run)?;
        let vpcs = vpcs
            .into_iter()
            .filter(|found| self.vpc_ids.is_empty() || self.vpc_ids.contains(&found.vpc.vpc_id))
            .filter(|found| {
                let vpc = &found.vpc;
                matches_all(&self.filters, |name| {
                    tag_filter_values(&vpc.tags, name).unwrap_or_else(|| match name {
                        "vpc-id" => vec![vpc.vpc_id.clone()],
                        "cidr" => vec![vpc.cidr_block.clone()],
                        "cidr-block-association.cidr-block" => {
                            vpc.blocks().into_iter().map(|(_, block)| block).collect()
                        }
                        "cidr-block-association.association-id" => {
                            vpc.blocks().into_iter().map(|(id, _)| id).collect()
                        }
                        "cidr-block-association.state" => vec!["associated".into()],
                        "is-default" => vec![found.is_default.to_string()],
                        "state" => vec!["available".into()],
                        "owner-id" => vec![vpc.account_id.clone()],
                        _ => vec![vpc.dhcp_options_id.clone()],
                    })
                })
            })
            .map(|found| (found.vpc, found.is_default))
            .collect();
        Ok(VpcList { vpcs })
    }
}

#[derive(Debug)]
pub struct VpcList {
    vpcs: Vec<(Vpc, bool)>,
}

impl XmlOutput for VpcList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("vpcSet", &self.vpcs, |xml, (vpc, is_default)| {
            super::vpcs::write_vpc(xml, vpc, *is_default, "available")
        });
    }
}
