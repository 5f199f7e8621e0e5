//! A job as lists show it: who submitted what, when, and where it is, without its input or
//! results. Read models keep one per job and follow the job's events with [`JobListing::apply`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::hash::Hash32;
use crate::job::{JobEvent, JobPhase, JobRecord, JobStatus, status_of};
use crate::money::Amount;

/// A job's summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobListing {
    /// Its id (the submit transaction's hash).
    pub id: Hash32,
    /// The client.
    pub owner: Address,
    /// Its kind's wire name.
    pub job_kind: String,
    /// Most one miner is paid.
    pub max_price: Amount,
    /// Miners wanted.
    pub redundancy: u8,
    /// When it was submitted.
    pub submitted_at_ms: u64,
    /// When it expires.
    pub deadline_ms: u64,
    /// Where it is.
    pub phase: JobPhase,
    /// Live leases by miner (whether the result is in); emptied once the job is over.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub leases: BTreeMap<Address, bool>,
}

impl JobListing {
    /// The listing of a job just submitted.
    pub fn of(job: &JobRecord) -> JobListing {
        JobListing {
            id: job.id,
            owner: job.owner,
            job_kind: job.request.input.kind().to_string(),
            max_price: job.request.max_price,
            redundancy: job.request.redundancy,
            submitted_at_ms: job.submitted_at_ms,
            deadline_ms: job.deadline_ms,
            phase: JobPhase::Open,
            leases: BTreeMap::new(),
        }
    }

    /// Follows one of the job's later events.
    pub fn apply(&mut self, event: &JobEvent) {
        let phase = match event {
            JobEvent::Assigned { miner, .. } => {
                self.leases.insert(*miner, false);
                return;
            }
            JobEvent::LeaseExpired { miner, .. } => {
                self.leases.remove(miner);
                return;
            }
            JobEvent::ResultSubmitted { miner, .. } => {
                self.leases.insert(*miner, true);
                return;
            }
            JobEvent::Verified { .. } => JobPhase::Completed,
            JobEvent::Failed { .. } => JobPhase::Failed,
            JobEvent::Expired { .. } => JobPhase::Expired,
            JobEvent::Canceled { .. } => JobPhase::Canceled,
            JobEvent::Submitted(_)
            | JobEvent::VerificationSkipped
            | JobEvent::CancelRefused { .. } => return,
        };
        self.phase = phase;
        self.leases.clear();
    }

    /// The wire state.
    pub fn status(&self) -> JobStatus {
        status_of(
            self.phase,
            usize::from(self.redundancy),
            self.leases.values().copied(),
        )
    }
}
