#!/usr/bin/env python3
"""Run the PO-MPC grid (variants x seeds x tasks) with `mppi learn`, on Ray when it is
installed (a cluster with `--address auto`, or this machine), else on a local process pool,
then write the results table (benchmarks/po_mpc/table.py).

    python3 benchmarks/po_mpc/grid.py --out benchmarks/results/po-mpc/grid-small-25k \
        --config configs/po-mpc-small.toml --steps 25000 --parallel 2

Each cell writes DIR/<task>/<variant>/seed<k>/ (summary.json, eval.csv, plots, checkpoint/);
a cell whose summary.json has --steps steps is skipped, and any other one resumes from its
checkpoint, so a stopped grid continues where it was, and a finished one is extended to a
larger --steps (from the checkpoint written at the end of each run).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VARIANTS = ["v0", "vinf", "vtd", "vlambda-0.1", "vlambda-1", "vtilde"]
TASKS = ["pendulum-swingup", "cartpole-swingup"]


def run_cell(binary, task, variant, seed, steps, config, out, extra):
    """Train one cell (resuming if a checkpoint exists); returns (cell, seconds, status)."""
    cell = Path(out) / task / variant / f"seed{seed}"
    summary = cell / "summary.json"
    if summary.exists() and json.loads(summary.read_text()).get("steps", 0) >= steps:
        return str(cell), 0.0, "done before"
    cmd = [binary, "learn", task, "--variant", variant, "--seed", str(seed),
           "--steps", str(steps), "--out", str(cell), "--quiet"]
    if config:
        cmd += ["--config", str(config)]
    for s in extra:
        cmd += ["--set", s]
    if (cell / "checkpoint" / "state.json").exists():
        cmd.append("--resume")
    cell.mkdir(parents=True, exist_ok=True)
    start = time.time()
    # One thread per cell: cells are the parallelism, and results do not depend on threads.
    env = {**os.environ, "RAYON_NUM_THREADS": os.environ.get("RAYON_NUM_THREADS", "1")}
    with open(cell / "log.txt", "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    return str(cell), time.time() - start, "ok" if rc == 0 else f"exit {rc}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "mppi"))
    p.add_argument("--config", default=str(ROOT / "configs" / "po-mpc-small.toml"))
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--set", action="append", default=[], help="extra `mppi learn --set` (repeatable)")
    p.add_argument("--parallel", type=int, default=2, help="cells at once")
    p.add_argument("--backend", choices=["auto", "ray", "local"], default="auto")
    p.add_argument("--address", default=None, help="Ray cluster address (e.g. auto); default: start Ray here")
    p.add_argument("--budgets", default=None, help="table columns (steps), default: every evaluation step")
    args = p.parse_args()

    if not Path(args.binary).exists():
        sys.exit(f"{args.binary} not found: build it with `cargo build --release --locked -p mppi-cli`")
    cells = [(t, v, s) for t in args.tasks.split(",") for v in args.variants.split(",")
             for s in range(args.seeds)]
    backend = args.backend
    if backend == "auto":
        try:
            import ray  # noqa: F401
            backend = "ray"
        except ImportError:
            backend = "local"
    print(f"{len(cells)} cells on {backend} ({args.parallel} at once)", flush=True)
    started = time.time()
    results = []
    common = (args.steps, args.config, args.out, args.set)
    if backend == "ray":
        import ray
        if args.address:
            ray.init(address=args.address)
        else:
            ray.init(num_cpus=args.parallel, include_dashboard=False)
        remote = ray.remote(num_cpus=1)(run_cell)
        pending = [remote.remote(args.binary, t, v, s, *common) for t, v, s in cells]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for r in ray.get(done):
                results.append(r)
                print(f"[{len(results)}/{len(cells)}] {r[0]}: {r[2]} ({r[1]:.0f} s)", flush=True)
        ray.shutdown()
    else:
        from concurrent.futures import ThreadPoolExecutor, as_completed
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            futures = [pool.submit(run_cell, args.binary, t, v, s, *common) for t, v, s in cells]
            for f in as_completed(futures):
                r = f.result()
                results.append(r)
                print(f"[{len(results)}/{len(cells)}] {r[0]}: {r[2]} ({r[1]:.0f} s)", flush=True)
    failed = [r for r in results if r[2] not in ("ok", "done before")]
    print(f"grid done in {time.time() - started:.0f} s; {len(failed)} failed", flush=True)
    for r in failed:
        print(f"  {r[0]}: {r[2]} (see its log.txt)")
    sys.path.insert(0, str(HERE))
    import table
    budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else None
    md = table.render(Path(args.out), budgets)
    (Path(args.out) / "table.md").write_text(md)
    print(md)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
