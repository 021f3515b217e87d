//! CreateVpcPeeringConnection, AcceptVpcPeeringConnection,
//! RejectVpcPeeringConnection, DeleteVpcPeeringConnection and
//! DescribeVpcPeeringConnections.

use super::pagination::{check_max_results, Selection};
use super::tags::{check_filter_names, tag_filter_values, tag_specifications};
use super::Context;
use crate::compute::kinds::ResourceKind;
use crate::compute::peering::{PeeringConnection, PeeringSide};
use crate::error::{ApiError, ApiResult};
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

/// One side; its blocks and options when `shown` (the accepter's only once
/// the connection is active, as in EC2).
fn write_side(xml: &mut XmlWriter, name: &str, side: &PeeringSide, region: &str, shown: bool) {
    xml.nested(name, |xml| {
        if shown {
            xml.optional("cidrBlock", side.cidr_blocks.first().map(String::as_str));
            if !side.cidr_blocks.is_empty() {
                xml.list("cidrBlockSet", &side.cidr_blocks, |xml, block| {
                    xml.element("cidrBlock", block)
                });
            }
        }
        xml.element("ownerId", &side.account_id);
        if shown {
            xml.nested("peeringOptions", |xml| {
                xml.boolean("allowDnsResolutionFromRemoteVpc", false);
                xml.boolean("allowEgressFromLocalClassicLinkToRemoteVpc", false);
                xml.boolean("allowEgressFromLocalVpcToRemoteClassicLink", false);
            });
        }
        xml.element("vpcId", &side.vpc_id);
        xml.element("region", region);
    });
}

/// One connection as EC2 renders it (the `VpcPeeringConnection` shape).
fn write_connection(xml: &mut XmlWriter, connection: &PeeringConnection, region: &str) {
    use crate::compute::peering::PeeringStatus;
    let active = connection.status == PeeringStatus::Active;
    write_side(xml, "accepterVpcInfo", &connection.accepter, region, active);
    if connection.status == PeeringStatus::PendingAcceptance {
        xml.timestamp("expirationTime", connection.expires_at());
    }
    write_side(xml, "requesterVpcInfo", &connection.requester, region, true);
    xml.nested("status", |xml| {
        xml.element("code", connection.status.code());
        xml.element("message", &connection.message);
    });
    super::tags::write_tags(xml, &connection.tags);
    xml.element("vpcPeeringConnectionId", &connection.id);
}

#[derive(Debug)]
pub struct CreateVpcPeeringConnection {
    pub vpc_id: String,
    pub peer_vpc_id: String,
    pub peer_owner_id: Option<String>,
    pub peer_region: Option<String>,
    pub tags: Vec<crate::compute::instances::Tag>,
    pub dry_run: bool,
}

impl CreateVpcPeeringConnection {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            vpc_id: params.required("VpcId")?,
            peer_vpc_id: params.required("PeerVpcId")?,
            peer_owner_id: params.optional("PeerOwnerId"),
            peer_region: params.optional("PeerRegion"),
            tags: tag_specifications(params, "vpc-peering-connection")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ConnectionOutput> {
        let region = context.compute.region().name.clone();
        if let Some(peer) = &self.peer_region {
            if peer != &region {
                return Err(ApiError::UnsupportedOperation(format!(
                    "Peering across regions is not offered: the peer region must be {region}"
                )));
            }
        }
        let account = &context.principal.account_id;
        let connection = context
            .compute
            .create_peering_connection(
                account,
                &self.vpc_id,
                &self.peer_vpc_id,
                self.peer_owner_id.as_deref().unwrap_or(account),
                self.tags,
                self.dry_run,
            )
            .await?;
        Ok(ConnectionOutput { connection, region })
    }
}

/// CreateVpcPeeringConnection's and AcceptVpcPeeringConnection's answer.
#[derive(Debug)]
pub struct ConnectionOutput {
    connection: PeeringConnection,
    region: String,
}

impl XmlOutput for ConnectionOutput {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.nested("vpcPeeringConnection", |xml| {
            write_connection(xml, &self.connection, &self.region)
        });
    }
}

/// The parameters Accept, Reject and DeleteVpcPeeringConnection share.
fn connection_id(params: &Params) -> ApiResult<String> {
    let id = params.required("VpcPeeringConnectionId")?;
    ResourceKind::VpcPeeringConnection.check(&id)?;
    Ok(id)
}

#[derive(Debug)]
pub struct AcceptVpcPeeringConnection {
    pub id: String,
    pub dry_run: bool,
}

impl AcceptVpcPeeringConnection {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            id: connection_id(params)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ConnectionOutput> {
        let mut connection = context
            .compute
            .answer_peering_connection(&context.principal.account_id, &self.id, true, self.dry_run)
            .await?;
        // The requester's tags are the requester's.
        if connection.requester.account_id != context.principal.account_id {
            connection.tags.clear();
        }
        Ok(ConnectionOutput {
            connection,
            region: context.compute.region().name.clone(),
        })
    }
}

#[derive(Debug)]
pub struct RejectVpcPeeringConnection {
    pub id: String,
    pub dry_run: bool,
}

impl RejectVpcPeeringConnection {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            id: connection_id(params)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .answer_peering_connection(&context.principal.account_id, &self.id, false, self.dry_run)
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct DeleteVpcPeeringConnection {
    pub id: String,
    pub dry_run: bool,
}

impl DeleteVpcPeeringConnection {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            id: connection_id(params)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .delete_peering_connection(&context.principal.account_id, &self.id, self.dry_run)
            .await?;
        Ok(ReturnTrue)
    }
}

const CONNECTION_FILTERS: &[&str] = &[
    "accepter-vpc-info.cidr-block",
    "accepter-vpc-info.owner-id",
    "accepter-vpc-info.vpc-id",
    "requester-vpc-info.cidr-block",
    "requester-vpc-info.owner-id",
    "requester-vpc-info.vpc-id",
    "status-code",
    "status-message",
    "vpc-peering-connection-id",
    "tag-key",
    "tag-value",
];

#[derive(Debug)]
pub struct DescribeVpcPeeringConnections {
    pub ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeVpcPeeringConnections {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            ids: params.list("VpcPeeringConnectionId")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        for id in &request.ids {
            ResourceKind::VpcPeeringConnection.check(id)?;
        }
        check_filter_names(&request.filters, CONNECTION_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ConnectionList> {
        let mut connections = context
            .compute
            .peering_connections(&context.principal.account_id)
            .await?;
        connections.sort_by(|a, b| a.id.cmp(&b.id));
        let (connections, next_token) = Selection {
            action: "DescribeVpcPeeringConnections",
            kind: ResourceKind::VpcPeeringConnection,
            ids: &self.ids,
            filters: &self.filters,
            max_results: self.max_results,
            next_token: self.next_token.as_deref(),
            dry_run: self.dry_run,
        }
        .page(context, connections, |c| &c.id, connection_values)?;
        Ok(ConnectionList {
            connections,
            next_token,
            region: context.compute.region().name.clone(),
        })
    }
}

/// A connection's values for filter `name` (the accepter's blocks only once
/// it is active).
fn connection_values(c: &PeeringConnection, name: &str) -> Vec<String> {
    if let Some(values) = tag_filter_values(&c.tags, name) {
        return values;
    }
    let side = if name.starts_with("accepter") {
        &c.accepter
    } else {
        &c.requester
    };
    match name {
        "status-code" => vec![c.status.code().to_string()],
        "status-message" => vec![c.message.clone()],
        "vpc-peering-connection-id" => vec![c.id.clone()],
        n if n.ends_with(".cidr-block") => {
            let shown = n.starts_with("requester")
                || c.status == crate::compute::peering::PeeringStatus::Active;
            if shown {
                side.cidr_blocks.clone()
            } else {
                Vec::new()
            }
        }
        n if n.ends_with(".owner-id") => vec![side.account_id.clone()],
        _ => vec![side.vpc_id.clone()],
    }
}

#[derive(Debug)]
pub struct ConnectionList {
    connections: Vec<PeeringConnection>,
    next_token: Option<String>,
    region: String,
}

impl XmlOutput for ConnectionList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("vpcPeeringConnectionSet", &self.connections, |xml, c| {
            write_connection(xml, c, &self.region)
        });
        xml.optional("nextToken", self.next_token.as_deref());
    }
}
