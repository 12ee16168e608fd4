"""Building blocks of HR-NAS networks, each built from the integers of an :class:`hrnas.Arch` spec."""

from .block import ConvBnAct, KernelPath, MixedKernelBlock, SqueezeExcite, make_act, residual_groups
from .heads import ClsNeck, DenseHead, DenseNeck, PrunedNeck
from .stage import HRStage
from .transformer import LightweightTransformer, TokenAttention

__all__ = [
    "ClsNeck",
    "ConvBnAct",
    "DenseHead",
    "DenseNeck",
    "HRStage",
    "KernelPath",
    "LightweightTransformer",
    "MixedKernelBlock",
    "PrunedNeck",
    "SqueezeExcite",
    "TokenAttention",
    "make_act",
    "residual_groups",
]
