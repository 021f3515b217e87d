//! CreateSubnet, DeleteSubnet, DescribeSubnets and ModifySubnetAttribute.
//!
//! DescribeSubnets lists the account's default subnets (one per zone) and
//! those it created, with EC2's `availableIpAddressCount`: the block's
//! size less EC2's five reserved addresses and those live instances hold.

use super::network::check_page_size;
use super::tags::{check_filter_names, tag_filter_values, tag_specifications};
use super::{dry_run_check, Context};
use crate::compute::subnets::{subnet_block, AccountSubnet, ZoneChoice};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::matches_all;
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

#[derive(Debug)]
pub struct CreateSubnet {
    pub vpc_id: String,
    pub cidr_block: String,
    pub zone: ZoneChoice,
    pub tags: Vec<crate::compute::instances::Tag>,
    pub dry_run: bool,
}

impl CreateSubnet {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        if params.get("Ipv6CidrBlock").is_some()
            || params.boolean("Ipv6Native")? == Some(true)
            || params.get("Ipv4IpamPoolId").is_some()
            || params.get("OutpostArn").is_some()
        {
            return Err(ApiError::UnsupportedOperation(
                "IPv6 blocks, IPAM pools and Outposts are not offered: give CidrBlock".into(),
            ));
        }
        let zone = match (
            params.get("AvailabilityZone"),
            params.get("AvailabilityZoneId"),
        ) {
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidParameterCombination(
                    "Only one of AvailabilityZone and AvailabilityZoneId may be given".into(),
                ))
            }
            (Some(name), None) => ZoneChoice::Name(name.to_string()),
            (None, Some(id)) => ZoneChoice::Id(id.to_string()),
            (None, None) => ZoneChoice::Any,
        };
        Ok(Self {
            vpc_id: params.required("VpcId")?,
            cidr_block: params.required("CidrBlock")?,
            zone,
            tags: tag_specifications(params, "subnet")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedSubnet> {
        let block = subnet_block(&self.cidr_block)?;
        let subnet = context
            .compute
            .create_subnet(
                &context.principal.account_id,
                &self.vpc_id,
                block,
                self.zone,
                self.tags,
                self.dry_run,
            )
            .await?;
        let found = AccountSubnet {
            subnet,
            is_default: false,
        };
        Ok(CreatedSubnet(SubnetView {
            available: found.usable_addresses(),
            found,
            region: context.compute.region().name.clone(),
            state: "pending",
        }))
    }
}

/// CreateSubnet's answer: the subnet, `pending` as EC2 first reports it.
#[derive(Debug)]
pub struct CreatedSubnet(SubnetView);

impl XmlOutput for CreatedSubnet {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.nested("subnet", |xml| write_subnet(xml, &self.0));
    }
}

#[derive(Debug)]
pub struct DeleteSubnet {
    pub subnet_id: String,
    pub dry_run: bool,
}

impl DeleteSubnet {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            subnet_id: params.required("SubnetId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .delete_subnet(&context.principal.account_id, &self.subnet_id, self.dry_run)
            .await?;
        Ok(ReturnTrue)
    }
}

/// ModifySubnetAttribute: MapPublicIpOnLaunch (the IPv6, customer-owned
/// and DNS-name attributes need what this gateway does not offer).
#[derive(Debug)]
pub struct ModifySubnetAttribute {
    pub subnet_id: String,
    pub map_public_ip_on_launch: bool,
    pub dry_run: bool,
}

impl ModifySubnetAttribute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        const OTHERS: &[&str] = &[
            "AssignIpv6AddressOnCreation.Value",
            "MapCustomerOwnedIpOnLaunch.Value",
            "CustomerOwnedIpv4Pool",
            "EnableDns64.Value",
            "PrivateDnsHostnameTypeOnLaunch",
            "EnableResourceNameDnsARecordOnLaunch.Value",
            "EnableResourceNameDnsAAAARecordOnLaunch.Value",
            "EnableLniAtDeviceIndex",
            "DisableLniAtDeviceIndex.Value",
        ];
        let subnet_id = params.required("SubnetId")?;
        let dry_run = params.dry_run()?;
        if let Some(other) = OTHERS.iter().find(|name| params.get(name).is_some()) {
            let attribute = other.split('.').next().unwrap_or(other);
            return Err(ApiError::UnsupportedOperation(format!(
                "The subnet attribute {attribute} is not offered: only MapPublicIpOnLaunch"
            )));
        }
        let map_public_ip_on_launch = params
            .boolean("MapPublicIpOnLaunch.Value")?
            .ok_or_else(|| ApiError::MissingParameter("MapPublicIpOnLaunch".into()))?;
        Ok(Self {
            subnet_id,
            map_public_ip_on_launch,
            dry_run,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .modify_subnet_map_public_ip(
                &context.principal.account_id,
                &self.subnet_id,
                self.map_public_ip_on_launch,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

const SUBNET_FILTERS: &[&str] = &[
    "availability-zone",
    "availability-zone-id",
    "default-for-az",
    "vpc-id",
    "subnet-id",
    "cidr-block",
    "cidr",
    "cidrBlock",
    "state",
    "owner-id",
    "map-public-ip-on-launch",
    "tag-key",
    "tag-value",
];

#[derive(Debug)]
pub struct DescribeSubnets {
    pub subnet_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub dry_run: bool,
}

impl DescribeSubnets {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        check_page_size(params)?;
        let request = Self {
            subnet_ids: params.list("SubnetId")?,
            filters: params.filters()?,
            dry_run: params.dry_run()?,
        };
        check_filter_names(&request.filters, SUBNET_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<SubnetList> {
        let account = &context.principal.account_id;
        // The default subnets are made with the account (and with a zone).
        let subnets = context.compute.account_subnets(account).await?;
        for id in &self.subnet_ids {
            crate::compute::kinds::ResourceKind::Subnet.check(id)?;
        }
        if let Some(missing) = self
            .subnet_ids
            .iter()
            .find(|id| !subnets.iter().any(|s| &s.subnet.subnet_id == *id))
        {
            return Err(crate::compute::kinds::ResourceKind::Subnet.not_found(missing));
        }
        dry_run_check(self.dry_run)?;
        let mut listed = Vec::new();
        for found in subnets {
            let subnet = &found.subnet;
            if !self.subnet_ids.is_empty() && !self.subnet_ids.contains(&subnet.subnet_id) {
                continue;
            }
            let matches = matches_all(&self.filters, |name| {
                tag_filter_values(&subnet.tags, name).unwrap_or_else(|| match name {
                    "availability-zone" => vec![subnet.availability_zone.clone()],
                    "availability-zone-id" => vec![subnet.availability_zone_id.clone()],
                    "default-for-az" => vec![found.is_default.to_string()],
                    "map-public-ip-on-launch" => vec![found.map_public_ip_on_launch().to_string()],
                    "vpc-id" => vec![subnet.vpc_id.clone()],
                    "subnet-id" => vec![subnet.subnet_id.clone()],
                    "state" => vec!["available".into()],
                    "owner-id" => vec![subnet.account_id.clone()],
                    _ => vec![subnet.cidr_block.clone()],
                })
            });
            if matches {
                let used = context.compute.subnet_addresses_in_use(&found).await?;
                listed.push(SubnetView {
                    available: found.usable_addresses().saturating_sub(used),
                    found,
                    region: context.compute.region().name.clone(),
                    state: "available",
                });
            }
        }
        Ok(SubnetList { subnets: listed })
    }
}

/// A subnet with what DescribeSubnets reports beside its record.
#[derive(Debug)]
struct SubnetView {
    found: AccountSubnet,
    available: u64,
    region: String,
    state: &'static str,
}

#[derive(Debug)]
pub struct SubnetList {
    subnets: Vec<SubnetView>,
}

impl XmlOutput for SubnetList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("subnetSet", &self.subnets, |xml, view| {
            write_subnet(xml, view)
        });
    }
}

/// One subnet as EC2 renders it (the `Subnet` shape).
fn write_subnet(xml: &mut XmlWriter, view: &SubnetView) {
    let subnet = &view.found.subnet;
    xml.element("subnetId", &subnet.subnet_id);
    xml.element(
        "subnetArn",
        &format!(
            "arn:aws:ec2:{}:{}:subnet/{}",
            view.region, subnet.account_id, subnet.subnet_id
        ),
    );
    xml.element("state", view.state);
    xml.element("ownerId", &subnet.account_id);
    xml.element("vpcId", &subnet.vpc_id);
    xml.element("cidrBlock", &subnet.cidr_block);
    xml.list("ipv6CidrBlockAssociationSet", &[] as &[String], |_, _| {});
    xml.number("availableIpAddressCount", view.available);
    xml.element("availabilityZone", &subnet.availability_zone);
    xml.element("availabilityZoneId", &subnet.availability_zone_id);
    xml.boolean("defaultForAz", view.found.is_default);
    xml.boolean("mapPublicIpOnLaunch", view.found.map_public_ip_on_launch());
    xml.boolean("assignIpv6AddressOnCreation", false);
    super::tags::write_tags(xml, &subnet.tags);
}
