"""Start-up time of ``import hrnas`` and of the light commands, now and at an earlier commit, with the top entries of
``python -X importtime -c "import hrnas"`` for both.

Each command runs in a fresh interpreter: one warm run, then the median of 5 wall times. The earlier commit is
checked out into a temporary git worktree and imported through ``PYTHONPATH`` (from a neutral directory, so that the
current checkout is not found first).

    python benchmarks/startup.py --before d4878b1     # about 2 minutes; nothing else may run meanwhile

Writes ``benchmarks/results/startup.md``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, machine, markdown_table

from hrnas.files import write_atomic

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "import hrnas": "import hrnas",
    "hrnas list": "from hrnas.cli import main; main(['list'])",
    "hrnas summary hrnas_seg_a": "from hrnas.cli import main; main(['summary', 'hrnas_seg_a'])",
    "hrnas spaces": "from hrnas.cli import main; main(['spaces'])",
    "hrnas --help": "from hrnas.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
}


def _run(code: str, source: Path, neutral: str) -> float:
    env = {"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, cwd=neutral, capture_output=True, check=True)
    return time.perf_counter() - start


def _timings(source: Path, neutral: str) -> dict[str, float]:
    out = {}
    for name, code in COMMANDS.items():
        _run(code, source, neutral)  # warm: files in the page cache, bytecode compiled
        out[name] = statistics.median(_run(code, source, neutral) for _ in range(5))
    return out


def _importtime(source: Path, neutral: str, top: int = 6) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import hrnas"],
        env={"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin"},
        cwd=neutral,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split("|") for line in proc.stderr.splitlines() if line.startswith("import time:") and "|" in line]
    rows = [(int(r[1]), r[2].rstrip()) for r in rows if r[1].strip().isdigit()]
    return [f"{cum / 1e6:.3f} s  {name}" for cum, name in sorted(rows, reverse=True)[:top]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", required=True, help="the earlier commit to compare with")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
                       check=True, capture_output=True)  # fmt: skip
        try:
            neutral = tmp
            then, now = _timings(before, neutral), _timings(ROOT, neutral)
            then_imports, now_imports = _importtime(before, neutral), _importtime(ROOT, neutral)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=True)
    rows = [[name, f"{then[name]:.2f}", f"{now[name]:.2f}", f"{then[name] / now[name]:.0f}x"] for name in COMMANDS]
    lines = [
        "# Start-up time",
        "",
        f"Produced by `python benchmarks/startup.py --before {args.before}` ({machine()}), nothing else running. "
        "Wall time of a fresh interpreter, median of 5 after one warm run.",
        "",
        *markdown_table(["command", f"at {args.before} (s)", "now (s)", "faster"], rows),
        "",
        f'`python -X importtime -c "import hrnas"`, the largest cumulative entries at {args.before}:',
        "",
        "```",
        *then_imports,
        "```",
        "",
        "and now (torch, timm and fvcore are imported when first used):",
        "",
        "```",
        *now_imports,
        "```",
        "",
    ]
    write_atomic(RESULTS / "startup.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
