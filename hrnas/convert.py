"""Import weights produced by the original HR-NAS code (github.com/dingmyu/HR-NAS).

The original saves a state dict (keys prefixed ``module.``, from its data-parallel wrapper) or an EMA dict
``{'info', 'shadow', 'param'}`` whose ``shadow`` holds the evaluated weights, and the architecture separately as a
JSON list of ``[out, 1, stride, kernels_kept, channels_kept, expand]`` per block in construction order. Its module
names differ from hrnas's; this module maps one onto the other (reference: the original's ``models/hrnet.py``):

=================================================  ==========================================================
original                                           hrnas
=================================================  ==========================================================
``downsamples.{i}.0`` / ``.1``                      ``stem.{i}.conv`` / ``.bn``
``features.{2s}.fuse_layers.{d}.{d}``               ``stages.{s}.fuse.{d}.{d}`` (same-resolution edge)
``features.{2s}.fuse_layers.{d}.{j}.0``             ``stages.{s}.fuse.{d}.{j}`` (neighbour j = d +- 1)
``features.{2s}.fuse_layers.{d}.0``                 ``stages.{s}.fuse.{d}.{d-1}`` (a new branch)
``features.{2s+1}.branches.{b}.{n}``                ``stages.{s}.branches.{b}.{n}``
``features.10.incre_modules.{i}`` / ``downsamp_modules.{i}``  ``neck.incre.{i}`` / ``neck.down.{i}``
``features.10.final_layer.0`` / ``.1``              ``neck.final.conv`` / ``.bn``
``classifier.1`` (cls) / ``classifier`` (dense)     ``head.fc``
``transform``                                       ``neck.block``
=================================================  ==========================================================

Inside a search block, path ``p``'s ``ops.{p}.0.0`` / ``0.1`` / ``1.0`` / ``1.1`` / ``2`` are the expand conv, its BN,
the depthwise conv, its BN and the projection; ``pw_bn`` is the BN after the summed projections and ``residual``
the grouped 1x1 shortcut. A retrain ("fused") block has one ``expand_conv`` and one ``project_conv`` over all paths
(split here by the paths' widths), ``depth_ops.{p}.1`` and ``se_op``. Distillation-only BNs (``bns.*``) and the
unused ``pw_bn`` of blocks without paths are dropped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch

from .arch import Arch
from .archs import retrain_form
from .hub import WeightsError, check_weights, read_weights, save_pretrained
from .layers.block import BLOCK_UNITS, BlockUnits
from .net import HRNASNet
from .spaces import get_space

__all__ = ["convert_original", "convert_original_state_dict", "load_original_arch", "original_key_map"]


def load_original_arch(
    entries: Sequence[Sequence[Any]] | str | os.PathLike,
    task: str = "cls",
    space: Optional[str] = None,
    num_classes: Optional[int] = None,
    retrain: bool = False,
) -> Arch:
    """The ``Arch`` of an architecture JSON written by the original code (a list of 67 entries for classification,
    61 for dense tasks). ``retrain`` gives its retraining form (SE 0.5, Swish, dropout 0.28)."""
    if not isinstance(entries, (list, tuple)):
        with open(entries) as f:
            entries = json.load(f)
    if not isinstance(entries, list):
        raise ValueError(
            "an original architecture JSON is a list of [out, 1, stride, kernels, channels, expand] entries"
        )
    base = get_space(space or task).supernet(num_classes=num_classes, transformers=False)
    arch = base.with_original_blocks(entries)
    return retrain_form(arch) if retrain else arch


def _block_prefixes(arch: Arch) -> dict[str, str]:
    """hrnas block name -> the original's module name."""
    out: dict[str, str] = {}
    num_in = 1
    for s, stage in enumerate(arch.stages):
        for edge in stage.fuse:
            if edge.dst >= num_in:
                orig = f"features.{2 * s}.fuse_layers.{edge.dst}.0"
            elif edge.src == edge.dst:
                orig = f"features.{2 * s}.fuse_layers.{edge.dst}.{edge.src}"
            else:
                orig = f"features.{2 * s}.fuse_layers.{edge.dst}.{edge.src}.0"
            out[f"stages.{s}.fuse.{edge.dst}.{edge.src}"] = orig
        for b, blocks in enumerate(stage.branches):
            for n in range(len(blocks)):
                out[f"stages.{s}.branches.{b}.{n}"] = f"features.{2 * s + 1}.branches.{b}.{n}"
        num_in = stage.num_branches
    head = f"features.{2 * len(arch.stages)}"
    if arch.is_dense:
        out["neck.block"] = "transform"
    else:
        for i in range(len(arch.head.incre)):
            out[f"neck.incre.{i}"] = f"{head}.incre_modules.{i}"
        for i in range(len(arch.head.down)):
            out[f"neck.down.{i}"] = f"{head}.downsamp_modules.{i}"
    return out


def _block_rules(u: BlockUnits) -> tuple[tuple, tuple]:
    """Key patterns inside a block (the names :data:`BLOCK_UNITS` declares) -> the original's keys, for its search
    blocks and, with how a shared tensor splits into paths, for its retrain blocks."""
    path = rf"{u.paths}\.(\d+)\."
    expand, expand_bn = rf"{path}{u.expand}\.weight", rf"{path}{u.expand_norm}\.(\w+)"
    depthwise, depthwise_bn = rf"{path}{u.depthwise}\.weight", rf"{path}{u.gate_norm}\.(\w+)"
    project, norm = rf"{path}{u.project}\.weight", rf"{u.block_norm}\.(\w+)"
    search = (
        (expand, "ops.{0}.0.0.weight"),
        (expand_bn, "ops.{0}.0.1.{1}"),
        (depthwise, "ops.{0}.1.0.weight"),
        (depthwise_bn, "ops.{0}.1.1.{1}"),
        (project, "ops.{0}.2.weight"),
        (norm, "pw_bn.{0}"),
        (r"shortcut\.weight", "residual.weight"),
    )
    retrain = (
        (expand, "expand_conv.0.weight", "rows"),
        (expand_bn, "expand_conv.1.{1}", "rows"),
        (depthwise, "depth_ops.{0}.1.0.weight", None),
        (depthwise_bn, "depth_ops.{0}.1.1.{1}", None),
        (project, "project_conv.0.weight", "cols"),
        (norm, "project_conv.1.{0}", None),
        (rf"{u.se}\.{u.se_reduce}\.(\w+)", "se_op.se_reduce.{0}", None),
        (rf"{u.se}\.{u.se_expand}\.(\w+)", "se_op.se_expand.{0}", None),
        (r"shortcut\.weight", "residual.weight", None),
    )
    return search, retrain


_SEARCH_BLOCK, _RETRAIN_BLOCK = _block_rules(BLOCK_UNITS)
_FIXED = (
    (r"stem\.(\d+)\.conv\.weight", "downsamples.{0}.0.weight"),
    (r"stem\.(\d+)\.bn\.(\w+)", "downsamples.{0}.1.{1}"),
)


def original_key_map(arch: Arch, retrain: bool = False) -> dict[str, tuple[str, Optional[tuple[str, int, int]]]]:
    """For every state-dict key of ``HRNASNet(arch)``, the original key it comes from and, for a retrain block's
    shared expand/project convs, the slice ``('rows' | 'cols', start, stop)`` that belongs to one path.

    The constant-output buffer of a block without paths maps to ``''`` (it is zero); transformer keys are absent.
    """
    with torch.device("meta"):
        keys = list(HRNASNet(arch).state_dict())
    return _key_map(arch, keys, retrain)


def _key_map(arch: Arch, keys: list[str], retrain: bool) -> dict[str, tuple[str, Optional[tuple[str, int, int]]]]:
    prefixes = _block_prefixes(arch)
    specs = dict(arch.named_blocks())
    head = f"features.{2 * len(arch.stages)}"
    fixed = _FIXED + (
        ((r"head\.fc\.(\w+)", "classifier.{0}"),)
        if arch.is_dense
        else (
            (r"neck\.final\.conv\.weight", f"{head}.final_layer.0.weight"),
            (r"neck\.final\.bn\.(\w+)", f"{head}.final_layer.1.{{0}}"),
            (r"head\.fc\.(\w+)", "classifier.1.{0}"),
        )
    )
    out: dict[str, tuple[str, Optional[tuple[str, int, int]]]] = {}
    for key in keys:
        for pattern, target in fixed:
            m = re.fullmatch(pattern, key)
            if m:
                out[key] = (target.format(*m.groups()), None)
                break
        else:
            block = max((b for b in prefixes if key.startswith(b + ".")), key=len, default=None)
            if block is None:
                continue
            rest = key[len(block) + 1 :]
            if rest == BLOCK_UNITS.constant:  # the folded constant of a block without paths: zero in a fresh network
                out[key] = ("", None)
                continue
            rules = _RETRAIN_BLOCK if retrain else tuple((p, t, None) for p, t in _SEARCH_BLOCK)
            for pattern, target, split in rules:
                m = re.fullmatch(pattern, rest)
                if not m:
                    continue
                part = None
                if split is not None:
                    widths = [n for _, n in specs[block].paths]
                    p = int(m.group(1))
                    start = sum(widths[:p])
                    if not (split == "rows" and rest.endswith("num_batches_tracked")):
                        part = (split, start, start + widths[p])
                out[key] = (f"{prefixes[block]}.{target.format(*m.groups())}", part)
                break
    return out


def _unwrap(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    if "shadow" in state and isinstance(state["shadow"], Mapping):  # the original's EMA dict
        state = state["shadow"]
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items() if torch.is_tensor(v)}


def convert_original_state_dict(
    state: Mapping[str, Any], arch: Arch, retrain: Optional[bool] = None
) -> dict[str, torch.Tensor]:
    """An hrnas state dict for ``HRNASNet(arch)`` from a state dict (plain, ``module.``-prefixed, or the EMA dict)
    saved by the original code. ``retrain`` (default: detected from the keys) selects the retrain-block layout.

    Raises :class:`hrnas.WeightsError` naming the first key that is missing or left over.
    """
    orig = _unwrap(state)
    if retrain is None:
        retrain = any(".expand_conv." in k for k in orig)
    with torch.device("meta"):
        reference = HRNASNet(arch).state_dict()
    mapping = _key_map(arch, list(reference), retrain)
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for key, ref in reference.items():
        if key not in mapping:
            raise WeightsError(
                f"the original checkpoint has no counterpart for {key!r} (transformers are not supported)"
            )
        src, part = mapping[key]
        if not src:
            out[key] = torch.zeros(ref.shape, dtype=ref.dtype)
            continue
        if src not in orig:
            raise WeightsError(
                f"the checkpoint lacks {src!r} (needed for {key!r}): does the architecture JSON match the weights?"
            )
        t = orig[src]
        if part is not None:
            kind, a, b = part
            t = t[a:b] if kind == "rows" else t[:, a:b]
        out[key] = t.clone()
        used.add(src)
    leftover = [k for k in orig if k not in used and not _droppable(k)]
    if leftover:
        raise WeightsError(
            f"{len(leftover)} weights of the checkpoint have no place in this architecture (first: {leftover[0]!r}); "
            "does the architecture JSON match the weights?"
        )
    return out


def _droppable(key: str) -> bool:
    # distillation-only BNs, and pw_bn of blocks whose every path was removed (the original keeps it, unused)
    return ".bns." in key or key.startswith("bns.") or ".pw_bn." in key


def convert_original(
    weights: str | os.PathLike,
    arch_json: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    task: str = "cls",
    space: Optional[str] = None,
    num_classes: Optional[int] = None,
) -> str:
    """Convert an original HR-NAS checkpoint (``weights``: .pth/.pt/.state_dict holding tensors only, read with
    ``torch.load(weights_only=True)``) and its architecture JSON into an hrnas model directory."""
    raw = _unwrap(read_weights(weights))
    retrain = any(".expand_conv." in k for k in raw)
    arch = load_original_arch(arch_json, task, space, num_classes, retrain=retrain)
    if num_classes is None:
        fc = next((v for k, v in raw.items() if re.fullmatch(r"classifier(\.1)?\.weight", k)), None)
        if fc is not None and fc.shape[0] != arch.num_classes:
            arch = arch.with_num_classes(int(fc.shape[0]))
    state = convert_original_state_dict(raw, arch, retrain)
    model = HRNASNet(arch)
    check_weights(model, state, source=os.fspath(weights))
    model.load_state_dict(state)
    save_pretrained(model, output_dir)
    return os.fspath(output_dir)
