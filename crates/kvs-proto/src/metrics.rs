//! The metrics every kvs process exposes on `GET /metrics`, in the
//! Prometheus text format, kept with the `prometheus-client` crate.
//!
//! Every process counts its calls per method and outcome
//! (`kvs_requests_total`), times them (`kvs_request_duration_seconds`) and
//! counts what it refused and why (`kvs_refused_total{reason}`: an
//! unauthorised call, a fenced one, a slow or oversized client, a full
//! connection table…). A process adds its own metrics with
//! [`Metrics::register`] at start; values that are read rather than counted
//! (log length, keys held) are refreshed by the process just before each
//! scrape (see [`crate::serve::Probes::metrics`]).
//!
//! One process, one registry: [`metrics`] is that registry.

use std::sync::LazyLock;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

/// A label set of fixed names and `'static` values.
pub type Labels<const N: usize> = [(&'static str, &'static str); N];

/// A histogram family whose histograms all have [`latency_histogram`]'s buckets.
pub type LatencyFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Buckets from 50 µs to about 3 s, for call latencies.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

/// The process's registry and the metrics every process has.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<Labels<2>, Counter>,
    latency: LatencyFamily<Labels<1>>,
    refused: Family<Labels<1>, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("kvs");
        let requests = Family::<Labels<2>, Counter>::default();
        let latency = LatencyFamily::<Labels<1>>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let refused = Family::<Labels<1>, Counter>::default();
        registry.register(
            "requests",
            "XML-RPC calls answered, by method and outcome (ok or fault)",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer an XML-RPC call, by method",
            latency.clone(),
        );
        registry.register("refused", "Calls and connections refused, by reason", refused.clone());
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            refused,
        }
    }

    /// Adds a process's own metric, named `kvs_NAME`.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.lock().register(name, help, metric);
    }

    /// Records one answered call.
    pub fn request(&self, method: &'static str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "fault" };
        self.requests
            .get_or_create(&[("method", method), ("outcome", outcome)])
            .inc();
        self.latency
            .get_or_create(&[("method", method)])
            .observe(took.as_secs_f64());
    }

    /// Records a refusal (`unauthorized`, `superseded`, `too_many_connections`, …).
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&[("reason", reason)]).inc();
    }

    /// Everything, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry.lock());
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_refusals_show_in_the_text() {
        let metrics = metrics();
        metrics.request("put", true, Duration::from_millis(2));
        metrics.request("put", false, Duration::from_millis(1));
        metrics.refused("unauthorized");
        let text = metrics.encode();
        assert!(
            text.contains("kvs_requests_total{method=\"put\",outcome=\"ok\"}"),
            "{text}"
        );
        assert!(
            text.contains("kvs_request_duration_seconds_count{method=\"put\"}"),
            "{text}"
        );
        assert!(text.contains("kvs_refused_total{reason=\"unauthorized\"}"), "{text}");
    }
}
