#!/usr/bin/env python3
"""Tune the planner on the closed-loop `pendulum` task (Pendulum-v1 swing-up, 200 steps).

Goal: median total cost <= 355 over seeds 0..4, 5/5 successes, <= 1 ms planning per control
step on 1 thread (diagnostics = basic).

Each evaluation runs `mppi run pendulum --seed S --set threads=1 --set diagnostics=basic
[--preset P] [--config FILE] --set KEY=VALUE ... --out DIR` for every seed (one run at a time),
reads DIR/summary.json and prints the median total cost, the successes and the median planning
time per step (the median over seeds of each run's median). Every evaluation is appended to a
JSON-lines log; `table` turns the log into a markdown table.

Usage:
  python3 benchmarks/pendulum_tuning.py eval [--seeds 0-4] [--preset dial] [--config F]
                                             [--label L] KEY=VALUE ...
  python3 benchmarks/pendulum_tuning.py sweep STAGE      # a built-in list of candidates
  python3 benchmarks/pendulum_tuning.py table [--out benchmarks/results/pendulum-tuning/table.md]

Environment: MPPI_BIN (default /tmp/mppi-base if present, else target/release/mppi),
PENDULUM_LOG (default benchmarks/results/pendulum-tuning/log.jsonl).

Costs and successes are a pure function of the settings and the seed; planning times are
wall-clock and noisy on a shared machine (re-run a candidate to confirm its time).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "pendulum-tuning")
LOG = os.environ.get("PENDULUM_LOG", os.path.join(RESULTS, "log.jsonl"))


def mppi_bin():
    env = os.environ.get("MPPI_BIN")
    if env:
        return env
    if os.path.exists("/tmp/mppi-base"):
        return "/tmp/mppi-base"
    return os.path.join(ROOT, "target", "release", "mppi")


def parse_seeds(text):
    seeds = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            seeds.extend(range(int(a), int(b) + 1))
        else:
            seeds.append(int(part))
    return seeds


def run_one(sets, seed, preset=None, config=None, base=True):
    """One closed-loop episode; returns summary.json as a dict."""
    with tempfile.TemporaryDirectory(prefix="pend-") as out:
        cmd = [mppi_bin(), "run", "pendulum", "--seed", str(seed), "-q", "--no-animation",
               "--out", out]
        if preset:
            cmd += ["--preset", preset]
        if config:
            cmd += ["--config", config]
        if base:
            cmd += ["--set", "threads=1", "--set", "diagnostics=basic"]
        for s in sets:
            cmd += ["--set", s]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}\n{proc.stderr.strip()}")
        with open(os.path.join(out, "summary.json")) as f:
            return json.load(f)


def evaluate(sets, seeds, preset=None, config=None, label=None, log=True, quiet=False):
    costs, ms, succ, angles = [], [], 0, []
    for s in seeds:
        summ = run_one(sets, s, preset, config)
        m = re.search(r"max \|angle\| ([0-9.eE+-]+)", summ.get("outcome", ""))
        angles.append(float(m.group(1)) if m else float("nan"))
        costs.append(summ["total_cost"])
        ms.append(summ["planning_time"]["median_ms"])
        succ += bool(summ["success"])
    rec = {
        "label": label or "",
        "preset": preset,
        "config": config,
        "sets": list(sets),
        "seeds": list(seeds),
        "costs": costs,
        "median_cost": statistics.median(costs),
        "mean_cost": statistics.fmean(costs),
        "successes": succ,
        "ms": ms,
        "median_ms": statistics.median(ms),
        # max |angle| over the last 50 states per seed (success needs < 0.1)
        "max_angle": angles,
    }
    if not quiet:
        desc = " ".join(([f"preset={preset}"] if preset else [])
                        + ([f"config={config}"] if config else []) + list(sets))
        print(f"{rec['median_cost']:8.2f}  {succ}/{len(seeds)}  {rec['median_ms']:6.3f} ms  "
              f"[{' '.join(f'{c:.1f}' for c in costs)}]  ang<={max(angles):.3f}  {desc}", flush=True)
    if log:
        os.makedirs(os.path.dirname(LOG), exist_ok=True)
        with open(LOG, "a") as f:
            f.write(json.dumps(rec) + "\n")
    return rec


# Built-in candidate lists (each a list of (preset, [KEY=VALUE ...])). Stages are the steps of
# the search recorded in benchmarks/results/pendulum-tuning/table.md.
def stages():
    st = {}
    st["baseline"] = [(None, []), (None, ["precision=f32"]), (None, ["samples=4000"])]
    st["lambda"] = [(None, [f"weighting.temperature.lambda={l}"])
                    for l in (0.1, 0.3, 0.5, 2.0, 5.0, 10.0)]
    st["sigma"] = [(None, [f"proposal.noise_sigma={s}"]) for s in (0.5, 0.75, 1.5, 2.0)]
    st["horizon"] = [(None, [f"horizon={h}"]) for h in (20, 25, 40, 50, 60)]
    st["family"] = [
        (None, ["proposal.kind=colored", "proposal.correlation=0.5"]),
        (None, ["proposal.kind=colored", "proposal.correlation=0.8"]),
        (None, ["proposal.kind=spline", "proposal.knots=4"]),
        (None, ["proposal.kind=spline", "proposal.knots=6"]),
        (None, ["proposal.kind=spline", "proposal.knots=8"]),
        (None, ["proposal.kind=gaussian_diag"]),
        ("dial", []),
    ]
    # refinement around the best family (spline, 3 knots)
    sp3 = ["proposal.kind=spline", "proposal.knots=3", "precision=f32"]
    win = sp3 + ["weighting.temperature.lambda=0.5"]
    st["winner"] = [(None, win)]
    # cost-vs-time frontier: sample count per family, 1 iteration
    st["frontier"] = (
        [(None, ["precision=f32", f"samples={k}"]) for k in (250, 500, 1000, 2000, 4000)]
        + [(None, ["precision=f32", "proposal.kind=colored", "proposal.correlation=0.8",
                   f"samples={k}"]) for k in (250, 500, 1000, 2000)]
        + [(None, win + [f"samples={k}"]) for k in (125, 250, 500, 1000, 2000, 4000)]
        + [(None, win + ["samples=500", "iterations=2"]),
           (None, win + ["samples=1000", "iterations=2"])])
    # the floor: far beyond 1 ms
    st["floor"] = [
        (None, ["precision=f32", "samples=16000", "iterations=3"]),
        (None, ["precision=f32", "proposal.kind=colored", "proposal.correlation=0.8",
                "samples=16000", "iterations=3"]),
        (None, win + ["samples=16000", "iterations=3"]),
        (None, win + ["samples=16000"]),
        (None, win + ["samples=16000", "horizon=28"]),
    ]
    return st


def fmt_settings(rec):
    parts = []
    if rec.get("preset"):
        parts.append(f"preset={rec['preset']}")
    if rec.get("config"):
        parts.append(f"config={os.path.relpath(rec['config'], ROOT)}")
    parts += [s.replace("proposal.", "p.").replace("weighting.temperature.", "temp.")
              for s in rec["sets"]]
    return ", ".join(f"`{p}`" for p in parts) if parts else "default"


MARKER = "<!-- everything below is generated by `pendulum_tuning.py table --out ...` -->"


def table(out):
    recs = []
    with open(LOG) as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    lines = [MARKER, "",
             "| # | stage | settings (over the task defaults; threads=1, diagnostics=basic) | "
             "seeds | median cost | successes | median ms/step | max \\|angle\\| last 50 | "
             "per-seed costs |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, r in enumerate(recs, 1):
        seeds = r["seeds"]
        ang = f"{max(r['max_angle']):.3f}" if r.get("max_angle") else "n/a"
        srange = f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) \
            else ",".join(map(str, seeds))
        lines.append(f"| {i} | {r['label']} | {fmt_settings(r)} | {srange} | "
                     f"{r['median_cost']:.2f} | {r['successes']}/{len(seeds)} | "
                     f"{r['median_ms']:.3f} | "
                     f"{ang} | "
                     f"{' '.join(f'{c:.1f}' for c in r['costs'])} |")
    text = "\n".join(lines) + "\n"
    if out and os.path.exists(out):
        # keep the hand-written summary above the marker
        with open(out) as f:
            old = f.read()
        if MARKER in old:
            text = old.split(MARKER)[0] + text
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval", help="evaluate one setting over the seeds")
    e.add_argument("--seeds", default="0-4")
    e.add_argument("--preset")
    e.add_argument("--config")
    e.add_argument("--label")
    e.add_argument("--no-log", action="store_true")
    e.add_argument("sets", nargs="*", help="KEY=VALUE overrides")
    s = sub.add_parser("sweep", help="evaluate a built-in list of candidates")
    s.add_argument("stage", choices=sorted(stages()))
    s.add_argument("--seeds", default="0-4")
    t = sub.add_parser("table", help="write the log as a markdown table")
    t.add_argument("--out", default=None, help="e.g. " + os.path.join(RESULTS, "table.md"))
    a = ap.parse_args()
    if a.cmd == "eval":
        evaluate(a.sets, parse_seeds(a.seeds), a.preset,
                 os.path.abspath(a.config) if a.config else None, a.label, log=not a.no_log)
    elif a.cmd == "sweep":
        for preset, sets in stages()[a.stage]:
            evaluate(sets, parse_seeds(a.seeds), preset, label=a.stage)
    else:
        table(a.out)


if __name__ == "__main__":
    main()
