"""Atomic, verified checkpoints for resumable searches.

A checkpoint file is a one-line header (a magic string and the SHA-256 of the payload) followed by a
``torch.save`` payload that holds only tensors and plain Python values. It is written to a temporary file,
flushed to disk and renamed over the previous checkpoint, so a run killed at any moment leaves either the old or
the new checkpoint, never a torn one; loading checks the hash and reads the payload with
``torch.load(weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

import torch

from .._files import write_atomic

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]

MAGIC = b"HRNAS-CHECKPOINT-1 sha256="


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or not an hrnas checkpoint."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    header = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"
    write_atomic(path, header + payload, fsync=True)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and verify a checkpoint written by :func:`save_checkpoint`."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CheckpointError(
            f"no checkpoint at {path!r}; check the resume= path (a run directory or its checkpoint.pt)"
        ) from None
    end = data.find(b"\n")
    if not data.startswith(MAGIC) or end < 0:
        raise CheckpointError(f"{path!r} is not an hrnas search checkpoint")
    digest, payload = data[len(MAGIC) : end].decode(errors="replace"), data[end + 1 :]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{path!r} is corrupt or truncated (checksum mismatch); resume from an earlier copy")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as e:  # the payload passed the hash, so this means it holds something other than tensors
        raise CheckpointError(
            f"{path!r} holds objects other than tensors and plain values; refusing to load: {e}"
        ) from None
