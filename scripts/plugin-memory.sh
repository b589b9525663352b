#!/usr/bin/env bash
# Resident memory of the release server with the five dialect plugins mounted, on SQLite:
# idle, right after a load, and 30 s and 60 s later.
#   1. `polypay dev` on a fresh data directory provides the chains (anvil and the TRON dev
#      node) and writes its config (trino, pay-orders, wopay and tron-php mounted).
#   2. The measured server is `polypay serve` on that config plus bhop-pay (which the
#      demo does not mount), on its own SQLite database and ports, with a trino merchant
#      created by the CLI; with --with-js also epusdt-js (the JavaScript plugin) and a
#      merchant of its own. VmRSS after 10 s idle.
#   3. `wrk` (2 threads, 16 connections, 10 s) creating trino invoices (the walkthrough's
#      create request, each with its own order metadata), then 10 s reading one invoice;
#      VmRSS right after, 30 s and 60 s later.
# Each reading also prints /proc/PID/smaps_rollup's anonymous and file-backed parts.
# Usage: scripts/plugin-memory.sh [--with-js] [POLYPAY_BINARY]. Needs the release binary and the
# plugins: `cargo build --release --bin polypay && cargo build -p polypay-plugin-artifacts`.
# Installs `wrk` (Debian package) when missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
with_js=0
[[ "${1:-}" == --with-js ]] && { with_js=1; shift; }
bin="${1:-${CARGO_TARGET_DIR:-$root/target}/release/polypay}"
[[ -x "$bin" ]] || { echo "build it first: cargo build --release --bin polypay" >&2; exit 1; }
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
export PATH="$root/node_modules/.bin:$PATH"
plugins="$root/target/wasm-plugins"
bhop_wasm="$plugins/wasm32-wasip2/release/polypay_bhop_pay.wasm"
epusdt_wasm="$plugins/js/epusdt-js.wasm"
for wasm in "$bhop_wasm" $([[ $with_js -eq 1 ]] && echo "$epusdt_wasm"); do
    [[ -f "$wasm" ]] || { echo "missing $wasm: cargo build -p polypay-plugin-artifacts" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port) admin_port=$(free_port)
work="$(mktemp -d)"
dir="$work/dev"
"$bin" dev --data-dir "$dir" --port "$(free_port)" --admin-port "$(free_port)" \
    --node-port "$(free_port)" --tron-port "$(free_port)" --callback-port "$(free_port)" \
    >"$work/out" 2>"$work/err" &
dev_pid=$!
pid=""
cleanup() {
    if [[ -n "$pid" ]]; then kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; fi
    kill -INT "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
until grep -q "printed below as they arrive" "$work/out" 2>/dev/null; do
    kill -0 "$dev_pid" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
    sleep 0.1
done

# The measured server: the dev config plus the other dialects, its own database and ports.
all="$work/all"
mkdir -p "$all"
export POLYPAY_DATA_DIR="$all" POLYPAY_DATABASE__URL="sqlite://$all/polypay.db" \
    POLYPAY_LISTEN__PUBLIC="127.0.0.1:$port" POLYPAY_LISTEN__ADMIN="127.0.0.1:$admin_port" \
    POLYPAY_PUBLIC_BASE_URL="http://127.0.0.1:$port"
config="$all/polypay.toml"
evm_network=$(awk -F'"' '/^\[\[chains\]\]/ { c = 1 } c && /^name = / { print $2; exit }' "$dir/polypay.toml")
tron_recipient=$(grep -o 'T[1-9A-HJ-NP-Za-km-z]\{33\}' "$dir/polypay.toml" | tail -1)
# Without the dev database, the demo's default merchant does not exist here.
grep -v '^default_merchant = ' "$dir/polypay.toml" >"$config"
cat >>"$config" <<EOF

[[plugins]]
name = "bhop-pay"
wasm = "$bhop_wasm"
settings = { tokens = { USDT = "$evm_network" }, issuer = "Bhop" }

EOF
if [[ $with_js -eq 1 ]]; then
    cat >>"$config" <<EOF
[[plugins]]
name = "epusdt-js"
wasm = "$epusdt_wasm"
prefix = "/epusdt"
settings = { token_public_id = "TOKEN_PUBLIC_ID", trade_types = { "usdt.trc20" = { chain = "tron-dev", asset = "USDT", address = "$tron_recipient" } } }
EOF
    epusdt=$("$bin" --config "$config" merchant create --name "epusdt shop" --plugin epusdt-js)
    public_id=$(jq -r '.credentials[0].public_id' <<<"$epusdt")
    [[ -n "$public_id" && "$public_id" != null ]] || { echo "no epusdt-js credential: $epusdt" >&2; exit 1; }
    sed -i "s/TOKEN_PUBLIC_ID/$public_id/" "$config"
fi
token=$("$bin" --config "$config" merchant create --name "trino shop" --plugin trino |
    jq -r '.credentials[0].secret')
"$bin" --config "$config" serve >"$all/out" 2>"$all/err" &
pid=$!
until curl -sf "http://127.0.0.1:$admin_port/healthz" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$all/err" >&2; exit 1; }
    sleep 0.1
done
echo "measured: polypay serve with $(grep -c '^\[\[plugins\]\]' "$config") dialect plugins:" \
    "$(awk '/^\[\[plugins\]\]/ { p = 1; next } p && /^name = / { gsub(/"/, "", $3); printf "%s ", $3; p = 0 }' "$config")"

reading() {
    awk -v what="$1" '
        FILENAME ~ /status$/ && /^VmRSS/ { rss = $2 }
        FILENAME ~ /rollup$/ && /^Rss/ { all = $2 }
        FILENAME ~ /rollup$/ && /^Anonymous/ { anon = $2 }
        END { printf "%-24s VmRSS %6.1f MiB (anonymous %6.1f, file-backed %5.1f)\n",
                     what, rss / 1024, anon / 1024, (all - anon) / 1024 }
    ' "/proc/$pid/status" "/proc/$pid/smaps_rollup"
}

# The walkthrough's trino create command: its JSON body (sent with our merchant's token).
create=$(grep -A3 'Create an invoice of 10 USDT' "$work/out" | tr -d '\\\n')
body=$(sed -n "s/.*-d '\(.*\)'.*/\1/p" <<<"$create")
[[ -n "$body" ]] || { echo "no trino create command in the walkthrough" >&2; exit 1; }
cat >"$work/create.lua" <<EOF
local n, id = 0, 0
function setup(thread) id = id + 1; thread:set("id", id) end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
local body = [[$body]]
function request()
  n = n + 1
  local b = body:gsub('"metadata": "[^"]*"', '"metadata": "load-' .. id .. '-' .. n .. '"')
  return wrk.format(nil, nil, nil, b)
end
local codes = {}
function response(status) codes[status] = (codes[status] or 0) + 1 end
EOF
invoice=$(curl -sS -X POST "http://127.0.0.1:$port/api/v1/invoices/create" \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $token" -d "$body" |
    sed -n 's/.*"invoice_id":"\([^"]*\)".*/\1/p')
[[ -n "$invoice" ]] || { echo "the trino create request failed" >&2; exit 1; }

sleep 10
reading "idle"
echo "load: trino invoice create, wrk -t2 -c16 -d10s"
wrk -t2 -c16 -d10s --latency -s "$work/create.lua" "http://127.0.0.1:$port/api/v1/invoices/create" |
    grep -E 'Requests/sec|Non-2xx|^ +50%|^ +99%|requests in'
echo "load: trino invoice status, wrk -t2 -c16 -d10s"
wrk -t2 -c16 -d10s --latency -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/api/v1/invoices/$invoice" |
    grep -E 'Requests/sec|Non-2xx|^ +50%|^ +99%|requests in'
reading "right after the load"
sleep 30
reading "30 s after the load"
sleep 30
reading "60 s after the load"
