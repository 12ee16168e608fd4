"""The search loop: train the supernet with the cost-weighted L1 on its gates and shrink it as it goes.

One run = one training of the supernet (reference section 4): every step adds ``rho * sum(penalty * |gamma|)``
to the objective; every ``shrink_every`` steps the units selected by :mod:`hrnas.searching.select` are physically
removed (model, EMA and optimizer state sliced together, the removed units' constant output folded); every
``eval_every`` steps the EMA weights are evaluated after BatchNorm re-calibration, a row goes to
``history.jsonl`` and an atomic checkpoint is written. The network that comes out is the searched model, trained.

This module orchestrates the parts (:mod:`.plan`, :mod:`.trainer`, :mod:`.penalty`, :mod:`.budget`,
:mod:`.feedback`, :mod:`.recorder`, :mod:`.loaders`, :mod:`hrnas.threads`). Under ``torchrun`` (gloo on CPU, nccl
on GPU) rank 0 decides each shrink and broadcasts it; every rank applies it and re-wraps its model.
"""

from __future__ import annotations

import copy
import os
import random
from typing import Any, Callable, Optional

import torch
from torch.utils.data import DataLoader, Dataset

from ..arch import Arch
from ..cost import count_macs
from ..net import HRNASNet
from ..threads import ThreadTuner
from .budget import Budget
from .callbacks import Callbacks, ShrinkEvent, StepEvent
from .checkpoint import (
    CHECKPOINT_NAME,
    clean_run_directory,
    read_search_checkpoint,
    rng_state,
    set_rng_state,
    write_search_checkpoint,
)
from .config import SearchConfig
from .distributed import broadcast, setup_device
from .ema import calibrate_bn
from .errors import SearchError
from .feedback import LatencyFeedback, make_cost_model, run_threads
from .loaders import RunData
from .penalty import GatePenalty
from .plan import cost_input_size, plan_run, step_seed
from .recorder import Recorder, network_columns, progress_bar
from .result import RunInfo, SearchResult
from .select import Selection, UnitIndex, select_units
from .shrink import plan_shrink
from .tasks import Metric, get_task
from .trainer import NonFinite, Trainer, model_builder
from .units import CostModel

__all__: list[str] = []  # the run is driven through hrnas.search and hrnas.train (.entry)


class _Run:
    """One search run: its components, and the order in which they act."""

    def __init__(
        self,
        supernet: HRNASNet,
        train_data: Dataset | DataLoader,
        val_data: Optional[Dataset | DataLoader],
        cfg: SearchConfig,
        loss: Optional[Callable] = None,
        metric: Optional[Callable[[], Metric]] = None,
        callbacks: Optional[list] = None,
        fixed_arch: bool = False,
    ) -> None:
        if not isinstance(supernet, HRNASNet):
            raise TypeError(
                f"search and train need an hrnas.HRNASNet (hrnas.create_supernet), got {type(supernet).__name__}"
            )
        self.device, self.rank, self.world = setup_device(cfg.device)
        resume = read_search_checkpoint(cfg.resume) if cfg.resume else None
        cfg = cfg.resumed_from(resume["config"]) if resume else cfg
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)

        arch = Arch.coerce(resume["arch"]) if resume else supernet.arch
        task = get_task(arch.task, cfg.ignore_index, cfg.label_smoothing, arch.num_classes)
        self.make_metric = metric or task.make_metric
        size, in_chans = cost_input_size(cfg, getattr(supernet, "pretrained_cfg", None)), supernet.in_chans
        budget = Budget.from_config(cfg)  # the one reading of budget=, params= and latency_ms=
        self.cost_model = make_cost_model(
            cfg, budget, supernet.arch, size, in_chans, self.device, self.rank, self.world
        )
        self.data = RunData(train_data, val_data, cfg, self.rank, self.world, self.device)
        start, fixed_cost = self.cost_model.total(supernet.arch), self.cost_model.fixed(supernet.arch)
        metric_kind = self.cost_model.metric
        self.plan = plan_run(cfg, self.data.steps_per_epoch, task=arch.task, budget=budget, metric=metric_kind,
                             start_cost=start, fixed_cost=fixed_cost, input_size=size)  # fmt: skip
        self.controller, self.ramp = self.plan.controller(), self.plan.ramp()

        self.build = model_builder(supernet)
        model = self.build(arch) if resume else copy.deepcopy(supernet)
        check = None if loss is not None else task.check_target
        self.trainer = Trainer(model, cfg, self.device, self.world, self.build, loss or task.loss, check)
        # the normaliser is fixed by the supernet, as in the paper
        normalizer = self.cost_model.normalizer(supernet.arch)
        self.penalty = GatePenalty(self.cost_model, normalizer, cfg.penalty == "equal", self.device)
        wanted, budgets = cfg.latency_feedback, self.plan.budgets
        self.feedback = LatencyFeedback(self.cost_model, budgets, wanted, self.build, self.device, in_chans)
        self.recorder = Recorder(cfg.output_dir if self.rank == 0 else None)
        self.threads = ThreadTuner(run_threads(cfg, self.cost_model))
        self.info = RunInfo(
            self.make_metric().name, size, in_chans, metric_kind, supernet.arch, cfg, self.plan, fixed_arch
        )
        self.step = 0
        self.fixed_arch = fixed_arch  # a fixed architecture is trained: no shrink checks (hrnas.train)
        self.callbacks = Callbacks(callbacks, self, self.rank == 0)
        if resume:
            self.load_state_dict(resume)
        self.penalty.refresh(self.arch, self.trainer.model)
        self.macs_now = count_macs(self.arch, size, in_chans)

    @property
    def arch(self) -> Arch:
        """The architecture of the network being trained."""
        return self.trainer.model.arch

    def rho(self) -> float:
        return self.controller.rho_at(self.step) if self.controller is not None else self.ramp.rho(self.step)

    # -- the checkpoint: the one writer and reader of the run's state ---------------------------------------

    def checkpoint(self) -> None:
        if self.rank == 0 and self.cfg.output_dir:
            write_search_checkpoint(os.path.join(self.cfg.output_dir, CHECKPOINT_NAME), **self.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch.to_dict(),
            "config": self.cfg.to_dict(),
            "step": self.step,
            "trainer": self.trainer.state_dict(),
            "penalty": self.penalty.state_dict(),
            "controller": self.controller.state_dict() if self.controller is not None else None,
            "feedback": self.feedback.state_dict(),
            "recorder": self.recorder.state_dict(),
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trainer.load_state_dict(state["trainer"])
        self.penalty.load_state_dict(state["penalty"])
        if self.controller is not None:
            self.controller.load_state_dict(state["controller"])
        self.feedback.load_state_dict(state["feedback"])
        self.recorder.load_state_dict(state["recorder"])
        self.step = state["step"]
        set_rng_state(state["rng"])

    # -- the run --------------------------------------------------------------------------------------------

    def run(self) -> SearchResult:
        cfg, plan, out = self.cfg, self.plan, self.cfg.output_dir
        self.threads.start()
        if self.rank == 0 and out:
            clean_run_directory(out)
            cfg.save_yaml(os.path.join(out, "config.yaml"))
        finished_before = self.step >= plan.total_steps  # resumed after the end: final cut and row are made
        bar = progress_bar(plan.total_steps, self.step, cfg.progress and self.rank == 0)
        batches = None if finished_before else self.data.train_batches(self.step)
        self.callbacks.call("on_run_start")
        while self.step < plan.total_steps:
            # every step starts from an RNG state that depends only on (seed, step, rank): a resumed run draws
            # the same augmentations and dropout masks as an uninterrupted one
            torch.manual_seed(step_seed(cfg.seed, self.step, self.rank))
            done = self.train_step(next(batches))
            self.step += 1
            if done is not None and self.callbacks:
                self.callbacks.call("on_step_end", StepEvent(self.step, *done, self.threads.threads))
            bar.update(1)
            inside = self.step < plan.total_steps
            if self.step % plan.shrink_every == 0 and inside and not self.fixed_arch:
                self.shrink()
            if self.controller is not None and self.step in self.controller.snapshot_steps():
                self.take_member(self.controller.snapshot_steps().index(self.step))
            if self.step % plan.eval_every == 0 and inside:
                row = self.record(self.evaluate()[1])
                bar.set_postfix(cost=f"{row['cost']:.3g}", metric=row["metric"], cpu=self.threads.label)
            if self.step % plan.checkpoint_every == 0 and inside:
                self.checkpoint()
        bar.close()
        if not finished_before and not self.fixed_arch:
            self.shrink(final=True)
        model, metric = self.evaluate()
        if not finished_before:
            self.record(metric)
            self.checkpoint()
        result = self.result(model, metric, plan.budget)
        if self.recorder.family:
            result.family = self.recorder.members(self.info) + [result]
        if self.rank == 0 and out:
            result.save(out)
        self.callbacks.call("on_run_end", result)
        return result

    def train_step(self, batch: Any) -> Optional[tuple[float, float]]:
        """One optimizer step; its loss and seconds, or ``None`` when a non-finite step was skipped."""
        try:
            loss, l1, seconds = self.trainer.step(batch, self.plan.lr_at(self.step), self.rho(), self.penalty)
        except NonFinite as e:
            # nothing of this step reached the weights: skip it (on_nan='skip') or stop
            if self.cfg.on_nan == "skip":
                self.recorder.skipped += 1
                return None
            where = os.path.join(self.cfg.output_dir, CHECKPOINT_NAME) if self.cfg.output_dir else None
            hint = f"the last good checkpoint is {where}; resume from it with a lower lr" if where else "lower the lr"
            raise SearchError(f"{e.what} became {e.value} at step {self.step}; stopping ({hint})") from None
        self.recorder.add_step(loss, l1, seconds, self.macs_now)
        self.threads.step_done(seconds)
        return loss, seconds

    def shrink(self, final: bool = False, budget: Optional[float] = None) -> None:
        """Remove units: dead ones, and live ones where the budget trajectory demands (``final``: cut inside the
        budget, or inside the family member's ``budget``)."""
        self.callbacks.call("on_shrink_start", final)
        trainer, equal = self.trainer, self.cfg.penalty == "equal"
        ema = trainer.ema.shadow if trainer.ema is not None else None
        importance = trainer.importance if self.cfg.cut_rank == "taylor" else None
        index = UnitIndex(self.arch, trainer.model.state_dict(), ema, self.cost_model, self.penalty.normalizer, equal,
                          importance)  # fmt: skip
        sel = self.choose(index, final, budget) if self.rank == 0 else None
        removed = sel.removed if sel is not None else None
        if self.world > 1:
            # rank 0 decides (and measures); every rank applies the same removal, rho and latency correction
            control = self.controller.state_dict() if self.controller is not None else None
            removed, control, measured = broadcast([removed, control, self.feedback.state_dict()])
            if self.controller is not None:
                self.controller.load_state_dict(control)
            self.feedback.load_state_dict(measured)
        if removed is not None and bool(removed.any()):
            self.trainer.swap(plan_shrink(self.arch, index.keeps(removed)))
            self.threads.network_changed()
            self.macs_now = count_macs(self.arch, self.info.input_size, self.info.in_chans)
            self.penalty.refresh(self.arch, self.trainer.model)
        if sel is not None and self.callbacks:
            event = ShrinkEvent(self.step, final, sel.cost_before, sel.cost_after, bool(sel.forced))
            self.callbacks.call("on_shrink_end", event)

    def choose(self, index: UnitIndex, final: bool, budget: Optional[float]) -> Selection:
        """Rank 0: the units to remove (latency feedback timing the cut), and the controller's update."""
        members = len(self.recorder.family)
        self.feedback.measure(self.arch, self.step, members, force=final)
        # networks are priced with the latency correction measured so far (none: the cost model as it is); a cut
        # the feedback times and rejects is chosen again with the correction its timing gives
        args = (self.cfg.threshold, self.controller, self.step, final, self.plan.min_shrink, budget)

        def select(costs: CostModel) -> Selection:
            return select_units(index.priced(costs), *args, multiple=self.cfg.channel_multiple)

        sel = select(self.feedback.costs())
        if self.feedback.enabled and self.controller is not None:
            sel = self.feedback.settle(index, sel, select, self.controller, self.step, members, final, budget)
        if self.controller is not None:
            self.controller.update(self.step, sel.cost_before, sel.cost_after, sel.forced)
        return sel

    def take_member(self, i: int) -> None:
        """A family member: cut to budget ``i`` (EMA gates decide, as at the end of a run), evaluate, keep."""
        budget = self.controller.budgets[i]
        self.shrink(final=True, budget=budget)
        model, metric = self.evaluate()
        self.record(metric)
        self.recorder.add_member(i, self.step, self.result(model, metric, int(budget)), self.cfg.output_dir, self.rank)
        self.checkpoint()

    def evaluate(self) -> tuple[HRNASNet, Optional[float]]:
        """The EMA weights with re-calibrated BatchNorm statistics (what the paper evaluates), and their metric."""
        model = self.trainer.averaged_model()
        if self.cfg.calib_batches > 0:
            calibrate_bn(model, self.data.calibration_inputs(self.cfg.calib_batches), all_reduce=self.world > 1)
        model.eval()
        return model, self.data.evaluate(model, self.make_metric, self.cfg.max_val_batches)

    def record(self, metric: Optional[float]) -> dict:
        network = network_columns(self.arch, self.feedback.costs(), self.info.input_size, self.info.in_chans)
        latency = round(self.feedback.correction, 4) if self.cost_model.metric == "latency" else None
        step, epoch, lr = self.step, round(self.step / self.plan.steps_per_epoch, 3), self.plan.lr_at(self.step)
        row = (step, epoch, network, self.rho(), lr, metric, self.info.metric_name, latency, self.threads.threads)
        recorded = self.recorder.record(*row)
        self.callbacks.call("on_evaluate", recorded)
        return recorded

    def result(self, model: HRNASNet, metric: Optional[float], budget: Optional[int]) -> SearchResult:
        cost, measured = self.feedback.costs().total(self.arch), self.feedback.measured_ms(self.arch)
        return self.info.result(self.arch, model, list(self.recorder.history), metric, budget, cost, measured)
