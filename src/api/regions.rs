//! DescribeRegions: this gateway's region, plus peers from the configuration.
//!
//! `RegionName.N` (an unknown name is `InvalidParameterValue`), filters
//! region-name, endpoint and opt-in-status with wildcards, `AllRegions`
//! (accepted; no region here needs opting in) and `DryRun`.

use super::{dry_run_check, Context};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::{check_names, matches_all};
use crate::protocol::xml::{XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};

const FILTERS: &[&str] = &["region-name", "endpoint", "opt-in-status"];

#[derive(Debug)]
pub struct DescribeRegions {
    pub region_names: Vec<String>,
    pub filters: Vec<Filter>,
    pub all_regions: bool,
    pub dry_run: bool,
}

/// One region item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionView {
    pub name: String,
    pub endpoint: String,
}

impl DescribeRegions {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            region_names: params.list("RegionName")?,
            filters: params.filters()?,
            all_regions: params.boolean("AllRegions")?.unwrap_or(false),
            dry_run: params.dry_run()?,
        };
        check_names(&request.filters, FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<RegionList> {
        let region = &context.compute.region();
        let mut regions = vec![RegionView {
            name: region.name.clone(),
            endpoint: region.endpoint.clone(),
        }];
        for peer in region.peers.iter().chain(&context.other_regions) {
            if !regions.iter().any(|r| r.name == peer.name) {
                regions.push(RegionView {
                    name: peer.name.clone(),
                    endpoint: peer.endpoint.clone(),
                });
            }
        }
        regions.sort_by(|a, b| a.name.cmp(&b.name));
        for name in &self.region_names {
            if !regions.iter().any(|r| &r.name == name) {
                return Err(ApiError::invalid_value(format!("Invalid region: [{name}]")));
            }
        }
        dry_run_check(self.dry_run)?;
        regions.retain(|r| {
            (self.region_names.is_empty() || self.region_names.contains(&r.name))
                && matches_all(&self.filters, |filter| match filter {
                    "region-name" => vec![r.name.clone()],
                    "endpoint" => vec![r.endpoint.clone()],
                    _ => vec!["opt-in-not-required".to_string()],
                })
        });
        Ok(RegionList { regions })
    }
}

#[derive(Debug)]
pub struct RegionList {
    pub regions: Vec<RegionView>,
}

impl XmlOutput for RegionList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("regionInfo", &self.regions, |xml, region| {
            xml.element("regionName", &region.name);
            xml.element("regionEndpoint", &region.endpoint);
            xml.element("optInStatus", "opt-in-not-required");
        });
    }
}
