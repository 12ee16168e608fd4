"""Architectures shipped with hrnas as readable data (JSON), and loaders that turn them into ``Arch`` objects.

``hrnas_released_cls_original.json`` is the one searched architecture the HR-NAS authors released
(``checkpoint.json`` of github.com/dingmyu/HR-NAS, MIT licence; see NOTICE): an ImageNet model, 67 entries
``[out, 1, stride, kernels_kept, channels_kept, expand]`` in block construction order.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources

from ..arch import Arch, ClsHeadSpec
from ..spaces import get_space

__all__ = [
    "released_cls_arch",
    "retrain_form",
    "zoo_arch",
    "zoo_entries",
    "zoo_entry",
]


def retrain_form(arch: Arch, se_ratio: float = 0.5, act: str = "swish", dropout: float | None = 0.28) -> Arch:
    """The original's retraining variant of a searched architecture: SE on every block's hidden channels,
    Swish everywhere, and (for classification) a higher classifier dropout."""
    arch = arch.with_blocks([b.replace(se_ratio=se_ratio, act=act) for b in arch.blocks()]).replace(act=act)
    if dropout is not None and isinstance(arch.head, ClsHeadSpec):
        arch = arch.replace(head=dataclasses.replace(arch.head, dropout=dropout))
    return arch


def released_cls_arch(form: str = "retrain") -> Arch:
    """The HR-NAS authors' released ImageNet architecture.

    Args:
        form: ``'retrain'`` (SE 0.5, Swish, dropout 0.28, as the original README retrains it; 4.6 M params) or
            ``'search'`` (the same widths in plain search blocks: ReLU, no SE; 3.89 M params).
    """
    if form not in ("retrain", "search"):
        raise ValueError(f"form must be 'retrain' or 'search', got {form!r}")
    text = resources.files(__package__).joinpath("hrnas_released_cls_original.json").read_text()
    arch = get_space("cls").supernet(transformers=False).with_original_blocks(json.loads(text))
    arch = arch.replace(name="hrnas_released_cls")
    return retrain_form(arch) if form == "retrain" else arch


# ----------------------------------------------------------------------------------------------------------
# Searched zoo architectures: hrnas/archs/zoo/<name>.json, written by ``hrnas zoo-build <name>``.

ZOO_DIR = "zoo"


def zoo_entries() -> list[str]:
    """Names of the searched architectures shipped with the package."""
    folder = resources.files(__package__).joinpath(ZOO_DIR)
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


# earlier versions of the zoo, kept so that results made with them reproduce: zoo/v<N>/<name>.json
ZOO_VERSIONS = (1,)


def zoo_entry(name: str, version: int | None = None) -> dict:
    """The zoo entry of ``name``: ``{'name', 'arch', 'record'}``; ``record`` says how it was searched (command, data,
    seed, budget, MACs and params at its named configuration). ``version`` picks an earlier zoo (``1``); default:
    the current one."""
    if version is not None and version not in ZOO_VERSIONS:
        raise ValueError(f"no zoo version {version!r}; earlier versions: {ZOO_VERSIONS} (None: the current zoo)")
    parts = (ZOO_DIR, f"v{version}", f"{name}.json") if version is not None else (ZOO_DIR, f"{name}.json")
    path = resources.files(__package__).joinpath(*parts)
    if not path.is_file():
        shipped = ", ".join(zoo_entries())
        raise ValueError(f"no searched architecture named {name!r} in zoo version {version}; shipped: {shipped}")
    return json.loads(path.read_text())


def zoo_arch(name: str, version: int | None = None) -> Arch:
    """The searched architecture ``name`` in its named configuration (classes and task it was sized for);
    ``version=1`` gives the first zoo's architecture."""
    return Arch.from_dict(zoo_entry(name, version)["arch"])
