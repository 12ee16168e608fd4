"""Which block shapes run fast on this CPU: the measurements behind the cpu spaces and the cpu zoo line's settings.

1. Channel multiples: an inverted-residual path in its deploy form (1x1 expand + ReLU, depthwise + ReLU, 1x1
   project, BatchNorm folded, ``channels_last``) timed for every hidden width from 40 to 80 at the cpu space's
   branch shapes at 128x128 input. A line is fitted to time against width; the mean residual of the widths that
   are a multiple of 2, 4, 8 and 16, against the others, says how much rounding to that multiple saves.
2. A lightweight transformer's time against a block's at the same shapes (both in eval mode, BatchNorm folded).
3. The cpu space's whole-network latency (deploy form, ``features_only``) with every block empty, at uniform
   widths and full, beside timm's ``mobilenetv4_conv_small`` and ``hrnet_w18_small`` (features).

Everything is timed side by side in one process at the process's thread count (run it on an idle machine):

    python benchmarks/cpu_shapes.py            # writes benchmarks/results/cpu_shapes.md and .csv
    python benchmarks/cpu_shapes.py --quick    # a few widths, nothing written
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from _common import RESULTS, machine, markdown_table, write_csv, write_markdown
from torch import nn

import hrnas
from hrnas.latency import measure_latencies

SIZE = 128
SHAPES = ((32, 16), (16, 32), (8, 64))  # (map side, block width) of the cpu space's branches at 128x128
MULTIPLES = (2, 4, 8, 16)


def _time(fn, repeats: int = 15) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _path(width: int, hidden: int, kernel: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(width, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, kernel, 1, kernel // 2, groups=hidden),
        nn.ReLU(), nn.Conv2d(hidden, width, 1),
    ).eval().to(memory_format=torch.channels_last)  # fmt: skip


def channel_multiples(widths: range, rounds: int) -> list[dict]:
    rows = []
    with torch.no_grad():
        for side, width in SHAPES:
            for kernel in (3, 7):
                x = torch.randn(1, width, side, side).contiguous(memory_format=torch.channels_last)
                paths = {h: _path(width, h, kernel) for h in widths}
                times: dict[int, list[float]] = {h: [] for h in widths}
                for _ in range(rounds):  # interleaved, so that passing load hits every width alike
                    for h, p in paths.items():
                        times[h].append(1e6 * _time(lambda p=p, x=x: p(x)))
                med = {h: statistics.median(t) for h, t in times.items()}
                n = len(med)
                mx, my = sum(med) / n, sum(med.values()) / n
                slope = sum((h - mx) * (t - my) for h, t in med.items()) / sum((h - mx) ** 2 for h in med)
                resid = {h: t - (my + slope * (h - mx)) for h, t in med.items()}
                row = {"side": side, "width": width, "kernel": kernel, "us_per_channel": round(slope, 3),
                       "us_at_64": round(med.get(64, my), 1)}  # fmt: skip
                for m in MULTIPLES:
                    on = [r for h, r in resid.items() if h % m == 0]
                    off = [r for h, r in resid.items() if h % m]
                    saved = statistics.fmean(off) - statistics.fmean(on) if on and off else None
                    row[f"saved_by_{m}_us"] = None if saved is None else round(saved, 2)
                rows.append(row)
    return rows


def transformer_cost() -> list[dict]:
    from hrnas.deployment import deploy_forms
    from hrnas.layers import MixedKernelBlock

    rows = []
    with torch.no_grad():
        for side, width in SHAPES:
            x = torch.randn(1, width, side, side).contiguous(memory_format=torch.channels_last)
            plain = hrnas.BlockSpec(width, width, 1, (3, 5, 7), (width, width, width))
            timed = {}
            for label, spec in (("block", plain), ("block + 16 tokens", plain.replace(tokens=16)),
                                ("residual + 16 tokens", plain.replace(channels=(0, 0, 0), tokens=16))):  # fmt: skip
                forms = deploy_forms(MixedKernelBlock(spec).to(memory_format=torch.channels_last))
                timed[label] = min(1e6 * _time(lambda b=b, x=x: b(x), 30) for b in forms)
            rows.append({"side": side, "width": width, **{k: round(v, 1) for k, v in timed.items()}})
    return rows


def space_latency() -> list[dict]:
    import timm

    supernet = hrnas.get_space("seg_cpu").supernet(transformers=False)
    labels, models = [], []
    for name in ("mobilenetv4_conv_small", "hrnet_w18_small"):
        labels.append((f"timm {name}", None))
        models.append(timm.create_model(name, features_only=True, out_indices=(1, 2, 3, 4)))
    for keep in (0.0, 0.25, 0.5, 1.0):
        blocks = [b.replace(channels=tuple(4 * round(c * keep / 4) for c in b.channels)) for b in supernet.blocks()]
        arch = supernet.with_blocks(blocks)
        net = hrnas.create_model("hrnas_custom", arch=arch, features_only=True, out_indices=(1, 2, 3, 4))
        labels.append((f"seg_cpu, every path at {keep:.0%} width", hrnas.count_macs(arch, (SIZE, SIZE))))
        models.append(hrnas.deploy(net, input_size=(SIZE, SIZE)))
    times = measure_latencies(models, (SIZE, SIZE), 1, rounds=7, reps=10)
    return [{"network": label, "macs": macs, "ms": round(t, 3)} for (label, macs), t in zip(labels, times)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    widths = range(40, 81, 6) if args.quick else range(40, 81)
    mult = channel_multiples(widths, 1 if args.quick else 3)
    trans = transformer_cost()
    space = space_latency()
    if args.quick:
        print(mult, trans, space, sep="\n")
        return
    write_csv(RESULTS / "cpu_shapes.csv", [{"part": "multiples", **r} for r in mult] +
              [{"part": "transformer", **r} for r in trans] + [{"part": "space", **r} for r in space])  # fmt: skip
    lines = [
        "# Block shapes on this CPU",
        "",
        f"Produced by `python benchmarks/cpu_shapes.py` ({machine(threads=True)}); method: the script's docstring.",
        "",
        "## Channel multiples",
        "",
        "Microseconds one path saves when its hidden width is a multiple of m, against widths that are not (mean "
        "residuals from a line fitted to time against width, widths 40-80):",
        "",
    ]
    lines += markdown_table(
        ["map", "block width", "kernel", "us / channel", "us at 64"] + [f"saved, multiple of {m}" for m in MULTIPLES],
        [[f"{r['side']}x{r['side']}", r["width"], r["kernel"], r["us_per_channel"], r["us_at_64"]]
         + [r[f"saved_by_{m}_us"] for m in MULTIPLES] for r in mult],
    )  # fmt: skip
    lines += ["", "## A transformer against a block (microseconds, deploy form)", ""]
    lines += markdown_table(
        ["map", "width", "block (3/5/7 paths, 4x)", "block + 16 tokens", "residual + 16 tokens"],
        [[f"{r['side']}x{r['side']}", r["width"], r["block"], r["block + 16 tokens"], r["residual + 16 tokens"]]
         for r in trans],
    )  # fmt: skip
    lines += ["", f"## The seg_cpu space at {SIZE}x{SIZE} (features, batch 1; hrnas in the deploy form)", ""]
    lines += markdown_table(
        ["network", "MMACs", "ms"],
        [[r["network"], f"{r['macs'] / 1e6:.1f}" if r["macs"] else "-", r["ms"]] for r in space],
    )
    write_markdown(RESULTS / "cpu_shapes.md", lines)


if __name__ == "__main__":
    sys.exit(main())
