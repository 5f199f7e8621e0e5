//! Prometheus metrics of the file log, registered once in the default registry.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, Opts};

pub(crate) struct Metrics {
    pub(crate) appends_total: IntCounter,
    pub(crate) events_appended_total: IntCounter,
    pub(crate) group_requests: Histogram,
    pub(crate) group_events: Histogram,
    pub(crate) fdatasync_seconds: Histogram,
    pub(crate) append_seconds: Histogram,
}

pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    if let Err(e) = prometheus::default_registry().register(Box::new(c.clone())) {
        tracing::warn!(error = %e, "store metric not registered");
    }
    c
}

fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::with_opts(Opts::new(name, help)).expect("valid counter"))
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register(
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
            .expect("valid histogram"),
    )
}

impl Metrics {
    fn new() -> Self {
        let sizes = prometheus::exponential_buckets(1.0, 2.0, 14).expect("valid buckets");
        let seconds = prometheus::exponential_buckets(0.000_05, 2.0, 16).expect("valid buckets");
        Self {
            appends_total: counter(
                "aitbc_store_appends_total",
                "Append requests answered successfully.",
            ),
            events_appended_total: counter(
                "aitbc_store_events_appended_total",
                "Events written to the log.",
            ),
            group_requests: histogram(
                "aitbc_store_group_commit_requests",
                "Append requests made durable by one fdatasync.",
                sizes.clone(),
            ),
            group_events: histogram(
                "aitbc_store_group_commit_events",
                "Events made durable by one fdatasync.",
                sizes,
            ),
            fdatasync_seconds: histogram(
                "aitbc_store_fdatasync_seconds",
                "Latency of one fdatasync of the log.",
                seconds.clone(),
            ),
            append_seconds: histogram(
                "aitbc_store_append_seconds",
                "Latency of an append, from request to durable answer.",
                seconds,
            ),
        }
    }
}
