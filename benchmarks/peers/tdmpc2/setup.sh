#!/usr/bin/env bash
# Sets up the official TD-MPC2 code and a Python environment for it, outside the repository.
# Nothing here copies TD-MPC2's code into this repository.
#
#   TDMPC2_GIT   a git directory holding nicklashansen/tdmpc2 (default: the mirror that the
#                session's `fetch github:nicklashansen/tdmpc2` made; a plain clone's .git works too)
#   TDMPC2_SRC   where to extract its work tree (default /tmp/tdmpc2)
#   TDMPC2_VENV  the virtual environment (default /tmp/tdmpc2-venv)
#   PYTHON       the interpreter for the venv (default python3, 3.11 here)
set -euo pipefail

TDMPC2_GIT=${TDMPC2_GIT:-/work/.mirror/nicklashansen+tdmpc2/repo}
TDMPC2_SRC=${TDMPC2_SRC:-/tmp/tdmpc2}
TDMPC2_VENV=${TDMPC2_VENV:-/tmp/tdmpc2-venv}
PYTHON=${PYTHON:-python3}

if [ ! -f "$TDMPC2_SRC/tdmpc2/tdmpc2.py" ]; then
    mkdir -p "$TDMPC2_SRC"
    git --git-dir="$TDMPC2_GIT" archive HEAD | tar -x -C "$TDMPC2_SRC"
    git --git-dir="$TDMPC2_GIT" rev-parse HEAD > "$TDMPC2_SRC/COMMIT"
fi
echo "TD-MPC2 source: $TDMPC2_SRC (commit $(cat "$TDMPC2_SRC/COMMIT" 2>/dev/null || echo unknown))"

if [ ! -x "$TDMPC2_VENV/bin/python" ]; then
    "$PYTHON" -m venv "$TDMPC2_VENV"
    "$TDMPC2_VENV/bin/pip" install -q --upgrade pip
fi
# torch / tensordict / torchrl / hydra-core / omegaconf / termcolor / gymnasium: TD-MPC2's own pins
# (docker/environment.yaml). dm-control / mujoco: the versions this project uses (upstream pins
# dm-control 1.0.16 + mujoco 3.1.2). PyPI's torch is the CUDA build (it pulls the nvidia-* wheels,
# ~3 GB); it runs on the CPU unchanged. wandb, video, submitit and kornia are not installed.
nice -n 10 "$TDMPC2_VENV/bin/pip" install \
    torch==2.7.1 tensordict==0.8.3 torchrl==0.8.1 \
    hydra-core==1.3.2 omegaconf==2.3.0 termcolor==2.4.0 gymnasium==0.29.1 \
    dm-control==1.0.50 mujoco==3.17.0 pandas
"$TDMPC2_VENV/bin/python" -c "import torch, tensordict, torchrl, mujoco, dm_control; print('torch', torch.__version__, 'tensordict', tensordict.__version__, 'torchrl', torchrl.__version__, 'mujoco', mujoco.__version__)"
