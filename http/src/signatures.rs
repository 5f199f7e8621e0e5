//! Checks the signatures of concurrent requests together: a batch costs about half as much per
//! signature as checking each alone (`domain::keys::verify_batch`).
//!
//! Each HTTP worker thread keeps its own batch, so no request waits for another thread. The
//! first request to join an empty batch leads it: it yields once to the worker's scheduler,
//! during which the worker polls its other ready connections, whose requests join; then it
//! checks the whole batch and hands every request its answer. A request alone is checked after
//! one yield, without waiting for company. If the leader is dropped (its client went away),
//! the batch is checked as it is dropped, so that nobody waits for it.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

use domain::tx::{HeldSignature, SignatureClaim, check_claims};
use tokio::sync::oneshot;

struct Waiting {
    claim: SignatureClaim,
    answer: oneshot::Sender<Option<HeldSignature>>,
}

thread_local! {
    static BATCH: RefCell<Vec<Waiting>> = const { RefCell::new(Vec::new()) };
}

/// Checks `claim`'s signature, in a batch with whatever other requests this worker thread has
/// ready; `None` if it does not hold.
pub async fn check(claim: SignatureClaim) -> Option<HeldSignature> {
    let (answer, answered) = oneshot::channel();
    let leads = BATCH.with(|batch| {
        let mut batch = batch.borrow_mut();
        batch.push(Waiting { claim, answer });
        batch.len() == 1
    });
    if leads {
        let leader = Leader(PhantomData);
        tokio::task::yield_now().await;
        drop(leader);
    }
    // The leader answers every request it took, itself included, before it is gone.
    answered.await.ok().flatten()
}

/// Checks the thread's batch when dropped: after its yield, or when its request is cancelled.
/// Not `Send`: the batch is this thread's, so the future holding a leader must stay on it.
struct Leader(PhantomData<Rc<()>>);

impl Drop for Leader {
    fn drop(&mut self) {
        let waiting = BATCH.with(|batch| std::mem::take(&mut *batch.borrow_mut()));
        let (claims, answers): (Vec<_>, Vec<_>) =
            waiting.into_iter().map(|w| (w.claim, w.answer)).unzip();
        for (answer, held) in answers.into_iter().zip(check_claims(claims)) {
            // A request whose client went away no longer listens.
            let _ = answer.send(held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::address::Address;
    use domain::keys::SigningKey;
    use domain::money::Amount;
    use domain::tx::{SignedEnvelope, TxPayload, sign_payload};

    fn envelope(seed: u8) -> SignedEnvelope {
        let key = SigningKey::from_seed([seed; 32]);
        let payload = TxPayload::transfer(
            "ait-devnet",
            key.address(),
            0,
            Amount(0),
            Address([7; 20]),
            Amount(1),
        );
        sign_payload(&key, &payload)
    }

    fn claim(envelope: &SignedEnvelope) -> SignatureClaim {
        envelope
            .signature_claim(domain::keys::PublicKey::from_bytes)
            .expect("well formed")
    }

    /// Concurrent checks on one thread share a batch, and each gets its own answer: the good
    /// ones verify their envelope, the forged one is refused.
    #[actix_rt::test]
    async fn concurrent_checks_answer_each_request() {
        let envelopes: Vec<SignedEnvelope> = (1..=9).map(envelope).collect();
        let mut forged = envelopes[4].clone();
        forged.signature = envelopes[5].signature.clone();
        let mut claims: Vec<SignatureClaim> = envelopes.iter().map(claim).collect();
        claims[4] = claim(&forged);
        let answers = futures::future::join_all(claims.into_iter().map(check)).await;
        for (i, held) in answers.iter().enumerate() {
            if i == 4 {
                assert!(held.is_none(), "the forged signature is refused");
            } else {
                let held = held.as_ref().expect("a good signature holds");
                assert_eq!(
                    envelopes[i].verified(held).unwrap().hash,
                    envelopes[i].hash()
                );
            }
        }
        BATCH.with(|batch| assert!(batch.borrow().is_empty(), "nothing left waiting"));
    }

    /// A leader dropped before it checked (its client went away) still answers the others.
    #[actix_rt::test]
    async fn a_cancelled_leader_still_answers_the_batch() {
        let (first, second) = (envelope(1), envelope(2));
        let mut leader = Box::pin(check(claim(&first)));
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(
            leader.as_mut().poll(&mut cx).is_pending(),
            "the leader yields"
        );
        let follower = check(claim(&second));
        let mut follower = Box::pin(follower);
        assert!(follower.as_mut().poll(&mut cx).is_pending());
        drop(leader);
        let held = follower.await.expect("the follower's signature holds");
        assert_eq!(second.verified(&held).unwrap().hash, second.hash());
    }
}
