//! DescribeInstanceTypes: the instance-type catalogue.
//!
//! Instance types: `InstanceType.N` (unknown names are
//! `InvalidInstanceType`), filters instance-type, vcpu-info.default-vcpus,
//! memory-info.size-in-mib, processor-info.supported-architecture,
//! current-generation, with pagination (MaxResults 5..100).
//!
//! Eucalyptus's `euca-describe-instance-types` asks its own way, with
//! `Availability=true|false`, and expects Eucalyptus's answer:
//! `instanceTypeDetails` with each type's name, cpu, memory (MiB), disk
//! (GiB: 0, every type here is EBS-only) and network interfaces, plus, with
//! `Availability=true`, how many instances of the type still fit and fit at
//! most in each zone, from the hosts' capacities. A request with
//! `Availability` gets that shape; any other gets AWS's.

use super::pagination::{check_max_results, Paging};
use super::{dry_run_check, Context};
use crate::compute::catalog::InstanceType;
use crate::compute::scheduler::{zone_capacity, Demand, ZoneCapacity};
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
    /// `Some` when asked the Eucalyptus way (`Availability=true|false`).
    pub eucalyptus_availability: Option<bool>,
    pub instance_types: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub dry_run: bool,
}

impl DescribeInstanceTypes {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            eucalyptus_availability: params.boolean("Availability")?,
            instance_types: params.list("InstanceType")?,
            filters: params.filters()?,
            max_results: check_max_results(params.number("MaxResults")?, 5, 100)?,
            next_token: params.optional("NextToken"),
            dry_run: params.dry_run()?,
        };
        check_names(&request.filters, TYPE_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<InstanceTypesAnswer> {
        let catalog = &context.compute.catalog();
        let unknown: Vec<&str> = self
            .instance_types
            .iter()
            .filter(|name| catalog.instance_type(name).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::NotFound {
                code: crate::error::codes::INVALID_INSTANCE_TYPE,
                message: format!(
                    "The following supplied instance types do not exist: [{}]",
                    unknown.join(", ")
                ),
            });
        }
        dry_run_check(self.dry_run)?;
        if let Some(availability) = self.eucalyptus_availability {
            return Ok(InstanceTypesAnswer::Eucalyptus(
                self.eucalyptus_details(context, availability).await?,
            ));
        }
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
        Ok(InstanceTypesAnswer::Aws(InstanceTypeList {
            types,
            next_token,
        }))
    }

    /// Eucalyptus's answer: every (requested) type with, when asked, its
    /// capacity zone by zone.
    async fn eucalyptus_details(
        &self,
        context: &Context<'_>,
        availability: bool,
    ) -> ApiResult<TypeDetails> {
        let compute = context.compute;
        let now = compute.clock().now();
        let zones = compute.services().zones_with_usage(now).await?;
        let window = compute.services().liveness_window();
        let types = compute
            .catalog()
            .instance_types()
            .filter(|t| self.instance_types.is_empty() || self.instance_types.contains(&t.name))
            .filter(|t| matches_all(&self.filters, |name| type_filter_values(t, name)))
            .map(|t| {
                let capacity = availability.then(|| {
                    zone_capacity(
                        &zones,
                        Demand {
                            vcpus: t.vcpus,
                            memory_mib: t.memory_mib,
                        },
                        now,
                        window,
                    )
                });
                (t.clone(), capacity)
            })
            .collect();
        Ok(TypeDetails { types })
    }
}

/// AWS's answer, or Eucalyptus's.
#[derive(Debug)]
pub enum InstanceTypesAnswer {
    Aws(InstanceTypeList),
    Eucalyptus(TypeDetails),
}

impl XmlOutput for InstanceTypesAnswer {
    fn write_xml(&self, xml: &mut XmlWriter) {
        match self {
            InstanceTypesAnswer::Aws(list) => list.write_xml(xml),
            InstanceTypesAnswer::Eucalyptus(details) => details.write_xml(xml),
        }
    }
}

/// Eucalyptus's `instanceTypeDetails`.
#[derive(Debug)]
pub struct TypeDetails {
    types: Vec<(InstanceType, Option<Vec<ZoneCapacity>>)>,
}

impl XmlOutput for TypeDetails {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("instanceTypeDetails", &self.types, |xml, (t, capacity)| {
            xml.element("name", &t.name);
            xml.number("cpu", t.vcpus);
            xml.number("memory", t.memory_mib);
            xml.number("disk", 0);
            xml.number("networkInterfaces", 1);
            if let Some(capacity) = capacity {
                xml.list("availability", capacity, |xml, zone| {
                    xml.element("zoneName", &zone.zone);
                    xml.number("available", zone.available);
                    xml.number("max", zone.max);
                });
            }
        });
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
