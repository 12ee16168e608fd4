"""The trainer: the network being searched, its optimizer, grad scaler and EMA, and one training step.

Shrinking swaps in a smaller network (:meth:`Trainer.swap`): the model, the optimizer's per-parameter state and the
EMA's shadow are sliced with one :class:`hrnas.searching.shrink.ShrinkPlan`, so all three stay consistent, and the
``DistributedDataParallel`` wrapper is made again for the new model.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import torch
from torch import nn

from ..arch import Arch
from ..net import HRNASNet
from .config import SearchConfig
from .distributed import broadcast_tensors
from .ema import EMA
from .loaders import split_batch, to_device
from .penalty import GatePenalty
from .shrink import ShrinkPlan, shrink_model, shrink_optimizer_state

__all__ = ["NonFinite", "Trainer", "model_builder"]


class NonFinite(ArithmeticError):
    """A step's loss or gradient norm was not finite; nothing of that step reached the weights."""

    def __init__(self, what: str, value: float) -> None:
        super().__init__(f"{what} became {value}")
        self.what, self.value = what, value


def model_builder(supernet: HRNASNet) -> Callable[[Arch], HRNASNet]:
    """A function that builds an ``Arch`` the way ``supernet`` was built (input channels, pooling, pretrained cfg)."""
    in_chans, global_pool = supernet.in_chans, supernet.global_pool
    pretrained_cfg = dict(getattr(supernet, "pretrained_cfg", None) or {})

    def build(arch: Arch) -> HRNASNet:
        model = HRNASNet(arch, in_chans=in_chans, global_pool=global_pool or None)
        model.pretrained_cfg = dict(pretrained_cfg)
        return model

    return build


class Trainer:
    """Trains ``model`` (moved to ``device``) with the optimizer, loss scaling, EMA and DDP that ``cfg`` asks for.

    Args:
        model: the network to train (the trainer owns it from now on).
        cfg: the run's settings (optimizer, ``amp``, ``channels_last``, ``grad_clip``, ``l1``, ``ema_decay``...).
        device: where to train.
        world: number of processes (``DistributedDataParallel`` when above 1).
        build: builds a network from an ``Arch`` (:func:`model_builder`), for shrinking and evaluation.
        loss: ``loss(output, target)``.
        check_target: checks a batch's targets against the model's classes (``None``: no check).
    """

    def __init__(
        self,
        model: HRNASNet,
        cfg: SearchConfig,
        device: torch.device,
        world: int,
        build: Callable[[Arch], HRNASNet],
        loss: Callable[[torch.Tensor, Any], torch.Tensor],
        check_target: Optional[Callable[[Any, int], None]] = None,
    ) -> None:
        self.cfg, self.device, self.world, self.build = cfg, device, world, build
        self.loss, self.check_target = loss, check_target
        # a training step of this family is faster in channels_last on the CPUs measured (its depthwise convs above
        # all: benchmarks/results/search_cost.md), and on GPUs it is the usual choice
        self.channels_last = True if cfg.channels_last is None else cfg.channels_last
        model.to(device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        model.train()
        self.model = model
        self.optimizer = self._make_optimizer(model)
        # fp16 needs loss scaling; bf16 and fp32 do not
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16" and device.type == "cuda")
        global_batch = cfg.batch_size * world
        decay = cfg.ema_decay ** (global_batch / 4096) if cfg.ema_decay else 0.0
        self.ema = EMA(model, decay) if cfg.ema_decay else None
        self._ddp: Optional[nn.Module] = None  # wrapped when first trained: after a resumed state is loaded
        # cut_rank='taylor': per gate parameter, the running mean of |gamma * dL/dgamma| (the loss a unit's removal
        # would add, to first order), which ranks the units the budget forces out
        self.importance: dict[str, torch.Tensor] = {}

    def _make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        cfg = self.cfg
        no_decay = getattr(model, "no_weight_decay", lambda: set())()
        decay, other = [], []
        for name, p in model.named_parameters():
            (decay if p.ndim > 1 and name not in no_decay else other).append(p)
        groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": other, "weight_decay": 0.0},
        ]
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)

    def _wrapped(self) -> nn.Module:
        if self._ddp is None:
            if self.world == 1:
                self._ddp = self.model
            else:
                ids = [self.device.index] if self.device.type == "cuda" else None
                self._ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        return self._ddp

    def step(self, batch: Any, lr: float, rho: float, penalty: GatePenalty) -> tuple[float, float, float]:
        """One optimizer step on ``batch`` at learning rate ``lr`` and penalty strength ``rho``.

        Returns the loss, the L1 term and the step's seconds. Raises :class:`NonFinite` (gradients cleared, weights
        untouched) when the loss or the gradient norm is not finite, and ``ValueError`` for malformed batches.
        """
        cfg = self.cfg
        x, target = split_batch(to_device(batch, self.device))
        first = target[0] if isinstance(target, (tuple, list)) else target
        if torch.is_tensor(first) and first.shape[0] != x.shape[0]:
            raise ValueError(
                f"a batch has {x.shape[0]} inputs but {first.shape[0]} targets; the dataset must return one target "
                "per input (image, target)"
            )
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.check_target is not None:
            self.check_target(target, self.model.num_classes)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        amp = cfg.amp if self.device.type == "cuda" else None
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "", None)
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            out = self._wrapped()(x)
            loss = self.loss(out.float(), target)
        l1 = penalty.l1()
        total = loss + rho * l1 if cfg.l1 == "subgradient" else loss
        if not torch.isfinite(total):
            self._non_finite("the loss", total.item())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        # the norm is computed either way: a non-finite gradient must never reach the weights (fp16's loss scaler
        # skips such steps by itself, and lowers its scale)
        if cfg.cut_rank == "taylor":
            self._track_importance(penalty, rho if cfg.l1 == "subgradient" else 0.0)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or float("inf"))
        if not torch.isfinite(norm) and not self.scaler.is_enabled():
            self._non_finite("the gradient norm", norm.item())
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if cfg.l1 == "proximal":
            penalty.proximal(lr, rho)
        if self.ema is not None:
            self.ema.update(self.model)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        return loss.item(), l1.item(), seconds

    @torch.no_grad()
    def _track_importance(self, penalty: GatePenalty, rho: float, decay: float = 0.9) -> None:
        """Fold this step's ``|gamma * dL/dgamma|`` of every gate into its running mean (the task loss's gradient: an
        L1 term in the loss, ``rho > 0``, has its own gradient taken out)."""
        for name, (g, pen) in zip(penalty.names, penalty.gates):
            if g.grad is None:
                continue
            grad = g.grad - rho * pen * g.sign() if rho else g.grad
            now = (g * grad).abs().float()
            if not torch.isfinite(now).all():
                continue  # this step's gradient is not finite and will not be applied either
            old = self.importance.get(name)
            self.importance[name] = (
                now if old is None or old.shape != now.shape else old.mul_(decay).add_(now, alpha=1 - decay)
            )

    def _non_finite(self, what: str, value: float) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        raise NonFinite(what, value)

    def swap(self, plan: ShrinkPlan) -> None:
        """Continue with the shrunk network of ``plan``: model, optimizer state and EMA sliced alike."""
        old_model, old_opt = self.model, self.optimizer
        self.model = shrink_model(old_model, plan, self.build)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = self._make_optimizer(self.model)
        shrink_optimizer_state(old_opt, old_model, self.optimizer, self.model, plan)
        if self.ema is not None:
            self.ema.shadow = plan.apply(self.ema.shadow, list(self.model.state_dict().keys()))
            if self.world > 1:
                # the fold of removed units reads each rank's own BatchNorm statistics, so the ranks' shrunk EMAs
                # differ in the last bits; rank 0's is kept everywhere (the model itself is re-synced by DDP)
                broadcast_tensors(self.ema.shadow)
        self.importance = plan.sliced(self.importance, list(self.model.state_dict().keys()))
        self._ddp = None

    def averaged_model(self) -> HRNASNet:
        """A new network with the EMA weights (the current weights without an EMA), not yet re-calibrated."""
        model = self.build(self.model.arch).to(self.device)
        model.load_state_dict(self.ema.shadow if self.ema is not None else self.model.state_dict())
        return model

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict(),
            "importance": dict(self.importance),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if state["scaler"]:  # empty when saved by a disabled scaler (CPU, or no fp16)
            self.scaler.load_state_dict(state["scaler"])
        self.importance = dict(state["importance"])
