#!/usr/bin/env python3
"""Turn the last criterion run into the ratio table of BENCHMARKS.md.

Each group holds a baseline and plg's measurement from the same run; the ratio is
plg / baseline on criterion's median estimate. Run after `scripts/bench.sh` (or the
individual `cargo bench` commands), from the repository root.
"""
import json
import os
import sys

TARGET = os.environ.get("CARGO_TARGET_DIR", "target")
CRITERION = os.path.join(TARGET, "criterion")

# (group, baseline bench, plg bench, target ratio, what)
GROUPS = [
    ("noop_execute", "baseline_raw_dlsym_call", "plg_execute", 5.0,
     "no-op execute, empty context vs raw dlsym'd extern \"C\" fn()"),
    ("noop_execute", "baseline_raw_dlsym_call", "plg_execute_metrics_off", None,
     "no-op execute with metrics off vs raw dlsym'd extern \"C\" fn()"),
    ("context_8_keys", "baseline_clone_native_hashmap", "plg_execute", 1.5,
     "execute with an 8-key context vs cloning the same HashMap<String, Value>"),
    ("context_8_keys", "plg_execute_metrics_off", "plg_execute", 1.1,
     "metrics on vs off, execute with an 8-key context"),
    ("swap_release", "baseline_cold_load_manifest", "plg_first_call_served", 3.0,
     "hot upgrade, release library: on disk to first call served (no debounce) vs cold load_manifest + call"),
    ("swap_release", "baseline_cold_load_manifest", "plg_reload_then_call", None,
     "the same, the caller waiting for reload (old version retired) before it calls"),
    ("swap", "baseline_cold_load_manifest", "plg_first_call_served", 3.0,
     "hot upgrade, debug library (as plg dev builds): on disk to first call served vs cold load + call"),
    ("load_one", "baseline_libloading_new_and_get", "plg_load_manifest", 2.0,
     "load one plugin (open + every check) vs libloading new + get"),
    ("load_all_100", "baseline_100_single_loads", "plg_load_all", 1.2,
     "load_all of 100 plugins vs 100 single loads"),
    ("install_5mb", "baseline_tar_xzf", "plg_install", 1.2,
     "install a bundle with a 5 MB library (plg install) vs tar xzf of the same archive"),
    ("pack_5mb", "baseline_tar_czf", "plg_pack", 1.2,
     "pack (plg pack) vs tar czf of the same files, gzip level 6"),
    ("unload_64_callers", "baseline_unload_idle", "plg_unload_under_64_callers", None,
     "unload while 64 threads call the plugin vs unload idle"),
    ("git_warm_cache", "baseline_local_so_load", "plg_remote_git_cached_load", None,
     "remote_git load with a warm cache vs local_so load of the same library"),
]


def median_ns(group, bench):
    path = os.path.join(CRITERION, group, bench, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


def fmt_ns(ns):
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= div:
            return f"{ns / div:.2f} {unit}"
    return f"{ns:.2f} ns"


def main():
    print("| figure | baseline | plg | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    missing = 0
    for group, base, ours, target, what in GROUPS:
        try:
            b, o = median_ns(group, base), median_ns(group, ours)
        except FileNotFoundError:
            print(f"| {what} | not run | | | {target} | |")
            missing += 1
            continue
        ratio = o / b
        if target is None:
            print(f"| {what} | {fmt_ns(b)} | {fmt_ns(o)} | **{ratio:.2f}×** | (reported) | |")
            continue
        met = "yes" if ratio <= target else "no"
        print(f"| {what} | {fmt_ns(b)} | {fmt_ns(o)} | **{ratio:.2f}×** | ≤ {target}× | {met} |")
    mem = os.path.join(TARGET, "plg-bench", "unload_memory.json")
    if os.path.exists(mem):
        rows = json.load(open(mem))
        print()
        print("| unload memory case | RSS growth | virtual growth | baseline RSS growth "
              "(raw open/close) | cycles not unmapped | still mapped at end | target |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            target = "≤ 1 MiB" if not r["case"].startswith("tls") else "(reported)"
            print(f"| {r['case']} ({r['cycles']} cycles) | {r['growth_bytes'] / 1024:.0f} KiB | "
                  f"{r['vm_growth_bytes'] / 1024:.0f} KiB | {r['baseline_growth_bytes'] / 1024:.0f} KiB | "
                  f"{r['not_unmapped']} | {r['still_mapped_at_end']} | {target} |")
    else:
        missing += 1
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
