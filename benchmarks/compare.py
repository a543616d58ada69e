"""Side-by-side table for BENCHMARKS.md: `mppi bench` JSON (ours, with the reference kernel)
next to the peers' JSON (pytorch-mppi, jax-mppi), with ratios and the issue's targets.

Usage: python3 benchmarks/compare.py BENCH_JSON [BENCH_JSON ...] PEERS_JSON > comparison.md
(several bench JSON files are merged, e.g. one per thread count; standard library only)
"""

import json
import sys

# our problem -> (peers' problem key or None, target (unit, value, threads) or None)
PROBLEMS = {
    ("pendulum", 1000, 30): ("pendulum_t30_k1000", ("ms", 0.15, 1)),
    ("pendulum", 100, 15): ("pendulum_t15_k100", None),
    ("double_integrator", 4096, 50): ("double_integrator_t50_k4096", ("M/s", 100.0, 1)),
    ("unicycle", 4096, 50): ("unicycle_t50_k4096", ("M/s", 100.0, 1)),
    ("diff_drive", 2048, 100): (None, ("ms", 2.0, 2)),
}
# our rollout precisions: float64, and float32 as the peers run
PRECISIONS = ("f64", "f32")
PEERS = [("pytorch-mppi", "float32"), ("jax-mppi", "float32"),
         ("pytorch-mppi", "float64"), ("jax-mppi", "float64")]


def fmt_ms(ms):
    return f"{ms * 1e3:.1f} µs" if ms < 1.0 else f"{ms:.3f} ms"


def main():
    *bench_paths, peers_path = sys.argv[1:]
    ours = {}  # (task, K, T, precision, threads) -> measurement
    sweep = {}  # (K, threads) -> diff_drive measurement
    machine = None
    for path in bench_paths:
        bench = json.load(open(path))
        machine = bench["machine"]
        for p in bench["problems"]:
            key = (p["task"], p["samples"], p["horizon"], p.get("precision", "f64"), p["threads"])
            ours[key] = p
        for p in bench["k_sweep"]["measurements"]:
            sweep[(p["samples"], p["threads"])] = p
    peers = {}
    for run in json.load(open(peers_path))["runs"]:
        for r in run["results"]:
            peers[(r["problem"], run["library"], run["dtype"])] = r

    print(f"Machine: {machine['cpu']}, {machine['logical_cores']} logical cores, "
          f"{machine['os']}, {machine['rustc']}, compiled for "
          f"{' '.join(machine['compiled_features'])}.\n")
    print("One control step (warm-start shift + one iteration), median over blocks "
          "[min–max of the block medians]; M/s = million sample-steps per second. "
          "Peers run on one thread (float32 is their default).\n")
    head = ["problem", "mppi float", "mppi 1 thread", "mppi 2 threads", "reference (1 thread)",
            "mppi / reference"]
    head += [f"{lib} {dt}" for lib, dt in PEERS]
    head += ["speed-up vs jax-mppi f32", "speed-up vs pytorch-mppi f32", "target"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for (task, k, t), (peer_key, target) in PROBLEMS.items():
        for precision in PRECISIONS:
            one = ours.get((task, k, t, precision, 1))
            two = ours.get((task, k, t, precision, 2))
            if one is None and two is None:
                continue
            row = [f"{task} T={t} K={k}", precision]
            for m in (one, two):
                row.append("–" if m is None else
                           f"{fmt_ms(m['median_ms'])} [{fmt_ms(m['min_ms'])}–{fmt_ms(m['max_ms'])}]"
                           f"<br>{m['sample_steps_per_s'] / 1e6:.1f} M/s")
            ref = one.get("reference") if one else None
            row.append("–" if ref is None else fmt_ms(ref["median_ms"]))
            row.append("–" if ref is None else f"{one['median_ms'] / ref['median_ms']:.2f}x")
            for lib, dt in PEERS:
                r = peers.get((peer_key, lib, dt))
                row.append("n/a" if r is None else
                           f"{fmt_ms(r['median_ms'])}<br>{r['msamplesteps_per_s']:.1f} M/s")
            for lib in ("jax-mppi", "pytorch-mppi"):
                r = peers.get((peer_key, lib, "float32"))
                row.append("–" if r is None or one is None else
                           f"{r['median_ms'] / one['median_ms']:.1f}x")
            m = None if target is None else (one if target[2] == 1 else two)
            if m is None:
                row.append("–")
            else:
                unit, v, n = target
                where = f"{n} thread{'s' if n > 1 else ''}"
                if unit == "ms":
                    ok = m["median_ms"] <= v
                    row.append(f"≤ {fmt_ms(v)}, {where}: {'met' if ok else 'missed'}")
                else:
                    ok = m["sample_steps_per_s"] / 1e6 >= v
                    row.append(f"≥ {v:.0f} M/s, {where}: {'met' if ok else 'missed'}")
            print("| " + " | ".join(row) + " |")

    print("\nDifferential drive through a costmap (T = 100), K sweep (float64):\n")
    print("| K | mppi 1 thread | mppi 2 threads |")
    print("| --- | --- | --- |")
    for k in sorted({k for k, _ in sweep}):
        cells = [str(k)]
        for m in (sweep.get((k, 1)), sweep.get((k, 2))):
            cells.append("–" if m is None else
                         f"{fmt_ms(m['median_ms'])} ({m['sample_steps_per_s'] / 1e6:.1f} M/s)")
        print("| " + " | ".join(cells) + " |")

if __name__ == "__main__":
    main()
