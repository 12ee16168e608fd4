"""The gate penalty: ``rho * sum(penalty * |gamma|)`` over every channel and token gate of the network.

Each gate (the weight of the BatchNorm after a kernel path's depthwise conv or a transformer's token projection;
:data:`hrnas.layers.BLOCK_UNITS` names them) is paired with a tensor of the per-unit penalties the cost model gives
(:meth:`hrnas.searching.units.CostModel.penalties`), normalised by the supernet's mean unit cost, which is fixed
for the whole run as in the paper. The L1 term is either added to the loss (``l1='subgradient'``, as the original
code) or applied after each optimizer step as a proximal step (soft-thresholding, which reaches exact zeros). The
pairs are rebuilt whenever the network is shrunk.
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn

from ..arch import Arch
from ..layers.block import BLOCK_UNITS
from .units import CostModel

__all__ = ["GatePenalty"]


class GatePenalty:
    """Penalty tensors aligned with the gates of the network being trained.

    Args:
        cost_model: the run's cost model.
        normalizer: the mean unit cost of the supernet (:meth:`CostModel.normalizer`).
        equal: every unit penalised 1 (plain network slimming) instead of by its cost.
        device: where the network lives.
    """

    def __init__(self, cost_model: CostModel, normalizer: float, equal: bool, device: torch.device) -> None:
        self.cost_model = cost_model
        self.normalizer = normalizer
        self.equal = equal
        self.device = device
        self.gates: List[tuple[torch.Tensor, torch.Tensor]] = []
        self.names: List[str] = []  # the gates' parameter names, in the order of ``gates``

    def refresh(self, arch: Arch, model: nn.Module) -> None:
        """Pair every gate parameter of ``model`` (built from ``arch``) with its penalties."""
        pens = self.cost_model.penalties(arch, self.normalizer, equal=self.equal)
        params = dict(model.named_parameters())
        self.gates, self.names = [], []
        for name, spec in arch.named_blocks():
            vec, tok = pens[name]
            start = 0
            for i, (_, n) in enumerate(spec.paths):
                key = BLOCK_UNITS.channel_gate(name, i)
                self.gates.append((params[key], vec[start : start + n].to(self.device)))
                self.names.append(key)
                start += n
            if spec.tokens:
                key = BLOCK_UNITS.token_gate(name)
                self.gates.append((params[key], torch.full_like(params[key], tok)))
                self.names.append(key)

    def l1(self) -> torch.Tensor:
        """``sum(penalty * |gamma|)`` (differentiable)."""
        if not self.gates:
            return torch.zeros((), device=self.device)
        return sum((pen * g.abs()).sum() for g, pen in self.gates)

    @torch.no_grad()
    def proximal(self, lr: float, rho: float) -> None:
        """Soft-threshold every gate by ``lr * rho * penalty`` (the L1 term's proximal step)."""
        if rho <= 0:
            return
        for g, pen in self.gates:
            g.copy_(g.sign() * (g.abs() - lr * rho * pen).clamp(min=0))

    def state_dict(self) -> dict:
        return {"normalizer": self.normalizer}

    def load_state_dict(self, state: dict) -> None:
        self.normalizer = state["normalizer"]
