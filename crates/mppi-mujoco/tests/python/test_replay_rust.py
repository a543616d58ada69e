"""Trajectories of the Rust `mppi` binary on the MuJoCo suite tasks, replayed in dm_control.

`mppi run mj-<task> --out DIR` plans with this crate's MJCF models and steps its plant with
MuJoCo 3.17.0 through mujoco-rs; `trajectory.csv` holds every visited state and the control
applied from it. Replaying those controls in dm_control's own suite physics (its own model
files, MuJoCo's Python bindings) must give back the same states: the model, the engine and
the way the plant steps are the same.

The binary is `$MPPI_CLI`, or `target/release/mppi` of this checkout; the test is skipped
(with the reason) when neither exists, e.g. before `cargo build --release`.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

pytest.importorskip("dm_control", reason="dm_control is not importable (pip install dm-control==1.0.50 mujoco==3.17.0)")

import replay  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[4]
CLI = pathlib.Path(os.environ.get("MPPI_CLI", ROOT / "target" / "release" / "mppi"))

# (task, dm_control domain, the reacher's fixed target, steps)
CASES = [
    ("mj-cartpole", "cartpole", None, 60),
    ("mj-acrobot", "acrobot", None, 60),
    ("mj-reacher", "reacher", (-0.1, 0.12), 60),
    ("mj-cheetah", "cheetah", None, 40),
]


@pytest.mark.parametrize("task,domain,target,steps", CASES, ids=[c[0] for c in CASES])
def test_rust_trajectory_replays_exactly_in_dm_control(task, domain, target, steps, tmp_path):
    if not CLI.exists():
        pytest.skip(f"{CLI} does not exist: build it with `cargo build --release` or set MPPI_CLI")
    out = tmp_path / task
    subprocess.run(
        [str(CLI), "run", task, "--steps", str(steps), "--set", "samples=32", "--out", str(out), "--quiet"],
        check=True,
        cwd=tmp_path,
    )
    csv_path = out / "trajectory.csv"
    traj = replay.load_trajectory_csv(csv_path)
    assert len(traj.time) == steps + 1
    # the plan moved the system: a replay of a trajectory that stands still proves little
    assert np.ptp(traj.state, axis=0).max() > 0.05
    error = replay.replay_csv(csv_path, domain, target_xy=target)
    assert error == 0.0, f"{task}: max |state error| {error} replaying in dm_control"
