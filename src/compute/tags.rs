//! Tags on every resource: CreateTags, DeleteTags, DescribeTags.
//!
//! The resource type comes from the id's prefix (`i-`, `ami-`, `key-`,
//! `sg-`, `vol-`, `snap-`, `eipalloc-`, `vpc-`, `subnet-`, `igw-`, `rtb-`,
//! `nat-`, `acl-`, `dopt-`, `lt-`, `pcx-`); an id of another shape is `InvalidID`, an unknown one the
//! type's own `.NotFound`. Every id of a request is checked before anything
//! changes, and all changes are written in one commit, on the condition that
//! none of the records read changed meanwhile. Limits as EC2: 50 tags per resource.

use super::instances::Tag;
use super::operation::Tx;
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::store::Record;

/// Most tags on one resource.
pub const MAX_TAGS: usize = 50;

/// Most resource ids in one CreateTags or DeleteTags (EC2's limit).
pub const MAX_TAGGED_RESOURCES: usize = 1000;

pub use super::kinds::ResourceKind as ResourceType;

/// A stored record that carries tags.
pub(crate) trait Tagged: Record {
    fn tags_mut(&mut self) -> &mut Vec<Tag>;
}

macro_rules! tagged {
    ($($record:ty),*) => {
        $(impl Tagged for $record {
            fn tags_mut(&mut self) -> &mut Vec<Tag> {
                &mut self.tags
            }
        })*
    };
}

tagged!(
    super::images::Image,
    super::keypairs::KeyPair,
    super::security_groups::SecurityGroup,
    super::network::Vpc,
    super::network::Subnet,
    super::internet_gateways::InternetGateway,
    super::route_tables::RouteTable,
    super::nat_gateways::NatGateway,
    super::network_acls::NetworkAcl,
    super::dhcp_options::DhcpOptions,
    super::launch_templates::LaunchTemplate,
    super::peering::PeeringConnection,
    super::network_interfaces::NetworkInterface,
    super::volumes::Volume,
    super::snapshots::Snapshot,
    super::addresses::Address
);

/// What a tag change does.
#[derive(Debug, Clone)]
pub enum TagChange {
    /// Add or overwrite these tags.
    Set(Vec<Tag>),
    /// Remove keys (only when the value matches, if one is given; all tags
    /// when the list is empty).
    Remove(Vec<(String, Option<String>)>),
}

impl TagChange {
    /// Applies the change to a resource's tags.
    pub fn apply_to(&self, tags: &mut Vec<Tag>) {
        match self {
            TagChange::Set(new) => {
                for tag in new {
                    match tags.iter_mut().find(|t| t.key == tag.key) {
                        Some(existing) => existing.value = tag.value.clone(),
                        None => tags.push(tag.clone()),
                    }
                }
            }
            TagChange::Remove(keys) if keys.is_empty() => tags.clear(),
            TagChange::Remove(keys) => tags.retain(|t| {
                !keys.iter().any(|(key, value)| {
                    &t.key == key && value.as_ref().is_none_or(|v| v == &t.value)
                })
            }),
        }
    }
}

/// A stored record located for a tag change.
struct Located {
    tree: &'static str,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// One tag of one resource, as DescribeTags lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceTag {
    pub resource_id: String,
    pub resource_type: ResourceType,
    pub key: String,
    pub value: String,
}

fn retagged<T: Tagged>(bytes: &[u8], change: &TagChange) -> ApiResult<(Vec<u8>, usize)> {
    let mut record: T = crate::store::decode(bytes)?;
    change.apply_to(record.tags_mut());
    let count = record.tags_mut().len();
    Ok((crate::store::encode(&record), count))
}

/// Lookups a tag change needs that are not by key: built once per request,
/// not once per id (a request may name 1,000 ids).
#[derive(Default)]
struct TagIndex {
    /// Key pair id -> name (key pairs are stored by name).
    key_pairs: std::collections::HashMap<String, String>,
    /// Subnet id -> zone (default subnets are stored by zone).
    subnets: std::collections::HashMap<String, String>,
}

impl Compute {
    async fn tag_index(&self, account_id: &str, kinds: &[ResourceType]) -> ApiResult<TagIndex> {
        let mut index = TagIndex::default();
        if kinds.contains(&ResourceType::KeyPair) {
            index.key_pairs = self
                .key_pairs(account_id)
                .await?
                .into_iter()
                .map(|pair| (pair.id, pair.name))
                .collect();
        }
        if kinds.contains(&ResourceType::Subnet) {
            index.subnets = self
                .default_subnets(account_id)
                .await?
                .into_iter()
                .map(|subnet| (subnet.subnet_id, subnet.availability_zone))
                .collect();
        }
        Ok(index)
    }

    /// The store location of a taggable, non-instance resource of the account.
    fn locate(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        kind: ResourceType,
        id: &str,
        index: &TagIndex,
    ) -> ApiResult<Located> {
        let mut found = |tree: &'static str, key: Vec<u8>| -> ApiResult<Located> {
            let value = tx.get_raw(tree, &key)?.ok_or_else(|| kind.not_found(id))?;
            Ok(Located { tree, key, value })
        };
        let by_account = format!("{account_id}/{id}").into_bytes();
        match kind {
            ResourceType::Image => {
                if self.catalog.image(id).is_some() {
                    return Err(ApiError::OperationNotPermitted(format!(
                        "{id} is a public catalogue image: only your own images can be tagged"
                    )));
                }
                found(super::images::IMAGES, by_account)
            }
            ResourceType::SecurityGroup => {
                found(super::security_groups::SECURITY_GROUPS, by_account)
            }
            ResourceType::Volume => found(super::volumes::VOLUMES, by_account),
            ResourceType::Snapshot => found(super::snapshots::SNAPSHOTS, by_account),
            ResourceType::ElasticIp => found(super::addresses::ADDRESSES, by_account),
            ResourceType::InternetGateway => {
                found(super::internet_gateways::INTERNET_GATEWAYS, by_account)
            }
            ResourceType::RouteTable => found(super::route_tables::ROUTE_TABLES, by_account),
            ResourceType::NatGateway => found(super::nat_gateways::NAT_GATEWAYS, by_account),
            ResourceType::NetworkAcl => found(super::network_acls::NETWORK_ACLS, by_account),
            ResourceType::DhcpOptions => found(super::dhcp_options::DHCP_OPTIONS, by_account),
            ResourceType::NetworkInterface => {
                let stored = found(super::network_interfaces::NETWORK_INTERFACES, by_account);
                if stored.is_err() {
                    if let Ok(interface) = self.network_interface_in(tx, account_id, id) {
                        return Err(match interface.managed_by {
                            Some(nat) => ApiError::OperationNotPermitted(format!(
                                "The network interface {id} is managed by {nat} and cannot be changed"
                            )),
                            None => ApiError::UnsupportedOperation(format!(
                                "{id} is an instance's primary network interface, which keeps no tags of its own here: tag the instance"
                            )),
                        });
                    }
                }
                stored
            }
            ResourceType::LaunchTemplate => {
                found(super::launch_templates::LAUNCH_TEMPLATES, by_account)
            }
            ResourceType::VpcPeeringConnection => {
                // One record for both parties: the requester's tags.
                let located = found(super::peering::PEERINGS, id.as_bytes().to_vec())?;
                let connection: super::peering::PeeringConnection =
                    crate::store::decode(&located.value)?;
                if connection.requester.account_id != account_id {
                    return Err(kind.not_found(id));
                }
                Ok(located)
            }
            ResourceType::KeyPair => {
                let name = index.key_pairs.get(id).ok_or_else(|| kind.not_found(id))?;
                let located = found(
                    super::keypairs::KEY_PAIRS,
                    format!("{account_id}/{name}").into_bytes(),
                )?;
                // The name may have been given to a new pair since the index.
                let pair: super::keypairs::KeyPair = crate::store::decode(&located.value)?;
                if pair.id != id {
                    return Err(kind.not_found(id));
                }
                Ok(located)
            }
            ResourceType::Vpc => {
                // A created VPC, else the default one (stored by account).
                match found(super::vpcs::VPCS, by_account.clone()) {
                    Ok(located) => return Ok(located),
                    Err(ApiError::NotFound { .. }) => {}
                    Err(other) => return Err(other),
                }
                let located = found(super::network::VPCS, account_id.as_bytes().to_vec())?;
                let vpc: super::network::Vpc = crate::store::decode(&located.value)?;
                if vpc.vpc_id != id {
                    return Err(kind.not_found(id));
                }
                Ok(located)
            }
            ResourceType::Subnet => {
                // A created subnet, else a default one (stored by zone).
                match found(super::subnets::SUBNETS, by_account.clone()) {
                    Ok(located) => return Ok(located),
                    Err(ApiError::NotFound { .. }) => {}
                    Err(other) => return Err(other),
                }
                let zone = index.subnets.get(id).ok_or_else(|| kind.not_found(id))?;
                found(
                    super::network::SUBNETS,
                    format!("{account_id}/{zone}").into_bytes(),
                )
            }
            ResourceType::Instance => {
                unreachable!("instances are retagged by `retag_instance`")
            }
        }
    }

    /// CreateTags / DeleteTags on `ids`, all or nothing.
    pub async fn change_tags(
        &self,
        account_id: &str,
        ids: &[String],
        change: TagChange,
        dry_run: bool,
    ) -> ApiResult<()> {
        if let TagChange::Set(tags) = &change {
            if tags.is_empty() {
                return Err(ApiError::MissingParameter("Tag".into()));
            }
        }
        if ids.len() > MAX_TAGGED_RESOURCES {
            return Err(ApiError::invalid_value(format!(
                "A request may name at most {MAX_TAGGED_RESOURCES} resource IDs, not {}",
                ids.len()
            )));
        }
        // The same id twice is one resource.
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        let ids: Vec<&String> = ids.iter().filter(|id| seen.insert(id.as_str())).collect();
        let kinds: Vec<ResourceType> = ids
            .iter()
            .map(|id| ResourceType::of(id))
            .collect::<ApiResult<_>>()?;
        let index = self.tag_index(account_id, &kinds).await?;
        super::operation::run(&self.store, dry_run, |tx| {
            for (id, kind) in ids.iter().zip(&kinds) {
                if *kind == ResourceType::Instance {
                    self.retag_instance(tx, account_id, id, &change)?;
                    continue;
                }
                let located = self.locate(tx, account_id, *kind, id, &index)?;
                let (value, count) = match kind {
                    ResourceType::Image => {
                        retagged::<super::images::Image>(&located.value, &change)?
                    }
                    ResourceType::KeyPair => {
                        retagged::<super::keypairs::KeyPair>(&located.value, &change)?
                    }
                    ResourceType::SecurityGroup => {
                        retagged::<super::security_groups::SecurityGroup>(&located.value, &change)?
                    }
                    ResourceType::Vpc => retagged::<super::network::Vpc>(&located.value, &change)?,
                    ResourceType::Subnet => {
                        retagged::<super::network::Subnet>(&located.value, &change)?
                    }
                    ResourceType::Volume => {
                        retagged::<super::volumes::Volume>(&located.value, &change)?
                    }
                    ResourceType::Snapshot => {
                        retagged::<super::snapshots::Snapshot>(&located.value, &change)?
                    }
                    ResourceType::ElasticIp => {
                        retagged::<super::addresses::Address>(&located.value, &change)?
                    }
                    ResourceType::InternetGateway => retagged::<
                        super::internet_gateways::InternetGateway,
                    >(&located.value, &change)?,
                    ResourceType::RouteTable => {
                        retagged::<super::route_tables::RouteTable>(&located.value, &change)?
                    }
                    ResourceType::NatGateway => {
                        retagged::<super::nat_gateways::NatGateway>(&located.value, &change)?
                    }
                    ResourceType::NetworkAcl => {
                        retagged::<super::network_acls::NetworkAcl>(&located.value, &change)?
                    }
                    ResourceType::DhcpOptions => {
                        retagged::<super::dhcp_options::DhcpOptions>(&located.value, &change)?
                    }
                    ResourceType::NetworkInterface => retagged::<
                        super::network_interfaces::NetworkInterface,
                    >(
                        &located.value, &change
                    )?,
                    ResourceType::LaunchTemplate => retagged::<
                        super::launch_templates::LaunchTemplate,
                    >(&located.value, &change)?,
                    ResourceType::VpcPeeringConnection => {
                        retagged::<super::peering::PeeringConnection>(&located.value, &change)?
                    }
                    ResourceType::Instance => unreachable!(),
                };
                if count > MAX_TAGS {
                    return Err(too_many_tags(id));
                }
                tx.put_raw(located.tree, located.key, value);
            }
            Ok(())
        })
        .await
    }

    /// Every tag of the account's resources.
    pub async fn resource_tags(&self, account_id: &str) -> ApiResult<Vec<ResourceTag>> {
        let mut all = Vec::new();
        let mut push = |resource_id: &str, resource_type: ResourceType, tags: &[Tag]| {
            for tag in tags {
                all.push(ResourceTag {
                    resource_id: resource_id.to_string(),
                    resource_type,
                    key: tag.key.clone(),
                    value: tag.value.clone(),
                });
            }
        };
        for instance in self.instances(account_id, &[], None).await? {
            push(&instance.id, ResourceType::Instance, &instance.tags);
        }
        for image in self
            .visible_images(account_id)
            .await?
            .into_iter()
            .filter(|i| i.owner_id == account_id)
        {
            push(&image.id, ResourceType::Image, &image.tags);
        }
        for pair in self.key_pairs(account_id).await? {
            push(&pair.id, ResourceType::KeyPair, &pair.tags);
        }
        for group in self.security_groups(account_id).await? {
            push(&group.id, ResourceType::SecurityGroup, &group.tags);
        }
        for volume in self.volumes(account_id).await? {
            push(&volume.id, ResourceType::Volume, &volume.tags);
        }
        for snapshot in self.own_snapshots(account_id).await? {
            push(&snapshot.id, ResourceType::Snapshot, &snapshot.tags);
        }
        for address in self.addresses(account_id).await? {
            push(
                &address.allocation_id,
                ResourceType::ElasticIp,
                &address.tags,
            );
        }
        for found in self.account_vpcs(account_id).await? {
            push(&found.vpc.vpc_id, ResourceType::Vpc, &found.vpc.tags);
        }
        for gateway in self.internet_gateways(account_id).await? {
            push(&gateway.id, ResourceType::InternetGateway, &gateway.tags);
        }
        for table in self.route_tables(account_id).await? {
            push(&table.id, ResourceType::RouteTable, &table.tags);
        }
        for nat in self.nat_gateways(account_id).await? {
            push(&nat.id, ResourceType::NatGateway, &nat.tags);
        }
        for view in self.network_acls(account_id).await? {
            push(&view.acl.id, ResourceType::NetworkAcl, &view.acl.tags);
        }
        for options in self.dhcp_options(account_id).await? {
            push(&options.id, ResourceType::DhcpOptions, &options.tags);
        }
        for interface in self.stored_network_interfaces(account_id).await? {
            push(
                &interface.id,
                ResourceType::NetworkInterface,
                &interface.tags,
            );
        }
        for template in self.launch_templates(account_id).await? {
            push(&template.id, ResourceType::LaunchTemplate, &template.tags);
        }
        for connection in self.peering_connections(account_id).await? {
            push(
                &connection.id,
                ResourceType::VpcPeeringConnection,
                &connection.tags,
            );
        }
        for found in self.account_subnets(account_id).await? {
            push(
                &found.subnet.subnet_id,
                ResourceType::Subnet,
                &found.subnet.tags,
            );
        }
        Ok(all)
    }
}

pub(crate) fn too_many_tags(id: &str) -> ApiError {
    ApiError::NotFound {
        code: crate::error::codes::TAG_LIMIT_EXCEEDED,
        message: format!("The maximum number of tags ({MAX_TAGS}) for {id} has been exceeded"),
    }
}
