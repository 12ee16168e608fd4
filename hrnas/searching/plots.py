"""Pictures of a search, for people: the cost and metric over the run, and what the network kept, block by block.

matplotlib is a dependency of hrnas; should it be missing (a stripped-down install), the plots are skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Sequence

from ..arch import Arch, branch_of
from ..files import atomic_path

__all__ = ["plot_arch", "plot_history"]

_KERNEL_COLORS = {3: "tab:blue", 5: "tab:green", 7: "tab:red"}
_STAGE = re.compile(r"stages\.(\d+)\.(fuse|branches)\.")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")


def _cost_unit(kind: str) -> tuple[str, float]:
    return {"params": ("M params", 1e6), "latency": ("ms (predicted latency)", 1e3)}.get(kind, ("MMACs", 1e6))


def plot_history(
    history: list[dict],
    path: str | os.PathLike,
    *,
    start_cost: Optional[float] = None,
    budget: Optional[float] = None,
    band: Optional[tuple[float, float]] = None,
    trajectory: Optional[Sequence[tuple[int, float]]] = None,
    tail_start: Optional[int] = None,
    kind: str = "macs",
) -> Optional[Path]:
    """``search.png``: the cost from the supernet (step 0) to the end with the budget band and the planned
    trajectory, the validation metric at every evaluation, and the penalty strength rho.

    Args:
        history: the run's rows (``step``, ``cost``, ``metric``, ``metric_name``, ``rho``).
        start_cost: the supernet's cost, drawn at step 0.
        budget: the budget (in the cost's unit); ``band`` is where the run must end, as fractions of it.
        trajectory: ``(step, cost)`` points of the cost the budget controller steered towards.
        tail_start: the step from which the penalty was off and the learning rate restarted (shaded).
        kind: ``'macs'``, ``'params'`` or ``'latency'`` (microseconds), for the axis label.
    """
    plt = _pyplot()
    if plt is None or not history:
        return None
    path = Path(path)
    unit, scale = _cost_unit(kind)
    fig, (ax, ax_metric, ax_rho) = plt.subplots(
        3, 1, figsize=(8, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]}
    )
    steps = [r["step"] for r in history]
    costs = [r.get("cost", r.get("macs")) / scale for r in history]
    if start_cost is not None:
        steps, costs = [0, *steps], [start_cost / scale, *costs]
    ax.plot(steps, costs, "o-", color="tab:blue", label="network's cost at each evaluation", zorder=3)
    if budget is not None and band is not None:
        ax.axhspan(band[0] * budget / scale, band[1] * budget / scale, color="tab:green", alpha=0.25,
                   label=f"where the run must end: [{band[0]:g}, {band[1]:g}] x budget")  # fmt: skip
    if budget is not None:
        ax.axhline(budget / scale, color="tab:green", lw=1, label=f"budget: {budget / scale:g} {unit}")
    if trajectory:
        ax.plot([t for t, _ in trajectory], [c / scale for _, c in trajectory], "--", color="tab:gray",
                label="planned trajectory")  # fmt: skip
    if start_cost is not None and budget is not None and start_cost > 4 * budget:
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("log")  # a cut to a few per cent of the supernet stays readable
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_ylabel(unit)
    ax.set_title("hrnas search: the cost, the validation metric and the penalty over the run")
    ax.legend(loc="upper right", fontsize=8)
    metric_name = next((r.get("metric_name") for r in history if r.get("metric_name")), "metric")
    pts = [(r["step"], r["metric"]) for r in history if r.get("metric") is not None]
    if pts:
        ax_metric.plot([p[0] for p in pts], [p[1] for p in pts], "s-", color="tab:orange",
                       label=f"validation {metric_name} (EMA weights, BatchNorm re-calibrated)")  # fmt: skip
        ax_metric.legend(loc="best", fontsize=8)
    else:
        ax_metric.text(0.5, 0.5, "no validation data", ha="center", va="center", transform=ax_metric.transAxes)
    ax_metric.set_ylabel(metric_name)
    penalised = [(r["step"], r["rho"]) for r in history if r["rho"] > 0]
    if penalised:
        ax_rho.semilogy([p[0] for p in penalised], [p[1] for p in penalised], ".-", color="tab:gray",
                        label="rho (L1 strength on the gates)")  # fmt: skip
    if tail_start is not None:
        for i, a in enumerate((ax, ax_metric, ax_rho)):
            a.axvspan(tail_start, steps[-1], color="tab:purple", alpha=0.08,
                      label="fine-tuned tail: no penalty, learning rate restarted" if i == 1 else None)  # fmt: skip
        ax_metric.legend(loc="best", fontsize=8)
    if penalised:
        ax_rho.legend(loc="upper right", fontsize=8)
    ax_rho.set_ylabel("rho")
    ax_rho.set_xlabel("step")
    ax_rho.set_xlim(left=0)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def _panel_key(name: str) -> str:
    br = branch_of(name)
    return f"branch {br} (stride {4 * 2**br})" if br is not None else "head"


def _stage_groups(names: list[str]) -> list[tuple[str, int, int]]:
    """``(label, first index, last index)`` of consecutive blocks of the same stage and part (fusion or blocks)."""
    groups: list[tuple[str, int, int]] = []
    for i, name in enumerate(names):
        m = _STAGE.match(name)
        label = f"stage {int(m.group(1)) + 1}\n{'fusion' if m.group(2) == 'fuse' else 'blocks'}" if m else "head"
        if groups and groups[-1][0] == label:
            groups[-1] = (label, groups[-1][1], i)
        else:
            groups.append((label, i, i))
    return groups


def plot_arch(arch: Arch, supernet: Arch, path: str | os.PathLike) -> Optional[Path]:
    """``arch.png``: for each branch (stride 4, 8, 16, 32) and the head, the hidden channels every block kept
    (bars stacked by kernel) against the supernet's (outline), and the transformer tokens it kept against the
    supernet's; blocks grouped by stage."""
    plt = _pyplot()
    if plt is None:
        return None
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    path = Path(path)
    full = dict(supernet.named_blocks())
    panels: dict[str, list[tuple[str, object]]] = {}
    for name, b in arch.named_blocks():
        panels.setdefault(_panel_key(name), []).append((name, b))
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.3 * len(panels) + 0.8), squeeze=False)
    kernels = sorted({k for b in arch.blocks() for k in b.kernels} | {k for b in supernet.blocks() for k in b.kernels})
    any_tokens = any(b.tokens for b in supernet.blocks())
    for ax, (key, blocks) in zip(axes[:, 0], panels.items()):
        names = [n for n, _ in blocks]
        xs = list(range(len(blocks)))
        bottom = [0] * len(blocks)
        for i, k in enumerate(kernels):
            vals = [dict(zip(b.kernels, b.channels)).get(k, 0) for _, b in blocks]
            ax.bar(xs, vals, bottom=bottom, color=_KERNEL_COLORS.get(k, f"C{i}"), width=0.8)
            bottom = [a + v for a, v in zip(bottom, vals)]
        sizes = [full[n].hidden if n in full else 0 for n in names]
        ax.bar(xs, sizes, fill=False, edgecolor="black", lw=0.7, width=0.8)
        top = max(sizes + bottom + [1])
        for x, kept in zip(xs, bottom):  # bars too short to see get their number
            if 0 < kept < 0.04 * top:
                ax.text(x, kept + 0.02 * top, str(kept), ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, 1.12 * top)
        kept_total, full_total = sum(bottom), sum(sizes)
        title = f"{key}: {kept_total:,} of {full_total:,} hidden channels kept ({kept_total / max(full_total, 1):.0%})"
        full_tokens = [full[n].tokens if n in full else 0 for n in names]
        if any(full_tokens):
            toks = [b.tokens for _, b in blocks]
            with_tf = [x for x in xs if full_tokens[x]]  # blocks whose supernet had a transformer
            ax2 = ax.twinx()
            ax2.plot(with_tf, [full_tokens[x] for x in with_tf], "^", mfc="none", mec="black", ms=6)
            ax2.plot(with_tf, [toks[x] for x in with_tf], "^", color="black", ms=5)
            ax2.set_ylim(-0.06 * max(full_tokens), 1.15 * max(full_tokens))  # a marker at 0 tokens stays visible
            ax2.set_ylabel("tokens")
            title += f"; {sum(toks)} of {sum(full_tokens)} tokens"
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_ylabel("hidden channels")
        groups = _stage_groups(names)
        ax.set_xticks([(a + b) / 2 for _, a, b in groups])
        ax.set_xticklabels([g[0] for g in groups], fontsize=8)
        for _, a, _b in groups[1:]:
            ax.axvline(a - 0.5, color="0.7", lw=0.8, ls=":")
        ax.set_xlim(-0.6, len(blocks) - 0.4)
    handles = [Patch(color=_KERNEL_COLORS.get(k, f"C{i}"), label=f"{k}x{k} kernel path") for i, k in enumerate(kernels)]
    handles.append(Patch(fill=False, edgecolor="black", label="supernet's hidden channels"))
    if any_tokens:
        handles += [
            Line2D([], [], marker="^", color="black", ls="none", label="tokens kept"),
            Line2D([], [], marker="^", mfc="none", mec="black", ls="none", label="supernet's tokens"),
        ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"{arch.name}: what the search kept, block by block (searched from {supernet.name})", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _save(fig, path)
    plt.close(fig)
    return path
