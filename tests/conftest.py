"""Shared test setup: offline Hub, deterministic seeds, and small helper factories."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach the network

import pytest
import torch

import hrnas  # noqa: E402,F401  (registers the hrnas_* models with timm before any test module is collected)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
