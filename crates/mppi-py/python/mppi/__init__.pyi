"""Type stubs of the `mppi` package (the native module's classes and functions)."""

from os import PathLike
from typing import Any, Callable, Mapping, Optional, Sequence, Union, final


import numpy as np
import numpy.typing as npt

from . import gym as gym

_FloatArray = npt.NDArray[np.float64]
#: A state or control: a float64 array or a sequence of numbers.
_Vector = Union[_FloatArray, Sequence[float]]
#: Settings: a nested dict of config keys (dotted keys allowed) or the path of a TOML file.
_Config = Union[Mapping[str, Any], str, "PathLike[str]"]
#: `dynamics(x, u) -> x_next`, batched: x (K, nx), u (K, nu) -> (K, nx), float64.
_Dynamics = Callable[[_FloatArray, _FloatArray], _FloatArray]
#: `cost(x, u, t) -> c`, batched: x (K, nx), u (K, nu), step t -> (K,), float64.
_RunningCost = Callable[[_FloatArray, _FloatArray, int], _FloatArray]
#: `terminal_cost(x) -> c`: x (K, nx) -> (K,), float64.
_TerminalCost = Callable[[_FloatArray], _FloatArray]
#: `rollout(x0, U) -> costs`: x0 (nx,), U (K, T, nu) -> (K,), float64.
_Rollout = Callable[[_FloatArray, _FloatArray], _FloatArray]

#: What the loaded native module was compiled for: "x86-64-v3" or "baseline".
build_target: str
__version__: str

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

@final
class Controller:
    """MPPI in closed loop: `act(state)` returns the control to apply now."""

    def __new__(
        cls,
        dynamics: _Dynamics,
        cost: _RunningCost,
        config: Optional[_Config] = None,
        *,
        state_dim: int,
        control_dim: int,
        preset: Optional[str] = None,
        terminal_cost: Optional[_TerminalCost] = None,
        **settings: Any,
    ) -> "Controller":
        """A controller for a model written in Python (batched numpy callables)."""
    @staticmethod
    def from_rollout(
        rollout: _Rollout,
        config: Optional[_Config] = None,
        *,
        state_dim: int,
        control_dim: int,
        preset: Optional[str] = None,
        **settings: Any,
    ) -> "Controller":
        """A controller for a model that rolls out whole plans: called once per iteration."""
    @staticmethod
    def for_task(
        task: str,
        *,
        config: Optional[_Config] = None,
        preset: Optional[str] = None,
        **settings: Any,
    ) -> "Controller":
        """A controller for a built-in task (`mppi.tasks()`), its defaults overridden."""
    def act(self, state: _Vector) -> _FloatArray:
        """Plan from `state` and return the control to apply now, shape (control_dim,)."""
    @property
    def plan(self) -> _FloatArray:
        """The current plan, shape (horizon, control_dim)."""
    def set_plan(self, plan: Union[_FloatArray, Sequence[float]]) -> None:
        """Replace the plan: shape (horizon, control_dim) or flat."""
    def reset(self) -> None:
        """Forget the plan and the step counter (a new episode)."""
    @property
    def report(self) -> dict[str, Any]:
        """Diagnostics of the last `act`: step, status, planning_time (s), iterations."""
    @property
    def samples(self) -> _FloatArray:
        """Sampled control sequences of the last iteration, (samples, horizon, control_dim)."""
    @property
    def costs(self) -> _FloatArray:
        """Costs of the last iteration's samples, (samples,)."""
    @property
    def weights(self) -> _FloatArray:
        """Normalized weights of the last iteration's samples, (samples,)."""
    @property
    def config(self) -> dict[str, Any]:
        """The whole resolved config as a nested dict."""
    @property
    def state_dim(self) -> int: ...
    @property
    def control_dim(self) -> int: ...
    @property
    def horizon(self) -> int: ...
    @property
    def task(self) -> Optional[str]:
        """The built-in task's name, or None for a Python model."""

@final
class Task:
    """A built-in control problem: model, cost, defaults and success criterion."""

    def __new__(cls, name: str) -> "Task": ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def state_names(self) -> list[str]: ...
    @property
    def control_names(self) -> list[str]: ...
    @property
    def state_dim(self) -> int: ...
    @property
    def control_dim(self) -> int: ...
    @property
    def dt(self) -> float:
        """Plant time step in seconds."""
    @property
    def default_steps(self) -> int: ...
    @property
    def initial_state(self) -> _FloatArray: ...
    @property
    def default_config(self) -> dict[str, Any]: ...
    @property
    def u_min(self) -> Optional[list[float]]: ...
    @property
    def u_max(self) -> Optional[list[float]]: ...
    def dynamics(self, x: _FloatArray, u: _FloatArray) -> _FloatArray:
        """The planner's model on a batch: (K, nx), (K, nu) -> (K, nx)."""
    def running_cost(self, x: _FloatArray, u: _FloatArray, t: int = 0) -> _FloatArray:
        """The planner's running cost on a batch -> (K,)."""
    def terminal_cost(self, x: _FloatArray) -> _FloatArray:
        """The planner's terminal cost on a batch -> (K,)."""
    def plant_step(self, x: _Vector, u: _Vector) -> _FloatArray:
        """Advance the real system one step."""
    def stage_cost(self, x: _Vector, u: _Vector) -> float:
        """The cost of one closed-loop step."""
    def judge(self, states: _FloatArray, controls: _FloatArray) -> tuple[bool, str]:
        """The task's verdict on an episode: (success, message)."""

def tasks() -> list[str]:
    """The names of the built-in tasks."""

def run_episode(
    task: str,
    *,
    steps: Optional[int] = None,
    initial_state: Optional[_Vector] = None,
    config: Optional[_Config] = None,
    preset: Optional[str] = None,
    **settings: Any,
) -> dict[str, Any]:
    """Run a built-in task in closed loop, as `mppi run <task>` does."""

def presets() -> list[tuple[str, str]]:
    """The presets: (name, description)."""

def config_keys() -> list[tuple[str, str]]:
    """Every config key (dotted path) with its description."""
