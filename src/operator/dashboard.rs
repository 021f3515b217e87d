//! The dashboard's HTML: one server-rendered page, no script, no external
//! resource (the page is served by the binary on machines without
//! internet). It reloads itself every few seconds with a `<meta>` refresh.
//!
//! Every value comes from the core's [`Overview`] and the request
//! counters; every string is HTML-escaped (host names, zones and disabled
//! reasons are an operator's choice, but a page must never run what a
//! record holds). Elements carry `data-` attributes with the raw values, so
//! that a browser test can compare them with what the API answers.

use super::metrics::RecentError;
use super::TrafficSample;
use crate::compute::overview::Overview;
use std::collections::BTreeMap;
use std::fmt::Write;

/// What one page shows.
pub struct Page<'a> {
    pub overview: &'a Overview,
    pub traffic: &'a [TrafficSample],
    pub sample_secs: u64,
    /// Requests and errors since start.
    pub totals: (u64, u64),
    pub recent_errors: &'a [RecentError],
    pub region: &'a str,
    /// True when the page was shown to a signed-in admin (a sign-out
    /// button is offered).
    pub signed_in: bool,
}

/// Seconds between reloads.
const REFRESH_SECS: u32 = 5;

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1f24;background:#f6f8fa}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.sub{color:#57606a;font-size:.9rem}
table{border-collapse:collapse;background:#fff;min-width:32rem}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;font-size:.9rem;white-space:nowrap}
th{background:#eaeef2}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.off{color:#9a6700;font-weight:600}
.bar{width:10rem;height:.8rem;background:#eaeef2;border:1px solid #afb8c1;display:inline-block;vertical-align:middle}
.fill{height:100%;background:#0969da}.fill.hot{background:#cf222e}
.num{text-align:right;font-variant-numeric:tabular-nums}
svg{background:#fff;border:1px solid #d0d7de}
form{display:inline}
";

/// Escapes `text` for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn head(out: &mut String, title: &str, refresh: bool) {
    out.push_str("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    if refresh {
        let _ = write!(
            out,
            "<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">"
        );
    }
    let _ = write!(
        out,
        "<title>{}</title><style>{STYLE}</style></head><body>",
        escape(title)
    );
}

/// A capacity bar: `used` of `total`.
fn bar(out: &mut String, used: u64, total: u64) {
    let percent = used
        .saturating_mul(100)
        .checked_div(total)
        .unwrap_or(0)
        .min(100);
    let hot = if percent >= 90 { " hot" } else { "" };
    let _ = write!(
        out,
        "<span class=\"bar\" title=\"{percent}%\"><span class=\"fill{hot}\" style=\"display:block;width:{percent}%\"></span></span> "
    );
}

/// The dashboard.
pub fn render(page: &Page<'_>) -> String {
    let overview = page.overview;
    let mut out = String::with_capacity(16 * 1024);
    head(&mut out, "ec2-gateway dashboard", true);
    let _ = write!(
        out,
        "<h1>ec2-gateway</h1><div class=\"sub\">region <b id=\"region\">{}</b> · read at <span id=\"taken-at\">{}</span> · liveness window {} s · reloads every {REFRESH_SECS} s",
        escape(page.region),
        overview.taken_at.format("%Y-%m-%d %H:%M:%S UTC"),
        overview.liveness_window_secs,
    );
    if page.signed_in {
        out.push_str(" · <form method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button></form>");
    }
    out.push_str("</div>");
    zones(&mut out, overview);
    hosts(&mut out, overview);
    instances(&mut out, overview);
    traffic(&mut out, page);
    errors(&mut out, page.recent_errors);
    out.push_str("</body></html>");
    out
}

fn zones(out: &mut String, overview: &Overview) {
    out.push_str("<h2>Availability zones</h2><table id=\"zones\"><tr><th>Zone</th><th>Zone id</th><th>State</th><th>Hosts alive</th><th>vCPUs used</th></tr>");
    for zone in &overview.zones {
        let hosts: Vec<_> = overview
            .hosts
            .iter()
            .filter(|h| h.record.availability_zone == zone.name)
            .collect();
        let alive = hosts.iter().filter(|h| h.alive).count();
        let used: u64 = hosts.iter().map(|h| u64::from(h.record.vcpus_used)).sum();
        let total: u64 = hosts.iter().map(|h| u64::from(h.record.vcpus)).sum();
        let (state, class) = if zone.available {
            ("available", "ok")
        } else {
            ("unavailable", "bad")
        };
        let _ = write!(
            out,
            "<tr class=\"zone\" data-zone=\"{name}\" data-state=\"{state}\"><td>{name}</td><td>{id}</td><td class=\"{class}\">{state}</td><td class=\"num\">{alive} / {count}</td><td>",
            name = escape(&zone.name),
            id = escape(&zone.zone_id),
            count = hosts.len(),
        );
        bar(out, used, total);
        let _ = write!(out, "{used} / {total}</td></tr>");
    }
    out.push_str("</table>");
}

fn hosts(out: &mut String, overview: &Overview) {
    out.push_str("<h2>Compute hosts</h2><table id=\"hosts\"><tr><th>Host</th><th>Zone</th><th>Kind</th><th>Status</th><th>Heartbeat</th><th>vCPUs</th><th>Memory (MiB)</th></tr>");
    for host in &overview.hosts {
        let record = &host.record;
        let (status, class) = match (record.disabled, host.alive) {
            (true, _) => ("disabled", "off"),
            (false, true) => ("enabled", "ok"),
            (false, false) => ("down", "bad"),
        };
        let kind = match &record.agent {
            Some(agent) => format!(
                "agent {} at {}",
                escape(&agent.version),
                escape(&agent.address)
            ),
            None if record.simulated => "built-in".to_string(),
            None => "external".to_string(),
        };
        let reason = record
            .disabled_reason
            .as_deref()
            .map(|r| format!(" <span class=\"sub\">({})</span>", escape(r)))
            .unwrap_or_default();
        let heartbeat = match host.heartbeat_age_secs {
            Some(age) => format!("{age:.1} s ago"),
            None => "never".to_string(),
        };
        let _ = write!(
            out,
            "<tr class=\"host\" data-host=\"{name}\" data-zone=\"{zone}\" data-enabled=\"{enabled}\" data-alive=\"{alive}\" data-vcpus=\"{vcpus}\" data-vcpus-used=\"{vcpus_used}\" data-memory-mib=\"{memory}\" data-memory-mib-used=\"{memory_used}\"><td>{name}</td><td>{zone}</td><td>{kind}</td><td class=\"{class}\">{status}{reason}</td><td class=\"num\">{heartbeat}</td><td>",
            name = escape(&record.host),
            zone = escape(&record.availability_zone),
            enabled = !record.disabled,
            alive = host.alive,
            vcpus = record.vcpus,
            vcpus_used = record.vcpus_used,
            memory = record.memory_mib,
            memory_used = record.memory_mib_used,
        );
        bar(out, u64::from(record.vcpus_used), u64::from(record.vcpus));
        let _ = write!(out, "{} / {}</td><td>", record.vcpus_used, record.vcpus);
        bar(out, record.memory_mib_used, record.memory_mib);
        let _ = write!(
            out,
            "{} / {}</td></tr>",
            record.memory_mib_used, record.memory_mib
        );
    }
    out.push_str("</table>");
}

/// The states in EC2's order.
const STATES: [&str; 6] = [
    "pending",
    "running",
    "stopping",
    "stopped",
    "shutting-down",
    "terminated",
];

fn instances(out: &mut String, overview: &Overview) {
    out.push_str("<h2>Instances</h2><table id=\"instances\"><tr><th>Zone</th>");
    for state in STATES {
        let _ = write!(out, "<th>{state}</th>");
    }
    out.push_str("</tr>");
    let mut by_zone: BTreeMap<&str, [u64; STATES.len()]> = overview
        .zones
        .iter()
        .map(|zone| (zone.name.as_str(), [0; STATES.len()]))
        .collect();
    for ((zone, state), count) in &overview.instances {
        if let Some(index) = STATES.iter().position(|s| s == state) {
            by_zone.entry(zone.as_str()).or_default()[index] += count;
        }
    }
    for (zone, counts) in by_zone {
        let _ = write!(
            out,
            "<tr data-zone=\"{}\"><td>{}</td>",
            escape(zone),
            escape(zone)
        );
        for (state, count) in STATES.iter().zip(counts) {
            let _ = write!(
                out,
                "<td class=\"num\" data-state=\"{state}\" data-count=\"{count}\">{count}</td>"
            );
        }
        out.push_str("</tr>");
    }
    let _ = write!(
        out,
        "</table><p class=\"sub\">Lifecycle: <span id=\"lifecycle-due\">{}</span> transitions due, {} scheduled.</p>",
        overview.lifecycle_due, overview.lifecycle_scheduled
    );
}

fn traffic(out: &mut String, page: &Page<'_>) {
    let samples = page.traffic;
    let secs = page.sample_secs.max(1) as f64;
    let last_minute: Vec<&TrafficSample> = samples
        .iter()
        .rev()
        .take((60 / page.sample_secs.max(1)) as usize)
        .collect();
    let window = (last_minute.len() as f64 * secs).max(secs);
    let rate = last_minute.iter().map(|s| s.requests).sum::<u64>() as f64 / window;
    let error_rate = last_minute.iter().map(|s| s.errors).sum::<u64>() as f64 / window;
    let _ = write!(
        out,
        "<h2>Requests</h2><p>Last minute: <b id=\"request-rate\">{rate:.1}</b> requests/s, <b id=\"error-rate\">{error_rate:.1}</b> errors/s · since start: {} requests, {} errors.</p>",
        page.totals.0, page.totals.1
    );
    if samples.is_empty() {
        out.push_str("<p class=\"sub\">The chart starts after the first ten seconds.</p>");
        return;
    }
    // One bar pair per sample: requests (blue) and errors (red), per second.
    let width = 600.0;
    let height = 120.0;
    let peak = samples.iter().map(|s| s.requests).max().unwrap_or(0).max(1) as f64;
    let step = width / super::SAMPLES as f64;
    let _ = write!(
        out,
        "<svg id=\"traffic\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"requests and errors per {secs} s\">"
    );
    let offset = super::SAMPLES - samples.len();
    for (index, sample) in samples.iter().enumerate() {
        let x = (offset + index) as f64 * step;
        let h = sample.requests as f64 / peak * (height - 4.0);
        let e = sample.errors as f64 / peak * (height - 4.0);
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#0969da\"><title>{} requests, {} errors at {}</title></rect><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{e:.1}\" fill=\"#cf222e\"/>",
            height - h,
            step * 0.8,
            sample.requests,
            sample.errors,
            sample.at.format("%H:%M:%S"),
            height - e,
            step * 0.8,
        );
    }
    let _ = write!(
        out,
        "</svg><div class=\"sub\">Last {} minutes, {} s per bar; the tallest bar is {} requests.</div>",
        super::SAMPLES as u64 * page.sample_secs / 60,
        page.sample_secs,
        peak as u64
    );
}

fn errors(out: &mut String, recent: &[RecentError]) {
    out.push_str("<h2>Last errors</h2>");
    if recent.is_empty() {
        out.push_str("<p class=\"sub\" id=\"no-errors\">None since start.</p>");
        return;
    }
    out.push_str("<table id=\"errors\"><tr><th>Time</th><th>Action</th><th>Code</th><th>Status</th><th>Request id</th></tr>");
    for error in recent {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            error.at.format("%H:%M:%S"),
            escape(error.action),
            escape(error.code),
            error.status,
            escape(&error.request_id)
        );
    }
    out.push_str("</table>");
}

/// The sign-in form (with `problem` after a refused attempt).
pub fn login_page(problem: Option<&str>) -> String {
    let mut out = String::new();
    head(&mut out, "ec2-gateway: sign in", false);
    out.push_str("<h1>ec2-gateway</h1><p class=\"sub\">Sign in with an admin access key to see the dashboard.</p>");
    if let Some(problem) = problem {
        let _ = write!(
            out,
            "<p class=\"bad\" id=\"problem\">{}</p>",
            escape(problem)
        );
    }
    out.push_str(
        "<form method=\"post\" action=\"/login\" id=\"login\"><p><label>Access key id<br><input name=\"access_key_id\" autocomplete=\"username\" required></label></p><p><label>Secret access key<br><input name=\"secret_access_key\" type=\"password\" autocomplete=\"current-password\" required></label></p><p><button type=\"submit\">Sign in</button></p></form></body></html>",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_a_value_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
