//! The transfer process manager: makes sure every debit's credits arrive.
//!
//! The request path delivers a transfer's credits right after its debit is durable. This
//! manager follows the log from its checkpoint and remembers every debit whose credits it has
//! not yet seen. A debit still missing a credit after [`CREDIT_GRACE`] (the request path died,
//! e.g. the node crashed between the two appends) gets its credits delivered here. Credits are
//! idempotent (deterministic event ids), so delivering one twice is harmless. The checkpoint is
//! the position of the oldest unfinished debit, so a restart re-reads exactly what may be open.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use actix::prelude::*;
use domain::codec::{WalletFact, decode_wallet_fact};
use domain::hash::Hash32;
use domain::wallet::CreditKind;
use store::{EventStore, RecordedEvent, Snapshot, StoreError};

use crate::limits::{CREDIT_GRACE, TRANSFER_MANAGER_TICK};
use crate::metrics;
use crate::wallet::Committed;
use crate::wallet::WalletRegistry;

/// Snapshot key of the manager's checkpoint (its `revision` holds the log position).
pub const CHECKPOINT_KEY: &str = "process/transfers";

struct Open {
    committed: Committed,
    seen: Instant,
}

/// The process manager actor.
pub struct TransferManager {
    store: Arc<dyn EventStore>,
    registry: WalletRegistry,
    start: u64,
    observed: u64,
    head_at_start: u64,
    open: BTreeMap<u64, Open>,
    by_credit: HashMap<(Hash32, CreditKind), u64>,
    delivering: HashSet<u64>,
    saved_checkpoint: u64,
    recovered: Arc<AtomicBool>,
    recovering: bool,
}

impl TransferManager {
    /// Loads the checkpoint and returns a manager ready to start. `recovered` turns true once
    /// the manager has caught up with the log and finished every transfer it found open.
    pub async fn load(
        store: Arc<dyn EventStore>,
        registry: WalletRegistry,
        recovered: Arc<AtomicBool>,
    ) -> Result<Self, StoreError> {
        let head_at_start = store.next_position();
        let start = match store.load_snapshot(CHECKPOINT_KEY).await? {
            Some(checkpoint) if checkpoint.revision > head_at_start => {
                // Written for a log longer than this one: resuming there would skip events.
                tracing::warn!(
                    checkpoint = checkpoint.revision,
                    head = head_at_start,
                    "transfer manager checkpoint is ahead of the log; replaying from zero"
                );
                0
            }
            Some(checkpoint) => checkpoint.revision,
            None => 0,
        };
        Ok(TransferManager {
            store,
            registry,
            start,
            observed: start,
            head_at_start,
            open: BTreeMap::new(),
            by_credit: HashMap::new(),
            delivering: HashSet::new(),
            saved_checkpoint: start,
            recovered,
            recovering: false,
        })
    }

    fn observe(&mut self, event: &RecordedEvent) {
        assert_eq!(
            event.position, self.observed,
            "the subscription is gap-free"
        );
        self.observed += 1;
        let Some(fact) = decode_wallet_fact(&event.event_type, &event.data) else {
            return;
        };
        let Some(chain_and_address) = event.stream.strip_prefix("wallet/") else {
            return;
        };
        let Some((chain_id, address)) = chain_and_address.split_once('/') else {
            return;
        };
        let Ok(address) = address.parse() else { return };
        match fact {
            Ok(WalletFact::Debited(debit)) => {
                let committed = Committed {
                    chain_id: Arc::from(chain_id),
                    tx_hash: debit.tx_hash,
                    sender: address,
                    position: event.position,
                    credits: debit.credits(address),
                    duplicate: false,
                };
                for (_, credit) in &committed.credits {
                    self.by_credit
                        .insert((credit.transfer_id, credit.kind), event.position);
                }
                self.open.insert(
                    event.position,
                    Open {
                        committed,
                        seen: Instant::now(),
                    },
                );
            }
            Ok(WalletFact::Credited(credit)) => {
                let Some(debit_position) =
                    self.by_credit.remove(&(credit.transfer_id, credit.kind))
                else {
                    return;
                };
                if let Some(open) = self.open.get_mut(&debit_position) {
                    open.committed
                        .credits
                        .retain(|(_, c)| c.kind != credit.kind);
                    if open.committed.credits.is_empty() {
                        self.open.remove(&debit_position);
                    }
                }
            }
            Err(error) => {
                tracing::error!(position = event.position, %error, "undecodable wallet event")
            }
        }
    }

    fn caught_up(&self) -> bool {
        self.observed >= self.head_at_start
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if !self.caught_up() {
            return;
        }
        let overdue: Vec<u64> = self
            .open
            .iter()
            .filter(|(position, open)| {
                !self.delivering.contains(position)
                    && (**position < self.head_at_start || open.seen.elapsed() >= CREDIT_GRACE)
            })
            .map(|(position, _)| *position)
            .collect();
        if !self.recovered.load(Ordering::Acquire) && !self.recovering {
            let from_before_crash: Vec<u64> = overdue
                .iter()
                .copied()
                .filter(|p| *p < self.head_at_start)
                .collect();
            self.recovering = true;
            let deliveries: Vec<_> = from_before_crash.iter().map(|p| self.deliver(*p)).collect();
            ctx.spawn(
                async move {
                    futures::future::join_all(deliveries)
                        .await
                        .into_iter()
                        .all(|ok| ok)
                }
                .into_actor(self)
                .map(move |all_ok, act, _| {
                    act.recovering = false;
                    for position in &from_before_crash {
                        act.delivering.remove(position);
                    }
                    if all_ok {
                        act.recovered.store(true, Ordering::Release);
                        tracing::info!(
                            "transfer manager recovered: every open transfer is finished"
                        );
                    }
                }),
            );
        }
        let head_at_start = self.head_at_start;
        for position in overdue.into_iter().filter(|p| *p >= head_at_start) {
            let delivery = self.deliver(position);
            ctx.spawn(delivery.into_actor(self).map(move |_, act, _| {
                // Done either way: a still-missing credit is retried on a later tick.
                act.delivering.remove(&position);
            }));
        }
        self.save_checkpoint();
    }

    /// Delivers the outstanding credits of the debit at `position`; `true` on success.
    fn deliver(&mut self, position: u64) -> impl Future<Output = bool> + use<> {
        let registry = self.registry.clone();
        let committed = self.open.get(&position).map(|o| o.committed.clone());
        self.delivering.insert(position);
        async move {
            let Some(committed) = committed else {
                return true;
            };
            metrics::CREDITS_RECOVERED.add(committed.credits.len() as i64);
            match registry.deliver_credits(&committed).await {
                Ok(_) => true,
                Err(error) => {
                    tracing::warn!(tx = %committed.tx_hash, %error, "credit delivery failed; will retry");
                    false
                }
            }
        }
    }

    fn save_checkpoint(&mut self) {
        let checkpoint = self.open.keys().next().copied().unwrap_or(self.observed);
        if checkpoint == self.saved_checkpoint {
            return;
        }
        self.saved_checkpoint = checkpoint;
        let save = self.store.save_snapshot(
            CHECKPOINT_KEY,
            Snapshot {
                revision: checkpoint,
                data: Vec::new(),
            },
        );
        actix::spawn(async move {
            if let Err(error) = save.await {
                tracing::warn!(%error, "transfer manager checkpoint not saved");
            }
        });
    }
}

impl Actor for TransferManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.add_stream(self.store.subscribe_all(self.start));
        // Nothing to catch up on (the checkpoint is the head): recover at once, not a tick later.
        self.tick(ctx);
        ctx.run_interval(TRANSFER_MANAGER_TICK, |act, ctx| act.tick(ctx));
    }
}

impl StreamHandler<Result<RecordedEvent, StoreError>> for TransferManager {
    fn handle(&mut self, item: Result<RecordedEvent, StoreError>, ctx: &mut Context<Self>) {
        match item {
            Ok(event) => {
                self.observe(&event);
                if self.observed == self.head_at_start {
                    self.tick(ctx);
                }
            }
            Err(error) => {
                tracing::error!(%error, "transfer manager subscription failed; stopping");
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!("transfer manager subscription ended");
    }
}
