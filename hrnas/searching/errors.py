"""The search's own error."""

from __future__ import annotations

__all__ = ["SearchError"]


class SearchError(RuntimeError):
    """A search could not continue (the message says why and what to do)."""
