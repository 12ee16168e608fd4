"""The mixed-kernel inverted-residual block, HR-NAS's search unit.

One MobileNetV2-style path per depthwise kernel (3, 5, 7): 1x1 expansion + BN + act, depthwise conv + BN + act,
1x1 projection; the paths' projections are summed, then one BatchNorm, then the residual is added. This is the
layout of the paper's search block.

Because BatchNorm and depthwise convs act per channel, the same function can be computed with one 1x1 expansion
to all hidden channels, a depthwise conv per kernel group and one 1x1 projection
(:class:`hrnas.layers.fused.FusedMixedKernelBlock`). That "fused" form was expected to be faster; measured on
the CPUs here it is not (the concatenation of the depthwise outputs costs more than the extra small convs save;
``benchmarks/results/search_cost.md`` has the step times), so the per-path form is the one networks are built from,
and :func:`hrnas.deploy` merges paths only where that measures faster.

The importance of a hidden channel (what the search's L1 penalty acts on) is ``|gamma|`` of its path's ``bn2``,
the BatchNorm after the depthwise conv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import nn

from ..arch import BlockSpec
from .transformer import TOKEN_UNITS, LightweightTransformer

__all__ = [
    "BLOCK_UNITS",
    "BlockUnits",
    "ConvBnAct",
    "KernelPath",
    "MixedKernelBlock",
    "SqueezeExcite",
    "make_act",
    "make_shortcut",
    "make_transformer",
    "residual_groups",
]


def _bn_tensors(name: str) -> tuple[tuple[str, Optional[int]], ...]:
    per_channel = tuple((f"{name}.{k}", 0) for k in ("weight", "bias", "running_mean", "running_var"))
    return (*per_channel, (f"{name}.num_batches_tracked", None))


@dataclass(frozen=True)
class BlockUnits:
    """The names of the tensors that hold a :class:`MixedKernelBlock`'s searchable units: its kernel paths' hidden
    channels, the block-level tensors they feed, and where its transformer (whose tokens
    :class:`hrnas.layers.transformer.TokenUnits` names) sits.

    Declared here, next to the attributes they name, and read from here by everything that addresses units by
    name (the search's penalty, selection and shrinking, weight conversion, deploy's folding, the fused form), so
    renaming one of them changes this file only; tests/test_layers.py checks every name against every space.
    Keys are state-dict names below a block's module path (``block``; ``''`` for keys relative to the block).
    """

    paths: str = "paths"  # the block's kernel paths (a ModuleList of KernelPath)
    expand: str = "conv_pw"
    expand_norm: str = "bn1"
    depthwise: str = "conv_dw"
    gate_norm: str = "bn2"  # |gamma| of this BatchNorm (after the depthwise conv) is each hidden channel's importance
    project: str = "conv_pwl"
    block_norm: str = "bn3"  # after the summed projections: removed channels' constant output folds into it
    constant: str = "bias"  # a block without hidden channels: the folded constant, a buffer
    se: str = "se"
    se_reduce: str = "conv_reduce"
    se_expand: str = "conv_expand"
    transformer: str = "transformer"

    def _in(self, block: str, key: str) -> str:
        return f"{block}.{key}" if block else key

    def path(self, block: str, i: int) -> str:
        """Module path of kernel path ``i`` of ``block``."""
        return self._in(block, f"{self.paths}.{i}")

    def channel_gate(self, block: str, i: int) -> str:
        """The gate of kernel path ``i``'s hidden channels."""
        return f"{self.path(block, i)}.{self.gate_norm}.weight"

    def token_gate(self, block: str) -> str:
        """The gate of ``block``'s transformer tokens."""
        return TOKEN_UNITS.gate(self.transformer_path(block))

    def transformer_path(self, block: str) -> str:
        return self._in(block, self.transformer)

    def norm(self, block: str, tensor: str) -> str:
        """A tensor of the block's BatchNorm after the summed projections (``weight``, ``running_mean``...)."""
        return self._in(block, f"{self.block_norm}.{tensor}")

    def path_tensors(self) -> tuple[tuple[str, Optional[int]], ...]:
        """Every tensor of a kernel path (relative to it), with the dim that indexes its hidden channels (``None``:
        not per channel)."""
        return (
            (f"{self.expand}.weight", 0),
            *_bn_tensors(self.expand_norm),
            (f"{self.depthwise}.weight", 0),
            *_bn_tensors(self.gate_norm),
            (f"{self.project}.weight", 1),
        )

    def se_tensors(self) -> tuple[tuple[str, int], ...]:
        """The SE's tensors (relative to the block), with the dim that indexes the block's hidden channels."""
        return (
            (f"{self.se}.{self.se_reduce}.weight", 1),
            (f"{self.se}.{self.se_expand}.weight", 0),
            (f"{self.se}.{self.se_expand}.bias", 0),
        )


BLOCK_UNITS = BlockUnits()


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


def make_shortcut(spec: BlockSpec) -> nn.Module:
    """The block's residual: the identity, or a grouped 1x1 conv (with the block's stride) when shapes differ."""
    if spec.has_identity:
        return nn.Identity()
    groups = residual_groups(spec.in_chs, spec.out_chs)
    return nn.Conv2d(spec.in_chs, spec.out_chs, 1, spec.stride, groups=groups, bias=False)


def make_transformer(spec: BlockSpec) -> Optional[LightweightTransformer]:
    """The block's lightweight transformer, or ``None`` when it has no tokens."""
    return LightweightTransformer(spec.in_chs, spec.out_chs, spec.tokens) if spec.tokens else None


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
    """Squeeze-and-excitation over all hidden channels of a block (as in the original's retrain block).

    Takes the paths' hidden maps as a list, so that they need not be concatenated: the squeeze is the
    concatenation of their global means, the excitation is split back per path.
    """

    def __init__(self, chs: int, rd_chs: int, act: str = "relu") -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, rd_chs, 1, bias=True)
        self.act = make_act(act)
        self.conv_expand = nn.Conv2d(rd_chs, chs, 1, bias=True)

    def forward(self, hs: List[torch.Tensor]) -> List[torch.Tensor]:
        s = torch.cat([h.mean((2, 3), keepdim=True) for h in hs], dim=1)
        s = torch.sigmoid(self.conv_expand(self.act(self.conv_reduce(s))))
        out: List[torch.Tensor] = []
        start = 0
        for h in hs:
            n = h.shape[1]
            out.append(h * s[:, start : start + n])
            start += n
        return out


class KernelPath(nn.Module):
    """One kernel's path: 1x1 expand + BN + act, depthwise ``kernel x kernel`` (stride) + BN + act, 1x1 project.

    The projection has no BatchNorm of its own: the block sums all paths' projections before its ``bn3``.
    """

    def __init__(
        self, in_chs: int, hidden: int, out_chs: int, kernel: int, stride: int, act: str, bn_kwargs: dict
    ) -> None:
        super().__init__()
        self.kernel_size = kernel
        self.conv_pw = nn.Conv2d(in_chs, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden, **bn_kwargs)
        self.act1 = make_act(act)
        self.conv_dw = nn.Conv2d(hidden, hidden, kernel, stride, (kernel - 1) // 2, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden, **bn_kwargs)
        self.act2 = make_act(act)
        self.conv_pwl = nn.Conv2d(hidden, out_chs, 1, bias=False)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The path's gated hidden map (after the depthwise BN and activation)."""
        return self.act2(self.bn2(self.conv_dw(self.act1(self.bn1(self.conv_pw(x))))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_pwl(self.hidden(x))


class MixedKernelBlock(nn.Module):
    """Inverted residual with mixed depthwise kernels, an optional SE and an optional lightweight transformer.

    ``y = shortcut(x) + bn3(sum_k paths[k](x)) + transformer(x)``, where ``paths[k]`` is a :class:`KernelPath`
    with ``channels[k]`` hidden channels (paths with 0 channels are not built), ``shortcut`` is the identity or a
    grouped 1x1 conv, and the transformer term exists only when ``spec.tokens > 0``. With SE, the paths' hidden
    maps are rescaled by one squeeze-excitation before their projections. A block without hidden channels is its
    shortcut plus a constant ``bias`` (what the search folded in when it removed the paths; zero when built so).

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
        self.in_chs, self.out_chs, self.stride = spec.in_chs, spec.out_chs, spec.stride
        self.kernel_sizes = [k for k, _ in spec.paths]
        self.paths = nn.ModuleList(
            KernelPath(spec.in_chs, c, spec.out_chs, k, spec.stride, spec.act, bn_kwargs) for k, c in spec.paths
        )
        self.se: Optional[SqueezeExcite] = None
        self.bn3: Optional[nn.Module] = None
        if spec.hidden:
            if spec.se_chs:
                self.se = SqueezeExcite(spec.hidden, spec.se_chs, spec.act)
            self.bn3 = nn.BatchNorm2d(spec.out_chs, **bn_kwargs)
        else:
            # What remains of paths that the search removed: their constant output (folded when they were
            # removed, zero in a freshly built block) added per output channel.
            self.register_buffer("bias", torch.zeros(spec.out_chs))

        self.shortcut = make_shortcut(spec)
        self.transformer = make_transformer(spec)

    @property
    def hidden(self) -> int:
        return sum(p.conv_dw.out_channels for p in self.paths)

    def _paths(self, x: torch.Tensor) -> torch.Tensor:
        y: Optional[torch.Tensor] = None
        if self.se is None:
            for path in self.paths:
                z = path(x)
                y = z if y is None else y + z
        else:
            hs: List[torch.Tensor] = []
            for path in self.paths:
                hs.append(path.hidden(x))
            hs = self.se(hs)
            for i, path in enumerate(self.paths):
                z = path.conv_pwl(hs[i])
                y = z if y is None else y + z
        assert y is not None
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shortcut(x)
        if self.bn3 is not None:
            out = out + self.bn3(self._paths(x))
        else:
            out = out + self.bias.view(1, -1, 1, 1)
        if self.transformer is not None:
            out = out + self.transformer(x, out.shape[-2], out.shape[-1])
        return out

    def extra_repr(self) -> str:
        kc = ", ".join(f"{k}:{c}" for k, c in self.spec.paths) or "residual only"
        return f"{self.in_chs}->{self.out_chs}, stride={self.stride}, kernels=[{kc}], tokens={self.spec.tokens}"
