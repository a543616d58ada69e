"""The Rust environments of ``mppi_learn::env`` reproduce dm_control's suite tasks.

For each ported task, dm_control's own environment (``suite.load(domain, task,
task_kwargs={'random': seed})``, dm_control 1.0.50 on MuJoCo 3.17.0) is reset, and its
physics state after the reset (qpos, qvel and, for the reacher, the target written into
the model) is handed to the Rust example ``env_trace``, which starts its environment from
that state (``DmcEnv::reset_to``). Both are then driven by the same random actions with
TD-MPC2's action repeat 2 (each decision is two ``env.step`` calls of dm_control, its
reward their sum) and the observations (flattened in dm_control's dict order) and rewards
must agree. A second test checks the episode length (dm_control's time limit over the
control timestep) and the observation and action sizes against dm_control's specs.

The binary is ``$MPPI_ENV_TRACE``, or ``target/release/examples/env_trace`` of this
checkout, built here with ``cargo build --release --locked -p mppi-learn --example
env_trace`` when it is missing and cargo is on PATH (skipped otherwise).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "disable")

pytest.importorskip("mujoco", reason="the MuJoCo Python binding (pip install mujoco==3.17.0) is not installed")
pytest.importorskip(
    "dm_control.suite",
    reason="dm_control is not importable (pip install mujoco==3.17.0 dm-control==1.0.50)",
)
from dm_control import suite  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[4]
DEFAULT_BINARY = ROOT / "target" / "release" / "examples" / "env_trace"

# (dm_control domain, task, our environment's name)
TASKS = [
    ("cartpole", "swingup", "cartpole-swingup"),
    ("acrobot", "swingup", "acrobot-swingup"),
    ("reacher", "easy", "reacher-easy"),
    ("reacher", "hard", "reacher-hard"),
    ("pendulum", "swingup", "pendulum-swingup"),
]
IDS = [t[2] for t in TASKS]
REPEAT = 2
DECISIONS = 100
# Observations and rewards agree to the bit on this project's machines (same libmujoco.so,
# the state copied exactly); the allowance covers a libm that rounds exp/log/sqrt differently
# from numpy's in the last place.
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def env_trace():
    path = pathlib.Path(os.environ.get("MPPI_ENV_TRACE", DEFAULT_BINARY))
    if not path.exists():
        if "MPPI_ENV_TRACE" in os.environ or shutil.which("cargo") is None:
            pytest.skip(f"{path} does not exist: build it with `cargo build --release --locked "
                        "-p mppi-learn --example env_trace` or set MPPI_ENV_TRACE")
        subprocess.run(
            ["cargo", "build", "--release", "--locked", "-p", "mppi-learn", "--example", "env_trace"],
            check=True,
            cwd=ROOT,
        )
    return path


def run_trace(binary, tmp_path, spec):
    src, dst = tmp_path / "in.json", tmp_path / "out.json"
    src.write_text(json.dumps(spec))
    subprocess.run([str(binary), str(src), str(dst)], check=True, cwd=tmp_path)
    return json.loads(dst.read_text())


def exact(values):
    """Floats as decimal strings, which env_trace reads exactly (a JSON number can be read
    1 ulp off by serde_json)."""
    return [exact(v) if isinstance(v, (list, tuple, np.ndarray)) else repr(float(v)) for v in values]


def flat(observation):
    """TD-MPC2's flattening: the dict's arrays, in order, concatenated."""
    return np.concatenate([np.asarray(v, dtype=float).ravel() for v in observation.values()])


# States near each task's goal, so that the sparse rewards (reacher, pendulum) are not all 0
# under random actions: qpos (velocities 0), or for the reacher the target 1 cm from the
# fingertip.
NEAR_GOAL = {"cartpole": [0.0, 0.05], "acrobot": [0.05, -0.05], "pendulum": [0.05]}


def dm_control_start(domain, task, seed, near_goal=False):
    """dm_control's environment after `reset()`, its first time step and its physics state.

    With `near_goal`, the reset state is then moved near the goal and `mj_forward` run (as
    `reset` does last), and the first observation is the task's observation of that state.
    """
    env = suite.load(domain, task, task_kwargs={"random": seed})
    ts = env.reset()
    physics = env.physics
    if near_goal:
        if domain == "reacher":
            finger = physics.named.data.geom_xpos["finger", :2]
            physics.named.model.geom_pos["target", :2] = finger + np.array([0.01, 0.0])
        else:
            physics.data.qpos[:] = NEAR_GOAL[domain]
            physics.data.qvel[:] = 0.0
        physics.forward()
        ts = ts._replace(observation=env.task.get_observation(physics))
    state = {"qpos": exact(physics.data.qpos), "qvel": exact(physics.data.qvel)}
    if domain == "reacher":
        state["target"] = exact(physics.named.model.geom_pos["target", :2])
    return env, ts, state


@pytest.mark.parametrize(("seed", "near_goal"), [(0, False), (1, False), (2, True)],
                         ids=["seed0", "seed1", "near-goal"])
@pytest.mark.parametrize(("domain", "task", "name"), TASKS, ids=IDS)
def test_observations_and_rewards_agree_with_dm_control(env_trace, tmp_path, domain, task, name, seed,
                                                        near_goal):
    env, ts, state = dm_control_start(domain, task, seed, near_goal)
    spec = env.action_spec()
    rng = np.random.default_rng(1000 * seed + IDS.index(name))
    actions = rng.uniform(spec.minimum, spec.maximum, size=(DECISIONS, len(spec.minimum)))

    their_obs, their_rewards = [flat(ts.observation)], []
    for action in actions:
        reward = 0.0
        for _ in range(REPEAT):
            ts = env.step(action)
            reward += ts.reward
        their_rewards.append(reward)
        their_obs.append(flat(ts.observation))

    out = run_trace(env_trace, tmp_path, {"env": name, **state, "actions": exact(actions)})
    ours_obs, ours_rewards = np.array(out["obs"]), np.array(out["rewards"])
    their_obs, their_rewards = np.array(their_obs), np.array(their_rewards)
    assert ours_obs.shape == their_obs.shape
    assert ours_rewards.shape == their_rewards.shape
    # the episode went somewhere (a system at rest would agree trivially)
    assert np.ptp(their_obs, axis=0).max() > 0.1
    obs_err = float(np.max(np.abs(ours_obs - their_obs)))
    reward_err = float(np.max(np.abs(ours_rewards - their_rewards)))
    if near_goal:  # the goal was reached at least once
        assert their_rewards.max() > 0.5
    where = f"{name} seed {seed}" + (" near goal" if near_goal else "")
    print(f"{where}: max |obs diff| {obs_err:.3e}, max |reward diff| {reward_err:.3e}, "
          f"return over {DECISIONS} decisions {their_rewards.sum():.4f}, "
          f"{out['us_per_decision']:.1f} us per decision")
    assert obs_err <= TOLERANCE, f"{name}: observations differ by up to {obs_err:.3e}"
    assert reward_err <= TOLERANCE, f"{name}: rewards differ by up to {reward_err:.3e}"


@pytest.mark.parametrize(("domain", "task", "name"), TASKS, ids=IDS)
def test_episode_length_and_sizes_agree_with_dm_control(env_trace, tmp_path, domain, task, name):
    env, ts, state = dm_control_start(domain, task, 3)
    out = run_trace(env_trace, tmp_path, {"env": name, **state, "actions": []})
    steps = 0
    while not ts.last():
        ts = env.step(np.zeros(env.action_spec().shape))
        steps += 1
    assert steps == out["episode_length"] * out["action_repeat"] == 1000
    assert out["action_repeat"] == REPEAT
    assert out["control_timestep"] == env.control_timestep()
    assert out["obs_dim"] == len(flat(ts.observation))
    assert out["action_dim"] == env.action_spec().shape[0]
    np.testing.assert_array_equal(env.action_spec().minimum, -1.0)
    np.testing.assert_array_equal(env.action_spec().maximum, 1.0)
