"""``Arch``: the complete, serialisable description of one HR-NAS network.

An ``Arch`` is plain data (frozen dataclasses of ints, floats and strings). It is the one source of truth for
"what network is this": the model builder (:class:`hrnas.HRNASNet`) turns it into modules, the cost model
counts it, the search shrinks it, and it round-trips through JSON.

Topology (as the original code builds it): a stride-4 stem, then stages. Each stage is a *fusion step* from the
previous stage's branches to this stage's branches, followed by parallel stacks of blocks, one stack per branch. Branch
``b`` runs at stride ``4 * 2**b``. Fusion is neighbour-only: output branch ``i`` sums edges from input branches
``i - 1`` (stride-2 block), ``i`` (stride-1 block) and ``i + 1`` (stride-1 block, then nearest upsampling), and a
branch that did not exist before is made from the fused output of branch ``i - 1`` by a stride-2 block. Every
edge and every parallel block is a :class:`BlockSpec`, and so is every block of the head.

Blocks are enumerated in one canonical order, the construction order of the original code, by
:meth:`Arch.named_blocks`; the names are the module paths in :class:`hrnas.HRNASNet`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .files import write_atomic

__all__ = [
    "ACTIVATIONS",
    "TASKS",
    "Arch",
    "ArchError",
    "BlockSpec",
    "ClsHeadSpec",
    "DenseHeadSpec",
    "FuseEdge",
    "StageSpec",
    "branch_hidden_channels",
    "branch_of",
]

ACTIVATIONS = ("relu", "swish")
TASKS = ("seg", "pose", "cls")
INITS = ("mnas", "heatmap")
ARCH_FORMAT = "hrnas-arch"
ARCH_VERSION = 1
STEM_STRIDE = 4
# The lightweight transformer's fixed shape (reference section 3): the map is pooled to a GRID x GRID grid, so every
# token is a GRID**2 = 64-d vector, and its feed-forward layers are FFN wide. Only the token count is searched.
TRANSFORMER_GRID = 8
TRANSFORMER_FFN = 64


class ArchError(ValueError):
    """A malformed architecture. The message names the offending field and value."""


def _fail(path: str, message: str) -> ArchError:
    return ArchError(f"{path}: {message}" if path else message)


# ----------------------------------------------------------------------------------------------------------
# Blocks


@dataclass(frozen=True)
class BlockSpec:
    """One mixed-kernel inverted-residual block (the search unit).

    Args:
        in_chs: input channels.
        out_chs: output channels.
        stride: 1 or 2 (applied by the depthwise convs and by the residual conv).
        kernels: depthwise kernel sizes, one path per kernel.
        channels: hidden (expanded) channels per kernel path; 0 removes that path. With no channels left the block
            is its residual alone.
        tokens: number of tokens of the lightweight transformer; 0 means no transformer.
        se_ratio: squeeze-excite width as a fraction of ``in_chs``; 0 means no SE.
        act: activation inside the block, ``'relu'`` or ``'swish'``.
    """

    in_chs: int
    out_chs: int
    stride: int = 1
    kernels: tuple[int, ...] = (3, 5, 7)
    channels: tuple[int, ...] = (0, 0, 0)
    tokens: int = 0
    se_ratio: float = 0.0
    act: str = "relu"

    @property
    def hidden(self) -> int:
        """Total hidden channels over all kernel paths."""
        return sum(self.channels)

    @property
    def has_identity(self) -> bool:
        """True when the residual is the identity (stride 1 and equal widths)."""
        return self.stride == 1 and self.in_chs == self.out_chs

    @property
    def paths(self) -> tuple[tuple[int, int], ...]:
        """``(kernel, channels)`` of the paths that exist (channels > 0), in order."""
        return tuple((k, c) for k, c in zip(self.kernels, self.channels) if c > 0)

    @property
    def se_chs(self) -> int:
        """Width of the squeeze-excite bottleneck (0 when there is no SE or no hidden channel)."""
        if self.se_ratio <= 0 or self.hidden == 0:
            return 0
        return max(1, int(round(self.in_chs * self.se_ratio)))

    def replace(self, **changes: Any) -> BlockSpec:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def pruned(self) -> BlockSpec:
        """Return a copy without the empty kernel paths."""
        kept = self.paths
        return self.replace(kernels=tuple(k for k, _ in kept), channels=tuple(c for _, c in kept))

    def to_dict(self) -> dict[str, Any]:
        return {
            "in": self.in_chs,
            "out": self.out_chs,
            "stride": self.stride,
            "kernels": list(self.kernels),
            "channels": list(self.channels),
            "tokens": self.tokens,
            "se": self.se_ratio,
            "act": self.act,
        }

    @classmethod
    def from_dict(cls, data: Any, path: str = "block") -> BlockSpec:
        d = _expect_mapping(data, path)
        spec = cls(
            in_chs=_get_int(d, "in", path),
            out_chs=_get_int(d, "out", path),
            stride=_get_int(d, "stride", path, default=1),
            kernels=_get_int_tuple(d, "kernels", path),
            channels=_get_int_tuple(d, "channels", path),
            tokens=_get_int(d, "tokens", path, default=0),
            se_ratio=_get_float(d, "se", path, default=0.0),
            act=_get_str(d, "act", path, default="relu"),
        )
        spec.validate(path)
        return spec

    def validate(self, path: str = "block") -> None:
        """Raise :class:`ArchError` naming the first invalid field."""
        for name in ("in_chs", "out_chs"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise _fail(f"{path}.{name}", f"must be a positive integer, got {value!r}")
        if self.stride not in (1, 2):
            raise _fail(f"{path}.stride", f"must be 1 or 2, got {self.stride!r}")
        if len(self.kernels) != len(self.channels):
            raise _fail(
                f"{path}.channels",
                f"needs one value per kernel ({len(self.kernels)} kernels {list(self.kernels)}), "
                f"got {len(self.channels)} values {list(self.channels)}",
            )
        for k in self.kernels:
            if not _is_int(k) or k < 1 or k % 2 == 0:
                raise _fail(f"{path}.kernels", f"kernel sizes must be odd positive integers, got {k!r}")
        if len(set(self.kernels)) != len(self.kernels):
            raise _fail(f"{path}.kernels", f"kernel sizes must be distinct, got {list(self.kernels)}")
        for c in self.channels:
            if not _is_int(c) or c < 0:
                raise _fail(f"{path}.channels", f"channel counts must be integers >= 0, got {c!r}")
        if not _is_int(self.tokens) or self.tokens < 0:
            raise _fail(f"{path}.tokens", f"must be an integer >= 0, got {self.tokens!r}")
        if not isinstance(self.se_ratio, (int, float)) or not 0 <= self.se_ratio <= 4:
            raise _fail(f"{path}.se", f"must be a ratio in [0, 4], got {self.se_ratio!r}")
        if self.act not in ACTIVATIONS:
            raise _fail(f"{path}.act", f"must be one of {ACTIVATIONS}, got {self.act!r}")


# ----------------------------------------------------------------------------------------------------------
# Stages


@dataclass(frozen=True)
class FuseEdge:
    """One fusion edge: ``block`` maps input branch ``src`` to output branch ``dst``.

    When ``dst`` is a branch the previous stage did not have, ``src == dst - 1`` and the edge reads the *fused*
    output of branch ``src`` (HRNet-style branch creation); otherwise it reads the previous stage's output.
    """

    dst: int
    src: int
    block: BlockSpec

    def to_dict(self) -> dict[str, Any]:
        return {"to": self.dst, "from": self.src, "block": self.block.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, path: str) -> FuseEdge:
        d = _expect_mapping(data, path)
        return cls(
            dst=_get_int(d, "to", path),
            src=_get_int(d, "from", path),
            block=BlockSpec.from_dict(_get(d, "block", path), f"{path}.block"),
        )


@dataclass(frozen=True)
class StageSpec:
    """A fusion step into ``widths`` branches followed by parallel block stacks, one per branch."""

    widths: tuple[int, ...]
    fuse: tuple[FuseEdge, ...]
    branches: tuple[tuple[BlockSpec, ...], ...]

    @property
    def num_branches(self) -> int:
        return len(self.widths)

    def to_dict(self) -> dict[str, Any]:
        return {
            "widths": list(self.widths),
            "fuse": [e.to_dict() for e in self.fuse],
            "branches": [[b.to_dict() for b in stack] for stack in self.branches],
        }

    @classmethod
    def from_dict(cls, data: Any, path: str) -> StageSpec:
        d = _expect_mapping(data, path)
        fuse = _expect_list(_get(d, "fuse", path), f"{path}.fuse")
        branches = _expect_list(_get(d, "branches", path), f"{path}.branches")
        return cls(
            widths=_get_int_tuple(d, "widths", path),
            fuse=tuple(FuseEdge.from_dict(e, f"{path}.fuse[{i}]") for i, e in enumerate(fuse)),
            branches=tuple(
                tuple(
                    BlockSpec.from_dict(b, f"{path}.branches[{i}][{j}]")
                    for j, b in enumerate(_expect_list(stack, f"{path}.branches[{i}]"))
                )
                for i, stack in enumerate(branches)
            ),
        )


def fuse_sources(num_in: int, num_out: int) -> list[tuple[int, int]]:
    """The ``(dst, src)`` pairs of a neighbour-only fusion step, in construction order."""
    pairs = []
    for dst in range(num_out):
        if dst < num_in:
            pairs.extend((dst, src) for src in (dst - 1, dst, dst + 1) if 0 <= src < num_in)
        else:
            pairs.append((dst, dst - 1))
    return pairs


# ----------------------------------------------------------------------------------------------------------
# Heads


@dataclass(frozen=True)
class DenseHeadSpec:
    """Segmentation / keypoint head: all branches upsampled to stride 4 and concatenated, ``block`` (the
    searchable transform, ``sum(widths) -> last_channel``), then a 1x1 classifier to ``num_classes``."""

    block: BlockSpec
    num_classes: int
    type: str = field(default="dense", init=False)

    @property
    def num_features(self) -> int:
        return self.block.out_chs

    def to_dict(self) -> dict[str, Any]:
        return {"type": "dense", "num_classes": self.num_classes, "block": self.block.to_dict()}


@dataclass(frozen=True)
class ClsHeadSpec:
    """HRNet-style classification head: ``incre[i]`` widens branch ``i``, ``down[i]`` (stride 2) chains the
    result down to the lowest resolution, a 1x1 conv widens to ``final_chs``, then pool, dropout, linear."""

    incre: tuple[BlockSpec, ...]
    down: tuple[BlockSpec, ...]
    final_chs: int
    num_classes: int
    dropout: float = 0.2
    type: str = field(default="cls", init=False)

    @property
    def num_features(self) -> int:
        return self.final_chs

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "cls",
            "num_classes": self.num_classes,
            "final_chs": self.final_chs,
            "dropout": self.dropout,
            "incre": [b.to_dict() for b in self.incre],
            "down": [b.to_dict() for b in self.down],
        }


HeadSpec = DenseHeadSpec | ClsHeadSpec


def _head_from_dict(data: Any, path: str) -> HeadSpec:
    d = _expect_mapping(data, path)
    kind = _get_str(d, "type", path)
    if kind == "dense":
        return DenseHeadSpec(
            block=BlockSpec.from_dict(_get(d, "block", path), f"{path}.block"),
            num_classes=_get_int(d, "num_classes", path),
        )
    if kind == "cls":
        incre = _expect_list(_get(d, "incre", path), f"{path}.incre")
        down = _expect_list(_get(d, "down", path), f"{path}.down")
        return ClsHeadSpec(
            incre=tuple(BlockSpec.from_dict(b, f"{path}.incre[{i}]") for i, b in enumerate(incre)),
            down=tuple(BlockSpec.from_dict(b, f"{path}.down[{i}]") for i, b in enumerate(down)),
            final_chs=_get_int(d, "final_chs", path),
            num_classes=_get_int(d, "num_classes", path),
            dropout=_get_float(d, "dropout", path, default=0.2),
        )
    raise _fail(f"{path}.type", f"must be 'dense' or 'cls', got {kind!r}")


# ----------------------------------------------------------------------------------------------------------
# The network


@dataclass(frozen=True)
class Arch:
    """A whole HR-NAS network: stem, stages, head and the settings shared by all layers.

    Args:
        task: ``'seg'``, ``'pose'`` or ``'cls'`` (selects defaults for losses and metrics; seg and pose share the
            dense head).
        stem: channels of the two stride-2 3x3 stem convs.
        stages: the stages, first to last.
        head: a :class:`DenseHeadSpec` or a :class:`ClsHeadSpec`.
        act: activation of the stem, of every fusion sum and of the classification head's final conv.
        bn_momentum: BatchNorm momentum (PyTorch convention).
        bn_eps: BatchNorm epsilon.
        init: weight initialisation, ``'mnas'`` (classification and segmentation) or ``'heatmap'`` (N(0, 0.001)
            convs, as the original keypoint model).
        zero_init_last: every block's last BatchNorm starts at gamma 0, so each block starts as its shortcut (as
            timm's ResNets); off in the original code (why on: ``benchmarks/results/from_scratch.md``).
        name: optional label, shown by :meth:`table` and :func:`hrnas.summary`.
    """

    task: str
    stem: tuple[int, int]
    stages: tuple[StageSpec, ...]
    head: HeadSpec
    act: str = "relu"
    bn_momentum: float = 0.01
    bn_eps: float = 1e-3
    init: str = "mnas"
    zero_init_last: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        self.validate()

    # -- structure ----------------------------------------------------------------------------------------

    @property
    def num_branches(self) -> int:
        """Number of branches of the last stage."""
        return self.stages[-1].num_branches

    @property
    def branch_widths(self) -> tuple[int, ...]:
        """Widths of the last stage's branches (what ``features_only`` returns after the stem)."""
        return self.stages[-1].widths

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def num_features(self) -> int:
        """Channels of ``forward_features``: ``last_channel`` (dense) or ``final_chs`` (cls)."""
        return self.head.num_features

    @property
    def is_dense(self) -> bool:
        return isinstance(self.head, DenseHeadSpec)

    @property
    def reduction(self) -> int:
        """Total stride of the deepest branch."""
        return STEM_STRIDE * 2 ** (self.num_branches - 1)

    def named_blocks(self) -> list[tuple[str, BlockSpec]]:
        """All blocks in construction order, named by their module path in :class:`hrnas.HRNASNet`."""
        out: list[tuple[str, BlockSpec]] = []
        for s, stage in enumerate(self.stages):
            out.extend((f"stages.{s}.fuse.{e.dst}.{e.src}", e.block) for e in stage.fuse)
            for b, stack in enumerate(stage.branches):
                out.extend((f"stages.{s}.branches.{b}.{n}", blk) for n, blk in enumerate(stack))
        if isinstance(self.head, DenseHeadSpec):
            out.append(("neck.block", self.head.block))
        else:
            out.extend((f"neck.incre.{i}", b) for i, b in enumerate(self.head.incre))
            out.extend((f"neck.down.{i}", b) for i, b in enumerate(self.head.down))
        return out

    def blocks(self) -> list[BlockSpec]:
        """All blocks in construction order (see :meth:`named_blocks`)."""
        return [b for _, b in self.named_blocks()]

    def block_input_strides(self) -> dict[str, int]:
        """Feature stride (relative to the input image) at which each block's *input* lives."""
        strides: dict[str, int] = {}
        for s, stage in enumerate(self.stages):
            for e in stage.fuse:
                # a new branch reads the fused output of branch src == dst - 1: same stride as an input branch
                strides[f"stages.{s}.fuse.{e.dst}.{e.src}"] = STEM_STRIDE * 2**e.src
            for b, stack in enumerate(stage.branches):
                for n in range(len(stack)):
                    strides[f"stages.{s}.branches.{b}.{n}"] = STEM_STRIDE * 2**b
        if isinstance(self.head, DenseHeadSpec):
            strides["neck.block"] = STEM_STRIDE
        else:
            for i in range(len(self.head.incre)):
                strides[f"neck.incre.{i}"] = STEM_STRIDE * 2**i
            for i in range(len(self.head.down)):
                strides[f"neck.down.{i}"] = STEM_STRIDE * 2**i
        return strides

    def with_blocks(self, blocks: Sequence[BlockSpec] | Mapping[str, BlockSpec]) -> Arch:
        """Return a copy with blocks replaced.

        Args:
            blocks: either a full list in :meth:`named_blocks` order, or a mapping from block name to its new
                spec (blocks not named keep their spec).
        """
        names = [n for n, _ in self.named_blocks()]
        if isinstance(blocks, Mapping):
            unknown = sorted(set(blocks) - set(names))
            if unknown:
                raise ArchError(f"with_blocks: unknown block names {unknown[:5]}")
            current = dict(self.named_blocks())
            new_list = [blocks.get(n, current[n]) for n in names]
        else:
            new_list = list(blocks)
            if len(new_list) != len(names):
                raise ArchError(f"with_blocks: expected {len(names)} blocks, got {len(new_list)}")
        it = iter(new_list)
        stages = []
        for stage in self.stages:
            fuse = tuple(dataclasses.replace(e, block=next(it)) for e in stage.fuse)
            branches = tuple(tuple(next(it) for _ in stack) for stack in stage.branches)
            stages.append(dataclasses.replace(stage, fuse=fuse, branches=branches))
        if isinstance(self.head, DenseHeadSpec):
            head: HeadSpec = dataclasses.replace(self.head, block=next(it))
        else:
            incre = tuple(next(it) for _ in self.head.incre)
            down = tuple(next(it) for _ in self.head.down)
            head = dataclasses.replace(self.head, incre=incre, down=down)
        return dataclasses.replace(self, stages=tuple(stages), head=head)

    def replace(self, **changes: Any) -> Arch:
        """Return a copy with top-level fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def with_num_classes(self, num_classes: int) -> Arch:
        """Return a copy whose classifier has ``num_classes`` outputs."""
        if num_classes == self.num_classes:
            return self
        return self.replace(head=dataclasses.replace(self.head, num_classes=num_classes))

    # -- validation ---------------------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise :class:`ArchError` naming the first invalid field and its value."""
        if self.task not in TASKS:
            raise _fail("task", f"must be one of {TASKS}, got {self.task!r}")
        if self.act not in ACTIVATIONS:
            raise _fail("act", f"must be one of {ACTIVATIONS}, got {self.act!r}")
        if self.init not in INITS:
            raise _fail("init", f"must be one of {INITS}, got {self.init!r}")
        if not isinstance(self.zero_init_last, bool):
            raise _fail("zero_init_last", f"must be true or false, got {self.zero_init_last!r}")
        if not isinstance(self.bn_momentum, (int, float)) or not 0 < self.bn_momentum <= 1:
            raise _fail("bn.momentum", f"must be in (0, 1], got {self.bn_momentum!r}")
        if not isinstance(self.bn_eps, (int, float)) or not self.bn_eps > 0:
            raise _fail("bn.eps", f"must be > 0, got {self.bn_eps!r}")
        if len(self.stem) != 2 or not all(_is_int(c) and c > 0 for c in self.stem):
            raise _fail("stem", f"must be two positive channel counts, got {list(self.stem)!r}")
        if not self.stages:
            raise _fail("stages", "at least one stage is needed")
        in_widths: tuple[int, ...] = (self.stem[1],)
        for s, stage in enumerate(self.stages):
            _validate_stage(stage, in_widths, f"stages[{s}]")
            in_widths = stage.widths
        _validate_head(self.head, self.task, in_widths)

    # -- serialisation ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`from_dict`)."""
        d: dict[str, Any] = {"format": ARCH_FORMAT, "version": ARCH_VERSION}
        if self.name:
            d["name"] = self.name
        d.update(
            task=self.task,
            act=self.act,
            bn={"momentum": self.bn_momentum, "eps": self.bn_eps},
            init=self.init,
            # written only when on, so that every architecture saved before it existed keeps its digest
            **({"zero_init_last": True} if self.zero_init_last else {}),
            stem=list(self.stem),
            stages=[s.to_dict() for s in self.stages],
            head=self.head.to_dict(),
        )
        return d

    @classmethod
    def from_dict(cls, data: Any) -> Arch:
        """Build from :meth:`to_dict` output, with errors that name the offending field."""
        d = _expect_mapping(data, "")
        fmt = d.get("format", ARCH_FORMAT)
        if fmt != ARCH_FORMAT:
            raise _fail("format", f"expected {ARCH_FORMAT!r}, got {fmt!r} (is this an hrnas architecture file?)")
        version = d.get("version", ARCH_VERSION)
        if version != ARCH_VERSION:
            raise _fail("version", f"this hrnas reads version {ARCH_VERSION}, got {version!r}; upgrade hrnas")
        bn = _expect_mapping(d.get("bn", {}), "bn")
        stages = _expect_list(_get(d, "stages", ""), "stages")
        stem = _get_int_tuple(d, "stem", "")
        if len(stem) != 2:
            raise _fail("stem", f"must be two positive channel counts, got {list(stem)!r}")
        return cls(
            task=_get_str(d, "task", ""),
            stem=(stem[0], stem[1]),
            stages=tuple(StageSpec.from_dict(s, f"stages[{i}]") for i, s in enumerate(stages)),
            head=_head_from_dict(_get(d, "head", ""), "head"),
            act=_get_str(d, "act", "", default="relu"),
            bn_momentum=_get_float(bn, "momentum", "bn", default=0.01),
            bn_eps=_get_float(bn, "eps", "bn", default=1e-3),
            init=_get_str(d, "init", "", default="mnas"),
            zero_init_last=d.get("zero_init_last", False),
            name=_get_str(d, "name", "", default=""),
        )

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def digest(self) -> str:
        """A short fingerprint of the network (its name left out): equal digests describe the same network, so a
        measurement recorded with one can be matched to the architecture it was made on."""
        return hashlib.sha256(self.replace(name="").to_json(indent=None).encode()).hexdigest()[:12]

    @classmethod
    def from_json(cls, text: str) -> Arch:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArchError(f"not valid JSON: {e}") from None
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON to ``path`` atomically (a temporary file renamed into place)."""
        write_atomic(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Arch:
        """Read an architecture JSON file (hrnas format)."""
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            raise ArchError(f"architecture file {os.fspath(path)!r} does not exist") from None
        try:
            return cls.from_json(text)
        except ArchError as e:
            raise ArchError(f"{os.fspath(path)}: {e}") from None

    @classmethod
    def coerce(cls, arch: Arch | Mapping[str, Any] | str | os.PathLike) -> Arch:
        """Accept an ``Arch``, its dict form, a JSON string or a path to a JSON file."""
        if isinstance(arch, Arch):
            return arch
        if isinstance(arch, Mapping):
            return cls.from_dict(arch)
        if isinstance(arch, (str, os.PathLike)):
            text = os.fspath(arch)
            if text.lstrip().startswith("{"):
                return cls.from_json(text)
            return cls.load(text)
        raise ArchError(f"expected an Arch, a dict, JSON text or a path, got {type(arch).__name__}")

    # -- the original release's format --------------------------------------------------------------------

    def with_original_blocks(self, entries: Sequence[Sequence[Any]]) -> Arch:
        """Apply an architecture list written by the original HR-NAS code (``checkpoint.json``).

        Each entry is ``[out, 1, stride, kernels_kept, channels_kept, expand]``, one per block in construction
        order (the order of :meth:`named_blocks`). ``self`` must be the supernet the entries were searched in;
        output widths and strides are checked against it.
        """
        named = self.named_blocks()
        if not isinstance(entries, Sequence) or len(entries) != len(named):
            n = len(entries) if isinstance(entries, Sequence) else type(entries).__name__
            raise ArchError(f"original architecture: expected {len(named)} block entries for this space, got {n}")
        new = [
            _original_block(blk, entry, f"original[{i}] ({name})")
            for i, ((name, blk), entry) in enumerate(zip(named, entries))
        ]
        return self.with_blocks(new)

    def to_original_blocks(self) -> list[list[Any]]:
        """The inverse of :meth:`with_original_blocks` (kernels with 0 channels are left out)."""
        out = []
        for blk in self.blocks():
            kept = blk.paths
            out.append([blk.out_chs, 1, blk.stride, [k for k, _ in kept], [c for _, c in kept], True])
        return out

    # -- human-readable -----------------------------------------------------------------------------------

    def table(self, block_macs: Mapping[str, int] | None = None) -> str:
        """A readable table of every block, with a column of MMACs per block when ``block_macs`` (by block name, as
        :func:`hrnas.cost.block_macs_table` gives) is passed. :func:`hrnas.summary` adds the costs."""
        return _table(self, block_macs)

    def __str__(self) -> str:
        return self.table()


def _table(arch: Arch, block_macs: Mapping[str, int] | None) -> str:
    blocks = arch.named_blocks()
    hidden = sum(b.hidden for b in arch.blocks())
    tokens = sum(b.tokens for b in arch.blocks())
    lines = []
    title = f"HR-NAS {arch.task} network" + (f" '{arch.name}'" if arch.name else "")
    lines.append(
        f"{title}: stem {arch.stem[0]},{arch.stem[1]} | {len(arch.stages)} stages | {len(blocks)} blocks | "
        f"act {arch.act} | {hidden} hidden channels | {tokens} tokens"
    )
    header = f"  {'block':<26} {'in->out':>9} {'s':>2}  {'kernels:channels':<26} {'tok':>4} {'se':>4}"
    if block_macs is not None:
        header += f" {'MMACs':>9}"
    lines.append(header)
    for name, b in blocks:
        kc = " ".join(f"{k}:{c}" for k, c in b.paths) or "(residual only)"
        row = f"  {name:<26} {f'{b.in_chs}->{b.out_chs}':>9} {b.stride:>2}  {kc:<26} {b.tokens:>4}"
        row += f" {b.se_ratio:>4.2g}"
        if block_macs is not None:
            row += f" {block_macs[name] / 1e6:>9.2f}"
        lines.append(row)
    head = arch.head
    if isinstance(head, DenseHeadSpec):
        lines.append(f"  head: dense, {head.block.out_chs} -> {head.num_classes} classes at stride 4")
    else:
        lines.append(
            f"  head: cls, {head.incre[-1].out_chs} -> {head.final_chs} -> {head.num_classes} classes, "
            f"dropout {head.dropout:g}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Validation of the topology


def _validate_stage(stage: StageSpec, in_widths: tuple[int, ...], path: str) -> None:
    n_in, n_out = len(in_widths), stage.num_branches
    if n_out < 1 or not all(_is_int(w) and w > 0 for w in stage.widths):
        raise _fail(f"{path}.widths", f"must be positive channel counts, got {list(stage.widths)!r}")
    if n_out < n_in:
        raise _fail(f"{path}.widths", f"a stage cannot drop branches ({n_in} in, {n_out} out)")
    expected = fuse_sources(n_in, n_out)
    got = [(e.dst, e.src) for e in stage.fuse]
    if got != expected:
        raise _fail(
            f"{path}.fuse",
            f"neighbour-only fusion from {n_in} to {n_out} branches needs edges (to, from) {expected} "
            f"in this order, got {got}",
        )
    for i, edge in enumerate(stage.fuse):
        src_w = in_widths[edge.src] if edge.dst < n_in else stage.widths[edge.src]
        want = (src_w, stage.widths[edge.dst], 2 if edge.src < edge.dst else 1)
        _check_block_shape(edge.block, want, f"{path}.fuse[{i}].block")
    if len(stage.branches) != n_out:
        raise _fail(f"{path}.branches", f"needs one block list per branch ({n_out}), got {len(stage.branches)}")
    for b, stack in enumerate(stage.branches):
        for n, blk in enumerate(stack):
            w = stage.widths[b]
            _check_block_shape(blk, (w, w, 1), f"{path}.branches[{b}][{n}]")


def _validate_head(head: HeadSpec, task: str, widths: tuple[int, ...]) -> None:
    if not _is_int(head.num_classes) or head.num_classes < 0:
        raise _fail("head.num_classes", f"must be an integer >= 0, got {head.num_classes!r}")
    if isinstance(head, DenseHeadSpec):
        if task == "cls":
            raise _fail("head.type", "task 'cls' needs a 'cls' head, got 'dense'")
        blk = head.block
        _check_block_shape(blk, (sum(widths), blk.out_chs, 1), "head.block")
        return
    if not isinstance(head, ClsHeadSpec):
        raise _fail("head", f"must be a DenseHeadSpec or ClsHeadSpec, got {type(head).__name__}")
    if len(head.incre) != len(widths):
        raise _fail("head.incre", f"needs one block per branch ({len(widths)}), got {len(head.incre)}")
    if len(head.down) != len(widths) - 1:
        raise _fail("head.down", f"needs {len(widths) - 1} blocks (branches - 1), got {len(head.down)}")
    for i, blk in enumerate(head.incre):
        _check_block_shape(blk, (widths[i], blk.out_chs, 1), f"head.incre[{i}]")
    for i, blk in enumerate(head.down):
        want = (head.incre[i].out_chs, head.incre[i + 1].out_chs, 2)
        _check_block_shape(blk, want, f"head.down[{i}]")
    if not _is_int(head.final_chs) or head.final_chs < 1:
        raise _fail("head.final_chs", f"must be a positive integer, got {head.final_chs!r}")
    if not isinstance(head.dropout, (int, float)) or not 0 <= head.dropout < 1:
        raise _fail("head.dropout", f"must be in [0, 1), got {head.dropout!r}")


def _check_block_shape(blk: BlockSpec, want: tuple[int, int, int], path: str) -> None:
    if not isinstance(blk, BlockSpec):
        raise _fail(path, f"must be a BlockSpec, got {type(blk).__name__}")
    blk.validate(path)
    for name, got, expected in zip(("in", "out", "stride"), (blk.in_chs, blk.out_chs, blk.stride), want):
        if got != expected:
            raise _fail(f"{path}.{name}", f"must be {expected} here (the topology fixes it), got {got}")


def _original_block(blk: BlockSpec, entry: Any, path: str) -> BlockSpec:
    """``blk`` with the kernels and channels of one entry of the original release's format."""
    if not isinstance(entry, Sequence) or len(entry) != 6:
        raise ArchError(f"{path}: expected [out, 1, stride, kernels, channels, expand], got {entry!r}")
    out, _, stride, kernels, channels, _expand = entry
    if out != blk.out_chs or stride != blk.stride:
        raise ArchError(f"{path}: out/stride {out}/{stride} do not match the space's {blk.out_chs}/{blk.stride}")
    if not isinstance(kernels, Sequence) or not isinstance(channels, Sequence):
        raise ArchError(f"{path}: kernels and channels must be lists, got {kernels!r} and {channels!r}")
    kept = dict(zip(kernels, channels))
    if len(kept) != len(kernels) or len(kernels) != len(channels):
        raise ArchError(f"{path}: kernels {kernels!r} and channels {channels!r} do not pair up")
    unknown = set(kept) - set(blk.kernels)
    if unknown:
        raise ArchError(f"{path}: kernel sizes {sorted(unknown)} are not in the space {list(blk.kernels)}")
    return blk.replace(channels=tuple(int(kept.get(k, 0)) for k in blk.kernels))


# ----------------------------------------------------------------------------------------------------------
# Parsing helpers: every error names the path of the field.


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _expect_mapping(data: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise _fail(path or "architecture", f"expected a JSON object, got {type(data).__name__} {data!r:.60}")
    return data


def _expect_list(data: Any, path: str) -> list[Any]:
    if not isinstance(data, (list, tuple)):
        raise _fail(path, f"expected a list, got {type(data).__name__} {data!r:.60}")
    return list(data)


_MISSING = object()


def _get(d: Mapping[str, Any], key: str, path: str, default: Any = _MISSING) -> Any:
    if key in d:
        return d[key]
    if default is _MISSING:
        raise _fail(_join(path, key), "missing required field")
    return default


def _get_int(d: Mapping[str, Any], key: str, path: str, default: Any = _MISSING) -> int:
    v = _get(d, key, path, default)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not _is_int(v):
        raise _fail(_join(path, key), f"must be an integer, got {v!r}")
    return v


def _get_float(d: Mapping[str, Any], key: str, path: str, default: Any = _MISSING) -> float:
    v = _get(d, key, path, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _fail(_join(path, key), f"must be a finite number, got {v!r}")
    return float(v)


def _get_str(d: Mapping[str, Any], key: str, path: str, default: Any = _MISSING) -> str:
    v = _get(d, key, path, default)
    if not isinstance(v, str):
        raise _fail(_join(path, key), f"must be a string, got {v!r}")
    return v


def _get_int_tuple(d: Mapping[str, Any], key: str, path: str) -> tuple[int, ...]:
    v = _expect_list(_get(d, key, path), _join(path, key))
    out = []
    for x in v:
        if isinstance(x, float) and x.is_integer():
            x = int(x)
        if not _is_int(x):
            raise _fail(_join(path, key), f"must be a list of integers, got {v!r}")
        out.append(x)
    return tuple(out)


_BRANCH_BLOCK = re.compile(r"stages\.\d+\.(?:fuse\.(\d+)\.\d+|branches\.(\d+)\.\d+)$")


def branch_of(block_name: str) -> int | None:
    """The branch (0 = stride 4) a block of :meth:`Arch.named_blocks` produces: a branch's own blocks and the fusion
    blocks into it; ``None`` for the head's blocks."""
    m = _BRANCH_BLOCK.match(block_name)
    return int(m.group(1) or m.group(2)) if m else None


def branch_hidden_channels(arch: Arch) -> list[int]:
    """Hidden (depthwise) channels of the blocks that produce each branch, highest resolution first: the branch's
    own blocks and the fusion blocks into it."""
    out = [0] * max(stage.num_branches for stage in arch.stages)
    for name, spec in arch.named_blocks():
        branch = branch_of(name)
        if branch is not None:
            out[branch] += spec.hidden
    return out
