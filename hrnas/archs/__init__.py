"""Architectures shipped with hrnas as readable data (JSON), and loaders that turn them into ``Arch`` objects.

``hrnas_released_cls_original.json`` is the one searched architecture the HR-NAS authors released
(``checkpoint.json`` of github.com/dingmyu/HR-NAS, MIT licence; see NOTICE): an ImageNet model, 67 entries
``[out, 1, stride, kernels_kept, channels_kept, expand]`` in block construction order.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources

from ..arch import Arch, ClsHeadSpec, branch_of
from ..spaces import get_space

__all__ = [
    "branch_hidden_channels",
    "released_cls_arch",
    "retrain_form",
    "zoo_arch",
    "zoo_card",
    "zoo_entries",
    "zoo_entry",
]


def retrain_form(arch: Arch, se_ratio: float = 0.5, act: str = "swish", dropout: float | None = 0.28) -> Arch:
    """The original's retraining variant of a searched architecture: SE on every block's hidden channels,
    Swish everywhere, and (for classification) a higher classifier dropout."""
    arch = arch.with_blocks([b.replace(se_ratio=se_ratio, act=act) for b in arch.blocks()]).replace(act=act)
    if dropout is not None and isinstance(arch.head, ClsHeadSpec):
        arch = arch.replace(head=dataclasses.replace(arch.head, dropout=dropout))
    return arch


def released_cls_arch(form: str = "retrain") -> Arch:
    """The HR-NAS authors' released ImageNet architecture.

    Args:
        form: ``'retrain'`` (SE 0.5, Swish, dropout 0.28, as the original README retrains it; 4.6 M params) or
            ``'search'`` (the same widths in plain search blocks: ReLU, no SE; 3.89 M params).
    """
    if form not in ("retrain", "search"):
        raise ValueError(f"form must be 'retrain' or 'search', got {form!r}")
    text = resources.files(__package__).joinpath("hrnas_released_cls_original.json").read_text()
    arch = get_space("cls").supernet(transformers=False).with_original_blocks(json.loads(text))
    arch = arch.replace(name="hrnas_released_cls")
    return retrain_form(arch) if form == "retrain" else arch


# ----------------------------------------------------------------------------------------------------------
# Searched zoo architectures: hrnas/archs/zoo/<name>.json, written by ``hrnas zoo-build <name>``.

ZOO_DIR = "zoo"


def zoo_entries() -> list[str]:
    """Names of the searched architectures shipped with the package."""
    folder = resources.files(__package__).joinpath(ZOO_DIR)
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


# earlier versions of the zoo, kept so that results made with them reproduce: zoo/v<N>/<name>.json
ZOO_VERSIONS = (1,)


def zoo_entry(name: str, version: int | None = None) -> dict:
    """The zoo entry of ``name``: ``{'name', 'arch', 'record'}``; ``record`` says how it was searched (command, data,
    seed, budget, MACs and params at its named configuration). ``version`` picks an earlier zoo (``1``); default:
    the current one."""
    if version is not None and version not in ZOO_VERSIONS:
        raise ValueError(f"no zoo version {version!r}; earlier versions: {ZOO_VERSIONS} (None: the current zoo)")
    parts = (ZOO_DIR, f"v{version}", f"{name}.json") if version is not None else (ZOO_DIR, f"{name}.json")
    path = resources.files(__package__).joinpath(*parts)
    if not path.is_file():
        shipped = ", ".join(zoo_entries())
        raise ValueError(f"no searched architecture named {name!r} in zoo version {version}; shipped: {shipped}")
    return json.loads(path.read_text())


def zoo_arch(name: str, version: int | None = None) -> Arch:
    """The searched architecture ``name`` in its named configuration (classes and task it was sized for);
    ``version=1`` gives the first zoo's architecture."""
    return Arch.from_dict(zoo_entry(name, version)["arch"])


def branch_hidden_channels(arch: Arch) -> list[int]:
    """Hidden (depthwise) channels of the blocks that produce each branch, highest resolution first: the branch's
    own blocks and the fusion blocks into it."""
    out = [0] * max(stage.num_branches for stage in arch.stages)
    for name, spec in arch.named_blocks():
        branch = branch_of(name)
        if branch is not None:
            out[branch] += spec.hidden
    return out


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
    run = rec.get("run") or []
    if run:
        best = max((r for r in run if r[2] is not None), key=lambda r: r[2], default=None)
        if best is not None and rec.get("proxy_metric", {}).get("value") is not None:
            lines.append(
                f"- Proxy metric over the run: best {best[2]:.3f} at step {best[0]} ({best[1] / 1e6:.1f} MMACs on the "
                f"proxy), final {rec['proxy_metric']['value']:.3f} inside the budget."
            )
    return lines


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
