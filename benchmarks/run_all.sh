#!/usr/bin/env bash
# Everything BENCHMARKS.md reports, measured side by side in one run on this machine:
#   1. `mppi bench` at 1 thread (pinned to CPU 0, like the peers) and at 2 threads, with the
#      hand-fused reference kernel, plots and JSON;
#   2. the peers, pytorch-mppi and jax-mppi (benchmarks/peers/run.sh, one thread);
#   3. benchmarks/compare.py: the side-by-side table with ratios and the targets.
# Not part of CI (it installs the peers into local virtual environments on first use).
# Usage: bash benchmarks/run_all.sh [OUT_DIR]   (default benchmarks/results/latest; the runs
# BENCHMARKS.md reports are kept in benchmarks/results/run-a and run-b)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/benchmarks/results/latest}"
cd "$ROOT"
mkdir -p "$OUT"
cargo build --release --locked -p mppi-cli
# one thread pinned to CPU 0, like the peers (benchmarks/peers/run.sh); two threads on both
PIN=()
if command -v taskset >/dev/null 2>&1; then PIN=(taskset -c 0); fi
"${PIN[@]}" ./target/release/mppi bench --threads 1 --out "$OUT/mppi-1-thread"
./target/release/mppi bench --threads 2 --out "$OUT/mppi-2-threads"
bash benchmarks/peers/run.sh
cp benchmarks/peers/results/peers.json benchmarks/peers/results/peers.md "$OUT/"
python3 benchmarks/compare.py "$OUT/mppi-1-thread/bench.json" "$OUT/mppi-2-threads/bench.json" \
    "$OUT/peers.json" > "$OUT/comparison.md"
cat "$OUT/comparison.md"
