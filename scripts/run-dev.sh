#!/usr/bin/env bash
# The README's run command: a local payment setup in one command (`polypay dev`).
#
# On a fresh clone it first installs what it needs: the wasm32-wasip2 Rust target (the
# dialect plugins compile to it) and node_modules with the anvil dev chain. Then it builds
# the dialect plugins and the server, and runs `polypay dev` with the arguments given:
#
#   ./scripts/run-dev.sh                 start (or resume) the setup in ./data/dev
#   ./scripts/run-dev.sh --reset         start over
#   ./scripts/run-dev.sh pay INVOICE     pay an invoice from the dev wallet (also: mine N, reorg DEPTH)
#   ./scripts/run-dev.sh --help          every option
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '==> %s\n' "$*"; }

for tool in cargo npm node; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool is not installed; polypay dev needs Rust (rustup.rs) and Node.js 20+ with npm" >&2
        exit 1
    fi
done

step "checking the build tools (the wasm32-wasip2 target)"
"$root/scripts/install-build-tools.sh"
step "checking the dev chain (anvil in node_modules)"
"$root/scripts/install-test-tools.sh"
step "building the dialect plugins (target/wasm-plugins)"
cargo build --locked --quiet -p polypay-plugin-artifacts
step "building polypay"
cargo build --locked --quiet --bin polypay
exec "${CARGO_TARGET_DIR:-$root/target}/debug/polypay" dev "$@"
