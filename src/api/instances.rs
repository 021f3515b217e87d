//! RunInstances, DescribeInstances, Start/Stop/Reboot/TerminateInstances.
//!
//! The wire side of `compute::instances`: parameter parsing with EC2's
//! validation and error codes, DescribeInstances filters (with wildcards,
//! `tag:<key>`, `tag-key`, `tag-value`) and pagination, and the XML of
//! reservations and state changes with the element names of the EC2 model
//! (`instanceState`, `reason`, `groupSet`, `tagSet`, ...).

use super::pagination::{check_max_results, Paging};
use super::tags::{check_filter_names, tag_filter_values, write_tags};
use super::{dry_run_check, Context};
use crate::compute::instance_index::{Listed, Rendered};
use crate::compute::instances::{
    Instance, InstanceState, LaunchRequest, Reservation, StateAction, StateChange,
};
use crate::compute::launch_templates::{TemplateRef, VersionRef};
use crate::compute::network_interfaces::{primary_interface_id, primary_of, NetworkInterface};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::matches_all;
use crate::protocol::stream::{StreamFailed, StreamWriter, XmlStream};
use crate::protocol::xml::{XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::collections::HashMap;
use std::sync::Arc;

/// Largest UserData accepted, decoded (EC2's limit).
const MAX_USER_DATA_BYTES: usize = 16 * 1024;
/// The instance type EC2 launches when none is named.
const DEFAULT_INSTANCE_TYPE: &str = "t2.micro";

/// Base64 user data, whitespace tolerated, kept without the whitespace.
fn user_data(params: &Params) -> ApiResult<Option<String>> {
    let Some(raw) = params.optional("UserData") else {
        return Ok(None);
    };
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let decoded = STANDARD
        .decode(&compact)
        .map_err(|_| ApiError::invalid_value("Invalid BASE64 encoding of user data."))?;
    if decoded.len() > MAX_USER_DATA_BYTES {
        return Err(ApiError::invalid_value(format!(
            "User data is limited to {MAX_USER_DATA_BYTES} bytes"
        )));
    }
    Ok(Some(compact))
}

/// A required count parameter.
fn count(params: &Params, name: &str) -> ApiResult<u32> {
    let value: u32 = params
        .number(name)?
        .ok_or_else(|| ApiError::MissingParameter(name.into()))?;
    if value == 0 {
        return Err(ApiError::invalid_value(format!(
            "Value ({value}) for parameter {name} is invalid. Expected a positive integer."
        )));
    }
    Ok(value)
}

#[derive(Debug)]
pub struct RunInstances {
    /// MaxCount (for the launch throttle, before the launch is resolved).
    pub max_count: u32,
    pub launch: Launch,
}

/// What RunInstances launches.
#[derive(Debug)]
pub enum Launch {
    /// Everything given in the request.
    Given(Box<LaunchRequest>),
    /// From a launch template: the request's parameters, completed member
    /// by member from the template's version when the request runs.
    FromTemplate {
        template: TemplateRef,
        version: VersionRef,
        /// The request's parameters, `LaunchTemplate.*` apart.
        given: Vec<(String, String)>,
        /// The digest of the request as sent (what a ClientToken retry
        /// must repeat).
        fingerprint: String,
    },
}

/// The request's parameters completed from a template version's data: a
/// member the request gives is the request's, as in EC2.
fn completed(
    given: &[(String, String)],
    data: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, String)> {
    use crate::compute::launch_templates::member_of;
    let members: std::collections::HashSet<&str> =
        given.iter().map(|(name, _)| member_of(name)).collect();
    let mut merged = given.to_vec();
    merged.extend(
        data.iter()
            .filter(|(name, _)| !members.contains(member_of(name)))
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    merged
}

/// What a launch's `NetworkInterface.N` entries ask for: the primary
/// interface (device index 0: its subnet, groups, addresses and
/// description) and created interfaces to attach at other device indexes.
/// `AssociatePublicIpAddress` asks for a public address or none, whatever
/// the subnet's MapPublicIpOnLaunch says; an existing interface as the
/// primary one, and new interfaces at other indexes, are
/// `UnsupportedOperation`.
#[derive(Debug, Default)]
struct LaunchInterfaces {
    subnet_id: Option<String>,
    group_ids: Vec<String>,
    private_ip: Option<String>,
    description: String,
    secondary_count: u32,
    attach: Vec<crate::compute::instances::LaunchInterface>,
    associate_public_ip: Option<bool>,
}

fn launch_interfaces(params: &Params) -> ApiResult<Option<LaunchInterfaces>> {
    const PREFIX: &str = "NetworkInterface.";
    let mut entries: std::collections::BTreeMap<u32, Vec<(String, String)>> =
        std::collections::BTreeMap::new();
    for (name, value) in params.pairs() {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let (index, field) = rest.split_once('.').ok_or_else(|| {
            ApiError::invalid_value(format!("The parameter {name} is not recognized"))
        })?;
        let index: u32 = index.parse().map_err(|_| {
            ApiError::invalid_value(format!("The parameter {name} is not recognized"))
        })?;
        entries
            .entry(index)
            .or_default()
            .push((field.to_string(), value.clone()));
    }
    if entries.is_empty() {
        return Ok(None);
    }
    params.mark_read("NetworkInterface");
    let mut wanted = LaunchInterfaces::default();
    let mut devices = std::collections::HashSet::new();
    for fields in entries.values() {
        let field = |name: &str| {
            fields
                .iter()
                .find(|(f, _)| f == name)
                .map(|(_, v)| v.clone())
        };
        let device_index = match field("DeviceIndex") {
            Some(text) => text.parse::<u32>().map_err(|_| {
                ApiError::invalid_value(format!(
                    "Value ({text}) for parameter DeviceIndex is invalid"
                ))
            })?,
            None if entries.len() == 1 => 0,
            None => {
                return Err(ApiError::MissingParameter(
                    "NetworkInterface.N.DeviceIndex".into(),
                ))
            }
        };
        if !devices.insert(device_index) {
            return Err(ApiError::invalid_value(format!(
                "Each network interface needs its own device index ({device_index} is given twice)"
            )));
        }
        if let Some(id) = field("NetworkInterfaceId") {
            crate::compute::kinds::ResourceKind::NetworkInterface.check(&id)?;
            if device_index == 0 {
                return Err(ApiError::UnsupportedOperation(
                    "An existing network interface cannot be the primary interface (device index 0) here: attach it at device index 1 or more".into(),
                ));
            }
            if let Some((other, _)) = fields.iter().find(|(f, _)| {
                !matches!(
                    f.as_str(),
                    "NetworkInterfaceId" | "DeviceIndex" | "DeleteOnTermination"
                )
            }) {
                return Err(ApiError::InvalidParameterCombination(format!(
                    "NetworkInterface.N.{other} cannot be given with an existing NetworkInterfaceId"
                )));
            }
            let delete_on_termination = match field("DeleteOnTermination").as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(ApiError::invalid_value(format!(
                        "Value ({other}) for parameter DeleteOnTermination is invalid"
                    )))
                }
            };
            wanted
                .attach
                .push(crate::compute::instances::LaunchInterface {
                    id,
                    device_index,
                    delete_on_termination,
                });
            continue;
        }
        if device_index != 0 {
            return Err(ApiError::UnsupportedOperation(
                "New network interfaces are made at device index 0 only: create one with CreateNetworkInterface and give its NetworkInterfaceId".into(),
            ));
        }
        for (name, value) in fields {
            match name.as_str() {
                "DeviceIndex" => {}
                "AssociatePublicIpAddress" => {
                    wanted.associate_public_ip = Some(match value.as_str() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(ApiError::invalid_value(format!(
                                "Value ({other}) for parameter AssociatePublicIpAddress is invalid"
                            )))
                        }
                    })
                }
                "DeleteOnTermination" if value != "false" => {}
                "DeleteOnTermination" => {
                    return Err(ApiError::UnsupportedOperation(
                        "The primary network interface is always deleted with its instance here".into(),
                    ))
                }
                "SubnetId" => wanted.subnet_id = Some(value.clone()),
                "PrivateIpAddress" => wanted.private_ip = Some(value.clone()),
                "Description" => wanted.description = value.clone(),
                "SecondaryPrivateIpAddressCount" => {
                    wanted.secondary_count = value.parse().map_err(|_| {
                        ApiError::invalid_value(format!(
                            "Value ({value}) for parameter SecondaryPrivateIpAddressCount is invalid"
                        ))
                    })?
                }
                group if group.starts_with("SecurityGroupId.") => {
                    wanted.group_ids.push(value.clone())
                }
                other => {
                    return Err(ApiError::UnsupportedOperation(format!(
                        "NetworkInterface.N.{other} is not offered: give DeviceIndex, SubnetId, SecurityGroupId.N, PrivateIpAddress, SecondaryPrivateIpAddressCount, Description or NetworkInterfaceId"
                    )))
                }
            }
        }
    }
    if wanted.associate_public_ip.is_some() && entries.len() > 1 {
        return Err(ApiError::InvalidParameterCombination(
            "The associatePublicIPAddress parameter cannot be specified when launching with multiple network interfaces.".into(),
        ));
    }
    Ok(Some(wanted))
}

impl RunInstances {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let has_template = params
            .pairs()
            .iter()
            .any(|(name, _)| name.starts_with("LaunchTemplate."));
        if !has_template {
            let request = Self::request(params)?;
            return Ok(Self {
                max_count: request.max_count,
                launch: Launch::Given(Box::new(request)),
            });
        }
        let template = super::launch_templates::template_ref(params, "LaunchTemplate.")?;
        let version = params
            .optional("LaunchTemplate.Version")
            .map(|v| VersionRef::parse(&v))
            .transpose()?
            .unwrap_or(VersionRef::Default);
        let max_count = count(params, "MaxCount")?;
        count(params, "MinCount")?;
        let given: Vec<(String, String)> = params
            .pairs()
            .iter()
            .filter(|(name, _)| !name.starts_with("LaunchTemplate."))
            .cloned()
            .collect();
        // Read when the launch is resolved.
        for (name, _) in params.pairs() {
            params.mark_read(crate::compute::launch_templates::member_of(name));
        }
        Ok(Self {
            max_count,
            launch: Launch::FromTemplate {
                template,
                version,
                given,
                fingerprint: super::request_fingerprint(params),
            },
        })
    }

    /// The launch the parameters describe.
    fn request(params: &Params) -> ApiResult<LaunchRequest> {
        let interfaces = launch_interfaces(params)?.unwrap_or_default();
        let mut subnet_id = params.optional("SubnetId");
        let mut group_ids = params.list("SecurityGroupId")?;
        let mut private_ip = params.optional("PrivateIpAddress");
        if interfaces.subnet_id.is_some() && subnet_id.is_some() {
            return Err(ApiError::InvalidParameterCombination(
                "Network interfaces and an instance-level subnet ID may not be specified on the same request".into(),
            ));
        }
        if !interfaces.group_ids.is_empty()
            && (!group_ids.is_empty() || params.get("SecurityGroup.1").is_some())
        {
            return Err(ApiError::InvalidParameterCombination(
                "Network interfaces and an instance-level security groups may not be specified on the same request".into(),
            ));
        }
        if interfaces.private_ip.is_some() && private_ip.is_some() {
            return Err(ApiError::InvalidParameterCombination(
                "Network interfaces and an instance-level private IP address may not be specified on the same request".into(),
            ));
        }
        let mut tags = super::tags::tag_specifications_by_type(params, &["instance", "volume"])?;
        subnet_id = subnet_id.or(interfaces.subnet_id);
        group_ids.extend(interfaces.group_ids);
        private_ip = private_ip.or(interfaces.private_ip);
        let image_id = params.required("ImageId")?;
        crate::compute::kinds::ResourceKind::Image.check(&image_id)?;
        let min_count = count(params, "MinCount")?;
        let max_count = count(params, "MaxCount")?;
        if max_count < min_count {
            return Err(ApiError::invalid_value(format!(
                "MaxCount ({max_count}) must be greater than or equal to MinCount ({min_count})"
            )));
        }
        let client_token = params.optional("ClientToken");
        if let Some(token) = &client_token {
            if token.len() > 64 || !token.is_ascii() {
                return Err(ApiError::invalid_value(
                    "ClientToken must be at most 64 ASCII characters",
                ));
            }
        }
        let shutdown_behavior = params
            .optional("InstanceInitiatedShutdownBehavior")
            .unwrap_or_else(|| "stop".into());
        if !matches!(shutdown_behavior.as_str(), "stop" | "terminate") {
            return Err(ApiError::invalid_value(format!(
                "Value ({shutdown_behavior}) for parameter InstanceInitiatedShutdownBehavior is invalid. Expected stop or terminate."
            )));
        }
        Ok(LaunchRequest {
            image_id,
            instance_type: params
                .optional("InstanceType")
                .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.into()),
            min_count,
            max_count,
            availability_zone: params.optional("Placement.AvailabilityZone"),
            key_name: params.optional("KeyName"),
            security_group_names: params.list("SecurityGroup")?,
            security_group_ids: group_ids,
            user_data: user_data(params)?,
            tags: tags.remove("instance").unwrap_or_default(),
            volume_tags: tags.remove("volume").unwrap_or_default(),
            client_token,
            disable_api_termination: params.boolean("DisableApiTermination")?.unwrap_or(false),
            shutdown_behavior,
            dry_run: params.dry_run()?,
            fingerprint: super::request_fingerprint(params),
            subnet_id,
            private_ip,
            secondary_private_ip_count: interfaces.secondary_count,
            interface_description: interfaces.description,
            attach_interfaces: interfaces.attach,
            block_devices: super::images::block_devices(params)?,
            associate_public_ip: interfaces.associate_public_ip,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReservationOutput> {
        let account_id = &context.principal.account_id;
        let request = match self.launch {
            Launch::Given(request) => *request,
            Launch::FromTemplate {
                template,
                version,
                given,
                fingerprint,
            } => {
                // A retry is answered from its token, even if the template
                // changed or went since.
                let given_params = Params::new(given.clone());
                if let Some(token) = given_params.optional("ClientToken") {
                    let earlier = context
                        .compute
                        .earlier_launch(account_id, &token, &fingerprint, given_params.dry_run()?)
                        .await?;
                    if let Some(reservation) = earlier {
                        return Ok(ReservationOutput(
                            reservation,
                            Surroundings::of(context).await?,
                        ));
                    }
                }
                let version = context
                    .compute
                    .launch_template_version(account_id, &template, version)
                    .await?;
                let merged = Params::new(completed(&given, &version.data));
                LaunchRequest {
                    fingerprint,
                    ..Self::request(&merged)?
                }
            }
        };
        let reservation = context.compute.run_instances(account_id, request).await?;
        Ok(ReservationOutput(
            reservation,
            Surroundings::of(context).await?,
        ))
    }
}

/// Writes `<instanceState>`-style `{code, name}` elements.
fn write_state(xml: &mut XmlWriter, name: &str, state: InstanceState) {
    xml.nested(name, |xml| {
        xml.number("code", state.code());
        xml.element("name", state.name());
    });
}

/// What other resources say about an account's instances: their Elastic
/// IPs and attached network interfaces.
#[derive(Debug, Default)]
pub struct Surroundings {
    public: super::network_interfaces::PublicAddresses,
    interfaces: HashMap<String, Vec<NetworkInterface>>,
    region: String,
    now: chrono::DateTime<chrono::Utc>,
}

impl Surroundings {
    /// Looks up the account's addresses and interfaces once per request
    /// (read again only when the store changed: `Compute::around_instances`).
    pub async fn of(context: &Context<'_>) -> ApiResult<Self> {
        let account = &context.principal.account_id;
        let region = context.compute.region().name.clone();
        let around = context.compute.around_instances(account).await?;
        let public = super::network_interfaces::PublicAddresses::of(&around.addresses, &region);
        let mut interfaces: HashMap<String, Vec<NetworkInterface>> = HashMap::new();
        for interface in &around.interfaces {
            if let Some(attachment) = &interface.attachment {
                interfaces
                    .entry(attachment.instance_id.clone())
                    .or_default()
                    .push(interface.clone());
            }
        }
        for attached in interfaces.values_mut() {
            attached.sort_by_key(|i| i.attachment.as_ref().map(|a| a.device_index));
        }
        Ok(Self {
            public,
            interfaces,
            region,
            now: context.compute.clock().now(),
        })
    }

    /// The Elastic IP on its primary address, else its own public address.
    fn public_ip<'a>(&'a self, instance: &'a Instance) -> Option<&'a String> {
        let elastic = || {
            self.public
                .on(&primary_interface_id(&instance.id), &instance.private_ip)
        };
        (!self.public.is_empty())
            .then(elastic)
            .flatten()
            .map(|a| &a.public_ip)
            .or(instance.public_ip.as_ref())
    }

    fn public_dns_name(&self, instance: &Instance) -> Option<String> {
        self.public_ip(instance)
            .map(|ip| crate::compute::addresses::public_dns_name(ip, &self.region))
    }

    /// Its volumes as its record lists them, those still attached.
    fn volumes<'a>(
        &self,
        instance: &'a Instance,
    ) -> impl Iterator<Item = &'a crate::compute::volumes::AttachedVolume> {
        let now = self.now;
        instance
            .block_devices
            .iter()
            .filter(move |v| v.is_live(now))
    }

    /// True when its item depends on the instance's own records alone
    /// (and the region): no Elastic IP on its primary interface, no other
    /// interface attached, no volume whose status still changes with
    /// time. Only such an item is kept rendered ([`write_instance_item`]).
    fn renders_alone(&self, instance: &Instance) -> bool {
        // Most accounts have neither: then nothing is looked up (a listing
        // asks this of every instance).
        let attached = !self.interfaces.is_empty() && self.interfaces.contains_key(&instance.id);
        let elastic = !self.public.is_empty()
            && self
                .public
                .on_interface(&primary_interface_id(&instance.id));
        !attached
            && !elastic
            && instance
                .block_devices
                .iter()
                .all(|v| v.detached_at.is_none() && v.attached_at <= self.now)
    }

    /// Its interfaces: the primary, then those attached, by device index.
    /// (None once it is terminated: its interfaces went with it.)
    fn interfaces(&self, instance: &Instance) -> Vec<NetworkInterface> {
        if instance.state == InstanceState::Terminated {
            return Vec::new();
        }
        let mut all = vec![primary_of(instance)];
        all.extend(
            self.interfaces
                .get(&instance.id)
                .into_iter()
                .flatten()
                .cloned(),
        );
        all
    }
}

/// One `instancesSet` item.
fn write_instance(xml: &mut XmlWriter, instance: &Instance, around: &Surroundings) {
    xml.element("instanceId", &instance.id);
    xml.element("imageId", &instance.image_id);
    write_state(xml, "instanceState", instance.state);
    // A terminated instance no longer holds its private address (as in EC2).
    let holds_address = instance.state != InstanceState::Terminated;
    if holds_address {
        xml.element("privateDnsName", &instance.private_dns_name);
    }
    xml.optional("dnsName", around.public_dns_name(instance).as_deref());
    xml.optional("reason", instance.reason.as_deref());
    xml.optional("keyName", instance.key_name.as_deref());
    xml.number("amiLaunchIndex", instance.ami_launch_index);
    xml.list("productCodes", &[] as &[String], |_, _| {});
    xml.element("instanceType", &instance.instance_type);
    xml.timestamp("launchTime", instance.launch_time);
    xml.nested("placement", |xml| {
        xml.element("availabilityZone", &instance.availability_zone);
        xml.element("tenancy", "default");
    });
    if instance.platform == "windows" {
        xml.element("platform", "windows");
    }
    xml.nested("monitoring", |xml| xml.element("state", "disabled"));
    xml.optional("subnetId", instance.subnet_id.as_deref());
    xml.optional("vpcId", instance.vpc_id.as_deref());
    if holds_address {
        xml.element("privateIpAddress", &instance.private_ip);
    }
    xml.optional("ipAddress", around.public_ip(instance).map(String::as_str));
    xml.list("groupSet", &instance.security_groups, |xml, group| {
        xml.element("groupId", &group.id);
        xml.element("groupName", &group.name);
    });
    if let Some(reason) = &instance.state_reason {
        xml.nested("stateReason", |xml| {
            xml.element("code", &reason.code);
            xml.element("message", &reason.message);
        });
    }
    xml.element("architecture", &instance.architecture);
    xml.element("rootDeviceType", "ebs");
    xml.element("rootDeviceName", instance.root_device());
    let volumes: Vec<_> = around.volumes(instance).collect();
    xml.list("blockDeviceMapping", &volumes, |xml, volume| {
        xml.element("deviceName", &volume.device);
        xml.nested("ebs", |xml| {
            xml.element("volumeId", &volume.volume_id);
            xml.element("status", volume.status(around.now));
            xml.timestamp("attachTime", volume.attach_time);
            xml.boolean("deleteOnTermination", volume.delete_on_termination);
        });
    });
    xml.element("virtualizationType", "hvm");
    if holds_address {
        xml.list(
            "networkInterfaceSet",
            &around.interfaces(instance),
            |xml, interface| {
                super::network_interfaces::write_interface(xml, interface, &around.public, false)
            },
        );
        xml.boolean(
            "sourceDestCheck",
            instance
                .primary_interface
                .as_ref()
                .is_none_or(|p| p.source_dest_check),
        );
    }
    xml.optional("clientToken", instance.client_token.as_deref());
    write_tags(xml, &instance.tags);
    xml.element("hypervisor", "xen");
    xml.boolean("ebsOptimized", false);
    xml.element(
        "platformDetails",
        if instance.platform == "windows" {
            "Windows"
        } else {
            "Linux/UNIX"
        },
    );
}

/// The largest rendered item kept with an indexed instance (a typical
/// one is about 2.6 KiB; one with many long tags is rendered each time).
const MAX_KEPT_ITEM_BYTES: usize = 8 * 1024;

/// One DescribeInstances `instancesSet` item (`<item>` included): the
/// bytes kept with the listed instance when they fit here and its item
/// depends on nothing else ([`Surroundings::renders_alone`]), else
/// rendered now (and kept when it may be).
fn write_instance_item(xml: &mut XmlWriter, listed: &Listed, around: &Surroundings) {
    let render = |xml: &mut XmlWriter| {
        xml.nested("item", |xml| {
            listed.with_instance(|instance| write_instance(xml, instance, around))
        })
    };
    if !listed.keeps_rendering() || !around.renders_alone(listed.spec()) {
        return render(xml);
    }
    let layout = xml.layout();
    match listed.rendered.get() {
        Some(kept) if kept.layout == layout => xml.raw_fragment(&kept.bytes),
        Some(_) => render(xml),
        None => {
            let bytes = xml.fragment(INSTANCE_XML_BYTES, render);
            xml.raw_fragment(&bytes);
            if bytes.len() <= MAX_KEPT_ITEM_BYTES {
                // Copied into a block of its size: shrinking the buffer in
                // place could keep the whole of a grown one.
                let _ = listed.rendered.set(Rendered {
                    layout,
                    bytes: Box::from(bytes.as_slice()),
                });
            }
        }
    }
}

fn write_reservation(xml: &mut XmlWriter, reservation: &Reservation, around: &Surroundings) {
    xml.element("reservationId", &reservation.reservation_id);
    xml.element("ownerId", &reservation.owner_id);
    xml.list("groupSet", &[] as &[String], |_, _| {});
    xml.list("instancesSet", &reservation.instances, |xml, instance| {
        write_instance(xml, instance, around)
    });
}

/// RunInstances answers the reservation itself under the root (a retried
/// launch's instances may have addresses or volumes by then).
#[derive(Debug)]
pub struct ReservationOutput(pub Reservation, pub Surroundings);

impl XmlOutput for ReservationOutput {
    fn write_xml(&self, xml: &mut XmlWriter) {
        write_reservation(xml, &self.0, &self.1);
    }
}

/// The filters DescribeInstances supports (plus `tag:<key>`).
const INSTANCE_FILTERS: &[&str] = &[
    "instance-id",
    "instance-state-name",
    "instance-state-code",
    "instance-type",
    "image-id",
    "key-name",
    "availability-zone",
    "placement.availability-zone",
    "reservation-id",
    "client-token",
    "private-ip-address",
    "network-interface.addresses.private-ip-address",
    "network-interface.network-interface-id",
    "network-interface.subnet-id",
    "network-interface.attachment.attachment-id",
    "source-dest-check",
    "private-dns-name",
    "launch-time",
    "owner-id",
    "architecture",
    "root-device-type",
    "root-device-name",
    "virtualization-type",
    "hypervisor",
    "platform",
    "tag-key",
    "tag-value",
    "instance.group-id",
    "instance.group-name",
    "group-id",
    "group-name",
    "ami-launch-index",
    "reason",
    "state-reason-code",
    "state-reason-message",
    "tenancy",
    "vpc-id",
    "subnet-id",
    "ip-address",
    "dns-name",
    "block-device-mapping.volume-id",
    "block-device-mapping.device-name",
    "block-device-mapping.status",
    "block-device-mapping.delete-on-termination",
    "block-device-mapping.attach-time",
];

fn instance_filter_values(instance: &Instance, filter: &str, around: &Surroundings) -> Vec<String> {
    if let Some(values) = tag_filter_values(&instance.tags, filter) {
        return values;
    }
    let one = |value: &str| vec![value.to_string()];
    // A terminated instance no longer holds its addresses (as in EC2).
    let address = |value: &str| {
        if instance.state == InstanceState::Terminated {
            Vec::new()
        } else {
            one(value)
        }
    };
    match filter {
        "instance-id" => one(&instance.id),
        "instance-state-name" => one(instance.state.name()),
        "instance-state-code" => one(&instance.state.code().to_string()),
        "instance-type" => one(&instance.instance_type),
        "image-id" => one(&instance.image_id),
        "key-name" => instance.key_name.iter().cloned().collect(),
        "availability-zone" | "placement.availability-zone" => one(&instance.availability_zone),
        "reservation-id" => one(&instance.reservation_id),
        "client-token" => instance.client_token.iter().cloned().collect(),
        "private-ip-address" => address(&instance.private_ip),
        "network-interface.addresses.private-ip-address" => around
            .interfaces(instance)
            .iter()
            .flat_map(|i| i.private_addresses().cloned().collect::<Vec<_>>())
            .collect(),
        "network-interface.network-interface-id" => around
            .interfaces(instance)
            .iter()
            .map(|i| i.id.clone())
            .collect(),
        "network-interface.subnet-id" => around
            .interfaces(instance)
            .iter()
            .map(|i| i.subnet_id.clone())
            .collect(),
        "network-interface.attachment.attachment-id" => around
            .interfaces(instance)
            .iter()
            .filter_map(|i| i.attachment.as_ref().map(|a| a.attachment_id.clone()))
            .collect(),
        "source-dest-check" => one(&instance
            .primary_interface
            .as_ref()
            .is_none_or(|p| p.source_dest_check)
            .to_string()),
        "private-dns-name" => address(&instance.private_dns_name),
        "launch-time" => one(&crate::clock::format_timestamp(instance.launch_time)),
        "owner-id" => one(&instance.account_id),
        "architecture" => one(&instance.architecture),
        "root-device-type" => one("ebs"),
        "root-device-name" => one(instance.root_device()),
        "virtualization-type" => one("hvm"),
        "hypervisor" => one("xen"),
        "platform" => {
            if instance.platform == "windows" {
                one("windows")
            } else {
                Vec::new()
            }
        }
        "instance.group-id" | "group-id" => instance
            .security_groups
            .iter()
            .map(|g| g.id.clone())
            .collect(),
        "instance.group-name" | "group-name" => instance
            .security_groups
            .iter()
            .map(|g| g.name.clone())
            .collect(),
        "ami-launch-index" => one(&instance.ami_launch_index.to_string()),
        "reason" => instance.reason.iter().cloned().collect(),
        "state-reason-code" => instance
            .state_reason
            .iter()
            .map(|r| r.code.clone())
            .collect(),
        "state-reason-message" => instance
            .state_reason
            .iter()
            .map(|r| r.message.clone())
            .collect(),
        "tenancy" => one("default"),
        "ip-address" => around.public_ip(instance).cloned().into_iter().collect(),
        "dns-name" => around.public_dns_name(instance).into_iter().collect(),
        "block-device-mapping.volume-id" => around
            .volumes(instance)
            .map(|v| v.volume_id.clone())
            .collect(),
        "block-device-mapping.status" => around
            .volumes(instance)
            .map(|v| v.status(around.now).to_string())
            .collect(),
        "block-device-mapping.delete-on-termination" => around
            .volumes(instance)
            .map(|v| v.delete_on_termination.to_string())
            .collect(),
        "block-device-mapping.attach-time" => around
            .volumes(instance)
            .map(|v| crate::clock::format_timestamp(v.attach_time))
            .collect(),
        "block-device-mapping.device-name" => {
            around.volumes(instance).map(|v| v.device.clone()).collect()
        }
        "vpc-id" => instance.vpc_id.iter().cloned().collect(),
        "subnet-id" => instance.subnet_id.iter().cloned().collect(),
        _ => Vec::new(),
    }
}

#[derive(Debug)]
pub struct DescribeInstances {
    pub instance_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeInstances {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            instance_ids: params.list("InstanceId")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        if request.max_results.is_some() && !request.instance_ids.is_empty() {
            return Err(ApiError::InvalidParameterCombination(
                "The parameter instancesSet cannot be used with the parameter maxResults".into(),
            ));
        }
        check_filter_names(&request.filters, INSTANCE_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<InstanceListing> {
        let compute = context.compute;
        let account = &context.principal.account_id;
        let paging = Paging::start(
            context,
            "DescribeInstances",
            &self.filters,
            &self.instance_ids,
            self.max_results,
            self.next_token.as_deref(),
        )?;
        let after = paging
            .after
            .as_deref()
            .map(|position| {
                position
                    .parse::<u64>()
                    .map_err(|_| ApiError::InvalidNextToken)
            })
            .transpose()?;
        // Named instances must all exist; otherwise walk only as far as the page needs.
        let named = if self.instance_ids.is_empty() {
            None
        } else {
            Some(
                compute
                    .listed_instances(account, &self.instance_ids)
                    .await?,
            )
        };
        dry_run_check(self.dry_run)?;
        let around = Surroundings::of(context).await?;
        let keep = |i: &Instance| {
            matches_all(&self.filters, |name| {
                instance_filter_values(i, name, &around)
            })
        };
        // A listing of everything is streamed once it is longer than a
        // page: the first page is read here (what fails, fails as an EC2
        // error), the rest while the client reads.
        let everything = named.is_none() && paging.limit().is_none() && context.may_stream;
        let (page, more) = match named {
            Some(mut named) => {
                if !self.filters.is_empty() {
                    named.retain(|listed| listed.with_instance(|i| keep(i)));
                }
                (named, false)
            }
            None => {
                let limit = paging.limit().or(everything.then_some(STREAM_PAGE));
                let filter: Option<&(dyn Fn(&Instance) -> bool + Sync)> =
                    (!self.filters.is_empty()).then_some(&keep);
                compute
                    .instance_page(account, (after, limit), filter, everything)
                    .await?
            }
        };
        if everything && more {
            let horizon = compute.launch_horizon(account).await?;
            return Ok(InstanceListing {
                reservations: Vec::new(),
                next_token: None,
                stream: Some(stream_listing(
                    compute.clone(),
                    account.clone(),
                    self.filters,
                    around,
                    page,
                    horizon,
                )),
                around: None,
            });
        }
        let next_token =
            paging.next_token(page.last().map(|i| i.spec().sequence.to_string()), more);
        // Group consecutive instances of one reservation.
        let mut reservations: Vec<ListedReservation> = Vec::new();
        for listed in page {
            match reservations.last_mut() {
                Some(last) if last.reservation_id() == listed.spec().reservation_id => {
                    last.instances.push(listed)
                }
                _ => reservations.push(ListedReservation {
                    instances: vec![listed],
                }),
            }
        }
        Ok(InstanceListing {
            reservations,
            next_token,
            stream: None,
            around: Some(around),
        })
    }
}

/// Consecutive listed instances of one reservation (never empty).
#[derive(Debug)]
struct ListedReservation {
    instances: Vec<Arc<Listed>>,
}

impl ListedReservation {
    fn reservation_id(&self) -> &str {
        &self.instances[0].spec().reservation_id
    }
}

/// A reservation's item in a listing: its instances' items as
/// [`write_instance_item`] writes them.
fn write_listed_reservation(
    xml: &mut XmlWriter,
    reservation: &ListedReservation,
    around: &Surroundings,
) {
    let first = reservation.instances[0].spec();
    xml.element("reservationId", &first.reservation_id);
    xml.element("ownerId", &first.account_id);
    xml.list("groupSet", &[] as &[String], |_, _| {});
    xml.nested("instancesSet", |xml| {
        for listed in &reservation.instances {
            write_instance_item(xml, listed, around);
        }
    });
}

/// Instances read, and rendered, per piece of a streamed listing.
const STREAM_PAGE: usize = 256;

/// The rest of a listing of all the account's instances, after `first`
/// (a full page), rendered page by page into the answer as the client
/// reads it (`protocol::stream`). Consecutive instances of one
/// reservation share its item, across pages as within one, so the bytes
/// are those of the whole rendering. It ends at `horizon`, the launch
/// sequence reached when the listing began: instances launched while a
/// slow client reads are not added to it (they would be rendered with
/// surroundings read before them, and could keep it growing).
fn stream_listing(
    compute: std::sync::Arc<crate::compute::Compute>,
    account: String,
    filters: Vec<Filter>,
    around: Surroundings,
    first: Vec<Arc<Listed>>,
    horizon: Option<u64>,
) -> XmlStream {
    XmlStream::new(move |mut writer: StreamWriter| async move {
        let keep =
            |i: &Instance| matches_all(&filters, |name| instance_filter_values(i, name, &around));
        let filter: Option<&(dyn Fn(&Instance) -> bool + Sync)> =
            (!filters.is_empty()).then_some(&keep);
        let mut open_reservation: Option<String> = None;
        writer.xml().open("reservationSet");
        let mut page = first;
        let mut more = true;
        loop {
            let last = page.last().map(|i| i.spec().sequence);
            let before_horizon = |i: &&Arc<Listed>| horizon.is_none_or(|h| i.spec().sequence < h);
            let reached_horizon = page.iter().any(|i| !before_horizon(&i));
            for listed in page.iter().filter(before_horizon) {
                let instance = listed.spec();
                let xml = writer.xml();
                if open_reservation.as_deref() != Some(instance.reservation_id.as_str()) {
                    if open_reservation.is_some() {
                        xml.close("instancesSet");
                        xml.close("item");
                    }
                    xml.open("item");
                    xml.element("reservationId", &instance.reservation_id);
                    xml.element("ownerId", &instance.account_id);
                    xml.list("groupSet", &[] as &[String], |_, _| {});
                    xml.open("instancesSet");
                    open_reservation = Some(instance.reservation_id.clone());
                }
                write_instance_item(xml, listed, &around);
                writer.flush_if_full().await?;
            }
            let Some(last) = last.filter(|_| more && !reached_horizon) else {
                break;
            };
            (page, more) = writer
                .read(compute.instance_page(
                    &account,
                    (Some(last), Some(STREAM_PAGE)),
                    filter,
                    false,
                ))
                .await?
                .map_err(|e| StreamFailed(e.to_string()))?;
        }
        let xml = writer.xml();
        if open_reservation.is_some() {
            xml.close("instancesSet");
            xml.close("item");
        }
        xml.close("reservationSet");
        Ok(writer)
    })
}

#[derive(Debug)]
pub struct InstanceListing {
    reservations: Vec<ListedReservation>,
    next_token: Option<String>,
    /// A listing too long to render whole, rendered while it is read.
    stream: Option<XmlStream>,
    around: Option<Surroundings>,
}

/// Bytes one instance item takes, rounded up.
const INSTANCE_XML_BYTES: usize = 2600;

impl XmlOutput for InstanceListing {
    fn size_hint(&self) -> usize {
        1024 + INSTANCE_XML_BYTES
            * self
                .reservations
                .iter()
                .map(|r| r.instances.len())
                .sum::<usize>()
    }

    fn write_xml(&self, xml: &mut XmlWriter) {
        if let Some(around) = &self.around {
            xml.list("reservationSet", &self.reservations, |xml, reservation| {
                write_listed_reservation(xml, reservation, around)
            });
        }
        xml.optional("nextToken", self.next_token.as_deref());
    }

    fn take_stream(&mut self) -> Option<XmlStream> {
        self.stream.take()
    }
}

/// The ids of a state-changing action, required and well-formed.
fn instance_ids(params: &Params) -> ApiResult<Vec<String>> {
    let ids = params.list("InstanceId")?;
    if ids.is_empty() {
        return Err(ApiError::MissingParameter("InstanceId".into()));
    }
    for id in &ids {
        crate::compute::kinds::ResourceKind::Instance.check(id)?;
    }
    Ok(ids)
}

macro_rules! state_action {
    ($name:ident, $action:expr, $doc:literal, [$($extra:literal),*]) => {
        #[doc = $doc]
        #[derive(Debug)]
        pub struct $name {
            pub instance_ids: Vec<String>,
            pub dry_run: bool,
        }

        impl $name {
            pub fn from_params(params: &Params) -> ApiResult<Self> {
                Ok(Self {
                    instance_ids: instance_ids(params)?,
                    dry_run: params.dry_run()?,
                })
            }

            pub async fn execute(self, context: &Context<'_>) -> ApiResult<StateChanges> {
                let changes = context
                    .compute
                    .change_state(
                        &context.principal.account_id,
                        &self.instance_ids,
                        $action,
                        self.dry_run,
                    )
                    .await?;
                Ok(StateChanges(changes))
            }
        }
    };
}

state_action!(
    StartInstances,
    StateAction::Start,
    "StartInstances: stopped -> pending -> running, placed again in its zone.",
    ["AdditionalInfo"]
);
state_action!(
    StopInstances,
    StateAction::Stop,
    "StopInstances: -> stopping -> stopped; `Force` and `Hibernate` are accepted.",
    ["Force", "Hibernate"]
);
state_action!(
    TerminateInstances,
    StateAction::Terminate,
    "TerminateInstances: -> shutting-down -> terminated; twice is fine.",
    []
);

/// The answer of Start/Stop/TerminateInstances.
#[derive(Debug)]
pub struct StateChanges(pub Vec<StateChange>);

impl XmlOutput for StateChanges {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("instancesSet", &self.0, |xml, change| {
            xml.element("instanceId", &change.instance_id);
            write_state(xml, "currentState", change.current);
            write_state(xml, "previousState", change.previous);
        });
    }
}

/// RebootInstances: running instances only; the state does not change.
#[derive(Debug)]
pub struct RebootInstances {
    pub instance_ids: Vec<String>,
    pub dry_run: bool,
}

impl RebootInstances {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            instance_ids: instance_ids(params)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(
        self,
        context: &Context<'_>,
    ) -> ApiResult<crate::protocol::xml::ReturnTrue> {
        context
            .compute
            .change_state(
                &context.principal.account_id,
                &self.instance_ids,
                StateAction::Reboot,
                self.dry_run,
            )
            .await?;
        Ok(crate::protocol::xml::ReturnTrue)
    }
}
