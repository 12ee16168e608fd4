"""What the benchmark scripts share: the machine line, writing result tables (CSV + Markdown, atomically), and
architectures of a search space fitted to a cost (uniform width, random keep fractions)."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import random
from pathlib import Path
from typing import Iterable, Sequence

from hrnas._files import write_atomic

RESULTS = Path(__file__).parent / "results"

__all__ = ["RESULTS", "fit_to_macs", "machine", "markdown_table", "random_arch", "uniform_arch", "write_csv"]


def machine() -> str:
    """``'AMD EPYC ..., 2 CPUs, torch 2.14.1'``: where a result was measured."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}"


def write_csv(path: Path, rows: Iterable[dict], fields: Sequence[str]) -> None:
    """Rows to a CSV file (atomically); dict and list values are written as compact JSON."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list)) else v for k, v in row.items()}
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buf.getvalue())


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


# -- architectures at a given cost --------------------------------------------------------------------------


def _macs(arch, size: tuple[int, int]) -> int:
    import hrnas

    return hrnas.count_macs(arch, size)


def _bisect(make, target: float, size: tuple[int, int], hi: float = 1.0, iters: int = 40):
    """The arch ``make(s)`` (MACs nondecreasing in ``s``, ``s`` in [0, hi]) whose MACs are closest to ``target``."""
    lo = 0.0
    for _ in range(iters):
        mid = (lo + hi) / 2
        if _macs(make(mid), size) > target:
            hi = mid
        else:
            lo = mid
    return min(((make(s), s) for s in (lo, hi)), key=lambda a: abs(_macs(a[0], size) - target))


def _scaled(arch, channel_fracs, token_fracs, s: float, tokens=None):
    """Every block's paths keep ``round(c * min(1, s * frac))`` channels; tokens likewise (or as given)."""
    blocks = []
    for i, b in enumerate(arch.blocks()):
        ch = tuple(int(round(c * min(1.0, s * f))) for c, f in zip(b.channels, channel_fracs[i]))
        tok = tokens[i] if tokens is not None else int(round(b.tokens * min(1.0, s * token_fracs[i])))
        blocks.append(b.replace(channels=ch, tokens=tok))
    return arch.with_blocks(blocks)


def fit_to_macs(supernet, channel_fracs, token_fracs, target: float, size: int | tuple[int, int]):
    """Scale per-unit keep fractions by one factor to ``target`` MACs at ``size``; returns ``(arch, factor)``.

    Tokens come in few, costly units (all of a transformer's cost scales with them), so after the first fit the token
    counts are fixed and the channel factor alone is re-solved, which reaches the target closely.
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    smallest = min([f for fr in channel_fracs for f in fr] + [f for f in token_fracs if f > 0] + [1.0])
    hi = 1.0 / max(smallest, 1e-6)
    arch, s = _bisect(lambda s: _scaled(supernet, channel_fracs, token_fracs, s), target, size, hi)
    tokens = [b.tokens for b in arch.blocks()]
    arch, s = _bisect(lambda s: _scaled(supernet, channel_fracs, token_fracs, s, tokens), target, size, hi)
    return arch, s


def uniform_arch(supernet, target: float, size: int | tuple[int, int]):
    """The supernet with one keep fraction for every kernel path and every transformer, at ``target`` MACs."""
    ones = [[1.0] * len(b.channels) for b in supernet.blocks()]
    return fit_to_macs(supernet, ones, [1.0] * len(ones), target, size)


def random_arch(supernet, target: float, size: int | tuple[int, int], seed: int):
    """A random architecture of the space at ``target`` MACs (uniform random keep fraction per path and transformer)."""
    rng = random.Random(seed)
    channel_fracs = [[rng.random() for _ in b.channels] for b in supernet.blocks()]
    token_fracs = [rng.random() for _ in supernet.blocks()]
    return fit_to_macs(supernet, channel_fracs, token_fracs, target, size)
