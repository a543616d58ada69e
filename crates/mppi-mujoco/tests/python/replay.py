"""Replay a trajectory CSV written by the Rust CLI in dm_control's own physics.

The CSV (``trajectory.csv`` of ``mppi`` runs on the MuJoCo tasks) looks like::

    step,time,q.<joint>...,v.<joint>...,a.<actuator>...,u.<actuator>...,stage_cost

* header cells may carry a unit suffix, ``name [unit]``; only the text before
  `` [`` is the name;
* ``q.<joint>``: one column per qpos entry, in model order (every joint of the
  five suite models is a hinge or a slide, so one entry each; a joint with more
  entries would be written ``q.<joint>.0``, ``q.<joint>.1``, ... and is accepted
  in that form), then ``v.<joint>`` per qvel entry, then ``a.<actuator>`` per
  activation (none of the five models has one);
* ``u.<actuator>``: the control applied from that row's state, in actuator
  order;
* row ``i`` holds the state at step ``i`` and the control applied from it; the
  last row holds the final state and empty (or NaN) controls;
* ``time[i+1] - time[i]`` is the control period, ``k`` physics timesteps: the
  Rust side holds each control for ``k`` calls of ``mj_step``.

:func:`replay_csv` sets dm_control's physics to the first row's state, then
applies each row's control for ``k`` steps of ``mujoco.mj_step`` and compares
the state reached with the next row. With the same model, the same MuJoCo build
and a CSV written with round-trip precision (Rust's ``{}`` formatting of f64 is)
the error is exactly 0. Two things can make it merely small instead:

* the constraint solver is warm-started from the previous step's
  accelerations (``qacc_warmstart``), which the CSV does not carry; the replay
  starts from a zero warm start, as ``mj_resetData`` leaves it. If the Rust
  run's first state came out of earlier simulation (e.g. cheetah's 200
  settling steps), contact models (cheetah, hopper) may differ at the solver
  tolerance and then drift;
* contact-rich rollouts amplify any such difference over many steps.
  ``resync=True`` restarts every control period from the CSV's own state and
  reports one-period prediction errors instead.

Only numpy, mujoco and dm_control are needed.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

# dm_control picks a rendering backend on import; nothing here renders.
os.environ.setdefault("MUJOCO_GL", "disable")

import mujoco  # noqa: E402

#: dm_control suite task used for each domain (any task of a domain has the same physics).
DEFAULT_TASKS = {
    "cartpole": "swingup",
    "acrobot": "swingup",
    "reacher": "easy",
    "cheetah": "run",
    "hopper": "hop",
}


@dataclass
class Trajectory:
    """Parsed trajectory CSV."""

    names: list  # header names, unit suffixes removed
    time: np.ndarray  # (rows,)
    state: np.ndarray  # (rows, n_state)
    control: np.ndarray  # (rows, nu); NaN where empty
    state_names: list
    control_names: list


def strip_unit(cell: str) -> str:
    """``'q.slider [m]'`` -> ``'q.slider'``."""
    cell = cell.strip()
    cut = cell.find(" [")
    return cell[:cut] if cut >= 0 else cell


def _to_float(text: str) -> float:
    text = text.strip()
    return math.nan if text == "" else float(text)


def load_trajectory_csv(csv_path) -> Trajectory:
    """Read a trajectory CSV into arrays (state and control columns by prefix)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{csv_path}: empty file")
    names = [strip_unit(c) for c in rows[0]]
    body = [r for r in rows[1:] if r and any(c.strip() for c in r)]
    if not body:
        raise ValueError(f"{csv_path}: no data rows")
    for i, r in enumerate(body):
        if len(r) != len(names):
            raise ValueError(f"{csv_path}: row {i + 1} has {len(r)} cells, header has {len(names)}")
    if "time" not in names:
        raise ValueError(f"{csv_path}: no 'time' column")
    s_idx = [j for j, n in enumerate(names) if n.startswith(("q.", "v.", "a."))]
    u_idx = [j for j, n in enumerate(names) if n.startswith("u.")]
    data = np.array([[_to_float(c) for c in r] for r in body], dtype=float)
    return Trajectory(
        names=names,
        time=data[:, names.index("time")],
        state=data[:, s_idx],
        control=data[:, u_idx],
        state_names=[names[j] for j in s_idx],
        control_names=[names[j] for j in u_idx],
    )


def expected_columns(model) -> tuple:
    """State and control column names (without units) for a compiled model."""
    qwidth = {int(mujoco.mjtJoint.mjJNT_FREE): 7, int(mujoco.mjtJoint.mjJNT_BALL): 4}
    vwidth = {int(mujoco.mjtJoint.mjJNT_FREE): 6, int(mujoco.mjtJoint.mjJNT_BALL): 3}

    def columns(prefix, adr, width):
        cols = []
        for j in sorted(range(model.njnt), key=lambda j: adr[j]):
            name, w = model.joint(j).name, width.get(int(model.jnt_type[j]), 1)
            cols += [f"{prefix}.{name}"] if w == 1 else [f"{prefix}.{name}.{i}" for i in range(w)]
        return cols

    q = columns("q", model.jnt_qposadr, qwidth)
    v = columns("v", model.jnt_dofadr, vwidth)
    acts = sorted((i for i in range(model.nu) if model.actuator_actnum[i] > 0),
                  key=lambda i: model.actuator_actadr[i])
    a = [f"a.{model.actuator(i).name}" for i in acts for _ in range(model.actuator_actnum[i])]
    u = [f"u.{model.actuator(i).name}" for i in range(model.nu)]
    if len(q) != model.nq or len(v) != model.nv or len(a) != model.na:
        raise ValueError("model has qpos/qvel/act entries not owned by joints/actuators")
    return q + v + a, u


def period_steps(time: np.ndarray, timestep: float, tol: float = 1e-6) -> int:
    """The integer ``k`` with ``time[i+1] - time[i] == k * timestep`` for every row."""
    if len(time) < 2:
        raise ValueError("need at least two rows to know the control period")
    dt = np.diff(time)
    k = int(round(float(dt[0]) / timestep))
    if k < 1 or np.any(np.abs(dt - k * timestep) > tol * max(1.0, k * timestep)):
        raise ValueError(
            f"control period {dt[0]!r} s (spread {dt.min()!r}..{dt.max()!r}) is not a constant "
            f"integer multiple of the physics timestep {timestep!r} s")
    return k


def load_dm_control_physics(domain: str, task: Optional[str] = None):
    """dm_control's physics for ``domain`` (not reset by the task: no randomization)."""
    from dm_control import suite  # imported here so the CSV parser works without it

    env = suite.load(domain, task or DEFAULT_TASKS[domain])
    return env.physics


def set_state(model, data, x: np.ndarray) -> None:
    """Write a state vector ``[qpos, qvel, act]`` into ``data``."""
    nq, nv, na = model.nq, model.nv, model.na
    data.qpos[:] = x[:nq]
    data.qvel[:] = x[nq:nq + nv]
    if na:
        data.act[:] = x[nq + nv:nq + nv + na]


def get_state(model, data) -> np.ndarray:
    return np.concatenate([data.qpos, data.qvel, data.act[:model.na]])


def replay_errors(traj: Trajectory, model, data, target_xy: Optional[Sequence[float]] = None,
                  resync: bool = False) -> np.ndarray:
    """Per-row max-abs state error of replaying ``traj`` on ``model``/``data``.

    Entry ``i`` compares the replayed state with row ``i`` (entry 0 is 0: the
    start is copied). ``model``/``data`` are raw ``mujoco.MjModel``/``MjData``.
    """
    want_state, want_u = expected_columns(model)
    if traj.state_names != want_state:
        raise ValueError(f"state columns {traj.state_names} do not match the model's {want_state}")
    if traj.control_names != want_u:
        raise ValueError(f"control columns {traj.control_names} do not match the model's {want_u}")

    if target_xy is not None:
        gid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "target")
        if gid < 0:
            raise ValueError("target_xy given but the model has no geom named 'target'")
        model.geom_pos[gid, :2] = np.asarray(target_xy, dtype=float)

    k = period_steps(traj.time, model.opt.timestep)
    mujoco.mj_resetData(model, data)
    set_state(model, data, traj.state[0])
    data.time = traj.time[0]
    mujoco.mj_forward(model, data)

    errors = np.zeros(len(traj.time))
    for i in range(len(traj.time) - 1):
        u = traj.control[i]
        if np.any(np.isnan(u)):
            raise ValueError(f"row {i} has no control but is not the last row")
        if resync:
            set_state(model, data, traj.state[i])
        data.ctrl[:] = u
        mujoco.mj_step(model, data, k)
        errors[i + 1] = np.max(np.abs(get_state(model, data) - traj.state[i + 1]), initial=0.0)
    return errors


def replay_csv(csv_path, domain: str, target_xy: Optional[Sequence[float]] = None,
               task: Optional[str] = None, resync: bool = False) -> float:
    """Replay a Rust trajectory CSV in dm_control's ``domain`` physics.

    Returns the largest absolute difference, over all rows after the first and
    all state entries, between the CSV's state and the state dm_control reaches
    by applying the CSV's controls (each for ``k`` physics steps) from the CSV's
    first state. ``target_xy`` places reacher's target geom (not part of the
    state; it does not affect the dynamics, contacts being disabled).
    """
    traj = load_trajectory_csv(csv_path)
    physics = load_dm_control_physics(domain, task)
    errs = replay_errors(traj, physics.model.ptr, physics.data.ptr, target_xy=target_xy, resync=resync)
    return float(errs.max(initial=0.0))
