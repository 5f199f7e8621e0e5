//! Prometheus metrics of the actor layer (default registry).

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGauge, register_int_counter_vec, register_int_gauge};

/// Commands by kind and outcome.
pub static COMMANDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aitbc_commands_total",
        "Commands handled by actors, by kind and outcome",
        &["kind", "outcome"]
    )
    .expect("metric registers once")
});

/// Wallet actors currently active.
pub static ACTIVE_WALLETS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "aitbc_wallet_actors_active",
        "Wallet actors currently activated"
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
pub fn command(kind: &str, outcome: &str) {
    COMMANDS.with_label_values(&[kind, outcome]).inc();
}
