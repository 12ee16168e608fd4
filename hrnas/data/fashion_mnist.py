"""Fashion-MNIST read from local idx files, plus a classification `Dataset` over it.

Fashion-MNIST (Zalando SE, MIT licence) has 60,000 training and 10,000 test greyscale 28x28 images
in 10 balanced clothing classes. Nothing is downloaded: the files come from the Debian package
``dataset-fashion-mnist`` (installed under ``/usr/share/datasets/fashion-mnist``) or from any folder
holding the four idx files, gzipped or not.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ._errors import DataNotFoundError

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)
DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "HRNAS_FASHION_MNIST_DIR"
SPLITS: tuple[str, ...] = ("train", "test")
IMAGE_SIDE = 28

# Pixel statistics of the 60,000 training images scaled to [0, 1]. Fixed constants rather than
# per-dataset estimates so that every split, subset and image size is normalised identically.
MEAN = 0.2860
STD = 0.3530

# Pixels of padding around the image before the random crop used by `augment=True`.
CROP_PADDING = 2

_FILE_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# idx magic numbers: two zero bytes, a type code (0x08 = unsigned byte) and the number of dimensions.
_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the Fashion-MNIST folder to read.

    Precedence: `data_dir` if given, else ``$HRNAS_FASHION_MNIST_DIR`` if set, else `DEFAULT_DIR`.
    """
    if data_dir is not None:
        return Path(data_dir)
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Path(from_env)
    return Path(DEFAULT_DIR)


def load_fashion_mnist(
    split: str = "train", data_dir: str | os.PathLike[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one Fashion-MNIST split from its idx files.

    Args:
        split: ``'train'`` (60,000 images) or ``'test'`` (10,000 images).
        data_dir: folder holding the idx files (``*.gz`` or uncompressed); see `resolve_data_dir`.

    Returns:
        ``(images, labels)``: uint8 tensor of shape (N, 28, 28) and int64 tensor of shape (N,).

    Raises:
        DataNotFoundError: a file is missing.
        ValueError: `split` is unknown, or a file is corrupt or truncated.
    """
    if split not in SPLITS:
        raise ValueError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}.")
    directory = resolve_data_dir(data_dir)
    images_stem, labels_stem = _FILE_STEMS[split]
    images_path = _find_file(directory, images_stem)
    labels_path = _find_file(directory, labels_stem)
    images = _read_idx(images_path, _IMAGES_MAGIC, (IMAGE_SIDE, IMAGE_SIDE))
    labels = _read_idx(labels_path, _LABELS_MAGIC, ())
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
            "reinstall both files from the same release."
        )
    if labels.numel() and int(labels.max()) >= NUM_CLASSES:
        raise ValueError(
            f"{labels_path} contains label {int(labels.max())} but Fashion-MNIST labels are 0-9; "
            "the file is corrupt, reinstall it."
        )
    return images, labels.long()


def _find_file(directory: Path, stem: str) -> Path:
    # The Debian package ships gzipped files; users who unpacked them keep the bare idx name.
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise DataNotFoundError(
        f"Fashion-MNIST file {directory / stem}.gz (or uncompressed {stem}) was not found; "
        "install it with `apt-get install dataset-fashion-mnist` (Debian) or pass data_dir= / "
        f"set {ENV_VAR} to a folder holding the four Fashion-MNIST idx files (the data/fashion folder of "
        "Zalando Research's fashion-mnist repository; hrnas downloads nothing)."
    )


def _read_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> torch.Tensor:
    """Parse an unsigned-byte idx file, checking its magic number, item shape and length."""
    raw = _read_bytes(path)
    ndim = len(item_shape) + 1
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(
            f"{path} is {len(raw)} bytes, shorter than its {header_size}-byte idx header; "
            "the file is truncated, reinstall it."
        )
    found_magic = int.from_bytes(raw[:4], "big")
    if found_magic != magic:
        raise ValueError(
            f"{path} has idx magic number 0x{found_magic:08x} where 0x{magic:08x} was expected; "
            "it is not a Fashion-MNIST file of this kind, replace it."
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    if dims[1:] != item_shape:
        raise ValueError(
            f"{path} stores items of shape {dims[1:]} where {item_shape} was expected; "
            "it is not a Fashion-MNIST file, replace it."
        )
    payload = len(raw) - header_size
    expected = math.prod(dims)
    if payload != expected:
        raise ValueError(
            f"{path} holds {payload} data bytes but its header promises {expected}; "
            "the file is truncated or corrupt, reinstall it."
        )
    if expected == 0:
        return torch.empty(dims, dtype=torch.uint8)
    # bytearray gives torch a writable buffer, so the tensor owns ordinary memory.
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=header_size).reshape(dims)


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as stream:
            return stream.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{path} is not a complete gzip file ({exc}); reinstall or re-download it.") from exc


def _derive_seed(*parts: object) -> int:
    """Return a 63-bit seed determined only by `parts`, stable across processes and Python versions.

    Python's own ``hash`` is salted per process for strings, which would break reproducibility across
    DataLoader workers, so a cryptographic digest of the parts' text is used instead.
    """
    text = "\x1f".join(str(part) for part in parts)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def _balanced_indices(labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """Return indices of the first `per_class` items of every class, in their original order."""
    chosen = [torch.nonzero(labels == c).flatten()[:per_class] for c in range(NUM_CLASSES)]
    return torch.sort(torch.cat(chosen)).values


class FashionMNIST(Dataset[tuple[torch.Tensor, int]]):
    """Fashion-MNIST classification dataset.

    Items are ``(image, label)``: a float32 tensor of shape (channels, image_size, image_size)
    normalised with `MEAN` and `STD`, and the class index as an ``int``.

    Args:
        split: ``'train'`` or ``'test'``.
        data_dir: folder holding the idx files; see `resolve_data_dir`.
        image_size: output side in pixels; the 28-pixel images are resized bilinearly.
        channels: 3 replicates the grey channel (for RGB backbones); 1 keeps it single.
        limit: keep only the first `limit` images of each class (a deterministic balanced subset);
            classes with fewer images keep all of theirs.
        augment: random crop after padding `CROP_PADDING` pixels of background, and a random
            horizontal flip. Without it items are deterministic.
        seed: with `augment`, ``None`` draws from torch's default generator (which DataLoader seeds
            differently in each worker); an int makes item ``i`` in epoch ``e`` (see `set_epoch`)
            always get the same crop and flip.
    """

    def __init__(
        self,
        split: str = "train",
        data_dir: str | os.PathLike[str] | None = None,
        *,
        image_size: int = 32,
        channels: int = 3,
        limit: int | None = None,
        augment: bool = False,
        seed: int | None = None,
    ) -> None:
        if image_size < 1:
            raise ValueError(f"image_size must be a positive number of pixels, got {image_size}.")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (grey replicated), got {channels}.")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be a positive number of images per class or None, got {limit}.")
        images, labels = load_fashion_mnist(split, data_dir)
        if limit is not None:
            keep = _balanced_indices(labels, limit)
            images, labels = images[keep], labels[keep]
        self.split = split
        self.images = images
        self.labels = labels
        self.image_size = image_size
        self.channels = channels
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Vary seeded augmentation between epochs.

        DataLoader workers hold copies of the dataset, so call this before creating the epoch's
        iterator (not with ``persistent_workers=True``).
        """
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = range(len(self))[index]  # normalises negative indices and raises IndexError
        image = self.images[index].float().div_(255.0)[None, None]
        if self.image_size != IMAGE_SIDE:
            size = (self.image_size, self.image_size)
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
        image = image[0]
        if self.augment:
            image = self._augment(image, index)
        image = (image - MEAN) / STD
        if self.channels == 3:
            image = image.expand(3, -1, -1).contiguous()
        return image, int(self.labels[index])

    def _augment(self, image: torch.Tensor, index: int) -> torch.Tensor:
        generator = None
        if self.seed is not None:
            generator = torch.Generator().manual_seed(_derive_seed(self.seed, self.epoch, index))
        # Padding happens before normalisation, so zeros are the dataset's black background.
        padded = F.pad(image, (CROP_PADDING,) * 4)
        top, left = torch.randint(0, 2 * CROP_PADDING + 1, (2,), generator=generator).tolist()
        image = padded[:, top : top + self.image_size, left : left + self.image_size]
        if torch.randint(0, 2, (1,), generator=generator).item():
            image = image.flip(-1)
        return image
