"""How many intra-op threads long-running work should use: the CPUs this process may use, minus the busy ones.

torch starts one intra-op thread per core. When other processes keep some of those cores busy, the threads that
land on them are descheduled, and every parallel region (each convolution) waits for the slowest one, so that a
search beside one busy process can run several times slower with all cores' threads than with the free ones
(measured: ``benchmarks/results/shared_cpu.md``). So a long run takes the cores that are free, re-checks as it
goes, and tries its neighbouring thread counts when its step time drifts.

- :func:`usable_cpus`: CPUs of this process's affinity mask, capped by a cgroup CPU quota (containers).
- :func:`busy_cpus`: how many of them other processes keep busy, sampled from ``/proc/stat`` (Linux; 0 elsewhere).
- :func:`choose_threads`: the thread count for work starting now.
- :class:`ThreadTuner`: the same choice kept up to date during a run (a search's training loop).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path
from typing import Callable, Optional

__all__ = ["LoadWatch", "ThreadTuner", "busy_cpus", "choose_threads", "usable_cpus"]

# A core counts as taken by others when they keep it this busy; below it, a thread there loses less than it adds.
_BUSY_ROUNDING = 0.6
# steps after which the load is sampled again, besides every ``check_every`` steps
_EARLY_CHECKS = (3, 10, 25)


def _cgroup_quota() -> Optional[float]:
    """CPUs granted by a cgroup CPU quota (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), ``None`` when unlimited."""
    try:
        v2 = Path("/sys/fs/cgroup/cpu.max")
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        if v1.is_file():
            quota = int(v1.read_text())
            period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None
    return None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup quota (at least 1)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus)


def _cpu_jiffies(cpus: set[int]) -> Optional[tuple[int, int]]:
    """(busy, total) jiffies summed over ``cpus`` from ``/proc/stat``; ``None`` where there is no such file."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        if int(name[3:]) not in cpus:
            continue
        values = [int(v) for v in fields]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        total += sum(values[:8])  # guest time is already counted in user time
        busy += sum(values[:8]) - idle
    return busy, total


class LoadWatch:
    """How many of this process's usable CPUs other processes kept busy while the ``with`` block ran (this process's
    own CPU time is subtracted; 0.0 where ``/proc/stat`` does not exist): ``with LoadWatch() as w: ...; w.busy``."""

    def __init__(self) -> None:
        try:
            self.cpus = set(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            self.cpus = set(range(os.cpu_count() or 1))
        self.busy = 0.0

    def __enter__(self) -> LoadWatch:
        self._first = _cpu_jiffies(self.cpus)
        self._own, self._t0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        second = _cpu_jiffies(self.cpus)
        own, elapsed = time.process_time() - self._own, time.perf_counter() - self._t0
        if self._first is None or second is None or second[1] <= self._first[1]:
            return
        share = (second[0] - self._first[0]) / (second[1] - self._first[1])  # busy fraction of those CPUs' time
        self.busy = max(0.0, share * len(self.cpus) - own / max(elapsed, 1e-6))


def busy_cpus(interval: float = 0.3) -> float:
    """How many of this process's usable CPUs other processes keep busy, sampled over ``interval`` seconds."""
    with LoadWatch() as watch:
        time.sleep(interval)
    return watch.busy


def choose_threads(busy: Optional[float] = None, usable: Optional[int] = None) -> int:
    """Threads for work starting now: the usable CPUs that others do not keep busy (at least 1)."""
    usable = usable_cpus() if usable is None else usable
    busy = busy_cpus() if busy is None else busy
    taken = math.floor(busy + (1 - _BUSY_ROUNDING))  # 0.6 busy cores count as one taken
    return max(1, min(usable, usable - taken))


class ThreadTuner:
    """Keeps ``torch``'s intra-op thread count fitted to the free cores during a long run.

    Call :meth:`start` once, :meth:`step_done` after every training step with its duration, and
    :meth:`network_changed` when the work per step changes (a shrink). After the 3rd, 10th and 25th step and then
    every ``check_every`` steps the load is sampled again; when the free cores changed, the thread count follows.
    When the step time drifts above ``drift`` x its recent baseline, the neighbouring thread counts are each tried
    for ``trial_steps`` steps and the fastest kept (a busy machine's load is not always visible in ``/proc/stat``,
    for instance under a hypervisor's steal time).

    Args:
        threads: a fixed count (the tuner then only sets it), or ``None`` to choose and adapt.
        check_every, drift, trial_steps: see above.
        load: how many CPUs others keep busy (default :func:`busy_cpus`; tests pass a fake).
    """

    def __init__(
        self,
        threads: Optional[int] = None,
        check_every: int = 50,
        drift: float = 1.3,
        trial_steps: int = 3,
        load: Callable[[], float] = busy_cpus,
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be a positive number of threads (or None to choose), got {threads}")
        self.fixed = threads
        self.check_every = max(1, check_every)
        self.drift = drift
        self.trial_steps = max(1, trial_steps)
        self.load = load
        self.threads = threads or 1
        self.usable = usable_cpus()
        self.steps = 0
        self.baseline: Optional[float] = None
        self.recent: list[float] = []
        self.trials: list[tuple[int, list[float]]] = []  # (threads, step times) of the candidates being tried
        self.changes: list[tuple[int, int, str]] = []  # (step, threads, why)

    def _set(self, threads: int, why: str, record: bool = False) -> None:
        import torch

        threads = max(1, min(self.usable, threads))
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        if record or threads != self.threads or not self.changes:
            self.changes.append((self.steps, threads, why))
        self.threads = threads

    def start(self) -> int:
        """Set the thread count for the run's start; returns it."""
        if self.fixed is not None:
            self._set(self.fixed, "fixed")
        else:
            busy = self.load()
            self._set(choose_threads(busy, self.usable), f"{busy:.1f} of {self.usable} CPUs busy")
        return self.threads

    def network_changed(self) -> None:
        """The work per step changed (the network shrank): forget the step-time baseline."""
        self.baseline, self.recent = None, []

    def step_done(self, seconds: float) -> None:
        """Record one training step's duration; re-check the load or try neighbouring counts when due."""
        self.steps += 1
        if self.fixed is not None:
            return
        if self.trials:
            self._trial_step(seconds)
            return
        self.recent = (self.recent + [seconds])[-9:]
        if self.baseline is None and len(self.recent) >= 5:
            self.baseline = statistics.median(self.recent)
        # early checks too: processes started together each see the others still starting (idle) at their first
        # look, and all take every core
        if self.steps in _EARLY_CHECKS or self.steps % self.check_every == 0:
            busy = self.load()
            wanted = choose_threads(busy, self.usable)
            if wanted != self.threads:
                self._set(wanted, f"{busy:.1f} of {self.usable} CPUs busy")
                self.network_changed()
                return
        if self.baseline is not None and len(self.recent) >= 5:
            now = statistics.median(self.recent[-5:])
            if now > self.drift * self.baseline and self.usable > 1:
                candidates = sorted({max(1, self.threads - 1), min(self.usable, self.threads + 1)} - {self.threads})
                self.trials = [(self.threads, self.recent[-self.trial_steps :])] + [(c, []) for c in candidates]
                self._set(candidates[0], f"step time {now / self.baseline:.2f}x its baseline: trying")

    def _trial_step(self, seconds: float) -> None:
        current = next(i for i, (n, times) in enumerate(self.trials) if n == self.threads)
        self.trials[current][1].append(seconds)
        untried = [(n, times) for n, times in self.trials if len(times) < self.trial_steps]
        if untried:
            if len(self.trials[current][1]) >= self.trial_steps:
                self._set(untried[0][0], "trying")
            return
        best = min(self.trials, key=lambda t: statistics.median(t[1]))
        self.trials = []
        self._set(best[0], "fastest of the counts tried", record=True)
        self.network_changed()

    @property
    def label(self) -> str:
        """For progress lines: ``'2 threads'``."""
        return f"{self.threads} thread{'s' if self.threads != 1 else ''}"
