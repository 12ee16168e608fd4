"""Model cards (README.md) of the zoo's weights and architectures, written from a zoo entry and its record."""

from __future__ import annotations

import json

from ..arch import Arch, branch_hidden_channels

__all__ = ["zoo_card"]


def _branch_lines(arch: Arch, rec: dict) -> list[str]:
    widths = branch_hidden_channels(arch)
    strides = [4 * 2**i for i in range(len(widths))]
    lines = [
        "- Hidden channels by branch (stride " + " / ".join(map(str, strides)) + "): "
        + " / ".join(map(str, widths)) + "."
    ]  # fmt: skip
    starved = [s for s, w in zip(strides, widths) if w < 0.01 * sum(widths)]
    if starved:
        lines.append(
            f"- The stride-{', '.join(map(str, starved))} branches kept (almost) no hidden channels, under 1 % of the "
            "network's: mainly their residual and "
            "fusion paths carry features at those resolutions. At the named resolution a high-resolution channel "
            "costs many times a low-resolution one (64x at stride 4 against stride 32), and on the small proxy images "
            "they did not earn that cost; this is not the balanced high-resolution network of the paper."
        )
    run = [r for r in rec.get("run") or [] if r[2] is not None]
    if run:
        best = max(run, key=lambda r: r[2])
        if rec.get("proxy_metric", {}).get("value") is not None:
            lines.append(
                f"- Proxy metric over the run: best {best[2]:.3f} at step {best[0]} ({best[1] / 1e6:.1f} MMACs on the "
                f"proxy), final {rec['proxy_metric']['value']:.3f} inside the budget."
            )
        lines.append(
            "- Proxy metric at each evaluation (step: value, MMACs on the proxy): "
            + ", ".join(f"{step}: {value:.3f} ({macs / 1e6:.0f})" for step, macs, value in run)
            + "."
        )
    return lines


def _held_out_lines(held: dict) -> list[str]:
    """The held-out comparison ``benchmarks/zoo_quality.py --record-held-out`` stores in the entry's record."""
    others = ", ".join(f"{name} {value:.4f}" for name, value in held["others"].items())
    return [
        "## Held-out result",
        "",
        f"- {held['task']}: {held['metric_name']} {held['metric']:.4f} for this architecture trained from scratch "
        f"({held['runs']} seed{'s' if held['runs'] > 1 else ''}); on the same task, steps and head: {others}.",
        f"- {held['protocol']} Source: `{held['source']}`, written by `python benchmarks/zoo_quality.py`.",
        "",
    ]


def zoo_card(entry: dict, tag: str | None = None, metric: float | None = None) -> str:
    """The model card (README.md) of a zoo model, from its entry; ``tag`` and ``metric`` describe its weights."""
    rec = entry["record"]
    name = entry["name"]
    named = rec["named_configuration"]
    h, w = named["input_size"]
    full = f"{name}.{tag}" if tag else name
    budget = f"the budget {rec['budget']} MACs" if rec.get("budget") else "no budget (not searched here)"
    lines = [
        "---",
        "library_name: timm",
        "license: apache-2.0",
        "tags: [image-segmentation, hrnas, timm, neural-architecture-search]"
        if named["task"] != "cls"
        else "tags: [image-classification, hrnas, timm]",
        "---",
        "",
        f"# {full}",
        "",
        f"An HR-NAS network (Ding et al., CVPR 2021) from the `hrnas` library: {rec['about']}.",
        "",
        "## Architecture",
        "",
        f"- Named configuration: {named['task']}, {named['num_classes']} outputs at {h}x{w}: "
        f"{rec['macs'] / 1e9:.3f} GMACs (conv + linear + attention matmuls, the paper's convention), "
        f"{rec['params'] / 1e6:.3f} M parameters; searched to {budget}.",
        f"- Searched on: {rec['searched_on']}. The search counts cost at the named configuration, so the budget "
        "holds for it; the data is a small proxy, not the benchmark the configuration is named after.",
        f"- Reproduce: `{rec['command']}` (seed {rec['settings'].get('seed', 0)}; settings "
        f"`{json.dumps(rec['settings'], sort_keys=True)}`).",
    ]
    if entry.get("arch"):
        lines += _branch_lines(Arch.from_dict(entry["arch"]), rec)
    lines.append("")
    if rec.get("held_out"):
        lines += _held_out_lines(rec["held_out"])
    if tag:
        what = "top-1" if named["task"] == "cls" else "mIoU"
        reached = f"{metric:.4f}" if metric is not None else "not measured"
        lines += [
            "## Weights",
            "",
            f"- Tag `{tag}`: trained by the run above on {rec['searched_on']}; validation {what} {reached}.",
            "- Good for: trying the library end to end, fine-tuning starting points for small grey-scale tasks, "
            "tests. Not good for: natural images, ADE20K/COCO/ImageNet benchmarks; these are not the paper's "
            "weights (none were ever released).",
            "",
            "```python",
            "import hrnas",
            f"model = hrnas.create_model('{full}', pretrained=True)",
            "```",
            "",
        ]
    else:
        lines += [
            "## Weights",
            "",
            "None: " + (rec.get("why_no_weights") or "this architecture ships without weights") + ".",
            "",
        ]
    return "\n".join(lines)
