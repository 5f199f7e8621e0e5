#!/usr/bin/env bash
# Runs the coverage-guided fuzzer (AFL++ through afl.rs) on one target for a while, fails if it
# found a crash or a hang, and adds the inputs that reached new code to the corpus kept in the
# repository (fuzz/corpus/<target>.pack, one file of length-prefixed inputs), which
# `cargo test -p fuzz-targets` replays.
#
#   scripts/fuzz.sh TARGET [SECONDS]    targets: envelope events log snapshot config wgsl
#
# Needs cargo-afl (`cargo install cargo-afl`, which builds AFL++ for this rustc); a stable
# toolchain is enough.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
seconds=${2:-300}
if ! command -v cargo-afl >/dev/null; then
    echo "cargo-afl is missing: run \`cargo install cargo-afl\` (it builds AFL++ too)" >&2
    exit 1
fi
(cd fuzz/afl && cargo afl build --release --bin "$target")
binary=fuzz/afl/target/release/$target
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
corpus() { cargo run -q -p fuzz-targets --bin corpus -- "$@"; }
corpus unpack "$target" "$out/corpus"

# No UI (logs instead), no CPU governor or core-dump handler checks (containers have neither),
# a hang is anything over 2 s.
AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    cargo afl fuzz -i "$out/corpus" -o "$out" -V "$seconds" -t 2000 -- "$binary" \
    >"$out/fuzz.log" 2>&1 || { tail -30 "$out/fuzz.log" >&2; exit 1; }

stats=$out/default/fuzzer_stats
field() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
echo "$target: $(field execs_done) executions in $(field run_time) s ($(field execs_per_sec)/s), \
$(field corpus_count) inputs in the queue, $(field bitmap_cvg) of the map, \
$(field saved_crashes) crashes, $(field saved_hangs) hangs"

found=$(find "$out/default/crashes" "$out/default/hangs" -type f -name 'id:*' | wc -l)
if [ "$found" -gt 0 ]; then
    kept=fuzz/findings/$target
    mkdir -p "$kept"
    cp "$out"/default/crashes/id:* "$out"/default/hangs/id:* "$kept"/ 2>/dev/null || true
    echo "$target: $found crashing or hanging inputs, kept in $kept" >&2
    exit 1
fi

# The corpus becomes the smallest set, chosen greedily from it and the queue (smallest input
# first), that reaches every edge they reach.
mkdir -p "$out/all" "$out/maps" "$out/chosen"
cp "$out"/corpus/* "$out"/default/queue/id:* "$out/all/"
cargo afl showmap -i "$out/all" -o "$out/maps" -t 2000 -- "$binary" >/dev/null 2>&1
(cd "$out/maps" && ls -Sr "$out/all" | while read -r name; do
    [ -f "$name" ] && sed "s|:.*| $name|" "$name"
done) | awk '
    $2 != current { if (fresh) print current; current = $2; fresh = 0 }
    !($1 in seen) { fresh = 1; seen[$1] = 1 }
    END { if (fresh) print current }' | while read -r name; do
    cp "$out/all/$name" "$out/chosen/$(sha256sum "$out/all/$name" | cut -c1-16)"
done
corpus pack "$out/chosen" "$target"
echo "$target: corpus of $(ls "$out/chosen" | wc -l) inputs (was $(ls "$out/corpus" | wc -l))"
