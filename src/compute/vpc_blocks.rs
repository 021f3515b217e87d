//! Secondary IPv4 blocks of a VPC: AssociateVpcCidrBlock and
//! DisassociateVpcCidrBlock.
//!
//! A VPC may hold up to five IPv4 blocks (`CidrLimitExceeded`), each a /16
//! to a /28 overlapping none of the others (`InvalidVpc.Range`); subnets may
//! be made in any of them, and every route table of the VPC gets a `local`
//! route for each, as in EC2. The primary block cannot be disassociated
//! (`OperationNotPermitted`), nor a block that still holds a subnet
//! (`DependencyViolation`). A change rewrites the VPC record, which
//! CreateSubnet reads, so a subnet cannot appear in a block being removed.

use super::cidr::Ipv4Cidr;
use super::network::Vpc;
use super::operation::{self, Tx};
use super::route_tables::{Route, RouteTable, RouteTarget};
use super::Compute;
use crate::error::{codes, ApiError, ApiResult};
use serde::{Deserialize, Serialize};

/// Most IPv4 blocks of one VPC (EC2's default quota).
pub const MAX_BLOCKS: usize = 5;

/// A secondary IPv4 block and its association.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidrAssociation {
    pub association_id: String,
    pub cidr_block: String,
}

impl Vpc {
    /// Every IPv4 block: the primary one first.
    pub fn blocks(&self) -> Vec<(String, String)> {
        std::iter::once((self.cidr_association_id.clone(), self.cidr_block.clone()))
            .chain(
                self.secondary_blocks
                    .iter()
                    .map(|b| (b.association_id.clone(), b.cidr_block.clone())),
            )
            .collect()
    }

    /// True when `block` lies in one of the VPC's blocks.
    pub fn holds(&self, block: &Ipv4Cidr) -> bool {
        self.blocks()
            .iter()
            .filter_map(|(_, cidr)| Ipv4Cidr::parse(cidr))
            .any(|cidr| cidr.contains(block))
    }
}

/// The VPC's route tables with `change` applied to their routes, written in
/// `tx` (each read first, tracked).
fn rewrite_tables(tx: &mut Tx<'_>, vpc: &Vpc, change: impl Fn(&mut Vec<Route>)) -> ApiResult<()> {
    super::route_tables::table_usage(tx, &vpc.account_id)?;
    for listed in super::route_tables::account_tables_in(tx, &vpc.account_id)?
        .into_iter()
        .filter(|t| t.vpc_id == vpc.vpc_id)
    {
        let key = format!("{}/{}", vpc.account_id, listed.id).into_bytes();
        if let Some(mut table) = tx.get::<RouteTable>(super::route_tables::ROUTE_TABLES, &key)? {
            change(&mut table.routes);
            super::route_tables::put_table(tx, &table);
        }
    }
    Ok(())
}

impl Compute {
    /// AssociateVpcCidrBlock; returns the VPC's new association.
    pub async fn associate_vpc_block(
        &self,
        account_id: &str,
        vpc_id: &str,
        block: Ipv4Cidr,
        dry_run: bool,
    ) -> ApiResult<CidrAssociation> {
        let found = self.account_vpc(account_id, vpc_id).await?;
        let association = CidrAssociation {
            association_id: super::ids::new_id("vpc-cidr-assoc"),
            cidr_block: block.to_string(),
        };
        operation::run(&self.store, dry_run, |tx| {
            let (tree, key) = super::vpcs::vpc_key(account_id, vpc_id, found.is_default);
            let mut vpc = tx
                .get::<Vpc>(tree, &key)?
                .filter(|v| v.vpc_id == vpc_id)
                .ok_or_else(|| super::kinds::ResourceKind::Vpc.not_found(vpc_id))?;
            let blocks = vpc.blocks();
            if blocks.len() >= MAX_BLOCKS {
                return Err(ApiError::LimitExceeded {
                    code: codes::CIDR_LIMIT_EXCEEDED,
                    message: format!(
                        "This network '{vpc_id}' has met its maximum number of allowed CIDRs: {MAX_BLOCKS}"
                    ),
                });
            }
            if blocks
                .iter()
                .filter_map(|(_, cidr)| Ipv4Cidr::parse(cidr))
                .any(|cidr| cidr.overlaps(&block))
            {
                return Err(ApiError::NotFound {
                    code: codes::INVALID_VPC_RANGE,
                    message: format!(
                        "The CIDR '{block}' conflicts with another CIDR block of {vpc_id}"
                    ),
                });
            }
            vpc.secondary_blocks.push(association.clone());
            tx.put(tree, key.clone(), &vpc);
            let destination = block.to_string();
            rewrite_tables(tx, &vpc, |routes| {
                routes.push(Route {
                    destination: destination.clone(),
                    target: RouteTarget::Local,
                })
            })?;
            Ok(association.clone())
        })
        .await
    }

    /// DisassociateVpcCidrBlock; returns the VPC and the association gone.
    pub async fn disassociate_vpc_block(
        &self,
        account_id: &str,
        association_id: &str,
        dry_run: bool,
    ) -> ApiResult<(String, CidrAssociation)> {
        let unknown = || ApiError::NotFound {
            code: codes::INVALID_VPC_CIDR_BLOCK_ASSOCIATION_ID_NOT_FOUND,
            message: format!("The vpc CIDR block association ID '{association_id}' does not exist"),
        };
        let found = self
            .account_vpcs(account_id)
            .await?
            .into_iter()
            .find(|v| v.vpc.blocks().iter().any(|(id, _)| id == association_id))
            .ok_or_else(unknown)?;
        if found.vpc.cidr_association_id == association_id {
            return Err(ApiError::OperationNotPermitted(format!(
                "The vpc CIDR block with association ID {association_id} may not be disassociated. It is the primary IPv4 CIDR block of the VPC"
            )));
        }
        let vpc_id = found.vpc.vpc_id.clone();
        operation::run(&self.store, dry_run, |tx| {
            let (tree, key) = super::vpcs::vpc_key(account_id, &vpc_id, found.is_default);
            let mut vpc = tx
                .get::<Vpc>(tree, &key)?
                .filter(|v| v.vpc_id == vpc_id)
                .ok_or_else(unknown)?;
            let at = vpc
                .secondary_blocks
                .iter()
                .position(|b| b.association_id == association_id)
                .ok_or_else(unknown)?;
            let gone = vpc.secondary_blocks.remove(at);
            let block = Ipv4Cidr::parse(&gone.cidr_block).ok_or(ApiError::InternalError)?;
            // Subnets are made under the subnet usage record: reading it
            // makes one made in this block meanwhile conflict.
            super::subnets::subnet_usage(tx, account_id)?;
            let prefix = format!("{account_id}/");
            let mut subnets: Vec<super::network::Subnet> =
                tx.scan(super::subnets::SUBNETS, prefix.as_bytes())?;
            subnets.extend(tx.scan::<super::network::Subnet>(super::network::SUBNETS, prefix.as_bytes())?);
            let used = subnets
                .iter()
                .filter(|s| s.vpc_id == vpc_id)
                .filter_map(|s| Ipv4Cidr::parse(&s.cidr_block))
                .any(|s| block.contains(&s));
            if used {
                return Err(ApiError::NotFound {
                    code: codes::DEPENDENCY_VIOLATION,
                    message: format!(
                        "The CIDR block {} of {vpc_id} still holds subnets and cannot be disassociated.",
                        gone.cidr_block
                    ),
                });
            }
            tx.put(tree, key.clone(), &vpc);
            let destination = gone.cidr_block.clone();
            rewrite_tables(tx, &vpc, |routes| {
                routes.retain(|r| !(r.target == RouteTarget::Local && r.destination == destination))
            })?;
            Ok((vpc_id.clone(), gone.clone()))
        })
        .await
    }
}
