#!/usr/bin/env bash
# Every test of the repository, as the README's test command: the Rust workspace, then the
# Python package, built from this checkout into a virtual environment, and the MuJoCo models
# against dm_control's, with pytest. The first cargo build fetches MuJoCo 3.17.0's library
# from PyPI's `mujoco` wheel (crates/mppi-mujoco/build.rs).
#
# The Python package's wheel reuses this build: its x86-64-v3 copy of the native module links
# the release artifacts the Rust tests just built, and only its baseline x86-64 copy compiles
# on its own (in target/wheel-baseline). The virtual environment lives in target/py-venv.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test --workspace --release --locked --exclude mppi-py"
# mppi-py is tested through Python below (a Rust test binary of it would link libpython)
cargo test --workspace --release --locked --exclude mppi-py
# the env tracer for test_envs_match_dm_control.py: the same package selection as the tests
# above, so the same features and their artifacts (`-p mppi-learn` alone resolves other
# features and recompiled mppi-mujoco and mppi-learn for 6 minutes)
cargo build --release --locked --workspace --exclude mppi-py --example env_trace
export MPPI_ENV_TRACE="$PWD/target/release/examples/env_trace"  # for test_envs_match_dm_control.py

PYTHON="${PYTHON:-python3}"
VENV=target/py-venv
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi
echo "== pip install ./crates/mppi-py[test] (builds the wheel)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "./crates/mppi-py[test]"
echo "== pip install -r crates/mppi-mujoco/tests/python/requirements.txt (MuJoCo 3.17.0, dm_control)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r crates/mppi-mujoco/tests/python/requirements.txt
echo "== pytest crates/mppi-py/tests crates/mppi-mujoco/tests/python"
# The MuJoCo tests check our MJCF models against dm_control's and replay trajectories of the
# `mppi` binary the cargo tests above built (target/release/mppi) in dm_control's physics.
MUJOCO_GL=disable MPPI_CLI="$PWD/target/release/mppi" "$VENV/bin/python" -m pytest \
    crates/mppi-py/tests crates/mppi-mujoco/tests/python -q -p no:cacheprovider
