"""Budgets and the L1 strength rho: the paper's fixed ramp, and hrnas's budget-targeted control.

Paper mode (no budget): ``rho`` ramps linearly from 0 to ``rho_max`` over the warm-up, then stays; whatever the
threshold removes is the result.

Budget mode: the cost is steered along a geometric trajectory from the supernet's cost to ``goal x budget`` (0.95; 0.96
for a latency), reached at ``reach`` (default 60 %) of the run; the rest of the run trains the final architecture. At
every shrink check the units whose gamma the penalty has emptied are removed (never below ``floor x budget``: the band's
lower edge, 0.9, for a count; 0.95, the band's middle, for a latency, see ``_BANDS``); if the network is still above the
trajectory, the lowest-``|gamma|`` units are removed down to it and ``rho`` grows, because the penalty was too weak to
empty them by itself; ahead of the trajectory, ``rho`` grows too when the network shrank more slowly than the trajectory
since the last check. ``rho`` is lowered only once the network has arrived, so that the survivors can recover. So the
run ends inside ``[lower, 1.0] x budget`` by construction (each kind of :class:`Budget` has its own band), and ``rho``
finds its own scale for the data, the optimizer and the run length (the paper could only reach a size by trying values
of ``rho``). An optional ``hold`` (a fraction of the run) delays the trajectory while ``rho`` ramps up from 0 and only
emptied units go; on the 500-step benchmark runs it measured worse (the same shrinking squeezed into less of the run),
so it is off by default.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Optional

__all__ = ["Budget", "BudgetController", "RhoRamp", "parse_amount"]

_SUFFIX = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_amount(value: str | int | float) -> int:
    """``'1.4G'`` -> 1_400_000_000, ``'300M'``, ``'512k'``, plain numbers; MACs or parameters."""
    if isinstance(value, bool):
        raise ValueError(f"budget must be a number such as '1.4G' or 300e6, got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0 or not math.isfinite(value):
            raise ValueError(f"budget must be positive, got {value!r}")
        return int(value)
    m = re.fullmatch(
        r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMgGtT]?)\s*(?:MACs|FLOPs|params)?\s*", str(value)
    )
    if not m:
        raise ValueError(f"cannot read budget {value!r}; write it like '1.4G', '300M', '2.5e8' or 512000")
    amount = float(m.group(1)) * _SUFFIX[m.group(2).upper()]
    if amount <= 0:
        raise ValueError(f"budget must be positive, got {value!r}")
    return int(amount)


# the settings that state a budget, and what each counts
_KINDS = {"budget": "macs", "params": "params", "latency_ms": "latency"}
_UNITS = {"macs": "MACs", "params": "params", "latency": "us of predicted latency"}
# (lower, floor, goal): a run ends inside [lower, 1.0] x its budget, nothing is removed below floor x it, and its
# trajectory aims at goal x it. A count is exact, so units go down to the band's lower edge. A latency is a
# measurement, and the same network timed again beside the same timm model reads a few hundredths apart
# (benchmarks/results/vs_timm.md, landing table); a network cut down to the band's edge on one high reading reads
# below it later, so a latency budget removes nothing below the band's middle, and aims a hundredth above it (a cut
# that lands at the goal leaves a network the next check need not cut again to stay at or above the floor).
_BANDS = {"macs": (0.9, 0.9, 0.95), "params": (0.9, 0.9, 0.95), "latency": (0.9, 0.95, 0.96)}


@dataclass(frozen=True)
class Budget:
    """What a search is budgeted to, read once from its settings (:meth:`from_config`).

    Attributes:
        kind: ``'macs'`` (``budget=``), ``'params'`` (``params=``) or ``'latency'`` (``latency_ms=``).
        amounts: the budgets, largest first, in the cost model's unit (MACs, parameters, or whole microseconds of
            predicted latency); several for a family, the last is the run's own.
        band: ``(lower, upper)``: the run ends inside ``[lower, upper] x`` its budget.
        goal: where the trajectory aims, as a fraction of the budget.
        floor: nothing is removed below ``floor x`` the budget (the band's lower edge for a count, its middle for
            a latency, whose measurement scatters).
    """

    kind: str
    amounts: tuple[int, ...]
    band: tuple[float, float]
    goal: float
    floor: float

    @classmethod
    def from_config(cls, cfg) -> Optional[Budget]:
        """The budget a :class:`hrnas.SearchConfig` states (``None`` in paper mode).

        Raises:
            ValueError: an amount that cannot be read, or a family with repeated budgets.
        """
        for name, kind in _KINDS.items():
            value = getattr(cfg, name)
            if value is None:
                continue
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            if kind == "latency":
                values = [int(round(1e3 * float(v))) for v in values]  # milliseconds given, microseconds counted
            amounts = sorted((parse_amount(v) for v in values), reverse=True)
            if len(set(amounts)) != len(amounts):
                raise ValueError(f"the budgets of a family must differ, got {value!r}")
            lower, floor, goal = _BANDS[kind]
            return cls(kind, tuple(amounts), (lower, 1.0), goal, floor)
        return None

    @property
    def amount(self) -> int:
        """The run's own budget (the smallest of a family's)."""
        return self.amounts[-1]

    @property
    def unit(self) -> str:
        """The unit of ``amounts``, in words."""
        return _UNITS[self.kind]


@dataclass
class RhoRamp:
    """The paper's schedule: linear from 0 to ``rho_max`` over ``warmup_steps``, then constant."""

    rho_max: float
    warmup_steps: int

    def rho(self, step: int) -> float:
        if self.warmup_steps <= 0:
            return self.rho_max
        return self.rho_max * min(1.0, step / self.warmup_steps)


@dataclass
class BudgetController:
    """Steers the cost to ``[lower, 1] x budget`` (see the module docstring).

    Args:
        budget: the cost ceiling (MACs, parameters or microseconds at the cost configuration); with a ``family``,
            the smallest of its budgets.
        start: the supernet's cost.
        total_steps: length of the run.
        rho: the initial penalty strength.
        reach: fraction of the run at which the trajectory arrives at ``goal x budget``.
        hold: fraction of the run before the trajectory starts; until then ``rho`` ramps linearly from 0 to its
            starting value and only dead units are removed.
        goal: where the trajectory ends, as a fraction of the budget.
        lower: the band's lower edge, as a fraction of the budget: a final cut measured below it is chosen again.
        floor: the fraction of the budget below which nothing is removed (default ``lower``).
        up, down: factors applied to rho when the trajectory needed forced removals, or was over-achieved.
        family: several budgets for one run: the trajectory stops at each (``recovery`` steps at ``goal x`` it) so
            that a member of the family can be taken inside it (:meth:`snapshot_steps`), then goes on to the next.
        finetune_tail: once the trajectory has arrived at its last budget (:meth:`arrival_step`), rho is 0.
    """

    budget: float
    start: float
    total_steps: int
    rho: float
    reach: float = 0.6
    hold: float = 0.0
    goal: float = _BANDS["macs"][2]
    lower: float = _BANDS["macs"][0]
    floor: Optional[float] = None
    up: float = 1.5
    down: float = 1.25
    rho_min: float = 1e-8
    rho_max: float = 10.0
    last_step: Optional[int] = None
    family: Optional[list] = None
    recovery: int = 0
    finetune_tail: bool = False

    def __post_init__(self) -> None:
        if self.floor is None:
            self.floor = self.lower

    @property
    def hold_steps(self) -> int:
        return int(self.hold * self.total_steps)

    @property
    def budgets(self) -> list[float]:
        """The budgets of the run, largest first; the last is ``budget``."""
        return sorted(self.family, reverse=True) if self.family else [self.budget]

    def _knots(self) -> list[tuple[float, float]]:
        """``(step, cost)`` corners of the trajectory: geometric descents to ``goal x`` each budget, with a flat of
        ``recovery`` steps after each but the last; the descents share the shrinking phase in proportion to the
        log of the cost ratio each covers."""
        ends = [self.goal * b for b in self.budgets]
        knots = [(float(self.hold_steps), float(self.start))]
        flats = self.recovery * (len(ends) - 1)
        span = max(1.0, self.reach * self.total_steps - self.hold_steps - flats)
        logs = [math.log(max(a, 1e-9) / b) if a > b else 0.0 for a, b in zip([self.start] + ends[:-1], ends)]
        total = sum(logs) or 1.0
        t = knots[0][0]
        for i, (end, lg) in enumerate(zip(ends, logs)):
            t += span * lg / total
            knots.append((t, min(end, knots[-1][1])))
            if i < len(ends) - 1:
                t += self.recovery
                knots.append((t, knots[-1][1]))
        return knots

    def snapshot_steps(self) -> list[int]:
        """The steps at which each budget but the last is met and its member of the family is taken."""
        knots = self._knots()
        return [int(round(knots[2 + 2 * i][0])) for i in range(len(self.budgets) - 1)]

    def budget_at(self, step: int) -> float:
        """The budget being approached at ``step`` (a family moves to the next one after each snapshot)."""
        passed = sum(1 for s in self.snapshot_steps() if step > s)  # at a snapshot step, its member is not taken yet
        return self.budgets[passed]

    def target(self, step: int) -> float:
        """The cost the network should have at ``step`` (never below ``goal x budget``)."""
        knots = self._knots()
        if step <= knots[0][0]:
            return knots[0][1]
        for (t0, c0), (t1, c1) in zip(knots, knots[1:]):
            if step <= t1:
                frac = (step - t0) / (t1 - t0) if t1 > t0 else 1.0
                return c0 * (c1 / c0) ** frac
        return knots[-1][1]

    def arrival_step(self) -> int:
        """The step at which the trajectory reaches ``goal x`` the last budget."""
        return int(round(self._knots()[-1][0]))

    def rho_at(self, step: int) -> float:
        """The penalty strength at ``step``: the linear ramp during the hold, the controlled value after it (0 in a
        fine-tuned tail)."""
        if step < self.hold_steps:
            return self.rho * step / self.hold_steps
        if self.finetune_tail and step >= self.arrival_step():
            return 0.0
        return self.rho

    def floor_at(self, step: int) -> float:
        """Nothing is removed below this at ``step``: ``floor x`` the budget being approached."""
        return self.floor * self.budget_at(step)

    def update(self, step: int, before: float, after: float, forced: bool) -> None:
        """Adapt rho after a shrink check that took the network from ``before`` to ``after``."""
        if step < self.hold_steps:
            return  # the ramp is not steered: nothing is forced yet, and being below the flat target means nothing
        last, self.last_step = self.last_step, step
        if forced:
            self.rho = min(self.rho * self.up, self.rho_max)
        elif after <= self.goal * self.budget_at(step):
            # arrived: let the remaining units recover
            self.rho = max(self.rho / self.down, self.rho_min)
        elif last is not None and after > before * self.target(step) / self.target(last):
            # Ahead of the trajectory but shrinking more slowly than it: a stalled penalty would leave the last stretch
            # to the budget to rank cuts of live units once the trajectory caught up, so it is strengthened now.
            self.rho = min(self.rho * self.up, self.rho_max)

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
