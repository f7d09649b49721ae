//! Prometheus metrics of the operator, one registry for the process.

use std::sync::OnceLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    /// Reconciles by result (`ok`, `error`).
    pub reconciles: Family<Labels, Counter>,
    /// Failed reconciles by error kind ([`crate::Error::metric_label`]).
    pub errors: Family<Labels, Counter>,
    /// Seconds one reconcile takes.
    pub reconcile_duration: Histogram,
    /// AWS API calls by service and operation.
    pub aws_calls: Family<Labels, Counter>,
    /// AWS calls that were throttled, by service.
    pub aws_throttles: Family<Labels, Counter>,
    /// Apps by their Ready condition (`True`, `False`, `Unknown`), set at scrape time.
    pub apps: Family<Labels, Gauge>,
    /// 1 while this process holds the leader lease.
    pub leader: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("halo");
        let reconciles = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let aws_calls = Family::<Labels, Counter>::default();
        let aws_throttles = Family::<Labels, Counter>::default();
        let apps = Family::<Labels, Gauge>::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by error kind",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Seconds one reconcile takes",
            reconcile_duration.clone(),
        );
        registry.register(
            "aws_calls",
            "AWS API calls by service and operation",
            aws_calls.clone(),
        );
        registry.register(
            "aws_throttles",
            "Throttled AWS API calls by service",
            aws_throttles.clone(),
        );
        registry.register(
            "apps",
            "HighlyAvailableApps by their Ready condition",
            apps.clone(),
        );
        registry.register(
            "leader",
            "1 while this process holds the leader lease",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            reconcile_duration,
            aws_calls,
            aws_throttles,
            apps,
            leader,
        }
    }

    /// The Prometheus (OpenMetrics) text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn reconciled(&self, error_kind: Option<&'static str>, seconds: f64) {
        let result = if error_kind.is_some() { "error" } else { "ok" };
        self.reconciles
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
        if let Some(kind) = error_kind {
            self.errors
                .get_or_create(&vec![("kind", kind.to_string())])
                .inc();
        }
        self.reconcile_duration.observe(seconds);
    }

    /// Counts one AWS call; `throttled` when AWS answered with a throttling error.
    pub fn aws_call(&self, service: &'static str, operation: &'static str, throttled: bool) {
        self.aws_calls
            .get_or_create(&vec![
                ("service", service.to_string()),
                ("operation", operation.to_string()),
            ])
            .inc();
        if throttled {
            self.aws_throttles
                .get_or_create(&vec![("service", service.to_string())])
                .inc();
        }
    }

    /// Replaces the apps-by-Ready gauge with `counts` of (`True`/`False`/`Unknown`, n).
    pub fn set_apps(&self, counts: &[(&'static str, i64)]) {
        for (ready, n) in counts {
            self.apps
                .get_or_create(&vec![("ready", ready.to_string())])
                .set(*n);
        }
    }
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scrape shows the reconcile, error, AWS and app metrics with their labels.
    #[test]
    fn exposition_has_every_metric() {
        let m = Metrics::new();
        m.reconciled(None, 0.01);
        m.reconciled(Some("KubernetesAPIError"), 0.2);
        m.aws_call("rds", "DescribeDBClusters", false);
        m.aws_call("route53", "ChangeResourceRecordSets", true);
        m.set_apps(&[("True", 2), ("False", 1), ("Unknown", 0)]);
        m.leader.set(1);
        let text = m.encode();
        for line in [
            r#"halo_reconciles_total{result="ok"} 1"#,
            r#"halo_reconciles_total{result="error"} 1"#,
            r#"halo_reconcile_errors_total{kind="KubernetesAPIError"} 1"#,
            "halo_reconcile_duration_seconds_count 2",
            r#"halo_aws_calls_total{service="rds",operation="DescribeDBClusters"} 1"#,
            r#"halo_aws_throttles_total{service="route53"} 1"#,
            r#"halo_apps{ready="True"} 2"#,
            r#"halo_apps{ready="False"} 1"#,
            "halo_leader 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
