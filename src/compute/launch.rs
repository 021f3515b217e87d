//! RunInstances: one operation that checks the ClientToken, the quotas,
//! the groups and key pair it names, places every instance and records
//! everything in one commit.
//!
//! EC2's idempotency promise is that a retried RunInstances with the same
//! ClientToken returns the first reservation, whichever gateway the retry
//! reaches: the token's record is written with the instances, on the
//! condition that it is absent, so of two racing retries one commits and
//! the other runs again and finds it. The account's instance usage (the
//! quota counters and the launch sequence) and each chosen host's usage
//! are read and rewritten in the same commit, so two launches can neither
//! exceed a quota nor book the same capacity. The security groups and the
//! key pair are read in the operation too: a group deleted while the launch
//! runs makes it run again and answer `InvalidGroup.NotFound`.

use super::instances::{
    self, ClientTokenRecord, GroupRef, Instance, InstanceState, LaunchRequest, Reservation,
    StateReason, CLIENT_TOKENS,
};
use super::operation::{self, Tx};
use super::scheduler::Demand;
use super::Compute;
use crate::error::{ApiError, ApiResult};
use crate::store::StoreResult;

const META: &str = "meta";
const ADDRESS_COUNTER: &str = "address_counter/";
pub(super) const PRIVATE_IPS: &str = "private_ips";

/// Offsets 4..4091 of a default subnet's /20 (AWS reserves the first four
/// addresses and the last).
const FIRST_OFFSET: u32 = 4;
const OFFSETS: u32 = 4088;

fn format_ip(address: u32) -> String {
    std::net::Ipv4Addr::from(address).to_string()
}

/// `private_ips` key of an address in use in `pool` (a zone for its
/// default subnet, a created subnet's id).
pub(super) fn private_ip_key(account_id: &str, pool: &str, address: &str) -> Vec<u8> {
    format!("{account_id}/{pool}/{address}").into_bytes()
}

/// Frees an instance's private address in `tx` (it terminated).
/// (Its primary interface's secondary addresses go with it.)
pub(super) fn release_private_ip(tx: &mut Tx<'_>, instance: &Instance) {
    for address in instance.private_addresses() {
        tx.delete(
            PRIVATE_IPS,
            private_ip_key(&instance.account_id, instance.address_pool(), address),
        );
    }
}

/// Marks an instance's private address as taken in `tx`.
pub(super) fn hold_private_ip(tx: &mut Tx<'_>, instance: &Instance) {
    tx.put(
        PRIVATE_IPS,
        private_ip_key(
            &instance.account_id,
            instance.address_pool(),
            &instance.private_ip,
        ),
        &instance.id,
    );
}

/// The addresses instances may take in one subnet: `count` of them from
/// `first` on, held under `pool`.
struct AddressRange<'a> {
    pool: &'a str,
    first: u32,
    count: u32,
    /// How the subnet is named in an error.
    label: String,
}

impl<'a> AddressRange<'a> {
    /// A zone's default subnet (its `/20`, pool: the zone).
    fn default_subnet(zone: &'a str, zone_id: &str) -> Self {
        Self {
            pool: zone,
            first: super::network::zone_network(zone_id) + FIRST_OFFSET,
            count: OFFSETS,
            label: format!("The default subnet in {zone}"),
        }
    }

    /// A created subnet (all but EC2's five reserved addresses; pool: its id).
    fn created_subnet(subnet: &'a super::network::Subnet) -> ApiResult<Self> {
        let block =
            super::cidr::Ipv4Cidr::parse(&subnet.cidr_block).ok_or(ApiError::InternalError)?;
        let usable = block
            .size()
            .saturating_sub(super::subnets::RESERVED_ADDRESSES);
        Ok(Self {
            pool: &subnet.subnet_id,
            first: block.base() + FIRST_OFFSET,
            count: u32::try_from(usable).unwrap_or(u32::MAX),
            label: format!("The subnet {}", subnet.subnet_id),
        })
    }
}

/// The next free private address of `range`, taken in `tx`: the pool's
/// counter (kept in the account's instance usage, which the launch
/// rewrites anyway; older data kept a zone's in `meta/address_counter/...`)
/// says where to look, and the address's own key (expected absent) makes
/// it unique.
fn allocate_private_address(
    tx: &mut Tx<'_>,
    usage: &mut super::usage::Usage,
    account_id: &str,
    range: &AddressRange<'_>,
    instance_id: &str,
) -> ApiResult<String> {
    let pool = range.pool;
    let start = match usage.next_address.get(pool) {
        Some(next) => *next,
        None => {
            let legacy = format!("{ADDRESS_COUNTER}{account_id}/{pool}").into_bytes();
            tx.get::<(String, u32)>(META, &legacy)?
                .map_or(0, |(_, next)| next)
        }
    };
    for step in 0..range.count {
        let offset = (start.wrapping_add(step)) % range.count;
        let address = format_ip(range.first + offset);
        let key = private_ip_key(account_id, pool, &address);
        if tx.get::<String>(PRIVATE_IPS, &key)?.is_none() {
            let next = (offset + 1) % range.count;
            usage.next_address.insert(pool.to_string(), next);
            tx.put(PRIVATE_IPS, key, &instance_id.to_string());
            return Ok(address);
        }
    }
    Err(ApiError::NotFound {
        code: crate::error::codes::INSUFFICIENT_FREE_ADDRESSES_IN_SUBNET,
        message: format!("{} has no free private addresses left", range.label),
    })
}

/// Takes `wanted` in `range` for `holder_id` in `tx`: it must lie in the
/// range (`InvalidParameterValue`) and be free (`InvalidIPAddress.InUse`).
fn take_wanted_address(
    tx: &mut Tx<'_>,
    account_id: &str,
    range: &AddressRange<'_>,
    wanted: &str,
    holder_id: &str,
) -> ApiResult<String> {
    let address: std::net::Ipv4Addr = wanted.parse().map_err(|_| {
        ApiError::invalid_value(format!("Value ({wanted}) for parameter PrivateIpAddress is invalid. It is not an IPv4 address."))
    })?;
    let offset = u32::from(address).wrapping_sub(range.first);
    if offset >= range.count {
        return Err(ApiError::invalid_value(format!(
            "Address {wanted} does not fall within the subnet's address range"
        )));
    }
    let address = address.to_string();
    let key = private_ip_key(account_id, range.pool, &address);
    if tx.get::<String>(PRIVATE_IPS, &key)?.is_some() {
        return Err(ApiError::NotFound {
            code: crate::error::codes::INVALID_IP_ADDRESS_IN_USE,
            message: format!("Address {address} is in use."),
        });
    }
    tx.put(PRIVATE_IPS, key, &holder_id.to_string());
    Ok(address)
}

/// The address range of one of the account's subnets.
fn subnet_range<'a>(
    subnet: &'a super::subnets::AccountSubnet,
    zone_id: &str,
) -> ApiResult<AddressRange<'a>> {
    if subnet.is_default {
        Ok(AddressRange::default_subnet(
            &subnet.subnet.availability_zone,
            zone_id,
        ))
    } else {
        AddressRange::created_subnet(&subnet.subnet)
    }
}

/// Takes a free private address of `subnet` for `holder_id` (a NAT gateway,
/// say) in `tx`, with the pool counter of the account's instance usage;
/// returns the pool and the address. Rewriting the instance usage record
/// makes a DeleteSubnet running meanwhile conflict.
pub(super) fn take_subnet_address(
    tx: &mut Tx<'_>,
    account_id: &str,
    subnet: &super::subnets::AccountSubnet,
    zone_id: &str,
    holder_id: &str,
) -> ApiResult<(String, String)> {
    take_subnet_address_at(tx, account_id, subnet, zone_id, holder_id, None)
}

/// [`take_subnet_address`], of `wanted` when given (an address the
/// request names) rather than the next free one.
pub(super) fn take_subnet_address_at(
    tx: &mut Tx<'_>,
    account_id: &str,
    subnet: &super::subnets::AccountSubnet,
    zone_id: &str,
    holder_id: &str,
    wanted: Option<&str>,
) -> ApiResult<(String, String)> {
    let mut usage = instances::usage(tx, account_id)?;
    let range = subnet_range(subnet, zone_id)?;
    let address = match wanted {
        Some(wanted) => take_wanted_address(tx, account_id, &range, wanted, holder_id)?,
        None => allocate_private_address(tx, &mut usage, account_id, &range, holder_id)?,
    };
    let pool = range.pool.to_string();
    super::usage::write(tx, account_id, super::usage::Kind::Instances, &usage);
    Ok((pool, address))
}

/// Frees a private address held outside an instance (see
/// [`take_subnet_address`]).
pub(super) fn release_address(tx: &mut Tx<'_>, account_id: &str, pool: &str, address: &str) {
    tx.delete(PRIVATE_IPS, private_ip_key(account_id, pool, address));
}

/// The private DNS name of a private address in `region`, as EC2 names it.
pub fn private_dns_name(address: &str, region: &str) -> String {
    let host = format!("ip-{}", address.replace('.', "-"));
    if region == "us-east-1" {
        format!("{host}.ec2.internal")
    } else {
        format!("{host}.{region}.compute.internal")
    }
}

/// The account's limits a launch is checked against.
#[derive(Debug, Clone, Copy)]
struct Limits {
    vcpus: u32,
    storage_gib: u64,
    /// The most instances one commit may launch (the store's limit on a
    /// commit's size, learnt by [`Launched::TooLarge`]).
    per_commit: u32,
}

/// What one launch operation came to.
enum Launched {
    Done(Reservation),
    /// The account's default VPC, a default subnet or group is missing
    /// (found before anything was written).
    MissingDefaults,
    /// `instances` made a commit of `size` operations, more than the
    /// store takes at once (`max`): nothing was written.
    TooLarge {
        instances: u32,
        size: usize,
        max: usize,
    },
}

fn token_mismatch(token: &str) -> ApiError {
    ApiError::IdempotentParameterMismatch(format!(
        "Arguments on this idempotent request are inconsistent with arguments used in previous request(s) with client token '{token}'"
    ))
}

impl Compute {
    pub(super) fn private_dns_name(&self, address: &str) -> String {
        private_dns_name(address, &self.region.name)
    }

    /// The reservation a token launched, with the instances' current state.
    fn reservation_of(
        &self,
        tx: &mut Tx<'_>,
        record: &ClientTokenRecord,
    ) -> StoreResult<Reservation> {
        let mut found = Vec::new();
        for id in &record.instance_ids {
            if let Some(instance) = instances::load(&self.instances, tx, &record.account_id, id)? {
                found.push(instance);
            }
        }
        Ok(Reservation {
            reservation_id: record.reservation_id.clone(),
            owner_id: record.account_id.clone(),
            instances: found,
        })
    }

    /// The groups a launch names (by name and by id), or its VPC's
    /// `default` group, read in `tx` so that their deletion makes the
    /// launch run again. Every group must be in the launch's VPC; a name
    /// is looked up in that VPC.
    pub(super) fn launch_groups(
        &self,
        tx: &mut Tx<'_>,
        account_id: &str,
        vpc: &super::network::Vpc,
        names: &[String],
        ids: &[String],
    ) -> ApiResult<Vec<GroupRef>> {
        use super::security_groups::GroupSelector;
        let mut selectors: Vec<GroupSelector> = names
            .iter()
            .map(|n| GroupSelector::Name(n.clone()))
            .chain(ids.iter().map(|id| GroupSelector::Id(id.clone())))
            .collect();
        if selectors.is_empty() {
            selectors.push(match &vpc.default_group_id {
                Some(id) => GroupSelector::Id(id.clone()),
                None => GroupSelector::Name("default".into()),
            });
        }
        let mut refs = Vec::new();
        for selector in &selectors {
            let group = match (selector, vpc.default_group_id.is_some()) {
                // A created VPC: its groups by name.
                (GroupSelector::Name(name), true) => {
                    self.security_group_named_in_vpc(tx, account_id, &vpc.vpc_id, name)?
                }
                _ => self.security_group_in(tx, account_id, selector)?,
            };
            if group.vpc_id != vpc.vpc_id {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::INVALID_PARAMETER,
                    message: format!(
                        "Security group {} and the instance's subnet belong to different networks.",
                        group.id
                    ),
                });
            }
            refs.push(GroupRef {
                id: group.id,
                name: group.name,
            });
        }
        refs.dedup();
        Ok(refs)
    }

    /// The reservation a launch with `token` made, if one did: what a
    /// retry is answered with (`IdempotentParameterMismatch` when the
    /// retry's parameters differ).
    pub async fn earlier_launch(
        &self,
        account_id: &str,
        token: &str,
        fingerprint: &str,
        dry_run: bool,
    ) -> ApiResult<Option<Reservation>> {
        let key = format!("{account_id}/{token}").into_bytes();
        if self
            .store
            .get_record::<ClientTokenRecord>(CLIENT_TOKENS, &key)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        operation::run(&self.store, dry_run, |tx| {
            let record = tx
                .get::<ClientTokenRecord>(CLIENT_TOKENS, &key)?
                .ok_or_else(|| {
                    ApiError::ServiceUnavailable(
                        "The ClientToken expired while this request ran; retry".into(),
                    )
                })?;
            if record.fingerprint != fingerprint {
                return Err(token_mismatch(token));
            }
            Ok(Some(self.reservation_of(tx, &record)?))
        })
        .await
    }

    /// RunInstances: validate, then one operation that checks the token,
    /// quotas and dependencies, places each instance and commits it all.
    pub async fn run_instances(
        &self,
        account_id: &str,
        request: LaunchRequest,
    ) -> ApiResult<Reservation> {
        // A retry of a launch that happened is answered from its token,
        // whatever changed since (an image deregistered, a subnet gone).
        if let Some(token) = &request.client_token {
            if let Some(reservation) = self
                .earlier_launch(account_id, token, &request.fingerprint, request.dry_run)
                .await?
            {
                return Ok(reservation);
            }
        }
        let image = self
            .visible_image(account_id, &request.image_id)
            .await?
            .ok_or_else(|| ApiError::NotFound {
                code: super::kinds::ResourceKind::Image.not_found_code(),
                message: format!("The image id '[{}]' does not exist", request.image_id),
            })?;
        if image.state(self.clock.now()) != "available" {
            return Err(ApiError::NotFound {
                code: crate::error::codes::INVALID_AMI_ID_UNAVAILABLE,
                message: format!("The image {} is not available yet", image.id),
            });
        }
        let instance_type = self
            .catalog
            .instance_type(&request.instance_type)
            .ok_or_else(|| {
                ApiError::invalid_value(format!(
                    "The instance type '{}' does not exist",
                    request.instance_type
                ))
            })?;
        if instance_type.architecture != image.architecture {
            return Err(ApiError::invalid_value(format!(
                "The architecture '{}' of the specified instance type does not match the architecture '{}' of the specified AMI.",
                instance_type.architecture, image.architecture
            )));
        }
        let mut request = request;
        // A created subnet names the VPC, the zone and the address range;
        // a default subnet only the zone.
        let mut created_subnet = None;
        if let Some(subnet_id) = &request.subnet_id {
            let found = self.account_subnet(account_id, subnet_id).await?;
            match &request.availability_zone {
                Some(zone) if zone != &found.subnet.availability_zone => {
                    return Err(ApiError::InvalidParameterCombination(format!(
                        "The subnet {subnet_id} is in {}, not in the requested {zone}",
                        found.subnet.availability_zone
                    )))
                }
                _ => request.availability_zone = Some(found.subnet.availability_zone.clone()),
            }
            if !found.is_default {
                created_subnet = Some(found.subnet);
            }
        }
        let planned_volumes = self
            .plan_launch_volumes(account_id, &image, &request)
            .await?;
        let now = self.clock.now();
        let vcpu_limit = self.vcpu_limit().await?;
        let storage_limit = self.volume_storage_limit().await?;
        // The account's defaults (VPC, subnets, `default` group) are made
        // with the account; a launch that finds one missing makes them and
        // runs again.
        let mut made_defaults = false;
        // A store that limits commits (etcd) takes at most this many: each
        // instance writes at least six keys (spec, status, order, schedule
        // entry, private address, host index). The attempt then measures
        // its real size (`Launched::TooLarge`); starting from this bound
        // keeps an attempt of a huge MaxCount from reading thousands of
        // keys it could never commit.
        let mut per_commit = self
            .store
            .backend()
            .max_commit_ops()
            .map_or(u32::MAX, |max| {
                u32::try_from(max / 6).unwrap_or(u32::MAX).max(1)
            });
        let reservation = loop {
            let outcome = self
                .launch_once(
                    account_id,
                    &request,
                    created_subnet.as_ref(),
                    &image,
                    instance_type,
                    now,
                    Limits {
                        vcpus: vcpu_limit,
                        storage_gib: storage_limit,
                        per_commit,
                    },
                    &planned_volumes,
                )
                .await?;
            match outcome {
                Launched::Done(reservation) => break reservation,
                Launched::MissingDefaults if !made_defaults => {
                    self.default_network(account_id).await?;
                    self.security_groups(account_id).await?;
                    made_defaults = true;
                }
                Launched::MissingDefaults => {
                    return Err(ApiError::ServiceUnavailable(
                        "The account's default network is being created; retry".into(),
                    ))
                }
                Launched::TooLarge {
                    instances,
                    size,
                    max,
                } => {
                    // As many as fit, by this launch's measure, less one
                    // for what a launch writes once whatever its size.
                    let fitting = (u64::from(instances) * max as u64 / size.max(1) as u64)
                        .saturating_sub(1) as u32;
                    if fitting < request.min_count.max(1) || fitting >= per_commit {
                        return Err(ApiError::invalid_value(format!(
                            "This endpoint launches at most {fitting} such instance(s) in one request (its store takes {max} operations in one transaction); MinCount is {}",
                            request.min_count
                        )));
                    }
                    per_commit = fitting;
                }
            }
        };
        self.instances.nudge(now + self.lifecycle.boot_delay);
        Ok(reservation)
    }

    /// The volumes each instance of a launch gets (see `launch_volumes`),
    /// with the sizes of the snapshots the caller may read.
    async fn plan_launch_volumes(
        &self,
        account_id: &str,
        image: &super::catalog::Image,
        request: &LaunchRequest,
    ) -> ApiResult<Vec<super::launch_volumes::PlannedVolume>> {
        let mut snapshots = std::collections::HashMap::new();
        // The image's snapshots are its owner's: read as the owner (the
        // caller may launch an image whose snapshots it cannot see).
        for id in image
            .block_devices
            .iter()
            .filter_map(|d| d.snapshot_id.clone())
        {
            if let Some(snapshot) = self.owned_snapshot(&image.owner_id, &id).await? {
                snapshots.insert(id, (snapshot.volume_size, snapshot.encrypted));
            }
        }
        // A snapshot the request adds must be one the caller may read, and
        // completed.
        for id in request
            .block_devices
            .iter()
            .filter_map(|d| d.snapshot_id.clone())
        {
            if snapshots.contains_key(&id) {
                continue;
            }
            super::kinds::ResourceKind::Snapshot.check(&id)?;
            let snapshot = self.snapshot(account_id, &id).await?;
            if snapshot.state(self.clock.now()) != "completed" {
                return Err(ApiError::NotFound {
                    code: crate::error::codes::INCORRECT_STATE,
                    message: format!("Snapshot '{id}' is not completed yet"),
                });
            }
            snapshots.insert(id, (snapshot.volume_size, snapshot.encrypted));
        }
        super::launch_volumes::plan(image, &request.block_devices, |id| {
            snapshots.get(id).copied()
        })
    }

    /// One launch operation (see [`Compute::run_instances`]).
    #[allow(clippy::too_many_arguments)]
    async fn launch_once(
        &self,
        account_id: &str,
        request: &LaunchRequest,
        created_subnet: Option<&super::network::Subnet>,
        image: &super::catalog::Image,
        instance_type: &super::catalog::InstanceType,
        now: chrono::DateTime<chrono::Utc>,
        limits: Limits,
        planned_volumes: &[super::launch_volumes::PlannedVolume],
    ) -> ApiResult<Launched> {
        let vcpu_limit = limits.vcpus;
        let demand = Demand {
            vcpus: instance_type.vcpus,
            memory_mib: instance_type.memory_mib,
        };
        operation::run(&self.store, request.dry_run, |tx| {
            if let Some(token) = &request.client_token {
                let key = format!("{account_id}/{token}").into_bytes();
                if let Some(record) = tx.get::<ClientTokenRecord>(CLIENT_TOKENS, &key)? {
                    if record.fingerprint != request.fingerprint {
                        return Err(token_mismatch(token));
                    }
                    return Ok(Launched::Done(self.reservation_of(tx, &record)?));
                }
            }
            // A stored image read in the operation: a revoke or a
            // deregistration meanwhile makes the launch run again.
            if self.catalog.image(&image.id).is_none()
                && super::image_sharing::usable_image_in(tx, account_id, &image.id)?.is_none()
            {
                return Err(super::kinds::ResourceKind::Image.not_found(&image.id));
            }
            let mut windows_key = None;
            if let Some(key_name) = &request.key_name {
                let Some(pair) = self.key_pair_in(tx, account_id, key_name)? else {
                    return Err(ApiError::NotFound {
                        code: super::kinds::ResourceKind::KeyPair.not_found_code(),
                        message: format!("The key pair '{key_name}' does not exist"),
                    });
                };
                // A Windows instance's password is encrypted with it.
                if image.platform == "windows" {
                    if pair.key_type == super::keymaterial::KeyType::Ed25519 {
                        return Err(super::passwords::ed25519_refused());
                    }
                    windows_key = Some(pair.public_key);
                }
            }
            let names = &request.security_group_names;
            let ids = &request.security_group_ids;
            let (vpc_id, groups) = match created_subnet {
                Some(subnet) => {
                    // Read in the operation: its deletion (or its VPC's)
                    // makes the launch run again.
                    if super::subnets::created_subnet(tx, account_id, &subnet.subnet_id)?.is_none() {
                        return Err(super::subnets::subnet_not_found(&subnet.subnet_id));
                    }
                    let vpc = super::vpcs::created_vpc(tx, account_id, &subnet.vpc_id)?;
                    let groups = self.launch_groups(tx, account_id, &vpc, names, ids)?;
                    (vpc.vpc_id, groups)
                }
                None => {
                    let Some(vpc) = tx.get::<super::network::Vpc>(
                        super::network::VPCS,
                        account_id.as_bytes(),
                    )?
                    else {
                        return Ok(Launched::MissingDefaults);
                    };
                    let groups = match self.launch_groups(tx, account_id, &vpc, names, ids) {
                        Err(ApiError::NotFound { .. }) if names.is_empty() && ids.is_empty() => {
                            return Ok(Launched::MissingDefaults)
                        }
                        other => other?,
                    };
                    (vpc.vpc_id, groups)
                }
            };
            let mut usage = instances::usage(tx, account_id)?;
            let count = u32::try_from(usage.count).unwrap_or(u32::MAX);
            let vcpus_in_use = u32::try_from(usage.amount).unwrap_or(u32::MAX);
            let instance_room = self.quotas.max_instances.saturating_sub(count);
            let vcpu_room = vcpu_limit.saturating_sub(vcpus_in_use) / demand.vcpus.max(1);
            if instance_room < request.min_count {
                return Err(ApiError::InstanceLimitExceeded(format!(
                    "Your quota allows for {instance_room} more running instance(s). You requested at least {}.",
                    request.min_count
                )));
            }
            if vcpu_room < request.min_count {
                return Err(ApiError::VcpuLimitExceeded(format!(
                    "You have requested more vCPU capacity than your current vCPU limit of {vcpu_limit} allows for the instance bucket that the specified instance type belongs to."
                )));
            }
            let mut wanted = request
                .max_count
                .min(instance_room)
                .min(vcpu_room)
                .min(limits.per_commit);
            // As many as the subnet has addresses for (each address is
            // then taken by its own key, so an estimate made stale by a
            // concurrent launch makes this run again).
            if let Some(subnet) = created_subnet {
                let range = AddressRange::created_subnet(subnet)?;
                let held = tx
                    .scan_entries(
                        PRIVATE_IPS,
                        format!("{account_id}/{}/", subnet.subnet_id).as_bytes(),
                    )?
                    .len();
                let free = range.count.saturating_sub(u32::try_from(held).unwrap_or(u32::MAX));
                if free < request.min_count {
                    return Err(ApiError::NotFound {
                        code: crate::error::codes::INSUFFICIENT_FREE_ADDRESSES_IN_SUBNET,
                        message: format!(
                            "The subnet {} has {free} free private addresses; {} requested at least",
                            subnet.subnet_id, request.min_count
                        ),
                    });
                }
                wanted = wanted.min(free);
            }
            // As many as the account's volume quotas leave room for.
            if !planned_volumes.is_empty() {
                let room = self.launch_volume_room(
                    tx,
                    account_id,
                    planned_volumes,
                    limits.storage_gib,
                )?;
                if room < request.min_count {
                    return Err(ApiError::LimitExceeded {
                        code: crate::error::codes::VOLUME_LIMIT_EXCEEDED,
                        message: format!(
                            "You have exceeded your maximum volume limits: room for the volumes of {room} more instance(s), {} requested at least",
                            request.min_count
                        ),
                    });
                }
                wanted = wanted.min(room);
            }
            let mut placement = self.services.placement(tx)?;
            if let Some(zone) = &request.availability_zone {
                if !placement.zone_exists(zone) {
                    return Err(ApiError::invalid_value(format!(
                        "Invalid availability zone: [{zone}]"
                    )));
                }
            }
            // A default subnet in every zone the launch may use, looked up
            // before anything is written (answering `MissingDefaults` after
            // a write would commit it).
            if created_subnet.is_none() {
                let zones: Vec<String> = match &request.availability_zone {
                    Some(zone) => vec![zone.clone()],
                    None => placement.zones(),
                };
                for zone in zones {
                    let subnet_key = format!("{account_id}/{zone}").into_bytes();
                    if tx
                        .get::<super::network::Subnet>(super::network::SUBNETS, &subnet_key)?
                        .is_none()
                    {
                        return Ok(Launched::MissingDefaults);
                    }
                }
            }
            let mut placed = Vec::new();
            for _ in 0..wanted {
                match placement.place(
                    tx,
                    request.availability_zone.as_deref(),
                    demand,
                    self.scheduler_policy,
                    now,
                )? {
                    Some(host) => placed.push(host),
                    None => break,
                }
            }
            if (placed.len() as u32) < request.min_count {
                let zone = request
                    .availability_zone
                    .clone()
                    .map_or(String::new(), |z| format!(" in {z}"));
                return Err(ApiError::InsufficientInstanceCapacity(format!(
                    "We currently do not have sufficient {} capacity{zone}. Our system will be working on provisioning additional capacity.",
                    request.instance_type
                )));
            }
            if (request.private_ip.is_some() || !request.attach_interfaces.is_empty())
                && wanted > 1
            {
                return Err(ApiError::InvalidParameterCombination(
                    "A private IP address or an existing network interface can be given only when launching one instance".into(),
                ));
            }
            let reservation_id = super::ids::new_id("r");
            let mut launched = Vec::new();
            let mut volumes_by_zone = std::collections::BTreeMap::new();
            for (index, host) in placed.into_iter().enumerate() {
                let zone = host.availability_zone.clone();
                let id = super::ids::new_id("i");
                let zone_id;
                let (subnet_id, range, address_pool, map_public) = match created_subnet {
                    Some(subnet) => (
                        subnet.subnet_id.clone(),
                        AddressRange::created_subnet(subnet)?,
                        Some(subnet.subnet_id.clone()),
                        subnet.map_public_ip_on_launch.unwrap_or(false),
                    ),
                    None => {
                        zone_id = self.services.zone_id(tx, &zone)?.unwrap_or_default();
                        let subnet_key = format!("{account_id}/{zone}").into_bytes();
                        let Some(subnet) = tx
                            .get::<super::network::Subnet>(super::network::SUBNETS, &subnet_key)?
                        else {
                            // Looked up above: gone meanwhile.
                            return Err(ApiError::ServiceUnavailable(
                                "The account's default network is being created; retry".into(),
                            ));
                        };
                        (
                            subnet.subnet_id,
                            AddressRange::default_subnet(&zone, &zone_id),
                            None,
                            subnet.map_public_ip_on_launch.unwrap_or(true),
                        )
                    }
                };
                let private_ip = match &request.private_ip {
                    Some(wanted) => take_wanted_address(tx, account_id, &range, wanted, &id)?,
                    None => allocate_private_address(tx, &mut usage, account_id, &range, &id)?,
                };
                let mut secondary = Vec::new();
                for _ in 0..request.secondary_private_ip_count {
                    secondary.push(allocate_private_address(
                        tx, &mut usage, account_id, &range, &id,
                    )?);
                }
                if 1 + secondary.len() > super::network_interfaces::address_limit(instance_type.vcpus) {
                    return Err(ApiError::LimitExceeded {
                        code: crate::error::codes::PRIVATE_IP_ADDRESS_LIMIT_EXCEEDED,
                        message: format!(
                            "Number of private addresses will exceed limit of {} for {}.",
                            super::network_interfaces::address_limit(instance_type.vcpus),
                            instance_type.name
                        ),
                    });
                }
                let primary_interface = Some(super::network_interfaces::PrimaryInterface {
                    description: request.interface_description.clone(),
                    secondary_private_ips: secondary,
                    ..Default::default()
                })
                .filter(|p| p != &Default::default());
                let instance = Instance {
                    id,
                    sequence: usage.next_sequence,
                    account_id: account_id.to_string(),
                    reservation_id: reservation_id.clone(),
                    image_id: image.id.clone(),
                    instance_type: instance_type.name.clone(),
                    vcpus: instance_type.vcpus,
                    memory_mib: instance_type.memory_mib,
                    architecture: image.architecture.clone(),
                    platform: image.platform.clone(),
                    key_name: request.key_name.clone(),
                    state: InstanceState::Pending,
                    // On an agent's host, pending lasts until the agent
                    // reports the instance running (with a watchdog: see
                    // `Compute::agent_watchdog`).
                    transition_at: Some(
                        now + if host.agent.is_some() {
                            self.services.liveness_window()
                        } else {
                            self.lifecycle.boot_delay
                        },
                    ),
                    reason: None,
                    state_reason: Some(StateReason {
                        code: "pending".into(),
                        message: "pending".into(),
                    }),
                    launch_time: now,
                    ami_launch_index: index as u32,
                    host: Some(host.host.clone()),
                    private_dns_name: self.private_dns_name(&private_ip),
                    private_ip,
                    client_token: request.client_token.clone(),
                    user_data: request.user_data.clone(),
                    security_groups: groups.clone(),
                    tags: request.tags.clone(),
                    disable_api_termination: request.disable_api_termination,
                    shutdown_behavior: request.shutdown_behavior.clone(),
                    purge_at: None,
                    reboots: 0,
                    vpc_id: Some(vpc_id.clone()),
                    subnet_id: Some(subnet_id),
                    availability_zone: zone,
                    root_device_name: image.root_device_name.clone(),
                    address_pool,
                    password_data: windows_key
                        .as_deref()
                        .map(super::passwords::encrypted_password)
                        .transpose()?,
                    primary_interface,
                    attached_interfaces: Vec::new(),
                    block_devices: Vec::new(),
                    public_ip: None,
                    assign_public_ip: request.associate_public_ip.unwrap_or(map_public),
                };
                let mut instance = instance;
                super::public_addresses::renew(tx, &self.public_ip_pool, &mut instance, now)?;
                self.attach_at_launch(tx, &mut instance, &request.attach_interfaces, now)?;
                self.make_launch_volumes(
                    tx,
                    &mut instance,
                    planned_volumes,
                    &request.volume_tags,
                    now,
                );
                let booked: &mut (u64, u64) = volumes_by_zone
                    .entry(instance.availability_zone.clone())
                    .or_default();
                booked.0 += planned_volumes.len() as u64;
                booked.1 += planned_volumes
                    .iter()
                    .map(|v| u64::from(v.size_gib))
                    .sum::<u64>();
                usage.next_sequence += 1;
                instances::account_change(&mut usage, None, Some(&instance));
                instances::insert(tx, &instance);
                launched.push(instance);
            }
            super::usage::write(tx, account_id, super::usage::Kind::Instances, &usage);
            self.book_launch_volumes(tx, account_id, &volumes_by_zone, limits.storage_gib)?;
            if let Some(token) = &request.client_token {
                let record = ClientTokenRecord {
                    account_id: account_id.to_string(),
                    token: token.clone(),
                    fingerprint: request.fingerprint.clone(),
                    reservation_id: reservation_id.clone(),
                    instance_ids: launched.iter().map(|i| i.id.clone()).collect(),
                    created_at: now,
                    expires_at: None,
                };
                // Read above as absent: the commit requires it still is.
                tx.put(
                    CLIENT_TOKENS,
                    format!("{account_id}/{token}").into_bytes(),
                    &record,
                );
            }
            if let Some((size, max)) = tx.over_commit_limit() {
                tx.discard_writes();
                return Ok(Launched::TooLarge {
                    instances: launched.len() as u32,
                    size,
                    max,
                });
            }
            Ok(Launched::Done(Reservation {
                reservation_id,
                owner_id: account_id.to_string(),
                instances: launched,
            }))
        })
        .await
    }
}
