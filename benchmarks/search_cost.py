"""What one search step costs: step time and peak memory of a supernet training step, before and after shrinking,
in hrnas's per-path block form (the original code's three-path layout) against the fused form (one expansion
for all kernel paths, depthwise per kernel group, one projection), each in NCHW (the reference, as the original
ran) and in channels_last (what ``hrnas.search`` uses on a CPU by default).

Networks: the paper's seg supernet at 512x512 (batch 2) and the CPU preset (``seg_tiny`` with transformers,
64x64, batch 32), each full-width and shrunk to a tenth of its MACs (every block's hidden channels and tokens
scaled by the same factor: ``_common.uniform_arch``). Each configuration runs in a fresh subprocess so that its peak
resident memory (``ru_maxrss``) is its own. Step time: the median over the steps after the first (which allocates).

    python benchmarks/search_cost.py            # writes benchmarks/results/search_cost.md and .csv
    python benchmarks/search_cost.py --quick    # the CPU preset only, two steps
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

from _common import RESULTS, markdown_table, uniform_arch, write_csv, write_markdown

CONFIGS = {
    "seg supernet 512x512 b2": dict(space="seg", tokens=False, size=512, batch=2, classes=19),
    "seg_tiny 64x64 b32": dict(space="seg_tiny", tokens=True, size=64, batch=32, classes=11),
}


def run_one(config: str, shrunk: bool, form: str, layout: str, steps: int) -> dict:
    """One configuration, in this process (called in a subprocess by main)."""
    import torch

    import hrnas
    from hrnas.layers.fused import to_fused
    from hrnas.searching.tasks import get_task
    from hrnas.timing import median_time

    c = CONFIGS[config]
    torch.manual_seed(0)
    arch = hrnas.get_space(c["space"]).supernet(transformers=c["tokens"], tokens=16 if c["tokens"] else None)
    if shrunk:
        arch = uniform_arch(arch, 0.1 * hrnas.count_macs(arch, c["size"]), c["size"])[0]
    model = hrnas.HRNASNet(arch)
    if form == "fused":
        model = to_fused(model)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model.train().to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    task = get_task("seg", num_classes=c["classes"])
    x = torch.randn(c["batch"], 3, c["size"], c["size"]).contiguous(memory_format=fmt)
    y = torch.randint(0, c["classes"], (c["batch"], c["size"], c["size"]))

    def step():
        loss = task.loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step_s = median_time(step, torch.device("cpu"), repeats=steps, warmup=1)  # the first step allocates
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return dict(
        config=config,
        network="shrunk to 10%" if shrunk else "supernet",
        form=form,
        layout=layout,
        macs_per_image=hrnas.count_macs(arch, c["size"]),
        step_s=round(step_s, 3),
        peak_rss_mb=round(peak / 1024, 1),
        step_rss_mb=round((peak - base_rss) / 1024, 1),
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: config|shrunk|form|layout
    args = p.parse_args()
    if args.one:
        config, shrunk, form, layout = args.one.split("|")
        print(json.dumps(run_one(config, shrunk == "1", form, layout, args.steps)))
        return
    configs = ["seg_tiny 64x64 b32"] if args.quick else list(CONFIGS)
    steps = 1 if args.quick else args.steps
    rows = []
    for config in configs:
        for shrunk in ("0", "1"):
            for layout in ("NCHW", "channels_last"):
                for form in ("paths", "fused"):
                    one = f"{config}|{shrunk}|{form}|{layout}"
                    cmd = [sys.executable, __file__, "--one", one, "--steps", str(steps)]
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    row = json.loads(out.strip().splitlines()[-1])
                    rows.append(row)
                    print(row, flush=True)
    write(rows, "_quick" if args.quick else "", Path(args.out))


def write(rows: list[dict], suffix: str, out: Path = RESULTS) -> None:
    write_csv(out / f"search_cost{suffix}.csv", rows)
    lines = [
        "# Cost of a search step",
        "",
        "Median seconds of a training step (forward, backward, SGD step; the first step excluded) and peak resident",
        "memory of the process (`step_rss_mb`: growth during the steps). `paths` = hrnas's block (one expand,",
        "depthwise and project conv per kernel path, as the original); `fused` = one expand conv for all paths,",
        "depthwise per kernel group, one project conv over the concatenation (same weights, same function). Speed-up:",
        "over the reference (`paths`, NCHW) of the same network; fused / paths: the fused form's speed-up over the",
        "per-path form in the same layout. Each configuration runs in its own process, one after another.",
        f"Produced by `python benchmarks/search_cost.py{' --quick' if suffix else ''}`.",
        "",
    ]

    def step_of(r, form, layout):
        same = [q for q in rows if q["config"] == r["config"] and q["network"] == r["network"]]
        return next(q["step_s"] for q in same if q["form"] == form and q["layout"] == layout)

    table = []
    for r in rows:
        speed = step_of(r, "paths", "NCHW") / r["step_s"]
        fused = f"{step_of(r, 'paths', r['layout']) / r['step_s']:.2f}x" if r["form"] == "fused" else ""
        table.append(
            [r["config"], r["network"], f"{r['macs_per_image'] / 1e6:.1f}", r["form"], r["layout"], r["step_s"],
             f"{speed:.2f}x", fused, r["peak_rss_mb"], r["step_rss_mb"]]
        )  # fmt: skip
    header = ["configuration", "network", "MMACs / image", "form", "layout", "step (s)", "speed-up", "fused / paths",
              "peak RSS (MB)", "step RSS"]  # fmt: skip
    write_markdown(out / f"search_cost{suffix}.md", lines + markdown_table(header, table))


if __name__ == "__main__":
    main()
