"""Our MJCF models (crates/mppi-mujoco/models) have dm_control's suite dynamics.

For cartpole, acrobot, reacher, cheetah, hopper and pendulum this checks, against
``dm_control.suite.load(domain, task).physics`` (dm_control 1.0.50, MuJoCo 3.17.0):

* sizes, joint/actuator/sensor names and order, ctrlrange, gear, timestep,
  body masses, and every compiled model array that enters the dynamics
  (bodies, joints, dofs, geoms, sites, actuators, sensors, options); our models
  may append extra sensors (for costs) after dm_control's;
* bit-identical qpos/qvel over 500 physics steps from the same random state
  under the same random controls, stepping theirs with ``mujoco.mj_step`` and
  with dm_control's own ``physics.step`` (the legacy split step);
* a whole dm_control episode (``env.reset`` and ``env.step``, so the task's
  initial-state distribution and its ``n_sub_steps``) is followed
  bit-identically by our model held for ``n_sub_steps`` physics steps per
  control, and the task reward, recomputed from our model with the formulas in
  models/README.md, matches dm_control's;
* ``replay.replay_csv`` on CSVs written in the Rust CLI's format from the
  Python binding.

Needs numpy, mujoco (3.17.0), dm_control (1.0.50) and pytest; skips when
dm_control or mujoco is missing. Run from the repository root:

    python -m pytest crates/mppi-mujoco/tests/python -q
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "disable")  # no rendering; avoids GLFW/X11 warnings

mujoco = pytest.importorskip("mujoco", reason="the MuJoCo Python binding (pip install mujoco==3.17.0) is not installed")
pytest.importorskip(
    "dm_control.suite",
    reason="dm_control is not importable (pip install mujoco==3.17.0 dm-control==1.0.50)",
)
from dm_control import suite  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import replay  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "models"

TASKS = {
    "cartpole": "swingup",
    "acrobot": "swingup",
    "reacher": "easy",
    "cheetah": "run",
    "hopper": "hop",
    "pendulum": "swingup",
}
DOMAINS = list(TASKS)

# Physics steps per control step in the dm_control task (control_timestep / timestep).
N_SUB_STEPS = {"cartpole": 1, "acrobot": 1, "reacher": 1, "cheetah": 1, "hopper": 4, "pendulum": 1}

# Joint names in qpos order and actuator names in ctrl order (also documented in models/README.md).
JOINTS = {
    "cartpole": ["slider", "hinge_1"],
    "acrobot": ["shoulder", "elbow"],
    "reacher": ["shoulder", "wrist"],
    "cheetah": ["rootx", "rootz", "rooty", "bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot"],
    "hopper": ["rootx", "rootz", "rooty", "waist", "hip", "knee", "ankle"],
    "pendulum": ["hinge"],
}
ACTUATORS = {
    "cartpole": ["slide"],
    "acrobot": ["elbow"],
    "reacher": ["shoulder", "wrist"],
    "cheetah": ["bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot"],
    "hopper": ["waist", "hip", "knee", "ankle"],
    "pendulum": ["torque"],
}

# Model fields that only matter for drawing (or are bookkeeping) and may differ.
VISUAL_PREFIXES = ("cam_", "light_", "mat_", "tex_", "name_", "names", "skin_", "vis", "paths")
VISUAL_FIELDS = {"geom_rgba", "geom_matid", "site_rgba", "site_matid", "signature", "text_data"}
SIZE_FIELDS = ["nq", "nv", "nu", "na", "nbody", "njnt", "ngeom", "nsite",
               "neq", "ntendon", "npair", "nexclude", "nmocap", "nuserdata", "nplugin"]
# Our models may append sensors for costs after dm_control's (sensors never act on the
# dynamics); dm_control's sensors must come first, unchanged.


@pytest.fixture(autouse=True)
def _scratch_cwd(tmp_path, monkeypatch):
    # MuJoCo appends compiler warnings (dm_control's cheetah uses the deprecated
    # settotalmass) to MUJOCO_LOG.TXT in the working directory: keep it out of the repo.
    monkeypatch.chdir(tmp_path)


def ours(domain):
    return mujoco.MjModel.from_xml_path(str(MODELS / f"{domain}.xml"))


def theirs(domain):
    """dm_control's physics for the domain's task, before any episode reset."""
    return suite.load(domain, TASKS[domain]).physics


def names(model, kind, n):
    return [mujoco.mj_id2name(model, kind, i) for i in range(n)]


# --------------------------------------------------------------------------------------
# Static model comparison
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("domain", DOMAINS)
def test_sizes_names_ranges_masses(domain):
    m, p = ours(domain), theirs(domain)
    t = p.model.ptr
    for field in SIZE_FIELDS:
        assert getattr(m, field) == getattr(t, field), field
    assert names(m, mujoco.mjtObj.mjOBJ_JOINT, m.njnt) == names(t, mujoco.mjtObj.mjOBJ_JOINT, t.njnt)
    assert names(m, mujoco.mjtObj.mjOBJ_JOINT, m.njnt) == JOINTS[domain]
    # every joint is a hinge or a slide: one qpos and one qvel entry each, in joint order
    assert m.nq == m.nv == m.njnt
    np.testing.assert_array_equal(m.jnt_qposadr, np.arange(m.njnt))
    np.testing.assert_array_equal(m.jnt_type, t.jnt_type)
    np.testing.assert_array_equal(m.jnt_range, t.jnt_range)
    np.testing.assert_array_equal(m.jnt_limited, t.jnt_limited)
    assert names(m, mujoco.mjtObj.mjOBJ_ACTUATOR, m.nu) == names(t, mujoco.mjtObj.mjOBJ_ACTUATOR, t.nu)
    assert names(m, mujoco.mjtObj.mjOBJ_ACTUATOR, m.nu) == ACTUATORS[domain]
    np.testing.assert_array_equal(m.actuator_ctrlrange, t.actuator_ctrlrange)
    np.testing.assert_array_equal(m.actuator_ctrllimited, t.actuator_ctrllimited)
    np.testing.assert_array_equal(m.actuator_gear, t.actuator_gear)
    np.testing.assert_array_equal(m.actuator_trnid, t.actuator_trnid)
    assert names(m, mujoco.mjtObj.mjOBJ_BODY, m.nbody) == names(t, mujoco.mjtObj.mjOBJ_BODY, t.nbody)
    assert names(m, mujoco.mjtObj.mjOBJ_GEOM, m.ngeom) == names(t, mujoco.mjtObj.mjOBJ_GEOM, t.ngeom)
    assert names(m, mujoco.mjtObj.mjOBJ_SITE, m.nsite) == names(t, mujoco.mjtObj.mjOBJ_SITE, t.nsite)
    assert m.nsensor >= t.nsensor and m.nsensordata >= t.nsensordata
    assert names(m, mujoco.mjtObj.mjOBJ_SENSOR, t.nsensor) == names(t, mujoco.mjtObj.mjOBJ_SENSOR, t.nsensor)
    assert m.opt.timestep == t.opt.timestep
    assert m.opt.integrator == t.opt.integrator
    np.testing.assert_allclose(m.body_mass, t.body_mass, rtol=1e-9, atol=0)
    np.testing.assert_allclose(m.body_inertia, t.body_inertia, rtol=1e-9, atol=0)
    # the dm_control task's control timestep
    env = suite.load(domain, TASKS[domain])
    assert env.control_timestep() == pytest.approx(m.opt.timestep * N_SUB_STEPS[domain], rel=1e-12)


def _numeric_fields(obj):
    out = {}
    for name in dir(obj):
        if name.startswith("_"):
            continue
        try:
            value = getattr(obj, name)
        except Exception:  # noqa: BLE001 - some properties need arguments or are write-only
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            out[name] = value
        elif isinstance(value, (bool, int, float, np.integer, np.floating)):
            out[name] = value
    return out


@pytest.mark.parametrize("domain", DOMAINS)
def test_compiled_dynamics_identical(domain):
    """Every non-visual compiled array and option is bit-identical."""
    m, t = ours(domain), theirs(domain).model.ptr
    mine, other = _numeric_fields(m), _numeric_fields(t)
    compared, different = 0, []
    for name, a in mine.items():
        if name.startswith(VISUAL_PREFIXES) or name in VISUAL_FIELDS or name.startswith("n"):
            continue
        b = other[name]
        if name.startswith("sensor_"):  # extra cost sensors of ours come after dm_control's
            a = a[: t.nsensor]
        compared += 1
        if np.shape(a) != np.shape(b) or not np.array_equal(a, b):
            different.append(name)
    for sub in ("opt", "stat"):
        for name, a in _numeric_fields(getattr(m, sub)).items():
            compared += 1
            if not np.array_equal(a, _numeric_fields(getattr(t, sub))[name]):
                different.append(f"{sub}.{name}")
    assert compared > 100
    assert not different, f"compiled fields differ from dm_control: {different}"


# --------------------------------------------------------------------------------------
# Open-loop trajectories from random states
# --------------------------------------------------------------------------------------


def random_state(model, rng):
    """Random qpos within joint ranges (unlimited hinges in [-pi, pi], free slides small), qvel ~ N(0, .5^2)."""
    qpos = np.empty(model.nq)
    for j in range(model.njnt):
        adr = model.jnt_qposadr[j]
        lo, hi = model.jnt_range[j]
        if model.jnt_limited[j]:
            qpos[adr] = rng.uniform(lo, hi)
        elif model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE:
            qpos[adr] = rng.uniform(-np.pi, np.pi)
        else:
            qpos[adr] = rng.uniform(-0.1, 0.1)
    qvel = 0.5 * rng.standard_normal(model.nv)
    return qpos, qvel


def random_controls(model, rng, steps):
    lo, hi = model.actuator_ctrlrange.T
    return rng.uniform(lo, hi, size=(steps, model.nu))


STEPS = 500


@pytest.mark.parametrize("stepper", ["mj_step", "physics.step"])
@pytest.mark.parametrize("domain", DOMAINS)
def test_random_rollout_bit_identical(domain, stepper):
    m = ours(domain)
    d = mujoco.MjData(m)
    physics = theirs(domain)
    tm, td = physics.model.ptr, physics.data.ptr
    rng = np.random.default_rng(20261202 + DOMAINS.index(domain))
    qpos, qvel = random_state(m, rng)
    controls = random_controls(m, rng, STEPS)

    for model, data in ((m, d), (tm, td)):
        mujoco.mj_resetData(model, data)
        data.qpos[:] = qpos
        data.qvel[:] = qvel
        mujoco.mj_forward(model, data)

    ours_traj = np.empty((STEPS + 1, m.nq + m.nv))
    their_traj = np.empty_like(ours_traj)
    ours_traj[0] = their_traj[0] = np.concatenate([qpos, qvel])
    for i, u in enumerate(controls):
        d.ctrl[:] = u
        mujoco.mj_step(m, d)
        ours_traj[i + 1] = np.concatenate([d.qpos, d.qvel])
        if stepper == "mj_step":
            td.ctrl[:] = u
            mujoco.mj_step(tm, td)
        else:  # dm_control's own stepping (legacy mj_step2 + mj_step1 for Euler), one physics step
            physics.set_control(u)
            physics.step()
        their_traj[i + 1] = np.concatenate([td.qpos, td.qvel])

    assert np.all(np.isfinite(ours_traj))
    # the rollout actually moved (a frozen model would match trivially)
    assert np.max(np.abs(ours_traj[-1] - ours_traj[0])) > 1e-2
    err = np.max(np.abs(ours_traj - their_traj))
    assert err == 0.0, f"max |ours - dm_control| = {err:.3e}"
    assert d.time == td.time


# --------------------------------------------------------------------------------------
# Whole dm_control episodes: initial-state distribution, n_sub_steps, rewards
# --------------------------------------------------------------------------------------


def _sigmoid(x, value_at_1, kind):
    if kind == "gaussian":
        scale = np.sqrt(-2 * np.log(value_at_1))
        return np.exp(-0.5 * (x * scale) ** 2)
    if kind == "linear":
        s = x * (1 - value_at_1)
        return np.where(np.abs(s) < 1, 1 - s, 0.0)
    if kind == "quadratic":
        s = x * np.sqrt(1 - value_at_1)
        return np.where(np.abs(s) < 1, 1 - s ** 2, 0.0)
    raise ValueError(kind)


def tolerance(x, lo=0.0, hi=0.0, margin=0.0, kind="gaussian", value_at_margin=0.1):
    """1 inside [lo, hi]; outside, a sigmoid of (distance to the interval) / margin."""
    x = np.asarray(x, dtype=float)
    inside = (lo <= x) & (x <= hi)
    if margin == 0:
        return np.where(inside, 1.0, 0.0)
    dist = np.where(x < lo, lo - x, x - hi) / margin
    return np.where(inside, 1.0, _sigmoid(dist, value_at_margin, kind))


def reward(domain, task, m, d):
    """dm_control's task reward computed from our model (d after mj_forward, d.ctrl = last control)."""
    if domain == "cartpole":  # swingup (smooth)
        upright = (d.xmat[m.body("pole_1").id, 8] + 1) / 2  # cos(hinge_1)
        centered = (1 + tolerance(d.qpos[0], margin=2)) / 2
        small_control = (4 + tolerance(d.ctrl[0], margin=1, kind="quadratic", value_at_margin=0)) / 5
        small_velocity = (1 + tolerance(d.qvel[1], margin=5)) / 2
        return float(upright * small_control * small_velocity * centered)
    if domain == "acrobot":  # swingup (smooth)
        dist = np.linalg.norm(d.site("target").xpos - d.site("tip").xpos)
        return float(tolerance(dist, 0, m.site("target").size[0], margin=1))
    if domain == "reacher":
        dist = np.linalg.norm(d.geom("target").xpos[:2] - d.geom("finger").xpos[:2])
        return float(tolerance(dist, 0, m.geom("target").size[0] + m.geom("finger").size[0]))
    if domain == "cheetah":  # run
        speed = d.sensor("torso_subtreelinvel").data[0]
        return float(tolerance(speed, 10, np.inf, margin=10, kind="linear", value_at_margin=0))
    if domain == "hopper":  # hop or stand
        height = d.xipos[m.body("torso").id, 2] - d.xipos[m.body("foot").id, 2]
        standing = tolerance(height, 0.6, 2)
        if task == "stand":
            small_control = tolerance(d.ctrl, margin=1, kind="quadratic", value_at_margin=0).mean()
            return float(standing * (small_control + 4) / 5)
        speed = d.sensor("torso_subtreelinvel").data[0]
        hopping = tolerance(speed, 2, np.inf, margin=1, kind="linear", value_at_margin=0.5)
        return float(standing * hopping)
    if domain == "pendulum":  # swingup: the pole within 8 degrees of upright
        return float(tolerance(d.xmat[m.body("pole").id, 8], np.cos(np.deg2rad(8)), 1))
    raise ValueError(domain)


EPISODE_STEPS = 300


EPISODE_TASKS = list(TASKS.items()) + [("reacher", "hard"), ("hopper", "stand")]


@pytest.mark.parametrize(("domain", "task"), EPISODE_TASKS)
def test_dm_control_episode_followed_bit_identically(domain, task):
    env = suite.load(domain, task, task_kwargs={"random": 7})
    ts = env.reset()
    physics = env.physics
    m = ours(domain)
    d = mujoco.MjData(m)
    if domain == "reacher":  # per-episode target lives in the model
        gid = m.geom("target").id
        m.geom_pos[gid] = physics.model.geom_pos[gid]
        m.geom_size[gid] = physics.model.geom_size[gid]
    # copy the full dynamic state, including the solver's warm start (cheetah's reset
    # runs 200 physics steps, so it is not zero)
    d.qpos[:] = physics.data.qpos
    d.qvel[:] = physics.data.qvel
    d.act[:] = physics.data.act
    d.qacc_warmstart[:] = physics.data.qacc_warmstart
    d.time = physics.data.time
    scratch = mujoco.MjData(m)  # for rewards, so d is only ever touched by mj_step

    rng = np.random.default_rng(99)
    spec = env.action_spec()
    errs, reward_errs = [], []
    for _ in range(EPISODE_STEPS):
        action = rng.uniform(spec.minimum, spec.maximum)
        ts = env.step(action)
        d.ctrl[:] = action
        mujoco.mj_step(m, d, N_SUB_STEPS[domain])
        errs.append(max(np.max(np.abs(d.qpos - physics.data.qpos)), np.max(np.abs(d.qvel - physics.data.qvel))))
        scratch.qpos[:], scratch.qvel[:], scratch.ctrl[:] = d.qpos, d.qvel, d.ctrl
        mujoco.mj_forward(m, scratch)
        reward_errs.append(abs(reward(domain, task, m, scratch) - ts.reward))
    assert max(errs) == 0.0, f"state differs by up to {max(errs):.3e}"
    assert max(reward_errs) <= 1e-12, f"reward differs by up to {max(reward_errs):.3e}"
    assert d.time == pytest.approx(physics.data.time, abs=1e-9)


# --------------------------------------------------------------------------------------
# replay.replay_csv on CSVs in the Rust CLI's format
# --------------------------------------------------------------------------------------


def rust_float(x):
    """Rust's `{}` for f64: shortest round-trip digits, never an exponent."""
    if np.isnan(x):
        return "NaN"
    return np.format_float_positional(x, unique=True, trim="-")


def write_csv(path, m, states, times, controls, units=True):
    """Write rows the way the Rust CLI does (last row: final state, empty controls)."""
    slide = mujoco.mjtJoint.mjJNT_SLIDE
    qunits = ["m" if m.jnt_type[j] == slide else "rad" for j in range(m.njnt)]
    header = ["step", "time [s]" if units else "time"]
    header += [f"q.{m.joint(j).name}" + (f" [{qunits[j]}]" if units else "") for j in range(m.njnt)]
    header += [f"v.{m.joint(j).name}" + (f" [{qunits[j]}/s]" if units else "") for j in range(m.njnt)]
    header += [f"a.{m.actuator(i).name}" for i in range(m.nu) if m.actuator_actnum[i] > 0]
    header += [f"u.{m.actuator(i).name}" for i in range(m.nu)]
    header += ["stage_cost"]
    lines = [",".join(header)]
    for i, (t, x) in enumerate(zip(times, states)):
        cells = [str(i), rust_float(t)] + [rust_float(v) for v in x]
        if i < len(controls):
            cells += [rust_float(v) for v in controls[i]] + [rust_float(float(np.sum(controls[i] ** 2)))]
        else:
            cells += [""] * (m.nu + 1)
        lines.append(",".join(cells))
    Path(path).write_text("\n".join(lines) + "\n")


def simulate_for_csv(domain, k, n_controls, seed, target_xy=None):
    m = ours(domain)
    if target_xy is not None:
        m.geom_pos[m.geom("target").id, :2] = target_xy
    d = mujoco.MjData(m)
    rng = np.random.default_rng(seed)
    qpos, qvel = random_state(m, rng)
    d.qpos[:], d.qvel[:] = qpos, qvel
    mujoco.mj_forward(m, d)
    controls = random_controls(m, rng, n_controls)
    dt = m.opt.timestep * k
    states = [np.concatenate([d.qpos, d.qvel, d.act])]
    for u in controls:
        d.ctrl[:] = u
        mujoco.mj_step(m, d, k)
        states.append(np.concatenate([d.qpos, d.qvel, d.act]))
    times = [i * dt for i in range(n_controls + 1)]  # as the Rust CLI computes it
    return m, np.array(states), times, controls


@pytest.mark.parametrize("domain", DOMAINS)
def test_replay_csv_selftest(domain, tmp_path):
    k = N_SUB_STEPS[domain] if domain != "cartpole" else 3  # also a k the task does not use
    target = (0.1, -0.12) if domain == "reacher" else None
    m, states, times, controls = simulate_for_csv(domain, k, 150, seed=5 + DOMAINS.index(domain), target_xy=target)
    path = tmp_path / f"{domain}.csv"
    write_csv(path, m, states, times, controls, units=DOMAINS.index(domain) % 2 == 0)
    task = TASKS[domain]
    assert replay.replay_csv(path, domain, target_xy=target, task=task) <= 1e-12
    assert replay.replay_csv(path, domain, target_xy=target, task=task, resync=True) <= 1e-12

    # a wrong control must show up
    controls_bad = controls.copy()
    controls_bad[10, 0] = -controls_bad[10, 0] if abs(controls_bad[10, 0]) > 0.1 else 0.9
    bad = tmp_path / f"{domain}_bad.csv"
    write_csv(bad, m, states, times, controls_bad)
    assert replay.replay_csv(bad, domain, target_xy=target, task=task) > 1e-6


def test_replay_csv_parsing_details(tmp_path):
    m, states, times, controls = simulate_for_csv("acrobot", 2, 20, seed=1)
    path = tmp_path / "nan_last.csv"
    write_csv(path, m, states, times, controls)
    text = path.read_text().splitlines()
    text[-1] = text[-1].rsplit(",", m.nu + 1)[0] + ",NaN" * (m.nu + 1)  # NaN instead of empty cells
    path.write_text("\n".join(text) + "\n")
    traj = replay.load_trajectory_csv(path)
    assert traj.state_names == ["q.shoulder", "q.elbow", "v.shoulder", "v.elbow"]
    assert traj.control_names == ["u.elbow"]
    assert replay.period_steps(traj.time, m.opt.timestep) == 2
    assert replay.replay_csv(path, "acrobot") <= 1e-12

    swapped = tmp_path / "swapped.csv"
    lines = path.read_text().splitlines()
    lines[0] = lines[0].replace("q.shoulder", "q.TMP").replace("q.elbow", "q.shoulder").replace("q.TMP", "q.elbow")
    swapped.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="state columns"):
        replay.replay_csv(swapped, "acrobot")

    uneven = tmp_path / "uneven.csv"
    lines = path.read_text().splitlines()
    cells = lines[3].split(",")
    cells[1] = repr(float(cells[1]) + 0.5 * m.opt.timestep)
    lines[3] = ",".join(cells)
    uneven.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="integer multiple"):
        replay.replay_csv(uneven, "acrobot")
