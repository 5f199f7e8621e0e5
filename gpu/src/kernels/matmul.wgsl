// Tiled f32 matrix multiply: C[M×N] = A[M×K] · B[K×N] (row-major), with an optional fused
// epilogue (bias add, ReLU) so that one dense MLP layer is one dispatch of this same kernel.
//
// Each workgroup computes a 64×64 tile of C with 16×16 threads; each thread owns 4×4 outputs at
// rows ty + 16·i and columns tx + 16·j (strided, so neighbouring threads read neighbouring
// workgroup-memory words). K is walked in slabs of 16: A's 64×16 slab and B's 16×64 slab are
// staged in workgroup memory, zero-padded outside the matrices, so any M, K, N works.

struct Dims {
    m: u32,
    k: u32,
    n: u32,
    // bit 0: add bias[col]; bit 1: ReLU.
    flags: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> dims: Dims;

const TILE: u32 = 64u;
const TK: u32 = 16u;
const THREADS: u32 = 256u;

var<workgroup> tile_a: array<f32, 1024>; // 64 rows × 16
var<workgroup> tile_b: array<f32, 1024>; // 16 rows × 64

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let tx = lid.x;
    let ty = lid.y;
    let flat = ty * 16u + tx;

    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }

    let slabs = (dims.k + TK - 1u) / TK;
    for (var t = 0u; t < slabs; t++) {
        let k0 = t * TK;
        for (var l = 0u; l < 4u; l++) {
            let idx = flat + l * THREADS;
            let ar = row0 + idx / TK;
            let ac = k0 + idx % TK;
            var av = 0.0;
            if (ar < dims.m && ac < dims.k) {
                av = a[ar * dims.k + ac];
            }
            tile_a[idx] = av;
            let br = k0 + idx / TILE;
            let bc = col0 + idx % TILE;
            var bv = 0.0;
            if (br < dims.k && bc < dims.n) {
                bv = b[br * dims.n + bc];
            }
            tile_b[idx] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                ar[i] = tile_a[(ty + 16u * i) * TK + kk];
                br[i] = tile_b[kk * TILE + tx + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(ar[i], br[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let r = row0 + ty + 16u * i;
        if (r >= dims.m) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + tx + 16u * j;
            if (col >= dims.n) {
                continue;
            }
            var v = acc[i * 4u + j];
            if ((dims.flags & 1u) != 0u) {
                v = v + bias[col];
            }
            if ((dims.flags & 2u) != 0u) {
                v = max(v, 0.0);
            }
            c[r * dims.n + col] = v;
        }
    }
}
