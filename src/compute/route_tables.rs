//! Route tables: CreateRouteTable, DeleteRouteTable, Create/Replace/
//! DeleteRoute, Associate/DisassociateRouteTable,
//! ReplaceRouteTableAssociation, and the account's tables for
//! DescribeRouteTables.
//!
//! Every VPC has a main route table, made with it, holding the `local`
//! route of its block and the main association; a subnet without an
//! explicit association uses it. A table's routes name one target each:
//! `local`, an internet gateway, a NAT gateway or an instance. A route whose
//! target went (a gateway detached or deleted, an instance terminated) is
//! reported `blackhole`, as EC2 does, rather than removed. A subnet has at
//! most one explicit association (`Resource.AlreadyAssociated`); the main
//! table and a table with subnets are not deleted (`DependencyViolation`);
//! the `local` route can be neither replaced nor deleted. Tables live under
//! `route_tables/<account>/<id>`; creates and deletes rewrite the account's
//! route table usage record (a VPC being deleted cannot gain one), and an
//! association rewrites its subnet's record unchanged (two associations of
//! one subnet cannot both commit, nor an association of a subnet being
//! deleted). CreateRouteTable's ClientToken is honoured (`idempotency`).

use super::cidr::Ipv4Cidr;
use super::idempotency::ClientToken;
use super::instances::Tag;
use super::operation::{self, Tx};
use super::usage::{Kind, Usage};
use super::Compute;
use crate::error::{codes, ApiError, ApiResult};
use crate::store::StoreResult;
use serde::{Deserialize, Serialize};

/// The action whose ClientTokens `idempotency` keeps.
const CREATE_ROUTE_TABLE: &str = "CreateRouteTable";

/// `<account>/<rtb-id>`.
pub(crate) const ROUTE_TABLES: &str = "route_tables";

/// Most route tables per VPC and routes per table (EC2's default quotas).
pub const MAX_ROUTE_TABLES_PER_VPC: usize = 200;
pub const MAX_ROUTES_PER_TABLE: usize = 50;

/// Where a route sends traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteTarget {
    /// Within the VPC.
    Local,
    /// An internet gateway (`igw-`).
    Gateway(String),
    /// A NAT gateway (`nat-`).
    NatGateway(String),
    /// An instance (`i-`).
    Instance(String),
    /// A VPC peering connection (`pcx-`).
    Peering(String),
    /// A network interface (`eni-`).
    NetworkInterface(String),
}

impl RouteTarget {
    /// The `gatewayId` EC2 shows (`local` for the local route).
    pub fn gateway_id(&self) -> Option<&str> {
        match self {
            RouteTarget::Local => Some("local"),
            RouteTarget::Gateway(id) => Some(id),
            _ => None,
        }
    }
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// A canonical IPv4 block.
    pub destination: String,
    pub target: RouteTarget,
}

impl Route {
    /// `CreateRouteTable` for the local route, `CreateRoute` otherwise.
    pub fn origin(&self) -> &'static str {
        match self.target {
            RouteTarget::Local => "CreateRouteTable",
            _ => "CreateRoute",
        }
    }
}

/// An association of a table with a subnet, or the main association.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteAssociation {
    pub id: String,
    pub subnet_id: Option<String>,
    pub main: bool,
}

/// A route table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTable {
    pub id: String,
    pub account_id: String,
    pub vpc_id: String,
    pub routes: Vec<Route>,
    pub associations: Vec<RouteAssociation>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The ClientToken it was created with (forgotten with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

impl crate::store::Record for RouteTable {
    /// 2: routes may target a network interface, which a release before
    /// could not read.
    const VERSION: u32 = 2;

    fn upgrade(version: u32, data: serde_json::Value) -> crate::store::StoreResult<Self> {
        match version {
            1 => serde_json::from_value(data)
                .map_err(|e| crate::store::StoreError(format!("route table record v1: {e}"))),
            _ => Err(crate::store::StoreError(format!(
                "no upgrade from version {version} of a route table record"
            ))),
        }
    }
}

impl RouteTable {
    /// True for its VPC's main table.
    pub fn is_main(&self) -> bool {
        self.associations.iter().any(|a| a.main)
    }

    /// A new table of `vpc_id` with the local route of `vpc_block`.
    pub(super) fn new(account_id: &str, vpc_id: &str, vpc_block: &str, main: bool) -> Self {
        Self {
            id: super::ids::new_id("rtb"),
            account_id: account_id.to_string(),
            vpc_id: vpc_id.to_string(),
            routes: vec![Route {
                destination: vpc_block.to_string(),
                target: RouteTarget::Local,
            }],
            associations: if main {
                vec![RouteAssociation {
                    id: super::ids::new_id("rtbassoc"),
                    subnet_id: None,
                    main: true,
                }]
            } else {
                Vec::new()
            },
            tags: Vec::new(),
            client_token: None,
        }
    }
}

fn key(account_id: &str, id: &str) -> Vec<u8> {
    format!("{account_id}/{id}").into_bytes()
}

fn not_found(id: &str) -> ApiError {
    super::kinds::ResourceKind::RouteTable.not_found(id)
}

fn has_dependencies(id: &str) -> ApiError {
    ApiError::NotFound {
        code: codes::DEPENDENCY_VIOLATION,
        message: format!("The routeTable '{id}' has dependencies and cannot be deleted."),
    }
}

fn association_not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        code: codes::INVALID_ASSOCIATION_ID_NOT_FOUND,
        message: format!("The association ID '{id}' does not exist"),
    }
}

/// The account's route table usage in `tx`.
pub(super) fn table_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<Usage> {
    super::usage::read(tx, account_id, Kind::RouteTables, |tx| {
        super::usage::count_of(tx, ROUTE_TABLES, format!("{account_id}/").as_bytes())
    })
}

/// Every table of the account, as stored now (untracked).
pub(super) fn account_tables_in(tx: &Tx<'_>, account_id: &str) -> StoreResult<Vec<RouteTable>> {
    tx.scan(ROUTE_TABLES, format!("{account_id}/").as_bytes())
}

/// Stores a table in `tx`.
pub(super) fn put_table(tx: &mut Tx<'_>, table: &RouteTable) {
    tx.put(ROUTE_TABLES, key(&table.account_id, &table.id), table);
}

/// Stores a new table in `tx`, counted in the account's usage.
pub(super) fn put_new(tx: &mut Tx<'_>, table: &RouteTable) -> StoreResult<()> {
    let mut usage = table_usage(tx, &table.account_id)?;
    usage.count += 1;
    super::usage::write(tx, &table.account_id, Kind::RouteTables, &usage);
    put_table(tx, table);
    Ok(())
}

/// Removes a table in `tx` (its ClientToken forgotten with it).
pub(super) fn delete_table(tx: &mut Tx<'_>, table: &RouteTable) {
    if let Some(token) = &table.client_token {
        super::idempotency::forget(tx, &table.account_id, CREATE_ROUTE_TABLE, token);
    }
    tx.delete(ROUTE_TABLES, key(&table.account_id, &table.id));
}

fn table_in(tx: &mut Tx<'_>, account_id: &str, id: &str) -> ApiResult<RouteTable> {
    tx.get::<RouteTable>(ROUTE_TABLES, &key(account_id, id))?
        .ok_or_else(|| not_found(id))
}

/// A destination as CreateRoute takes it: a canonical IPv4 block.
pub fn destination_block(block: &str) -> ApiResult<String> {
    Ipv4Cidr::parse(block)
        .map(|cidr| cidr.to_string())
        .ok_or_else(|| {
            ApiError::invalid_value(format!(
                "Value ({block}) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block."
            ))
        })
}

/// What tells an active route from a blackhole: the VPC's attached
/// gateway, its NAT gateways that are available, its live instances.
#[derive(Debug, Default)]
pub struct RouteTargets {
    /// `(gateway, vpc)` of every attached internet gateway.
    pub attached_gateways: Vec<(String, String)>,
    /// NAT gateways that are `available`.
    pub available_nat_gateways: Vec<String>,
    /// Instances not terminated.
    pub live_instances: std::collections::HashSet<String>,
    /// `(connection, vpc, vpc)` of every active peering connection.
    pub active_peerings: Vec<(String, String, String)>,
    /// The interfaces routes name that exist, with the instance each is
    /// attached to (if any).
    pub live_interfaces: std::collections::HashMap<String, Option<String>>,
}

impl RouteTargets {
    /// `active` or `blackhole`.
    pub fn state(&self, table: &RouteTable, route: &Route) -> &'static str {
        let active = match &route.target {
            RouteTarget::Local => true,
            RouteTarget::Gateway(id) => self
                .attached_gateways
                .iter()
                .any(|(gateway, vpc)| gateway == id && vpc == &table.vpc_id),
            RouteTarget::NatGateway(id) => self.available_nat_gateways.contains(id),
            RouteTarget::Instance(id) => self.live_instances.contains(id),
            RouteTarget::NetworkInterface(id) => self.live_interfaces.contains_key(id),
            RouteTarget::Peering(id) => self
                .active_peerings
                .iter()
                .any(|(pcx, a, b)| pcx == id && (a == &table.vpc_id || b == &table.vpc_id)),
        };
        if active {
            "active"
        } else {
            "blackhole"
        }
    }
}

impl Compute {
    /// The account's route tables, by id.
    pub async fn route_tables(&self, account_id: &str) -> ApiResult<Vec<RouteTable>> {
        Ok(self
            .store
            .records(ROUTE_TABLES, format!("{account_id}/").as_bytes())
            .await?)
    }

    /// What the states of the account's routes rest on.
    /// `tables` are those whose routes' states are wanted: only the
    /// instances their routes name are read, not the account's whole fleet.
    pub async fn route_targets(
        &self,
        account_id: &str,
        tables: &[RouteTable],
    ) -> ApiResult<RouteTargets> {
        let attached_gateways = self
            .internet_gateways(account_id)
            .await?
            .into_iter()
            .filter_map(|g| g.vpc_id.map(|vpc| (g.id, vpc)))
            .collect();
        let available_nat_gateways = self
            .nat_gateways(account_id)
            .await?
            .into_iter()
            .filter(|n| n.state == super::nat_gateways::NatGatewayState::Available)
            .map(|n| n.gateway.id)
            .collect();
        let named: std::collections::HashSet<&str> = tables
            .iter()
            .flat_map(|t| t.routes.iter())
            .filter_map(|r| match &r.target {
                RouteTarget::Instance(id) => Some(id.as_str()),
                _ => None,
            })
            .collect();
        let live_instances = operation::read(&self.store, |tx| {
            let mut live = std::collections::HashSet::new();
            for id in &named {
                let instance = super::instances::load(&self.instances, tx, account_id, id)?;
                if instance.is_some_and(|i| i.is_live()) {
                    live.insert(id.to_string());
                }
            }
            Ok::<_, ApiError>(live)
        })
        .await?;
        let interfaces: std::collections::HashSet<&str> = tables
            .iter()
            .flat_map(|t| t.routes.iter())
            .filter_map(|r| match &r.target {
                RouteTarget::NetworkInterface(id) => Some(id.as_str()),
                _ => None,
            })
            .collect();
        let live_interfaces = operation::read(&self.store, |tx| {
            let mut live = std::collections::HashMap::new();
            for id in &interfaces {
                match self.network_interface_in(tx, account_id, id) {
                    Ok(interface) => {
                        let instance = interface.attachment.map(|a| a.instance_id);
                        live.insert(id.to_string(), instance);
                    }
                    Err(ApiError::NotFound { .. }) => {}
                    Err(other) => return Err(other),
                }
            }
            Ok::<_, ApiError>(live)
        })
        .await?;
        let active_peerings = self
            .peering_connections(account_id)
            .await?
            .into_iter()
            .filter(|c| c.status == super::peering::PeeringStatus::Active)
            .map(|c| (c.id, c.requester.vpc_id, c.accepter.vpc_id))
            .collect();
        Ok(RouteTargets {
            attached_gateways,
            available_nat_gateways,
            live_instances,
            active_peerings,
            live_interfaces,
        })
    }

    /// CreateRouteTable.
    pub async fn create_route_table(
        &self,
        account_id: &str,
        vpc_id: &str,
        tags: Vec<Tag>,
        client_token: Option<&ClientToken>,
        dry_run: bool,
    ) -> ApiResult<RouteTable> {
        // A retry is answered from its token, whatever changed since.
        if let Some(token) = client_token {
            let earlier: Option<RouteTable> = super::idempotency::earlier_record(
                &self.store,
                account_id,
                CREATE_ROUTE_TABLE,
                token,
                ROUTE_TABLES,
            )
            .await?;
            if let Some(table) = earlier {
                return match dry_run {
                    true => Err(ApiError::DryRunOperation),
                    false => Ok(table),
                };
            }
        }
        let found = self.account_vpc(account_id, vpc_id).await?;
        let mut table = RouteTable::new(account_id, vpc_id, &found.vpc.cidr_block, false);
        table.tags = tags;
        table.client_token = client_token.map(|t| t.token.clone());
        operation::run(&self.store, dry_run, |tx| {
            if let Some(token) = client_token {
// A table since deleted (with its VPC) no longer answers.
                if let Some(id) =
                    super::idempotency::earlier(tx, account_id, CREATE_ROUTE_TABLE, token)?
                {
                    if let Some(table) = tx.get::<RouteTable>(ROUTE_TABLES, &key(account_id, &id))? {
                        return Ok(table);
                    }
                }
                super::idempotency::remember(tx, account_id, CREATE_ROUTE_TABLE, token, &table.id);
            }
            let (tree, vpc_key) = super::vpcs::vpc_key(account_id, vpc_id, found.is_default);
            let vpc = tx
                .get::<super::network::Vpc>(tree, &vpc_key)?
                .ok_or_else(|| super::kinds::ResourceKind::Vpc.not_found(vpc_id))?;
            // A local route for each of the VPC's blocks as they are now (a
            // block associated meanwhile makes this run again).
            let mut table = table.clone();
            table.routes = vpc
                .blocks()
                .into_iter()
                .map(|(_, block)| Route {
                    destination: block,
                    target: RouteTarget::Local,
                })
                .collect();
            let mut usage = table_usage(tx, account_id)?;
            let in_vpc = account_tables_in(tx, account_id)?
                .into_iter()
                .filter(|t| t.vpc_id == vpc_id)
                .count();
            if in_vpc >= MAX_ROUTE_TABLES_PER_VPC {
                return Err(ApiError::LimitExceeded {
                    code: codes::ROUTE_TABLE_LIMIT_EXCEEDED,
                    message: format!(
                        "The maximum number of route tables ({MAX_ROUTE_TABLES_PER_VPC}) in {vpc_id} has been reached."
                    ),
                });
            }
            usage.count += 1;
            super::usage::write(tx, account_id, Kind::RouteTables, &usage);
            put_table(tx, &table);
            Ok(table.clone())
        })
        .await
    }

    /// DeleteRouteTable: not the main one, nor one with subnets.
    pub async fn delete_route_table(
        &self,
        account_id: &str,
        table_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::RouteTable.check(table_id)?;
        operation::run(&self.store, dry_run, |tx| {
            let table = table_in(tx, account_id, table_id)?;
            if !table.associations.is_empty() {
                return Err(has_dependencies(table_id));
            }
            let mut usage = table_usage(tx, account_id)?;
            usage.count = usage.count.saturating_sub(1);
            super::usage::write(tx, account_id, Kind::RouteTables, &usage);
            delete_table(tx, &table);
            Ok(())
        })
        .await
    }

    /// Checks a route's target against the table's VPC in `tx`.
    fn check_target(
        &self,
        tx: &mut Tx<'_>,
        table: &RouteTable,
        target: &RouteTarget,
    ) -> ApiResult<()> {
        let account_id = &table.account_id;
        let different_networks = |what: &str| {
            ApiError::invalid_value(format!(
                "route table {} and network gateway {what} belong to different networks",
                table.id
            ))
        };
        match target {
            RouteTarget::Local => Err(ApiError::invalid_value(
                "The local route is made with the table; it cannot be created",
            )),
            RouteTarget::Gateway(id) => {
                super::kinds::ResourceKind::InternetGateway.check(id)?;
                let gateway = super::internet_gateways::gateway_in(tx, account_id, id)?;
                if gateway.vpc_id.as_deref() != Some(table.vpc_id.as_str()) {
                    return Err(different_networks(id));
                }
                Ok(())
            }
            RouteTarget::NatGateway(id) => {
                let nat = super::nat_gateways::nat_gateway_in(tx, account_id, id)?;
                if nat.deleted_at.is_some() || nat.failure.is_some() {
                    return Err(super::kinds::ResourceKind::NatGateway.not_found(id));
                }
                if nat.vpc_id != table.vpc_id {
                    return Err(different_networks(id));
                }
                Ok(())
            }
            RouteTarget::Peering(id) => {
                let connection = super::peering::connection_in(tx, account_id, id)?;
                let now = self.clock.now();
                let here = connection.requester.vpc_id == table.vpc_id
                    || connection.accepter.vpc_id == table.vpc_id;
                if connection.status_at(now) != super::peering::PeeringStatus::Active || !here {
                    return Err(ApiError::invalid_value(format!(
                        "route table {} and peering connection {id} belong to different networks, or the connection is not active",
                        table.id
                    )));
                }
                Ok(())
            }
            RouteTarget::NetworkInterface(id) => {
                let interface = self.network_interface_in(tx, account_id, id)?;
                if let Some(nat) = &interface.managed_by {
                    return Err(ApiError::invalid_value(format!(
                        "The network interface {id} belongs to NAT gateway {nat}: route to the NatGatewayId"
                    )));
                }
                if interface.vpc_id != table.vpc_id {
                    return Err(ApiError::invalid_value(format!(
                        "route table {} and network interface {id} belong to different networks",
                        table.id
                    )));
                }
                Ok(())
            }
            RouteTarget::Instance(id) => {
                super::kinds::ResourceKind::Instance.check(id)?;
                let instance = super::instances::load(&self.instances, tx, account_id, id)?
                    .filter(|i| i.is_live())
                    .ok_or_else(|| super::kinds::ResourceKind::Instance.not_found(id))?;
                if instance.vpc_id.as_deref() != Some(table.vpc_id.as_str()) {
                    return Err(ApiError::invalid_value(format!(
                        "route table {} and instance {id} belong to different networks",
                        table.id
                    )));
                }
                Ok(())
            }
        }
    }

    /// CreateRoute (`replace`: ReplaceRoute, which needs the route to exist).
    pub async fn put_route(
        &self,
        account_id: &str,
        table_id: &str,
        route: Route,
        replace: bool,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::RouteTable.check(table_id)?;
        operation::run(&self.store, dry_run, |tx| {
            let mut table = table_in(tx, account_id, table_id)?;
            self.check_target(tx, &table, &route.target)?;
            let existing = table
                .routes
                .iter()
                .position(|r| r.destination == route.destination);
            match (existing, replace) {
                (Some(at), true) => {
                    if table.routes[at].target == RouteTarget::Local {
                        return Err(local_route(&route.destination));
                    }
                    table.routes[at] = route.clone();
                }
                (None, true) => return Err(route_not_found(table_id, &route.destination)),
                (Some(_), false) => {
                    return Err(ApiError::NotFound {
                        code: codes::ROUTE_ALREADY_EXISTS,
                        message: format!(
                            "The route identified by {} already exists.",
                            route.destination
                        ),
                    })
                }
                (None, false) => {
                    if table.routes.len() >= MAX_ROUTES_PER_TABLE {
                        return Err(ApiError::LimitExceeded {
                            code: codes::ROUTE_LIMIT_EXCEEDED,
                            message: format!(
                                "The maximum number of routes ({MAX_ROUTES_PER_TABLE}) in {table_id} has been reached."
                            ),
                        });
                    }
                    table.routes.push(route.clone());
                }
            }
            put_table(tx, &table);
            Ok(())
        })
        .await
    }

    /// DeleteRoute.
    pub async fn delete_route(
        &self,
        account_id: &str,
        table_id: &str,
        destination: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::RouteTable.check(table_id)?;
        operation::run(&self.store, dry_run, |tx| {
            let mut table = table_in(tx, account_id, table_id)?;
            let at = table
                .routes
                .iter()
                .position(|r| r.destination == destination)
                .ok_or_else(|| route_not_found(table_id, destination))?;
            if table.routes[at].target == RouteTarget::Local {
                return Err(local_route(destination));
            }
            table.routes.remove(at);
            put_table(tx, &table);
            Ok(())
        })
        .await
    }

    /// AssociateRouteTable: a subnet of the table's VPC, not yet explicitly
    /// associated; returns the association id.
    pub async fn associate_route_table(
        &self,
        account_id: &str,
        table_id: &str,
        subnet_id: &str,
        dry_run: bool,
    ) -> ApiResult<String> {
        super::kinds::ResourceKind::RouteTable.check(table_id)?;
        let subnet = self.account_subnet(account_id, subnet_id).await?;
        let association = RouteAssociation {
            id: super::ids::new_id("rtbassoc"),
            subnet_id: Some(subnet_id.to_string()),
            main: false,
        };
        operation::run(&self.store, dry_run, |tx| {
            let mut table = table_in(tx, account_id, table_id)?;
            if table.vpc_id != subnet.subnet.vpc_id {
                return Err(ApiError::invalid_value(format!(
                    "Route table {table_id} and subnet {subnet_id} belong to different networks"
                )));
            }
            let (tree, subnet_key) = super::subnets::subnet_key(&subnet);
            if !tx.touch(tree, &subnet_key)? {
                return Err(super::subnets::subnet_not_found(subnet_id));
            }
            if let Some(other) = account_tables_in(tx, account_id)?.into_iter().find(|t| {
                t.associations
                    .iter()
                    .any(|a| a.subnet_id.as_deref() == Some(subnet_id))
            }) {
                return Err(ApiError::NotFound {
                    code: codes::RESOURCE_ALREADY_ASSOCIATED,
                    message: format!(
                        "the specified association for route table {} conflicts with an existing association",
                        other.id
                    ),
                });
            }
            table.associations.push(association.clone());
            put_table(tx, &table);
            Ok(association.id.clone())
        })
        .await
    }

    /// The table holding association `association_id`, as stored now.
    async fn table_of_association(
        &self,
        account_id: &str,
        association_id: &str,
    ) -> ApiResult<RouteTable> {
        super::ids::check_id(
            association_id,
            "rtbassoc",
            codes::INVALID_ASSOCIATION_ID_NOT_FOUND,
        )
        .map_err(|_| association_not_found(association_id))?;
        self.route_tables(account_id)
            .await?
            .into_iter()
            .find(|t| t.associations.iter().any(|a| a.id == association_id))
            .ok_or_else(|| association_not_found(association_id))
    }

    /// DisassociateRouteTable: a subnet association (the main one stays).
    pub async fn disassociate_route_table(
        &self,
        account_id: &str,
        association_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        let found = self
            .table_of_association(account_id, association_id)
            .await?;
        operation::run(&self.store, dry_run, |tx| {
            let mut table = table_in(tx, account_id, &found.id)?;
            let at = table
                .associations
                .iter()
                .position(|a| a.id == association_id)
                .ok_or_else(|| association_not_found(association_id))?;
            if table.associations[at].main {
                return Err(ApiError::invalid_value(format!(
                    "cannot disassociate the main route table association {association_id}"
                )));
            }
            table.associations.remove(at);
            put_table(tx, &table);
            Ok(())
        })
        .await
    }

    /// ReplaceRouteTableAssociation: moves a subnet's association, or the
    /// main association, to `table_id` (same VPC); returns the new
    /// association id.
    pub async fn replace_route_table_association(
        &self,
        account_id: &str,
        association_id: &str,
        table_id: &str,
        dry_run: bool,
    ) -> ApiResult<String> {
        super::kinds::ResourceKind::RouteTable.check(table_id)?;
        let found = self
            .table_of_association(account_id, association_id)
            .await?;
        let new_id = super::ids::new_id("rtbassoc");
        operation::run(&self.store, dry_run, |tx| {
            let mut from = table_in(tx, account_id, &found.id)?;
            let at = from
                .associations
                .iter()
                .position(|a| a.id == association_id)
                .ok_or_else(|| association_not_found(association_id))?;
            let moved = from.associations.remove(at);
            if from.id == table_id {
                from.associations.push(RouteAssociation {
                    id: new_id.clone(),
                    ..moved
                });
                put_table(tx, &from);
                return Ok(new_id.clone());
            }
            let mut to = table_in(tx, account_id, table_id)?;
            if to.vpc_id != from.vpc_id {
                return Err(ApiError::invalid_value(format!(
                    "Route table {table_id} belongs to another network than {}",
                    from.id
                )));
            }
            let main = moved.main;
            to.associations.push(RouteAssociation {
                id: new_id.clone(),
                ..moved
            });
            put_table(tx, &from);
            put_table(tx, &to);
            if main {
                super::vpcs::set_main_route_table(tx, account_id, &to.vpc_id, &to.id)?;
            }
            Ok(new_id.clone())
        })
        .await
    }
}

/// Removes a deleted subnet's explicit association in `tx`, as EC2 does
/// when a subnet goes.
pub(super) fn forget_subnet(tx: &mut Tx<'_>, account_id: &str, subnet_id: &str) -> ApiResult<()> {
    for listed in account_tables_in(tx, account_id)? {
        if listed
            .associations
            .iter()
            .any(|a| a.subnet_id.as_deref() == Some(subnet_id))
        {
            let mut table = table_in(tx, account_id, &listed.id)?;
            table
                .associations
                .retain(|a| a.subnet_id.as_deref() != Some(subnet_id));
            put_table(tx, &table);
        }
    }
    Ok(())
}

fn local_route(destination: &str) -> ApiError {
    ApiError::invalid_value(format!(
        "cannot remove or replace the local route {destination}"
    ))
}

fn route_not_found(table_id: &str, destination: &str) -> ApiError {
    ApiError::NotFound {
        code: codes::INVALID_ROUTE_NOT_FOUND,
        message: format!(
            "no route with destination-cidr-block {destination} in route table {table_id}"
        ),
    }
}
