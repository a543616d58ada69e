"""A Ray Tune sweep over the bindings on a local Ray instance (offline, two CPUs)."""

import math

import pytest
import ray

from conftest import load_example


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_tune_runs_a_grid_of_closed_loop_episodes(local_ray, tmp_path):
    example = load_example("ray_tune_sweep")
    rows = example.sweep(
        "pendulum",
        lambdas=(0.5, 5.0),
        noise_sigmas=(1.0,),
        seeds=(0,),
        steps=120,
        samples=300,
        storage_path=str(tmp_path),
    )
    assert len(rows) == 2
    assert sorted(r["lambda"] for r in rows) == [0.5, 5.0]
    assert all(math.isfinite(r["cost"]) and r["ms_per_step"] > 0 for r in rows)
    assert rows[0]["cost"] <= rows[1]["cost"]
    # a trial is the same episode as a direct call with the same settings
    import mppi

    best = rows[0]
    direct = mppi.run_episode(
        "pendulum",
        steps=120,
        seed=0,
        samples=300,
        threads=1,
        weighting={"temperature": {"kind": "fixed", "lambda": best["lambda"]}},
        proposal={"noise_sigma": 1.0},
    )
    assert direct["total_cost"] == best["cost"]
