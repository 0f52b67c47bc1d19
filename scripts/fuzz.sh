#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 600) on one core, seeded from the regression
# corpus in tests/fuzz-corpus/, prints libFuzzer's final figures, then reports how deep the
# `install` and `bundle` corpora reach into `plg install` (examples/reach.rs).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # targets: manifest bundle install (default all)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). libFuzzer needs nightly flags:
# RUSTC_BOOTSTRAP=1 lets the stable toolchain pass them. Scratch plugins directories go to
# /dev/shm when there is one (TMPDIR overrides). Not run by CI.
set -euo pipefail
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(manifest bundle install)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cargo build --release --quiet -p hello
export PLG_FUZZ_LIBRARY="$root/target/release/libhello.so"
[ -d /dev/shm ] && export TMPDIR="${TMPDIR:-/dev/shm}"

cd fuzz
for t in "${targets[@]}"; do
    case $t in
        bundle) max_len=65536 ;;
        *) max_len=4096 ;;
    esac
    mkdir -p "corpus/$t"
    cp -n "../tests/fuzz-corpus/$t/"* "corpus/$t/" 2>/dev/null || true
    echo "== $t: ${secs}s"
    RUSTC_BOOTSTRAP=1 cargo fuzz run -O -s none "$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -max_len="$max_len" -len_control=0 \
        2>&1 | grep -E "DONE|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)|panicked|ERROR"
    echo "corpus: $(ls "corpus/$t" | wc -l) inputs"
done
cd "$root"

args=()
[ -d fuzz/corpus/install ] && args+=(--cases fuzz/corpus/install)
[ -d fuzz/corpus/bundle ] && args+=(--raw fuzz/corpus/bundle)
if [ ${#args[@]} -gt 0 ]; then
    echo "== how deep the corpora reach"
    cargo run --release --quiet -p plg-fuzz-harness --example reach -- "$PLG_FUZZ_LIBRARY" "${args[@]}"
fi
