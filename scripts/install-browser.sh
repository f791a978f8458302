#!/bin/sh
# Installs what the browser tests (crates/relais/tests/browser.rs) drive:
#   - Debian's chromium (/usr/bin/chromium); no browser is ever downloaded
#   - npm's playwright-core, at the version crates/relais/tests/browser/package-lock.json
#     pins, into crates/relais/tests/browser/node_modules
# Idempotent: anything already present is left alone. Run as root (apt-get).
set -eu
cd "$(dirname "$0")/.."

if [ -x /usr/bin/chromium ]; then
    echo "chromium: already installed"
else
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

BROWSER_TESTS=crates/relais/tests/browser
if [ -f "$BROWSER_TESTS/node_modules/playwright-core/package.json" ]; then
    echo "playwright-core: already installed in $BROWSER_TESTS"
elif command -v npm >/dev/null 2>&1; then
    # playwright-core downloads no browser on install.
    (cd "$BROWSER_TESTS" && npm ci --no-audit --no-fund)
else
    echo "playwright-core: npm not found; install nodejs and npm to run the browser tests" >&2
    exit 1
fi
