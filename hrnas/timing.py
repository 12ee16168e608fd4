"""Timing on the device a model will run on: what a measurement depends on, a median timer, the cache folder.

Shared by :mod:`hrnas.deployment` (per-block implementation choices) and :mod:`hrnas.latency` (the latency model).
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from .threads import LoadWatch

__all__ = ["cache_dir", "cpu_name", "device_key", "median_time", "timing_load_watch"]

# others keeping this many CPUs busy while a measurement runs make it worth a warning
BUSY_WARNING = 0.5


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_key(device: torch.device) -> str:
    """What a measurement depends on: the device model, the thread count and the torch version."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return f"{device.type}:{name}|threads={torch.get_num_threads()}|torch={torch.__version__}"


def median_time(fn: Callable[[], object], device: torch.device, repeats: int = 5, warmup: int = 2) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls (GPU work waited for)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@contextlib.contextmanager
def timing_load_watch(what: str, device: torch.device):
    """Around a measurement on the CPU: warn when other processes kept CPUs busy meanwhile (the timings are then
    inflated, by how much depends on the thread count: ``device_key`` records it)."""
    if torch.device(device).type != "cpu":
        yield
        return
    with LoadWatch() as watch:
        yield
    if watch.busy >= BUSY_WARNING:
        warnings.warn(
            f"{what} ran while other processes kept {watch.busy:.1f} of {len(watch.cpus)} CPUs busy (with "
            f"{torch.get_num_threads()} threads); its timings may be inflated: measure again when the machine is idle",
            stacklevel=3,
        )


def cache_dir() -> Path:
    """Where measurements are cached: ``$HRNAS_CACHE_DIR``, default ``~/.cache/hrnas``."""
    return Path(os.environ.get("HRNAS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "hrnas"))
