"""How much cheaper the search's steps got as the network shrank, from a run's history.jsonl.

Compares the first and the last quarter of the run: the median of the per-row median step times, and the mean of
the per-row mean MACs (`step_macs`, the network each step trained). Physical shrinking should make steps faster
roughly in proportion to MACs; fixed per-step costs (data, optimizer, small-tensor overheads) make it less.

    python benchmarks/search_speedup.py runs/demo          # writes benchmarks/results/search_speedup.md
"""

from __future__ import annotations

import json
import os
import statistics
import sys

from _common import RESULTS, write_markdown


def quarters(rows: list[dict]) -> dict:
    last_step = rows[-1]["step"]
    first = [r for r in rows if r["step"] <= last_step / 4 and r.get("step_time")]
    last = [r for r in rows if r["step"] > 3 * last_step / 4 and r.get("step_time")]
    t_first = statistics.median(r["step_time"] for r in first)
    t_last = statistics.median(r["step_time"] for r in last)
    m_first = statistics.fmean(r["step_macs"] for r in first)
    m_last = statistics.fmean(r["step_macs"] for r in last)
    return dict(
        steps=last_step,
        first_rows=len(first),
        last_rows=len(last),
        step_time_first=t_first,
        step_time_last=t_last,
        speedup=t_first / t_last,
        macs_first=m_first,
        macs_last=m_last,
        macs_factor=m_first / m_last,
        required=m_first / m_last / 2,
    )


def main(run_dir: str) -> None:
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "history.jsonl"))]
    q = quarters(rows)
    verdict = "yes" if q["speedup"] >= q["required"] else "no"
    lines = [
        "# Search step time against network cost",
        "",
        f"Run: `{run_dir}` ({q['steps']} steps). First quarter = {q['first_rows']} history rows, last quarter = "
        f"{q['last_rows']}. Produced by `python benchmarks/search_speedup.py {run_dir}`.",
        "",
        "| | first quarter | last quarter | ratio |",
        "|---|---|---|---|",
        f"| median step time (s) | {q['step_time_first']:.3f} | {q['step_time_last']:.3f} | {q['speedup']:.2f}x |",
        f"| mean MACs per step (M) | {q['macs_first'] / 1e6:.2f} | {q['macs_last'] / 1e6:.2f} | "
        f"{q['macs_factor']:.2f}x |",
        "",
        f"Step time fell by {q['speedup']:.2f}x; half the MACs factor is {q['required']:.2f}x: "
        f"at least that much faster: **{verdict}**.",
    ]
    print("\n".join(lines))
    write_markdown(RESULTS / "search_speedup.md", lines)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
