"""What the benchmark scripts share: the machine line, writing result tables (CSV + Markdown, atomically), timing
callables side by side, the search benchmarks' CPU preset and its data, and architectures of a search space fitted
to a cost (uniform width, random keep fractions)."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import statistics
from pathlib import Path
from typing import Callable, Hashable, Iterable, Mapping, Optional, Sequence, TypeVar

from hrnas.files import write_atomic

RESULTS = Path(__file__).parent / "results"

__all__ = [
    "CALIB_BATCHES",
    "RESULTS",
    "TASKS",
    "TRAIN",
    "fit_to_macs",
    "machine",
    "markdown_table",
    "random_arch_at_macs",
    "search_data",
    "time_side_by_side",
    "uniform_arch",
    "write_csv",
    "write_markdown",
]

K = TypeVar("K", bound=Hashable)


def machine(threads: bool = False) -> str:
    """``'AMD EPYC ..., 2 CPUs, torch 2.14.1'``: where a result was measured (``threads=True``: this process's torch
    thread count in place of the CPU count, for latencies)."""
    import torch

    from hrnas.timing import cpu_name

    count = f"{torch.get_num_threads()} threads" if threads else f"{os.cpu_count()} CPUs"
    return f"{cpu_name()}, {count}, torch {torch.__version__}"


# -- result files -------------------------------------------------------------------------------------------


def write_csv(path: Path, rows: Iterable[dict], fields: Optional[Sequence[str]] = None) -> None:
    """Rows to a CSV file (atomically); dict and list values are written as compact JSON, None as an empty cell.

    ``fields``: the columns, in order (keys not named are left out); default: every key of the rows, in the order
    they first appear.
    """
    rows = list(rows)
    if fields is None:
        fields = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list)) else v for k, v in row.items()}
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buf.getvalue())


def write_markdown(path: Path, lines: Iterable[str]) -> None:
    """Lines of a report to a file (atomically), each ending in a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "".join(line + "\n" for line in lines))


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


# -- timing -------------------------------------------------------------------------------------------------


def time_side_by_side(
    calls: Mapping[K, Callable[[], object]], rounds: int, reps: int = 1, warmup: int = 1, device="cpu"
) -> dict[K, float]:
    """Median seconds of each callable, timed side by side in rounds.

    ``rounds`` passes over the callables; each visit runs ``warmup`` untimed calls, then ``reps`` timed ones
    (:func:`hrnas.timing.median_time`); a callable's time is the median over the rounds of its visits' medians.
    Interleaving spreads a change in the machine's speed over every callable alike, and the untimed call brings a
    network's weights back into the caches. For networks that all run in eval mode and channels_last, this is
    :func:`hrnas.latency.measure_latencies`; this one times callables that differ in memory format or form.
    """
    import torch

    from hrnas.timing import median_time

    device = torch.device(device)
    times: dict = {key: [] for key in calls}
    for _ in range(rounds):
        for key, fn in calls.items():
            times[key].append(median_time(fn, device, repeats=reps, warmup=warmup))
    return {key: statistics.median(t) for key, t in times.items()}


# -- the search benchmarks' CPU preset ------------------------------------------------------------------------

# Fashion-MNIST scenes segmentation and Fashion-MNIST classification, used by search_quality.py and
# latency_model.py. Data sizes: seg counts scenes, cls counts images per class (Fashion-MNIST is balanced); the
# time a run of search_quality.py took with them: see benchmarks/results/search_quality.md (`--plan` prints the
# estimate for this machine).
TASKS = {
    "seg": dict(space="seg_tiny", size=64, metric="mIoU", train=4000, val=1000, epochs=4.0),
    "cls": dict(space="cls_tiny", size=32, metric="top-1", train=400, val=100, epochs=3.5),
}
TRAIN = dict(batch_size=32, lr=0.1)  # the CPU demo's settings (hrnas.searching.recipes.DEMO)
CALIB_BATCHES = 10


def search_data(task: str, train: int, val: int, size: int):
    """``(train, val)`` of a task of :data:`TASKS`: ``train`` / ``val`` Fashion-MNIST scenes of ``size`` pixels
    (seg), or Fashion-MNIST images per class at ``size`` (cls); the training set augmented, seed 0."""
    from hrnas.searching.recipes import DataSpec, build_data

    name = "fmnist-scenes" if task == "seg" else "fmnist"
    return build_data(DataSpec(name, image_size=size, train_size=train, val_size=val, augment=True, seed=0))


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


def random_arch_at_macs(supernet, target: float, size: int | tuple[int, int], seed: int):
    """A random architecture of the space at ``target`` MACs: a keep fraction drawn uniformly in [0, 1] for every
    kernel path and every transformer, all scaled by one factor to the MACs (:func:`fit_to_macs`); returns
    ``(arch, factor)``. Not :func:`hrnas.latency.random_arch`, which draws around a mean keep fraction and fits no
    cost."""
    rng = random.Random(seed)
    channel_fracs = [[rng.random() for _ in b.channels] for b in supernet.blocks()]
    token_fracs = [rng.random() for _ in supernet.blocks()]
    return fit_to_macs(supernet, channel_fracs, token_fracs, target, size)
