#!/usr/bin/env bash
# Runs every kvs test against release builds of the real binaries:
#   0. the container images (docker/build.sh: static binaries, FROM scratch),
#   1. Rust unit tests and whole-cluster tests (cargo-nextest, else cargo test),
#      container fault runs among them,
#   2. doc examples,
#   3. every fuzz target for a short, bounded run from its seed corpus
#      (fuzz/run.sh; KVS_FUZZ_SECONDS per target, default 15; 0 skips it),
#   4. Python interop and harness tests (pytest, installed here if missing),
#      the Docker backend and the Kubernetes manifests among them.
# Without a Docker engine the container tests skip, unless CI is set.
# Usage: ./test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")"

echo "== building release binaries"
cargo build --release --workspace --bins

echo "== container images"
if docker info >/dev/null 2>&1; then
    docker/build.sh
elif [ -n "${CI:-}" ]; then
    echo "CI is set but no Docker engine answers" >&2
    exit 1
else
    echo "no Docker engine: container tests will be skipped"
fi

echo "== Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --cargo-profile release --no-fail-fast
else
    cargo test --workspace --release --no-fail-fast
fi
cargo test --workspace --release --doc --quiet

fuzz_seconds="${KVS_FUZZ_SECONDS:-15}"
if [ "$fuzz_seconds" != 0 ]; then
    echo "== fuzzing"
    fuzz/run.sh "$fuzz_seconds"
fi

echo "== Python tests"
if ! python3 -c 'import pytest' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
fi
KVS_NO_BUILD=1 KVS_BIN_DIR="$PWD/target/release" python3 -m pytest tests/python -q "$@"
