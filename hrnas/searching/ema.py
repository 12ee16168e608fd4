"""Exponential moving average of a network's state, and BatchNorm re-calibration.

The EMA is kept as a plain ``{name: tensor}`` dict (parameters and buffers, as the original's "shadow") rather
than a second module, so that physical shrinking can slice it with the same plan as the model
(:meth:`hrnas.searching.shrink.ShrinkPlan.apply`).
"""

from __future__ import annotations

from typing import Dict, Iterable, Iterator

import torch
from torch import nn

__all__ = ["EMA", "calibrate_bn"]


class EMA:
    """EMA of every floating-point tensor in a model's state dict.

    Args:
        model: the network whose state is averaged (its current state is the starting point).
        decay: the target decay; the paper uses 0.9999 at batch 4096, adjusted as ``decay ** (batch / 4096)``.
        warmup: use ``min(decay, (1 + t) / (10 + t))`` at update ``t``, as the original, so early averages are
            not dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.shadow: Dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        self.updates += 1
        ema, cur = [], []
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.dtype.is_floating_point:
                ema.append(s)
                cur.append(v.detach())
            else:
                s.copy_(v)
        if ema:
            torch._foreach_lerp_(ema, cur, 1.0 - d)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.warmup = state["warmup"]
        self.updates = state["updates"]
        self.shadow = dict(state["shadow"])


def _bn_modules(model: nn.Module) -> Iterator[nn.modules.batchnorm._BatchNorm]:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            yield m


@torch.no_grad()
def calibrate_bn(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    all_reduce: bool = False,
) -> int:
    """Re-estimate every BatchNorm's running statistics on ``batches`` (inputs only), as a cumulative average.

    The weights are not touched. Under ``torch.distributed`` with ``all_reduce=True`` the statistics are
    averaged over ranks afterwards. Returns the number of batches used.
    """
    bns = list(_bn_modules(model))
    momenta = [bn.momentum for bn in bns]
    was_training = model.training
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average over the calibration batches
    model.train()
    n = 0
    try:
        for x in batches:
            model(x)
            n += 1
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        model.train(was_training)
    if all_reduce and torch.distributed.is_available() and torch.distributed.is_initialized():
        world = torch.distributed.get_world_size()
        for bn in bns:
            for t in (bn.running_mean, bn.running_var):
                torch.distributed.all_reduce(t)
                t.div_(world)
    return n
