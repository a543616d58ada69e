"""Gymnasium environments for the built-in tasks, and a closed loop for any environment.

>>> import mppi.gym
>>> env = mppi.gym.make("pendulum")
>>> obs, info = env.reset(seed=0)
>>> obs.shape
(2,)

Every built-in task is registered as ``mppi/<task>-v0`` (``gymnasium.make("mppi/pendulum-v0")``).
The observation is the task's state (float64), the action its control within the task's
bounds, the reward minus the task's stage cost, and an episode is truncated after the task's
episode length. ``drive`` runs an :class:`mppi.Controller` against any environment whose model
you give it, such as gymnasium's ``Pendulum-v1`` (see ``examples/gym_pendulum_v1.py``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import gymnasium
import numpy as np
from gymnasium import spaces

from . import Controller, Task, tasks


class TaskEnv(gymnasium.Env):
    """A built-in task as a gymnasium environment.

    Parameters
    ----------
    task:
        The task's name (``mppi.tasks()``).
    initial_noise:
        Standard deviation of a Gaussian perturbation of the task's initial state at each
        ``reset`` (0: always the task's initial state, as in ``mppi run``).
    """

    metadata = {"render_modes": []}

    def __init__(self, task: str, initial_noise: float = 0.0):
        if initial_noise < 0 or not np.isfinite(initial_noise):
            raise ValueError(f"initial_noise must be a finite number >= 0, got {initial_noise}")
        self.task = Task(task)
        self.initial_noise = float(initial_noise)
        nx, nu = self.task.state_dim, self.task.control_dim
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(nx,), dtype=np.float64)
        low = np.full(nu, -np.inf) if self.task.u_min is None else np.asarray(self.task.u_min)
        high = np.full(nu, np.inf) if self.task.u_max is None else np.asarray(self.task.u_max)
        self.action_space = spaces.Box(low, high, shape=(nu,), dtype=np.float64)
        self._state = np.asarray(self.task.initial_state, dtype=np.float64)

    @property
    def state(self) -> np.ndarray:
        """The current state (a copy)."""
        return self._state.copy()

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)
        x = np.asarray(self.task.initial_state, dtype=np.float64)
        if options and "state" in options:
            x = np.asarray(options["state"], dtype=np.float64).reshape(self.task.state_dim)
        elif self.initial_noise > 0:
            x = x + self.np_random.normal(0.0, self.initial_noise, size=x.shape)
        self._state = x
        return x.copy(), {}

    def step(self, action):
        u = np.asarray(action, dtype=np.float64).reshape(self.task.control_dim)
        u = np.clip(u, self.action_space.low, self.action_space.high)
        cost = self.task.stage_cost(self._state, u)
        self._state = self.task.plant_step(self._state, u)
        terminated = not bool(np.all(np.isfinite(self._state)))
        return self._state.copy(), -cost, terminated, False, {"cost": cost}


def _register():
    for name in tasks():
        env_id = f"mppi/{name}-v0"
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point="mppi.gym:TaskEnv",
                kwargs={"task": name},
                max_episode_steps=Task(name).default_steps,
            )


_register()


def make(task: str, **kwargs: Any) -> gymnasium.Env:
    """``gymnasium.make("mppi/<task>-v0", **kwargs)``: the task's environment with gymnasium's
    wrappers (time limit at the task's episode length, order and passive checks)."""
    if task not in tasks():
        raise ValueError(f"unknown task {task!r}; the tasks are: {', '.join(tasks())}")
    return gymnasium.make(f"mppi/{task}-v0", **kwargs)


def drive(
    env: gymnasium.Env,
    controller: Controller,
    *,
    state: Optional[Callable[[gymnasium.Env, np.ndarray], np.ndarray]] = None,
    steps: Optional[int] = None,
    seed: Optional[int] = None,
) -> dict:
    """Run ``controller`` in closed loop on ``env`` and return the episode.

    ``state(env, observation)`` gives the controller's state (default: the observation itself,
    as float64); use it when the observation is not the model's state, e.g.
    ``lambda env, obs: env.unwrapped.state`` for ``Pendulum-v1``. The episode ends when the
    environment terminates or truncates, or after ``steps`` steps.

    Returns a dict with ``total_reward``, ``steps``, ``observations`` ``(steps + 1, ...)``,
    ``actions`` ``(steps, nu)`` and ``rewards`` ``(steps,)``.
    """
    obs, _ = env.reset(seed=seed)
    controller.reset()
    observations, actions, rewards = [obs], [], []
    k = 0
    while steps is None or k < steps:
        x = obs if state is None else state(env, obs)
        u = controller.act(np.asarray(x, dtype=np.float64))
        obs, reward, terminated, truncated, _ = env.step(u)
        observations.append(obs)
        actions.append(u)
        rewards.append(float(reward))
        k += 1
        if terminated or truncated:
            break
    return {
        "total_reward": float(np.sum(rewards)),
        "steps": k,
        "observations": np.asarray(observations),
        "actions": np.asarray(actions),
        "rewards": np.asarray(rewards),
    }
