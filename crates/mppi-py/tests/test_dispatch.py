"""The wheel's two copies of the native module (baseline x86-64 and x86-64-v3) give the same
results, and the loader picks the one the CPU runs."""

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import mppi

_native = importlib.import_module("mppi._native")
try:
    _native_v3 = importlib.import_module("mppi._native_v3")
except ImportError:
    _native_v3 = None

needs_both = pytest.mark.skipif(
    _native_v3 is None or not _native.cpu_supports_v3(),
    reason="this install has no x86-64-v3 module or this CPU cannot run it",
)


def test_the_loader_picks_the_fastest_module_this_cpu_runs():
    if _native_v3 is not None and _native.cpu_supports_v3():
        assert mppi.build_target == "x86-64-v3"
    else:
        assert mppi.build_target == "baseline"
    assert _native.BUILD_TARGET == "baseline" or _native_v3 is None


def run_python(code, **env):
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    return out.returncode, out.stdout.strip(), out.stderr


def test_mppi_cpu_chooses_the_module():
    code, out, _ = run_python("import mppi; print(mppi.build_target)", MPPI_CPU="baseline")
    assert (code, out) == (0, "baseline")
    code, _, err = run_python("import mppi", MPPI_CPU="avx9000")
    assert code != 0 and "MPPI_CPU='avx9000'" in err


@needs_both
@pytest.mark.parametrize("task", ["pendulum", "double_integrator", "unicycle", "quadrotor"])
@pytest.mark.parametrize("precision", ["f64", "f32"])
def test_both_modules_give_identical_results(task, precision):
    a = _native.run_episode(task, steps=30, seed=1, precision=precision)
    b = _native_v3.run_episode(task, steps=30, seed=1, precision=precision)
    np.testing.assert_array_equal(a["states"], b["states"])
    np.testing.assert_array_equal(a["controls"], b["controls"])
    assert a["total_cost"] == b["total_cost"]
