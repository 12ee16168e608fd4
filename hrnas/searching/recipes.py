"""Ready-made search runs for the command line: data sets by name, and the CPU demo.

The command line describes a run with three parts that all go into the run's ``config.yaml``: the supernet
(``task``, ``space``, ``num_classes``, ``transformers``), the data (a name and its settings) and the
:class:`SearchConfig`. ``hrnas search --config runs/x/config.yaml`` rebuilds the same three and repeats the run.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

__all__ = ["DataSpec", "DEMO", "SupernetSpec", "build_data", "demo_settings"]

DATA_SETS = ("fmnist-scenes", "fmnist", "textured-scenes", "textured-keypoints", "textured-fmnist", "folder")


@dataclass
class DataSpec:
    """Which data to search on.

    ``fmnist-scenes``: Fashion-MNIST scenes (segmentation, 11 classes; real classes, derived masks, synthetic
    layout), ``train_size`` / ``val_size`` scenes of ``image_size`` pixels. ``fmnist``: Fashion-MNIST
    classification at ``image_size`` (``train_size`` / ``val_size`` images per class, None: all). ``folder``:
    ``path/train`` and ``path/val`` in the segmentation folder format (:class:`hrnas.data.SegmentationFolder`).
    ``textured-scenes`` / ``textured-keypoints`` / ``textured-fmnist``: the textured proxies of
    :mod:`hrnas.data.textured` (segmentation, 9 keypoint heatmaps, classification), ``train_size`` / ``val_size``
    items of ``image_size`` pixels; they need scikit-image's bundled photographs.
    """

    name: str = "fmnist-scenes"
    path: Optional[str] = None
    image_size: int = 64
    train_size: Optional[int] = 6000
    val_size: Optional[int] = 1000
    num_classes: Optional[int] = None
    augment: bool = True
    seed: int = 0


@dataclass
class SupernetSpec:
    """Which supernet to search in (arguments of :func:`hrnas.create_supernet`)."""

    task: str = "seg"
    space: Optional[str] = None
    num_classes: Optional[int] = None
    transformers: bool = True
    overrides: dict = field(default_factory=dict)


def build_data(spec: DataSpec):
    """The ``(train, val)`` datasets a :class:`DataSpec` names."""
    from ..data import FashionMNIST, FashionMNISTScenes, SegmentationFolder

    if spec.name == "fmnist-scenes":
        n_train = spec.train_size if spec.train_size is not None else 6000
        n_val = spec.val_size if spec.val_size is not None else 1000
        train = FashionMNISTScenes(
            "train", n_train, canvas=spec.image_size, seed=spec.seed, data_dir=spec.path, augment=spec.augment
        )
        val = FashionMNISTScenes("val", n_val, canvas=spec.image_size, seed=spec.seed, data_dir=spec.path)
        return train, val
    if spec.name.startswith("textured-"):
        from ..data import textured

        kind = {
            "textured-scenes": textured.TexturedScenes,
            "textured-keypoints": textured.TexturedKeypoints,
            "textured-fmnist": textured.TexturedFashionMNIST,
        }.get(spec.name)
        if kind is None:
            raise ValueError(f"unknown data set {spec.name!r}; choose one of {DATA_SETS}")
        n_train = spec.train_size if spec.train_size is not None else 6000
        n_val = spec.val_size if spec.val_size is not None else 1000
        common = dict(canvas=spec.image_size, seed=spec.seed, data_dir=spec.path)
        return kind("train", n_train, augment=spec.augment, **common), kind("val", n_val, **common)
    if spec.name == "fmnist":
        train = FashionMNIST(
            "train", spec.path, image_size=spec.image_size, limit=spec.train_size, augment=spec.augment, seed=spec.seed
        )
        val = FashionMNIST("test", spec.path, image_size=spec.image_size, limit=spec.val_size)
        return train, val
    if spec.name == "folder":
        if not spec.path:
            raise ValueError("data 'folder' needs a path: a directory with train/ and val/ in the folder format")
        size = (spec.image_size, spec.image_size)
        train = SegmentationFolder(
            os.path.join(spec.path, "train"), spec.num_classes, size=size, augment=spec.augment, seed=spec.seed
        )
        val = SegmentationFolder(os.path.join(spec.path, "val"), spec.num_classes, size=size)
        return train, val
    raise ValueError(f"unknown data set {spec.name!r}; choose one of {DATA_SETS}")


# The CPU demo: the small seg space with transformers, Fashion-MNIST scenes at 64x64, a budget of a fifth of the
# supernet's MACs (the command line's --budget-fraction); about 10 minutes on 2 cores.
DEMO: dict[str, Any] = {
    "supernet": SupernetSpec(task="seg", space="seg_tiny", transformers=True),
    "data": DataSpec(name="fmnist-scenes", image_size=64, train_size=6000, val_size=1000),
    "search": dict(epochs=5.0, batch_size=32, lr=0.1, output_dir="runs/demo"),
}


def demo_settings() -> dict[str, Any]:
    """A fresh copy of :data:`DEMO`."""
    return {
        "supernet": SupernetSpec(**asdict(DEMO["supernet"])),
        "data": DataSpec(**asdict(DEMO["data"])),
        "search": dict(DEMO["search"]),
    }
