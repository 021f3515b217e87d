//! The compute agents' actions (not part of EC2): what `ec2-gateway agent`
//! calls, signed with its own key, on the same query protocol as EC2
//! clients (see `compute::agents` for what they do).
//!
//! An agent's key names one host: every action here acts for that host
//! and no other (the host is never a parameter), and an agent's key can
//! call nothing else (`api::Action::parse`). Admins create agent keys with
//! `AdminCreateAgentKey`. Output shapes are in `schemas/gateway-admin.json`.

use super::admin::{CreatedKey, HostView};
use super::Context;
use crate::compute::agent_facts::{FirewallFacts, LaunchFacts};
use crate::compute::agents::Observed;
use crate::compute::instances::Instance;
use crate::compute::security_groups::{Rule, RulePeer};
use crate::compute::services::{AgentInfo, NewHost};
use crate::error::{ApiError, ApiResult};
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::Params;

/// The host the calling agent acts for.
fn agent_host<'a>(context: &'a Context<'_>) -> ApiResult<&'a str> {
    context
        .principal
        .agent_host
        .as_deref()
        .ok_or(ApiError::UnauthorizedOperation)
}

/// A number parameter that must be there.
fn required_number<T: std::str::FromStr>(params: &Params, name: &str) -> ApiResult<T> {
    params
        .number(name)?
        .ok_or_else(|| ApiError::MissingParameter(name.into()))
}

/// AdminCreateAgentKey: a key for the agent of host `HostName`, in the
/// calling admin's account.
#[derive(Debug)]
pub struct AdminCreateAgentKey {
    pub host_name: String,
}

impl AdminCreateAgentKey {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            host_name: params.required("HostName")?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedKey> {
        context
            .compute
            .services()
            .admit_agent(&self.host_name)
            .await?;
        let key = context
            .compute
            .accounts()
            .create_agent_key(
                &context.principal.account_id,
                &self.host_name,
                context.compute.clock().now(),
            )
            .await?;
        Ok(CreatedKey::new(key, false))
    }
}

/// AgentRegister: the agent's host, with its zone, capacity, address and
/// version.
#[derive(Debug)]
pub struct AgentRegister {
    pub availability_zone: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub address: String,
    pub version: String,
}

impl AgentRegister {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            availability_zone: params.required("AvailabilityZone")?,
            vcpus: required_number(params, "Vcpus")?,
            memory_mib: required_number(params, "MemoryMib")?,
            address: params.optional_text("Address", 255)?.unwrap_or_default(),
            version: params
                .optional_text("AgentVersion", 64)?
                .unwrap_or_default(),
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<RegisteredHost> {
        let host = agent_host(context)?;
        let compute = context.compute;
        let zone_is_new = !compute
            .services()
            .zones(compute.clock().now())
            .await?
            .iter()
            .any(|z| z.name == self.availability_zone);
        let record = compute
            .register_agent(
                NewHost {
                    name: host.to_string(),
                    availability_zone: self.availability_zone,
                    vcpus: self.vcpus,
                    memory_mib: self.memory_mib,
                    simulated: false,
                },
                AgentInfo {
                    address: self.address,
                    version: self.version,
                    registered_at: compute.clock().now(),
                },
            )
            .await?;
        // A new zone gives every account a default subnet in it.
        if zone_is_new {
            compute.provision_all_defaults().await?;
        }
        Ok(RegisteredHost(HostView::new(record, context)))
    }
}

#[derive(Debug)]
pub struct RegisteredHost(HostView);

impl XmlOutput for RegisteredHost {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.nested("host", |xml| self.0.write_item(xml));
    }
}

/// AgentHeartbeat: the agent's host is alive.
#[derive(Debug)]
pub struct AgentHeartbeat;

impl AgentHeartbeat {
    pub fn from_params(_: &Params) -> ApiResult<Self> {
        Ok(Self)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        let host = agent_host(context)?;
        context
            .compute
            .services()
            .heartbeat(host, context.compute.clock().now())
            .await?;
        Ok(ReturnTrue)
    }
}

/// AgentDescribeInstances: the instances placed on the agent's host.
#[derive(Debug)]
pub struct AgentDescribeInstances;

impl AgentDescribeInstances {
    pub fn from_params(_: &Params) -> ApiResult<Self> {
        Ok(Self)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<AgentInstances> {
        let host = agent_host(context)?;
        Ok(AgentInstances(context.compute.agent_instances(host).await?))
    }
}

#[derive(Debug)]
pub struct AgentInstances(Vec<Instance>);

impl XmlOutput for AgentInstances {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("instanceSet", &self.0, |xml, instance| {
            xml.element("instanceId", &instance.id);
            xml.element("ownerId", &instance.account_id);
            xml.element("instanceState", instance.state.name());
            xml.element("instanceType", &instance.instance_type);
            xml.element("imageId", &instance.image_id);
            xml.number("vcpus", instance.vcpus);
            xml.number("memoryMib", instance.memory_mib);
            xml.element("privateIpAddress", &instance.private_ip);
            xml.element("availabilityZone", &instance.availability_zone);
            xml.element("privateDnsName", &instance.private_dns_name);
            xml.optional("vpcId", instance.vpc_id.as_deref());
            xml.optional("subnetId", instance.subnet_id.as_deref());
            xml.number("rebootCount", instance.reboots);
        });
    }
}

/// AgentReportInstanceState: what the agent observed of one instance
/// (`running`, `stopped` or `terminated`).
#[derive(Debug)]
pub struct AgentReportInstanceState {
    pub instance_id: String,
    pub owner_id: String,
    pub observed: Observed,
}

impl AgentReportInstanceState {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let state = params.required("State")?;
        Ok(Self {
            instance_id: params.required("InstanceId")?,
            owner_id: params.required("OwnerId")?,
            observed: Observed::parse(&state).ok_or_else(|| {
                ApiError::invalid_value(format!(
                    "Invalid State '{state}': expected running, stopped or terminated"
                ))
            })?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReportedState> {
        let host = agent_host(context)?;
        let state = context
            .compute
            .report_observed(host, &self.owner_id, &self.instance_id, self.observed)
            .await?;
        Ok(ReportedState(state.name()))
    }
}

#[derive(Debug)]
pub struct ReportedState(&'static str);

impl XmlOutput for ReportedState {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("instanceState", self.0);
    }
}

/// AgentDescribeLaunch: what the agent writes into an instance placed on
/// its host before booting it (see `compute::agent_facts`).
#[derive(Debug)]
pub struct AgentDescribeLaunch {
    pub instance_id: String,
    pub owner_id: String,
}

impl AgentDescribeLaunch {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            instance_id: params.required("InstanceId")?,
            owner_id: params.required("OwnerId")?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<LaunchView> {
        let host = agent_host(context)?;
        Ok(LaunchView(
            context
                .compute
                .agent_launch(host, &self.owner_id, &self.instance_id)
                .await?,
        ))
    }
}

#[derive(Debug)]
pub struct LaunchView(LaunchFacts);

impl XmlOutput for LaunchView {
    fn write_xml(&self, xml: &mut XmlWriter) {
        let facts = &self.0;
        let instance = &facts.instance;
        xml.element("instanceId", &instance.id);
        xml.element("ownerId", &instance.account_id);
        xml.element("imageId", &instance.image_id);
        xml.optional("rootFilesystem", facts.root_filesystem.as_deref());
        xml.optional("userData", instance.user_data.as_deref());
        xml.optional("keyName", instance.key_name.as_deref());
        xml.optional("publicKey", facts.public_key.as_deref());
        xml.element("privateIpAddress", &instance.private_ip);
        xml.element("privateDnsName", &instance.private_dns_name);
        xml.optional("vpcId", instance.vpc_id.as_deref());
        xml.optional("subnetId", instance.subnet_id.as_deref());
        xml.optional("subnetCidrBlock", facts.subnet_cidr.as_deref());
        xml.number("vcpus", instance.vcpus);
        xml.number("memoryMib", instance.memory_mib);
    }
}

/// AgentDescribeFirewall: the instances placed on the agent's host, each
/// with its VPC, address and groups, and the rules of those groups, one
/// flat item per rule.
#[derive(Debug)]
pub struct AgentDescribeFirewall;

impl AgentDescribeFirewall {
    pub fn from_params(_: &Params) -> ApiResult<Self> {
        Ok(Self)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<FirewallView> {
        let host = agent_host(context)?;
        Ok(FirewallView(context.compute.agent_firewall(host).await?))
    }
}

#[derive(Debug)]
pub struct FirewallView(FirewallFacts);

/// One rule as a flat item: its group, direction, protocol, ports, peer.
fn write_rule(xml: &mut XmlWriter, group: &str, direction: &str, rule: &Rule) {
    xml.element("groupId", group);
    xml.element("direction", direction);
    xml.element("ipProtocol", &rule.protocol);
    if let Some(port) = rule.from_port {
        xml.number("fromPort", port);
    }
    if let Some(port) = rule.to_port {
        xml.number("toPort", port);
    }
    match &rule.peer {
        RulePeer::Cidr(cidr) => xml.element("cidrIp", cidr),
        RulePeer::CidrV6(cidr) => xml.element("cidrIpv6", cidr),
        RulePeer::Group { group_id, .. } => xml.element("peerGroupId", group_id),
    }
}

impl XmlOutput for FirewallView {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("instanceSet", &self.0.instances, |xml, instance| {
            xml.element("instanceId", &instance.id);
            xml.element("ownerId", &instance.account_id);
            xml.optional("vpcId", instance.vpc_id.as_deref());
            xml.element("privateIpAddress", &instance.private_ip);
            let groups: Vec<&str> = instance
                .security_groups
                .iter()
                .map(|group| group.id.as_str())
                .collect();
            xml.element("groupIds", &groups.join(","));
        });
        let rules: Vec<(&str, &str, &Rule)> = self
            .0
            .groups
            .iter()
            .flat_map(|group| {
                let ingress = group
                    .ingress
                    .iter()
                    .map(|r| (group.id.as_str(), "ingress", r));
                let egress = group
                    .egress
                    .iter()
                    .map(|r| (group.id.as_str(), "egress", r));
                ingress.chain(egress)
            })
            .collect();
        xml.list("ruleSet", &rules, |xml, (group, direction, rule)| {
            write_rule(xml, group, direction, rule)
        });
    }
}

/// AgentPutConsoleOutput: an instance's console output (base64), of
/// which the gateway keeps the last 64 KiB for GetConsoleOutput.
#[derive(Debug)]
pub struct AgentPutConsoleOutput {
    pub instance_id: String,
    pub owner_id: String,
    pub output: Vec<u8>,
}

impl AgentPutConsoleOutput {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        use base64::Engine;
        let text = params
            .optional_text("Output", usize::MAX)?
            .unwrap_or_default();
        let output = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|_| ApiError::invalid_value("Output must be base64"))?;
        Ok(Self {
            instance_id: params.required("InstanceId")?,
            owner_id: params.required("OwnerId")?,
            output,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        let host = agent_host(context)?;
        context
            .compute
            .put_console_output(host, &self.owner_id, &self.instance_id, &self.output)
            .await?;
        Ok(ReturnTrue)
    }
}

/// AgentDescribeKeptInstances: the states of instances whose stopped
/// layers the agent keeps (`Instance.N` = `OWNER/ID`), `terminated` once
/// gone, so it deletes what is no longer needed.
#[derive(Debug)]
pub struct AgentDescribeKeptInstances {
    pub kept: Vec<(String, String)>,
}

impl AgentDescribeKeptInstances {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let kept = params
            .list("Instance")?
            .into_iter()
            .map(|entry| {
                entry
                    .split_once('/')
                    .map(|(owner, id)| (owner.to_string(), id.to_string()))
                    .ok_or_else(|| {
                        ApiError::invalid_value(format!(
                            "Invalid Instance '{entry}': expected OWNER/ID"
                        ))
                    })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        if kept.len() > 1000 {
            return Err(ApiError::invalid_value("At most 1000 instances per call"));
        }
        Ok(Self { kept })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<KeptStates> {
        agent_host(context)?;
        let states = context.compute.agent_kept_states(&self.kept).await?;
        Ok(KeptStates(
            self.kept
                .into_iter()
                .map(|(_, id)| id)
                .zip(states)
                .collect(),
        ))
    }
}

#[derive(Debug)]
pub struct KeptStates(Vec<(String, &'static str)>);

impl XmlOutput for KeptStates {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("instanceSet", &self.0, |xml, (id, state)| {
            xml.element("instanceId", id);
            xml.element("instanceState", state);
        });
    }
}
