#!/usr/bin/env bash
# The main job on the default set-up: build plg and the sample plugins, stage them in the
# plugins directory (default: $PLG_PLUGINS_DIR, else ~/.local/share/plg/plugins), and run
# each through `plg run`. No server, no configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p plg-cli
plg=target/release/plg

for p in hello counter kinds; do
  "$plg" build "plugins/$p"
done

echo; echo "== plg list"
"$plg" list

echo; echo "== plg run hello --set name=world"
"$plg" run hello --set name=world

echo; echo "== plg run counter --set by=5"
"$plg" run counter --set by=5

echo; echo "== plg run kinds --set flag=true --set n=3 --set s=text --set 'l=[1,\"two\"]'"
"$plg" run kinds --set flag=true --set n=3 --set s=text --set 'l=[1,"two"]'
