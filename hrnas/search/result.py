"""``SearchResult``: what a search returns, and how it is saved."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .._files import write_atomic
from ..arch import Arch
from ..cost import count_macs, count_params
from ..net import HRNASNet

__all__ = ["SearchResult"]


@dataclass
class SearchResult:
    """The found architecture, its trained network, and the run's record.

    Attributes:
        arch: the searched architecture.
        model: a plain ``HRNASNet`` (eval mode) with the trained weights: EMA, BatchNorm re-calibrated.
        history: one dict per evaluation (step, macs, params, tokens, rho, loss, metric, step time...).
        metric: the final validation metric (``None`` without validation data); ``metric_name`` names it.
        macs, params: the final network's cost at ``input_size`` (MACs in the paper convention).
        budget, budget_kind: the requested ceiling and whether it counts ``'macs'`` or ``'params'``.
        supernet_arch: the architecture the search started from.
        config: the run's :class:`hrnas.search.SearchConfig`.
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

    def summary(self) -> str:
        """Before/after costs, the metric and the architecture, for people."""
        h, w = self.input_size
        in_chans = self.model.in_chans
        macs0 = count_macs(self.supernet_arch.with_num_classes(self.arch.num_classes), self.input_size, in_chans)
        params0 = count_params(self.supernet_arch.with_num_classes(self.arch.num_classes), in_chans)
        lines = [self.arch.summary(input_size=self.input_size), ""]
        lines.append(f"supernet: {macs0 / 1e6:10.2f} MMACs {params0 / 1e6:8.3f} M params  (at {h}x{w})")
        lines.append(
            f"searched: {self.macs / 1e6:10.2f} MMACs {self.params / 1e6:8.3f} M params  "
            f"({self.macs / macs0:.1%} of the MACs, {self.params / params0:.1%} of the params)"
        )
        if self.budget is not None:
            spent = self.macs if self.budget_kind == "macs" else self.params
            lines.append(f"budget:   {self.budget:,} {self.budget_kind} -> {spent / self.budget:.1%} used")
        if self.metric is not None:
            lines.append(f"validation {self.metric_name}: {self.metric:.4f}")
        return "\n".join(lines)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the model directory (``config.json``, ``model.safetensors``, ``README.md``) plus ``arch.json``,
        ``history.jsonl``, the run's ``config.yaml`` and the plots ``search.png`` / ``arch.png``.

        ``hrnas.create_model(directory)`` loads the model back.
        """
        from ..hub import save_pretrained
        from .plots import plot_arch, plot_history

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_pretrained(self.model, directory, model_card=self._card())
        self.arch.save(directory / "arch.json")
        write_atomic(directory / "history.jsonl", "".join(json.dumps(r) + "\n" for r in self.history))
        if self.config is not None:
            self.config.save_yaml(directory / "config.yaml")
        plot_history(self.history, directory / "search.png")
        plot_arch(self.arch, self.supernet_arch, directory / "arch.png")
        return directory

    def _card(self) -> str:
        return (
            f"# HR-NAS {self.arch.task} network found by hrnas.search\n\n"
            "```python\nimport hrnas\nmodel = hrnas.create_model('path/to/this/directory')\n```\n\n"
            f"```\n{self.summary()}\n```\n\n"
            "`config.yaml` holds every setting of the search; `hrnas search --config config.yaml` repeats it.\n"
        )
