"""The entry points of a run: :func:`search` (shrink a supernet to a budget) and :func:`train` (a fixed network).

Both drive the same loop (:mod:`.loop`: data order, schedule, EMA, BatchNorm calibration, evaluation, checkpoints,
resume), so a fixed architecture trained as a baseline sees exactly what a search sees, except the penalty and the
shrink checks, which :func:`train` never runs: a change to how units are chosen cannot move a baseline.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import torch
from torch.utils.data import DataLoader, Dataset

from ..net import HRNASNet
from .config import SearchConfig, renamed_settings
from .loop import _Run
from .result import SearchResult
from .tasks import Metric

__all__ = ["search", "train"]

# settings that only mean something to a search: train() refuses them rather than ignore them
_SEARCH_ONLY = ("budget", "params", "latency_ms", "latency_feedback")


def search(
    supernet: HRNASNet,
    train_data: Dataset | DataLoader,
    val_data: Optional[Dataset | DataLoader] = None,
    config: Optional[SearchConfig] = None,
    *,
    loss: Optional[Callable[[torch.Tensor, Any], torch.Tensor]] = None,
    metric: Optional[Callable[[], Metric]] = None,
    callbacks: Optional[Iterable[Any]] = None,
    **settings: Any,
) -> SearchResult:
    """Search a smaller network inside ``supernet`` by fine-grained progressive shrinking, training it as it goes.

    Args:
        supernet: the full-width network (``hrnas.create_supernet(...)``); it is not modified.
        train_data: a map-style dataset of ``(image, target)`` pairs (batched, sharded and ordered
            deterministically, so runs resume exactly), or a ``DataLoader`` used as given.
        val_data: dataset or loader for the metric (optional).
        config: a :class:`SearchConfig`; keyword ``settings`` override its fields (``budget='1.4G'``,
            ``input_size=(512, 512)``, ``epochs=...``, ``output_dir=...``, ``resume=...``,
            ``latency_table=...``; see ``SearchConfig``).
        loss: ``loss(output, target)``; default: the task preset's (cross-entropy, heatmap MSE...).
        metric: a factory of :class:`hrnas.searching.tasks.Metric`; default: the task preset's (mIoU, PCK, top-1).
        callbacks: objects with any of the methods of :class:`hrnas.searching.callbacks.SearchCallback`, called
            at the start, after each step, around each shrink check, after each evaluation and at the end (on
            rank 0); they observe the run through a :class:`hrnas.searching.callbacks.RunView`.

    ``latency_model=`` is a deprecated name of the ``latency_table`` setting (a :class:`hrnas.LatencyTable` or the
    path of one, for ``latency_ms=`` budgets).

    Returns:
        A :class:`SearchResult` whose ``.model`` is a plain, static ``HRNASNet`` with the trained weights (EMA,
        BatchNorm re-calibrated) and whose ``.arch`` is the found architecture.
    """
    cfg = (config or SearchConfig()).replace(**renamed_settings(settings))
    return _drive(_Run(supernet, train_data, val_data, cfg, loss, metric, callbacks))


def train(
    model: HRNASNet,
    train_data: Dataset | DataLoader,
    val_data: Optional[Dataset | DataLoader] = None,
    config: Optional[SearchConfig] = None,
    *,
    loss: Optional[Callable[[torch.Tensor, Any], torch.Tensor]] = None,
    metric: Optional[Callable[[], Metric]] = None,
    callbacks: Optional[Iterable[Any]] = None,
    **settings: Any,
) -> SearchResult:
    """Train a fixed architecture with the search's own training loop, nothing removed (baselines, fine-tuning).

    ``model`` keeps its architecture; its weights are the starting point (``model`` itself is not modified). The
    data order, schedule, augmentation, EMA, BatchNorm calibration, evaluations, checkpoints and ``resume=`` are
    those of :func:`search` with the same settings, so a searched network and a fixed one trained this way are
    compared on equal terms. Budget settings (``budget``, ``params``, ``latency_ms``, ``latency_feedback``) are
    refused: there is nothing to search.

    Args:
        model: any ``HRNASNet`` (``hrnas.create_model(...)``, ``hrnas.HRNASNet(arch)``, a search's ``.model``).
        train_data, val_data, config, loss, metric, callbacks: as for :func:`search`.
        settings: fields of :class:`SearchConfig` (``steps=``, ``epochs=``, ``lr=``, ``batch_size=``,
            ``output_dir=``, ...).

    Returns:
        A :class:`SearchResult` whose ``.arch`` is ``model``'s architecture and whose ``.model`` holds the trained
        weights (EMA, BatchNorm re-calibrated).
    """
    given = [k for k in _SEARCH_ONLY if settings.get(k) not in (None, False)]
    if config is not None:
        given += [k for k in _SEARCH_ONLY if getattr(config, k) not in (None, False) and k not in given]
    if given:
        raise ValueError(f"train() trains a fixed architecture: {', '.join(given)} only apply to hrnas.search")
    cfg = (config or SearchConfig()).replace(**renamed_settings(settings)).replace(rho=0.0, threshold=-1.0)
    return _drive(_Run(model, train_data, val_data, cfg, loss, metric, callbacks, fixed_arch=True))


def _drive(run: _Run) -> SearchResult:
    threads = torch.get_num_threads()
    try:
        return run.run()
    finally:
        torch.set_num_threads(threads)  # the run's choice of threads does not outlive it
