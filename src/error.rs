//! The one error type every layer returns, and its EC2 wire identity.
//!
//! EC2 reports failures as `<Response><Errors><Error><Code/>...` with a code
//! string clients switch on (botocore raises `ClientError` with it, boto 2
//! keeps it in `error_code`) and a non-2xx status: botocore treats an error
//! body sent with 200 as an empty success, so the status matters as much as
//! the code. Each variant maps to exactly one code here; its HTTP status is
//! chosen with the wire format (`protocol::xml::http_status`), so the
//! compute core's errors know nothing of HTTP, and
//! `protocol::xml::render_error` is the only place that turns it into bytes.

use std::fmt;

/// A failure answered to the client as EC2 error XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No `Action` parameter at all.
    MissingAction,
    /// An `Action` this gateway does not implement (named in the message).
    InvalidAction(String),
    /// A required parameter is absent (named in the message).
    MissingParameter(String),
    /// A parameter has a value the action cannot accept.
    InvalidParameterValue(String),
    /// Two parameters that cannot be used together.
    InvalidParameterCombination(String),
    /// A filter name the describe action does not support.
    InvalidFilter(String),
    /// Percent-encoding or UTF-8 that cannot be decoded.
    MalformedQueryString(String),
    /// A body larger than the gateway accepts.
    RequestEntityTooLarge,
    /// More header fields, or more header bytes, than the gateway accepts.
    RequestHeaderSectionTooLarge,
    /// Unknown or inactive access key, or a session token not issued here.
    AuthFailure(String),
    /// The signature did not verify.
    SignatureDoesNotMatch,
    /// An `Authorization` header or presigned query that cannot be parsed.
    IncompleteSignature(String),
    /// No credentials of any kind.
    MissingAuthenticationToken,
    /// Outside the clock-skew window, or an expired presign / `Expires`.
    RequestExpired(String),
    /// Authenticated, but the principal may not do this (admin actions).
    UnauthorizedOperation,
    /// `DryRun=true` and every check passed.
    DryRunOperation,
    /// A compute host named in an admin action does not exist.
    HostNotFound(String),
    /// An admin action would create a compute host that already exists.
    HostAlreadyExists(String),
    /// An access key named in an admin action does not exist.
    AccessKeyNotFound(String),
    /// A resource id that does not exist for this account (`code` names
    /// the resource: `InvalidInstanceID.NotFound`, `InvalidAMIID.NotFound`...).
    NotFound { code: &'static str, message: String },
    /// A resource id with the wrong syntax (`InvalidInstanceID.Malformed`...).
    Malformed { code: &'static str, message: String },
    /// The instance is in a state the action cannot start from.
    IncorrectInstanceState(String),
    /// The account's instance quota is used up.
    InstanceLimitExceeded(String),
    /// The account's vCPU quota is used up.
    VcpuLimitExceeded(String),
    /// A ClientToken reused with different parameters.
    IdempotentParameterMismatch(String),
    /// No compute host can take the instance (clients retry it).
    InsufficientInstanceCapacity(String),
    /// A capacity pool is used up (`InsufficientVolumeCapacity`, ...): 500,
    /// which clients retry.
    InsufficientCapacity { code: &'static str, message: String },
    /// Refused by an attribute of the resource (`disableApiTermination`).
    OperationNotPermitted(String),
    /// A pagination token that was not issued for this request.
    InvalidNextToken,
    /// An EC2 action this gateway deliberately does not offer (named why).
    UnsupportedOperation(String),
    /// The request was not read completely in time.
    RequestTimeout,
    /// An HTTP method other than GET and POST.
    UnsupportedHttpVerb(String),
    /// A per-request or per-account limit (`FilterLimitExceeded`,
    /// `RulesPerSecurityGroupLimitExceeded`, `KeyPairLimitExceeded`, ...): 400.
    LimitExceeded { code: &'static str, message: String },
    /// The account sent more requests than its rate allows: 503, which
    /// every SDK retries with back-off.
    RequestLimitExceeded,
    /// The gateway is out of a shared resource (buffered request bytes,
    /// connections for this client): 503, retried by clients.
    ServiceUnavailable(String),
    /// A bug or a storage failure; logged with the request id.
    InternalError,
}

impl ApiError {
    /// The EC2 error code, as clients match on it.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingAction => "MissingAction",
            ApiError::InvalidAction(_) => "InvalidAction",
            ApiError::MissingParameter(_) => "MissingParameter",
            ApiError::InvalidParameterValue(_) => "InvalidParameterValue",
            ApiError::InvalidParameterCombination(_) => "InvalidParameterCombination",
            ApiError::InvalidFilter(_) => "InvalidFilter",
            ApiError::MalformedQueryString(_) => "MalformedQueryString",
            ApiError::RequestEntityTooLarge => "RequestEntityTooLarge",
            ApiError::RequestHeaderSectionTooLarge => "RequestHeaderSectionTooLarge",
            ApiError::AuthFailure(_) => "AuthFailure",
            ApiError::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            ApiError::IncompleteSignature(_) => "IncompleteSignature",
            ApiError::MissingAuthenticationToken => "MissingAuthenticationToken",
            ApiError::RequestExpired(_) => "RequestExpired",
            ApiError::UnauthorizedOperation => "UnauthorizedOperation",
            ApiError::DryRunOperation => "DryRunOperation",
            ApiError::HostNotFound(_) => "InvalidHost.NotFound",
            ApiError::HostAlreadyExists(_) => "InvalidHost.Duplicate",
            ApiError::AccessKeyNotFound(_) => "InvalidAccessKeyId.NotFound",
            ApiError::NotFound { code, .. }
            | ApiError::Malformed { code, .. }
            | ApiError::InsufficientCapacity { code, .. }
            | ApiError::LimitExceeded { code, .. } => code,
            ApiError::RequestLimitExceeded => "RequestLimitExceeded",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::IncorrectInstanceState(_) => "IncorrectInstanceState",
            ApiError::InstanceLimitExceeded(_) => "InstanceLimitExceeded",
            ApiError::VcpuLimitExceeded(_) => "VcpuLimitExceeded",
            ApiError::IdempotentParameterMismatch(_) => "IdempotentParameterMismatch",
            ApiError::InsufficientInstanceCapacity(_) => "InsufficientInstanceCapacity",
            ApiError::OperationNotPermitted(_) => "OperationNotPermitted",
            ApiError::InvalidNextToken => "InvalidNextToken",
            ApiError::UnsupportedOperation(_) => "UnsupportedOperation",
            ApiError::RequestTimeout => "RequestTimeout",
            ApiError::UnsupportedHttpVerb(_) => "UnsupportedHttpVerb",
            ApiError::InternalError => "InternalError",
        }
    }

    /// The human-readable message, worded as EC2 words it where EC2 has one.
    pub fn message(&self) -> String {
        match self {
            ApiError::MissingAction => "The request must contain the parameter Action".into(),
            ApiError::InvalidAction(action) => {
                format!("The action {action} is not valid for this web service.")
            }
            ApiError::MissingParameter(name) => {
                format!("The request must contain the parameter {name}")
            }
            ApiError::InvalidParameterValue(text)
            | ApiError::InvalidParameterCombination(text)
            | ApiError::MalformedQueryString(text)
            | ApiError::AuthFailure(text)
            | ApiError::IncompleteSignature(text)
            | ApiError::RequestExpired(text) => text.clone(),
            ApiError::InvalidFilter(name) => format!("The filter '{name}' is invalid"),
            ApiError::RequestEntityTooLarge => {
                "The request body exceeds the maximum allowed size".into()
            }
            ApiError::RequestHeaderSectionTooLarge => {
                "The request headers exceed the maximum allowed number or size".into()
            }
            ApiError::SignatureDoesNotMatch => "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
            ApiError::MissingAuthenticationToken => "Request is missing Authentication Token".into(),
            ApiError::UnauthorizedOperation => {
                "You are not authorized to perform this operation.".into()
            }
            ApiError::DryRunOperation => {
                "Request would have succeeded, but DryRun flag is set.".into()
            }
            ApiError::HostNotFound(host) => format!("The compute host '{host}' does not exist"),
            ApiError::HostAlreadyExists(host) => {
                format!("The compute host '{host}' already exists")
            }
            ApiError::AccessKeyNotFound(key) => format!("The access key '{key}' does not exist"),
            ApiError::NotFound { message, .. }
            | ApiError::Malformed { message, .. }
            | ApiError::InsufficientCapacity { message, .. }
            | ApiError::LimitExceeded { message, .. } => message.clone(),
            ApiError::RequestLimitExceeded => "Request limit exceeded.".into(),
            ApiError::ServiceUnavailable(text) => text.clone(),
            ApiError::IncorrectInstanceState(text)
            | ApiError::InstanceLimitExceeded(text)
            | ApiError::VcpuLimitExceeded(text)
            | ApiError::IdempotentParameterMismatch(text)
            | ApiError::InsufficientInstanceCapacity(text)
            | ApiError::OperationNotPermitted(text)
            | ApiError::UnsupportedOperation(text) => text.clone(),
            ApiError::InvalidNextToken => "The specified NextToken is not valid".into(),
            ApiError::RequestTimeout => {
                "The request was not received completely within the allowed time".into()
            }
            ApiError::UnsupportedHttpVerb(method) => {
                format!("The HTTP method {method} is not supported: use GET or POST")
            }
            ApiError::InternalError => {
                "An internal error has occurred. Quote the request id when reporting it.".into()
            }
        }
    }

    /// Shorthand for the common "bad value" error.
    pub fn invalid_value(message: impl Into<String>) -> Self {
        ApiError::InvalidParameterValue(message.into())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for ApiError {}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        if error.is_awaiting() {
            // Not a failure: the operation's runner runs the attempt again.
            return ApiError::InternalError;
        }
        if error.is_too_large() {
            tracing::warn!(%error, "a request too large for one store transaction");
            return ApiError::invalid_value(
                "The request changes more resources than this endpoint commits at once; send it in smaller parts",
            );
        }
        if error.is_unavailable() {
            tracing::warn!(%error, "the store is unavailable");
            return ApiError::ServiceUnavailable(
                "The service is unavailable. Please try again shortly.".into(),
            );
        }
        tracing::error!(%error, "storage failure");
        ApiError::InternalError
    }
}

/// Result alias used by every handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// EC2 error codes answered through the generic `NotFound`,
/// `LimitExceeded` and `InsufficientCapacity` variants (the resource kinds'
/// `.NotFound` and `.Malformed` codes are in `compute::kinds`; the other
/// codes are the variants themselves): each declared once, so a call site
/// names a code rather than spelling it.
pub mod codes {
    pub const ADDRESS_LIMIT_EXCEEDED: &str = "AddressLimitExceeded";
    pub const CANNOT_DELETE: &str = "CannotDelete";
    pub const DEPENDENCY_VIOLATION: &str = "DependencyViolation";
    pub const FILTER_LIMIT_EXCEEDED: &str = "FilterLimitExceeded";
    pub const INCORRECT_STATE: &str = "IncorrectState";
    pub const INSUFFICIENT_ADDRESS_CAPACITY: &str = "InsufficientAddressCapacity";
    pub const INSUFFICIENT_FREE_ADDRESSES_IN_SUBNET: &str = "InsufficientFreeAddressesInSubnet";
    pub const INSUFFICIENT_VOLUME_CAPACITY: &str = "InsufficientVolumeCapacity";
    pub const INVALID_AMI_NAME_DUPLICATE: &str = "InvalidAMIName.Duplicate";
    pub const INVALID_ADDRESS_NOT_FOUND: &str = "InvalidAddress.NotFound";
    pub const INVALID_ASSOCIATION_ID_NOT_FOUND: &str = "InvalidAssociationID.NotFound";
    pub const INVALID_ATTACHMENT_NOT_FOUND: &str = "InvalidAttachment.NotFound";
    pub const INVALID_GROUP_DUPLICATE: &str = "InvalidGroup.Duplicate";
    pub const INVALID_ID: &str = "InvalidID";
    pub const INVALID_IP_ADDRESS_IN_USE: &str = "InvalidIPAddress.InUse";
    pub const INVALID_NETWORK_INTERFACE_IN_USE: &str = "InvalidNetworkInterface.InUse";
    pub const INVALID_ATTACHMENT_ID_NOT_FOUND: &str = "InvalidAttachmentID.NotFound";
    pub const PRIVATE_IP_ADDRESS_LIMIT_EXCEEDED: &str = "PrivateIpAddressLimitExceeded";
    pub const NETWORK_INTERFACE_LIMIT_EXCEEDED: &str = "NetworkInterfaceLimitExceeded";
    pub const ATTACHMENT_LIMIT_EXCEEDED: &str = "AttachmentLimitExceeded";
    pub const INVALID_BLOCK_DEVICE_MAPPING: &str = "InvalidBlockDeviceMapping";
    pub const INVALID_INSTANCE_TYPE: &str = "InvalidInstanceType";
    pub const INVALID_KEY_FORMAT: &str = "InvalidKey.Format";
    pub const INVALID_KEY_PAIR_DUPLICATE: &str = "InvalidKeyPair.Duplicate";
    pub const INVALID_PERMISSION_DUPLICATE: &str = "InvalidPermission.Duplicate";
    pub const INVALID_PERMISSION_NOT_FOUND: &str = "InvalidPermission.NotFound";
    pub const INVALID_SECURITY_GROUP_RULE_ID_NOT_FOUND: &str =
        "InvalidSecurityGroupRuleId.NotFound";
    pub const INVALID_SNAPSHOT_IN_USE: &str = "InvalidSnapshot.InUse";
    pub const INVALID_VOLUME_ZONE_MISMATCH: &str = "InvalidVolume.ZoneMismatch";
    pub const KEY_PAIR_LIMIT_EXCEEDED: &str = "KeyPairLimitExceeded";
    pub const RESOURCE_ALREADY_ASSOCIATED: &str = "Resource.AlreadyAssociated";
    pub const RESOURCE_LIMIT_EXCEEDED: &str = "ResourceLimitExceeded";
    pub const RULES_PER_SECURITY_GROUP_LIMIT_EXCEEDED: &str = "RulesPerSecurityGroupLimitExceeded";
    pub const SECURITY_GROUP_LIMIT_EXCEEDED: &str = "SecurityGroupLimitExceeded";
    pub const SNAPSHOT_LIMIT_EXCEEDED: &str = "SnapshotLimitExceeded";
    pub const INVALID_VPC_RANGE: &str = "InvalidVpc.Range";
    pub const DEFAULT_VPC_ALREADY_EXISTS: &str = "DefaultVpcAlreadyExists";
    pub const INVALID_STATE_TRANSITION: &str = "InvalidStateTransition";
    pub const VPC_PEERING_CONNECTION_ALREADY_EXISTS: &str = "VpcPeeringConnectionAlreadyExists";
    pub const OUTSTANDING_PEERING_LIMIT_EXCEEDED: &str =
        "OutstandingVpcPeeringConnectionLimitExceeded";
    pub const CIDR_LIMIT_EXCEEDED: &str = "CidrLimitExceeded";
    pub const INVALID_VPC_CIDR_BLOCK_ASSOCIATION_ID_NOT_FOUND: &str =
        "InvalidVpcCidrBlockAssociationID.NotFound";
    pub const INVALID_SUBNET_RANGE: &str = "InvalidSubnet.Range";
    pub const INVALID_SUBNET_CONFLICT: &str = "InvalidSubnet.Conflict";
    pub const SUBNET_LIMIT_EXCEEDED: &str = "SubnetLimitExceeded";
    pub const INTERNET_GATEWAY_LIMIT_EXCEEDED: &str = "InternetGatewayLimitExceeded";
    pub const GATEWAY_NOT_ATTACHED: &str = "Gateway.NotAttached";
    pub const ROUTE_ALREADY_EXISTS: &str = "RouteAlreadyExists";
    pub const INVALID_ROUTE_NOT_FOUND: &str = "InvalidRoute.NotFound";
    pub const ROUTE_TABLE_LIMIT_EXCEEDED: &str = "RouteTableLimitExceeded";
    pub const ROUTE_LIMIT_EXCEEDED: &str = "RouteLimitExceeded";
    pub const NAT_GATEWAY_LIMIT_EXCEEDED: &str = "NatGatewayLimitExceeded";
    pub const INVALID_NETWORK_ACL_ENTRY_NOT_FOUND: &str = "InvalidNetworkAclEntry.NotFound";
    pub const NETWORK_ACL_ENTRY_ALREADY_EXISTS: &str = "NetworkAclEntryAlreadyExists";
    pub const NETWORK_ACL_LIMIT_EXCEEDED: &str = "NetworkAclLimitExceeded";
    pub const NETWORK_ACL_ENTRY_LIMIT_EXCEEDED: &str = "NetworkAclEntryLimitExceeded";
    pub const DHCP_OPTIONS_LIMIT_EXCEEDED: &str = "DhcpOptionsLimitExceeded";
    pub const INVALID_LAUNCH_TEMPLATE_NAME_EXISTS: &str =
        "InvalidLaunchTemplateName.AlreadyExistsException";
    pub const INVALID_LAUNCH_TEMPLATE_NAME_MALFORMED: &str =
        "InvalidLaunchTemplateName.MalformedException";
    pub const INVALID_LAUNCH_TEMPLATE_NAME_NOT_FOUND: &str =
        "InvalidLaunchTemplateName.NotFoundException";
    pub const INVALID_LAUNCH_TEMPLATE_VERSION_NOT_FOUND: &str =
        "InvalidLaunchTemplateId.VersionNotFound";
    pub const VERSION_LIMIT_EXCEEDED: &str = "VersionLimitExceeded";
    pub const INVALID_USER_ID_MALFORMED: &str = "InvalidUserID.Malformed";
    pub const INVALID_AMI_ID_UNAVAILABLE: &str = "InvalidAMIID.Unavailable";
    pub const INVALID_PARAMETER: &str = "InvalidParameter";
    pub const VPC_LIMIT_EXCEEDED: &str = "VpcLimitExceeded";
    pub const TAG_LIMIT_EXCEEDED: &str = "TagLimitExceeded";
    pub const VOLUME_IN_USE: &str = "VolumeInUse";
    pub const VOLUME_LIMIT_EXCEEDED: &str = "VolumeLimitExceeded";
}
