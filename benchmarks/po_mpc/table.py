#!/usr/bin/env python3
"""The PO-MPC results table (the paper's Fig. 4, scaled): rows = tasks, columns = variants,
cells = mean evaluation return ± 95% t-interval over seeds at each budget; below it the
mechanism rows (KL(pi || planner) on fresh states, value overestimation Q-hat - G) and the
training throughput.

    python3 benchmarks/po_mpc/table.py benchmarks/results/po-mpc/grid-small-25k [--budgets 5000,10000]
        [--peer benchmarks/results/po-mpc/tdmpc2-peer --peer-prefix small-]

`--peer` adds a column for the official TD-MPC2 runs of benchmarks/peers/tdmpc2 (directories
`<prefix><task>-s<seed>` with eval.csv and summary.json), and their throughput.
"""

import argparse
import json
import math
import sys
from pathlib import Path

# two-sided 95% quantiles of Student's t, by degrees of freedom
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}
ORDER = ["v0", "vinf", "vinf-reanalyze", "vtd", "vlambda-0.1", "vlambda-1", "vtilde"]
NAMES = {"v0": "V0 (λ=0, TD-MPC2)", "vinf": "V∞ (BMPC)", "vinf-reanalyze": "V∞ + reanalyze",
         "vtd": "VTD (TD-M(PC)²)", "vlambda-0.1": "Vλ=0.1", "vlambda-1": "Vλ=1", "vtilde": "Vλ̃ (λ=1)",
         "tdmpc2-official": "TD-MPC2 official"}
PEER = "tdmpc2-official"


def t975(df):
    if df <= 0:
        return float("nan")
    keys = sorted(T975)
    for k in keys:
        if df <= k:
            return T975[k]
    return 1.96


def mean_ci(values):
    """(mean, half-width of the 95% t-interval, n) of the finite values."""
    v = [x for x in values if x is not None and math.isfinite(x)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), 0
    m = sum(v) / n
    if n == 1:
        return m, float("nan"), 1
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1))
    return m, t975(n - 1) * sd / math.sqrt(n), n


def fmt(m, h, n, digits=0):
    if not math.isfinite(m):
        return "–"
    s = f"{m:.{digits}f}"
    if math.isfinite(h):
        s += f" ± {h:.{digits}f}"
    return s + ("" if n >= 3 else f" (n={n})")


def load(root):
    """{task: {variant: [summary, ...]}}"""
    out = {}
    for path in sorted(Path(root).glob("*/*/seed*/summary.json")):
        task, variant = path.parts[-4], path.parts[-3]
        s = json.loads(path.read_text())
        s["_cell"] = str(path.parent)
        out.setdefault(task, {}).setdefault(variant, []).append(s)
    return out


def load_peer(root, prefix, tasks):
    """{task: [summary-like dict]} of official TD-MPC2 runs `<root>/<prefix><task>-s<seed>`."""
    out = {}
    for task in tasks:
        for cell in sorted(Path(root).glob(f"{prefix}{task}-s*")):
            if not (cell / "summary.json").exists() or not (cell / "eval.csv").exists():
                continue
            s = json.loads((cell / "summary.json").read_text())
            rows = [r.split(",") for r in (cell / "eval.csv").read_text().splitlines()[1:] if r]
            rates = s.get("agent_steps_per_second", {})
            out.setdefault(task, []).append({
                "steps": s.get("steps_done", s.get("steps", 0)),
                "evals": [{"step": int(r[0]), "mean": float(r[1])} for r in rows],
                "steps_per_second": rates.get("overall_excl_eval"),
                "steps_per_cpu_second": rates.get("overall_excl_eval_cpu"),
                "_cell": str(cell),
            })
    return out


def eval_at(summary, budget):
    """The last evaluation record at or before `budget` steps."""
    best = None
    for e in summary.get("evals", []):
        if e["step"] <= budget:
            best = e
    return best


def kl_at(cell, budget):
    """Mean KL(pi || planner) over the training episodes ending in (0.8 budget, budget]."""
    path = Path(cell) / "train.csv"
    if not path.exists():
        return None
    rows = path.read_text().splitlines()
    head = rows[0].split(",")
    if "kl_planner" not in head:
        return None
    i_step, i_kl = head.index("step"), head.index("kl_planner")
    vals = []
    for r in rows[1:]:
        f = r.split(",")
        step, kl = int(f[i_step]), float(f[i_kl])
        if 0.8 * budget < step <= budget and math.isfinite(kl):
            vals.append(kl)
    return sum(vals) / len(vals) if vals else None


def at_budget(summary, budget):
    """The evaluation mean at `budget` steps, if the run got there (None otherwise)."""
    if summary.get("steps", 0) < budget:
        return None
    e = eval_at(summary, budget)
    return e["mean"] if e and e.get("mean") is not None else None


def render(root, budgets=None, peer=None, peer_prefix="small-"):
    data = load(root)
    if not data:
        return f"no summary.json under {root}\n"
    # the mechanism rows of each task at the largest budget every cell of ours reached
    common = {task: min(s["steps"] for ss in d.values() for s in ss) for task, d in data.items()}
    if peer:
        for task, runs in load_peer(peer, peer_prefix, list(data)).items():
            data[task][PEER] = runs
    variants = [v for v in ORDER if any(v in d for d in data.values())]
    variants += sorted({v for d in data.values() for v in d} - set(variants))
    if budgets is None:
        budgets = sorted({e["step"] for d in data.values() for ss in d.values() for s in ss
                          for e in s.get("evals", [])})
    lines = []
    header = "| task | budget | " + " | ".join(NAMES.get(v, v) for v in variants) + " |"
    sep = "|---|--:|" + "--:|" * len(variants)
    lines += ["Mean evaluation return ± 95% t-interval over seeds (dm_control scale, 0–1000):", "",
              header, sep]
    for task in sorted(data):
        for b in budgets:
            cells = [fmt(*mean_ci([at_budget(s, b) for s in data[task].get(v, [])])) for v in variants]
            lines.append(f"| {task} | {b} | " + " | ".join(cells) + " |")
    lines += ["", "Mechanism rows at each task's budget B (KL(π‖planner): mean over the training decisions "
              "of steps 0.8 B–B; Q̂ − G: the evaluation at B steps, "
              "first half of each episode; steps/s: whole run, with updates, without evaluations, per "
              "wall-clock second and, where recorded, per process CPU second):",
              "", header, sep]
    for task in sorted(data):
        d = data[task]
        b = common[task]
        kl = [fmt(*mean_ci([kl_at(s["_cell"], b) for s in d.get(v, [])]), digits=2) for v in variants]
        gap = [fmt(*mean_ci([(eval_at(s, b) or {}).get("q_gap") for s in d.get(v, [])]), digits=1)
               for v in variants]
        sps = [fmt(*mean_ci([s.get("steps_per_second") for s in d.get(v, [])]), digits=1) for v in variants]
        lines.append(f"| {task} | KL(π‖planner) at {b} | " + " | ".join(kl) + " |")
        lines.append(f"| {task} | Q̂ − G at {b} | " + " | ".join(gap) + " |")
        lines.append(f"| {task} | steps/s | " + " | ".join(sps) + " |")
        if any(s.get("steps_per_cpu_second") for ss in d.values() for s in ss):
            cps = [fmt(*mean_ci([s.get("steps_per_cpu_second") for s in d.get(v, [])]), digits=1)
                   for v in variants]
            lines.append(f"| {task} | steps/CPU-s | " + " | ".join(cps) + " |")
    seeds = sorted({len(ss) for d in data.values() for v, ss in d.items() if v != PEER})
    lines += ["", f"Seeds per cell: {seeds}; t-quantiles t(0.975, n−1) (n = 3: 4.30)."]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("root")
    p.add_argument("--budgets", default=None)
    p.add_argument("--peer", default=None, help="directory of official TD-MPC2 runs (a column)")
    p.add_argument("--peer-prefix", default="small-", help="their run directories' prefix")
    args = p.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else None
    sys.stdout.write(render(args.root, budgets, args.peer, args.peer_prefix))


if __name__ == "__main__":
    main()
