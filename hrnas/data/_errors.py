"""Errors raised by the optional data package."""

from __future__ import annotations


class DataNotFoundError(FileNotFoundError):
    """A dataset file is missing; the message names the file and how to obtain it."""
