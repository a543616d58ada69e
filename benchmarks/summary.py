"""One line per benchmark run with the figures the issue's targets name, so that runs on a
noisy shared machine can be compared at a glance.

Usage: python3 benchmarks/summary.py RUN_DIR [RUN_DIR ...] > summary.md
(each RUN_DIR as written by benchmarks/run_all.sh; standard library only)
"""

import glob
import json
import os
import sys


def load(run_dir):
    out = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "mppi*", "bench.json"))):
        bench = json.load(open(path))
        for m in bench["problems"] + bench["k_sweep"]["measurements"]:
            out[(m["task"], m["samples"], m["horizon"], m["threads"])] = m
    return out


def ratio(m):
    ref = m.get("reference")
    return f"{m['median_ms'] / ref['median_ms']:.2f}x" if ref else "–"


def main():
    print("| run | pendulum T=30 K=1000, 1 thread (≤ 150 µs) | reference | double integrator, 1 thread "
          "(≥ 100 M/s) | unicycle, 1 thread (≥ 100 M/s) | diff_drive K=2048, 2 threads (≤ 2 ms) "
          "| mppi / reference (pendulum, DI, unicycle, diff_drive) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for run_dir in sys.argv[1:]:
        o = load(run_dir)
        p = o[("pendulum", 1000, 30, 1)]
        di = o[("double_integrator", 4096, 50, 1)]
        un = o[("unicycle", 4096, 50, 1)]
        dd1 = o[("diff_drive", 2048, 100, 1)]
        dd2 = o[("diff_drive", 2048, 100, 2)]
        print(f"| {os.path.basename(run_dir.rstrip('/'))} "
              f"| {p['median_ms'] * 1e3:.0f} µs [{p['min_ms'] * 1e3:.0f}–{p['max_ms'] * 1e3:.0f}] "
              f"| {p['reference']['median_ms'] * 1e3:.0f} µs "
              f"| {di['sample_steps_per_s'] / 1e6:.0f} M/s "
              f"| {un['sample_steps_per_s'] / 1e6:.0f} M/s "
              f"| {dd2['median_ms']:.2f} ms [{dd2['min_ms']:.2f}–{dd2['max_ms']:.2f}] "
              f"| {ratio(p)}, {ratio(di)}, {ratio(un)}, {ratio(dd1)} |")


if __name__ == "__main__":
    main()
