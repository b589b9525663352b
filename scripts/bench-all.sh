#!/usr/bin/env bash
# Every figure of the performance summary in BENCHMARKS.md, in one run on one machine:
# builds the release binary, the plugin components and the benchmarks once, then runs one
# after the other, each step headed by the time and the load average:
#   1. plugin dispatch overhead      cargo bench --bench plugin_dispatch
#   2. end-to-end load over TCP      scripts/bench-load/run.sh (SQLite and PostgreSQL)
#   3. matcher throughput            cargo bench --bench matcher (10k and 1M open invoices)
#   4. webhook delivery throughput   cargo bench --bench webhook_delivery
#   5. resident memory               scripts/plugin-memory.sh (the five dialects mounted)
#   6. the same with epusdt-js        scripts/plugin-memory.sh --with-js
# Everything it prints also goes to a log file (its path is printed first). Every cargo
# command here builds the host with the `bench-native` feature (the load benchmark's native
# routes), so they share one build and none replaces the binary another step runs.
#
# Usage: scripts/bench-all.sh [--no-build] [--quick]
#   --no-build   use what the last run built
#   --quick      shorter runs (criterion's default times, 5 s load runs, 10k invoices
#                only): a check that everything runs, not figures to report
# Environment: CARGO_TARGET_DIR (default target/), PostgreSQL on 127.0.0.1:5432 as for the
# test suite. Needs what the tests need (scripts/install-test-tools.sh); installs wrk.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export PATH="$root/node_modules/.bin:$PATH"
build=1 quick=0
for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        --quick) quick=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "unknown option $arg" >&2; exit 2 ;;
    esac
done

mkdir -p "$CARGO_TARGET_DIR"
log="$CARGO_TARGET_DIR/bench-all-$(date -u +%Y%m%dT%H%M%SZ).log"
echo "log: $log"
exec > >(tee "$log") 2>&1

step() { echo; echo "== $1 ($(date -u '+%F %T UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg))"; }

step "machine"
echo "cpus: $(nproc), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | sort -u | head -1)"
echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "kernel: $(uname -r)"
echo "rustc: $(rustc --version)"
echo "postgresql: $(psql -tA postgres://postgres@127.0.0.1:5432/postgres -c 'SHOW server_version' 2>/dev/null || echo unreachable)"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- host plugins plugin-sdk || echo ' (with local changes)')"

if [[ $build -eq 1 ]]; then
    step "build (release)"
    ./scripts/install-build-tools.sh
    cargo build --release --locked --bin polypay -p polypay-host --features bench-native
    cargo build --release --locked -p polypay-plugin-artifacts
    cargo bench --locked -p polypay-host --features bench-native --no-run
fi

criterion=()
load=(--duration 10s)
if [[ $quick -eq 1 ]]; then
    criterion=(-- --warm-up-time 1 --measurement-time 2)
    load=(--duration 5s)
    export MATCHER_BENCH_INVOICES=10000
fi

step "1. plugin dispatch (in-process)"
cargo bench --locked -p polypay-host --features bench-native --bench plugin_dispatch "${criterion[@]}"

step "2. end-to-end load over TCP"
POLYPAY_BIN="$CARGO_TARGET_DIR/release/polypay" scripts/bench-load/run.sh --no-build "${load[@]}"

step "3. matcher"
cargo bench --locked -p polypay-host --features bench-native --bench matcher "${criterion[@]}"

step "4. webhook delivery"
cargo bench --locked -p polypay-host --features bench-native --bench webhook_delivery "${criterion[@]}"

step "5. resident memory, the five dialects mounted"
scripts/plugin-memory.sh "$CARGO_TARGET_DIR/release/polypay"

step "6. resident memory, the five dialects and the JavaScript plugin mounted"
scripts/plugin-memory.sh --with-js "$CARGO_TARGET_DIR/release/polypay"

step "done"
