#!/usr/bin/env bash
# Proof that the simulation can fail: applies each deliberate bug in this
# folder to a scratch copy of the checkout, builds kvs-bench there, and
# runs `kvs-bench simulate --until-violation` (at most SEEDS schedules,
# default 5000). Prints, per bug, the first seed that caught it.
#
# Usage: crates/kvs-bench/bugs/run.sh [SEEDS] [BUG...]
#   e.g. crates/kvs-bench/bugs/run.sh 5000 early-ack
# The scratch copy and its build stay in target/sim-bugs/ (reused: later
# runs rebuild only what a bug changes).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
seeds="${1:-5000}"
shift || true
bugs=("$@")
if [ ${#bugs[@]} -eq 0 ]; then
    bugs=()
    for patch in "$here"/*.patch; do
        bugs+=("$(basename "$patch" .patch)")
    done
fi

scratch="$root/target/sim-bugs"
mkdir -p "$scratch"
export CARGO_TARGET_DIR="$scratch/target"
status=0
for bug in "${bugs[@]}"; do
    copy="$scratch/src"
    rm -rf "$copy"
    mkdir -p "$copy"
    # The committed tree, with the bug applied.
    git -C "$root" archive HEAD | tar -x -C "$copy"
    git -C "$copy" init -q 2>/dev/null || true
    (cd "$copy" && git apply "$here/$bug.patch")
    echo "== $bug: building"
    cargo build --quiet --release --manifest-path "$copy/Cargo.toml" -p kvs-bench
    echo "== $bug: simulating up to $seeds schedules"
    out="$scratch/$bug.log"
    "$CARGO_TARGET_DIR/release/kvs-bench" simulate --seeds "$seeds" --until-violation >"$out" 2>&1 || true
    # Failures are printed lowest seed first; with --until-violation the
    # lowest is the first failing seed in order.
    first=$(grep -m1 -o '^seed [0-9]* failed' "$out" | grep -o '[0-9]*' || true)
    summary=$(tail -1 "$out")
    if [ -n "$first" ]; then
        echo "$bug: caught at seed $first (seeds 1..$first run; no earlier one failed); $summary"
    else
        echo "$bug: NOT caught in $seeds schedules; $summary"
        status=1
    fi
done
exit $status
