// Proof-of-work search: invocation i tries nonce = start + i (u64, appended little-endian to the
// prefix) and records the smallest i whose SHA-256(prefix ‖ nonce) has at least `bits` leading
// zero bits. The CPU hashes the prefix's whole 64-byte blocks once (the midstate) and builds the
// padded tail (1 or 2 blocks, nonce bytes zero) as a template; the GPU only ORs in the nonce.
//
// params layout (u32 words):
//   0 start_lo, 1 start_hi, 2 count, 3 bits, 4 nonce byte offset in the tail, 5 tail blocks,
//   6..8 unused, 8..16 midstate, 16..48 tail template (2 blocks, big-endian words).

@group(0) @binding(0) var<storage, read> params: array<u32, 48>;
@group(0) @binding(1) var<storage, read_write> found: atomic<u32>;

@compute @workgroup_size(64)
fn pow_search(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= params[2]) {
        return;
    }
    let lo = params[0] + i;
    var hi = params[1];
    if (lo < i) {
        hi = hi + 1u;
    }
    var tail: array<u32, 32>;
    for (var j = 0u; j < 32u; j++) {
        tail[j] = params[16u + j];
    }
    let offset = params[4];
    for (var byte_index = 0u; byte_index < 8u; byte_index++) {
        var byte: u32;
        if (byte_index < 4u) {
            byte = (lo >> (8u * byte_index)) & 0xffu;
        } else {
            byte = (hi >> (8u * (byte_index - 4u))) & 0xffu;
        }
        let pos = offset + byte_index;
        tail[pos / 4u] = tail[pos / 4u] | (byte << (24u - 8u * (pos % 4u)));
    }
    var state: array<u32, 8>;
    for (var j = 0u; j < 8u; j++) {
        state[j] = params[8u + j];
    }
    var block: array<u32, 16>;
    for (var b = 0u; b < params[5]; b++) {
        for (var j = 0u; j < 16u; j++) {
            block[j] = tail[b * 16u + j];
        }
        compress(&state, &block);
    }
    var zeros = 0u;
    for (var j = 0u; j < 8u; j++) {
        let z = countLeadingZeros(state[j]);
        zeros += z;
        if (z < 32u) {
            break;
        }
    }
    if (zeros >= params[3]) {
        atomicMin(&found, i);
    }
}
