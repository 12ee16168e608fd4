"""The literal three-path search block of the original code, for tests and weight conversion only.

Networks never use this module: :class:`hrnas.layers.MixedKernelBlock` computes the same function faster. It
mirrors ``InvertedResidualChannels`` (reference/hrnas_original_code.md section 2.3) including its state-dict
layout (``ops.<p>.0.0.weight`` expand conv, ``ops.<p>.0.1`` expand BN, ``ops.<p>.1.0`` depthwise conv,
``ops.<p>.1.1`` depthwise BN, ``ops.<p>.2`` projection, ``pw_bn``, ``residual``), so
:func:`reference_to_fused` is also the key map for converting the original's checkpoints. The original's
distillation-only ``bns`` are not built.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from ..arch import BlockSpec
from .block import make_act, residual_groups
from .transformer import LightweightTransformer

__all__ = ["MixedKernelBlockReference", "fused_to_reference", "reference_to_fused", "to_reference"]


class MixedKernelBlockReference(nn.Module):
    """One ``expand -> depthwise -> project`` path per kernel, projections summed, one BN, plus the residual."""

    def __init__(self, spec: BlockSpec, bn_kwargs: Optional[dict] = None) -> None:
        super().__init__()
        if spec.se_ratio:
            raise ValueError("the reference block models the search block, which has no SE")
        bn_kwargs = bn_kwargs or {}
        self.spec = spec
        self.ops = nn.ModuleList(
            nn.Sequential(
                _conv_bn_act(spec.in_chs, c, 1, 1, 1, spec.act, bn_kwargs),
                _conv_bn_act(c, c, k, spec.stride, c, spec.act, bn_kwargs),
                nn.Conv2d(c, spec.out_chs, 1, bias=False),
            )
            for k, c in spec.paths
        )
        self.pw_bn = nn.BatchNorm2d(spec.out_chs, **bn_kwargs)
        self.residual: nn.Module = nn.Identity()
        if not spec.has_identity:
            groups = residual_groups(spec.in_chs, spec.out_chs)
            self.residual = nn.Conv2d(spec.in_chs, spec.out_chs, 1, spec.stride, groups=groups, bias=False)
        self.transformer = LightweightTransformer(spec.in_chs, spec.out_chs, spec.tokens) if spec.tokens else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.residual(x)
        if len(self.ops):
            out = out + self.pw_bn(sum(op(x) for op in self.ops))
        if self.transformer is not None:
            out = out + self.transformer(x, out.shape[-2], out.shape[-1])
        return out


def _conv_bn_act(
    in_chs: int, out_chs: int, kernel: int, stride: int, groups: int, act: str, bn_kwargs: dict
) -> nn.Sequential:
    """``Sequential(conv, bn, act)``, so keys read ``ops.<p>.<i>.0`` / ``ops.<p>.<i>.1`` as in the original."""
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_chs, **bn_kwargs),
        make_act(act),
    )


_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


def reference_to_fused(state: Dict[str, torch.Tensor], spec: BlockSpec) -> Dict[str, torch.Tensor]:
    """Map a three-path state dict (this module's or the original's layout) onto ``MixedKernelBlock``'s.

    The expand convs and both per-path BNs are concatenated along channels in path order, the projections
    along their input channels; ``pw_bn`` becomes ``bn3`` and ``residual`` becomes ``shortcut``.
    """
    n_paths = len(spec.paths)
    out: Dict[str, torch.Tensor] = {}
    if n_paths:

        def cat(key: str, dim: int = 0) -> torch.Tensor:
            return torch.cat([state[f"ops.{p}.{key}"] for p in range(n_paths)], dim=dim)

        out["conv_pw.weight"] = cat("0.0.weight")
        for k in _BN_KEYS:
            out[f"bn1.{k}"] = cat(f"0.1.{k}")
            out[f"bn2.{k}"] = cat(f"1.1.{k}")
            out[f"bn3.{k}"] = state[f"pw_bn.{k}"]
        for bn, src in (("bn1", "ops.0.0.1"), ("bn2", "ops.0.1.1"), ("bn3", "pw_bn")):
            if f"{src}.num_batches_tracked" in state:
                out[f"{bn}.num_batches_tracked"] = state[f"{src}.num_batches_tracked"]
        for p in range(n_paths):
            out[f"conv_dw.{p}.weight"] = state[f"ops.{p}.1.0.weight"]
        out["conv_pwl.weight"] = cat("2.weight", dim=1)
    else:
        out["bias"] = torch.zeros(spec.out_chs)  # the original drops an empty block's paths without a trace
    if "residual.weight" in state:
        out["shortcut.weight"] = state["residual.weight"]
    out.update({k: v for k, v in state.items() if k.startswith("transformer.")})
    return out


def fused_to_reference(state: Dict[str, torch.Tensor], spec: BlockSpec) -> Dict[str, torch.Tensor]:
    """The inverse of :func:`reference_to_fused`: split a fused block's state into per-path tensors."""
    out: Dict[str, torch.Tensor] = {}
    sizes = [c for _, c in spec.paths]
    if sizes:

        def split(key: str, dim: int = 0):
            return torch.split(state[key], sizes, dim=dim)

        for p, w in enumerate(split("conv_pw.weight")):
            out[f"ops.{p}.0.0.weight"] = w
        for k in _BN_KEYS:
            for p, t in enumerate(split(f"bn1.{k}")):
                out[f"ops.{p}.0.1.{k}"] = t
            for p, t in enumerate(split(f"bn2.{k}")):
                out[f"ops.{p}.1.1.{k}"] = t
            out[f"pw_bn.{k}"] = state[f"bn3.{k}"]
        for p in range(len(sizes)):
            out[f"ops.{p}.1.0.weight"] = state[f"conv_dw.{p}.weight"]
            if "bn1.num_batches_tracked" in state:
                out[f"ops.{p}.0.1.num_batches_tracked"] = state["bn1.num_batches_tracked"]
                out[f"ops.{p}.1.1.num_batches_tracked"] = state["bn2.num_batches_tracked"]
        for p, w in enumerate(split("conv_pwl.weight", dim=1)):
            out[f"ops.{p}.2.weight"] = w
        if "bn3.num_batches_tracked" in state:
            out["pw_bn.num_batches_tracked"] = state["bn3.num_batches_tracked"]
    if "shortcut.weight" in state:
        out["residual.weight"] = state["shortcut.weight"]
    out.update({k: v for k, v in state.items() if k.startswith("transformer.")})
    return out


def to_reference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose fused blocks are replaced by the literal three-path blocks (same weights).

    For benchmarks and tests: it computes the same function as ``model``, the slow way the original code did.
    Blocks with SE, and emptied blocks carrying a folded bias, are kept as they are.
    """
    import copy

    from .block import MixedKernelBlock

    ref = copy.deepcopy(model)
    for parent in list(ref.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, MixedKernelBlock):
                continue
            spec = child.spec
            if spec.se_ratio or (child.conv_pw is None and child.bias.abs().sum() > 0):
                continue
            bn = child.bn3 if child.conv_pw is not None else None
            kwargs = {"momentum": bn.momentum, "eps": bn.eps} if bn is not None else {}
            block = MixedKernelBlockReference(spec, kwargs).to(next(iter(child.state_dict().values()), torch.zeros(0)))
            block.load_state_dict(fused_to_reference(child.state_dict(), spec))
            block.train(child.training)
            setattr(parent, name, block)
    return ref
