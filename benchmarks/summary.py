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
        for m in bench["k_sweep"]["measurements"] + bench["problems"]:
            key = (m["task"], m["samples"], m["horizon"], m.get("precision", "f64"), m["threads"])
            out[key] = m
    return out


def ratio(m):
    ref = m and m.get("reference")
    return f"{m['median_ms'] / ref['median_ms']:.2f}x" if ref else "–"


def us(m):
    if m is None:
        return "–"
    return f"{m['median_ms'] * 1e3:.0f} µs [{m['min_ms'] * 1e3:.0f}–{m['max_ms'] * 1e3:.0f}]"


def rate(m):
    return "–" if m is None else f"{m['sample_steps_per_s'] / 1e6:.0f} M/s"


def ms(m):
    return "–" if m is None else f"{m['median_ms']:.2f} ms [{m['min_ms']:.2f}–{m['max_ms']:.2f}]"


def main():
    print("| run | float | pendulum T=30 K=1000, 1 thread (≤ 150 µs) | reference | double "
          "integrator, 1 thread (≥ 100 M/s) | unicycle, 1 thread (≥ 100 M/s) | diff_drive "
          "K=2048, 2 threads (≤ 2 ms) | mppi / reference (pendulum, DI, unicycle, diff_drive) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for run_dir in sys.argv[1:]:
        o = load(run_dir)
        for precision in ("f64", "f32"):
            def get(task, k, t, threads):
                return o.get((task, k, t, precision, threads))
            p = get("pendulum", 1000, 30, 1)
            if p is None:
                continue
            di = get("double_integrator", 4096, 50, 1)
            un = get("unicycle", 4096, 50, 1)
            dd1 = get("diff_drive", 2048, 100, 1)
            dd2 = get("diff_drive", 2048, 100, 2)
            ref = p.get("reference")
            ref_text = "–" if ref is None else f"{ref['median_ms'] * 1e3:.0f} µs"
            print(f"| {os.path.basename(run_dir.rstrip('/'))} | {precision} | {us(p)} "
                  f"| {ref_text} "
                  f"| {rate(di)} | {rate(un)} | {ms(dd2)} "
                  f"| {ratio(p)}, {ratio(di)}, {ratio(un)}, {ratio(dd1)} |")


if __name__ == "__main__":
    main()
