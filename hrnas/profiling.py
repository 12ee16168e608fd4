"""Profiling: MACs and parameters of a real module, traced with fvcore (docs/conventions.md).

Conventions:

- ``'paper'``: convolutions, linear layers and the attention matmuls (``q @ k^T`` and ``attn @ v``). BatchNorm,
  LayerNorm, activations, resizes, pooling and additions count zero: the convention of :mod:`hrnas.cost`'s analytic
  counts, which :func:`profile` is the ground truth for.
- ``'full'``: ``'paper'`` plus BatchNorm / LayerNorm (fvcore's per-element costs), resizes (1 per output
  element for nearest, 4 for bilinear) and mean pooling (1 per input element).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._size import pair
from .zoo import create_model

__all__ = ["CONVENTIONS", "Profile", "profile"]

CONVENTIONS = {
    "paper": "conv + linear + attention matmuls; BN, norms, activations, resizes, pooling count 0",
    "full": "conv + linear + attention matmuls + BN/LayerNorm + resizes + mean pooling",
}


@dataclass(frozen=True)
class Profile:
    """MACs and parameters of a module, in total and per submodule, with the convention and input stated."""

    macs: int
    params: int
    input_size: tuple[int, int]
    convention: str
    macs_by_module: Mapping[str, int] = field(repr=False)
    params_by_module: Mapping[str, int] = field(repr=False)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    def __str__(self) -> str:
        h, w = self.input_size
        return (
            f"{self.params / 1e6:.3f} M params, {self.macs / 1e9:.4f} GMACs at {h}x{w} "
            f"(convention '{self.convention}': {CONVENTIONS[self.convention]})"
        )

    def table(self, max_depth: int = 2) -> str:
        """Per-module MACs and parameters down to ``max_depth`` levels of module nesting."""
        rows = [f"{'module':<40} {'params':>12} {'MACs':>16}"]
        names = sorted(set(self.macs_by_module) | set(self.params_by_module), key=_module_sort_key)
        for name in names:
            depth = 0 if name == "" else name.count(".") + 1
            if depth > max_depth:
                continue
            label = "(total)" if name == "" else "  " * (depth - 1) + name
            macs = self.macs_by_module.get(name, 0)
            params = self.params_by_module.get(name, 0)
            rows.append(f"{label:<40} {params:>12,} {macs:>16,}")
        rows.append(str(self))
        return "\n".join(rows)


def _module_sort_key(name: str) -> list[Any]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in name.split(".")] if name else []


def _sdpa_macs(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = math.prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def _zero(inputs: list[Any], outputs: list[Any]) -> int:
    return 0


def _mean_macs(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    return math.prod(get_shape(inputs[0]))


_NOT_IN_PAPER = (
    "aten::batch_norm",
    "aten::group_norm",
    "aten::layer_norm",
    "aten::instance_norm",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
    "aten::adaptive_avg_pool2d",
    "aten::grid_sampler",
)


def profile(
    model: nn.Module | str,
    input_size: int | tuple[int, int] | None = None,
    convention: str = "paper",
    batch_size: int = 1,
) -> Profile:
    """Count MACs (with fvcore, attention included) and parameters of ``model`` on one input.

    Args:
        model: a module, or a model name for :func:`hrnas.create_model`.
        input_size: ``(height, width)`` or an int; default the model's pretrained-cfg input size.
        convention: ``'paper'`` or ``'full'`` (see the module docstring).
        batch_size: batch of the traced input (MACs scale with it; parameters do not).

    Returns:
        A :class:`Profile`; ``str()`` of it states the convention and the input size.
    """
    from fvcore.nn import FlopCountAnalysis  # imported when used: tracing is slow to import and rarely needed

    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {list(CONVENTIONS)}, got {convention!r}")
    if isinstance(model, str):
        model = create_model(model)
    if input_size is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        if "input_size" not in cfg:
            raise ValueError("input_size is required for a model without a pretrained_cfg input size")
        input_size = tuple(cfg["input_size"][-2:])
    in_chans = getattr(model, "in_chans", 3)
    h, w = pair(input_size, in_chans)
    param = next(model.parameters(), None)
    x = torch.zeros(batch_size, in_chans, h, w, device=param.device if param is not None else "cpu")

    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # torch.jit.trace deprecation and tracer notes
            fa = FlopCountAnalysis(model, x)
            fa.set_op_handle("aten::scaled_dot_product_attention", _sdpa_macs)
            if convention == "paper":
                fa.set_op_handle(**{op: _zero for op in _NOT_IN_PAPER})
            else:
                fa.set_op_handle("aten::mean", _mean_macs)
            fa.unsupported_ops_warnings(False)
            fa.uncalled_modules_warnings(False)
            fa.tracer_warnings("none")
            by_module = dict(fa.by_module())
    finally:
        model.train(was_training)

    params_by_module = {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_modules()}
    return Profile(
        macs=int(by_module.get("", 0)),
        params=params_by_module[""],
        input_size=(h, w),
        convention=convention,
        macs_by_module={k: int(v) for k, v in by_module.items()},
        params_by_module=params_by_module,
    )
