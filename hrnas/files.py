"""Writing files so that a failure never leaves a half-written one."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "is_temporary", "write_atomic"]


def temporary_name(path: Path) -> Path:
    """Where ``path`` is written before being renamed into place (same folder, same suffix, hidden)."""
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def is_temporary(name: str) -> bool:
    """True for the names of files :func:`atomic_path` writes (left behind only by a killed process)."""
    return name.startswith(".") and (".tmp" in name)


@contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it is renamed over ``path``, on failure it is removed.

    Readers of ``path`` therefore see the old file or the new one, never a part. With ``fsync`` the data is on
    disk before the rename (for checkpoints, which must survive a power cut as well as a kill).
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path: str | os.PathLike, data: str | bytes, fsync: bool = False) -> Path:
    """Write ``data`` (text or bytes) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path, fsync=fsync) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
    return Path(path)
