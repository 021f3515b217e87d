//! CreateRouteTable, DeleteRouteTable, DescribeRouteTables, CreateRoute,
//! ReplaceRoute, DeleteRoute, AssociateRouteTable, DisassociateRouteTable
//! and ReplaceRouteTableAssociation.
//!
//! Routes to IPv4 blocks through `local`, an internet gateway, a NAT gateway
//! or an instance; IPv6 destinations, prefix lists and the other target
//! kinds (transit, virtual private, carrier gateways, peering, network
//! interfaces) answer `UnsupportedOperation` naming what was asked.

use super::pagination::{check_max_results, Selection};
use super::tags::{check_filter_names, tag_filter_values, tag_specifications};
use super::Context;
use crate::compute::idempotency::ClientToken;
use crate::compute::kinds::ResourceKind;
use crate::compute::route_tables::{
    destination_block, Route, RouteTable, RouteTarget, RouteTargets,
};
use crate::error::{ApiError, ApiResult};
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

/// One table as EC2 renders it (the `RouteTable` shape).
fn write_table(xml: &mut XmlWriter, table: &RouteTable, targets: &RouteTargets) {
    xml.list("associationSet", &table.associations, |xml, association| {
        xml.boolean("main", association.main);
        xml.element("routeTableAssociationId", &association.id);
        xml.element("routeTableId", &table.id);
        xml.optional("subnetId", association.subnet_id.as_deref());
        xml.nested("associationState", |xml| xml.element("state", "associated"));
    });
    xml.list("propagatingVgwSet", &[] as &[()], |_, _| {});
    xml.element("routeTableId", &table.id);
    xml.list("routeSet", &table.routes, |xml, route| {
        xml.element("destinationCidrBlock", &route.destination);
        xml.optional("gatewayId", route.target.gateway_id());
        match &route.target {
            RouteTarget::Instance(id) => {
                xml.element("instanceId", id);
                xml.element("instanceOwnerId", &table.account_id);
                xml.element(
                    "networkInterfaceId",
                    &crate::compute::network_interfaces::primary_interface_id(id),
                );
            }
            RouteTarget::NetworkInterface(id) => {
                if let Some(Some(instance)) = targets.live_interfaces.get(id) {
                    xml.element("instanceId", instance);
                    xml.element("instanceOwnerId", &table.account_id);
                }
                xml.element("networkInterfaceId", id);
            }
            RouteTarget::NatGateway(id) => xml.element("natGatewayId", id),
            RouteTarget::Peering(id) => xml.element("vpcPeeringConnectionId", id),
            RouteTarget::Local | RouteTarget::Gateway(_) => {}
        }
        xml.element("origin", route.origin());
        xml.element("state", targets.state(table, route));
    });
    super::tags::write_tags(xml, &table.tags);
    xml.element("vpcId", &table.vpc_id);
    xml.element("ownerId", &table.account_id);
}

/// The one target CreateRoute and ReplaceRoute name.
fn route_target(params: &Params) -> ApiResult<RouteTarget> {
    const UNOFFERED: &[&str] = &[
        "EgressOnlyInternetGatewayId",
        "TransitGatewayId",
        "LocalGatewayId",
        "CarrierGatewayId",
        "VpcEndpointId",
        "CoreNetworkArn",
        "OdbNetworkArn",
    ];
    if let Some(name) = UNOFFERED.iter().find(|n| params.get(n).is_some()) {
        return Err(ApiError::UnsupportedOperation(format!(
            "Routes to a {name} are not offered: name a GatewayId, NatGatewayId, InstanceId, NetworkInterfaceId or VpcPeeringConnectionId"
        )));
    }
    let mut given = Vec::new();
    if let Some(id) = params.optional("GatewayId") {
        if id.starts_with("vgw-") {
            return Err(ApiError::UnsupportedOperation(
                "Virtual private gateways are not offered".into(),
            ));
        }
        given.push(RouteTarget::Gateway(id));
    }
    if let Some(id) = params.optional("NatGatewayId") {
        given.push(RouteTarget::NatGateway(id));
    }
    if let Some(id) = params.optional("InstanceId") {
        given.push(RouteTarget::Instance(id));
    }
    if let Some(id) = params.optional("VpcPeeringConnectionId") {
        given.push(RouteTarget::Peering(id));
    }
    if let Some(id) = params.optional("NetworkInterfaceId") {
        crate::compute::kinds::ResourceKind::NetworkInterface.check(&id)?;
        given.push(RouteTarget::NetworkInterface(id));
    }
    match given.len() {
        1 => Ok(given.remove(0)),
        0 => Err(ApiError::MissingParameter(
            "one of GatewayId, NatGatewayId, InstanceId, NetworkInterfaceId or VpcPeeringConnectionId".into(),
        )),
        _ => Err(ApiError::InvalidParameterCombination(
            "Exactly one route target may be given".into(),
        )),
    }
}

/// The IPv4 destination of CreateRoute, ReplaceRoute and DeleteRoute.
fn destination(params: &Params) -> ApiResult<String> {
    if params.get("DestinationIpv6CidrBlock").is_some()
        || params.get("DestinationPrefixListId").is_some()
    {
        return Err(ApiError::UnsupportedOperation(
            "IPv6 and prefix-list destinations are not offered: give DestinationCidrBlock".into(),
        ));
    }
    destination_block(&params.required("DestinationCidrBlock")?)
}

#[derive(Debug)]
pub struct CreateRouteTable {
    pub vpc_id: String,
    pub tags: Vec<crate::compute::instances::Tag>,
    pub client_token: Option<ClientToken>,
    pub dry_run: bool,
}

impl CreateRouteTable {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            vpc_id: params.required("VpcId")?,
            tags: tag_specifications(params, "route-table")?,
            client_token: params.optional("ClientToken").map(|token| ClientToken {
                token,
                fingerprint: super::request_fingerprint(params),
            }),
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedRouteTable> {
        ResourceKind::Vpc.check(&self.vpc_id)?;
        let table = context
            .compute
            .create_route_table(
                &context.principal.account_id,
                &self.vpc_id,
                self.tags,
                self.client_token.as_ref(),
                self.dry_run,
            )
            .await?;
        // A retry answers the first table as it is now, routes and all.
        let only_local = table.routes.iter().all(|r| r.target == RouteTarget::Local);
        let targets = if only_local {
            RouteTargets::default()
        } else {
            context
                .compute
                .route_targets(&context.principal.account_id, std::slice::from_ref(&table))
                .await?
        };
        Ok(CreatedRouteTable {
            table,
            targets,
            client_token: self.client_token.map(|t| t.token),
        })
    }
}

#[derive(Debug)]
pub struct CreatedRouteTable {
    table: RouteTable,
    targets: RouteTargets,
    client_token: Option<String>,
}

impl XmlOutput for CreatedRouteTable {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.nested("routeTable", |xml| {
            write_table(xml, &self.table, &self.targets)
        });
        xml.optional("clientToken", self.client_token.as_deref());
    }
}

#[derive(Debug)]
pub struct DeleteRouteTable {
    pub table_id: String,
    pub dry_run: bool,
}

impl DeleteRouteTable {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            table_id: params.required("RouteTableId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .delete_route_table(&context.principal.account_id, &self.table_id, self.dry_run)
            .await?;
        Ok(ReturnTrue)
    }
}

/// CreateRoute and ReplaceRoute.
#[derive(Debug)]
pub struct PutRoute {
    pub table_id: String,
    pub route: Route,
    pub dry_run: bool,
}

impl PutRoute {
    fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            table_id: params.required("RouteTableId")?,
            route: Route {
                destination: destination(params)?,
                target: route_target(params)?,
            },
            dry_run: params.dry_run()?,
        })
    }

    async fn put(self, context: &Context<'_>, replace: bool) -> ApiResult<ReturnTrue> {
        context
            .compute
            .put_route(
                &context.principal.account_id,
                &self.table_id,
                self.route,
                replace,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct CreateRoute(PutRoute);

impl CreateRoute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        PutRoute::from_params(params).map(Self)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        self.0.put(context, false).await
    }
}

#[derive(Debug)]
pub struct ReplaceRoute(PutRoute);

impl ReplaceRoute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        PutRoute::from_params(params).map(Self)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        self.0.put(context, true).await
    }
}

#[derive(Debug)]
pub struct DeleteRoute {
    pub table_id: String,
    pub destination: String,
    pub dry_run: bool,
}

impl DeleteRoute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            table_id: params.required("RouteTableId")?,
            destination: destination(params)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .delete_route(
                &context.principal.account_id,
                &self.table_id,
                &self.destination,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct AssociateRouteTable {
    pub table_id: String,
    pub subnet_id: String,
    pub dry_run: bool,
}

impl AssociateRouteTable {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        if params.get("GatewayId").is_some() {
            return Err(ApiError::UnsupportedOperation(
                "Gateway (edge) associations are not offered: give SubnetId".into(),
            ));
        }
        Ok(Self {
            table_id: params.required("RouteTableId")?,
            subnet_id: params.required("SubnetId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<NewAssociation> {
        let id = context
            .compute
            .associate_route_table(
                &context.principal.account_id,
                &self.table_id,
                &self.subnet_id,
                self.dry_run,
            )
            .await?;
        Ok(NewAssociation {
            element: "associationId",
            id,
        })
    }
}

/// The answer of AssociateRouteTable and ReplaceRouteTableAssociation.
#[derive(Debug)]
pub struct NewAssociation {
    element: &'static str,
    id: String,
}

impl XmlOutput for NewAssociation {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element(self.element, &self.id);
        xml.nested("associationState", |xml| xml.element("state", "associated"));
    }
}

#[derive(Debug)]
pub struct DisassociateRouteTable {
    pub association_id: String,
    pub dry_run: bool,
}

impl DisassociateRouteTable {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            association_id: params.required("AssociationId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .disassociate_route_table(
                &context.principal.account_id,
                &self.association_id,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct ReplaceRouteTableAssociation {
    pub association_id: String,
    pub table_id: String,
    pub dry_run: bool,
}

impl ReplaceRouteTableAssociation {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            association_id: params.required("AssociationId")?,
            table_id: params.required("RouteTableId")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<NewAssociation> {
        let id = context
            .compute
            .replace_route_table_association(
                &context.principal.account_id,
                &self.association_id,
                &self.table_id,
                self.dry_run,
            )
            .await?;
        Ok(NewAssociation {
            element: "newAssociationId",
            id,
        })
    }
}

const TABLE_FILTERS: &[&str] = &[
    "association.main",
    "association.route-table-association-id",
    "association.route-table-id",
    "association.subnet-id",
    "owner-id",
    "route-table-id",
    "route.destination-cidr-block",
    "route.gateway-id",
    "route.instance-id",
    "route.network-interface-id",
    "route.nat-gateway-id",
    "route.vpc-peering-connection-id",
    "route.origin",
    "route.state",
    "vpc-id",
    "tag-key",
    "tag-value",
];

#[derive(Debug)]
pub struct DescribeRouteTables {
    pub table_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeRouteTables {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            table_ids: params.list("RouteTableId")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 100)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        for id in &request.table_ids {
            ResourceKind::RouteTable.check(id)?;
        }
        check_filter_names(&request.filters, TABLE_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<RouteTableList> {
        let account = &context.principal.account_id;
        let tables = context.compute.route_tables(account).await?;
        let targets = context.compute.route_targets(account, &tables).await?;
        let (tables, next_token) = Selection {
            action: "DescribeRouteTables",
            kind: ResourceKind::RouteTable,
            ids: &self.table_ids,
            filters: &self.filters,
            max_results: self.max_results,
            next_token: self.next_token.as_deref(),
            dry_run: self.dry_run,
        }
        .page(
            context,
            tables,
            |t| &t.id,
            |t, name| {
                tag_filter_values(&t.tags, name).unwrap_or_else(|| table_values(t, &targets, name))
            },
        )?;
        Ok(RouteTableList {
            tables,
            targets,
            next_token,
        })
    }
}

/// A table's values for filter `name`.
fn table_values(table: &RouteTable, targets: &RouteTargets, name: &str) -> Vec<String> {
    let associations = table.associations.iter();
    let routes = table.routes.iter();
    match name {
        "association.main" => associations.map(|a| a.main.to_string()).collect(),
        "association.route-table-association-id" => associations.map(|a| a.id.clone()).collect(),
        "association.route-table-id" => associations.map(|_| table.id.clone()).collect(),
        "association.subnet-id" => associations.filter_map(|a| a.subnet_id.clone()).collect(),
        "owner-id" => vec![table.account_id.clone()],
        "route-table-id" => vec![table.id.clone()],
        "route.destination-cidr-block" => routes.map(|r| r.destination.clone()).collect(),
        "route.gateway-id" => routes
            .filter_map(|r| r.target.gateway_id().map(str::to_string))
            .collect(),
        "route.instance-id" => routes
            .filter_map(|r| match &r.target {
                RouteTarget::Instance(id) => Some(id.clone()),
                _ => None,
            })
            .collect(),
        "route.network-interface-id" => routes
            .filter_map(|r| match &r.target {
                RouteTarget::NetworkInterface(id) => Some(id.clone()),
                RouteTarget::Instance(id) => {
                    Some(crate::compute::network_interfaces::primary_interface_id(id))
                }
                _ => None,
            })
            .collect(),
        "route.nat-gateway-id" => routes
            .filter_map(|r| match &r.target {
                RouteTarget::NatGateway(id) => Some(id.clone()),
                _ => None,
            })
            .collect(),
        "route.vpc-peering-connection-id" => routes
            .filter_map(|r| match &r.target {
                RouteTarget::Peering(id) => Some(id.clone()),
                _ => None,
            })
            .collect(),
        "route.origin" => routes.map(|r| r.origin().to_string()).collect(),
        "route.state" => routes
            .map(|r| targets.state(table, r).to_string())
            .collect(),
        _ => vec![table.vpc_id.clone()],
    }
}

#[derive(Debug)]
pub struct RouteTableList {
    tables: Vec<RouteTable>,
    targets: RouteTargets,
    next_token: Option<String>,
}

impl XmlOutput for RouteTableList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("routeTableSet", &self.tables, |xml, table| {
            write_table(xml, table, &self.targets)
        });
        xml.optional("nextToken", self.next_token.as_deref());
    }
}
