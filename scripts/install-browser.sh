#!/usr/bin/env bash
# Installs what the checkout page's browser tests (host/tests/checkout_page.rs) need:
#   - Debian's Chromium at /usr/bin/chromium (apt; needs root, as on the CI machine);
#   - playwright-core in tests/browser/node_modules, from tests/browser/package-lock.json
#     (the library only: it drives the system Chromium and downloads no browser).
# Idempotent: does nothing when both are already there.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Chromium, and a CJK font so the page's Chinese text renders in screenshots.
missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || missing+=(fonts-wqy-microhei)
if ((${#missing[@]})); then
    echo "browser: installing ${missing[*]} (apt)"
    sudo=""
    if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
echo "browser: $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"

cd "$root/tests/browser"
stamp="node_modules/.package-lock.json"
if [[ -f "$stamp" && "$stamp" -nt package-lock.json && -d node_modules/playwright-core ]]; then
    echo "browser: tests/browser/node_modules is up to date"
else
    echo "browser: installing playwright-core (npm ci)"
    npm ci --no-audit --no-fund
fi
