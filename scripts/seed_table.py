#!/usr/bin/env python3
"""Pass/fail of every built-in task with its default config over a range of seeds.

Runs `mppi run <task> --seed N --require-success -q` (exit status 0 = success, 1 = the
success criterion was not met) for every task listed by `mppi tasks` and prints one
Markdown row per task: the seeds that failed and the pass count.

    cargo build --release --locked -p mppi-cli
    python3 scripts/seed_table.py                      # seeds 0..=19, every task
    python3 scripts/seed_table.py --seeds 20 --jobs 2 two_routes --set proposal.kind=gaussian

Extra `--set KEY=VALUE` flags are passed to every run (use them to measure a family or a
candidate default); positional arguments restrict the tasks.
"""
import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MPPI = Path(__file__).resolve().parent.parent / "target" / "release" / "mppi"


def task_names():
    out = subprocess.run([str(MPPI), "tasks"], check=True, capture_output=True, text=True)
    return [line.split()[0] for line in out.stdout.splitlines()[1:] if line.strip()]


def run(task, seed, sets):
    cmd = [str(MPPI), "run", task, "-q", "--seed", str(seed), "--require-success"]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} exited with {r.returncode}:\n{r.stderr}")
    return r.returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tasks", nargs="*")
    ap.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 (default 20)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    args = ap.parse_args()
    tasks = args.tasks or task_names()
    seeds = list(range(args.seeds))
    print(f"settings: {' '.join(args.sets) or 'task defaults'}; seeds 0-{seeds[-1]}\n")
    print("| task | passed | failed seeds | wall s |")
    print("| --- | --- | --- | --- |")
    with ThreadPoolExecutor(args.jobs) as pool:
        for task in tasks:
            t0 = time.time()
            ok = list(pool.map(lambda s: run(task, s, args.sets), seeds))
            failed = [s for s, o in zip(seeds, ok) if not o]
            print(f"| {task} | {sum(ok)}/{len(seeds)} | {', '.join(map(str, failed)) or '-'} "
                  f"| {time.time() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
