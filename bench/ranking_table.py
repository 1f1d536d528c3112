"""The ranking tables of docs/results.md, from the saved experiment rows
(bench/results/experiments/NAME.json, written by bench/experiment.py).

    python bench/ranking_table.py            # prints the 6,000- and 32,000-step tables (markdown)

Every row is evaluated with a binary gripper (the runs trained before the cpu profile set
it were re-evaluated with ``--eval-only --gripper binary``: the ``*_binary`` rows).
Mean and standard deviation are over seeds (sample std, ddof=1).
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

ROWS = Path(__file__).resolve().parent / "results" / "experiments"
TASKS = ["reach", "push_block", "open_drawer", "close_drawer", "pick_place_table", "push_block_open_drawer",
         "pick_drawer_place_tray_close"]

#: budget -> method -> the row of each seed (0, 1, 2), binary gripper
TABLES = {
    6000: {
        "Stable CRL": ["r2_mc_reach_binary", "r2_mc_reach_seed1_binary", "r5_mc_6k_seed2"],
        "GCBC": ["r2_gcbc_reach_binary", "r2_gcbc_reach_seed1_binary", "r5_gcbc_6k_seed2"],
        "CRL without the design decisions": ["r2_nodesign_mc_reach_binary", "r5_nodesign_6k_seed1",
                                             "r5_nodesign_6k_seed2"],
        "GC-IQL": ["r2_gciql_reach_binary", "r5_gciql_6k_seed1", "r6_gciql_6k_seed2"],
    },
    32000: {
        "Stable CRL": ["../gripper/W12_stable_crl_32k_binary", "r5_mc_32k_seed1_binary", "r6_mc_32k_seed2"],
        "GCBC": ["../gripper/W14_gcbc_32k_binary", "r5_gcbc_32k_seed1_binary", "r6_gcbc_32k_seed2"],
        "CRL without the design decisions": ["r7_nodesign_32k_seed0", "r7_nodesign_32k_seed1",
                                             "r7_nodesign_32k_seed2"],
        "GC-IQL": ["r7_gciql_32k_seed0", "r7_gciql_32k_seed1", "r7_gciql_32k_seed2"],
    },
}


def _load(name: str) -> dict | None:
    path = ROWS / f"{name}.json"
    if not path.exists():
        return None
    row = json.loads(path.read_text())
    if "sampled" not in row and "binary_sampled" in row:  # the first re-evaluations' layout
        row = {"sampled": row["binary_sampled"], "mean": row["binary_mean"]}
    return row


def _pm(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}%"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}%"


def table(steps: int) -> str:
    lines = [f"| method ({steps:,} steps) | seeds | mean, sampled | per seed | mean, mean action | "
             + " | ".join(TASKS) + " |", "| --- " * (5 + len(TASKS)) + "|"]
    for method, names in TABLES[steps].items():
        rows = [(seed, r) for seed, r in enumerate(_load(n) for n in names) if r is not None]
        if not rows:
            continue
        sampled = [r["sampled"]["success"] for _, r in rows]
        mean = [r["mean"]["success"] for _, r in rows]
        per_task = [statistics.mean(r["sampled"]["per_task"][t] for _, r in rows) for t in TASKS]
        lines.append(f"| {method} | {', '.join(str(s) for s, _ in rows)} | **{_pm(sampled)}** | "
                     f"{', '.join(f'{100 * v:.1f}' for v in sampled)} | {_pm(mean)} | "
                     + " | ".join(f"{100 * v:.0f}" for v in per_task) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    for steps in TABLES:
        print(table(steps), end="\n\n")
