"""``create_supernet``: the full-width network of a search space, ready for :func:`hrnas.search`."""

from __future__ import annotations

from typing import Any, Optional

from ..net import HRNASNet
from ..spaces import SearchSpace, get_space

__all__ = ["create_supernet"]

_DEFAULT_SPACE = {"seg": "seg", "pose": "pose", "cls": "cls"}


def create_supernet(
    task: str = "seg",
    num_classes: Optional[int] = None,
    space: Optional[str | SearchSpace] = None,
    transformers: bool | str = True,
    in_chans: int = 3,
    **overrides: Any,
) -> HRNASNet:
    """The supernet of a search space: every block at full width, transformers in the space's blocks.

    Args:
        task: ``'seg'``, ``'pose'`` or ``'cls'`` (selects the default space and, later, the loss and metric).
        num_classes: classes (or keypoints); default: the space's.
        space: a preset name (``'seg'``, ``'seg_ade'``, ``'pose'``, ``'cls'``, ``'seg_tiny'``, ``'cls_tiny'``) or a
            :class:`hrnas.SearchSpace`; default: the task's paper space.
        transformers: ``True`` searches transformer tokens too (the paper's method, 64 tokens per
            identity-residual block); ``False`` builds the registered ``hrnas_supernet_*`` network.
        in_chans: input channels.
        **overrides: fields of :class:`hrnas.SearchSpace` to change (``last_channel``, ``max_tokens``,
            ``expand_ratio``, ``input_size``...).
    """
    if task not in _DEFAULT_SPACE:
        raise ValueError(f"task must be 'seg', 'pose' or 'cls', got {task!r}")
    sp = get_space(space or _DEFAULT_SPACE[task])
    if sp.task != task:
        raise ValueError(f"space {sp.name!r} is a {sp.task!r} space, not {task!r}")
    if overrides:
        sp = sp.replace(**overrides)
    arch = sp.supernet(num_classes=num_classes, transformers=transformers)
    model = HRNASNet(arch, in_chans=in_chans)
    h, w = sp.input_size
    model.pretrained_cfg = {
        "input_size": (in_chans, h, w),
        "first_conv": "stem.0.conv",
        "classifier": "head.fc",
        "num_classes": arch.num_classes,
        "description": f"supernet of the {sp.name!r} search space",
    }
    return model
