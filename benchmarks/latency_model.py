"""The latency model and latency-aware search, measured on this machine.

Four parts, in one run:

1. Predictor accuracy: a latency table (``hrnas.latency``) of the paper's ``seg`` space at two input sizes, then
   20 random architectures of the space at each size, predicted against measured median latency (batch 1, eval
   mode, channels_last, the thread count of this process), measured round-robin so that passing load hits every
   network alike.
2. A latency-budgeted search on the CPU preset (``seg_tiny``, Fashion-MNIST scenes at 64x64, the settings of
   ``benchmarks/search_quality.py``): its measured latency against the target X, with the search's measured
   feedback (``latency_feedback=True``) and, once, with the table's prediction alone. These run one at a time in
   the main process, on the thread count the table was measured with; the other searches run in parallel worker
   processes first.
3. At equal latency: X is the measured latency of the MACs-budgeted search at 10 % of the supernet's MACs (the
   search of ``search_quality.py``); the latency-budgeted search at X is compared with it, 2 seeds each.
4. A family: one run with three MACs budgets (40 %, 20 %, 10 %) against three separate single-budget searches
   with the same total number of training steps (a third each).

    python benchmarks/latency_model.py            # everything (the time it took: benchmarks/results/latency_model.md)
    python benchmarks/latency_model.py --quick    # smoke test: tiny sizes, few steps, 1 seed
    python benchmarks/latency_model.py --predictor-only   # part 1 alone (latency_model_predictor.md)

Writes benchmarks/results/latency_model.md, .csv and .json (``--quick``: ``latency_model_quick.*``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# the settings and data of search_quality.py
from _common import CALIB_BATCHES, RESULTS, TASKS, TRAIN, markdown_table, search_data, write_csv, write_markdown

from hrnas.files import write_atomic

SEG = TASKS["seg"]


def measure(archs: dict, rounds: int, table, reps: int = 3) -> tuple[dict, dict, float]:
    """Latency (ms) of each architecture measured side by side with the table's reference network
    (``LatencyTable.measure_anchored``): in the table's time, and raw; and the machine's drift since the table."""
    import torch

    import hrnas

    models = []
    for arch in archs.values():
        torch.manual_seed(0)
        models.append(hrnas.HRNASNet(arch))
    anchored, drift = table.measure_anchored(models, rounds=rounds, reps=reps)
    return dict(zip(archs, anchored)), {k: t * drift for k, t in zip(archs, anchored)}, drift


def predictor_accuracy(space: str, sizes: list[int], n_archs: int, rounds: int, repeats: int) -> list[dict]:
    import hrnas
    from hrnas.latency import LatencyTable, random_arch

    supernet = hrnas.create_supernet("seg", space=space).arch
    rows = []
    for size in sizes:
        t0 = time.perf_counter()
        table = LatencyTable.build(supernet, (size, size), space, repeats=repeats, rounds=min(rounds, 5))
        build_s = time.perf_counter() - t0
        rng = random.Random(1000 + size)  # not the table's calibration draws
        archs = {i: random_arch(supernet, rng.uniform(0.05, 0.9), rng) for i in range(n_archs)}
        measured, raw, drift = measure(archs, rounds, table)
        for i, arch in archs.items():
            rows.append(
                dict(
                    part="predictor", space=space, size=size, arch=i, build_s=round(build_s, 1),
                    macs=hrnas.count_macs(arch, size), predicted_ms=round(table.predict(arch), 3),
                    measured_ms=round(measured[i], 3), raw_ms=round(raw[i], 3), drift=round(drift, 4),
                )
            )  # fmt: skip
        print(f"  {space} at {size}x{size}: table in {build_s:.0f} s, {n_archs} networks measured", flush=True)
    return rows


def run_search(job: dict) -> dict:
    """One search; returns its architectures and metrics. In a worker process it runs on 1 thread; latency-budgeted
    searches run in the main process, alone, on the thread count their latency table was measured with (they time
    their own network near the budget)."""
    import torch

    import hrnas

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    t = job["task_cfg"]
    size = t["size"]
    train, val = search_data("seg", t["train"], t["val"], size)
    torch.manual_seed(job["seed"])
    net = hrnas.create_supernet("seg", space=t["space"], transformers=True)
    settings = dict(
        input_size=(size, size), steps=job["steps"], batch_size=TRAIN["batch_size"], lr=TRAIN["lr"], seed=job["seed"],
        calib_batches=CALIB_BATCHES, eval_every=10**9, progress=False, device="cpu", threads=job.get("threads"),
    )  # fmt: skip
    settings.update(job["budget"])
    start = time.perf_counter()
    result = hrnas.search(net, train, val, **settings)
    members = result.family or [result]
    return dict(
        job=job["name"],
        seed=job["seed"],
        train_s=round(time.perf_counter() - start, 1),
        members=[
            dict(arch=m.arch.to_dict(), metric=m.metric, macs=m.macs, budget=m.budget, in_search=m.measured_latency_ms)
            for m in members
        ],
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: tiny sizes, few steps, 1 seed")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--predictor-only", action="store_true", help="part 1 only (writes latency_model_predictor.*)")
    args = p.parse_args(argv)

    import torch

    import hrnas
    from hrnas.latency import LatencyTable

    quick = args.quick
    seeds = list(range(1 if quick else args.seeds))
    task_cfg = dict(SEG, train=160, val=32) if quick else dict(SEG)
    size = task_cfg["size"]
    steps = 24 if quick else int(round(task_cfg["epochs"] * (task_cfg["train"] // TRAIN["batch_size"])))
    rounds = 3 if quick else 10
    meta = dict(threads=torch.get_num_threads(), torch=torch.__version__, steps=steps, seeds=seeds)
    rows: list[dict] = []
    began = time.perf_counter()

    print("1. predictor accuracy", flush=True)
    if quick:
        rows += predictor_accuracy("seg_tiny", [32, 64], n_archs=4, rounds=3, repeats=2)
    else:
        rows += predictor_accuracy("seg", [128, 256], n_archs=20, rounds=rounds, repeats=10)
    if args.predictor_only:
        meta.update(minutes=round((time.perf_counter() - began) / 60, 1))
        write(rows, meta, args.out, ("_quick" if quick else "") + "_predictor")
        return

    supernet = hrnas.create_supernet("seg", space=task_cfg["space"], transformers=True).arch
    full_macs = hrnas.count_macs(supernet, size)
    # spawned, not forked: a child forked after this process's own multi-threaded kernels may hang in its first
    # parallel region
    pool = ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn"))
    with tempfile.TemporaryDirectory() as tmp:
        table = LatencyTable.build(
            supernet, (size, size), task_cfg["space"], repeats=2 if quick else 15, rounds=2 if quick else 5
        )
        table_path = os.path.join(tmp, "table.json")
        table.save(table_path)

        def job(name, seed, budget, n_steps=steps, threads=1):
            return dict(name=name, seed=seed, budget=budget, steps=n_steps, task_cfg=task_cfg, threads=threads)

        print("2-3. MACs-budgeted searches at 10 % (the reference for equal latency)", flush=True)
        macs_runs = list(pool.map(run_search, [job("macs", s, dict(budget=int(0.1 * full_macs))) for s in seeds]))
        ref = {f"macs s{r['seed']}": hrnas.Arch.from_dict(r["members"][0]["arch"]) for r in macs_runs}
        anchored, _, drift = measure(ref, rounds, table, reps=5)
        # each seed's latency search targets its own MACs network's latency: the pair is compared at equal latency
        targets = {s: anchored[f"macs s{s}"] for s in seeds}
        meta["drift_at_x"] = round(drift, 4)
        empty = supernet.with_blocks([b.replace(channels=(0,) * len(b.kernels), tokens=0) for b in supernet.blocks()])
        fixed, full = table.predict(empty), table.predict(supernet)
        for s, target in targets.items():
            print(f"   seed {s}: X = measured latency of the MACs search = {target:.2f} ms (drift {drift:.3f})")
            if not fixed < target < full:
                # only on a machine too loaded to measure (the quick mode's smoke runs): keep the plumbing going
                print(f"   X is outside the table's range ({fixed:.2f}, {full:.2f}) ms; using its middle", flush=True)
                targets[s] = (fixed + full) / 2
                meta["target_note"] = "X was outside the latency table's range and was replaced by its middle"

        print("4. a family of three budgets; three separate searches", flush=True)
        fractions = [0.4, 0.2, 0.1]
        jobs = [job("family", 0, dict(budget=[int(f * full_macs) for f in fractions]))]
        jobs += [job(f"single {f:.0%}", 0, dict(budget=int(f * full_macs)), steps // 3) for f in fractions]
        runs = macs_runs + list(pool.map(run_search, jobs))
        pool.shutdown()
        print("2-3. latency-budgeted searches at X, one at a time (with and without measured feedback)", flush=True)
        threads = torch.get_num_threads()
        lat = {s: dict(latency_ms=targets[s], latency_table=table_path) for s in seeds}
        jobs = [job("latency", s, dict(lat[s], latency_feedback=True), threads=threads) for s in seeds]
        jobs.append(job("latency, table only", 0, dict(lat[0], latency_feedback=False), threads=threads))
        runs += [run_search(j) for j in jobs]

    archs = {}
    for r in runs:
        for i, m in enumerate(r["members"]):
            archs[(r["job"], r["seed"], i)] = hrnas.Arch.from_dict(m["arch"])
    latency, raw, drift = measure(archs, rounds, table, reps=5)
    meta["drift_at_end"] = round(drift, 4)
    for r in runs:
        for i, m in enumerate(r["members"]):
            arch = archs[(r["job"], r["seed"], i)]
            rows.append(
                dict(
                    part="search", job=r["job"], seed=r["seed"], member=i, metric=round(m["metric"], 4),
                    macs=m["macs"], budget=m["budget"], predicted_ms=round(table.predict(arch), 3),
                    measured_ms=round(latency[(r["job"], r["seed"], i)], 3),
                    raw_ms=round(raw[(r["job"], r["seed"], i)], 3), train_s=r["train_s"],
                    measured_in_search_ms=m["in_search"], target_ms=round(targets[r["seed"]], 3),
                )
            )  # fmt: skip
    meta.update(
        targets_ms={s: round(t, 3) for s, t in targets.items()},
        full_macs=full_macs,
        minutes=round((time.perf_counter() - began) / 60, 1),
    )
    write(rows, meta, args.out, "_quick" if quick else "")


def _flags(suffix: str) -> str:
    flags = (("quick", "_quick" in suffix), ("predictor-only", "_predictor" in suffix))
    return "".join(f" --{name}" for name, on in flags if on)


def _mare(rows, measured: str = "measured_ms"):
    from hrnas.latency import mean_abs_relative_error

    return mean_abs_relative_error((r["predicted_ms"], r[measured]) for r in rows)


def write(rows: list[dict], meta: dict, out: Path, suffix: str) -> None:
    write_csv(out / f"latency_model{suffix}.csv", rows)
    pred = [r for r in rows if r["part"] == "predictor"]
    search = [r for r in rows if r["part"] == "search"]
    lines = [
        "# Latency model and latency-aware search",
        "",
        f"Produced by `python benchmarks/latency_model.py{_flags(suffix)}` in {meta['minutes']} min "
        f"({meta['threads']} threads, torch {meta['torch']}). Latency: batch 1, eval mode, channels_last, median "
        "of round-robin runs.",
        "",
        "## 1. Predictor accuracy",
        "",
        "Measured side by side with the table's reference network (one of its calibration networks) and given in the",
        "table's time: `measured = raw * reference latency at build / reference latency now`. The raw error compares",
        "with the unscaled timings; drift = reference now / at build (the machine's change in speed since the table).",
        "",
    ]
    table = []
    for (space, size) in sorted({(r["space"], r["size"]) for r in pred}, key=lambda t: t[1]):  # fmt: skip
        rs = [r for r in pred if r["size"] == size]
        worst = max(abs(r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] for r in rs)
        table.append(
            [space, f"{size}x{size}", len(rs), rs[0]["build_s"], f"{100 * _mare(rs):.1f} %", f"{100 * worst:.1f} %",
             f"{100 * _mare(rs, 'raw_ms'):.1f} %", rs[0]["drift"]]
        )  # fmt: skip
    header = ["space", "input", "networks", "table built in (s)", "mean abs. relative error", "largest error",
              "raw error", "drift"]  # fmt: skip
    lines += markdown_table(header, table)
    if search:
        lines += _search_lines(search, meta)
    write_markdown(out / f"latency_model{suffix}.md", lines)
    print("\n".join(lines))
    if search:
        write_atomic(out / f"latency_model{suffix}.json", json.dumps(meta, indent=1) + "\n")


def _search_lines(search: list[dict], meta: dict) -> list[str]:
    """Parts 2-4 of the report: every search's network, and latency-aware against MACs-aware per seed."""
    x_text = ", ".join(f"{t} ms (seed {s})" for s, t in meta["targets_ms"].items())
    lines = ["", f"## 2-4. Searches (seg_tiny, Fashion-MNIST scenes 64x64, {meta['steps']} steps; X = {x_text}: "
             "the measured latency of the MACs search of the same seed)", "",
             "Predicted: the latency table alone. Measured: side by side after all runs, in the table's time (as in "
             f"part 1; drift when X was taken {meta.get('drift_at_x')}, at the end {meta.get('drift_at_end')}); raw: "
             "unscaled. In search: the search's own measurement of its final network (latency budgets with "
             "latency_feedback=True).", ""]  # fmt: skip
    table = []
    for r in search:
        budget = f"{r['budget'] / 1e3:.2f} ms" if r["job"].startswith("latency") else f"{r['budget'] / 1e6:.2f} M"
        table.append(
            [r["job"], r["seed"], r["member"], budget, f"{r['macs'] / 1e6:.2f}", r["predicted_ms"], r["measured_ms"],
             r["raw_ms"], r.get("measured_in_search_ms") or "", f"{r['measured_ms'] / r['target_ms']:.3f}",
             r["metric"]]
        )  # fmt: skip
    header = ["run", "seed", "member", "budget", "MMACs", "predicted ms", "measured ms", "raw ms", "in search ms",
              "measured / X", "mIoU"]  # fmt: skip
    lines += markdown_table(header, table)
    lat = {r["seed"]: r for r in search if r["job"] == "latency"}
    macs = {r["seed"]: r for r in search if r["job"] == "macs"}
    if not (lat and macs):
        return lines
    inside = sum(0.9 <= r["measured_ms"] / r["target_ms"] <= 1.05 for r in lat.values())
    beside = sum(0.9 <= lat[s]["measured_ms"] / macs[s]["measured_ms"] <= 1.05 for s in lat.keys() & macs.keys())
    lines += ["", f"Latency-budgeted searches with feedback inside [0.9, 1.05] x X: {inside} of {len(lat)} against "
              f"the number X (taken before the searches), {beside} of {len(lat)} against the MACs network whose "
              "latency X is, measured side by side with it at the end.", "",
              "Latency-aware against MACs-aware, per seed (X = the MACs network's latency):", ""]  # fmt: skip
    table = []
    for seed in sorted(lat.keys() & macs.keys()):
        a, b = macs[seed], lat[seed]
        table.append(
            [seed, a["metric"], a["measured_ms"], b["metric"], b["measured_ms"],
             f"{b['measured_ms'] / a['measured_ms']:.3f}", f"{b['metric'] - a['metric']:+.4f}"]
        )  # fmt: skip
    header = ["seed", "MACs-aware mIoU", "ms", "latency-aware mIoU", "ms", "latency-aware / MACs-aware latency",
              "mIoU difference"]  # fmt: skip
    lines += markdown_table(header, table)
    d = statistics.fmean(r["metric"] for r in lat.values()) - statistics.fmean(r["metric"] for r in macs.values())
    return lines + ["", f"Latency-aware minus MACs-aware mIoU: {d:+.4f} (mean over seeds)."]


if __name__ == "__main__":
    main()
