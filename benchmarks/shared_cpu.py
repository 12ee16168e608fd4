"""A search on a shared CPU: step time alone, beside a busy process, and beside a second search, with torch's
default threads and with the threads hrnas chooses.

Every run is the CPU demo's search (``hrnas search`` with no options: the ``seg_tiny`` supernet with transformers on
Fashion-MNIST scenes at 64x64, batch 32, a fifth of the supernet's MACs) for a fixed number of steps, in a process of
its own. Modes: ``default`` fixes the threads at torch's default (one per usable CPU, what every torch process does
unless told otherwise, and what hrnas did before it chose); ``hrnas`` leaves the choice to the search
(:mod:`hrnas.threads`); ``one`` fixes one thread (alone only: the best a search can do with one core taken).
Scenarios, one at a time: ``alone`` (3 repeats per mode, interleaved), ``beside a busy process`` (a single-threaded
Python loop, started first), ``two searches`` (two copies of the same mode started together; both are timed).
Step time = the median of the steps after the first 10 (the first steps build caches).

    python benchmarks/shared_cpu.py            # ~20 minutes on 2 cores; nothing else may run meanwhile
    python benchmarks/shared_cpu.py --quick    # a smoke test

Writes ``benchmarks/results/shared_cpu.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, machine, markdown_table, write_csv

from hrnas.files import write_atomic

HERE = Path(__file__).resolve()
WARM_STEPS = 10


def worker(mode: str, steps: int, out: str) -> None:
    """One search of the demo for ``steps`` steps; writes every step's seconds and the threads it used."""
    import torch

    import hrnas
    from hrnas.searching.recipes import build_data, demo_settings
    from hrnas.threads import usable_cpus

    demo = demo_settings()
    net_spec, data_spec = demo["supernet"], demo["data"]
    torch.manual_seed(0)
    supernet = hrnas.create_supernet(net_spec.task, net_spec.num_classes, net_spec.space, net_spec.transformers)
    size = (data_spec.image_size, data_spec.image_size)
    train, _ = build_data(data_spec)
    settings = {k: v for k, v in demo["search"].items() if k != "output_dir"}
    times: list[float] = []
    threads: list[int] = []

    class Timed:  # records each step's duration and the threads it ran with
        def on_step_end(self, run, event):
            times.append(event.seconds)
            threads.append(event.threads)

    cfg = hrnas.SearchConfig(**settings).replace(
        steps=steps,
        budget=int(0.2 * hrnas.count_macs(supernet.arch, size)),
        input_size=size,
        eval_every=10**6,
        calib_batches=0,
        progress=False,
        threads={"default": usable_cpus(), "one": 1}.get(mode),
    )
    hrnas.search(supernet, train, None, cfg, callbacks=[Timed()])
    Path(out).write_text(json.dumps({"mode": mode, "times": times, "threads": threads}))


def _spawn(mode: str, steps: int, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE), "--worker", mode, "--steps", str(steps), "--out", str(out)])


def _step_time(path: Path) -> tuple[float, list[int]]:
    data = json.loads(path.read_text())
    times = data["times"][WARM_STEPS:] or data["times"]
    return statistics.median(times), sorted(set(data["threads"]))


def scenario(name: str, modes: list[str], steps: int, busy: bool, tmp: Path) -> list[dict]:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        if busy:
            time.sleep(2.0)  # the busy process is running before the search starts
        outs = [tmp / f"{name}-{i}-{m}.json" for i, m in enumerate(modes)]
        procs = [_spawn(m, steps, o) for m, o in zip(modes, outs)]
        for p in procs:
            if p.wait() != 0:
                raise RuntimeError(f"a {name} worker failed")
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    rows = []
    for i, (m, o) in enumerate(zip(modes, outs)):
        seconds, threads = _step_time(o)
        rows.append({"scenario": name, "mode": m, "copy": i, "step_s": round(seconds, 4), "threads": threads})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", choices=("default", "hrnas", "one"))
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--out")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.steps, args.out)
        return 0
    steps = 14 if args.quick else args.steps
    # two searches with torch's default threads on the same cores crawl (the issue measured ~40 s a step): fewer steps
    crawl_steps = WARM_STEPS + 2 if args.quick else WARM_STEPS + 6
    rows: list[dict] = []
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for repeat in range(1 if args.quick else 3):
            for mode in ("default", "hrnas", "one"):
                rows += scenario(f"alone-{repeat}", [mode], steps, False, tmp)
        for mode in ("default", "hrnas"):
            rows += scenario("beside a busy process", [mode], steps, True, tmp)
        rows += scenario("two searches", ["hrnas", "hrnas"], steps, False, tmp)
        rows += scenario("two searches", ["default", "default"], crawl_steps, False, tmp)
    for r in rows:
        print(r, flush=True)
    write(rows, time.time() - started, args.quick)
    return 0


def write(rows: list[dict], seconds: float, quick: bool) -> None:
    suffix = "_quick" if quick else ""
    write_csv(RESULTS / f"shared_cpu{suffix}.csv", rows, ["scenario", "mode", "copy", "step_s", "threads"])
    alone = {m: [r["step_s"] for r in rows if r["scenario"].startswith("alone") and r["mode"] == m]
             for m in ("default", "hrnas", "one")}  # fmt: skip
    base = {m: statistics.median(v) for m, v in alone.items()}
    table = []
    for r in rows:
        ratio = r["step_s"] / base[r["mode"]]
        table.append([r["scenario"], r["mode"], r["copy"], f"{r['step_s']:.3f}", ",".join(map(str, r["threads"])),
                      f"{ratio:.2f}x", f"{1 / ratio:.2f}x"])  # fmt: skip
    busy = {r["mode"]: r["step_s"] / base[r["mode"]] for r in rows if r["scenario"] == "beside a busy process"}
    pair = {m: [base[m] / r["step_s"] for r in rows if r["scenario"] == "two searches" and r["mode"] == m]
            for m in ("default", "hrnas")}  # fmt: skip
    spread = {m: (min(v), max(v)) for m, v in alone.items()}
    lines = [
        "# Search on a shared CPU: torch's default threads against hrnas's choice",
        "",
        f"Produced by `python benchmarks/shared_cpu.py{' --quick' if quick else ''}` ({machine()}) in "
        f"{seconds / 60:.1f} min, nothing else running. Step time: median over the steps after the first "
        f"{WARM_STEPS}; ratios against the same mode's median alone.",
        "",
        *markdown_table(["scenario", "mode", "copy", "step (s)", "threads", "time vs alone", "speed vs alone"], table),
        "",
        "## Against the targets",
        "",
        f"- Alone: hrnas {base['hrnas']:.3f} s a step [{spread['hrnas'][0]:.3f}, {spread['hrnas'][1]:.3f}], torch's "
        f"default {base['default']:.3f} s [{spread['default'][0]:.3f}, {spread['default'][1]:.3f}] (3 repeats each).",
        f"- Beside one busy process: hrnas {busy.get('hrnas', float('nan')):.2f}x its time alone (target at most "
        f"1.3x); torch's default {busy.get('default', float('nan')):.2f}x. With one core taken the search cannot beat "
        f"its speed alone on one thread: {base['one']:.3f} s a step, {base['one'] / base['hrnas']:.2f}x the time "
        "with both cores.",
        f"- Two searches side by side: each at {', '.join(f'{s:.2f}x' for s in pair['hrnas'])} of its speed alone "
        f"with hrnas's threads (target at least 0.4x); {', '.join(f'{s:.3f}x' for s in pair['default'])} with "
        "torch's default.",
        "",
    ]
    write_atomic(RESULTS / f"shared_cpu{suffix}.md", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
