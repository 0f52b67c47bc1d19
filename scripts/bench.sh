#!/usr/bin/env bash
# Runs every plg benchmark and prints the ratio table recorded in BENCHMARKS.md.
# Takes a few minutes; the first run also builds 100 small plugins for the load_all figure.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p plg-loader --bench overhead
cargo bench -p plg-loader --bench load
cargo bench -p plg-loader --bench unload_memory
cargo bench -p plg-loader --bench unload_busy
cargo bench -p plg-loader --bench upgrade
cargo bench -p plg-loader --bench greet            # needs golang-go
cargo bench -p plg-loader --features git --bench distribution
python3 scripts/bench_ratios.py
