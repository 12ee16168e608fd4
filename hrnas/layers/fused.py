"""The fused form of the mixed-kernel block, kept to compare with and to convert weights from.

The fused form computes a block's paths with one 1x1 expansion to all hidden channels, a depthwise conv per kernel
group and one 1x1 projection over the concatenated groups: the same function as the per-path
:class:`hrnas.layers.MixedKernelBlock`, with fewer, larger convs and a concatenation. It was meant to be the fast
form; on the CPUs measured here it is slower (``benchmarks/search_cost.py``), so networks are not built from it.
:func:`to_fused` converts a whole network, for benchmarks and for devices where it may win.
"""

from __future__ import annotations

import copy
from typing import Dict, Optional

import torch
from torch import nn

from ..arch import BlockSpec
from .block import BLOCK_UNITS, BlockUnits, MixedKernelBlock, make_act, make_shortcut, make_transformer

__all__ = ["FusedMixedKernelBlock", "fused_to_paths", "paths_to_fused", "to_fused"]

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


class _SqueezeExcite(nn.Module):
    def __init__(self, chs: int, rd_chs: int, act: str = "relu") -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, rd_chs, 1, bias=True)
        self.act = make_act(act)
        self.conv_expand = nn.Conv2d(rd_chs, chs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.conv_expand(self.act(self.conv_reduce(s))))


class FusedMixedKernelBlock(nn.Module):
    """The fused form of :class:`hrnas.layers.MixedKernelBlock`: the same function, one expansion for all paths.

    ``y = shortcut(x) + bn3(conv_pwl(se(act(bn2(dw(act(bn1(conv_pw(x)))))))) + transformer(x)``, where ``dw``
    applies kernel ``k`` to the ``channels[k]`` hidden channels of its group. :func:`paths_to_fused` and
    :func:`fused_to_paths` map weights between the two forms.
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
            self.se = _SqueezeExcite(hidden, spec.se_chs, spec.act) if spec.se_chs else nn.Identity()
            self.conv_pwl = nn.Conv2d(hidden, spec.out_chs, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(spec.out_chs, **bn_kwargs)

        if not hidden:
            # What remains of paths that the search removed: their constant output (folded when they were
            # removed, zero in a freshly built block) added per output channel.
            self.register_buffer("bias", torch.zeros(spec.out_chs))

        self.shortcut = make_shortcut(spec)
        self.transformer = make_transformer(spec)

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


# the fused block's own tensors (its attribute names) <- each kernel path's, named as BLOCK_UNITS declares them
def _fused_from_path(u: BlockUnits) -> dict[str, str]:
    pairs = {"conv_pw": u.expand, "bn1": u.expand_norm, "bn2": u.gate_norm, "conv_pwl": u.project}
    return {f"{f}.{k}": f"{p}.{k}" for f, p in pairs.items() for k in ("weight", *_BN_KEYS[1:], "num_batches_tracked")}


def paths_to_fused(state: Dict[str, torch.Tensor], spec: BlockSpec) -> Dict[str, torch.Tensor]:
    """Map a per-path block's state onto the fused block's: expansions and BNs concatenated in path order,
    projections along their input channels."""
    u = BLOCK_UNITS
    n = len(spec.paths)
    out = {k: v for k, v in state.items() if not k.startswith(f"{u.paths}.")}
    if n:
        source = _fused_from_path(u)

        def cat(key: str, dim: int = 0) -> torch.Tensor:
            return torch.cat([state[f"{u.path('', p)}.{source[key]}"] for p in range(n)], dim=dim)

        out["conv_pw.weight"] = cat("conv_pw.weight")
        out["conv_pwl.weight"] = cat("conv_pwl.weight", dim=1)
        for k in _BN_KEYS:
            out[f"bn1.{k}"] = cat(f"bn1.{k}")
            out[f"bn2.{k}"] = cat(f"bn2.{k}")
        for bn in ("bn1", "bn2"):
            first = f"{u.path('', 0)}.{source[f'{bn}.num_batches_tracked']}"
            if first in state:
                out[f"{bn}.num_batches_tracked"] = state[first]
        for p in range(n):
            out[f"conv_dw.{p}.weight"] = state[f"{u.path('', p)}.{u.depthwise}.weight"]
    return out


def fused_to_paths(state: Dict[str, torch.Tensor], spec: BlockSpec) -> Dict[str, torch.Tensor]:
    """The inverse of :func:`paths_to_fused`."""
    u = BLOCK_UNITS
    sizes = [c for _, c in spec.paths]
    fused_keys = ("conv_pw.", "conv_pwl.", "bn1.", "bn2.", "conv_dw.")
    out = {k: v for k, v in state.items() if not k.startswith(fused_keys)}
    if sizes:
        target = _fused_from_path(u)
        for p, w in enumerate(torch.split(state["conv_pw.weight"], sizes)):
            out[f"{u.path('', p)}.{target['conv_pw.weight']}"] = w.clone()
        for p, w in enumerate(torch.split(state["conv_pwl.weight"], sizes, dim=1)):
            out[f"{u.path('', p)}.{target['conv_pwl.weight']}"] = w.clone()
        for bn in ("bn1", "bn2"):
            for k in _BN_KEYS:
                for p, t in enumerate(torch.split(state[f"{bn}.{k}"], sizes)):
                    out[f"{u.path('', p)}.{target[f'{bn}.{k}']}"] = t.clone()
            for p in range(len(sizes)):
                if f"{bn}.num_batches_tracked" in state:
                    key = f"{u.path('', p)}.{target[f'{bn}.num_batches_tracked']}"
                    out[key] = state[f"{bn}.num_batches_tracked"]
        for p in range(len(sizes)):
            out[f"{u.path('', p)}.{u.depthwise}.weight"] = state[f"conv_dw.{p}.weight"]
    return out


def to_fused(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every block in the fused form (same weights, same function)."""
    fused = copy.deepcopy(model)
    for parent in list(fused.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, MixedKernelBlock):
                norm = getattr(child, BLOCK_UNITS.block_norm)
                bn = norm if isinstance(norm, nn.BatchNorm2d) else None
                kwargs = {"momentum": bn.momentum, "eps": bn.eps} if bn is not None else {}
                block = FusedMixedKernelBlock(child.spec, kwargs)
                ref = next(iter(child.state_dict().values()))
                block.to(device=ref.device, dtype=ref.dtype)
                block.load_state_dict(paths_to_fused(child.state_dict(), child.spec))
                block.train(child.training)
                setattr(parent, name, block)
    return fused
