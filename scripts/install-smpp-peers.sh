#!/bin/sh
# Installs the SMPP implementations the relais-smpp interop tests and benchmark run against:
#   - Debian kannel (bearerbox, smsbox) and kannel-extras
#   - PyPI smpplib (an ESME library)
#   - npm smpp (node-smpp, used to build a small independent SMSC)
# Idempotent: anything already present is left alone. Run as root (apt-get).
set -eu

NODE_PEERS="${RELAIS_NODE_PEERS:-/opt/relais-smpp-peers}"

if [ -x /usr/sbin/bearerbox ] && [ -x /usr/sbin/smsbox ] && dpkg -s kannel-extras >/dev/null 2>&1; then
    echo "kannel: already installed"
else
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y kannel kannel-extras
fi
# The Debian package starts a system bearerbox only if enabled in /etc/default/kannel; the
# tests start their own with a private config and free ports.

if python3 -c 'import smpplib' >/dev/null 2>&1; then
    echo "smpplib: already installed"
else
    pip install smpplib || pip install --break-system-packages smpplib
fi

if [ -f "$NODE_PEERS/node_modules/smpp/package.json" ]; then
    echo "node-smpp: already installed in $NODE_PEERS"
elif command -v npm >/dev/null 2>&1; then
    mkdir -p "$NODE_PEERS"
    npm install --prefix "$NODE_PEERS" --no-audit --no-fund smpp@0.5.1
else
    echo "node-smpp: npm not found; install nodejs+npm to run the node-smpp interop test" >&2
fi
