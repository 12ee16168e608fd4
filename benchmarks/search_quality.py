"""Does the search find better networks than a user would by hand at the same cost? Measured on real data.

Tasks: Fashion-MNIST scenes segmentation (``seg_tiny`` space, 64x64, mIoU) and Fashion-MNIST classification
(``cls_tiny`` space, 32x32 -- the space's own resolution, close to the native 28x28 -- top-1). The budget is a
fraction (default 10 %) of the MACs of the space's supernet with transformers, at that resolution.

Methods, all trained with the same loop (``hrnas.search``: same steps, data order, augmentation, SGD with Nesterov
momentum, cosine schedule with warm-up, EMA weights evaluated after BatchNorm re-calibration, same seeds):

- ``search``: ``hrnas.search`` at the budget, cost-weighted penalty, transformer tokens searched; the weights it
  ends with (inherited from the supernet) are evaluated.
- ``search, retrained``: the same architecture, freshly initialised and trained for the same number of steps.
- ``search, equal penalty``: the search with every unit penalised equally (plain network slimming).
- ``search, no transformers``: the search in the supernet without transformers, at the same budget in MACs.
- ``uniform width``: the supernet with the same fraction of hidden channels kept in every kernel path of every block
  and the same fraction of tokens in every transformer (rounded to whole tokens; the channel fraction is then
  re-solved with the tokens fixed, so the MACs match).
- ``random #i``: random architectures of the space: an independent keep fraction drawn uniformly in [0, 1] for
  every kernel path of every block and for every transformer, all scaled by one factor (binary search) to the MACs.

Uniform and random networks are fitted to the mean MACs of the ``search`` runs of their task (within 3 %), so they
are compared at the cost the search actually reached. Fixed architectures are trained by ``hrnas.train``: the
search's own loop with nothing penalised or removed, every other part the same. Runs go to a pool of worker
processes, one per core with one thread each, so that runs do not compete for cores. Latency (batch 1, eval form
and ``hrnas.deploy`` form) is measured afterwards for every architecture side by side, in this process, with no
training running: rounds over every network of a task, one untimed and a few timed runs per visit
(``_common.time_side_by_side``), the median over the rounds.

    python benchmarks/search_quality.py              # prints its plan and estimate first
    python benchmarks/search_quality.py --plan       # measure step times, print the plan and its estimate, stop
    python benchmarks/search_quality.py --quick      # smoke test: tiny data, a few steps, 1 seed
    python benchmarks/search_quality.py --tasks seg  # one task

Writes benchmarks/results/search_quality.md, .csv (one row per run, with its architecture) and .png (metric against
MACs and against latency, one marker per method); ``--quick`` writes ``search_quality_quick.*``. The report and the
plot are ``benchmarks/_search_quality_report.py``; the tasks, training settings and data are shared with
``latency_model.py`` (``benchmarks/_common.py``). The time a full run took: see benchmarks/results/search_quality.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from _common import (
    CALIB_BATCHES,
    RESULTS,
    TASKS,
    TRAIN,
    random_arch_at_macs,
    search_data,
    time_side_by_side,
    uniform_arch,
)
from _search_quality_report import EQUAL, METHOD_ORDER, NO_TF, RANDOM, RETRAINED, SEARCH, UNIFORM, write_report

import hrnas

# the tasks (TASKS) and training settings (TRAIN): benchmarks/_common.py
QUICK = {
    "seg": dict(train=160, val=32, epochs=1.0),
    "cls": dict(train=16, val=4, epochs=1.0),
}
QUICK_TRAIN = dict(batch_size=16, lr=0.1)
RUN_OVERHEAD_S = 8.0  # per run: process start, imports, data, network builds, the final evaluation's set-up
TOLERANCE = 0.03  # baselines' MACs within this fraction of the target


def _macs(arch, size: int) -> int:
    return hrnas.count_macs(arch, (size, size))


# -- one training run (in a worker process) -----------------------------------------------------------------


def run_job(job: dict) -> dict:
    """Train one network (a search, or a fixed architecture) and evaluate it."""
    import torch

    import hrnas

    torch.set_num_threads(job["threads"])
    t = job["task_cfg"]
    size = t["size"]
    train, val = search_data(job["task"], t["train"], t["val"], size)
    torch.manual_seed(job["seed"])  # the initialisation
    common = dict(
        input_size=(size, size),
        epochs=t["epochs"],
        batch_size=job["train"]["batch_size"],
        lr=job["train"]["lr"],
        seed=job["seed"],  # data order and per-step randomness
        calib_batches=CALIB_BATCHES,
        eval_every=10**9,  # evaluate once, at the end
        progress=False,
        device="cpu",
    )
    start = time.perf_counter()
    if job["kind"] == "search":
        net = hrnas.create_supernet(job["task"], space=t["space"], transformers=job["transformers"])
        result = hrnas.search(net, train, val, budget=job["budget"], penalty=job["penalty"], **common)
        arch = result.arch
    else:
        arch = hrnas.Arch.from_dict(job["arch"])
        net = hrnas.HRNASNet(arch)
        result = hrnas.train(net, train, val, **common)
        # the search names what it returns; the network is the one given, under its own name
        if result.arch.replace(name=arch.name) != arch:
            raise RuntimeError("the fixed-architecture run changed the architecture")
    seconds = time.perf_counter() - start
    return dict(
        task=job["task"],
        method=job["method"],
        arch_id=job["arch_id"],
        seed=job["seed"],
        metric=result.metric,
        macs=result.macs,
        params=result.params,
        hidden=sum(b.hidden for b in arch.blocks()),
        tokens=sum(b.tokens for b in arch.blocks()),
        steps=result.history[-1]["step"],
        train_s=round(seconds, 1),
        arch=arch.to_dict(),
    )


# -- planning -----------------------------------------------------------------------------------------------


def settings(args) -> dict:
    tasks = {}
    for name in args.tasks:
        t = {**TASKS[name], **(QUICK[name] if args.quick else {})}
        for key in ("train", "val", "epochs"):
            value = getattr(args, f"{key}_{name}", None)
            if value is not None:
                t[key] = value
        tasks[name] = t
    train = dict(QUICK_TRAIN if args.quick else TRAIN)
    return dict(tasks=tasks, train=train)


def steps_of(task_cfg: dict, train: dict) -> int:
    n = task_cfg["train"] * (10 if task_cfg["space"].startswith("cls") else 1)
    return max(1, int(round(task_cfg["epochs"] * (n // train["batch_size"]))))


def measure_steps(task: str, task_cfg: dict, train: dict, budget: float, threads: int, randoms: int) -> dict:
    """Seconds per training step of the supernets and of networks at the budget (median of 3 after a warm-up).

    Returns ``{'wall': {...}, 'cpu': {...}}``: elapsed time (what the run will take at the machine's current load)
    and this process's CPU time (what it would take on otherwise idle cores).
    """
    import torch

    import hrnas
    from hrnas.searching.tasks import get_task

    torch.set_num_threads(threads)
    size, bs = task_cfg["size"], train["batch_size"]
    space = hrnas.get_space(task_cfg["space"])
    loss = get_task(task, num_classes=space.num_classes).loss
    x = torch.randn(bs, 3, size, size).contiguous(memory_format=torch.channels_last)
    shape = (bs, size, size) if task == "seg" else (bs,)
    y = torch.randint(0, space.num_classes, shape)
    ratios = {
        "ratio": budget / _macs(space.supernet(), size),
        "ratio_no_tf": budget / _macs(space.supernet(transformers=False), size),
    }
    # fixed networks at the budget: uniform and random ones differ in speed at equal MACs (transformers with few
    # tokens cost little in MACs but many small operations), so their mean stands for them
    fixed = [uniform_arch(space.supernet(), budget, size)[0]]
    fixed += [random_arch_at_macs(space.supernet(), budget, size, seed=1000 + i)[0] for i in range(randoms)]
    nets = [("super", space.supernet()), ("super_no_tf", space.supernet(transformers=False))]
    nets += [(f"fixed{i}", arch) for i, arch in enumerate(fixed)]
    out = {"wall": dict(ratios), "cpu": dict(ratios)}
    for name, arch in nets:
        model = hrnas.HRNASNet(arch).train().to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        times = []
        for _ in range(4):
            t0, c0 = time.perf_counter(), time.process_time()
            value = loss(model(x), y)
            opt.zero_grad()
            value.backward()
            opt.step()
            times.append((time.perf_counter() - t0, time.process_time() - c0))
        out["wall"][name] = statistics.median(t[0] for t in times[1:])
        out["cpu"][name] = statistics.median(t[1] for t in times[1:])
    for clock in out.values():
        clock["budget"] = statistics.fmean(clock.pop(f"fixed{i}") for i in range(len(fixed)))
    return out


def estimate(task_cfg: dict, train: dict, steps_s: dict, seeds: int, randoms: int, reach: float = 0.6) -> dict:
    """Seconds of each kind of run, from measured step times (step time taken as linear in MACs)."""
    n = steps_of(task_cfg, train)

    def search_step(full: float, small: float, cost_ratio: float) -> float:
        # the cost falls geometrically to the budget over the first `reach` of the run, then stays
        pts = [min(1.0, (i + 0.5) / 100 / reach) for i in range(100)]
        return statistics.fmean(small + (full - small) * (cost_ratio**p - cost_ratio) / (1 - cost_ratio) for p in pts)

    small = steps_s["budget"]
    shrink_checks = 40 * 0.25  # about 40 shrink checks of ~0.25 s (re-counting the arch, rebuilding the network)
    val_batches = task_cfg["val"] * (10 if task_cfg["space"].startswith("cls") else 1) / train["batch_size"]
    evaluation = (val_batches + CALIB_BATCHES) * small / 3  # forward passes: about a third of a step
    overhead = shrink_checks + evaluation + RUN_OVERHEAD_S
    search = n * search_step(steps_s["super"], small, steps_s["ratio"]) + overhead
    search_no_tf = n * search_step(steps_s["super_no_tf"], small, steps_s["ratio_no_tf"]) + overhead
    fixed = n * small + evaluation + RUN_OVERHEAD_S
    per_seed = 2 * search + search_no_tf + (2 + randoms) * fixed
    return dict(steps=n, search=search, search_no_tf=search_no_tf, fixed=fixed, total=seeds * per_seed)


def probe(conf: dict, budgets: dict, threads: int, randoms: int) -> dict:
    """Step times of every task (run in a worker, while the other workers run the same: as the benchmark will)."""
    return {
        task: measure_steps(task, t, conf["train"], budgets[task][1], threads, randoms)
        for task, t in conf["tasks"].items()
    }


def print_plan(pool, args, conf: dict, seeds: list[int], budgets: dict) -> None:
    """The runs, their steps and (unless --quick) an estimate of the time from step times measured now."""
    n_runs = len(conf["tasks"]) * len(seeds) * (5 + args.randoms)
    print(f"plan: {n_runs} training runs on {args.workers} workers x {args.threads} threads", flush=True)
    measured = {}
    if not args.quick:
        futures = [pool.submit(probe, conf, budgets, args.threads, args.randoms) for _ in range(args.workers)]
        results = [f.result() for f in futures]
        # the slowest worker's times: the workers share the cores' caches and memory bandwidth
        measured = {
            task: {
                clock: {k: max(r[task][clock][k] for r in results) for k in results[0][task][clock]}
                for clock in ("wall", "cpu")
            }
            for task in conf["tasks"]
        }
    totals = {"wall": 0.0, "cpu": 0.0}
    for task, t in conf["tasks"].items():
        full, budget = budgets[task]
        line = (
            f"  {task}: {t['space']} at {t['size']}x{t['size']}, supernet {full / 1e6:.2f} MMACs, budget "
            f"{budget / 1e6:.2f} MMACs; train {t['train']}, val {t['val']}, {t['epochs']} epochs = "
            f"{steps_of(t, conf['train'])} steps of batch {conf['train']['batch_size']}"
        )
        for clock, what in (("wall", "at the current load"), ("cpu", "on idle cores")):
            if not measured:
                break
            m = measured[task][clock]
            est = estimate(t, conf["train"], m, len(seeds), args.randoms)
            totals[clock] += est["total"]
            line += (
                f"\n    {what}: step (s) supernet {m['super']:.3f}, without transformers {m['super_no_tf']:.3f}, "
                f"at the budget {m['budget']:.3f} (uniform and random, mean); per run: search "
                f"{est['search'] / 60:.1f} min, no-transformer search {est['search_no_tf'] / 60:.1f} min, fixed "
                f"{est['fixed'] / 60:.1f} min"
            )
        print(line, flush=True)
    if measured:
        print(
            f"  estimated total: {totals['wall'] / args.workers / 60:.0f} min at the current load, "
            f"{totals['cpu'] / args.workers / 60:.0f} min on idle cores (CPU time); "
            "plus 2-5 min of latency measurement (deploy tuning included)",
            flush=True,
        )


# -- latency ------------------------------------------------------------------------------------------------


def measure_latency(archs: dict, size: int, threads: int, rounds: int, reps: int) -> dict:
    """Median batch-1 latency (ms) of every arch, eval form and deploy form, all timed side by side in ``rounds``
    rounds (``_common.time_side_by_side``: one untimed forward per visit, which brings the network back into the
    caches after the others evicted it, then ``reps`` timed ones)."""
    import torch

    torch.set_num_threads(threads)
    x = torch.randn(1, 3, size, size)
    calls = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, arch in archs.items():
            torch.manual_seed(0)
            model = hrnas.HRNASNet(hrnas.Arch.from_dict(arch)).eval()
            deployed = hrnas.deploy(model, (size, size), batch_size=1, cache_path=os.path.join(tmp, "tune.json"))
            xd = x.contiguous(memory_format=deployed.memory_format)
            calls[key, "eval"] = lambda m=model: m(x)
            calls[key, "deploy"] = lambda m=deployed, xd=xd: m(xd)
    with torch.inference_mode():
        times = time_side_by_side(calls, rounds, reps)
    return {key: (1e3 * times[key, "eval"], 1e3 * times[key, "deploy"]) for key in archs}


# -- the run ------------------------------------------------------------------------------------------------


def plan_jobs(task: str, task_cfg: dict, train: dict, seeds: list[int], budget: int, threads: int) -> list[dict]:
    base = dict(task=task, task_cfg=task_cfg, train=train, threads=threads, budget=budget, arch=None)
    jobs = []
    for seed in seeds:
        for method, penalty, tf in [(SEARCH, "cost", True), (EQUAL, "equal", True), (NO_TF, "cost", False)]:
            arch_id = f"{method} s{seed}"
            jobs.append(
                dict(base, kind="search", method=method, seed=seed, penalty=penalty, transformers=tf, arch_id=arch_id)
            )
    return jobs


def baseline_jobs(task, task_cfg, train, seeds, threads, target, randoms) -> tuple[list[dict], dict]:
    import hrnas

    supernet = hrnas.get_space(task_cfg["space"]).supernet()
    size = task_cfg["size"]
    archs = {UNIFORM: uniform_arch(supernet, target, size)}
    for i in range(randoms):
        archs[f"{RANDOM} #{i + 1}"] = random_arch_at_macs(supernet, target, size, seed=1000 + i)
    info = {}
    jobs = []
    for arch_id, (arch, s) in archs.items():
        macs = _macs(arch, size)
        if abs(macs / target - 1) > TOLERANCE:
            raise RuntimeError(f"{task} {arch_id}: {macs:,} MACs is not within {TOLERANCE:.0%} of {target:,.0f}")
        info[arch_id] = dict(scale=s, macs=macs)
        method = RANDOM if arch_id.startswith(RANDOM) else UNIFORM
        for seed in seeds:
            jobs.append(
                dict(
                    task=task,
                    task_cfg=task_cfg,
                    train=train,
                    threads=threads,
                    kind="fixed",
                    method=method,
                    arch_id=arch_id,
                    seed=seed,
                    arch=arch.to_dict(),
                )
            )
    return jobs, info


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: tiny data, a few steps, 1 seed")
    p.add_argument("--plan", action="store_true", help="measure step times, print the plan, stop")
    p.add_argument("--tasks", default="seg,cls", help="comma-separated: seg, cls")
    p.add_argument("--seeds", type=int, default=None, help="training seeds (default 2; --quick 1)")
    p.add_argument("--randoms", type=int, default=3, help="random architectures per task")
    p.add_argument("--budget-fraction", type=float, default=0.1, help="budget as a fraction of the supernet's MACs")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel training processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    p.add_argument("--latency-threads", type=int, default=1, help="torch threads for the latency measurement")
    for name in TASKS:
        unit = "scenes" if name == "seg" else "images per class"
        p.add_argument(f"--train-{name}", type=int, help=f"{name} training {unit} (default {TASKS[name]['train']})")
        p.add_argument(f"--val-{name}", type=int, help=f"{name} validation {unit} (default {TASKS[name]['val']})")
        p.add_argument(f"--epochs-{name}", type=float, help=f"{name} epochs (default {TASKS[name]['epochs']})")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in args.tasks if t not in TASKS]
    if unknown or not args.tasks:
        p.error(f"--tasks takes a comma-separated list of {list(TASKS)}, got {unknown or args.tasks}")
    seeds = list(range(args.seeds if args.seeds is not None else (1 if args.quick else 2)))
    conf = settings(args)
    import hrnas

    budgets = {}
    for task, t in conf["tasks"].items():
        full = _macs(hrnas.get_space(t["space"]).supernet(), t["size"])
        budgets[task] = (full, int(args.budget_fraction * full))

    started = time.perf_counter()
    load = [os.getloadavg()[0]]  # other work on the machine slows the runs and disturbs the latencies
    rows: list[dict] = []
    fitted: dict = {}
    pending: dict = {}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
        print_plan(pool, args, conf, seeds, budgets)
        if args.plan:
            return

        def submit(job):
            pending[pool.submit(run_job, job)] = job

        jobs = [j for task, t in conf["tasks"].items() for j in plan_jobs(task, t, conf["train"], seeds,
                                                                        budgets[task][1], args.threads)]  # fmt: skip
        # the budget searches first: the retrained and the baseline runs wait for them
        for job in sorted(jobs, key=lambda j: METHOD_ORDER.index(j["method"])):
            submit(job)
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                job = pending.pop(fut)
                row = fut.result()
                rows.append(row)
                print(
                    f"[{(time.perf_counter() - started) / 60:5.1f} min] {row['task']} {row['arch_id']} seed "
                    f"{row['seed']}: {row['metric']:.4f}, {row['macs'] / 1e6:.2f} MMACs, {row['train_s']:.0f} s",
                    flush=True,
                )
                task, t = job["task"], job["task_cfg"]
                if job["method"] == SEARCH:
                    submit(
                        dict(job, kind="fixed", method=RETRAINED, arch_id=f"{RETRAINED} s{job['seed']}",
                             arch=row["arch"])
                    )  # fmt: skip
                    done_searches = [r for r in rows if r["task"] == task and r["method"] == SEARCH]
                    if len(done_searches) == len(seeds):
                        target = statistics.fmean(r["macs"] for r in done_searches)
                        jobs, info = baseline_jobs(task, t, conf["train"], seeds, args.threads, target, args.randoms)
                        fitted[task] = dict(target=target, archs=info)
                        for j in jobs:
                            submit(j)
    train_min = (time.perf_counter() - started) / 60

    # latency of every distinct architecture, side by side, nothing else running
    lat_start = time.perf_counter()
    # many short visits, round-robin: load that comes and goes hits every network alike
    rounds, reps = (3, 2) if args.quick else (15, 3)
    for task, t in conf["tasks"].items():
        archs = {}
        for r in rows:
            if r["task"] == task:
                archs.setdefault(json.dumps(r["arch"], sort_keys=True), r["arch"])
        lat = measure_latency(archs, t["size"], args.latency_threads, rounds, reps)
        for r in rows:
            if r["task"] == task:
                r["latency_ms"], r["latency_deploy_ms"] = lat[json.dumps(r["arch"], sort_keys=True)]
    lat_min = (time.perf_counter() - lat_start) / 60
    load.append(os.getloadavg()[0])
    meta = dict(
        command=" ".join(["python benchmarks/search_quality.py", *(sys.argv[1:] if argv is None else argv)]),
        seeds=seeds,
        budgets=budgets,
        fitted=fitted,
        conf=conf,
        args=vars(args),
        train_min=train_min,
        lat_min=lat_min,
        load=load,
        rounds=rounds,
        reps=reps,
        steps={task: steps_of(t, conf["train"]) for task, t in conf["tasks"].items()},
        tolerance=TOLERANCE,
    )
    write_report(rows, meta, Path(args.out), "_quick" if args.quick else "")
    print(f"done: training {train_min:.1f} min, latency {lat_min:.1f} min", flush=True)


if __name__ == "__main__":
    main()
