//! CreateVpc, CreateDefaultVpc, DeleteVpc, Describe/ModifyVpcAttribute and
//! Associate/DisassociateVpcCidrBlock (DescribeVpcs is in `network`, beside
//! the default VPC it also lists).

use super::tags::tag_specifications;
use super::Context;
use crate::compute::network::Vpc;
use crate::compute::vpc_blocks::CidrAssociation;
use crate::compute::vpcs::{vpc_block, VpcAttribute};
use crate::error::{ApiError, ApiResult};
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::Params;

/// The VPC attributes offered, by their names in `Attribute`.
fn attribute_named(name: &str) -> ApiResult<VpcAttribute> {
    match name {
        "enableDnsSupport" => Ok(VpcAttribute::EnableDnsSupport),
        "enableDnsHostnames" => Ok(VpcAttribute::EnableDnsHostnames),
        "enableNetworkAddressUsageMetrics" => Ok(VpcAttribute::EnableNetworkAddressUsageMetrics),
        other => Err(ApiError::invalid_value(format!(
            "Value ({other}) for parameter attribute is invalid. Unknown attribute."
        ))),
    }
}

#[derive(Debug)]
pub struct CreateVpc {
    pub cidr_block: String,
    pub tags: Vec<crate::compute::instances::Tag>,
    pub dry_run: bool,
}

impl CreateVpc {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        if params.get("Ipv6CidrBlock").is_some()
            || params.boolean("AmazonProvidedIpv6CidrBlock")? == Some(true)
            || params.get("Ipv4IpamPoolId").is_some()
        {
            return Err(ApiError::UnsupportedOperation(
                "IPv6 blocks and IPAM pools are not offered: give CidrBlock".into(),
            ));
        }
        if let Some(tenancy) = params.get("InstanceTenancy") {
            if tenancy != "default" {
                return Err(ApiError::UnsupportedOperation(format!(
                    "Instance tenancy '{tenancy}' is not offered: only 'default'"
                )));
            }
        }
        Ok(Self {
            cidr_block: params.required("CidrBlock")?,
            tags: tag_specifications(params, "vpc")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedVpc> {
        let block = vpc_block(&self.cidr_block)?;
        let vpc = context
            .compute
            .create_vpc(
                &context.principal.account_id,
                block,
                self.tags,
                self.dry_run,
            )
            .await?;
        Ok(CreatedVpc(vpc, false))
    }
}

/// CreateVpc's answer: the VPC, still `pending` as EC2 reports it (it is
/// `available` from the next DescribeVpcs on).
#[derive(Debug)]
pub struct CreatedVpc(Vpc, bool);

impl XmlOutput for CreatedVpc {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.nested("vpc", |xml| write_vpc(xml, &self.0, self.1, "pending"));
    }
}

/// One VPC as EC2 renders it (the `Vpc` shape).
pub fn write_vpc(xml: &mut XmlWriter, vpc: &Vpc, is_default: bool, state: &str) {
    xml.element("vpcId", &vpc.vpc_id);
    xml.element("ownerId", &vpc.account_id);
    xml.element("state", state);
    xml.element("cidrBlock", &vpc.cidr_block);
    xml.list(
        "cidrBlockAssociationSet",
        &vpc.blocks(),
        |xml, (association_id, block)| {
            xml.element("cidrBlock", block);
            xml.element("associationId", association_id);
            xml.nested("cidrBlockState", |xml| xml.element("state", "associated"));
        },
    );
    xml.element("dhcpOptionsId", &vpc.dhcp_options_id);
    super::tags::write_tags(xml, &vpc.tags);
    xml.element("instanceTenancy", "default");
    xml.boolean("isDefault", is_default);
}

#[derive(Debug)]
pub struct DeleteVpc {
    pub vpc_id: String,
    pub dry_run: bool,
}

impl DeleteVpc {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            vpc_id: params.required("VpcId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .delete_vpc(&context.principal.account_id, &self.vpc_id, self.dry_run)
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct DescribeVpcAttribute {
    pub vpc_id: String,
    pub attribute: VpcAttribute,
    pub attribute_name: String,
    pub dry_run: bool,
}

impl DescribeVpcAttribute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let attribute_name = params.required("Attribute")?;
        Ok(Self {
            vpc_id: params.required("VpcId")?,
            attribute: attribute_named(&attribute_name)?,
            attribute_name,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<VpcAttributeValue> {
        let vpc = context
            .compute
            .account_vpc(&context.principal.account_id, &self.vpc_id)
            .await?;
        super::dry_run_check(self.dry_run)?;
        Ok(VpcAttributeValue {
            vpc_id: self.vpc_id,
            name: self.attribute_name,
            value: vpc.attribute(self.attribute),
        })
    }
}

#[derive(Debug)]
pub struct VpcAttributeValue {
    vpc_id: String,
    name: String,
    value: bool,
}

impl XmlOutput for VpcAttributeValue {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("vpcId", &self.vpc_id);
        xml.nested(&self.name, |xml| xml.boolean("value", self.value));
    }
}

#[derive(Debug)]
pub struct ModifyVpcAttribute {
    pub vpc_id: String,
    pub attribute: VpcAttribute,
    pub value: bool,
    pub dry_run: bool,
}

impl ModifyVpcAttribute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let support = params.boolean("EnableDnsSupport.Value")?;
        let hostnames = params.boolean("EnableDnsHostnames.Value")?;
        let (attribute, value) = match (support, hostnames) {
            (Some(value), None) => (VpcAttribute::EnableDnsSupport, value),
            (None, Some(value)) => (VpcAttribute::EnableDnsHostnames, value),
            _ => {
                return Err(ApiError::InvalidParameterCombination(
                    "Exactly one of EnableDnsSupport and EnableDnsHostnames must be given".into(),
                ))
            }
        };
        Ok(Self {
            vpc_id: params.required("VpcId")?,
            attribute,
            value,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .modify_vpc_attribute(
                &context.principal.account_id,
                &self.vpc_id,
                self.attribute,
                self.value,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

/// CreateDefaultVpc: every account has its default VPC from its first
/// moment, and it cannot be deleted here, so this answers EC2's
/// `DefaultVpcAlreadyExists`; an account whose defaults are still being
/// made gets them.
#[derive(Debug)]
pub struct CreateDefaultVpc {
    pub dry_run: bool,
}

impl CreateDefaultVpc {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        if params.boolean("Ipv6Native")? == Some(true) {
            return Err(ApiError::UnsupportedOperation(
                "IPv6-only default VPCs are not offered".into(),
            ));
        }
        Ok(Self {
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedVpc> {
        let account = &context.principal.account_id;
        if context.compute.default_vpc(account).await?.is_some() {
            return Err(ApiError::NotFound {
                code: crate::error::codes::DEFAULT_VPC_ALREADY_EXISTS,
                message: "A Default VPC already exists for this account in this region.".into(),
            });
        }
        super::dry_run_check(self.dry_run)?;
        let (vpc, _) = context.compute.default_network(account).await?;
        Ok(CreatedVpc(vpc, true))
    }
}

#[derive(Debug)]
pub struct AssociateVpcCidrBlock {
    pub vpc_id: String,
    pub cidr_block: String,
    pub dry_run: bool,
}

impl AssociateVpcCidrBlock {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        if params.boolean("AmazonProvidedIpv6CidrBlock")? == Some(true)
            || params.get("Ipv6CidrBlock").is_some()
            || params.get("Ipv4IpamPoolId").is_some()
            || params.get("Ipv6IpamPoolId").is_some()
        {
            return Err(ApiError::UnsupportedOperation(
                "IPv6 blocks and IPAM pools are not offered: give CidrBlock".into(),
            ));
        }
        Ok(Self {
            vpc_id: params.required("VpcId")?,
            cidr_block: params.required("CidrBlock")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<BlockAssociation> {
        let block = vpc_block(&self.cidr_block)?;
        let association = context
            .compute
            .associate_vpc_block(
                &context.principal.account_id,
                &self.vpc_id,
                block,
                self.dry_run,
            )
            .await?;
        Ok(BlockAssociation {
            vpc_id: self.vpc_id,
            association,
            state: "associating",
        })
    }
}

#[derive(Debug)]
pub struct DisassociateVpcCidrBlock {
    pub association_id: String,
    pub dry_run: bool,
}

impl DisassociateVpcCidrBlock {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            association_id: params.required("AssociationId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<BlockAssociation> {
        let (vpc_id, association) = context
            .compute
            .disassociate_vpc_block(
                &context.principal.account_id,
                &self.association_id,
                self.dry_run,
            )
            .await?;
        Ok(BlockAssociation {
            vpc_id,
            association,
            state: "disassociating",
        })
    }
}

/// The answer of Associate/DisassociateVpcCidrBlock.
#[derive(Debug)]
pub struct BlockAssociation {
    vpc_id: String,
    association: CidrAssociation,
    state: &'static str,
}

impl XmlOutput for BlockAssociation {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.nested("cidrBlockAssociation", |xml| {
            xml.element("associationId", &self.association.association_id);
            xml.element("cidrBlock", &self.association.cidr_block);
            xml.nested("cidrBlockState", |xml| xml.element("state", self.state));
        });
        xml.element("vpcId", &self.vpc_id);
    }
}
