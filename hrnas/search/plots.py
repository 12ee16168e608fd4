"""Pictures of a search: cost and metric over the run, and the surviving width of every block per branch.

matplotlib is a dependency of hrnas; should it be missing (a stripped-down install), the plots are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .._files import atomic_path
from ..arch import Arch, branch_of

__all__ = ["plot_arch", "plot_history"]


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


def plot_history(history: list[dict], path: str | os.PathLike) -> Optional[Path]:
    """``search.png``: cost (MACs) and the validation metric against the step, with rho below."""
    plt = _pyplot()
    if plt is None or not history:
        return None
    path = Path(path)
    steps = [r["step"] for r in history]
    fig, (ax, ax_rho) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(steps, [r["macs"] / 1e6 for r in history], "o-", color="tab:blue", label="MMACs")
    ax.set_ylabel("MMACs", color="tab:blue")
    ax.set_title("hrnas search: cost and metric over the run")
    metric = [r.get("metric") for r in history]
    if any(m is not None for m in metric):
        ax2 = ax.twinx()
        pts = [(s, m) for s, m in zip(steps, metric) if m is not None]
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], "s--", color="tab:orange")
        ax2.set_ylabel(f"validation {history[-1].get('metric_name', 'metric')}", color="tab:orange")
    ax_rho.semilogy(steps, [max(r["rho"], 1e-12) for r in history], ".-", color="tab:gray")
    ax_rho.set_ylabel("rho")
    ax_rho.set_xlabel("step")
    _save(fig, path)
    plt.close(fig)
    return path


def plot_arch(arch: Arch, supernet: Arch, path: str | os.PathLike) -> Optional[Path]:
    """``arch.png``: for each branch (stride 4, 8, 16, 32) and the head, the hidden channels every block kept
    (bars, stacked by kernel) against the supernet's (outline), and its tokens."""
    plt = _pyplot()
    if plt is None:
        return None
    path = Path(path)
    full = dict(supernet.named_blocks())
    groups: dict[str, list[tuple[str, object]]] = {}
    for name, b in arch.named_blocks():
        br = branch_of(name)
        key = f"branch {br} (stride {4 * 2**br})" if br is not None else "head"
        groups.setdefault(key, []).append((name, b))
    fig, axes = plt.subplots(len(groups), 1, figsize=(11, 2.1 * len(groups)), squeeze=False)
    colors = {3: "tab:blue", 5: "tab:green", 7: "tab:red"}
    for ax, (key, blocks) in zip(axes[:, 0], groups.items()):
        xs = range(len(blocks))
        bottom = [0] * len(blocks)
        for i, k in enumerate(sorted({k for _, b in blocks for k in b.kernels})):
            vals = [dict(zip(b.kernels, b.channels)).get(k, 0) for _, b in blocks]
            ax.bar(xs, vals, bottom=bottom, color=colors.get(k, f"C{i}"), label=f"{k}x{k}")
            bottom = [a + v for a, v in zip(bottom, vals)]
        ax.bar(xs, [full[n].hidden if n in full else 0 for n, _ in blocks], fill=False, edgecolor="black", lw=0.6)
        toks = [b.tokens for _, b in blocks]
        if any(toks) or any(full[n].tokens for n, _ in blocks if n in full):
            ax2 = ax.twinx()
            ax2.plot(xs, toks, "k^", ms=4, label="tokens")
            ax2.set_ylabel("tokens")
        ax.set_ylabel("hidden")
        ax.set_title(key, fontsize=9, loc="left")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([n.replace("stages.", "s") for n, _ in blocks], rotation=90, fontsize=6)
    axes[0, 0].legend(fontsize=7, ncol=3, loc="upper right")
    fig.suptitle("surviving hidden channels per block (outline: supernet)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path
