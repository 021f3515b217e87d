//! CreateSecurityGroup, DeleteSecurityGroup, DescribeSecurityGroups,
//! Authorize/RevokeSecurityGroupIngress/Egress, DescribeSecurityGroupRules.
//!
//! Rules are read and written as EC2's `IpPermissions` by `ip_permissions`.

use super::ip_permissions::{requested_rules, resolve, write_permissions, RequestedRule};
use super::pagination::{check_max_results, Paging};
use super::tags::{check_filter_names, tag_filter_values, tag_specifications, write_tags};
use super::{dry_run_check, Context};
use crate::compute::security_groups::{Direction, GroupSelector, Rule, RulePeer, SecurityGroup};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::matches_all;
use crate::protocol::xml::{XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};
use std::collections::HashMap;

/// `GroupId` or `GroupName`, one of them required.
fn selector(params: &Params) -> ApiResult<GroupSelector> {
    match (params.optional("GroupId"), params.optional("GroupName")) {
        (Some(id), _) => Ok(GroupSelector::Id(id)),
        (None, Some(name)) => Ok(GroupSelector::Name(name)),
        (None, None) => Err(ApiError::MissingParameter("GroupId".into())),
    }
}

#[derive(Debug)]
pub struct CreateSecurityGroup {
    pub name: String,
    pub description: String,
    pub vpc_id: Option<String>,
    pub tags: Vec<crate::compute::instances::Tag>,
    pub dry_run: bool,
}

impl CreateSecurityGroup {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            name: params.required("GroupName")?,
            description: params.required("GroupDescription")?,
            vpc_id: params.optional("VpcId"),
            tags: tag_specifications(params, "security-group")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedGroup> {
        let group = context
            .compute
            .create_security_group(
                &context.principal.account_id,
                &self.name,
                &self.description,
                self.vpc_id.as_deref(),
                self.tags,
                self.dry_run,
            )
            .await?;
        Ok(CreatedGroup {
            arn: group_arn(context, &group),
            group,
        })
    }
}

fn group_arn(context: &Context<'_>, group: &SecurityGroup) -> String {
    format!(
        "arn:aws:ec2:{}:{}:security-group/{}",
        context.compute.region().name,
        group.account_id,
        group.id
    )
}

#[derive(Debug)]
pub struct CreatedGroup {
    group: SecurityGroup,
    arn: String,
}

impl XmlOutput for CreatedGroup {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("groupId", &self.group.id);
        write_tags(xml, &self.group.tags);
        xml.element("securityGroupArn", &self.arn);
    }
}

#[derive(Debug)]
pub struct DeleteSecurityGroup {
    pub selector: GroupSelector,
    pub dry_run: bool,
}

impl DeleteSecurityGroup {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            selector: selector(params)?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<DeletedGroup> {
        let id = context
            .compute
            .delete_security_group(&context.principal.account_id, &self.selector, self.dry_run)
            .await?;
        Ok(DeletedGroup(id))
    }
}

#[derive(Debug)]
pub struct DeletedGroup(String);

impl XmlOutput for DeletedGroup {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.boolean("return", true);
        xml.element("groupId", &self.0);
    }
}

/// Authorize or revoke, ingress or egress: one struct, four actions.
#[derive(Debug)]
pub struct RuleChange<const AUTHORIZE: bool, const INGRESS: bool> {
    pub selector: GroupSelector,
    pub rules: Vec<RequestedRule>,
    pub rule_ids: Vec<String>,
    pub dry_run: bool,
}

pub type AuthorizeSecurityGroupIngress = RuleChange<true, true>;
pub type AuthorizeSecurityGroupEgress = RuleChange<true, false>;
pub type RevokeSecurityGroupIngress = RuleChange<false, true>;
pub type RevokeSecurityGroupEgress = RuleChange<false, false>;

impl<const AUTHORIZE: bool, const INGRESS: bool> RuleChange<AUTHORIZE, INGRESS> {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let selector = selector(params)?;
        if !INGRESS && matches!(selector, GroupSelector::Name(_)) {
            return Err(ApiError::MissingParameter("GroupId".into()));
        }
        let rules = requested_rules(params)?;
        let rule_ids = if AUTHORIZE {
            Vec::new()
        } else {
            params.list("SecurityGroupRuleId")?
        };
        if rules.is_empty() && rule_ids.is_empty() {
            return Err(ApiError::MissingParameter("IpPermissions".into()));
        }
        Ok(Self {
            selector,
            rules,
            rule_ids,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<RulesChanged> {
        let direction = if INGRESS {
            Direction::Ingress
        } else {
            Direction::Egress
        };
        // The per-request cap: no request names more rules than a group may hold.
        let limit = context.compute.quotas().max_rules_per_security_group as usize;
        if self.rules.len() + self.rule_ids.len() > limit {
            return Err(crate::compute::security_groups::rules_limit_exceeded(limit));
        }
        let specs = resolve(context, self.rules).await?;
        let account = &context.principal.account_id;
        let (group, rules) = if AUTHORIZE {
            context
                .compute
                .authorize_rules(account, &self.selector, direction, specs, self.dry_run)
                .await?
        } else {
            context
                .compute
                .revoke_rules(
                    account,
                    &self.selector,
                    direction,
                    specs,
                    &self.rule_ids,
                    self.dry_run,
                )
                .await?
        };
        Ok(RulesChanged {
            rules: if AUTHORIZE {
                rules
                    .into_iter()
                    .map(|rule| RuleRow::of(&group, direction, rule))
                    .collect()
            } else {
                Vec::new()
            },
        })
    }
}

/// One rule with the few facts of its group that its XML shows (never a
/// copy of the whole group per rule: that made large groups quadratic).
#[derive(Debug)]
pub struct RuleRow {
    group_id: String,
    owner_id: String,
    direction: Direction,
    rule: Rule,
}

impl RuleRow {
    fn of(group: &SecurityGroup, direction: Direction, rule: Rule) -> Self {
        Self {
            group_id: group.id.clone(),
            owner_id: group.account_id.clone(),
            direction,
            rule,
        }
    }
}

#[derive(Debug)]
pub struct RulesChanged {
    rules: Vec<RuleRow>,
}

impl XmlOutput for RulesChanged {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.boolean("return", true);
        if !self.rules.is_empty() {
            xml.list("securityGroupRuleSet", &self.rules, write_rule);
        }
    }
}

fn write_rule(xml: &mut XmlWriter, row: &RuleRow) {
    let rule = &row.rule;
    xml.element("securityGroupRuleId", &rule.id);
    xml.element("groupId", &row.group_id);
    xml.element("groupOwnerId", &row.owner_id);
    xml.boolean("isEgress", row.direction == Direction::Egress);
    xml.element("ipProtocol", &rule.protocol);
    xml.number("fromPort", rule.from_port.unwrap_or(-1));
    xml.number("toPort", rule.to_port.unwrap_or(-1));
    match &rule.peer {
        RulePeer::Cidr(cidr) => xml.element("cidrIpv4", cidr),
        RulePeer::CidrV6(cidr) => xml.element("cidrIpv6", cidr),
        RulePeer::Group {
            group_id,
            account_id,
        } => xml.nested("referencedGroupInfo", |xml| {
            xml.element("groupId", group_id);
            xml.element("userId", account_id);
        }),
    }
    xml.optional("description", rule.description.as_deref());
    xml.list("tagSet", &[] as &[String], |_, _| {});
}

const GROUP_FILTERS: &[&str] = &[
    "group-name",
    "group-id",
    "description",
    "owner-id",
    "vpc-id",
    "ip-permission.protocol",
    "ip-permission.from-port",
    "ip-permission.to-port",
    "ip-permission.cidr",
    "ip-permission.ipv6-cidr",
    "ip-permission.group-id",
    "ip-permission.group-name",
    "ip-permission.user-id",
    "egress.ip-permission.protocol",
    "egress.ip-permission.from-port",
    "egress.ip-permission.to-port",
    "egress.ip-permission.cidr",
    "egress.ip-permission.ipv6-cidr",
    "egress.ip-permission.group-id",
    "egress.ip-permission.group-name",
    "egress.ip-permission.user-id",
    "tag-key",
    "tag-value",
];

fn rule_values(rules: &[Rule], field: &str, names: &HashMap<String, String>) -> Vec<String> {
    rules
        .iter()
        .filter_map(|rule| match (field, &rule.peer) {
            ("protocol", _) => Some(rule.protocol.clone()),
            ("from-port", _) => rule.from_port.map(|p| p.to_string()),
            ("to-port", _) => rule.to_port.map(|p| p.to_string()),
            ("cidr", RulePeer::Cidr(cidr)) | ("ipv6-cidr", RulePeer::CidrV6(cidr)) => {
                Some(cidr.clone())
            }
            ("group-id", RulePeer::Group { group_id, .. }) => Some(group_id.clone()),
            ("group-name", RulePeer::Group { group_id, .. }) => names.get(group_id).cloned(),
            ("user-id", RulePeer::Group { account_id, .. }) => Some(account_id.clone()),
            _ => None,
        })
        .collect()
}

#[derive(Debug)]
pub struct DescribeSecurityGroups {
    pub group_names: Vec<String>,
    pub group_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeSecurityGroups {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            group_names: params.list("GroupName")?,
            group_ids: params.list("GroupId")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        if request.max_results.is_some()
            && !(request.group_ids.is_empty() && request.group_names.is_empty())
        {
            return Err(ApiError::InvalidParameterCombination(
                "The parameter groupIdSet/groupNameSet cannot be used with the parameter maxResults".into(),
            ));
        }
        for id in &request.group_ids {
            crate::compute::kinds::ResourceKind::SecurityGroup.check(id)?;
        }
        check_filter_names(&request.filters, GROUP_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<GroupList> {
        let account = &context.principal.account_id;
        let mut groups = context.compute.security_groups(account).await?;
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        // `GroupName` names groups of the default VPC, as in EC2.
        let default_vpc = context
            .compute
            .default_vpc(account)
            .await?
            .map(|vpc| vpc.vpc_id)
            .unwrap_or_default();
        let named = |g: &crate::compute::security_groups::SecurityGroup| {
            g.vpc_id == default_vpc && self.group_names.contains(&g.name)
        };
        if let Some(missing) = self.group_names.iter().find(|n| {
            !groups
                .iter()
                .any(|g| &g.name == *n && g.vpc_id == default_vpc)
        }) {
            return Err(ApiError::NotFound {
                code: crate::compute::kinds::ResourceKind::SecurityGroup.not_found_code(),
                message: format!("The security group '{missing}' does not exist in default VPC"),
            });
        }
        if let Some(missing) = self
            .group_ids
            .iter()
            .find(|id| !groups.iter().any(|g| &g.id == *id))
        {
            return Err(ApiError::NotFound {
                code: crate::compute::kinds::ResourceKind::SecurityGroup.not_found_code(),
                message: format!("The security group '{missing}' does not exist"),
            });
        }
        dry_run_check(self.dry_run)?;
        let names: HashMap<String, String> = groups
            .iter()
            .map(|g| (g.id.clone(), g.name.clone()))
            .collect();
        let paging = Paging::start(
            context,
            "DescribeSecurityGroups",
            &self.filters,
            &[],
            self.max_results,
            self.next_token.as_deref(),
        )?;
        let after = paging.after.clone();
        let matching = groups
            .into_iter()
            .filter(|g| {
                self.group_names.is_empty() && self.group_ids.is_empty()
                    || named(g)
                    || self.group_ids.contains(&g.id)
            })
            .filter(|g| after.as_ref().is_none_or(|after| &g.id > after))
            .filter(|g| {
                matches_all(&self.filters, |name| {
                    if let Some(values) = tag_filter_values(&g.tags, name) {
                        return values;
                    }
                    if let Some(field) = name.strip_prefix("egress.ip-permission.") {
                        return rule_values(&g.egress, field, &names);
                    }
                    if let Some(field) = name.strip_prefix("ip-permission.") {
                        return rule_values(&g.ingress, field, &names);
                    }
                    match name {
                        "group-name" => vec![g.name.clone()],
                        "group-id" => vec![g.id.clone()],
                        "description" => vec![g.description.clone()],
                        "owner-id" => vec![g.account_id.clone()],
                        _ => vec![g.vpc_id.clone()],
                    }
                })
            });
        let (page, next_token) = paging.cut(matching, |item| item.id.clone());
        let region = context.compute.region().name.clone();
        Ok(GroupList {
            groups: page,
            names,
            next_token,
            region,
        })
    }
}

#[derive(Debug)]
pub struct GroupList {
    groups: Vec<SecurityGroup>,
    names: HashMap<String, String>,
    next_token: Option<String>,
    region: String,
}

impl XmlOutput for GroupList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("securityGroupInfo", &self.groups, |xml, group| {
            xml.element("ownerId", &group.account_id);
            xml.element("groupId", &group.id);
            xml.element("groupName", &group.name);
            xml.element("groupDescription", &group.description);
            xml.element("vpcId", &group.vpc_id);
            xml.element(
                "securityGroupArn",
                &format!(
                    "arn:aws:ec2:{}:{}:security-group/{}",
                    self.region, group.account_id, group.id
                ),
            );
            write_permissions(xml, "ipPermissions", &group.ingress, &self.names);
            write_permissions(xml, "ipPermissionsEgress", &group.egress, &self.names);
            write_tags(xml, &group.tags);
        });
        xml.optional("nextToken", self.next_token.as_deref());
    }
}

const RULE_FILTERS: &[&str] = &["group-id", "security-group-rule-id", "tag-key", "tag-value"];

#[derive(Debug)]
pub struct DescribeSecurityGroupRules {
    pub rule_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeSecurityGroupRules {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            rule_ids: params.list("SecurityGroupRuleId")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 1000)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        check_filter_names(&request.filters, RULE_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<RuleList> {
        let account = &context.principal.account_id;
        let mut groups = context.compute.security_groups(account).await?;
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        let mut rules: Vec<RuleRow> = Vec::new();
        for group in groups {
            let (ingress, egress) = (group.ingress.clone(), group.egress.clone());
            for (direction, list) in [(Direction::Ingress, ingress), (Direction::Egress, egress)] {
                rules.extend(
                    list.into_iter()
                        .map(|rule| RuleRow::of(&group, direction, rule)),
                );
            }
        }
        rules.sort_by(|a, b| a.rule.id.cmp(&b.rule.id));
        let known: std::collections::HashSet<&str> =
            rules.iter().map(|r| r.rule.id.as_str()).collect();
        if let Some(missing) = self.rule_ids.iter().find(|id| !known.contains(id.as_str())) {
            return Err(ApiError::NotFound {
                code: crate::error::codes::INVALID_SECURITY_GROUP_RULE_ID_NOT_FOUND,
                message: format!("The security group rule ID '{missing}' does not exist"),
            });
        }
        dry_run_check(self.dry_run)?;
        let paging = Paging::start(
            context,
            "DescribeSecurityGroupRules",
            &self.filters,
            &self.rule_ids,
            self.max_results,
            self.next_token.as_deref(),
        )?;
        let after = paging.after.clone();
        let wanted: std::collections::HashSet<&str> =
            self.rule_ids.iter().map(String::as_str).collect();
        let matching = rules
            .into_iter()
            .filter(|row| wanted.is_empty() || wanted.contains(row.rule.id.as_str()))
            .filter(|row| after.as_ref().is_none_or(|after| &row.rule.id > after))
            .filter(|row| {
                matches_all(&self.filters, |name| {
                    tag_filter_values(&[], name).unwrap_or_else(|| match name {
                        "group-id" => vec![row.group_id.clone()],
                        _ => vec![row.rule.id.clone()],
                    })
                })
            });
        let (page, next_token) = paging.cut(matching, |row| row.rule.id.clone());
        Ok(RuleList {
            rules: page,
            next_token,
        })
    }
}

#[derive(Debug)]
pub struct RuleList {
    rules: Vec<RuleRow>,
    next_token: Option<String>,
}

impl XmlOutput for RuleList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("securityGroupRuleSet", &self.rules, write_rule);
        xml.optional("nextToken", self.next_token.as_deref());
    }
}
