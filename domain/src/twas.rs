//! Voting power (PRODUCT.md §3): the time-weighted average balance (TWAS) of an address over
//! the window before a proposal's snapshot, times the agent multiplier, clamped to a share of
//! the supply at the snapshot.
//!
//! The average is integrated exactly, to the millisecond, over the address's balance changes:
//! a balance held for the whole window counts fully, one held for a tenth of it a tenth, one
//! received after the snapshot not at all. All arithmetic is integer and rounds down; nothing
//! overflows for any balance a u128 holds (products are split as in `vesting::vested_at`).

use serde::{Deserialize, Serialize};

use crate::money::Amount;

/// Basis points in one.
pub const BPS: u128 = 10_000;
/// Highest agent reputation.
pub const REPUTATION_MAX: u16 = 1_000;

/// An address's balance from `at_ms` until the next change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceChange {
    /// When it took this value, Unix ms (the commit time of the transaction that changed it).
    pub at_ms: u64,
    /// The balance from then on.
    pub balance: Amount,
}

/// `value × num ÷ den`, rounded down, without overflow when `num ≤ den`.
fn mul_div(value: u128, num: u128, den: u128) -> u128 {
    debug_assert!(den > 0 && num <= den);
    (value / den) * num + (value % den) * num / den
}

/// Longest window [`twas`] takes (about 146 million years), so that a remainder times a
/// duration fits a u128.
pub const WINDOW_MS_MAX: u64 = 1 << 62;

/// The time-weighted average balance over `[start_ms, end_ms)` of a history ordered by
/// `at_ms` (the balance before its first change is zero). An empty window averages to zero.
/// Panics on a window longer than [`WINDOW_MS_MAX`] (governance windows are at most years).
pub fn twas(history: &[BalanceChange], start_ms: u64, end_ms: u64) -> Amount {
    if end_ms <= start_ms {
        return Amount::ZERO;
    }
    assert!(end_ms - start_ms <= WINDOW_MS_MAX, "TWAS window too long");
    let window = u128::from(end_ms - start_ms);
    // Σ balance × held ÷ window, as a whole part and a remainder below `window`, so that no
    // product of a balance and a duration is ever formed.
    let (mut whole, mut remainder) = (0u128, 0u128);
    for (i, change) in history.iter().enumerate() {
        let until = history.get(i + 1).map_or(u64::MAX, |next| next.at_ms);
        let (from, to) = (change.at_ms.max(start_ms), until.min(end_ms));
        if to <= from {
            continue;
        }
        let held = u128::from(to - from);
        let balance = change.balance.0;
        whole += (balance / window) * held;
        remainder += (balance % window) * held;
        whole += remainder / window;
        remainder %= window;
    }
    Amount(whole)
}

/// The sum of two balance histories (each ordered by `at_ms`, zero before its first change):
/// a change wherever either changes.
pub fn sum_histories(a: &[BalanceChange], b: &[BalanceChange]) -> Vec<BalanceChange> {
    let (mut i, mut j) = (0, 0);
    let (mut x, mut y) = (Amount::ZERO, Amount::ZERO);
    let mut sum: Vec<BalanceChange> = Vec::with_capacity(a.len() + b.len());
    while i < a.len() || j < b.len() {
        let at_ms = match (a.get(i), b.get(j)) {
            (Some(p), Some(q)) => p.at_ms.min(q.at_ms),
            (Some(p), None) => p.at_ms,
            (None, Some(q)) => q.at_ms,
            (None, None) => unreachable!("one side has changes left"),
        };
        while let Some(change) = a.get(i).filter(|c| c.at_ms == at_ms) {
            x = change.balance;
            i += 1;
        }
        while let Some(change) = b.get(j).filter(|c| c.at_ms == at_ms) {
            y = change.balance;
            j += 1;
        }
        let balance = Amount(x.0.saturating_add(y.0));
        match sum.last_mut() {
            Some(last) if last.at_ms == at_ms => last.balance = balance,
            _ => sum.push(BalanceChange { at_ms, balance }),
        }
    }
    sum
}

/// An address's voting power at a snapshot, and how it was reached (API.md's
/// `GET /v1/proposals/{id}/power/{address}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Power {
    /// Time-weighted average balance over the window.
    pub twas: Amount,
    /// Reputation of an agent (0 for other accounts).
    pub reputation: u16,
    /// 10,000 × (1 + reputation ÷ 1000).
    pub multiplier_bps: u32,
    /// `twas × multiplier`.
    pub uncapped: Amount,
    /// `power_cap_bps` of the supply at the snapshot.
    pub cap: Amount,
    /// `min(uncapped, cap)`.
    pub power: Amount,
}

/// The voting power of an address with `history` at `snapshot_ms`: TWAS over the `window_ms`
/// before it, × (1 + reputation/1000) (reputation clamped to 0–1000), clamped to
/// `cap_bps` of `supply`.
pub fn power(
    history: &[BalanceChange],
    snapshot_ms: u64,
    window_ms: u64,
    reputation: u16,
    supply: Amount,
    cap_bps: u32,
) -> Power {
    let twas = twas(history, snapshot_ms.saturating_sub(window_ms), snapshot_ms);
    let reputation = reputation.min(REPUTATION_MAX);
    let multiplier_bps = 10_000 + 10 * u32::from(reputation);
    // × (1000 + r) / 1000 ≤ × 2: the whole part and the rest, each without overflow.
    let extra = mul_div(twas.0, u128::from(reputation), u128::from(REPUTATION_MAX));
    let uncapped = Amount(twas.0.saturating_add(extra));
    let cap = Amount(mul_div(supply.0, u128::from(cap_bps.min(BPS as u32)), BPS));
    Power {
        twas,
        reputation,
        multiplier_bps,
        uncapped,
        cap,
        power: uncapped.min(cap),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY_MS: u64 = 24 * 3600 * 1000;

    fn at(at_ms: u64, balance: u128) -> BalanceChange {
        BalanceChange {
            at_ms,
            balance: Amount(balance),
        }
    }

    /// The integral with exact rationals over small numbers: Σ balance × held, then ÷ window.
    fn closed_form(history: &[BalanceChange], start: u64, end: u64) -> u128 {
        let mut sum = 0u128;
        for (i, c) in history.iter().enumerate() {
            let until = history.get(i + 1).map_or(u64::MAX, |n| n.at_ms);
            let (from, to) = (c.at_ms.max(start), until.min(end));
            if to > from {
                sum += c.balance.0 * u128::from(to - from);
            }
        }
        sum / u128::from(end - start)
    }

    /// A random piecewise-constant history: increasing times, balances up to `max`.
    fn history(max: u128) -> impl Strategy<Value = Vec<BalanceChange>> {
        prop::collection::vec((1u64..DAY_MS / 4, 0..=max), 0..12).prop_map(|steps| {
            let mut t = 0;
            steps
                .into_iter()
                .map(|(gap, balance)| {
                    t += gap;
                    at(t, balance)
                })
                .collect()
        })
    }

    #[test]
    fn a_balance_held_for_part_of_the_window_counts_for_that_part() {
        // 60 % of a 1,000-token supply lent 1 hour before the snapshot of a 24-hour window.
        let lent = 600 * crate::money::ONE_TOKEN;
        let snapshot = 10 * DAY_MS;
        let history = [at(snapshot - 3_600_000, lent), at(snapshot + 1, 0)];
        let twas = twas(&history, snapshot - DAY_MS, snapshot);
        assert_eq!(twas, Amount(lent / 24));
        // Held the whole window: all of it; received after the snapshot: nothing.
        assert_eq!(
            super::twas(&[at(0, 7)], snapshot - DAY_MS, snapshot),
            Amount(7)
        );
        assert_eq!(
            super::twas(&[at(snapshot, 7)], snapshot - DAY_MS, snapshot),
            Amount::ZERO
        );
        assert_eq!(super::twas(&[], 0, 10), Amount::ZERO);
        assert_eq!(
            super::twas(&[at(0, 7)], 10, 10),
            Amount::ZERO,
            "empty window"
        );
    }

    #[test]
    fn a_whale_is_clamped_to_the_cap_and_reputation_multiplies_before_the_cap() {
        let supply = Amount(1_000_000);
        let whale = power(&[at(0, 600_000)], DAY_MS, DAY_MS, 0, supply, 500);
        assert_eq!(
            (whale.uncapped, whale.cap, whale.power),
            (Amount(600_000), Amount(50_000), Amount(50_000))
        );
        let agent = power(&[at(0, 10_000)], DAY_MS, DAY_MS, 500, supply, 500);
        assert_eq!(
            (agent.multiplier_bps, agent.uncapped, agent.power),
            (15_000, Amount(15_000), Amount(15_000))
        );
        let over = power(&[at(0, 10_000)], DAY_MS, DAY_MS, u16::MAX, supply, 500);
        assert_eq!(
            (over.reputation, over.uncapped),
            (1_000, Amount(20_000)),
            "reputation is at most 1000"
        );
    }

    #[test]
    fn the_largest_balances_do_not_overflow() {
        let history = [at(0, u128::MAX), at(DAY_MS / 2, u128::MAX - 1)];
        let twas = twas(&history, 0, DAY_MS);
        assert!(twas.0 >= u128::MAX - 1);
        let p = power(&history, DAY_MS, DAY_MS, 1_000, Amount(u128::MAX), 10_000);
        assert_eq!(p.uncapped, Amount(u128::MAX), "saturates");
        assert_eq!(p.power, p.cap);
    }

    #[test]
    fn summed_histories_change_wherever_either_does() {
        let liquid = [at(10, 1_000), at(20, 800), at(40, 900)];
        let staked = [at(20, 200), at(30, 0)];
        assert_eq!(
            sum_histories(&liquid, &staked),
            vec![at(10, 1_000), at(20, 1_000), at(30, 800), at(40, 900)],
            "a stake moved out of the wallet at 20 changes nothing"
        );
        assert_eq!(sum_histories(&[], &staked), staked.to_vec());
        assert_eq!(sum_histories(&liquid, &[]), liquid.to_vec());
    }

    proptest! {
        /// The TWAS of a sum is the sum of the TWAS (to the base unit each rounds down).
        #[test]
        fn the_twas_of_summed_histories_is_the_sum_of_their_twas(
            a in history(1u128 << 60),
            b in history(1u128 << 60),
            start in 0u64..DAY_MS,
            len in 1u64..2 * DAY_MS,
        ) {
            let end = start + len;
            let whole = closed_form(&sum_histories(&a, &b), start, end);
            let parts = closed_form(&a, start, end) + closed_form(&b, start, end);
            prop_assert!(parts <= whole && whole <= parts + 1, "{parts} vs {whole}");
        }

        #[test]
        fn twas_equals_the_closed_form_integral(
            history in history(1u128 << 60),
            start in 0u64..DAY_MS,
            len in 1u64..2 * DAY_MS,
        ) {
            prop_assert_eq!(twas(&history, start, start + len).0, closed_form(&history, start, start + len));
        }

        #[test]
        fn power_never_exceeds_the_cap(
            history in history(u128::MAX / 2),
            reputation in 0u16..2_000,
            supply in 0u128..u128::MAX,
            cap_bps in 0u32..20_000,
        ) {
            let p = power(&history, DAY_MS, DAY_MS, reputation, Amount(supply), cap_bps);
            prop_assert!(p.power <= p.cap);
            prop_assert!(p.cap.0 <= supply);
            prop_assert!(p.twas <= p.uncapped);
        }

        #[test]
        fn tokens_received_after_the_snapshot_change_nothing(
            history in history(1u128 << 80),
            later in prop::collection::vec((1u64..DAY_MS, 0u128..1u128 << 80), 1..5),
        ) {
            let snapshot = history.last().map_or(DAY_MS, |c| c.at_ms);
            let before = power(&history, snapshot, DAY_MS, 0, Amount(1 << 90), 500);
            let mut extended = history.clone();
            let mut t = snapshot;
            for (gap, balance) in later {
                t += gap;
                extended.push(at(t, balance));
            }
            prop_assert_eq!(power(&extended, snapshot, DAY_MS, 0, Amount(1 << 90), 500), before);
        }

        #[test]
        fn splitting_a_balance_across_addresses_never_gives_more_than_the_whole(
            history in history(1u128 << 100),
            shares in prop::collection::vec(1u128..1_000, 1..5),
        ) {
            // Each part holds its share of every balance the whole held, at the same times.
            let total: u128 = shares.iter().sum();
            let (start, end) = (DAY_MS / 3, DAY_MS / 3 + DAY_MS);
            let whole = twas(&history, start, end);
            let mut parts = 0u128;
            let mut given: Vec<u128> = vec![0; history.len()];
            for (k, share) in shares.iter().enumerate() {
                let part: Vec<BalanceChange> = history
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        // The last part takes the rounding rest, so the parts sum to the whole.
                        let b = match k + 1 == shares.len() {
                            true => c.balance.0 - given[i],
                            false => c.balance.0 / total * share + c.balance.0 % total * share / total,
                        };
                        given[i] += b;
                        at(c.at_ms, b)
                    })
                    .collect();
                parts += twas(&part, start, end).0;
            }
            prop_assert!(parts <= whole.0, "{} > {}", parts, whole.0);
        }
    }
}
