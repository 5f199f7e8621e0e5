//! What stands between the network and the custodial keys, besides the passphrase: a back-off
//! after failed unlocks (per wallet and per client address), and `Idempotency-Key` replays so a
//! retried send or faucet request pays once.
//!
//! Both live in memory: a restart forgives failures and forgets keys (a retry across a restart
//! may pay again; say so to clients that retry for long).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use domain::hash::Hash32;
use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::app::TxAccepted;
use crate::error::ApiError;

/// Failures allowed before the back-off starts.
const FREE_FAILURES: u32 = 3;
/// The first wait, then doubled per failure.
const FIRST_WAIT_MS: u64 = 5_000;
/// The longest wait.
const LONGEST_WAIT_MS: u64 = 300_000;
/// Entries remembered at most (past it, settled ones are forgotten).
const REMEMBERED_MAX: usize = 100_000;
/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_MS: u64 = 24 * 3_600_000;
/// Longest idempotency key.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    until_ms: u64,
}

/// Failed unlocks and how long each wallet or client must wait.
pub struct Backoff<K> {
    failures: Mutex<HashMap<K, Failures>>,
}

impl<K: Eq + Hash + Clone> Default for Backoff<K> {
    fn default() -> Self {
        Backoff {
            failures: Mutex::default(),
        }
    }
}

impl<K: Eq + Hash + Clone> Backoff<K> {
    /// Refused while any of `keys` must still wait.
    pub fn check(&self, keys: &[K], now_ms: u64) -> Result<(), ApiError> {
        let failures = self.failures.lock();
        let until = keys
            .iter()
            .filter_map(|k| failures.get(k))
            .map(|f| f.until_ms)
            .max()
            .unwrap_or(0);
        match until > now_ms {
            true => Err(ApiError::rate_limited(
                "too many failed unlocks; wait before trying again",
                (until - now_ms).div_ceil(1000),
            )),
            false => Ok(()),
        }
    }

    /// One more failure of each of `keys`.
    pub fn failed(&self, keys: &[K], now_ms: u64) {
        let mut failures = self.failures.lock();
        if failures.len() >= REMEMBERED_MAX {
            failures.retain(|_, f| f.until_ms > now_ms);
        }
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert(Failures {
                count: 0,
                until_ms: 0,
            });
            entry.count = entry.count.saturating_add(1);
            let wait = match entry.count.checked_sub(FREE_FAILURES) {
                None | Some(0) => 0,
                Some(n) => FIRST_WAIT_MS
                    .saturating_mul(1 << (n - 1).min(20))
                    .min(LONGEST_WAIT_MS),
            };
            entry.until_ms = now_ms + wait;
        }
    }

    /// A success: `key`'s failures are forgotten.
    pub fn succeeded(&self, key: &K) {
        self.failures.lock().remove(key);
    }
}

/// The answer to a request made under an idempotency key, computed once.
type Answer = Arc<OnceCell<TxAccepted>>;

/// A request made under a key: what was asked (its fingerprint), when, its answer.
type Remembered = (Hash32, u64, Answer);

/// Requests made under an `Idempotency-Key`, by endpoint and key.
#[derive(Default)]
pub struct Idempotency {
    keys: Mutex<HashMap<(&'static str, String), Remembered>>,
}

impl Idempotency {
    /// Runs `request` (identified by `fingerprint`) once for `key` at `endpoint`: a repeat gets
    /// the first answer (a concurrent one waits for it); the key reused for another request
    /// is 409 `conflict`; a failed request is not remembered (it may be retried).
    pub async fn once(
        &self,
        endpoint: &'static str,
        key: Option<&str>,
        fingerprint: Hash32,
        now_ms: u64,
        request: impl Future<Output = Result<TxAccepted, ApiError>>,
    ) -> Result<TxAccepted, ApiError> {
        let Some(key) = key else {
            return request.await;
        };
        if key.is_empty() || key.len() > IDEMPOTENCY_KEY_LEN_MAX {
            return Err(ApiError::malformed(format!(
                "Idempotency-Key has 1 to {IDEMPOTENCY_KEY_LEN_MAX} characters"
            )));
        }
        let id = (endpoint, key.to_string());
        let answer = {
            let mut keys = self.keys.lock();
            if keys.len() >= REMEMBERED_MAX {
                keys.retain(|_, (_, at, _)| now_ms < at.saturating_add(IDEMPOTENCY_TTL_MS));
            }
            let fresh = || (fingerprint, now_ms, Answer::default());
            let entry = keys.entry(id.clone()).or_insert_with(fresh);
            if now_ms >= entry.1.saturating_add(IDEMPOTENCY_TTL_MS) {
                *entry = fresh();
            }
            if entry.0 != fingerprint {
                return Err(ApiError::new(
                    "conflict",
                    "this Idempotency-Key was used for another request",
                ));
            }
            Arc::clone(&entry.2)
        };
        let result = answer.get_or_try_init(|| request).await.cloned();
        if result.is_err() {
            let mut keys = self.keys.lock();
            if keys
                .get(&id)
                .is_some_and(|(_, _, a)| Arc::ptr_eq(a, &answer))
            {
                keys.remove(&id);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_doubling_and_a_success_forgets_them() {
        let backoff = Backoff::<&str>::default();
        for _ in 0..FREE_FAILURES {
            assert!(backoff.check(&["w"], 0).is_ok());
            backoff.failed(&["w"], 0);
        }
        assert!(
            backoff.check(&["w"], 0).is_ok(),
            "the first failures are free"
        );
        backoff.failed(&["w", "client"], 0);
        let refused = backoff.check(&["w"], 0).unwrap_err();
        assert_eq!(
            (refused.code, refused.retry_after_s),
            ("rate_limited", Some(5))
        );
        assert!(backoff.check(&["w"], 5_000).is_ok(), "the wait is over");
        backoff.failed(&["w"], 5_000);
        assert_eq!(
            backoff.check(&["w"], 5_000).unwrap_err().retry_after_s,
            Some(10),
            "doubled"
        );
        assert!(
            backoff.check(&["other", "client"], 0).is_ok(),
            "the client's first failure"
        );
        backoff.succeeded(&"w");
        assert!(backoff.check(&["w"], 5_000).is_ok());
    }

    fn accepted(byte: u8) -> TxAccepted {
        TxAccepted {
            tx_hash: Hash32([byte; 32]),
            status: "committed",
            position: u64::from(byte),
            last_position: u64::from(byte),
            outcome: "applied",
            reason: None,
        }
    }

    #[actix_rt::test]
    async fn a_key_answers_once_and_is_refused_for_another_request() {
        let keys = Idempotency::default();
        let (same, other) = (Hash32([1; 32]), Hash32([2; 32]));
        let first = keys
            .once("send", Some("k"), same, 0, async { Ok(accepted(1)) })
            .await;
        let again = keys
            .once("send", Some("k"), same, 5, async { Ok(accepted(2)) })
            .await;
        assert_eq!(
            first.unwrap(),
            again.unwrap(),
            "the first answer, not a second payment"
        );
        let reused = keys
            .once("send", Some("k"), other, 5, async { Ok(accepted(3)) })
            .await;
        assert_eq!(reused.unwrap_err().code, "conflict");
        let elsewhere = keys
            .once("faucet", Some("k"), other, 5, async { Ok(accepted(4)) })
            .await;
        assert_eq!(elsewhere.unwrap(), accepted(4), "keys are per endpoint");
        let failed = keys
            .once("send", Some("f"), same, 0, async {
                Err(ApiError::new("unavailable", "x"))
            })
            .await;
        assert!(failed.is_err());
        let retried = keys
            .once("send", Some("f"), same, 1, async { Ok(accepted(5)) })
            .await;
        assert_eq!(retried.unwrap(), accepted(5), "a failure is not remembered");
        let later = keys.once("send", Some("k"), other, IDEMPOTENCY_TTL_MS, async {
            Ok(accepted(6))
        });
        assert_eq!(
            later.await.unwrap(),
            accepted(6),
            "a key is forgotten after a day"
        );
    }
}
