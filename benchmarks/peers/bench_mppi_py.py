"""Our Python bindings (package `mppi`, crate crates/mppi-py) on the four peer-comparison problems.

Two variants, each timed like the peers (common.measure: warm-up, blocks, medians):

- `mppi-py builtin`: `mppi.Controller.for_task(task, samples=K, horizon=T, threads=1,
  precision=f32|f64, iterations=1, ...)`, the Rust model of the task; the GIL is released while
  it plans. `--dtype` sets the rollout precision (`precision = "f32"` / `"f64"`).
- `mppi-py numpy`: `mppi.Controller(dynamics, cost, ...)` with vectorized numpy ports of the same
  models and costs (the formulas of bench_torch.py, the constants of common.py), called once per
  time step on the whole batch (x: (K, nx), u: (K, nu)). Such a model always runs in float64:
  `--dtype` does not apply to it (the file records `model_dtype = float64`).

One timed call = one `ctrl.act(x0)`: the warm-start shift plus one iteration (sample, roll out,
weight, update), as pytorch-mppi's and jax-mppi's `command(state)` and the CLI's
`Controller::act`. Both variants use the task's default config (the sigma, lambda, bounds of
common.PROBLEMS, passed explicitly and checked against it) with K, T, one thread and one
iteration, as `mppi bench` does.

At startup every numpy port is compared with the Rust task (`mppi.Task(name).dynamics(x, u)`,
`.running_cost(x, u, t)`, `.terminal_cost(x)`) on random batches, and with the hand-computed
values of common.CHECKS; a difference above 1e-9 stops the script.

For the numpy variant the file also gives a breakdown of one act(): the time inside the Python
callbacks, and the time of the same act() with trivial callbacks (the binding's floor).

Run through run.sh (one thread, pinned CPU), or by hand:
    python bench_mppi_py.py --dtype float32 --out 'results/mppi-py-{variant}-float32.json'
(`{variant}` becomes `builtin` and `numpy`; without it the two files are NAME-builtin.json and
NAME-numpy.json.)
With --serve (and no --out) it is a long-lived server for interleaved.py (see common.serve); its
keys are "problem/builtin" and "problem/numpy" (--serve-variants picks them).
"""

import os
import sys

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import PROBLEMS  # noqa: E402

args = common.parse_args("mppi-py", extra=lambda p: p.add_argument(
    "--serve-variants", default="builtin,numpy",
    help="--serve only: the variants to serve, comma-separated (default builtin,numpy)"))

import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from importlib.metadata import version  # noqa: E402

import numpy as np  # noqa: E402

import mppi  # noqa: E402

PRECISION = "f32" if args.dtype == "float32" else "f64"
TWO_PI = 2.0 * np.pi


def wrap_angle(a):
    # gym's angle_normalize and our wrap_angle: (a + pi) mod 2 pi - pi (floored mod)
    return np.remainder(a + np.pi, TWO_PI) - np.pi


def clip(v, lo, hi):
    # np.minimum/np.maximum: the same as np.clip, with less per-call overhead on small arrays
    return np.minimum(np.maximum(v, lo), hi)


# ------------------------------------------------------------------ pendulum.rs
def pendulum_step(x, u):
    g, m, l, dt = common.PEND_G, common.PEND_M, common.PEND_L, common.PEND_DT
    uc = clip(u[:, 0], -common.PEND_MAX_TORQUE, common.PEND_MAX_TORQUE)
    thdot = clip(
        x[:, 1] + (3.0 * g / (2.0 * l) * np.sin(x[:, 0]) + 3.0 / (m * l * l) * uc) * dt,
        -common.PEND_MAX_SPEED,
        common.PEND_MAX_SPEED,
    )
    out = np.empty_like(x)
    out[:, 0] = x[:, 0] + thdot * dt
    out[:, 1] = thdot
    return out


def pendulum_cost(x, u, t):
    uc = clip(u[:, 0], -common.PEND_MAX_TORQUE, common.PEND_MAX_TORQUE)
    th = wrap_angle(x[:, 0])
    return th * th + 0.1 * x[:, 1] * x[:, 1] + 0.001 * uc * uc


# ------------------------------------------------------------------ navigation.rs helpers
def obstacle_arrays(obstacles, margin):
    cx = np.array([o[0] for o in obstacles])
    cy = np.array([o[1] for o in obstacles])
    r2 = np.array([(o[2] + margin) ** 2 for o in obstacles])
    return cx, cy, r2


def goal_cost(goal, px, py, speed_sq, w_goal, w_vel):
    dx, dy = px - goal[0], py - goal[1]
    d2 = dx * dx + dy * dy
    return w_goal * np.sqrt(d2) + w_vel * speed_sq / (1.0 + d2)


def collision(obs, px, py):
    # one disc at a time on (K,) arrays: the same test as the torch port's (K, 6) broadcast and
    # any(dim=1), but numpy is several times slower at reducing along a short axis
    hit = None
    for ox, oy, r2 in zip(*obs):
        dx, dy = px - ox, py - oy
        inside = dx * dx + dy * dy < r2
        hit = inside if hit is None else np.logical_or(hit, inside, out=hit)
    return hit


# ------------------------------------------------------------------ double_integrator.rs
DI_OBS = obstacle_arrays(common.DI_OBSTACLES, common.DI_MARGIN)


# (Column by column on (K,) arrays, as the torch port: numpy is about 3x slower on (K, 2)
# slices and at reducing along a short axis.)
def di_step(x, u):
    dt, amax = common.DI_DT, common.DI_A_MAX
    ax = clip(u[:, 0], -amax, amax)
    ay = clip(u[:, 1], -amax, amax)
    vx, vy = x[:, 2], x[:, 3]
    out = np.empty_like(x)
    out[:, 0] = x[:, 0] + vx * dt + 0.5 * ax * dt * dt
    out[:, 1] = x[:, 1] + vy * dt + 0.5 * ay * dt * dt
    out[:, 2] = vx + ax * dt
    out[:, 3] = vy + ay * dt
    return out


def di_cost(x, u, t):
    amax = common.DI_A_MAX
    ax = clip(u[:, 0], -amax, amax)
    ay = clip(u[:, 1], -amax, amax)
    px, py, vx, vy = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
    base = goal_cost(common.DI_GOAL, px, py, vx * vx + vy * vy, common.DI_W_GOAL,
                     common.DI_W_VEL) + common.DI_W_CTRL * (ax * ax + ay * ay)
    return base + common.DI_W_COLLISION * collision(DI_OBS, px, py)


# ------------------------------------------------------------------ unicycle.rs
UNI_OBS = obstacle_arrays(common.UNI_OBSTACLES, common.UNI_MARGIN)


def uni_step(x, u):
    dt = common.UNI_DT
    a = clip(u[:, 0], -common.UNI_A_MAX, common.UNI_A_MAX)
    w = clip(u[:, 1], -common.UNI_OMEGA_MAX, common.UNI_OMEGA_MAX)
    th, v = x[:, 2], x[:, 3]
    vdt = v * dt
    out = np.empty_like(x)
    out[:, 0] = x[:, 0] + vdt * np.cos(th)
    out[:, 1] = x[:, 1] + vdt * np.sin(th)
    out[:, 2] = th + w * dt
    out[:, 3] = clip(v + a * dt, common.UNI_V_MIN, common.UNI_V_MAX)
    return out


def uni_cost(x, u, t):
    a = clip(u[:, 0], -common.UNI_A_MAX, common.UNI_A_MAX)
    w = clip(u[:, 1], -common.UNI_OMEGA_MAX, common.UNI_OMEGA_MAX)
    px, py, v = x[:, 0], x[:, 1], x[:, 3]
    base = (goal_cost(common.UNI_GOAL, px, py, v * v, common.UNI_W_GOAL, common.UNI_W_VEL)
            + common.UNI_W_ACC * a * a + common.UNI_W_TURN * w * w)
    return base + common.UNI_W_COLLISION * collision(UNI_OBS, px, py)


MODELS = {
    "pendulum": (pendulum_step, pendulum_cost),
    "double_integrator": (di_step, di_cost),
    "unicycle": (uni_step, uni_cost),
}

# Random test states around the interesting region of each task: (centre, spread) per state
# dimension; controls are drawn wider than the bounds so that the clipping is exercised.
CHECK_BOXES = {
    "pendulum": ([0.0, 0.0], [8.0, 10.0], 4.0),
    "double_integrator": ([4.0, 4.5, 0.0, 0.0], [5.0, 5.0, 4.0, 4.0], 6.0),
    "unicycle": ([5.0, 3.5, 0.0, 0.5], [6.0, 4.5, 7.0, 2.5], 4.0),
}


def self_check():
    """Every numpy port against the Rust task, on random batches, and the hand-computed values."""
    tol = 1e-9
    rng = np.random.default_rng(12345)
    for model, (step, cost) in MODELS.items():
        task = mppi.Task(model)
        nx, nu = task.state_dim, task.control_dim
        centre, spread, u_spread = CHECK_BOXES[model]
        worst = 0.0
        for batch in range(4):
            k = 257 + batch
            x = np.asarray(centre) + (rng.random((k, nx)) - 0.5) * 2.0 * np.asarray(spread)
            if model != "pendulum" and batch == 0:
                # some states inside the inflated discs, so that the collision term is checked
                obs = common.DI_OBSTACLES if model == "double_integrator" else common.UNI_OBSTACLES
                for i, (ox, oy, r) in enumerate(obs):
                    x[i, 0], x[i, 1] = ox + 0.5 * r, oy - 0.3 * r
            u = (rng.random((k, nu)) - 0.5) * 2.0 * u_spread
            t = int(rng.integers(0, 50))
            pairs = [
                ("dynamics", step(x, u), np.asarray(task.dynamics(x, u))),
                ("running_cost", cost(x, u, t), np.asarray(task.running_cost(x, u, t))),
            ]
            term = np.asarray(task.terminal_cost(x))
            if np.any(term != 0.0):
                raise SystemExit(f"{model}: the Rust task has a terminal cost; the numpy port "
                                 "has none (add one)")
            for what, ours, theirs in pairs:
                if ours.shape != theirs.shape or ours.dtype != np.float64:
                    raise SystemExit(f"{model}: numpy {what} returns {ours.dtype} {ours.shape}, "
                                     f"the Rust task {theirs.dtype} {theirs.shape}")
                err = np.abs(ours - theirs) / np.maximum(1.0, np.abs(theirs))
                if not np.all(err <= tol):
                    i = np.unravel_index(int(np.argmax(err)), err.shape)
                    raise SystemExit(
                        f"{model}: numpy {what} differs from mppi.Task({model!r}).{what} by "
                        f"{err[i]:.3g} (relative) at {i}: x = {x[i[0]].tolist()}, "
                        f"u = {u[i[0]].tolist()}: numpy {ours[i]!r}, Rust {theirs[i]!r}")
                worst = max(worst, float(err.max()))
        common.run_checks(
            model,
            lambda x, u: step(np.array([x], float), np.array([u], float))[0].tolist(),
            lambda x, u: float(cost(np.array([x], float), np.array([u], float), 0)[0]),
            1e-10,
        )
        print(f"  check {model}: numpy port = Rust task within {worst:.1e} (relative, "
              f"4 random batches)", flush=True)


def settings(spec):
    """The keyword settings of both variants: the problem's size and the peers' parameters.
    `MPPI_NORMALS=fast` in the environment selects the fast normal generator."""
    extra = {"normals": os.environ["MPPI_NORMALS"]} if os.environ.get("MPPI_NORMALS") else {}
    return dict(
        samples=spec["K"],
        horizon=spec["T"],
        threads=1,
        iterations=1,
        proposal={"kind": "gaussian", "noise_sigma": list(spec["sigma"])},
        weighting={"temperature": {"kind": "fixed", "lambda": spec["lam"]}},
        u_min=list(spec["u_min"]),
        u_max=list(spec["u_max"]),
        **extra,
    )


def check_defaults(spec):
    """The problem must be the task's default config at (K, T), as `mppi bench` times it."""
    task = mppi.Task(spec["model"])
    d = task.default_config
    s = settings(spec)
    nu = spec["nu"]

    def per_dim(v):
        return list(v) * nu if len(v) == 1 else list(v)

    mismatch = []
    if per_dim(d["proposal"]["noise_sigma"]) != per_dim(s["proposal"]["noise_sigma"]):
        mismatch.append("noise_sigma")
    if d["proposal"]["kind"] != "gaussian":
        mismatch.append("proposal.kind")
    if d["weighting"]["temperature"] != s["weighting"]["temperature"]:
        mismatch.append("temperature")
    if per_dim(d["u_min"]) != s["u_min"] or per_dim(d["u_max"]) != s["u_max"]:
        mismatch.append("bounds")
    if not np.allclose(task.initial_state, spec["x0"]):
        mismatch.append("initial_state")
    if mismatch:
        raise SystemExit(f"{spec['model']}: common.PROBLEMS differs from the task's default "
                         f"config in {mismatch}: the CLI column would not be comparable")


def out_path(variant):
    if "{variant}" in args.out:
        return args.out.replace("{variant}", variant)
    root, ext = os.path.splitext(args.out)
    return f"{root}-{variant}{ext or '.json'}"


def planning_times(ctrl, x0, n):
    """The library's own planning_time (timed inside Rust) over n further calls, and the rest of
    each act() call (wall time - planning_time: the binding's cost per call, state in, control
    out), medians in ms."""
    plan, rest = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        ctrl.act(x0)
        wall = time.perf_counter() - t0
        p = ctrl.report["planning_time"]
        plan.append(p)
        rest.append(wall - p)
    return dict(planning_time_ms=statistics.median(plan) * 1e3,
                act_minus_planning_time_ms=statistics.median(rest) * 1e3,
                calls=n)


def cli_method(call, blocks):
    """Time `call` as `mppi bench` times the Rust library (crates/mppi-cli/src/bench.rs).

    A warm-up of at least 3 calls and 100 ms, then `blocks` blocks of back-to-back calls, each
    lasting at least 20 ms; a block's value is its mean time per call, and the result the median
    over blocks. The ratio to the CLI uses this, so that both sides are timed alike (a block mean
    counts the slow calls that a per-call median leaves out).
    """
    t0 = time.perf_counter()
    n = 0
    while n < 3 or time.perf_counter() - t0 < 0.1:
        call()
        n += 1
    per_call = (time.perf_counter() - t0) / n
    calls = max(1, min(1_000_000, math.ceil(0.02 / max(per_call, 1e-9))))
    block_ms = []
    for _ in range(blocks):
        t = time.perf_counter()
        for _ in range(calls):
            call()
        block_ms.append((time.perf_counter() - t) / calls * 1e3)
    return dict(median_ms=statistics.median(block_ms), min_ms=min(block_ms),
                max_ms=max(block_ms), calls_per_block=calls, block_ms=block_ms,
                method="mppi bench's: >= 100 ms warm-up, blocks of >= 20 ms, block mean, "
                       "median over blocks")


def build_builtin(name):
    """The builtin-model controller for one problem and its timed call (one act(x0))."""
    spec = PROBLEMS[name]
    check_defaults(spec)
    ctrl = mppi.Controller.for_task(spec["model"], precision=PRECISION, **settings(spec))
    x0 = np.array(spec["x0"], dtype=np.float64)
    last = [None]

    def call():
        last[0] = ctrl.act(x0)

    return call, ctrl, x0, last


def bench_builtin(name):
    spec = PROBLEMS[name]
    call, ctrl, x0, last = build_builtin(name)
    per_block, calls = common.measure(call, args.blocks, args.calls, args.warmup)
    same_as_cli = cli_method(call, args.blocks)
    print(f"    the same, timed as mppi bench: {same_as_cli['median_ms']:.3f} ms  "
          f"[{same_as_cli['min_ms']:.3f} .. {same_as_cli['max_ms']:.3f}]", flush=True)
    plan = planning_times(ctrl, x0, 200 if spec["K"] * spec["T"] < 50000 else 40)
    print(f"    act() - report['planning_time']: {plan['act_minus_planning_time_ms'] * 1e3:.2f} us "
          "(median)", flush=True)
    return common.record(name, per_block, calls, args.warmup, dict(
        variant="builtin",
        cli_method=same_as_cli,
        planning_time=plan,
        model_dtype=args.dtype,
        precision=ctrl.config["precision"],
        action_dtype=str(last[0].dtype),
        config=ctrl.config,
        measured=f"mppi.Controller.for_task({spec['model']!r}, precision={PRECISION!r}, "
                 "threads=1, iterations=1).act(x0): shift + one iteration, Rust model",
    ))


def time_act(ctrl, x0, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        ctrl.act(x0)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def breakdown(spec, step, cost, x0):
    """Where one act() of the numpy model goes: callbacks vs the rest, and the binding's floor."""
    spent = {"dynamics": 0.0, "cost": 0.0}

    def timed_step(x, u):
        t0 = time.perf_counter()
        r = step(x, u)
        spent["dynamics"] += time.perf_counter() - t0
        return r

    def timed_cost(x, u, t):
        t0 = time.perf_counter()
        r = cost(x, u, t)
        spent["cost"] += time.perf_counter() - t0
        return r

    n = 10 if spec["K"] * spec["T"] > 50000 else 50
    ctrl = mppi.Controller(timed_step, timed_cost, state_dim=spec["nx"], control_dim=spec["nu"],
                           config=settings(spec))
    for _ in range(3):
        ctrl.act(x0)
    spent.update(dynamics=0.0, cost=0.0)
    t0 = time.perf_counter()
    for _ in range(n):
        ctrl.act(x0)
    total = (time.perf_counter() - t0) / n
    dyn, cst = spent["dynamics"] / n, spent["cost"] / n

    # trivial callbacks (no numpy work beyond returning preallocated arrays): the floor that
    # the binding itself costs for K, T (array creation and conversion, calls, the Rust planner)
    zx = np.zeros((spec["K"], spec["nx"]))
    zc = np.zeros(spec["K"])
    null = mppi.Controller(lambda x, u: zx, lambda x, u, t: zc, state_dim=spec["nx"],
                           control_dim=spec["nu"], config=settings(spec))
    for _ in range(3):
        null.act(x0)
    floor = time_act(null, x0, n)
    return dict(
        calls=n,
        act_ms=total * 1e3,
        dynamics_callbacks_ms=dyn * 1e3,
        cost_callbacks_ms=cst * 1e3,
        outside_callbacks_ms=(total - dyn - cst) * 1e3,
        callbacks_per_act=2 * spec["T"],
        trivial_callbacks_act_ms=floor * 1e3,
        note="one act() with perf_counter around every callback (adds a little); "
             "trivial_callbacks_act_ms: the same controller with callbacks that return "
             "preallocated zeros",
    )


def build_numpy(name):
    """The numpy-model controller for one problem and its timed call (one act(x0))."""
    spec = PROBLEMS[name]
    step, cost = MODELS[spec["model"]]
    ctrl = mppi.Controller(step, cost, state_dim=spec["nx"], control_dim=spec["nu"],
                           terminal_cost=None, config=settings(spec))
    x0 = np.array(spec["x0"], dtype=np.float64)
    last = [None]

    def call():
        last[0] = ctrl.act(x0)

    return call, ctrl, x0, last


def bench_numpy(name):
    spec = PROBLEMS[name]
    step, cost = MODELS[spec["model"]]
    call, ctrl, x0, last = build_numpy(name)
    per_block, calls = common.measure(call, args.blocks, args.calls, args.warmup)
    return common.record(name, per_block, calls, args.warmup, dict(
        variant="numpy",
        model_dtype="float64",
        dtype_note="a Python-defined model always runs in float64; --dtype only applies to "
                   "the builtin variant's rollouts",
        precision=ctrl.config["precision"],
        action_dtype=str(last[0].dtype),
        planning_time=planning_times(ctrl, x0, 10),
        breakdown=breakdown(spec, step, cost, x0),
        config=ctrl.config,
        measured="mppi.Controller(dynamics, cost, ...).act(x0) with vectorized numpy "
                 "callbacks (once per time step on the whole batch): shift + one iteration",
    ))


def main():
    self_check()
    print(f"mppi {version('mppi')} ({mppi.build_target}), numpy {np.__version__}, "
          f"{args.dtype} (builtin rollouts), threads 1", flush=True)
    versions = {p: version(p) for p in ("mppi", "numpy")}
    if args.serve:  # interleaved.py: one long-lived process per dtype, keys "problem/variant"
        builders = {"builtin": build_builtin, "numpy": build_numpy}
        variants = [v for v in args.serve_variants.split(",") if v]
        for v in variants:
            if v not in builders:
                raise SystemExit(f"unknown variant {v!r} (builtin, numpy)")
        calls = {f"{name}/{v}": builders[v](name)[0] for v in variants for name in args.problems}
        common.serve("mppi-py", args.dtype, calls,
                     info=dict(versions=versions, build_target=mppi.build_target,
                               precision=PRECISION, numpy_model_dtype="float64"),
                     block_seconds=args.block_seconds, warmup=args.warmup)
        return
    common_fields = dict(
        versions=versions,
        build_target=mppi.build_target,
        dtype=args.dtype,
        threads="threads=1 (rollout threads); "
                f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
        machine=common.environment(),
        loadavg_start=list(os.getloadavg()),
    )
    print("mppi-py builtin:", flush=True)
    builtin = [bench_builtin(name) for name in args.problems]
    common.write(out_path("builtin"), dict(library="mppi-py builtin", **common_fields,
                                           results=builtin))
    print("mppi-py numpy (model in float64):", flush=True)
    numpy_rows = [bench_numpy(name) for name in args.problems]
    for r in numpy_rows:
        b = r["breakdown"]
        print(f"    {r['problem']}: act {b['act_ms']:.3f} ms = dynamics "
              f"{b['dynamics_callbacks_ms']:.3f}"
              f" + cost {b['cost_callbacks_ms']:.3f} + rest {b['outside_callbacks_ms']:.3f};"
              f" trivial callbacks {b['trivial_callbacks_act_ms']:.3f} ms", flush=True)
    common_fields["loadavg_end"] = list(os.getloadavg())
    common.write(out_path("numpy"), dict(library="mppi-py numpy", **common_fields,
                                         model_dtype="float64", results=numpy_rows))


if __name__ == "__main__":
    main()
