#!/usr/bin/env bash
# Peer comparison: our library (the Rust CLI's `mppi bench`, and the Python bindings `mppi` with
# a built-in model and with a numpy-defined model), pytorch-mppi and jax-mppi on the same
# problems, one CPU thread. Installs the peers from PyPI and our wheel into local virtual
# environments (first run only), runs `mppi bench`, bench_mppi_py.py, bench_torch.py and
# bench_jax.py, and writes results/peers.json and results/peers.md.
# Not part of CI. See README.md in this folder.
#
# Environment knobs (all optional):
#   PEERS_BLOCKS=15          timing blocks per problem
#   PEERS_CALLS=0            command() calls per block (0 = auto, about 0.2 s per block)
#   PEERS_WARMUP=20          untimed calls first (jax: compilation happens here)
#   PEERS_DTYPES="float32 float64"
#   PEERS_PROBLEMS=pendulum_t30_k1000,pendulum_t15_k100,double_integrator_t50_k4096,unicycle_t50_k4096
#   PEERS_LIBS="mppi torch jax"   (mppi = the Rust CLI and the Python bindings)
#   PEERS_CPU=0              the CPU that taskset pins the benchmarks to
#   PYTHON_TORCH, PYTHON_JAX interpreters for the two virtual environments
#   MPPI_CLI                 the `mppi` binary (default: cargo build --release --locked -p mppi-cli,
#                            then target/release/mppi)
#   MPPI_WHEEL               the mppi wheel to install into .venv-mppi (default: build it from
#                            crates/mppi-py, which needs a Rust toolchain and takes minutes)
#   PYTHON_MPPI              an interpreter that already imports mppi and numpy: used as is,
#                            no .venv-mppi
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$HERE"
RESULTS="$HERE/results"

# The pinned versions (jax-mppi 0.3.0 requires jax>=0.9.0, numpy, jaxtyping, chex, pyyaml and
# Python >= 3.12; it is an sdist built with scikit-build-core, without its optional CUDA part
# when no CUDA toolkit is found). torch comes from PyPI's default wheel (it pulls the NVIDIA
# runtime wheels, a few GB; only the CPU is used).
TORCH_REQS=(torch==2.15.0 pytorch-mppi==0.9.1 arm-pytorch-utilities==0.5.0)
JAX_REQS=("jax[cpu]==0.12.0.1" jax-mppi==0.3.0)
# our bindings' environment: numpy as in .venv-torch; mppi itself is (re)installed every run
MPPI_REQS=(numpy==2.4.6)

BLOCKS="${PEERS_BLOCKS:-15}"
CALLS="${PEERS_CALLS:-0}"
WARMUP="${PEERS_WARMUP:-20}"
DTYPES="${PEERS_DTYPES:-float32 float64}"
PROBLEMS="${PEERS_PROBLEMS:-pendulum_t30_k1000,pendulum_t15_k100,double_integrator_t50_k4096,unicycle_t50_k4096}"
LIBS="${PEERS_LIBS:-mppi torch jax}"

log() { printf '==> %s\n' "$*" >&2; }

py_version_ok() { # interpreter, minimum minor version of Python 3
    "$1" -c "import sys; sys.exit(0 if sys.version_info[:2] >= (3, $2) else 1)" 2>/dev/null
}

find_python() { # minimum minor version, candidates...
    local min="$1" c
    shift
    for c in "$@"; do
        [[ -n "$c" ]] || continue
        if command -v "$c" >/dev/null 2>&1 && py_version_ok "$c" "$min"; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

make_venv() { # dir, interpreter, requirements...
    local dir="$1" py="$2"
    shift 2
    local want="$* (python $("$py" -c 'import sys; print(sys.version.split()[0])'))"
    if [[ -x "$dir/bin/python" && -f "$dir/.peers-installed" && "$(cat "$dir/.peers-installed")" == "$want" ]]; then
        log "$dir is up to date ($want)"
        return 0
    fi
    log "creating $dir with $py: $*"
    rm -rf "$dir"
    "$py" -m venv "$dir"
    "$dir/bin/python" -m pip install --upgrade pip >/dev/null
    "$dir/bin/python" -m pip install "$@"
    echo "$want" >"$dir/.peers-installed"
}

# one thread everywhere, pinned to one CPU when taskset exists
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
export JAX_PLATFORMS=cpu
PIN=()
if command -v taskset >/dev/null 2>&1; then
    PIN=(taskset -c "${PEERS_CPU:-0}")
else
    log "taskset not found: the benchmarks are not pinned to one CPU"
fi

mkdir -p "$RESULTS"
rm -f "$RESULTS"/*-float*.json "$RESULTS"/peers.json "$RESULTS"/peers.md
rm -rf "$RESULTS"/cli-*
ARGS=(--problems "$PROBLEMS" --blocks "$BLOCKS" --calls "$CALLS" --warmup "$WARMUP")
ran=0

cli_bench() { # output folder: the Rust library called directly, 1 thread, float64 and float32
    log "mppi CLI (Rust): $CLI bench -j 1 --blocks $BLOCKS"
    "${PIN[@]}" "$CLI" bench --threads 1 --blocks "$BLOCKS" --quiet --out "$1" >"$1.txt"
}

if [[ " $LIBS " == *" mppi "* ]]; then
    CLI="${MPPI_CLI:-}"
    if [[ -z "$CLI" ]]; then
        log "building the CLI: cargo build --release --locked -p mppi-cli"
        (cd "$REPO" && cargo build --release --locked -p mppi-cli)
        CLI="$REPO/target/release/mppi"
    fi
    if [[ -n "${PYTHON_MPPI:-}" ]]; then
        PY_MPPI="$PYTHON_MPPI"
    elif PY_MPPI0="$(find_python 9 python3.11 python3.12 python3)"; then
        make_venv "$HERE/.venv-mppi" "$PY_MPPI0" "${MPPI_REQS[@]}"
        # (re)install mppi every run, so that the numbers are those of the current code
        log "installing mppi into .venv-mppi from ${MPPI_WHEEL:-$REPO/crates/mppi-py}"
        "$HERE/.venv-mppi/bin/python" -m pip install --force-reinstall --no-deps \
            "${MPPI_WHEEL:-$REPO/crates/mppi-py}"
        PY_MPPI="$HERE/.venv-mppi/bin/python"
    else
        log "SKIPPING mppi-py: no Python >= 3.9 found (set PYTHON_MPPI)"
        PY_MPPI=""
    fi
    # The CLI runs before and after the Python bindings; table.py pools the blocks of both
    # runs, so that a slow phase of a shared machine does not fall on one side only.
    cli_bench "$RESULTS/cli-1"
    if [[ -n "$PY_MPPI" ]]; then
        for dt in $DTYPES; do
            log "mppi-py (builtin and numpy models), $dt"
            "${PIN[@]}" "$PY_MPPI" bench_mppi_py.py --dtype "$dt" "${ARGS[@]}" \
                --out "$RESULTS/mppi-py-{variant}-$dt.json"
        done
    fi
    cli_bench "$RESULTS/cli-2"
    ran=1
fi

if [[ " $LIBS " == *" torch "* ]]; then
    if PY_TORCH="$(find_python 9 "${PYTHON_TORCH:-}" python3.11 python3.12 python3)"; then
        make_venv "$HERE/.venv-torch" "$PY_TORCH" "${TORCH_REQS[@]}"
        for dt in $DTYPES; do
            log "pytorch-mppi, $dt"
            "${PIN[@]}" "$HERE/.venv-torch/bin/python" bench_torch.py --dtype "$dt" "${ARGS[@]}" \
                --out "$RESULTS/pytorch-mppi-$dt.json"
            ran=1
        done
    else
        log "SKIPPING pytorch-mppi: no Python >= 3.9 found (set PYTHON_TORCH)"
    fi
fi

if [[ " $LIBS " == *" jax "* ]]; then
    if PY_JAX="$(find_python 12 "${PYTHON_JAX:-}" /root/.pyenv/versions/3.12.1/bin/python \
        python3.12 python3.13 python3)"; then
        make_venv "$HERE/.venv-jax" "$PY_JAX" "${JAX_REQS[@]}"
        for dt in $DTYPES; do
            log "jax-mppi, $dt"
            "${PIN[@]}" "$HERE/.venv-jax/bin/python" bench_jax.py --dtype "$dt" "${ARGS[@]}" \
                --out "$RESULTS/jax-mppi-$dt.json"
            ran=1
        done
    else
        log "SKIPPING jax-mppi: it needs Python >= 3.12 and none was found (tried \$PYTHON_JAX," \
            "/root/.pyenv/versions/3.12.1/bin/python, python3.12, python3.13, python3);" \
            "set PYTHON_JAX=/path/to/python3.12"
    fi
fi

if [[ "$ran" == 0 ]]; then
    log "nothing was run"
    exit 1
fi
python_any="$(find_python 6 python3 "$HERE/.venv-torch/bin/python" "$HERE/.venv-jax/bin/python" \
    "$HERE/.venv-mppi/bin/python")"
"$python_any" table.py "$RESULTS" >/dev/null
log "wrote $RESULTS/peers.json and $RESULTS/peers.md"
cat "$RESULTS/peers.md"
