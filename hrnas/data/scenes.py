"""Fashion-MNIST scenes: a small semantic-segmentation task built from Fashion-MNIST.

What is real and what is not: the object classes and the object pixels are real Fashion-MNIST
images; the masks are derived from those pixels (an item pixel brighter than `ITEM_THRESHOLD` is
labelled with its item's class, everything else is background); the layout (which items, their
sizes, positions and overlaps) is synthetic, drawn at random. Use it to exercise segmentation code
quickly and reproducibly, not as evidence about real-world segmentation quality.

Scene ``i`` depends only on ``(seed, split, i)``, so any index can be fetched in any order, in any
DataLoader worker, and is identical every time. The training split draws items from the Fashion-MNIST
training images; ``'val'`` and ``'test'`` draw from the Fashion-MNIST test images, so validation
objects are never seen in training.
"""

from __future__ import annotations

import os
import random
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .fashion_mnist import CLASS_NAMES as FASHION_CLASS_NAMES
from .fashion_mnist import IMAGE_SIDE, MEAN, STD, _derive_seed, load_fashion_mnist

CLASS_NAMES: tuple[str, ...] = ("background", *FASHION_CLASS_NAMES)
NUM_CLASSES = len(CLASS_NAMES)  # 11: background plus the ten Fashion-MNIST classes
# Item pixels at or below this grey level are treated as background: Fashion-MNIST's background is
# exactly 0, and a small margin keeps faint resampling halos out of the masks.
ITEM_THRESHOLD = 10.0

_SOURCE_SPLIT = {"train": "train", "val": "test", "test": "test"}
_PLACEMENT_TRIES = 20


def overlap(a: Placement, b: Placement) -> float:
    """Shared box area as a fraction of the smaller of the two boxes."""
    rows = max(0, min(a.top + a.size, b.top + b.size) - max(a.top, b.top))
    cols = max(0, min(a.left + a.size, b.left + b.size) - max(a.left, b.left))
    return rows * cols / min(a.size, b.size) ** 2


class Placement(NamedTuple):
    """One item pasted into a scene."""

    source_index: int  # index into the source Fashion-MNIST split's images
    label: int  # Fashion-MNIST class 0-9; the mask stores label + 1
    top: int  # row of the item's top-left corner on the canvas
    left: int  # column of the item's top-left corner on the canvas
    size: int  # side of the (square) resized item in pixels


def paste_item(canvas: torch.Tensor, mask: torch.Tensor, image: torch.Tensor, item: Placement) -> torch.Tensor:
    """Paste Fashion-MNIST ``image`` (uint8, 28x28) resized to ``item.size`` at ``item``'s position, in place.

    ``canvas`` holds grey levels 0-255. Only the item's own pixels (brighter than `ITEM_THRESHOLD`) are
    written, so an item occludes what lies under its silhouette but not under its empty corners; ``mask``
    gets ``item.label + 1`` there. Returns the item's foreground (a bool tensor of the item's box).
    """
    pixels = image.float()
    if item.size != IMAGE_SIDE:
        pixels = F.interpolate(pixels[None, None], size=(item.size, item.size), mode="bilinear", antialias=True)[0, 0]
    foreground = pixels > ITEM_THRESHOLD
    rows = slice(item.top, item.top + item.size)
    cols = slice(item.left, item.left + item.size)
    canvas[rows, cols] = torch.where(foreground, pixels, canvas[rows, cols])
    mask[rows, cols] = torch.where(foreground, item.label + 1, mask[rows, cols])
    return foreground


class FashionMNISTScenes(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Scenes of several Fashion-MNIST items on a black canvas, with per-pixel class masks.

    Items are ``(image, mask)``: a float32 tensor of shape (channels, H, W) normalised with the
    Fashion-MNIST `MEAN`/`STD`, and an int64 tensor of shape (H, W) holding 0 for background and
    ``class + 1`` for item pixels (`NUM_CLASSES` = 11 values, named by `CLASS_NAMES`). Items lie
    fully inside the canvas; later items occlude earlier ones.

    Args:
        split: ``'train'`` (items from Fashion-MNIST train) or ``'val'``/``'test'`` (items from
            Fashion-MNIST test; the two use different layouts).
        num_scenes: dataset length. Scene ``i`` does not depend on it, so a longer dataset extends a
            shorter one.
        canvas: scene side, or ``(height, width)``, in pixels.
        items: inclusive ``(min, max)`` number of items per scene.
        scale: inclusive ``(min, max)`` item side relative to the native 28 pixels; items larger
            than the canvas are shrunk to fit.
        max_overlap: largest share of an item's box that another item's box may cover; an item
            that finds no such position in a few random tries is left out (1.0: no limit).
        seed: selects the family of layouts.
        data_dir: folder holding the Fashion-MNIST idx files; see `resolve_data_dir`.
        channels: 3 replicates the grey channel, 1 keeps it single.
        augment: flip image and mask horizontally together with probability 1/2. The flip is drawn
            from ``(seed, split, index, epoch)`` (see `set_epoch`), so it is reproducible too.
    """

    def __init__(
        self,
        split: str = "train",
        num_scenes: int = 1000,
        *,
        canvas: int | tuple[int, int] = 64,
        items: tuple[int, int] = (1, 4),
        scale: tuple[float, float] = (0.6, 1.5),
        max_overlap: float = 0.25,
        seed: int = 0,
        data_dir: str | os.PathLike[str] | None = None,
        channels: int = 3,
        augment: bool = False,
    ) -> None:
        if split not in _SOURCE_SPLIT:
            raise ValueError(f"Scene split must be 'train', 'val' or 'test', got {split!r}.")
        if num_scenes < 0:
            raise ValueError(f"num_scenes must be zero or more, got {num_scenes}.")
        height, width = (canvas, canvas) if isinstance(canvas, int) else canvas
        if height < 1 or width < 1:
            raise ValueError(f"canvas must have a positive height and width, got {canvas}.")
        if not 0 <= items[0] <= items[1]:
            raise ValueError(f"items must be (min, max) with 0 <= min <= max, got {items}.")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be (min, max) with 0 < min <= max, got {scale}.")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (grey replicated), got {channels}.")
        self.split = split
        self.source_split = _SOURCE_SPLIT[split]
        self.num_scenes = num_scenes
        self.canvas = (height, width)
        self.items = items
        self.scale = scale
        if not 0.0 <= max_overlap <= 1.0:
            raise ValueError(f"max_overlap must be a fraction in [0, 1], got {max_overlap}.")
        self.max_overlap = max_overlap
        self.seed = seed
        self.channels = channels
        self.augment = augment
        self.epoch = 0
        self.images, self.labels = load_fashion_mnist(self.source_split, data_dir)

    def set_epoch(self, epoch: int) -> None:
        """Vary the augmentation flip between epochs (layouts never change).

        DataLoader workers hold copies of the dataset, so call this before creating the epoch's
        iterator (not with ``persistent_workers=True``).
        """
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_scenes

    def layout(self, index: int) -> tuple[Placement, ...]:
        """Return the items of scene `index`, in pasting order (later ones occlude earlier ones)."""
        index = range(len(self))[index]  # normalises negative indices and raises IndexError
        # Python's Random is used rather than a torch.Generator because a scene needs only a handful of
        # scalar draws, which are far cheaper in plain Python than as tiny tensors.
        rng = random.Random(_derive_seed("scene", self.seed, self.split, index))
        height, width = self.canvas
        placements: list[Placement] = []
        for _ in range(rng.randint(*self.items)):
            source_index = rng.randrange(len(self.labels))
            size = round(IMAGE_SIDE * rng.uniform(*self.scale))
            size = min(max(size, 1), height, width)
            label = int(self.labels[source_index])
            # A few tries for a position that hides at most `max_overlap` of either box; an item that
            # finds none is left out, so scenes stay readable (most of every object visible).
            for _attempt in range(_PLACEMENT_TRIES):
                top = rng.randint(0, height - size)
                left = rng.randint(0, width - size)
                item = Placement(source_index, label, top, left, size)
                if all(overlap(item, other) <= self.max_overlap for other in placements):
                    placements.append(item)
                    break
        return tuple(placements)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = range(len(self))[index]
        canvas = torch.zeros(self.canvas)
        mask = torch.zeros(self.canvas, dtype=torch.int64)
        for item in self.layout(index):
            paste_item(canvas, mask, self.images[item.source_index], item)
        if self.augment and self._flip(index):
            canvas, mask = canvas.flip(-1), mask.flip(-1)
        image = (canvas / 255.0 - MEAN) / STD
        image = image.expand(self.channels, -1, -1).contiguous()
        return image, mask.contiguous()

    def _flip(self, index: int) -> bool:
        return random.Random(_derive_seed("flip", self.seed, self.split, index, self.epoch)).random() < 0.5
