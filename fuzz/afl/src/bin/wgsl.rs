//! `wgsl` under AFL++ (see `fuzz_targets::wgsl`).

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz_targets::wgsl(data));
}
