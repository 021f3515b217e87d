//! CreateNetworkAcl, DeleteNetworkAcl, DescribeNetworkAcls,
//! Create/Replace/DeleteNetworkAclEntry and ReplaceNetworkAclAssociation.

use super::pagination::{check_max_results, Selection};
use super::tags::{check_filter_names, tag_filter_values, tag_specifications};
use super::Context;
use crate::compute::idempotency::ClientToken;
use crate::compute::kinds::ResourceKind;
use crate::compute::network_acls::{AclEntry, NetworkAcl, NetworkAclView};
use crate::compute::route_tables::destination_block;
use crate::error::{ApiError, ApiResult};
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

/// One ACL as EC2 renders it (the `NetworkAcl` shape).
fn write_acl(xml: &mut XmlWriter, view: &NetworkAclView) {
    let acl = &view.acl;
    xml.list("associationSet", &view.associations, |xml, association| {
        xml.element("networkAclAssociationId", &association.association_id);
        xml.element("networkAclId", &association.network_acl_id);
        xml.element("subnetId", &association.subnet_id);
    });
    xml.list("entrySet", &acl.entries, |xml, entry| {
        xml.element("cidrBlock", &entry.cidr);
        xml.boolean("egress", entry.egress);
        if let Some((icmp_type, code)) = entry.icmp {
            xml.nested("icmpTypeCode", |xml| {
                xml.number("code", code);
                xml.number("type", icmp_type);
            });
        }
        if let Some((from, to)) = entry.port_range {
            xml.nested("portRange", |xml| {
                xml.number("from", from);
                xml.number("to", to);
            });
        }
        xml.element("protocol", &entry.protocol);
        xml.element("ruleAction", &entry.action);
        xml.number("ruleNumber", entry.rule_number);
    });
    xml.boolean("default", acl.is_default);
    xml.element("networkAclId", &acl.id);
    super::tags::write_tags(xml, &acl.tags);
    xml.element("vpcId", &acl.vpc_id);
    xml.element("ownerId", &acl.account_id);
}

/// A protocol as EC2 stores it: `-1` or its number.
fn protocol_number(protocol: &str) -> ApiResult<String> {
    let number = match protocol.to_ascii_lowercase().as_str() {
        "-1" | "all" => return Ok("-1".into()),
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmpv6" => 58,
        other => other.parse::<u8>().map_err(|_| {
            ApiError::invalid_value(format!(
                "Value ({protocol}) for parameter protocol is invalid. Expecting -1, a protocol name or a number from 0 to 255."
            ))
        })?,
    };
    Ok(number.to_string())
}

/// The entry CreateNetworkAclEntry and ReplaceNetworkAclEntry describe.
fn entry_of(params: &Params) -> ApiResult<AclEntry> {
    if params.get("Ipv6CidrBlock").is_some() {
        return Err(ApiError::UnsupportedOperation(
            "IPv6 entries are not offered: give CidrBlock".into(),
        ));
    }
    let rule_number: u32 = params
        .number("RuleNumber")?
        .ok_or_else(|| ApiError::MissingParameter("RuleNumber".into()))?;
    let action = params.required("RuleAction")?.to_ascii_lowercase();
    if action != "allow" && action != "deny" {
        return Err(ApiError::invalid_value(format!(
            "Value ({action}) for parameter ruleAction is invalid. Expecting allow or deny."
        )));
    }
    let protocol = protocol_number(&params.required("Protocol")?)?;
    let port_range = match (
        params.number::<i32>("PortRange.From")?,
        params.number::<i32>("PortRange.To")?,
    ) {
        (Some(from), Some(to)) if (0..=65535).contains(&from) && (from..=65535).contains(&to) => {
            Some((from, to))
        }
        (None, None) => None,
        _ => {
            return Err(ApiError::invalid_value(
                "PortRange needs From and To between 0 and 65535, From not above To",
            ))
        }
    };
    if (protocol == "6" || protocol == "17") && port_range.is_none() {
        return Err(ApiError::MissingParameter("PortRange".into()));
    }
    let icmp = match (
        params.number::<i32>("Icmp.Type")?,
        params.number::<i32>("Icmp.Code")?,
    ) {
        (Some(icmp_type), Some(code)) => Some((icmp_type, code)),
        (None, None) => None,
        _ => return Err(ApiError::MissingParameter("Icmp.Type and Icmp.Code".into())),
    };
    if protocol == "1" && icmp.is_none() {
        return Err(ApiError::MissingParameter("Icmp".into()));
    }
    Ok(AclEntry {
        rule_number: u16::try_from(rule_number).unwrap_or(u16::MAX),
        protocol: protocol.clone(),
        action,
        egress: params
            .boolean("Egress")?
            .ok_or_else(|| ApiError::MissingParameter("Egress".into()))?,
        cidr: destination_block(&params.required("CidrBlock")?)?,
        port_range: port_range.filter(|_| protocol == "6" || protocol == "17"),
        icmp: icmp.filter(|_| protocol == "1"),
    })
}

#[derive(Debug)]
pub struct CreateNetworkAcl {
    pub vpc_id: String,
    pub tags: Vec<crate::compute::instances::Tag>,
    pub client_token: Option<ClientToken>,
    pub dry_run: bool,
}

impl CreateNetworkAcl {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            vpc_id: params.required("VpcId")?,
            tags: tag_specifications(params, "network-acl")?,
            client_token: params.optional("ClientToken").map(|token| ClientToken {
                token,
                fingerprint: super::request_fingerprint(params),
            }),
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedNetworkAcl> {
        ResourceKind::Vpc.check(&self.vpc_id)?;
        let acl = context
            .compute
            .create_network_acl(
                &context.principal.account_id,
                &self.vpc_id,
                self.tags,
                self.client_token.as_ref(),
                self.dry_run,
            )
            .await?;
        Ok(CreatedNetworkAcl {
            acl,
            client_token: self.client_token.map(|t| t.token),
        })
    }
}

#[derive(Debug)]
pub struct CreatedNetworkAcl {
    acl: NetworkAcl,
    client_token: Option<String>,
}

impl XmlOutput for CreatedNetworkAcl {
    fn write_xml(&self, xml: &mut XmlWriter) {
        let view = NetworkAclView {
            acl: self.acl.clone(),
            associations: Vec::new(),
        };
        xml.nested("networkAcl", |xml| write_acl(xml, &view));
        xml.optional("clientToken", self.client_token.as_deref());
    }
}

#[derive(Debug)]
pub struct DeleteNetworkAcl {
    pub acl_id: String,
    pub dry_run: bool,
}

impl DeleteNetworkAcl {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            acl_id: params.required("NetworkAclId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .delete_network_acl(&context.principal.account_id, &self.acl_id, self.dry_run)
            .await?;
        Ok(ReturnTrue)
    }
}

/// CreateNetworkAclEntry and ReplaceNetworkAclEntry.
#[derive(Debug)]
pub struct PutEntry {
    pub acl_id: String,
    pub entry: AclEntry,
    pub dry_run: bool,
}

impl PutEntry {
    fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            acl_id: params.required("NetworkAclId")?,
            entry: entry_of(params)?,
            dry_run: params.dry_run()?,
        })
    }

    async fn put(self, context: &Context<'_>, replace: bool) -> ApiResult<ReturnTrue> {
        context
            .compute
            .put_network_acl_entry(
                &context.principal.account_id,
                &self.acl_id,
                self.entry,
                replace,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct CreateNetworkAclEntry(PutEntry);

impl CreateNetworkAclEntry {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        PutEntry::from_params(params).map(Self)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        self.0.put(context, false).await
    }
}

#[derive(Debug)]
pub struct ReplaceNetworkAclEntry(PutEntry);

impl ReplaceNetworkAclEntry {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        PutEntry::from_params(params).map(Self)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        self.0.put(context, true).await
    }
}

#[derive(Debug)]
pub struct DeleteNetworkAclEntry {
    pub acl_id: String,
    pub rule_number: u16,
    pub egress: bool,
    pub dry_run: bool,
}

impl DeleteNetworkAclEntry {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let rule_number: u32 = params
            .number("RuleNumber")?
            .ok_or_else(|| ApiError::MissingParameter("RuleNumber".into()))?;
        Ok(Self {
            acl_id: params.required("NetworkAclId")?,
            rule_number: u16::try_from(rule_number).unwrap_or(u16::MAX),
            egress: params
                .boolean("Egress")?
                .ok_or_else(|| ApiError::MissingParameter("Egress".into()))?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .delete_network_acl_entry(
                &context.principal.account_id,
                &self.acl_id,
                self.rule_number,
                self.egress,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct ReplaceNetworkAclAssociation {
    pub association_id: String,
    pub acl_id: String,
    pub dry_run: bool,
}

impl ReplaceNetworkAclAssociation {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            association_id: params.required("AssociationId")?,
            acl_id: params.required("NetworkAclId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<NewAclAssociation> {
        let id = context
            .compute
            .replace_network_acl_association(
                &context.principal.account_id,
                &self.association_id,
                &self.acl_id,
                self.dry_run,
            )
            .await?;
        Ok(NewAclAssociation(id))
    }
}

#[derive(Debug)]
pub struct NewAclAssociation(String);

impl XmlOutput for NewAclAssociation {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("newAssociationId", &self.0);
    }
}

const ACL_FILTERS: &[&str] = &[
    "association.association-id",
    "association.network-acl-id",
    "association.subnet-id",
    "default",
    "entry.cidr",
    "entry.egress",
    "entry.protocol",
    "entry.rule-action",
    "entry.rule-number",
    "network-acl-id",
    "owner-id",
    "vpc-id",
    "tag-key",
    "tag-value",
];

#[derive(Debug)]
pub struct DescribeNetworkAcls {
    pub acl_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeNetworkAcls {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            acl_ids: params.list("NetworkAclId")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        for id in &request.acl_ids {
            ResourceKind::NetworkAcl.check(id)?;
        }
        check_filter_names(&request.filters, ACL_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<NetworkAclList> {
        let acls = context
            .compute
            .network_acls(&context.principal.account_id)
            .await?;
        let (acls, next_token) = Selection {
            action: "DescribeNetworkAcls",
            kind: ResourceKind::NetworkAcl,
            ids: &self.acl_ids,
            filters: &self.filters,
            max_results: self.max_results,
            next_token: self.next_token.as_deref(),
            dry_run: self.dry_run,
        }
        .page(
            context,
            acls,
            |v| &v.acl.id,
            |v, name| tag_filter_values(&v.acl.tags, name).unwrap_or_else(|| acl_values(v, name)),
        )?;
        Ok(NetworkAclList { acls, next_token })
    }
}

/// An ACL's values for filter `name`.
fn acl_values(view: &NetworkAclView, name: &str) -> Vec<String> {
    let acl = &view.acl;
    let associations = view.associations.iter();
    let entries = acl.entries.iter();
    match name {
        "association.association-id" => associations.map(|a| a.association_id.clone()).collect(),
        "association.network-acl-id" => associations.map(|a| a.network_acl_id.clone()).collect(),
        "association.subnet-id" => associations.map(|a| a.subnet_id.clone()).collect(),
        "default" => vec![acl.is_default.to_string()],
        "entry.cidr" => entries.map(|e| e.cidr.clone()).collect(),
        "entry.egress" => entries.map(|e| e.egress.to_string()).collect(),
        "entry.protocol" => entries.map(|e| e.protocol.clone()).collect(),
        "entry.rule-action" => entries.map(|e| e.action.clone()).collect(),
        "entry.rule-number" => entries.map(|e| e.rule_number.to_string()).collect(),
        "network-acl-id" => vec![acl.id.clone()],
        "owner-id" => vec![acl.account_id.clone()],
        _ => vec![acl.vpc_id.clone()],
    }
}

#[derive(Debug)]
pub struct NetworkAclList {
    acls: Vec<NetworkAclView>,
    next_token: Option<String>,
}

impl XmlOutput for NetworkAclList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("networkAclSet", &self.acls, write_acl);
        xml.optional("nextToken", self.next_token.as_deref());
    }
}
