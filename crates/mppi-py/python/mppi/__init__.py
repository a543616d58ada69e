"""mppi: sampling-based model predictive control, MPPI seen as expectation-maximization.

The planner is written in Rust; this package drives it with numpy arrays in and out.

>>> import numpy as np, mppi
>>> ctrl = mppi.Controller.for_task("pendulum", samples=256)
>>> u = ctrl.act(mppi.Task("pendulum").initial_state)
>>> u.shape
(1,)

A model written in Python is a pair of batched numpy callables, called once per time step on
every sample at once::

    def dynamics(x, u):            # x: (K, nx), u: (K, nu) -> (K, nx)
        ...
    def cost(x, u, t):             # -> (K,)
        ...
    ctrl = mppi.Controller(dynamics, cost, state_dim=2, control_dim=1,
                           config={"samples": 500, "proposal": {"noise_sigma": 1.0}})

Settings are the keys of the core's config (``mppi.config_keys()``): a nested dict, dotted
keys (``{"proposal.std_min": 0.1}``), a TOML file path, a preset (``preset="dial"``) or keyword
arguments (``samples=500``), laid over the defaults in that order. A misspelled key raises
``ValueError`` naming it; a value of the wrong type raises ``TypeError``.

The native module is compiled twice, for baseline x86-64 and for x86-64-v3 (AVX2, FMA); the
faster one this CPU runs is loaded (``mppi.build_target`` says which; set ``MPPI_CPU=baseline``
or ``MPPI_CPU=v3`` to choose). Both give identical results.
"""

import os as _os


def _load_native():
    choice = _os.environ.get("MPPI_CPU", "auto").strip().lower() or "auto"
    if choice not in ("auto", "v3", "baseline"):
        raise ImportError(f"MPPI_CPU={choice!r} is not a choice; use auto, v3 or baseline")
    from . import _native as baseline

    if choice == "baseline":
        return baseline
    if not baseline.cpu_supports_v3():
        if choice == "v3":
            raise ImportError(
                "MPPI_CPU=v3, but this CPU lacks x86-64-v3 instructions (AVX2, FMA, BMI2); "
                "unset MPPI_CPU to use the baseline module"
            )
        return baseline
    try:
        from . import _native_v3 as v3
    except ImportError:
        if choice == "v3":
            raise ImportError(
                "MPPI_CPU=v3, but this build of mppi has no x86-64-v3 module (an editable or "
                "non-x86 build); reinstall with `pip install ./crates/mppi-py`"
            ) from None
        return baseline
    return v3


_native_module = _load_native()

Controller = _native_module.Controller
Task = _native_module.Task
tasks = _native_module.tasks
run_episode = _native_module.run_episode
presets = _native_module.presets
config_keys = _native_module.config_keys
#: What the loaded native module was compiled for: ``"x86-64-v3"`` or ``"baseline"``.
build_target = _native_module.BUILD_TARGET
__version__ = _native_module.__version__

__all__ = [
    "Controller",
    "Task",
    "tasks",
    "run_episode",
    "presets",
    "config_keys",
    "build_target",
    "gym",
]


def __getattr__(name):
    # `mppi.gym` needs gymnasium, an optional dependency: import it on first use
    if name == "gym":
        import importlib

        # import_module, not `from . import gym`: the latter asks this very function first
        return importlib.import_module(".gym", __name__)
    raise AttributeError(f"module 'mppi' has no attribute {name!r}")
