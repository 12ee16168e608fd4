"""The mixed-kernel inverted-residual block, HR-NAS's search unit, in its fused form.

The paper's block runs one MobileNetV2 path per depthwise kernel (3, 5, 7), each with its own 1x1 expansion,
and sums the paths' 1x1 projections before one shared BatchNorm. Because BatchNorm and depthwise convs act
per channel, that is exactly the same function as: one 1x1 expansion to the concatenated hidden channels, a
depthwise conv per kernel *group* of channels, one 1x1 projection. This module builds that fused form (fewer,
larger kernels: faster); :mod:`hrnas.layers.reference` keeps the literal three-path form for tests and for
converting weights.

The importance of a hidden channel (what the search's L1 penalty acts on) is ``|gamma|`` of ``bn2``, the
BatchNorm after the depthwise convs.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ..arch import BlockSpec
from .transformer import LightweightTransformer

__all__ = ["ConvBnAct", "MixedKernelBlock", "SqueezeExcite", "make_act", "residual_groups"]


def make_act(name: str, inplace: bool = True) -> nn.Module:
    """The activation module for an :data:`hrnas.arch.ACTIVATIONS` name."""
    if name == "relu":
        return nn.ReLU(inplace=inplace)
    if name == "swish":
        return nn.SiLU(inplace=inplace)
    raise ValueError(f"unknown activation {name!r}; use 'relu' or 'swish'")


def residual_groups(in_chs: int, out_chs: int) -> int:
    """Groups of the 1x1 residual conv: the largest number dividing both widths, as in the original code."""
    return math.gcd(in_chs, out_chs)


class ConvBnAct(nn.Module):
    """Conv (no bias, 'same' padding) + BatchNorm + optional activation."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        act: Optional[str] = "relu",
        bn_kwargs: Optional[dict] = None,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, (kernel_size - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_chs, **(bn_kwargs or {}))
        self.act = make_act(act) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation on the hidden channels (as in the original's retrain block)."""

    def __init__(self, chs: int, rd_chs: int, act: str = "relu") -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, rd_chs, 1, bias=True)
        self.act = make_act(act)
        self.conv_expand = nn.Conv2d(rd_chs, chs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.conv_expand(self.act(self.conv_reduce(s)))
        return x * torch.sigmoid(s)


class MixedKernelBlock(nn.Module):
    """Inverted residual with mixed depthwise kernels, an optional SE and an optional lightweight transformer.

    ``y = shortcut(x) + bn3(conv_pwl(se(act(bn2(dw(act(bn1(conv_pw(x)))))))) + transformer(x)``, where ``dw``
    applies kernel ``k`` to the ``channels[k]`` hidden channels of its group, ``shortcut`` is the identity or a
    grouped 1x1 conv, and the transformer term exists only when ``spec.tokens > 0``. A block without hidden
    channels is its shortcut (plus transformer) alone.

    Args:
        spec: the block's :class:`hrnas.BlockSpec`.
        bn_kwargs: BatchNorm settings (momentum, eps) of the network.
    """

    __jit_unused_properties__ = ["hidden"]

    def __init__(self, spec: BlockSpec, bn_kwargs: Optional[dict] = None) -> None:
        super().__init__()
        spec.validate()
        bn_kwargs = bn_kwargs or {}
        self.spec = spec
        paths = spec.paths
        self.kernel_sizes = [k for k, _ in paths]
        self.splits = [c for _, c in paths]
        hidden = sum(self.splits)
        self.in_chs, self.out_chs, self.stride = spec.in_chs, spec.out_chs, spec.stride

        self.conv_pw: Optional[nn.Conv2d] = None
        self.conv_dw: Optional[nn.ModuleList] = None
        if hidden:
            self.conv_pw = nn.Conv2d(spec.in_chs, hidden, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(hidden, **bn_kwargs)
            self.act1 = make_act(spec.act)
            self.conv_dw = nn.ModuleList(
                nn.Conv2d(c, c, k, spec.stride, (k - 1) // 2, groups=c, bias=False) for k, c in paths
            )
            self.bn2 = nn.BatchNorm2d(hidden, **bn_kwargs)
            self.act2 = make_act(spec.act)
            self.se = SqueezeExcite(hidden, spec.se_chs, spec.act) if spec.se_chs else nn.Identity()
            self.conv_pwl = nn.Conv2d(hidden, spec.out_chs, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(spec.out_chs, **bn_kwargs)

        if not hidden:
            # What remains of paths that the search removed: their constant output (folded when they were
            # removed, zero in a freshly built block) added per output channel.
            self.register_buffer("bias", torch.zeros(spec.out_chs))

        if spec.has_identity:
            self.shortcut: nn.Module = nn.Identity()
        else:
            groups = residual_groups(spec.in_chs, spec.out_chs)
            self.shortcut = nn.Conv2d(spec.in_chs, spec.out_chs, 1, spec.stride, groups=groups, bias=False)

        self.transformer: Optional[LightweightTransformer] = None
        if spec.tokens:
            self.transformer = LightweightTransformer(spec.in_chs, spec.out_chs, spec.tokens)

    @property
    def hidden(self) -> int:
        return sum(self.splits)

    def _depthwise(self, x: torch.Tensor) -> torch.Tensor:
        convs = self.conv_dw
        assert convs is not None
        if len(self.splits) == 1:
            return convs[0](x)
        parts = torch.split(x, self.splits, dim=1)
        outs = []
        for i, conv in enumerate(convs):
            outs.append(conv(parts[i]))
        return torch.cat(outs, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shortcut(x)
        if self.conv_pw is not None:
            h = self.act1(self.bn1(self.conv_pw(x)))
            h = self.act2(self.bn2(self._depthwise(h)))
            h = self.se(h)
            out = out + self.bn3(self.conv_pwl(h))
        else:
            out = out + self.bias.view(1, -1, 1, 1)
        if self.transformer is not None:
            out = out + self.transformer(x, out.shape[-2], out.shape[-1])
        return out

    def extra_repr(self) -> str:
        kc = ", ".join(f"{k}:{c}" for k, c in zip(self.kernel_sizes, self.splits)) or "residual only"
        return f"{self.in_chs}->{self.out_chs}, stride={self.stride}, kernels=[{kc}], tokens={self.spec.tokens}"
