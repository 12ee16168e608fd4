"""The run's record: one history row per evaluation (written to ``history.jsonl``), and the family members taken.

Between evaluations the recorder collects every step's loss, L1 term, time and network MACs; a row holds their
means (the median step time) and the state of the run at the evaluation. The whole history is rewritten atomically
after every row, so the file is never half-written.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any, Optional

from ..arch import Arch
from ..cost import count_macs, count_params
from ..files import write_atomic
from .result import RunInfo, SearchResult, budget_label
from .units import CostModel

__all__ = ["Recorder", "network_columns", "progress_bar"]


def network_columns(arch: Arch, cost_model: CostModel, input_size: tuple[int, int], in_chans: int) -> dict[str, Any]:
    """A network's columns of a history row: MACs and parameters, cost in the budget's unit, hidden channels, tokens."""
    return {
        "macs": count_macs(arch, input_size, in_chans),
        "params": count_params(arch, in_chans),
        "cost": cost_model.total(arch),
        "hidden": sum(b.hidden for b in arch.blocks()),
        "tokens": sum(b.tokens for b in arch.blocks()),
    }


class Recorder:
    """History rows, family members and skipped steps of a run.

    Args:
        directory: where ``history.jsonl`` is written (``None``: nowhere, as on every rank but 0).
    """

    def __init__(self, directory: Optional[str | os.PathLike] = None) -> None:
        self.path = os.path.join(directory, "history.jsonl") if directory else None
        self.history: list[dict] = []
        self.family: list[dict] = []  # members taken so far: step, budget, cost, metric, directory (or result)
        self.skipped = 0  # steps skipped for a non-finite loss or gradient (on_nan='skip')
        self.started = time.time()
        self._losses: list[float] = []
        self._l1s: list[float] = []
        self._step_times: list[float] = []
        self._step_macs: list[int] = []  # MACs of the network each step trained, to relate step time to cost

    def add_step(self, loss: float, l1: float, seconds: float, macs: int) -> None:
        """One training step's loss, L1 term, duration and network MACs."""
        self._step_times.append(seconds)
        self._step_macs.append(macs)
        self._losses.append(loss)
        self._l1s.append(l1)

    def record(
        self,
        step: int,
        epoch: float,
        network: dict[str, Any],
        rho: float,
        lr: float,
        metric: Optional[float],
        metric_name: str,
        latency_correction: Optional[float] = None,
        threads: Optional[int] = None,
    ) -> dict:
        """Append (and write) the row of an evaluation at ``step``.

        ``network``: the network's columns (``macs``, ``params``, ``cost``, ``hidden``, ``tokens``), in that order.
        The steps' means since the previous row go in too, and are then reset.
        """
        row = {
            "step": step,
            "epoch": epoch,
            **network,
            "rho": rho,
            "lr": lr,
            "loss": statistics.fmean(self._losses) if self._losses else None,
            "l1": statistics.fmean(self._l1s) if self._l1s else None,
            "metric": metric,
            "metric_name": metric_name,
            "step_time": statistics.median(self._step_times) if self._step_times else None,
            "step_macs": statistics.fmean(self._step_macs) if self._step_macs else None,
            "skipped": self.skipped,
            "elapsed": round(time.time() - self.started, 2),
        }
        if latency_correction is not None:
            row["latency_correction"] = latency_correction
        if threads is not None:
            row["threads"] = threads  # intra-op threads at this evaluation (they follow the machine's load)
        self.history.append(row)
        self._losses, self._l1s, self._step_times, self._step_macs = [], [], [], []
        if self.path:
            write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in self.history))
        return row

    def add_member(self, i: int, step: int, member: SearchResult, output_dir: Optional[str], rank: int = 0) -> None:
        """Keep the ``i``-th member of a family, taken at ``step``: saved under ``output_dir/family/`` (by rank 0), or
        held in memory without an ``output_dir``."""
        entry = {
            "step": step,
            "budget": member.budget,
            "cost": member.cost,
            "metric": member.metric,
            "measured_latency_ms": member.measured_latency_ms,
        }
        if output_dir:
            name = f"{i}-{budget_label(member.budget, member.budget_kind)}"
            entry["directory"] = os.path.join(output_dir, "family", name)
            if rank == 0:
                member.save(entry["directory"])
        else:
            entry["result"] = member  # in memory only (no output_dir, so no checkpoint to resume from either)
        self.family.append(entry)

    def members(self, info: RunInfo) -> list[SearchResult]:
        """The family's members so far (those taken before a resume read back from their directories)."""
        return [m["result"] if "result" in m else info.load_member(m) for m in self.family]

    def state_dict(self) -> dict:
        elapsed = time.time() - self.started
        return {"history": list(self.history), "family": list(self.family), "skipped": self.skipped, "elapsed": elapsed}

    def load_state_dict(self, state: dict) -> None:
        self.history = list(state["history"])
        self.family = list(state["family"])
        self.skipped = state["skipped"]
        # "elapsed" goes on from the checkpoint's time, so it counts every sitting of a resumed run (a checkpoint
        # written before this was recorded restarts it at 0)
        self.started = time.time() - state.get("elapsed", 0.0)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, initial: int, show: bool) -> Any:
    """A tqdm bar over the run's steps, or (``show=False``) one that shows nothing."""
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm  # optional: progress bars only

    return tqdm(total=total, initial=initial, desc="search", dynamic_ncols=True)
