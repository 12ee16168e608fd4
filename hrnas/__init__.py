"""hrnas: HR-NAS (Ding et al., CVPR 2021) as a timm model family, with its supernet search as a library.

Importing this package registers the ``hrnas_*`` models with timm::

    import hrnas, timm
    model = hrnas.create_model('hrnas_cls_a')
    feats = timm.create_model('hrnas_supernet_seg', features_only=True)   # strides 2, 4, 8, 16, 32

"FLOPs" in this library are multiply-accumulates (MACs); :func:`profile` states its convention.

The package imports its parts (and torch, timm, fvcore) only when they are first used, so ``import hrnas`` and
commands such as ``hrnas list`` start quickly; the registration with timm happens when timm is imported
(:mod:`hrnas._timm_hook`).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

from ._timm_hook import register_with_timm

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Arch": "arch",
    "ArchError": "arch",
    "BlockSpec": "arch",
    "ClsHeadSpec": "arch",
    "DenseHeadSpec": "arch",
    "FuseEdge": "arch",
    "StageSpec": "arch",
    "released_cls_arch": "archs",
    "retrain_form": "archs",
    "zoo_arch": "archs",
    "zoo_entry": "archs",
    "convert_original": "convert",
    "load_original_arch": "convert",
    "count_macs": "cost",
    "count_params": "cost",
    "summary": "cost",
    "Profile": "profiling",
    "profile": "profiling",
    "deploy": "deploy",
    "export": "export",
    "WeightsError": "hub",
    "load_pretrained": "hub",
    "load_weights": "hub",
    "push_to_hub": "hub",
    "save_pretrained": "hub",
    "LatencyTable": "latency",
    "latency_table": "latency",
    "measure_latency": "latency",
    "HRNASNet": "net",
    "SearchConfig": "search",
    "SearchResult": "search",
    "create_supernet": "search",
    "search": "search",
    "SearchSpace": "spaces",
    "get_space": "spaces",
    "list_spaces": "spaces",
    "UnknownModelError": "zoo",
    "WeightsUnavailableError": "zoo",
    "create_model": "zoo",
    "list_models": "zoo",
}

__all__ = [
    "Arch",
    "ArchError",
    "BlockSpec",
    "ClsHeadSpec",
    "DenseHeadSpec",
    "FuseEdge",
    "HRNASNet",
    "LatencyTable",
    "Profile",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "StageSpec",
    "UnknownModelError",
    "WeightsError",
    "WeightsUnavailableError",
    "convert_original",
    "count_macs",
    "count_params",
    "create_model",
    "create_supernet",
    "deploy",
    "export",
    "get_space",
    "latency_table",
    "list_models",
    "list_spaces",
    "load_original_arch",
    "load_pretrained",
    "load_weights",
    "measure_latency",
    "profile",
    "push_to_hub",
    "released_cls_arch",
    "retrain_form",
    "save_pretrained",
    "search",
    "summary",
    "zoo_arch",
    "zoo_entry",
    "__version__",
]


# public functions named like the module that defines them: importing that module (``hrnas.search`` by any
# ``import hrnas.search.x``) must not replace the function with the module, as it cannot in an eager __init__
_FUNCTIONS_NAMED_LIKE_MODULES = frozenset({"search", "export", "deploy"})


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        if name in _FUNCTIONS_NAMED_LIKE_MODULES and isinstance(value, types.ModuleType):
            return  # the import system binding the submodule; the name stays (or becomes) the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hrnas' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what the lazy attributes are, for type checkers and IDEs
    from .arch import Arch, ArchError, BlockSpec, ClsHeadSpec, DenseHeadSpec, FuseEdge, StageSpec
    from .archs import released_cls_arch, retrain_form, zoo_arch, zoo_entry
    from .convert import convert_original, load_original_arch
    from .cost import count_macs, count_params, summary
    from .deploy import deploy
    from .export import export
    from .hub import WeightsError, load_pretrained, load_weights, push_to_hub, save_pretrained
    from .latency import LatencyTable, latency_table, measure_latency
    from .net import HRNASNet
    from .profiling import Profile, profile
    from .search import SearchConfig, SearchResult, create_supernet, search
    from .spaces import SearchSpace, get_space, list_spaces
    from .zoo import UnknownModelError, WeightsUnavailableError, create_model, list_models

register_with_timm()
