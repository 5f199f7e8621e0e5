//! `envelope` under AFL++ (see `fuzz_targets::envelope`).

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz_targets::envelope(data));
}
