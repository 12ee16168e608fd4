"""Building blocks of HR-NAS networks, each built from the integers of an :class:`hrnas.Arch` spec."""

from .block import (
    BLOCK_UNITS,
    BlockUnits,
    ConvBnAct,
    KernelPath,
    MixedKernelBlock,
    SqueezeExcite,
    make_act,
    residual_groups,
)
from .heads import ClsNeck, DenseHead, DenseNeck, PrunedNeck
from .stage import HRStage
from .transformer import TOKEN_UNITS, LightweightTransformer, TokenAttention, TokenUnits

__all__ = [
    "BLOCK_UNITS",
    "TOKEN_UNITS",
    "BlockUnits",
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
    "TokenUnits",
    "make_act",
    "residual_groups",
]
