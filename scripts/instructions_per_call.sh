#!/bin/bash
# Instructions per `execute` of a fixture plugin (default fixture-noop), counted by valgrind
# (callgrind) over 100,000 and 200,000 calls: the difference excludes loading. A figure this
# VM's noise cannot move, for comparing two builds of the call path; not a time.
#   scripts/instructions_per_call.sh [fixture-noop|fixture-greet|...]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind: apt-get install valgrind" >&2; exit 1; }
cargo build --release -q -p plg-loader --example call_loop
fixture=${1:-fixture-noop}
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    target/release/examples/call_loop "$1" "$fixture" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
a=$(count 100000)
b=$(count 200000)
echo "$fixture: $(( (b - a) / 100000 )) instructions per call"
