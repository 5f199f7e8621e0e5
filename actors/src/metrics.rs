//! Prometheus metrics of the actor layer (default registry).

use std::sync::LazyLock;

use prometheus::{
    IntCounterVec, IntGauge, IntGaugeVec, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec,
};

/// Commands by aggregate and outcome.
pub static COMMANDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aitbc_commands_total",
        "Commands handled by aggregate actors, by aggregate and outcome (committed, duplicate or an error code)",
        &["aggregate", "outcome"]
    )
    .expect("metric registers once")
});

/// Aggregate actors currently active, by aggregate.
pub static ACTIVE_ACTORS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aitbc_actors_active",
        "Aggregate actors currently activated, by aggregate",
        &["aggregate"]
    )
    .expect("metric registers once")
});

/// Blocks sealed by this node.
pub static BLOCKS_SEALED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aitbc_blocks_sealed_total",
        "Blocks sealed, by chain",
        &["chain"]
    )
    .expect("metric registers once")
});

/// Credits delivered by the transfer manager (not by the request path).
pub static CREDITS_RECOVERED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "aitbc_transfer_credits_recovered_total",
        "Credits the transfer manager had to deliver itself"
    )
    .expect("metric registers once")
});

/// Records one command outcome.
pub fn command(aggregate: &str, outcome: &str) {
    COMMANDS.with_label_values(&[aggregate, outcome]).inc();
}
