//! DescribeAvailabilityZones.
//!
//! Zones come from the compute hosts registered in them (see
//! `compute::services`). Supports `ZoneName.N`, `ZoneId.N`, the EC2 filters
//! with wildcards, `AllAvailabilityZones` (accepted: every zone here is
//! opt-in-not-required) and `DryRun`. An admin asking for
//! `ZoneName.1=verbose` gets the host tree euca2ools prints (Nova's
//! `describe_availability_zones_verbose`): the zone, `|- host`, then
//! `| |- compute enabled :-) <heartbeat> (<age> ago)`; a non-admin asking
//! for it gets the plain list.

use super::{dry_run_check, Context};
use crate::clock::format_timestamp;
use crate::compute::services::{ServiceRecord, Zone};
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::{check_names, matches_all};
use crate::protocol::xml::{XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

const FILTERS: &[&str] = &[
    "zone-name",
    "zone-id",
    "state",
    "region-name",
    "zone-type",
    "group-name",
    "opt-in-status",
    "message",
    "network-border-group",
];

/// The zone name euca2ools sends to ask for the host tree.
const VERBOSE: &str = "verbose";

#[derive(Debug)]
pub struct DescribeAvailabilityZones {
    pub zone_names: Vec<String>,
    pub zone_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub all_availability_zones: bool,
    pub dry_run: bool,
}

impl DescribeAvailabilityZones {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            zone_names: params.list("ZoneName")?,
            zone_ids: params.list("ZoneId")?,
            filters: params.filters()?,
            all_availability_zones: params.boolean("AllAvailabilityZones")?.unwrap_or(false),
            dry_run: params.dry_run()?,
        };
        check_names(&request.filters, FILTERS)?;
        Ok(request)
    }

    pub async fn execute(mut self, context: &Context<'_>) -> ApiResult<ZoneList> {
        let compute = context.compute;
        let now = compute.clock().now();
        let verbose = self.zone_names.iter().any(|n| n == VERBOSE);
        // Only an administrator's verbose listing shows the hosts.
        let zones: Arc<[Zone]> = if verbose && context.principal.admin {
            compute.services().zones(now).await?.into()
        } else {
            compute.services().zone_states(now).await?
        };
        self.zone_names.retain(|n| n != VERBOSE);
        for name in &self.zone_names {
            if !zones.iter().any(|z| &z.name == name) {
                return Err(ApiError::invalid_value(format!(
                    "Invalid availability zone: [{name}]"
                )));
            }
        }
        for id in &self.zone_ids {
            if !zones.iter().any(|z| &z.zone_id == id) {
                return Err(ApiError::invalid_value(format!(
                    "Invalid availability zone ID: [{id}]"
                )));
            }
        }
        dry_run_check(self.dry_run)?;
        let region = compute.region().name.clone();
        let shown = zones
            .iter()
            .enumerate()
            .filter(|(_, zone)| {
                (self.zone_names.is_empty() && self.zone_ids.is_empty())
                    || self.zone_names.contains(&zone.name)
                    || self.zone_ids.contains(&zone.zone_id)
            })
            .filter(|(_, zone)| {
                let view = ZoneView {
                    zone,
                    region: &region,
                };
                matches_all(&self.filters, |name| view.filter_values(name))
            })
            .map(|(index, _)| index)
            .collect();
        Ok(ZoneList {
            zones,
            shown,
            region,
            verbose: verbose && context.principal.admin,
            now,
            liveness_window: compute.services().liveness_window(),
        })
    }
}

/// One zone with what its XML item needs.
struct ZoneView<'a> {
    zone: &'a Zone,
    region: &'a str,
}

impl ZoneView<'_> {
    fn group_name(&self) -> String {
        format!("{}-zg-1", self.region)
    }

    fn filter_values(&self, filter: &str) -> Vec<String> {
        match filter {
            "zone-name" => vec![self.zone.name.clone()],
            "zone-id" => vec![self.zone.zone_id.clone()],
            "state" => vec![self.zone.state.as_str().to_string()],
            "region-name" | "network-border-group" => vec![self.region.to_string()],
            "zone-type" => vec!["availability-zone".to_string()],
            "group-name" => vec![self.group_name()],
            "opt-in-status" => vec!["opt-in-not-required".to_string()],
            _ => Vec::new(), // "message": zones here carry no messages
        }
    }

    fn write_item(&self, xml: &mut XmlWriter) {
        xml.element("zoneName", &self.zone.name);
        xml.element("zoneState", self.zone.state.as_str());
        xml.element("optInStatus", "opt-in-not-required");
        xml.list("messageSet", &[] as &[String], |xml, message| {
            xml.element("message", message)
        });
        xml.element("regionName", self.region);
        xml.element("zoneId", &self.zone.zone_id);
        xml.element("groupName", &self.group_name());
        xml.element("networkBorderGroup", self.region);
        xml.element("zoneType", "availability-zone");
    }
}

/// The answer: plain zone items, or for admins the verbose host tree.
#[derive(Debug)]
pub struct ZoneList {
    /// Every zone (with its hosts for the verbose tree), as derived.
    zones: Arc<[Zone]>,
    /// The indices in `zones` of those answered, in order.
    shown: Vec<usize>,
    region: String,
    verbose: bool,
    now: DateTime<Utc>,
    liveness_window: Duration,
}

impl ZoneList {
    fn views(&self) -> impl Iterator<Item = ZoneView<'_>> {
        self.shown.iter().map(|&index| ZoneView {
            zone: &self.zones[index],
            region: &self.region,
        })
    }
}

/// `12s`, `01:02:03`, or `3d 01:02:03`: the whole age, days included.
pub fn format_age(age: Duration) -> String {
    let total = age.num_seconds().max(0);
    let (days, rest) = (total / 86_400, total % 86_400);
    let clock = format!(
        "{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    match (days, total) {
        (0, 0..=59) => format!("{total}s"),
        (0, _) => clock,
        _ => format!("{days}d {clock}"),
    }
}

/// `enabled :-) 2026-11-24T18:00:00.000Z (12s ago)` for a service row.
pub fn service_status(service: &ServiceRecord, now: DateTime<Utc>, window: Duration) -> String {
    let enabled = if service.disabled {
        "disabled"
    } else {
        "enabled"
    };
    let alive = if service.is_alive(now, window) {
        ":-)"
    } else {
        "XXX"
    };
    let heartbeat = match (service.last_heartbeat, service.heartbeat_age(now)) {
        (Some(beat), Some(age)) => format!("{} ({} ago)", format_timestamp(beat), format_age(age)),
        _ => "never".to_string(),
    };
    match &service.disabled_reason {
        Some(reason) if service.disabled => {
            format!("{enabled} {alive} {heartbeat} reason: {reason}")
        }
        _ => format!("{enabled} {alive} {heartbeat}"),
    }
}

/// The plain zone items as last written: nearly every request asks for the
/// same few zones, whose items change only when a zone's state does, so
/// they are written once and copied after that. The services registry
/// shares one zone-state list until a state changes (see
/// `ServiceRegistry::zone_states`), so the same list, selection, region and
/// layout give the same bytes; the kept list is held here, so its address
/// is not reused while it is compared against.
static KEPT_ITEMS: std::sync::RwLock<Option<KeptItems>> = std::sync::RwLock::new(None);

struct KeptItems {
    layout: u32,
    region: String,
    zones: Arc<[Zone]>,
    shown: Vec<usize>,
    bytes: Vec<u8>,
}

impl KeptItems {
    fn fits(&self, layout: u32, list: &ZoneList) -> bool {
        self.layout == layout
            && Arc::ptr_eq(&self.zones, &list.zones)
            && self.shown == list.shown
            && self.region == list.region
    }
}

/// Writes one `<item>` per zone shown, copied from [`KEPT_ITEMS`] when they
/// fit.
fn write_items_kept(xml: &mut XmlWriter, list: &ZoneList) {
    let layout = xml.layout();
    {
        let kept = crate::sync::read(&KEPT_ITEMS);
        if let Some(kept) = kept.as_ref().filter(|kept| kept.fits(layout, list)) {
            xml.raw_fragment(&kept.bytes);
            return;
        }
    }
    let bytes = xml.fragment(512 * list.shown.len(), |xml| {
        for view in list.views() {
            xml.nested("item", |xml| view.write_item(xml));
        }
    });
    xml.raw_fragment(&bytes);
    *crate::sync::write(&KEPT_ITEMS) = Some(KeptItems {
        layout,
        region: list.region.clone(),
        zones: list.zones.clone(),
        shown: list.shown.clone(),
        bytes,
    });
}

impl XmlOutput for ZoneList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        if !self.verbose {
            if self.shown.is_empty() {
                xml.list("availabilityZoneInfo", &[] as &[Zone], |_, _| {});
            } else {
                xml.open("availabilityZoneInfo");
                write_items_kept(xml, self);
                xml.close("availabilityZoneInfo");
            }
            return;
        }
        // The verbose tree is a flat list of items whose zoneName carries
        // the tree drawing, as euca2ools expects.
        enum Row<'a> {
            Zone(ZoneView<'a>),
            Host(&'a str),
            Service(&'a ServiceRecord),
        }
        let mut rows = Vec::new();
        for view in self.views() {
            let hosts = &view.zone.hosts;
            rows.push(Row::Zone(view));
            for host in hosts {
                rows.push(Row::Host(&host.host));
                rows.push(Row::Service(host));
            }
        }
        xml.list("availabilityZoneInfo", &rows, |xml, row| match row {
            Row::Zone(view) => view.write_item(xml),
            Row::Host(host) => xml.element("zoneName", &format!("|- {host}")),
            Row::Service(service) => {
                xml.element("zoneName", &format!("| |- {}", service.binary));
                xml.element(
                    "zoneState",
                    &service_status(service, self.now, self.liveness_window),
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_keep_their_days() {
        assert_eq!(format_age(Duration::seconds(12)), "12s");
        assert_eq!(format_age(Duration::seconds(3723)), "01:02:03");
        assert_eq!(
            format_age(Duration::days(3) + Duration::seconds(10)),
            "3d 00:00:10"
        );
    }
}
