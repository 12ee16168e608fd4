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
from typing import TYPE_CHECKING, Any, Optional

import timm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

# hub and net by module: this module can be imported by the timm import hook (hrnas._timm_hook) while one of them
# is still executing (each imports timm at its top), so their names are looked up when used, not now
from . import hub as _hub
from . import net as _net
from .arch import Arch
from .archs import zoo_arch
from .catalog import CATALOG, ModelEntry, WeightsTag, catalog_entry
from .hub_access import REACH_TIMEOUT_S, cached_file, cached_snapshot, hub_offline, hub_reachable
from .weights import WEIGHTS_NAME, find_weights, missing_weights_message

if TYPE_CHECKING:
    from .net import HRNASNet

__all__ = ["UnknownModelError", "WeightsUnavailableError", "create_model", "list_models"]

_MODULE = __name__.split(".")[-1]
_CATALOG = {entry.name: entry for entry in CATALOG}
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


def _advertised_source(entry: ModelEntry, tag: WeightsTag) -> dict[str, Any]:
    """The weight source a tag's registered config shows, so that ``timm.list_pretrained`` lists a tag exactly when
    its weights can be loaded here (a local directory, the local Hub cache) or are published. Where they are looked
    up at creation time is decided again then (:func:`_pretrained_source`)."""
    found = find_weights(entry.name, tag, network=False)
    if found is not None and found.kind == "directory":
        return {"file": os.path.join(found.location, WEIGHTS_NAME)}
    if found is not None or tag.published(entry.name):
        return {"hf_hub_id": tag.hub_id(entry.name)}
    return {}


def _tag_cfg(entry: ModelEntry, tag: WeightsTag) -> dict[str, Any]:
    h, w = tag.input_size
    return _cfg(
        **_advertised_source(entry, tag),
        num_classes=tag.num_classes,
        input_size=(3, h, w),
        pool_size=(h // 4, w // 4) if entry.dense else (max(1, h // 32), max(1, w // 32)),
        crop_pct=1.0,
        mean=tag.mean,
        std=tag.std,
        description=f"trained on {tag.trained_on}",
    )


def _untagged_cfg(entry: ModelEntry) -> dict[str, Any]:
    if entry.name == "hrnas_custom":  # num_classes and pool size come from the Arch passed in
        return _cfg(num_classes=None, pool_size=None, description=entry.description)
    h, w = entry.input_size
    if entry.dense:
        return _dense_cfg(entry.num_classes, h, w, description=entry.description)
    pool = (max(1, h // 32), max(1, w // 32))
    crop = 0.875 if (h, w) == (224, 224) else 1.0
    return _cfg(num_classes=entry.num_classes, input_size=(3, h, w), pool_size=pool, crop_pct=crop,
                description=entry.description)  # fmt: skip


def _catalog_cfgs() -> dict[str, dict[str, Any]]:
    """timm pretrained configs of every catalog entry: one per weights tag, then the untagged configuration the
    architecture was sized for, which has no weights (``create_model('hrnas_seg_a')`` has ADE20K's 150 classes;
    weights are asked for by tag). ``name.*`` marks that default; it comes after the tags, or timm would make the
    first tag with weights the default."""
    cfgs = {}
    for entry in CATALOG:
        for tag in entry.tags:
            cfgs[f"{entry.name}.{tag.tag}"] = _tag_cfg(entry, tag)
        cfgs[f"{entry.name}.*" if entry.tags else entry.name] = _untagged_cfg(entry)
    return cfgs


default_cfgs = generate_default_cfgs(_catalog_cfgs())


def _create_hrnas(variant: str, arch: Arch, pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    # features_only: the stem at stride 2, then every branch of the last stage (the raw HR representations)
    out_indices = tuple(range(1 + arch.num_branches))
    return build_model_with_cfg(
        _net.HRNASNet,
        variant,
        pretrained,
        arch=arch,
        feature_cfg=dict(feature_cls="getter", out_indices=out_indices),
        **kwargs,
    )


_SOURCE_KEYS = ("state_dict", "file", "url", "hf_hub_id")
# what timm.create_model passes to every entrypoint; a model directory is loaded with them unset
_FACTORY_KEYS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _pretrained_source(variant: str, kwargs: dict[str, Any]) -> Optional[str]:
    """Resolve the weights of a catalog model asked for with ``pretrained=True``, as timm does for its own: a bare
    name means its default (first) weights tag. They are looked up in a local directory, the local Hub cache, then
    the Hub (published tags only; :mod:`hrnas.weights`). Returns a model directory to load, or ``None`` after
    pointing ``kwargs`` at the weights file or Hub repo; raises :class:`WeightsUnavailableError` when there are none.
    Weights the caller names (a ``pretrained_cfg`` dict, as ``local-dir:`` and ``hf-hub:`` pass, or a source in
    ``pretrained_cfg_overlay``) are left to timm."""
    asked = kwargs.get("pretrained_cfg")
    overlay = dict(kwargs.get("pretrained_cfg_overlay") or {})
    if (asked and not isinstance(asked, str)) or any(overlay.get(key) for key in _SOURCE_KEYS):
        return None
    entry = _CATALOG[variant]
    tags = {t.tag: t for t in entry.tags}
    if asked and asked not in tags:
        known = ", ".join(f"{variant}.{t}" for t in tags) or "none"
        raise WeightsUnavailableError(f"{variant!r} has no weights tag {asked!r} (its tags: {known})")
    tag = tags[asked] if asked else (entry.tags[0] if entry.tags else None)
    name = f"{variant}.{asked}" if asked else variant
    if tag is None:
        raise WeightsUnavailableError(missing_weights_message(entry, None, asked=name))
    kwargs["pretrained_cfg"] = tag.tag
    reachable = tag.published(variant) and not hub_offline() and hub_reachable()
    found = find_weights(variant, tag, network=reachable)
    if found is None:
        raise WeightsUnavailableError(missing_weights_message(entry, tag, asked=name))
    if found.kind == "directory":
        return found.location
    key = "file" if found.kind == "hub-cache" else "hf_hub_id"
    kwargs["pretrained_cfg_overlay"] = {**overlay, key: found.location}
    return None


def _from_catalog(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> HRNASNet:
    if pretrained:
        directory = _pretrained_source(variant, kwargs)
        if directory is not None:
            # the directory's config.json carries the exact Arch its weights belong to
            return _hub.load_pretrained(directory, **{k: v for k, v in kwargs.items() if k not in _FACTORY_KEYS})
    # arch= : a model directory's own record of the network its weights belong to (hrnas.save_pretrained)
    arch = Arch.coerce(kwargs.pop("arch")) if "arch" in kwargs else _CATALOG[variant].arch()
    return _create_hrnas(variant, arch, pretrained, **kwargs)


def _searched(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> HRNASNet:
    """A searched model; ``arch_version=1`` builds the first zoo's architecture of the name (no weights)."""
    version = kwargs.pop("arch_version", None)
    if version is None:
        return _from_catalog(variant, pretrained, kwargs)
    if pretrained:
        raise ValueError(f"{variant} with arch_version={version} has no weights; pass pretrained=False")
    return _create_hrnas(variant, zoo_arch(variant, int(version)), False, **kwargs)


@register_model
def hrnas_supernet_seg(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS segmentation supernet, Cityscapes settings (19 classes, last_channel 90), transformers off."""
    return _from_catalog("hrnas_supernet_seg", pretrained, kwargs)


@register_model
def hrnas_supernet_seg_ade(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS segmentation supernet, ADE20K settings (150 classes, last_channel 180), transformers off."""
    return _from_catalog("hrnas_supernet_seg_ade", pretrained, kwargs)


@register_model
def hrnas_supernet_pose(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS keypoint supernet, COCO settings (17 heatmaps at stride 4), transformers off."""
    return _from_catalog("hrnas_supernet_pose", pretrained, kwargs)


@register_model
def hrnas_supernet_cls(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS ImageNet supernet (head 36/72/144/320 -> 1600), transformers off."""
    return _from_catalog("hrnas_supernet_cls", pretrained, kwargs)


@register_model
def hrnas_supernet_tiny_seg(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """Small segmentation supernet (``seg_tiny`` space) for CPU demos and tests, transformers off."""
    return _from_catalog("hrnas_supernet_tiny_seg", pretrained, kwargs)


@register_model
def hrnas_supernet_tiny_cls(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """Small classification supernet (``cls_tiny`` space) for CPU demos and tests, transformers off."""
    return _from_catalog("hrnas_supernet_tiny_cls", pretrained, kwargs)


@register_model
def hrnas_cls_a(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """The HR-NAS authors' released ImageNet architecture (their ``checkpoint.json``) in its retrain form:
    SE 0.5, Swish, dropout 0.28. 4.6 M params, 0.26 GMACs at 224x224."""
    return _from_catalog("hrnas_cls_a", pretrained, kwargs)


def _register_if_shipped(fn):
    """Register a searched model only when its architecture ships in ``hrnas/archs/zoo/`` (written by
    ``hrnas zoo-build``), so that no name is listed that cannot be built."""
    return register_model(fn) if catalog_entry(fn.__name__) is not None else fn


@_register_if_shipped
def hrnas_cls_b(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS classification network searched to 0.33 GMACs at 224x224 with 1000 classes (a larger sibling of
    ``hrnas_cls_a``). Weights: ``hrnas_cls_b.textured_fmnist`` (64x64 textured Fashion-MNIST); ``arch_version=1``:
    the first zoo's architecture (searched on 32x32 Fashion-MNIST)."""
    return _searched("hrnas_cls_b", pretrained, kwargs)


@_register_if_shipped
def hrnas_seg_a(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS segmentation network searched to HR-NAS-A's budget, 1.4 GMACs counted at 224x224 with 150 classes
    as the paper counts (about 6.9 G at ADE20K's 512x512; see ``docs/conventions.md``). Weights:
    ``hrnas_seg_a.textured_scenes``; ``arch_version=1``: the first zoo's architecture."""
    return _searched("hrnas_seg_a", pretrained, kwargs)


@_register_if_shipped
def hrnas_seg_b(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS segmentation network searched to HR-NAS-B's budget, 2.2 GMACs counted at 224x224 with 150 classes
    as the paper counts (about 10.9 G at 512x512). Weights: ``hrnas_seg_b.textured_scenes``; ``arch_version=1``: the
    first zoo's architecture."""
    return _searched("hrnas_seg_b", pretrained, kwargs)


@_register_if_shipped
def hrnas_pose_a(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS keypoint network searched to Lite-HRNet-18's cost: 205 MMACs at 256x192, 17 heatmaps. No weights;
    ``arch_version=1``: the first zoo's architecture."""
    return _searched("hrnas_pose_a", pretrained, kwargs)


@_register_if_shipped
def hrnas_pose_b(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS keypoint network searched to Lite-HRNet-30's cost: 319 MMACs at 256x192, 17 heatmaps. No weights;
    ``arch_version=1``: the first zoo's architecture."""
    return _searched("hrnas_pose_b", pretrained, kwargs)


@_register_if_shipped
def hrnas_seg_cpu_s(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS segmentation network searched to the CPU latency of timm's ``mobilenetv4_conv_small`` (features,
    128x128, batch 1, in the deploy form; the zoo record names the machine). Weights: ``.textured_scenes``."""
    return _searched("hrnas_seg_cpu_s", pretrained, kwargs)


@_register_if_shipped
def hrnas_seg_cpu_m(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS segmentation network searched to the CPU latency of timm's ``hrnet_w18_small`` (features, 128x128,
    batch 1, in the deploy form; the zoo record names the machine). Weights: ``.textured_scenes``."""
    return _searched("hrnas_seg_cpu_m", pretrained, kwargs)


@_register_if_shipped
def hrnas_pose_cpu_s(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS keypoint network (17 heatmaps) searched to the CPU latency of timm's ``mobilenetv4_conv_small``
    (features, 128x128, batch 1, deploy form). No weights."""
    return _searched("hrnas_pose_cpu_s", pretrained, kwargs)


@_register_if_shipped
def hrnas_pose_cpu_m(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """HR-NAS keypoint network (17 heatmaps) searched to the CPU latency of timm's ``hrnet_w18_small`` (features,
    128x128, batch 1, deploy form). No weights."""
    return _searched("hrnas_pose_cpu_m", pretrained, kwargs)


@register_model
def hrnas_custom(pretrained: bool = False, **kwargs: Any) -> HRNASNet:
    """Any HR-NAS architecture: ``create_model('hrnas_custom', arch=...)`` with an :class:`hrnas.Arch`, its dict
    form or a path to its JSON file. Without ``arch=`` it builds a small default (the ``cls_tiny`` supernet,
    10 classes, transformers off), so that code walking timm's registry can build every name with no arguments."""
    return _from_catalog("hrnas_custom", pretrained, kwargs)


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


def _unavailable(name: str, repo_id: Optional[str], error: Exception) -> WeightsUnavailableError:
    repo = f" (Hugging Face repo {repo_id!r})" if repo_id else ""
    get = f"huggingface_hub.snapshot_download({repo_id!r})" if repo_id else "huggingface_hub.snapshot_download"
    arch_name = name.split(":", 1)[-1].split(".", 1)[0]
    build = f", or `hrnas zoo-build {arch_name}` builds them here" if arch_name in _CATALOG else ""
    return WeightsUnavailableError(
        f"the weights of {name!r}{repo} are not in the local Hugging Face cache and could not be downloaded "
        f"({type(error).__name__}): run {get} where there is network and copy the cache over, or pass "
        f"pretrained_cfg_overlay=dict(file='path/to/model.safetensors'){build}"
    )


def _when_hub_unreachable(name: str, repo_id: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Without network (and without ``HF_HUB_OFFLINE``), read the weights from the local Hub cache directly, or fail
    at once, instead of letting huggingface_hub retry for most of a minute first (:mod:`hrnas.hub_access`)."""
    if hub_offline() or hub_reachable():
        return name, kwargs  # offline mode reads the cache by itself, without network; online, the Hub decides
    why = ConnectionError(f"the Hub did not answer within {REACH_TIMEOUT_S:g} s")
    if name.startswith(("hf-hub:", "hf_hub:")):
        snapshot = cached_snapshot(repo_id)
        if snapshot is None:
            raise _unavailable(name, repo_id, why)
        return f"local-dir:{snapshot}", kwargs
    weights = cached_file(repo_id, "model.safetensors")
    if weights is None:
        raise _unavailable(name, repo_id, why)
    overlay = {**(kwargs.get("pretrained_cfg_overlay") or {}), "file": weights}
    return name, {**kwargs, "pretrained_cfg_overlay": overlay}


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
        pretrained: load weights. A registered name alone loads its default weights tag, as timm does
            (``'hrnas_seg_a'`` means ``'hrnas_seg_a.textured_scenes'``). A tag's weights are found in a local
            directory (``$HRNAS_WEIGHTS_DIR/<name>.<tag>``, where ``hrnas zoo-build`` writes them), the local
            Hugging Face cache, or on the Hub for published tags (:mod:`hrnas.weights`); without any of them
            :class:`WeightsUnavailableError` says which command builds them.
        **kwargs: passed to ``timm.create_model`` (``num_classes``, ``in_chans``, ``features_only``,
            ``out_indices``, ``arch`` for ``hrnas_custom``...).
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    if _hub.is_model_dir(name):
        return _hub.load_pretrained(name, **kwargs)
    _check_model_name(name)
    hub_name = name.startswith(("hf-hub:", "hf_hub:"))
    # the catalog's own names resolve their weights in their entrypoint (_pretrained_source), for timm too
    ours = name.split(".", 1)[0] in _CATALOG
    repo_id = None
    if pretrained and hub_name:
        repo_id = name.split(":", 1)[1]
    elif pretrained and not ours and not name.startswith("local-dir:"):
        repo_id = _check_weights_exist(name, kwargs)
    if repo_id is not None:
        name, kwargs = _when_hub_unreachable(name, repo_id, kwargs)
    if not pretrained:
        return timm.create_model(name, **kwargs)
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, ConnectionError) as e:
        raise _unavailable(name, repo_id, e) from None
