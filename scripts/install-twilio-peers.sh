#!/bin/sh
# Installs the official Twilio SDKs the relais-server twilio interop tests drive against a
# running Relais:
#   - PyPI twilio (the Python helper library; its RequestValidator checks callbacks)
#   - npm twilio (the Node helper library; its validateRequest checks callbacks)
# Idempotent: anything already present is left alone. Run as root (pip, npm).
set -eu

NODE_PEERS="${RELAIS_TWILIO_NODE_PEERS:-/opt/relais-twilio-peers}"

if python3 -c 'import twilio.rest, twilio.request_validator' >/dev/null 2>&1; then
    echo "twilio (PyPI): already installed"
else
    pip install twilio || pip install --break-system-packages twilio
fi

if [ -f "$NODE_PEERS/node_modules/twilio/package.json" ]; then
    echo "twilio (npm): already installed in $NODE_PEERS"
elif command -v npm >/dev/null 2>&1; then
    mkdir -p "$NODE_PEERS"
    npm install --prefix "$NODE_PEERS" --no-audit --no-fund twilio@5
else
    echo "twilio (npm): npm not found; install nodejs+npm to run the Node SDK interop test" >&2
fi
