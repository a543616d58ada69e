"""jax-mppi (PyPI `jax-mppi`, module `jax_mppi`) on the four peer-comparison problems.

One timed call = one jitted `jax_mppi.mppi.command(config, state, obs, dynamics, running_cost,
shift=True)`: sample, roll out, weight, update (one iteration), then shift the plan, followed by
`block_until_ready()` on the action. Compilation is done in the warm-up and excluded (reported
separately as `compile_s`). jax-mppi vmaps per-sample functions, so dynamics and cost here take
one state (nx,) and one action (nu,); its cost sees the state *before* the step with the action.

Run through run.sh (one thread, pinned CPU), or by hand:
    .venv-jax/bin/python bench_jax.py --dtype float32 --out results/jax-float32.json
With --serve (and no --out) it is a long-lived server for interleaved.py (see common.serve);
compilation happens before the server says it is ready.
"""

import os
import sys

# One thread for XLA's CPU backend unless the caller set XLA_FLAGS itself (run.sh does).
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import PROBLEMS  # noqa: E402

args = common.parse_args("jax-mppi")

import jax  # noqa: E402

if args.dtype == "float64":
    jax.config.update("jax_enable_x64", True)

import time  # noqa: E402
from importlib.metadata import version  # noqa: E402

import jax.numpy as jnp  # noqa: E402
from jax_mppi import mppi  # noqa: E402

DT = jnp.float64 if args.dtype == "float64" else jnp.float32


def wrap_angle(a):
    # gym's angle_normalize and our wrap_angle: (a + pi) mod 2 pi - pi (floored mod)
    return jnp.mod(a + jnp.pi, 2.0 * jnp.pi) - jnp.pi


# ------------------------------------------------------------------ pendulum.rs
def pendulum_step(x, u):
    uc = jnp.clip(u[0], -common.PEND_MAX_TORQUE, common.PEND_MAX_TORQUE)
    g, m, l, dt = common.PEND_G, common.PEND_M, common.PEND_L, common.PEND_DT
    thdot = jnp.clip(
        x[1] + (3.0 * g / (2.0 * l) * jnp.sin(x[0]) + 3.0 / (m * l * l) * uc) * dt,
        -common.PEND_MAX_SPEED,
        common.PEND_MAX_SPEED,
    )
    return jnp.stack([x[0] + thdot * dt, thdot])


def pendulum_cost(x, u):
    uc = jnp.clip(u[0], -common.PEND_MAX_TORQUE, common.PEND_MAX_TORQUE)
    th = wrap_angle(x[0])
    return th * th + 0.1 * x[1] * x[1] + 0.001 * uc * uc


# ------------------------------------------------------------------ navigation.rs helpers
def obstacle_arrays(obstacles, margin):
    cx = jnp.array([o[0] for o in obstacles], dtype=DT)
    cy = jnp.array([o[1] for o in obstacles], dtype=DT)
    r2 = jnp.array([(o[2] + margin) ** 2 for o in obstacles], dtype=DT)
    return cx, cy, r2


def goal_cost(goal, px, py, speed_sq, w_goal, w_vel):
    dx, dy = px - goal[0], py - goal[1]
    d2 = dx * dx + dy * dy
    return w_goal * jnp.sqrt(d2) + w_vel * speed_sq / (1.0 + d2)


def collision(obs, px, py):
    cx, cy, r2 = obs
    dx, dy = px - cx, py - cy
    return jnp.any(dx * dx + dy * dy < r2)


# ------------------------------------------------------------------ double_integrator.rs
DI_OBS = obstacle_arrays(common.DI_OBSTACLES, common.DI_MARGIN)


def di_step(x, u):
    dt, amax = common.DI_DT, common.DI_A_MAX
    ax = jnp.clip(u[0], -amax, amax)
    ay = jnp.clip(u[1], -amax, amax)
    return jnp.stack([
        x[0] + x[2] * dt + 0.5 * ax * dt * dt,
        x[1] + x[3] * dt + 0.5 * ay * dt * dt,
        x[2] + ax * dt,
        x[3] + ay * dt,
    ])


def di_cost(x, u):
    amax = common.DI_A_MAX
    ax = jnp.clip(u[0], -amax, amax)
    ay = jnp.clip(u[1], -amax, amax)
    base = goal_cost(common.DI_GOAL, x[0], x[1], x[2] * x[2] + x[3] * x[3],
                     common.DI_W_GOAL, common.DI_W_VEL) + common.DI_W_CTRL * (ax * ax + ay * ay)
    return base + jnp.where(collision(DI_OBS, x[0], x[1]), common.DI_W_COLLISION, 0.0)


# ------------------------------------------------------------------ unicycle.rs
UNI_OBS = obstacle_arrays(common.UNI_OBSTACLES, common.UNI_MARGIN)


def uni_step(x, u):
    dt = common.UNI_DT
    a = jnp.clip(u[0], -common.UNI_A_MAX, common.UNI_A_MAX)
    w = jnp.clip(u[1], -common.UNI_OMEGA_MAX, common.UNI_OMEGA_MAX)
    s, c = jnp.sin(x[2]), jnp.cos(x[2])
    return jnp.stack([
        x[0] + x[3] * c * dt,
        x[1] + x[3] * s * dt,
        x[2] + w * dt,
        jnp.clip(x[3] + a * dt, common.UNI_V_MIN, common.UNI_V_MAX),
    ])


def uni_cost(x, u):
    a = jnp.clip(u[0], -common.UNI_A_MAX, common.UNI_A_MAX)
    w = jnp.clip(u[1], -common.UNI_OMEGA_MAX, common.UNI_OMEGA_MAX)
    base = (goal_cost(common.UNI_GOAL, x[0], x[1], x[3] * x[3], common.UNI_W_GOAL,
                      common.UNI_W_VEL)
            + common.UNI_W_ACC * a * a + common.UNI_W_TURN * w * w)
    return base + jnp.where(collision(UNI_OBS, x[0], x[1]), common.UNI_W_COLLISION, 0.0)


MODELS = {
    "pendulum": (pendulum_step, pendulum_cost),
    "double_integrator": (di_step, di_cost),
    "unicycle": (uni_step, uni_cost),
}


def self_check():
    tol = 1e-4 if args.dtype == "float32" else 1e-10
    for model, (step, cost) in MODELS.items():
        step_j, cost_j = jax.jit(step), jax.jit(cost)
        common.run_checks(
            model,
            lambda x, u: [float(v) for v in step_j(jnp.array(x, DT), jnp.array(u, DT))],
            lambda x, u: float(cost_j(jnp.array(x, DT), jnp.array(u, DT))),
            tol,
        )


def build(name):
    """The jitted command for one problem and its timed call (not yet compiled)."""
    spec = PROBLEMS[name]
    step, cost = MODELS[spec["model"]]
    sigma2 = jnp.array([s * s for s in spec["sigma"]], dtype=DT)
    config, state = mppi.create(
        nx=spec["nx"],
        nu=spec["nu"],
        noise_sigma=jnp.diag(sigma2),
        num_samples=spec["K"],
        horizon=spec["T"],
        lambda_=spec["lam"],
        u_min=jnp.array(spec["u_min"], dtype=DT),
        u_max=jnp.array(spec["u_max"], dtype=DT),
        key=jax.random.PRNGKey(0),
    )
    obs = jnp.array(spec["x0"], dtype=DT)
    command = jax.jit(
        lambda s, o: mppi.command(config, s, o, dynamics=step, running_cost=cost, shift=True)
    )
    holder = [state]

    def call():
        action, new_state = command(holder[0], obs)
        action.block_until_ready()
        holder[0] = new_state
        return action

    return call, holder


def bench(name):
    call, holder = build(name)
    t0 = time.perf_counter()
    action = call()  # compiles
    compile_s = time.perf_counter() - t0
    per_block, calls = common.measure(call, args.blocks, args.calls, args.warmup)
    return common.record(name, per_block, calls, args.warmup, dict(
        compile_s=compile_s,
        action_dtype=str(action.dtype),
        plan_dtype=str(holder[0].U.dtype),
        measured="jax.jit(jax_mppi.mppi.command)(state, obs) with shift=True, "
                 "then block_until_ready(): one iteration + shift",
    ))


def main():
    self_check()
    print(f"jax-mppi {version('jax-mppi')}, jax {jax.__version__}, {args.dtype}, "
          f"devices {jax.devices()}", flush=True)
    if args.serve:  # interleaved.py: one long-lived process per dtype (jax_enable_x64)
        calls, compile_s = {}, {}
        for name in args.problems:
            call, _ = build(name)
            t0 = time.perf_counter()
            call()  # compiles
            compile_s[name] = time.perf_counter() - t0
            calls[name] = call
        common.serve("jax-mppi", args.dtype, calls,
                     info=dict(versions={p: version(p) for p in ("jax-mppi", "jax", "jaxlib")},
                               compile_s=compile_s, devices=str(jax.devices()),
                               threads="XLA_FLAGS=" + os.environ.get("XLA_FLAGS", "")),
                     block_seconds=args.block_seconds, warmup=args.warmup)
        return
    results = [bench(name) for name in args.problems]
    common.write(args.out, dict(
        library="jax-mppi",
        versions={p: version(p) for p in ("jax-mppi", "jax", "jaxlib", "numpy")},
        dtype=args.dtype,
        threads="XLA_FLAGS=" + os.environ.get("XLA_FLAGS", ""),
        machine=common.environment(),
        results=results,
    ))


if __name__ == "__main__":
    main()
