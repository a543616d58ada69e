"""Closed-loop table of the annealed and diffusion planners (issue: diffusion): plain MPPI,
DIAL-annealed MPPI, model-based diffusion (MBD), VE-annealed MPPI and guided diffusion planning
with a trained denoiser (pendulum) on pendulum swing-up and the 2-D navigation task
(double_integrator), seeds 0-9, through the CLI on one thread.

Usage: cargo build --release --locked -p mppi-cli
       python3 benchmarks/diffusion.py [OUT_DIR] > table.md
(standard library only; every run's summary.json is kept under OUT_DIR, default
benchmarks/results/diffusion/runs)
"""

import json
import os
import statistics
import subprocess
import sys
import time

MPPI = os.path.join(os.path.dirname(__file__), "..", "target", "release", "mppi")
SEEDS = range(10)

# (task, label, arguments); samples per iteration x iterations per step = sample budget
VARIANTS = {
    "pendulum": [
        ("plain MPPI, K = 1000", []),
        ("plain MPPI, K = 250", ["--set", "samples=250"]),
        ("DIAL, K = 250 x 2 it.", ["--preset", "dial", "--set", "samples=250"]),
        ("DIAL, K = 125 x 2 it.", ["--preset", "dial", "--set", "samples=125"]),
        ("DIAL, K = 125 x 2 it., iteration_factor 0.7", ["--preset", "dial", "--set", "samples=125",
                                                          "--set", "schedule.iteration_factor=0.7"]),
        ("MBD, K = 250 x 4 it.", ["--preset", "mbd", "--set", "samples=250"]),
        ("MBD, K = 250 x 100 it. (MBD's own N)", ["--preset", "mbd", "--set", "samples=250",
                                                  "--set", "iterations=100",
                                                  "--set", "schedule.beta_max=0.01"]),
        ("VE annealed, K = 250 x 3 it.", ["--preset", "ve", "--set", "samples=250"]),
        ("plain MPPI, K = 8, T = 16", ["--set", "samples=8", "--set", "horizon=16"]),
        ("plain MPPI, K = 8 x 20 it., T = 16", ["--set", "samples=8", "--set", "horizon=16",
                                                "--set", "iterations=20"]),
        ("plain MPPI, K = 4 x 20 it., T = 16", ["--set", "samples=4", "--set", "horizon=16",
                                                "--set", "iterations=20"]),
        ("guided diffusion, MPPI guidance, K = 4 x 20 levels", ["@denoiser", "--guidance", "mppi",
                                                                "--set", "samples=4"]),
        ("guided diffusion, MPPI guidance, K = 64 x 20 levels", ["@denoiser", "--guidance", "mppi",
                                                                 "--set", "samples=64"]),
        ("guided diffusion, MPPI guidance, K = 8 x 20 levels", ["@denoiser", "--guidance", "mppi",
                                                                "--set", "samples=8"]),
        ("guided diffusion, gradient guidance (rollout cost)", ["@denoiser", "--guidance", "gradient"]),
        ("guided diffusion, gradient + MPPI, K = 64 x 20 levels", ["@denoiser", "--guidance", "both",
                                                                   "--set", "samples=64"]),
        ("denoiser alone (imitation, no guidance)", ["@denoiser", "--guidance", "none"]),
    ],
    "double_integrator": [
        ("plain MPPI, K = 512", []),
        ("plain MPPI, K = 128", ["--set", "samples=128"]),
        ("DIAL, K = 128 x 2 it.", ["--preset", "dial", "--set", "samples=128"]),
        ("MBD, K = 256 x 4 it.", ["--preset", "mbd", "--set", "samples=256"]),
        ("MBD with fixed lambda, K = 256 x 4 it.", ["--preset", "mbd", "--set", "samples=256",
                                                    "--set", "weighting.temperature={kind=\"fixed\",lambda=1.0}"]),
        ("VE annealed, K = 128 x 3 it.", ["--preset", "ve", "--set", "samples=128"]),
    ],
    # the denoiser is trained on open_field (no obstacle); blocked_field puts a disc on its path
    "blocked_field": [
        ("plain MPPI, K = 512", []),
        ("plain MPPI, K = 64 x 20 it., T = 16", ["--set", "samples=64", "--set", "horizon=16",
                                                 "--set", "iterations=20"]),
        ("DIAL, K = 128 x 2 it.", ["--preset", "dial", "--set", "samples=128"]),
        ("guided diffusion (prior from open_field), MPPI guidance, K = 64 x 20 levels, spread 10",
         ["@denoiser", "--guidance", "mppi", "--set", "samples=64", "--sample-spread", "10"]),
        ("guided diffusion (prior from open_field), MPPI guidance, K = 64 x 20 levels, spread 3",
         ["@denoiser", "--guidance", "mppi", "--set", "samples=64"]),
        ("denoiser alone (imitation of open_field)", ["@denoiser", "--guidance", "none"]),
    ],
}

# the task each planning task's denoiser is trained on
TRAIN_ON = {"pendulum": "pendulum", "double_integrator": None, "blocked_field": "open_field"}


def run(task, args, seed, out_dir, denoiser=None):
    args = [a for x in args for a in (["--denoiser", denoiser] if x == "@denoiser" else [x])]
    cmd = [MPPI, "run", task, *args, "--seed", str(seed), "--threads", "1", "-q",
           "--set", "diagnostics=basic", "--out", out_dir]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.load(open(os.path.join(out_dir, "summary.json")))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "results", "diffusion", "runs")
    # the denoisers: collect and train once per training task, timed
    models, notes = {}, []
    for task, train_task in TRAIN_ON.items():
        if train_task is None:
            continue
        data_dir = os.path.join(root, "denoiser", train_task)
        os.makedirs(data_dir, exist_ok=True)
        data, model = os.path.join(data_dir, "data.json"), os.path.join(data_dir, "model.bpk")
        times = {}
        for name, cmd in [("collect", [MPPI, "diffusion", "collect", train_task, "-q", "--out", data]),
                          ("train", [MPPI, "diffusion", "train", data, "-q", "--out", model])]:
            t = time.time()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[name] = time.time() - t
        models[task] = model
        notes.append(f"{train_task}: collect {times['collect']:.1f} s, train {times['train']:.1f} s")
    print("Denoisers (CLI defaults, one thread): " + "; ".join(notes) + ".\n")
    print("| task | planner | median cost | cost range | success | median ms/step |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for task, variants in VARIANTS.items():
        for i, (label, args) in enumerate(variants):
            rows = []
            for seed in SEEDS:
                out = os.path.join(root, task, f"v{i}", f"seed{seed}")
                rows.append(run(task, args, seed, out, models.get(task)))
                print(f"{task} {label} seed {seed}", file=sys.stderr)
            costs = [r["total_cost"] for r in rows]
            ok = sum(1 for r in rows if r["success"])
            ms = statistics.median(r["planning_time"]["median_ms"] for r in rows)
            print(f"| {task} | {label} | {statistics.median(costs):.1f} | "
                  f"{min(costs):.1f}-{max(costs):.1f} | {ok}/{len(rows)} | {ms:.3f} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
