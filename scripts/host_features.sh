#!/usr/bin/env bash
# What a host pays for plg-loader's features: the crates it compiles and the time of a cold
# debug build, for the default (no features) against `features = ["build", "git"]` (what the
# default was before), each in its own fresh target directory, in the same run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

host() { # NAME FEATURES
    mkdir -p "$work/$1/src"
    cat > "$work/$1/Cargo.toml" <<TOML
[package]
name = "$1"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
plg-loader = { path = "$root/loader", features = [$2] }

[workspace]
TOML
    cat > "$work/$1/src/main.rs" <<'RS'
fn main() {
    let manager = plg_loader::PluginManager::new("plugins");
    println!("{} loaded", manager.load_all().loaded.len());
}
RS
    cp "$root/Cargo.lock" "$work/$1/Cargo.lock"
}

measure() { # NAME: prints "CRATES SECONDS"
    local crates start end
    crates=$(cd "$work/$1" && cargo tree --offline -e normal,build --prefix none 2>/dev/null | sed 's/ (\*)//' | sort -u | wc -l)
    start=$(date +%s.%N)
    (cd "$work/$1" && CARGO_TARGET_DIR="$work/$1/target" cargo build --offline --quiet)
    end=$(date +%s.%N)
    python3 -c "print($crates, f'{$end - $start:.1f}')"
}

host lean ''
host full '"build", "git"'
read -r lean_crates lean_secs < <(measure lean)
read -r full_crates full_secs < <(measure full)
echo "default (no features):   $lean_crates crates, ${lean_secs} s"
echo "build + git:             $full_crates crates, ${full_secs} s"
python3 -c "print(f'default / build+git: crates {$lean_crates / $full_crates:.2f}, build time {$lean_secs / $full_secs:.2f}')"
