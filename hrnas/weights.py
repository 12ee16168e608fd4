"""Where the zoo's weights are found: a local directory, the local Hugging Face cache, then the Hub.

A weights tag (``hrnas_seg_a.textured_scenes``) is looked up in this order:

1. **a local directory**: ``$HRNAS_WEIGHTS_DIR/<name>.<tag>/`` (default ``$HRNAS_CACHE_DIR/weights``, that is
   ``~/.cache/hrnas/weights``), a model directory (``config.json`` + ``model.safetensors``) as
   ``hrnas zoo-build NAME`` writes it by default;
2. **the local Hugging Face cache**: a snapshot of the Hub repo ``hrnas/<name>.<tag>`` in huggingface_hub's cache
   (``HF_HUB_CACHE``), read through huggingface_hub without network (a cache copied from another machine, or
   filled by an earlier download);
3. **the Hub**, only for tags that are published there (:attr:`hrnas.catalog.WeightsTag.published`). None is yet:
   the machines the zoo was made on cannot reach the Hub, so no request is ever sent for an unpublished tag.

Nothing is advertised as downloadable that is not published: ``timm.list_pretrained`` and ``hrnas list
--pretrained`` show a tag only when one of these places holds it. This module imports neither torch nor timm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .catalog import ModelEntry, WeightsTag

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "ENV_VAR",
    "WeightsSource",
    "find_weights",
    "hub_cache_file",
    "local_directory",
    "missing_weights_message",
    "weights_dir",
]

ENV_VAR = "HRNAS_WEIGHTS_DIR"
# the two files of a model directory; here rather than in hrnas.hub, which imports timm: hrnas.zoo reads them while
# it is imported, and hrnas.zoo is imported from inside timm's import when another hrnas module imports timm first
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


def weights_dir() -> Path:
    """The local directory of zoo weights: ``$HRNAS_WEIGHTS_DIR``, else ``$HRNAS_CACHE_DIR/weights``, else
    ``~/.cache/hrnas/weights``. ``hrnas zoo-build`` writes there unless told otherwise."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("HRNAS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "hrnas")
    return Path(cache) / "weights"


def local_directory(name: str, tag: str) -> Optional[Path]:
    """``weights_dir()/<name>.<tag>`` when it is a complete model directory, else ``None``."""
    path = weights_dir() / f"{name}.{tag}"
    return path if (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file() else None


def hub_cache_file(repo_id: str) -> Optional[str]:
    """The cached ``model.safetensors`` of Hub repo ``repo_id``, resolved by huggingface_hub from its local cache
    alone (no network), or ``None``."""
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo_id, WEIGHTS_NAME, local_files_only=True)
    except Exception:  # not cached (LocalEntryNotFoundError), or a cache that cannot be read: not found here
        return None
    return path if os.path.isfile(path) else None


@dataclass(frozen=True)
class WeightsSource:
    """Where a tag's weights were found: ``kind`` is ``'directory'`` (``location`` a model directory),
    ``'hub-cache'`` (``location`` the cached weights file) or ``'hub'`` (``location`` the Hub repo id)."""

    kind: str
    location: str


def find_weights(name: str, tag: WeightsTag, *, network: bool = True) -> Optional[WeightsSource]:
    """Find the weights of ``name.tag``: a local directory, the local Hub cache, then (published tags only, and
    only with ``network``) the Hub. ``None`` when none of them has them."""
    directory = local_directory(name, tag.tag)
    if directory is not None:
        return WeightsSource("directory", str(directory))
    repo_id = tag.hub_id(name)
    cached = hub_cache_file(repo_id)
    if cached is not None:
        return WeightsSource("hub-cache", cached)
    if tag.published(name) and network:
        return WeightsSource("hub", repo_id)
    return None


def missing_weights_message(entry: ModelEntry, tag: Optional[WeightsTag], *, asked: str) -> str:
    """One sentence: what weights exist for ``entry`` and the one command that builds them here.

    ``asked`` is the name the caller asked for (``'hrnas_seg_a'`` or ``'hrnas_seg_a.textured_scenes'``).
    """
    name = entry.name
    if tag is None:
        return (
            f"no pretrained weights exist for {asked!r} (it has no weights tag; `hrnas list` shows the tags): train "
            "it, or pass pretrained_cfg_overlay=dict(file='path/to/model.safetensors') for weights of your own"
        )
    full = f"{name}.{tag.tag}"
    which = f"{full!r} (the default weights of {name!r})" if asked == name else repr(full)
    where = weights_dir() / full
    took = f" (measured: {entry.build_time})" if entry.build_time else ""
    build = f"`hrnas zoo-build {name}` builds them there{took}"
    if tag.published(name):
        return (
            f"the weights {which} are in neither {where} nor the Hugging Face cache, and the Hub cannot be reached "
            f"(no network, or HF_HUB_OFFLINE); download them where there is network or {build}"
        )
    return f"the weights {which} are not published and are in neither {where} nor the Hugging Face cache; {build}"
