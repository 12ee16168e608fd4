"""Callbacks: code of your own that observes a search or training run (``hrnas.search(..., callbacks=[...])``).

A callback is any object with some of the methods of :class:`SearchCallback`; each receives a :class:`RunView`, the
run's public face: the step, the architecture and weights being trained, the loss, the schedule, the gates, and
ways to draw a training batch, evaluate and re-calibrate a model as the run itself does. Callbacks observe: one
that changes the weights or the BatchNorm statistics of the network being trained changes the run. Under
``torchrun`` they are called on rank 0 only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence

import torch

from .ema import calibrate_bn
from .loaders import split_batch, to_device

if TYPE_CHECKING:
    from ..arch import Arch
    from ..net import HRNASNet
    from .config import SearchConfig
    from .loop import _Run
    from .result import SearchResult

__all__ = ["RunView", "SearchCallback", "ShrinkEvent", "StepEvent"]


@dataclass(frozen=True)
class StepEvent:
    """One optimizer step that reached the weights: its number (counting from 1), loss and duration."""

    step: int
    loss: float
    seconds: float
    threads: int


@dataclass(frozen=True)
class ShrinkEvent:
    """One shrink check: the cost (in the budget's unit) before and after it, whether live units were forced out to
    follow the budget's trajectory, and whether it was the run's final cut."""

    step: int
    final: bool
    cost_before: float
    cost_after: float
    forced: bool


class SearchCallback:
    """Base class of callbacks (optional: any object with some of these methods works). Every method does nothing."""

    def on_run_start(self, run: RunView) -> None:
        """Before the first step (also when a run resumes)."""

    def on_step_end(self, run: RunView, event: StepEvent) -> None:
        """After each optimizer step that reached the weights (a skipped non-finite step has none)."""

    def on_shrink_start(self, run: RunView, final: bool) -> None:
        """Before a shrink check chooses units (the network is still the one that was trained)."""

    def on_shrink_end(self, run: RunView, event: ShrinkEvent) -> None:
        """After a shrink check, once the chosen units are removed (the network may be unchanged)."""

    def on_evaluate(self, run: RunView, row: dict[str, Any]) -> None:
        """After an evaluation, with the row it added to ``history.jsonl``."""

    def on_run_end(self, run: RunView, result: SearchResult) -> None:
        """After the last evaluation, with the run's result."""


class RunView:
    """What a callback may read of a run, and what it may do as the run does (draw a batch, evaluate, calibrate)."""

    def __init__(self, run: _Run) -> None:
        self._run = run

    @property
    def step(self) -> int:
        """Optimizer steps taken so far."""
        return self._run.step

    @property
    def config(self) -> SearchConfig:
        """The run's settings."""
        return self._run.cfg

    @property
    def device(self) -> torch.device:
        return self._run.device

    @property
    def arch(self) -> Arch:
        """The architecture of the network being trained."""
        return self._run.arch

    @property
    def model(self) -> HRNASNet:
        """The network being trained (its current weights, not the EMA's)."""
        return self._run.trainer.model

    @property
    def channels_last(self) -> bool:
        """Whether the run feeds the model channels-last inputs."""
        return self._run.trainer.channels_last

    @property
    def loss(self) -> Callable[[torch.Tensor, Any], torch.Tensor]:
        """The training loss, ``loss(output, target)``."""
        return self._run.trainer.loss

    @property
    def input_size(self) -> tuple[int, int]:
        """The input size costs are counted at."""
        return self._run.info.input_size

    @property
    def in_chans(self) -> int:
        return self._run.info.in_chans

    @property
    def lr(self) -> float:
        """The learning rate at the current step."""
        return self._run.plan.lr_at(self._run.step)

    @property
    def rho(self) -> float:
        """The penalty strength at the current step."""
        return self._run.rho()

    @property
    def has_val_data(self) -> bool:
        return self._run.data.val_data is not None

    def gates(self) -> list[torch.Tensor]:
        """The gates the penalty acts on (the BatchNorm weights of every searchable unit), as live tensors."""
        return [g for g, _ in self._run.penalty.gates]

    def train_batch(self, index: int = 0) -> tuple[torch.Tensor, Any]:
        """A training batch ``(inputs, target)`` on the run's device, from the run's deterministic order, far from
        the batches the run itself draws (drawing it does not move the run's data order)."""
        data = self._run.data
        with torch.random.fork_rng(devices=[]):  # a data loader seeds itself from the global generator
            batch = next(data.train_batches((10**6 + index) * data.steps_per_epoch))
        return split_batch(to_device(batch, self.device))

    def build(self, arch: Arch) -> HRNASNet:
        """A fresh network of ``arch`` on the run's device, built as the run builds its networks."""
        return self._run.build(arch).to(self.device)

    def evaluate(self, model: torch.nn.Module) -> Optional[float]:
        """The validation metric of ``model`` as the run computes it (``None`` without validation data)."""
        run = self._run
        return run.data.evaluate(model, run.make_metric, run.cfg.max_val_batches)

    def calibrate(self, model: torch.nn.Module) -> None:
        """Re-estimate ``model``'s BatchNorm statistics on the run's calibration batches, as before an evaluation."""
        calibrate_bn(model, self._run.data.calibration_inputs(self._run.cfg.calib_batches))


class Callbacks:
    """The run's callbacks, called in order; methods a callback lacks are skipped."""

    def __init__(self, callbacks: Optional[Iterable[Any]], run: _Run, active: bool) -> None:
        self.callbacks: Sequence[Any] = list(callbacks or []) if active else []
        self.view = RunView(run)

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(self.view, *args)
