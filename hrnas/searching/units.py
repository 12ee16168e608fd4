"""Searchable units, their costs, and the cost-weighted L1 penalty (reference section 4.2).

A *unit* is one hidden (depthwise) channel of a block or one token of a block's transformer. Its importance is
``|gamma|`` of the BatchNorm that gates it (:data:`hrnas.layers.BLOCK_UNITS` names them).

Each unit has a cost: the MACs (or parameters) that disappear with it, computed from the ``Arch`` at the cost
resolution by :mod:`hrnas.cost` (:func:`~hrnas.cost.channel_macs`, :func:`~hrnas.cost.token_macs` and their
parameter counterparts). A channel of kernel ``k`` in a block with input ``h x w`` and output ``ho x wo`` costs
``in*h*w + k*k*ho*wo + out*ho*wo`` MACs (its expand row, depthwise filter and project column). A token costs its
share of the projections and of the attention/feed-forward matmuls plus the marginal quadratic attention term
``q * (2L - 1)`` at ``L`` live tokens. The penalty of a unit is its cost divided by the mean cost over all units of
the supernet (a channel-weighted mean of 1), fixed at the start of the search as in the paper.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ..arch import Arch, BlockSpec
from ..cost import (
    block_input_sizes,
    channel_macs,
    channel_params,
    count_macs,
    count_params,
    token_macs,
    token_params,
)

__all__ = ["BlockCosts", "CostModel", "block_costs"]

COST_METRICS = ("macs", "params", "latency")


@dataclass(frozen=True)
class BlockCosts:
    """Per-unit costs of one block.

    ``channel[i]`` is the cost of one channel of the block's ``i``-th existing kernel path (module order);
    a token costs ``token_linear + token_quad * (2L - 1)`` at ``L`` live tokens.
    """

    channel: tuple[float, ...]
    token_linear: float
    token_quad: float

    def token(self, live_tokens: int) -> float:
        return self.token_linear + self.token_quad * max(2 * live_tokens - 1, 0)


def block_costs(spec: BlockSpec, input_hw: tuple[int, int], metric: str = "macs") -> BlockCosts:
    """Unit costs of ``spec`` whose input has ``input_hw`` pixels (:mod:`hrnas.cost`'s per-unit counts)."""
    if metric == "macs":
        channel = channel_macs(spec, input_hw)
        linear, quad = token_macs(spec.in_chs, spec.out_chs)
    elif metric == "params":
        channel = channel_params(spec)
        linear, quad = token_params(spec.in_chs, spec.out_chs)
    else:
        raise ValueError(f"cost metric must be one of {COST_METRICS}, got {metric!r}")
    return BlockCosts(channel=tuple(float(c) for c in channel), token_linear=float(linear), token_quad=float(quad))


class CostModel:
    """Costs of units and networks for one metric at one resolution (the budget's configuration).

    Args:
        input_size: ``(height, width)`` the costs are evaluated at.
        metric: ``'macs'``, ``'params'`` or ``'latency'`` (microseconds predicted by ``latency_table``).
        num_classes: classifier width the budget is stated for (default: the arch's own).
        in_chans: input channels.
        latency_table: a :class:`hrnas.latency.LatencyTable` for ``input_size`` (``metric='latency'`` only).

    ``correction`` (latency only; read-only, see :meth:`corrected`) multiplies the table's whole-network
    prediction: a search with measured feedback prices networks with ``corrected(measured / predicted)`` of the
    network it is shrinking, once that network nears the budget. Unit costs are not corrected: they weight units
    against each other, and a common factor would only rescale the penalty.
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        metric: str = "macs",
        num_classes: int | None = None,
        in_chans: int = 3,
        latency_table=None,
    ) -> None:
        if metric not in COST_METRICS:
            raise ValueError(f"cost metric must be one of {COST_METRICS}, got {metric!r}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.metric = metric
        self.num_classes = num_classes
        self.in_chans = in_chans
        if metric == "latency":
            if latency_table is None:
                raise ValueError("metric='latency' needs a latency table (hrnas.latency.latency_table)")
            if tuple(latency_table.input_size) != self.input_size:
                h, w = latency_table.input_size
                raise ValueError(
                    f"the latency table was measured at {h}x{w}, the budget is at "
                    f"{self.input_size[0]}x{self.input_size[1]}; build a table at the budget's input size"
                )
        self.latency_table = latency_table
        self.correction = 1.0

    def corrected(self, correction: float) -> CostModel:
        """This cost model with whole-network latency predictions scaled by ``correction`` (itself when unchanged;
        the cost model is never changed in place, so every part of a run that holds it sees the same costs)."""
        if correction == self.correction:
            return self
        other = copy.copy(self)
        other.correction = correction
        return other

    def _configured(self, arch: Arch) -> Arch:
        return arch if self.num_classes is None else arch.with_num_classes(self.num_classes)

    def total(self, arch: Arch) -> int:
        """Cost of a whole network: exact MACs or parameters at the configured size and classes, or the predicted
        latency in microseconds."""
        if self.metric == "latency":
            return int(round(1e3 * self.correction * self.latency_table.predict(arch)))  # microseconds
        arch = self._configured(arch)
        if self.metric == "macs":
            return count_macs(arch, self.input_size, self.in_chans)
        return count_params(arch, self.in_chans)

    def fixed(self, arch: Arch) -> int:
        """Cost that no unit removal can take away: the network with every channel and token removed."""
        empty = arch.with_blocks([b.replace(channels=tuple(0 for _ in b.channels), tokens=0) for b in arch.blocks()])
        return self.total(empty)

    def blocks(self, arch: Arch) -> dict[str, BlockCosts]:
        """Unit costs of every block, by block name."""
        if self.metric == "latency":
            return {
                name: BlockCosts(channel, linear, quad)
                for name, (channel, linear, quad) in self.latency_table.unit_costs(arch).items()
            }
        hw = block_input_sizes(arch, self.input_size)
        return {name: block_costs(b, hw[name], self.metric) for name, b in arch.named_blocks()}

    def normalizer(self, arch: Arch) -> float:
        """Mean unit cost over all channels and tokens of ``arch`` (the penalty's unit-weighted normaliser)."""
        total, count = 0.0, 0
        costs = self.blocks(arch)
        for name, b in arch.named_blocks():
            c = costs[name]
            total += sum(cc * n for cc, (_, n) in zip(c.channel, b.paths))
            total += sum(c.token(t) for t in range(1, b.tokens + 1))
            count += b.hidden + b.tokens
        if count == 0:
            raise ValueError("the network has no searchable units (no hidden channels and no tokens)")
        return total / count

    def penalties(self, arch: Arch, normalizer: float, equal: bool = False) -> dict[str, tuple[torch.Tensor, float]]:
        """Per block: a penalty vector over its hidden channels (path by path) and the per-token penalty at its live
        token count.

        ``equal=True`` gives every unit penalty 1 (plain network slimming, the paper's ablation).
        """
        out = {}
        costs = self.blocks(arch)
        for name, b in arch.named_blocks():
            c = costs[name]
            if equal:
                vec = torch.ones(b.hidden)
                tok = 1.0
            else:
                parts = [torch.full((n,), cc / normalizer) for cc, (_, n) in zip(c.channel, b.paths)]
                vec = torch.cat(parts) if parts else torch.zeros(0)
                tok = c.token(b.tokens) / normalizer
            out[name] = (vec, tok)
        return out
