#!/usr/bin/env bash
# Builds and runs polypay for development: embedded SQLite in ./data, config/dev.toml.
# Installs what the build needs first (the wasm32-wasip2 target for plugins).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/install-build-tools.sh"
exec cargo run --bin polypay -- serve --config config/dev.toml "$@"
