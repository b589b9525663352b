#!/usr/bin/env bash
# End-to-end load benchmark: the release `polypay` binary over real TCP, driven by wrk.
#
# For each backend (SQLite in a temp dir, then a fresh PostgreSQL database on
# 127.0.0.1:5432), it writes a config that follows a local anvil chain (network `goerli`,
# USDT with a payment contract) and mounts the trino plugin, creates a trino merchant with
# `polypay merchant create`, starts `polypay serve`, and runs wrk at fixed concurrency
# against:
#   create/plugin   POST /api/v1/invoices/create        (trino plugin)
#   create/native   POST /bench/native/invoices/create  (same store calls, no plugin)
#   status/plugin   GET  /api/v1/invoices/{id}          (trino plugin)
#   status/native   GET  /bench/native/invoices/{id}    (same store calls, no plugin)
#   checkout        GET  /api/checkout/{id}              (the checkout page's JSON)
# The native routes exist only in a build with the `bench-native` feature
# (host/src/http/bench_native.rs), which this script builds.
#
# Per run it prints requests/s, p50, p99, errors (non-2xx answers, 500s and 503s among
# them, socket errors) and the server's CPU per request (utime+stime of the process from
# /proc/PID/stat over the run, divided by the requests).
#
# Usage: scripts/bench-load/run.sh [options]
#   --duration D      wrk duration per run (default 10s)
#   --threads N       wrk threads (default 2)
#   --connections N   wrk connections (default 16)
#   --backends LIST   "sqlite postgres" (default both)
#   --only REGEX      run only the scenarios whose name matches (e.g. 'create')
#   --no-build        use $POLYPAY_BIN (or the last build) without building
# Environment: CARGO_TARGET_DIR (release build dir), POLYPAY_BENCH_POSTGRES
# (default postgres://postgres@127.0.0.1:5432), POLYPAY_BENCH_KEEP=1 keeps the temp dir.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/scripts/bench-load"
cd "$root"
export PATH="$root/node_modules/.bin:$PATH"

duration=10s threads=2 connections=16 backends="sqlite postgres" only="" build=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --backends) backends="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
pg_base="${POLYPAY_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"

# The load generator: an existing tool, installed when missing.
if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    sudo_="" && [[ $(id -u) -ne 0 ]] && sudo_="sudo"
    $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq wrk >/dev/null
fi

work="$(mktemp -d /tmp/polypay-bench-load.XXXXXX)"
target="${CARGO_TARGET_DIR:-$root/target}"
if [[ $build -eq 1 ]]; then
    cargo build --release --bin polypay -p polypay-host --features bench-native >&2
    # The plugin components (into target/wasm-plugins, release-built by the artifacts crate).
    cargo build --release -p polypay-plugin-artifacts >&2
    # Another build may replace release/polypay while this runs: keep our own copy.
    cp "$target/release/polypay" "$work/polypay"
    bin="$work/polypay"
else
    bin="${POLYPAY_BIN:-$target/release/polypay}"
fi
wasm="$root/target/wasm-plugins/wasm32-wasip2/release/polypay_trino.wasm"
[[ -f "$wasm" ]] || { echo "missing $wasm: cargo build -p polypay-plugin-artifacts" >&2; exit 1; }

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for db in "${databases[@]:-}"; do
        [[ -n "$db" ]] && psql -q "$pg_base/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    done
    [[ "${POLYPAY_BENCH_KEEP:-0}" == 1 ]] || rm -rf "$work"
}
databases=()
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A local chain for the listener to follow (nothing is paid during the benchmark).
anvil_port=$(free_port)
anvil --host 127.0.0.1 --port "$anvil_port" --chain-id 31337 --silent >"$work/anvil.log" 2>&1 &
pids+=($!)
until curl -sf -X POST -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' \
    "http://127.0.0.1:$anvil_port" >/dev/null; do sleep 0.1; done

ticks_per_s=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Runs one scenario: name method path token body.
run_wrk() {
    local name="$1" method="$2" path="$3" token="$4" body="${5:-}"
    [[ -z "$only" || "$name" =~ $only ]] || return 0
    local before after out
    before=$(cpu_ticks "$server_pid")
    out=$(BENCH_METHOD="$method" BENCH_PATH="$path" BENCH_TOKEN="$token" BENCH_BODY="$body" \
        wrk -t"$threads" -c"$connections" -d"$duration" --timeout 10s \
        -s "$here/request.lua" "$public")
    after=$(cpu_ticks "$server_pid")
    echo "$out" >>"$work/wrk-$backend.log"
    local result
    result=$(grep '^RESULT' <<<"$out") || { echo "$out" >&2; return 1; }
    eval "$(sed 's/^RESULT //' <<<"$result")"
    awk -v b="$backend" -v n="$name" -v r="$requests" -v d="$duration_us" -v p50="$p50_us" \
        -v p99="$p99_us" -v non2xx="$non2xx" -v s500="$s500" -v s503="$s503" \
        -v sock=$((connect + read + write + timeout)) -v t=$((after - before)) -v hz="$ticks_per_s" \
        'BEGIN { printf "| %s | %s | %.0f | %.1f ms | %.1f ms | %d (500: %d, 503: %d) | %d | %.0f |\n",
                 b, n, r / (d / 1e6), p50 / 1000, p99 / 1000, non2xx, s500, s503, sock,
                 (r > 0 ? t / hz * 1e6 / r : 0) }'
}

body='{"amount": 10000000, "jump_url": "https://shop.example/order/1", "metadata": "bench", "network": "goerli", "notify_url": "https://shop.example/pay/notify", "recipient": "0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af", "title": "Order 1"}'

echo "| backend | scenario | req/s | p50 | p99 | non-2xx | socket errors | CPU µs/req |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for backend in $backends; do
    dir="$work/$backend"
    mkdir -p "$dir"
    public_port=$(free_port) admin_port=$(free_port)
    case "$backend" in
        sqlite) db_url="sqlite://$dir/polypay.db" ;;
        postgres)
            db="polypay_bench_$$"
            psql -q "$pg_base/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
            databases+=("$db")
            db_url="$pg_base/$db" ;;
        *) echo "unknown backend $backend" >&2; exit 2 ;;
    esac
    cat >"$dir/polypay.toml" <<EOF
data_dir = "$dir"
public_base_url = "http://127.0.0.1:$public_port"

[listen]
public = "127.0.0.1:$public_port"
admin = "127.0.0.1:$admin_port"

[database]
url = "$db_url"

[secrets]
master_key = "$(openssl rand -hex 32)"

[admin]
token = "$(openssl rand -hex 32)"

[log]
filter = "warn"

[[chains]]
name = "goerli"
kind = "evm"
chain_id = 31337
rpc_url = "http://127.0.0.1:$anvil_port"
confirmations = 1
poll_interval_ms = 1000

[[chains.assets]]
symbol = "USDT"
decimals = 6
contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

[[chains.payment_contracts]]
address = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
asset = "USDT"

[[plugins]]
name = "trino"
wasm = "$wasm"
EOF
    token=$("$bin" --config "$dir/polypay.toml" merchant create --name "Bench shop" --plugin trino \
        | jq -r '.credentials[0].secret')
    "$bin" --config "$dir/polypay.toml" serve >"$dir/server.log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    public="http://127.0.0.1:$public_port"
    until curl -sf "http://127.0.0.1:$admin_port/healthz" >/dev/null; do
        kill -0 "$server_pid" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
        sleep 0.1
    done
    # One invoice to read, made through the plugin.
    invoice=$(curl -sf -X POST "$public/api/v1/invoices/create" -H 'Content-Type: application/json' \
        -H "Authorization: Bearer $token" -d "$body" | jq -r .invoice_id)
    run_wrk create/plugin POST /api/v1/invoices/create "$token" "$body"
    run_wrk create/native POST /bench/native/invoices/create "$token" "$body"
    run_wrk status/plugin GET "/api/v1/invoices/$invoice" "$token"
    run_wrk status/native GET "/bench/native/invoices/$invoice" "$token"
    run_wrk checkout GET "/api/checkout/$invoice" ""
    faults=$(curl -sf "http://127.0.0.1:$admin_port/metrics" -H "Authorization: Bearer $(sed -n 's/^token = "\(.*\)"/\1/p' "$dir/polypay.toml")" \
        | grep -E '^polypay_plugin_(faults|overloads)_total' || true)
    [[ -z "$faults" ]] || { echo "$backend plugin faults/overloads:"; echo "$faults"; } >&2
    echo "$backend: $(grep -c . "$dir/server.log" || true) log lines (warn and above), RSS $(awk '/VmRSS/ { print $2 " kB" }' "/proc/$server_pid/status")" >&2
    kill -INT "$server_pid"; wait "$server_pid" || true
done
