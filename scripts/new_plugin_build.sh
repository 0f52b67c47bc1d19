#!/usr/bin/env bash
# Times a first and a second new plugin, `plg new` then `plg build`, with the shared target
# directory plg uses by default (here a fresh one, so the first build is cold), and prints
# the second's time as a ratio of the first's: the baseline is measured in the same run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --quiet -p plg-cli
plg="$root/target/release/plg"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PLG_TARGET_DIR="$work/target"
export PLG_PLUGINS_DIR="$work/plugins"
unset CARGO_TARGET_DIR

elapsed() { # NAME: plg new NAME, then plg build; prints seconds
    local start end
    start=$(date +%s.%N)
    "$plg" new "$1" --path "$work/$1" >/dev/null
    "$plg" build "$work/$1" >/dev/null 2>&1
    end=$(date +%s.%N)
    python3 -c "print(f'{$end - $start:.1f}')"
}

first=$(elapsed first)
second=$(elapsed second)
# Both really built and staged: each runs.
"$plg" run first --set name=a >/dev/null
"$plg" run second --set name=b >/dev/null
echo "first new plugin (cold shared target dir): ${first} s"
echo "second new plugin (same target dir):       ${second} s"
python3 -c "print(f'second / first: {$second / $first:.3f}')"
