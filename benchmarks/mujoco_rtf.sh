#!/usr/bin/env bash
# Real-time factor of the MuJoCo suite tasks: simulated seconds per wall second of a whole
# closed-loop episode (planning plus the plant), at each task's default sample budget (one
# that succeeds), on 1 and 2 threads. Writes a markdown table to stdout.
#
#   bash benchmarks/mujoco_rtf.sh [tasks...]       (default: every mj-* task)
#
# Uses target/release/mppi (build it first: cargo build --release --locked -p mppi-cli).
set -euo pipefail
cd "$(dirname "$0")/.."
MPPI="${MPPI_CLI:-target/release/mppi}"
TASKS=("$@")
if [ ${#TASKS[@]} -eq 0 ]; then
    mapfile -t TASKS < <("$MPPI" tasks | awk '$1 ~ /^mj-/ {print $1}')
fi
echo "| task | samples × horizon | control dt | threads | sim s | wall s | RTF | planning median / p99 ms | success |"
echo "|---|---|--:|--:|--:|--:|--:|---|---|"
for task in "${TASKS[@]}"; do
    for threads in 1 2; do
        out=$("$MPPI" run "$task" --threads "$threads")
        sim=$(sed -n 's/^steps .*(\([0-9.]*\) s simulated, \([0-9.]*\) s wall).*/\1/p' <<<"$out")
        wall=$(sed -n 's/^steps .*(\([0-9.]*\) s simulated, \([0-9.]*\) s wall).*/\2/p' <<<"$out")
        steps=$(sed -n 's/^steps *\([0-9]*\) .*/\1/p' <<<"$out")
        budget=$(sed -n 's/^planning time.*(\([0-9]*\) samples x \([0-9]*\) horizon.*/\1 × \2/p' <<<"$out")
        plan=$(sed -n 's/^planning time *median \([0-9.]*\) ms, p99 \([0-9.]*\) ms.*/\1 \/ \2/p' <<<"$out")
        success=$(sed -n 's/^success *\([a-z]*\).*/\1/p' <<<"$out")
        rtf=$(python3 -c "print(f'{$sim / $wall:.2f}')")
        dt=$(python3 -c "print(f'{$sim / $steps:.3f}')")
        echo "| $task | $budget | $dt s | $threads | $sim | $wall | $rtf | $plan | $success |"
    done
done
