//! CreateInternetGateway, AttachInternetGateway, DetachInternetGateway,
//! DeleteInternetGateway and DescribeInternetGateways.

use super::pagination::{check_max_results, Selection};
use super::tags::{check_filter_names, tag_filter_values, tag_specifications};
use super::Context;
use crate::compute::internet_gateways::InternetGateway;
use crate::compute::kinds::ResourceKind;
use crate::error::ApiResult;
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

/// One gateway as EC2 renders it (the `InternetGateway` shape).
fn write_gateway(xml: &mut XmlWriter, gateway: &InternetGateway) {
    let attachments: Vec<&String> = gateway.vpc_id.iter().collect();
    xml.list("attachmentSet", &attachments, |xml, vpc| {
        xml.element("vpcId", vpc);
        xml.element("state", "available");
    });
    xml.element("internetGatewayId", &gateway.id);
    xml.element("ownerId", &gateway.account_id);
    super::tags::write_tags(xml, &gateway.tags);
}

#[derive(Debug)]
pub struct CreateInternetGateway {
    pub tags: Vec<crate::compute::instances::Tag>,
    pub dry_run: bool,
}

impl CreateInternetGateway {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            tags: tag_specifications(params, "internet-gateway")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedInternetGateway> {
        let gateway = context
            .compute
            .create_internet_gateway(&context.principal.account_id, self.tags, self.dry_run)
            .await?;
        Ok(CreatedInternetGateway(gateway))
    }
}

#[derive(Debug)]
pub struct CreatedInternetGateway(InternetGateway);

impl XmlOutput for CreatedInternetGateway {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.nested("internetGateway", |xml| write_gateway(xml, &self.0));
    }
}

/// AttachInternetGateway and DetachInternetGateway share their parameters.
#[derive(Debug)]
pub struct GatewayAttachment {
    pub gateway_id: String,
    pub vpc_id: String,
    pub dry_run: bool,
}

impl GatewayAttachment {
    fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            gateway_id: params.required("InternetGatewayId")?,
            vpc_id: params.required("VpcId")?,
            dry_run: params.dry_run()?,
        })
    }
}

#[derive(Debug)]
pub struct AttachInternetGateway(GatewayAttachment);

impl AttachInternetGateway {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        GatewayAttachment::from_params(params).map(Self)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        let request = self.0;
        context
            .compute
            .attach_internet_gateway(
                &context.principal.account_id,
                &request.gateway_id,
                &request.vpc_id,
                request.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct DetachInternetGateway(GatewayAttachment);

impl DetachInternetGateway {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        GatewayAttachment::from_params(params).map(Self)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        let request = self.0;
        context
            .compute
            .detach_internet_gateway(
                &context.principal.account_id,
                &request.gateway_id,
                &request.vpc_id,
                request.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct DeleteInternetGateway {
    pub gateway_id: String,
    pub dry_run: bool,
}

impl DeleteInternetGateway {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            gateway_id: params.required("InternetGatewayId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .delete_internet_gateway(
                &context.principal.account_id,
                &self.gateway_id,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

const GATEWAY_FILTERS: &[&str] = &[
    "attachment.state",
    "attachment.vpc-id",
    "internet-gateway-id",
    "owner-id",
    "tag-key",
    "tag-value",
];

#[derive(Debug)]
pub struct DescribeInternetGateways {
    pub gateway_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeInternetGateways {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            gateway_ids: params.list("InternetGatewayId")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        for id in &request.gateway_ids {
            ResourceKind::InternetGateway.check(id)?;
        }
        check_filter_names(&request.filters, GATEWAY_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<InternetGatewayList> {
        let gateways = context
            .compute
            .internet_gateways(&context.principal.account_id)
            .await?;
        let (gateways, next_token) = Selection {
            action: "DescribeInternetGateways",
            kind: ResourceKind::InternetGateway,
            ids: &self.gateway_ids,
            filters: &self.filters,
            max_results: self.max_results,
            next_token: self.next_token.as_deref(),
            dry_run: self.dry_run,
        }
        .page(
            context,
            gateways,
            |g| &g.id,
            |g, name| {
                tag_filter_values(&g.tags, name).unwrap_or_else(|| match name {
                    "attachment.state" => g.vpc_id.iter().map(|_| "available".into()).collect(),
                    "attachment.vpc-id" => g.vpc_id.iter().cloned().collect(),
                    "internet-gateway-id" => vec![g.id.clone()],
                    _ => vec![g.account_id.clone()],
                })
            },
        )?;
        Ok(InternetGatewayList {
            gateways,
            next_token,
        })
    }
}

#[derive(Debug)]
pub struct InternetGatewayList {
    gateways: Vec<InternetGateway>,
    next_token: Option<String>,
}

impl XmlOutput for InternetGatewayList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("internetGatewaySet", &self.gateways, |xml, gateway| {
            write_gateway(xml, gateway)
        });
        xml.optional("nextToken", self.next_token.as_deref());
    }
}
