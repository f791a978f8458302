#!/bin/sh
# Installs the peers the e-mail channel's tests run against (crates/relais-channels/tests/email.rs):
#   - PyPI aiosmtpd (an SMTP server: the test sends through it and reads what it got)
#   - PyPI dkimpy (a DKIM verifier: it checks the signatures Relais writes)
# Idempotent: anything already present is left alone.
set -eu

if python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    echo "aiosmtpd: already installed"
else
    pip install aiosmtpd || pip install --break-system-packages aiosmtpd
fi

if python3 -c 'import dkim' >/dev/null 2>&1; then
    echo "dkimpy: already installed"
else
    pip install dkimpy || pip install --break-system-packages dkimpy
fi
