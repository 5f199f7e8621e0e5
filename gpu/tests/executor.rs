//! The executor's rules: limits before running, client shaders validated and stopped, devices
//! recreated after loss or timeout.

mod common;

use std::time::{Duration, Instant};

use common::{exec, failure_count_lock, limits};
use gpu::kernels::matmul::Matmul;
use gpu::kernels::wgsl::WgslJob;
use gpu::{GpuError, Job, JobLimits, JobOutput, LimitKind};

const DOUBLE: &str = r#"
@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read_write> output: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i < arrayLength(&input)) {
        output[i] = input[i] * 2u + 1u;
    }
}
"#;

fn double_job(n: u32) -> WgslJob {
    let input: Vec<u32> = (0..n).collect();
    WgslJob {
        source: DOUBLE.into(),
        entry_point: "main".into(),
        inputs: vec![bytemuck_bytes(&input)],
        output_sizes: vec![u64::from(n) * 4],
        workgroups: [n.div_ceil(64), 1, 1],
    }
}

fn bytemuck_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn words(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn assert_double_works() {
    let out = exec()
        .wgsl(double_job(100), &limits())
        .expect("client shader runs");
    let want: Vec<u32> = (0..100).map(|i| i * 2 + 1).collect();
    assert_eq!(words(&out[0]), want);
}

fn shader(source: &str, inputs: usize, outputs: usize) -> WgslJob {
    WgslJob {
        source: source.into(),
        entry_point: "main".into(),
        inputs: vec![vec![0u8; 16]; inputs],
        output_sizes: vec![16; outputs],
        workgroups: [1, 1, 1],
    }
}

#[test]
fn client_shader_runs_and_outputs_start_zeroed() {
    assert_double_works();
    // A shader that writes nothing: its (pooled) output buffer must come back zeroed.
    let src = r#"
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1)
fn main() {}
"#;
    let mut job = shader(src, 0, 1);
    job.output_sizes = vec![400];
    let out = exec().wgsl(job, &limits()).expect("runs");
    assert!(out[0].iter().all(|&b| b == 0));
}

#[test]
fn syntax_error_names_the_line() {
    let src = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n\n@compute @workgroup_size(1)\nfn main() {\n    out[0] = 1u +;\n}\n";
    match exec().wgsl(shader(src, 0, 1), &limits()) {
        Err(GpuError::ShaderRejected { line, .. }) => assert_eq!(line, Some(5)),
        other => panic!("expected ShaderRejected, got {other:?}"),
    }
}

#[test]
fn type_error_names_the_line() {
    let src = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n@compute @workgroup_size(1)\nfn main() {\n    let x: f32 = 1.0;\n    out[0] = x;\n}\n";
    match exec().wgsl(shader(src, 0, 1), &limits()) {
        Err(GpuError::ShaderRejected { line, message }) => {
            assert_eq!(line, Some(5), "{message}")
        }
        other => panic!("expected ShaderRejected, got {other:?}"),
    }
}

#[test]
fn bindings_must_match_the_declaration() {
    // binding 2 with only 2 buffers declared
    let extra = "@group(0) @binding(0) var<storage, read> a: array<u32>;\n@group(0) @binding(1) var<storage, read_write> b: array<u32>;\n@group(0) @binding(2) var<storage, read_write> c: array<u32>;\n@compute @workgroup_size(1)\nfn main() { b[0] = a[0]; c[0] = 1u; }\n";
    assert!(matches!(
        exec().wgsl(shader(extra, 1, 1), &limits()),
        Err(GpuError::ShaderRejected { line: Some(3), .. })
    ));
    // an input declared read_write
    let rw_input = "@group(0) @binding(0) var<storage, read_write> a: array<u32>;\n@group(0) @binding(1) var<storage, read_write> b: array<u32>;\n@compute @workgroup_size(1)\nfn main() { b[0] = a[0]; }\n";
    assert!(matches!(
        exec().wgsl(shader(rw_input, 1, 1), &limits()),
        Err(GpuError::ShaderRejected { line: Some(1), .. })
    ));
    // an output declared read-only
    let ro_output = "@group(0) @binding(0) var<storage, read> a: array<u32>;\n@group(0) @binding(1) var<storage, read> b: array<u32>;\n@group(0) @binding(2) var<storage, read_write> c: array<u32>;\n@compute @workgroup_size(1)\nfn main() { c[0] = a[0] + b[0]; }\n";
    assert!(matches!(
        exec().wgsl(shader(ro_output, 1, 2), &limits()),
        Err(GpuError::ShaderRejected { line: Some(2), .. })
    ));
    // group 1
    let group1 = "@group(1) @binding(0) var<storage, read_write> a: array<u32>;\n@compute @workgroup_size(1)\nfn main() { a[0] = 1u; }\n";
    assert!(matches!(
        exec().wgsl(shader(group1, 0, 1), &limits()),
        Err(GpuError::ShaderRejected { line: Some(1), .. })
    ));
    // a uniform buffer
    let uniform = "@group(0) @binding(0) var<uniform> a: vec4<u32>;\n@group(0) @binding(1) var<storage, read_write> b: array<u32>;\n@compute @workgroup_size(1)\nfn main() { b[0] = a.x; }\n";
    assert!(matches!(
        exec().wgsl(shader(uniform, 1, 1), &limits()),
        Err(GpuError::ShaderRejected { line: Some(1), .. })
    ));
}

#[test]
fn entry_point_must_exist_and_be_compute() {
    let mut job = double_job(4);
    job.entry_point = "nope".into();
    assert!(matches!(
        exec().wgsl(job, &limits()),
        Err(GpuError::ShaderRejected { .. })
    ));
    let vertex = "@vertex\nfn main() -> @builtin(position) vec4<f32> { return vec4<f32>(0.0); }\n";
    assert!(matches!(
        exec().wgsl(shader(vertex, 0, 1), &limits()),
        Err(GpuError::ShaderRejected { .. })
    ));
}

fn assert_stopped(source: &str) {
    let _serial = failure_count_lock();
    let limits = JobLimits {
        wall_time_max_ms: 2000,
        ..JobLimits::default()
    };
    let t = Instant::now();
    let r = exec().wgsl(shader(source, 0, 1), &limits);
    assert!(
        matches!(
            r,
            Err(GpuError::LoopBudgetExceeded { .. } | GpuError::TimedOut { .. })
        ),
        "{r:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    assert_double_works();
}

#[test]
fn infinite_loop_is_stopped_and_the_next_job_works() {
    assert_stopped(
        "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n@compute @workgroup_size(1)\nfn main() {\n    loop {}\n}\n",
    );
}

#[test]
fn while_true_with_nested_loops_and_calls_is_stopped() {
    assert_stopped(
        r#"
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
fn spin(n: u32) -> u32 {
    var x = n;
    for (var i = 0u; i < 1000000000u; i++) { x = x * 3u + 1u; }
    return x;
}
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) li: u32) {
    while true {
        out[0] = spin(li);
    }
}
"#,
    );
}

#[test]
fn bounded_loops_within_budget_run_normally() {
    let src = r#"
@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1)
fn main() {
    var sum = 0u;
    for (var i = 0u; i < 1000u; i++) {
        var j = 0u;
        while (j < 3u) { sum += input[0]; j++; }
    }
    out[0] = sum;
}
"#;
    let mut job = shader(src, 1, 1);
    job.inputs = vec![7u32.to_le_bytes().to_vec()];
    let out = exec().wgsl(job, &limits()).expect("runs");
    assert_eq!(words(&out[0])[0], 21_000);
}

#[test]
fn limits_are_enforced_before_running() {
    let small = JobLimits {
        buffer_size_max_bytes: 1024,
        ..JobLimits::default()
    };
    let big = Matmul {
        m: 32,
        k: 32,
        n: 32,
        a: vec![0.0; 1024],
        b: vec![0.0; 1024],
    };
    let _serial = failure_count_lock();
    let before = exec().stats();
    assert!(matches!(
        exec().matmul(big.clone(), &small),
        Err(GpuError::LimitExceeded {
            kind: LimitKind::BufferSize,
            requested: 4096,
            max: 1024
        })
    ));
    let tight = JobLimits {
        job_memory_max_bytes: 10_000,
        ..JobLimits::default()
    };
    assert!(matches!(
        exec().matmul(big, &tight),
        Err(GpuError::LimitExceeded {
            kind: LimitKind::JobMemory,
            ..
        })
    ));
    let mut job = double_job(64);
    job.workgroups = [100, 100, 1];
    let few = JobLimits {
        workgroups_per_dispatch_max: 1000,
        ..JobLimits::default()
    };
    assert!(matches!(
        exec().wgsl(job, &few),
        Err(GpuError::LimitExceeded {
            kind: LimitKind::WorkgroupsPerDispatch,
            ..
        })
    ));
    let one = JobLimits {
        dispatches_max: 1,
        ..JobLimits::default()
    };
    let pow = gpu::kernels::sha256::ProofOfWork {
        prefix: vec![],
        difficulty_bits: 64,
        start_nonce: 0,
        max_nonces: 1 << 30,
    };
    assert!(matches!(
        exec().proof_of_work(pow, &one),
        Err(GpuError::LimitExceeded {
            kind: LimitKind::Dispatches,
            ..
        })
    ));
    // Nothing above reached the device.
    assert_eq!(exec().stats().jobs_failed, before.jobs_failed);
}

#[test]
fn a_destroyed_device_is_recreated_for_the_next_job() {
    let _serial = failure_count_lock();
    assert_eq!(exec().run(Job::Noop, &limits()), Ok(JobOutput::Noop));
    let before = exec().stats().devices_created;
    exec().destroy_device().expect("worker answers");
    // The job right after may see the loss; the one after that must succeed.
    let _ = exec().run(Job::Noop, &limits());
    assert_eq!(exec().run(Job::Noop, &limits()), Ok(JobOutput::Noop));
    assert_double_works();
    assert!(exec().stats().devices_created > before);
}

#[test]
fn a_timed_out_job_reports_it_and_the_next_job_works() {
    let _serial = failure_count_lock();
    // ~70 ms of work in a debug build on lavapipe, with a 1 ms budget.
    let n = 256;
    let job = Matmul {
        m: n,
        k: n,
        n,
        a: vec![1.0; (n * n) as usize],
        b: vec![1.0; (n * n) as usize],
    };
    let strict = JobLimits {
        wall_time_max_ms: 1,
        ..JobLimits::default()
    };
    let before = exec().stats().devices_created;
    match exec().matmul(job, &strict) {
        Err(GpuError::TimedOut { limit_ms: 1 }) => {
            assert_double_works();
            assert!(exec().stats().devices_created > before);
        }
        // A very fast adapter could finish in time; then there is nothing to recover from.
        Ok(_) => {}
        Err(e) => panic!("unexpected {e:?}"),
    }
}

#[test]
fn pipelines_are_compiled_once_and_buffers_reused() {
    let first = exec().stats();
    for _ in 0..3 {
        assert_eq!(exec().run(Job::Noop, &limits()), Ok(JobOutput::Noop));
    }
    let after = exec().stats();
    // At most one compilation (if a recreated device needed it), and the pool served buffers.
    assert!(after.pipelines_compiled <= first.pipelines_compiled + 1);
    assert!(after.pool_hits > first.pool_hits);
}

#[test]
fn submit_gives_a_pollable_handle() {
    let handle = exec()
        .submit(Job::Wgsl(double_job(10)), &limits())
        .expect("accepted");
    let t = Instant::now();
    loop {
        if let Some(r) = handle.try_result() {
            assert!(matches!(r, Ok(JobOutput::Wgsl(_))));
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn info_reports_an_adapter() {
    let report = gpu::info().expect("an adapter");
    assert!(!report.name.is_empty());
    let json = serde_json::to_string(&report).expect("serializes");
    assert!(json.contains("\"backend\""));
    assert!(report.to_string().contains(&report.name));
}

/// Sums `input` (64 words) with a workgroup reduction: loops without barriers, barriers outside
/// loops (one in a helper called outside any loop).
const REDUCE_OK: &str = r#"
@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
var<workgroup> partial: array<u32, 64>;

fn sync() {
    workgroupBarrier();
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) li: u32) {
    var x = 0u;
    for (var i = 0u; i < li % 5u; i++) { x += 0u; }
    partial[li] = input[li] + x;
    sync();
    if (li == 0u) {
        var sum = 0u;
        for (var i = 0u; i < 64u; i++) { sum += partial[i]; }
        partial[0] = sum;
    }
    workgroupBarrier();
    let total = workgroupUniformLoad(&partial[0]);
    out[li] = total;
}
"#;

fn reduce_job(source: &str) -> WgslJob {
    let input: Vec<u32> = (1..=64).collect();
    WgslJob {
        source: source.into(),
        entry_point: "main".into(),
        inputs: vec![bytemuck_bytes(&input)],
        output_sizes: vec![64 * 4],
        workgroups: [1, 1, 1],
    }
}

#[test]
fn barriers_outside_loops_are_accepted_and_run() {
    let out = exec().wgsl(reduce_job(REDUCE_OK), &limits()).expect("runs");
    assert_eq!(words(&out[0]), vec![64 * 65 / 2; 64]);
}

fn assert_rejected_at(source: &str, want_line: u32) {
    let _serial = failure_count_lock();
    let before = exec().stats();
    match exec().wgsl(reduce_job(source), &limits()) {
        Err(GpuError::ShaderRejected { line, message }) => {
            assert_eq!(line, Some(want_line), "{message}");
            assert!(message.contains("loop"), "{message}");
        }
        other => panic!("expected ShaderRejected, got {other:?}"),
    }
    // Rejected before anything ran.
    assert_eq!(exec().stats().jobs_failed, before.jobs_failed);
}

#[test]
fn barriers_inside_loops_are_rejected_with_the_line() {
    // A tree reduction: a barrier in the loop body.
    assert_rejected_at(
        "@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
var<workgroup> p: array<u32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) li: u32) {
    p[li] = input[li];
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (li < s) { p[li] += p[li + s]; }
        workgroupBarrier();
    }
    out[li] = p[0];
}
",
        9,
    );
    // A barrier reached through a call made inside a loop: the call's line is named.
    assert_rejected_at(
        "@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
var<workgroup> p: array<u32, 64>;
fn inner() { storageBarrier(); }
fn step() { if (true) { inner(); } }
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) li: u32) {
    var i = 0u;
    loop {
        if (i >= 3u) { break; }
        p[li] = input[li] + i;
        step();
        i++;
    }
    out[li] = p[0];
}
",
        12,
    );
    // workgroupUniformLoad in a while loop.
    assert_rejected_at(
        "@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
var<workgroup> p: u32;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) li: u32) {
    var n = 0u;
    while (n < 4u) {
        n += workgroupUniformLoad(&p) + 1u;
    }
    out[li] = n + input[0];
}
",
        8,
    );
}

#[test]
fn large_private_memory_is_refused_before_running() {
    // 64 KiB of private array per invocation: lavapipe spent minutes on this and left the worker
    // stuck in the driver. Function-local variables count too.
    let private = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;
var<private> big: array<u32, 16384>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) li: u32) { big[li * 7u] = li; out[li % 4u] = big[li]; }
";
    let local = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;
fn f(i: u32) -> u32 { var a: array<vec4<u32>, 513>; a[i] = vec4<u32>(i); return a[i / 2u].x; }
@compute @workgroup_size(1)
fn main() { var b: array<vec4<u32>, 513>; b[3] = vec4<u32>(f(3u)); out[0] = b[3].x; }
";
    // A large value (not a variable) is spilled to the same memory by the backends.
    let value = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1)
fn main(@builtin(local_invocation_index) li: u32) { let a = array<u32, 8192>(); out[0] = a[li]; }
";
    let _serial = failure_count_lock();
    let before = exec().stats();
    for (src, bytes) in [(private, 65_536), (local, 16_416), (value, 32_768)] {
        let t = Instant::now();
        assert_eq!(
            exec().wgsl(shader(src, 0, 1), &limits()),
            Err(GpuError::LimitExceeded {
                kind: LimitKind::InvocationMemory,
                requested: bytes,
                max: gpu::limits::CLIENT_INVOCATION_BYTES_MAX,
            })
        );
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
    assert_eq!(exec().stats().jobs_failed, before.jobs_failed);
    // Small private arrays still run.
    let small = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;
var<private> a: array<u32, 4>;
@compute @workgroup_size(1)
fn main() { a[2] = 5u; out[0] = a[2]; }
";
    let out = exec().wgsl(shader(small, 0, 1), &limits()).expect("runs");
    assert_eq!(words(&out[0])[0], 5);
}
