//! `events` under AFL++ (see `fuzz_targets::events`).

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz_targets::events(data));
}
