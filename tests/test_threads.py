"""Thread choice for long runs on shared CPUs (hrnas.threads): usable CPUs, busy CPUs, and the tuner."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from hrnas.threads import ThreadTuner, busy_cpus, choose_threads, usable_cpus

MULTI_CORE = len(os.sched_getaffinity(0)) >= 2 if hasattr(os, "sched_getaffinity") else False


def test_choose_threads_leaves_the_busy_cores():
    assert choose_threads(busy=0.0, usable=2) == 2
    assert choose_threads(busy=0.3, usable=2) == 2  # light load: a thread there still helps
    assert choose_threads(busy=0.8, usable=2) == 1
    assert choose_threads(busy=1.9, usable=4) == 2
    assert choose_threads(busy=7.0, usable=2) == 1  # never fewer than one


@pytest.mark.skipif(not MULTI_CORE, reason="needs at least 2 CPUs")
def test_usable_cpus_follows_the_affinity_mask():
    code = textwrap.dedent(
        """
        import os
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        from hrnas.threads import usable_cpus
        print(usable_cpus())
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    assert usable_cpus() >= 2


@pytest.mark.skipif(not MULTI_CORE or not os.path.exists("/proc/stat"), reason="needs Linux and 2 CPUs")
def test_busy_cpus_sees_a_spinning_process():
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        readings = [busy_cpus(0.5) for _ in range(3)]
    finally:
        spin.kill()
        spin.wait()
    assert max(readings) >= 0.6, readings


def test_tuner_follows_the_load_and_tries_neighbours_when_steps_slow_down():
    threads_before = torch.get_num_threads()
    load = [0.0]
    try:
        tuner = ThreadTuner(check_every=10, drift=1.3, trial_steps=2, load=lambda: load[0])
        tuner.usable = 2
        assert tuner.start() == 2 and torch.get_num_threads() == 2
        for _ in range(9):
            tuner.step_done(1.0)
        load[0] = 1.0  # another process takes a core: the next check follows
        tuner.step_done(1.0)
        assert tuner.threads == 1 and torch.get_num_threads() == 1
        # the load is invisible now, but steps at 1 thread slowed down (say a hypervisor's steal): try 2 threads
        load[0] = 0.0
        tuner.check_every = 10**6
        speed = {1: 3.0, 2: 1.0}
        for _ in range(5):
            tuner.step_done(1.0)  # baseline at 1 thread
        for _ in range(12):
            tuner.step_done(speed[tuner.threads])
        assert tuner.threads == 2
        assert [why for _, _, why in tuner.changes][-1] == "fastest of the counts tried"
        fixed = ThreadTuner(threads=1, load=lambda: 5.0)
        assert fixed.start() == 1 and fixed.label == "1 thread"
        with pytest.raises(ValueError, match="positive number of threads"):
            ThreadTuner(threads=0)
    finally:
        torch.set_num_threads(threads_before)
