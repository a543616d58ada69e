"""Closed-loop episodes of one peer library (pytorch-mppi or jax-mppi), for closed_loop.py.

Run by the library's own virtual environment, one process per (library, task, K, dtype):

    .venv-torch/bin/python closed_loop_peer.py --lib torch --task pendulum --k 1000 \
        --seeds 0,1,2,3,4 --out results/x.json
    .venv-jax/bin/python closed_loop_peer.py --lib jax --task unicycle --k 4096 ...

The planner is built as bench_torch.py / bench_jax.py build theirs (their models are imported
from those scripts) with our task's settings (closed_loop.TASKS: horizon, noise sigma, lambda,
bounds); the plant, stage cost, criterion, start state and episode length are those of
closed_loop.py (our task's, ported to f64 Python). A throwaway warm-up episode of
--warmup-steps steps runs first (jax compiles there). Then one episode per seed: the planner's
RNG is seeded with the seed (torch.manual_seed, jax.random.PRNGKey), each step times
`command(state)` with perf_counter (jax: until the action is ready), and the step time is the
median (and mean) over the episode without its first --skip calls.

One thread: the same settings as run.sh (OMP/MKL/OPENBLAS_NUM_THREADS=1, torch.set_num_threads(1)
and set_num_interop_threads(1) in bench_torch.py, the XLA_FLAGS of bench_jax.py); the driver
pins the process with taskset.
"""

import argparse
import importlib
import os
import sys
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS",
                      "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import closed_loop  # noqa: E402
import common  # noqa: E402

p = argparse.ArgumentParser(description="closed-loop episodes of pytorch-mppi or jax-mppi")
p.add_argument("--lib", choices=["torch", "jax"], required=True)
p.add_argument("--task", choices=list(closed_loop.TASKS), required=True)
p.add_argument("--k", type=int, required=True, help="samples K")
p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
p.add_argument("--seeds", default="0,1,2,3,4")
p.add_argument("--warmup-steps", type=int, default=20)
p.add_argument("--skip", type=int, default=3)
p.add_argument("--steps", type=int, default=None, help="episode length (default: the task's)")
p.add_argument("--out", required=True)
args = p.parse_args()

# bench_torch.py / bench_jax.py parse their own command line when imported: hand them theirs
_argv = sys.argv
sys.argv = [f"bench_{args.lib}.py", "--dtype", args.dtype, "--out", os.devnull]
bench = importlib.import_module(f"bench_{args.lib}")
sys.argv = _argv

from importlib.metadata import version  # noqa: E402

import numpy as np  # noqa: E402

TASK = closed_loop.TASKS[args.task]
NAME = f"closed_loop_{args.task}_k{args.k}"
common.PROBLEMS[NAME] = closed_loop.problem_spec(args.task, args.k)
SPEC = common.PROBLEMS[NAME]
perf = time.perf_counter


def to_list(action):
    return [float(v) for v in np.asarray(action, dtype=np.float64).reshape(-1)]


if args.lib == "torch":
    torch = bench.torch
    VERSIONS = {p: version(p) for p in ("pytorch-mppi", "torch")}

    def make_policy(seed):
        """bench_torch.build's controller for this problem, its RNG seeded with `seed`."""
        _, ctrl, _ = bench.build(NAME)
        torch.manual_seed(seed)

        def act(k, x):
            s = torch.tensor(x, dtype=bench.DT)
            t0 = perf()
            a = ctrl.command(s)  # shift_nominal_trajectory=True by default
            sec = perf() - t0
            return to_list(a), sec

        return act

else:
    jax, jnp, mppi = bench.jax, bench.jnp, bench.mppi
    VERSIONS = {p: version(p) for p in ("jax-mppi", "jax", "jaxlib")}
    STEP, COST = bench.MODELS[SPEC["model"]]

    def create(seed):
        # as bench_jax.build, with the episode's PRNG key
        sigma2 = jnp.array([s * s for s in SPEC["sigma"]], dtype=bench.DT)
        return mppi.create(
            nx=SPEC["nx"], nu=SPEC["nu"], noise_sigma=jnp.diag(sigma2),
            num_samples=SPEC["K"], horizon=SPEC["T"], lambda_=SPEC["lam"],
            u_min=jnp.array(SPEC["u_min"], dtype=bench.DT),
            u_max=jnp.array(SPEC["u_max"], dtype=bench.DT),
            key=jax.random.PRNGKey(seed),
        )

    CONFIG, _ = create(0)  # static config; the key lives in the state
    COMMAND = jax.jit(lambda s, o: mppi.command(CONFIG, s, o, dynamics=STEP, running_cost=COST,
                                                shift=True))

    def make_policy(seed):
        holder = [create(seed)[1]]

        def act(k, x):
            o = jnp.array(x, dtype=bench.DT)
            t0 = perf()
            a, holder[0] = COMMAND(holder[0], o)
            a.block_until_ready()
            sec = perf() - t0
            return to_list(a), sec

        return act


def main():
    bench.self_check()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    label = closed_loop.PEERS[args.lib]["label"]
    print(f"{label} {VERSIONS}, {args.dtype}, {args.task} K={args.k} T={SPEC['T']}, "
          f"seeds {seeds}", flush=True)
    # throwaway warm-up episode (jax compiles at its first call)
    t0 = perf()
    warm = closed_loop.run_loop(args.task, make_policy(10_000), steps=args.warmup_steps)
    warm_s = perf() - t0
    first_call_s = warm["times"][0] if warm["times"] else None
    print(f"  warm-up: {args.warmup_steps} steps in {warm_s:.2f} s (first call "
          f"{first_call_s:.3f} s)", flush=True)
    episodes = []
    for seed in seeds:
        t0 = perf()
        ep = closed_loop.run_loop(args.task, make_policy(seed), steps=args.steps)
        wall = perf() - t0
        times = ep.pop("times")
        ep.update(seed=seed, episode_wall_s=wall, first_call_ms=times[0] * 1e3,
                  timing=f"wall time of command(state), without the first {args.skip} calls",
                  **closed_loop.step_time_stats(times, args.skip))
        episodes.append(ep)
        print(f"  seed {seed}: cost {ep['total_cost']:.4f}, success {ep['success']}, "
              f"{ep['step_ms_median']:.3f} ms/step (mean {ep['step_ms_mean']:.3f}), "
              f"{wall:.1f} s; {ep['outcome']}", flush=True)
    common.write(args.out, dict(
        library=label, versions=VERSIONS, dtype=args.dtype, task=args.task, K=args.k,
        T=SPEC["T"], spec=SPEC, warmup_steps=args.warmup_steps, warmup_s=warm_s,
        first_call_s=first_call_s, skip=args.skip, machine=common.environment(),
        episodes=episodes,
    ))


if __name__ == "__main__":
    main()
