"""The hrnas model zoo: timm registration of named HR-NAS networks.

Importing :mod:`hrnas` registers these names with timm, after which ``timm.create_model('hrnas_cls_a')``,
``features_only=True`` and the rest of timm work on them. Names:

- ``hrnas_supernet_seg``, ``hrnas_supernet_seg_ade``, ``hrnas_supernet_pose``, ``hrnas_supernet_cls``: the paper's
  full-width supernets (no transformers, exactly the networks the original code builds);
- ``hrnas_supernet_tiny_seg``, ``hrnas_supernet_tiny_cls``: small supernets for CPU demos and tests;
- ``hrnas_cls_a``: the authors' released searched ImageNet architecture in its retrain form;
- ``hrnas_seg_a``, ``hrnas_seg_b``, ``hrnas_pose_a``, ``hrnas_pose_b``, ``hrnas_cls_b``: architectures found with
  :func:`hrnas.search` at stated budgets, registered once their JSON (with the record of their run) ships in
  ``hrnas/archs/zoo/``;
- ``hrnas_custom``: any :class:`hrnas.Arch`, passed as ``arch=``.
"""

from __future__ import annotations

import difflib
import os
from typing import Any, Optional

import timm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from .arch import Arch
from .archs import released_cls_arch, zoo_arch, zoo_entries
from .hub import is_model_dir, load_pretrained
from .net import HRNASNet
from .spaces import get_space

__all__ = ["UnknownModelError", "WeightsUnavailableError", "create_model", "list_models"]

_MODULE = __name__.split(".")[-1]
HUB_ORG = "hrnas"  # the Hugging Face organisation the zoo's weights are published under
_PAPER = "HR-NAS: Searching Efficient High-Resolution Neural Architectures with Lightweight Transformers"


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "min_input_size": (3, 32, 32),
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.0.conv",
        "classifier": "head.fc",
        "license": "apache-2.0",
        "paper_name": _PAPER,
        "paper_ids": "arXiv:2106.06560",
        "origin_url": "https://github.com/dingmyu/HR-NAS",
        **kwargs,
    }


def _dense_cfg(num_classes: int, height: int, width: int, **kwargs: Any) -> dict[str, Any]:
    return _cfg(
        num_classes=num_classes,
        input_size=(3, height, width),
        pool_size=(height // 4, width // 4),
        crop_pct=1.0,
        **kwargs,
    )


# Weights trained on the data that exists where hrnas is developed (Fashion-MNIST, grey-scale replicated to RGB).
# The default of each model with weights is its untagged configuration, the one the architecture was sized for,
# which has no weights: `create_model('hrnas_seg_a')` has ADE20K's 150 classes; weights are asked for by tag.
# ("name.*" marks that default; it comes after the tags, or timm would make the first tag with weights the default.)
_FMNIST_MEAN, _FMNIST_STD = (0.2860,) * 3, (0.3530,) * 3


def _fmnist_cfg(hub_name: str) -> dict[str, Any]:
    return _cfg(
        hf_hub_id=f"{HUB_ORG}/{hub_name}",
        num_classes=10,
        input_size=(3, 32, 32),
        pool_size=(1, 1),
        crop_pct=1.0,
        mean=_FMNIST_MEAN,
        std=_FMNIST_STD,
        description="trained on Fashion-MNIST (10 classes, 32x32)",
    )


def _scenes_cfg(hub_name: str) -> dict[str, Any]:
    return _dense_cfg(
        11,
        64,
        64,
        hf_hub_id=f"{HUB_ORG}/{hub_name}",
        mean=_FMNIST_MEAN,
        std=_FMNIST_STD,
        description="trained on Fashion-MNIST scenes (11 classes incl. background, 64x64)",
    )


default_cfgs = generate_default_cfgs(
    {
        "hrnas_supernet_seg": _dense_cfg(19, 512, 1024, description="HR-NAS seg supernet (Cityscapes settings)"),
        "hrnas_supernet_seg_ade": _dense_cfg(150, 512, 512, description="HR-NAS seg supernet (ADE20K settings)"),
        "hrnas_supernet_pose": _dense_cfg(17, 256, 192, description="HR-NAS keypoint supernet (COCO settings)"),
        "hrnas_supernet_cls": _cfg(description="HR-NAS ImageNet supernet"),
        "hrnas_supernet_tiny_seg": _dense_cfg(11, 64, 64, description="small seg supernet for CPU demos"),
        "hrnas_supernet_tiny_cls": _cfg(
            num_classes=10,
            input_size=(3, 32, 32),
            pool_size=(1, 1),
            crop_pct=1.0,
            description="small classification supernet for CPU demos",
        ),
        "hrnas_cls_a.fmnist": _fmnist_cfg("hrnas_cls_a.fmnist"),
        "hrnas_cls_a.*": _cfg(description="HR-NAS authors' released ImageNet architecture, retrain form"),
        "hrnas_cls_b.fmnist": _fmnist_cfg("hrnas_cls_b.fmnist"),
        "hrnas_cls_b.*": _cfg(description="HR-NAS searched to 0.33 GMACs at 224x224 (1000 classes)"),
        "hrnas_seg_a.fmnist_scenes": _scenes_cfg("hrnas_seg_a.fmnist_scenes"),
        "hrnas_seg_a.*": _dense_cfg(150, 512, 512, description="HR-NAS searched to 1.4 GMACs at 512x512 (ADE20K size)"),
        "hrnas_seg_b.fmnist_scenes": _scenes_cfg("hrnas_seg_b.fmnist_scenes"),
        "hrnas_seg_b.*": _dense_cfg(150, 512, 512, description="HR-NAS searched to 2.2 GMACs at 512x512 (ADE20K size)"),
        "hrnas_pose_a": _dense_cfg(17, 256, 192, description="HR-NAS searched to 205 MMACs at 256x192 (17 keypoints)"),
        "hrnas_pose_b": _dense_cfg(17, 256, 192, description="HR-NAS searched to 319 MMACs at 256x192 (17 keypoints)"),
        # num_classes and pool size come from the Arch passed in
        "hrnas_custom": _cfg(num_classes=None, pool_size=None, description="any hrnas.Arch, passed as arch="),
    }
)


def _create_hrnas(variant: str, arch: Arch, pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    # features_only: the stem at stride 2, then every branch of the last stage (the raw HR representations)
    out_indices = tuple(range(1 + arch.num_branches))
    return build_model_with_cfg(
        HRNASNet,
        variant,
        pretrained,
        arch=arch,
        feature_cfg=dict(feature_cls="getter", out_indices=out_indices),
        **kwargs,
    )


def _supernet(variant: str, space: str, pretrained: bool, kwargs: dict[str, Any]) -> HRNASNet:
    return _create_hrnas(variant, get_space(space).supernet(transformers=False), pretrained, **kwargs)


@register_model
def hrnas_supernet_seg(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS segmentation supernet, Cityscapes settings (19 classes, last_channel 90), transformers off."""
    return _supernet("hrnas_supernet_seg", "seg", pretrained, kwargs)


@register_model
def hrnas_supernet_seg_ade(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS segmentation supernet, ADE20K settings (150 classes, last_channel 180), transformers off."""
    return _supernet("hrnas_supernet_seg_ade", "seg_ade", pretrained, kwargs)


@register_model
def hrnas_supernet_pose(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS keypoint supernet, COCO settings (17 heatmaps at stride 4), transformers off."""
    return _supernet("hrnas_supernet_pose", "pose", pretrained, kwargs)


@register_model
def hrnas_supernet_cls(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS ImageNet supernet (head 36/72/144/320 -> 1600), transformers off."""
    return _supernet("hrnas_supernet_cls", "cls", pretrained, kwargs)


@register_model
def hrnas_supernet_tiny_seg(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """Small segmentation supernet (``seg_tiny`` space) for CPU demos and tests, transformers off."""
    return _supernet("hrnas_supernet_tiny_seg", "seg_tiny", pretrained, kwargs)


@register_model
def hrnas_supernet_tiny_cls(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """Small classification supernet (``cls_tiny`` space) for CPU demos and tests, transformers off."""
    return _supernet("hrnas_supernet_tiny_cls", "cls_tiny", pretrained, kwargs)


@register_model
def hrnas_cls_a(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """The HR-NAS authors' released ImageNet architecture (their ``checkpoint.json``) in its retrain form:
    SE 0.5, Swish, dropout 0.28. 4.6 M params, 0.26 GMACs at 224x224."""
    return _create_hrnas("hrnas_cls_a", released_cls_arch("retrain"), pretrained, **kwargs)


def _searched(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> HRNASNet:
    return _create_hrnas(variant, zoo_arch(variant), pretrained, **kwargs)


def _register_if_shipped(fn):
    """Register a searched model only when its architecture ships in ``hrnas/archs/zoo/`` (written by
    ``hrnas zoo-build``), so that no name is listed that cannot be built."""
    return register_model(fn) if fn.__name__ in zoo_entries() else fn


@_register_if_shipped
def hrnas_cls_b(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS classification network searched to 0.33 GMACs at 224x224 with 1000 classes (a larger sibling of
    ``hrnas_cls_a``). Weights: ``hrnas_cls_b.fmnist``."""
    return _searched("hrnas_cls_b", pretrained, kwargs)


@_register_if_shipped
def hrnas_seg_a(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS segmentation network searched to the paper's HR-NAS-A budget: 1.4 GMACs at 512x512 with 150 classes
    (ADE20K's configuration). Weights: ``hrnas_seg_a.fmnist_scenes``."""
    return _searched("hrnas_seg_a", pretrained, kwargs)


@_register_if_shipped
def hrnas_seg_b(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS segmentation network searched to the paper's HR-NAS-B budget: 2.2 GMACs at 512x512 with 150 classes.
    Weights: ``hrnas_seg_b.fmnist_scenes``."""
    return _searched("hrnas_seg_b", pretrained, kwargs)


@_register_if_shipped
def hrnas_pose_a(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS keypoint network searched to Lite-HRNet-18's cost: 205 MMACs at 256x192, 17 heatmaps. No weights."""
    return _searched("hrnas_pose_a", pretrained, kwargs)


@_register_if_shipped
def hrnas_pose_b(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS keypoint network searched to Lite-HRNet-30's cost: 319 MMACs at 256x192, 17 heatmaps. No weights."""
    return _searched("hrnas_pose_b", pretrained, kwargs)


@register_model
def hrnas_custom(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """Any HR-NAS architecture: ``create_model('hrnas_custom', arch=...)`` with an :class:`hrnas.Arch`, its dict
    form or a path to its JSON file."""
    if "arch" not in kwargs:
        raise TypeError("hrnas_custom needs arch=: an hrnas.Arch, its dict form, or a path to an arch JSON file")
    arch = Arch.coerce(kwargs.pop("arch"))
    return _create_hrnas("hrnas_custom", arch, pretrained, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# Public entry points


class UnknownModelError(ValueError):
    """The requested model name is not registered (with hrnas or timm)."""


class WeightsUnavailableError(FileNotFoundError):
    """``pretrained=True`` for weights that do not exist, are not cached, or cannot be downloaded."""


def _has_weights(cfg: Any, overlay: dict[str, Any]) -> bool:
    sources = ("state_dict", "file", "url", "hf_hub_id")
    return any(overlay.get(key) if key in overlay else getattr(cfg, key, None) for key in sources)


def _check_weights_exist(name: str, kwargs: dict[str, Any]) -> Optional[str]:
    """The Hub repo the weights come from (``None`` for other sources); raise when there are none at all."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name, allow_unregistered=True)
    overlay = dict(kwargs.get("pretrained_cfg_overlay") or {})
    if cfg is None:
        return None
    if _has_weights(cfg, overlay):
        return None if overlay else cfg.hf_hub_id
    arch_name = name.split(".", 1)[0]
    tags = [t for t in timm.list_pretrained(f"{arch_name}.*") if t != name]
    if tags:
        raise WeightsUnavailableError(
            f"{name!r} has no weights in its default configuration; load one of {', '.join(map(repr, tags))} "
            "(the tag names the data they were trained on), or pass pretrained_cfg_overlay=dict(file=...)"
        )
    raise WeightsUnavailableError(
        f"no pretrained weights exist for {name!r}; train the architecture (see its model card) or pass "
        "pretrained_cfg_overlay=dict(file='path/to/model.safetensors')"
    )


def _unavailable(name: str, repo_id: str, error: Exception) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"the weights of {name!r} (Hugging Face repo {repo_id!r}) are not in the local cache and could not be "
        f"downloaded ({type(error).__name__}); ways out: download them where there is network "
        f"(`hf download {repo_id}`) and copy the Hugging Face cache over, or pass "
        "pretrained_cfg_overlay=dict(file='path/to/model.safetensors'), or make them with "
        f"`hrnas zoo-build {name.split('.', 1)[0]}` and load the directory it writes"
    )


def list_models(filter: str = "", pretrained: bool = False) -> list[str]:
    """Names of the hrnas models registered with timm (``filter`` is a wildcard pattern such as ``'*seg*'``)."""
    return timm.list_models(filter or "*", module=_MODULE, pretrained=pretrained)


def _check_model_name(name: str) -> None:
    if name.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        return
    arch_name = name.split(".", 1)[0]
    if timm.is_model(arch_name):
        return
    ours = list_models()
    close = difflib.get_close_matches(arch_name, ours, n=3, cutoff=0.5)
    close += [c for c in difflib.get_close_matches(arch_name, timm.list_models(), n=3, cutoff=0.75) if c not in close]
    hint = f" Did you mean {', '.join(repr(c) for c in close[:3])}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r}.{hint} hrnas.list_models() lists the hrnas models.")


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """Create an hrnas model (or any timm model) by name.

    Args:
        name: a registered name (``'hrnas_cls_a'``), ``'name.tag'`` for a specific weights tag,
            ``'hf-hub:org/repo'``, or a local model directory (``save_pretrained`` / ``SearchResult.save`` output;
            its weights are always loaded).
        pretrained: load weights.
        **kwargs: passed to ``timm.create_model`` (``num_classes``, ``in_chans``, ``features_only``,
            ``out_indices``, ``arch`` for ``hrnas_custom``...).
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    if is_model_dir(name):
        return load_pretrained(name, **kwargs)
    _check_model_name(name)
    repo_id = None
    if pretrained and not name.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        repo_id = _check_weights_exist(name, kwargs)
    elif pretrained and name.startswith(("hf-hub:", "hf_hub:")):
        repo_id = name.split(":", 1)[1]
    if repo_id is None:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, ConnectionError) as e:
        raise _unavailable(name, repo_id, e) from None
