//! The simulated users and their random transactions of every kind, with what the node
//! acknowledged, and the checks over it.

use std::collections::{BTreeMap, BTreeSet};

use domain::address::Address;
use domain::keys::SigningKey;
use serde_json::{Value, json};

use super::{Report, durable_fields, treasury};
use crate::{AIT, DEVNET, Rng, TestNode, signed};

/// Every transaction kind the node has (`domain::kinds::KINDS`; a test keeps them equal).
pub const KINDS: [&str; 27] = [
    "transfer",
    "mint",
    "create_vesting",
    "claim_vested",
    "council_pause",
    "council_unpause",
    "propose",
    "vote",
    "cancel_proposal",
    "council_approve",
    "challenge",
    "resolve_challenge",
    "queue",
    "execute",
    "submit_job",
    "cancel_job",
    "stake",
    "add_stake",
    "claim_rewards",
    "unstake",
    "early_exit",
    "register_agent",
    "configure_agent",
    "add_caller",
    "remove_caller",
    "agent_stop",
    "agent_reactivate",
];

const MODULES: [&str; 4] = ["governance", "staking", "jobs", "markets"];
const USERS: usize = 6;

/// The simulated users' keys, from `seed` (the first three are the council).
pub fn user_keys(seed: u64) -> Vec<SigningKey> {
    let mut rng = Rng::new(seed);
    (0..USERS)
        .map(|_| {
            let mut secret = [0u8; 32];
            for chunk in secret.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            SigningKey::from_seed(secret)
        })
        .collect()
}

/// An acknowledged transaction: its kind and what the node answered.
struct Acknowledged {
    kind: &'static str,
    outcome: String,
}

/// Something a transaction created: its id (an agent's: its address) and the user who
/// manages it (proposer, beneficiary, client, staker, owner).
#[derive(Clone)]
struct Created {
    id: String,
    manager: usize,
}

/// What a kind acts on, if anything: the family of ids it takes.
fn family(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "claim_vested" => "vesting",
        "vote" | "cancel_proposal" | "council_approve" | "challenge" | "resolve_challenge"
        | "queue" | "execute" => "proposal",
        "cancel_job" => "job",
        "add_stake" | "claim_rewards" | "unstake" | "early_exit" => "position",
        "configure_agent" | "add_caller" | "remove_caller" | "agent_stop" | "agent_reactivate" => {
            "agent"
        }
        _ => return None,
    })
}

/// The user who manages what a kind creates: its sender, or the counterparty it names.
fn manager_of(kind: &str, sender: usize, counterparty: usize) -> usize {
    match kind {
        "create_vesting" | "register_agent" => counterparty,
        _ => sender,
    }
}

/// The users, what their transactions created, and every acknowledgement.
pub struct World {
    users: Vec<SigningKey>,
    faucet: SigningKey,
    created: BTreeMap<&'static str, Vec<Created>>,
    acknowledged: BTreeMap<String, Acknowledged>,
}

impl World {
    /// The users of `users_seed`, funded later by `faucet`.
    pub fn new(users_seed: u64, faucet: SigningKey) -> World {
        World {
            users: user_keys(users_seed),
            faucet,
            created: BTreeMap::new(),
            acknowledged: BTreeMap::new(),
        }
    }

    /// Kinds with at least one acknowledged transaction.
    pub fn kinds_acknowledged(&self) -> usize {
        self.acknowledged
            .values()
            .map(|a| a.kind)
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Gives every user AIT and USDX, and the treasury AIT to pay proposals from.
    pub fn fund(&mut self, node: &TestNode, report: &mut Report) {
        let mut to: Vec<Address> = self.users.iter().map(SigningKey::address).collect();
        to.push(treasury());
        let faucet = self.faucet.clone();
        for address in to {
            let body = json!({"to": address, "amount": (10_000 * AIT).to_string()});
            self.submit(node, &faucet, "transfer", body, 0, report);
            let body = json!({"to": address, "asset": "USDX", "amount": "1000000000"});
            self.submit(node, &faucet, "mint", body, 0, report);
        }
    }

    /// One random transaction, or now and then a pause that lets timers (voting periods,
    /// timelocks, deadlines) pass.
    pub fn step(&mut self, node: &TestNode, rng: &mut Rng, report: &mut Report) {
        if rng.below(25) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(200 + rng.below(1_000)));
        }
        let kind = KINDS[rng.below(KINDS.len() as u64) as usize];
        let target = family(kind).and_then(|f| match self.created.get(f) {
            Some(all) if !all.is_empty() && rng.below(10) > 0 => {
                Some(all[rng.below(all.len() as u64) as usize].clone())
            }
            _ => None,
        });
        let sender = match (kind, &target) {
            ("mint", _) if rng.below(4) > 0 => None,
            ("council_pause" | "council_unpause" | "council_approve" | "resolve_challenge", _) => {
                Some(rng.below(3) as usize)
            }
            (_, Some(target)) if rng.below(5) > 0 => Some(target.manager),
            _ => Some(rng.below(USERS as u64) as usize),
        };
        let counterparty = rng.below(USERS as u64) as usize;
        let key = sender.map_or(&self.faucet, |i| &self.users[i]).clone();
        let id = target.map_or_else(|| format!("{:016x}", rng.next_u64()).repeat(4), |t| t.id);
        let body = self.body(kind, &key, &id, counterparty, rng);
        // Now and then a replayed or skipped nonce, which must change nothing.
        let nonce_shift = match rng.below(20) {
            0 => -1,
            1 => 1,
            _ => 0,
        };
        let applied = self.submit(node, &key, kind, body, nonce_shift, report);
        if let (Some(hash), Some(sender)) = (applied, sender) {
            let manager = manager_of(kind, sender, counterparty);
            let created = match kind {
                "propose" => Some(("proposal", hash)),
                "create_vesting" => Some(("vesting", hash)),
                "submit_job" => Some(("job", hash)),
                "stake" => Some(("position", hash)),
                "register_agent" => Some(("agent", self.users[sender].address().to_string())),
                _ => None,
            };
            if let Some((family, id)) = created {
                self.created
                    .entry(family)
                    .or_default()
                    .push(Created { id, manager });
            }
        }
    }

    fn body(
        &self,
        kind: &str,
        sender: &SigningKey,
        id: &str,
        counterparty: usize,
        rng: &mut Rng,
    ) -> Value {
        let amount =
            |rng: &mut Rng, most: u128| (1 + u128::from(rng.next_u64()) % most).to_string();
        let to = self.users[counterparty].address();
        match kind {
            "transfer" => match rng.below(3) {
                0 => json!({"to": to, "amount": amount(rng, 1_000_000), "asset": "USDX"}),
                _ => json!({"to": to, "amount": amount(rng, 50 * AIT)}),
            },
            "mint" => json!({"to": to, "asset": "USDX", "amount": amount(rng, 1_000_000)}),
            "create_vesting" => json!({
                "beneficiary": to, "amount": amount(rng, 20 * AIT),
                "cliff_s": rng.below(3), "duration_s": rng.below(10),
            }),
            "claim_vested" => json!({"vesting_id": id}),
            "council_pause" => json!({
                "module": MODULES[rng.below(4) as usize], "reason": "simulated incident",
            }),
            "council_unpause" => json!({"module": MODULES[rng.below(4) as usize]}),
            "propose" => json!({
                "proposal_type": "treasury", "title": "pay a user", "description": "simulated",
                "actions": [{"action": "pay", "to": to, "amount": amount(rng, 10 * AIT)}],
            }),
            "vote" => {
                let support = ["for", "against", "abstain"][rng.below(3) as usize];
                json!({"proposal_id": id, "support": support})
            }
            "challenge" => json!({"proposal_id": id, "reason": "simulated doubt"}),
            "resolve_challenge" => json!({"proposal_id": id, "uphold": rng.below(2) == 0}),
            "cancel_proposal" | "council_approve" | "queue" | "execute" => {
                json!({"proposal_id": id})
            }
            "submit_job" => json!({
                "job_kind": "sha256", "input": {"messages": ["616263"]},
                "max_price": amount(rng, 10_000), "redundancy": 1, "deadline_s": 5 + rng.below(60),
            }),
            "cancel_job" => json!({"job_id": id}),
            "stake" => {
                let amount = (100 + u128::from(rng.below(100))) * AIT;
                json!({"pool_id": "gpu-standard", "amount": amount.to_string(), "lock_days": 7 + rng.below(30)})
            }
            "add_stake" => json!({"position_id": id, "amount": amount(rng, 10 * AIT)}),
            "claim_rewards" | "unstake" | "early_exit" => json!({"position_id": id}),
            "register_agent" => {
                let role =
                    ["provider", "consumer", "builder", "coordinator"][rng.below(4) as usize];
                json!({"role": role, "owner": to})
            }
            // Not auto-voting: an agent's own votes would move its nonce behind the checks' back.
            "configure_agent" => json!({
                "agent": id, "strategy": {"type": "abstain"}, "auto_vote": false,
            }),
            "add_caller" | "remove_caller" => json!({
                "agent": id, "public_key": hex::encode(sender.public_key()),
            }),
            "agent_stop" | "agent_reactivate" => json!({"agent": id}),
            other => unreachable!("no body for {other}"),
        }
    }

    /// Signs and submits; records an acknowledgement, or checks a refusal changed nothing.
    /// Returns the hash of an applied one.
    fn submit(
        &mut self,
        node: &TestNode,
        sender: &SigningKey,
        kind: &'static str,
        body: Value,
        nonce_shift: i64,
        report: &mut Report,
    ) -> Option<String> {
        let (_, account) = node
            .try_get(&format!("/v1/accounts/{}", sender.address()))
            .ok()?;
        let nonce = account["nonce"].as_u64()?;
        let nonce = nonce.saturating_add_signed(nonce_shift);
        report.submitted += 1;
        let envelope = crate::envelope_json(&signed(DEVNET, sender, nonce, kind, body));
        // Not acknowledged when the request fails: it may or may not be in the log.
        let (status, answer) = node.try_post("/v1/transactions", &envelope).ok()?;
        match status {
            200 => {
                let hash = answer["tx_hash"].as_str().expect("tx_hash").to_string();
                let outcome = answer["outcome"].as_str().unwrap_or_default().to_string();
                report.acknowledged += 1;
                let applied = (outcome == "applied").then(|| hash.clone());
                self.acknowledged
                    .insert(hash, Acknowledged { kind, outcome });
                return applied;
            }
            400..=499 => {
                report.rejected += 1;
                if std::env::var_os("SIMULATE_VERBOSE").is_some() {
                    eprintln!("{kind}: {status} {}", answer["error"]);
                }
                // Its nonce: the balance may move meanwhile (a job's refund at its deadline).
                let after = node.get(&format!("/v1/accounts/{}", sender.address())).1;
                assert_eq!(
                    after["nonce"], account["nonce"],
                    "a refused {kind} ({status} {answer}) moved its sender's nonce"
                );
            }
            // The log failed: not acknowledged.
            _ if std::env::var_os("SIMULATE_VERBOSE").is_some() => {
                eprintln!("{kind}: {status} {}", answer["error"]);
            }
            _ => {}
        }
        None
    }

    /// Transfers from the faucet sent one after another on another thread until `crash` (the
    /// node crashing under it) ends them; those acknowledged before are recorded.
    pub fn crash_under_load(&mut self, node: &TestNode, crash: impl FnOnce()) {
        let Ok((_, account)) = node.try_get(&format!("/v1/accounts/{}", self.faucet.address()))
        else {
            return crash();
        };
        let first_nonce = account["nonce"].as_u64().expect("nonce");
        let (client, faucet) = (node.client(), self.faucet.clone());
        let to = self.users[0].address();
        let load = std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            for nonce in first_nonce.. {
                let envelope = crate::signed_transfer(DEVNET, &faucet, nonce, &to, 1, 0);
                match client.try_submit(&envelope) {
                    Ok((200, answer)) => acknowledged.push(answer),
                    _ => return acknowledged,
                }
            }
            acknowledged
        });
        crash();
        for answer in load.join().expect("the load thread") {
            let hash = answer["tx_hash"].as_str().expect("tx_hash").to_string();
            let outcome = answer["outcome"].as_str().unwrap_or_default().to_string();
            let kind = "transfer";
            self.acknowledged
                .insert(hash, Acknowledged { kind, outcome });
        }
    }

    /// Every acknowledged transaction is committed with the outcome it was acknowledged with.
    pub fn check_acknowledged(&self, node: &TestNode, seed: u64) {
        for (hash, ack) in &self.acknowledged {
            let (status, tx) = node.get(&format!("/v1/transactions/{hash}"));
            assert_eq!(
                status, 200,
                "seed {seed}: acknowledged {} {hash} is gone: {tx}",
                ack.kind
            );
            assert_eq!(
                (tx["status"].as_str(), tx["outcome"].as_str()),
                (Some("committed"), Some(ack.outcome.as_str())),
                "seed {seed}: acknowledged {} {hash} changed: {tx}",
                ack.kind
            );
        }
    }

    /// `live` and `rebuilt` (its projections rebuilt from nothing) answer the same. Timers
    /// (job deadlines, voting periods) fire in both a moment apart, so what they move is
    /// compared until it agrees, for a few seconds at most.
    pub fn check_same_reads(&self, live: &TestNode, rebuilt: &TestNode, seed: u64) {
        let mut addresses: Vec<Address> = self.users.iter().map(SigningKey::address).collect();
        addresses.extend([self.faucet.address(), treasury()]);
        for address in addresses {
            let path = format!("/v1/accounts/{address}");
            agree(seed, &path, || (live.get(&path), rebuilt.get(&path)));
        }
        for hash in self.acknowledged.keys() {
            let path = format!("/v1/transactions/{hash}");
            assert_eq!(
                durable_fields(&live.get(&path).1),
                durable_fields(&rebuilt.get(&path).1),
                "seed {seed}: {path} differs after a rebuild"
            );
        }
        let supply = |node: &TestNode| {
            let chain = node.chain();
            chain["assets"]
                .as_array()
                .expect("assets")
                .iter()
                .map(|a| a["supply"].clone())
                .collect::<Vec<_>>()
        };
        agree(seed, "the supply", || (supply(live), supply(rebuilt)));
    }
}

fn agree<T: PartialEq + std::fmt::Debug>(seed: u64, what: &str, mut read: impl FnMut() -> (T, T)) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (live, rebuilt) = read();
        if live == rebuilt {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "seed {seed}: {what} differs after a rebuild:\nlive    {live:?}\nrebuilt {rebuilt:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
