#!/usr/bin/env bash
# Runs every kvs fuzz target for a bounded time, starting from its seed
# corpus (fuzz/corpus/TARGET, in git), and fails if any target crashes
# (a panic, a failed assertion, a sanitizer report), hangs on one input for
# more than 10 s, or passes 2 GB of memory. Inputs a run finds that reach
# new code go to fuzz/grown/TARGET (not in git); later runs start from
# those too. A crashing input is saved in fuzz/artifacts/TARGET/.
#
# Installs cargo-fuzz if missing (cargo install --locked); uses the nightly
# toolchain if there is one, else the default one (see below).
#
# Usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   (default: 20 s, every target)
# Longer runs, e.g. an hour each: fuzz/run.sh 3600
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(parse_call batch dispatch_server dispatch_frontend dispatch_proxy replication_stream)
fi

# cargo-fuzz passes the compiler unstable flags: the nightly toolchain if
# rustup has one, else the default toolchain with RUSTC_BOOTSTRAP=1 (which
# lets a stable compiler take them; nothing is downloaded but cargo-fuzz).
toolchain=(+nightly)
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "no nightly toolchain: using the default one with RUSTC_BOOTSTRAP=1"
    toolchain=()
    export RUSTC_BOOTSTRAP=1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

# Optimised, with debug assertions (so integer overflow panics too). No
# sanitizer by default: kvs has no unsafe code, and AddressSanitizer makes
# the dispatch targets about 6 times slower here (and the build 3 times
# longer); KVS_FUZZ_SANITIZER=address turns it on (a rebuild).
flags=(-O -a -s "${KVS_FUZZ_SANITIZER:-none}")

echo "== building the fuzz targets"
started=$SECONDS
cargo "${toolchain[@]}" fuzz build "${flags[@]}"
echo "built in $((SECONDS - started)) s"

mkdir -p grown/logs
failed=()
for target in "${targets[@]}"; do
    mkdir -p "grown/$target"
    options=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10)
    if [ "$target" != batch ]; then
        options+=(-dict=xmlrpc.dict)
    fi
    log="grown/logs/$target.log"
    echo "== fuzzing $target for $seconds s"
    if cargo "${toolchain[@]}" fuzz run "${flags[@]}" "$target" "grown/$target" "corpus/$target" -- "${options[@]}" >"$log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true
    else
        echo "$target FAILED; the end of fuzz/$log:"
        tail -60 "$log"
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found a crash in: ${failed[*]}; the inputs are in fuzz/artifacts/TARGET/;" \
        "reproduce one with: (cd fuzz && cargo ${toolchain[*]} fuzz run ${flags[*]} TARGET artifacts/TARGET/FILE)" >&2
    exit 1
fi
echo "== no crash in ${#targets[@]} targets, $seconds s each ($((SECONDS - started)) s in all)"
