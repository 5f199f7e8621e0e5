//! How fast a faucet hands out: a token bucket per recipient, one for the whole faucet, and a
//! cap per asset and UTC day, so a script cannot empty it (`[chains.faucet.limits]`).
//!
//! A refused request is answered 429 `rate_limited` with `Retry-After`, and takes nothing from
//! any bucket or cap. The counts live in memory: a restart forgives them (the faucet's balance
//! is what lasts).

use std::collections::HashMap;

use domain::address::Address;
use domain::money::Amount;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

const DAY_MS: u64 = 86_400_000;
/// Recipients remembered at most; past it, those whose bucket has refilled are forgotten.
const RECIPIENTS_KEPT: usize = 100_000;

/// The `[chains.faucet.limits]` table.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaucetLimits {
    /// Requests one recipient may make at once.
    pub per_recipient_burst: u32,
    /// Seconds for one recipient to earn another request.
    pub per_recipient_every_s: u32,
    /// Requests the faucet serves at once.
    pub global_burst: u32,
    /// Requests the faucet serves per second, sustained.
    pub global_per_s: u32,
    /// Most the faucet hands out per UTC day, as a multiple of a request's maximum (each asset
    /// on its own).
    pub daily_max_requests_worth: u32,
}

impl Default for FaucetLimits {
    fn default() -> Self {
        FaucetLimits {
            per_recipient_burst: 5,
            per_recipient_every_s: 60,
            global_burst: 500,
            global_per_s: 50,
            daily_max_requests_worth: 100,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

impl Bucket {
    fn full(capacity: u32, now_ms: u64) -> Bucket {
        Bucket {
            tokens: f64::from(capacity),
            at_ms: now_ms,
        }
    }

    /// Refilled to `now_ms` at `per_ms`, at most `capacity`.
    fn refilled(self, capacity: u32, per_ms: f64, now_ms: u64) -> Bucket {
        let earned = now_ms.saturating_sub(self.at_ms) as f64 * per_ms;
        Bucket {
            tokens: (self.tokens + earned).min(f64::from(capacity)),
            at_ms: now_ms.max(self.at_ms),
        }
    }

    /// Seconds until it holds a token.
    fn wait_s(self, per_ms: f64) -> u64 {
        ((1.0 - self.tokens) / per_ms / 1000.0).ceil().max(1.0) as u64
    }
}

#[derive(Default)]
struct Counts {
    global: Option<Bucket>,
    recipients: HashMap<Address, Bucket>,
    /// Handed out today, per asset (None: the native one): (UTC day, base units).
    daily: HashMap<Option<String>, (u64, u128)>,
}

/// A faucet's limits and what has been taken against them.
pub struct FaucetGate {
    limits: FaucetLimits,
    counts: Mutex<Counts>,
}

impl FaucetGate {
    /// A gate with nothing taken.
    pub fn new(limits: FaucetLimits) -> FaucetGate {
        FaucetGate {
            limits,
            counts: Mutex::default(),
        }
    }

    /// Takes one request of `amount` of `asset` (its per-request maximum `max`) for `to` at
    /// `now_ms`, or says when to come back.
    pub fn take(
        &self,
        to: Address,
        asset: Option<&str>,
        amount: Amount,
        max: Amount,
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let l = &self.limits;
        let recipient_rate = 1.0 / (f64::from(l.per_recipient_every_s.max(1)) * 1000.0);
        let global_rate = f64::from(l.global_per_s.max(1)) / 1000.0;
        let mut counts = self.counts.lock();
        let recipient = counts
            .recipients
            .get(&to)
            .copied()
            .unwrap_or(Bucket::full(l.per_recipient_burst, now_ms))
            .refilled(l.per_recipient_burst, recipient_rate, now_ms);
        if recipient.tokens < 1.0 {
            return Err(ApiError::rate_limited(
                format!("{to} has asked the faucet too often; come back later"),
                recipient.wait_s(recipient_rate),
            ));
        }
        let global = counts
            .global
            .unwrap_or(Bucket::full(l.global_burst, now_ms))
            .refilled(l.global_burst, global_rate, now_ms);
        if global.tokens < 1.0 {
            return Err(ApiError::rate_limited(
                "the faucet is busy; come back later",
                global.wait_s(global_rate),
            ));
        }
        let day = now_ms / DAY_MS;
        let cap = max.0.saturating_mul(u128::from(l.daily_max_requests_worth));
        let key = asset.map(str::to_string);
        let given = match counts.daily.get(&key) {
            Some((d, given)) if *d == day => *given,
            _ => 0,
        };
        if given.saturating_add(amount.0) > cap {
            let tomorrow_s = ((day + 1) * DAY_MS - now_ms).div_ceil(1000);
            return Err(ApiError::rate_limited(
                format!("the faucet has handed out its {cap} base units for today"),
                tomorrow_s,
            ));
        }
        counts.daily.insert(key, (day, given + amount.0));
        counts.global = Some(Bucket {
            tokens: global.tokens - 1.0,
            ..global
        });
        if counts.recipients.len() >= RECIPIENTS_KEPT {
            let burst = f64::from(l.per_recipient_burst);
            counts.recipients.retain(|_, b| {
                b.refilled(l.per_recipient_burst, recipient_rate, now_ms)
                    .tokens
                    < burst
            });
        }
        counts.recipients.insert(
            to,
            Bucket {
                tokens: recipient.tokens - 1.0,
                ..recipient
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Amount = Amount(100);

    fn gate() -> FaucetGate {
        FaucetGate::new(FaucetLimits {
            per_recipient_burst: 2,
            per_recipient_every_s: 10,
            global_burst: 4,
            global_per_s: 1,
            daily_max_requests_worth: 5,
        })
    }

    fn refused_for(result: Result<(), ApiError>) -> Option<u64> {
        result.err().map(|e| {
            assert_eq!(e.code, "rate_limited");
            e.retry_after_s.unwrap()
        })
    }

    #[test]
    fn a_recipient_gets_its_burst_then_one_request_per_period() {
        let gate = gate();
        let alice = Address([1; 20]);
        assert!(gate.take(alice, None, MAX, MAX, 0).is_ok());
        assert!(gate.take(alice, None, MAX, MAX, 0).is_ok());
        assert_eq!(refused_for(gate.take(alice, None, MAX, MAX, 0)), Some(10));
        assert_eq!(
            refused_for(gate.take(alice, None, MAX, MAX, 5_000)),
            Some(5)
        );
        assert!(
            gate.take(alice, None, MAX, MAX, 10_000).is_ok(),
            "earned again"
        );
        assert!(
            gate.take(Address([2; 20]), None, MAX, MAX, 10_000).is_ok(),
            "others are not held up"
        );
    }

    #[test]
    fn the_faucet_as_a_whole_is_bounded_per_second_and_per_day() {
        let gate = gate();
        let to = |i: u8| Address([i; 20]);
        for i in 0..4 {
            assert!(gate.take(to(i), None, MAX, MAX, 0).is_ok());
        }
        assert_eq!(
            refused_for(gate.take(to(9), None, MAX, MAX, 0)),
            Some(1),
            "global burst spent"
        );
        assert!(
            gate.take(to(9), None, MAX, MAX, 1_000).is_ok(),
            "one per second after"
        );
        // Five requests' worth a day: the sixth waits for the next UTC day.
        let wait = refused_for(gate.take(to(10), None, MAX, MAX, 10_000)).unwrap();
        assert_eq!(wait, (DAY_MS - 10_000) / 1000);
        assert!(
            gate.take(to(10), Some("USDX"), MAX, MAX, 10_000).is_ok(),
            "each asset on its own"
        );
        assert!(
            gate.take(to(10), None, MAX, MAX, DAY_MS).is_ok(),
            "a new day"
        );
        // A refusal takes nothing: the refused recipient still has its burst.
        let gate = FaucetGate::new(FaucetLimits {
            daily_max_requests_worth: 1,
            ..FaucetLimits::default()
        });
        assert!(gate.take(to(1), None, MAX, MAX, 0).is_ok());
        assert!(gate.take(to(2), None, MAX, MAX, 0).is_err());
        let fresh = FaucetLimits::default().per_recipient_burst;
        let held = gate.counts.lock().recipients.get(&to(2)).map(|b| b.tokens);
        assert_eq!(held, None, "no bucket was charged for {fresh} requests");
    }
}
