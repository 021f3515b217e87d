//! The EC2 resource kinds, declared once: each kind's id prefix, the name
//! DescribeTags reports, and the error codes of a malformed and of an
//! unknown id.
//!
//! EC2 tells a typo (`InvalidInstanceID.Malformed`, 400) from a resource
//! that does not exist (`InvalidInstanceID.NotFound`, 400), with one code
//! per kind that clients match on; call sites name a kind and get both.

use crate::error::{ApiError, ApiResult};

/// The kinds of resources, by id prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Instance,
    Image,
    KeyPair,
    SecurityGroup,
    Volume,
    Snapshot,
    ElasticIp,
    Vpc,
    Subnet,
    InternetGateway,
    RouteTable,
    NatGateway,
    NetworkAcl,
    DhcpOptions,
    LaunchTemplate,
    VpcPeeringConnection,
    NetworkInterface,
}

impl ResourceKind {
    /// Every kind, in DescribeTags order.
    pub const ALL: [ResourceKind; 17] = [
        ResourceKind::Instance,
        ResourceKind::Image,
        ResourceKind::KeyPair,
        ResourceKind::SecurityGroup,
        ResourceKind::Volume,
        ResourceKind::Snapshot,
        ResourceKind::ElasticIp,
        ResourceKind::Vpc,
        ResourceKind::Subnet,
        ResourceKind::InternetGateway,
        ResourceKind::RouteTable,
        ResourceKind::NatGateway,
        ResourceKind::NetworkAcl,
        ResourceKind::DhcpOptions,
        ResourceKind::LaunchTemplate,
        ResourceKind::VpcPeeringConnection,
        ResourceKind::NetworkInterface,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            ResourceKind::Instance => "i",
            ResourceKind::Image => "ami",
            ResourceKind::KeyPair => "key",
            ResourceKind::SecurityGroup => "sg",
            ResourceKind::Volume => "vol",
            ResourceKind::Snapshot => "snap",
            ResourceKind::ElasticIp => "eipalloc",
            ResourceKind::Vpc => "vpc",
            ResourceKind::Subnet => "subnet",
            ResourceKind::InternetGateway => "igw",
            ResourceKind::RouteTable => "rtb",
            ResourceKind::NatGateway => "nat",
            ResourceKind::NetworkAcl => "acl",
            ResourceKind::DhcpOptions => "dopt",
            ResourceKind::LaunchTemplate => "lt",
            ResourceKind::VpcPeeringConnection => "pcx",
            ResourceKind::NetworkInterface => "eni",
        }
    }

    /// The `resourceType` DescribeTags reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Instance => "instance",
            ResourceKind::Image => "image",
            ResourceKind::KeyPair => "key-pair",
            ResourceKind::SecurityGroup => "security-group",
            ResourceKind::Volume => "volume",
            ResourceKind::Snapshot => "snapshot",
            ResourceKind::ElasticIp => "elastic-ip",
            ResourceKind::Vpc => "vpc",
            ResourceKind::Subnet => "subnet",
            ResourceKind::InternetGateway => "internet-gateway",
            ResourceKind::RouteTable => "route-table",
            ResourceKind::NatGateway => "natgateway",
            ResourceKind::NetworkAcl => "network-acl",
            ResourceKind::DhcpOptions => "dhcp-options",
            ResourceKind::LaunchTemplate => "launch-template",
            ResourceKind::VpcPeeringConnection => "vpc-peering-connection",
            ResourceKind::NetworkInterface => "network-interface",
        }
    }

    /// `...NotFound`: the code of a well-formed id that names nothing.
    pub fn not_found_code(self) -> &'static str {
        match self {
            ResourceKind::Instance => "InvalidInstanceID.NotFound",
            ResourceKind::Image => "InvalidAMIID.NotFound",
            ResourceKind::KeyPair => "InvalidKeyPair.NotFound",
            ResourceKind::SecurityGroup => "InvalidGroup.NotFound",
            ResourceKind::Volume => "InvalidVolume.NotFound",
            ResourceKind::Snapshot => "InvalidSnapshot.NotFound",
            ResourceKind::ElasticIp => "InvalidAllocationID.NotFound",
            ResourceKind::Vpc => "InvalidVpcID.NotFound",
            ResourceKind::Subnet => "InvalidSubnetID.NotFound",
            ResourceKind::InternetGateway => "InvalidInternetGatewayID.NotFound",
            ResourceKind::RouteTable => "InvalidRouteTableID.NotFound",
            ResourceKind::NatGateway => "NatGatewayNotFound",
            ResourceKind::NetworkAcl => "InvalidNetworkAclID.NotFound",
            ResourceKind::DhcpOptions => "InvalidDhcpOptionID.NotFound",
            ResourceKind::LaunchTemplate => "InvalidLaunchTemplateId.NotFound",
            ResourceKind::VpcPeeringConnection => "InvalidVpcPeeringConnectionID.NotFound",
            ResourceKind::NetworkInterface => "InvalidNetworkInterfaceID.NotFound",
        }
    }

    /// The error for a well-formed id that names nothing.
    pub fn not_found(self, id: &str) -> ApiError {
        ApiError::NotFound {
            code: self.not_found_code(),
            message: format!("The {} ID '{id}' does not exist", self.as_str()),
        }
    }

    /// The type of `id`, from its prefix and syntax.
    pub fn of(id: &str) -> ApiResult<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| crate::config::is_resource_id(id, kind.prefix()))
            .ok_or_else(|| ApiError::NotFound {
                code: crate::error::codes::INVALID_ID,
                message: format!("The ID '{id}' is not valid"),
            })
    }

    /// `...Malformed`: the code of an id of this kind that is not one.
    pub fn malformed_code(self) -> &'static str {
        match self {
            ResourceKind::Instance => "InvalidInstanceID.Malformed",
            ResourceKind::Image => "InvalidAMIID.Malformed",
            ResourceKind::KeyPair => "InvalidKeyPair.Malformed",
            ResourceKind::SecurityGroup => "InvalidGroupId.Malformed",
            ResourceKind::Volume => "InvalidVolumeID.Malformed",
            ResourceKind::Snapshot => "InvalidSnapshotID.Malformed",
            ResourceKind::ElasticIp => "InvalidAllocationID.Malformed",
            ResourceKind::Vpc => "InvalidVpcID.Malformed",
            ResourceKind::Subnet => "InvalidSubnetID.Malformed",
            ResourceKind::InternetGateway => "InvalidInternetGatewayID.Malformed",
            ResourceKind::RouteTable => "InvalidRouteTableID.Malformed",
            ResourceKind::NatGateway => "NatGatewayMalformed",
            ResourceKind::NetworkAcl => "InvalidNetworkAclID.Malformed",
            ResourceKind::DhcpOptions => "InvalidDhcpOptionsId.Malformed",
            ResourceKind::LaunchTemplate => "InvalidLaunchTemplateId.Malformed",
            ResourceKind::VpcPeeringConnection => "InvalidVpcPeeringConnectionId.Malformed",
            ResourceKind::NetworkInterface => "InvalidNetworkInterfaceId.Malformed",
        }
    }

    /// Checks the syntax of an id of this kind (`...Malformed` when wrong).
    pub fn check(self, id: &str) -> ApiResult<()> {
        super::ids::check_id(id, self.prefix(), self.malformed_code())
    }
}
