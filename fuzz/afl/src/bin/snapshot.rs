//! `snapshot` under AFL++ (see `fuzz_targets::snapshot`).

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz_targets::snapshot(data));
}
