#!/usr/bin/env bash
# The main job on the default set-up: build plg and the sample plugins, stage them in the
# plugins directory (default: $PLG_PLUGINS_DIR, else ~/.local/share/plg/plugins), and run
# each through `plg run`. No server, no configuration.
#
# On a fresh clone the first step compiles plg (about 120 crates: a few minutes on 2 cores)
# and the first plugin compiles abi_stable once; cargo shows its progress on stderr. Plugin
# builds share one target directory ($PLG_TARGET_DIR, else ~/.cache/plg/target), so the
# other plugins take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "building plg (cargo build --release -p plg-cli)"
cargo build --release -p plg-cli
plg=target/release/plg

plugins=(hello counter kinds wordstats)
n=${#plugins[@]}
i=0
for p in "${plugins[@]}"; do
  i=$((i + 1))
  step "[$i/$n] plg build plugins/$p"
  "$plg" build "plugins/$p"
done

step "plg list"
"$plg" list

step "plg run hello --set name=world"
"$plg" run hello --set name=world

step "plg run counter --set by=5"
"$plg" run counter --set by=5

step "plg run kinds --set flag=true --set n=3 --set s=text --set 'l=[1,\"two\"]'"
"$plg" run kinds --set flag=true --set n=3 --set s=text --set 'l=[1,"two"]'

step "plg run wordstats --set 'text=the cat saw the kitten'"
"$plg" run wordstats --set 'text=the cat saw the kitten'
