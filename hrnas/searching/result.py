"""``SearchResult``: what a search returns, how it is saved, and how a run builds its results (:class:`RunInfo`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..arch import Arch
from ..cost import count_macs, count_params, summary
from ..files import write_atomic
from ..hub import load_pretrained, save_pretrained
from ..net import HRNASNet
from .plots import plot_arch, plot_history

__all__ = ["RunInfo", "SearchResult", "budget_label", "searched_name"]


def searched_name(supernet_name: str, budget: Optional[float], kind: str) -> str:
    """The name of a searched network: its space and its budget (``seg_tiny_20M``, ``seg_tiny_3M_params``,
    ``seg_tiny_12.5ms``), or ``<space>_searched`` without a budget."""
    space = supernet_name.removeprefix("supernet_")
    if budget is None:
        return f"{space}_searched"
    return f"{space}_{budget_label(budget, kind)}" + ("_params" if kind == "params" else "")


def budget_label(budget: float, kind: str) -> str:
    """A budget as a short name: ``1.4G``, ``300M``, ``12.5ms``."""
    if kind == "latency":
        return f"{budget / 1e3:g}ms"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if budget >= scale:
            return f"{budget / scale:.4g}{unit}"
    return str(int(budget))


@dataclass
class SearchResult:
    """The found architecture, its trained network, and the run's record.

    Attributes:
        arch: the searched architecture.
        model: a plain ``HRNASNet`` (eval mode) with the trained weights: EMA, BatchNorm re-calibrated.
        history: one dict per evaluation (step, macs, params, tokens, rho, loss, metric, step time...).
        metric: the final validation metric (``None`` without validation data); ``metric_name`` names it.
        macs, params: the final network's cost at ``input_size`` (MACs in the paper convention).
        budget, budget_kind: the requested ceiling and whether it counts ``'macs'``, ``'params'`` or ``'latency'``
            (microseconds predicted by the run's latency table).
        supernet_arch: the architecture the search started from.
        config: the run's :class:`hrnas.SearchConfig`.
        cost: the final network's cost in the budget's unit (latency: the table's prediction scaled by the last
            measurement, see ``SearchConfig.latency_feedback``).
        measured_latency_ms: latency budgets: the found network's latency as measured on this device at the end of
            the run (``None`` for other budgets, or with ``latency_feedback=False``).
        family: for a run with several budgets, one result per budget, largest first (the last is this one);
            empty otherwise.
        schedule: the run's plan, for the plots: ``start_cost`` (the supernet's, in the budget's unit),
            ``trajectory`` (the ``(step, cost)`` points the budget controller steered along), ``band`` (where the
            run had to end, as fractions of the budget) and ``tail_start`` (where the fine-tuned tail began).
    """

    arch: Arch
    model: HRNASNet
    history: list[dict]
    metric: Optional[float]
    metric_name: str
    macs: int
    params: int
    input_size: tuple[int, int]
    budget: Optional[int]
    budget_kind: str
    supernet_arch: Arch
    config: Any = field(repr=False, default=None)
    cost: Optional[int] = None
    family: list[SearchResult] = field(repr=False, default_factory=list)
    measured_latency_ms: Optional[float] = None
    schedule: dict = field(repr=False, default_factory=dict)

    def summary(self) -> str:
        """Before/after costs, the metric and the architecture, for people."""
        h, w = self.input_size
        in_chans = self.model.in_chans
        macs0 = count_macs(self.supernet_arch.with_num_classes(self.arch.num_classes), self.input_size, in_chans)
        params0 = count_params(self.supernet_arch.with_num_classes(self.arch.num_classes), in_chans)
        lines = [summary(self.arch, input_size=self.input_size), ""]
        lines.append(f"supernet: {macs0 / 1e6:10.2f} MMACs {params0 / 1e6:8.3f} M params  (at {h}x{w}; "
                     f"searched from {self.supernet_arch.name!r})")  # fmt: skip
        lines.append(
            f"searched: {self.macs / 1e6:10.2f} MMACs {self.params / 1e6:8.3f} M params  "
            f"({self.macs / macs0:.1%} of the MACs, {self.params / params0:.1%} of the params)"
        )
        if self.budget is not None:
            spent = {"macs": self.macs, "params": self.params}.get(self.budget_kind, self.cost)
            if self.budget_kind == "latency":
                measured = self.measured_latency_ms
                line = f"budget:   {self.budget / 1e3:.3f} ms latency -> {spent / 1e3:.3f} ms"
                line += f" ({spent / self.budget:.1%})"
                if measured is not None:
                    line += f", measured {measured:.3f} ms ({1e3 * measured / self.budget:.1%})"
                lines.append(line)
            else:
                lines.append(f"budget:   {self.budget:,} {self.budget_kind} -> {spent / self.budget:.1%} used")
        for i, member in enumerate(self.family[:-1]):
            lines.append(
                f"family member {i}: budget {member.budget:,} {member.budget_kind}, cost {member.cost:,}, "
                f"{member.metric_name} {member.metric if member.metric is None else round(member.metric, 4)}"
            )
        if self.metric is not None:
            lines.append(f"validation {self.metric_name}: {self.metric:.4f}")
        return "\n".join(lines)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the model directory (``config.json``, ``model.safetensors``, ``README.md``) plus ``arch.json``,
        ``history.jsonl``, the run's ``config.yaml`` and the plots ``search.png`` / ``arch.png``.

        ``hrnas.create_model(directory)`` loads the model back.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_pretrained(self.model, directory, model_card=self._card())
        self.arch.save(directory / "arch.json")
        write_atomic(directory / "history.jsonl", "".join(json.dumps(r) + "\n" for r in self.history))
        if self.config is not None:
            self.config.save_yaml(directory / "config.yaml")
        plot_history(self.history, directory / "search.png", budget=self.budget, kind=self.budget_kind,
                     **self.schedule)  # fmt: skip
        plot_arch(self.arch, self.supernet_arch, directory / "arch.png")
        for i, member in enumerate(self.family[:-1]):
            member.save(directory / "family" / f"{i}-{budget_label(member.budget, member.budget_kind)}")
        return directory

    def _card(self) -> str:
        return (
            f"# HR-NAS {self.arch.task} network found by hrnas.search\n\n"
            "```python\nimport hrnas\nmodel = hrnas.create_model('path/to/this/directory')\n```\n\n"
            f"```\n{self.summary()}\n```\n\n"
            "`config.yaml` holds every setting of the search; `hrnas search --config config.yaml` repeats it.\n"
        )


@dataclass(frozen=True)
class RunInfo:
    """What every result of one run shares; :meth:`result` is the one place a run builds a :class:`SearchResult`."""

    metric_name: str
    input_size: tuple[int, int]
    in_chans: int
    budget_kind: str
    supernet_arch: Arch
    config: Any = field(repr=False, default=None)
    plan: Any = field(repr=False, default=None)  # the run's RunPlan: start cost, trajectory and band, for plots
    fixed: bool = False  # a fixed architecture was trained (hrnas.train): it keeps its own name

    def result(
        self,
        arch: Arch,
        model: HRNASNet,
        history: list[dict],
        metric: Optional[float],
        budget: Optional[int],
        cost: Optional[int],
        measured_latency_ms: Optional[float],
    ) -> SearchResult:
        """The result for the network ``arch`` (trained weights in ``model``), with its costs counted, named after
        its space and budget (``seg_tiny_20M``; the supernet it was searched from is provenance, not its name)."""
        if not self.fixed:
            arch = arch.replace(name=searched_name(self.supernet_arch.name, budget, self.budget_kind))
        model.arch = arch
        return SearchResult(
            arch=arch,
            model=model,
            history=history,
            metric=metric,
            metric_name=self.metric_name,
            macs=count_macs(arch, self.input_size, self.in_chans),
            params=count_params(arch, self.in_chans),
            input_size=self.input_size,
            budget=budget,
            budget_kind=self.budget_kind,
            supernet_arch=self.supernet_arch,
            config=self.config,
            cost=cost,
            measured_latency_ms=measured_latency_ms,
            schedule=self.plan.schedule() if self.plan is not None else {},
        )

    def load_member(self, entry: dict) -> SearchResult:
        """A family member taken before the run was resumed, read back from the directory it was saved to."""
        directory = entry["directory"]
        with open(os.path.join(directory, "history.jsonl")) as f:
            history = [json.loads(line) for line in f]
        return self.result(
            Arch.load(os.path.join(directory, "arch.json")),
            load_pretrained(directory).eval(),
            history,
            entry["metric"],
            entry["budget"],
            entry["cost"],
            entry["measured_latency_ms"],
        )
