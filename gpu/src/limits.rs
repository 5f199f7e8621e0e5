//! Every limit of the executor, in one place.
//!
//! `*_MAX` constants are hard ceilings; [`JobLimits`] holds the limits of one job (defaults below
//! the ceilings), and [`JobLimits::clamped_to`] lowers them further to what the adapter allows.
//! [`JobLimits::check`] runs before anything touches the device: a job over a limit gets
//! [`GpuError::LimitExceeded`], never a device loss or a panic.

use serde::{Deserialize, Serialize};

use crate::adapter::AdapterLimits;
use crate::error::{GpuError, LimitKind, Result};

/// Largest single buffer, in bytes.
pub const BUFFER_SIZE_MAX_BYTES: u64 = 1 << 30;
/// Largest total of all buffers of one job, in bytes.
pub const JOB_MEMORY_MAX_BYTES: u64 = 2 << 30;
/// Most workgroups in one dispatch (x·y·z).
pub const WORKGROUPS_PER_DISPATCH_MAX: u64 = 1 << 24;
/// Most dispatches in one job.
pub const DISPATCHES_MAX: u64 = 1 << 16;
/// Longest wall time of one job, in milliseconds.
pub const WALL_TIME_MAX_MS: u64 = 10 * 60 * 1000;

/// Default per-job buffer size limit.
pub const BUFFER_SIZE_DEFAULT_BYTES: u64 = 256 << 20;
/// Default per-job memory limit.
pub const JOB_MEMORY_DEFAULT_BYTES: u64 = 1 << 30;
/// Default per-dispatch workgroup limit.
pub const WORKGROUPS_PER_DISPATCH_DEFAULT: u64 = 1 << 22;
/// Default dispatch limit.
pub const DISPATCHES_DEFAULT: u64 = 4096;
/// Default wall time, in milliseconds.
pub const WALL_TIME_DEFAULT_MS: u64 = 30_000;

/// Most messages in one SHA-256 batch.
pub const SHA_MESSAGES_MAX: usize = 1 << 22;
/// Longest message in a SHA-256 batch (one GPU thread hashes one message).
pub const SHA_MESSAGE_BYTES_MAX: usize = 1 << 16;
/// Longest proof-of-work prefix.
pub const POW_PREFIX_BYTES_MAX: usize = 1 << 12;
/// Highest proof-of-work difficulty, in leading zero bits.
pub const POW_BITS_MAX: u32 = 64;
/// Nonces tried by one proof-of-work dispatch.
pub const POW_NONCES_PER_DISPATCH: u64 = 1 << 18;
/// Most layers of an MLP.
pub const MLP_LAYERS_MAX: usize = 64;
/// Widest MLP layer.
pub const MLP_WIDTH_MAX: u32 = 1 << 14;
/// Most storage buffers a client shader may declare (one more is used for the loop-budget flag).
pub const CLIENT_BUFFERS_MAX: usize = 7;
/// Longest client shader source, in bytes.
pub const CLIENT_SOURCE_BYTES_MAX: usize = 1 << 20;
/// Most bytes of `var<private>` and function-local variables a client shader may declare (all
/// functions counted together, an upper bound on what one invocation uses). Large private arrays
/// make the software adapter compile and run for minutes and can leave the worker stuck in the
/// driver; real GPUs spill them to slow memory.
pub const CLIENT_INVOCATION_BYTES_MAX: u64 = 16 << 10;
/// Client-shader loop iterations allowed per millisecond of wall time, shared by all invocations
/// of the dispatch. Conservative for a software adapter: the budget is a backstop that makes every
/// client shader terminate; the wall-clock timeout is what the caller sees first on slow adapters.
pub const LOOP_ITERATIONS_PER_MS: u64 = 100_000;
/// Smallest per-invocation loop budget, whatever the dispatch size.
pub const LOOP_ITERATIONS_MIN: u64 = 1 << 12;
/// Largest per-invocation loop budget.
pub const LOOP_ITERATIONS_MAX: u64 = 1 << 30;
/// Largest per-invocation loop budget on a software adapter. llvmpipe (lavapipe) silently ends
/// any loop after 65,535 iterations, which would truncate a client's results without a word;
/// a total budget below that makes our check fire first, so the job is reported instead.
pub const LOOP_ITERATIONS_MAX_SOFTWARE: u64 = 65_000;
/// Client pipelines kept per device before the cache is cleared.
pub const CLIENT_PIPELINES_MAX: usize = 64;
/// Bytes the buffer pool may hold between jobs.
pub const POOL_BYTES_MAX: u64 = 256 << 20;
/// Most jobs waiting behind the running one; [`crate::Executor::submit`] answers
/// [`GpuError::Busy`] past it (each queued job may hold up to [`JOB_MEMORY_MAX_BYTES`] of inputs).
pub const QUEUE_JOBS_MAX: usize = 16;
/// Extra time the caller waits for the worker past a job's wall time before giving up on it.
pub const WORKER_GRACE_MS: u64 = 10_000;

const _: () = assert!(BUFFER_SIZE_DEFAULT_BYTES <= BUFFER_SIZE_MAX_BYTES);
const _: () = assert!(BUFFER_SIZE_MAX_BYTES <= JOB_MEMORY_MAX_BYTES);
const _: () = assert!(JOB_MEMORY_DEFAULT_BYTES <= JOB_MEMORY_MAX_BYTES);
const _: () = assert!(WORKGROUPS_PER_DISPATCH_DEFAULT <= WORKGROUPS_PER_DISPATCH_MAX);
const _: () = assert!(DISPATCHES_DEFAULT <= DISPATCHES_MAX);
const _: () = assert!(WALL_TIME_DEFAULT_MS <= WALL_TIME_MAX_MS);
const _: () = assert!(LOOP_ITERATIONS_MIN <= LOOP_ITERATIONS_MAX);
const _: () = assert!(LOOP_ITERATIONS_MAX < u32::MAX as u64);
const _: () = assert!(LOOP_ITERATIONS_MIN <= LOOP_ITERATIONS_MAX_SOFTWARE);
const _: () = assert!(LOOP_ITERATIONS_MAX_SOFTWARE < 65_535);
const _: () = assert!(POW_NONCES_PER_DISPATCH.is_power_of_two());

/// The limits of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLimits {
    /// Largest single buffer, in bytes.
    pub buffer_size_max_bytes: u64,
    /// Largest total of all the job's buffers, in bytes.
    pub job_memory_max_bytes: u64,
    /// Most workgroups in one dispatch (x·y·z); each dimension is also held to the adapter's limit.
    pub workgroups_per_dispatch_max: u64,
    /// Most dispatches in the job.
    pub dispatches_max: u64,
    /// Wall-time limit, in milliseconds.
    pub wall_time_max_ms: u64,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            buffer_size_max_bytes: BUFFER_SIZE_DEFAULT_BYTES,
            job_memory_max_bytes: JOB_MEMORY_DEFAULT_BYTES,
            workgroups_per_dispatch_max: WORKGROUPS_PER_DISPATCH_DEFAULT,
            dispatches_max: DISPATCHES_DEFAULT,
            wall_time_max_ms: WALL_TIME_DEFAULT_MS,
        }
    }
}

/// What a job will use, worked out from its inputs before anything runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Size of every buffer the job creates (staging buffers included), in bytes.
    pub buffers_bytes: Vec<u64>,
    /// Dispatches the job issues (an upper bound for proof-of-work searches).
    pub dispatches: u64,
    /// Workgroup counts of the largest dispatch.
    pub workgroups: [u32; 3],
    /// Invocations per workgroup of the kernel.
    pub workgroup_invocations: u32,
}

fn over(kind: LimitKind, requested: u64, max: u64) -> GpuError {
    GpuError::LimitExceeded {
        kind,
        requested,
        max,
    }
}

impl JobLimits {
    /// These limits, each lowered to the hard ceiling and to what the adapter allows.
    pub fn clamped_to(&self, adapter: &AdapterLimits) -> JobLimits {
        let buffer_cap = adapter
            .max_buffer_size
            .min(adapter.max_storage_buffer_binding_size);
        JobLimits {
            buffer_size_max_bytes: self
                .buffer_size_max_bytes
                .min(BUFFER_SIZE_MAX_BYTES)
                .min(buffer_cap),
            job_memory_max_bytes: self.job_memory_max_bytes.min(JOB_MEMORY_MAX_BYTES),
            workgroups_per_dispatch_max: self
                .workgroups_per_dispatch_max
                .min(WORKGROUPS_PER_DISPATCH_MAX),
            dispatches_max: self.dispatches_max.min(DISPATCHES_MAX),
            wall_time_max_ms: self.wall_time_max_ms,
        }
    }

    /// Checks a job's plan against these limits and the adapter's; `Ok` means it may run.
    pub fn check(&self, plan: &Plan, adapter: &AdapterLimits) -> Result<()> {
        if self.wall_time_max_ms == 0 || self.wall_time_max_ms > WALL_TIME_MAX_MS {
            return Err(over(
                LimitKind::WallTime,
                self.wall_time_max_ms,
                WALL_TIME_MAX_MS,
            ));
        }
        let limits = self.clamped_to(adapter);
        let mut total: u64 = 0;
        for &size in &plan.buffers_bytes {
            if size > limits.buffer_size_max_bytes {
                return Err(over(
                    LimitKind::BufferSize,
                    size,
                    limits.buffer_size_max_bytes,
                ));
            }
            total = total.saturating_add(size);
        }
        if total > limits.job_memory_max_bytes {
            return Err(over(
                LimitKind::JobMemory,
                total,
                limits.job_memory_max_bytes,
            ));
        }
        if plan.dispatches > limits.dispatches_max {
            return Err(over(
                LimitKind::Dispatches,
                plan.dispatches,
                limits.dispatches_max,
            ));
        }
        let per_dim = u64::from(adapter.max_compute_workgroups_per_dimension);
        for &w in &plan.workgroups {
            if u64::from(w) > per_dim {
                return Err(over(
                    LimitKind::WorkgroupsPerDispatch,
                    u64::from(w),
                    per_dim,
                ));
            }
        }
        let groups: u64 = plan.workgroups.iter().map(|&w| u64::from(w)).product();
        if groups > limits.workgroups_per_dispatch_max {
            return Err(over(
                LimitKind::WorkgroupsPerDispatch,
                groups,
                limits.workgroups_per_dispatch_max,
            ));
        }
        let invocations_max = u64::from(adapter.max_compute_invocations_per_workgroup);
        if u64::from(plan.workgroup_invocations) > invocations_max {
            return Err(over(
                LimitKind::WorkgroupSize,
                u64::from(plan.workgroup_invocations),
                invocations_max,
            ));
        }
        Ok(())
    }

    /// Per-invocation loop budget for a client shader dispatched with `invocations` invocations
    /// (all loops of one invocation share it); capped lower on a `software` adapter.
    pub fn loop_budget(&self, invocations: u64, software: bool) -> u32 {
        let total = LOOP_ITERATIONS_PER_MS.saturating_mul(self.wall_time_max_ms);
        let cap = if software {
            LOOP_ITERATIONS_MAX_SOFTWARE
        } else {
            LOOP_ITERATIONS_MAX
        };
        let per = total / invocations.max(1);
        // LOOP_ITERATIONS_MAX < u32::MAX (asserted above), so the conversion cannot fail.
        u32::try_from(per.clamp(LOOP_ITERATIONS_MIN, cap)).unwrap_or(u32::MAX - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter() -> AdapterLimits {
        AdapterLimits {
            max_buffer_size: 1 << 28,
            max_storage_buffer_binding_size: 1 << 27,
            max_storage_buffers_per_shader_stage: 8,
            max_compute_workgroups_per_dimension: 65535,
            max_compute_invocations_per_workgroup: 256,
            max_compute_workgroup_storage_size: 16384,
            max_compute_workgroup_size: [256, 256, 64],
        }
    }

    fn plan(buffers: &[u64]) -> Plan {
        Plan {
            buffers_bytes: buffers.to_vec(),
            dispatches: 1,
            workgroups: [1, 1, 1],
            workgroup_invocations: 64,
        }
    }

    #[test]
    fn clamps_to_adapter_buffer_binding_size() {
        let l = JobLimits::default().clamped_to(&adapter());
        assert_eq!(l.buffer_size_max_bytes, 1 << 27);
    }

    #[test]
    fn buffer_over_adapter_limit_is_rejected() {
        let e = JobLimits::default().check(&plan(&[(1 << 27) + 4]), &adapter());
        assert!(matches!(
            e,
            Err(GpuError::LimitExceeded {
                kind: LimitKind::BufferSize,
                ..
            })
        ));
    }

    #[test]
    fn total_memory_is_limited() {
        let limits = JobLimits {
            job_memory_max_bytes: 1000,
            ..JobLimits::default()
        };
        let e = limits.check(&plan(&[600, 600]), &adapter());
        assert_eq!(
            e,
            Err(GpuError::LimitExceeded {
                kind: LimitKind::JobMemory,
                requested: 1200,
                max: 1000
            })
        );
    }

    #[test]
    fn dispatches_and_workgroups_are_limited() {
        let limits = JobLimits {
            dispatches_max: 2,
            workgroups_per_dispatch_max: 100,
            ..JobLimits::default()
        };
        let mut p = plan(&[4]);
        p.dispatches = 3;
        assert!(matches!(
            limits.check(&p, &adapter()),
            Err(GpuError::LimitExceeded {
                kind: LimitKind::Dispatches,
                ..
            })
        ));
        p.dispatches = 1;
        p.workgroups = [11, 10, 1];
        assert!(matches!(
            limits.check(&p, &adapter()),
            Err(GpuError::LimitExceeded {
                kind: LimitKind::WorkgroupsPerDispatch,
                ..
            })
        ));
        p.workgroups = [70000, 1, 1];
        assert!(limits.check(&p, &adapter()).is_err());
    }

    #[test]
    fn wall_time_must_be_positive_and_bounded() {
        for ms in [0, WALL_TIME_MAX_MS + 1] {
            let limits = JobLimits {
                wall_time_max_ms: ms,
                ..JobLimits::default()
            };
            assert!(matches!(
                limits.check(&plan(&[4]), &adapter()),
                Err(GpuError::LimitExceeded {
                    kind: LimitKind::WallTime,
                    ..
                })
            ));
        }
    }

    #[test]
    fn loop_budget_shrinks_with_invocations_and_is_bounded() {
        let l = JobLimits {
            wall_time_max_ms: 1000,
            ..JobLimits::default()
        };
        assert_eq!(u64::from(l.loop_budget(1, false)), 100_000_000);
        assert!(l.loop_budget(1000, false) < l.loop_budget(1, false));
        assert_eq!(
            u64::from(l.loop_budget(u64::MAX, false)),
            LOOP_ITERATIONS_MIN
        );
        assert_eq!(
            u64::from(l.loop_budget(1, true)),
            LOOP_ITERATIONS_MAX_SOFTWARE
        );
    }
}
