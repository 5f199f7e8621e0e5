// The smallest useful dispatch: one invocation bumps one word. Used to measure dispatch overhead.

@group(0) @binding(0) var<storage, read_write> counter: array<u32>;

@compute @workgroup_size(1)
fn main() {
    counter[0] = counter[0] + 1u;
}
