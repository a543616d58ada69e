"""Tune MPPI's temperature and exploration noise with Ray Tune, one closed-loop episode per trial.

Each trial runs a whole episode of a built-in task through the bindings (in Rust, on one
thread) and reports its cost and success; Ray schedules the trials over the CPUs of one machine
or of a cluster:

    pip install ./crates/mppi-py "ray[tune]==2.60.0"
    python crates/mppi-py/examples/ray_tune_sweep.py                   # a local Ray instance
    python crates/mppi-py/examples/ray_tune_sweep.py --address auto    # the cluster this machine is part of
    python crates/mppi-py/examples/ray_tune_sweep.py --address ray://head:10001   # a remote cluster

Only the address changes between a laptop and a cluster: every worker needs the `mppi` package
installed (or pass `runtime_env` with a wheel, see docs/python.md).
"""

import argparse
import math
import tempfile

import ray
from ray import tune

import mppi


def trial(params):
    """One closed-loop episode with the trial's settings; reports cost and success."""
    result = mppi.run_episode(
        params["task"],
        steps=params["steps"],
        seed=params["seed"],
        threads=1,  # Ray gives each trial one CPU
        samples=params["samples"],
        weighting={"temperature": {"kind": "fixed", "lambda": params["lambda"]}},
        proposal={"noise_sigma": params["noise_sigma"]},
    )
    tune.report(
        {
            "cost": result["total_cost"],
            "success": float(result["success"]),
            "ms_per_step": 1e3 * result["planning_time_mean_s"],
        }
    )


def sweep(
    task="pendulum",
    lambdas=(0.1, 1.0, 10.0),
    noise_sigmas=(0.5, 1.0),
    seeds=(0, 1),
    steps=200,
    samples=1000,
    address=None,
    num_cpus=None,
    storage_path=None,
):
    """Run the grid `lambdas × noise_sigmas × seeds` and return one row per trial, best first."""
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    space = {
        "task": task,
        "steps": steps,
        "samples": samples,
        "lambda": tune.grid_search(list(lambdas)),
        "noise_sigma": tune.grid_search(list(noise_sigmas)),
        "seed": tune.grid_search(list(seeds)),
    }
    tuner = tune.Tuner(
        tune.with_resources(trial, {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(metric="cost", mode="min"),
        run_config=tune.RunConfig(
            name=f"mppi-{task}",
            storage_path=storage_path or tempfile.mkdtemp(prefix="mppi-tune-"),
            verbose=0,
        ),
    )
    results = tuner.fit()
    rows = []
    for r in results:
        if r.error:
            raise RuntimeError(f"trial {r.config} failed: {r.error}")
        rows.append(
            {
                "lambda": r.config["lambda"],
                "noise_sigma": r.config["noise_sigma"],
                "seed": r.config["seed"],
                "cost": r.metrics["cost"],
                "success": bool(r.metrics["success"]),
                "ms_per_step": r.metrics["ms_per_step"],
            }
        )
    rows.sort(key=lambda row: (row["cost"] if math.isfinite(row["cost"]) else math.inf))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="pendulum")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: start a local instance)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local instance")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    rows = sweep(args.task, steps=args.steps, samples=args.samples, address=args.address, num_cpus=args.num_cpus)
    print(f"{'lambda':>8} {'noise':>6} {'seed':>4} {'cost':>10} {'success':>8} {'ms/step':>8}")
    for row in rows:
        print(
            f"{row['lambda']:>8g} {row['noise_sigma']:>6g} {row['seed']:>4} {row['cost']:>10.2f} "
            f"{str(row['success']):>8} {row['ms_per_step']:>8.3f}"
        )


if __name__ == "__main__":
    main()
