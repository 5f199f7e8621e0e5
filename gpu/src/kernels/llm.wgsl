// The Llama forward pass, one token at a time (see llm.rs). Every entry point binds:
// 0: a (read), 1: b (read), 2: out (read_write), 3: params (uniform).
// Weights are f32, row-major, rows of `cols` values.

struct Params {
    rows: u32,     // matvec: output rows; rms_norm/add/silu_mul/copy: length
    cols: u32,     // matvec: input width
    offset: u32,   // where `out` is written (copy: destination offset; embed: token)
    pos: u32,      // the token's position
    heads: u32,    // rope/attention: heads in `out`/`a`
    head_dim: u32,
    kv_heads: u32,
    eps_or_base: f32, // rms_norm: epsilon; rope: RoPE base
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// out[offset + r] = Σ_c a[r·cols + c] · b[c]   (a: the matrix, b: the vector)
@compute @workgroup_size(64)
fn matvec(@builtin(global_invocation_id) id: vec3<u32>) {
    let r = id.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    var acc = vec4<f32>(0.0);
    let n4 = p.cols / 4u;
    for (var c = 0u; c < n4; c = c + 1u) {
        let i = base + 4u * c;
        let j = 4u * c;
        acc = acc + vec4<f32>(a[i], a[i + 1u], a[i + 2u], a[i + 3u]) *
            vec4<f32>(b[j], b[j + 1u], b[j + 2u], b[j + 3u]);
    }
    var tail = 0.0;
    for (var c = n4 * 4u; c < p.cols; c = c + 1u) {
        tail = tail + a[base + c] * b[c];
    }
    out[p.offset + r] = (acc.x + acc.y) + (acc.z + acc.w) + tail;
}

var<workgroup> partial: array<f32, 256>;

// out = a / sqrt(mean(a²) + eps) · b   (one workgroup)
@compute @workgroup_size(256)
fn rms_norm(@builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    var sum = 0.0;
    for (var i = t; i < p.rows; i = i + 256u) {
        sum = sum + a[i] * a[i];
    }
    partial[t] = sum;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (t < s) {
            partial[t] = partial[t] + partial[t + s];
        }
        workgroupBarrier();
    }
    let scale = 1.0 / sqrt(partial[0] / f32(p.rows) + p.eps_or_base);
    for (var i = t; i < p.rows; i = i + 256u) {
        out[i] = a[i] * scale * b[i];
    }
}

// out[i] += a[i]
@compute @workgroup_size(64)
fn add(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < p.rows) {
        out[id.x] = out[id.x] + a[id.x];
    }
}

// out[i] = silu(out[i]) · a[i]
@compute @workgroup_size(64)
fn silu_mul(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < p.rows) {
        let g = out[id.x];
        out[id.x] = g / (1.0 + exp(-g)) * a[id.x];
    }
}

// out[i] = a[offset + i]   (the embedding row of a token: offset = token · width)
@compute @workgroup_size(64)
fn copy(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < p.rows) {
        out[id.x] = a[p.offset + id.x];
    }
}

// Rotates adjacent pairs of each head of out[offset ..] by pos · base^(−2i/head_dim).
@compute @workgroup_size(64)
fn rope(@builtin(global_invocation_id) id: vec3<u32>) {
    let half = p.head_dim / 2u;
    if (id.x >= p.heads * half) {
        return;
    }
    let head = id.x / half;
    let i = id.x % half;
    let at = p.offset + head * p.head_dim + 2u * i;
    let theta = f32(p.pos) * pow(p.eps_or_base, -2.0 * f32(i) / f32(p.head_dim));
    let c = cos(theta);
    let s = sin(theta);
    let x0 = out[at];
    let x1 = out[at + 1u];
    out[at] = x0 * c - x1 * s;
    out[at + 1u] = x0 * s + x1 * c;
}

var<workgroup> scores: array<f32, 1024>;
var<workgroup> reduce: array<f32, 64>;

// One workgroup per query head: a = q (heads × head_dim); b = the cache, keys then values,
// each (pos + 1) × kv_heads × head_dim; out = the heads' outputs.
@compute @workgroup_size(64)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let head = wid.x;
    let t0 = lid.x;
    let d = p.head_dim;
    let kv_width = p.kv_heads * d;
    let kv_head = head / (p.heads / p.kv_heads);
    let n = p.pos + 1u;
    let values = p.offset; // where the values start in b
    let scale = 1.0 / sqrt(f32(d));
    var local_max = -3.4e38;
    for (var t = t0; t < n; t = t + 64u) {
        var s = 0.0;
        for (var k = 0u; k < d; k = k + 1u) {
            s = s + a[head * d + k] * b[t * kv_width + kv_head * d + k];
        }
        s = s * scale;
        scores[t] = s;
        local_max = max(local_max, s);
    }
    reduce[t0] = local_max;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (t0 < s) {
            reduce[t0] = max(reduce[t0], reduce[t0 + s]);
        }
        workgroupBarrier();
    }
    let m = reduce[0];
    workgroupBarrier();
    var local_sum = 0.0;
    for (var t = t0; t < n; t = t + 64u) {
        let e = exp(scores[t] - m);
        scores[t] = e;
        local_sum = local_sum + e;
    }
    reduce[t0] = local_sum;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (t0 < s) {
            reduce[t0] = reduce[t0] + reduce[t0 + s];
        }
        workgroupBarrier();
    }
    let total = reduce[0];
    for (var k = t0; k < d; k = k + 64u) {
        var acc = 0.0;
        for (var t = 0u; t < n; t = t + 1u) {
            acc = acc + scores[t] * b[values + t * kv_width + kv_head * d + k];
        }
        out[head * d + k] = acc / total;
    }
}
