"""``pair``: an image size as ``(height, width)``, from every form users write it in (a leaf: imports nothing)."""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["pair"]


def pair(size: Any, in_chans: Optional[int] = None) -> tuple[int, int]:
    """``224`` -> ``(224, 224)``; ``(h, w)`` -> ``(h, w)``; timm's ``(channels, h, w)`` (as in pretrained configs)
    -> ``(h, w)``, the channels checked against ``in_chans`` when given. Anything else: ``ValueError``."""
    if isinstance(size, bool):
        raise ValueError(f"input_size must be (height, width), (channels, height, width) or an int, got {size!r}")
    if isinstance(size, int):
        return size, size
    try:
        dims = [int(d) for d in size]
    except (TypeError, ValueError):
        dims = []
    if len(dims) == 3:
        if in_chans is not None and dims[0] != in_chans:
            raise ValueError(
                f"input_size {tuple(size)!r} has {dims[0]} channels but the model takes {in_chans}; "
                f"pass (height, width) or ({in_chans}, height, width)"
            )
        dims = dims[1:]
    if len(dims) != 2 or min(dims) < 1:
        raise ValueError(f"input_size must be (height, width), (channels, height, width) or an int, got {size!r}")
    return dims[0], dims[1]
