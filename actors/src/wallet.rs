//! The wallet actor: hosts one [`domain::wallet`] aggregate.
//!
//! Commands queue in the actor; whenever no append is in flight, the queued commands of one
//! class are decided in order against a staged copy of the state and appended as ONE batch with
//! the expected revision. Once the log acknowledges it, the written events are applied with
//! `evolve` and every command is answered. Transfers (which can fail) and credits/funds (which
//! cannot, and may be duplicates) are never mixed in one batch: a duplicate credit, skipped by
//! the log's idempotency, must not have fed a later decision of the same batch.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use domain::TxError;
use domain::address::Address;
use domain::codec::DomainEvent;
use domain::hash::Hash32;
use domain::keys::SigningKey;
use domain::money::Amount;
use domain::tx::{TxPayload, VerifiedTx, sign_payload};
use domain::wallet::{self, Credit, WalletCommand, WalletContext, WalletEvent, WalletState};
use serde::{Deserialize, Serialize};
use store::{
    AppendOutcome, EventId, EventStore, ExpectedRevision, NewEvent, Revision, Snapshot, StoreError,
};
use tokio::sync::oneshot;

use crate::error::CommandError;
use crate::limits::*;
use crate::metrics;
use crate::registry::{WalletKey, WalletRegistry};

/// A transfer that is durable in the sender's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Chain.
    pub chain_id: Arc<str>,
    /// Transaction hash.
    pub tx_hash: Hash32,
    /// Sender.
    pub sender: Address,
    /// Log position of the debit.
    pub position: u64,
    /// Credits the debit owes (recipient, and treasury for a fee).
    pub credits: Vec<(Address, Credit)>,
    /// `true` when this answer is for a resubmission of an already committed transaction.
    pub duplicate: bool,
}

/// Submit a verified transfer signed by the wallet's key.
#[derive(Message, Clone)]
#[rtype(result = "Result<Committed, CommandError>")]
pub struct SubmitTransfer(pub Box<VerifiedTx>);

/// Build, sign and submit a transfer with a key the node holds (custodial wallets, faucet): the
/// actor assigns the next nonce.
#[derive(Message, Clone)]
#[rtype(result = "Result<Committed, CommandError>")]
pub struct SignAndTransfer {
    /// Key of this wallet.
    pub key: SigningKey,
    /// Recipient.
    pub to: Address,
    /// Amount.
    pub amount: Amount,
    /// Fee.
    pub fee: Amount,
}

/// Apply a credit owed by a debit (idempotent by transfer id and kind).
#[derive(Message, Clone)]
#[rtype(result = "Result<u64, CommandError>")]
pub struct ApplyCredit(pub Credit);

/// Genesis allocation (idempotent).
#[derive(Message, Clone)]
#[rtype(result = "Result<u64, CommandError>")]
pub struct Fund(pub Amount);

/// Read the current state.
#[derive(Message, Clone)]
#[rtype(result = "Result<WalletState, CommandError>")]
pub struct GetState;

enum Pending {
    Transfer(
        Box<VerifiedTx>,
        oneshot::Sender<Result<Committed, CommandError>>,
    ),
    Sign(
        Box<SignAndTransfer>,
        oneshot::Sender<Result<Committed, CommandError>>,
    ),
    Credit(Credit, oneshot::Sender<Result<u64, CommandError>>),
    Fund(Amount, oneshot::Sender<Result<u64, CommandError>>),
}

impl Pending {
    /// Transfers can fail and feed each other's decisions; credits and funds cannot fail.
    fn is_transfer(&self) -> bool {
        matches!(self, Pending::Transfer(..) | Pending::Sign(..))
    }

    /// An upper bound of the stored size of the event this command may produce: a debit holds
    /// the envelope, whose payload JSON-escaping can at most double.
    fn encoded_len_max(&self) -> usize {
        const OVERHEAD: usize = 1024;
        match self {
            Pending::Transfer(tx, _) => {
                2 * (tx.envelope.payload.len()
                    + tx.envelope.public_key.len()
                    + tx.envelope.signature.len())
                    + OVERHEAD
            }
            Pending::Sign(..) | Pending::Credit(..) | Pending::Fund(..) => 2 * OVERHEAD,
        }
    }

    fn fail(self, error: CommandError) {
        match self {
            Pending::Transfer(_, reply) | Pending::Sign(_, reply) => drop(reply.send(Err(error))),
            Pending::Credit(_, reply) | Pending::Fund(_, reply) => drop(reply.send(Err(error))),
        }
    }
}

/// Who waits for which event of an in-flight batch.
enum Waiter {
    Transfer {
        event: usize,
        reply: oneshot::Sender<Result<Committed, CommandError>>,
        duplicate: bool,
    },
    Position {
        event: usize,
        reply: oneshot::Sender<Result<u64, CommandError>>,
    },
}

#[derive(Serialize, Deserialize)]
struct WalletSnapshot {
    state: WalletState,
}

/// The actor hosting one wallet.
pub struct WalletActor {
    key: WalletKey,
    stream: String,
    ctx: WalletContext,
    state: WalletState,
    revision: Option<Revision>,
    snapshot_revision: Option<Revision>,
    store: Arc<dyn EventStore>,
    registry: WalletRegistry,
    queue: VecDeque<Pending>,
    in_flight: bool,
    loaded: bool,
    recent: HashMap<Hash32, Committed>,
    recent_order: VecDeque<Hash32>,
    last_activity: Instant,
}

impl WalletActor {
    /// A not yet loaded actor for `key`.
    pub fn new(
        key: WalletKey,
        min_fee: Amount,
        store: Arc<dyn EventStore>,
        registry: WalletRegistry,
    ) -> Self {
        let stream = wallet::wallet_stream(&key.chain_id, &key.address);
        let ctx = WalletContext {
            chain_id: key.chain_id.to_string(),
            address: key.address,
            min_fee,
        };
        WalletActor {
            key,
            stream,
            ctx,
            state: WalletState::default(),
            revision: None,
            snapshot_revision: None,
            store,
            registry,
            queue: VecDeque::new(),
            in_flight: false,
            loaded: false,
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            last_activity: Instant::now(),
        }
    }

    fn remember(&mut self, committed: Committed) {
        if self
            .recent
            .insert(committed.tx_hash, committed.clone())
            .is_none()
        {
            self.recent_order.push_back(committed.tx_hash);
        }
        while self.recent_order.len() > RECENT_TXS_MAX {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    fn apply_loaded(&mut self, event: &WalletEvent, position: u64) {
        wallet::evolve(&mut self.state, event);
        if let WalletEvent::Debited(debit) = event {
            let committed = self.committed_for(debit, position, false);
            self.remember(committed);
        }
    }

    fn committed_for(&self, debit: &wallet::Debit, position: u64, duplicate: bool) -> Committed {
        Committed {
            chain_id: self.key.chain_id.clone(),
            tx_hash: debit.tx_hash,
            sender: self.key.address,
            position,
            credits: debit.credits(self.key.address),
            duplicate,
        }
    }

    fn enqueue(&mut self, pending: Pending, ctx: &mut Context<Self>) {
        self.last_activity = Instant::now();
        self.queue.push_back(pending);
        self.flush(ctx);
    }

    /// Decides and appends the next batch, if none is in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        while self.loaded && !self.in_flight && !self.queue.is_empty() {
            let transfers = self.queue.front().is_some_and(Pending::is_transfer);
            let mut staged = self.state;
            let mut events: Vec<WalletEvent> = Vec::new();
            let mut waiters: Vec<Waiter> = Vec::new();
            let mut batch_txs: HashMap<Hash32, usize> = HashMap::new();
            let mut batch_ids: HashMap<u128, usize> = HashMap::new();
            let mut batch_bytes = 0usize;
            while events.len() < WALLET_BATCH_EVENTS_MAX {
                let Some(front) = self.queue.front() else {
                    break;
                };
                if front.is_transfer() != transfers {
                    break;
                }
                let bytes = front.encoded_len_max();
                if !events.is_empty() && batch_bytes + bytes > WALLET_BATCH_BYTES_MAX {
                    break;
                }
                batch_bytes += bytes;
                let pending = self.queue.pop_front().expect("front exists");
                match pending {
                    Pending::Transfer(tx, reply) => self.decide_transfer(
                        tx,
                        reply,
                        &mut staged,
                        &mut events,
                        &mut waiters,
                        &mut batch_txs,
                    ),
                    Pending::Sign(order, reply) => {
                        let payload = TxPayload::transfer(
                            &self.ctx.chain_id,
                            self.key.address,
                            staged.nonce,
                            order.fee,
                            order.to,
                            order.amount,
                        );
                        match sign_payload(&order.key, &payload).verify() {
                            Ok(tx) => self.decide_transfer(
                                Box::new(tx),
                                reply,
                                &mut staged,
                                &mut events,
                                &mut waiters,
                                &mut batch_txs,
                            ),
                            Err(e) => drop(reply.send(Err(e.into()))),
                        }
                    }
                    Pending::Credit(credit, reply) => {
                        let id = credit.event_id();
                        if let Some(&event) = batch_ids.get(&id) {
                            waiters.push(Waiter::Position { event, reply });
                            continue;
                        }
                        self.decide_plain(
                            WalletCommand::Credit(credit),
                            reply,
                            &mut staged,
                            &mut events,
                            &mut waiters,
                            &mut batch_ids,
                            "credit",
                        );
                    }
                    Pending::Fund(amount, reply) => {
                        let id = wallet::fund_event_id(&self.ctx.chain_id, &self.key.address);
                        if let Some(&event) = batch_ids.get(&id) {
                            waiters.push(Waiter::Position { event, reply });
                            continue;
                        }
                        self.decide_plain(
                            WalletCommand::Fund { amount },
                            reply,
                            &mut staged,
                            &mut events,
                            &mut waiters,
                            &mut batch_ids,
                            "fund",
                        );
                    }
                }
            }
            if events.is_empty() {
                continue;
            }
            self.append(events, waiters, ctx);
        }
    }

    fn decide_transfer(
        &mut self,
        tx: Box<VerifiedTx>,
        reply: oneshot::Sender<Result<Committed, CommandError>>,
        staged: &mut WalletState,
        events: &mut Vec<WalletEvent>,
        waiters: &mut Vec<Waiter>,
        batch_txs: &mut HashMap<Hash32, usize>,
    ) {
        let hash = tx.hash;
        match wallet::decide(staged, &self.ctx, WalletCommand::Transfer(tx)) {
            Ok(new) => {
                let [event]: [WalletEvent; 1] =
                    new.try_into().expect("a transfer decides one debit");
                wallet::evolve(staged, &event);
                batch_txs.insert(hash, events.len());
                waiters.push(Waiter::Transfer {
                    event: events.len(),
                    reply,
                    duplicate: false,
                });
                events.push(event);
            }
            Err(TxError::BadNonce { expected, got }) if got < expected => {
                // A resubmission of a transaction already committed (or in this very batch)
                // gets the same answer; a different transaction with a used nonce is an error.
                if let Some(committed) = self.recent.get(&hash) {
                    metrics::command("transfer", "duplicate");
                    let _ = reply.send(Ok(Committed {
                        duplicate: true,
                        ..committed.clone()
                    }));
                } else if let Some(&event) = batch_txs.get(&hash) {
                    waiters.push(Waiter::Transfer {
                        event,
                        reply,
                        duplicate: true,
                    });
                } else {
                    metrics::command("transfer", "bad_nonce");
                    let _ = reply.send(Err(TxError::BadNonce { expected, got }.into()));
                }
            }
            Err(e) => {
                metrics::command("transfer", e.code());
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_plain(
        &mut self,
        command: WalletCommand,
        reply: oneshot::Sender<Result<u64, CommandError>>,
        staged: &mut WalletState,
        events: &mut Vec<WalletEvent>,
        waiters: &mut Vec<Waiter>,
        batch_ids: &mut HashMap<u128, usize>,
        kind: &str,
    ) {
        match wallet::decide(staged, &self.ctx, command) {
            Ok(new) => {
                let [event]: [WalletEvent; 1] =
                    new.try_into().expect("a credit or fund decides one event");
                wallet::evolve(staged, &event);
                batch_ids.insert(
                    wallet::wallet_event_id(&self.ctx.chain_id, &self.key.address, &event),
                    events.len(),
                );
                waiters.push(Waiter::Position {
                    event: events.len(),
                    reply,
                });
                events.push(event);
            }
            Err(e) => {
                metrics::command(kind, e.code());
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    fn append(&mut self, events: Vec<WalletEvent>, waiters: Vec<Waiter>, ctx: &mut Context<Self>) {
        let expected = match self.revision {
            None => ExpectedRevision::NoStream,
            Some(r) => ExpectedRevision::Exact(r),
        };
        let new_events: Vec<NewEvent> = events
            .iter()
            .map(|event| NewEvent {
                id: EventId(wallet::wallet_event_id(
                    &self.ctx.chain_id,
                    &self.key.address,
                    event,
                )),
                event_type: event.event_type().to_string(),
                data: DomainEvent::Wallet(event.clone()).encode(),
            })
            .collect();
        self.in_flight = true;
        let append = self.store.append(&self.stream, expected, new_events);
        ctx.spawn(append.into_actor(self).map(move |result, act, ctx| {
            act.in_flight = false;
            act.complete(result, events, waiters, ctx);
            act.flush(ctx);
        }));
    }

    fn complete(
        &mut self,
        result: Result<AppendOutcome, StoreError>,
        events: Vec<WalletEvent>,
        waiters: Vec<Waiter>,
        ctx: &mut Context<Self>,
    ) {
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(error) => {
                // The log refused or failed: our view may be stale. Answer everyone, then stop so
                // that the next command rehydrates from the log.
                tracing::warn!(stream = %self.stream, %error, "append failed; wallet actor restarts");
                let error = match error {
                    StoreError::WrongExpectedRevision { .. } => CommandError::Restarting,
                    other => CommandError::Store(other),
                };
                for waiter in waiters {
                    match waiter {
                        Waiter::Transfer { reply, .. } => drop(reply.send(Err(error.clone()))),
                        Waiter::Position { reply, .. } => drop(reply.send(Err(error.clone()))),
                    }
                }
                self.stop(ctx);
                return;
            }
        };
        let mut stale = false;
        for (i, event) in events.iter().enumerate() {
            if outcome.written[i] {
                wallet::evolve(&mut self.state, event);
                self.revision = Some(
                    self.revision
                        .map_or(outcome.revisions[i], |r| r.max(outcome.revisions[i])),
                );
            } else if matches!(event, WalletEvent::Debited(_)) {
                stale = true;
            }
            if let WalletEvent::Debited(debit) = event {
                let committed = self.committed_for(debit, outcome.positions[i], false);
                self.remember(committed);
            }
        }
        for waiter in waiters {
            match waiter {
                Waiter::Transfer {
                    event,
                    reply,
                    duplicate,
                } => {
                    let WalletEvent::Debited(debit) = &events[event] else {
                        unreachable!("transfer waiters wait on debits")
                    };
                    metrics::command(
                        "transfer",
                        if duplicate { "duplicate" } else { "committed" },
                    );
                    let _ = reply.send(Ok(self.committed_for(
                        debit,
                        outcome.positions[event],
                        duplicate,
                    )));
                }
                Waiter::Position { event, reply } => {
                    metrics::command("credit", "committed");
                    let _ = reply.send(Ok(outcome.positions[event]));
                }
            }
        }
        if stale {
            // A debit was already in the log but not in our state: rehydrate.
            self.stop(ctx);
            return;
        }
        self.maybe_snapshot();
    }

    fn maybe_snapshot(&mut self) {
        let Some(revision) = self.revision else {
            return;
        };
        let since = self
            .snapshot_revision
            .map_or(revision + 1, |s| revision - s);
        if since < SNAPSHOT_EVERY_EVENTS {
            return;
        }
        self.snapshot_revision = Some(revision);
        let data =
            serde_json::to_vec(&WalletSnapshot { state: self.state }).expect("state serializes");
        let save = self
            .store
            .save_snapshot(&self.stream, Snapshot { revision, data });
        let stream = self.stream.clone();
        actix::spawn(async move {
            if let Err(error) = save.await {
                tracing::warn!(%stream, %error, "wallet snapshot not saved");
            }
        });
    }

    fn stop(&mut self, ctx: &mut Context<Self>) {
        self.registry.forget(&self.key, &ctx.address());
        for pending in self.queue.drain(..) {
            pending.fail(CommandError::Restarting);
        }
        ctx.stop();
    }

    fn load(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let stream = self.stream.clone();
        let load = async move {
            let snapshot = store.load_snapshot(&stream).await?;
            let (mut state, mut revision) = (WalletState::default(), None);
            if let Some(snap) = snapshot {
                match serde_json::from_slice::<WalletSnapshot>(&snap.data) {
                    Ok(s) => (state, revision) = (s.state, Some(snap.revision)),
                    Err(error) => tracing::warn!(%stream, %error, "ignoring unreadable snapshot"),
                }
            }
            let mut events = Vec::new();
            let mut from = revision.map_or(0, |r| r + 1);
            loop {
                let page = store.read_stream(&stream, from, REHYDRATE_PAGE_MAX).await?;
                let done = page.len() < REHYDRATE_PAGE_MAX;
                for recorded in page {
                    from = recorded.revision + 1;
                    match DomainEvent::decode(&recorded.event_type, &recorded.data) {
                        Ok(DomainEvent::Wallet(event)) => {
                            events.push((event, recorded.position, recorded.revision))
                        }
                        other => {
                            return Err(StoreError::Invalid(format!(
                                "stream {stream} holds a non-wallet event at revision {}: {other:?}",
                                recorded.revision
                            )));
                        }
                    }
                }
                if done {
                    break;
                }
            }
            Ok::<_, StoreError>((state, revision, events))
        };
        ctx.wait(load.into_actor(self).map(|result, act, ctx| match result {
            Ok((state, snapshot_revision, events)) => {
                act.state = state;
                act.revision = snapshot_revision;
                act.snapshot_revision = snapshot_revision;
                for (event, position, revision) in &events {
                    act.apply_loaded(event, *position);
                    act.revision = Some(*revision);
                }
                act.loaded = true;
                act.flush(ctx);
            }
            Err(error) => {
                tracing::error!(stream = %act.stream, %error, "wallet could not be loaded");
                for pending in act.queue.drain(..) {
                    pending.fail(CommandError::Store(error.clone()));
                }
                act.registry.forget(&act.key, &ctx.address());
                ctx.stop();
            }
        }));
    }
}

impl Actor for WalletActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::ACTIVE_WALLETS.inc();
        ctx.set_mailbox_capacity(WALLET_MAILBOX_MAX);
        self.load(ctx);
        let idle_timeout = self.registry.idle_timeout();
        ctx.run_interval(WALLET_IDLE_CHECK.min(idle_timeout), move |act, ctx| {
            let idle = act.last_activity.elapsed() >= idle_timeout;
            if idle && !act.in_flight && act.queue.is_empty() {
                act.registry.forget(&act.key, &ctx.address());
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        metrics::ACTIVE_WALLETS.dec();
    }
}

fn reply_future<T: Send + 'static>(
    rx: oneshot::Receiver<Result<T, CommandError>>,
) -> ResponseFuture<Result<T, CommandError>> {
    Box::pin(async move { rx.await.unwrap_or(Err(CommandError::Restarting)) })
}

impl Handler<SubmitTransfer> for WalletActor {
    type Result = ResponseFuture<Result<Committed, CommandError>>;
    fn handle(&mut self, msg: SubmitTransfer, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Pending::Transfer(msg.0, tx), ctx);
        reply_future(rx)
    }
}

impl Handler<SignAndTransfer> for WalletActor {
    type Result = ResponseFuture<Result<Committed, CommandError>>;
    fn handle(&mut self, msg: SignAndTransfer, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Pending::Sign(Box::new(msg), tx), ctx);
        reply_future(rx)
    }
}

impl Handler<ApplyCredit> for WalletActor {
    type Result = ResponseFuture<Result<u64, CommandError>>;
    fn handle(&mut self, msg: ApplyCredit, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Pending::Credit(msg.0, tx), ctx);
        reply_future(rx)
    }
}

impl Handler<Fund> for WalletActor {
    type Result = ResponseFuture<Result<u64, CommandError>>;
    fn handle(&mut self, msg: Fund, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Pending::Fund(msg.0, tx), ctx);
        reply_future(rx)
    }
}

impl Handler<GetState> for WalletActor {
    type Result = Result<WalletState, CommandError>;
    fn handle(&mut self, _msg: GetState, _ctx: &mut Context<Self>) -> Self::Result {
        // Runs only once loaded: loading holds the mailbox (`ctx.wait`).
        self.last_activity = Instant::now();
        Ok(self.state)
    }
}
