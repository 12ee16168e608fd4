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

__all__ = ["released_cls_arch", "retrain_form"]


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
