#!/usr/bin/env bash
# Installs what building polypay needs beyond cargo itself: the wasm32-wasip2 target
# that plugins compile to. Idempotent. The JavaScript plugins also need Node.js (20 or
# later) and the root node_modules, which scripts/install-test-tools.sh installs.
set -euo pipefail
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "build tools: adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi
if ! command -v node >/dev/null 2>&1; then
    echo "build tools: Node.js is missing; the JavaScript plugins (plugins/js) need it" >&2
    exit 1
fi
