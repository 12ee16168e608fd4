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
from typing import TYPE_CHECKING

from ._timm_hook import register_with_timm

__version__ = "0.1.0"

# public name -> the module that defines it: the one list of the package's public names (``__all__`` is made from
# it; tests/test_structure.py checks that the TYPE_CHECKING imports below name the same)
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
    "deploy": "deployment",
    "export": "exporting",
    "WeightsError": "hub",
    "load_pretrained": "hub",
    "load_weights": "hub",
    "push_to_hub": "hub",
    "save_pretrained": "hub",
    "LatencyTable": "latency",
    "latency_table": "latency",
    "measure_latency": "latency",
    "HRNASNet": "net",
    "SearchConfig": "searching",
    "SearchResult": "searching",
    "create_supernet": "searching",
    "search": "searching",
    "train": "searching",
    "SearchSpace": "spaces",
    "get_space": "spaces",
    "list_spaces": "spaces",
    "UnknownModelError": "zoo",
    "WeightsUnavailableError": "zoo",
    "create_model": "zoo",
    "list_models": "zoo",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hrnas' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what the lazy attributes are, for type checkers and IDEs (F401: __all__ is not a literal)
    from .arch import Arch, ArchError, BlockSpec, ClsHeadSpec, DenseHeadSpec, FuseEdge, StageSpec  # noqa: F401
    from .archs import released_cls_arch, retrain_form, zoo_arch, zoo_entry  # noqa: F401
    from .convert import convert_original, load_original_arch  # noqa: F401
    from .cost import count_macs, count_params, summary  # noqa: F401
    from .deployment import deploy  # noqa: F401
    from .exporting import export  # noqa: F401
    from .hub import WeightsError, load_pretrained, load_weights, push_to_hub, save_pretrained  # noqa: F401
    from .latency import LatencyTable, latency_table, measure_latency  # noqa: F401
    from .net import HRNASNet  # noqa: F401
    from .profiling import Profile, profile  # noqa: F401
    from .searching import SearchConfig, SearchResult, create_supernet, search, train  # noqa: F401
    from .spaces import SearchSpace, get_space, list_spaces  # noqa: F401
    from .zoo import UnknownModelError, WeightsUnavailableError, create_model, list_models  # noqa: F401

register_with_timm()
