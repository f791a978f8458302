# An independent reader of what Relais's Web Push channel produced: PyPI's http_ece
# decrypts the aes128gcm body with the subscription's private key and auth secret, and
# PyPI's cryptography verifies the VAPID JWT's ES256 signature with the channel's public
# key. Usage: python3 peer.py DIR, DIR holding body.bin, ua_private.bin, auth.bin,
# jwt.txt and vapid_public.bin. Prints the plaintext, then the JWT's claims.
import base64
import json
import sys

import http_ece
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

d = sys.argv[1]
read = lambda name: open(f"{d}/{name}", "rb").read()

body = read("body.bin")
ua_private = ec.derive_private_key(int.from_bytes(read("ua_private.bin"), "big"), ec.SECP256R1())
# With aes128gcm the sender's public key (`dh`) is the body header's keyid: http_ece
# takes it from there when `dh` is not given (given, it would read the keyid as text).
assert body[20] == 65 and body[21] == 4, "keyid is an uncompressed P-256 point"
plaintext = http_ece.decrypt(
    body,
    version="aes128gcm",
    private_key=ua_private,
    auth_secret=read("auth.bin"),
)

def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

header, claims, signature = read("jwt.txt").decode().split(".")
raw = b64url(signature)
der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), read("vapid_public.bin"))
public.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
assert json.loads(b64url(header)) == {"typ": "JWT", "alg": "ES256"}

print(plaintext.decode())
print(json.dumps(json.loads(b64url(claims)), sort_keys=True))
