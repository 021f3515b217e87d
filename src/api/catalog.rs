//! DescribeInstanceTypes: the instance-type catalogue.
//!
//! Instance types: `InstanceType.N` (unknown names are
//! `InvalidInstanceType`), filters instance-type, vcpu-info.default-vcpus,
//! memory-info.size-in-mib, processor-info.supported-architecture,
//! current-generation, with pagination (MaxResults 5..100).

use super::pagination::{check_max_results, Paging};
use super::{dry_run_check, Context};
use crate::compute::catalog::InstanceType;
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::{check_names, matches_all};
use crate::protocol::xml::{XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

const TYPE_FILTERS: &[&str] = &[
    "instance-type",
    "vcpu-info.default-vcpus",
    "memory-info.size-in-mib",
    "processor-info.supported-architecture",
    "current-generation",
];

#[derive(Debug)]
pub struct DescribeInstanceTypes {
    pub instance_types: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeInstanceTypes {
    pub const PARAMETERS: &'static [&'static str] = &[
        "InstanceType",
        "Filter",
        "MaxResults",
        "NextToken",
        "DryRun",
    ];

    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            instance_types: params.list("InstanceType")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 100)?,
            next_token: params.optional("NextToken"),
            dry_run: params.boolean("DryRun")?.unwrap_or(false),
        };
        check_names(&request.filters, TYPE_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<InstanceTypeList> {
        let catalog = &context.compute.catalog;
        let unknown: Vec<&str> = self
            .instance_types
            .iter()
            .filter(|name| catalog.instance_type(name).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::NotFound {
                code: "InvalidInstanceType",
                message: format!(
                    "The following supplied instance types do not exist: [{}]",
                    unknown.join(", ")
                ),
            });
        }
        dry_run_check(self.dry_run)?;
        let paging = Paging::start(
            context,
            "DescribeInstanceTypes",
            &self.filters,
            &self.instance_types,
            self.max_results,
            self.next_token.as_deref(),
        )?;
        let after = paging.after.clone();
        let matching = catalog
            .instance_types()
            .filter(|t| self.instance_types.is_empty() || self.instance_types.contains(&t.name))
            .filter(|t| after.as_ref().is_none_or(|after| &t.name > after))
            .filter(|t| matches_all(&self.filters, |name| type_filter_values(t, name)))
            .cloned();
        let (types, next_token) = paging.cut(matching, |item| item.name.clone());
        Ok(InstanceTypeList { types, next_token })
    }
}

fn type_filter_values(instance_type: &InstanceType, filter: &str) -> Vec<String> {
    match filter {
        "instance-type" => vec![instance_type.name.clone()],
        "vcpu-info.default-vcpus" => vec![instance_type.vcpus.to_string()],
        "memory-info.size-in-mib" => vec![instance_type.memory_mib.to_string()],
        "processor-info.supported-architecture" => vec![instance_type.architecture.clone()],
        _ => vec!["true".to_string()], // current-generation: every type offered here is
    }
}

#[derive(Debug)]
pub struct InstanceTypeList {
    types: Vec<InstanceType>,
    next_token: Option<String>,
}

impl XmlOutput for InstanceTypeList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("instanceTypeSet", &self.types, |xml, t| {
            xml.element("instanceType", &t.name);
            xml.boolean("currentGeneration", true);
            xml.text_list("supportedRootDeviceTypes", &["ebs"]);
            xml.text_list("supportedVirtualizationTypes", &["hvm"]);
            xml.boolean("bareMetal", false);
            xml.element("hypervisor", "xen");
            xml.nested("processorInfo", |xml| {
                xml.text_list(
                    "supportedArchitectures",
                    std::slice::from_ref(&t.architecture),
                );
            });
            xml.nested("vCpuInfo", |xml| xml.number("defaultVCpus", t.vcpus));
            xml.nested("memoryInfo", |xml| xml.number("sizeInMiB", t.memory_mib));
        });
        xml.optional("nextToken", self.next_token.as_deref());
    }
}
