//! The executor: one worker thread owns the device and runs jobs one at a time.
//!
//! Callers hold an [`Executor`] (cheap to share; [`Executor::global`] gives the process-wide
//! one). [`Executor::submit`] checks the job against its limits *before* anything runs and
//! returns a [`JobHandle`]; [`JobHandle::wait`] blocks, [`JobHandle::try_result`] polls (for async
//! callers). [`Executor::run`] does both.
//!
//! Failure handling: a job that runs past its wall time gets [`GpuError::TimedOut`]; a device
//! that is lost gives [`GpuError::DeviceLost`]. In both cases the device is retired (dropped on a
//! separate thread, in case the driver blocks) and the next job gets a fresh one. If the worker
//! itself stops answering (a driver that ignores the poll timeout), waiting callers give up after
//! the wall time plus [`WORKER_GRACE_MS`] and a fresh worker takes over. The worker it replaces
//! (still stuck in the driver) answers whatever was queued on it with [`GpuError::TimedOut`]
//! when it comes back, drops its device and exits: it never runs another job, so apart from
//! the thread still stuck in the driver there is one device per process.
//!
//! Queueing: at most [`QUEUE_JOBS_MAX`] jobs wait behind the running one; [`Executor::submit`]
//! answers [`GpuError::Busy`] at once when the queue is full (it never blocks). Every job gets a
//! deadline when it is submitted: the wall-time limits of the jobs ahead of it (the running one
//! included) plus its own plus [`WORKER_GRACE_MS`]. Past it, [`JobHandle::wait`] and
//! [`JobHandle::try_result`] give [`GpuError::TimedOut`] (with the job's own limit), whether the
//! job is still queued or running; a job whose deadline passed while it was queued is answered
//! without running.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::adapter::AdapterReport;
use crate::device::{Binding, Deadline, Gpu, dispatch, storage_usage};
use crate::error::{GpuError, Result};
use crate::kernels::llm::{LlmJob, LlmOutput};
use crate::kernels::matmul::Matmul;
use crate::kernels::mlp::MlpInference;
use crate::kernels::sha256::{PowOutcome, ProofOfWork, Sha256Batch};
use crate::kernels::wgsl::{PreparedShader, WgslJob};
use crate::limits::{JobLimits, Plan, QUEUE_JOBS_MAX, WORKER_GRACE_MS};

const NOOP: &str = include_str!("kernels/noop.wgsl");

/// A unit of work.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// Matrix product.
    Matmul(Matmul),
    /// SHA-256 of many messages.
    Sha256Batch(Sha256Batch),
    /// Proof-of-work nonce search.
    ProofOfWork(ProofOfWork),
    /// Dense network inference.
    Mlp(MlpInference),
    /// A client's own compute shader.
    Wgsl(WgslJob),
    /// Text generation by a language model.
    Llm(LlmJob),
    /// One invocation writing one word and reading it back (measures dispatch overhead).
    Noop,
}

/// What a job produced.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutput {
    /// C, row-major M×N.
    Matmul(Vec<f32>),
    /// One digest per message, in order.
    Sha256(Vec<[u8; 32]>),
    /// The search's outcome.
    ProofOfWork(PowOutcome),
    /// Outputs, row-major batch × output width.
    Mlp(Vec<f32>),
    /// The output buffers' contents, in declaration order.
    Wgsl(Vec<Vec<u8>>),
    /// The generated tokens.
    Llm(LlmOutput),
    /// The no-op ran.
    Noop,
}

/// Counters across the executor's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExecutorStats {
    /// Jobs that returned `Ok`.
    pub jobs_ok: u64,
    /// Jobs that returned an error from the device side (limits rejected up front not counted).
    pub jobs_failed: u64,
    /// Devices created (1 + recreations after loss or timeout).
    pub devices_created: u64,
    /// Pipelines compiled (each kernel once per device).
    pub pipelines_compiled: u64,
    /// Buffers served from the pool instead of allocated.
    pub pool_hits: u64,
    /// Workers replaced because one stopped answering.
    pub workers_replaced: u64,
}

#[derive(Default)]
struct Counters {
    jobs_ok: AtomicU64,
    jobs_failed: AtomicU64,
    devices_created: AtomicU64,
    pipelines_compiled: AtomicU64,
    pool_hits: AtomicU64,
    workers_replaced: AtomicU64,
}

enum Work {
    Plain(Job),
    Wgsl(Box<(WgslJob, PreparedShader)>),
}

enum Request {
    Run {
        work: Work,
        limits: JobLimits,
        reply: Sender<Result<JobOutput>>,
        /// When the caller gives up (see the module documentation).
        deadline: Instant,
    },
    DestroyDevice {
        reply: Sender<()>,
    },
    /// Keeps the worker busy until `release` answers (or is dropped): a job that hangs the driver.
    /// `tracked`: whether it counts as running (and so can make the worker look stuck).
    #[cfg(test)]
    Hold {
        started: Sender<()>,
        release: Receiver<()>,
        limit_ms: u64,
        tracked: bool,
    },
}

impl Request {
    /// Wall time this request may keep the worker busy (counted in the backlog).
    fn limit_ms(&self) -> u64 {
        match self {
            Request::Run { limits, .. } => limits.wall_time_max_ms,
            Request::DestroyDevice { .. } => 0,
            #[cfg(test)]
            Request::Hold { limit_ms, .. } => *limit_ms,
        }
    }
}

/// `now + ms`, without overflowing `Instant` (a far deadline stands in for an absurd one).
fn after_ms(ms: u64) -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_millis(ms))
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

/// What became of a request handed to a worker.
enum Enqueued {
    /// Queued; the caller's deadline.
    Yes(Instant),
    /// The queue is full.
    Full,
    /// The worker thread is gone; the request comes back.
    Gone(Request),
}

/// One worker thread and what callers can see of it.
struct Worker {
    tx: SyncSender<Request>,
    /// When the current job started, and its wall-time limit.
    running: Mutex<Option<(Instant, u64)>>,
    abandoned: AtomicBool,
    /// Sum of the wall-time limits of the requests queued or running, in milliseconds. Locked
    /// while a request is queued so that the order of the queue and of the sums agree.
    backlog_ms: Mutex<u64>,
    /// How long past its wall time a job may run before the worker counts as stuck.
    grace_ms: u64,
}

impl Worker {
    fn is_stuck(&self) -> bool {
        if self.abandoned.load(Ordering::SeqCst) {
            return true;
        }
        let running = self.running.lock().map(|r| *r).unwrap_or(None);
        running.is_some_and(|(at, limit_ms)| {
            at.elapsed() > Duration::from_millis(limit_ms.saturating_add(self.grace_ms))
        })
    }

    fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }

    fn set_running(&self, value: Option<(Instant, u64)>) {
        if let Ok(mut r) = self.running.lock() {
            *r = value;
        }
    }

    /// Queues `request` without blocking; its deadline is the backlog plus its own wall time
    /// plus the grace period.
    fn enqueue(&self, mut request: Request) -> Enqueued {
        let own_ms = request.limit_ms();
        let mut backlog = match self.backlog_ms.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let at = after_ms(backlog.saturating_add(own_ms).saturating_add(self.grace_ms));
        if let Request::Run { deadline, .. } = &mut request {
            *deadline = at;
        }
        match self.tx.try_send(request) {
            Ok(()) => {
                *backlog = backlog.saturating_add(own_ms);
                Enqueued::Yes(at)
            }
            Err(TrySendError::Full(_)) => Enqueued::Full,
            Err(TrySendError::Disconnected(request)) => Enqueued::Gone(request),
        }
    }

    /// The worker is done with a request of `limit_ms`.
    fn done(&self, limit_ms: u64) {
        let mut backlog = match self.backlog_ms.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        *backlog = backlog.saturating_sub(limit_ms);
    }
}

struct Shared {
    worker: Mutex<Arc<Worker>>,
    counters: Arc<Counters>,
    grace_ms: u64,
}

impl Shared {
    /// Replaces `stuck` with a fresh worker (unless another caller already did).
    fn replace(&self, stuck: &Arc<Worker>) {
        stuck.abandoned.store(true, Ordering::SeqCst);
        let Ok(mut current) = self.worker.lock() else {
            return;
        };
        if Arc::ptr_eq(&current, stuck) {
            tracing::error!("GPU worker stopped answering; starting a new one");
            let (worker, _init) = spawn_worker(Arc::clone(&self.counters), self.grace_ms);
            *current = worker;
            self.counters
                .workers_replaced
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The GPU executor. See the module documentation.
pub struct Executor {
    shared: Arc<Shared>,
    adapter: AdapterReport,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("adapter", &self.adapter.name)
            .finish()
    }
}

/// A submitted job.
#[must_use = "a job handle does nothing unless waited on"]
pub struct JobHandle {
    rx: Receiver<Result<JobOutput>>,
    worker: Arc<Worker>,
    shared: Arc<Shared>,
    limit_ms: u64,
    deadline: Instant,
}

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle")
            .field("limit_ms", &self.limit_ms)
            .finish()
    }
}

impl JobHandle {
    /// `TimedOut` when the worker is stuck (it is then replaced) or the job's deadline has
    /// passed; `None` while waiting is still worth it.
    fn given_up(&self) -> Option<GpuError> {
        let timed_out = GpuError::TimedOut {
            limit_ms: self.limit_ms,
        };
        if self.worker.is_stuck() {
            self.shared.replace(&self.worker);
            return Some(timed_out);
        }
        (Instant::now() >= self.deadline).then_some(timed_out)
    }

    /// Blocks until the job is done, or until its deadline (its wall time, plus those of the
    /// jobs queued before it, plus a grace period) has passed, or the worker stops answering.
    pub fn wait(self) -> Result<JobOutput> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(r) => return r,
                Err(RecvTimeoutError::Disconnected) => return Err(GpuError::ExecutorStopped),
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(e) = self.given_up() {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// The result if the job is done, without blocking (poll this from an async task).
    pub fn try_result(&self) -> Option<Result<JobOutput>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(mpsc::TryRecvError::Disconnected) => Some(Err(GpuError::ExecutorStopped)),
            Err(mpsc::TryRecvError::Empty) => self.given_up().map(Err),
        }
    }
}

fn spawn_worker(
    counters: Arc<Counters>,
    grace_ms: u64,
) -> (Arc<Worker>, Receiver<Result<AdapterReport>>) {
    let (tx, rx) = mpsc::sync_channel::<Request>(QUEUE_JOBS_MAX);
    let (init_tx, init_rx) = mpsc::channel();
    let worker = Arc::new(Worker {
        tx,
        running: Mutex::new(None),
        abandoned: AtomicBool::new(false),
        backlog_ms: Mutex::new(0),
        grace_ms,
    });
    let state = Arc::clone(&worker);
    let spawned = std::thread::Builder::new()
        .name("aitbc-gpu-worker".into())
        .spawn(move || worker_loop(rx, &state, &counters, init_tx));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the GPU worker thread");
    }
    (worker, init_rx)
}

fn worker_loop(
    rx: Receiver<Request>,
    state: &Worker,
    counters: &Counters,
    init: Sender<Result<AdapterReport>>,
) {
    let mut slot: Option<Gpu> = None;
    // A driver that hangs while creating the first device makes the worker look stuck too.
    state.set_running(Some((
        Instant::now(),
        JobLimits::default().wall_time_max_ms,
    )));
    let first = Gpu::new();
    state.set_running(None);
    match first {
        Ok(gpu) => {
            counters.devices_created.fetch_add(1, Ordering::Relaxed);
            let _ = init.send(Ok(gpu.report.clone()));
            slot = Some(gpu);
        }
        Err(e) => {
            let _ = init.send(Err(e));
        }
    }
    while let Ok(req) = rx.recv() {
        if state.is_abandoned() {
            abandon(Some(req), &rx, counters);
            break;
        }
        let limit_ms = req.limit_ms();
        match req {
            Request::Run {
                work,
                limits,
                reply,
                deadline,
            } => {
                let result = if Instant::now() >= deadline {
                    // The caller has given up on it already.
                    Err(GpuError::TimedOut {
                        limit_ms: limits.wall_time_max_ms,
                    })
                } else {
                    run_one(&mut slot, state, counters, work, &limits)
                };
                match &result {
                    Ok(_) => counters.jobs_ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => counters.jobs_failed.fetch_add(1, Ordering::Relaxed),
                };
                let _ = reply.send(result);
            }
            Request::DestroyDevice { reply } => {
                if let Some(gpu) = &slot {
                    tracing::warn!("destroying the GPU device on request");
                    state.set_running(Some((Instant::now(), 0)));
                    gpu.destroy();
                    state.set_running(None);
                }
                let _ = reply.send(());
            }
            #[cfg(test)]
            Request::Hold {
                started,
                release,
                limit_ms,
                tracked,
            } => {
                if tracked {
                    state.set_running(Some((Instant::now(), limit_ms)));
                }
                let _ = started.send(());
                let _ = release.recv();
                state.set_running(None);
            }
        }
        state.done(limit_ms);
        if state.is_abandoned() {
            abandon(None, &rx, counters);
            break;
        }
    }
    drop(slot);
}

/// A worker replaced while stuck (a fresh one owns a device now) answers what is queued on it
/// without running it; its caller then drops the device and ends the thread.
fn abandon(first: Option<Request>, rx: &Receiver<Request>, counters: &Counters) {
    tracing::warn!("abandoned GPU worker is answering its queue and exiting");
    for req in first.into_iter().chain(rx.try_iter()) {
        if let Request::Run { limits, reply, .. } = req {
            counters.jobs_failed.fetch_add(1, Ordering::Relaxed);
            let _ = reply.send(Err(GpuError::TimedOut {
                limit_ms: limits.wall_time_max_ms,
            }));
        }
    }
}

/// Drops a device off the worker thread: a driver may block in teardown while work still runs.
fn retire(gpu: Option<Gpu>) {
    let Some(gpu) = gpu else { return };
    let spawned = std::thread::Builder::new()
        .name("aitbc-gpu-retire".into())
        .spawn(move || drop(gpu));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start a thread to retire the GPU device");
    }
}

fn run_one(
    slot: &mut Option<Gpu>,
    state: &Worker,
    counters: &Counters,
    work: Work,
    limits: &JobLimits,
) -> Result<JobOutput> {
    // Counted as running from here: a driver that hangs while creating the device makes the
    // worker look stuck too.
    state.set_running(Some((Instant::now(), limits.wall_time_max_ms)));
    if slot.as_ref().is_some_and(Gpu::is_lost) {
        tracing::warn!("GPU device was lost; recreating it");
        retire(slot.take());
    }
    let gpu = match slot {
        Some(gpu) => gpu,
        None => match Gpu::new() {
            Ok(gpu) => {
                counters.devices_created.fetch_add(1, Ordering::Relaxed);
                slot.insert(gpu)
            }
            Err(e) => {
                state.set_running(None);
                return Err(e);
            }
        },
    };
    let started = Instant::now();
    let deadline = Deadline {
        at: started + Duration::from_millis(limits.wall_time_max_ms),
        limit_ms: limits.wall_time_max_ms,
    };
    state.set_running(Some((started, limits.wall_time_max_ms)));
    let compiled_before = gpu.pipelines_compiled;
    let hits_before = gpu.pool_hits();
    let oom = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let result = execute(gpu, work, &deadline);
    let validation = pollster::block_on(validation.pop());
    let oom = pollster::block_on(oom.pop());
    state.set_running(None);
    counters
        .pipelines_compiled
        .fetch_add(gpu.pipelines_compiled - compiled_before, Ordering::Relaxed);
    counters
        .pool_hits
        .fetch_add(gpu.pool_hits() - hits_before, Ordering::Relaxed);
    let result = match (result, validation, oom) {
        (Err(e @ (GpuError::TimedOut { .. } | GpuError::LoopBudgetExceeded { .. })), _, _) => {
            Err(e)
        }
        (_, _, Some(e)) => Err(GpuError::OutOfMemory(e.to_string())),
        (Err(e @ GpuError::ShaderRejected { .. }), _, _) => Err(e),
        (_, Some(e), _) => Err(GpuError::Backend(e.to_string())),
        (r, None, None) => r,
    };
    if matches!(
        result,
        Err(GpuError::TimedOut { .. } | GpuError::DeviceLost(_))
    ) || gpu.is_lost()
    {
        tracing::warn!(error = ?result.as_ref().err(), "retiring the GPU device");
        retire(slot.take());
    }
    result
}

fn execute(gpu: &mut Gpu, work: Work, deadline: &Deadline) -> Result<JobOutput> {
    match work {
        Work::Plain(Job::Matmul(m)) => m.run(gpu, deadline).map(JobOutput::Matmul),
        Work::Plain(Job::Sha256Batch(s)) => s.run(gpu, deadline).map(JobOutput::Sha256),
        Work::Plain(Job::ProofOfWork(p)) => p.run(gpu, deadline).map(JobOutput::ProofOfWork),
        Work::Plain(Job::Mlp(m)) => m.run(gpu, deadline).map(JobOutput::Mlp),
        Work::Plain(Job::Llm(l)) => l.run(gpu, deadline).map(JobOutput::Llm),
        Work::Plain(Job::Noop) => run_noop(gpu, deadline).map(|()| JobOutput::Noop),
        Work::Plain(Job::Wgsl(_)) => Err(GpuError::Backend(
            "client shader reached the worker unprepared".into(),
        )),
        Work::Wgsl(b) => {
            let (job, prepared) = *b;
            job.run(&prepared, gpu, deadline).map(JobOutput::Wgsl)
        }
    }
}

fn noop_plan() -> Plan {
    Plan {
        buffers_bytes: vec![4, 4],
        dispatches: 1,
        workgroups: [1, 1, 1],
        workgroup_invocations: 1,
    }
}

fn run_noop(gpu: &mut Gpu, deadline: &Deadline) -> Result<()> {
    let kernel = gpu.kernel("noop", NOOP, "main", &[Binding::ReadWrite]);
    let counter = gpu.buffer(4, storage_usage());
    let staging = gpu.staging(4);
    let bg = gpu.bind_group(&kernel, &[&counter]);
    let mut enc = gpu.encoder();
    dispatch(&mut enc, &kernel, &bg, [1, 1, 1]);
    enc.copy_buffer_to_buffer(&counter.buffer, 0, &staging.buffer, 0, 4);
    gpu.submit_wait(enc, deadline)?;
    gpu.read(&staging, deadline)?;
    gpu.recycle([counter, staging]);
    Ok(())
}

static GLOBAL: OnceLock<std::result::Result<Executor, GpuError>> = OnceLock::new();

fn unexpected() -> GpuError {
    GpuError::Backend("the job produced an output of another kind".into())
}

impl Executor {
    /// Starts a worker thread and creates its device; fails with [`GpuError::NoAdapter`] when
    /// there is no adapter at all. Prefer [`Executor::global`]: one device per process.
    pub fn new() -> Result<Executor> {
        Executor::start(WORKER_GRACE_MS)
    }

    fn start(grace_ms: u64) -> Result<Executor> {
        let counters = Arc::new(Counters::default());
        let (worker, init) = spawn_worker(Arc::clone(&counters), grace_ms);
        let adapter = init.recv().map_err(|_| GpuError::ExecutorStopped)??;
        Ok(Executor {
            shared: Arc::new(Shared {
                worker: Mutex::new(worker),
                counters,
                grace_ms,
            }),
            adapter,
        })
    }

    fn current_worker(&self) -> Result<Arc<Worker>> {
        self.shared
            .worker
            .lock()
            .map(|w| Arc::clone(&w))
            .map_err(|_| GpuError::ExecutorStopped)
    }

    /// Queues `request` on the current worker (on a fresh one if that one's thread is gone).
    fn enqueue(&self, request: Request) -> Result<(Arc<Worker>, Instant)> {
        let mut worker = self.current_worker()?;
        if worker.is_stuck() {
            // Nobody may be waiting on the stuck job to notice: replace the worker here too, or
            // a wedged driver would leave the queue full for good.
            self.shared.replace(&worker);
            worker = self.current_worker()?;
        }
        let request = match worker.enqueue(request) {
            Enqueued::Yes(deadline) => return Ok((worker, deadline)),
            Enqueued::Full => {
                return Err(GpuError::Busy {
                    queued_max: QUEUE_JOBS_MAX,
                });
            }
            Enqueued::Gone(request) => request,
        };
        // The worker thread is gone (a panic inside the driver): start a new one, retry once.
        self.shared.replace(&worker);
        let worker = self.current_worker()?;
        match worker.enqueue(request) {
            Enqueued::Yes(deadline) => Ok((worker, deadline)),
            Enqueued::Full => Err(GpuError::Busy {
                queued_max: QUEUE_JOBS_MAX,
            }),
            Enqueued::Gone(_) => Err(GpuError::ExecutorStopped),
        }
    }

    /// The process-wide executor, created on first use.
    pub fn global() -> Result<&'static Executor> {
        GLOBAL
            .get_or_init(Executor::new)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The adapter the executor runs on.
    pub fn adapter(&self) -> &AdapterReport {
        &self.adapter
    }

    /// Counters so far.
    pub fn stats(&self) -> ExecutorStats {
        let c = &self.shared.counters;
        ExecutorStats {
            jobs_ok: c.jobs_ok.load(Ordering::Relaxed),
            jobs_failed: c.jobs_failed.load(Ordering::Relaxed),
            devices_created: c.devices_created.load(Ordering::Relaxed),
            pipelines_compiled: c.pipelines_compiled.load(Ordering::Relaxed),
            pool_hits: c.pool_hits.load(Ordering::Relaxed),
            workers_replaced: c.workers_replaced.load(Ordering::Relaxed),
        }
    }

    /// Checks `job` against `limits` (clamped to the adapter's) and queues it. Errors here mean
    /// nothing ran; [`GpuError::Busy`] when [`QUEUE_JOBS_MAX`] jobs are already waiting (this
    /// never blocks).
    pub fn submit(&self, job: Job, limits: &JobLimits) -> Result<JobHandle> {
        let adapter = &self.adapter.limits;
        let work = match job {
            Job::Wgsl(w) => {
                let prepared = w.prepare(limits, &self.adapter)?;
                Work::Wgsl(Box::new((w, prepared)))
            }
            other => {
                let plan = match &other {
                    Job::Matmul(m) => m.plan()?,
                    Job::Sha256Batch(s) => s.plan()?,
                    Job::ProofOfWork(p) => p.plan()?,
                    Job::Mlp(m) => m.plan()?,
                    Job::Llm(l) => l.plan()?,
                    Job::Noop | Job::Wgsl(_) => noop_plan(),
                };
                limits.check(&plan, adapter)?;
                Work::Plain(other)
            }
        };
        let (reply, rx) = mpsc::channel();
        let (worker, deadline) = self.enqueue(Request::Run {
            work,
            limits: limits.clamped_to(adapter),
            reply,
            // Set when queued.
            deadline: Instant::now(),
        })?;
        Ok(JobHandle {
            rx,
            worker,
            shared: Arc::clone(&self.shared),
            limit_ms: limits.wall_time_max_ms,
            deadline,
        })
    }

    /// Submits `job` and waits for it.
    pub fn run(&self, job: Job, limits: &JobLimits) -> Result<JobOutput> {
        self.submit(job, limits)?.wait()
    }

    /// C = A·B.
    pub fn matmul(&self, job: Matmul, limits: &JobLimits) -> Result<Vec<f32>> {
        match self.run(Job::Matmul(job), limits)? {
            JobOutput::Matmul(c) => Ok(c),
            _ => Err(unexpected()),
        }
    }

    /// SHA-256 of every message, in order.
    pub fn sha256_batch(
        &self,
        messages: Vec<Vec<u8>>,
        limits: &JobLimits,
    ) -> Result<Vec<[u8; 32]>> {
        match self.run(Job::Sha256Batch(Sha256Batch { messages }), limits)? {
            JobOutput::Sha256(d) => Ok(d),
            _ => Err(unexpected()),
        }
    }

    /// Proof-of-work search; the answer, if any, is verified on the CPU.
    pub fn proof_of_work(&self, job: ProofOfWork, limits: &JobLimits) -> Result<PowOutcome> {
        match self.run(Job::ProofOfWork(job), limits)? {
            JobOutput::ProofOfWork(o) => Ok(o),
            _ => Err(unexpected()),
        }
    }

    /// Dense network inference.
    pub fn mlp(&self, job: MlpInference, limits: &JobLimits) -> Result<Vec<f32>> {
        match self.run(Job::Mlp(job), limits)? {
            JobOutput::Mlp(y) => Ok(y),
            _ => Err(unexpected()),
        }
    }

    /// Text generation; the generated tokens and the logits after the prompt.
    pub fn llm(&self, job: LlmJob, limits: &JobLimits) -> Result<LlmOutput> {
        match self.run(Job::Llm(job), limits)? {
            JobOutput::Llm(o) => Ok(o),
            _ => Err(unexpected()),
        }
    }

    /// A client's compute shader; returns its output buffers.
    pub fn wgsl(&self, job: WgslJob, limits: &JobLimits) -> Result<Vec<Vec<u8>>> {
        match self.run(Job::Wgsl(job), limits)? {
            JobOutput::Wgsl(o) => Ok(o),
            _ => Err(unexpected()),
        }
    }

    /// Destroys the current device, as a driver reset would. The next job finds it lost and
    /// gets a fresh one. For fault-injection tests and operator resets. Queued like a job:
    /// [`GpuError::Busy`] when the queue is full; it waits for the jobs ahead of it.
    pub fn destroy_device(&self) -> Result<()> {
        let (reply, rx) = mpsc::channel();
        let (_worker, deadline) = self.enqueue(Request::DestroyDevice { reply })?;
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| GpuError::ExecutorStopped)
    }
}

#[cfg(test)]
mod tests {
    //! Queueing and worker replacement, with a request that holds the worker as a hung driver
    //! would. Each test has its own executor (and so its own device).

    use super::*;

    fn start(grace_ms: u64) -> Executor {
        match Executor::start(grace_ms) {
            Ok(e) => e,
            Err(e) => panic!("no executor: {e}"),
        }
    }

    fn noop(limit_ms: u64) -> JobLimits {
        JobLimits {
            wall_time_max_ms: limit_ms,
            ..JobLimits::default()
        }
    }

    /// Holds the worker until the returned sender is used or dropped.
    fn hold(exec: &Executor, limit_ms: u64, tracked: bool) -> (Sender<()>, Arc<Worker>) {
        let (release, rx) = mpsc::channel();
        let (started, is_started) = mpsc::channel();
        let (worker, _) = exec
            .enqueue(Request::Hold {
                started,
                release: rx,
                limit_ms,
                tracked,
            })
            .expect("queued");
        // Wait until the worker has taken it off the queue.
        is_started
            .recv_timeout(Duration::from_secs(10))
            .expect("hold picked up");
        (release, worker)
    }

    /// `f` on another thread, failing the test if it takes longer than `within`.
    fn within<T: Send + 'static>(within: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        match rx.recv_timeout(within) {
            Ok(v) => v,
            Err(_) => panic!("still blocked after {within:?}"),
        }
    }

    #[test]
    fn a_full_queue_answers_busy_at_once_and_later_jobs_run() {
        let exec = start(WORKER_GRACE_MS);
        let (release, _) = hold(&exec, 60_000, true);
        let handles: Vec<JobHandle> = (0..QUEUE_JOBS_MAX)
            .map(|i| {
                exec.submit(Job::Noop, &noop(1000))
                    .unwrap_or_else(|e| panic!("job {i} not queued: {e}"))
            })
            .collect();
        let t = Instant::now();
        let busy = GpuError::Busy {
            queued_max: QUEUE_JOBS_MAX,
        };
        assert_eq!(
            exec.submit(Job::Noop, &noop(1000)).err(),
            Some(busy.clone())
        );
        assert_eq!(exec.destroy_device().err(), Some(busy));
        assert!(t.elapsed() < Duration::from_secs(1), "submit blocked");
        release.send(()).expect("worker holds the receiver");
        for h in handles {
            assert_eq!(h.wait(), Ok(JobOutput::Noop));
        }
        assert_eq!(exec.run(Job::Noop, &noop(1000)), Ok(JobOutput::Noop));
        assert_eq!(exec.stats().jobs_ok, QUEUE_JOBS_MAX as u64 + 1);
    }

    #[test]
    fn a_queued_job_times_out_at_its_deadline_and_is_not_run_late() {
        let exec = start(200);
        // Work the stuck check does not see, counted as 100 ms in the backlog.
        let (release, _) = hold(&exec, 100, false);
        let handle = exec.submit(Job::Noop, &noop(100)).expect("queued");
        let t = Instant::now();
        let r = within(Duration::from_secs(5), move || handle.wait());
        assert_eq!(r, Err(GpuError::TimedOut { limit_ms: 100 }));
        // Deadline: 100 (ahead) + 100 (own) + 200 (grace) ms after submission.
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(exec.stats().workers_replaced, 0);
        release.send(()).expect("worker holds the receiver");
        // The worker answers the expired job without running it, then runs the next one.
        assert_eq!(exec.run(Job::Noop, &noop(1000)), Ok(JobOutput::Noop));
        let stats = exec.stats();
        assert_eq!((stats.jobs_ok, stats.jobs_failed), (1, 1));
    }

    #[test]
    fn a_replaced_worker_answers_its_queue_and_exits() {
        let exec = start(200);
        let (release, old) = hold(&exec, 50, true);
        let a = exec.submit(Job::Noop, &noop(1000)).expect("queued");
        let b = exec.submit(Job::Noop, &noop(1000)).expect("queued");
        let ra = within(Duration::from_secs(5), move || a.wait());
        assert_eq!(ra, Err(GpuError::TimedOut { limit_ms: 1000 }));
        assert_eq!(b.wait(), Err(GpuError::TimedOut { limit_ms: 1000 }));
        assert_eq!(exec.stats().workers_replaced, 1);
        assert_eq!(exec.run(Job::Noop, &noop(1000)), Ok(JobOutput::Noop));
        // The old worker comes back from the "driver": it must not run a and b on its device.
        release.send(()).expect("worker holds the receiver");
        let t = Instant::now();
        loop {
            let (_keep, rx) = mpsc::channel();
            let probe = Request::Hold {
                started: mpsc::channel().0,
                release: rx,
                limit_ms: 0,
                tracked: false,
            };
            if let Err(TrySendError::Disconnected(_)) = old.tx.try_send(probe) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "old worker still running"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let stats = exec.stats();
        assert_eq!(stats.jobs_ok, 1, "{stats:?}");
        assert_eq!(stats.jobs_failed, 2, "{stats:?}");
    }
}
