"""The search finds what it found before the refactor of issue 18: same architectures, bit-identical weights.

``tests/data/search_fixture.json`` was written by ``tests/scripts/fixed_search.py`` with the search code of commit
d4878b1 (before the search was split into components). Bits are only comparable on the CPU model and torch version
the fixture was written with (``written_by``); elsewhere the architectures and the integer columns of the history
are compared, and weights, metrics and losses only approximately.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from hrnas._measure import cpu_name

HERE = Path(__file__).parent
FIXTURE = HERE / "data" / "search_fixture.json"
INTEGER_COLUMNS = ("step", "macs", "params", "cost", "hidden", "tokens", "skipped")


def _script():
    spec = importlib.util.spec_from_file_location("fixed_search", HERE / "scripts" / "fixed_search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def found():
    threads = torch.get_num_threads()
    try:
        return _script().run_all()
    finally:
        torch.set_num_threads(threads)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(found):
    # "resumed" is "family" stopped at step 17 and resumed from the checkpoint this code wrote
    for key in ("arch", "weights_sha256", "family", "macs", "metric"):
        assert found["resumed"][key] == found["family"][key], key


@pytest.mark.parametrize("run", ["family", "latency", "resumed"])
def test_search_finds_what_the_original_code_found(found, run):
    expected = json.loads(FIXTURE.read_text())
    same_platform = expected["written_by"] == {"torch": torch.__version__, "cpu": cpu_name()}
    want, got = expected[run], found[run]
    assert got["arch"] == want["arch"]
    assert [m["arch"] for m in got["family"]] == [m["arch"] for m in want["family"]]
    for key in ("macs", "params", "cost"):
        assert got[key] == want[key], key
    assert [{k: r[k] for k in INTEGER_COLUMNS} for r in got["history"]] == [
        {k: r[k] for k in INTEGER_COLUMNS} for r in want["history"]
    ]
    if same_platform:
        assert got["weights_sha256"] == want["weights_sha256"]
        assert [m["weights_sha256"] for m in got["family"]] == [m["weights_sha256"] for m in want["family"]]
        assert got["history"] == want["history"]
        assert (got["metric"], got["measured_latency_ms"]) == (want["metric"], want["measured_latency_ms"])
    else:
        assert got["weight_sums"] == pytest.approx(want["weight_sums"], rel=1e-3)
        assert got["metric"] == (None if want["metric"] is None else pytest.approx(want["metric"], abs=1e-2))
