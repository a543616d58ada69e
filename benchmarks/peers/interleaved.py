"""Interleaved peer comparison: robust ratios pytorch-mppi / ours and jax-mppi / ours.

run.sh times each library's whole benchmark one after another, so a slow minute of a shared
machine falls on one library and not on the others. Here every library runs as a long-lived
server (bench_torch.py, bench_jax.py, bench_mppi_py.py with --serve, one process per library
and dtype, each in its own virtual environment, all pinned to the same CPU), and the driver asks
them for short timing blocks in turn: in every round it visits each (library, problem, dtype)
once, in an order shuffled with a fixed seed, and waits for each block before asking for the
next one (strictly sequential: only one server runs at a time). So block k of every library
falls in the same few seconds, and a ratio is taken between blocks of the same round.

"ours" is mppi-py builtin: the Rust library with the task's built-in model, called through the
Python bindings (about 1-20 us per call on top of the planner). "mppi-py numpy" (our library
with the model written in numpy, always float64) is timed too unless --libs leaves it out.

Usage (standard library only; the venvs are those of run.sh):
    python3 benchmarks/peers/interleaved.py [--rounds 15] [--tag run1]
    python3 benchmarks/peers/interleaved.py --combine results/interleaved-run*.json

Writes results/interleaved[-TAG].json (every block) and .md (the tables); --combine writes
results/interleaved-combined.json and .md: the spread of the per-run median ratios.
"""

import argparse
import datetime
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import PROBLEMS  # noqa: E402

DTYPES = ["float32", "float64"]
# library key -> (label, script, server variant or None)
LIBS = {
    "ours": ("mppi-py builtin", "bench_mppi_py.py", "builtin"),
    "numpy": ("mppi-py numpy", "bench_mppi_py.py", "numpy"),
    "torch": ("pytorch-mppi", "bench_torch.py", None),
    "jax": ("jax-mppi", "bench_jax.py", None),
}
PEERS = ["torch", "jax"]
# The goal: at least this many times faster than the peer, every shared problem, 1 thread.
GOAL = {"torch": 27.0, "jax": 9.0}
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",
}


def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def venv_python(name):
    return os.path.join(HERE, f".venv-{name}", "bin", "python")


def cpu_steal(cpu):
    """Steal and total jiffies of one CPU from /proc/stat (None where unreadable)."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{cpu} "):
                    v = [int(x) for x in line.split()[1:]]
                    return v[7] if len(v) > 7 else 0, sum(v)
    except OSError:
        pass
    return None


class Server:
    """One benchmark script in --serve mode: a long-lived subprocess spoken to in JSON lines."""

    def __init__(self, lib, dtype, python, problems, args, log_dir, tag=""):
        self.lib, self.dtype = lib, dtype
        script = LIBS[lib][1]
        cmd = [python, os.path.join(HERE, script), "--serve", "--dtype", dtype,
               "--problems", ",".join(problems), "--warmup", str(args.warmup),
               "--block-seconds", str(args.block_seconds)]
        if script == "bench_mppi_py.py":
            cmd += ["--serve-variants", ",".join(LIBS[k][2] for k in args.libs
                                                 if LIBS[k][1] == script)]
        if shutil.which("taskset") and args.cpu >= 0:
            cmd = ["taskset", "-c", str(args.cpu)] + cmd
        env = dict(os.environ, **THREAD_ENV)
        name = "mppi-py" if script == "bench_mppi_py.py" else lib
        self.name = f"{name}-{dtype}"
        self.stderr_path = os.path.join(log_dir, f"interleaved{tag}-server-{self.name}.log")
        self.stderr = open(self.stderr_path, "w")
        self.cmd = cmd
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env, text=True, bufsize=1,
                                     cwd=HERE)
        self.ready = self._read()
        self.startup_s = time.perf_counter() - t0
        if not self.ready.get("ready"):
            raise SystemExit(f"{self.name} did not start: {self.ready}")

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.stderr.flush()
            with open(self.stderr_path) as f:
                tail = f.read()[-3000:]
            raise SystemExit(f"server {self.name} ended (rc {self.proc.poll()}):\n{tail}")
        return json.loads(line)

    def ask(self, req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        rep = self._read()
        if "error" in rep:
            raise SystemExit(f"server {self.name}: {rep['error']} (request {req})")
        return rep

    def close(self):
        try:
            self.ask({"cmd": "quit"})
        except (SystemExit, BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.stderr.close()


def quantiles(xs):
    """min, q1, median, q3, max (inclusive quartiles)."""
    xs = sorted(xs)
    if len(xs) == 1:
        return xs * 5
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return [xs[0], q1, q2, q3, xs[-1]]


def analyse(blocks, libs, problems, dtypes):
    """Per (problem, dtype): each library's median ms and min-max over blocks, and the per-round
    ratios peer / ours with their median, min-max and interquartile range."""
    rows = []
    for prob in problems:
        for dt in dtypes:
            row = dict(problem=prob, dtype=dt, libs={}, ratios={})
            by_lib = {}
            for lib in libs:
                b = {x["round"]: x["median_s"] * 1e3 for x in blocks
                     if x["lib"] == lib and x["problem"] == prob and x["dtype"] == dt}
                if not b:
                    continue
                by_lib[lib] = b
                q = quantiles(list(b.values()))
                row["libs"][lib] = dict(median_ms=q[2], min_ms=q[0], max_ms=q[4],
                                        q1_ms=q[1], q3_ms=q[3], blocks=len(b))
            if "ours" in by_lib:
                ours = by_lib["ours"]
                for peer in [p for p in libs if p != "ours"]:
                    if peer not in by_lib:
                        continue
                    rs = [by_lib[peer][r] / ours[r] for r in sorted(ours) if r in by_lib[peer]]
                    q = quantiles(rs)
                    row["ratios"][peer] = dict(
                        median=q[2], min=q[0], q1=q[1], q3=q[3], max=q[4], rounds=len(rs),
                        per_round=rs,
                        ratio_of_medians=row["libs"][peer]["median_ms"]
                        / row["libs"]["ours"]["median_ms"],
                        goal=GOAL.get(peer),
                    )
            rows.append(row)
    return rows


def fmt_ms(x):
    return f"{x:.3f}" if x < 100 else f"{x:.1f}"


def markdown(res):
    libs = res["libs"]
    lines = [
        "# Interleaved peer comparison: one MPPI control step, one CPU thread",
        "",
        f"Generated by `benchmarks/peers/interleaved.py` on {res['date']}: {res['rounds']} "
        f"rounds, every (library, problem, dtype) block once per round in a shuffled order "
        f"(seed {res['seed']}), blocks of about {res['block_seconds']} s, one at a time, all "
        f"servers pinned to CPU {res['cpu']}. Load average before / after: "
        f"{' '.join(f'{x:.2f}' for x in res['loadavg_start'])} / "
        f"{' '.join(f'{x:.2f}' for x in res['loadavg_end'])}"
        + (f"; steal on CPU {res['cpu']}: {res['steal_pct']:.1f} %" if res.get("steal_pct")
           is not None else "") + f"; {res['wall_s']:.0f} s in all.",
        "",
        "ours = mppi-py builtin (the Rust library with the task's built-in model, through the "
        "Python bindings). A block's value is the median of its calls; the table gives the "
        "median over rounds [min–max]. The numpy-defined model always runs in float64.",
        "",
        "## Milliseconds per control step",
        "",
        "| problem | dtype | " + " | ".join(LIBS[k][0] for k in libs) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in libs) + " |",
    ]
    for row in res["rows"]:
        cells = []
        for k in libs:
            v = row["libs"].get(k)
            cells.append(f"{fmt_ms(v['median_ms'])} [{fmt_ms(v['min_ms'])}–{fmt_ms(v['max_ms'])}]"
                         if v else "")
        lines.append(f"| {row['problem']} | {row['dtype']} | " + " | ".join(cells) + " |")
    peers = [p for p in PEERS if p in libs]
    if "ours" in libs and peers:
        lines += [
            "",
            "## Ratios peer / ours, per round",
            "",
            "Each round's peer block over the same round's ours block; median over rounds, "
            "[interquartile range], (min–max), and the goal (pytorch-mppi ≥ 27x, jax-mppi ≥ 9x).",
            "",
            "| problem | dtype | " + " | ".join(f"{LIBS[p][0]} / ours" for p in peers) + " |",
            "| --- | --- | " + " | ".join("---:" for _ in peers) + " |",
        ]
        for row in res["rows"]:
            cells = []
            for p in peers:
                r = row["ratios"].get(p)
                if not r:
                    cells.append("")
                    continue
                ok = "meets" if r["median"] >= r["goal"] else "below"
                cells.append(f"**{r['median']:.1f}x** [{r['q1']:.1f}–{r['q3']:.1f}] "
                             f"({r['min']:.1f}–{r['max']:.1f}), {ok} {r['goal']:.0f}x")
            lines.append(f"| {row['problem']} | {row['dtype']} | " + " | ".join(cells) + " |")
    lines += ["", "Servers (startup includes warm-up; jax compiles there):", ""]
    for s in res["servers"]:
        ver = s["ready"].get("info", {}).get("versions", {})
        calls = ", ".join(f"{k} {v['calls']}" for k, v in s["ready"]["keys"].items())
        lines.append(f"- {s['name']}: {', '.join(f'{k} {v}' for k, v in ver.items())}; "
                     f"Python {s['ready']['machine']['python']}; started in "
                     f"{s['startup_s']:.1f} s; calls per block: {calls}")
    lines.append("")
    return "\n".join(lines)


def run(args):
    out_dir = os.path.abspath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    tag = f"-{args.tag}" if args.tag else ""
    pythons = {
        "ours": args.python_mppi or os.environ.get("PYTHON_MPPI") or venv_python("mppi"),
        "torch": args.python_torch or venv_python("torch"),
        "jax": args.python_jax or venv_python("jax"),
    }
    pythons["numpy"] = pythons["ours"]
    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        # the driver only runs between blocks; on the same CPU it cannot overlap a block
        os.sched_setaffinity(0, {args.cpu})

    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    loadavg_start = list(os.getloadavg())
    log(f"load average {loadavg_start}; starting servers (one at a time)")
    servers = {}  # (script, dtype) -> Server
    t_start = time.perf_counter()
    try:
        for dt in args.dtypes:
            for lib in args.libs:
                script = LIBS[lib][1]
                if (script, dt) in servers:
                    continue
                s = Server(lib, dt, pythons[lib], args.problems, args, log_dir=out_dir, tag=tag)
                log(f"{s.name} ready in {s.startup_s:.1f} s")
                servers[(script, dt)] = s

        items = [(lib, p, dt) for lib in args.libs for p in args.problems for dt in args.dtypes]
        rng = random.Random(args.seed)
        blocks, round_info = [], []
        t0 = time.perf_counter()
        for r in range(args.rounds):
            order = items[:]
            rng.shuffle(order)
            st0, r0 = cpu_steal(args.cpu), time.perf_counter()
            for lib, prob, dt in order:
                req = {"problem": prob, "dtype": dt}
                if LIBS[lib][2]:
                    req["variant"] = LIBS[lib][2]
                if args.calls:
                    req["calls"] = args.calls
                rep = servers[(LIBS[lib][1], dt)].ask(req)
                blocks.append(dict(round=r, lib=lib, problem=prob, dtype=dt,
                                   t_s=time.perf_counter() - t0, **{
                                       k: rep[k] for k in ("calls", "median_s", "mean_s",
                                                           "min_s", "max_s", "block_s")}))
            st1 = cpu_steal(args.cpu)
            steal = None
            if st0 and st1 and st1[1] > st0[1]:
                steal = 100.0 * (st1[0] - st0[0]) / (st1[1] - st0[1])
            round_info.append(dict(round=r, wall_s=time.perf_counter() - r0,
                                   loadavg=list(os.getloadavg()), steal_pct=steal))
            log(f"round {r + 1}/{args.rounds}: {round_info[-1]['wall_s']:.1f} s, load "
                f"{round_info[-1]['loadavg'][0]:.2f}"
                + (f", steal {steal:.1f} %" if steal is not None else ""))
    finally:
        for s in servers.values():
            s.close()
    wall_s = time.perf_counter() - t_start
    steals = [x["steal_pct"] for x in round_info if x["steal_pct"] is not None]
    res = dict(
        tool="benchmarks/peers/interleaved.py",
        command=" ".join([os.path.basename(sys.executable)] + sys.argv),
        date=date,
        rounds=args.rounds,
        seed=args.seed,
        block_seconds=args.block_seconds,
        cpu=args.cpu,
        libs=args.libs,
        problems=args.problems,
        dtypes=args.dtypes,
        loadavg_start=loadavg_start,
        loadavg_end=list(os.getloadavg()),
        steal_pct=statistics.mean(steals) if steals else None,
        wall_s=wall_s,
        thread_env=THREAD_ENV,
        servers=[dict(name=s.name, cmd=s.cmd, startup_s=s.startup_s, ready=s.ready)
                 for s in servers.values()],
        round_info=round_info,
        rows=analyse(blocks, args.libs, args.problems, args.dtypes),
        blocks=blocks,
    )
    jpath = os.path.join(out_dir, f"interleaved{tag}.json")
    mpath = os.path.join(out_dir, f"interleaved{tag}.md")
    with open(jpath, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    md = markdown(res)
    with open(mpath, "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {jpath} and {mpath}")


def sequential_ratios(dirs):
    """peer median / mppi-py builtin median per run.sh results folder, by problem/dtype."""
    out = {}
    for d in dirs:
        meds = {}
        for lib, stem in (("ours", "mppi-py-builtin"), ("torch", "pytorch-mppi"),
                          ("jax", "jax-mppi")):
            for dt in DTYPES:
                path = os.path.join(d, f"{stem}-{dt}.json")
                if not os.path.exists(path):
                    continue
                with open(path) as f:
                    for r in json.load(f)["results"]:
                        meds[(lib, r["problem"], dt)] = r["median_ms"]
        for (lib, prob, dt), ms in meds.items():
            ours = meds.get(("ours", prob, dt))
            if lib == "ours" or not ours:
                continue
            out.setdefault(f"{prob}/{dt}", {}).setdefault(lib, []).append(ms / ours)
    return out


def combine(args):
    """The spread of the per-run median ratios over repeated runs."""
    runs = []
    for path in args.combine:
        with open(path) as f:
            runs.append((path, json.load(f)))
    out = dict(runs=[dict(path=p, date=r["date"], rounds=r["rounds"],
                          loadavg_start=r["loadavg_start"], loadavg_end=r["loadavg_end"],
                          steal_pct=r.get("steal_pct"), wall_s=r["wall_s"]) for p, r in runs],
               rows=[])
    keys = []
    for _, r in runs:
        for row in r["rows"]:
            if (row["problem"], row["dtype"]) not in keys:
                keys.append((row["problem"], row["dtype"]))
    peers = [p for p in PEERS if any(p in r["libs"] for _, r in runs)]
    libs = [k for k in LIBS if any(k in r["libs"] for _, r in runs)]
    for prob, dt in keys:
        entry = dict(problem=prob, dtype=dt, ratios={}, ms={})
        rows = [row for _, r in runs for row in r["rows"]
                if row["problem"] == prob and row["dtype"] == dt]
        for lib in libs:
            ms = [row["libs"][lib]["median_ms"] for row in rows if lib in row["libs"]]
            if ms:
                entry["ms"][lib] = dict(per_run=ms, median=statistics.median(ms), min=min(ms),
                                        max=max(ms))
        for p in peers:
            meds = [row["ratios"][p]["median"] for row in rows if p in row["ratios"]]
            if not meds:
                continue
            m = statistics.median(meds)
            entry["ratios"][p] = dict(
                per_run=meds, median=m, min=min(meds), max=max(meds),
                # relative range of the run medians: (max - min) / median, and half of it (±)
                range_pct=100.0 * (max(meds) - min(meds)) / m,
                plus_minus_pct=50.0 * (max(meds) - min(meds)) / m,
                goal=GOAL[p], all_runs_meet=all(x >= GOAL[p] for x in meds),
            )
        out["rows"].append(entry)
    lines = [
        "# Interleaved peer comparison: spread over repeated runs",
        "",
        f"{len(runs)} runs of `benchmarks/peers/interleaved.py`: "
        + "; ".join(f"{os.path.basename(p)} ({r['date']}, {r['rounds']} rounds, load "
                    f"{r['loadavg_start'][0]:.2f} → {r['loadavg_end'][0]:.2f}"
                    + (f", steal {r['steal_pct']:.1f} %" if r.get("steal_pct") is not None
                       else "") + ")" for p, r in runs) + ".",
        "",
        "## Median ms per control step, per run",
        "",
        "| problem | dtype | " + " | ".join(LIBS[k][0] for k in libs) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in libs) + " |",
    ]
    for e in out["rows"]:
        lines.append(f"| {e['problem']} | {e['dtype']} | " + " | ".join(
            " / ".join(fmt_ms(x) for x in e["ms"][k]["per_run"]) if k in e["ms"] else ""
            for k in libs) + " |")
    lines += [
        "",
        "## Median ratio peer / ours, per run, and its spread over the runs",
        "",
        "Each run's median over rounds of the same-round ratio; then the median over runs, "
        "[min–max], and ± half the relative range (max − min) / median.",
        "",
        "| problem | dtype | " + " | ".join(
            f"{LIBS[p][0]} / ours per run | median [min–max] | ±" for p in peers) + " |",
        "| --- | --- | " + " | ".join("--- | ---: | ---:" for _ in peers) + " |",
    ]
    for e in out["rows"]:
        cells = []
        for p in peers:
            r = e["ratios"].get(p)
            if not r:
                cells.append(" | | ")
                continue
            cells.append(" / ".join(f"{x:.1f}" for x in r["per_run"]) + " | "
                         f"**{r['median']:.1f}x** [{r['min']:.1f}–{r['max']:.1f}] "
                         f"({'meets' if r['all_runs_meet'] else 'below'} {r['goal']:.0f}x) | "
                         f"{r['plus_minus_pct']:.1f} %")
        lines.append(f"| {e['problem']} | {e['dtype']} | " + " | ".join(cells) + " |")
    if args.sequential:
        seq = sequential_ratios(args.sequential)
        out["sequential"] = seq
        lines += [
            "",
            "## Against the sequential method (run.sh)",
            "",
            "run.sh runs each library's whole benchmark one after another; its ratio is the peer's "
            "median over the builtin's median from the same run. ± is half the relative range "
            "(max − min) / median of the per-run ratios, as above. Sequential runs: "
            + "; ".join(f"`{os.path.relpath(d)}`" for d in args.sequential) + ".",
            "",
            "| problem | dtype | " + " | ".join(
                f"{LIBS[p][0]} / ours sequential per run | ± sequential | ± interleaved"
                for p in peers) + " |",
            "| --- | --- | " + " | ".join("--- | ---: | ---:" for _ in peers) + " |",
        ]
        for e in out["rows"]:
            cells = []
            for p in peers:
                rs = seq.get(f"{e['problem']}/{e['dtype']}", {}).get(p)
                il = e["ratios"].get(p)
                if not rs or not il:
                    cells.append(" | | ")
                    continue
                m = statistics.median(rs)
                cells.append(" / ".join(f"{x:.1f}" for x in rs)
                             + f" | {50.0 * (max(rs) - min(rs)) / m:.1f} %"
                             + f" | {il['plus_minus_pct']:.1f} %")
            lines.append(f"| {e['problem']} | {e['dtype']} | " + " | ".join(cells) + " |")
    lines.append("")
    md = "\n".join(lines)
    out_dir = os.path.abspath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "interleaved-combined.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    with open(os.path.join(out_dir, "interleaved-combined.md"), "w") as f:
        f.write(md)
    print(md)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15, help="block rounds (default 15)")
    p.add_argument("--problems", default=",".join(PROBLEMS),
                   help="comma-separated subset of: " + ", ".join(PROBLEMS))
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--libs", default="ours,numpy,torch,jax",
                   help="comma-separated subset of: ours (mppi-py builtin), numpy (mppi-py "
                        "numpy), torch, jax (default: all)")
    p.add_argument("--seed", type=int, default=0, help="the shuffle's seed (default 0)")
    p.add_argument("--block-seconds", type=float, default=0.15,
                   help="about how long one block's calls take (default 0.15 s; 5..20000 calls)")
    p.add_argument("--calls", type=int, default=0,
                   help="calls per block for every block (default 0: from --block-seconds)")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls per controller first")
    p.add_argument("--cpu", type=int, default=int(os.environ.get("PEERS_CPU", "0")),
                   help="the CPU taskset pins every server to (default 0; -1: no pinning)")
    p.add_argument("--python-mppi", help="interpreter with mppi and numpy (default: $PYTHON_MPPI, "
                                         "else .venv-mppi)")
    p.add_argument("--python-torch", help="default .venv-torch/bin/python")
    p.add_argument("--python-jax", help="default .venv-jax/bin/python")
    p.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    p.add_argument("--tag", default="", help="file name suffix: results/interleaved-TAG.json")
    p.add_argument("--combine", nargs="+", metavar="JSON",
                   help="summarize earlier runs' JSON files instead of running")
    p.add_argument("--sequential", nargs="+", metavar="DIR",
                   help="with --combine: run.sh results folders (mppi-py-builtin-*.json, "
                        "pytorch-mppi-*.json, jax-mppi-*.json) to compare the spread with")
    args = p.parse_args()
    if args.combine:
        combine(args)
        return
    args.problems = [x for x in args.problems.split(",") if x]
    args.dtypes = [x for x in args.dtypes.split(",") if x]
    args.libs = [x for x in args.libs.split(",") if x]
    for x in args.problems:
        if x not in PROBLEMS:
            p.error(f"unknown problem {x!r}")
    for x in args.dtypes:
        if x not in DTYPES:
            p.error(f"unknown dtype {x!r}")
    for x in args.libs:
        if x not in LIBS:
            p.error(f"unknown library {x!r} (ours, numpy, torch, jax)")
    run(args)


if __name__ == "__main__":
    main()
