"""Wall times of the commands whose durations the README and the docs quote, run one after another from this
checkout, with the date of measuring.

Each command runs alone (nothing else may run meanwhile: a second torch process slows both by an order of magnitude
on 2 cores). ``make demo`` and ``make test`` are timed from a fresh clone by hand (``time make demo``), since they
include setting up the virtual environment; their figures are entered with ``--add NAME=SECONDS``.

    python benchmarks/doc_timings.py                       # every full-mode example (about 25 minutes on 2 cores)
    python benchmarks/doc_timings.py --only quick          # the --quick modes (about 2 minutes)
    python benchmarks/doc_timings.py --skip-run --add "make demo (fresh clone)=1020"   # a figure timed by hand

Writes ``benchmarks/results/doc_timings.md``; rows of earlier runs of other commands are kept.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, machine, markdown_table, write_markdown

from hrnas.files import write_atomic

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["finetune_segmentation", "finetune_classification", "finetune_keypoints", "search_custom_folder"]
STATE = RESULTS / "doc_timings.json"  # every measured row, so that runs of different groups add up


def _commands(group: str) -> dict[str, list[str]]:
    quick = group == "quick"
    out = {}
    for name in EXAMPLES:
        flags = ["--quick"] if quick else []
        out[f"docs/examples/{name}.py{' --quick' if quick else ''}"] = [
            sys.executable,
            str(ROOT / "docs" / "examples" / f"{name}.py"),
            *flags,
        ]
    return out


def _time(cmd: list[str], out_dir: str) -> float:
    """Wall seconds of ``cmd``; the end of its output is printed (the metric it reached, for the docs)."""
    start = time.perf_counter()
    proc = subprocess.run([*cmd, "--output-dir", out_dir], cwd=ROOT, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    print("\n".join(proc.stdout.splitlines()[-8:]), flush=True)
    return seconds


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["full", "quick"], default="full", help="which example modes to time")
    p.add_argument("--add", action="append", default=[], help="NAME=SECONDS measured by hand (e.g. make demo)")
    p.add_argument("--skip-run", action="store_true", help="only add the --add rows and rewrite the table")
    args = p.parse_args(argv)
    today = datetime.date.today().isoformat()
    rows = json.loads(STATE.read_text()) if STATE.exists() else {}
    for item in args.add:
        name, _, seconds = item.rpartition("=")
        if not name:
            p.error(f"--add takes NAME=SECONDS, got {item!r}")
        rows[name] = {"seconds": float(seconds), "date": today, "how": "by hand"}
    if not args.skip_run:
        with tempfile.TemporaryDirectory() as tmp:
            for i, (name, cmd) in enumerate(_commands(args.only).items()):
                print(f"== {name}", flush=True)
                seconds = _time(cmd, f"{tmp}/{i}")
                rows[name] = {"seconds": round(seconds, 1), "date": today, "how": "this script"}
                print(f"   {_minutes(seconds)}", flush=True)
    write_atomic(STATE, json.dumps(rows, indent=1, sort_keys=True) + "\n")
    table = [(name, _minutes(r["seconds"]), r["date"], r["how"]) for name, r in sorted(rows.items())]
    write_markdown(
        RESULTS / "doc_timings.md",
        [
            "# Durations quoted in the README and the docs",
            "",
            f"Measured on {machine()}, each command alone on an otherwise idle machine, from a clean checkout",
            "(`python benchmarks/doc_timings.py`; `make demo` and `make test` by hand from a fresh clone, set-up",
            "included).",
            "",
            *markdown_table(["command", "wall time", "measured", "how"], table),
        ],
    )


if __name__ == "__main__":
    main()
