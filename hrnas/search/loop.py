"""The search loop: train the supernet with the cost-weighted L1 on its gates and shrink it as it goes.

One run = one training of the supernet (reference section 4): every step adds ``rho * sum(penalty * |gamma|)``
to the objective; every ``shrink_every`` steps the units selected by :mod:`hrnas.search.select` are physically
removed (model, EMA and optimizer state sliced together, the removed units' constant output folded); every
``eval_every`` steps the EMA weights are evaluated after BatchNorm re-calibration, a row goes to
``history.jsonl`` and an atomic checkpoint is written. The network that comes out is the searched model, trained.

Distributed runs use ``torch.distributed`` as set up by ``torchrun`` (gloo on CPU, nccl on GPU) and
``DistributedDataParallel``; rank 0 decides each shrink and broadcasts it, every rank applies it and re-wraps
its model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import shutil
import statistics
import time
import warnings
from typing import Any, Callable, List, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._files import is_temporary, write_atomic
from .._measure import device_key
from ..arch import Arch
from ..cost import count_macs, count_params
from ..net import HRNASNet
from .budget import BudgetController, RhoRamp, parse_amount
from .checkpoint import load_checkpoint, save_checkpoint
from .config import PAPER_RHO, SearchConfig
from .ema import EMA, calibrate_bn
from .loaders import EpochBatches, sequential_shard
from .result import SearchResult, budget_label
from .select import UnitIndex, select_units
from .shrink import plan_shrink, shrink_model, shrink_optimizer_state
from .tasks import Metric, get_task
from .units import CostModel

__all__ = ["search"]

CHECKPOINT_NAME = "checkpoint.pt"
# A latency budget's end point is centred higher in a narrower band than a MACs budget's ([0.9, 1.0]): the cost is
# a measurement, and its scatter between moments (5-10 % on a shared CPU, even side by side with the table's
# reference network: benchmarks/results/latency_model.md) decides on which side of the band a network lands when
# measured again; MACs are exact.
LATENCY_BAND = dict(goal=0.975, lower=0.95)


class SearchError(RuntimeError):
    """A search could not continue (the message says why and what to do)."""


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _maybe_init_distributed(device: torch.device) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and torch.distributed.is_available() and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def _resolve_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _to(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(b, device) for b in batch)
    return batch


def _split(batch: Any) -> tuple[torch.Tensor, Any]:
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    if isinstance(batch, (list, tuple)) and len(batch) == 3:  # (images, heatmaps, weights)
        return batch[0], (batch[1], batch[2])
    raise SearchError("each batch must be (inputs, targets) or (inputs, heatmaps, weights)")


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


class _Run:
    """State and steps of one search run (kept together so that shrinking can swap the model out)."""

    def __init__(
        self,
        supernet: HRNASNet,
        train_data: Dataset | DataLoader,
        val_data: Optional[Dataset | DataLoader],
        cfg: SearchConfig,
        loss: Optional[Callable] = None,
        metric: Optional[Callable[[], Metric]] = None,
        latency_model: Any = None,
    ) -> None:
        if not isinstance(supernet, HRNASNet):
            raise TypeError(
                f"search needs an hrnas.HRNASNet (from hrnas.create_supernet), got {type(supernet).__name__}"
            )
        self.device = _resolve_device(cfg.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        _maybe_init_distributed(self.device)
        self.rank, self.world = _dist()
        self.out = cfg.output_dir
        self.resume_state = None
        if cfg.resume:
            path = cfg.resume
            if os.path.isdir(path):
                path = os.path.join(path, CHECKPOINT_NAME)
            self.resume_state = load_checkpoint(path)
            saved = SearchConfig().replace(**_config_from_dict(self.resume_state["config"]))
            cfg = saved.replace(
                resume=cfg.resume,
                output_dir=cfg.output_dir or saved.output_dir,
                progress=cfg.progress,
                device=cfg.device,
            )
            self.out = cfg.output_dir
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)

        self.in_chans, self.global_pool = supernet.in_chans, supernet.global_pool
        self.pretrained_cfg = dict(getattr(supernet, "pretrained_cfg", None) or {})
        self.supernet_arch = supernet.arch
        arch = Arch.coerce(self.resume_state["arch"]) if self.resume_state else supernet.arch
        self.arch = arch
        self.task = get_task(
            arch.task, ignore_index=cfg.ignore_index, label_smoothing=cfg.label_smoothing, num_classes=arch.num_classes
        )
        self.loss_fn = loss or self.task.loss
        self.make_metric = metric or self.task.make_metric
        self.check_target = None if loss is not None else self.task.check_target

        # cost model at the budget's configuration
        size = cfg.input_size or tuple(self.pretrained_cfg.get("input_size", (3, 0, 0))[-2:])
        if not size or not all(size):
            raise ValueError("input_size= is required: the (height, width) at which costs and budgets are counted")
        self.cost_size = (int(size[0]), int(size[1]))
        self._timing_here = False  # latency feedback: this process can time networks as the table did
        if cfg.latency_ms is not None:
            table = latency_model or self._latency_table(supernet)
            self.cost_model = CostModel(self.cost_size, "latency", None, self.in_chans, latency_table=table)
            self._timing_here = table.key == device_key(self.device)
            if cfg.latency_feedback and not self._timing_here:
                warnings.warn(
                    f"the latency table was measured on {table.key!r}, this search runs on "
                    f"{device_key(self.device)!r}: its latency budget is the table's prediction alone (no measured "
                    "feedback); run the search where the table was measured, or pass latency_feedback=False",
                    stacklevel=3,
                )
        else:
            metric_name = "params" if cfg.params is not None else "macs"
            self.cost_model = CostModel(self.cost_size, metric_name, cfg.cost_num_classes, self.in_chans)

        # data
        self.train_data, self.val_data = train_data, val_data
        if isinstance(train_data, DataLoader):
            self.batches = None
            self.steps_per_epoch = len(train_data)
        else:
            self.batches = EpochBatches(
                train_data, cfg.batch_size, cfg.seed, self.rank, self.world, cfg.num_workers, self.device.type == "cuda"
            )
            self.steps_per_epoch = self.batches.steps_per_epoch
        self.total_steps = cfg.steps or max(1, int(round(cfg.epochs * self.steps_per_epoch)))
        n_checks = 40
        self.shrink_every = cfg.shrink_every or max(1, self.total_steps // n_checks)
        self.eval_every = cfg.eval_every or max(1, self.total_steps // 8)
        self.checkpoint_every = cfg.checkpoint_every or self.eval_every

        # model, optimizer, EMA
        self.model = self._build(arch) if self.resume_state else copy.deepcopy(supernet)
        self.model.to(self.device)
        if self._channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.model.train()
        self.optimizer = self._make_optimizer(self.model)
        # fp16 needs loss scaling; bf16 and fp32 do not
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16" and self.device.type == "cuda")
        global_batch = cfg.batch_size * self.world
        decay = cfg.ema_decay ** (global_batch / 4096) if cfg.ema_decay else 0.0
        self.ema = EMA(self.model, decay) if cfg.ema_decay else None

        # penalty bookkeeping; the normaliser is fixed by the supernet, as in the paper
        self.normalizer = self.cost_model.normalizer(self.supernet_arch)
        self.start_cost = self.cost_model.total(self.supernet_arch)
        self.controller: Optional[BudgetController] = None
        self.ramp: Optional[RhoRamp] = None
        amount = next((a for a in (cfg.budget, cfg.params, cfg.latency_ms) if a is not None), None)
        amounts = list(amount) if isinstance(amount, (list, tuple)) else [amount]
        if cfg.latency_ms is not None:
            amounts = [int(round(1e3 * float(a))) for a in amounts]  # the latency cost model counts microseconds
        self.family_budgets = sorted((parse_amount(a) for a in amounts), reverse=True) if amount is not None else []
        if len(set(self.family_budgets)) != len(self.family_budgets):
            raise ValueError(f"the budgets of a family must differ, got {amount!r}")
        if amount is not None:
            self.budget = self.family_budgets[-1]
            for b in self.family_budgets:
                self._check_budget(b)
            peak_lr = cfg.lr
            # rho's natural scale: the strength at which the proximal step moves a gate of penalty 1 by 1 over the
            # run's first `reach`; the hold ramps up to it and the controller then searches within [1e-3, 10] x scale.
            # (Starting at a tenth of it, the controller spent a third of the run raising rho while rank cuts of
            # still-equal gates did the shrinking.)
            scale = 1.0 / (peak_lr * max(1.0, cfg.reach * self.total_steps))
            rho0 = cfg.rho if cfg.rho is not None else scale
            self.controller = BudgetController(
                self.budget,
                self.start_cost,
                self.total_steps,
                rho0,
                reach=cfg.reach,
                hold=cfg.hold,
                rho_min=1e-3 * scale,
                rho_max=10 * scale,
                family=self.family_budgets if len(self.family_budgets) > 1 else None,
                recovery=int(cfg.family_recovery * self.total_steps),
                **(LATENCY_BAND if self.cost_model.metric == "latency" else {}),
            )
        else:
            self.budget = None
            rho = cfg.rho if cfg.rho is not None else PAPER_RHO[arch.task]
            warm = int(min(cfg.rho_warmup_epochs * self.steps_per_epoch, self.total_steps / 2))
            self.ramp = RhoRamp(rho, warm)
        self.min_shrink = cfg.min_shrink
        if self.min_shrink is None:
            self.min_shrink = min(1e6, 0.005 * self.start_cost) if self.cost_model.metric == "macs" else 0.0

        self.step = 0
        self.family: List[dict] = []  # members taken so far: step, budget, cost, metric, directory
        self.latency_checks: List[dict] = []  # latency budgets: measured vs predicted latency of the shrinking network
        self._measured_arch: Optional[Arch] = None
        self.history: List[dict] = []
        self.step_times: List[float] = []
        self.step_macs: List[int] = []  # MACs of the network each step trained, to relate step time to cost
        self.losses: List[float] = []
        self.l1s: List[float] = []
        self.skipped = 0
        self.started = time.time()
        if self.resume_state:
            self._restore(self.resume_state)
        self._refresh_penalties()
        self.macs_now = count_macs(self.arch, self.cost_size, self.in_chans)
        self.ddp = self._wrap(self.model)

    # -- construction -------------------------------------------------------------------------------------

    @property
    def _channels_last(self) -> bool:
        # measured on 2-core x86 CPUs: a training step of this family is 1.2-1.4x faster in channels_last (its
        # depthwise convs above all), and on GPUs it is the usual choice
        return True if self.cfg.channels_last is None else self.cfg.channels_last

    def _build(self, arch: Arch) -> HRNASNet:
        model = HRNASNet(arch, in_chans=self.in_chans, global_pool=self.global_pool or None)
        model.pretrained_cfg = dict(self.pretrained_cfg)
        return model

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

    def _wrap(self, model: nn.Module) -> nn.Module:
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def _latency_table(self, supernet: HRNASNet):
        from ..latency import LatencyTable, latency_table

        if self.cfg.latency_table:
            return LatencyTable.load(self.cfg.latency_table)
        table = None
        if self.rank == 0:
            if self.cfg.progress:
                print("measuring the latency of the supernet's blocks on this device (cached for later runs)")
            table = latency_table(supernet.arch, self.cost_size, device=self.device).to_dict()
        if self.world > 1:
            # every rank must penalise with the same costs: rank 0's measurement is the run's
            payload = [table]
            torch.distributed.broadcast_object_list(payload, src=0)
            table = payload[0]
        return LatencyTable.from_dict(table)

    def _check_budget(self, budget: int) -> None:
        unit = {"macs": "MACs", "params": "params", "latency": "us of predicted latency"}[self.cost_model.metric]
        h, w = self.cost_size
        fixed = self.cost_model.fixed(self.supernet_arch)
        if budget < fixed:
            raise ValueError(
                f"budget {budget:,} {unit} at {h}x{w} is unreachable: the network's fixed part (stem, residual "
                f"convs, head) alone costs {fixed:,}; raise the budget or use a smaller space"
            )
        if budget >= self.start_cost:
            raise ValueError(
                f"budget {budget:,} {unit} at {h}x{w} is not below the supernet's {self.start_cost:,}: nothing would "
                "be removed; lower the budget (or omit it to run the paper's fixed-rho schedule)"
            )

    # -- penalties ----------------------------------------------------------------------------------------

    def _refresh_penalties(self) -> None:
        """Penalty tensors aligned with each gate parameter of the current network."""
        pens = self.cost_model.penalties(self.arch, self.normalizer, equal=self.cfg.penalty == "equal")
        params = dict(self.model.named_parameters())
        self.gates: List[tuple[torch.Tensor, torch.Tensor]] = []
        for name, spec in self.arch.named_blocks():
            vec, tok = pens[name]
            start = 0
            for i, (_, n) in enumerate(spec.paths):
                self.gates.append((params[f"{name}.paths.{i}.bn2.weight"], vec[start : start + n].to(self.device)))
                start += n
            if spec.tokens:
                p = params[f"{name}.transformer.input_norm.weight"]
                self.gates.append((p, torch.full_like(p, tok)))

    def _l1(self) -> torch.Tensor:
        if not self.gates:
            return torch.zeros((), device=self.device)
        return sum((pen * g.abs()).sum() for g, pen in self.gates)

    @torch.no_grad()
    def _proximal(self, lr: float, rho: float) -> None:
        if rho <= 0:
            return
        for g, pen in self.gates:
            g.copy_(g.sign() * (g.abs() - lr * rho * pen).clamp(min=0))

    def rho(self) -> float:
        if self.controller is not None:
            return self.controller.rho_at(self.step)
        assert self.ramp is not None
        return self.ramp.rho(self.step)

    # -- schedule -----------------------------------------------------------------------------------------

    def lr(self) -> float:
        cfg = self.cfg
        # at least a few warm-up steps: the untrained network's logits are large (no normalisation after the
        # last fusion), and a full-size first step can diverge at small batch sizes
        warm = min(self.total_steps // 2, max(10, int(cfg.lr_warmup * self.total_steps)))
        if self.step < warm:
            return cfg.lr * (self.step + 1) / warm
        if cfg.lr_schedule == "constant":
            return cfg.lr
        t = (self.step - warm) / max(1, self.total_steps - warm)
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * t))

    # -- training -----------------------------------------------------------------------------------------

    def _batches(self):
        """Yield training batches from the current step on, across epochs."""
        if self.batches is None:
            epoch = self.step // max(1, self.steps_per_epoch)
            skip = self.step % max(1, self.steps_per_epoch)
            while True:
                sampler = getattr(self.train_data, "sampler", None)
                if hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(epoch)
                for i, batch in enumerate(self.train_data):
                    if i >= skip:
                        yield batch
                skip = 0
                epoch += 1
        epoch, start = divmod(self.step, self.steps_per_epoch)
        while True:
            if hasattr(self.train_data, "set_epoch"):
                self.train_data.set_epoch(epoch)
            yield from self.batches.epoch(epoch, start)
            epoch, start = epoch + 1, 0

    def _train_step(self, batch: Any) -> None:
        cfg = self.cfg
        x, target = _split(_to(batch, self.device))
        first = target[0] if isinstance(target, (tuple, list)) else target
        if torch.is_tensor(first) and first.shape[0] != x.shape[0]:
            raise ValueError(
                f"a batch has {x.shape[0]} inputs but {first.shape[0]} targets; the dataset must return one target "
                "per input (image, target)"
            )
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.check_target is not None:
            self.check_target(target, self.model.num_classes)
        lr, rho = self.lr(), self.rho()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        amp = self.cfg.amp if self.device.type == "cuda" else None
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "", None)
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            out = self.ddp(x)
            loss = self.loss_fn(out.float(), target)
        l1 = self._l1()
        total = loss + rho * l1 if cfg.l1 == "subgradient" else loss
        if not torch.isfinite(total):
            self._non_finite("the loss", total.item())
            return
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        # the norm is computed either way: a non-finite gradient must never reach the weights (fp16's loss scaler
        # skips such steps by itself, and lowers its scale)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or float("inf"))
        if not torch.isfinite(norm) and not self.scaler.is_enabled():
            self._non_finite("the gradient norm", norm.item())
            return
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if cfg.l1 == "proximal":
            self._proximal(lr, rho)
        if self.ema is not None:
            self.ema.update(self.model)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.step_times.append(time.perf_counter() - t0)
        self.step_macs.append(self.macs_now)
        self.losses.append(loss.item())
        self.l1s.append(l1.item())

    def _non_finite(self, what: str, value: float) -> None:
        """Skip the step (``on_nan='skip'``) or stop; either way nothing of this step reaches the weights."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.cfg.on_nan == "skip":
            self.skipped += 1
            return
        where = os.path.join(self.out, CHECKPOINT_NAME) if self.out else None
        hint = f"the last good checkpoint is {where}; resume from it with a lower lr" if where else "lower the lr"
        raise SearchError(f"{what} became {value} at step {self.step}; stopping ({hint})")

    # -- shrinking ----------------------------------------------------------------------------------------

    def shrink(self, final: bool = False, budget: Optional[float] = None) -> None:
        """Remove units: dead ones, and live ones where the budget trajectory demands (``final``: cut inside the
        budget, or inside the family member's ``budget``)."""
        ema_state = self.ema.shadow if self.ema is not None else None
        index = UnitIndex(
            self.arch, self.model.state_dict(), ema_state, self.cost_model, self.normalizer, self.cfg.penalty == "equal"
        )
        removed = None
        if self.rank == 0:
            self._measure_latency(self.arch, force=final)
            sel = select_units(index, self.cfg.threshold, self.controller, self.step, final, self.min_shrink, budget)
            if self._latency_feedback and self.controller is not None:
                sel = self._settle_cut(index, sel, final, budget)
            removed = sel.removed
            if self.controller is not None:
                self.controller.update(self.step, sel.cost_before, sel.cost_after, sel.forced)
        if self.world > 1:
            # rank 0 decides (and measures); every rank applies the same removal, rho and latency correction
            latency = (self.cost_model.correction, self.latency_checks, self._measured_arch)
            payload = [removed, self.controller.state_dict() if self.controller else None, latency]
            torch.distributed.broadcast_object_list(payload, src=0)
            removed, ctrl, latency = payload
            if self.controller is not None:
                self.controller.load_state_dict(ctrl)
            self.cost_model.correction, self.latency_checks, self._measured_arch = latency
        if removed is None or not bool(removed.any()):
            return
        plan = plan_shrink(self.arch, index.keeps(removed))
        old_model, old_opt = self.model, self.optimizer
        self.model = shrink_model(old_model, plan, self._build)
        if self._channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = self._make_optimizer(self.model)
        shrink_optimizer_state(old_opt, old_model, self.optimizer, self.model, plan)
        if self.ema is not None:
            self.ema.shadow = plan.apply(self.ema.shadow, list(self.model.state_dict().keys()))
        self.arch = plan.new_arch
        self.macs_now = count_macs(self.arch, self.cost_size, self.in_chans)
        self._refresh_penalties()
        self.ddp = self._wrap(self.model)

    @property
    def _latency_feedback(self) -> bool:
        return self.cost_model.metric == "latency" and self.cfg.latency_feedback and self._timing_here

    def _measure_latency(self, arch: Arch, force: bool = False) -> bool:
        """Latency budgets (rank 0): time ``arch`` on this device and scale the table's prediction to it.

        The table's network-level fit is an average over the space; near the budget, the network's own measured
        latency is what the budget is about. Without ``force``, measured only once the predicted cost is within
        1.5x of the next budget. Returns whether ``arch``'s own measurement is in use.
        """
        if not self._latency_feedback:
            return False
        if self._measured_arch == arch:
            return True
        table = self.cost_model.latency_table
        predicted = table.predict(arch)
        if not force:
            goal = self.family_budgets[min(len(self.family), len(self.family_budgets) - 1)]
            if self.cost_model.total(arch) > 1.5 * goal:
                return False
        from .. import latency

        # 6 to 21 runs, about 2 s at most (the final network's: up to 60 runs, 6 s; its reading is the one reported);
        # side by side with the table's reference network where it keeps one, so that the machine's drift since the
        # table was built (20 % and more on a shared CPU) cancels
        span, most = (6000, 60) if force else (2000, 21)
        repeats = max(6, min(most, int(span / max(self.cost_model.correction * predicted, 1e-3))))
        net = self._build(arch)
        reading = latency.measure_latency(
            net, self.cost_size, table.batch_size, repeats, self.device, self.in_chans, reference=table
        )
        # the same network is timed again at later checks (a rejected cut leaves it in place); pooling its readings
        # (median) keeps one low or high reading (+-5 % here, even side by side with the reference) from deciding
        digest = _arch_digest(arch)
        readings = [c["reading_ms"] for c in self.latency_checks if c.get("arch") == digest] + [round(reading, 4)]
        measured = statistics.median(readings)
        self.cost_model.correction = measured / predicted
        self._measured_arch = arch
        self.latency_checks.append(
            {
                "step": self.step,
                "arch": digest,
                "predicted_ms": round(predicted, 4),
                "reading_ms": round(reading, 4),
                "measured_ms": round(measured, 4),
            }
        )
        return True

    def _settle_cut(self, index: UnitIndex, sel, final: bool, budget: Optional[float]):
        """Latency budgets: time the network a cut would leave before making it, and choose again with that
        measurement while it lands below the floor (or, at a final cut, over the budget). The measured/predicted
        ratio drifts as the network shrinks, so a cut chosen with the uncut network's ratio can land outside, and a
        cut below the floor cannot be undone."""
        if final:
            ceiling = budget if budget is not None else self.budget
            floor = self.controller.lower * ceiling
        else:
            ceiling, floor = float("inf"), self.controller.floor_at(self.step)
        # at most three re-choices; the last choice is timed too (and kept even if still outside), so that a final
        # cut never leaves a network whose latency the search did not measure
        for attempt in range(4):
            if not bool(sel.removed.any()):
                break
            candidate = index.arch_without(sel.removed)
            if not self._measure_latency(candidate, force=final):
                break
            if attempt == 3 or floor <= self.cost_model.total(candidate) <= ceiling:
                break
            sel = select_units(index, self.cfg.threshold, self.controller, self.step, final, self.min_shrink, budget)
        return sel

    # -- evaluation ---------------------------------------------------------------------------------------

    def evaluated_model(self) -> HRNASNet:
        """The EMA weights with re-calibrated BatchNorm statistics (what the paper evaluates)."""
        model = self._build(self.arch).to(self.device)
        model.load_state_dict(self.ema.shadow if self.ema is not None else self.model.state_dict())
        if self.cfg.calib_batches > 0:
            calibrate_bn(model, self._calibration_inputs(), all_reduce=self.world > 1)
        return model.eval()

    def _calibration_inputs(self):
        if self.batches is None:
            source = iter(self.train_data)
        else:
            source = self.batches.epoch(10**6)  # a fixed order, independent of the training position
        for i, batch in enumerate(source):
            if i >= self.cfg.calib_batches:
                break
            yield _split(_to(batch, self.device))[0]

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> Optional[float]:
        if self.val_data is None:
            return None
        metric = self.make_metric()
        if isinstance(self.val_data, DataLoader):
            loader = self.val_data
        else:
            loader = sequential_shard(self.val_data, self.cfg.batch_size, self.rank, self.world, self.cfg.num_workers)
        for i, batch in enumerate(loader):
            if self.cfg.max_val_batches is not None and i >= self.cfg.max_val_batches:
                break
            x, target = _split(_to(batch, self.device))
            metric.update(model(x), target)
        metric.all_reduce()
        return metric.compute()

    def record(self, metric: Optional[float]) -> dict:
        arch = self.arch
        row = {
            "step": self.step,
            "epoch": round(self.step / self.steps_per_epoch, 3),
            "macs": count_macs(arch, self.cost_size, self.in_chans),
            "params": count_params(arch, self.in_chans),
            "cost": self.cost_model.total(arch),
            "hidden": sum(b.hidden for b in arch.blocks()),
            "tokens": sum(b.tokens for b in arch.blocks()),
            "rho": self.rho(),
            "lr": self.lr(),
            "loss": statistics.fmean(self.losses) if self.losses else None,
            "l1": statistics.fmean(self.l1s) if self.l1s else None,
            "metric": metric,
            "metric_name": self.make_metric().name,
            "step_time": statistics.median(self.step_times) if self.step_times else None,
            "step_macs": statistics.fmean(self.step_macs) if self.step_macs else None,
            "skipped": self.skipped,
            "elapsed": round(time.time() - self.started, 2),
        }
        if self.cost_model.metric == "latency":
            row["latency_correction"] = round(self.cost_model.correction, 4)
        self.history.append(row)
        self.losses, self.l1s, self.step_times, self.step_macs = [], [], [], []
        if self.rank == 0 and self.out:
            write_atomic(os.path.join(self.out, "history.jsonl"), "".join(json.dumps(r) + "\n" for r in self.history))
        return row

    # -- checkpoints --------------------------------------------------------------------------------------

    def checkpoint(self) -> None:
        if self.rank != 0 or not self.out:
            return
        state = {
            "arch": self.arch.to_dict(),
            "config": self.cfg.to_dict(),
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "controller": self.controller.state_dict() if self.controller is not None else None,
            "normalizer": self.normalizer,
            "history": self.history,
            "family": self.family,
            "latency_checks": self.latency_checks,
            "latency_correction": self.cost_model.correction,
            "latency_measured_arch": self._measured_arch.to_dict() if self._measured_arch is not None else None,
            "skipped": self.skipped,
            "rng": _rng_state(),
        }
        save_checkpoint(state, os.path.join(self.out, CHECKPOINT_NAME))

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer = self._make_optimizer(self.model)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        if self.controller is not None and state["controller"] is not None:
            self.controller.load_state_dict(state["controller"])
        self.normalizer = state["normalizer"]
        self.step = state["step"]
        self.history = list(state["history"])
        self.family = list(state.get("family", []))
        self.latency_checks = list(state.get("latency_checks", []))
        self.cost_model.correction = state.get("latency_correction", 1.0)
        measured = state.get("latency_measured_arch")
        self._measured_arch = Arch.coerce(measured) if measured is not None else None
        self.skipped = state["skipped"]
        _set_rng_state(state["rng"])

    # -- the run ------------------------------------------------------------------------------------------

    def run(self) -> SearchResult:
        cfg = self.cfg
        if self.rank == 0 and self.out:
            os.makedirs(self.out, exist_ok=True)
            # a run killed while writing leaves its temporary file behind (the checkpoint itself is whole)
            for name in os.listdir(self.out):
                if is_temporary(name):
                    path = os.path.join(self.out, name)
                    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            cfg.save_yaml(os.path.join(self.out, "config.yaml"))
        bar = None
        if cfg.progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, desc="search", dynamic_ncols=True)
        batches = self._batches()
        while self.step < self.total_steps:
            # every step starts from an RNG state that depends only on (seed, step, rank): a resumed run draws
            # the same augmentations and dropout masks as an uninterrupted one
            torch.manual_seed(_step_seed(cfg.seed, self.step, self.rank))
            self._train_step(next(batches))
            self.step += 1
            if bar is not None:
                bar.update(1)
            if self.step % self.shrink_every == 0 and self.step < self.total_steps:
                self.shrink()
            if self.controller is not None and self.step in self.controller.snapshot_steps():
                self._take_member(self.controller.snapshot_steps().index(self.step))
            if self.step % self.eval_every == 0 and self.step < self.total_steps:
                row = self.record(self.evaluate(self.evaluated_model()))
                if bar is not None:
                    bar.set_postfix(cost=f"{row['cost']:.3g}", metric=row["metric"], rho=f"{row['rho']:.2g}")
            if self.step % self.checkpoint_every == 0 and self.step < self.total_steps:
                self.checkpoint()
        if bar is not None:
            bar.close()
        self.shrink(final=True)
        model = self.evaluated_model()
        metric = self.evaluate(model)
        self.record(metric)
        self.checkpoint()
        result = self._result(model, metric, self.budget)
        result.family = [self._member_result(m) for m in self.family] + [result] if self.family else []
        if self.rank == 0 and self.out:
            result.save(self.out)
        return result

    def _result(self, model: HRNASNet, metric: Optional[float], budget: Optional[int]) -> SearchResult:
        return SearchResult(
            arch=self.arch,
            model=model,
            history=list(self.history),
            metric=metric,
            metric_name=self.make_metric().name,
            macs=count_macs(self.arch, self.cost_size, self.in_chans),
            params=count_params(self.arch, self.in_chans),
            input_size=self.cost_size,
            budget=budget,
            budget_kind=self.cost_model.metric,
            supernet_arch=self.supernet_arch,
            config=self.cfg,
            cost=self.cost_model.total(self.arch),
            measured_latency_ms=self._measured_latency(),
        )

    def _measured_latency(self) -> Optional[float]:
        # the kept network's own readings (pooled); the last network timed can be a cut that was then not made
        digest = _arch_digest(self.arch)
        mine = [c["measured_ms"] for c in self.latency_checks if c.get("arch") == digest]
        return mine[-1] if mine else None

    def _take_member(self, i: int) -> None:
        """A family member: cut to budget ``i`` (EMA gates decide, as at the end of a run), evaluate, keep."""
        budget = self.controller.budgets[i]
        self.shrink(final=True, budget=budget)
        model = self.evaluated_model()
        metric = self.evaluate(model)
        self.record(metric)
        member = self._result(model, metric, int(budget))
        entry = {
            "step": self.step,
            "budget": int(budget),
            "cost": member.cost,
            "metric": metric,
            "measured_latency_ms": member.measured_latency_ms,
        }
        if self.out:
            entry["directory"] = os.path.join(self.out, "family", f"{i}-{budget_label(budget, member.budget_kind)}")
            if self.rank == 0:
                member.save(entry["directory"])
        else:
            entry["result"] = member  # in memory only (no output_dir, so no checkpoint to resume from either)
        self.family.append(entry)
        self.checkpoint()

    def _member_result(self, entry: dict) -> SearchResult:
        if "result" in entry:
            return entry["result"]
        from ..hub import load_pretrained

        directory = entry["directory"]  # a member taken before this run was resumed: read back from its directory
        arch = Arch.load(os.path.join(directory, "arch.json"))
        with open(os.path.join(directory, "history.jsonl")) as f:
            history = [json.loads(line) for line in f]
        return SearchResult(
            arch=arch,
            model=load_pretrained(directory).eval(),
            history=history,
            metric=entry["metric"],
            metric_name=self.make_metric().name,
            macs=count_macs(arch, self.cost_size, self.in_chans),
            params=count_params(arch, self.in_chans),
            input_size=self.cost_size,
            budget=entry["budget"],
            budget_kind=self.cost_model.metric,
            supernet_arch=self.supernet_arch,
            config=self.cfg,
            cost=entry["cost"],
            measured_latency_ms=entry.get("measured_latency_ms"),
        )


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]), "python_pos": random.getstate()[2]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _config_from_dict(d: dict) -> dict:
    d = dict(d)
    if d.get("input_size") is not None:
        d["input_size"] = tuple(d["input_size"])
    d["betas"] = tuple(d.get("betas", (0.9, 0.999)))
    return d


def search(
    supernet: HRNASNet,
    train_data: Dataset | DataLoader,
    val_data: Optional[Dataset | DataLoader] = None,
    config: Optional[SearchConfig] = None,
    *,
    loss: Optional[Callable[[torch.Tensor, Any], torch.Tensor]] = None,
    metric: Optional[Callable[[], Metric]] = None,
    latency_model: Any = None,
    **settings: Any,
) -> SearchResult:
    """Search a smaller network inside ``supernet`` by fine-grained progressive shrinking, training it as it goes.

    Args:
        supernet: the full-width network (``hrnas.create_supernet(...)``); it is not modified.
        train_data: a map-style dataset of ``(image, target)`` pairs (batched, sharded and ordered
            deterministically, so runs resume exactly), or a ``DataLoader`` used as given.
        val_data: dataset or loader for the metric (optional).
        config: a :class:`SearchConfig`; keyword ``settings`` override its fields (``budget='1.4G'``,
            ``input_size=(512, 512)``, ``epochs=...``, ``output_dir=...``, ``resume=...``; see ``SearchConfig``).
        loss: ``loss(output, target)``; default: the task preset's (cross-entropy, heatmap MSE...).
        metric: a factory of :class:`hrnas.search.tasks.Metric`; default: the task preset's (mIoU, PCK, top-1).
        latency_model: a :class:`hrnas.latency.LatencyTable` for ``latency_ms=`` budgets (default: the
            ``latency_table`` setting's file, or measured now on this device and cached).

    Returns:
        A :class:`SearchResult` whose ``.model`` is a plain, static ``HRNASNet`` with the trained weights (EMA,
        BatchNorm re-calibrated) and whose ``.arch`` is the found architecture.
    """
    cfg = (config or SearchConfig()).replace(**settings)
    return _Run(supernet, train_data, val_data, cfg, loss, metric, latency_model).run()


def _arch_digest(arch: Arch) -> str:
    """A short stable name of an architecture (latency checks record which network each reading was of)."""
    return hashlib.sha256(arch.to_json().encode()).hexdigest()[:16]
