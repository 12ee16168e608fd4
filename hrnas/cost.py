"""Counting: MACs and parameters, analytically from an ``Arch`` and measured on a module with fvcore.

Conventions (DESIGN.md section 5). "FLOPs" in HR-NAS and most NAS papers are multiply-accumulates (MACs), and
so are all numbers here.

- ``'paper'``: convolutions, linear layers and the attention matmuls (``q @ k^T`` and ``attn @ v``). BatchNorm,
  LayerNorm, activations, resizes, pooling and additions count zero. This matches the original HR-NAS counter
  for everything but its quirks (it misses the transformer's feed-forward and decoder attention, counts the
  SE's pooling, and skips the retrain block's residual convs), so it is the number to compare with the paper.
- ``'full'``: ``'paper'`` plus BatchNorm / LayerNorm (fvcore's per-element costs), resizes (1 per output
  element for nearest, 4 for bilinear) and mean pooling (1 per input element).

The analytic functions (:func:`count_macs`, :func:`count_params`, :func:`block_macs`) compute the ``'paper'``
convention from the integers of an :class:`hrnas.Arch` without building a network; the search uses them for its
per-unit costs and budgets. :func:`profile` traces a real module with fvcore and is the ground truth the
analytic numbers are tested against.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .arch import Arch, BlockSpec, ClsHeadSpec, DenseHeadSpec

__all__ = [
    "CONVENTIONS",
    "Profile",
    "block_macs",
    "block_macs_table",
    "block_params",
    "count_macs",
    "count_params",
    "feature_sizes",
    "profile",
    "transformer_macs",
    "transformer_params",
]

CONVENTIONS = {
    "paper": "conv + linear + attention matmuls; BN, norms, activations, resizes, pooling count 0",
    "full": "conv + linear + attention matmuls + BN/LayerNorm + resizes + mean pooling",
}

# Fixed shape of the lightweight transformer (reference section 3): an 8x8 grid, so tokens are 64-d vectors,
# and feed-forward layers of width 64.
TOKEN_GRID = 8
TOKEN_DIM = TOKEN_GRID * TOKEN_GRID
TOKEN_FFN = 64


def _pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if len(size) != 2:
        raise ValueError(f"input_size must be (height, width) or an int, got {size!r}")
    return int(size[0]), int(size[1])


def feature_sizes(input_size: int | tuple[int, int], levels: int = 6) -> list[tuple[int, int]]:
    """Spatial size at stride ``2**k`` for ``k = 0..levels-1`` (every stride-2 op rounds up, like the convs)."""
    h, w = _pair(input_size)
    sizes = [(h, w)]
    for _ in range(levels - 1):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
        sizes.append((h, w))
    return sizes


# ----------------------------------------------------------------------------------------------------------
# Analytic counts ('paper' convention)


def transformer_macs(in_chs: int, out_chs: int, tokens: int) -> int:
    """MACs of a lightweight transformer with ``tokens`` tokens; independent of the input's height and width.

    Projections ``64 * L * (in + 2)`` and ``64 * L * out``; encoder and decoder each ``4 * 64^2 * L`` for the
    q/k/v/out projections, ``2 * L^2 * 64`` for attention and ``2 * 64 * ffn * L`` for the feed-forward.
    """
    if tokens <= 0:
        return 0
    d, lt = TOKEN_DIM, tokens
    per_layer = 4 * d * d * lt + 2 * lt * lt * d + 2 * d * TOKEN_FFN * lt
    return d * lt * (in_chs + 2) + d * lt * out_chs + 2 * per_layer


def transformer_params(in_chs: int, out_chs: int, tokens: int) -> int:
    """Parameters of a lightweight transformer with ``tokens`` tokens."""
    if tokens <= 0:
        return 0
    d, lt = TOKEN_DIM, tokens
    per_layer = 4 * d * d + 2 * d * TOKEN_FFN + 4 * d  # q/k/v/out, feed-forward, two LayerNorms
    return (in_chs + 2) * lt + 2 * lt + 2 * per_layer + lt * d + lt * out_chs + 2 * out_chs


def block_macs(spec: BlockSpec, input_hw: tuple[int, int]) -> int:
    """MACs of one block whose input is ``input_hw`` pixels."""
    h, w = input_hw
    ho, wo = math.ceil(h / spec.stride), math.ceil(w / spec.stride)
    hid = spec.hidden
    macs = 0
    if hid:
        macs += spec.in_chs * hid * h * w
        macs += sum(k * k * c for k, c in spec.paths) * ho * wo
        macs += 2 * hid * spec.se_chs
        macs += hid * spec.out_chs * ho * wo
    if not spec.has_identity:
        groups = math.gcd(spec.in_chs, spec.out_chs)
        macs += spec.in_chs // groups * spec.out_chs * ho * wo
    return macs + transformer_macs(spec.in_chs, spec.out_chs, spec.tokens)


def block_params(spec: BlockSpec) -> int:
    """Parameters of one block (BatchNorm affine parameters included, running statistics not)."""
    hid = spec.hidden
    n = 0
    if hid:
        n += spec.in_chs * hid + 2 * hid
        n += sum(k * k * c for k, c in spec.paths) + 2 * hid
        if spec.se_chs:
            n += 2 * hid * spec.se_chs + spec.se_chs + hid
        n += hid * spec.out_chs + 2 * spec.out_chs
    if not spec.has_identity:
        n += spec.in_chs // math.gcd(spec.in_chs, spec.out_chs) * spec.out_chs
    return n + transformer_params(spec.in_chs, spec.out_chs, spec.tokens)


def block_input_sizes(arch: Arch, input_size: int | tuple[int, int]) -> dict[str, tuple[int, int]]:
    """Spatial size of every block's input at ``input_size``, keyed by block name."""
    sizes = feature_sizes(input_size, levels=len(arch.stages) + 4)
    strides = arch.block_input_strides()
    return {name: sizes[int(math.log2(strides[name]))] for name, _ in arch.named_blocks()}


def block_macs_table(arch: Arch, input_size: int | tuple[int, int]) -> dict[str, int]:
    """MACs of every block of ``arch`` at ``input_size``, keyed by block name."""
    hw = block_input_sizes(arch, input_size)
    return {name: block_macs(b, hw[name]) for name, b in arch.named_blocks()}


def count_macs(arch: Arch, input_size: int | tuple[int, int], in_chans: int = 3) -> int:
    """Total MACs of ``arch`` at ``input_size`` in the ``'paper'`` convention, computed from the integers."""
    sizes = feature_sizes(input_size, levels=len(arch.stages) + 4)
    c0, c1 = arch.stem
    macs = in_chans * c0 * 9 * _area(sizes[1]) + c0 * c1 * 9 * _area(sizes[2])
    macs += sum(block_macs_table(arch, input_size).values())
    head = arch.head
    if isinstance(head, DenseHeadSpec):
        macs += head.block.out_chs * head.num_classes * _area(sizes[2])
    elif isinstance(head, ClsHeadSpec):
        macs += head.incre[-1].out_chs * head.final_chs * _area(sizes[1 + len(head.incre)])
        macs += head.final_chs * head.num_classes
    return macs


def count_params(arch: Arch, in_chans: int = 3) -> int:
    """Total parameters of ``arch`` (what ``sum(p.numel() for p in model.parameters())`` gives)."""
    c0, c1 = arch.stem
    n = in_chans * c0 * 9 + 2 * c0 + c0 * c1 * 9 + 2 * c1
    n += sum(block_params(b) for b in arch.blocks())
    head = arch.head
    if head.num_classes:
        n += head.num_features * head.num_classes + head.num_classes
    if isinstance(head, ClsHeadSpec):
        n += head.incre[-1].out_chs * head.final_chs + 2 * head.final_chs
    return n


def _area(hw: tuple[int, int]) -> int:
    return hw[0] * hw[1]


# ----------------------------------------------------------------------------------------------------------
# Measured counts (fvcore)


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
    from fvcore.nn import FlopCountAnalysis

    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {list(CONVENTIONS)}, got {convention!r}")
    if isinstance(model, str):
        from .zoo import create_model

        model = create_model(model)
    if input_size is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        if "input_size" not in cfg:
            raise ValueError("input_size is required for a model without a pretrained_cfg input size")
        input_size = tuple(cfg["input_size"][-2:])
    h, w = _pair(input_size)
    in_chans = getattr(model, "in_chans", 3)
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
