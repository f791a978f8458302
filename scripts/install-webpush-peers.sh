#!/bin/sh
# Installs the Web Push peer the relais-channels webpush tests check Relais's crypto with:
#   - PyPI http_ece (RFC 8188 / RFC 8291 aes128gcm), which pulls in `cryptography`
#     (also used to verify the VAPID JWT's ES256 signature independently of ring).
# Idempotent: anything already present is left alone.
set -eu

if python3 -c 'import http_ece, cryptography' >/dev/null 2>&1; then
    echo "http_ece: already installed"
else
    pip install http_ece cryptography || pip install --break-system-packages http_ece cryptography
fi
