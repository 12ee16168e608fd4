"""``SearchConfig``: every setting of a search run, saved as ``config.yaml`` so any run can be repeated.

The defaults follow the paper where they carry over to short CPU runs (threshold 1e-3, EMA 0.9999 adjusted to
the batch size with the original warm-up, BN re-calibration before every evaluation, cost-weighted L1 on the BN
gates); the optimizer and schedule defaults suit runs of a few epochs.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

from .._size import pair
from ..files import write_atomic

__all__ = ["SearchConfig", "PAPER_RHO", "renamed_settings"]

# rho_max of the original configs (reference section 4.4), used in paper mode (no budget).
PAPER_RHO = {"cls": 1.8e-4, "seg": 1.4e-4, "pose": 1e-6}


@dataclass
class SearchConfig:
    """Settings of :func:`hrnas.search`. Every field can also be passed to ``search`` as a keyword.

    Budget and cost:
        budget: MACs ceiling (``'1.4G'``, ``'300M'``, a number) at ``input_size``; the run ends inside
            ``[0.9, 1.0] x budget``. ``None`` (and no ``params``) runs the paper's fixed-rho schedule.
        params: parameter ceiling instead of MACs.
        latency_ms: latency ceiling instead (milliseconds at ``input_size``, batch 1, predicted by a latency table
            measured on this device: :mod:`hrnas.latency`); the penalty then weights each unit by its measured
            time, and the run ends inside ``[0.9, 1.0] x latency_ms``, aiming at its middle and removing nothing
            below it (a measured latency moves by a few per cent when measured again).
        latency_feedback: latency budgets, experimental: once the shrinking network nears the budget, time it on
            this device at every shrink check and scale the table's prediction to the measurement (a final cut is
            timed before it is made), so that the budget is about measured latency, not only the table's
            prediction. Off by default: on the shared machines measured so far, timings taken between training
            steps varied widely from one check to the next, and a high reading makes the search cut more than the
            budget needs (it cannot grow back). Default: the budget is the table's prediction.
        family_recovery: with a list of budgets (``budget=['2.2G', '1.4G', '0.8G']``, or of ``params`` or
            ``latency_ms``), one run returns a model per budget (``SearchResult.family``): the cost stops at each
            budget for this fraction of the run, so that the network recovers, then that member is taken.
        latency_table: the latency table of ``latency_ms`` budgets: a :class:`hrnas.LatencyTable` (or its
            ``to_dict()``), or the path of one's JSON file (``hrnas latency-table``); default: measured now for the
            supernet's space, or taken from the cache of an earlier measurement on this device. A table given as an
            object is saved with the run's settings (as its dict), so that ``config.yaml`` and resuming use it too.
        input_size: ``(height, width)`` the cost is counted at (default: the space's reference resolution).
        cost_num_classes: classifier width the budget is stated for (default: the network's own).

    Training:
        epochs, steps: run length (``steps`` wins when given).
        batch_size: per process.
        optimizer: ``'sgd'`` (momentum, Nesterov) or ``'adamw'``.
        lr, momentum, weight_decay, betas, eps: optimizer settings (``lr`` is the peak of the schedule).
        lr_schedule: ``'cosine'`` or ``'constant'``, after a linear warm-up over ``lr_warmup`` of the run (at
            least 10 steps, at most half the run).
        label_smoothing, ignore_index: classification / segmentation loss settings.
        grad_clip: clip the gradient norm (``None``: off); the untrained network's large logits can make the first
            steps diverge at small batch sizes without it.
        amp: ``'bf16'`` or ``'fp16'`` autocast on GPU (``None``: off); ``channels_last``: memory format of the
            training network (default on: faster on the CPUs and GPUs measured).

    Search:
        rho: paper mode's rho_max (default per task: cls 1.8e-4, seg 1.4e-4, pose 1e-6); budget mode's starting
            rho, reached at the end of the hold (default: scaled to the run so that the penalty alone could move a
            gate of penalty 1 by about 1 before the budget is reached).
        rho_warmup_epochs: paper mode's linear ramp of rho (25 epochs in the paper; at most half the run).
        penalty: ``'cost'`` (the paper: units penalised by their cost) or ``'equal'`` (plain network slimming).
        l1: ``'proximal'`` (soft-thresholding after each step, which reaches exact zeros) or ``'subgradient'``
            (the L1 term in the loss, as the original code).
        threshold: gate value at or below which a unit is dead (1e-3).
        min_shrink: paper mode shrinks once dead units add up to this cost (default: 1e6 MACs or 0.5 % of the
            supernet, whichever is smaller).
        shrink_every: steps between shrink checks (default: the run split into about 40 checks).
        reach: budget mode: fraction of the run at which the cost reaches the budget.
        hold: budget mode: fraction of the run during which only the penalty acts (ramping up) and only units it has
            emptied are removed, before the trajectory to the budget starts (must be below ``reach``; default 0).
        tail: budget mode, what the rest of the run does once the network has reached the budget: ``'finetune'``
            (default) stops the penalty and restarts the learning rate (warm-up, then the schedule over the rest
            of the run), so that the network that survived is trained as a network of its own; ``'penalised'``
            keeps the penalty, lowered step by step, and the schedule running (the earlier default; docs/search.md
            has the measurements behind the change).
        rho_limit: budget mode: the controller keeps rho within ``[1e-3, rho_limit] x`` its natural scale (the strength
            at which the penalty could move a gate of penalty 1 by about 1 before the budget is reached). Default 1:
            above it the cost weighting decides alone which units survive (the earlier default was 10; docs/search.md).
        cut_rank: budget mode, how units the trajectory forces out are ranked: ``'taylor'`` (default) by their
            measured importance per unit of cost (the running mean of ``|gamma * dL/dgamma|``, the loss their removal
            would add to first order, over their cost), ``'gate'`` by ``|gamma|`` alone (the earlier default).
        channel_multiple: every kernel path keeps a multiple of this many hidden channels at every cut (rounded to
            the nearest, down at the final cut so that the budget holds; 1: any count). Convolutions over some
            channel counts run faster on some devices (``benchmarks/cpu_shapes.py`` measures which here).

    Evaluation and bookkeeping:
        ema_decay: EMA decay at batch 4096 (adjusted to the batch size as in the paper); 0 disables the EMA.
        calib_batches: batches for BatchNorm re-calibration before each evaluation.
        eval_every: steps between evaluations (default: 8 per run); ``max_val_batches`` caps each evaluation.
        checkpoint_every: steps between checkpoints (default: every evaluation).
        output_dir: where checkpoints, ``history.jsonl``, plots and the result go (``None``: nothing written).
        seed, device, num_workers, progress, on_nan (``'stop'`` or ``'skip'``).
        threads: intra-op CPU threads: ``None`` (default) chooses them from the CPUs this process may use that
            other processes leave free, and follows the load during the run (:mod:`hrnas.threads`); a number fixes
            them. torch's own setting is restored when the search returns.

    Provenance:
        supernet, data: descriptions of the supernet and data of the run (filled by ``hrnas search`` so that
            ``hrnas search --config`` can rebuild them; informational in library calls).
    """

    budget: Optional[Any] = None
    params: Optional[Any] = None
    latency_ms: Optional[float] = None
    latency_table: Optional[Union[str, Mapping[str, Any], Any]] = None  # a path, a LatencyTable or its dict
    latency_feedback: bool = False
    family_recovery: float = 0.05
    input_size: Optional[Tuple[int, int]] = None
    cost_num_classes: Optional[int] = None

    epochs: float = 10.0
    steps: Optional[int] = None
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    betas: Tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    lr_schedule: str = "cosine"
    lr_warmup: float = 0.03
    label_smoothing: float = 0.0
    ignore_index: int = 255
    grad_clip: Optional[float] = 5.0
    amp: Optional[str] = None
    channels_last: Optional[bool] = None

    rho: Optional[float] = None
    rho_warmup_epochs: float = 25.0
    penalty: str = "cost"
    l1: str = "proximal"
    threshold: float = 1e-3
    min_shrink: Optional[float] = None
    shrink_every: Optional[int] = None
    reach: float = 0.6
    hold: float = 0.0
    tail: str = "finetune"
    rho_limit: float = 1.0
    cut_rank: str = "taylor"
    channel_multiple: int = 1

    ema_decay: float = 0.9999
    calib_batches: int = 10
    eval_every: Optional[int] = None
    max_val_batches: Optional[int] = None
    checkpoint_every: Optional[int] = None
    output_dir: Optional[str] = None
    resume: Optional[str] = None
    seed: int = 0
    threads: Optional[int] = None
    device: str = "auto"
    num_workers: int = 0
    progress: bool = True
    on_nan: str = "stop"
    supernet: Optional[dict] = None
    data: Optional[dict] = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        choices = {
            "optimizer": ("sgd", "adamw"),
            "lr_schedule": ("cosine", "constant"),
            "penalty": ("cost", "equal"),
            "l1": ("proximal", "subgradient"),
            "on_nan": ("stop", "skip"),
            "tail": ("finetune", "penalised"),
            "cut_rank": ("taylor", "gate"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {self.amp!r}")
        given = [n for n in ("budget", "params", "latency_ms") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of budget= (MACs), params= or latency_ms=, not {' and '.join(given)}")
        if self.latency_ms is not None:
            values = self.latency_ms if isinstance(self.latency_ms, (list, tuple)) else [self.latency_ms]
            if not values or not all(isinstance(v, (int, float)) and v > 0 for v in values):
                raise ValueError(f"latency_ms must be a positive number of milliseconds, got {self.latency_ms!r}")
        for name in ("budget", "params", "latency_ms"):
            value = getattr(self, name)
            if isinstance(value, tuple):
                setattr(self, name, list(value))  # lists survive the YAML round trip
        if not 0.0 <= self.family_recovery < 0.5:
            raise ValueError(f"family_recovery must be a fraction of the run in [0, 0.5), got {self.family_recovery}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be a positive number of threads, or None to choose, got {self.threads!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not isinstance(self.channel_multiple, int) or self.channel_multiple < 1:
            raise ValueError(f"channel_multiple must be a whole number of channels >= 1, got {self.channel_multiple!r}")
        if self.steps is None and not self.epochs > 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if not 0.0 <= self.hold < self.reach <= 1.0:
            raise ValueError(
                f"need 0 <= hold < reach <= 1 (fractions of the run), got hold={self.hold}, reach={self.reach}"
            )
        if self.input_size is not None:
            self.input_size = pair(self.input_size)
        self.betas = tuple(self.betas)
        table = self.latency_table
        if isinstance(table, os.PathLike):
            self.latency_table = os.fspath(table)
        elif not (table is None or isinstance(table, (str, Mapping)) or hasattr(table, "to_dict")):
            # a LatencyTable is recognised by its to_dict(): importing hrnas.latency here would load torch
            raise TypeError(f"latency_table must be a LatencyTable or a path, got {type(table).__name__}")

    def replace(self, **changes: Any) -> SearchConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            names = [f.name for f in dataclasses.fields(self)]
            hints = {u: difflib.get_close_matches(u, names, n=1) for u in unknown}
            text = ", ".join(f"{u!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for u, h in hints.items())
            raise TypeError(f"unknown search setting(s): {text}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain values only (a latency table as its dict), for ``config.yaml`` and checkpoints."""
        table = self.latency_table
        d = dataclasses.asdict(self.replace(latency_table=None))  # asdict would take a table apart, unversioned
        d["latency_table"] = table.to_dict() if hasattr(table, "to_dict") else table
        d["input_size"] = list(self.input_size) if self.input_size else None
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchConfig:
        """Settings from :meth:`to_dict`'s output (a run's ``config.yaml``, a checkpoint's); unnamed fields keep their
        defaults."""
        return cls().replace(**data)

    def resumed_from(self, saved: Mapping[str, Any]) -> SearchConfig:
        """The settings of a resumed run: the ``saved`` run's, except what this call decides: ``resume``,
        ``progress``, ``device``, and, where this call sets them, ``output_dir`` and ``latency_table``."""
        run = SearchConfig.from_dict(saved)
        return run.replace(
            resume=self.resume,
            output_dir=self.output_dir or run.output_dir,
            progress=self.progress,
            device=self.device,
            latency_table=self.latency_table if self.latency_table is not None else run.latency_table,
        )

    def save_yaml(self, path: str | os.PathLike) -> None:
        import yaml

        write_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> SearchConfig:
        import yaml

        with open(path) as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{os.fspath(path)}: expected a mapping of search settings")
        return cls.from_dict(data)


def renamed_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with deprecated names replaced (``latency_model`` is ``latency_table``), with a warning."""
    if "latency_model" not in settings:
        return settings
    warnings.warn("search(latency_model=...) is deprecated; pass latency_table=...", DeprecationWarning, 3)
    if settings.get("latency_table") is not None:
        raise TypeError("pass the latency table once, as latency_table= (latency_model= is its deprecated name)")
    settings = dict(settings)
    settings["latency_table"] = settings.pop("latency_model")
    return settings
