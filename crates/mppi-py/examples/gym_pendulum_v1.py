"""Drive gymnasium's Pendulum-v1 with mppi, from a numpy model of it.

The built-in `pendulum` task is the same system (Pendulum-v1's equations, cost, torque and
speed limits), so the closed-loop cost here matches `mppi run pendulum`'s up to rounding (the
Rust model's sine differs from numpy's in the last bits):

    pip install ./crates/mppi-py gymnasium==1.4.0
    python crates/mppi-py/examples/gym_pendulum_v1.py
"""

import gymnasium
import numpy as np

import mppi
import mppi.gym

G, M, L, DT = 10.0, 1.0, 1.0, 0.05  # Pendulum-v1's constants
MAX_TORQUE, MAX_SPEED = 2.0, 8.0


def dynamics(x, u):
    """Pendulum-v1's step on a batch: x = (θ, θ̇) (K, 2), u = torque (K, 1)."""
    torque = np.clip(u[:, 0], -MAX_TORQUE, MAX_TORQUE)
    speed = x[:, 1] + (3 * G / (2 * L) * np.sin(x[:, 0]) + 3.0 / (M * L**2) * torque) * DT
    speed = np.clip(speed, -MAX_SPEED, MAX_SPEED)
    return np.stack([x[:, 0] + speed * DT, speed], axis=1)


def cost(x, u, t):
    """Pendulum-v1's cost (minus its reward) on a batch."""
    angle = (x[:, 0] + np.pi) % (2 * np.pi) - np.pi
    return angle**2 + 0.1 * x[:, 1] ** 2 + 0.001 * np.clip(u[:, 0], -MAX_TORQUE, MAX_TORQUE) ** 2


def main(steps=200, seed=0):
    env = gymnasium.make("Pendulum-v1")
    # the CLI's settings for its pendulum task, so that the two runs are comparable
    ctrl = mppi.Controller(
        dynamics,
        cost,
        state_dim=2,
        control_dim=1,
        config=mppi.Task("pendulum").default_config,
        seed=seed,
    )

    class HangingDown(gymnasium.Wrapper):
        """Start from θ = π (hanging down, at rest), as `mppi run pendulum` does."""

        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            self.env.unwrapped.state = np.array([np.pi, 0.0])
            return self.env.unwrapped._get_obs(), info

    episode = mppi.gym.drive(
        HangingDown(env),
        ctrl,
        # the observation is (cos θ, sin θ, θ̇); the model's state is (θ, θ̇)
        state=lambda env, obs: env.unwrapped.state,
        steps=steps,
        seed=seed,
    )
    gym_cost = -episode["total_reward"]
    cli = mppi.run_episode("pendulum", steps=steps, seed=seed)
    final = np.arctan2(episode["observations"][-1][1], episode["observations"][-1][0])
    print(f"gymnasium Pendulum-v1, numpy model: closed-loop cost {gym_cost:.3f}, final angle {final:+.4f} rad")
    print(f"built-in pendulum (as `mppi run`):  closed-loop cost {cli['total_cost']:.3f}")
    return gym_cost, cli["total_cost"], final


if __name__ == "__main__":
    main()
