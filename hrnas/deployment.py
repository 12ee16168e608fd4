"""The deploy form of an HR-NAS network: BatchNorm folded, training-only pieces gone, layout and depthwise
implementation chosen by measuring on the device it will run on.

:func:`deploy` returns a copy of the model that computes the same function as the model in eval mode (within
float rounding), faster:

- every BatchNorm is folded into the convolution before it (stem, expand, depthwise, project, the transformer's
  token and back projections, the classification head's final conv), so the network has no normalisation
  layers but the transformer's LayerNorms;
- dropout layers become identities;
- per block, the kernel paths run either separately (fewest MACs) or merged into a single path: one expansion,
  one depthwise conv whose smaller kernels are zero-padded to the largest, one projection — whichever is faster
  for that block's shape on this device, measured and cached;
- the memory format (``channels_last`` or not) that runs the whole network faster here.

Measured choices are cached in ``$HRNAS_CACHE_DIR/deploy_tuning.json`` (default ``~/.cache/hrnas``), keyed by
device, thread count, torch version and shape, so the second deploy on a machine does not measure again.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ._size import pair
from .files import write_atomic
from .layers import BLOCK_UNITS, TOKEN_UNITS, ConvBnAct, KernelPath, LightweightTransformer, MixedKernelBlock
from .timing import cache_dir, device_key, median_time, timing_load_watch

__all__ = ["deploy", "deploy_forms", "device_key", "fold_bn", "merge_paths"]


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv (with bias) equal to ``bn(conv(x))`` in eval mode."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias.detach())
    return fused


def _scale_rows(conv: nn.Conv2d, bn: nn.BatchNorm2d, with_shift: bool) -> nn.Conv2d:
    """``conv`` with its output rows scaled by ``bn``'s eval-mode scale (and, if ``with_shift``, its shift as bias):
    for folding one BatchNorm that follows a *sum* of convs, the shift must be added only once."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
        conv.groups, bias=True, device=conv.weight.device, dtype=conv.weight.dtype,
    )  # fmt: skip
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        bias = conv.bias.detach() * scale if conv.bias is not None else torch.zeros_like(bn.running_mean)
        if with_shift:
            bias = bias + bn.bias.detach() - bn.running_mean * scale
        fused.bias.copy_(bias)
    return fused


def merge_paths(block: MixedKernelBlock) -> KernelPath:
    """One :class:`KernelPath` equal to the sum of a (BatchNorm-folded) block's paths: expansions and depthwise
    filters concatenated, smaller kernels zero-padded to the largest, projections concatenated along their input."""
    u = BLOCK_UNITS  # the paths' parts by their declared names
    paths = [(getattr(p, u.expand), getattr(p, u.depthwise), getattr(p, u.project)) for p in getattr(block, u.paths)]
    kmax = max(dw.kernel_size[0] for _, dw, _ in paths)
    hidden = sum(dw.out_channels for _, dw, _ in paths)
    w = paths[0][0].weight
    merged = KernelPath(block.in_chs, hidden, block.out_chs, kmax, block.stride, block.spec.act, {})
    merged = merged.to(device=w.device, dtype=w.dtype)
    expand = nn.Conv2d(block.in_chs, hidden, 1, bias=True, device=w.device, dtype=w.dtype)
    depthwise = nn.Conv2d(
        hidden, hidden, kmax, block.stride, kmax // 2, groups=hidden, bias=True, device=w.device, dtype=w.dtype
    )
    project = nn.Conv2d(hidden, block.out_chs, 1, bias=True, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        expand.weight.copy_(torch.cat([pw.weight for pw, _, _ in paths]))
        expand.bias.copy_(torch.cat([pw.bias for pw, _, _ in paths]))
        pads = [(kmax - dw.kernel_size[0]) // 2 for _, dw, _ in paths]
        depthwise.weight.copy_(torch.cat([F.pad(dw.weight, [pad] * 4) for (_, dw, _), pad in zip(paths, pads)]))
        depthwise.bias.copy_(torch.cat([dw.bias for _, dw, _ in paths]))
        project.weight.copy_(torch.cat([pwl.weight for _, _, pwl in paths], dim=1))
        project.bias.copy_(sum(pwl.bias for _, _, pwl in paths))
    for name, module in ((u.expand, expand), (u.depthwise, depthwise), (u.project, project)):
        setattr(merged, name, module)
    setattr(merged, u.expand_norm, nn.Identity())
    setattr(merged, u.gate_norm, nn.Identity())
    return merged.eval()


def _fold_pair(module: nn.Module, conv: str, bn: str) -> None:
    """Fold ``module``'s BatchNorm ``bn`` into its conv ``conv`` (attribute names)."""
    setattr(module, conv, fold_bn(getattr(module, conv), getattr(module, bn)))
    setattr(module, bn, nn.Identity())


def _fold_model(model: nn.Module) -> None:
    u, t = BLOCK_UNITS, TOKEN_UNITS  # the units' parts by their declared names
    for m in list(model.modules()):
        if isinstance(m, ConvBnAct) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv, m.bn = fold_bn(m.conv, m.bn), nn.Identity()
        elif isinstance(m, MixedKernelBlock) and isinstance(getattr(m, u.block_norm), nn.BatchNorm2d):
            norm = getattr(m, u.block_norm)
            for i, path in enumerate(getattr(m, u.paths)):
                _fold_pair(path, u.expand, u.expand_norm)
                _fold_pair(path, u.depthwise, u.gate_norm)
                setattr(path, u.project, _scale_rows(getattr(path, u.project), norm, with_shift=i == 0))
            setattr(m, u.block_norm, nn.Identity())
        elif isinstance(m, LightweightTransformer):
            _fold_pair(m, t.project, t.gate_norm)
            _fold_pair(m, t.back_project, t.back_norm)
    for m in list(model.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.Dropout):
                setattr(m, child_name, nn.Identity())


def deploy_forms(block: MixedKernelBlock) -> list[MixedKernelBlock]:
    """The forms :func:`deploy` chooses between for one block (eval mode, BatchNorm folded): its kernel paths run
    separately, and, when it has several, merged into one path. ``block`` itself is not changed."""
    folded = copy.deepcopy(block).eval()
    _fold_model(folded)
    forms = [folded]
    if len(folded.paths) > 1:
        merged = copy.deepcopy(folded)
        merged.paths = nn.ModuleList([merge_paths(folded)])
        merged.kernel_sizes = [merged.paths[0].kernel_size]
        forms.append(merged)
    return forms


# ----------------------------------------------------------------------------------------------------------
# Measuring


class _TuningCache:
    def __init__(self, path: Optional[Path]) -> None:
        self.path = path
        self.data: Dict[str, str] = {}
        if path is not None and path.exists():
            try:
                self.data = json.loads(path.read_text())
            except (OSError, ValueError):
                self.data = {}  # an unreadable cache is only a lost optimisation: measure again

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self.data, indent=0, sort_keys=True))


def default_cache_path() -> Path:
    return cache_dir() / "deploy_tuning.json"


def _block_inputs(model: nn.Module, x: torch.Tensor) -> Dict[str, Tuple[int, ...]]:
    """The input shape of every block with several kernel paths, from one forward pass."""
    shapes: Dict[str, Tuple[int, ...]] = {}
    hooks = []

    def record(name: str):
        return lambda mod, inputs: shapes.__setitem__(name, tuple(inputs[0].shape))

    for name, m in model.named_modules():
        if isinstance(m, MixedKernelBlock) and len(m.paths) > 1:
            hooks.append(m.register_forward_pre_hook(record(name)))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _tune_paths(model: nn.Module, x: torch.Tensor, cache: _TuningCache, key: str, memory_format) -> int:
    """Merge the kernel paths of every block where one merged path is faster; returns how many."""
    device = x.device
    merged_count = 0
    modules = dict(model.named_modules())
    for name, shape in _block_inputs(model, x).items():
        block = modules[name]
        spec = block.spec
        entry = f"{key}|{memory_format}|{shape}|{spec.paths}|s{spec.stride}|se{spec.se_chs}"
        choice = cache.data.get(entry)
        merged = merge_paths(block)
        if choice is None:
            h = torch.randn(shape, device=device, dtype=x.dtype).contiguous(memory_format=memory_format)
            separate, single = block.paths, nn.ModuleList([merged]).to(memory_format=memory_format)
            with torch.inference_mode():
                t_separate = median_time(lambda b=block, h=h: b._paths(h), device)
                block.paths = single
                t_merged = median_time(lambda b=block, h=h: b._paths(h), device)
                block.paths = separate
            choice = "merged" if t_merged < t_separate else "paths"
            cache.data[entry] = choice
        if choice == "merged":
            block.paths = nn.ModuleList([merged])
            block.kernel_sizes = [merged.kernel_size]
            merged_count += 1
    return merged_count


def _time_alternately(candidates: list, x: torch.Tensor, device: torch.device, rounds: int = 3) -> list[float]:
    """Median seconds of each ``(memory_format, module)`` candidate on ``x``, timed in alternating rounds.

    The first forwards in a format pay one-time costs (kernel selection, buffer allocation) that can exceed a
    network's whole run, and the machine's load moves between two back-to-back measurements: timing each candidate
    once, cold, picked the slower format for some networks in a fresh process (a ~25 % gap for one searched seg
    network). Both are warmed first, then alternate.
    """
    inputs = [x.contiguous(memory_format=fmt) for fmt, _ in candidates]
    times: list[list[float]] = [[] for _ in candidates]
    with torch.inference_mode():
        for (_, c), xx in zip(candidates, inputs):
            for _ in range(2):
                c(xx)
        for _ in range(rounds):
            for i, ((_, c), xx) in enumerate(zip(candidates, inputs)):
                times[i].append(median_time(lambda c=c, xx=xx: c(xx), device, repeats=3, warmup=1))
    return [statistics.median(t) for t in times]


def deploy(
    model: nn.Module,
    input_size: Optional[Tuple[int, int]] = None,
    batch_size: int = 1,
    channels_last: Optional[bool] = None,
    tune: bool = True,
    cache_path: Optional[str | os.PathLike] = "default",
) -> nn.Module:
    """A faster copy of ``model`` for inference (see the module docstring); ``model`` itself is not changed.

    Args:
        model: an ``HRNASNet`` (or a timm features wrapper of one).
        input_size: ``(height, width)`` to tune for; default the model's pretrained-cfg input size.
        batch_size: batch to tune for.
        channels_last: force the memory format; ``None`` measures both and keeps the faster.
        tune: measure, per block, separate against merged kernel paths (otherwise keep them separate).
        cache_path: where measured choices are kept (``None``: do not cache).

    Returns:
        The deployed copy in eval mode, with ``deployed = True`` and ``memory_format`` set; feed it inputs in
        that memory format for the best speed (any input works).
    """
    was_training = model.training
    base = copy.deepcopy(model).eval()
    model.train(was_training)
    _fold_model(base)
    param = next(base.parameters())
    device, dtype = param.device, param.dtype
    in_chans = getattr(model, "in_chans", None) or getattr(getattr(model, "model", None), "in_chans", 3)
    if input_size is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        input_size = tuple(cfg.get("input_size", (3, 224, 224))[-2:])
    input_size = pair(input_size, in_chans)
    x = torch.randn(batch_size, in_chans, *input_size, device=device, dtype=dtype)
    path = None if cache_path is None else Path(default_cache_path() if cache_path == "default" else cache_path)
    cache = _TuningCache(path)
    key = device_key(device)

    if channels_last is None:
        formats = [torch.channels_last, torch.contiguous_format]
    else:
        formats = [torch.channels_last if channels_last else torch.contiguous_format]
    with timing_load_watch("hrnas.deploy (choosing forms by timing them)", device):
        candidates = []
        for fmt in formats:
            candidate = copy.deepcopy(base) if len(formats) > 1 else base
            if tune:
                _tune_paths(candidate, x, cache, key, fmt)
            candidates.append((fmt, candidate.to(memory_format=fmt)))
        chosen = 0
        if len(candidates) > 1:
            times = _time_alternately(candidates, x, device)
            chosen = times.index(min(times))
    cache.save()
    fmt, deployed = candidates[chosen]
    deployed.deployed = True
    deployed.memory_format = fmt
    return deployed
