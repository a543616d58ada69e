"""Shared pieces of the Python tests."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name):
    """Import `examples/<name>.py` as a module (the tests run the examples' own code)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pendulum_dynamics(x, u):
    torque = np.clip(u[:, 0], -2.0, 2.0)
    speed = np.clip(x[:, 1] + (15.0 * np.sin(x[:, 0]) + 3.0 * torque) * 0.05, -8.0, 8.0)
    return np.stack([x[:, 0] + speed * 0.05, speed], axis=1)


def pendulum_cost(x, u, t):
    angle = (x[:, 0] + np.pi) % (2 * np.pi) - np.pi
    return angle**2 + 0.1 * x[:, 1] ** 2 + 0.001 * u[:, 0] ** 2


@pytest.fixture
def pendulum_model():
    return pendulum_dynamics, pendulum_cost
