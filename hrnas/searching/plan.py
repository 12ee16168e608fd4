"""Planning a run: everything about a search that follows from its settings and a few numbers, before training.

:func:`plan_run` is a pure function of the :class:`SearchConfig`, the number of steps in an epoch and the costs of
the supernet; the :class:`RunPlan` it returns holds the run's length, how often it shrinks, evaluates and
checkpoints, its learning-rate schedule, its budgets, and how rho is steered (the budget controller, or the paper's
ramp). Nothing is trained, measured or written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .budget import Budget, BudgetController, RhoRamp
from .config import PAPER_RHO, SearchConfig

__all__ = ["RunPlan", "cost_input_size", "plan_run", "step_seed"]

# shrink checks in a run, unless shrink_every says otherwise; evaluations: eval_every, default 8 per run
SHRINK_CHECKS = 40
EVALUATIONS = 8


@dataclass(frozen=True)
class RunPlan:
    """The schedule of one run (see :func:`plan_run`).

    Attributes:
        total_steps, steps_per_epoch: the run's length and the steps in one pass over the training data.
        shrink_every, eval_every, checkpoint_every: steps between shrink checks, evaluations and checkpoints.
        lr, lr_schedule, lr_warmup_steps: the learning rate's peak, its schedule and its linear warm-up.
        metric: what costs count (``'macs'``, ``'params'`` or ``'latency'``, microseconds).
        start_cost: the supernet's cost.
        budget_spec: the run's :class:`Budget` (its amounts, band and goal); ``None`` in paper mode.
        rho: budget mode: the controller's starting rho; paper mode: the ramp's rho_max.
        rho_scale: budget mode: rho's natural scale, which bounds the controller to ``[1e-3, 10] x`` it.
        rho_warmup_steps: paper mode: the ramp's length.
        reach, hold, recovery: budget mode: the trajectory's timing (:class:`BudgetController`).
        min_shrink: paper mode: the least cost a shrink check removes at once.
        rho_limit: budget mode: rho stays within ``[1e-3, rho_limit] x rho_scale``.
        tail_start: budget mode with ``tail='finetune'``: the step at which the budget is reached, the penalty stops
            and the learning rate restarts (``None``: no restart).
    """

    total_steps: int
    steps_per_epoch: int
    shrink_every: int
    eval_every: int
    checkpoint_every: int
    lr: float
    lr_schedule: str
    lr_warmup_steps: int
    metric: str
    start_cost: int
    budget_spec: Optional[Budget]
    rho: float
    rho_scale: Optional[float]
    rho_warmup_steps: int
    reach: float
    hold: float
    recovery: int
    min_shrink: float
    rho_limit: float = 1.0
    tail_start: Optional[int] = None

    @property
    def budgets(self) -> tuple[int, ...]:
        """The budgets, largest first (the last is the run's own); empty in paper mode."""
        return self.budget_spec.amounts if self.budget_spec is not None else ()

    @property
    def budget(self) -> Optional[int]:
        """The run's budget (the smallest of a family's), ``None`` in paper mode."""
        return self.budget_spec.amount if self.budget_spec is not None else None

    def lr_at(self, step: int) -> float:
        """The learning rate of ``step``: linear warm-up, then cosine or constant; in a fine-tuned tail the same
        again from ``tail_start`` over the rest of the run."""
        start, end, warm = 0, self.total_steps, self.lr_warmup_steps
        if self.tail_start is not None and step >= self.tail_start:
            start = self.tail_start
            warm = min((end - start) // 2, max(10, int(0.05 * (end - start))))
        if step - start < warm:
            return self.lr * (step - start + 1) / warm
        if self.lr_schedule == "constant":
            return self.lr
        t = (step - start - warm) / max(1, end - start - warm)
        return 0.5 * self.lr * (1 + math.cos(math.pi * t))

    def controller(self) -> Optional[BudgetController]:
        """A new budget controller at the start of the run (budget mode), or ``None`` (paper mode)."""
        if not self.budgets:
            return None
        return BudgetController(
            self.budgets[-1],
            self.start_cost,
            self.total_steps,
            self.rho,
            reach=self.reach,
            hold=self.hold,
            rho_min=1e-3 * self.rho_scale,
            rho_max=self.rho_limit * self.rho_scale,
            family=list(self.budgets) if len(self.budgets) > 1 else None,
            recovery=self.recovery,
            finetune_tail=self.tail_start is not None,
            goal=self.budget_spec.goal,
            lower=self.budget_spec.band[0],
            floor=self.budget_spec.floor,
        )

    def schedule(self, points: int = 100) -> dict[str, Any]:
        """What the plots of a run draw besides its history: the supernet's cost, the trajectory the controller
        steers along (``(step, cost)``, budget mode), where the run must end (fractions of the budget) and where the
        fine-tuned tail starts."""
        controller = self.controller()
        steps = sorted({round(i * self.total_steps / points) for i in range(points + 1)})
        return {
            "start_cost": self.start_cost,
            "trajectory": [(s, controller.target(s)) for s in steps] if controller is not None else [],
            "band": self.budget_spec.band if self.budget_spec is not None else None,
            "tail_start": self.tail_start,
        }

    def ramp(self) -> Optional[RhoRamp]:
        """The paper's rho ramp (paper mode), or ``None`` (budget mode)."""
        return None if self.budgets else RhoRamp(self.rho, self.rho_warmup_steps)


def plan_run(
    cfg: SearchConfig,
    steps_per_epoch: int,
    *,
    task: str,
    budget: Optional[Budget],
    metric: str,
    start_cost: int,
    fixed_cost: int,
    input_size: tuple[int, int],
) -> RunPlan:
    """The plan of a run with settings ``cfg``.

    Args:
        cfg: the run's settings.
        steps_per_epoch: steps in one pass over the training data (per process).
        task: ``'seg'``, ``'pose'`` or ``'cls'`` (paper mode's default rho).
        budget: the run's :class:`Budget` (:meth:`Budget.from_config`), ``None`` in paper mode.
        metric: the cost model's metric (``'macs'``, ``'params'`` or ``'latency'``: the budget's kind).
        start_cost, fixed_cost: the supernet's cost, and the part of it no removal can take away.
        input_size: the ``(height, width)`` costs are counted at (for the messages).

    Raises:
        ValueError: a budget below the fixed cost or not below the start.
    """
    total = cfg.steps or max(1, int(round(cfg.epochs * steps_per_epoch)))
    eval_every = cfg.eval_every or max(1, total // EVALUATIONS)
    budgets = list(budget.amounts) if budget is not None else []
    for b in budgets:
        _check_budget(b, budget, start_cost, fixed_cost, input_size)
    if budgets:
        # rho's natural scale: the strength at which the proximal step moves a gate of penalty 1 by 1 over the
        # run's first `reach`; the hold ramps up to it and the controller then searches within its bounds around it.
        # (Starting well below it, the controller spent much of the run raising rho while rank cuts of still-equal
        # gates did the shrinking.)
        scale = 1.0 / (cfg.lr * max(1.0, cfg.reach * total))
        rho = cfg.rho if cfg.rho is not None else scale
    else:
        scale, rho = None, cfg.rho if cfg.rho is not None else PAPER_RHO[task]
    min_shrink = cfg.min_shrink
    if min_shrink is None:
        min_shrink = min(1e6, 0.005 * start_cost) if metric == "macs" else 0.0
    recovery = int(cfg.family_recovery * total)
    tail_start = None
    if budgets and cfg.tail == "finetune":
        # where the trajectory arrives at the last budget (the controller's own arithmetic)
        probe = BudgetController(budgets[-1], start_cost, total, 1.0, reach=cfg.reach, hold=cfg.hold,
                                 family=budgets if len(budgets) > 1 else None, recovery=recovery)  # fmt: skip
        tail_start = probe.arrival_step() if probe.arrival_step() < total else None
    return RunPlan(
        total_steps=total,
        steps_per_epoch=steps_per_epoch,
        shrink_every=cfg.shrink_every or max(1, total // SHRINK_CHECKS),
        eval_every=eval_every,
        checkpoint_every=cfg.checkpoint_every or eval_every,
        lr=cfg.lr,
        lr_schedule=cfg.lr_schedule,
        # at least a few warm-up steps: the untrained network's logits are large (no normalisation after the
        # last fusion), and a full-size first step can diverge at small batch sizes
        lr_warmup_steps=min(total // 2, max(10, int(cfg.lr_warmup * total))),
        metric=metric,
        start_cost=start_cost,
        budget_spec=budget,
        rho=rho,
        rho_scale=scale,
        rho_warmup_steps=int(min(cfg.rho_warmup_epochs * steps_per_epoch, total / 2)),
        reach=cfg.reach,
        hold=cfg.hold,
        recovery=recovery,
        min_shrink=min_shrink,
        rho_limit=cfg.rho_limit,
        tail_start=tail_start,
    )


def cost_input_size(cfg: SearchConfig, pretrained_cfg: Optional[Mapping[str, Any]]) -> tuple[int, int]:
    """The ``(height, width)`` costs and budgets are counted at: ``input_size``, else the pretrained cfg's."""
    size = cfg.input_size or tuple((pretrained_cfg or {}).get("input_size", (3, 0, 0))[-2:])
    if not size or not all(size):
        raise ValueError("input_size= is required: the (height, width) at which costs and budgets are counted")
    return int(size[0]), int(size[1])


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of ``step`` on ``rank``: every step starts from an RNG state of its own, so that a resumed run draws
    the same augmentations and dropout masks as an uninterrupted one."""
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


def _check_budget(budget: int, spec: Budget, start: int, fixed: int, input_size: tuple[int, int]) -> None:
    unit = spec.unit
    h, w = input_size
    if budget < fixed:
        raise ValueError(
            f"budget {budget:,} {unit} at {h}x{w} is unreachable: the network's fixed part (stem, residual "
            f"convs, head) alone costs {fixed:,}; raise the budget or use a smaller space"
        )
    if budget >= start:
        raise ValueError(
            f"budget {budget:,} {unit} at {h}x{w} is not below the supernet's {start:,}: nothing would "
            "be removed; lower the budget (or omit it to run the paper's fixed-rho schedule)"
        )
