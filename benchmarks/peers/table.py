"""Merge results/<library>-<dtype>.json into results/peers.json and the table results/peers.md.

Also reads results/cli-*/bench.json (`mppi bench --threads 1 --out ...`, the Rust library called
directly): its 1-thread rows of the peer problems become the "mppi CLI" column, their blocks
pooled over every cli-* run (run.sh runs the CLI before and after the Python bindings).

Usage: python3 table.py RESULTS_DIR   (standard library only; run.sh calls it)
"""

import glob
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PROBLEMS  # noqa: E402

# The numbers quoted in the issue (2 vCPU AMD EPYC, AVX2+FMA, float32, one thread, median of
# 15 blocks): ms per command() for the pendulum, M sample-steps/s for the others.
ISSUE = {
    "pendulum_t30_k1000": {"pytorch-mppi": ("ms", 4.15), "jax-mppi": ("ms", 1.33)},
    "pendulum_t15_k100": {"pytorch-mppi": ("ms", 1.81), "jax-mppi": ("ms", 0.146)},
    "double_integrator_t50_k4096": {"pytorch-mppi": ("M/s", 9.9), "jax-mppi": ("M/s", 17.3)},
    "unicycle_t50_k4096": {"pytorch-mppi": ("M/s", 10.0), "jax-mppi": ("M/s", 14.1)},
}
PEERS = ["pytorch-mppi", "jax-mppi"]
CLI = "mppi CLI (Rust)"
LIBS = [CLI, "mppi-py builtin", "mppi-py numpy"] + PEERS
DTYPES = ["float32", "float64"]
PRECISION = {"f32": "float32", "f64": "float64"}


def cli_runs(out_dir):
    """The CLI's bench.json files as runs of the same shape as the Python benchmarks' files."""
    reports = []
    for path in sorted(glob.glob(os.path.join(out_dir, "cli-*", "bench.json"))):
        with open(path) as f:
            reports.append((os.path.basename(os.path.dirname(path)), json.load(f)))
    if not reports:
        return []
    by_size = {(s["model"], s["K"], s["T"]): name for name, s in PROBLEMS.items()}
    runs = []
    for dtype in DTYPES:
        rows = {}
        for run_name, rep in reports:
            for m in rep["problems"]:
                name = by_size.get((m["task"], m["samples"], m["horizon"]))
                if m["threads"] != 1 or name is None or PRECISION[m["precision"]] != dtype:
                    continue
                rows.setdefault(name, []).append((run_name, m))
        results = []
        for name, ms in rows.items():
            blocks = [b for _, m in ms for b in m["block_ms"]]
            med = statistics.median(blocks)
            spec = PROBLEMS[name]
            results.append(dict(
                problem=name,
                label=spec["label"],
                K=spec["K"],
                T=spec["T"],
                blocks=len(blocks),
                calls_per_block=sorted({m["calls_per_block"] for _, m in ms}),
                median_ms=med,
                min_ms=min(blocks),
                max_ms=max(blocks),
                block_medians_ms=blocks,
                msamplesteps_per_s=spec["K"] * spec["T"] / med / 1e3,
                runs={r: dict(median_ms=m["median_ms"], min_ms=m["min_ms"], max_ms=m["max_ms"],
                              reference_median_ms=(m.get("reference") or {}).get("median_ms"))
                      for r, m in ms},
                measured="mppi bench: Controller::act (shift + one EM iteration, diagnostics "
                         "basic), the task's default config at K, T; a block's value is its "
                         "mean time per step over >= 20 ms of back-to-back calls",
            ))
        if results:
            machine = reports[0][1]["machine"]
            runs.append(dict(
                library=CLI,
                versions={"rustc": machine["rustc"].replace("rustc ", "", 1),
                          "compiled": "+".join(machine["compiled_features"])},
                dtype=dtype,
                threads="--threads 1",
                machine=dict(python="-", cpu=machine["cpu"],
                             cpu_affinity=f"{machine['logical_cores']} visible", cli=machine),
                cli_runs=[r for r, _ in reports],
                results=results,
            ))
    return runs


def cell(r):
    if r is None:
        return "n/a"
    return (f"{r['median_ms']:.3f} ms [{r['min_ms']:.3f}–{r['max_ms']:.3f}]<br>"
            f"{r['msamplesteps_per_s']:.2f} M/s")


def ms(r):
    return "n/a" if r is None else f"{r['median_ms']:.3f}"


def ratio(a, b):
    return "n/a" if a is None or b is None else f"{a['median_ms'] / b['median_ms']:.2f}x"


def cli_method(r):
    """A builtin row timed as `mppi bench` times (bench_mppi_py.cli_method), if recorded."""
    return None if r is None else r.get("cli_method")


def issue_cell(name, lib):
    unit, v = ISSUE[name][lib]
    kt = PROBLEMS[name]["K"] * PROBLEMS[name]["T"]
    if unit == "ms":
        return f"{v} ms ({kt / v / 1e3:.2f} M/s)"
    return f"{kt / v / 1e6 * 1e3:.2f} ms ({v} M/s)"


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "results"
    runs = []
    for path in sorted(glob.glob(os.path.join(out_dir, "*-float*.json"))):
        with open(path) as f:
            runs.append(json.load(f))
    runs += cli_runs(out_dir)
    by = {(r["library"], r["dtype"]): {x["problem"]: x for x in r["results"]} for r in runs}
    libs = [lib for lib in LIBS if any((lib, dt) in by for dt in DTYPES)]
    libs += sorted({r["library"] for r in runs} - set(libs))

    def get(lib, dt, name):
        return by.get((lib, dt), {}).get(name)

    # the ratio columns whose two libraries were run: (title, (numerator, its figure), denominator)
    ratios = [r for r in [
        ("builtin / CLI", ("mppi-py builtin", cli_method), CLI),
        ("numpy / pytorch-mppi", ("mppi-py numpy", lambda r: r), "pytorch-mppi"),
    ] if r[1][0] in libs and r[2] in libs]

    def rows():
        for name, spec in PROBLEMS.items():
            for dt in DTYPES:
                if any(get(lib, dt, name) for lib in libs):
                    yield name, spec, dt

    lines = [
        "# Peer comparison: one MPPI control step (shift + one iteration), one CPU thread",
        "",
        "Generated by `benchmarks/peers/run.sh`; see `benchmarks/peers/README.md`. "
        "The dtype is the rollout precision; the numpy-defined model (`mppi-py numpy`) always "
        "runs in float64, whatever the row.",
        "",
        "## Milliseconds per control step",
        "",
        "Median over blocks. The Python columns are timed like the peers (a block's value is "
        "the median of its calls); \"builtin, as CLI\" is the same builtin controller timed "
        "the way `mppi bench` times the Rust library (a block's value is its mean time per "
        "call over at least 20 ms), and builtin / CLI is the ratio of those two like-for-like "
        "figures (the goal: at most 1.2x). numpy / pytorch-mppi: mppi-py numpy's time over "
        "pytorch-mppi's in the same dtype row (below 1: the numpy-defined model is faster).",
        "",
        "| problem | dtype | " + " | ".join(
            lib + (" | builtin, as CLI" if lib == "mppi-py builtin" else "") for lib in libs)
        + "".join(f" | {name}" for name, _, _ in ratios) + " |",
        "| --- | --- | " + " | ".join(
            "---:" + (" | ---:" if lib == "mppi-py builtin" else "") for lib in libs)
        + " | ---:" * len(ratios) + " |",
    ]
    for name, spec, dt in rows():
        row = [name, dt]
        for lib in libs:
            row.append(ms(get(lib, dt, name)))
            if lib == "mppi-py builtin":
                row.append(ms(cli_method(get(lib, dt, name))))
        row += [ratio(a(get(x, dt, name)), get(y, dt, name)) for _, (x, a), y in ratios]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## Details",
        "",
        "Median over blocks, [min–max of the block values], and sample-steps/s = K·T / median. "
        "A block's value is the median of its `command()` / `act()` calls for the Python "
        "libraries, and the mean time per step over a block of at least 20 ms for the CLI "
        "(its blocks pooled over the runs before and after the Python bindings). "
        "The issue's reference numbers are float32.",
        "",
        "| problem | dtype | " + " | ".join(libs)
        + " | issue: pytorch-mppi f32 | issue: jax-mppi f32 |",
        "| --- | --- | " + " | ".join("---" for _ in libs) + " | --- | --- |",
    ]
    for name, spec, dt in rows():
        row = [spec["label"], dt] + [cell(get(lib, dt, name)) for lib in libs]
        row += [issue_cell(name, lib) if dt == "float32" else "" for lib in PEERS]
        lines.append("| " + " | ".join(row) + " |")
    overhead = [(name, dt, get("mppi-py builtin", dt, name)) for name, spec, dt in rows()]
    overhead = [(n, d, x["planning_time"]) for n, d, x in overhead if x and "planning_time" in x]
    if overhead:
        lines += [
            "",
            "## The binding's cost per act() (builtin model)",
            "",
            "Median over calls of the wall time of `act()` minus the planner's own "
            "`report[\"planning_time\"]` (timed inside Rust): the call, the state in and the "
            "control out, the GIL, and whatever act() does outside the planner's timer.",
            "",
            "| problem | dtype | act − planning_time µs | planning_time ms |",
            "| --- | --- | ---: | ---: |",
        ]
        for name, dt, p in overhead:
            lines.append(f"| {name} | {dt} | {p['act_minus_planning_time_ms'] * 1e3:.1f} | "
                         f"{p['planning_time_ms']:.3f} |")
    numpy_rows = [x for r in runs if r["library"] == "mppi-py numpy" and r["dtype"] == DTYPES[0]
                  for x in r["results"] if "breakdown" in x]
    if not numpy_rows:
        numpy_rows = [x for r in runs if r["library"] == "mppi-py numpy"
                      for x in r["results"] if "breakdown" in x]
    if numpy_rows:
        lines += [
            "",
            "## Where one act() of the numpy-defined model goes",
            "",
            "One `act()` with a timer around every callback (2·T callbacks per act: "
            "`cost` and `dynamics` once per time step), and the same controller with trivial "
            "callbacks that return preallocated zeros (the binding's own cost: arrays made "
            "and read, calls, the Rust planner).",
            "",
            "| problem | act ms | dynamics ms | cost ms | outside callbacks ms "
            "| trivial callbacks act ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        seen = set()
        for x in numpy_rows:
            if x["problem"] in seen:
                continue
            seen.add(x["problem"])
            b = x["breakdown"]
            lines.append(
                f"| {x['problem']} | {b['act_ms']:.3f} | {b['dynamics_callbacks_ms']:.3f} | "
                f"{b['cost_callbacks_ms']:.3f} | {b['outside_callbacks_ms']:.3f} | "
                f"{b['trivial_callbacks_act_ms']:.3f} |")
    lines += ["", "Runs:", ""]
    for r in runs:
        m = r["machine"]
        cpb = set()
        for x in r["results"]:
            c = x["calls_per_block"]
            cpb.update(c if isinstance(c, list) else [c])
        nblocks = sorted({x["blocks"] for x in r["results"]})
        extra = ""
        if r["library"] == "jax-mppi":
            extra = ", compile excluded: " + ", ".join(
                f"{x['problem']} {x['compile_s']:.2f} s" for x in r["results"])
        if "build_target" in r:
            extra += f", build_target {r['build_target']}"
        if r["library"] == "mppi-py numpy":
            extra += ", the model in float64"
        if "cli_runs" in r:
            extra += ", blocks pooled over " + " + ".join(r["cli_runs"])
        lines.append(
            f"- {r['library']} {r['dtype']}: "
            + ", ".join(f"{k} {v}" for k, v in r["versions"].items())
            + f"; Python {m['python']}; {m['cpu']}; CPUs {m['cpu_affinity']}; {r['threads']}; "
            + "blocks " + ", ".join(map(str, nblocks))
            + " × calls " + ", ".join(map(str, sorted(cpb))) + extra
        )
    md = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "peers.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out_dir, "peers.json"), "w") as f:
        json.dump({"issue_reference": ISSUE, "runs": runs}, f, indent=2)
        f.write("\n")
    print(md)


if __name__ == "__main__":
    main()
