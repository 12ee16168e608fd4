"""Shared test setup: offline Hub, deterministic seeds, and small helper factories."""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach the network
# no zoo weights a developer built (hrnas zoo-build) are seen: an empty local weights directory (hrnas.weights)
os.environ.setdefault("HRNAS_WEIGHTS_DIR", os.path.join(tempfile.gettempdir(), f"hrnas-tests-no-weights-{os.getpid()}"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: each worker, and the scripts its tests start, takes one thread, so the
    # workers never wait on each other's threads (DESIGN.md section 8, shared CPUs)
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

import hrnas  # noqa: E402,F401  (registers the hrnas_* models with timm before any test module is collected)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
