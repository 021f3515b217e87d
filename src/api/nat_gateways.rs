//! CreateNatGateway, DeleteNatGateway and DescribeNatGateways.

use super::pagination::{check_max_results, Selection};
use super::tags::{check_filter_names, tag_filter_values, tag_specifications};
use super::Context;
use crate::compute::idempotency::ClientToken;
use crate::compute::kinds::ResourceKind;
use crate::compute::nat_gateways::{NatGatewayState, NatGatewayView, NewNatGateway};
use crate::error::{ApiError, ApiResult};
use crate::protocol::xml::{XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

/// One NAT gateway as EC2 renders it (the `NatGateway` shape).
fn write_nat_gateway(xml: &mut XmlWriter, nat: &NatGatewayView) {
    xml.timestamp("createTime", nat.created_at);
    if let Some(deleted) = nat.deleted_at {
        xml.timestamp("deleteTime", deleted);
    }
    if let Some((code, message)) = &nat.failure {
        xml.element("failureCode", code);
        xml.element("failureMessage", message);
    }
    xml.list("natGatewayAddressSet", &[()], |xml, _| {
        xml.optional("allocationId", nat.allocation_id.as_deref());
        // Its interface and the association on it last until its deletion
        // is asked.
        let has_interface = nat.failure.is_none() && nat.deleted_at.is_none();
        if nat.allocation_id.is_some() && has_interface {
            xml.element(
                "associationId",
                &crate::compute::nat_gateways::nat_association_id(&nat.id),
            );
        }
        if has_interface {
            xml.element(
                "networkInterfaceId",
                &crate::compute::nat_gateways::nat_interface_id(&nat.id),
            );
        }
        if nat.failure.is_none() {
            xml.element("privateIp", &nat.private_ip);
        }
        xml.optional("publicIp", nat.public_ip.as_deref());
        xml.boolean("isPrimary", true);
        let status = match nat.state {
            NatGatewayState::Pending => "associating",
            NatGatewayState::Deleting => "disassociating",
            NatGatewayState::Failed => "failed",
            NatGatewayState::Available | NatGatewayState::Deleted => "succeeded",
        };
        xml.element("status", status);
    });
    xml.element("natGatewayId", &nat.id);
    xml.element("state", nat.state.as_str());
    xml.element("subnetId", &nat.subnet_id);
    xml.element("vpcId", &nat.vpc_id);
    super::tags::write_tags(xml, &nat.tags);
    xml.element("connectivityType", &nat.connectivity_type);
}

#[derive(Debug)]
pub struct CreateNatGateway {
    pub request: NewNatGateway,
    pub dry_run: bool,
}

impl CreateNatGateway {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let private = match params.get("ConnectivityType") {
            None | Some("public") => false,
            Some("private") => true,
            Some(other) => {
                return Err(ApiError::invalid_value(format!(
                    "Value ({other}) for parameter connectivityType is invalid. Valid values: public, private"
                )))
            }
        };
        for unoffered in [
            "PrivateIpAddress",
            "SecondaryAllocationId.1",
            "SecondaryPrivateIpAddress.1",
            "SecondaryPrivateIpAddressCount",
            "AvailabilityMode",
        ] {
            if params.get(unoffered).is_some() {
                return Err(ApiError::UnsupportedOperation(format!(
                    "{} is not offered: a NAT gateway takes one address of its subnet",
                    unoffered.trim_end_matches(".1")
                )));
            }
        }
        let allocation_id = params.optional("AllocationId");
        match (private, &allocation_id) {
            (false, None) => return Err(ApiError::MissingParameter("AllocationId".into())),
            (true, Some(_)) => {
                return Err(ApiError::InvalidParameterCombination(
                    "A private NAT gateway takes no Elastic IP address".into(),
                ))
            }
            _ => {}
        }
        let client_token = params.optional("ClientToken").map(|token| ClientToken {
            token,
            fingerprint: super::request_fingerprint(params),
        });
        Ok(Self {
            request: NewNatGateway {
                subnet_id: params.required("SubnetId")?,
                allocation_id,
                private,
                tags: tag_specifications(params, "natgateway")?,
                client_token,
            },
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedNatGateway> {
        ResourceKind::Subnet.check(&self.request.subnet_id)?;
        let token = self.request.client_token.as_ref().map(|t| t.token.clone());
        let nat = context
            .compute
            .create_nat_gateway(&context.principal.account_id, self.request, self.dry_run)
            .await?;
        Ok(CreatedNatGateway { nat, token })
    }
}

#[derive(Debug)]
pub struct CreatedNatGateway {
    nat: NatGatewayView,
    token: Option<String>,
}

impl XmlOutput for CreatedNatGateway {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.optional("clientToken", self.token.as_deref());
        xml.nested("natGateway", |xml| write_nat_gateway(xml, &self.nat));
    }
}

#[derive(Debug)]
pub struct DeleteNatGateway {
    pub nat_gateway_id: String,
    pub dry_run: bool,
}

impl DeleteNatGateway {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            nat_gateway_id: params.required("NatGatewayId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<DeletedNatGateway> {
        context
            .compute
            .delete_nat_gateway(
                &context.principal.account_id,
                &self.nat_gateway_id,
                self.dry_run,
            )
            .await?;
        Ok(DeletedNatGateway(self.nat_gateway_id))
    }
}

#[derive(Debug)]
pub struct DeletedNatGateway(String);

impl XmlOutput for DeletedNatGateway {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("natGatewayId", &self.0);
    }
}

const NAT_FILTERS: &[&str] = &[
    "nat-gateway-id",
    "state",
    "subnet-id",
    "vpc-id",
    "tag-key",
    "tag-value",
];

#[derive(Debug)]
pub struct DescribeNatGateways {
    pub ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeNatGateways {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            ids: params.list("NatGatewayId")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        for id in &request.ids {
            ResourceKind::NatGateway.check(id)?;
        }
        check_filter_names(&request.filters, NAT_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<NatGatewayList> {
        let gateways = context
            .compute
            .nat_gateways(&context.principal.account_id)
            .await?;
        let (gateways, next_token) = Selection {
            action: "DescribeNatGateways",
            kind: ResourceKind::NatGateway,
            ids: &self.ids,
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
                    "nat-gateway-id" => vec![g.id.clone()],
                    "state" => vec![g.state.as_str().to_string()],
                    "subnet-id" => vec![g.subnet_id.clone()],
                    _ => vec![g.vpc_id.clone()],
                })
            },
        )?;
        Ok(NatGatewayList {
            gateways,
            next_token,
        })
    }
}

#[derive(Debug)]
pub struct NatGatewayList {
    gateways: Vec<NatGatewayView>,
    next_token: Option<String>,
}

impl XmlOutput for NatGatewayList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("natGatewaySet", &self.gateways, write_nat_gateway);
        xml.optional("nextToken", self.next_token.as_deref());
    }
}
