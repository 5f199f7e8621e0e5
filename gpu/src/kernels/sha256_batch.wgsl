// Batch SHA-256: one invocation hashes one message. Padding is done on the CPU: `words` holds every
// message already padded (FIPS 180-4 §5.1.1) as big-endian u32 words; `spans[i]` is
// (first word, block count) of message i. Digest i is written as 8 words at digests[8·i].

@group(0) @binding(0) var<storage, read> words: array<u32>;
@group(0) @binding(1) var<storage, read> spans: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> digests: array<u32>;

@compute @workgroup_size(64)
fn hash_batch(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x;
    if (idx >= arrayLength(&spans)) {
        return;
    }
    let span = spans[idx];
    var state = initial_state();
    var block: array<u32, 16>;
    for (var blk = 0u; blk < span.y; blk++) {
        let base = span.x + blk * 16u;
        for (var j = 0u; j < 16u; j++) {
            block[j] = words[base + j];
        }
        compress(&state, &block);
    }
    for (var j = 0u; j < 8u; j++) {
        digests[idx * 8u + j] = state[j];
    }
}
