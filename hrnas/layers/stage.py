"""One HR-NAS stage: neighbour-only branch fusion, then parallel block stacks.

Fusion (as in the original code): output branch ``i`` is ``act(sum_j f_ij(x_j))`` over the
input branches ``j`` in ``{i-1, i, i+1}`` that exist. ``f_ij`` is a stride-2 block when ``j`` is the
higher-resolution neighbour, a stride-1 block when ``j == i``, and a stride-1 block followed by nearest
upsampling when ``j`` is the lower-resolution neighbour. Upsampling goes to the target branch's actual size, so
odd input sizes work. A branch the previous stage did not have is made from the fused output of branch
``i - 1`` by a stride-2 block, without a further activation.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import StageSpec
from .block import MixedKernelBlock, make_act

__all__ = ["HRStage"]


class HRStage(nn.Module):
    """Fusion from ``num_in`` branches to ``spec.num_branches`` branches, then one block stack per branch.

    Module paths follow :meth:`hrnas.Arch.named_blocks`: ``fuse.<dst>.<src>`` for fusion edges and
    ``branches.<b>.<n>`` for parallel blocks.
    """

    def __init__(self, spec: StageSpec, num_in: int, act: str = "relu", bn_kwargs: Optional[dict] = None) -> None:
        super().__init__()
        self.num_in = num_in
        fuse = [nn.ModuleDict() for _ in range(spec.num_branches)]
        for edge in spec.fuse:
            fuse[edge.dst][str(edge.src)] = MixedKernelBlock(edge.block, bn_kwargs)
        self.fuse = nn.ModuleList(fuse)
        # not in place: a residual-only block returns its input, which other edges still read
        self.fuse_act = make_act(act, inplace=False)
        self.branches = nn.ModuleList(
            nn.Sequential(*[MixedKernelBlock(b, bn_kwargs) for b in stack]) for stack in spec.branches
        )
        self.live = [True] * spec.num_branches

    def prune_outputs(self, keep: Sequence[int]) -> List[int]:
        """Remove every output branch not in ``keep`` (feature extraction that reads only some branches).

        A removed output yields a placeholder tensor that nothing downstream reads. Returns the input branches
        the kept outputs still need, for pruning the previous stage the same way.
        """
        live = set(keep)
        for dst in sorted(live, reverse=True):
            if dst >= self.num_in:  # a new branch is made from the fused output of the branch above it
                live.add(dst - 1)
        needed = set()
        for dst, edges in enumerate(self.fuse):
            if dst not in live:
                self.fuse[dst] = nn.ModuleDict()
                self.branches[dst] = nn.Sequential()
            elif dst < self.num_in:
                needed.update(int(src) for src in edges.keys())
        self.live = [dst in live for dst in range(len(self.fuse))]
        return sorted(needed)

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        fused: List[torch.Tensor] = []
        for dst, edges in enumerate(self.fuse):
            if not self.live[dst]:
                fused.append(xs[0])  # pruned: a placeholder nothing reads
            elif dst < self.num_in:
                target = xs[dst]
                y: Optional[torch.Tensor] = None
                for key, block in edges.items():
                    src = int(key)
                    z = block(xs[src])
                    if src > dst:
                        z = F.interpolate(z, size=(target.shape[-2], target.shape[-1]), mode="nearest")
                    y = z if y is None else y + z
                assert y is not None
                fused.append(self.fuse_act(y))
            else:
                for block in edges.values():
                    fused.append(block(fused[dst - 1]))
        out: List[torch.Tensor] = []
        for b, stack in enumerate(self.branches):
            out.append(stack(fused[b]))
        return out
