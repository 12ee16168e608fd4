"""Heads of HR-NAS networks.

Each task's head is split the way timm splits models: a *neck* that ``forward_features`` runs (it turns the
branch list into one map) and a *head* that ``forward_head`` runs (the classifier).

- Dense (segmentation, keypoints): :class:`DenseNeck` upsamples every branch to stride 4, concatenates them and
  applies one searchable block (``270 -> last_channel`` in the paper); :class:`DenseHead` is a 1x1 conv to the
  class (or heatmap) channels. Logits stay at stride 4, as in the paper; losses upsample them.
- Classification: :class:`ClsNeck` is HRNet's head (increase each branch's width, chain the branches down with
  stride-2 blocks, a 1x1 conv to ``final_chs``); timm's ``ClassifierHead`` pools, drops out and classifies.
"""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import ClsHeadSpec, DenseHeadSpec
from .block import ConvBnAct, MixedKernelBlock

__all__ = ["ClsNeck", "DenseHead", "DenseNeck", "PrunedNeck"]


class DenseNeck(nn.Module):
    """Upsample all branches to the first (stride 4) branch's size, concatenate, apply ``block``."""

    def __init__(self, spec: DenseHeadSpec, bn_kwargs: Optional[dict] = None) -> None:
        super().__init__()
        self.block = MixedKernelBlock(spec.block, bn_kwargs)

    def forward(self, xs: List[torch.Tensor]) -> torch.Tensor:
        h, w = xs[0].shape[-2], xs[0].shape[-1]
        maps = [xs[0]]
        for x in xs[1:]:
            maps.append(F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False))
        return self.block(torch.cat(maps, dim=1))


class DenseHead(nn.Module):
    """1x1 conv classifier on a dense map (``num_classes == 0``: identity)."""

    def __init__(self, in_chs: int, num_classes: int) -> None:
        super().__init__()
        self.in_chs = in_chs
        self.fc: nn.Module = nn.Conv2d(in_chs, num_classes, 1) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Conv2d(self.in_chs, num_classes, 1) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.fc(x)


class ClsNeck(nn.Module):
    """HRNet-style classification neck: ``y = incre[i+1](x[i+1]) + down[i](y)``, then a 1x1 ConvBnAct."""

    def __init__(self, spec: ClsHeadSpec, act: str = "relu", bn_kwargs: Optional[dict] = None) -> None:
        super().__init__()
        self.incre = nn.ModuleList(MixedKernelBlock(b, bn_kwargs) for b in spec.incre)
        self.down = nn.ModuleList(MixedKernelBlock(b, bn_kwargs) for b in spec.down)
        self.final = ConvBnAct(spec.incre[-1].out_chs, spec.final_chs, 1, act=act, bn_kwargs=bn_kwargs)

    def forward(self, xs: List[torch.Tensor]) -> torch.Tensor:
        widened = [incre(xs[i]) for i, incre in enumerate(self.incre)]
        y = widened[0]
        for i, down in enumerate(self.down):
            y = widened[i + 1] + down(y)
        return self.final(y)


class PrunedNeck(nn.Module):
    """Stands in for a neck removed by ``prune_intermediate_layers``; only ``forward_intermediates`` works."""

    def forward(self, xs: List[torch.Tensor]) -> torch.Tensor:
        raise RuntimeError(
            "this model's head was pruned for feature extraction (prune_intermediate_layers); "
            "call forward_intermediates(x, intermediates_only=True) instead"
        )
