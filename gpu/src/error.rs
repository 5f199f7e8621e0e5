//! The crate's one error type.

use serde::Serialize;

/// Which limit a job ran into (see [`crate::limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// One buffer is larger than [`crate::limits::JobLimits::buffer_size_max_bytes`].
    BufferSize,
    /// All buffers of a job together exceed [`crate::limits::JobLimits::job_memory_max_bytes`].
    JobMemory,
    /// One dispatch asks for more workgroups than allowed (in total, or in one dimension).
    WorkgroupsPerDispatch,
    /// A job needs more dispatches than [`crate::limits::JobLimits::dispatches_max`].
    Dispatches,
    /// A wall-time limit above [`crate::limits::WALL_TIME_MAX_MS`] (or zero) was asked for.
    WallTime,
    /// Too many items in one batch (messages, samples, buffers).
    BatchSize,
    /// One item of a batch is too large (a message, a layer, a prefix).
    ItemSize,
    /// Invocations per workgroup above the adapter's limit.
    WorkgroupSize,
    /// Private and function-local variables of a client shader, in bytes per invocation.
    InvocationMemory,
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            LimitKind::BufferSize => "buffer size (bytes)",
            LimitKind::JobMemory => "total memory of the job (bytes)",
            LimitKind::WorkgroupsPerDispatch => "workgroups per dispatch",
            LimitKind::Dispatches => "dispatches per job",
            LimitKind::WallTime => "wall time (ms)",
            LimitKind::BatchSize => "batch size",
            LimitKind::ItemSize => "item size",
            LimitKind::WorkgroupSize => "invocations per workgroup",
            LimitKind::InvocationMemory => "private memory per invocation (bytes)",
        };
        f.write_str(s)
    }
}

/// Everything that can go wrong in this crate. Variants are stable; match on them, not on messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// No adapter at all, not even the software one.
    #[error(
        "no GPU adapter found, not even a software one; install the software Vulkan driver: \
         apt-get install mesa-vulkan-drivers libvulkan1"
    )]
    NoAdapter,
    /// The adapter exists but refused to give a device.
    #[error("could not create a device on adapter {adapter}: {reason}")]
    DeviceCreation {
        /// Adapter name.
        adapter: String,
        /// What wgpu said.
        reason: String,
    },
    /// A job is over one of its limits; nothing was run.
    #[error("limit exceeded: {kind} is {requested}, the maximum is {max}")]
    LimitExceeded {
        /// Which limit.
        kind: LimitKind,
        /// What the job asked for.
        requested: u64,
        /// The limit in force.
        max: u64,
    },
    /// The job's inputs are inconsistent (wrong lengths, zero sizes, misaligned sizes).
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// A client shader did not parse, did not validate, or does not match its declaration.
    #[error("shader rejected{}: {message}", line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    ShaderRejected {
        /// 1-based line of the offending source, when known.
        line: Option<u32>,
        /// Why.
        message: String,
    },
    /// The job ran past its wall-time limit; the device was dropped and will be recreated.
    #[error("job ran past its wall-time limit of {limit_ms} ms (device will be recreated)")]
    TimedOut {
        /// The limit in force.
        limit_ms: u64,
    },
    /// A client shader's loops ran past the per-invocation iteration budget derived from the
    /// wall-time limit; its outputs are discarded.
    #[error("shader loops ran past their iteration budget of {budget} per invocation")]
    LoopBudgetExceeded {
        /// Iterations allowed per invocation.
        budget: u32,
    },
    /// The device was lost while the job ran; it will be recreated for the next job.
    #[error("GPU device lost: {0} (it will be recreated for the next job)")]
    DeviceLost(String),
    /// The device ran out of memory.
    #[error("GPU out of memory: {0}")]
    OutOfMemory(String),
    /// wgpu rejected the work for another reason (a bug here, or a driver limit).
    #[error("GPU backend error: {0}")]
    Backend(String),
    /// The executor's queue is full ([`crate::limits::QUEUE_JOBS_MAX`] jobs waiting); nothing was
    /// queued. Retry later.
    #[error("the GPU executor is busy: {queued_max} jobs are already queued")]
    Busy {
        /// Jobs the queue holds.
        queued_max: usize,
    },
    /// The executor's worker thread is gone.
    #[error("the GPU executor has stopped")]
    ExecutorStopped,
}

/// Shorthand used throughout the crate.
pub type Result<T, E = GpuError> = std::result::Result<T, E>;
