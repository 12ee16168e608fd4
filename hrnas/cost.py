"""Counting: MACs and parameters of a network, analytically from the integers of an ``Arch``.

Convention (docs/conventions.md): ``'paper'``. "FLOPs" in HR-NAS and most NAS papers are multiply-accumulates
(MACs), and so are all numbers here. Convolutions, linear layers and the attention matmuls (``q @ k^T`` and
``attn @ v``) count; BatchNorm, LayerNorm, activations, resizes, pooling and additions count zero. This matches the
original HR-NAS counter for everything but its quirks (it misses the transformer's feed-forward and decoder
attention, counts the SE's pooling, and skips the retrain block's residual convs), so it is the number to compare
with the paper.

The per-unit functions (:func:`channel_macs`, :func:`token_macs`, :func:`channel_params`, :func:`token_params`) are
the cost of one hidden channel or one token; the whole-block counts are assembled from them, and the search weights
its penalty with them (:mod:`hrnas.searching.units`). :func:`hrnas.profile` (:mod:`hrnas.profiling`) traces a real
module with fvcore and is the ground truth these numbers are tested against.
"""

from __future__ import annotations

import math

from ._size import pair
from .arch import TRANSFORMER_FFN, TRANSFORMER_GRID, Arch, BlockSpec, ClsHeadSpec, DenseHeadSpec

__all__ = [
    "block_input_sizes",
    "block_macs",
    "block_macs_table",
    "block_params",
    "channel_macs",
    "channel_params",
    "count_macs",
    "count_params",
    "feature_sizes",
    "summary",
    "token_macs",
    "token_params",
    "transformer_macs",
    "transformer_params",
]

# The lightweight transformer's tokens are the flattened grid (hrnas.arch.TRANSFORMER_GRID); a 64-d vector each.
TOKEN_DIM = TRANSFORMER_GRID * TRANSFORMER_GRID


def feature_sizes(input_size: int | tuple[int, int], levels: int = 6) -> list[tuple[int, int]]:
    """Spatial size at stride ``2**k`` for ``k = 0..levels-1`` (every stride-2 op rounds up, like the convs)."""
    h, w = pair(input_size)
    sizes = [(h, w)]
    for _ in range(levels - 1):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
        sizes.append((h, w))
    return sizes


# ----------------------------------------------------------------------------------------------------------
# Per unit: one hidden channel of a kernel path, one token of a transformer


def channel_macs(spec: BlockSpec, input_hw: tuple[int, int]) -> tuple[int, ...]:
    """MACs of one hidden channel of each existing kernel path of ``spec`` (in the order of ``spec.paths``), whose
    input is ``input_hw`` pixels: its row of the 1x1 expansion, its depthwise filter, its column of the 1x1
    projection and its SE weights. A block's hidden channels cost exactly the sum of these."""
    h, w = input_hw
    ho, wo = math.ceil(h / spec.stride), math.ceil(w / spec.stride)
    return tuple(
        spec.in_chs * h * w + k * k * ho * wo + spec.out_chs * ho * wo + 2 * spec.se_chs for k, _ in spec.paths
    )


def token_macs(in_chs: int, out_chs: int) -> tuple[int, int]:
    """``(linear, quadratic)``: the ``L``-th token of a transformer from ``in_chs`` to ``out_chs`` channels costs
    ``linear + quadratic * (2L - 1)`` MACs, so ``L`` tokens cost ``L * linear + quadratic * L**2``.

    ``linear``: the token's share of the input and back projections (``64 * (in + 2)`` and ``64 * out``) and of the
    encoder's and decoder's q/k/v/out projections (``4 * 64^2`` each) and feed-forward (``2 * 64 * ffn`` each);
    ``quadratic``: the attention matmuls, ``2 * L^2 * 64`` in each of the two layers.
    """
    d = TOKEN_DIM
    return d * (in_chs + 2 + out_chs) + 2 * (4 * d * d + 2 * d * TRANSFORMER_FFN), 4 * d


def channel_params(spec: BlockSpec) -> tuple[int, ...]:
    """Parameters of one hidden channel of each existing kernel path (expansion row, BatchNorms, depthwise filter,
    projection column, SE weights). A block's hidden channels cost their sum plus the projection's BatchNorm and the
    SE's bias (``2 * out + se_chs``), which go with the last channel."""
    r = spec.se_chs
    return tuple(spec.in_chs + k * k + spec.out_chs + 4 + (2 * r + 1 if r else 0) for k, _ in spec.paths)


def token_params(in_chs: int, out_chs: int) -> tuple[int, int]:
    """``(linear, quadratic)`` as in :func:`token_macs`: parameters of one token (its input projection row, its
    BatchNorm, its query embedding and back-projection column; none are quadratic). A transformer costs its tokens
    plus the encoder's and decoder's own weights and the back projection's BatchNorm, which go with the last
    token."""
    return in_chs + 2 + 2 + TOKEN_DIM + out_chs, 0


# ----------------------------------------------------------------------------------------------------------
# Blocks and networks


def transformer_macs(in_chs: int, out_chs: int, tokens: int) -> int:
    """MACs of a lightweight transformer with ``tokens`` tokens; independent of the input's height and width (the
    sum of its tokens' costs, :func:`token_macs`)."""
    if tokens <= 0:
        return 0
    linear, quadratic = token_macs(in_chs, out_chs)
    return tokens * linear + quadratic * tokens * tokens


def transformer_params(in_chs: int, out_chs: int, tokens: int) -> int:
    """Parameters of a lightweight transformer with ``tokens`` tokens."""
    if tokens <= 0:
        return 0
    d = TOKEN_DIM
    per_layer = 4 * d * d + 2 * d * TRANSFORMER_FFN + 4 * d  # q/k/v/out, feed-forward, two LayerNorms
    return tokens * token_params(in_chs, out_chs)[0] + 2 * per_layer + 2 * out_chs


def _residual_macs(spec: BlockSpec, output_hw: tuple[int, int]) -> int:
    if spec.has_identity:
        return 0
    groups = math.gcd(spec.in_chs, spec.out_chs)
    return spec.in_chs // groups * spec.out_chs * output_hw[0] * output_hw[1]


def block_macs(spec: BlockSpec, input_hw: tuple[int, int]) -> int:
    """MACs of one block whose input is ``input_hw`` pixels."""
    h, w = input_hw
    hidden = sum(c * per for (_, c), per in zip(spec.paths, channel_macs(spec, input_hw)))
    residual = _residual_macs(spec, (math.ceil(h / spec.stride), math.ceil(w / spec.stride)))
    return hidden + residual + transformer_macs(spec.in_chs, spec.out_chs, spec.tokens)


def block_params(spec: BlockSpec) -> int:
    """Parameters of one block (BatchNorm affine parameters included, running statistics not)."""
    n = 0
    if spec.hidden:
        n += sum(c * per for (_, c), per in zip(spec.paths, channel_params(spec)))
        n += 2 * spec.out_chs + spec.se_chs  # the projection's BatchNorm, the SE's expansion bias
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


def summary(arch: Arch, input_size: tuple[int, int] | int | None = None) -> str:
    """``arch`` block by block for people (:meth:`hrnas.Arch.table`), with its parameter count and, when
    ``input_size`` is given, the MACs of every block and of the whole network at that size."""
    lines = [arch.table(block_macs_table(arch, input_size) if input_size is not None else None)]
    total = f"  total: {count_params(arch) / 1e6:.3f} M params"
    if input_size is not None:
        size = pair(input_size)
        total += f", {count_macs(arch, size) / 1e9:.4f} GMACs at {size[0]}x{size[1]} (paper convention)"
    lines.append(total)
    return "\n".join(lines)
