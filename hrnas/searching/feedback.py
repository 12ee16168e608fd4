"""Latency budgets in the search: the latency table, and measured feedback on the shrinking network.

A latency budget is counted by a :class:`hrnas.latency.LatencyTable` (given, read from a file, or measured on this
device and cached). With ``latency_feedback=True``, :class:`LatencyFeedback` times the network on this device once
it nears the budget and keeps the ratio of the measurement to the table's whole-network prediction (its
``correction``), which the loop applies by pricing networks with :meth:`LatencyFeedback.costs`; a cut is timed before
it is made, and chosen again when the measurement puts it outside the band.
The function that times a network is passed in (by default :func:`hrnas.latency.measure_latency`), so that tests
can stand in a fake device.
"""

from __future__ import annotations

import hashlib
import math
import re
import statistics
import warnings
from collections.abc import Mapping
from typing import Any, Callable, Optional

import torch

from .. import latency
from ..arch import Arch
from ..deployment import deploy
from ..latency import FEATURE_LEVELS, LatencyTable
from ..timing import device_key
from .budget import Budget, BudgetController
from .config import SearchConfig
from .distributed import broadcast
from .select import Selection, UnitIndex
from .units import CostModel

__all__ = ["LatencyFeedback", "arch_digest", "make_cost_model"]

# A latency reading of the same network beside the same reference scatters by a few per cent (coefficient of variation
# 4.5 % for the long form, benchmarks/results/latency_scatter.md; passes of one pair 0.9455 / 1.0066 / 0.9610 in
# benchmarks/results/vs_timm.md): a reading within SCATTER of an edge of the band is taken again, and the median of
# CONFIRM_READINGS readings decides which side of it the network is.
SCATTER = 0.05
CONFIRM_READINGS = 3


def arch_digest(arch: Arch) -> str:
    """A short stable name of an architecture (latency checks record which network each reading was of)."""
    return hashlib.sha256(arch.to_json().encode()).hexdigest()[:16]


def make_cost_model(
    cfg: SearchConfig,
    budget: Optional[Budget],
    supernet: Arch,
    input_size: tuple[int, int],
    in_chans: int,
    device: torch.device,
    rank: int,
    world: int,
) -> CostModel:
    """The run's cost model, in the unit of its ``budget`` (MACs without one): MACs, parameters, or latency predicted
    by the ``latency_table`` setting (a table, its dict, its file, or, when unset, measured now on this device for
    ``supernet``'s space, or read from the cache)."""
    if budget is None or budget.kind != "latency":
        return CostModel(input_size, budget.kind if budget else "macs", cfg.cost_num_classes, in_chans)
    table = cfg.latency_table
    if isinstance(table, Mapping):  # a table saved with the run's settings
        table = LatencyTable.from_dict(table)
    elif not isinstance(table, LatencyTable):
        table = LatencyTable.load(table) if table else _measured_table(cfg, supernet, input_size, device, rank, world)
    return CostModel(input_size, "latency", None, in_chans, latency_table=table)


def run_threads(cfg: SearchConfig, cost_model: CostModel) -> Optional[int]:
    """The run's intra-op threads: ``cfg.threads``; for a latency budget, unless set, the thread count its table was
    measured with (latencies depend on it, and the measured feedback compares with the table's times); ``None``: the
    free cores, following the load."""
    if cfg.threads is not None or cost_model.metric != "latency":
        return cfg.threads
    match = re.search(r"\|threads=(\d+)\|", cost_model.latency_table.key)
    return int(match.group(1)) if match else None


def _measured_table(
    cfg: SearchConfig, supernet: Arch, input_size: tuple[int, int], device: torch.device, rank: int, world: int
) -> LatencyTable:
    measured = None
    if rank == 0:
        if cfg.progress:
            print("measuring the latency of the supernet's blocks on this device (cached for later runs)")
        measured = latency.latency_table(supernet, input_size, device=device).to_dict()
    if world > 1:
        # every rank must penalise with the same costs: rank 0's measurement is the run's
        (measured,) = broadcast([measured])
    return LatencyTable.from_dict(measured)


class LatencyFeedback:
    """Measured latency of the shrinking network, and what it does to the cost model (latency budgets).

    Args:
        cost_model: the run's cost model (not changed: :meth:`costs` is it corrected by the measurements).
        budgets: the run's budgets, largest first (a network is timed once within 1.5x of the next one).
        wanted: ``SearchConfig.latency_feedback``.
        build: builds a network from an ``Arch`` (for timing).
        device: where the search runs; feedback is on only when the table was measured on such a device.
        in_chans: input channels.
        measure: ``measure(model, input_size, batch_size, repeats, device, in_chans, reference=table)`` returns the
            model's latency in ms; default :func:`hrnas.latency.measure_latency`.
    """

    def __init__(
        self,
        cost_model: CostModel,
        budgets: tuple[int, ...],
        wanted: bool,
        build: Callable[[Arch], torch.nn.Module],
        device: torch.device,
        in_chans: int = 3,
        measure: Optional[Callable[..., float]] = None,
    ) -> None:
        self.cost_model, self.budgets, self.build = cost_model, budgets, build
        self.device, self.in_chans = device, in_chans
        self.measure_fn = measure or latency.measure_latency
        table = cost_model.latency_table
        timing_here = table is not None and table.key == device_key(device)  # this process times as the table did
        self.enabled = cost_model.metric == "latency" and wanted and timing_here
        if cost_model.metric == "latency" and wanted and not timing_here:
            warnings.warn(
                f"the latency table was measured on {table.key!r}, this search runs on {device_key(device)!r}: its "
                "latency budget is the table's prediction alone (no measured feedback); run the search where the "
                "table was measured, or pass latency_feedback=False",
                stacklevel=4,
            )
        self.checks: list[dict] = []  # every reading: step, arch digest, predicted, reading and pooled measurement
        self.measured_arch: Optional[Arch] = None  # the network the correction was measured on
        self.correction = 1.0  # measured / predicted latency of measured_arch

    def costs(self) -> CostModel:
        """The run's cost model with the measured correction applied (the cost model itself until a measurement)."""
        return self.cost_model.corrected(self.correction)

    def measure(self, arch: Arch, step: int, members: int, force: bool = False) -> bool:
        """Time ``arch`` on this device and scale the table's prediction to it (rank 0).

        The table's network-level fit is an average over the space; near the budget, the network's own measured
        latency is what the budget is about. Without ``force``, measured only once the predicted cost is within
        1.5x of the next budget (``members``: family members taken so far). Returns whether ``arch``'s own
        measurement is in use.
        """
        if not self.enabled:
            return False
        if self.measured_arch == arch and not force:
            return True  # a forced reading (the final cut's) is taken again: the one reported pools every reading
        table = self.cost_model.latency_table
        predicted = table.predict(arch)
        if not force:
            goal = self.budgets[min(members, len(self.budgets) - 1)]
            if self.costs().total(arch) > 1.5 * goal:
                return False
        # a bounded number of runs, so that a check costs about as much time whatever the network's size (more for
        # the final network, whose reading is the one reported); side by side with the table's reference network
        # where it keeps one, so that the machine's drift since the table was built cancels
        span, most = (6000, 60) if force else (2000, 21)
        repeats = max(6, min(most, int(span / max(self.correction * predicted, 1e-3))))
        if table.reference is not None and "timm" in table.reference:
            # a budget anchored to a timm backbone is about this network used as one: its features at strides 4-32,
            # without the dense head the search trains it with (LatencyTable.anchored_to)
            from ..zoo import create_model

            net = create_model("hrnas_custom", arch=arch, features_only=True, out_indices=FEATURE_LEVELS)
        else:
            net = self.build(arch)
        if table.form == "deploy":  # the budget is about the network as hrnas.deploy leaves it
            net = deploy(net, input_size=self.cost_model.input_size, batch_size=table.batch_size)
        reading = self.measure_fn(
            net, self.cost_model.input_size, table.batch_size, repeats, self.device, self.in_chans, reference=table
        )
        # the same network is timed again at later checks (a rejected cut leaves it in place); pooling its readings
        # (median) keeps one low or high reading (they scatter even side by side with the reference) from deciding
        digest = arch_digest(arch)
        readings = [c["reading_ms"] for c in self.checks if c["arch"] == digest] + [round(reading, 4)]
        measured = statistics.median(readings)
        self.correction = measured / predicted
        self.measured_arch = arch
        self.checks.append(
            {
                "step": step,
                "arch": digest,
                "predicted_ms": round(predicted, 4),
                "reading_ms": round(reading, 4),
                "measured_ms": round(measured, 4),
            }
        )
        return True

    def settle(
        self,
        index: UnitIndex,
        sel: Selection,
        choose: Callable[[CostModel], Selection],
        controller: BudgetController,
        step: int,
        members: int,
        final: bool,
        budget: Optional[float] = None,
    ) -> Selection:
        """Time the network a cut would leave before making it, and ``choose(costs)`` again with the cost model that
        measurement corrects while it lands below the floor (or, at a final cut, over ``budget``, default the
        controller's). The measured/predicted ratio drifts as the network shrinks, so a cut chosen with the uncut
        network's ratio can land outside, and a cut below the floor cannot be undone.

        A reading within the timing scatter of an edge does not decide alone: the network is timed again, up to
        ``CONFIRM_READINGS`` readings, and their median decides. A cut still outside after three re-choices is not
        made, unless it is a final cut and the uncut network is over the ceiling.
        """
        ceiling = (budget if budget is not None else controller.budget) if final else math.inf
        floor = controller.floor * ceiling if final else controller.floor_at(step)
        # at the end: is the network as it stands in the band? (decides whether a cut must be made at all)
        if final and self.confirm(index.arch, step, members, (controller.lower * ceiling, ceiling)):
            sel = choose(self.costs())
        for attempt in range(4):
            if not bool(sel.removed.any()):
                return sel
            candidate = index.arch_without(sel.removed)
            if not self.measure(candidate, step, members, force=final):
                return sel
            self.confirm(candidate, step, members, (floor, ceiling))
            costs = self.costs()
            if floor <= costs.total(candidate) <= ceiling:
                return sel
            if attempt < 3:
                sel = choose(costs)
        as_it_stands = self.measured_ms(index.arch)
        if final and (as_it_stands is None or 1e3 * as_it_stands > ceiling):
            return sel  # the ceiling holds before the floor; the last choice was timed, so the run reports its reading
        uncut = torch.zeros_like(sel.removed)
        return Selection(uncut, False, sel.cost_before, sel.cost_before)

    def confirm(self, arch: Arch, step: int, members: int, edges: tuple[float, float]) -> bool:
        """Time ``arch`` again while its pooled measurement lies within ``SCATTER`` of one of ``edges`` (in the cost
        model's unit) and it has fewer than ``CONFIRM_READINGS`` readings; returns whether it was timed again."""
        digest, timed = arch_digest(arch), False
        while self.enabled and sum(c["arch"] == digest for c in self.checks) < CONFIRM_READINGS:
            cost = self.costs().total(arch)
            if not any(abs(cost - e) <= SCATTER * e for e in edges if math.isfinite(e)):
                break
            timed = self.measure(arch, step, members, force=True)
        return timed

    def measured_ms(self, arch: Arch) -> Optional[float]:
        """``arch``'s own measured latency (its pooled readings; the last network timed can be a cut not made)."""
        digest = arch_digest(arch)
        mine = [c["measured_ms"] for c in self.checks if c["arch"] == digest]
        return mine[-1] if mine else None

    def state_dict(self) -> dict[str, Any]:
        measured = self.measured_arch.to_dict() if self.measured_arch is not None else None
        return {"correction": self.correction, "checks": list(self.checks), "measured_arch": measured}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.correction = state["correction"]
        self.checks = list(state["checks"])
        measured = state["measured_arch"]
        self.measured_arch = Arch.coerce(measured) if measured is not None else None
