"""Shared test setup: offline Hub, deterministic seeds, test tiers with their time limits.

Every test belongs to exactly one tier (docs/architecture.md, "Tests"): a test module sets its tier with
``pytestmark = pytest.mark.<tier>`` or, when its tests differ, each test with its own tier marker; a test with none
is ``unit``. Tests of the fast tiers (:data:`FAST_TIERS`) are also marked ``fast``: ``make test`` runs them
(``-m fast``), ``make test-all`` every tier.
"""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach the network
# no zoo weights a developer built (hrnas zoo-build) are seen: an empty local weights directory (hrnas.weights)
os.environ.setdefault("HRNAS_WEIGHTS_DIR", os.path.join(tempfile.gettempdir(), f"hrnas-tests-no-weights-{os.getpid()}"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: each worker, and the scripts its tests start, takes one thread, so the
    # workers never wait on each other's threads (benchmarks/results/shared_cpu.md)
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

import hrnas  # noqa: E402,F401  (registers the hrnas_* models with timm before any test module is collected)

# tier -> the per-test time limit in seconds. A limit is there to end a hung test with a traceback, not to time
# it: each is several times the slowest test of its tier on one thread of a shared core, so a slower machine
# does not fail them.
TIERS = {
    "unit": 120,  # pure Python and tiny models
    "model": 300,  # registered (paper-size) networks, at small inputs
    "search": 600,  # in-process searches and training runs
    "e2e": 900,  # subprocesses: the command line, scripts, torchrun, a killed and resumed run
    "benchmark": 1800,  # benchmark quick modes and the golden master pinned to known CPUs
}
FAST_TIERS = ("unit", "model")


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        tiers = {m.name for m in item.iter_markers() if m.name in TIERS}
        if len(tiers) > 1:
            # `-m` sees the markers of the test, its class and its module alike: a test must have one tier, so a
            # module with tests of several tiers marks each test instead of setting a module-wide tier
            raise pytest.UsageError(f"{item.nodeid} has more than one test tier: {sorted(tiers)}")
        tier = tiers.pop() if tiers else "unit"
        if tier == "unit":
            item.add_marker(pytest.mark.unit)
        if tier in FAST_TIERS:
            item.add_marker(pytest.mark.fast)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TIERS[tier]))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
