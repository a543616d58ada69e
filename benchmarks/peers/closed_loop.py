#!/usr/bin/env python3
"""Closed-loop "cost at equal time": ours (the `mppi` CLI) against pytorch-mppi and jax-mppi.

For each task (pendulum swing-up, unicycle or double-integrator navigation), library, sample
count K, precision and seed, one closed-loop episode of the task's own length: the episode's
total cost (the sum of the task's stage costs), the task's success verdict and the time per
control step (median and mean over the episode). The plant, the stage cost, the success
criterion, the start state and the episode length are those of our task
(`crates/mppi-tasks/src/*.rs`), ported here to scalar Python floats (IEEE f64, the same
operations in the same order, and bit-exact ports of the `mppi::fastmath` sine, cosine and
angle wrap that our plant uses), so that every library's planner drives exactly the same system.
Only the planner differs.

- ours: `mppi run TASK --seed S --set samples=K --set precision=P --set threads=1
  --set diagnostics=basic --out ...`, one process per episode; the time per step is the
  planner's own `planning_time` from `summary.json`. Every episode's executed controls
  (`trajectory.csv`) are replayed through the Python plant and stage cost: the total cost must
  agree (that validates the ports) and so must the success verdict.
- pytorch-mppi and jax-mppi: `closed_loop_peer.py`, run by each library's virtual environment
  (`.venv-torch`, `.venv-jax`, made by run.sh), one process per (library, task, K, dtype) that
  runs all seeds. The planners are built as bench_torch.py and bench_jax.py build them (the
  same models, imported from those scripts), with our task's horizon, noise sigma, lambda and
  control bounds. The time per step is the wall time of `command(state)` (jax: with
  `block_until_ready()`), after a throwaway warm-up episode (jax compiles there) and without
  the first `--skip` calls of each episode.

Standard library only (Python >= 3.8; `tomllib`, Python >= 3.11, to check the task configs).
The plot needs matplotlib and runs in whichever interpreter has it (see `--plot-python`).

    python3 benchmarks/peers/closed_loop.py                 # full run, see README.md
    python3 benchmarks/peers/closed_loop.py --quick         # smoke run, a minute or two

Writes OUT/closed_loop.json (every episode), OUT/closed_loop.md (the tables) and
OUT/closed_loop_<task>.png (cost against time per step).
"""

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402

# ---------------------------------------------------------------- mppi::fastmath, bit-exact
# crates/mppi/src/fastmath.rs: our plants call these (not libm), so the ports do too. Python
# floats are IEEE f64 and Rust does not contract a*b+c into an FMA, so the same operations in
# the same order give the same bits (the replay check below confirms it).
_ROUND_MAGIC = 6_755_399_441_055_744.0
_FRAC_2_PI = 0.636619772367581343075535053490057448
_FRAC_1_PI = 0.318309886183790671537767526745028724
_TAU = 6.28318530717958647692528676655900577
_FRAC_1_TAU = 1.0 / _TAU
_PIO2_HI = 1.570_796_326_734_125_6
_PIO2_LO = 6.077_100_506_506_192e-11
_PI_HI = 2.0 * _PIO2_HI
_PI_LO = 2.0 * _PIO2_LO
_TAU_HI = 4.0 * _PIO2_HI
_TAU_LO = 4.0 * _PIO2_LO


def _round_with_quadrant(x):
    t = x + _ROUND_MAGIC
    return t - _ROUND_MAGIC, struct.unpack("<Q", struct.pack("<d", t))[0] & 3


def fast_sin(x):
    """`mppi::fastmath::sin`."""
    k, q = _round_with_quadrant(x * _FRAC_1_PI)
    r = (x - k * _PI_HI) - k * _PI_LO
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    s01 = -1.0 / 6.0 + r2 * (1.0 / 120.0)
    s23 = -1.0 / 5040.0 + r2 * (1.0 / 362_880.0)
    s45 = -1.0 / 39_916_800.0 + r2 * (1.0 / 6_227_020_800.0)
    s67 = -1.0 / 1_307_674_368_000.0 + r2 * (1.0 / 355_687_428_096_000.0)
    s89 = -1.0 / 121_645_100_408_832_000.0 + r2 * (1.0 / 51_090_942_171_709_440_000.0)
    poly = (s01 + r4 * s23) + r8 * ((s45 + r4 * s67) + r8 * s89)
    v = r + r * (r2 * poly)
    return -v if q & 1 == 1 else v


def fast_sin_cos(x):
    """`mppi::fastmath::sin_cos`."""
    k, q = _round_with_quadrant(x * _FRAC_2_PI)
    r = (x - k * _PIO2_HI) - k * _PIO2_LO
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    s01 = -1.0 / 6.0 + r2 * (1.0 / 120.0)
    s23 = -1.0 / 5040.0 + r2 * (1.0 / 362_880.0)
    s45 = -1.0 / 39_916_800.0 + r2 * (1.0 / 6_227_020_800.0)
    s6 = -1.0 / 1_307_674_368_000.0
    s = r2 * ((s01 + r4 * s23) + r8 * (s45 + r4 * s6))
    c01 = 1.0 / 24.0 + r2 * (-1.0 / 720.0)
    c23 = 1.0 / 40_320.0 + r2 * (-1.0 / 3_628_800.0)
    c45 = 1.0 / 479_001_600.0 + r2 * (-1.0 / 87_178_291_200.0)
    c6 = 1.0 / 20_922_789_888_000.0
    c = r2 * ((c01 + r4 * c23) + r8 * (c45 + r4 * c6))
    sk, ck = r + r * s, 1.0 - 0.5 * r2 + r2 * c
    a, b = (ck, sk) if q & 1 == 1 else (sk, ck)
    return (-a if q & 2 == 2 else a), (-b if (q + 1) & 2 == 2 else b)


def fast_wrap_angle(a):
    """`mppi::fastmath::wrap_angle`: a - 2 pi round(a / 2 pi)."""
    k, _ = _round_with_quadrant(a * _FRAC_1_TAU)
    return (a - k * _TAU_HI) - k * _TAU_LO


def _clamp(v, lo, hi):  # f64::clamp
    return lo if v < lo else (hi if v > hi else v)


# ---------------------------------------------------------------- pendulum.rs
def pendulum_plant(x, u):
    g, m, l, dt = common.PEND_G, common.PEND_M, common.PEND_L, common.PEND_DT
    uc = _clamp(u[0], -common.PEND_MAX_TORQUE, common.PEND_MAX_TORQUE)
    thdot = _clamp(x[1] + (3.0 * g / (2.0 * l) * fast_sin(x[0]) + 3.0 / (m * l * l) * uc) * dt,
                   -common.PEND_MAX_SPEED, common.PEND_MAX_SPEED)
    return [x[0] + thdot * dt, thdot]


def pendulum_cost(x, u):
    uc = _clamp(u[0], -common.PEND_MAX_TORQUE, common.PEND_MAX_TORQUE)
    th = fast_wrap_angle(x[0])
    return th * th + 0.1 * x[1] * x[1] + 0.001 * uc * uc


class Upright:
    """pendulum.rs `Upright`: |wrap(theta)| < 0.1 and |theta_dot| < 0.5 over the last 50 states
    (the final state included), and more than 50 states seen."""

    TAIL = 50

    def __init__(self):
        self.seen = 0
        self.last = deque(maxlen=self.TAIL)

    def observe(self, x):
        self.seen += 1
        self.last.append((abs(fast_wrap_angle(x[0])), abs(x[1])))

    def outcome(self):
        wa = max((p[0] for p in self.last), default=0.0)
        ws = max((p[1] for p in self.last), default=0.0)
        ok = self.seen > self.TAIL and wa < 0.1 and ws < 0.5
        return ok, (f"last {len(self.last)} states: max |angle| {wa:.4f} (< 0.1), "
                    f"max |speed| {ws:.4f} (< 0.5)")


# ---------------------------------------------------------------- navigation.rs
def _goal_cost(goal, px, py, speed_sq, w_goal, w_vel):
    dx, dy = px - goal[0], py - goal[1]
    d2 = dx * dx + dy * dy
    return w_goal * math.sqrt(d2) + w_vel * speed_sq / (1.0 + d2)


def _in_collision(obstacles, margin, px, py):
    for cx, cy, r in obstacles:
        dx, dy = px - cx, py - cy
        rr = r + margin
        if dx * dx + dy * dy < rr * rr:
            return True
    return False


def _segment_distance_sq(px, py, a, b):  # geometry.rs
    dx, dy = b[0] - a[0], b[1] - a[1]
    rx, ry = px - a[0], py - a[1]
    len2 = dx * dx + dy * dy
    t = _clamp((rx * dx + ry * dy) / len2, 0.0, 1.0) if len2 > 0.0 else 0.0
    ex, ey = rx - t * dx, ry - t * dy
    return ex * ex + ey * ey


class GoalCriterion:
    """navigation.rs `GoalCriterion`: the final state within `radius` of the goal with
    speed(x) < `max_speed`, and no straight segment between consecutive positions inside an
    (uninflated) obstacle."""

    def __init__(self, obstacles, goal, radius, max_speed, speed, dt):
        self.obstacles, self.goal, self.radius = obstacles, goal, radius
        self.max_speed, self.speed, self.dt = max_speed, speed, dt
        self.previous = None
        self.clearance = math.inf
        self.first_at_goal = None
        self.last = None
        self.seen = 0

    def _dist(self, x):
        return math.hypot(x[0] - self.goal[0], x[1] - self.goal[1])

    def observe(self, x):
        here = (x[0], x[1])
        if self.previous is not None:
            for cx, cy, r in self.obstacles:
                c = math.sqrt(_segment_distance_sq(cx, cy, self.previous, here)) - r
                self.clearance = min(self.clearance, c)
        self.previous = here
        if (self.first_at_goal is None and self._dist(x) < self.radius
                and self.speed(x) < self.max_speed):
            self.first_at_goal = self.seen
        self.last = list(x)
        self.seen += 1

    def outcome(self):
        d = self._dist(self.last) if self.last else math.inf
        s = self.speed(self.last) if self.last else math.inf
        ok = d < self.radius and s < self.max_speed and self.clearance >= 0.0 and self.seen > 1
        arrival = ("never at goal" if self.first_at_goal is None
                   else f"first at goal at t = {self.first_at_goal * self.dt:.2f} s")
        return ok, (f"final distance to goal {d:.3f} (< {self.radius}), final speed {s:.3f} "
                    f"(< {self.max_speed}), min obstacle clearance {self.clearance:.3f} (>= 0), "
                    f"{arrival}")


# ---------------------------------------------------------------- unicycle.rs
UNI_GOAL_RADIUS = 0.3
UNI_GOAL_SPEED = 0.3


def unicycle_plant(x, u):
    dt = common.UNI_DT
    a = _clamp(u[0], -common.UNI_A_MAX, common.UNI_A_MAX)
    w = _clamp(u[1], -common.UNI_OMEGA_MAX, common.UNI_OMEGA_MAX)
    s, c = fast_sin_cos(x[2])
    return [x[0] + x[3] * c * dt, x[1] + x[3] * s * dt, x[2] + w * dt,
            _clamp(x[3] + a * dt, common.UNI_V_MIN, common.UNI_V_MAX)]


def unicycle_cost(x, u):
    hit = _in_collision(common.UNI_OBSTACLES, common.UNI_MARGIN, x[0], x[1])
    a = _clamp(u[0], -common.UNI_A_MAX, common.UNI_A_MAX)
    w = _clamp(u[1], -common.UNI_OMEGA_MAX, common.UNI_OMEGA_MAX)
    base = (_goal_cost(common.UNI_GOAL, x[0], x[1], x[3] * x[3], common.UNI_W_GOAL,
                       common.UNI_W_VEL)
            + common.UNI_W_ACC * a * a + common.UNI_W_TURN * w * w)
    return base + common.UNI_W_COLLISION if hit else base


# ---------------------------------------------------------------- double_integrator.rs
DI_GOAL_RADIUS = 0.3
DI_GOAL_SPEED = 0.3


def di_plant(x, u):
    dt, amax = common.DI_DT, common.DI_A_MAX
    ax = _clamp(u[0], -amax, amax)
    ay = _clamp(u[1], -amax, amax)
    return [x[0] + x[2] * dt + 0.5 * ax * dt * dt, x[1] + x[3] * dt + 0.5 * ay * dt * dt,
            x[2] + ax * dt, x[3] + ay * dt]


def di_cost(x, u):
    hit = _in_collision(common.DI_OBSTACLES, common.DI_MARGIN, x[0], x[1])
    amax = common.DI_A_MAX
    ax = _clamp(u[0], -amax, amax)
    ay = _clamp(u[1], -amax, amax)
    base = (_goal_cost(common.DI_GOAL, x[0], x[1], x[2] * x[2] + x[3] * x[3], common.DI_W_GOAL,
                       common.DI_W_VEL)
            + common.DI_W_CTRL * (ax * ax + ay * ay))
    return base + common.DI_W_COLLISION if hit else base


# ---------------------------------------------------------------- the tasks
# Everything but the planner: our task's plant, stage cost (= its running cost at t = 0),
# criterion, start state, episode length, and the planner settings of its default config
# (horizon T, noise std sigma, lambda, bounds), which the peers get too. `main` checks the
# settings against `mppi config TASK` before running.
TASKS = {
    "pendulum": dict(
        model="pendulum", nx=2, nu=1, steps=200, x0=[math.pi, 0.0], dt=common.PEND_DT,
        T=30, sigma=[1.0], lam=1.0,
        u_min=[-common.PEND_MAX_TORQUE], u_max=[common.PEND_MAX_TORQUE],
        plant=pendulum_plant, stage_cost=pendulum_cost, criterion=Upright,
        success="|θ| < 0.1 rad and |θ̇| < 0.5 rad/s over the last 50 states",
        ks_ours=[125, 250, 500, 1000, 2000, 4000, 8000], quick_ks_ours=[250, 1000],
    ),
    "unicycle": dict(
        model="unicycle", nx=4, nu=2, steps=250, x0=[0.0, 0.0, 0.0, 0.0], dt=common.UNI_DT,
        T=40, sigma=[1.0, 1.0], lam=1.0,
        u_min=[-common.UNI_A_MAX, -common.UNI_OMEGA_MAX],
        u_max=[common.UNI_A_MAX, common.UNI_OMEGA_MAX],
        plant=unicycle_plant, stage_cost=unicycle_cost,
        criterion=lambda: GoalCriterion(common.UNI_OBSTACLES, common.UNI_GOAL, UNI_GOAL_RADIUS,
                                        UNI_GOAL_SPEED, lambda x: abs(x[3]), common.UNI_DT),
        success="final state within 0.3 m of the goal with |v| < 0.3 m/s, path clear of the "
                "(uninflated) discs",
        ks_ours=[512, 1024, 2048, 4096, 8192], quick_ks_ours=[512, 2048],
    ),
    "double_integrator": dict(
        model="double_integrator", nx=4, nu=2, steps=200, x0=[0.0, 0.0, 0.0, 0.0],
        dt=common.DI_DT, T=40, sigma=[2.0, 2.0], lam=1.0,
        u_min=[-common.DI_A_MAX, -common.DI_A_MAX], u_max=[common.DI_A_MAX, common.DI_A_MAX],
        plant=di_plant, stage_cost=di_cost,
        criterion=lambda: GoalCriterion(common.DI_OBSTACLES, common.DI_GOAL, DI_GOAL_RADIUS,
                                        DI_GOAL_SPEED, lambda x: math.hypot(x[2], x[3]),
                                        common.DI_DT),
        success="final state within 0.3 m of the goal with |v| < 0.3 m/s, path clear of the "
                "(uninflated) discs",
        ks_ours=[512, 1024, 2048, 4096, 8192], quick_ks_ours=[512, 2048],
    ),
}
PEER_KS = [1000, 4096]
QUICK_PEER_KS = [250, 1000]


def problem_spec(task, K):
    """A common.PROBLEMS-style entry (what bench_torch.build / bench_jax take) for `task`."""
    t = TASKS[task]
    return dict(model=t["model"], K=K, T=t["T"], nx=t["nx"], nu=t["nu"], sigma=list(t["sigma"]),
                lam=t["lam"], u_min=list(t["u_min"]), u_max=list(t["u_max"]), x0=list(t["x0"]),
                label=f"closed-loop {task}, T = {t['T']}, K = {K}")


def run_loop(task, act, steps=None, keep_states=False):
    """One closed-loop episode of `task`, as run_controller_episode (episode.rs) runs it:
    u = act(k, x) -> (control list, seconds); stage cost of (x, u); plant step; the criterion
    sees every visited state, the final one included."""
    t = TASKS[task]
    plant, cost, crit = t["plant"], t["stage_cost"], t["criterion"]()
    x = [float(v) for v in t["x0"]]
    n = t["steps"] if steps is None else steps
    total, times, states = 0.0, [], [list(x)]
    for k in range(n):
        u, sec = act(k, x)
        times.append(sec)
        c = cost(x, u)
        nxt = plant(x, u)
        if not all(math.isfinite(v) for v in nxt):
            raise FloatingPointError(f"{task}: non-finite plant state {nxt} at step {k}")
        crit.observe(x)
        total += c
        x = nxt
        if keep_states:
            states.append(list(x))
    crit.observe(x)
    ok, msg = crit.outcome()
    out = dict(total_cost=total, success=ok, outcome=msg, steps=n, final_state=x, times=times)
    if keep_states:
        out["states"] = states
    return out


def step_time_stats(times, skip):
    """Median, mean, min and max (ms) of the step times without the first `skip`."""
    ts = times[skip:] if len(times) > skip else times
    return dict(step_ms_median=statistics.median(ts) * 1e3,
                step_ms_mean=sum(ts) / len(ts) * 1e3,
                step_ms_min=min(ts) * 1e3, step_ms_max=max(ts) * 1e3, timed_steps=len(ts))


# ---------------------------------------------------------------- ours (the CLI)
def read_trajectory(path, nx, nu):
    """trajectory.csv -> (states, controls, stage_costs): step, time, nx states, nu controls,
    stage_cost; the last row (the final state) has no control."""
    states, controls, costs = [], [], []
    with open(path) as f:
        next(f)
        for line in f:
            cols = line.rstrip("\n").split(",")
            states.append([float(v) for v in cols[2:2 + nx]])
            if cols[2 + nx] != "":
                controls.append([float(v) for v in cols[2 + nx:2 + nx + nu]])
                costs.append(float(cols[2 + nx + nu]))
    return states, controls, costs


def planning_times_ms(path):
    """Per-step planning time (ms) from diagnostics.csv (one row per EM iteration, the step's
    time repeated on each)."""
    with open(path) as f:
        head = next(f).rstrip("\n").split(",")
        i_step, i_time = head.index("step"), head.index("planning_time_ms")
        per_step = {}
        for line in f:
            cols = line.rstrip("\n").split(",")
            per_step.setdefault(int(cols[i_step]), float(cols[i_time]))
    return [per_step[k] for k in sorted(per_step)]


def run_ours(a, task, K, precision, seed, variant, runs_dir):
    name, sets, config = variant["name"], variant["sets"], variant.get("config")
    tag = f"ours-{name}-{task}-{precision}-k{K}-s{seed}"
    keep = os.path.join(runs_dir, tag)
    tmp = tempfile.mkdtemp(prefix="closed-loop-")
    cmd = a.pin + [a.mppi, "run", task, "--seed", str(seed)]
    if config:
        cmd += ["--config", config]
    for kv in sets:
        cmd += ["--set", kv]
    # after the variant's settings, so the sweep's K and precision win
    cmd += ["--set", f"samples={K}", "--set", f"precision={precision}", "--set", "threads=1",
            "--set", "diagnostics=basic", "--no-animation", "-q", "--out", tmp]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}")
    os.makedirs(keep, exist_ok=True)
    for f in ("summary.json", "trajectory.csv", "diagnostics.csv"):
        shutil.move(os.path.join(tmp, f), os.path.join(keep, f))
    shutil.rmtree(tmp, ignore_errors=True)
    with open(os.path.join(keep, "summary.json")) as f:
        summ = json.load(f)
    t = TASKS[task]
    states, controls, costs = read_trajectory(os.path.join(keep, "trajectory.csv"), t["nx"],
                                              t["nu"])
    # replay our executed controls through the Python plant and stage cost
    rep = run_loop(task, lambda k, x: (controls[k], 0.0), steps=len(controls), keep_states=True)
    dstate = max(abs(p - q) for xs, ys in zip(states, rep["states"]) for p, q in zip(xs, ys))
    tot = summ["total_cost"]
    pt = summ["planning_time"]
    per_step = planning_times_ms(os.path.join(keep, "diagnostics.csv"))
    skipped = per_step[a.skip:] if len(per_step) > a.skip else per_step
    cfg = summ.get("config", {})
    ep = dict(
        library="ours", variant=name, task=task, K=K, T=cfg.get("horizon"),
        precision=precision, seed=seed, total_cost=tot, success=bool(summ["success"]),
        outcome=summ.get("outcome"), steps=summ["steps"],
        step_ms_median=pt["median_ms"], step_ms_mean=pt["mean_ms"],
        step_ms_p99=pt.get("p99_ms"), step_ms_max=pt.get("max_ms"),
        step_ms_median_skip=statistics.median(skipped), step_ms_mean_skip=statistics.fmean(skipped),
        timing="planning_time of summary.json (the planner's own clock, every step)",
        final_state=summ.get("final_state"), wall_s=wall,
        config=dict(samples=cfg.get("samples"), precision=cfg.get("precision"),
                    iterations=cfg.get("iterations"), threads=cfg.get("threads")),
        variant_sets=list(sets) + ([f"--config {config}"] if config else []),
        run_dir=os.path.relpath(keep, a.out),
        replay=dict(total_cost=rep["total_cost"],
                    cost_abs_diff=abs(rep["total_cost"] - tot),
                    cost_rel_diff=abs(rep["total_cost"] - tot) / max(abs(tot), 1e-300),
                    max_state_abs_diff=dstate,
                    stage_cost_max_abs_diff=None,
                    success=rep["success"], success_agrees=rep["success"] == bool(summ["success"]),
                    steps_agree=len(controls) == summ["steps"] == t["steps"]),
    )
    # the stage costs one by one (trajectory.csv prints them in full precision)
    cost = t["stage_cost"]
    ep["replay"]["stage_cost_max_abs_diff"] = max(
        abs(cost(x, u) - c) for x, u, c in zip(states, controls, costs))
    return ep


# ---------------------------------------------------------------- the peers
PEERS = {
    "torch": dict(label="pytorch-mppi", venv=".venv-torch"),
    "jax": dict(label="jax-mppi", venv=".venv-jax"),
}


def peer_env():
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
               JAX_PLATFORMS="cpu")
    return env


def run_peer(a, lib, task, K, dtype, runs_dir, logs_dir):
    py = a.python_torch if lib == "torch" else a.python_jax
    tag = f"{lib}-{task}-{dtype}-k{K}"
    out = os.path.join(runs_dir, tag + ".json")
    log = os.path.join(logs_dir, tag + ".log")
    cmd = a.pin + [py, os.path.join(HERE, "closed_loop_peer.py"), "--lib", lib, "--task", task,
                   "--k", str(K), "--dtype", dtype, "--seeds", ",".join(map(str, a.seeds)),
                   "--warmup-steps", str(a.warmup_steps), "--skip", str(a.skip), "--out", out]
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=peer_env())
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    with open(out) as f:
        res = json.load(f)
    for ep in res["episodes"]:
        ep.update(library=PEERS[lib]["label"], variant="default", task=task, K=K,
                  T=res["T"], precision="f32" if dtype == "float32" else "f64")
    return res, wall


# ---------------------------------------------------------------- checks of the settings
def check_task_config(cli, task):
    """Our task's default config must be what the ports and the peers use."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11: skip the check
        print(f"  (tomllib missing: {task}'s config not checked)", file=sys.stderr)
        return None
    text = subprocess.run([cli, "config", task], stdout=subprocess.PIPE, text=True,
                          check=True).stdout
    cfg = tomllib.loads(text)
    t = TASKS[task]

    def bc(v):  # one value is broadcast
        return list(v) * t["nu"] if len(v) == 1 else list(v)

    got = dict(T=cfg["horizon"], sigma=bc(cfg["proposal"]["noise_sigma"]),
               lam=cfg["weighting"]["temperature"]["lambda"], u_min=bc(cfg["u_min"]),
               u_max=bc(cfg["u_max"]))
    want = {k: t[k] for k in got}
    fixed = dict(iterations=cfg["iterations"], proposal=cfg["proposal"]["kind"],
                 temperature=cfg["weighting"]["temperature"]["kind"], discount=cfg["discount"])
    if got != want or fixed != dict(iterations=1, proposal="gaussian", temperature="fixed",
                                    discount=1.0):
        raise SystemExit(f"{task}: `{cli} config {task}` gives {got} {fixed}, the ports assume "
                         f"{want}; update TASKS in closed_loop.py")
    return dict(got, iterations=1, shift_fill=cfg.get("shift_fill"),
                control_cost_gamma=cfg["weighting"].get("control_cost_gamma"))


# ---------------------------------------------------------------- summary, table, plot
LIB_ORDER = {"ours": 0, "pytorch-mppi": 1, "jax-mppi": 2}


def row_label(ep):
    if ep["library"] == "ours":
        return "ours" if ep["variant"] == "default" else f"ours [{ep['variant']}]"
    return ep["library"]


def aggregate(episodes):
    groups = {}
    for ep in episodes:
        key = (ep["task"], row_label(ep), ep["precision"], ep["K"])
        groups.setdefault(key, []).append(ep)
    rows = []
    for (task, label, prec, K), eps in groups.items():
        eps.sort(key=lambda e: e["seed"])
        costs = [e["total_cost"] for e in eps]
        meds = [e["step_ms_median"] for e in eps]
        rows.append(dict(
            task=task, label=label, library=eps[0]["library"], variant=eps[0]["variant"],
            precision=prec, K=K, T=eps[0].get("T"), seeds=[e["seed"] for e in eps],
            n=len(eps), successes=sum(bool(e["success"]) for e in eps),
            cost_median=statistics.median(costs), cost_min=min(costs), cost_max=max(costs),
            ms_median=statistics.median(meds), ms_min=min(meds), ms_max=max(meds),
            ms_mean=statistics.fmean(e["step_ms_mean"] for e in eps),
        ))
    rows.sort(key=lambda r: (list(TASKS).index(r["task"]) if r["task"] in TASKS else 99,
                             LIB_ORDER.get(r["library"], 9), r["variant"] != "default",
                             r["label"], r["precision"] != "f64", r["K"]))
    return rows


def fmt(v):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    a = abs(v)
    if a >= 1000:
        return f"{v:.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _la(v):
    return "–" if not v else " ".join(f"{x:.2f}" for x in v)


def write_markdown(payload, path):
    rows = aggregate(payload["episodes"])
    meta = payload["meta"]
    L = ["# Closed-loop cost at equal time: ours vs pytorch-mppi and jax-mppi", ""]
    L.append(f"- **Date{' (latest run)' if meta.get('previous_meta') else ''}:** "
             f"{meta.get('date')}; **machine:** {meta.get('cpu')}, "
             f"{meta.get('nproc')} CPUs; pinned to CPU {meta.get('cpu_pin')}; load average "
             f"{_la(meta.get('loadavg_start'))} at the start, {_la(meta.get('loadavg_end'))} at "
             f"the end; {meta.get('duration_s', 0):.0f} s.")
    vers = meta.get("versions", {})
    if vers:
        L.append("- **Versions:** " + "; ".join(f"{k}: {v}" for k, v in vers.items()))
    cmds, m = [], meta
    while m:
        cmds.append((m.get("date"), m.get("command")))
        m = m.get("previous_meta")
    if len(cmds) == 1:
        L.append(f"- **Command:** `{meta.get('command')}`")
    else:
        L.append("- **Commands** (merged with `--append`, oldest first): " + "; ".join(
            f"`{c}` ({d})" for d, c in reversed(cmds)))
    defs = {}
    for e in payload["episodes"]:
        if e["library"] == "ours" and e["variant"] != "default":
            defs.setdefault(e["variant"], e.get("variant_sets") or [])
    for name, sets in sorted(defs.items()):
        L.append(f"- **ours [{name}]:** the task's default config with "
                 + ", ".join(f"`{kv}`" for kv in sets) + " (K and precision from the sweep).")
    L.append("- **Time per step:** ours: the planner's own `planning_time` (summary.json, median "
             "over the episode's steps); peers: wall time of `command(state)` from Python "
             f"(perf_counter, jax with `block_until_ready()`), median over the episode without "
             f"its first {meta.get('skip')} calls, after a {meta.get('warmup_steps')}-step "
             "throwaway warm-up episode (jax compiles there). One thread everywhere. "
             "Cells: median over seeds [min–max]; `ms/step` mean = mean over seeds of each "
             "episode's mean.")
    L.append("- **Same system for all:** our task's plant, stage cost (summed into the total "
             "cost), start state, episode length and success criterion, ported to Python "
             "(f64) for the peers; the peers get our default horizon, noise σ, λ and bounds. "
             "The planners keep their own algorithms (see README.md, *Closed loop*).")
    val = payload.get("validation")
    if val and val.get("episodes"):
        L.append(f"- **Validation (replay of our executed controls through the Python plant "
                 f"and stage cost):** {val['episodes']} episodes; total cost: max relative "
                 f"difference {val['max_cost_rel_diff']:.1e} (max absolute "
                 f"{val['max_cost_abs_diff']:.1e}); stage costs: max absolute difference "
                 f"{val['max_stage_cost_abs_diff']:.1e}; states: max absolute difference "
                 f"{val['max_state_abs_diff']:.1e}; success verdict agrees in "
                 f"{val['success_agrees']}/{val['episodes']}.")
    for task in [t for t in TASKS if any(r["task"] == t for r in rows)]:
        t = TASKS[task]
        L += ["", f"## {task}", "",
              f"{t['steps']} steps of {t['dt']} s, start {t['x0']}, T = {t['T']}, "
              f"σ = {t['sigma']}, λ = {t['lam']}, bounds {t['u_min']} .. {t['u_max']}. "
              f"Success: {t['success']}.", "",
              "| library | precision | K | total cost: median [min–max] | successes | "
              "ms/step: median [min–max] | ms/step mean |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in rows:
            if r["task"] != task:
                continue
            L.append(f"| {r['label']} | {r['precision']} | {r['K']} | "
                     f"{fmt(r['cost_median'])} [{fmt(r['cost_min'])}–{fmt(r['cost_max'])}] | "
                     f"{r['successes']}/{r['n']} | {fmt(r['ms_median'])} "
                     f"[{fmt(r['ms_min'])}–{fmt(r['ms_max'])}] | {fmt(r['ms_mean'])} |")
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))
    return "\n".join(L)


def plot(json_path, out_dir):
    """The cost-vs-time plots; needs matplotlib (run in an interpreter that has it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(json_path) as f:
        payload = json.load(f)
    rows = aggregate(payload["episodes"])
    colors = {"ours": "tab:blue", "pytorch-mppi": "tab:red", "jax-mppi": "tab:green"}
    extra = ["tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    markers = {"ours": "o", "pytorch-mppi": "s", "jax-mppi": "^"}
    written = []
    for task in [t for t in TASKS if any(r["task"] == t for r in rows)]:
        t = TASKS[task]
        fig, ax = plt.subplots(figsize=(9, 6))
        series = {}
        for r in rows:
            if r["task"] == task:
                series.setdefault((r["label"], r["precision"]), []).append(r)
        all_costs = []
        others = sorted({lab for lab, _ in series if lab not in colors})
        for (label, prec), rs in series.items():
            rs.sort(key=lambda r: r["K"])
            lib = rs[0]["library"]
            color = colors.get(label) or extra[others.index(label) % len(extra)]
            xs = [r["ms_median"] for r in rs]
            ys = [r["cost_median"] for r in rs]
            lo = [r["cost_median"] - r["cost_min"] for r in rs]
            hi = [r["cost_max"] - r["cost_median"] for r in rs]
            all_costs += [r["cost_min"] for r in rs] + [r["cost_max"] for r in rs]
            ax.errorbar(xs, ys, yerr=[lo, hi], color=color, marker=markers.get(lib, "D"),
                        linestyle="-" if prec == "f32" else "--",
                        markerfacecolor=color if prec == "f32" else "white",
                        capsize=3, label=f"{label} {prec}")
            for r, x, y in zip(rs, xs, ys):
                # f32 labels above right, f64 below right, so that the two do not overlap
                ax.annotate(f"K={r['K']}\n{r['successes']}/{r['n']}", (x, y),
                            textcoords="offset points",
                            xytext=(4, 4) if prec == "f32" else (4, -18), fontsize=7,
                            color=color)
        ax.set_xscale("log")
        pos = [c for c in all_costs if c > 0]
        if pos and max(pos) / min(pos) > 20:
            ax.set_yscale("log")
        ax.set_xlabel("time per control step [ms] (median over the episode, 1 thread, log scale)")
        ax.set_ylabel(f"episode total cost (sum of {t['steps']} stage costs) [cost units]")
        ax.set_title(f"{task}: closed-loop cost vs time per step\n(median over seeds "
                     f"{','.join(map(str, sorted({s for r in rows for s in r['seeds']})))}, "
                     f"bars min–max; labels: K and successes)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, title="filled/solid: f32, open/dashed: f64", title_fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, f"closed_loop_{task}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def find_plot_python(preferred):
    cands = [preferred] if preferred else []
    cands += [sys.executable] + [os.path.join(HERE, v, "bin", "python")
                                 for v in (".venv-torch", ".venv-mppi", ".venv-jax")]
    for py in cands:
        if py and os.path.exists(py) and subprocess.run(
                [py, "-c", "import matplotlib"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL).returncode == 0:
            return py
    return None


def validation_summary(episodes):
    reps = [e["replay"] for e in episodes if e["library"] == "ours" and e.get("replay")]
    if not reps:
        return None
    return dict(
        episodes=len(reps),
        max_cost_rel_diff=max(r["cost_rel_diff"] for r in reps),
        max_cost_abs_diff=max(r["cost_abs_diff"] for r in reps),
        max_state_abs_diff=max(r["max_state_abs_diff"] for r in reps),
        max_stage_cost_abs_diff=max(r["stage_cost_max_abs_diff"] for r in reps),
        success_agrees=sum(bool(r["success_agrees"]) for r in reps),
        steps_agree=sum(bool(r["steps_agree"]) for r in reps),
    )


def render(out_dir, plot_python=None):
    jp = os.path.join(out_dir, "closed_loop.json")
    with open(jp) as f:
        payload = json.load(f)
    md = write_markdown(payload, os.path.join(out_dir, "closed_loop.md"))
    py = find_plot_python(plot_python)
    if py is None:
        print("no interpreter with matplotlib found: no plots (pip install matplotlib into "
              ".venv-mppi, or pass --plot-python)", file=sys.stderr)
    else:
        proc = subprocess.run([py, os.path.abspath(__file__), "--plot-only", "--out", out_dir],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            print(f"plotting failed with {py}:\n{proc.stdout[-2000:]}", file=sys.stderr)
        else:
            print(proc.stdout.strip(), file=sys.stderr)
    return md


# ---------------------------------------------------------------- command line
def split_top(s, sep=","):
    """Split on `sep` outside brackets, braces and quotes (TOML values may hold commas)."""
    out, depth, quote, cur = [], 0, None, ""
    for ch in s:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == sep and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    out.append(cur)
    return [p.strip() for p in out if p.strip()]


def parse_variant(text):
    """NAME[@TASK[+TASK...]]:key=val,key=val,...  (`config=FILE` passes --config FILE)."""
    head, _, body = text.partition(":")
    name, _, tasks = head.partition("@")
    if not name or any(c in name for c in "/ "):
        raise argparse.ArgumentTypeError(f"bad variant name in {text!r}")
    sets, config = [], None
    for kv in split_top(body):
        if "=" not in kv:
            raise argparse.ArgumentTypeError(f"variant {name}: {kv!r} is not KEY=VALUE")
        k, v = kv.split("=", 1)
        if k.strip() == "config":
            config = os.path.abspath(v.strip())
        else:
            sets.append(f"{k.strip()}={v.strip()}")
    return dict(name=name, tasks=[t for t in tasks.split("+") if t] or None, sets=sets,
                config=config)


def parse_ks(text, tasks):
    """'125,250' (every task) or 'pendulum=125,250;unicycle=512' -> {task: [K, ...]}."""
    if "=" not in text:
        ks = [int(v) for v in text.split(",") if v.strip()]
        return {t: ks for t in tasks}
    out = {}
    for part in text.split(";"):
        if part.strip():
            t, _, v = part.partition("=")
            out[t.strip()] = [int(x) for x in v.split(",") if x.strip()]
    return out


def parse_seeds(text):
    seeds = []
    for part in text.split(","):
        if ".." in part:
            lo, hi = part.split("..")
            seeds += list(range(int(lo), int(hi) + 1))
        elif part.strip():
            seeds.append(int(part))
    return seeds


def main():
    p = argparse.ArgumentParser(
        description="Closed-loop cost at equal time: ours vs pytorch-mppi and jax-mppi",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tasks", default="pendulum,unicycle",
                   help="comma-separated: " + ", ".join(TASKS))
    p.add_argument("--seeds", default="0..4", help="e.g. 0..4 or 0,1,2")
    p.add_argument("--ks-ours", default=None,
                   help="K sweep for ours: '125,250' for every task or "
                        "'pendulum=125,250;unicycle=512,1024' (default: per task, "
                        + "; ".join(f"{t}: {','.join(map(str, v['ks_ours']))}"
                                    for t, v in TASKS.items()) + ")")
    p.add_argument("--ks-peers", default=None,
                   help=f"K for the peers, same syntax (default {','.join(map(str, PEER_KS))})")
    p.add_argument("--precisions", default="f64,f32", help="ours: rollout precisions")
    p.add_argument("--peer-dtypes", default="float32", help="peers: float32 and/or float64")
    p.add_argument("--libs", default="ours,torch,jax", help="comma-separated: ours, torch, jax")
    p.add_argument("--ours-variant", action="append", default=[], type=parse_variant,
                   metavar="NAME[@TASK+...]:KEY=VAL,...",
                   help="an extra row of ours with these `--set KEY=VAL` settings (before the "
                        "sweep's samples and precision, which win; `config=FILE` adds "
                        "--config FILE); @TASK limits it to tasks; repeatable")
    p.add_argument("--skip-ours-default", action="store_true",
                   help="do not run ours with the task's default config (only the variants)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "closed_loop"),
                   help="output folder")
    p.add_argument("--append", action="store_true",
                   help="merge into OUT/closed_loop.json: episodes of the same (library, "
                        "variant, task, K, precision, seed) are replaced, others kept")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: seeds 0,1; ours K " + "; ".join(
                       f"{t}: {','.join(map(str, v['quick_ks_ours']))}" for t, v in TASKS.items())
                   + f"; peers K {','.join(map(str, QUICK_PEER_KS))} (explicit options win)")
    p.add_argument("--mppi", default=None,
                   help="the mppi CLI (default /tmp/mppi-base if it exists, else "
                        "target/release/mppi)")
    p.add_argument("--cpu", type=int, default=int(os.environ.get("PEERS_CPU", "0")),
                   help="pin every run to this CPU with taskset -c (-1: no pinning)")
    p.add_argument("--python-torch", default=os.path.join(HERE, ".venv-torch", "bin", "python"))
    p.add_argument("--python-jax", default=os.path.join(HERE, ".venv-jax", "bin", "python"))
    p.add_argument("--plot-python", default=None,
                   help="interpreter with matplotlib for the plots (default: the first of this "
                        "one, .venv-torch, .venv-mppi, .venv-jax that imports it)")
    p.add_argument("--warmup-steps", type=int, default=20,
                   help="peers: steps of the throwaway warm-up episode (jax compiles there)")
    p.add_argument("--skip", type=int, default=3,
                   help="peers: first calls of each episode left out of the step time")
    p.add_argument("--render-only", action="store_true",
                   help="only rewrite closed_loop.md and the plots from OUT/closed_loop.json")
    p.add_argument("--plot-only", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    a.out = os.path.abspath(a.out)

    if a.plot_only:
        for path in plot(os.path.join(a.out, "closed_loop.json"), a.out):
            print(f"wrote {path}")
        return
    if a.render_only:
        print(render(a.out, a.plot_python))
        return

    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in TASKS:
            p.error(f"unknown task {t!r} (have {', '.join(TASKS)})")
    a.seeds = parse_seeds(a.seeds if not (a.quick and a.seeds == "0..4") else "0,1")
    if a.ks_ours:
        ks_ours = parse_ks(a.ks_ours, tasks)
    else:
        ks_ours = {t: TASKS[t]["quick_ks_ours" if a.quick else "ks_ours"] for t in tasks}
    ks_peers = parse_ks(a.ks_peers, tasks) if a.ks_peers else {
        t: QUICK_PEER_KS if a.quick else PEER_KS for t in tasks}
    libs = [s.strip() for s in a.libs.split(",") if s.strip()]
    for lib in libs:
        if lib not in ("ours", "torch", "jax"):
            p.error(f"unknown library {lib!r}")
    precisions = [s.strip() for s in a.precisions.split(",") if s.strip()]
    dtypes = [s.strip() for s in a.peer_dtypes.split(",") if s.strip()]
    if a.mppi is None:
        a.mppi = "/tmp/mppi-base" if os.path.exists("/tmp/mppi-base") else os.path.join(
            REPO, "target", "release", "mppi")
    a.mppi = os.path.abspath(a.mppi)
    a.pin = ["taskset", "-c", str(a.cpu)] if a.cpu >= 0 and shutil.which("taskset") else []
    variants = ([] if a.skip_ours_default else [dict(name="default", tasks=None, sets=[],
                                                     config=None)]) + a.ours_variant

    runs_dir = os.path.join(a.out, "runs")
    logs_dir = os.path.join(a.out, "logs")
    os.makedirs(runs_dir, exist_ok=True)
    os.makedirs(logs_dir, exist_ok=True)
    jp = os.path.join(a.out, "closed_loop.json")
    old = None
    if a.append and os.path.exists(jp):
        with open(jp) as f:
            old = json.load(f)

    cpu = common.environment()["cpu"]
    meta = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                command=" ".join(["python3", os.path.relpath(__file__, REPO)] + sys.argv[1:]),
                cpu=cpu, nproc=os.cpu_count(), cpu_pin=a.cpu if a.pin else None,
                platform=platform.platform(), loadavg_start=list(os.getloadavg()),
                mppi=a.mppi, skip=a.skip, warmup_steps=a.warmup_steps, seeds=a.seeds,
                ks_ours=ks_ours, ks_peers=ks_peers, libs=libs, precisions=precisions,
                peer_dtypes=dtypes, variants=variants, versions={}, task_configs={})
    try:
        meta["git"] = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True).stdout.strip()
    except OSError:
        pass

    episodes, t_start = [], time.perf_counter()
    if "ours" in libs:
        if not os.path.exists(a.mppi):
            raise SystemExit(f"no mppi CLI at {a.mppi} (--mppi)")
        meta["versions"]["mppi CLI"] = subprocess.run(
            [a.mppi, "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
        for t in tasks:
            meta["task_configs"][t] = check_task_config(a.mppi, t)

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", file=sys.stderr, flush=True)

    for task in tasks:
        if "ours" in libs:
            for v in variants:
                if v["tasks"] and task not in v["tasks"]:
                    continue
                for prec in precisions:
                    for K in ks_ours.get(task, []):
                        for seed in a.seeds:
                            ep = run_ours(a, task, K, prec, seed, v, runs_dir)
                            episodes.append(ep)
                            rep = ep["replay"]
                            log(f"ours[{v['name']}] {task} {prec} K={K} seed={seed}: cost "
                                f"{ep['total_cost']:.4f} success {ep['success']} "
                                f"{ep['step_ms_median']:.3f} ms/step (replay: rel diff "
                                f"{rep['cost_rel_diff']:.1e}, verdict "
                                f"{'agrees' if rep['success_agrees'] else 'DIFFERS'})")
                            if rep["cost_rel_diff"] > 1e-9 or not rep["success_agrees"]:
                                log("  WARNING: the Python plant does not reproduce this "
                                    "episode (see replay in the JSON)")
        for lib in [x for x in libs if x in PEERS]:
            for dtype in dtypes:
                for K in ks_peers.get(task, []):
                    res, wall = run_peer(a, lib, task, K, dtype, runs_dir, logs_dir)
                    meta["versions"].update(res.get("versions", {}))
                    for ep in res["episodes"]:
                        ep["process_wall_s"] = wall
                        episodes.append(ep)
                        log(f"{ep['library']} {task} {dtype} K={K} seed={ep['seed']}: cost "
                            f"{ep['total_cost']:.4f} success {ep['success']} "
                            f"{ep['step_ms_median']:.3f} ms/step")

    meta["loadavg_end"] = list(os.getloadavg())
    meta["duration_s"] = time.perf_counter() - t_start
    if old is not None:
        def key(e):
            return (e["library"], e["variant"], e["task"], e["K"], e["precision"], e["seed"])
        new_keys = {key(e) for e in episodes}
        episodes = [e for e in old["episodes"] if key(e) not in new_keys] + episodes
        meta["appended"] = old["meta"].get("appended", 0) + 1
        meta["previous_meta"] = old["meta"]
        for k, v in old["meta"].get("versions", {}).items():
            meta["versions"].setdefault(k, v)
    payload = dict(meta=meta, validation=validation_summary(episodes), episodes=episodes)
    common.write(jp, payload)
    md = render(a.out, a.plot_python)
    print(md)
    log(f"wrote {jp} and closed_loop.md in {a.out}")


if __name__ == "__main__":
    main()
