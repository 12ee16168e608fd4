"""Deterministic, resumable, rank-sharded batching for the search.

The order of epoch ``e`` is a permutation seeded by ``(seed, e)`` alone, cut to a whole number of global batches
and dealt to ranks round-robin, so a run resumed at any step sees exactly the batches an uninterrupted run would,
and ``torchrun`` ranks see disjoint shards of equal length (DDP needs every rank to take the same number of
steps). A user's own ``DataLoader`` is used as given instead, without those guarantees.
"""

from __future__ import annotations

from typing import Iterator, List, Optional

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["EpochBatches", "sequential_shard"]


def _seeded(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


class EpochBatches:
    """Batches of a map-style dataset for one rank, epoch by epoch."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        n = len(dataset)  # type: ignore[arg-type]
        self.steps_per_epoch = n // (batch_size * world)
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"the training data has {n} items, fewer than one global batch ({batch_size} x {world} processes); "
                "use a smaller batch_size or more data"
            )
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world = rank, world
        self.num_workers, self.pin_memory = num_workers, pin_memory

    def indices(self, epoch: int) -> List[int]:
        """This rank's sample indices for ``epoch``, in order."""
        n = len(self.dataset)  # type: ignore[arg-type]
        perm = torch.randperm(n, generator=_seeded(self.seed * 100_003 + epoch))
        used = perm[: self.steps_per_epoch * self.batch_size * self.world]
        return used[self.rank :: self.world].tolist()

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator:
        """Iterate the batches of ``epoch`` from its ``start_step``-th batch on."""
        idx = self.indices(epoch)[start_step * self.batch_size :]
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=idx,
            num_workers=self.num_workers,
            drop_last=True,
            pin_memory=self.pin_memory,
        )
        return iter(loader)


def sequential_shard(
    dataset: Dataset, batch_size: int, rank: int = 0, world: int = 1, num_workers: int = 0, limit: Optional[int] = None
) -> DataLoader:
    """Every ``world``-th item from ``rank`` on, in order (evaluation), optionally only the first ``limit`` batches."""
    idx = list(range(rank, len(dataset), world))  # type: ignore[arg-type]
    if limit is not None:
        idx = idx[: limit * batch_size]
    return DataLoader(dataset, batch_size=batch_size, sampler=idx, num_workers=num_workers)
