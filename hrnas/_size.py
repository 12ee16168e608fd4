"""``pair``: an image size given as ``int`` or ``(height, width)``, as a tuple of two ints (a leaf: imports nothing)."""

from __future__ import annotations

from typing import Any

__all__ = ["pair"]


def pair(size: Any) -> tuple[int, int]:
    """``224`` -> ``(224, 224)``; ``(h, w)`` or ``[h, w]`` -> ``(int(h), int(w))``; anything else: ``ValueError``."""
    if isinstance(size, int):
        return size, size
    if len(size) != 2:
        raise ValueError(f"input_size must be (height, width) or an int, got {size!r}")
    return int(size[0]), int(size[1])
