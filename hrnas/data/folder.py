"""A plain folder format for your own semantic-segmentation data.

Layout::

    root/images/<name>.png   (or .jpg / .jpeg; any mode, read as RGB)
    root/masks/<name>.png    (single-channel PNG of class indices; 255 marks pixels to ignore)

Every image needs a mask with the same name and size; masks without an image are ignored.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .fashion_mnist import _derive_seed

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
# The value mask files use for "ignore this pixel"; `SegmentationFolder(ignore_index=...)` chooses
# what it becomes in the returned masks.
FILE_IGNORE_VALUE = 255
# ImageNet statistics, because user images are usually fed to ImageNet-pretrained backbones.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_MASK_MODES = ("1", "L", "P", "I", "I;16")

ImageLike = torch.Tensor | np.ndarray | Image.Image


class SegmentationFolder(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Segmentation dataset read from ``root/images`` and ``root/masks`` (see the module docstring).

    Items are ``(image, mask)``: a float32 tensor of shape (3, H, W) normalised with `IMAGENET_MEAN`
    and `IMAGENET_STD`, and an int64 tensor of shape (H, W) of class indices, with `ignore_index`
    where the mask file holds 255. Items are in name order.

    Args:
        root: the dataset folder.
        num_classes: if given, each mask is checked when loaded: every value must be below
            `num_classes` or be 255.
        size: ``(height, width)`` to resize to (image bilinear, mask nearest), or ``None`` to keep
            each file's size.
        augment: flip image and mask horizontally together with probability 1/2.
        ignore_index: value written into returned masks where the file says 255 (e.g. -100 to match
            ``torch.nn.CrossEntropyLoss``'s default).
        seed: with `augment`, ``None`` draws from torch's default generator (which DataLoader seeds
            differently in each worker); an int makes item ``i`` in epoch ``e`` (see `set_epoch`)
            always get the same flip.

    Raises:
        FileNotFoundError: `root`, ``images/`` or ``masks/`` is missing, there are no images, or an
            image has no mask.
        ValueError: two images share a name (e.g. ``a.png`` and ``a.jpg``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        num_classes: int | None = None,
        *,
        size: tuple[int, int] | None = None,
        augment: bool = False,
        ignore_index: int = FILE_IGNORE_VALUE,
        seed: int | None = None,
    ) -> None:
        self.root = Path(root)
        images_dir, masks_dir = self.root / "images", self.root / "masks"
        for folder in (images_dir, masks_dir):
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"Segmentation folder {folder} is missing; a dataset root needs images/<name>.png|jpg "
                    "and masks/<name>.png (write_segmentation_folder creates one)."
                )
        by_name: dict[str, Path] = {}
        for path in sorted(images_dir.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue  # hidden files include write_segmentation_folder's temporaries
            if path.stem in by_name:
                raise ValueError(
                    f"Images {by_name[path.stem]} and {path} share the name {path.stem!r}; "
                    "keep one so that each mask belongs to a single image."
                )
            by_name[path.stem] = path
        if not by_name:
            raise FileNotFoundError(
                f"{images_dir} holds no .png, .jpg or .jpeg images; add some or point root at the right folder."
            )
        self.names: tuple[str, ...] = tuple(sorted(by_name))
        self.image_paths: tuple[Path, ...] = tuple(by_name[name] for name in self.names)
        self.mask_paths: tuple[Path, ...] = tuple(masks_dir / f"{name}.png" for name in self.names)
        for image_path, mask_path in zip(self.image_paths, self.mask_paths, strict=True):
            if not mask_path.is_file():
                raise FileNotFoundError(f"Image {image_path} has no mask; add {mask_path} or remove the image.")
        if num_classes is not None and not 1 <= num_classes <= FILE_IGNORE_VALUE:
            raise ValueError(f"num_classes must be between 1 and 255 (255 marks ignore), got {num_classes}.")
        if size is not None and (size[0] < 1 or size[1] < 1):
            raise ValueError(f"size must be a positive (height, width), got {size}.")
        self.num_classes = num_classes
        self.size = size
        self.augment = augment
        self.ignore_index = ignore_index
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Vary seeded augmentation between epochs.

        DataLoader workers hold copies of the dataset, so call this before creating the epoch's
        iterator (not with ``persistent_workers=True``).
        """
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = range(len(self))[index]  # normalises negative indices and raises IndexError
        image_path, mask_path = self.image_paths[index], self.mask_paths[index]
        with Image.open(image_path) as opened:
            image = opened.convert("RGB")
        with Image.open(mask_path) as opened:
            if opened.mode not in _MASK_MODES:
                raise ValueError(
                    f"{mask_path} is a {opened.mode} image but masks must be single-channel class "
                    "indices; save it as an 8-bit greyscale (L) or palette (P) PNG."
                )
            mask = opened.copy()
        if image.size != mask.size:
            raise ValueError(
                f"{image_path} is {image.size[0]}x{image.size[1]} but {mask_path} is "
                f"{mask.size[0]}x{mask.size[1]}; image and mask must have the same size."
            )
        if self.size is not None:
            target = (self.size[1], self.size[0])  # PIL sizes are (width, height)
            image = image.resize(target, Image.Resampling.BILINEAR)
            mask = mask.resize(target, Image.Resampling.NEAREST)
        image_tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mask_tensor = torch.from_numpy(np.array(mask, dtype=np.int64))
        if self.num_classes is not None:
            self._check_mask_values(mask_tensor, mask_path)
        mask_tensor[mask_tensor == FILE_IGNORE_VALUE] = self.ignore_index
        if self.augment and self._flip(index):
            image_tensor, mask_tensor = image_tensor.flip(-1), mask_tensor.flip(-1)
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        return ((image_tensor - mean) / std).contiguous(), mask_tensor.contiguous()

    def _check_mask_values(self, mask: torch.Tensor, path: Path) -> None:
        assert self.num_classes is not None
        values = torch.unique(mask)
        bad = values[((values < 0) | (values >= self.num_classes)) & (values != FILE_IGNORE_VALUE)]
        if bad.numel():
            raise ValueError(
                f"{path} contains mask value {int(bad[0])} but num_classes={self.num_classes} allows "
                f"0-{self.num_classes - 1} and 255 (ignore); fix the mask or raise num_classes."
            )

    def _flip(self, index: int) -> bool:
        generator = None
        if self.seed is not None:
            generator = torch.Generator().manual_seed(_derive_seed(self.seed, self.epoch, index))
        return bool(torch.randint(0, 2, (1,), generator=generator).item())


def write_segmentation_folder(
    root: str | os.PathLike[str],
    images: Iterable[ImageLike],
    masks: Iterable[ImageLike],
    names: Sequence[str] | None = None,
) -> Path:
    """Write images and masks as a dataset that `SegmentationFolder` reads; returns `root`.

    Args:
        root: dataset folder; ``images/`` and ``masks/`` are created inside it.
        images: uint8 images as torch tensors (3xHxW or HxW), numpy arrays (HxWx3 or HxW) or PIL images.
        masks: class-index masks (HxW integers 0-255, 255 = ignore) as tensors, arrays or PIL images.
        names: file stems, one per image; defaults to ``000000``, ``000001``, ...

    Every file is written under a temporary hidden name and renamed into place, so an interrupted
    write never leaves a half-written file. Each mask is written before its image, so an
    interruption leaves at most an unused mask, never an image without a mask.
    """
    root = Path(root)
    images_dir, masks_dir = root / "images", root / "masks"
    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    pairs = zip(images, masks, strict=True) if names is None else zip(images, masks, names, strict=True)
    for position, pair in enumerate(pairs):
        image, mask = pair[0], pair[1]
        name = f"{position:06d}" if names is None else pair[2]
        if not name or name.startswith(".") or Path(name).name != name or name in used:
            raise ValueError(
                f"Name {name!r} is empty, hidden, a path or a duplicate; give each item a plain unique name."
            )
        used.add(name)
        image_pil = _to_pil(image, f"image {name!r}")
        mask_pil = _mask_to_pil(mask, f"mask {name!r}")
        if image_pil.size != mask_pil.size:
            raise ValueError(
                f"Image {name!r} is {image_pil.size[0]}x{image_pil.size[1]} but its mask is "
                f"{mask_pil.size[0]}x{mask_pil.size[1]}; give them the same size."
            )
        _save_png_atomically(mask_pil, masks_dir / f"{name}.png")
        _save_png_atomically(image_pil, images_dir / f"{name}.png")
    return root


def _to_pil(value: ImageLike, what: str) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, torch.Tensor):
        if value.dtype != torch.uint8:
            raise TypeError(f"The {what} is a {value.dtype} tensor; convert it to torch.uint8 (0-255) first.")
        value = value.detach().cpu()
        value = (value.permute(1, 2, 0) if value.ndim == 3 else value).numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"The {what} is a {type(value).__name__}; pass a tensor, numpy array or PIL image.")
    if value.dtype != np.uint8:
        raise TypeError(f"The {what} is a {value.dtype} array; convert it to uint8 (0-255) first.")
    if value.ndim == 3 and value.shape[2] == 1:
        value = value[:, :, 0]
    if not (value.ndim == 2 or (value.ndim == 3 and value.shape[2] == 3)):
        raise ValueError(f"The {what} has shape {tuple(value.shape)}; images must be HxW or HxWx3 (3xHxW for tensors).")
    return Image.fromarray(np.ascontiguousarray(value))


def _mask_to_pil(value: ImageLike, what: str) -> Image.Image:
    if isinstance(value, Image.Image):
        if value.mode not in ("L", "P"):
            raise ValueError(f"The {what} is a {value.mode} image; masks must be L or P mode PIL images.")
        return value
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"The {what} has shape {array.shape} and dtype {array.dtype}; masks must be HxW integers.")
    if array.size and (array.min() < 0 or array.max() > FILE_IGNORE_VALUE):
        raise ValueError(
            f"The {what} holds values from {array.min()} to {array.max()}; "
            "masks must hold class indices 0-254 and 255 for ignore."
        )
    return Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))


def _save_png_atomically(image: Image.Image, path: Path) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            image.save(stream, format="PNG")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
