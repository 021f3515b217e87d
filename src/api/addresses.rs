//! AllocateAddress, DescribeAddresses, AssociateAddress,
//! DisassociateAddress, ReleaseAddress.
//!
//! Addresses are VPC addresses (`domain` `vpc`); `Domain=standard` is
//! accepted and answered as `vpc`, as EC2 does since EC2-Classic retired.
//! Addresses are named by `AllocationId` or by `PublicIp`.

use super::tags::{check_filter_names, tag_filter_values, tag_specifications, write_tags};
use super::{dry_run_check, Context};
use crate::compute::addresses::{Address, AddressSelector, AssociationTarget};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::matches_all;
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

fn address_selector(params: &Params) -> ApiResult<AddressSelector> {
    match (params.optional("AllocationId"), params.optional("PublicIp")) {
        (Some(id), _) => {
            crate::compute::kinds::ResourceKind::ElasticIp.check(&id)?;
            Ok(AddressSelector::AllocationId(id))
        }
        (None, Some(ip)) => Ok(AddressSelector::PublicIp(ip)),
        (None, None) => Err(ApiError::MissingParameter("AllocationId".into())),
    }
}

#[derive(Debug)]
pub struct AllocateAddress {
    pub tags: Vec<crate::compute::instances::Tag>,
    pub dry_run: bool,
}

impl AllocateAddress {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        if let Some(domain) = params.optional("Domain") {
            if domain != "vpc" && domain != "standard" {
                return Err(ApiError::invalid_value(format!(
                    "Invalid value '{domain}' for domain: vpc or standard"
                )));
            }
        }
        if params.optional("Address").is_some() || params.optional("PublicIpv4Pool").is_some() {
            return Err(ApiError::UnsupportedOperation("Choosing a specific address or pool is not supported: addresses come from the gateway's pool".into()));
        }
        Ok(Self {
            tags: tag_specifications(params, "elastic-ip")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<AllocatedAddress> {
        let address = context
            .compute
            .allocate_address(&context.principal.account_id, self.tags, self.dry_run)
            .await?;
        Ok(AllocatedAddress {
            address,
            region: context.compute.region().name.clone(),
        })
    }
}

#[derive(Debug)]
pub struct AllocatedAddress {
    address: Address,
    region: String,
}

impl XmlOutput for AllocatedAddress {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("publicIp", &self.address.public_ip);
        xml.element("domain", "vpc");
        xml.element("allocationId", &self.address.allocation_id);
        xml.element("networkBorderGroup", &self.region);
    }
}

const ADDRESS_FILTERS: &[&str] = &[
    "allocation-id",
    "association-id",
    "domain",
    "instance-id",
    "network-interface-id",
    "network-interface-owner-id",
    "private-ip-address",
    "public-ip",
    "network-border-group",
    "tag-key",
    "tag-value",
];

#[derive(Debug)]
pub struct DescribeAddresses {
    pub public_ips: Vec<String>,
    pub allocation_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub dry_run: bool,
}

impl DescribeAddresses {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            public_ips: params.list("PublicIp")?,
            allocation_ids: params.list("AllocationId")?,
            filters: params.filters()?,
            dry_run: params.dry_run()?,
        };
        check_filter_names(&request.filters, ADDRESS_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<AddressList> {
        let addresses = context
            .compute
            .addresses(&context.principal.account_id)
            .await?;
        if let Some(missing) = self
            .public_ips
            .iter()
            .find(|ip| !addresses.iter().any(|a| &a.public_ip == *ip))
        {
            return Err(ApiError::NotFound {
                code: crate::error::codes::INVALID_ADDRESS_NOT_FOUND,
                message: format!("Address '{missing}' not found."),
            });
        }
        if let Some(missing) = self
            .allocation_ids
            .iter()
            .find(|id| !addresses.iter().any(|a| &a.allocation_id == *id))
        {
            return Err(ApiError::NotFound {
                code: crate::compute::kinds::ResourceKind::ElasticIp.not_found_code(),
                message: format!("Allocation ID '{missing}' not found."),
            });
        }
        dry_run_check(self.dry_run)?;
        let region = context.compute.region().name.clone();
        let addresses = addresses
            .into_iter()
            .filter(|a| {
                (self.public_ips.is_empty() && self.allocation_ids.is_empty())
                    || self.public_ips.contains(&a.public_ip)
                    || self.allocation_ids.contains(&a.allocation_id)
            })
            .filter(|a| {
                matches_all(&self.filters, |name| {
                    tag_filter_values(&a.tags, name).unwrap_or_else(|| {
                        let association = a.association.as_ref();
                        match name {
                            "allocation-id" => vec![a.allocation_id.clone()],
                            "association-id" => association
                                .map(|x| x.association_id.clone())
                                .into_iter()
                                .collect(),
                            "domain" => vec!["vpc".into()],
                            "instance-id" => association
                                .map(|x| x.instance_id.clone())
                                .filter(|id| !id.is_empty())
                                .into_iter()
                                .collect(),
                            "network-interface-id" => {
                                association.map(|x| x.interface_id()).into_iter().collect()
                            }
                            "network-interface-owner-id" => association
                                .map(|_| a.account_id.clone())
                                .into_iter()
                                .collect(),
                            "private-ip-address" => association
                                .map(|x| x.private_ip.clone())
                                .into_iter()
                                .collect(),
                            "public-ip" => vec![a.public_ip.clone()],
                            _ => vec![region.clone()],
                        }
                    })
                })
            })
            .collect();
        Ok(AddressList { addresses, region })
    }
}

#[derive(Debug)]
pub struct AddressList {
    addresses: Vec<Address>,
    region: String,
}

impl XmlOutput for AddressList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("addressesSet", &self.addresses, |xml, address| {
            xml.element("publicIp", &address.public_ip);
            xml.element("allocationId", &address.allocation_id);
            xml.element("domain", "vpc");
            if let Some(association) = &address.association {
                if !association.instance_id.is_empty() {
                    xml.element("instanceId", &association.instance_id);
                }
                xml.element("associationId", &association.association_id);
                xml.element("networkInterfaceId", &association.interface_id());
                xml.element("networkInterfaceOwnerId", &address.account_id);
                xml.element("privateIpAddress", &association.private_ip);
            }
            write_tags(xml, &address.tags);
            xml.element("networkBorderGroup", &self.region);
        });
    }
}

#[derive(Debug)]
pub struct AssociateAddress {
    pub selector: AddressSelector,
    pub target: AssociationTarget,
    pub private_ip: Option<String>,
    pub allow_reassociation: bool,
    pub dry_run: bool,
}

impl AssociateAddress {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let target = match (
            params.optional("InstanceId"),
            params.optional("NetworkInterfaceId"),
        ) {
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidParameterCombination(
                    "Specify either an instance or a network interface, not both".into(),
                ))
            }
            (Some(id), None) => {
                crate::compute::kinds::ResourceKind::Instance.check(&id)?;
                AssociationTarget::Instance(id)
            }
            (None, Some(id)) => {
                crate::compute::kinds::ResourceKind::NetworkInterface.check(&id)?;
                AssociationTarget::NetworkInterface(id)
            }
            (None, None) => return Err(ApiError::MissingParameter("InstanceId".into())),
        };
        Ok(Self {
            selector: address_selector(params)?,
            target,
            private_ip: params.optional("PrivateIpAddress"),
            allow_reassociation: params.boolean("AllowReassociation")?.unwrap_or(false),
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<Associated> {
        let id = context
            .compute
            .associate_address(
                &context.principal.account_id,
                &self.selector,
                &self.target,
                self.private_ip.as_deref(),
                self.allow_reassociation,
                self.dry_run,
            )
            .await?;
        Ok(Associated(id))
    }
}

#[derive(Debug)]
pub struct Associated(String);

impl XmlOutput for Associated {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("associationId", &self.0);
    }
}

#[derive(Debug)]
pub struct DisassociateAddress {
    pub association_id: Option<String>,
    pub public_ip: Option<String>,
    pub dry_run: bool,
}

impl DisassociateAddress {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            association_id: params.optional("AssociationId"),
            public_ip: params.optional("PublicIp"),
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .disassociate_address(
                &context.principal.account_id,
                self.association_id.as_deref(),
                self.public_ip.as_deref(),
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct ReleaseAddress {
    pub selector: AddressSelector,
    pub dry_run: bool,
}

impl ReleaseAddress {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            selector: address_selector(params)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .release_address(&context.principal.account_id, &self.selector, self.dry_run)
            .await?;
        Ok(ReturnTrue)
    }
}
