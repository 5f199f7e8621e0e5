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
//! the wall time plus [`WORKER_GRACE_MS`] and a fresh worker takes over.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::adapter::AdapterReport;
use crate::device::{Binding, Deadline, Gpu, dispatch, storage_usage};
use crate::error::{GpuError, Result};
use crate::kernels::matmul::Matmul;
use crate::kernels::mlp::MlpInference;
use crate::kernels::sha256::{PowOutcome, ProofOfWork, Sha256Batch};
use crate::kernels::wgsl::{PreparedShader, WgslJob};
use crate::limits::{JobLimits, Plan, WORKER_GRACE_MS};

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
    },
    DestroyDevice {
        reply: Sender<()>,
    },
}

/// One worker thread and what callers can see of it.
struct Worker {
    tx: Sender<Request>,
    /// When the current job started, and its wall-time limit.
    running: Mutex<Option<(Instant, u64)>>,
    abandoned: AtomicBool,
}

impl Worker {
    fn is_stuck(&self) -> bool {
        if self.abandoned.load(Ordering::SeqCst) {
            return true;
        }
        let running = self.running.lock().map(|r| *r).unwrap_or(None);
        running.is_some_and(|(at, limit_ms)| {
            at.elapsed() > Duration::from_millis(limit_ms.saturating_add(WORKER_GRACE_MS))
        })
    }
}

struct Shared {
    worker: Mutex<Arc<Worker>>,
    counters: Arc<Counters>,
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
            let (worker, _init) = spawn_worker(Arc::clone(&self.counters));
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
}

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle")
            .field("limit_ms", &self.limit_ms)
            .finish()
    }
}

impl JobHandle {
    /// Blocks until the job is done (or its wall time plus a grace period has passed with the
    /// worker not answering).
    pub fn wait(self) -> Result<JobOutput> {
        loop {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(r) => return r,
                Err(RecvTimeoutError::Disconnected) => return Err(GpuError::ExecutorStopped),
                Err(RecvTimeoutError::Timeout) => {
                    if self.worker.is_stuck() {
                        self.shared.replace(&self.worker);
                        return Err(GpuError::TimedOut {
                            limit_ms: self.limit_ms,
                        });
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
            Err(mpsc::TryRecvError::Empty) => {
                if self.worker.is_stuck() {
                    self.shared.replace(&self.worker);
                    return Some(Err(GpuError::TimedOut {
                        limit_ms: self.limit_ms,
                    }));
                }
                None
            }
        }
    }
}

fn spawn_worker(counters: Arc<Counters>) -> (Arc<Worker>, Receiver<Result<AdapterReport>>) {
    let (tx, rx) = mpsc::channel::<Request>();
    let (init_tx, init_rx) = mpsc::channel();
    let worker = Arc::new(Worker {
        tx,
        running: Mutex::new(None),
        abandoned: AtomicBool::new(false),
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
    match Gpu::new() {
        Ok(gpu) => {
            counters.devices_created.fetch_add(1, Ordering::Relaxed);
            let _ = init.send(Ok(gpu.report.clone()));
            slot = Some(gpu);
        }
        Err(e) => {
            let _ = init.send(Err(e));
        }
    }
    for req in rx {
        match req {
            Request::Run {
                work,
                limits,
                reply,
            } => {
                let result = run_one(&mut slot, state, counters, work, &limits);
                match &result {
                    Ok(_) => counters.jobs_ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => counters.jobs_failed.fetch_add(1, Ordering::Relaxed),
                };
                let _ = reply.send(result);
            }
            Request::DestroyDevice { reply } => {
                if let Some(gpu) = &slot {
                    tracing::warn!("destroying the GPU device on request");
                    gpu.destroy();
                }
                let _ = reply.send(());
            }
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
    if slot.as_ref().is_some_and(Gpu::is_lost) {
        tracing::warn!("GPU device was lost; recreating it");
        retire(slot.take());
    }
    let gpu = match slot {
        Some(gpu) => gpu,
        None => {
            let gpu = Gpu::new()?;
            counters.devices_created.fetch_add(1, Ordering::Relaxed);
            slot.insert(gpu)
        }
    };
    let started = Instant::now();
    let deadline = Deadline {
        at: started + Duration::from_millis(limits.wall_time_max_ms),
        limit_ms: limits.wall_time_max_ms,
    };
    if let Ok(mut r) = state.running.lock() {
        *r = Some((started, limits.wall_time_max_ms));
    }
    let compiled_before = gpu.pipelines_compiled;
    let hits_before = gpu.pool_hits();
    let oom = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let result = execute(gpu, work, &deadline);
    let validation = pollster::block_on(validation.pop());
    let oom = pollster::block_on(oom.pop());
    if let Ok(mut r) = state.running.lock() {
        *r = None;
    }
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
        let counters = Arc::new(Counters::default());
        let (worker, init) = spawn_worker(Arc::clone(&counters));
        let adapter = init.recv().map_err(|_| GpuError::ExecutorStopped)??;
        Ok(Executor {
            shared: Arc::new(Shared {
                worker: Mutex::new(worker),
                counters,
            }),
            adapter,
        })
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
    /// nothing ran.
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
                    Job::Noop | Job::Wgsl(_) => noop_plan(),
                };
                limits.check(&plan, adapter)?;
                Work::Plain(other)
            }
        };
        let (reply, rx) = mpsc::channel();
        let current = || {
            self.shared
                .worker
                .lock()
                .map(|w| Arc::clone(&w))
                .map_err(|_| GpuError::ExecutorStopped)
        };
        let mut worker = current()?;
        let request = Request::Run {
            work,
            limits: limits.clamped_to(adapter),
            reply,
        };
        if let Err(mpsc::SendError(request)) = worker.tx.send(request) {
            // The worker thread is gone (a panic inside the driver): start a new one, retry once.
            self.shared.replace(&worker);
            worker = current()?;
            worker
                .tx
                .send(request)
                .map_err(|_| GpuError::ExecutorStopped)?;
        }
        Ok(JobHandle {
            rx,
            worker,
            shared: Arc::clone(&self.shared),
            limit_ms: limits.wall_time_max_ms,
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

    /// A client's compute shader; returns its output buffers.
    pub fn wgsl(&self, job: WgslJob, limits: &JobLimits) -> Result<Vec<Vec<u8>>> {
        match self.run(Job::Wgsl(job), limits)? {
            JobOutput::Wgsl(o) => Ok(o),
            _ => Err(unexpected()),
        }
    }

    /// Destroys the current device, as a driver reset would. The next job finds it lost and
    /// gets a fresh one. For fault-injection tests and operator resets.
    pub fn destroy_device(&self) -> Result<()> {
        let (reply, rx) = mpsc::channel();
        let worker = self
            .shared
            .worker
            .lock()
            .map(|w| Arc::clone(&w))
            .map_err(|_| GpuError::ExecutorStopped)?;
        worker
            .tx
            .send(Request::DestroyDevice { reply })
            .map_err(|_| GpuError::ExecutorStopped)?;
        rx.recv_timeout(Duration::from_millis(WORKER_GRACE_MS))
            .map_err(|_| GpuError::ExecutorStopped)
    }
}
