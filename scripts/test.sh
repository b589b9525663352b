#!/usr/bin/env bash
# Runs the whole test suite: unit, store (SQLite and PostgreSQL), plugin, chain (anvil)
# and end-to-end tests. Installs what the tests need first. PostgreSQL must be reachable
# at $POLYPAY_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# A merge left half done must never pass.
if git rev-parse --git-dir >/dev/null 2>&1 && git grep -nE '^(<<<<<<<|>>>>>>>) ' -- . ; then
    echo "test: unresolved merge conflict markers (above)" >&2
    exit 1
fi
"$root/scripts/install-build-tools.sh"
"$root/scripts/install-test-tools.sh"
"$root/scripts/install-browser.sh"
export PATH="$root/node_modules/.bin:$PATH"
cargo test --locked --workspace "$@"
