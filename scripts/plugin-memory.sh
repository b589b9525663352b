#!/usr/bin/env bash
# Resident memory of the release server with every in-tree dialect plugin mounted, on
# SQLite: idle, right after a load, and 60 s later.
#   1. `polypay dev` on a fresh data directory (anvil and the TRON dev node as chains,
#      trino, pay-orders, wopay and tron-php mounted, demo merchants), until its
#      walkthrough is printed; VmRSS after 10 s idle.
#   2. `wrk` (2 threads, 16 connections, 10 s) creating trino invoices (the walkthrough's
#      create request, each with its own order metadata), then 10 s reading one invoice;
#      VmRSS right after.
#   3. VmRSS 60 s after the load ended.
# Each reading also prints /proc/PID/smaps_rollup's anonymous and file-backed parts.
# Usage: scripts/plugin-memory.sh [POLYPAY_BINARY]. Needs the release binary and the
# plugins: `cargo build --release --bin polypay && cargo build -p polypay-plugin-artifacts`.
# Installs `wrk` (Debian package) when missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="${1:-${CARGO_TARGET_DIR:-$root/target}/release/polypay}"
[[ -x "$bin" ]] || { echo "build it first: cargo build --release --bin polypay" >&2; exit 1; }
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
export PATH="$root/node_modules/.bin:$PATH"

port=38180
work="$(mktemp -d)"
dir="$work/dev"
"$bin" dev --data-dir "$dir" --port "$port" --admin-port 39190 --node-port 38645 \
    --tron-port 38691 --callback-port 38190 >"$work/out" 2>"$work/err" &
pid=$!
cleanup() { kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
until grep -q "printed below as they arrive" "$work/out" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
    sleep 0.1
done

reading() {
    awk -v what="$1" '
        FILENAME ~ /status$/ && /^VmRSS/ { rss = $2 }
        FILENAME ~ /rollup$/ && /^Rss/ { all = $2 }
        FILENAME ~ /rollup$/ && /^Anonymous/ { anon = $2 }
        END { printf "%-24s VmRSS %6.1f MiB (anonymous %6.1f, file-backed %5.1f)\n",
                     what, rss / 1024, anon / 1024, (all - anon) / 1024 }
    ' "/proc/$pid/status" "/proc/$pid/smaps_rollup"
}

# The walkthrough's trino create command: its bearer token and JSON body.
create=$(grep -A3 'Create an invoice of 10 USDT' "$work/out" | tr -d '\\\n')
token=$(sed -n "s/.*Authorization: Bearer \([^']*\)'.*/\1/p" <<<"$create")
body=$(sed -n "s/.*-d '\(.*\)'.*/\1/p" <<<"$create")
[[ -n "$token" && -n "$body" ]] || { echo "no trino create command in the walkthrough" >&2; exit 1; }
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
