"""Atomic, verified checkpoints for resumable searches.

A search checkpoint is ``{"version": CHECKPOINT_VERSION, "arch", "config", "step", "rng", and one entry per
component: "trainer", "penalty", "controller", "feedback", "recorder"}``, each component's ``state_dict()``;
:func:`write_search_checkpoint` and :func:`read_search_checkpoint` are the only writer and reader of that layout
(a checkpoint written before checkpoints had versions, flat, is read as version 2, and version 2 as 3).

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
import random
import shutil
from typing import Any

import torch

from ..files import is_temporary, write_atomic

__all__ = [
    "CHECKPOINT_NAME",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "clean_run_directory",
    "load_checkpoint",
    "read_search_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "write_search_checkpoint",
]

MAGIC = b"HRNAS-CHECKPOINT-1 sha256="
CHECKPOINT_NAME = "checkpoint.pt"  # in a run's output directory
CHECKPOINT_VERSION = 3
COMPONENTS = ("trainer", "penalty", "controller", "feedback", "recorder")


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


def write_search_checkpoint(path: str | os.PathLike, **parts: Any) -> None:
    """Write a search checkpoint: ``arch``, ``config``, ``step``, ``rng`` and every component's state."""
    missing = {"arch", "config", "step", "rng", *COMPONENTS} - set(parts)
    if missing:
        raise ValueError(f"a search checkpoint needs {sorted(missing)}")
    save_checkpoint({"version": CHECKPOINT_VERSION, **parts}, path)


def read_search_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a search checkpoint: ``path`` or, for a run's directory, its ``checkpoint.pt`` (verified; an older
    layout is brought to this version's)."""
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_NAME)
    state = load_checkpoint(path)
    if "version" not in state:
        state = _from_version_1(state)
    if state["version"] == 2:
        state = _from_version_2(state)
    if state["version"] != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{os.fspath(path)!r} is a version {state['version']!r} search checkpoint; this hrnas reads version "
            f"{CHECKPOINT_VERSION} (upgrade hrnas to resume it)"
        )
    return state


def _from_version_1(old: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of hrnas before the search was split into components (one flat dict) in version 2's layout;
    fields that early versions did not write get the values those versions assumed."""
    checks = [{"arch": None, **c} for c in old.get("latency_checks", [])]
    family = [{"measured_latency_ms": None, **m} for m in old.get("family", [])]
    return {
        "version": 2,
        "arch": old["arch"],
        "config": old["config"],
        "step": old["step"],
        "rng": old["rng"],
        "trainer": {"model": old["model"], "optimizer": old["optimizer"], "ema": old["ema"], "scaler": {}},
        "penalty": {"normalizer": old["normalizer"]},
        "controller": old["controller"],
        "feedback": {
            "correction": old.get("latency_correction", 1.0),
            "checks": checks,
            "measured_arch": old.get("latency_measured_arch"),
        },
        "recorder": {"history": old["history"], "family": family, "skipped": old["skipped"]},
    }


def _from_version_2(old: dict[str, Any]) -> dict[str, Any]:
    """Version 2 in version 3's layout: no measured importance yet, and the settings that did not exist then at the
    values that version ran with (a penalised tail, cuts ranked by gate, rho up to 10x its scale)."""
    config = {"tail": "penalised", "cut_rank": "gate", "rho_limit": 10.0, **old["config"]}
    return {**old, "version": 3, "config": config, "trainer": {**old["trainer"], "importance": {}}}


def rng_state() -> dict[str, Any]:
    """The random states a resumed run must continue from (torch's, Python's, and CUDA's where there is one)."""
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]), "python_pos": random.getstate()[2]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def clean_run_directory(directory: str | os.PathLike) -> None:
    """Make ``directory``, or remove the temporary files a run killed while writing left in it (the checkpoint
    itself is always whole)."""
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if is_temporary(name):
            path = os.path.join(directory, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
