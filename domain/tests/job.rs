//! GPU jobs (PRODUCT.md §6), given events / when a command / then events: inputs checked at
//! submission, leases and their expiry, results checked, verification by comparison and by the
//! platform's reference, payments less the fee, refunds, reputation, and the escrow conserved
//! on every path.

use std::sync::Arc;

use domain::address::Address;
use domain::aggregate::{Aggregate, Context, replay};
use domain::hash::Hash32;
use domain::job::{
    self, HexBytes, JobAggregate, JobCommand, JobEvent, JobFacts, JobId, JobInput, JobState,
    JobStatus, MinerResult, SubmitJob,
};
use domain::miner::{MinerCommand, Outcome};
use domain::money::Amount;
use domain::protocol::{Fact, FollowUp, Owner, follow_ups, timers};
use proptest::prelude::*;

const CHAIN: &str = "c";
const CLIENT: Address = Address([1; 20]);
const MINERS: [Address; 3] = [
    Address([0xa1; 20]),
    Address([0xa2; 20]),
    Address([0xa3; 20]),
];

fn body(redundancy: u8, verification: &str) -> String {
    format!(
        r#"{{"job_kind":"sha256","input":{{"messages":["616263",""]}},"max_price":"1000",
            "redundancy":{redundancy},"deadline_s":60,"verification":"{verification}"}}"#
    )
}

struct Job {
    events: Vec<JobEvent>,
    id: Hash32,
}

impl Job {
    fn submitted(redundancy: u8) -> Job {
        Job::submitted_as(&body(redundancy, "sampled"))
    }

    fn submitted_as(body: &str) -> Job {
        let request = SubmitJob::parse(body).unwrap();
        let escrow = request.escrow();
        let mut job = Job {
            events: Vec::new(),
            id: Hash32::digest(b"submit"),
        };
        job.run(
            JobCommand::Submit {
                tx: job.id,
                owner: CLIENT,
                request: Box::new(request),
                escrow,
                committed_at_ms: 1_000,
            },
            1_000,
        )
        .unwrap();
        job
    }

    fn state(&self) -> JobState {
        replay::<JobAggregate>(&self.events)
    }

    fn run(&mut self, command: JobCommand, now_ms: u64) -> Result<Vec<JobEvent>, String> {
        let id = JobId {
            chain_id: CHAIN.into(),
            id: self.id,
        };
        let facts = JobFacts { sample_bps: 0 };
        let ctx = Context {
            id: &id,
            facts: &facts,
            now_ms,
        };
        let new =
            JobAggregate::decide(&self.state(), &ctx, command).map_err(|e| e.code().to_string())?;
        self.events.extend(new.clone());
        Ok(new)
    }

    fn assign(&mut self, miner: Address, now_ms: u64) {
        let command = JobCommand::Assign {
            miner,
            lease_until_ms: now_ms + 30_000,
        };
        self.run(command, now_ms).unwrap();
    }

    fn submit_result(
        &mut self,
        miner: Address,
        bytes: &[u8],
        price: u128,
        now_ms: u64,
    ) -> Result<Vec<JobEvent>, String> {
        let result = MinerResult {
            result: HexBytes(bytes.to_vec()),
            result_hash: Hash32::digest(bytes),
            gpu_ms: 5,
            price: Amount(price),
            receipt_signature: "00".repeat(64),
            in_blob: false,
            at_ms: now_ms,
        };
        self.run(
            JobCommand::Result {
                miner,
                result: Box::new(result),
            },
            now_ms,
        )
    }

    fn steps(&self, event: &JobEvent) -> Vec<FollowUp> {
        let owner = Owner::Job {
            chain_id: Arc::from(CHAIN),
            id: self.id,
        };
        follow_ups(&owner, &Fact::Job(event.clone()))
    }

    /// Everything paid out of the escrow by the events: (to, amount).
    fn payouts(&self) -> Vec<(Address, u128)> {
        let escrow = job::escrow_account(CHAIN);
        self.events
            .iter()
            .flat_map(|e| self.steps(e))
            .filter_map(|s| match s {
                FollowUp::PayOut { from, payout, .. } if from == escrow => {
                    Some((payout.to, payout.amount.0))
                }
                _ => None,
            })
            .collect()
    }

    fn outcomes(&self) -> Vec<(Address, Outcome)> {
        self.events
            .iter()
            .flat_map(|e| self.steps(e))
            .filter_map(|s| match s {
                FollowUp::Miner {
                    miner,
                    command: MinerCommand::Outcome { outcome, .. },
                    ..
                } => Some((miner, outcome)),
                _ => None,
            })
            .collect()
    }
}

fn reference() -> Vec<u8> {
    SubmitJob::parse(&body(1, "sampled"))
        .unwrap()
        .input
        .reference(&[], None)
        .unwrap()
}

#[test]
fn inputs_are_checked_at_submission() {
    assert!(SubmitJob::parse(&body(1, "always")).is_ok());
    let bad = [
        (body(0, "sampled"), "malformed"),
        (body(4, "sampled"), "malformed"),
        (body(1, "sometimes"), "malformed"),
        (
            body(1, "sampled").replace(r#""max_price":"1000""#, r#""max_price":"0""#),
            "malformed",
        ),
        (
            body(1, "sampled").replace("\"deadline_s\":60", "\"deadline_s\":0"),
            "malformed",
        ),
        (
            body(1, "sampled").replace("\"sha256\"", "\"teleport\""),
            "malformed",
        ),
        (
            body(1, "sampled").replace("\"616263\"", "\"zz\""),
            "malformed",
        ),
        (
            body(1, "sampled").replace("\"messages\"", "\"messages\":[],\"extra\""),
            "malformed",
        ),
        (
            body(1, "sampled").replace(
                "[\"616263\",\"\"]",
                &format!("[\"{}\"]", "ab".repeat(20_000)),
            ),
            "limit_exceeded",
        ),
    ];
    for (text, code) in bad {
        assert_eq!(SubmitJob::parse(&text).unwrap_err().code(), code, "{text}");
    }
    let pow = r#"{"job_kind":"pow","input":{"prefix":"00","difficulty_bits":8,"start_nonce":0,"end_nonce":2000000},
        "max_price":"1","redundancy":1,"deadline_s":60}"#;
    assert_eq!(
        SubmitJob::parse(pow).unwrap_err().code(),
        "limit_exceeded",
        "the range is bounded"
    );
}

#[test]
fn the_reference_computes_each_kind_exactly() {
    let digests = reference();
    assert_eq!(
        hex::encode(&digests[..32]),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "SHA-256(abc)"
    );
    assert_eq!(
        hex::encode(&digests[32..]),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "SHA-256 of nothing"
    );
    let pow = JobInput::Pow {
        prefix: HexBytes(b"aitbc".to_vec()),
        difficulty_bits: 12,
        start_nonce: 0,
        end_nonce: 100_000,
    };
    let nonce = u64::from_le_bytes(pow.reference(&[], None).unwrap().try_into().expect("found"));
    assert!(job::leading_zero_bits(&job::pow_digest(b"aitbc", nonce)) >= 12);
    assert!(
        (0..nonce).all(|n| job::leading_zero_bits(&job::pow_digest(b"aitbc", n)) < 12),
        "the smallest"
    );
    let none = JobInput::Pow {
        prefix: HexBytes(b"aitbc".to_vec()),
        difficulty_bits: 64,
        start_nonce: 0,
        end_nonce: 1_000,
    };
    assert!(
        none.reference(&[], None).unwrap().is_empty(),
        "no bytes when nothing is found"
    );
}

#[test]
fn a_verified_result_pays_the_miner_less_the_fee_and_refunds_the_rest() {
    let mut job = Job::submitted(1);
    assert_eq!(job.state().status(), JobStatus::Queued);
    let owner = Owner::Job {
        chain_id: Arc::from(CHAIN),
        id: job.id,
    };
    let deadline = timers(&owner, &Fact::Job(job.events[0].clone()));
    assert_eq!(deadline[0].due_ms, 61_000, "the deadline's timer");
    job.assign(MINERS[0], 2_000);
    assert_eq!(job.state().status(), JobStatus::Assigned);
    assert_eq!(
        job.submit_result(MINERS[1], &reference(), 800, 3_000)
            .unwrap_err(),
        "not_assigned"
    );
    assert_eq!(
        job.submit_result(MINERS[0], &reference(), 1_001, 3_000)
            .unwrap_err(),
        "bad_result"
    );
    let submitted = job
        .submit_result(MINERS[0], &reference(), 800, 3_000)
        .unwrap();
    assert!(matches!(
        &submitted[..],
        [JobEvent::ResultSubmitted { complete: true, .. }]
    ));
    assert!(
        job.steps(&submitted[0]).iter().any(|s| matches!(
            s,
            FollowUp::Job {
                command: JobCommand::Verify { .. },
                ..
            }
        )),
        "verification follows"
    );
    assert_eq!(
        job.submit_result(MINERS[0], &reference(), 800, 3_100)
            .unwrap_err(),
        "not_active"
    );
    let verified = job
        .run(
            JobCommand::Verify {
                reference: None,
                blob_results: Default::default(),
                verdicts: Default::default(),
            },
            3_200,
        )
        .unwrap();
    let [
        JobEvent::Verified {
            payments,
            refund,
            reexecuted: false,
            ..
        },
    ] = &verified[..]
    else {
        panic!("{verified:?}")
    };
    assert_eq!(
        (payments[0].paid, payments[0].fee, *refund),
        (Amount(780), Amount(20), Amount(200))
    );
    assert_eq!(job.state().status(), JobStatus::Completed);
    let mut paid = job.payouts();
    paid.sort();
    let treasury = Address::treasury(CHAIN);
    let mut expected = vec![(CLIENT, 200), (MINERS[0], 780), (treasury, 20)];
    expected.sort();
    assert_eq!(paid, expected);
    assert_eq!(job.outcomes(), vec![(MINERS[0], Outcome::Verified)]);
    assert!(
        job.run(JobCommand::Expire, 61_000).unwrap().is_empty(),
        "over: no expiry"
    );
}

#[test]
fn a_disproved_result_is_not_paid_and_the_correct_one_is() {
    let mut job = Job::submitted(2);
    job.assign(MINERS[0], 2_000);
    assert_eq!(
        job.state().status(),
        JobStatus::Assigned,
        "one slot still open"
    );
    job.assign(MINERS[1], 2_000);
    let first = job
        .submit_result(MINERS[0], &reference(), 900, 3_000)
        .unwrap();
    assert!(matches!(
        &first[..],
        [JobEvent::ResultSubmitted {
            complete: false,
            ..
        }]
    ));
    job.submit_result(MINERS[1], b"forged", 100, 3_000).unwrap();
    let state = job.state();
    assert_eq!(state.status(), JobStatus::Running);
    assert!(
        job::needs_reference(&state, &[0; 32], 0, &Default::default()),
        "results that disagree are re-executed"
    );
    let verified = job
        .run(
            JobCommand::Verify {
                reference: Some(reference()),
                blob_results: Default::default(),
                verdicts: Default::default(),
            },
            3_100,
        )
        .unwrap();
    let [
        JobEvent::Verified {
            payments,
            disproved,
            refund,
            reexecuted: true,
            ..
        },
    ] = &verified[..]
    else {
        panic!("{verified:?}")
    };
    assert_eq!(
        (payments.len(), disproved.as_slice()),
        (1, &[MINERS[1]][..])
    );
    assert_eq!(*refund, Amount(2_000 - 900));
    let outcomes = job.outcomes();
    assert!(outcomes.contains(&(MINERS[0], Outcome::Verified)));
    assert!(outcomes.contains(&(MINERS[1], Outcome::Disproved)));
    assert!(
        !job.payouts().iter().any(|(to, _)| *to == MINERS[1]),
        "the forger gets nothing"
    );
}

#[test]
fn without_a_correct_result_the_job_fails_and_the_escrow_is_refunded() {
    let mut job = Job::submitted(1);
    job.assign(MINERS[0], 2_000);
    job.submit_result(MINERS[0], b"forged", 1_000, 3_000)
        .unwrap();
    let failed = job
        .run(
            JobCommand::Verify {
                reference: Some(reference()),
                blob_results: Default::default(),
                verdicts: Default::default(),
            },
            3_100,
        )
        .unwrap();
    assert!(matches!(
        &failed[..],
        [JobEvent::Failed {
            refund: Amount(1_000),
            ..
        }]
    ));
    assert_eq!(job.state().status(), JobStatus::Failed);
    assert_eq!(job.payouts(), vec![(CLIENT, 1_000)]);
    assert_eq!(job.outcomes(), vec![(MINERS[0], Outcome::Disproved)]);
}

#[test]
fn an_expired_lease_frees_the_slot_for_another_miner() {
    let mut job = Job::submitted(1);
    job.assign(MINERS[0], 2_000);
    let owner = Owner::Job {
        chain_id: Arc::from(CHAIN),
        id: job.id,
    };
    let lease = timers(&owner, &Fact::Job(job.events[1].clone()));
    assert_eq!(lease[0].due_ms, 32_000);
    let FollowUp::Job { command, .. } = lease[0].step.clone() else {
        panic!()
    };
    assert!(
        job.run(command.clone(), 31_999).unwrap().is_empty(),
        "not before the lease ends"
    );
    assert!(matches!(
        &job.run(command.clone(), 32_000).unwrap()[..],
        [JobEvent::LeaseExpired { .. }]
    ));
    assert_eq!(job.outcomes(), vec![(MINERS[0], Outcome::LeaseExpired)]);
    assert_eq!(job.state().status(), JobStatus::Queued);
    assert_eq!(
        job.submit_result(MINERS[0], &reference(), 500, 32_001)
            .unwrap_err(),
        "not_assigned"
    );
    assert_eq!(
        job.run(
            JobCommand::Assign {
                miner: MINERS[0],
                lease_until_ms: 60_000
            },
            32_001
        )
        .unwrap_err(),
        "not_active",
        "a miner takes a job once"
    );
    job.assign(MINERS[1], 33_000);
    job.submit_result(MINERS[1], &reference(), 500, 34_000)
        .unwrap();
    job.run(
        JobCommand::Verify {
            reference: None,
            blob_results: Default::default(),
            verdicts: Default::default(),
        },
        34_100,
    )
    .unwrap();
    assert_eq!(job.state().status(), JobStatus::Completed);
}

#[test]
fn only_the_client_cancels_and_only_a_queued_job_and_the_deadline_refunds() {
    let mut job = Job::submitted(1);
    let cancel = |sender| JobCommand::Cancel {
        tx: Hash32::digest(b"cancel"),
        sender,
    };
    let refused = job.run(cancel(MINERS[0]), 1_500).unwrap();
    assert!(
        matches!(&refused[..], [JobEvent::CancelRefused { reason, .. }] if reason.code == "not_owner")
    );
    let mut assigned = Job::submitted(1);
    assigned.assign(MINERS[0], 2_000);
    assert!(matches!(&assigned.run(cancel(CLIENT), 2_500).unwrap()[..],
        [JobEvent::CancelRefused { reason, .. }] if reason.code == "not_active"));
    let mut job = Job::submitted(1);
    assert!(matches!(
        &job.run(cancel(CLIENT), 1_500).unwrap()[..],
        [JobEvent::Canceled { .. }]
    ));
    assert_eq!(job.payouts(), vec![(CLIENT, 1_000)]);
    let mut late = Job::submitted(1);
    late.assign(MINERS[0], 2_000);
    assert!(late.run(JobCommand::Expire, 60_999).unwrap().is_empty());
    assert!(matches!(
        &late.run(JobCommand::Expire, 61_000).unwrap()[..],
        [JobEvent::Expired { .. }]
    ));
    assert_eq!(late.payouts(), vec![(CLIENT, 1_000)]);
    assert_eq!(
        late.submit_result(MINERS[0], &reference(), 1, 61_001)
            .unwrap_err(),
        "not_active"
    );
}

proptest! {
    /// Escrow = paid + fees + refunded, whatever the prices and which results are right.
    #[test]
    fn the_escrow_is_conserved(
        redundancy in 1u8..=3,
        prices in proptest::collection::vec(1u128..=1_000, 3),
        right in proptest::collection::vec(any::<bool>(), 3),
    ) {
        let mut job = Job::submitted(redundancy);
        for miner in &MINERS[..usize::from(redundancy)] {
            job.assign(*miner, 2_000);
        }
        for i in 0..usize::from(redundancy) {
            let bytes = if right[i] { reference() } else { b"wrong".to_vec() };
            job.submit_result(MINERS[i], &bytes, prices[i], 3_000).unwrap();
        }
        job.run(JobCommand::Verify { reference: Some(reference()), blob_results: Default::default(), verdicts: Default::default() }, 3_100).unwrap();
        let out: u128 = job.payouts().iter().map(|(_, a)| a).sum();
        prop_assert_eq!(out, 1_000 * u128::from(redundancy));
        let paid_miners = job.payouts().iter().filter(|(to, _)| MINERS.contains(to)).count();
        let correct = right.iter().take(usize::from(redundancy)).filter(|r| **r).count();
        prop_assert_eq!(paid_miners, correct);
    }
}

#[test]
fn messages_in_a_blob_are_framed_by_their_lengths() {
    let framed = |messages: &[&[u8]]| -> Vec<u8> {
        messages
            .iter()
            .flat_map(|m| [(m.len() as u32).to_le_bytes().to_vec(), m.to_vec()].concat())
            .collect()
    };
    let bytes = framed(&[b"abc", b"", b"aitbc"]);
    assert_eq!(
        job::framed_messages(&bytes).unwrap(),
        vec![b"abc".to_vec(), Vec::new(), b"aitbc".to_vec()]
    );
    assert_eq!(
        job::framed_messages(&bytes[..bytes.len() - 1])
            .unwrap_err()
            .code(),
        "malformed"
    );
    assert_eq!(
        job::framed_messages(&[1, 0]).unwrap_err().code(),
        "malformed"
    );
    assert_eq!(job::framed_messages(&[]).unwrap_err().code(), "malformed");
    let many: Vec<&[u8]> = vec![b"x"; job::SHA_MESSAGES_MAX + 1];
    assert_eq!(
        job::framed_messages(&framed(&many)).unwrap_err().code(),
        "limit_exceeded"
    );

    let blob = Hash32::digest(&bytes);
    let text = format!(
        r#"{{"job_kind":"sha256","input":{{"messages_blob":"{blob}"}},"max_price":"1","redundancy":1,"deadline_s":60}}"#
    );
    let request = SubmitJob::parse(&text).unwrap();
    assert_eq!(request.input.blobs(), vec![blob]);
    let inline = SubmitJob::parse(&body(1, "sampled")).unwrap();
    assert!(inline.input.blobs().is_empty());
    assert!(matches!(
        request.input.reference(&[], None).unwrap_err(),
        domain::wgsl::ShaderError::NotRun(reason) if reason.contains("no blob")
    ));
    let digests = request
        .input
        .reference(std::slice::from_ref(&bytes), None)
        .unwrap();
    assert_eq!(
        &digests[..32],
        &reference()[..32],
        "SHA-256(abc) either way"
    );
    let both = text.replace(
        "\"messages_blob\"",
        "\"messages\":[\"00\"],\"messages_blob\"",
    );
    assert_eq!(SubmitJob::parse(&both).unwrap_err().code(), "malformed");
}

#[test]
fn results_that_disagree_with_no_reference_to_settle_them_fail_without_blame() {
    let mut job = Job::submitted(2);
    job.assign(MINERS[0], 2_000);
    job.assign(MINERS[1], 2_000);
    job.submit_result(MINERS[0], &reference(), 900, 3_000)
        .unwrap();
    job.submit_result(MINERS[1], b"other", 900, 3_000).unwrap();
    let failed = job
        .run(
            JobCommand::Verify {
                reference: None,
                blob_results: Default::default(),
                verdicts: Default::default(),
            },
            3_100,
        )
        .unwrap();
    assert!(
        matches!(&failed[..], [JobEvent::Failed { disproved, refund: Amount(2_000), .. }] if disproved.is_empty())
    );
    assert!(job.outcomes().is_empty(), "nobody loses reputation");
}

#[test]
fn the_re_executed_sample_is_drawn_from_the_nodes_secret_and_the_results() {
    let state_with = |result: &[u8]| {
        let mut job = Job::submitted(1);
        job.assign(MINERS[0], 2_000);
        job.submit_result(MINERS[0], result, 1, 3_000).unwrap();
        job.state()
    };
    let states: Vec<JobState> = (0..200u32).map(|i| state_with(&i.to_le_bytes())).collect();
    let drawn = |secret: &[u8; 32], bps| {
        states
            .iter()
            .filter(|s| job::sampled(secret, s, bps))
            .count()
    };
    assert_eq!(drawn(&[1; 32], 0), 0);
    assert_eq!(drawn(&[1; 32], 10_000), 200);
    let half = drawn(&[1; 32], 5_000);
    assert!(
        (60..=140).contains(&half),
        "about half of the results: {half}"
    );
    let picks = |secret: &[u8; 32]| -> Vec<bool> {
        states
            .iter()
            .map(|s| job::sampled(secret, s, 5_000))
            .collect()
    };
    assert_ne!(
        picks(&[1; 32]),
        picks(&[2; 32]),
        "without the secret nobody can tell"
    );
    assert!(
        !job::needs_reference(&states[0], &[1; 32], 0, &Default::default()),
        "agreeing results, not drawn"
    );
}

#[test]
fn no_lease_is_granted_past_the_deadline_and_one_it_cut_short_costs_nothing() {
    let mut job = Job::submitted(1);
    let late = JobCommand::Assign {
        miner: MINERS[0],
        lease_until_ms: 70_000,
    };
    assert_eq!(
        job.run(late, 61_000).unwrap_err(),
        "not_active",
        "past the deadline"
    );
    let stale = JobCommand::Assign {
        miner: MINERS[0],
        lease_until_ms: 5_000,
    };
    assert_eq!(
        job.run(stale, 5_000).unwrap_err(),
        "not_active",
        "a lease already over"
    );
    job.run(
        JobCommand::Assign {
            miner: MINERS[0],
            lease_until_ms: 61_000,
        },
        40_000,
    )
    .unwrap();
    let ended = job
        .run(
            JobCommand::LeaseEnd {
                miner: MINERS[0],
                lease_until_ms: 61_000,
            },
            61_000,
        )
        .unwrap();
    assert!(matches!(
        &ended[..],
        [JobEvent::LeaseExpired {
            penalized: false,
            ..
        }]
    ));
    assert!(
        job.outcomes().is_empty(),
        "the deadline cut it short: no reputation lost"
    );
}

#[test]
fn receipts_of_two_miners_with_the_same_result_are_distinct() {
    let result = |signature: &str| MinerResult {
        result: HexBytes(reference()),
        result_hash: Hash32::digest(&reference()),
        gpu_ms: 1,
        price: Amount(1),
        receipt_signature: signature.into(),
        at_ms: 0,
        in_blob: false,
    };
    let id = Hash32::digest(b"job");
    assert_ne!(
        job::receipt_id(&id, &result(&"aa".repeat(64))),
        job::receipt_id(&id, &result(&"bb".repeat(64)))
    );
}

#[test]
fn matmul_jobs_check_their_matrices_and_agree_within_the_tolerance() {
    use domain::matmul;
    let (a_blob, b_blob) = (Hash32::digest(b"A"), Hash32::digest(b"B"));
    let text = |m: u32, k: u32, n: u32| {
        format!(
            r#"{{"job_kind":"matmul","input":{{"m":{m},"k":{k},"n":{n},"a_blob":"{a_blob}","b_blob":"{b_blob}"}},
               "max_price":"1000","redundancy":2,"deadline_s":60}}"#
        )
    };
    assert_eq!(
        SubmitJob::parse(&text(0, 2, 2)).unwrap_err().code(),
        "limit_exceeded"
    );
    assert!(
        SubmitJob::parse(&text(1024, 2, 1024)).is_ok(),
        "the largest product travels as a blob"
    );
    assert_eq!(
        SubmitJob::parse(&text(1025, 2, 1)).unwrap_err().code(),
        "limit_exceeded"
    );
    let request = SubmitJob::parse(&text(2, 3, 2)).unwrap();
    assert_eq!(request.input.blobs(), vec![a_blob, b_blob]);
    let a = matmul::bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = matmul::bytes(&[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
    assert_eq!(
        request
            .input
            .check_blobs(&[a.clone(), b[..20].to_vec()])
            .unwrap_err()
            .code(),
        "malformed"
    );
    let c = request.input.reference(&[a, b], None).unwrap();
    assert_eq!(matmul::floats(&c), vec![58.0, 64.0, 139.0, 154.0]);

    // Two GPUs' results differing in their last bits both count; a wrong one does not.
    let mut job = Job {
        events: Vec::new(),
        id: Hash32::digest(b"matmul"),
    };
    let escrow = request.escrow();
    job.run(
        JobCommand::Submit {
            tx: job.id,
            owner: CLIENT,
            request: Box::new(request),
            escrow,
            committed_at_ms: 1_000,
        },
        1_000,
    )
    .unwrap();
    for miner in &MINERS[..2] {
        job.assign(*miner, 2_000);
    }
    let close = matmul::bytes(&[58.0001, 64.0, 139.0, 154.0001]);
    job.submit_result(MINERS[0], &c, 100, 3_000).unwrap();
    job.submit_result(MINERS[1], &close, 100, 3_000).unwrap();
    assert!(
        !job::needs_reference(&job.state(), &[0; 32], 0, &Default::default()),
        "within the tolerance: they agree"
    );
    let verified = job
        .run(
            JobCommand::Verify {
                reference: None,
                blob_results: Default::default(),
                verdicts: Default::default(),
            },
            3_100,
        )
        .unwrap();
    assert!(
        matches!(&verified[..], [JobEvent::Verified { payments, disproved, .. }]
        if payments.len() == 2 && disproved.is_empty()),
        "{verified:?}"
    );

    let mut off = Job {
        events: job.events[..3].to_vec(),
        id: job.id,
    };
    off.submit_result(MINERS[0], &c, 100, 3_000).unwrap();
    off.submit_result(
        MINERS[1],
        &matmul::bytes(&[58.5, 64.0, 139.0, 154.0]),
        100,
        3_000,
    )
    .unwrap();
    assert!(
        job::needs_reference(&off.state(), &[0; 32], 0, &Default::default()),
        "beyond the tolerance: re-executed"
    );
    let verified = off
        .run(
            JobCommand::Verify {
                reference: Some(c.clone()),
                blob_results: Default::default(),
                verdicts: Default::default(),
            },
            3_100,
        )
        .unwrap();
    assert!(
        matches!(&verified[..], [JobEvent::Verified { disproved, .. }] if disproved == &vec![MINERS[1]])
    );
}

#[test]
fn mlp_jobs_check_their_shapes_and_blobs_and_the_reference_is_the_forward_pass() {
    use domain::matmul;
    let (weights_blob, inputs_blob) = (Hash32::digest(b"W"), Hash32::digest(b"X"));
    let text = |layers: &str, batch: u32| {
        format!(
            r#"{{"job_kind":"mlp_inference","input":{{"layers":{layers},"weights_blob":"{weights_blob}",
               "inputs_blob":"{inputs_blob}","batch":{batch}}},"max_price":"1000","redundancy":1,"deadline_s":60}}"#
        )
    };
    let two = r#"[{"inputs":2,"outputs":2},{"inputs":2,"outputs":1}]"#;
    let unchained = r#"[{"inputs":2,"outputs":3},{"inputs":2,"outputs":1}]"#;
    assert_eq!(
        SubmitJob::parse(&text(unchained, 2)).unwrap_err().code(),
        "malformed"
    );
    assert_eq!(
        SubmitJob::parse(&text(two, 0)).unwrap_err().code(),
        "limit_exceeded"
    );
    let extra = r#"[{"inputs":2,"outputs":2,"relu":true}]"#;
    assert_eq!(
        SubmitJob::parse(&text(extra, 1)).unwrap_err().code(),
        "malformed"
    );
    let request = SubmitJob::parse(&text(two, 2)).unwrap();
    assert_eq!(request.input.kind(), "mlp_inference");
    assert_eq!(request.input.blobs(), vec![weights_blob, inputs_blob]);
    let weights = matmul::bytes(&[1.0, -1.0, 2.0, 1.0, 0.5, -3.0, 1.0, 1.0, -1.0]);
    let inputs = matmul::bytes(&[1.0, 1.0, -1.0, 0.0]);
    for (w, x) in [(&weights[..32], &inputs[..]), (&weights[..], &inputs[..12])] {
        let blobs = [w.to_vec(), x.to_vec()];
        assert_eq!(
            request.input.check_blobs(&blobs).unwrap_err().code(),
            "malformed"
        );
    }
    let y = request.input.reference(&[weights, inputs], None).unwrap();
    assert_eq!(matmul::floats(&y), vec![2.5, -1.0]);
    assert!(
        request.input.agree(&matmul::bytes(&[2.5001, -1.0]), &y),
        "floats: within the tolerance"
    );
    assert!(!request.input.agree(&matmul::bytes(&[2.6, -1.0]), &y));
}

/// A host that "runs" a shader by reversing its first input: the reference goes through it.
struct Reverser;

impl domain::wgsl::ShaderHost for Reverser {
    fn validate(
        &self,
        _: &domain::wgsl::ShaderJob,
        _: &[Vec<u8>],
    ) -> Result<(), domain::wgsl::ShaderError> {
        Ok(())
    }

    fn run(
        &self,
        _: &domain::wgsl::ShaderJob,
        inputs: &[Vec<u8>],
    ) -> Result<Vec<u8>, domain::wgsl::ShaderError> {
        Ok(inputs[0].iter().rev().copied().collect())
    }
}

#[test]
fn wgsl_jobs_are_declared_strictly_compared_as_asked_and_re_executed_only_by_a_gpu_host() {
    use domain::wgsl::ShaderError;
    let blob = Hash32::digest(b"x");
    let text = |extra: &str| {
        format!(
            r#"{{"job_kind":"wgsl","input":{{"source":"fn main() {{}}","entry_point":"main","workgroups":[1,1,1],
               "buffers":[{{"binding":0,"blob":"{blob}","output":false}},{{"binding":1,"size":8,"output":true}}]{extra}}},
               "max_price":"1000","redundancy":1,"deadline_s":60}}"#
        )
    };
    assert_eq!(
        SubmitJob::parse(&text(r#","threads":4"#))
            .unwrap_err()
            .code(),
        "malformed"
    );
    assert_eq!(
        SubmitJob::parse(&text(r#","compare":"roughly""#))
            .unwrap_err()
            .code(),
        "malformed"
    );
    let exact = SubmitJob::parse(&text("")).unwrap().input;
    let floats = SubmitJob::parse(&text(r#","compare":"f32""#))
        .unwrap()
        .input;
    assert_eq!((exact.kind(), exact.blobs()), ("wgsl", vec![blob]));
    let (x, y) = (
        domain::matmul::bytes(&[1.0, 2.0]),
        domain::matmul::bytes(&[1.0001, 2.0]),
    );
    assert!(!exact.agree(&x, &y), "byte for byte");
    assert!(floats.agree(&x, &y), "as f32 values, within the tolerance");
    assert_eq!(
        exact.check_blobs(&[Vec::new()]).unwrap_err().code(),
        "malformed",
        "an empty input"
    );
    assert!(
        matches!(
            exact.reference(&[vec![1, 2, 3, 4]], None),
            Err(ShaderError::NotRun(_))
        ),
        "no CPU reference for a shader"
    );
    assert_eq!(
        exact
            .reference(&[vec![1, 2, 3, 4]], Some(&Reverser))
            .unwrap(),
        vec![4, 3, 2, 1]
    );
}

proptest! {
    /// A listing that follows a job's events shows the state the job's own state shows, after
    /// every step of any sequence of leases, lease ends, results, verification, cancels and
    /// expiry.
    #[test]
    fn a_listing_shows_the_jobs_own_state(
        redundancy in 1u8..=3,
        steps in proptest::collection::vec((0u8..6, 0usize..3), 1..24),
    ) {
        let mut job = Job::submitted(redundancy);
        let JobEvent::Submitted(record) = &job.events[0] else { panic!("submitted first") };
        let mut listing = domain::job_listing::JobListing::of(record);
        let mut seen = job.events.len();
        for (i, (step, miner)) in steps.into_iter().enumerate() {
            let now_ms = 2_000 + 1_000 * i as u64;
            let miner = MINERS[miner];
            let command = match step {
                0 => JobCommand::Assign { miner, lease_until_ms: now_ms + 500 },
                1 => JobCommand::LeaseEnd { miner, lease_until_ms: now_ms - 500 },
                2 => JobCommand::Result {
                    miner,
                    result: Box::new(MinerResult {
                        result: HexBytes(reference()),
                        result_hash: Hash32::digest(&reference()),
                        gpu_ms: 5,
                        price: Amount(10),
                        receipt_signature: "00".repeat(64),
            in_blob: false,
                        at_ms: now_ms,
                    }),
                },
                3 => JobCommand::Verify { reference: Some(reference()), blob_results: Default::default(), verdicts: Default::default() },
                4 => JobCommand::Cancel { tx: Hash32::digest(&[i as u8]), sender: CLIENT },
                _ => JobCommand::Expire,
            };
            let _ = job.run(command, now_ms);
            for event in &job.events[seen..] {
                listing.apply(event);
            }
            seen = job.events.len();
            prop_assert_eq!(listing.status(), job.state().status());
        }
    }
}

#[test]
fn results_in_blobs_are_compared_as_loaded_and_one_that_is_gone_is_neither_paid_nor_blamed() {
    let in_blob = MinerResult {
        result: HexBytes(Vec::new()),
        in_blob: true,
        result_hash: Hash32::digest(&reference()),
        gpu_ms: 5,
        price: Amount(10),
        receipt_signature: "00".repeat(64),
        at_ms: 3_000,
    };
    let both_in = || {
        let mut job = Job::submitted(2);
        job.assign(MINERS[0], 2_000);
        job.assign(MINERS[1], 2_000);
        job.submit_result(MINERS[0], &reference(), 10, 3_000)
            .unwrap();
        let result = Box::new(in_blob.clone());
        let command = JobCommand::Result {
            miner: MINERS[1],
            result,
        };
        job.run(command, 3_000).unwrap();
        job
    };
    let loaded = job::BlobResults::from([(Hash32::digest(&reference()), reference())]);
    let job = both_in();
    assert!(!job::needs_reference(&job.state(), &[0; 32], 0, &loaded));
    assert!(
        job::needs_reference(&job.state(), &[0; 32], 0, &Default::default()),
        "a result whose bytes are not there settles nothing"
    );
    let mut job = both_in();
    let verify = |blob_results| JobCommand::Verify {
        reference: None,
        blob_results,
        verdicts: Default::default(),
    };
    let verified = job.run(verify(loaded.clone()), 3_100).unwrap();
    assert!(
        matches!(&verified[..], [JobEvent::Verified { payments, .. }] if payments.len() == 2),
        "{verified:?}"
    );
    let mut job = both_in();
    let settled = job
        .run(
            JobCommand::Verify {
                reference: Some(reference()),
                blob_results: Default::default(),
                verdicts: Default::default(),
            },
            3_100,
        )
        .unwrap();
    match &settled[..] {
        [
            JobEvent::Verified {
                payments,
                disproved,
                ..
            },
        ] => {
            assert_eq!(
                payments.iter().map(|p| p.miner).collect::<Vec<_>>(),
                vec![MINERS[0]]
            );
            assert!(
                disproved.is_empty(),
                "the miner whose blob is gone is not blamed"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn llm_results_are_each_settled_by_the_platforms_check_alone() {
    let model = Hash32::digest(b"a model file");
    let body = format!(
        r#"{{"job_kind":"llm_generate","input":{{"model":"{model}","prompt":"The capital of France is",
            "max_tokens":2}},"max_price":"1000","redundancy":3,"deadline_s":60,"verification":"sampled"}}"#
    );
    let honest = br#"{"text":" Paris.","token_ids":[7042,30]}"#;
    let other_honest = br#"{"text":" Paris,","token_ids":[7042,28]}"#;
    let forged = br#"{"text":" Berlin","token_ids":[9421,30]}"#;
    let all_in = || {
        let mut job = Job::submitted_as(&body);
        for miner in MINERS {
            job.assign(miner, 2_000);
        }
        for (miner, bytes) in MINERS.iter().zip([&honest[..], other_honest, forged]) {
            job.submit_result(*miner, bytes, 10, 3_000).unwrap();
        }
        job
    };
    let verify = |verdicts: &[(&[u8], bool)]| JobCommand::Verify {
        reference: None,
        blob_results: Default::default(),
        verdicts: verdicts
            .iter()
            .map(|(bytes, holds)| (Hash32::digest(bytes), *holds))
            .collect(),
    };
    // Results that differ both hold (no two GPUs compute the same floats); the forged one is
    // disproved.
    let mut job = all_in();
    let checked = [(&honest[..], true), (other_honest, true), (forged, false)];
    let verified = job.run(verify(&checked), 3_100).unwrap();
    match &verified[..] {
        [
            JobEvent::Verified {
                payments,
                disproved,
                reexecuted: true,
                result_hash,
                ..
            },
        ] => {
            let paid: Vec<_> = payments.iter().map(|p| p.miner).collect();
            assert_eq!(paid, vec![MINERS[0], MINERS[1]]);
            assert_eq!(disproved, &vec![MINERS[2]]);
            assert_ne!(*result_hash, Hash32::digest(forged));
        }
        other => panic!("{other:?}"),
    }
    assert!(job.outcomes().contains(&(MINERS[2], Outcome::Disproved)));
    // A result the platform could not check is neither paid nor blamed.
    let mut job = all_in();
    let verified = job.run(verify(&[(forged, false)]), 3_100).unwrap();
    match &verified[..] {
        [
            JobEvent::Failed {
                disproved, refund, ..
            },
        ] => {
            assert_eq!(disproved, &vec![MINERS[2]]);
            assert_eq!(refund.0, 3_000, "the whole escrow comes back");
        }
        other => panic!("{other:?}"),
    }
    assert!(job.payouts().iter().all(|(to, _)| *to == CLIENT));
    // Without any check (no model host), the job fails and nobody is blamed.
    let mut job = all_in();
    let verified = job.run(verify(&[]), 3_100).unwrap();
    assert!(
        matches!(&verified[..], [JobEvent::Failed { disproved, .. }] if disproved.is_empty()),
        "{verified:?}"
    );
}
