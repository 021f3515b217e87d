//! The EC2 actions: one enum, one typed request per action, one `match`.
//!
//! `Action::parse` turns the `Action` name and the parameters into a typed
//! request (unknown names are `InvalidAction`, naming the action);
//! `execute` runs it against the compute core and returns an output that
//! knows how to write its XML. Handlers live in one module per family.
//! Unknown parameters are ignored and logged at debug level, as EC2 itself
//! ignores them: euca2ools still sends `AddressingType`, and old scripts
//! carry parameters from older API versions.

pub mod addresses;
pub mod admin;
pub mod agents;
pub mod catalog;
pub mod dhcp_options;
pub mod images;
pub mod instance_details;
pub mod instances;
pub mod internet_gateways;
pub mod ip_permissions;
pub mod keypairs;
pub mod launch_templates;
pub mod nat_gateways;
pub mod network;
pub mod network_acls;
pub mod network_interfaces;
pub mod pagination;
pub mod peering;
pub mod permissions;
pub mod regions;
pub mod route_tables;
pub mod security_groups;
pub mod snapshots;
pub mod subnets;
pub mod tags;
pub mod volumes;
pub mod vpcs;
pub mod zones;

use crate::auth::Principal;
use crate::compute::Compute;
use crate::error::{ApiError, ApiResult};
use crate::protocol::xml::XmlOutput;
use crate::protocol::Params;

/// What a handler may use: the compute core and the caller.
pub struct Context<'a> {
    /// Shared, so that an answer rendered after the handler returns (a
    /// streamed listing) can keep reading through it.
    pub compute: &'a std::sync::Arc<Compute>,
    pub principal: &'a Principal,
    /// Regions this gateway also serves besides the compute core's own and
    /// its configured peers (development mode's regions made on first use).
    pub other_regions: Vec<crate::config::PeerRegion>,
    /// True when a long answer may be streamed (HTTP/1.1's chunked
    /// transfer; an HTTP/1.0 client gets it whole, with its length, so
    /// that a cut answer cannot pass for a complete one).
    pub may_stream: bool,
}

/// Logs parameters the action's parser did not read.
pub(crate) fn log_unknown(action: &str, params: &Params) {
    let unknown = params.unread();
    if !unknown.is_empty() {
        tracing::debug!(action, ?unknown, "ignoring unknown parameters");
    }
}

macro_rules! actions {
    ($( $name:ident => $request:ty, admin = $admin:expr; )*) => {
        /// Every action the gateway implements, with its typed request.
        #[derive(Debug)]
        pub enum Action {
            $( $name($request), )*
        }

        /// Every action name the gateway answers.
        pub const ACTION_NAMES: &[&str] = &[$( stringify!($name), )*];

        impl Action {
            /// Parses the typed request of action `name`. Admin-only actions
            /// are refused to non-admins before their parameters are read.
            pub fn parse(name: &str, params: &Params, principal: &Principal) -> ApiResult<Self> {
                match name {
                    $( stringify!($name) => {
                        if $admin && !principal.admin {
                            return Err(ApiError::UnauthorizedOperation);
                        }
                        // A compute agent's key calls the agent actions
                        // and nothing else; no other key calls those.
                        if stringify!($name).starts_with("Agent") != principal.agent_host.is_some() {
                            return Err(ApiError::UnauthorizedOperation);
                        }
                        let request = <$request>::from_params(params)?;
                        log_unknown(name, params);
                        Ok(Action::$name(request))
                    } )*
                    "" => Err(ApiError::MissingAction),
                    other => match UNSUPPORTED_ACTIONS.iter().find(|(name, _)| *name == other) {
                        Some((_, why)) => Err(ApiError::UnsupportedOperation(format!(
                            "{other} is not supported by this gateway: {why}"
                        ))),
                        None => Err(ApiError::InvalidAction(other.to_string())),
                    },
                }
            }

            /// The action's wire name.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Action::$name(_) => stringify!($name), )*
                }
            }

            /// Runs the action.
            pub async fn execute(self, context: &Context<'_>) -> ApiResult<Box<dyn XmlOutput>> {
                match self {
                    $( Action::$name(request) => Ok(Box::new(request.execute(context).await?)), )*
                }
            }
        }
    };
}

actions! {
    DescribeAvailabilityZones => zones::DescribeAvailabilityZones, admin = false;
    DescribeRegions => regions::DescribeRegions, admin = false;
    DescribeAccountAttributes => network::DescribeAccountAttributes, admin = false;
    DescribeVpcs => network::DescribeVpcs, admin = false;
    CreateVpc => vpcs::CreateVpc, admin = false;
    CreateDefaultVpc => vpcs::CreateDefaultVpc, admin = false;
    DeleteVpc => vpcs::DeleteVpc, admin = false;
    DescribeVpcAttribute => vpcs::DescribeVpcAttribute, admin = false;
    ModifyVpcAttribute => vpcs::ModifyVpcAttribute, admin = false;
    AssociateVpcCidrBlock => vpcs::AssociateVpcCidrBlock, admin = false;
    DisassociateVpcCidrBlock => vpcs::DisassociateVpcCidrBlock, admin = false;
    DescribeSubnets => subnets::DescribeSubnets, admin = false;
    CreateSubnet => subnets::CreateSubnet, admin = false;
    DeleteSubnet => subnets::DeleteSubnet, admin = false;
    ModifySubnetAttribute => subnets::ModifySubnetAttribute, admin = false;
    CreateInternetGateway => internet_gateways::CreateInternetGateway, admin = false;
    AttachInternetGateway => internet_gateways::AttachInternetGateway, admin = false;
    DetachInternetGateway => internet_gateways::DetachInternetGateway, admin = false;
    DeleteInternetGateway => internet_gateways::DeleteInternetGateway, admin = false;
    DescribeInternetGateways => internet_gateways::DescribeInternetGateways, admin = false;
    CreateNetworkInterface => network_interfaces::CreateNetworkInterface, admin = false;
    DeleteNetworkInterface => network_interfaces::DeleteNetworkInterface, admin = false;
    DescribeNetworkInterfaces => network_interfaces::DescribeNetworkInterfaces, admin = false;
    AttachNetworkInterface => network_interfaces::AttachNetworkInterface, admin = false;
    DetachNetworkInterface => network_interfaces::DetachNetworkInterface, admin = false;
    ModifyNetworkInterfaceAttribute => network_interfaces::ModifyNetworkInterfaceAttribute, admin = false;
    ResetNetworkInterfaceAttribute => network_interfaces::ResetNetworkInterfaceAttribute, admin = false;
    DescribeNetworkInterfaceAttribute => network_interfaces::DescribeNetworkInterfaceAttribute, admin = false;
    AssignPrivateIpAddresses => network_interfaces::AssignPrivateIpAddresses, admin = false;
    UnassignPrivateIpAddresses => network_interfaces::UnassignPrivateIpAddresses, admin = false;
    CreateRouteTable => route_tables::CreateRouteTable, admin = false;
    DeleteRouteTable => route_tables::DeleteRouteTable, admin = false;
    DescribeRouteTables => route_tables::DescribeRouteTables, admin = false;
    CreateRoute => route_tables::CreateRoute, admin = false;
    ReplaceRoute => route_tables::ReplaceRoute, admin = false;
    DeleteRoute => route_tables::DeleteRoute, admin = false;
    AssociateRouteTable => route_tables::AssociateRouteTable, admin = false;
    DisassociateRouteTable => route_tables::DisassociateRouteTable, admin = false;
    ReplaceRouteTableAssociation => route_tables::ReplaceRouteTableAssociation, admin = false;
    CreateNatGateway => nat_gateways::CreateNatGateway, admin = false;
    DeleteNatGateway => nat_gateways::DeleteNatGateway, admin = false;
    DescribeNatGateways => nat_gateways::DescribeNatGateways, admin = false;
    CreateNetworkAcl => network_acls::CreateNetworkAcl, admin = false;
    DeleteNetworkAcl => network_acls::DeleteNetworkAcl, admin = false;
    DescribeNetworkAcls => network_acls::DescribeNetworkAcls, admin = false;
    CreateNetworkAclEntry => network_acls::CreateNetworkAclEntry, admin = false;
    ReplaceNetworkAclEntry => network_acls::ReplaceNetworkAclEntry, admin = false;
    DeleteNetworkAclEntry => network_acls::DeleteNetworkAclEntry, admin = false;
    ReplaceNetworkAclAssociation => network_acls::ReplaceNetworkAclAssociation, admin = false;
    CreateDhcpOptions => dhcp_options::CreateDhcpOptions, admin = false;
    DeleteDhcpOptions => dhcp_options::DeleteDhcpOptions, admin = false;
    AssociateDhcpOptions => dhcp_options::AssociateDhcpOptions, admin = false;
    DescribeDhcpOptions => dhcp_options::DescribeDhcpOptions, admin = false;
    CreateVpcPeeringConnection => peering::CreateVpcPeeringConnection, admin = false;
    AcceptVpcPeeringConnection => peering::AcceptVpcPeeringConnection, admin = false;
    RejectVpcPeeringConnection => peering::RejectVpcPeeringConnection, admin = false;
    DeleteVpcPeeringConnection => peering::DeleteVpcPeeringConnection, admin = false;
    DescribeVpcPeeringConnections => peering::DescribeVpcPeeringConnections, admin = false;
    CreateLaunchTemplate => launch_templates::CreateLaunchTemplate, admin = false;
    CreateLaunchTemplateVersion => launch_templates::CreateLaunchTemplateVersion, admin = false;
    ModifyLaunchTemplate => launch_templates::ModifyLaunchTemplate, admin = false;
    DeleteLaunchTemplate => launch_templates::DeleteLaunchTemplate, admin = false;
    DeleteLaunchTemplateVersions => launch_templates::DeleteLaunchTemplateVersions, admin = false;
    DescribeLaunchTemplates => launch_templates::DescribeLaunchTemplates, admin = false;
    DescribeLaunchTemplateVersions => launch_templates::DescribeLaunchTemplateVersions, admin = false;
    DescribeInstanceTypes => catalog::DescribeInstanceTypes, admin = false;
    DescribeImages => images::DescribeImages, admin = false;
    RegisterImage => images::RegisterImage, admin = false;
    DeregisterImage => images::DeregisterImage, admin = false;
    DescribeImageAttribute => images::DescribeImageAttribute, admin = false;
    ModifyImageAttribute => images::ModifyImageAttribute, admin = false;
    ResetImageAttribute => images::ResetImageAttribute, admin = false;
    CreateImage => images::CreateImage, admin = false;
    CopyImage => images::CopyImage, admin = false;
    CreateKeyPair => keypairs::CreateKeyPair, admin = false;
    ImportKeyPair => keypairs::ImportKeyPair, admin = false;
    DescribeKeyPairs => keypairs::DescribeKeyPairs, admin = false;
    DeleteKeyPair => keypairs::DeleteKeyPair, admin = false;
    CreateSecurityGroup => security_groups::CreateSecurityGroup, admin = false;
    DeleteSecurityGroup => security_groups::DeleteSecurityGroup, admin = false;
    DescribeSecurityGroups => security_groups::DescribeSecurityGroups, admin = false;
    DescribeSecurityGroupRules => security_groups::DescribeSecurityGroupRules, admin = false;
    AuthorizeSecurityGroupIngress => security_groups::AuthorizeSecurityGroupIngress, admin = false;
    AuthorizeSecurityGroupEgress => security_groups::AuthorizeSecurityGroupEgress, admin = false;
    RevokeSecurityGroupIngress => security_groups::RevokeSecurityGroupIngress, admin = false;
    RevokeSecurityGroupEgress => security_groups::RevokeSecurityGroupEgress, admin = false;
    CreateTags => tags::CreateTags, admin = false;
    DeleteTags => tags::DeleteTags, admin = false;
    DescribeTags => tags::DescribeTags, admin = false;
    AllocateAddress => addresses::AllocateAddress, admin = false;
    DescribeAddresses => addresses::DescribeAddresses, admin = false;
    AssociateAddress => addresses::AssociateAddress, admin = false;
    DisassociateAddress => addresses::DisassociateAddress, admin = false;
    ReleaseAddress => addresses::ReleaseAddress, admin = false;
    CreateVolume => volumes::CreateVolume, admin = false;
    DescribeVolumes => volumes::DescribeVolumes, admin = false;
    DescribeVolumeStatus => volumes::DescribeVolumeStatus, admin = false;
    DeleteVolume => volumes::DeleteVolume, admin = false;
    AttachVolume => volumes::AttachVolume, admin = false;
    DetachVolume => volumes::DetachVolume, admin = false;
    ModifyVolume => volumes::ModifyVolume, admin = false;
    CreateSnapshot => snapshots::CreateSnapshot, admin = false;
    DescribeSnapshots => snapshots::DescribeSnapshots, admin = false;
    DeleteSnapshot => snapshots::DeleteSnapshot, admin = false;
    CopySnapshot => snapshots::CopySnapshot, admin = false;
    ModifySnapshotAttribute => snapshots::ModifySnapshotAttribute, admin = false;
    DescribeSnapshotAttribute => snapshots::DescribeSnapshotAttribute, admin = false;
    ResetSnapshotAttribute => snapshots::ResetSnapshotAttribute, admin = false;
    RunInstances => instances::RunInstances, admin = false;
    DescribeInstances => instances::DescribeInstances, admin = false;
    StartInstances => instances::StartInstances, admin = false;
    StopInstances => instances::StopInstances, admin = false;
    RebootInstances => instances::RebootInstances, admin = false;
    TerminateInstances => instances::TerminateInstances, admin = false;
    DescribeInstanceStatus => instance_details::DescribeInstanceStatus, admin = false;
    GetConsoleOutput => instance_details::GetConsoleOutput, admin = false;
    GetPasswordData => instance_details::GetPasswordData, admin = false;
    DescribeInstanceAttribute => instance_details::DescribeInstanceAttribute, admin = false;
    ModifyInstanceAttribute => instance_details::ModifyInstanceAttribute, admin = false;
    AdminDescribeHosts => admin::AdminDescribeHosts, admin = true;
    AdminAddHost => admin::AdminAddHost, admin = true;
    AdminRemoveHost => admin::AdminRemoveHost, admin = true;
    AdminEnableHost => admin::AdminEnableHost, admin = true;
    AdminDisableHost => admin::AdminDisableHost, admin = true;
    AdminHostHeartbeat => admin::AdminHostHeartbeat, admin = true;
    AdminCreateAccessKey => admin::AdminCreateAccessKey, admin = true;
    AdminDescribeAccessKeys => admin::AdminDescribeAccessKeys, admin = true;
    AdminDeactivateAccessKey => admin::AdminDeactivateAccessKey, admin = true;
    AdminCreateAgentKey => agents::AdminCreateAgentKey, admin = true;
    AdminExportBackup => admin::AdminExportBackup, admin = true;
    AgentRegister => agents::AgentRegister, admin = false;
    AgentHeartbeat => agents::AgentHeartbeat, admin = false;
    AgentDescribeInstances => agents::AgentDescribeInstances, admin = false;
    AgentReportInstanceState => agents::AgentReportInstanceState, admin = false;
    AgentDescribeLaunch => agents::AgentDescribeLaunch, admin = false;
    AgentDescribeFirewall => agents::AgentDescribeFirewall, admin = false;
    AgentPutConsoleOutput => agents::AgentPutConsoleOutput, admin = false;
    AgentDescribeKeptInstances => agents::AgentDescribeKeptInstances, admin = false;
}

/// EC2 actions deliberately not offered, with the reason given to clients.
pub const UNSUPPORTED_ACTIONS: &[(&str, &str)] = &[];

/// Digest of every parameter of a request except ClientToken and DryRun:
/// what "the same parameters" means for idempotent retries.
pub(crate) fn request_fingerprint(params: &Params) -> String {
    let mut pairs: Vec<&(String, String)> = params
        .pairs()
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "Action" | "Version" | "ClientToken" | "DryRun"))
        .collect();
    pairs.sort();
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (name, value) in pairs {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// Answers `DryRunOperation` when the request asked for a dry run; call it
/// after every check and before acting.
pub fn dry_run_check(dry_run: bool) -> ApiResult<()> {
    if dry_run {
        Err(ApiError::DryRunOperation)
    } else {
        Ok(())
    }
}
