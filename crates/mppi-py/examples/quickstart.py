"""Two ways to use mppi from Python: a built-in task, and a model written in numpy.

    pip install ./crates/mppi-py
    python crates/mppi-py/examples/quickstart.py
"""

import numpy as np

import mppi

# 1. A built-in task: its model runs in Rust (the GIL is released while it plans).
result = mppi.run_episode("pendulum", seed=0)
print(f"built-in pendulum: total cost {result['total_cost']:.2f}, success {result['success']}")
print(f"  {result['message']}")

# 2. Your own model: batched numpy functions over all K samples at once.
DT, G = 0.05, 10.0


def dynamics(x, u):
    """Pendulum-v1: x = (angle from upright, angular speed), u = torque; (K, 2), (K, 1) -> (K, 2)."""
    torque = np.clip(u[:, 0], -2.0, 2.0)
    speed = np.clip(x[:, 1] + (1.5 * G * np.sin(x[:, 0]) + 3.0 * torque) * DT, -8.0, 8.0)
    return np.stack([x[:, 0] + speed * DT, speed], axis=1)


def cost(x, u, t):
    """Upright and still, with little torque; -> (K,)."""
    angle = (x[:, 0] + np.pi) % (2 * np.pi) - np.pi
    return angle**2 + 0.1 * x[:, 1] ** 2 + 0.001 * u[:, 0] ** 2


ctrl = mppi.Controller(
    dynamics,
    cost,
    state_dim=2,
    control_dim=1,
    config={"samples": 1000, "horizon": 30, "u_min": [-2.0], "u_max": [2.0]},
    proposal={"noise_sigma": 1.0},
)
x = np.array([np.pi, 0.0])  # hanging down
total = 0.0
for _ in range(200):
    u = ctrl.act(x)
    total += cost(x[None], u[None], 0)[0]
    x = dynamics(x[None], u[None])[0]
print(f"numpy pendulum: total cost {total:.2f}, final angle {x[0]:+.4f} rad")
print(f"  last step: {ctrl.report['iterations'][-1]['ess']:.1f} effective samples")
