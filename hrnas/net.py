"""``HRNASNet``: any :class:`hrnas.Arch` built as a static ``nn.Module`` with the full timm model protocol.

The supernet and every searched network are this same class: a supernet is built from a space's full-width
``Arch``, a searched model from a smaller one. Widths are plain Python ints fixed at construction (no masks,
no slicing), so FX, ``torch.compile``, export and FLOP counters all see an ordinary static network.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any, List, Optional, Tuple, Union

import torch
from timm.layers import ClassifierHead
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint
from torch import nn

from .arch import Arch, ClsHeadSpec, DenseHeadSpec
from .layers import (
    TOKEN_UNITS,
    ClsNeck,
    ConvBnAct,
    DenseHead,
    DenseNeck,
    HRStage,
    LightweightTransformer,
    MixedKernelBlock,
    PrunedNeck,
)

__all__ = ["HRNASNet", "check_input"]


def check_input(x: torch.Tensor, in_chans: int, min_size: int) -> None:
    """Raise a clear error for a tensor the network cannot take (wrong rank, channels or size)."""
    if x.dim() != 4:
        raise ValueError(f"expected a 4-D input (batch, channels, height, width), got shape {list(x.shape)}")
    if x.shape[1] != in_chans:
        raise ValueError(
            f"expected {in_chans} input channels, got {x.shape[1]} (input shape {list(x.shape)}); "
            f"create the model with in_chans={x.shape[1]} or convert the images to {in_chans} channels"
        )
    if x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(
            f"input {x.shape[2]}x{x.shape[3]} is smaller than this network's minimum {min_size}x{min_size} "
            f"(its deepest branch runs at stride {min_size}); resize or pad the images to at least that"
        )


# A leaf for FX tracing: the checks read concrete shapes, which symbolic tracing does not have.
torch.fx.wrap("check_input")


class HRNASNet(nn.Module):
    """A high-resolution multi-branch network built from an :class:`hrnas.Arch`.

    Args:
        arch: the architecture: an ``Arch``, its dict form, JSON text or a path to a JSON file.
        num_classes: classifier outputs; default from the arch. ``0`` removes the classifier.
        in_chans: input image channels.
        global_pool: pooling of classification models (``'avg'``, ``'max'``, ``''`` for none...). Dense models
            never pool and accept only ``''`` or ``None``.
        drop_rate: classifier dropout of classification models; default from the arch.
        zero_init_last: start each block's last BatchNorm at 0 (:attr:`hrnas.Arch.zero_init_last`); default from the
            arch. Worth turning on to train a network from scratch (``benchmarks/results/from_scratch.md``).

    Dense models (``seg``/``pose``) return stride-4 logits ``(B, num_classes, H/4, W/4)`` from ``forward``;
    ``forward_features`` returns the stride-4 map their classifier consumes. ``features_only`` /
    ``forward_intermediates`` give the stem output at stride 2 and the four raw branch outputs at strides 4, 8,
    16 and 32.
    """

    __jit_unused_properties__ = ["is_dense"]

    def __init__(
        self,
        arch: Union[Arch, Mapping[str, Any], str, os.PathLike],
        num_classes: Optional[int] = None,
        in_chans: int = 3,
        global_pool: Optional[str] = None,
        drop_rate: Optional[float] = None,
        zero_init_last: Optional[bool] = None,
    ) -> None:
        super().__init__()
        arch = Arch.coerce(arch)
        if zero_init_last is not None:
            arch = arch.replace(zero_init_last=zero_init_last)
        if num_classes is not None:
            arch = arch.with_num_classes(int(num_classes))
        if drop_rate is not None:
            if not isinstance(arch.head, ClsHeadSpec):
                raise ValueError("drop_rate applies to classification models only; dense models have no dropout")
            arch = arch.replace(head=dataclasses.replace(arch.head, dropout=float(drop_rate)))
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")
        self.arch = arch
        self.in_chans = in_chans
        self.num_classes = arch.num_classes
        self.min_input_size = arch.reduction
        self.grad_checkpointing = False
        bn_kwargs = dict(momentum=arch.bn_momentum, eps=arch.bn_eps)

        c0, c1 = arch.stem
        self.stem = nn.Sequential(
            ConvBnAct(in_chans, c0, 3, 2, act=arch.act, bn_kwargs=bn_kwargs),
            ConvBnAct(c0, c1, 3, 2, act=arch.act, bn_kwargs=bn_kwargs),
        )
        stages = []
        num_in = 1
        for spec in arch.stages:
            stages.append(HRStage(spec, num_in, arch.act, bn_kwargs))
            num_in = spec.num_branches
        self.stages = nn.ModuleList(stages)

        self.num_features = self.head_hidden_size = arch.num_features
        if isinstance(arch.head, DenseHeadSpec):
            if global_pool:
                raise ValueError(
                    f"global_pool={global_pool!r}: dense ({arch.task}) models return maps and never pool; "
                    "leave global_pool unset or pass ''"
                )
            self.global_pool = ""
            self.neck: nn.Module = DenseNeck(arch.head, bn_kwargs)
            self.head: nn.Module = DenseHead(self.num_features, self.num_classes)
        else:
            self.global_pool = "avg" if global_pool is None else global_pool
            self.neck = ClsNeck(arch.head, arch.act, bn_kwargs)
            self.head = ClassifierHead(
                self.num_features, self.num_classes, pool_type=self.global_pool, drop_rate=arch.head.dropout
            )

        last = len(arch.stages) - 1
        self.feature_info = [dict(num_chs=c0, reduction=2, module="stem.0")] + [
            dict(num_chs=w, reduction=4 * 2**b, module=f"stages.{last}.branches.{b}")
            for b, w in enumerate(arch.branch_widths)
        ]
        self._init_weights()

    # -- construction helpers -----------------------------------------------------------------------------

    def _init_weights(self) -> None:
        """The original code's initialisation: MnasNet-style (cls, seg) or N(0, 0.001) convs (keypoints).

        Transformers keep their own Xavier initialisation.
        """
        skip = set()
        for m in self.modules():
            if isinstance(m, LightweightTransformer):
                skip.update(id(s) for s in m.modules())
        heatmap = self.arch.init == "heatmap"
        for m in self.modules():
            if id(m) in skip:
                continue
            if isinstance(m, nn.Conv2d):
                if heatmap:
                    nn.init.normal_(m.weight, std=0.001)
                else:
                    # the original treats any conv with groups == in_channels as depthwise: fan_out = k * k
                    if m.groups == m.in_channels:
                        fan_out = m.weight[0][0].numel()
                    else:
                        fan_out = m.weight.shape[0] * m.weight[0][0].numel()
                    nn.init.normal_(m.weight, 0.0, nn.init.calculate_gain("relu") / math.sqrt(fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and not heatmap:
                bound = 1.0 / math.sqrt(m.weight.shape[0])
                nn.init.uniform_(m.weight, -bound, bound)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.arch.zero_init_last:
            for m in self.modules():
                if isinstance(m, MixedKernelBlock) and m.bn3 is not None:
                    nn.init.zeros_(m.bn3.weight)

    # -- timm protocol: introspection ---------------------------------------------------------------------

    @property
    def is_dense(self) -> bool:
        """True for segmentation / keypoint models (stride-4 map outputs)."""
        return isinstance(self.arch.head, DenseHeadSpec)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups for layer-wise learning-rate decay: stem, one group per stage, then the neck."""
        return dict(
            stem=r"^stem",
            blocks=r"^stages\.(\d+)" if coarse else [(r"^stages\.(\d+)", None), (r"^neck", (99999,))],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage in the backward pass instead of storing its activations."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        """The transformers' learned queries (embeddings are not decayed, as in the original)."""
        queries = TOKEN_UNITS.queries
        return {f"{n}.{queries}.weight" for n, m in self.named_modules() if isinstance(m, LightweightTransformer)}

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier with a fresh one with ``num_classes`` outputs (0: no classifier).

        Dense models change their number of output maps and never pool; ``reset_classifier(0)`` makes their
        ``forward`` return the pre-logit stride-4 map.
        """
        self.num_classes = num_classes
        self.arch = self.arch.with_num_classes(num_classes)
        if isinstance(self.head, DenseHead):
            if global_pool:
                raise ValueError(f"global_pool={global_pool!r}: dense models never pool; pass '' or None")
            self.head.reset(num_classes)
        else:
            if global_pool is not None:
                self.global_pool = global_pool
            self.head.reset(num_classes, pool_type=global_pool)

    # -- forward ------------------------------------------------------------------------------------------

    def _run_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        xs = [x]
        for stage in self.stages:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                xs = checkpoint(stage, xs)
            else:
                xs = stage(xs)
        return xs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The map the classifier consumes: stride 4 (dense) or stride 32 with ``final_chs`` channels (cls)."""
        check_input(x, self.in_chans, self.min_input_size)
        return self.neck(self._run_stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Features at strides 2 (stem), 4, 8, 16, 32 (the last stage's raw branches).

        Args:
            x: input images.
            indices: which of the ``1 + num_branches`` levels to return (``None``: all; int ``n``: last ``n``).
            norm: unused (no final norm in this family); accepted for the timm protocol.
            stop_early: stop after the stem when only the stem level is requested.
            output_fmt: only ``'NCHW'``.
            intermediates_only: return only the list of intermediates.

        Returns:
            ``(forward_features(x), intermediates)``, or ``intermediates`` alone.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt={output_fmt!r}: HR-NAS networks produce 'NCHW' features only")
        check_input(x, self.in_chans, self.min_input_size)
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        intermediates: List[torch.Tensor] = []
        x = self.stem[0](x)
        if 0 in take_indices:
            intermediates.append(x)
        if len(self.stages) == 0 or (stop_early and max_index == 0):
            return intermediates if intermediates_only else (x, intermediates)
        xs = self._run_stages(self.stem[1](x))
        for b, feat in enumerate(xs):
            if b + 1 in take_indices:
                intermediates.append(feat)
        if intermediates_only:
            return intermediates
        return self.neck(xs), intermediates

    def prune_intermediate_layers(
        self,
        indices: Union[int, List[int]] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> List[int]:
        """Remove what the requested feature levels do not need, so that every kept parameter is used.

        With ``prune_head`` the neck and classifier go, and so does every branch no requested level depends on
        (through the neighbour-only fusion, a branch feeds at most its neighbours in the next stage).
        """
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        if prune_head:
            self.neck = PrunedNeck()
            self.reset_classifier(0, "" if not self.is_dense else None)
            if max_index == 0:  # only the stem's first conv is wanted
                self.stages = nn.ModuleList()
                self.stem = self.stem[:1]
            else:
                keep = [i - 1 for i in take_indices if i > 0]  # level i is branch i - 1 of the last stage
                for stage in reversed(list(self.stages)):
                    keep = stage.prune_outputs(keep)
        return take_indices
