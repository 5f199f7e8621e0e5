//! `wgsl`: a client's own compute shader.
//!
//! Before anything runs, the source is parsed and validated with naga, and its bindings are
//! checked against the declaration: storage buffer i is `@group(0) @binding(i)`, inputs first
//! (`var<storage, read>`), then outputs (`var<storage, read_write>`); nothing else may be bound.
//! Errors name the source line.
//!
//! Then the naga IR is instrumented so that the shader always terminates: every `loop` (WGSL's
//! `loop`, `for` and `while` all become one) starts by bumping a per-invocation counter shared by
//! all loops; past the job's budget (derived from its wall time, see
//! [`JobLimits::loop_budget`]) the loop breaks and a hidden flag buffer (binding N, after the
//! declared buffers) is set, which the executor reports as [`GpuError::LoopBudgetExceeded`].
//! This matters on lavapipe, which has no GPU watchdog: a runaway shader would otherwise burn a
//! CPU thread forever. The instrumented module goes to wgpu as naga IR (`ShaderSource::Naga`).
//!
//! Barriers: the budget counter is per invocation, so the budget can end a loop at different
//! iterations for different invocations of one workgroup (they have spent different amounts of
//! it in earlier loops). A barrier inside such a loop would then be reached by only some of the
//! workgroup's invocations, which is undefined behaviour and hangs some drivers (lavapipe
//! included). So a client shader is rejected ([`GpuError::ShaderRejected`], naming the line) when
//! a `workgroupBarrier()`, `storageBarrier()` (any control barrier) or `workgroupUniformLoad`
//! sits inside a loop, directly or in a function called from inside a loop. Barriers outside
//! loops are accepted: every loop ends for every invocation, so all of them still reach such a
//! barrier. (A uniform budget check would need a barrier of its own in every loop, which would
//! hang ordinary loops whose trip count differs between invocations.) The crate's own kernels
//! are not client shaders and are not checked. naga does not check that barriers sit in uniform
//! control flow; a client shader whose own control flow is non-uniform around a barrier (or
//! that decides, after a loop cut short by the budget, whether to reach one) is on its own:
//! the wall-time limit and the stuck-worker replacement still end the job.

use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::{
    AddressSpace, BinaryOperator, Block, Expression, GlobalVariable, Literal, ResourceBinding,
    Scalar, Span, Statement, StorageAccess, Type, TypeInner,
};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::adapter::{AdapterLimits, AdapterReport};
use crate::device::{Binding, Deadline, Gpu, dispatch, storage_usage};
use crate::error::{GpuError, LimitKind, Result};
use crate::limits::{
    CLIENT_BUFFERS_MAX, CLIENT_INVOCATION_BYTES_MAX, CLIENT_SOURCE_BYTES_MAX, JobLimits, Plan,
};

/// A client compute shader with its buffers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WgslJob {
    /// WGSL source.
    pub source: String,
    /// Name of the `@compute` entry point.
    pub entry_point: String,
    /// Input buffers (bindings 0..inputs.len()), read-only; each non-empty, zero-padded to 4 bytes.
    pub inputs: Vec<Vec<u8>>,
    /// Output buffer sizes in bytes (the bindings after the inputs), each a non-zero multiple of 4.
    /// Outputs start zeroed.
    pub output_sizes: Vec<u64>,
    /// Workgroups dispatched, x, y, z.
    pub workgroups: [u32; 3],
}

/// A shader that passed validation and was instrumented; ready for the device.
#[derive(Debug, Clone)]
pub(crate) struct PreparedShader {
    pub(crate) module: naga::Module,
    pub(crate) key: [u8; 32],
    pub(crate) budget: u32,
}

fn rejected(line: Option<u32>, message: impl Into<String>) -> GpuError {
    GpuError::ShaderRejected {
        line,
        message: message.into(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

fn validate_module(module: &naga::Module, source: &str) -> Result<()> {
    Validator::new(ValidationFlags::all(), Capabilities::default())
        .validate(module)
        .map(|_| ())
        .map_err(|e| {
            rejected(
                e.location(source).map(|l| l.line_number),
                error_chain(e.as_inner()),
            )
        })
}

impl WgslJob {
    /// Parses, validates and checks the job against its declaration and limits; nothing runs.
    pub fn validate(&self, limits: &JobLimits, adapter: &AdapterReport) -> Result<()> {
        self.prepare(limits, adapter).map(|_| ())
    }

    fn check_buffers(&self, adapter: &AdapterLimits) -> Result<()> {
        let count = self.inputs.len() + self.output_sizes.len();
        let max = CLIENT_BUFFERS_MAX
            .min((adapter.max_storage_buffers_per_shader_stage as usize).saturating_sub(1));
        if count > max {
            return Err(GpuError::LimitExceeded {
                kind: LimitKind::BatchSize,
                requested: count as u64,
                max: max as u64,
            });
        }
        if self.output_sizes.is_empty() {
            return Err(GpuError::InvalidJob(
                "wgsl: no output buffer declared".into(),
            ));
        }
        if let Some(i) = self.inputs.iter().position(Vec::is_empty) {
            return Err(GpuError::InvalidJob(format!("wgsl: input {i} is empty")));
        }
        if let Some(i) = self
            .output_sizes
            .iter()
            .position(|&s| s == 0 || !s.is_multiple_of(4))
        {
            return Err(GpuError::InvalidJob(format!(
                "wgsl: output {i} has size {}, must be a non-zero multiple of 4",
                self.output_sizes[i]
            )));
        }
        if self.workgroups.contains(&0) {
            return Err(GpuError::InvalidJob(
                "wgsl: workgroup counts must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn check_bindings(&self, module: &naga::Module) -> Result<()> {
        let declared = self.inputs.len() + self.output_sizes.len();
        let mut seen = vec![false; declared];
        for (handle, var) in module.global_variables.iter() {
            let line = Some(
                module
                    .global_variables
                    .get_span(handle)
                    .location(&self.source)
                    .line_number,
            );
            let name = var.name.as_deref().unwrap_or("?");
            if matches!(var.space, AddressSpace::Immediate) {
                return Err(rejected(
                    line,
                    format!("`{name}`: immediates are not supported"),
                ));
            }
            let Some(rb) = var.binding else { continue };
            if rb.group != 0 {
                return Err(rejected(
                    line,
                    format!("`{name}` is in group {}; only group 0 is bound", rb.group),
                ));
            }
            let i = rb.binding as usize;
            if i >= declared {
                return Err(rejected(
                    line,
                    format!(
                        "`{name}` uses binding {i} but only {declared} buffers are declared \
                         (bindings 0..{declared})"
                    ),
                ));
            }
            if seen[i] {
                return Err(rejected(line, format!("binding {i} is used twice")));
            }
            seen[i] = true;
            let AddressSpace::Storage { access } = var.space else {
                return Err(rejected(
                    line,
                    format!("`{name}` (binding {i}) must be a var<storage, ...> buffer"),
                ));
            };
            let is_input = i < self.inputs.len();
            if is_input && access.contains(StorageAccess::STORE) {
                return Err(rejected(
                    line,
                    format!("`{name}` (binding {i}) is an input: declare it var<storage, read>"),
                ));
            }
            if !is_input && !access.contains(StorageAccess::STORE) {
                return Err(rejected(
                    line,
                    format!(
                        "`{name}` (binding {i}) is an output: declare it var<storage, read_write>"
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn prepare(
        &self,
        limits: &JobLimits,
        report: &AdapterReport,
    ) -> Result<PreparedShader> {
        let adapter = &report.limits;
        if self.source.len() > CLIENT_SOURCE_BYTES_MAX {
            return Err(GpuError::LimitExceeded {
                kind: LimitKind::ItemSize,
                requested: self.source.len() as u64,
                max: CLIENT_SOURCE_BYTES_MAX as u64,
            });
        }
        self.check_buffers(adapter)?;
        let mut module = naga::front::wgsl::parse_str(&self.source).map_err(|e| {
            rejected(
                e.location(&self.source).map(|l| l.line_number),
                e.to_string(),
            )
        })?;
        validate_module(&module, &self.source)?;
        check_barriers(&module, &self.source)?;
        let Some(ep) = module
            .entry_points
            .iter()
            .find(|ep| ep.name == self.entry_point)
        else {
            return Err(rejected(
                None,
                format!("no entry point named `{}`", self.entry_point),
            ));
        };
        if ep.stage != naga::ShaderStage::Compute {
            return Err(rejected(
                None,
                format!(
                    "entry point `{}` is not a @compute entry point",
                    self.entry_point
                ),
            ));
        }
        if ep.workgroup_size_overrides.is_some() || !module.overrides.is_empty() {
            return Err(rejected(None, "override declarations are not supported"));
        }
        let wg = ep.workgroup_size;
        for (&size, &max) in wg.iter().zip(&adapter.max_compute_workgroup_size) {
            if size > max {
                return Err(GpuError::LimitExceeded {
                    kind: LimitKind::WorkgroupSize,
                    requested: u64::from(size),
                    max: u64::from(max),
                });
            }
        }
        let wg_invocations: u64 = wg.iter().map(|&v| u64::from(v)).product();
        self.check_bindings(&module)?;
        check_invocation_memory(&module)?;

        // Saturating: absurd sizes must reach the limit check, not overflow before it.
        let out_total: u64 = self
            .output_sizes
            .iter()
            .fold(0u64, |sum, &size| sum.saturating_add(size));
        let mut buffers: Vec<u64> = self
            .inputs
            .iter()
            .map(|i| (i.len() as u64).div_ceil(4) * 4)
            .collect();
        buffers.extend(&self.output_sizes);
        buffers.extend([out_total.saturating_add(4), 4]);
        let plan = Plan {
            buffers_bytes: buffers,
            dispatches: 1,
            workgroups: self.workgroups,
            workgroup_invocations: u32::try_from(wg_invocations).unwrap_or(u32::MAX),
        };
        limits.check(&plan, adapter)?;

        let groups: u64 = self.workgroups.iter().map(|&v| u64::from(v)).product();
        let budget = limits.loop_budget(groups.saturating_mul(wg_invocations), report.software);
        let flag_binding = (self.inputs.len() + self.output_sizes.len()) as u32;
        instrument_loops(&mut module, budget, flag_binding);
        validate_module(&module, &self.source).map_err(|e| {
            GpuError::Backend(format!(
                "loop instrumentation produced an invalid module: {e}"
            ))
        })?;

        let mut h = sha2::Sha256::new();
        h.update(self.source.as_bytes());
        h.update([0u8]);
        h.update(self.entry_point.as_bytes());
        h.update([0u8]);
        for v in [
            self.inputs.len() as u64,
            self.output_sizes.len() as u64,
            u64::from(budget),
        ] {
            h.update(v.to_le_bytes());
        }
        Ok(PreparedShader {
            module,
            key: h.finalize().into(),
            budget,
        })
    }

    pub(crate) fn run(
        &self,
        prepared: &PreparedShader,
        gpu: &mut Gpu,
        deadline: &Deadline,
    ) -> Result<Vec<Vec<u8>>> {
        let mut bindings = vec![Binding::ReadOnly; self.inputs.len()];
        bindings.extend(vec![Binding::ReadWrite; self.output_sizes.len() + 1]);
        let kernel =
            gpu.client_kernel(prepared.key, &prepared.module, &self.entry_point, &bindings)?;
        let mut bufs = Vec::with_capacity(bindings.len());
        for input in &self.inputs {
            bufs.push(gpu.storage_with(input));
        }
        let mut enc = gpu.encoder();
        for &size in &self.output_sizes {
            let b = gpu.buffer(size, storage_usage());
            // Pooled buffers hold the previous job's data: outputs start zeroed.
            enc.clear_buffer(&b.buffer, 0, Some(size));
            bufs.push(b);
        }
        let flag = gpu.buffer(4, storage_usage());
        enc.clear_buffer(&flag.buffer, 0, Some(4));
        bufs.push(flag);
        // Saturating: absurd sizes must reach the limit check, not overflow before it.
        let out_total: u64 = self
            .output_sizes
            .iter()
            .fold(0u64, |sum, &size| sum.saturating_add(size));
        let staging = gpu.staging(out_total + 4);
        {
            let refs: Vec<&crate::device::Buf> = bufs.iter().collect();
            let bg = gpu.bind_group(&kernel, &refs);
            dispatch(&mut enc, &kernel, &bg, self.workgroups);
        }
        let mut offset = 0;
        for (b, &size) in bufs[self.inputs.len()..].iter().zip(&self.output_sizes) {
            enc.copy_buffer_to_buffer(&b.buffer, 0, &staging.buffer, offset, size);
            offset += size;
        }
        if let Some(flag) = bufs.last() {
            enc.copy_buffer_to_buffer(&flag.buffer, 0, &staging.buffer, offset, 4);
        }
        gpu.submit_wait(enc, deadline)?;
        let raw = gpu.read(&staging, deadline)?;
        bufs.push(staging);
        gpu.recycle(bufs);
        let flag_at = out_total as usize;
        if raw[flag_at..flag_at + 4] != [0, 0, 0, 0] {
            return Err(GpuError::LoopBudgetExceeded {
                budget: prepared.budget,
            });
        }
        let mut outputs = Vec::with_capacity(self.output_sizes.len());
        let mut at = 0usize;
        for &size in &self.output_sizes {
            outputs.push(raw[at..at + size as usize].to_vec());
            at += size as usize;
        }
        Ok(outputs)
    }
}

/// Private and function-local variables, all functions together, against
/// [`CLIENT_INVOCATION_BYTES_MAX`].
fn check_invocation_memory(module: &naga::Module) -> Result<()> {
    let mut layouter = naga::proc::Layouter::default();
    layouter
        .update(module.to_ctx())
        .map_err(|e| rejected(None, format!("type layout: {e}")))?;
    let size = |ty: naga::Handle<Type>| u64::from(layouter[ty].size);
    let private = module
        .global_variables
        .iter()
        .filter(|(_, v)| matches!(v.space, AddressSpace::Private))
        .map(|(_, v)| size(v.ty));
    let locals = module
        .functions
        .iter()
        .map(|(_, f)| f)
        .chain(module.entry_points.iter().map(|ep| &ep.function))
        .flat_map(|f| f.local_variables.iter().map(|(_, v)| size(v.ty)));
    let total = private
        .chain(locals)
        .fold(0u64, |sum, s| sum.saturating_add(s));
    // Values of a large type (`let a = array<f32, N>()`, parameters, results) are not
    // variables, yet backends spill them to per-invocation memory: bound every type that does
    // not belong to a buffer or workgroup variable.
    let mut shared_types = std::collections::HashSet::new();
    let mut pending: Vec<naga::Handle<Type>> = module
        .global_variables
        .iter()
        .filter(|(_, v)| !matches!(v.space, AddressSpace::Private | AddressSpace::Function))
        .map(|(_, v)| v.ty)
        .collect();
    while let Some(ty) = pending.pop() {
        if shared_types.insert(ty) {
            match &module.types[ty].inner {
                TypeInner::Array { base, .. } => pending.push(*base),
                TypeInner::Struct { members, .. } => pending.extend(members.iter().map(|m| m.ty)),
                _ => {}
            }
        }
    }
    let largest_value = module
        .types
        .iter()
        .filter(|(handle, _)| !shared_types.contains(handle))
        .map(|(handle, _)| size(handle))
        .max()
        .unwrap_or(0);
    let total = total.max(largest_value);
    if total > CLIENT_INVOCATION_BYTES_MAX {
        return Err(GpuError::LimitExceeded {
            kind: LimitKind::InvocationMemory,
            requested: total,
            max: CLIENT_INVOCATION_BYTES_MAX,
        });
    }
    Ok(())
}

fn line_of(span: Span, source: &str) -> Option<u32> {
    span.is_defined().then(|| span.location(source).line_number)
}

/// Where a function reaches a barrier (directly or through a call): the barrier's span.
type Reach = Vec<Option<Span>>;

/// The first barrier `block` reaches, directly or through a call (`reach`: per function).
fn first_barrier(block: &Block, reach: &Reach) -> Option<Span> {
    block.span_iter().find_map(|(stmt, &span)| match stmt {
        Statement::ControlBarrier(_) | Statement::WorkGroupUniformLoad { .. } => Some(span),
        Statement::Call { function, .. } => reach.get(function.index()).copied().flatten(),
        Statement::Block(b) => first_barrier(b, reach),
        Statement::If { accept, reject, .. } => {
            first_barrier(accept, reach).or_else(|| first_barrier(reject, reach))
        }
        Statement::Switch { cases, .. } => cases.iter().find_map(|c| first_barrier(&c.body, reach)),
        Statement::Loop {
            body, continuing, ..
        } => first_barrier(body, reach).or_else(|| first_barrier(continuing, reach)),
        _ => None,
    })
}

/// Rejects a barrier inside a loop (see the module documentation).
fn check_barriers(module: &naga::Module, source: &str) -> Result<()> {
    // naga's validator has checked that a function only calls functions declared before it.
    let mut reach: Reach = Vec::with_capacity(module.functions.len());
    for (_, f) in module.functions.iter() {
        let r = first_barrier(&f.body, &reach);
        reach.push(r);
    }
    let functions = module
        .functions
        .iter()
        .map(|(_, f)| f)
        .chain(module.entry_points.iter().map(|ep| &ep.function));
    for f in functions {
        barrier_in_loop(&f.body, None, module, &reach, source)?;
    }
    Ok(())
}

fn barrier_in_loop(
    block: &Block,
    in_loop: Option<Span>,
    module: &naga::Module,
    reach: &Reach,
    source: &str,
) -> Result<()> {
    let why = "the loop-iteration budget can end a loop at different iterations for different \
               invocations, and a barrier only some of them reach never completes; move the \
               barrier out of the loop";
    for (stmt, &span) in block.span_iter() {
        match stmt {
            Statement::ControlBarrier(_) | Statement::WorkGroupUniformLoad { .. } => {
                if let Some(lp) = in_loop {
                    let what = if matches!(stmt, Statement::ControlBarrier(_)) {
                        "barrier"
                    } else {
                        "workgroupUniformLoad"
                    };
                    let loop_line = line_of(lp, source)
                        .map(|l| format!(" (line {l})"))
                        .unwrap_or_default();
                    return Err(rejected(
                        line_of(span, source),
                        format!("{what} inside a loop{loop_line} is not supported: {why}"),
                    ));
                }
            }
            Statement::Call { function, .. } => {
                if let (Some(lp), Some(Some(barrier))) = (in_loop, reach.get(function.index())) {
                    let name = module.functions[*function].name.as_deref().unwrap_or("?");
                    let barrier_line = line_of(*barrier, source)
                        .map(|l| format!(" at line {l}"))
                        .unwrap_or_default();
                    let loop_line = line_of(lp, source)
                        .map(|l| format!(" (line {l})"))
                        .unwrap_or_default();
                    return Err(rejected(
                        line_of(span, source),
                        format!(
                            "`{name}` reaches a barrier{barrier_line} and is called inside a \
                             loop{loop_line}; barriers inside loops are not supported: {why}"
                        ),
                    ));
                }
            }
            Statement::Block(b) => barrier_in_loop(b, in_loop, module, reach, source)?,
            Statement::If { accept, reject, .. } => {
                barrier_in_loop(accept, in_loop, module, reach, source)?;
                barrier_in_loop(reject, in_loop, module, reach, source)?;
            }
            Statement::Switch { cases, .. } => {
                for c in cases {
                    barrier_in_loop(&c.body, in_loop, module, reach, source)?;
                }
            }
            Statement::Loop {
                body, continuing, ..
            } => {
                let lp = in_loop.or(Some(span));
                barrier_in_loop(body, lp, module, reach, source)?;
                barrier_in_loop(continuing, lp, module, reach, source)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Makes every loop of `module` break after `budget` iterations per invocation (all loops of an
/// invocation share one counter), setting a flag buffer at `@group(0) @binding(flag_binding)`.
pub(crate) fn instrument_loops(module: &mut naga::Module, budget: u32, flag_binding: u32) {
    let u32_ty = module.types.insert(
        Type {
            name: None,
            inner: TypeInner::Scalar(Scalar::U32),
        },
        Span::UNDEFINED,
    );
    let zero = module
        .global_expressions
        .append(Expression::Literal(Literal::U32(0)), Span::UNDEFINED);
    let counter = module.global_variables.append(
        GlobalVariable {
            name: Some("aitbc_loop_iterations".into()),
            space: AddressSpace::Private,
            binding: None,
            ty: u32_ty,
            init: Some(zero),
            memory_decorations: Default::default(),
        },
        Span::UNDEFINED,
    );
    let flag = module.global_variables.append(
        GlobalVariable {
            name: Some("aitbc_loop_budget_hit".into()),
            space: AddressSpace::Storage {
                access: StorageAccess::LOAD | StorageAccess::STORE,
            },
            binding: Some(ResourceBinding {
                group: 0,
                binding: flag_binding,
            }),
            ty: u32_ty,
            init: None,
            memory_decorations: Default::default(),
        },
        Span::UNDEFINED,
    );
    let guard = Guard {
        counter,
        flag,
        budget,
    };
    for (_, f) in module.functions.iter_mut() {
        guard.function(f);
    }
    for ep in module.entry_points.iter_mut() {
        guard.function(&mut ep.function);
    }
}

struct Guard {
    counter: naga::Handle<GlobalVariable>,
    flag: naga::Handle<GlobalVariable>,
    budget: u32,
}

impl Guard {
    fn function(&self, f: &mut naga::Function) {
        let mut body = std::mem::take(&mut f.body);
        self.block(&mut body, &mut f.expressions);
        f.body = body;
    }

    fn block(&self, block: &mut Block, exprs: &mut naga::Arena<Expression>) {
        for (stmt, _) in block.span_iter_mut() {
            match stmt {
                Statement::Block(b) => self.block(b, exprs),
                Statement::If { accept, reject, .. } => {
                    self.block(accept, exprs);
                    self.block(reject, exprs);
                }
                Statement::Switch { cases, .. } => {
                    for case in cases.iter_mut() {
                        self.block(&mut case.body, exprs);
                    }
                }
                Statement::Loop {
                    body, continuing, ..
                } => {
                    self.block(body, exprs);
                    self.block(continuing, exprs);
                    let check = self.check(exprs);
                    body.splice(0..0, check);
                }
                _ => {}
            }
        }
    }

    /// `counter += 1; if counter >= budget { flag = 1; break; }`
    fn check(&self, exprs: &mut naga::Arena<Expression>) -> Block {
        let span = Span::UNDEFINED;
        let counter = exprs.append(Expression::GlobalVariable(self.counter), span);
        let flag = exprs.append(Expression::GlobalVariable(self.flag), span);
        let one = exprs.append(Expression::Literal(Literal::U32(1)), span);
        let budget = exprs.append(Expression::Literal(Literal::U32(self.budget)), span);
        let start = exprs.len();
        let load = exprs.append(Expression::Load { pointer: counter }, span);
        let next = exprs.append(
            Expression::Binary {
                op: BinaryOperator::Add,
                left: load,
                right: one,
            },
            span,
        );
        let over = exprs.append(
            Expression::Binary {
                op: BinaryOperator::GreaterEqual,
                left: next,
                right: budget,
            },
            span,
        );
        let emitted = exprs.range_from(start);
        let mut accept = Block::new();
        accept.push(
            Statement::Store {
                pointer: flag,
                value: one,
            },
            span,
        );
        accept.push(Statement::Break, span);
        let mut check = Block::new();
        check.push(Statement::Emit(emitted), span);
        check.push(
            Statement::Store {
                pointer: counter,
                value: next,
            },
            span,
        );
        check.push(
            Statement::If {
                condition: over,
                accept,
                reject: Block::new(),
            },
            span,
        );
        check
    }
}
