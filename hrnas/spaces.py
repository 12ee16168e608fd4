"""Search-space presets: the paper's supernets and small spaces for CPU demos and tests.

A :class:`SearchSpace` is a compact, frozen description (widths, blocks per branch, kernels, expansion, head,
transformer placement). :meth:`SearchSpace.supernet` expands it into the full-width :class:`hrnas.Arch`: every
block with every kernel path at ``expand_ratio * in_chs`` hidden channels and, where the space places them,
transformers with ``max_tokens`` tokens. The search only ever removes units from that network.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .arch import Arch, ArchError, BlockSpec, ClsHeadSpec, DenseHeadSpec, FuseEdge, StageSpec, fuse_sources

__all__ = ["SearchSpace", "get_space", "list_spaces", "SPACES"]

TRANSFORMER_PLACEMENTS = ("identity", "all", "none")


@dataclass(frozen=True)
class SearchSpace:
    """A family of HR-NAS networks, described by its full-width supernet.

    Args:
        name: preset name.
        task: ``'seg'``, ``'pose'`` or ``'cls'``.
        description: one line for listings.
        stages: per stage, the number of blocks of each branch (the number of branches is its length).
        widths: per stage, the width of each branch.
        stem: channels of the two stride-2 stem convs.
        kernels: depthwise kernel sizes of every block.
        expand_ratio: hidden channels per kernel path = ``round(in_chs * expand_ratio)``.
        head_expand_ratio: the same for the dense head's block (default ``expand_ratio``); that block takes every
            branch at stride 4, so a smaller ratio keeps the supernet cheap to train.
        num_classes: default number of classes (or keypoints).
        last_channel: output width of the dense head's block (dense tasks).
        head_chs: widths of the classification head's increase blocks (cls task).
        final_chs: width of the classification head's final 1x1 conv (cls task).
        dropout: classifier dropout (cls task).
        max_tokens: tokens of each transformer in the supernet.
        transformers: where transformers go: ``'identity'`` (every block with an identity residual, the
            default), ``'all'`` (every block) or ``'none'``.
        act, bn_momentum, bn_eps, init, zero_init_last: as in :class:`hrnas.Arch`.
        input_size: the reference resolution (height, width) the space's costs are usually quoted at.
    """

    name: str
    task: str
    description: str
    stages: tuple[tuple[int, ...], ...]
    widths: tuple[tuple[int, ...], ...]
    stem: tuple[int, int] = (24, 24)
    kernels: tuple[int, ...] = (3, 5, 7)
    expand_ratio: float = 4.0
    head_expand_ratio: float | None = None
    num_classes: int = 1000
    last_channel: int = 90
    head_chs: tuple[int, ...] = (36, 72, 144, 320)
    final_chs: int = 1600
    dropout: float = 0.2
    max_tokens: int = 64
    transformers: str = "identity"
    act: str = "relu"
    bn_momentum: float = 0.01
    bn_eps: float = 1e-3
    init: str = "mnas"
    zero_init_last: bool = False
    input_size: tuple[int, int] = (224, 224)

    def replace(self, **changes) -> SearchSpace:
        """Return a copy with some fields changed (for example a different ``num_classes``)."""
        return dataclasses.replace(self, **changes)

    def _block(
        self, in_chs: int, out_chs: int, stride: int, placement: str, tokens: int, expand: float | None = None
    ) -> BlockSpec:
        hidden = int(round(in_chs * (self.expand_ratio if expand is None else expand)))
        has_identity = stride == 1 and in_chs == out_chs
        with_tokens = placement == "all" or (placement == "identity" and has_identity)
        return BlockSpec(
            in_chs=in_chs,
            out_chs=out_chs,
            stride=stride,
            kernels=tuple(self.kernels),
            channels=tuple(hidden for _ in self.kernels),
            tokens=tokens if with_tokens else 0,
            act=self.act,
        )

    def supernet(
        self,
        *,
        num_classes: int | None = None,
        transformers: bool | str = True,
        tokens: int | None = None,
    ) -> Arch:
        """The full-width network of this space.

        Args:
            num_classes: override the space's number of classes.
            transformers: ``True`` uses the space's placement, ``False`` builds none, or a placement name
                (``'identity'``, ``'all'``, ``'none'``).
            tokens: tokens per transformer (default ``max_tokens``).
        """
        if transformers is True:
            placement = self.transformers
        elif transformers is False:
            placement = "none"
        else:
            placement = transformers
        if placement not in TRANSFORMER_PLACEMENTS:
            raise ArchError(f"transformers: must be True, False or one of {TRANSFORMER_PLACEMENTS}, got {placement!r}")
        n_tok = self.max_tokens if tokens is None else tokens
        if len(self.stages) != len(self.widths):
            raise ArchError(f"space {self.name}: stages and widths must have one entry per stage")

        stages = []
        in_widths: tuple[int, ...] = (self.stem[1],)
        for s, (depths, widths) in enumerate(zip(self.stages, self.widths)):
            if len(depths) != len(widths):
                raise ArchError(f"space {self.name}: stage {s} has {len(depths)} depths but {len(widths)} widths")
            fuse = []
            for dst, src in fuse_sources(len(in_widths), len(widths)):
                src_w = in_widths[src] if dst < len(in_widths) else widths[src]
                stride = 2 if src < dst else 1
                fuse.append(FuseEdge(dst, src, self._block(src_w, widths[dst], stride, placement, n_tok)))
            branches = tuple(
                tuple(self._block(w, w, 1, placement, n_tok) for _ in range(d)) for d, w in zip(depths, widths)
            )
            stages.append(StageSpec(widths=tuple(widths), fuse=tuple(fuse), branches=branches))
            in_widths = tuple(widths)

        n_cls = self.num_classes if num_classes is None else num_classes
        if self.task == "cls":
            if len(self.head_chs) != len(in_widths):
                raise ArchError(f"space {self.name}: head_chs needs one width per branch ({len(in_widths)})")
            incre = tuple(self._block(w, h, 1, placement, n_tok) for w, h in zip(in_widths, self.head_chs))
            down = tuple(
                self._block(self.head_chs[i], self.head_chs[i + 1], 2, placement, n_tok)
                for i in range(len(self.head_chs) - 1)
            )
            head = ClsHeadSpec(incre, down, self.final_chs, n_cls, self.dropout)
        else:
            block = self._block(sum(in_widths), self.last_channel, 1, placement, n_tok, self.head_expand_ratio)
            head = DenseHeadSpec(block, n_cls)
        return Arch(
            task=self.task,
            stem=self.stem,
            stages=tuple(stages),
            head=head,
            act=self.act,
            bn_momentum=self.bn_momentum,
            bn_eps=self.bn_eps,
            init=self.init,
            zero_init_last=self.zero_init_last,
            name=f"supernet_{self.name}",
        )


# The paper's supernet body (reference/hrnas_original_code.md section 2.1), shared by every task.
_PAPER_STAGES = ((1,), (2, 2), (2, 2, 3), (2, 2, 3, 4), (2, 2, 3, 4))
_PAPER_WIDTHS = ((24,), (18, 36), (18, 36, 72), (18, 36, 72, 144), (18, 36, 72, 144))

# A small body with the same topology (4 branches, strides 4..32) for CPU demos and tests.
_TINY_STAGES = ((1,), (1, 1), (1, 1, 1), (1, 1, 1, 1))
_TINY_WIDTHS = ((16,), (12, 24), (12, 24, 48), (12, 24, 48, 96))


# For latency-targeted search on CPUs (the cpu zoo line): the paper's topology at small widths with two blocks per
# branch and stage (the search removes whole blocks where their fixed time is worth more than their channels, so
# depth is searched too), channel counts that are multiples of 16, no transformers (at the small resolutions these
# spaces are for, a transformer's fixed time outweighs a block's: benchmarks/results/cpu_shapes.md), a dense head
# whose block keeps no hidden channels (the head is then the branches' concatenation projected to the classes, so
# the latency a search meets is, within a few per cent, the backbone's, which is what a user of features_only
# runs), and the BatchNorm settings the from-scratch study chose (benchmarks/results/from_scratch.md).
_CPU_STAGES = ((1,), (2, 2), (2, 2, 2), (2, 2, 2, 2))
_CPU_WIDTHS = ((16,), (16, 32), (16, 32, 64), (16, 32, 64, 128))


def _cpu(name: str, task: str, description: str, **kwargs) -> SearchSpace:
    kwargs = {"stem": (16, 16), "head_expand_ratio": 0.0, "transformers": "none", "bn_momentum": 0.1,
              "bn_eps": 1e-5, "zero_init_last": True, "input_size": (128, 128), **kwargs}  # fmt: skip
    return SearchSpace(name, task, description, stages=_CPU_STAGES, widths=_CPU_WIDTHS, **kwargs)


def _paper(name: str, task: str, description: str, **kwargs) -> SearchSpace:
    return SearchSpace(name, task, description, stages=_PAPER_STAGES, widths=_PAPER_WIDTHS, **kwargs)


def _tiny(name: str, task: str, description: str, **kwargs) -> SearchSpace:
    kwargs = {"stem": (16, 16), "expand_ratio": 2.0, "max_tokens": 16, **kwargs}
    return SearchSpace(name, task, description, stages=_TINY_STAGES, widths=_TINY_WIDTHS, **kwargs)


_ALL = (
    _paper(
        "seg", "seg", "paper segmentation supernet, Cityscapes settings (19 classes, last_channel 90)",
        num_classes=19, last_channel=90, input_size=(512, 1024),
    ),
    _paper(
        "seg_ade", "seg", "paper segmentation supernet, ADE20K settings (150 classes, last_channel 180)",
        num_classes=150, last_channel=180, input_size=(512, 512),
    ),
    _paper(
        "pose", "pose", "paper keypoint supernet, COCO settings (17 heatmaps, last_channel 90)",
        num_classes=17, last_channel=90, bn_momentum=0.1, bn_eps=1e-5, init="heatmap", input_size=(256, 192),
    ),
    _paper(
        "cls", "cls", "paper ImageNet supernet (1000 classes, head 36/72/144/320 -> 1600)",
        num_classes=1000, head_chs=(36, 72, 144, 320), final_chs=1600, dropout=0.2, input_size=(224, 224),
    ),
    _tiny(
        "seg_tiny", "seg", "small segmentation space for CPU demos (Fashion-MNIST scenes: 11 classes, 64x64)",
        num_classes=11, last_channel=32, input_size=(64, 64),
    ),
    _tiny(
        "pose_tiny", "pose", "small keypoint space for CPU demos and tests (17 heatmaps, 64x48)",
        num_classes=17, last_channel=32, bn_momentum=0.1, bn_eps=1e-5, init="heatmap", input_size=(64, 48),
    ),
    _cpu(
        "seg_cpu", "seg", "CPU-latency segmentation space (widths 16-128, 2 blocks per branch; 11 classes, 128x128)",
        num_classes=11, last_channel=32,
    ),
    _cpu(
        "pose_cpu", "pose", "CPU-latency keypoint space (widths 16-128, 2 blocks per branch; 17 heatmaps, 128x128)",
        num_classes=17, last_channel=32, init="heatmap",
    ),
    _tiny(
        "cls_tiny", "cls", "small classification space for CPU demos (Fashion-MNIST: 10 classes, 32x32)",
        num_classes=10, head_chs=(16, 32, 64, 128), final_chs=256, dropout=0.1, input_size=(32, 32),
    ),
)  # fmt: skip

SPACES: Mapping[str, SearchSpace] = MappingProxyType({space.name: space for space in _ALL})


def list_spaces() -> list[str]:
    """Names of the search-space presets."""
    return list(SPACES)


def get_space(name: str | SearchSpace) -> SearchSpace:
    """Look up a preset by name (a :class:`SearchSpace` passes through)."""
    if isinstance(name, SearchSpace):
        return name
    try:
        return SPACES[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(SPACES), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ArchError(f"unknown search space {name!r}.{hint} Available: {', '.join(SPACES)}.") from None
