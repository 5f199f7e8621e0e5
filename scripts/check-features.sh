#!/usr/bin/env bash
# Fails when `cargo build -p aitbc` would build a shared dependency with other features than
# the workspace's tests do, which makes the README's node command compile wgpu, naga, tokio
# and actix again after `scripts/test.sh`. The fix is a line in cli/Cargo.toml's list.
set -euo pipefail
cd "$(dirname "$0")/.."

features() {
    cargo tree --offline "$@" -f '{p} {f}' --prefix none 2>/dev/null |
        sed 's/ (\*)$//' | grep -v '(/' | awk 'NF { print $1 "@" $2, ($3 == "" ? "-" : $3) }' | sort -u
}

binary=$(features -p aitbc -e normal,build)
tests=$(features --workspace --all-features -e normal,build,dev)
# A package may be built twice (for build scripts and for the target), so compare whole lines.
differ=$(comm -23 <(echo "$binary") <(echo "$tests"))
if [ -n "$differ" ]; then
    echo "aitbc builds these dependencies with features no test build uses (package, features):" >&2
    echo "$differ" >&2
    echo "add the tests' features to the list in cli/Cargo.toml" >&2
    exit 1
fi
echo "aitbc's dependencies have the tests' features"
