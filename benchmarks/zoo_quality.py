"""Are the zoo's searched networks better than simple choices at equal cost? On the proxy and on a real held-out task.

For every zoo model with a search recipe (``hrnas_seg_a``, ``hrnas_seg_b``, ``hrnas_pose_a``, ``hrnas_pose_b``,
``hrnas_cls_b``) and 2 seeds:

- proxy (the recipe's own data, loss, metric, steps and augmentation, ``hrnas.release.recipes.run_recipe``):
  (a) ``search``: the recipe's search, its inherited weights evaluated; (b) ``retrained``: that architecture from
  scratch; (c) ``uniform``: one keep fraction for every kernel path, fitted to the search's MACs at the named
  configuration within 1 %; (d) ``v1``: the first zoo's architecture of the name (``arch_version=1``), retrained.
- nuclei (seg models; ``hrnas.data.NucleiSegmentation``, a real mask, validated on a held-out region): the
  architectures of (a), (c), (d) and timm's ``hrnet_w18_small`` and ``mobilenetv4_conv_small``, each trained from
  scratch as a timm ``features_only`` backbone (strides 4-32) under one shared light head, same steps and data.

Every run writes its row (``benchmarks/results/zoo_quality/rows/*.json``) when it finishes; a rerun skips finished
rows and continues an interrupted proxy run from its last checkpoint (``runs/zoo_quality/MODEL-METHOD-sSEED``, when
its ``job.json`` matches: same recipe, seed and architecture), so the benchmark can span several sittings. Every
run takes the threads hrnas chooses for the free cores and keeps that choice up to date, so two invocations with
different ``--models`` / ``--seeds`` / ``--methods`` can run side by side on a 2-core machine, one thread each (never
more invocations than cores; a row's ``threads`` says how many it ended with).

    python benchmarks/zoo_quality.py                       # everything not yet done, then the report
    python benchmarks/zoo_quality.py --models hrnas_pose_a --seeds 0
    python benchmarks/zoo_quality.py --models hrnas_pose_a --seeds 0 --methods search,uniform
    python benchmarks/zoo_quality.py --models hrnas_seg_a --seeds 0 --tasks nuclei
    python benchmarks/zoo_quality.py --report              # the report from the rows there are
    python benchmarks/zoo_quality.py --quick               # smoke test (a few steps; rows under zoo_quality_quick/)

The search row of the recipe's seed (0) is the zoo build itself when ``hrnas zoo-build NAME --output-dir runs/zoo``
has finished (``--zoo-build-dir``): the same run, not repeated.

Writes ``benchmarks/results/zoo_quality.md``, ``.csv`` and ``.png`` (metric curves of the search runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

from _common import RESULTS, machine, markdown_table, uniform_arch, write_csv

import hrnas
from hrnas.arch import branch_hidden_channels
from hrnas.archs import ZOO_DIR, zoo_arch
from hrnas.files import write_atomic
from hrnas.release.recipes import ZOO_RECIPES, run_recipe
from hrnas.searching.checkpoint import CHECKPOINT_NAME

MODELS = [n for n, r in ZOO_RECIPES.items() if r.budget and r.space]
SEEDS = (0, 1)
PROXY_METHODS = ("search", "retrained", "uniform", "v1")
NUCLEI_BACKBONES = ("search", "uniform", "v1", "hrnet_w18_small", "mobilenetv4_conv_small")
NUCLEI = dict(steps=400, batch_size=8, lr=0.05, size=128, classes=3, train_items=3200, head_width=64)
QUICK_NUCLEI = dict(NUCLEI, steps=4, train_items=16)
FIT_TOLERANCE = 0.01


def _rows_dir(quick: bool) -> Path:
    return RESULTS / ("zoo_quality_quick" if quick else "zoo_quality") / "rows"


def _row_path(quick: bool, model: str, task: str, method: str, seed: int) -> Path:
    return _rows_dir(quick) / f"{model}__{task}__{method}__s{seed}.json"


def _load_row(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _load_rows(quick: bool) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(_rows_dir(quick).glob("*.json"))]


def _named_macs(arch, recipe) -> int:
    return hrnas.count_macs(arch.with_num_classes(recipe.num_classes), recipe.input_size)


def _arch_record(arch, recipe) -> dict:
    named = arch.replace(task=recipe.task).with_num_classes(recipe.num_classes)
    return {
        "macs": hrnas.count_macs(named, recipe.input_size),
        "params": hrnas.count_params(named),
        "branches": branch_hidden_channels(named),
        "arch": named.to_dict(),
    }


# -- the proxy --------------------------------------------------------------------------------------------------


def proxy_arch(model: str, method: str, seed: int, quick: bool):
    """The architecture a fixed-architecture proxy row trains (in its named configuration)."""
    recipe = ZOO_RECIPES[model]
    if method == "v1":
        return zoo_arch(model, version=1)
    searched = _load_row(_row_path(quick, model, "proxy", "search", seed))
    if searched is None:
        raise RuntimeError(f"{model} seed {seed}: the search row is needed first")
    arch = hrnas.Arch.from_dict(searched["arch"])
    if method == "retrained":
        return arch
    supernet = hrnas.get_space(recipe.space).supernet(transformers=recipe.transformers)
    supernet = supernet.replace(task=recipe.task).with_num_classes(recipe.num_classes)
    target = searched["macs"]
    uniform, _ = uniform_arch(supernet, target, recipe.input_size)
    got = _named_macs(uniform, recipe)
    if abs(got / target - 1) > FIT_TOLERANCE:
        raise RuntimeError(f"{model}: uniform width reached {got:,} MACs, not within 1 % of {target:,}")
    return uniform


def adopt_zoo_build(model: str, seed: int, build_dir: Path) -> dict | None:
    """The search row of ``seed`` taken from a finished ``hrnas zoo-build`` of ``model`` in ``build_dir``, if any.

    A zoo build is ``run_recipe`` of the recipe with the recipe's seed, i.e. exactly this benchmark's search run
    of that seed, so it is not run twice (it is the longest row of its model). Only a full (not ``--quick``) build
    whose recorded settings equal the recipe's is taken. Its wall time adds up the sittings of a resumed build.
    """
    recipe = ZOO_RECIPES[model]
    entry = _load_row(build_dir / f"{model}.json")
    history = build_dir / "search" / model / "history.jsonl"
    if entry is None or not history.is_file() or seed != recipe.seed:
        return None
    record = entry["record"]
    expected = {**recipe.search, "seed": recipe.seed, "transformers": recipe.transformers}
    if record["settings"] != expected or record["command"] != f"hrnas zoo-build {model}":
        return None
    rows = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    # "elapsed" counts every sitting in runs checkpointed by this hrnas; in older ones it restarted at each sitting,
    # so every sitting's last value is summed where it drops (a restart it does not drop across goes uncounted)
    wall = sum(a["elapsed"] for a, b in zip(rows, rows[1:] + [None]) if b is None or b["elapsed"] < a["elapsed"])
    metrics = [m for _, _, m in record["run"] if m is not None]
    row = {
        "model": model,
        "task": "proxy",
        "method": "search",
        "seed": seed,
        "metric_name": record["proxy_metric"]["name"],
        "metric": record["proxy_metric"]["value"],
        "best_metric": max(metrics, default=None),
        "curve": record["run"],
        "wall_s": round(wall, 1),
        "threads": rows[-1].get("threads"),
        "from": f"hrnas zoo-build {model} ({build_dir / f'{model}.json'})",
    }
    return {**row, **_arch_record(hrnas.Arch.from_dict(entry["arch"]), recipe)}


def _job(model: str, method: str, seed: int, quick: bool, arch) -> dict:
    """What a proxy run is: a checkpoint continues only a run of exactly this (recipe settings, data, architecture)."""
    recipe = ZOO_RECIPES[model]
    job = dict(model=model, method=method, seed=seed, quick=quick, settings=recipe.search, data=asdict(recipe.data))
    job.update(space=recipe.space, budget=recipe.budget, arch=arch.to_dict() if arch is not None else None)
    return json.loads(json.dumps(job))  # as it reads back from job.json (tuples as lists)


def _earlier_sittings(run_dir: Path, job: dict) -> float | None:
    """Seconds an interrupted run of ``job`` in ``run_dir`` had run, or None when there is no such run to continue
    (no checkpoint, or one of another job: a changed recipe or architecture starts over)."""
    history = run_dir / "history.jsonl"
    if _load_row(run_dir / "job.json") != job or not (run_dir / CHECKPOINT_NAME).is_file() or not history.is_file():
        return None
    rows = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    return rows[-1]["elapsed"] if rows else 0.0


def run_proxy(model: str, method: str, seed: int, quick: bool, work: Path) -> dict:
    """One proxy row. A run interrupted in an earlier sitting continues from its last checkpoint (same job only)."""
    recipe = ZOO_RECIPES[model]
    start = time.perf_counter()
    arch = None if method == "search" else proxy_arch(model, method, seed, quick)
    run_dir, job = work / f"{model}-{method}-s{seed}", _job(model, method, seed, quick, arch)
    before = _earlier_sittings(run_dir, job)
    if before is None:  # a fresh start: what another job left here must never be taken for this one's
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in (CHECKPOINT_NAME, "history.jsonl"):
            (run_dir / stale).unlink(missing_ok=True)
        write_atomic(run_dir / "job.json", json.dumps(job, indent=1) + "\n")
    else:
        print(f"    continuing the run in {run_dir} ({before / 60:.1f} min done)", flush=True)
    result, _ = run_recipe(recipe, seed=seed, arch=arch, output_dir=run_dir, quick=quick, resume=before is not None)
    row = {
        "model": model,
        "task": "proxy",
        "method": method,
        "seed": seed,
        "metric_name": result.metric_name,
        "metric": result.metric,
        "best_metric": max((r["metric"] for r in result.history if r["metric"] is not None), default=None),
        "curve": [[r["step"], r["macs"], r["metric"]] for r in result.history],
        "wall_s": round(time.perf_counter() - start + (before or 0.0), 1),
        "threads": result.history[-1].get("threads"),
    }
    return {**row, **_arch_record(result.arch, recipe)}


# -- the held-out nuclei task -------------------------------------------------------------------------------------


def _nuclei_backbone(model: str, backbone: str, seed: int, quick: bool):
    import timm

    if backbone in ("hrnet_w18_small", "mobilenetv4_conv_small"):
        return timm.create_model(backbone, features_only=True, out_indices=(1, 2, 3, 4)), None
    arch = proxy_arch(model, "retrained" if backbone == "search" else backbone, seed, quick)
    arch = arch.replace(task="seg").with_num_classes(NUCLEI["classes"])
    net = hrnas.create_model("hrnas_custom", arch=arch, features_only=True, out_indices=(1, 2, 3, 4))
    return net, arch


def _light_head(channels: list[int], classes: int, width: int):
    """The shared head: every map upsampled to stride 4, concatenated, 1x1 conv + BN + ReLU, 1x1 classifier."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class LightHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fuse = nn.Sequential(nn.Conv2d(sum(channels), width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
            self.classifier = nn.Conv2d(width, classes, 1)

        def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
            size = feats[0].shape[-2:]
            up = [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]]
            return self.classifier(self.fuse(torch.cat(up, dim=1)))

    return LightHead()


def run_nuclei(model: str, backbone: str, seed: int, quick: bool) -> dict:
    import math

    import torch
    import torch.nn.functional as F

    from hrnas.data import NucleiSegmentation
    from hrnas.searching.tasks import MeanIoU
    from hrnas.threads import ThreadTuner

    cfg = QUICK_NUCLEI if quick else NUCLEI
    torch.manual_seed(seed)
    # the cores that are free, kept up to date as the search loop does, so a row may run beside another one
    threads, restore = ThreadTuner(), torch.get_num_threads()
    threads.start()
    body, arch = _nuclei_backbone(model, backbone, seed, quick)
    head = _light_head(body.feature_info.channels(), cfg["classes"], cfg["head_width"])
    params = list(body.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=4e-5)
    train = NucleiSegmentation("train", cfg["train_items"], size=cfg["size"], classes=cfg["classes"], seed=0)
    val = NucleiSegmentation("val", size=cfg["size"], classes=cfg["classes"])
    order = torch.Generator().manual_seed(seed)
    start, step, epoch = time.perf_counter(), 0, 0
    body.train(), head.train()
    warm = max(1, cfg["steps"] // 20)
    while step < cfg["steps"]:
        train.set_epoch(epoch)
        perm = torch.randperm(len(train), generator=order).tolist()
        for i in range(0, len(perm) - cfg["batch_size"] + 1, cfg["batch_size"]):
            if step >= cfg["steps"]:
                break
            x, y = zip(*(train[j] for j in perm[i : i + cfg["batch_size"]]))
            x, y = torch.stack(x), torch.stack(y)
            lr = cfg["lr"] * min((step + 1) / warm, 0.5 * (1 + math.cos(math.pi * step / cfg["steps"])))
            for g in opt.param_groups:
                g["lr"] = lr
            tick = time.perf_counter()
            logits = F.interpolate(head(body(x)), size=y.shape[-2:], mode="bilinear", align_corners=False)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            threads.step_done(time.perf_counter() - tick)
            step += 1
        epoch += 1
    body.eval(), head.eval()
    metric = MeanIoU(cfg["classes"])
    with torch.no_grad():
        for i in range(len(val)):
            x, y = val[i]
            metric.update(head(body(x[None])), y[None])
    torch.set_num_threads(restore)
    recipe = ZOO_RECIPES[model]
    row = {
        "model": model if arch is not None else "timm",
        "task": "nuclei",
        "method": backbone,
        "seed": seed,
        "metric_name": "mIoU",
        "metric": metric.compute(),
        "per_class_iou": [round(float(v), 4) for v in metric.per_class()],
        "wall_s": round(time.perf_counter() - start, 1),
        "threads": threads.threads,
        "params": sum(p.numel() for p in body.parameters()),
        "macs_128": _backbone_macs(body, arch, cfg["size"]),
    }
    if arch is not None:
        row.update({k: v for k, v in _arch_record(arch, recipe).items() if k != "params"})
    return row


def _backbone_macs(body, arch, size: int) -> int:
    if arch is not None:
        return hrnas.count_macs(arch, (size, size))
    import torch
    from fvcore.nn import FlopCountAnalysis

    counter = FlopCountAnalysis(body.eval(), torch.randn(1, 3, size, size))
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(counter.total())


# -- the report --------------------------------------------------------------------------------------------------


def _spread(values: list[float]) -> float:
    return statistics.pstdev(values) if len(values) > 1 else 0.0


def _summary(rows: list[dict]) -> dict:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["task"], r["method"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        values = [r["metric"] for r in rs if r["metric"] is not None]
        out[key] = {
            "runs": len(rs),
            "mean": statistics.fmean(values) if values else float("nan"),
            "spread": _spread(values),
            "macs": statistics.fmean(r.get("macs", r.get("macs_128", 0)) for r in rs),
            "params": statistics.fmean(r["params"] for r in rs),
            "branches": rs[0].get("branches"),
            "wall_s": sum(r["wall_s"] for r in rs),
        }
    return out


def _paired(rows: list[dict], model: str, task: str, methods: tuple[str, ...]) -> dict:
    """Summaries of ``methods`` of ``model`` on ``task`` over the seeds every one of them has run (timm backbones
    count as the model's), so that a comparison never sets one seed's result against the mean of two; ``{}`` when
    some method has no row yet."""
    mine = [r for r in rows if r["task"] == task and r["method"] in methods and r["model"] in (model, "timm")]
    seeds = set.intersection(*({r["seed"] for r in mine if r["method"] == m} for m in methods))
    if not seeds:
        return {}
    summary = _summary([r for r in mine if r["seed"] in seeds])
    return {m: next(v for (_, _, method), v in summary.items() if method == m) for m in methods}


def _checks(rows: list[dict]) -> list[str]:
    """The issue's criteria, each with its numbers: means over the seeds both sides have run; spread = the larger
    of the two sides' seed spreads."""
    lines = []
    for model in MODELS:
        s = _paired(rows, model, "proxy", ("search", "uniform"))
        if s:
            gap, spread = s["search"]["mean"] - s["uniform"]["mean"], max(s["search"]["spread"], s["uniform"]["spread"])
            runs = s["search"]["runs"]
            lines.append(
                f"- {model}, proxy: search {s['search']['mean']:.4f} vs uniform {s['uniform']['mean']:.4f} "
                f"(difference {gap:+.4f}, seed spread {spread:.4f}): {'beats' if gap > spread else 'does not beat'} "
                "uniform width by more than the spread"
                + (" (one seed so far: no spread measured yet)" if runs < 2 else f" ({runs} seeds)")
            )
        s = _paired(rows, model, "proxy", ("retrained", "uniform"))
        if s:
            ok = s["retrained"]["mean"] >= s["uniform"]["mean"]
            lines.append(
                f"- {model}, proxy: retrained {s['retrained']['mean']:.4f} vs uniform {s['uniform']['mean']:.4f} "
                f"({s['retrained']['runs']} seed{'s' if s['retrained']['runs'] > 1 else ''}): "
                f"{'at least as good' if ok else 'worse'}"
            )
        searches = [r for r in rows if r["model"] == model and r["task"] == "proxy" and r["method"] == "search"]
        if searches:
            spread = _spread([r["metric"] for r in searches])
            falls = [
                (r["seed"], r["metric"], max((m for _, _, m in r["curve"][:-1] if m is not None), default=r["metric"]))
                for r in searches
            ]
            ok = all(final >= best - spread for _, final, best in falls)
            detail = ", ".join(f"seed {seed}: final {final:.4f}, best before {best:.4f}" for seed, final, best in falls)
            lines.append(f"- {model}, no collapse ({detail}; spread {spread:.4f}): {'holds' if ok else 'FAILS'}")
        n = _paired(rows, model, "nuclei", NUCLEI_BACKBONES[:3])
        if n:
            vs_uniform = "at least as good as" if n["search"]["mean"] >= n["uniform"]["mean"] else "worse than"
            vs_v1 = "better than" if n["search"]["mean"] > n["v1"]["mean"] else "not better than"
            lines.append(
                f"- {model}, nuclei: search {n['search']['mean']:.4f}, uniform {n['uniform']['mean']:.4f}, v1 "
                f"{n['v1']['mean']:.4f} ({n['search']['runs']} seed{'s' if n['search']['runs'] > 1 else ''}): "
                f"{vs_uniform} uniform, {vs_v1} v1"
            )
        if searches and searches[0].get("branches"):
            b = searches[0]["branches"]
            low = [4 * 2**i for i, w in enumerate(b) if w < 0.01 * sum(b)]
            lines.append(
                f"- {model}: hidden channels per branch (stride 4/8/16/32) {' / '.join(map(str, b))}; "
                + (f"stride {', '.join(map(str, low))} under 1 %" if low else "no branch under 1 %")
            )
    return lines


def report(quick: bool) -> None:
    rows = _load_rows(quick)
    suffix = "_quick" if quick else ""
    fields = ["model", "task", "method", "seed", "metric_name", "metric", "best_metric", "macs", "macs_128",
              "params", "branches", "wall_s", "threads", "curve", "arch"]  # fmt: skip
    write_csv(RESULTS / f"zoo_quality{suffix}.csv", rows, fields)
    summary = _summary(rows)
    lines = [
        "# Zoo quality: searched models against uniform width, their v1 architectures and timm backbones",
        "",
        f"Produced by `python benchmarks/zoo_quality.py{' --quick' if quick else ''}` ({machine()}); "
        f"{len(rows)} runs, {sum(r['wall_s'] for r in rows) / 3600:.2f} h of compute in all. Method: see the "
        "script's docstring. Proxy metrics are the recipe's (mIoU, PCK or top-1 on its validation split); MACs at "
        "the named configuration (seg 224x224 with 150 classes, pose 256x192 with 17, cls 224x224 with 1000). "
        "Wall times are each run's own; the csv's `threads` is the count a run ended with (1: it shared the 2 cores "
        "with another run).",
        "",
        "## Proxy",
        "",
    ]
    table = []
    for (model, task, method), s in sorted(summary.items()):
        if task != "proxy":
            continue
        branches = " / ".join(map(str, s["branches"] or []))
        table.append(
            [model, method, s["runs"], f"{s['mean']:.4f} ± {s['spread']:.4f}", f"{s['macs'] / 1e6:.1f}",
             f"{s['params'] / 1e6:.3f}", branches, f"{s['wall_s'] / 60:.1f}"]
        )  # fmt: skip
    lines += markdown_table(
        ["model", "method", "runs", "metric (mean ± sd)", "MMACs (named)", "params (M)", "hidden per branch", "min"],
        table,
    )
    lines += ["", "## Held-out nuclei (real mask, right quarter of the image; 3 classes, mIoU)", ""]
    table = []
    for (model, task, method), s in sorted(summary.items()):
        if task == "nuclei":
            table.append([model, method, s["runs"], f"{s['mean']:.4f} ± {s['spread']:.4f}",
                          f"{s['params'] / 1e6:.3f}", f"{s['wall_s'] / 60:.1f}"])  # fmt: skip
    lines += markdown_table(["model", "backbone", "runs", "mIoU (mean ± sd)", "backbone params (M)", "min"], table)
    lines += ["", "## Checks", "", *_checks(rows), "", "Search curves: `zoo_quality.png`.", ""]
    write_atomic(RESULTS / f"zoo_quality{suffix}.md", "\n".join(lines))
    _plot(rows, RESULTS / f"zoo_quality{suffix}.png")


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in MODELS if any(r["model"] == m and r["method"] == "search" for r in rows)]
    if not models:
        return
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for r in rows:
            if r["model"] == model and r["task"] == "proxy" and r["method"] == "search":
                pts = [(s, m) for s, _, m in r["curve"] if m is not None]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, label=f"search, seed {r['seed']}")
        for r in rows:
            if r["model"] == model and r["task"] == "proxy" and r["method"] == "uniform":
                ax.axhline(r["metric"], color="gray", ls="--", lw=0.8, label=f"uniform, seed {r['seed']}")
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("proxy metric")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- the held-out result in the zoo entries (and so in their model cards) ------------------------------------------

HELD_OUT_NAMES = {
    "uniform": "uniform width at the same MACs",
    "v1": "the first zoo's architecture",
    "hrnet_w18_small": "timm hrnet_w18_small",
    "mobilenetv4_conv_small": "timm mobilenetv4_conv_small",
}


def record_held_out(rows: list[dict], zoo_dir: Path) -> list[str]:
    """Store each seg model's nuclei result, beside the other backbones', in its zoo entry's record (for its card).

    A later ``hrnas zoo-build`` of the model writes its entry afresh, without this: run this again after it.
    """
    done = []
    for model in MODELS:
        seeds = {r["seed"] for r in rows if (r["model"], r["task"], r["method"]) == (model, "nuclei", "search")}
        if not seeds:
            continue
        # every backbone on the seeds the search has run, so the card compares like with like
        summary = _summary([r for r in rows if r["seed"] in seeds])
        own = summary[(model, "nuclei", "search")]
        others = {}
        for method, label in HELD_OUT_NAMES.items():
            other = summary.get((model, "nuclei", method)) or summary.get(("timm", "nuclei", method))
            if other is not None:
                others[label] = round(other["mean"], 4)
        path = zoo_dir / f"{model}.json"
        entry = json.loads(path.read_text())
        entry["record"]["held_out"] = {
            "task": "stardist's nuclei image (real instance mask, 3 classes: background, nucleus, boundary)",
            "metric_name": "mIoU",
            "metric": round(own["mean"], 4),
            "runs": own["runs"],
            "others": others,
            "protocol": (
                f"Every backbone trained from scratch through timm features_only (strides 4-32) under one shared "
                f"light head: {NUCLEI['steps']} steps of batch {NUCLEI['batch_size']}, {NUCLEI['size']}x"
                f"{NUCLEI['size']} crops of the image's left three quarters, validated on the right quarter, "
                "which training never sees."
            ),
            "source": "benchmarks/results/zoo_quality.md",
        }
        write_atomic(path, json.dumps(entry, indent=1) + "\n")
        done.append(model)
    return done


# -- the plan ----------------------------------------------------------------------------------------------------


def jobs(models: list[str], seeds: list[int]) -> list[tuple[str, str, str, int]]:
    out = []
    for seed in seeds:
        for model in models:
            out += [(model, "proxy", m, seed) for m in PROXY_METHODS]
            if ZOO_RECIPES[model].task == "seg":
                out += [(model, "nuclei", b, seed) for b in NUCLEI_BACKBONES[:3]]
        out += [("timm", "nuclei", b, seed) for b in NUCLEI_BACKBONES[3:]]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    p.add_argument("--methods", default="", help="only these methods (comma-separated), e.g. search,uniform")
    p.add_argument("--tasks", default="", help="only these tasks (comma-separated): proxy, nuclei")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--report", action="store_true", help="only write the report from the finished rows")
    p.add_argument(
        "--record-held-out",
        action="store_true",
        help="also store each seg model's nuclei result in its zoo entry (hrnas/archs/zoo/NAME.json), for its card",
    )
    p.add_argument(
        "--zoo-build-dir",
        default="runs/zoo",
        help="where `hrnas zoo-build NAME --output-dir DIR` wrote: a finished build is the recipe seed's search row",
    )
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = set(models) - set(MODELS)
    if unknown:
        p.error(f"unknown models {sorted(unknown)}; choose from {MODELS}")
    if not args.report:
        work = Path("runs/zoo_quality_quick" if args.quick else "runs/zoo_quality")
        todo = jobs(models, [int(s) for s in args.seeds.split(",")])
        if args.methods:
            todo = [job for job in todo if job[2] in args.methods.split(",")]
        if args.tasks:
            todo = [job for job in todo if job[1] in args.tasks.split(",")]
        for i, (model, task, method, seed) in enumerate(todo, 1):
            path = _row_path(args.quick, model, task, method, seed)
            if path.is_file():
                continue
            print(f"[{i}/{len(todo)}] {model} {task} {method} seed {seed}", flush=True)
            adopted = None
            if task == "proxy" and method == "search" and not args.quick:
                adopted = adopt_zoo_build(model, seed, Path(args.zoo_build_dir))
            if adopted is not None:
                row = adopted
                print(f"    taken from {row['from']}", flush=True)
            elif task == "proxy":
                row = run_proxy(model, method, seed, args.quick, work)
            else:
                row = run_nuclei(model if model != "timm" else MODELS[0], method, seed, args.quick)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(row, indent=1) + "\n")
            print(f"    {row['metric_name']} {row['metric']:.4f}  ({row['wall_s'] / 60:.1f} min)", flush=True)
    report(args.quick)
    if args.record_held_out and not args.quick:
        done = record_held_out(_load_rows(False), Path(hrnas.archs.__file__).parent / ZOO_DIR)
        print("held-out result recorded in the zoo entries of", ", ".join(done) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
