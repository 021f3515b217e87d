//! DHCP options sets: CreateDhcpOptions, DeleteDhcpOptions,
//! AssociateDhcpOptions, and the account's sets for DescribeDhcpOptions.
//!
//! Every account has the set its default VPC was made with (the Region's
//! domain name and `AmazonProvidedDNS`), which created VPCs start with too
//! while it exists; `default` associates no set, and the VPC then shows
//! `default`, as in EC2.
//! A set names EC2's keys only (`domain-name`, `domain-name-servers`,
//! `ntp-servers`, `netbios-name-servers`, `netbios-node-type`,
//! `ipv6-address-preferred-lease-time`), at most four servers of a kind. A
//! set a VPC uses is not deleted (`DependencyViolation`): an association
//! rewrites the set unchanged, so its concurrent deletion conflicts.

use super::instances::Tag;
use super::network::Vpc;
use super::operation::{self, Tx};
use super::usage::{Kind, Usage};
use super::Compute;
use crate::error::{codes, ApiError, ApiResult};
use crate::store::StoreResult;
use serde::{Deserialize, Serialize};

/// `<account>/<dopt-id>`.
pub(crate) const DHCP_OPTIONS: &str = "dhcp_options";

/// EC2's default quota.
pub const MAX_DHCP_OPTIONS: u64 = 50;

/// The keys EC2 accepts, and how many values each takes.
const KEYS: &[(&str, usize)] = &[
    ("domain-name", 1),
    ("domain-name-servers", 4),
    ("ntp-servers", 4),
    ("netbios-name-servers", 4),
    ("netbios-node-type", 1),
    ("ipv6-address-preferred-lease-time", 1),
];

/// A DHCP options set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpOptions {
    pub id: String,
    pub account_id: String,
    /// Key and values, in the order given.
    pub configurations: Vec<(String, Vec<String>)>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The set the account's default VPC was made with, which new VPCs
    /// take.
    #[serde(default)]
    pub is_default: bool,
}

impl crate::store::Record for DhcpOptions {}

fn key(account_id: &str, id: &str) -> Vec<u8> {
    format!("{account_id}/{id}").into_bytes()
}

fn not_found(id: &str) -> ApiError {
    super::kinds::ResourceKind::DhcpOptions.not_found(id)
}

fn options_usage(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<Usage> {
    super::usage::read(tx, account_id, Kind::DhcpOptions, |tx| {
        super::usage::count_of(tx, DHCP_OPTIONS, format!("{account_id}/").as_bytes())
    })
}

/// The default set of a Region's accounts, under `id`.
pub(super) fn default_options(account_id: &str, id: &str, region: &str) -> DhcpOptions {
    let domain = if region == "us-east-1" {
        "ec2.internal".to_string()
    } else {
        format!("{region}.compute.internal")
    };
    DhcpOptions {
        id: id.to_string(),
        account_id: account_id.to_string(),
        configurations: vec![
            ("domain-name".into(), vec![domain]),
            (
                "domain-name-servers".into(),
                vec!["AmazonProvidedDNS".into()],
            ),
        ],
        tags: Vec::new(),
        is_default: true,
    }
}

/// What `dhcpOptionsId` a VPC with no options set shows.
pub const NO_OPTIONS: &str = "default";

/// The set a new VPC takes, read in `tx`: the account's default set while
/// it exists, else none (`default`).
pub(super) fn set_for_new_vpc(tx: &mut Tx<'_>, account_id: &str) -> StoreResult<String> {
    options_usage(tx, account_id)?;
    Ok(tx
        .scan::<DhcpOptions>(DHCP_OPTIONS, format!("{account_id}/").as_bytes())?
        .into_iter()
        .find(|options| options.is_default)
        .map_or_else(|| NO_OPTIONS.to_string(), |options| options.id))
}

/// Stores a new set in `tx`, counted in the account's usage.
pub(super) fn put_new(tx: &mut Tx<'_>, options: &DhcpOptions) -> StoreResult<()> {
    let mut usage = options_usage(tx, &options.account_id)?;
    usage.count += 1;
    super::usage::write(tx, &options.account_id, Kind::DhcpOptions, &usage);
    tx.put(DHCP_OPTIONS, key(&options.account_id, &options.id), options);
    Ok(())
}

/// Checks configurations as CreateDhcpOptions takes them.
pub fn check_configurations(configurations: &[(String, Vec<String>)]) -> ApiResult<()> {
    if configurations.is_empty() {
        return Err(ApiError::MissingParameter("DhcpConfiguration".into()));
    }
    for (name, values) in configurations {
        let Some((_, most)) = KEYS.iter().find(|(k, _)| k == name) else {
            return Err(ApiError::invalid_value(format!(
                "Value ({name}) for parameter name is invalid. Unknown DHCP option"
            )));
        };
        if values.is_empty() || values.len() > *most {
            return Err(ApiError::invalid_value(format!(
                "The DHCP option {name} takes 1 to {most} values"
            )));
        }
        if name == "netbios-node-type" && !["1", "2", "4", "8"].contains(&values[0].as_str()) {
            return Err(ApiError::invalid_value(format!(
                "Value ({}) for parameter netbios-node-type is invalid. Expecting 1, 2, 4 or 8",
                values[0]
            )));
        }
    }
    let mut names: Vec<&String> = configurations.iter().map(|(n, _)| n).collect();
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(ApiError::invalid_value(
            "A DHCP option may be given once in a set",
        ));
    }
    Ok(())
}

impl Compute {
    /// The account's sets, by id.
    pub async fn dhcp_options(&self, account_id: &str) -> ApiResult<Vec<DhcpOptions>> {
        Ok(self
            .store
            .records(DHCP_OPTIONS, format!("{account_id}/").as_bytes())
            .await?)
    }

    /// CreateDhcpOptions.
    pub async fn create_dhcp_options(
        &self,
        account_id: &str,
        configurations: Vec<(String, Vec<String>)>,
        tags: Vec<Tag>,
        dry_run: bool,
    ) -> ApiResult<DhcpOptions> {
        check_configurations(&configurations)?;
        let options = DhcpOptions {
            id: super::ids::new_id("dopt"),
            account_id: account_id.to_string(),
            configurations,
            tags,
            is_default: false,
        };
        operation::run(&self.store, dry_run, |tx| {
            if options_usage(tx, account_id)?.count >= MAX_DHCP_OPTIONS {
                return Err(ApiError::LimitExceeded {
                    code: codes::DHCP_OPTIONS_LIMIT_EXCEEDED,
                    message: format!(
                        "The maximum number of DHCP options sets ({MAX_DHCP_OPTIONS}) has been reached."
                    ),
                });
            }
            put_new(tx, &options)?;
            Ok(options.clone())
        })
        .await
    }

    /// DeleteDhcpOptions: only a set no VPC uses.
    pub async fn delete_dhcp_options(
        &self,
        account_id: &str,
        options_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        super::kinds::ResourceKind::DhcpOptions.check(options_id)?;
        operation::run(&self.store, dry_run, |tx| {
            if tx
                .get::<DhcpOptions>(DHCP_OPTIONS, &key(account_id, options_id))?
                .is_none()
            {
                return Err(not_found(options_id));
            }
            // An association with this set rewrites it (read above), and a
            // VPC created meanwhile rewrites the VPC usage record (read
            // here): either makes this run again and see it.
            super::vpcs::vpc_usage(tx, account_id)?;
            let mut vpcs: Vec<Vpc> = tx
                .get::<Vpc>(super::network::VPCS, account_id.as_bytes())?
                .into_iter()
                .collect();
            vpcs.extend(tx.scan::<Vpc>(super::vpcs::VPCS, format!("{account_id}/").as_bytes())?);
            if vpcs.iter().any(|vpc| vpc.dhcp_options_id == options_id) {
                return Err(ApiError::NotFound {
                    code: codes::DEPENDENCY_VIOLATION,
                    message: format!(
                        "The dhcpOptions '{options_id}' has dependencies and cannot be deleted."
                    ),
                });
            }
            let mut usage = options_usage(tx, account_id)?;
            usage.count = usage.count.saturating_sub(1);
            super::usage::write(tx, account_id, Kind::DhcpOptions, &usage);
            tx.delete(DHCP_OPTIONS, key(account_id, options_id));
            Ok(())
        })
        .await
    }

    /// AssociateDhcpOptions: a set (or `default`) with a VPC.
    pub async fn associate_dhcp_options(
        &self,
        account_id: &str,
        options_id: &str,
        vpc_id: &str,
        dry_run: bool,
    ) -> ApiResult<()> {
        let found = self.account_vpc(account_id, vpc_id).await?;
        if options_id != NO_OPTIONS {
            super::kinds::ResourceKind::DhcpOptions.check(options_id)?;
        }
        operation::run(&self.store, dry_run, |tx| {
            // `default`: no options set, as in EC2.
            if options_id != NO_OPTIONS && !tx.touch(DHCP_OPTIONS, &key(account_id, options_id))? {
                return Err(not_found(options_id));
            }
            let (tree, vpc_key) = super::vpcs::vpc_key(account_id, vpc_id, found.is_default);
            let mut vpc = tx
                .get::<Vpc>(tree, &vpc_key)?
                .filter(|v| v.vpc_id == vpc_id)
                .ok_or_else(|| super::kinds::ResourceKind::Vpc.not_found(vpc_id))?;
            vpc.dhcp_options_id = options_id.to_string();
            tx.put(tree, vpc_key.clone(), &vpc);
            Ok(())
        })
        .await
    }
}
