//! `log` under AFL++ (see `fuzz_targets::log`).

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz_targets::log(data));
}
