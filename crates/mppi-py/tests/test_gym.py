"""The gymnasium environments of the built-in tasks, and driving gymnasium environments."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mppi
import mppi.gym
from conftest import load_example


# the checker's advice about unbounded state spaces and unnormalized actions is not a failure:
# a task's states are unbounded and its controls are in physical units
@pytest.mark.filterwarnings("ignore:.*(infinity|symmetric and normalized).*:UserWarning")
@pytest.mark.parametrize("name", mppi.tasks())
def test_every_task_env_passes_gymnasiums_checker(name):
    env = mppi.gym.make(name)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    task = mppi.Task(name)
    np.testing.assert_array_equal(obs, task.initial_state)
    assert env.spec.max_episode_steps == task.default_steps


def test_reset_with_noise_is_seeded_and_options_set_the_state():
    env = mppi.gym.make("pendulum", initial_noise=0.1)
    a, _ = env.reset(seed=3)
    b, _ = env.reset(seed=3)
    c, _ = env.reset(seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d, _ = env.reset(options={"state": [0.5, -0.5]})
    np.testing.assert_array_equal(d, [0.5, -0.5])
    with pytest.raises(ValueError, match="initial_noise"):
        mppi.gym.TaskEnv("pendulum", initial_noise=-1.0)
    with pytest.raises(ValueError, match="unknown task"):
        mppi.gym.make("pendulm")


def test_the_gym_loop_gives_the_clis_closed_loop_cost():
    # the same controller through gymnasium's API and through run_episode (= `mppi run`)
    env = mppi.gym.make("pendulum")
    ctrl = mppi.Controller.for_task("pendulum", seed=2)
    episode = mppi.gym.drive(env, ctrl, seed=0)
    cli = mppi.run_episode("pendulum", seed=2)
    assert episode["steps"] == cli["steps"] == 200  # truncated at the task's episode length
    assert -episode["total_reward"] == pytest.approx(cli["total_cost"], rel=1e-12)
    np.testing.assert_array_equal(episode["actions"], cli["controls"])


def test_gymnasium_pendulum_v1_with_a_numpy_model():
    example = load_example("gym_pendulum_v1")
    gym_cost, cli_cost, final_angle = example.main(steps=200, seed=0)
    # the same system: only the sine's last bits differ between numpy and the Rust model
    assert abs(final_angle) < 0.1
    assert gym_cost == pytest.approx(cli_cost, rel=1e-3)


def test_drive_stops_at_termination():
    class Short(gymnasium.Wrapper):
        def step(self, action):
            obs, r, term, trunc, info = self.env.step(action)
            return obs, r, True, trunc, info

    env = Short(mppi.gym.make("double_integrator"))
    ctrl = mppi.Controller.for_task("double_integrator", samples=64)
    assert mppi.gym.drive(env, ctrl)["steps"] == 1
