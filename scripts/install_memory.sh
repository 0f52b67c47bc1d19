#!/usr/bin/env bash
# Peak memory (max RSS) of `plg install`: a bundle with a 5 MB library (fixture-big) and a
# gzip bomb, each against `tar tzf` of the same archive in the same run (tar streams through
# the whole archive; it is not asked to write the bomb's 4 GiB to disk). Needs GNU time
# (/usr/bin/time, Debian package `time`) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p plg-cli -p fixture-big
PLG="$PWD/target/release/plg"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

"$PLG" pack tests/fixtures/fixture-big -o "$T/big.plg" >/dev/null
# The bomb: one 4 GiB entry of zeros, about 4 MB compressed, so the ratio cap (200x) is past
# the absolute cap (512 MiB), which is what stops it.
python3 - "$T/bomb.plg" <<'PY'
import gzip, sys, tarfile
size = 4 << 30
class Zeros:
    def __init__(self, n): self.left = n
    def read(self, k=-1):
        k = self.left if k < 0 else min(k, self.left)
        self.left -= k
        return bytes(k)
with gzip.open(sys.argv[1], "wb", compresslevel=9) as gz:
    with tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("libbomb.so")
        info.size = size
        tar.addfile(info, Zeros(size))
PY

rss() { # prints max RSS in KiB of the command
  /usr/bin/time -f %M -o "$T/rss" "$@" >/dev/null 2>&1 || true
  tail -n 1 "$T/rss"
}
row() { # name, archive
  rm -rf "$T/pd"
  local base plg
  base=$(rss tar tzf "$2")
  plg=$(rss "$PLG" install "$2" --plugins-dir "$T/pd" --force)
  python3 -c "b,p=$base,$plg; print(f'| {\"$1\"} | {b/1024:.1f} MiB | {p/1024:.1f} MiB | {p/b:.2f}x |')"
}
echo "| install of | tar tzf (max RSS) | plg install (max RSS) | ratio |"
echo "|---|---|---|---|"
row "fixture-big bundle ($(du -k "$T/big.plg" | cut -f1) KiB)" "$T/big.plg"
row "gzip bomb ($(du -k "$T/bomb.plg" | cut -f1) KiB, refused)" "$T/bomb.plg"
