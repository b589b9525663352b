#!/usr/bin/env bash
# Times the README's promise, "a payment in under a minute", with the binary already built:
#   1. `polypay dev` on a fresh data directory until its walkthrough is printed
#      (anvil start, contract deployment, config, demo merchants, server start);
#   2. the walkthrough's create curl, `polypay dev pay`, and its status curl until the
#      invoice reads `notified` (the callback was delivered and accepted);
#   3. a second start on the same directory (resume) until the walkthrough.
# Usage: scripts/bench-dev.sh [RUNS] (default 3). Needs the release binary and the
# plugins: `cargo build --release --bin polypay && cargo build -p polypay-plugin-artifacts`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs="${1:-3}"
bin="${CARGO_TARGET_DIR:-$root/target}/release/polypay"
[[ -x "$bin" ]] || { echo "build it first: cargo build --release --bin polypay" >&2; exit 1; }
ports=(--port 38080 --admin-port 39090 --node-port 38545 --callback-port 38090)
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { print a - b }'; }

# Starts polypay dev on $1 and waits for the walkthrough's last line; sets $pid, $out.
start() {
    out="$1.out"
    "$bin" dev --data-dir "$1" "${ports[@]}" >"$out" 2>"$1.err" &
    pid=$!
    until grep -q "printed below as they arrive" "$out" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { cat "$1.err" >&2; exit 1; }
        sleep 0.02
    done
}
stop() { kill -INT "$pid"; wait "$pid" || true; }

for run in $(seq 1 "$runs"); do
    dir="$(mktemp -d)/dev"
    t0=$(now); start "$dir"; first=$(since "$t0")
    create=$(grep -A3 '1\. Create' "$out" | tail -n 3 | sed 's/^ *\$ //; s/^ *//')
    status=$(grep -A1 '3\. Read' "$out" | tail -n 1 | sed 's/^ *\$ //')
    t1=$(now)
    INVOICE=$(sh -c "$create" | sed -n 's/.*"invoice_id":"\([^"]*\)".*/\1/p')
    export INVOICE
    "$bin" dev --data-dir "$dir" pay "$INVOICE" >/dev/null
    until sh -c "$status" | grep -q '"notified"'; do sleep 0.02; done
    paid=$(since "$t1")
    stop
    t2=$(now); start "$dir"; resumed=$(since "$t2"); stop
    printf 'run %d: first start %.2f s, create+pay+notified %.2f s, resumed start %.2f s\n' \
        "$run" "$first" "$paid" "$resumed"
    rm -rf "$(dirname "$dir")"
done
