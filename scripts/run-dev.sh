#!/usr/bin/env bash
# Builds and runs polypay for development: embedded SQLite in ./data, config/dev.toml.
# Installs what the build needs first (the wasm32-wasip2 target for plugins), then builds
# the dialect plugins (into target/wasm-plugins) and the server with its checkout page.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/install-build-tools.sh"
cargo build --locked -p polypay-plugin-artifacts
exec cargo run --locked --bin polypay -- serve --config config/dev.toml "$@"
