#!/usr/bin/env bash
# Regenerates the Cargo.lock `plg new` writes into a new plugin crate
# (loader/src/packaging/scaffold/plugin.Cargo.lock): the workspace's own Cargo.lock pruned to
# what a plugin crate needs, so a new plugin builds with exactly the versions plg is tested
# with. Run it after changing plg-api's dependencies or `cargo update`; the test
# `scaffold::a_new_crate_pins_the_versions_plg_is_tested_with` fails until you do.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src"
touch "$tmp/src/lib.rs"
cat > "$tmp/Cargo.toml" <<TOML
[package]
name = "plg-scaffold-lock"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
plg-api = { version = "0.1.0", path = "$root/plugin-api" }

[workspace]
TOML
cp "$root/Cargo.lock" "$tmp/Cargo.lock"
# Resolving offline against the copied lock keeps its versions and drops what is unused.
(cd "$tmp" && cargo tree --offline --quiet >/dev/null)
# Drop the placeholder crate's own entry: cargo adds the new crate's on its first build.
python3 - "$tmp/Cargo.lock" "$root/loader/src/packaging/scaffold/plugin.Cargo.lock" <<'PY'
import sys
text = open(sys.argv[1]).read()
blocks = text.split("\n[[package]]\n")
kept = [b for b in blocks if 'name = "plg-scaffold-lock"' not in b]
open(sys.argv[2], "w").write("\n[[package]]\n".join(kept))
PY
echo "wrote loader/src/packaging/scaffold/plugin.Cargo.lock"
