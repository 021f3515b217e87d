//! CreateNetworkInterface, DeleteNetworkInterface, DescribeNetworkInterfaces,
//! Attach/DetachNetworkInterface, Modify/Describe/ResetNetworkInterfaceAttribute,
//! Assign/UnassignPrivateIpAddresses, and the interface XML that
//! DescribeInstances' `networkInterfaceSet` shares.

use super::pagination::{check_max_results, Selection};
use super::tags::{check_filter_names, tag_filter_values, tag_specifications, write_tags};
use super::Context;
use crate::compute::addresses::Address;
use crate::compute::idempotency::ClientToken;
use crate::compute::kinds::ResourceKind;
use crate::compute::network_interfaces::{InterfaceChange, NetworkInterface, NewInterface};
use crate::error::{ApiError, ApiResult};
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};
use std::collections::HashMap;

/// The Elastic IPs on the account's interfaces, by interface and private
/// address.
#[derive(Debug, Default)]
pub struct PublicAddresses {
    by_private: HashMap<(String, String), Address>,
    /// The interfaces any of them is on.
    interfaces: std::collections::HashSet<String>,
    region: String,
}

impl PublicAddresses {
    pub fn of(addresses: &[Address], region: &str) -> Self {
        let by_private = addresses
            .iter()
            .filter_map(|address| {
                let association = address.association.as_ref()?;
                Some((
                    (association.interface_id(), association.private_ip.clone()),
                    address.clone(),
                ))
            })
            .collect::<HashMap<_, _>>();
        let interfaces = by_private.keys().map(|(id, _)| id.clone()).collect();
        Self {
            by_private,
            interfaces,
            region: region.to_string(),
        }
    }

    /// True when no Elastic IP is on any interface of the account.
    pub fn is_empty(&self) -> bool {
        self.by_private.is_empty()
    }

    /// True when an Elastic IP is on any address of `interface_id`.
    pub fn on_interface(&self, interface_id: &str) -> bool {
        self.interfaces.contains(interface_id)
    }

    /// The Elastic IP on `private_ip` of `interface_id`.
    pub fn on(&self, interface_id: &str, private_ip: &str) -> Option<&Address> {
        self.by_private
            .get(&(interface_id.to_string(), private_ip.to_string()))
    }

    pub fn dns_name(&self, public_ip: &str) -> String {
        crate::compute::addresses::public_dns_name(public_ip, &self.region)
    }
}

impl PublicAddresses {
    fn private_dns_name(&self, address: &str) -> String {
        crate::compute::launch::private_dns_name(address, &self.region)
    }

    /// An instance's public address from the provider's pool (no Elastic
    /// IP: no allocation or association ids, owned by `amazon`).
    fn provider_association(&self, xml: &mut XmlWriter, public_ip: &str) {
        xml.nested("association", |xml| {
            xml.element("ipOwnerId", "amazon");
            xml.element("publicDnsName", &self.dns_name(public_ip));
            xml.element("publicIp", public_ip);
        });
    }

    fn association(&self, xml: &mut XmlWriter, address: &Address, full: bool) {
        xml.nested("association", |xml| {
            if full {
                xml.element("allocationId", &address.allocation_id);
                if let Some(association) = &address.association {
                    xml.element("associationId", &association.association_id);
                }
            }
            xml.element("ipOwnerId", &address.account_id);
            xml.element("publicDnsName", &self.dns_name(&address.public_ip));
            xml.element("publicIp", &address.public_ip);
        });
    }
}

/// An interface's `attachment` (with its instance when `full`: the
/// `NetworkInterfaceAttachment` shape rather than DescribeInstances' own).
fn write_attachment(xml: &mut XmlWriter, interface: &NetworkInterface, full: bool) {
    let Some(attachment) = &interface.attachment else {
        return;
    };
    xml.nested("attachment", |xml| {
        xml.timestamp("attachTime", attachment.attach_time);
        xml.element("attachmentId", &attachment.attachment_id);
        xml.boolean("deleteOnTermination", attachment.delete_on_termination);
        xml.number("deviceIndex", attachment.device_index);
        xml.number("networkCardIndex", 0);
        if full {
            xml.element("instanceId", &attachment.instance_id);
            xml.element("instanceOwnerId", &interface.account_id);
        }
        xml.element("status", "attached");
    });
}

/// The fields the `NetworkInterface` and `InstanceNetworkInterface` shapes
/// share; `full` for the former (DescribeNetworkInterfaces).
pub fn write_interface(
    xml: &mut XmlWriter,
    interface: &NetworkInterface,
    around: &PublicAddresses,
    full: bool,
) {
    let primary_public = around.on(&interface.id, &interface.private_ip);
    match (primary_public, &interface.public_ip) {
        (Some(address), _) => around.association(xml, address, full),
        (None, Some(public_ip)) => around.provider_association(xml, public_ip),
        (None, None) => {}
    }
    write_attachment(xml, interface, full);
    if full {
        xml.element("availabilityZone", &interface.availability_zone);
    }
    xml.element("description", &interface.description);
    xml.list("groupSet", &interface.groups, |xml, group| {
        xml.element("groupId", &group.id);
        xml.element("groupName", &group.name);
    });
    xml.element(
        "interfaceType",
        match interface.managed_by {
            Some(_) => "nat_gateway",
            None => "interface",
        },
    );
    xml.list("ipv6AddressesSet", &[] as &[String], |_, _| {});
    xml.element("macAddress", &interface.mac_address());
    xml.element("networkInterfaceId", &interface.id);
    xml.element("ownerId", &interface.account_id);
    let dns = around.private_dns_name(&interface.private_ip);
    xml.element("privateDnsName", &dns);
    xml.element("privateIpAddress", &interface.private_ip);
    let addresses: Vec<(bool, &String)> = std::iter::once((true, &interface.private_ip))
        .chain(interface.secondary_private_ips.iter().map(|a| (false, a)))
        .collect();
    xml.list(
        "privateIpAddressesSet",
        &addresses,
        |xml, (primary, address)| {
            match (around.on(&interface.id, address), &interface.public_ip) {
                (Some(public), _) => around.association(xml, public, false),
                (None, Some(public_ip)) if *primary => around.provider_association(xml, public_ip),
                _ => {}
            }
            xml.boolean("primary", *primary);
            xml.element("privateDnsName", &around.private_dns_name(address));
            xml.element("privateIpAddress", address);
        },
    );
    if full {
        xml.boolean("requesterManaged", interface.managed_by.is_some());
    }
    xml.boolean("sourceDestCheck", interface.source_dest_check);
    xml.element("status", interface.status());
    xml.element("subnetId", &interface.subnet_id);
    if full {
        write_tags(xml, &interface.tags);
    }
    xml.element("vpcId", &interface.vpc_id);
}

#[derive(Debug)]
pub struct CreateNetworkInterface {
    pub request: NewInterface,
    pub dry_run: bool,
}

impl CreateNetworkInterface {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let subnet_id = params.required("SubnetId")?;
        ResourceKind::Subnet.check(&subnet_id)?;
        let mut private_ip = params.optional("PrivateIpAddress");
        let mut secondary = Vec::new();
        for index in 1.. {
            let prefix = format!("PrivateIpAddresses.{index}.");
            let Some(address) = params.optional(&format!("{prefix}PrivateIpAddress")) else {
                break;
            };
            let primary = params
                .boolean(&format!("{prefix}Primary"))?
                .unwrap_or(false);
            match (primary, &private_ip) {
                (true, Some(given)) if given != &address => {
                    return Err(ApiError::InvalidParameterCombination(
                        "Only one primary private IP address can be given".into(),
                    ))
                }
                (true, _) => private_ip = Some(address),
                (false, _) => secondary.push(address),
            }
        }
        params.mark_read("PrivateIpAddresses");
        let secondary_count = params
            .number("SecondaryPrivateIpAddressCount")?
            .unwrap_or(0);
        if secondary_count > 0 && !secondary.is_empty() {
            return Err(ApiError::InvalidParameterCombination(
                "Specify either secondary private IP addresses or their count, not both".into(),
            ));
        }
        let group_ids = params.list("SecurityGroupId")?;
        for id in &group_ids {
            ResourceKind::SecurityGroup.check(id)?;
        }
        for family in [
            "Ipv6Addresses",
            "Ipv6AddressCount",
            "Ipv4Prefix",
            "Ipv6Prefix",
        ] {
            if params.pairs().iter().any(|(n, _)| n.starts_with(family)) {
                return Err(ApiError::UnsupportedOperation(format!(
                    "{family} is not offered: interfaces have IPv4 addresses only here"
                )));
            }
        }
        if let Some(kind) = params
            .optional("InterfaceType")
            .filter(|t| t != "interface")
        {
            return Err(ApiError::UnsupportedOperation(format!(
                "InterfaceType {kind} is not offered"
            )));
        }
        Ok(Self {
            request: NewInterface {
                subnet_id,
                description: params.optional("Description").unwrap_or_default(),
                private_ip,
                secondary_private_ips: secondary,
                secondary_count,
                group_ids,
                tags: tag_specifications(params, "network-interface")?,
                client_token: params.optional("ClientToken").map(|token| ClientToken {
                    token,
                    fingerprint: super::request_fingerprint(params),
                }),
            },
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedNetworkInterface> {
        let account_id = &context.principal.account_id;
        let token = self.request.client_token.as_ref().map(|t| t.token.clone());
        let interface = context
            .compute
            .create_network_interface(account_id, self.request, self.dry_run)
            .await?;
        Ok(CreatedNetworkInterface {
            interface,
            token,
            public: PublicAddresses::of(&[], &context.compute.region().name),
        })
    }
}

#[derive(Debug)]
pub struct CreatedNetworkInterface {
    interface: NetworkInterface,
    token: Option<String>,
    public: PublicAddresses,
}

impl XmlOutput for CreatedNetworkInterface {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.optional("clientToken", self.token.as_deref());
        xml.nested("networkInterface", |xml| {
            write_interface(xml, &self.interface, &self.public, true)
        });
    }
}

/// An action that names one interface and returns `true`.
fn interface_id(params: &Params) -> ApiResult<String> {
    let id = params.required("NetworkInterfaceId")?;
    ResourceKind::NetworkInterface.check(&id)?;
    Ok(id)
}

#[derive(Debug)]
pub struct DeleteNetworkInterface {
    pub id: String,
    pub dry_run: bool,
}

impl DeleteNetworkInterface {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            id: interface_id(params)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .delete_network_interface(&context.principal.account_id, &self.id, self.dry_run)
            .await?;
        Ok(ReturnTrue)
    }
}

const INTERFACE_FILTERS: &[&str] = &[
    "addresses.private-ip-address",
    "addresses.primary",
    "addresses.association.public-ip",
    "association.allocation-id",
    "association.association-id",
    "association.public-ip",
    "association.ip-owner-id",
    "attachment.attachment-id",
    "attachment.instance-id",
    "attachment.instance-owner-id",
    "attachment.device-index",
    "attachment.status",
    "attachment.delete-on-termination",
    "availability-zone",
    "description",
    "group-id",
    "group-name",
    "interface-type",
    "mac-address",
    "network-interface-id",
    "owner-id",
    "private-dns-name",
    "private-ip-address",
    "requester-managed",
    "source-dest-check",
    "status",
    "subnet-id",
    "vpc-id",
    "tag-key",
    "tag-value",
];

#[derive(Debug)]
pub struct DescribeNetworkInterfaces {
    pub ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeNetworkInterfaces {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            ids: params.list("NetworkInterfaceId")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        for id in &request.ids {
            ResourceKind::NetworkInterface.check(id)?;
        }
        check_filter_names(&request.filters, INTERFACE_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<NetworkInterfaceList> {
        let account_id = &context.principal.account_id;
        let interfaces = context.compute.network_interfaces(account_id).await?;
        let public = PublicAddresses::of(
            &context.compute.addresses(account_id).await?,
            &context.compute.region().name,
        );
        let (interfaces, next_token) = Selection {
            action: "DescribeNetworkInterfaces",
            kind: ResourceKind::NetworkInterface,
            ids: &self.ids,
            filters: &self.filters,
            max_results: self.max_results,
            next_token: self.next_token.as_deref(),
            dry_run: self.dry_run,
        }
        .page(
            context,
            interfaces,
            |i| &i.id,
            |i, name| filter_values(i, name, &public),
        )?;
        Ok(NetworkInterfaceList {
            interfaces,
            next_token,
            public,
        })
    }
}

fn filter_values(
    interface: &NetworkInterface,
    name: &str,
    public: &PublicAddresses,
) -> Vec<String> {
    if let Some(values) = tag_filter_values(&interface.tags, name) {
        return values;
    }
    let one = |value: &str| vec![value.to_string()];
    let some = |value: Option<String>| value.into_iter().collect::<Vec<String>>();
    let attachment = interface.attachment.as_ref();
    let primary_public = public.on(&interface.id, &interface.private_ip);
    let all_public = || {
        let mut values: Vec<String> = interface
            .private_addresses()
            .filter_map(|a| public.on(&interface.id, a))
            .map(|a| a.public_ip.clone())
            .collect();
        if primary_public.is_none() {
            values.extend(interface.public_ip.clone());
        }
        values
    };
    match name {
        "addresses.private-ip-address" => interface.private_addresses().cloned().collect(),
        "addresses.primary" => {
            let mut values = vec!["true".to_string()];
            if !interface.secondary_private_ips.is_empty() {
                values.push("false".into());
            }
            values
        }
        "addresses.association.public-ip" => all_public(),
        "association.allocation-id" => some(primary_public.map(|a| a.allocation_id.clone())),
        "association.association-id" => some(
            primary_public
                .and_then(|a| a.association.as_ref())
                .map(|a| a.association_id.clone()),
        ),
        "association.public-ip" => some(
            primary_public
                .map(|a| a.public_ip.clone())
                .or_else(|| interface.public_ip.clone()),
        ),
        "association.ip-owner-id" => some(
            primary_public
                .map(|a| a.account_id.clone())
                .or_else(|| interface.public_ip.as_ref().map(|_| "amazon".to_string())),
        ),
        "attachment.attachment-id" => some(attachment.map(|a| a.attachment_id.clone())),
        "attachment.instance-id" => some(attachment.map(|a| a.instance_id.clone())),
        "attachment.instance-owner-id" => some(attachment.map(|_| interface.account_id.clone())),
        "attachment.device-index" => some(attachment.map(|a| a.device_index.to_string())),
        "attachment.status" => some(attachment.map(|_| "attached".to_string())),
        "attachment.delete-on-termination" => {
            some(attachment.map(|a| a.delete_on_termination.to_string()))
        }
        "availability-zone" => one(&interface.availability_zone),
        "description" => one(&interface.description),
        "group-id" => interface.groups.iter().map(|g| g.id.clone()).collect(),
        "group-name" => interface.groups.iter().map(|g| g.name.clone()).collect(),
        "interface-type" => one(if interface.managed_by.is_some() {
            "nat_gateway"
        } else {
            "interface"
        }),
        "mac-address" => one(&interface.mac_address()),
        "network-interface-id" => one(&interface.id),
        "owner-id" => one(&interface.account_id),
        "private-dns-name" => one(&public.private_dns_name(&interface.private_ip)),
        "private-ip-address" => one(&interface.private_ip),
        "requester-managed" => one(&interface.managed_by.is_some().to_string()),
        "source-dest-check" => one(&interface.source_dest_check.to_string()),
        "status" => one(interface.status()),
        "subnet-id" => one(&interface.subnet_id),
        _ => one(&interface.vpc_id),
    }
}

#[derive(Debug)]
pub struct NetworkInterfaceList {
    interfaces: Vec<NetworkInterface>,
    next_token: Option<String>,
    public: PublicAddresses,
}

impl XmlOutput for NetworkInterfaceList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("networkInterfaceSet", &self.interfaces, |xml, interface| {
            write_interface(xml, interface, &self.public, true)
        });
        xml.optional("nextToken", self.next_token.as_deref());
    }
}

#[derive(Debug)]
pub struct AttachNetworkInterface {
    pub id: String,
    pub instance_id: String,
    pub device_index: u32,
    pub dry_run: bool,
}

impl AttachNetworkInterface {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let instance_id = params.required("InstanceId")?;
        ResourceKind::Instance.check(&instance_id)?;
        let device_index = params
            .number("DeviceIndex")?
            .ok_or_else(|| ApiError::MissingParameter("DeviceIndex".into()))?;
        if params
            .number::<u32>("NetworkCardIndex")?
            .is_some_and(|n| n != 0)
        {
            return Err(ApiError::invalid_value(
                "Instances have one network card here (NetworkCardIndex 0)",
            ));
        }
        Ok(Self {
            id: interface_id(params)?,
            instance_id,
            device_index,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<Attached> {
        let attachment_id = context
            .compute
            .attach_network_interface(
                &context.principal.account_id,
                &self.id,
                &self.instance_id,
                self.device_index,
                self.dry_run,
            )
            .await?;
        Ok(Attached(attachment_id))
    }
}

#[derive(Debug)]
pub struct Attached(String);

impl XmlOutput for Attached {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("attachmentId", &self.0);
        xml.number("networkCardIndex", 0);
    }
}

#[derive(Debug)]
pub struct DetachNetworkInterface {
    pub attachment_id: String,
    pub dry_run: bool,
}

impl DetachNetworkInterface {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        // `Force` changes nothing: nothing can hang here.
        params.boolean("Force")?;
        Ok(Self {
            attachment_id: params.required("AttachmentId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .detach_network_interface(
                &context.principal.account_id,
                &self.attachment_id,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct ModifyNetworkInterfaceAttribute {
    pub id: String,
    pub change: InterfaceChange,
    pub dry_run: bool,
}

impl ModifyNetworkInterfaceAttribute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let mut changes = Vec::new();
        if let Some(text) = params.optional("Description.Value") {
            changes.push(InterfaceChange::Description(text));
        }
        if let Some(check) = params.boolean("SourceDestCheck.Value")? {
            changes.push(InterfaceChange::SourceDestCheck(check));
        }
        let groups = params.list("SecurityGroupId")?;
        for id in &groups {
            ResourceKind::SecurityGroup.check(id)?;
        }
        if !groups.is_empty() {
            changes.push(InterfaceChange::Groups(groups));
        }
        if let Some(attachment_id) = params.optional("Attachment.AttachmentId") {
            let delete = params
                .boolean("Attachment.DeleteOnTermination")?
                .ok_or_else(|| {
                    ApiError::MissingParameter("Attachment.DeleteOnTermination".into())
                })?;
            changes.push(InterfaceChange::DeleteOnTermination {
                attachment_id,
                delete,
            });
        }
        if changes.len() != 1 {
            return Err(ApiError::InvalidParameterCombination(
                "Exactly one attribute of Description, SourceDestCheck, SecurityGroupId or Attachment must be given".into(),
            ));
        }
        Ok(Self {
            id: interface_id(params)?,
            change: changes.remove(0),
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .modify_network_interface(
                &context.principal.account_id,
                &self.id,
                self.change,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct ResetNetworkInterfaceAttribute {
    pub id: String,
    pub dry_run: bool,
}

impl ResetNetworkInterfaceAttribute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        match params.optional("SourceDestCheck").as_deref() {
            None | Some("sourceDestCheck") | Some("true") => {}
            Some(other) => {
                return Err(ApiError::invalid_value(format!(
                    "Value ({other}) for parameter SourceDestCheck is invalid: only sourceDestCheck can be reset"
                )))
            }
        }
        Ok(Self {
            id: interface_id(params)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .modify_network_interface(
                &context.principal.account_id,
                &self.id,
                InterfaceChange::SourceDestCheck(true),
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

/// The attributes DescribeNetworkInterfaceAttribute answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InterfaceAttribute {
    Description,
    GroupSet,
    SourceDestCheck,
    Attachment,
}

#[derive(Debug)]
pub struct DescribeNetworkInterfaceAttribute {
    id: String,
    attribute: InterfaceAttribute,
    dry_run: bool,
}

impl DescribeNetworkInterfaceAttribute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let name = params.required("Attribute")?;
        let attribute = match name.as_str() {
            "description" => InterfaceAttribute::Description,
            "groupSet" => InterfaceAttribute::GroupSet,
            "sourceDestCheck" => InterfaceAttribute::SourceDestCheck,
            "attachment" => InterfaceAttribute::Attachment,
            other => {
                return Err(ApiError::invalid_value(format!(
                    "Value ({other}) for parameter attribute is invalid. Unknown attribute."
                )))
            }
        };
        Ok(Self {
            id: interface_id(params)?,
            attribute,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<InterfaceAttributeOutput> {
        let interface = context
            .compute
            .network_interface(&context.principal.account_id, &self.id)
            .await?;
        super::dry_run_check(self.dry_run)?;
        Ok(InterfaceAttributeOutput {
            interface,
            attribute: self.attribute,
        })
    }
}

#[derive(Debug)]
pub struct InterfaceAttributeOutput {
    interface: NetworkInterface,
    attribute: InterfaceAttribute,
}

impl XmlOutput for InterfaceAttributeOutput {
    fn write_xml(&self, xml: &mut XmlWriter) {
        let interface = &self.interface;
        xml.element("networkInterfaceId", &interface.id);
        match self.attribute {
            InterfaceAttribute::Description => {
                xml.nested("description", |xml| {
                    xml.element("value", &interface.description)
                });
            }
            InterfaceAttribute::SourceDestCheck => {
                xml.nested("sourceDestCheck", |xml| {
                    xml.boolean("value", interface.source_dest_check)
                });
            }
            InterfaceAttribute::GroupSet => {
                xml.list("groupSet", &interface.groups, |xml, group| {
                    xml.element("groupId", &group.id);
                    xml.element("groupName", &group.name);
                });
            }
            InterfaceAttribute::Attachment => {
                write_attachment(xml, interface, true);
            }
        }
    }
}

#[derive(Debug)]
pub struct AssignPrivateIpAddresses {
    id: String,
    addresses: Vec<String>,
    count: u32,
    allow_reassignment: bool,
}

impl AssignPrivateIpAddresses {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let addresses = params.list("PrivateIpAddress")?;
        let count = params
            .number("SecondaryPrivateIpAddressCount")?
            .unwrap_or(0);
        if !addresses.is_empty() && count > 0 {
            return Err(ApiError::InvalidParameterCombination(
                "Specify either PrivateIpAddress.N or SecondaryPrivateIpAddressCount, not both"
                    .into(),
            ));
        }
        if params
            .pairs()
            .iter()
            .any(|(n, _)| n.starts_with("Ipv4Prefix"))
        {
            return Err(ApiError::UnsupportedOperation(
                "IPv4 prefixes are not offered".into(),
            ));
        }
        Ok(Self {
            id: interface_id(params)?,
            addresses,
            count,
            allow_reassignment: params.boolean("AllowReassignment")?.unwrap_or(false),
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<Assigned> {
        let assigned = context
            .compute
            .assign_private_addresses(
                &context.principal.account_id,
                &self.id,
                &self.addresses,
                self.count,
                self.allow_reassignment,
            )
            .await?;
        Ok(Assigned {
            id: self.id,
            assigned,
        })
    }
}

#[derive(Debug)]
pub struct Assigned {
    id: String,
    assigned: Vec<String>,
}

impl XmlOutput for Assigned {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("networkInterfaceId", &self.id);
        xml.list(
            "assignedPrivateIpAddressesSet",
            &self.assigned,
            |xml, address| xml.element("privateIpAddress", address),
        );
    }
}

#[derive(Debug)]
pub struct UnassignPrivateIpAddresses {
    id: String,
    addresses: Vec<String>,
}

impl UnassignPrivateIpAddresses {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            id: interface_id(params)?,
            addresses: params.list("PrivateIpAddress")?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .unassign_private_addresses(&context.principal.account_id, &self.id, &self.addresses)
            .await?;
        Ok(ReturnTrue)
    }
}
