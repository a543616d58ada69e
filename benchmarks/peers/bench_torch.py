"""pytorch-mppi (PyPI `pytorch-mppi`, module `pytorch_mppi`) on the four peer-comparison problems.

One timed call = one `pytorch_mppi.MPPI.command(state)` with its defaults: shift the plan
(`shift_nominal_trajectory=True`), then sample, roll out, weight and update once. Eager mode on
the CPU, one thread (`torch.set_num_threads(1)`). pytorch-mppi calls batched functions: dynamics
and cost take states (K, nx) and actions (K, nu); its cost sees the state *after* the step with
the action.

Run through run.sh (one thread, pinned CPU), or by hand:
    .venv-torch/bin/python bench_torch.py --dtype float32 --out results/torch-float32.json
With --serve (and no --out) it is a long-lived server for interleaved.py (see common.serve).
"""

import os
import sys

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import PROBLEMS  # noqa: E402

args = common.parse_args("pytorch-mppi")

from importlib.metadata import version  # noqa: E402

import torch  # noqa: E402
from pytorch_mppi import MPPI  # noqa: E402

torch.set_num_threads(1)
torch.set_num_interop_threads(1)
DT = torch.float64 if args.dtype == "float64" else torch.float32


def wrap_angle(a):
    # gym's angle_normalize and our wrap_angle: (a + pi) mod 2 pi - pi (floored mod)
    return torch.remainder(a + torch.pi, 2.0 * torch.pi) - torch.pi


# ------------------------------------------------------------------ pendulum.rs
def pendulum_step(x, u):
    uc = torch.clamp(u[:, 0], -common.PEND_MAX_TORQUE, common.PEND_MAX_TORQUE)
    g, m, l, dt = common.PEND_G, common.PEND_M, common.PEND_L, common.PEND_DT
    thdot = torch.clamp(
        x[:, 1] + (3.0 * g / (2.0 * l) * torch.sin(x[:, 0]) + 3.0 / (m * l * l) * uc) * dt,
        -common.PEND_MAX_SPEED,
        common.PEND_MAX_SPEED,
    )
    return torch.stack((x[:, 0] + thdot * dt, thdot), dim=1)


def pendulum_cost(x, u):
    uc = torch.clamp(u[:, 0], -common.PEND_MAX_TORQUE, common.PEND_MAX_TORQUE)
    th = wrap_angle(x[:, 0])
    return th * th + 0.1 * x[:, 1] * x[:, 1] + 0.001 * uc * uc


# ------------------------------------------------------------------ navigation.rs helpers
def obstacle_tensors(obstacles, margin):
    cx = torch.tensor([o[0] for o in obstacles], dtype=DT)
    cy = torch.tensor([o[1] for o in obstacles], dtype=DT)
    r2 = torch.tensor([(o[2] + margin) ** 2 for o in obstacles], dtype=DT)
    return cx, cy, r2


def goal_cost(goal, px, py, speed_sq, w_goal, w_vel):
    dx, dy = px - goal[0], py - goal[1]
    d2 = dx * dx + dy * dy
    return w_goal * torch.sqrt(d2) + w_vel * speed_sq / (1.0 + d2)


def collision(obs, px, py):
    cx, cy, r2 = obs
    dx = px[:, None] - cx
    dy = py[:, None] - cy
    return (dx * dx + dy * dy < r2).any(dim=1)


# ------------------------------------------------------------------ double_integrator.rs
DI_OBS = obstacle_tensors(common.DI_OBSTACLES, common.DI_MARGIN)


def di_step(x, u):
    dt, amax = common.DI_DT, common.DI_A_MAX
    ax = torch.clamp(u[:, 0], -amax, amax)
    ay = torch.clamp(u[:, 1], -amax, amax)
    return torch.stack((
        x[:, 0] + x[:, 2] * dt + 0.5 * ax * dt * dt,
        x[:, 1] + x[:, 3] * dt + 0.5 * ay * dt * dt,
        x[:, 2] + ax * dt,
        x[:, 3] + ay * dt,
    ), dim=1)


def di_cost(x, u):
    amax = common.DI_A_MAX
    ax = torch.clamp(u[:, 0], -amax, amax)
    ay = torch.clamp(u[:, 1], -amax, amax)
    px, py, vx, vy = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
    base = goal_cost(common.DI_GOAL, px, py, vx * vx + vy * vy, common.DI_W_GOAL,
                     common.DI_W_VEL) + common.DI_W_CTRL * (ax * ax + ay * ay)
    return base + common.DI_W_COLLISION * collision(DI_OBS, px, py).to(x.dtype)


# ------------------------------------------------------------------ unicycle.rs
UNI_OBS = obstacle_tensors(common.UNI_OBSTACLES, common.UNI_MARGIN)


def uni_step(x, u):
    dt = common.UNI_DT
    a = torch.clamp(u[:, 0], -common.UNI_A_MAX, common.UNI_A_MAX)
    w = torch.clamp(u[:, 1], -common.UNI_OMEGA_MAX, common.UNI_OMEGA_MAX)
    th, v = x[:, 2], x[:, 3]
    return torch.stack((
        x[:, 0] + v * torch.cos(th) * dt,
        x[:, 1] + v * torch.sin(th) * dt,
        th + w * dt,
        torch.clamp(v + a * dt, common.UNI_V_MIN, common.UNI_V_MAX),
    ), dim=1)


def uni_cost(x, u):
    a = torch.clamp(u[:, 0], -common.UNI_A_MAX, common.UNI_A_MAX)
    w = torch.clamp(u[:, 1], -common.UNI_OMEGA_MAX, common.UNI_OMEGA_MAX)
    px, py, v = x[:, 0], x[:, 1], x[:, 3]
    base = (goal_cost(common.UNI_GOAL, px, py, v * v, common.UNI_W_GOAL, common.UNI_W_VEL)
            + common.UNI_W_ACC * a * a + common.UNI_W_TURN * w * w)
    return base + common.UNI_W_COLLISION * collision(UNI_OBS, px, py).to(x.dtype)


MODELS = {
    "pendulum": (pendulum_step, pendulum_cost),
    "double_integrator": (di_step, di_cost),
    "unicycle": (uni_step, uni_cost),
}


def self_check():
    tol = 1e-4 if args.dtype == "float32" else 1e-10
    for model, (step, cost) in MODELS.items():
        common.run_checks(
            model,
            lambda x, u: step(torch.tensor([x], dtype=DT), torch.tensor([u], dtype=DT))[0].tolist(),
            lambda x, u: float(cost(torch.tensor([x], dtype=DT), torch.tensor([u], dtype=DT))[0]),
            tol,
        )


def build(name):
    """The controller for one problem and its timed call (one command(state))."""
    spec = PROBLEMS[name]
    step, cost = MODELS[spec["model"]]
    torch.manual_seed(0)
    sigma2 = torch.tensor([s * s for s in spec["sigma"]], dtype=DT)
    ctrl = MPPI(
        step,
        cost,
        spec["nx"],
        torch.diag(sigma2),  # covariance; its dtype sets the controller's dtype
        num_samples=spec["K"],
        horizon=spec["T"],
        device="cpu",
        lambda_=spec["lam"],
        u_min=torch.tensor(spec["u_min"], dtype=DT),
        u_max=torch.tensor(spec["u_max"], dtype=DT),
        U_init=torch.zeros(spec["T"], spec["nu"], dtype=DT),  # as jax-mppi and ours
    )
    state = torch.tensor(spec["x0"], dtype=DT)
    last = [None]

    def call():
        last[0] = ctrl.command(state)  # shift_nominal_trajectory=True by default

    return call, ctrl, last


def bench(name):
    call, ctrl, last = build(name)
    per_block, calls = common.measure(call, args.blocks, args.calls, args.warmup)
    return common.record(name, per_block, calls, args.warmup, dict(
        action_dtype=str(last[0].dtype),
        plan_dtype=str(ctrl.U.dtype),
        measured="pytorch_mppi.MPPI.command(state) with defaults (eager, CPU): "
                 "shift + one iteration",
    ))


def main():
    self_check()
    print(f"pytorch-mppi {version('pytorch-mppi')}, torch {torch.__version__}, {args.dtype}, "
          f"threads {torch.get_num_threads()}/{torch.get_num_interop_threads()}", flush=True)
    if args.serve:  # interleaved.py: one long-lived process per dtype
        common.serve("pytorch-mppi", args.dtype, {name: build(name)[0] for name in args.problems},
                     info=dict(versions={p: version(p) for p in ("pytorch-mppi", "torch")},
                               threads=f"{torch.get_num_threads()}/"
                                       f"{torch.get_num_interop_threads()}"),
                     block_seconds=args.block_seconds, warmup=args.warmup)
        return
    results = [bench(name) for name in args.problems]
    common.write(args.out, dict(
        library="pytorch-mppi",
        versions={p: version(p) for p in ("pytorch-mppi", "torch", "numpy",
                                          "arm-pytorch-utilities")},
        dtype=args.dtype,
        threads=f"torch.set_num_threads(1), set_num_interop_threads(1), "
                f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
        torch_config=torch.__config__.parallel_info().splitlines()[:6],
        machine=common.environment(),
        results=results,
    ))


if __name__ == "__main__":
    main()
