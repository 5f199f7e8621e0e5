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

/// Protocol steps run by the process manager (not by the request path).
pub static STEPS_RECOVERED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "aitbc_protocol_steps_recovered_total",
        "Protocol steps (credits, payouts, module commands) the process manager had to run itself"
    )
    .expect("metric registers once")
});

/// Timers not run yet.
pub static TIMERS_PENDING: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "aitbc_timers_pending",
        "Durable timers (set by events) whose step has not run yet"
    )
    .expect("metric registers once")
});

/// Records one command outcome.
pub fn command(aggregate: &str, outcome: &str) {
    COMMANDS.with_label_values(&[aggregate, outcome]).inc();
}
