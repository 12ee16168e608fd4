"""hrnas: HR-NAS (Ding et al., CVPR 2021) as a timm model family, with its supernet search as a library.

Importing this package registers the ``hrnas_*`` models with timm::

    import hrnas, timm
    model = hrnas.create_model('hrnas_cls_a')
    feats = timm.create_model('hrnas_supernet_seg', features_only=True)   # strides 2, 4, 8, 16, 32

"FLOPs" in this library are multiply-accumulates (MACs); :func:`profile` states its convention.
"""

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

__version__ = "0.1.0"

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
    "__version__",
    "count_macs",
    "convert_original",
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
]
