"""Nuclei: a small real segmentation task with a real mask, for held-out validation of searched backbones.

The ``stardist`` package ships one 512x512 fluorescence image of cell nuclei with its real instance mask (125
nuclei, from the 2018 Data Science Bowl, BBBC038). Training crops come from the left three quarters of the image,
validation tiles from the right quarter, so validation pixels are never seen in training.

Targets: ``classes=2`` is background / nucleus, exactly the real mask; ``classes=3`` (default) splits nuclei into
interior and boundary, a boundary pixel being a nucleus pixel with a 4-neighbour of another label. The boundary
class is derived deterministically from the real instance mask; it makes touching nuclei separable, and it rewards
resolution (boundaries are one pixel wide).

``pip install --no-deps stardist tifffile`` installs the data (``--no-deps`` keeps TensorFlow out; nothing of
stardist is imported, only its files are read).
"""

from __future__ import annotations

import importlib.util
import os
import random
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ._errors import DataNotFoundError
from .fashion_mnist import _derive_seed

__all__ = ["NucleiSegmentation", "load_nuclei"]

_INSTALL = "pip install --no-deps stardist tifffile"
# the image's grey levels are 0-235; fixed statistics, measured on the whole image and rounded
MEAN, STD = 0.12, 0.09
TRAIN_COLUMNS = 384  # columns [0, 384) train, [384, 512) validate


def load_nuclei(data_dir: str | os.PathLike[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image, instances)``: float32 (512, 512) grey levels in [0, 1] and int64 (512, 512) instance labels (0 is
    background). ``data_dir`` overrides the stardist package's ``data/images`` folder."""
    if data_dir is None:
        spec = importlib.util.find_spec("stardist")
        if spec is None or not spec.submodule_search_locations:
            raise DataNotFoundError(f"the nuclei data ship with the stardist package; install it with `{_INSTALL}`.")
        data_dir = Path(spec.submodule_search_locations[0]) / "data" / "images"
    try:
        import tifffile
    except ImportError as e:
        raise DataNotFoundError(f"reading the nuclei image needs tifffile; install it with `{_INSTALL}`.") from e
    paths = [Path(data_dir) / "img2d.tif", Path(data_dir) / "mask2d.tif"]
    for path in paths:
        if not path.is_file():
            raise DataNotFoundError(f"nuclei file {path} was not found; install it with `{_INSTALL}`.")
    image = torch.from_numpy(tifffile.imread(paths[0]).astype("float32")) / 255.0
    instances = torch.from_numpy(tifffile.imread(paths[1]).astype("int64"))
    if image.shape != instances.shape:
        raise ValueError(f"the nuclei image {tuple(image.shape)} and mask {tuple(instances.shape)} differ in size")
    return image, instances


def _semantic(instances: torch.Tensor, classes: int) -> torch.Tensor:
    nucleus = instances > 0
    if classes == 2:
        return nucleus.long()
    padded = torch.nn.functional.pad(instances[None, None].float(), (1, 1, 1, 1), mode="replicate")[0, 0]
    centre = padded[1:-1, 1:-1]
    differs = torch.zeros_like(nucleus)
    for dr, dc in ((0, 1), (2, 1), (1, 0), (1, 2)):
        differs |= padded[dr : dr + centre.shape[0], dc : dc + centre.shape[1]] != centre
    labels = nucleus.long()
    labels[nucleus & differs] = 2
    return labels


class NucleiSegmentation(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Crops of the nuclei image with their real (or boundary-split) mask.

    ``'train'``: ``num_items`` random ``size`` x ``size`` crops of the left three quarters, with random flips and
    90-degree rotations drawn from ``(seed, index, epoch)``. ``'val'``: the right quarter cut into ``size`` x
    ``size`` tiles (``num_items`` is ignored). Items are ``(image, mask)``: float32 (channels, size, size)
    normalised, and int64 (size, size) labels.
    """

    def __init__(
        self,
        split: str = "train",
        num_items: int = 1000,
        *,
        size: int = 128,
        classes: int = 3,
        seed: int = 0,
        channels: int = 3,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}.")
        if classes not in (2, 3):
            raise ValueError(f"classes must be 2 (background / nucleus) or 3 (with boundaries), got {classes}.")
        if not 16 <= size <= 128:
            raise ValueError(f"size must be between 16 and 128 pixels (the held-out quarter is 128 wide), got {size}.")
        image, instances = load_nuclei(data_dir)
        labels = _semantic(instances, classes)
        cols = slice(0, TRAIN_COLUMNS) if split == "train" else slice(TRAIN_COLUMNS, image.shape[1])
        self.image, self.labels = image[:, cols].contiguous(), labels[:, cols].contiguous()
        self.split, self.size, self.num_classes, self.seed, self.channels = split, size, classes, seed, channels
        self.epoch = 0
        self.num_items = num_items if split == "train" else (image.shape[0] // size) * (self.image.shape[1] // size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = range(len(self))[index]
        s = self.size
        if self.split == "val":
            per_row = self.image.shape[1] // s
            top, left = (index // per_row) * s, (index % per_row) * s
            image, mask = self.image[top : top + s, left : left + s], self.labels[top : top + s, left : left + s]
        else:
            rng = random.Random(_derive_seed("nuclei", self.seed, index, self.epoch))
            top, left = rng.randint(0, self.image.shape[0] - s), rng.randint(0, self.image.shape[1] - s)
            image, mask = self.image[top : top + s, left : left + s], self.labels[top : top + s, left : left + s]
            turns = rng.randrange(4)
            image, mask = torch.rot90(image, turns), torch.rot90(mask, turns)
            if rng.random() < 0.5:
                image, mask = image.flip(-1), mask.flip(-1)
        image = ((image - MEAN) / STD).expand(self.channels, -1, -1).contiguous()
        return image, mask.contiguous()
