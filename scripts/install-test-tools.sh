#!/usr/bin/env bash
# Installs the tools the test suites run, into the repository (nothing global):
#   - node_modules/ from package.json + package-lock.json: a local anvil node
#     (`@foundry-rs/anvil`, whose platform package ships the native binary) and
#     solc-js (to regenerate contracts/artifacts, see contracts/README.md);
#     componentize-js (with the preview2-shim it loads), which compiles the JavaScript
#     plugins (plugins/js/componentize.mjs, run by plugins/artifacts/build.rs);
#   - Debian's php-cli (apt; needs root, as on the CI machine): the tron-php dialect's
#     tests run the seed's own PHP client (host/tests/tron_php_clients.rs).
# Idempotent: does nothing when php is installed and node_modules matches package-lock.json.
set -euo pipefail

if ! command -v php >/dev/null 2>&1; then
    echo "test tools: installing php-cli (apt)"
    sudo=""
    if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq php-cli
fi
php --version | head -n 1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# npm records the installed tree in node_modules/.package-lock.json; when it is
# newer than package-lock.json the install is current.
stamp="node_modules/.package-lock.json"
if [[ -f "$stamp" && "$stamp" -nt package-lock.json && -x node_modules/.bin/anvil \
      && -d node_modules/@bytecodealliance/componentize-js ]]; then
    echo "test tools: node_modules is up to date"
else
    # `npm install` rather than `npm ci`: it installs the versions pinned in
    # package-lock.json, and it tolerates a lock file that records only the
    # platform packages the registry could resolve when it was written
    # (`npm ci` insists on every optional platform package of anvil).
    echo "test tools: installing node_modules (npm install)"
    npm install --no-audit --no-fund
fi

node_modules/.bin/anvil --version | head -n 1
