#!/usr/bin/env bash
# Installs what building polypay needs beyond cargo itself: the wasm32-wasip2 target
# that plugins compile to. Idempotent.
set -euo pipefail
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "build tools: adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi
