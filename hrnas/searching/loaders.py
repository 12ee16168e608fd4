"""The search's data: deterministic, resumable, rank-sharded batching, calibration inputs and evaluation.

The order of epoch ``e`` is a permutation seeded by ``(seed, e)`` alone, cut to a whole number of global batches
and dealt to ranks round-robin, so a run resumed at any step sees exactly the batches an uninterrupted run would,
and ``torchrun`` ranks see disjoint shards of equal length (DDP needs every rank to take the same number of
steps). A user's own ``DataLoader`` is used as given instead, without those guarantees.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, List, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .config import SearchConfig
from .errors import SearchError
from .tasks import Metric

__all__ = ["EpochBatches", "RunData", "sequential_shard", "split_batch", "to_device"]


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


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` (a tensor, or lists and tuples of them) on ``device``."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    return batch


def split_batch(batch: Any) -> tuple[torch.Tensor, Any]:
    """``(inputs, targets)`` of a batch; keypoint batches ``(images, heatmaps, weights)`` give ``(heatmaps, weights)``
    as the target."""
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    if isinstance(batch, (list, tuple)) and len(batch) == 3:  # (images, heatmaps, weights)
        return batch[0], (batch[1], batch[2])
    raise SearchError("each batch must be (inputs, targets) or (inputs, heatmaps, weights)")


class RunData:
    """A run's data as one process sees it: training batches from any step on, BatchNorm calibration inputs, and the
    evaluation of a network on the validation data.

    ``train_data`` is a map-style dataset (batched by :class:`EpochBatches`) or a ``DataLoader`` used as given;
    ``val_data`` a dataset (sharded by :func:`sequential_shard`), a ``DataLoader``, or ``None``. ``cfg`` gives the
    batch size, seed and workers.
    """

    def __init__(
        self,
        train_data: Dataset | DataLoader,
        val_data: Optional[Dataset | DataLoader],
        cfg: SearchConfig,
        rank: int = 0,
        world: int = 1,
        device: str | torch.device = "cpu",
    ) -> None:
        self.train_data, self.val_data = train_data, val_data
        self.batch_size, self.num_workers = cfg.batch_size, cfg.num_workers
        self.rank, self.world, self.device = rank, world, torch.device(device)
        if isinstance(train_data, DataLoader):
            self.batches = None
            self.steps_per_epoch = len(train_data)
        else:
            pin = self.device.type == "cuda"
            self.batches = EpochBatches(train_data, cfg.batch_size, cfg.seed, rank, world, cfg.num_workers, pin)
            self.steps_per_epoch = self.batches.steps_per_epoch

    def train_batches(self, step: int) -> Iterator:
        """Training batches (as the data gives them) from ``step`` on, across epochs, without end."""
        if self.batches is None:
            return self._given_loader_from(step)
        epoch, start = divmod(step, self.steps_per_epoch)
        if start == 0:
            return self._epochs_from(epoch, None)
        # An epoch's DataLoader draws its base seed from torch's global generator when it is created, which in an
        # uninterrupted run happens inside the epoch's first step, after that step's seed was set. A run resumed
        # mid-epoch creates its loader now, before its first step is seeded, so that the step then draws the same
        # dropout masks as the uninterrupted run.
        return self._epochs_from(epoch + 1, self._loader(epoch, start))

    def _given_loader_from(self, step: int) -> Iterator:
        epoch = step // max(1, self.steps_per_epoch)
        skip = step % max(1, self.steps_per_epoch)
        while True:
            sampler = getattr(self.train_data, "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            for i, batch in enumerate(self.train_data):
                if i >= skip:
                    yield batch
            skip = 0
            epoch += 1

    def _loader(self, epoch: int, start: int) -> Iterator:
        if hasattr(self.train_data, "set_epoch"):
            self.train_data.set_epoch(epoch)
        return self.batches.epoch(epoch, start)

    def _epochs_from(self, epoch: int, first: Optional[Iterator]) -> Iterator:
        if first is not None:
            yield from first
        while True:
            yield from self._loader(epoch, 0)
            epoch += 1

    def calibration_inputs(self, batches: int) -> Iterator[torch.Tensor]:
        """The inputs of ``batches`` training batches, on the device, in an order that does not depend on the step."""
        if self.batches is None:
            source = iter(self.train_data)
        else:
            source = self.batches.epoch(10**6)  # a fixed order, independent of the training position
        for i, batch in enumerate(source):
            if i >= batches:
                break
            yield split_batch(to_device(batch, self.device))[0]

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, make_metric: Callable[[], Metric], max_batches: Optional[int] = None
    ) -> Optional[float]:
        """``model``'s metric on the validation data (all processes' shares together), ``None`` without it."""
        if self.val_data is None:
            return None
        metric = make_metric()
        if isinstance(self.val_data, DataLoader):
            loader = self.val_data
        else:
            loader = sequential_shard(self.val_data, self.batch_size, self.rank, self.world, self.num_workers)
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            x, target = split_batch(to_device(batch, self.device))
            metric.update(model(x), target)
        metric.all_reduce()
        return metric.compute()
