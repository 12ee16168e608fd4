"""What the zoo holds, as plain data: every registered name, the configuration it is named for, its weights tags
and the data each tag was trained on.

This module imports neither torch nor timm, so that listing and describing models (``hrnas list``, ``hrnas
summary``) is quick; :mod:`hrnas.zoo` turns the same entries into timm registrations and pretrained configs, so
the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from .arch import Arch
from .archs import released_cls_arch, zoo_arch, zoo_entries
from .spaces import get_space

__all__ = ["CATALOG", "PUBLISHED", "ModelEntry", "WeightsTag", "catalog_entry"]

# The Hub repos are named ``HUB_ORG/<name>.<tag>``. Nothing has been uploaded: the machines the zoo was made on cannot
# reach the Hub, and the organisation is not ours to assume. A tag is looked up on the Hub only once its full name is
# in PUBLISHED; until then its weights come from a local directory or the local Hub cache (hrnas.weights).
HUB_ORG = "hrnas"
PUBLISHED: frozenset[str] = frozenset()


@dataclass(frozen=True)
class WeightsTag:
    """One set of weights of a model (``name.tag``): what it was trained on and the configuration that implies."""

    tag: str
    trained_on: str
    num_classes: int
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def hub_id(self, name: str) -> str:
        return f"{HUB_ORG}/{name}.{self.tag}"

    def published(self, name: str) -> bool:
        """Whether ``name.tag`` has been uploaded to the Hub (:data:`PUBLISHED`)."""
        return f"{name}.{self.tag}" in PUBLISHED


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its architecture, the configuration it is named for, and its weights tags."""

    name: str
    description: str
    arch: Callable[[], Arch] = field(repr=False)
    num_classes: int
    input_size: tuple[int, int]
    task: str  # 'seg', 'pose' or 'cls'
    tags: tuple[WeightsTag, ...] = ()
    shipped: Callable[[], bool] = field(repr=False, default=lambda: True)
    # the measured wall time of `hrnas zoo-build NAME`, which makes the weights of the first tag
    build_time: str = ""

    @property
    def dense(self) -> bool:
        return self.task != "cls"

    @property
    def outputs(self) -> str:
        """What the outputs are, in words: ``'150 classes'``, ``'17 heatmaps'``."""
        return f"{self.num_classes} {'heatmaps' if self.task == 'pose' else 'classes'}"


_FMNIST_STATS = dict(mean=(0.2860,) * 3, std=(0.3530,) * 3)
_FMNIST = WeightsTag(
    "fmnist", "Fashion-MNIST (10 classes, 32x32, grey replicated to RGB)", 10, (32, 32), **_FMNIST_STATS
)
# hrnas.data.textured.MEAN / STD (tests/test_zoo.py checks they agree; this module does not import the data code)
_TEXTURED_STATS = dict(mean=(0.38,) * 3, std=(0.20,) * 3)
_TEXTURED_FMNIST = WeightsTag(
    "textured_fmnist",
    "textured Fashion-MNIST (10 classes, 64x64: one item of 22-58 px on a real photograph)",
    10, (64, 64), **_TEXTURED_STATS,
)  # fmt: skip
_TEXTURED_SCENES = WeightsTag(
    "textured_scenes",
    "textured scenes (11 classes incl. background, 128x128: Fashion-MNIST items on real photographs)",
    11, (128, 128), **_TEXTURED_STATS,
)  # fmt: skip


def _space_supernet(space: str) -> Callable[[], Arch]:
    def build() -> Arch:
        return get_space(space).supernet(transformers=False)

    return build


def _released() -> Arch:
    return released_cls_arch("retrain")


def _searched(name: str) -> Callable[[], Arch]:
    def build() -> Arch:
        return zoo_arch(name)

    return build


def _ships(name: str) -> Callable[[], bool]:
    def ships() -> bool:
        return name in zoo_entries()

    return ships


def _custom_default() -> Arch:
    # what `hrnas_custom` builds without arch=: the small classification supernet, so that tools walking timm's
    # registry (which build every name with no arguments) can build this name too
    return _space_supernet("cls_tiny")().replace(name="hrnas_custom_default")


# Wall times of `hrnas zoo-build NAME`: the searches are the seed-0 "search" rows of
# benchmarks/results/zoo_quality.csv (the recipe's own run: wall_s and the threads it ran on); hrnas_cls_a's
# training run is in benchmarks/results/doc_timings.md.
_BUILD_TIMES = {
    "hrnas_cls_a": "11 min on one CPU core",  # 633 s, 1 thread (the other core busy)
    "hrnas_seg_a": "18 min on 2 CPU cores",  # 1102 s, 2 threads
    "hrnas_seg_b": "29 min on one CPU core",  # 1739 s, 1 thread
    "hrnas_cls_b": "63 min on 2 CPU cores",  # 3758 s, 2 threads
    "hrnas_seg_cpu_s": "3 min on 2 CPU cores",  # 170 s, 2 threads
    "hrnas_seg_cpu_m": "4 min on 2 CPU cores",  # 254 s, 2 threads
}

CATALOG: tuple[ModelEntry, ...] = (
    ModelEntry("hrnas_supernet_seg", "HR-NAS seg supernet (Cityscapes settings)", _space_supernet("seg"), 19,
               (512, 1024), "seg"),
    ModelEntry("hrnas_supernet_seg_ade", "HR-NAS seg supernet (ADE20K settings)", _space_supernet("seg_ade"), 150,
               (512, 512), "seg"),
    ModelEntry("hrnas_supernet_pose", "HR-NAS keypoint supernet (COCO settings)", _space_supernet("pose"), 17,
               (256, 192), "pose"),
    ModelEntry("hrnas_supernet_cls", "HR-NAS ImageNet supernet", _space_supernet("cls"), 1000, (224, 224), "cls"),
    ModelEntry("hrnas_supernet_tiny_seg", "small seg supernet for CPU demos", _space_supernet("seg_tiny"), 11,
               (64, 64), "seg"),
    ModelEntry("hrnas_supernet_tiny_cls", "small classification supernet for CPU demos",
               _space_supernet("cls_tiny"), 10, (32, 32), "cls"),
    ModelEntry("hrnas_cls_a", "HR-NAS authors' released ImageNet architecture, retrain form", _released, 1000,
               (224, 224), "cls", (_FMNIST,), build_time=_BUILD_TIMES["hrnas_cls_a"]),
    # The dense entries are the second zoo's (hrnas.release.recipes.ZOO_RECIPES: seg budgets counted at 224x224 as
    # the paper counts them, textured proxies); the first zoo's architectures stay buildable with arch_version=1.
    # hrnas_cls_b is the second zoo's too: searched on 64x64 textured Fashion-MNIST (a 2x2 map at stride 32, where
    # the first zoo's 32x32 gave 1x1).
    ModelEntry("hrnas_cls_b", "HR-NAS searched to 0.33 GMACs at 224x224 (1000 classes)", _searched("hrnas_cls_b"),
               1000, (224, 224), "cls", (_TEXTURED_FMNIST,), _ships("hrnas_cls_b"), _BUILD_TIMES["hrnas_cls_b"]),
    ModelEntry("hrnas_seg_a", "HR-NAS-A's budget: searched to 1.4 GMACs at 224x224 as the paper counts (150 classes; "
               "6.9 G at 512x512)", _searched("hrnas_seg_a"), 150, (224, 224), "seg", (_TEXTURED_SCENES,),
               _ships("hrnas_seg_a"), _BUILD_TIMES["hrnas_seg_a"]),
    ModelEntry("hrnas_seg_b", "HR-NAS-B's budget: searched to 2.2 GMACs at 224x224 as the paper counts (150 classes; "
               "10.9 G at 512x512)", _searched("hrnas_seg_b"), 150, (224, 224), "seg", (_TEXTURED_SCENES,),
               _ships("hrnas_seg_b"), _BUILD_TIMES["hrnas_seg_b"]),
    ModelEntry("hrnas_pose_a", "HR-NAS searched to 205 MMACs at 256x192 (17 keypoints)", _searched("hrnas_pose_a"),
               17, (256, 192), "pose", (), _ships("hrnas_pose_a")),
    ModelEntry("hrnas_pose_b", "HR-NAS searched to 319 MMACs at 256x192 (17 keypoints)", _searched("hrnas_pose_b"),
               17, (256, 192), "pose", (), _ships("hrnas_pose_b")),
    # The cpu line (ZOO_RECIPES: latency budgets, searched to the latency of the timm backbone a user would pick
    # instead, measured on the machine of the search at 128x128; the records say which machine).
    ModelEntry("hrnas_seg_cpu_s", "searched to mobilenetv4_conv_small's CPU latency (features, 128x128)",
               _searched("hrnas_seg_cpu_s"), 11, (128, 128), "seg", (_TEXTURED_SCENES,), _ships("hrnas_seg_cpu_s"),
               _BUILD_TIMES["hrnas_seg_cpu_s"]),
    ModelEntry("hrnas_seg_cpu_m", "searched to hrnet_w18_small's CPU latency (features, 128x128)",
               _searched("hrnas_seg_cpu_m"), 11, (128, 128), "seg", (_TEXTURED_SCENES,), _ships("hrnas_seg_cpu_m"),
               _BUILD_TIMES["hrnas_seg_cpu_m"]),
    ModelEntry("hrnas_pose_cpu_s", "searched to mobilenetv4_conv_small's CPU latency (features, 128x128; 17 "
               "heatmaps)", _searched("hrnas_pose_cpu_s"), 17, (128, 128), "pose", (), _ships("hrnas_pose_cpu_s")),
    ModelEntry("hrnas_pose_cpu_m", "searched to hrnet_w18_small's CPU latency (features, 128x128; 17 heatmaps)",
               _searched("hrnas_pose_cpu_m"), 17, (128, 128), "pose", (), _ships("hrnas_pose_cpu_m")),
    ModelEntry("hrnas_custom", "any hrnas.Arch, passed as arch= (without it: the cls_tiny supernet)", _custom_default,
               10, (32, 32), "cls"),
)  # fmt: skip


def catalog_entry(name: str) -> Optional[ModelEntry]:
    """The entry of a registered name (``None`` for names the catalog does not hold, or that do not ship)."""
    for entry in CATALOG:
        if entry.name == name:
            return entry if entry.shipped() else None
    return None
