//! Counters the gateway keeps and their Prometheus text rendering. Per-upstream counters live
//! next to the upstream's endpoint set, so the request path updates atomics and takes no lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Latency histogram bucket bounds, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Request counters and latency of one upstream.
#[derive(Debug, Default)]
pub struct UpstreamMetrics {
    /// Answers by status class: index 1..=5 for 1xx..5xx; index 0 for requests the gateway
    /// answered itself with an error (no endpoint, connect failure, timeout).
    pub by_class: [AtomicU64; 6],
    /// Cumulative histogram counts per bucket (plus +Inf at the end).
    pub buckets: [AtomicU64; 13],
    /// Sum of latencies in microseconds.
    pub latency_sum_us: AtomicU64,
    /// Retries on another endpoint.
    pub retries: AtomicU64,
    /// Passive ejections.
    pub ejections: AtomicU64,
}

impl UpstreamMetrics {
    /// Records one finished request.
    pub fn observe(&self, status: Option<u16>, seconds: f64) {
        let class = status.map_or(0, |s| usize::from(s / 100).min(5));
        if let Some(count) = self.by_class.get(class) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let idx = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        if let Some(count) = self.buckets.get(idx) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }
}

/// Gateway-wide counters.
#[derive(Debug, Default)]
pub struct GlobalMetrics {
    /// Requests that matched no route.
    pub no_route: AtomicU64,
    /// Successful configuration reloads.
    pub reloads: AtomicU64,
    /// Reloads rejected because the new configuration was invalid.
    pub reload_failures: AtomicU64,
    /// 1 while the console's event stream is open (`--console`).
    pub console_connected: AtomicU64,
    /// Events received from the console.
    pub console_events: AtomicU64,
}

/// Discovery state of one (credentials, role, region) group, for metrics.
#[derive(Clone, Debug, Default)]
pub struct GroupStats {
    /// DescribeInstances listings attempted.
    pub calls: u64,
    /// Listings that failed.
    pub errors: u64,
    /// Seconds since the last successful listing, or `None` if none yet.
    pub age_seconds: Option<f64>,
    /// True when the last listing failed and the endpoints are the last known ones.
    pub stale: bool,
}

/// A metric line's label value with Prometheus escaping.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one upstream's request metrics.
pub fn render_upstream(
    out: &mut String,
    upstream: &str,
    m: &UpstreamMetrics,
    endpoints: usize,
    healthy: usize,
) {
    let u = label(upstream);
    for (name, count) in ["error", "1xx", "2xx", "3xx", "4xx", "5xx"]
        .iter()
        .zip(&m.by_class)
    {
        let _ = writeln!(
            out,
            "airlock_gateway_requests_total{{upstream=\"{u}\",code=\"{name}\"}} {}",
            count.load(Ordering::Relaxed)
        );
    }
    let mut cumulative = 0;
    for (b, count) in BUCKETS.iter().zip(&m.buckets) {
        cumulative += count.load(Ordering::Relaxed);
        let _ = writeln!(out, "airlock_gateway_request_duration_seconds_bucket{{upstream=\"{u}\",le=\"{b}\"}} {cumulative}");
    }
    // The last bucket, past every bound.
    cumulative += m.buckets.last().map_or(0, |c| c.load(Ordering::Relaxed));
    let _ = writeln!(out, "airlock_gateway_request_duration_seconds_bucket{{upstream=\"{u}\",le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(
        out,
        "airlock_gateway_request_duration_seconds_sum{{upstream=\"{u}\"}} {}",
        m.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "airlock_gateway_request_duration_seconds_count{{upstream=\"{u}\"}} {cumulative}"
    );
    let _ = writeln!(
        out,
        "airlock_gateway_retries_total{{upstream=\"{u}\"}} {}",
        m.retries.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "airlock_gateway_ejections_total{{upstream=\"{u}\"}} {}",
        m.ejections.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "airlock_gateway_endpoints{{upstream=\"{u}\"}} {endpoints}"
    );
    let _ = writeln!(
        out,
        "airlock_gateway_endpoints_healthy{{upstream=\"{u}\"}} {healthy}"
    );
}

/// Writes one discovery group's metrics.
pub fn render_group(out: &mut String, group: &str, s: &GroupStats) {
    let g = label(group);
    let _ = writeln!(
        out,
        "airlock_gateway_discovery_calls_total{{group=\"{g}\"}} {}",
        s.calls
    );
    let _ = writeln!(
        out,
        "airlock_gateway_discovery_errors_total{{group=\"{g}\"}} {}",
        s.errors
    );
    let _ = writeln!(
        out,
        "airlock_gateway_discovery_stale{{group=\"{g}\"}} {}",
        u8::from(s.stale)
    );
    if let Some(age) = s.age_seconds {
        let _ = writeln!(
            out,
            "airlock_gateway_discovery_age_seconds{{group=\"{g}\"}} {age:.3}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_classes() {
        let m = UpstreamMetrics::default();
        m.observe(Some(200), 0.0001);
        m.observe(Some(503), 0.3);
        m.observe(None, 10.0);
        let mut out = String::new();
        render_upstream(&mut out, "gloo-system/a", &m, 2, 1);
        assert!(
            out.contains("requests_total{upstream=\"gloo-system/a\",code=\"2xx\"} 1"),
            "{out}"
        );
        assert!(out.contains("code=\"5xx\"} 1"));
        assert!(out.contains("code=\"error\"} 1"));
        assert!(out.contains("le=\"0.0005\"} 1"));
        assert!(out.contains("le=\"0.5\"} 2"));
        assert!(out.contains("le=\"+Inf\"} 3"));
        assert!(out.contains("airlock_gateway_endpoints_healthy{upstream=\"gloo-system/a\"} 1"));
    }
}
