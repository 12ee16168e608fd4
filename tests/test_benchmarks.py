"""The benchmarks' quick modes run (smoke tests: they must produce their tables; no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "benchmarks"


@pytest.mark.parametrize("script, outputs", [
    ("latency.py", ["latency_quick.md", "latency_quick.csv", "latency_quick.png"]),
    ("search_cost.py", ["search_cost_quick.md", "search_cost_quick.csv"]),
])  # fmt: skip
def test_quick_mode_writes_its_tables(script, outputs, tmp_path):
    subprocess.run([sys.executable, str(BENCH / script), "--quick", "--out", str(tmp_path)], check=True, timeout=600)
    for name in outputs:
        assert (tmp_path / name).stat().st_size > 0
    table = (tmp_path / outputs[0]).read_text()
    assert table.count("|") > 20 and "Produced by" in table


def test_search_speedup_quarters():
    sys.path.insert(0, str(BENCH))
    try:
        import search_speedup
    finally:
        sys.path.remove(str(BENCH))
    rows = [
        {"step": s, "step_time": t, "step_macs": m}
        for s, t, m in [(25, 1.0, 100e6), (50, 0.8, 80e6), (75, 0.5, 40e6), (100, 0.4, 25e6)]
    ]
    q = search_speedup.quarters(rows)
    assert q["first_rows"] == 1 and q["last_rows"] == 1
    assert q["speedup"] == 2.5 and q["macs_factor"] == 4.0 and q["required"] == 2.0
