//! DescribeInstanceStatus, GetConsoleOutput, GetPasswordData,
//! DescribeInstanceAttribute, ModifyInstanceAttribute.
//!
//! Status checks: a running instance reports `ok` with reachability
//! `passed` for both the system and the instance; other states report
//! `not-applicable`. Without `IncludeAllInstances` only running instances
//! are listed, as in EC2. The console output is a boot log of the simulated
//! host, built from the instance's own facts (host, zone, address, image),
//! available once the instance has booted, base64-encoded with its
//! `timestamp`. Attributes: instanceType and userData (changeable while
//! stopped), disableApiTermination and instanceInitiatedShutdownBehavior.

use super::pagination::{check_max_results, Paging};
use super::{dry_run_check, Context};
use crate::compute::instance_attributes::AttributeChange;
use crate::compute::instances::{Instance, InstanceState};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::{check_names, matches_all};
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

const STATUS_FILTERS: &[&str] = &[
    "availability-zone",
    "instance-state-name",
    "instance-state-code",
    "instance-status.status",
    "instance-status.reachability",
    "system-status.status",
    "system-status.reachability",
];

/// `ok` for running instances, `impaired` for running instances whose
/// host stopped heartbeating (its agent died), `not-applicable` otherwise.
fn status_of(instance: &Instance, impaired: bool) -> &'static str {
    match instance.state {
        InstanceState::Running if impaired => "impaired",
        InstanceState::Running => "ok",
        _ => "not-applicable",
    }
}

/// The hosts whose last heartbeat is older than the liveness window.
async fn dead_hosts(context: &Context<'_>) -> ApiResult<std::collections::HashSet<String>> {
    let services = context.compute.services();
    let now = context.compute.clock().now();
    Ok(services
        .hosts()
        .await?
        .into_iter()
        .filter(|host| !host.is_alive(now, services.liveness_window()))
        .map(|host| host.host)
        .collect())
}

#[derive(Debug)]
pub struct DescribeInstanceStatus {
    pub instance_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub include_all_instances: bool,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeInstanceStatus {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            instance_ids: params.list("InstanceId")?,
            filters: params.filters()?,
            include_all_instances: params.boolean("IncludeAllInstances")?.unwrap_or(false),
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        if request.max_results.is_some() && !request.instance_ids.is_empty() {
            return Err(ApiError::InvalidParameterCombination(
                "The parameter instancesSet cannot be used with the parameter maxResults".into(),
            ));
        }
        check_names(&request.filters, STATUS_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<StatusList> {
        let compute = context.compute;
        let account = &context.principal.account_id;
        let paging = Paging::start(
            context,
            "DescribeInstanceStatus",
            &self.filters,
            &[self.include_all_instances.to_string()],
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
        let instances = compute
            .instances(account, &self.instance_ids, after)
            .await?;
        dry_run_check(self.dry_run)?;
        let dead = dead_hosts(context).await?;
        let impaired = |i: &Instance| i.host.as_ref().is_some_and(|h| dead.contains(h));
        let matching = instances
            .into_iter()
            .filter(|i| self.include_all_instances || i.state == InstanceState::Running)
            .filter(|i| {
                matches_all(&self.filters, |name| match name {
                    "availability-zone" => vec![i.availability_zone.clone()],
                    "instance-state-name" => vec![i.state.name().to_string()],
                    "instance-state-code" => vec![i.state.code().to_string()],
                    "instance-status.status" | "system-status.status" => {
                        vec![status_of(i, impaired(i)).to_string()]
                    }
                    _ => {
                        if i.state == InstanceState::Running {
                            vec![if impaired(i) { "failed" } else { "passed" }.to_string()]
                        } else {
                            Vec::new()
                        }
                    }
                })
            });
        let (page, next_token) = paging.cut(matching, |instance| instance.sequence.to_string());
        let impaired = page
            .iter()
            .filter(|i| impaired(i))
            .map(|i| i.id.clone())
            .collect();
        Ok(StatusList {
            instances: page,
            impaired,
            next_token,
        })
    }
}

#[derive(Debug)]
pub struct StatusList {
    instances: Vec<Instance>,
    /// Instances on hosts that stopped heartbeating.
    impaired: std::collections::HashSet<String>,
    next_token: Option<String>,
}

fn write_summary(xml: &mut XmlWriter, name: &str, instance: &Instance, impaired: bool) {
    xml.nested(name, |xml| {
        xml.element("status", status_of(instance, impaired));
        let details: &[&str] = match instance.state {
            InstanceState::Running if impaired => &["failed"],
            InstanceState::Running => &["passed"],
            _ => &[],
        };
        xml.list("details", details, |xml, status| {
            xml.element("name", "reachability");
            xml.element("status", status);
        });
    });
}

impl XmlOutput for StatusList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("instanceStatusSet", &self.instances, |xml, instance| {
            xml.element("instanceId", &instance.id);
            xml.element("availabilityZone", &instance.availability_zone);
            xml.list("eventsSet", &[] as &[String], |_, _| {});
            xml.nested("instanceState", |xml| {
                xml.number("code", instance.state.code());
                xml.element("name", instance.state.name());
            });
            let impaired = self.impaired.contains(&instance.id);
            write_summary(xml, "systemStatus", instance, impaired);
            write_summary(xml, "instanceStatus", instance, impaired);
        });
        xml.optional("nextToken", self.next_token.as_deref());
    }
}

/// A single required, well-formed instance id.
fn one_instance_id(params: &Params) -> ApiResult<String> {
    let id = params.required("InstanceId")?;
    crate::compute::kinds::ResourceKind::Instance.check(&id)?;
    Ok(id)
}

async fn lookup(context: &Context<'_>, id: &str) -> ApiResult<Instance> {
    Ok(context
        .compute
        .instances(&context.principal.account_id, &[id.to_string()], None)
        .await?
        .remove(0))
}

#[derive(Debug)]
pub struct GetConsoleOutput {
    pub instance_id: String,
    pub dry_run: bool,
}

impl GetConsoleOutput {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            instance_id: one_instance_id(params)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ConsoleOutput> {
        let instance = lookup(context, &self.instance_id).await?;
        dry_run_check(self.dry_run)?;
        // What a real instance wrote, as its agent sent it; otherwise the
        // simulated host's boot log once the instance has booted.
        let recorded = context
            .compute
            .console_output(&context.principal.account_id, &instance.id)
            .await?;
        let booted = !matches!(instance.state, InstanceState::Pending);
        Ok(ConsoleOutput {
            instance_id: instance.id.clone(),
            timestamp: context.compute.clock().now(),
            output: recorded.or_else(|| {
                booted.then(|| STANDARD.encode(boot_log(&instance, &context.compute.region().name)))
            }),
        })
    }
}

#[derive(Debug)]
pub struct GetPasswordData {
    pub instance_id: String,
    pub dry_run: bool,
}

impl GetPasswordData {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            instance_id: one_instance_id(params)?,
            dry_run: params.dry_run()?,
        })
    }

    /// The encrypted password once the instance has booted (empty before,
    /// and for an instance that has none: not Windows, or no key pair), as
    /// EC2 answers.
    pub async fn execute(self, context: &Context<'_>) -> ApiResult<PasswordData> {
        let instance = lookup(context, &self.instance_id).await?;
        dry_run_check(self.dry_run)?;
        let booted = !matches!(instance.state, InstanceState::Pending);
        Ok(PasswordData {
            instance_id: instance.id.clone(),
            timestamp: context.compute.clock().now(),
            data: instance
                .password_data
                .filter(|_| booted)
                .unwrap_or_default(),
        })
    }
}

#[derive(Debug)]
pub struct PasswordData {
    instance_id: String,
    timestamp: chrono::DateTime<chrono::Utc>,
    data: String,
}

impl XmlOutput for PasswordData {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("instanceId", &self.instance_id);
        xml.timestamp("timestamp", self.timestamp);
        xml.element("passwordData", &self.data);
    }
}

/// A boot log as the simulated host's serial console would show it.
fn boot_log(instance: &Instance, region: &str) -> String {
    let hostname = format!("ip-{}", instance.private_ip.replace('.', "-"));
    let host = instance.host.as_deref().unwrap_or("(host released)");
    let launched = instance.launch_time.format("%a, %d %b %Y %H:%M:%S +0000");
    let lines = [
        format!("[    0.000000] Linux version 6.1.0-27-cloud-{} (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC", if instance.architecture == "arm64" { "arm64" } else { "amd64" }),
        "[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-27-cloud root=/dev/xvda1 ro console=tty0 console=ttyS0,115200".to_string(),
        "[    0.000000] Hypervisor detected: Xen HVM".to_string(),
        format!("[    0.000000] DMI: ec2-gateway {} {}, BIOS 4.11 {}", instance.instance_type, instance.id, instance.launch_time.format("%m/%d/%Y")),
        format!("[    0.004000] Memory: {}K available", instance.memory_mib * 1024),
        format!("[    0.012000] smpboot: Allowing {} CPUs", instance.vcpus),
        format!("[    0.900000] ec2-gateway: compute host {host}, availability zone {}, region {region}", instance.availability_zone),
        "[    1.204000] EXT4-fs (xvda1): mounted filesystem with ordered data mode.".to_string(),
        format!("[    2.310000] cloud-init[412]: Cloud-init v. 22.4.2 running 'init' at {launched}. Up 2.31 seconds."),
        format!("[    2.402000] cloud-init[412]: ci-info: | eth0 | True | {} | 255.255.240.0 | global |", instance.private_ip),
        format!("[    2.515000] cloud-init[412]: Set hostname to <{hostname}>, image {}", instance.image_id),
        format!("[    3.020000] cloud-init[641]: Cloud-init v. 22.4.2 finished at {launched}. Datasource DataSourceEc2Local. Up 3.02 seconds"),
        String::new(),
        format!("Debian GNU/Linux 12 {hostname} ttyS0"),
        String::new(),
        format!("{hostname} login: "),
    ];
    lines.join("\r\n")
}

#[derive(Debug)]
pub struct ConsoleOutput {
    instance_id: String,
    timestamp: chrono::DateTime<chrono::Utc>,
    output: Option<String>,
}

impl XmlOutput for ConsoleOutput {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("instanceId", &self.instance_id);
        xml.timestamp("timestamp", self.timestamp);
        xml.optional("output", self.output.as_deref());
    }
}

/// Instance attributes DescribeInstanceAttribute answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceAttributeName {
    InstanceType,
    UserData,
    DisableApiTermination,
    InstanceInitiatedShutdownBehavior,
    RootDeviceName,
    GroupSet,
    BlockDeviceMapping,
    SourceDestCheck,
}

impl InstanceAttributeName {
    fn parse(value: &str) -> ApiResult<Self> {
        Ok(match value {
            "instanceType" => Self::InstanceType,
            "userData" => Self::UserData,
            "disableApiTermination" => Self::DisableApiTermination,
            "instanceInitiatedShutdownBehavior" => Self::InstanceInitiatedShutdownBehavior,
            "rootDeviceName" => Self::RootDeviceName,
            "groupSet" => Self::GroupSet,
            "blockDeviceMapping" => Self::BlockDeviceMapping,
            "sourceDestCheck" => Self::SourceDestCheck,
            other => {
                return Err(ApiError::invalid_value(format!(
                    "Value ({other}) for parameter attribute is invalid. Supported here: instanceType, userData, disableApiTermination, instanceInitiatedShutdownBehavior, rootDeviceName, groupSet, blockDeviceMapping, sourceDestCheck."
                )))
            }
        })
    }
}

#[derive(Debug)]
pub struct DescribeInstanceAttribute {
    pub instance_id: String,
    pub attribute: InstanceAttributeName,
    pub dry_run: bool,
}

impl DescribeInstanceAttribute {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            instance_id: one_instance_id(params)?,
            attribute: InstanceAttributeName::parse(&params.required("Attribute")?)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<AttributeOutput> {
        let instance = lookup(context, &self.instance_id).await?;
        dry_run_check(self.dry_run)?;
        Ok(AttributeOutput {
            instance,
            attribute: self.attribute,
            now: context.compute.clock().now(),
        })
    }
}

#[derive(Debug)]
pub struct AttributeOutput {
    instance: Instance,
    attribute: InstanceAttributeName,
    now: chrono::DateTime<chrono::Utc>,
}

impl XmlOutput for AttributeOutput {
    fn write_xml(&self, xml: &mut XmlWriter) {
        let instance = &self.instance;
        xml.element("instanceId", &instance.id);
        let value = |xml: &mut XmlWriter, name: &str, text: &str| {
            xml.nested(name, |xml| xml.element("value", text))
        };
        match self.attribute {
            InstanceAttributeName::InstanceType => {
                value(xml, "instanceType", &instance.instance_type)
            }
            InstanceAttributeName::UserData => match &instance.user_data {
                Some(data) => value(xml, "userData", data),
                None => xml.nested("userData", |_| {}),
            },
            InstanceAttributeName::DisableApiTermination => xml
                .nested("disableApiTermination", |xml| {
                    xml.boolean("value", instance.disable_api_termination)
                }),
            InstanceAttributeName::InstanceInitiatedShutdownBehavior => value(
                xml,
                "instanceInitiatedShutdownBehavior",
                &instance.shutdown_behavior,
            ),
            InstanceAttributeName::RootDeviceName => {
                value(xml, "rootDeviceName", instance.root_device())
            }
            InstanceAttributeName::GroupSet => {
                xml.list("groupSet", &instance.security_groups, |xml, group| {
                    xml.element("groupId", &group.id);
                    xml.element("groupName", &group.name);
                })
            }
            InstanceAttributeName::BlockDeviceMapping => {
                let now = self.now;
                let volumes: Vec<_> = instance
                    .block_devices
                    .iter()
                    .filter(|v| v.is_live(now))
                    .collect();
                xml.list("blockDeviceMapping", &volumes, |xml, volume| {
                    xml.element("deviceName", &volume.device);
                    xml.nested("ebs", |xml| {
                        xml.timestamp("attachTime", volume.attach_time);
                        xml.boolean("deleteOnTermination", volume.delete_on_termination);
                        xml.element("status", volume.status(now));
                        xml.element("volumeId", &volume.volume_id);
                    });
                })
            }
            InstanceAttributeName::SourceDestCheck => xml.nested("sourceDestCheck", |xml| {
                xml.boolean(
                    "value",
                    instance
                        .primary_interface
                        .as_ref()
                        .is_none_or(|p| p.source_dest_check),
                )
            }),
        }
    }
}

#[derive(Debug)]
pub struct ModifyInstanceAttribute {
    pub instance_id: String,
    pub change: AttributeChange,
    pub dry_run: bool,
}

impl ModifyInstanceAttribute {
    /// Either `Attribute` + `Value`, one `<Attribute>.Value` parameter,
    /// `GroupId.N`, or `BlockDeviceMapping.N` (`DeleteOnTermination`).
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let instance_id = one_instance_id(params)?;
        let groups = params.list("GroupId")?;
        let mappings = params.structures("BlockDeviceMapping")?;
        let others = params.get("Attribute").is_some()
            || params
                .pairs()
                .iter()
                .any(|(name, _)| name.ends_with(".Value"));
        if [!groups.is_empty(), !mappings.is_empty(), others]
            .iter()
            .filter(|given| **given)
            .count()
            > 1
        {
            return Err(ApiError::InvalidParameterCombination(
                "Only one attribute can be modified in one request".into(),
            ));
        }
        if !groups.is_empty() {
            for id in &groups {
                crate::compute::kinds::ResourceKind::SecurityGroup.check(id)?;
            }
            return Ok(Self {
                instance_id,
                change: AttributeChange::Groups(groups),
                dry_run: params.dry_run()?,
            });
        }
        if !mappings.is_empty() {
            let mut devices = Vec::new();
            for mapping in &mappings {
                let device = mapping.required("DeviceName")?;
                let delete = mapping.boolean("Ebs.DeleteOnTermination")?.ok_or_else(|| {
                    ApiError::MissingParameter(
                        "BlockDeviceMapping.N.Ebs.DeleteOnTermination".into(),
                    )
                })?;
                if mapping.get("NoDevice").is_some() || mapping.get("VirtualName").is_some() {
                    return Err(ApiError::UnsupportedOperation(
                        "Only DeleteOnTermination of an attached volume can be changed".into(),
                    ));
                }
                devices.push((device, delete));
            }
            return Ok(Self {
                instance_id,
                change: AttributeChange::DeleteOnTermination(devices),
                dry_run: params.dry_run()?,
            });
        }
        let (attribute, value) = match (params.optional("Attribute"), params.get("Value")) {
            (Some(attribute), Some(value)) => (attribute, value.to_string()),
            (Some(attribute), None) => {
                return Err(ApiError::MissingParameter(format!(
                    "Value (for attribute {attribute})"
                )))
            }
            _ => {
                let found = [
                    ("InstanceType.Value", "instanceType"),
                    ("UserData.Value", "userData"),
                    ("DisableApiTermination.Value", "disableApiTermination"),
                    ("SourceDestCheck.Value", "sourceDestCheck"),
                    (
                        "InstanceInitiatedShutdownBehavior.Value",
                        "instanceInitiatedShutdownBehavior",
                    ),
                ]
                .into_iter()
                .filter_map(|(parameter, attribute)| {
                    params
                        .get(parameter)
                        .map(|v| (attribute.to_string(), v.to_string()))
                })
                .collect::<Vec<_>>();
                match found.as_slice() {
                    [one] => one.clone(),
                    [] => return Err(ApiError::MissingParameter("Attribute".into())),
                    _ => {
                        return Err(ApiError::InvalidParameterCombination(
                            "Only one attribute can be modified in one request".into(),
                        ))
                    }
                }
            }
        };
        let change = match attribute.as_str() {
            "instanceType" => AttributeChange::InstanceType(value),
            "userData" => {
                let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
                STANDARD.decode(&compact).map_err(|_| {
                    ApiError::invalid_value("Invalid BASE64 encoding of user data.")
                })?;
                AttributeChange::UserData(compact)
            }
            "disableApiTermination" => {
                AttributeChange::DisableApiTermination(match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::invalid_value(format!(
                            "Invalid boolean '{value}' for disableApiTermination"
                        )))
                    }
                })
            }
            "sourceDestCheck" => {
                AttributeChange::SourceDestCheck(match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::invalid_value(format!(
                            "Invalid boolean '{value}' for sourceDestCheck"
                        )))
                    }
                })
            }
            "instanceInitiatedShutdownBehavior"
                if matches!(value.as_str(), "stop" | "terminate") =>
            {
                AttributeChange::ShutdownBehavior(value)
            }
            "instanceInitiatedShutdownBehavior" => {
                return Err(ApiError::invalid_value(format!(
                    "Invalid shutdown behavior '{value}': stop or terminate"
                )))
            }
            other => {
                return Err(ApiError::invalid_value(format!(
                    "The attribute '{other}' cannot be modified here"
                )))
            }
        };
        Ok(Self {
            instance_id,
            change,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .modify_instance(
                &context.principal.account_id,
                &self.instance_id,
                self.change,
                self.dry_run,
            )
            .await?;
        Ok(ReturnTrue)
    }
}
