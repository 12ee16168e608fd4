"""Textured scenes: proxy tasks where a high-resolution branch can earn its cost.

Fashion-MNIST scenes at 64x64 (:mod:`hrnas.data.scenes`) reward only coarse recognition: every item is about
28 pixels, the background is black, and a stride-32 map already sees everything. These tasks are built so that
resolution matters, for searching architectures whose costs are counted at 224x224 and beyond:

- `TexturedScenes` (segmentation, 11 classes): 128x128 by default, 3 to 10 Fashion-MNIST items per scene whose
  sides range from 12 pixels (smaller than one stride-16 cell) to about 72 (a quarter of the image and more),
  touching and overlapping, pasted on crops of real photographs (`hrnas.data.backgrounds`).
- `TexturedKeypoints` (keypoints, 9 heatmaps): one large item on a textured background among small distractor
  items; the keypoints are its centroid and the eight extreme points of its real mask (top, bottom, left, right
  and the four diagonal corners), as heatmaps at stride 4. A keypoint loss, not a segmentation one, as the pose
  models are trained with.
- `TexturedFashionMNIST` (classification, 10 classes): one item of varied size and position on a 64x64 textured
  canvas, so that the stride-32 map is 2x2 rather than the 1x1 of 32x32 Fashion-MNIST.

What is real and what is not: the item classes and pixels are real Fashion-MNIST images (MIT); the
backgrounds are real CC0 / public-domain photographs shipped with scikit-image; the masks and keypoints are
derived from the items' pixels (grey level above `ITEM_THRESHOLD`); the layouts are synthetic. Training scenes
use Fashion-MNIST's training images and the top half of each photograph; ``'val'`` / ``'test'`` use the test
images and the bottom half, so validation items and backgrounds are never seen in training.

Item ``i`` depends only on ``(seed, split, i)`` (and the epoch, for the optional flip), in any order and any
DataLoader worker.
"""

from __future__ import annotations

import math
import os
import random

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .backgrounds import load_backgrounds
from .fashion_mnist import _derive_seed, load_fashion_mnist
from .scenes import CLASS_NAMES, ITEM_THRESHOLD, NUM_CLASSES, Placement, overlap, paste_item

__all__ = [
    "ITEM_THRESHOLD",
    "KEYPOINT_NAMES",
    "MEAN",
    "STD",
    "TexturedFashionMNIST",
    "TexturedKeypoints",
    "TexturedScenes",
    "keypoints_of_mask",
]

# Grey-level statistics of 300 training scenes of `TexturedScenes` at 128x128, scaled to [0, 1]; fixed so that
# every split, task and size is normalised identically (the three tasks' statistics differ by under 0.02).
MEAN = 0.38
STD = 0.20

KEYPOINT_NAMES: tuple[str, ...] = (
    "centroid",
    "top",
    "bottom",
    "left",
    "right",
    "top_left",
    "bottom_right",
    "top_right",
    "bottom_left",
)
_SOURCE_SPLIT = {"train": "train", "val": "test", "test": "test"}
_PLACEMENT_TRIES = 20


class _Textured(Dataset):
    """What the textured tasks share: sources, backgrounds, seeded draws, pasting and the flip."""

    task_name = "textured"

    def __init__(
        self,
        split: str,
        num_items: int,
        canvas: int | tuple[int, int],
        seed: int,
        data_dir: str | os.PathLike[str] | None,
        backgrounds_dir: str | os.PathLike[str] | None,
        channels: int,
        augment: bool,
    ) -> None:
        if split not in _SOURCE_SPLIT:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}.")
        if num_items < 0:
            raise ValueError(f"the number of items must be zero or more, got {num_items}.")
        height, width = (canvas, canvas) if isinstance(canvas, int) else canvas
        if height < 16 or width < 16:
            raise ValueError(f"canvas must be at least 16x16 pixels, got {canvas}.")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (grey replicated), got {channels}.")
        self.split = split
        self.num_items = num_items
        self.canvas = (height, width)
        self.seed = seed
        self.channels = channels
        self.augment = augment
        self.epoch = 0
        self.images, self.labels = load_fashion_mnist(_SOURCE_SPLIT[split], data_dir)
        self.backgrounds = load_backgrounds(split, backgrounds_dir)
        if any(min(b.shape) < 1 for b in self.backgrounds):
            raise ValueError("a background photograph is empty")

    def set_epoch(self, epoch: int) -> None:
        """Vary the augmentation flip between epochs (layouts never change)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_items

    def _rng(self, index: int) -> random.Random:
        return random.Random(_derive_seed(self.task_name, self.seed, self.split, index))

    def _flip(self, index: int) -> bool:
        if not self.augment:
            return False
        draw = random.Random(_derive_seed("flip", self.task_name, self.seed, self.split, index, self.epoch))
        return draw.random() < 0.5

    def _background(self, index: int) -> torch.Tensor:
        """A crop of a random photograph, zoomed out by up to 2x, with random brightness and contrast (0-255).

        Drawn from its own stream, so that `layout` alone reproduces the items."""
        rng = random.Random(_derive_seed("background", self.task_name, self.seed, self.split, index))
        height, width = self.canvas
        photo = self.backgrounds[rng.randrange(len(self.backgrounds))]
        most = min(photo.shape[0] / height, photo.shape[1] / width, 2.0)
        zoom = rng.uniform(min(1.0, most), most)
        ch, cw = max(1, int(height * zoom)), max(1, int(width * zoom))
        top, left = rng.randint(0, photo.shape[0] - ch), rng.randint(0, photo.shape[1] - cw)
        crop = photo[top : top + ch, left : left + cw]
        if crop.shape != (height, width):
            crop = F.interpolate(crop[None, None], size=(height, width), mode="bilinear", antialias=True)[0, 0]
        # a dimmer, flatter photograph than the original: items (mostly bright cloth) stay visible, but the
        # texture still competes with their edges
        level, contrast = rng.uniform(0.15, 0.5), rng.uniform(0.3, 0.9)
        return ((level + contrast * (crop - crop.mean())).clamp(0.0, 1.0) * 255.0).contiguous()

    def _placement(
        self, rng: random.Random, side: tuple[float, float], others: list[Placement], max_overlap: float
    ) -> Placement | None:
        """An item with a log-uniform side in ``side`` (fractions of the canvas) that overlaps each of ``others``
        by at most ``max_overlap`` of the smaller box; ``None`` when a few random positions all overlap more."""
        height, width = self.canvas
        short = min(height, width)
        size = round(short * math.exp(rng.uniform(math.log(side[0]), math.log(side[1]))))
        size = min(max(size, 4), height, width)
        source = rng.randrange(len(self.labels))
        label = int(self.labels[source])
        for _ in range(_PLACEMENT_TRIES):
            item = Placement(source, label, rng.randint(0, height - size), rng.randint(0, width - size), size)
            if all(overlap(item, other) <= max_overlap for other in others):
                return item
        return None

    def _image(self, canvas: torch.Tensor) -> torch.Tensor:
        image = (canvas / 255.0 - MEAN) / STD
        return image.expand(self.channels, -1, -1).contiguous()


class TexturedScenes(_Textured):
    """Segmentation scenes: many Fashion-MNIST items at several scales on real textured backgrounds.

    Items are ``(image, mask)``: a float32 tensor (channels, H, W) normalised with `MEAN` / `STD` and an int64
    mask (H, W) with 0 for background and ``class + 1`` for item pixels (11 classes, `CLASS_NAMES`).

    Args:
        split: ``'train'``, ``'val'`` or ``'test'`` (see the module docstring).
        num_scenes: dataset length; scene ``i`` does not depend on it.
        canvas: side, or ``(height, width)``, in pixels (at least 128 for the zoo's searches).
        items: inclusive ``(min, max)`` items per scene.
        side: ``(min, max)`` item side as a fraction of the canvas' shorter side, drawn log-uniformly (at 128
            pixels the default gives 12 to 72 pixels).
        max_overlap: largest share of the smaller of two item boxes they may share (items touch and overlap;
            later items occlude earlier ones).
        seed: selects the family of layouts.
        data_dir: Fashion-MNIST folder (see :func:`hrnas.data.resolve_data_dir`).
        backgrounds_dir: folder of the background photographs (default: scikit-image's).
        channels: 3 replicates the grey channel, 1 keeps it single.
        augment: horizontal flip of image and mask with probability 1/2, drawn from ``(seed, split, index, epoch)``.
    """

    task_name = "textured-scenes"

    def __init__(
        self,
        split: str = "train",
        num_scenes: int = 1000,
        *,
        canvas: int | tuple[int, int] = 128,
        items: tuple[int, int] = (3, 10),
        side: tuple[float, float] = (0.09, 0.56),
        max_overlap: float = 0.5,
        seed: int = 0,
        data_dir: str | os.PathLike[str] | None = None,
        backgrounds_dir: str | os.PathLike[str] | None = None,
        channels: int = 3,
        augment: bool = False,
    ) -> None:
        if not 0 <= items[0] <= items[1]:
            raise ValueError(f"items must be (min, max) with 0 <= min <= max, got {items}.")
        if not 0 < side[0] <= side[1] <= 1:
            raise ValueError(f"side must be (min, max) fractions of the canvas with 0 < min <= max <= 1, got {side}.")
        if not 0.0 <= max_overlap <= 1.0:
            raise ValueError(f"max_overlap must be a fraction in [0, 1], got {max_overlap}.")
        super().__init__(split, num_scenes, canvas, seed, data_dir, backgrounds_dir, channels, augment)
        self.items, self.side, self.max_overlap = items, side, max_overlap

    num_classes = NUM_CLASSES
    class_names = CLASS_NAMES

    def layout(self, index: int) -> tuple[Placement, ...]:
        """The items of scene ``index`` in pasting order (later ones occlude earlier ones)."""
        rng = self._rng(range(len(self))[index])
        placed: list[Placement] = []
        for _ in range(rng.randint(*self.items)):
            item = self._placement(rng, self.side, placed, self.max_overlap)
            if item is not None:
                placed.append(item)
        return tuple(placed)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = range(len(self))[index]
        canvas = self._background(index)
        mask = torch.zeros(self.canvas, dtype=torch.int64)
        for item in self.layout(index):
            paste_item(canvas, mask, self.images[item.source_index], item)
        if self._flip(index):
            canvas, mask = canvas.flip(-1), mask.flip(-1)
        return self._image(canvas), mask.contiguous()


class TexturedKeypoints(_Textured):
    """Keypoints: one large item among small distractors on a textured background; 9 heatmaps at stride 4.

    Items are ``(image, heatmaps, weights)``: the image as in `TexturedScenes`, float32 heatmaps (9, H/4, W/4)
    with a Gaussian (``sigma`` heatmap pixels) at each keypoint of the main item (`KEYPOINT_NAMES`: the centroid
    of its mask and the extreme mask pixels towards the top, bottom, left, right and the four diagonal corners,
    ties broken by the median), and float32 weights (9,) (1 where the keypoint exists). The main item is pasted
    last, so distractors never hide it. Flipping recomputes the keypoints on the flipped mask (they are defined by
    geometry, so "left" stays the leftmost point).

    Args:
        split, num_items, canvas, seed, data_dir, backgrounds_dir, channels, augment: as in `TexturedScenes`.
        side: the main item's side range (fractions of the canvas, log-uniform).
        distractors: inclusive ``(min, max)`` number of small items behind it, sides in ``distractor_side``.
        stride: output stride of the heatmaps (the dense models predict at stride 4).
        sigma: Gaussian width in heatmap pixels.
    """

    task_name = "textured-keypoints"
    num_classes = len(KEYPOINT_NAMES)

    def __init__(
        self,
        split: str = "train",
        num_items: int = 1000,
        *,
        canvas: int | tuple[int, int] = 128,
        side: tuple[float, float] = (0.45, 0.85),
        distractors: tuple[int, int] = (0, 3),
        distractor_side: tuple[float, float] = (0.1, 0.35),
        stride: int = 4,
        sigma: float = 1.0,
        seed: int = 0,
        data_dir: str | os.PathLike[str] | None = None,
        backgrounds_dir: str | os.PathLike[str] | None = None,
        channels: int = 3,
        augment: bool = False,
    ) -> None:
        if not 0 <= distractors[0] <= distractors[1]:
            raise ValueError(f"distractors must be (min, max) with 0 <= min <= max, got {distractors}.")
        for name, value in (("side", side), ("distractor_side", distractor_side)):
            if not 0 < value[0] <= value[1] <= 1:
                raise ValueError(f"{name} must be (min, max) fractions with 0 < min <= max <= 1, got {value}.")
        if stride < 1 or sigma <= 0:
            raise ValueError(f"stride must be >= 1 and sigma > 0, got stride={stride}, sigma={sigma}.")
        super().__init__(split, num_items, canvas, seed, data_dir, backgrounds_dir, channels, augment)
        self.side, self.distractors, self.distractor_side = side, distractors, distractor_side
        self.stride, self.sigma = stride, sigma

    def layout(self, index: int) -> tuple[Placement, ...]:
        """The distractors, then the main item (last)."""
        rng = self._rng(range(len(self))[index])
        main = self._placement(rng, self.side, [], 1.0)
        placed: list[Placement] = []
        for _ in range(rng.randint(*self.distractors)):
            item = self._placement(rng, self.distractor_side, placed, 0.5)
            if item is not None:
                placed.append(item)
        return (*placed, main)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index = range(len(self))[index]
        layout = self.layout(index)
        canvas = self._background(index)
        mask = torch.zeros(self.canvas, dtype=torch.int64)
        for item in layout[:-1]:
            paste_item(canvas, mask, self.images[item.source_index], item)
        main = layout[-1]
        own = torch.zeros(self.canvas, dtype=torch.bool)
        fg = paste_item(canvas, mask, self.images[main.source_index], main)
        own[main.top : main.top + main.size, main.left : main.left + main.size] = fg
        if self._flip(index):
            canvas, own = canvas.flip(-1), own.flip(-1)
        points = keypoints_of_mask(own)
        heatmaps, weights = self._heatmaps(points)
        return self._image(canvas), heatmaps, weights

    def _heatmaps(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = self.canvas
        hh, hw = math.ceil(height / self.stride), math.ceil(width / self.stride)
        k = len(KEYPOINT_NAMES)
        weights = torch.isfinite(points).all(-1).float()
        # pixel centres: image pixel p lies at heatmap coordinate (p + 0.5) / stride - 0.5
        centre = (points.nan_to_num(-1e4) + 0.5) / self.stride - 0.5
        ys = torch.arange(hh, dtype=torch.float32).view(1, hh, 1)
        xs = torch.arange(hw, dtype=torch.float32).view(1, 1, hw)
        d2 = (ys - centre[:, 0].view(k, 1, 1)) ** 2 + (xs - centre[:, 1].view(k, 1, 1)) ** 2
        heat = torch.exp(-d2 / (2 * self.sigma**2)) * weights.view(k, 1, 1)
        return heat, weights


def keypoints_of_mask(mask: torch.Tensor) -> torch.Tensor:
    """The 9 keypoints (`KEYPOINT_NAMES`) of a bool mask as ``(row, col)`` floats; NaN rows for an empty mask.

    Extreme points take the median position among the mask pixels that tie for the extreme.
    """
    rows, cols = torch.nonzero(mask, as_tuple=True)
    if rows.numel() == 0:
        return torch.full((len(KEYPOINT_NAMES), 2), float("nan"))
    r, c = rows.float(), cols.float()

    def extreme(score: torch.Tensor, largest: bool) -> tuple[float, float]:
        best = score.max() if largest else score.min()
        tie = score == best
        return float(r[tie].median()), float(c[tie].median())

    points = [
        (float(r.mean()), float(c.mean())),
        extreme(r, False),  # top
        extreme(r, True),  # bottom
        extreme(c, False),  # left
        extreme(c, True),  # right
        extreme(r + c, False),  # top-left
        extreme(r + c, True),  # bottom-right
        extreme(r - c, False),  # top-right
        extreme(r - c, True),  # bottom-left
    ]
    return torch.tensor(points, dtype=torch.float32)


class TexturedFashionMNIST(_Textured):
    """Classification: one Fashion-MNIST item of varied size and position on a textured canvas.

    Items are ``(image, label)`` with the label of the item (10 classes). At the default 64x64 the stride-32 map
    is 2x2; items span 22 to 58 pixels.

    Args:
        split, num_items, canvas, seed, data_dir, backgrounds_dir, channels, augment: as in `TexturedScenes`.
        side: the item's side range (fractions of the canvas, log-uniform).
    """

    task_name = "textured-fmnist"
    num_classes = 10

    def __init__(
        self,
        split: str = "train",
        num_items: int = 10000,
        *,
        canvas: int | tuple[int, int] = 64,
        side: tuple[float, float] = (0.35, 0.9),
        seed: int = 0,
        data_dir: str | os.PathLike[str] | None = None,
        backgrounds_dir: str | os.PathLike[str] | None = None,
        channels: int = 3,
        augment: bool = False,
    ) -> None:
        if not 0 < side[0] <= side[1] <= 1:
            raise ValueError(f"side must be (min, max) fractions with 0 < min <= max <= 1, got {side}.")
        super().__init__(split, num_items, canvas, seed, data_dir, backgrounds_dir, channels, augment)
        self.side = side

    def layout(self, index: int) -> Placement:
        return self._placement(self._rng(range(len(self))[index]), self.side, [], 1.0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = range(len(self))[index]
        item = self.layout(index)
        canvas = self._background(index)
        paste_item(canvas, torch.zeros(self.canvas, dtype=torch.int64), self.images[item.source_index], item)
        if self._flip(index):
            canvas = canvas.flip(-1)
        return self._image(canvas), item.label
