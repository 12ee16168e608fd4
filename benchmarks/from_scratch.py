"""Why does an hrnas backbone train more slowly from scratch than timm's ``hrnet_w18_small``? Measured, not guessed.

The nuclei task of ``_heldout.py`` (the same head, data, schedule and steps as the zoo and vs-timm comparisons),
first 400 steps, with diagnostics: the loss every 10 steps, the gradient norm of each top-level part of the
backbone, and every 100 steps the validation mIoU with running BatchNorm statistics (eval mode) and with the
validation tile's own statistics (a gap = running statistics lagging behind the weights). Variants of the hrnas
backbone isolate one suspect each:

- ``base``: the model as registered (the seg space's BatchNorm momentum 0.01 and eps 1e-3, MnasNet init);
- ``bn_momentum``: BatchNorm momentum 0.1 and eps 1e-5 (timm's and torch's defaults);
- ``zero_last``: the BatchNorm after each residual block's summed projections starts at gamma 0, so every block
  starts as its shortcut (as timm's ResNets and HRNet do);
- ``both``: the two together;
- ``warmup``: a 5x longer learning-rate warm-up.

Rows: ``benchmarks/results/from_scratch/rows/BACKBONE__VARIANT__sSEED.json`` (a rerun skips finished rows);
report: ``benchmarks/results/from_scratch.md`` and ``.csv``.

    python benchmarks/from_scratch.py                               # every row not done yet, then the report
    python benchmarks/from_scratch.py --backbones hrnas_seg_a --variants base,both --seeds 0
    python benchmarks/from_scratch.py --report
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch
from _common import RESULTS, machine, markdown_table, write_csv, write_markdown
from _heldout import TASKS, train_heldout
from torch import nn

from hrnas.files import write_atomic

ROWS = RESULTS / "from_scratch" / "rows"
VARIANTS = ("base", "bn_momentum", "zero_last", "both", "warmup")
BACKBONES = ("hrnas_seg_a", "hrnet_w18_small")


def set_bn(body: nn.Module, momentum: float = 0.1, eps: float = 1e-5) -> None:
    for m in body.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum, m.eps = momentum, eps


def zero_last_bn(body: nn.Module) -> None:
    from hrnas.layers import MixedKernelBlock

    for m in body.modules():
        if isinstance(m, MixedKernelBlock) and m.bn3 is not None:
            nn.init.zeros_(m.bn3.weight)


def _modify(variant: str):
    if variant == "bn_momentum":
        return set_bn
    if variant == "zero_last":
        return zero_last_bn
    if variant == "both":
        return lambda body: (set_bn(body), zero_last_bn(body))
    return None


def run(backbone: str, variant: str, seed: int, quick: bool) -> dict:
    task = TASKS["nuclei"].quick() if quick else TASKS["nuclei"]
    if not backbone.startswith("hrnas") and variant != "base":
        raise ValueError(f"variant {variant!r} applies to hrnas backbones only")
    warmup = 5 * max(1, task.steps // 20) if variant == "warmup" else None
    row = train_heldout(
        backbone, task, seed, modify=_modify(variant), warmup=warmup, diagnostics=True,
        eval_every=max(1, task.steps // 4), log=print,
    )  # fmt: skip
    return {"backbone": backbone, "variant": variant, **row}


def report() -> None:
    rows = [json.loads(p.read_text()) for p in sorted(ROWS.glob("*.json"))]
    write_csv(
        RESULTS / "from_scratch.csv",
        rows,
        ["backbone", "variant", "seed", "metric", "breakdown", "evals", "train_s", "threads", "params"],
    )
    lines = [
        "# Training from scratch: hrnas against hrnet_w18_small on the nuclei task",
        "",
        f"Produced by `python benchmarks/from_scratch.py` ({machine()}). Method: the script's docstring. mIoU on the "
        "held-out quarter after each 100 steps: `eval` with running BatchNorm statistics, `batch` with each tile's "
        "own statistics; loss = training loss (mean of the 10 logged values around the step); gradient norms of "
        "the backbone's parts at steps 0 and 200.",
        "",
    ]
    table = []
    for r in rows:
        evals = " / ".join(f"{e['eval']:.3f}" for e in r["evals"])
        batch = " / ".join(f"{e['batch_stats']:.3f}" for e in r["evals"])
        losses = [c["loss"] for c in r["curve"]]
        q = max(1, len(losses) // 4)
        loss = " / ".join(f"{statistics.fmean(losses[i : i + q]):.3f}" for i in range(0, len(losses), q))
        table.append([r["backbone"], r["variant"], r["seed"], f"{r['metric']:.4f}",
                      " / ".join(f"{v:.3f}" for v in r["breakdown"]), evals, batch, loss, r["train_s"]])  # fmt: skip
    lines += markdown_table(
        ["backbone", "variant", "seed", "final mIoU", "IoU bg / nucleus / boundary", "eval mIoU at 100/200/300/400",
         "batch-stat mIoU", "loss by quarter", "train s"], table)  # fmt: skip
    lines += ["", "## Gradient norms by part (step 0 -> step 200)", ""]
    for r in rows:
        first, mid = r["curve"][0]["grad"], r["curve"][len(r["curve"]) // 2]["grad"]
        parts = ", ".join(f"{k} {first[k]:.3g} -> {mid.get(k, 0):.3g}" for k in first)
        lines.append(f"- {r['backbone']} {r['variant']} s{r['seed']}: {parts}")
    write_markdown(RESULTS / "from_scratch.md", lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", default=",".join(BACKBONES))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: another job may share the CPU)")
    ap.add_argument("--quick", action="store_true", help="a few steps, rows not kept")
    ap.add_argument("--report", action="store_true", help="only write the report from the rows there are")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.report:
        for backbone in args.backbones.split(","):
            for variant in args.variants.split(","):
                if not backbone.startswith("hrnas") and variant != "base":
                    continue
                for seed in map(int, args.seeds.split(",")):
                    path = ROWS / f"{backbone}__{variant}__s{seed}.json"
                    if path.exists() and not args.quick:
                        continue
                    print(f"== {backbone} {variant} seed {seed}", flush=True)
                    row = run(backbone, variant, seed, args.quick)
                    if args.quick:
                        print(json.dumps({k: row[k] for k in ("metric", "train_s")}))
                        continue
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_atomic(path, json.dumps(row) + "\n")
    if not args.quick:
        report()


if __name__ == "__main__":
    sys.exit(main())
