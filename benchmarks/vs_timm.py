"""hrnas backbones against the timm backbones a user would pick instead: accuracy on real held-out tasks against
CPU latency, side by side.

Every backbone is trained from scratch as a ``features_only`` network (strides 4-32) under the one shared light
head of ``_heldout.py``, with the same data, steps, optimiser and schedule, on two tasks with real labels that no
search ever saw: ``nuclei`` (segmentation, mIoU on a region never trained on) and ``faces`` (68 landmarks on unseen
views of four faces, normalised mean error, lower is better). Backbones:

- timm: ``hrnet_w18_small``, ``mobilenetv4_conv_small``, ``mobilenetv4_conv_medium``, ``efficientvit_b0``;
- the hrnas zoo: the paper-faithful MAC-budget line (``hrnas_seg_a/_b`` on nuclei, ``hrnas_pose_a/_b`` on faces) and
  the cpu line searched to timm's latencies (``hrnas_seg_cpu_s/_m`` on nuclei, ``hrnas_pose_cpu_s/_m`` on faces);
  every hrnas backbone is trained with the from-scratch settings the study chose (BatchNorm momentum 0.1, eps
  1e-5, each block's last BatchNorm starting at 0: ``benchmarks/results/from_scratch.md``);
- uniform width: the cpu space with one keep fraction for every kernel path (widths a multiple of 4), fitted by
  measured deploy latency to each timm model's latency (``uniform_s``: mobilenetv4_conv_small's, ``uniform_m``:
  hrnet_w18_small's);
- ``nuclei_search`` / ``nuclei_search_s`` (nuclei only): ``hrnas.search`` run directly on the nuclei training crops
  at the latency of ``hrnet_w18_small`` / ``mobilenetv4_conv_small`` (once each, seed 0), then its inherited weights
  fine-tuned under the shared head (the path a user with their own data takes); their seeds vary the fine-tuning.

Phases (each resumable; run the timing phases on an otherwise idle machine):

    python benchmarks/vs_timm.py --prepare      # timm latencies, uniform widths fitted to them, the nuclei searches
    python benchmarks/vs_timm.py --rows         # every (backbone, task, seed) row not done yet (one thread each)
    python benchmarks/vs_timm.py --latency      # every backbone timed side by side, batch 1, 128x128
    python benchmarks/vs_timm.py --report       # md, csv, png from what there is

``--rows`` takes ``--backbones``, ``--tasks`` and ``--seeds`` to split the rows between two processes (one thread
each on 2 cores). Latency: hrnas backbones in the deploy form (``hrnas.deploy``), timm backbones as timm builds them
(eval, ``channels_last``), both ``torch.no_grad`` at the process's threads, medians of interleaved rounds; a second
pair of columns times both frozen by TorchScript (``torch.jit.freeze``), which speeds every model up, so that the
comparison does not rest on one side's optimisation alone.

Writes ``benchmarks/results/vs_timm.md``, ``.csv`` and ``.png``; rows and set-up under ``benchmarks/results/vs_timm/``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from _common import RESULTS, machine, markdown_table, write_csv, write_markdown
from _heldout import TASKS, train_heldout

import hrnas
from hrnas.arch import branch_hidden_channels
from hrnas.archs import zoo_entries, zoo_entry
from hrnas.files import write_atomic

OUT = RESULTS / "vs_timm"
ROWS = OUT / "rows"
SETUP = OUT / "setup.json"
LATENCY = OUT / "latency.json"
SIZE = (128, 128)
SEEDS = (0, 1, 2)
TIMM = ("hrnet_w18_small", "mobilenetv4_conv_small", "mobilenetv4_conv_medium", "efficientvit_b0")
TARGETS = {"s": "mobilenetv4_conv_small", "m": "hrnet_w18_small"}
ZOO = {
    "nuclei": ("hrnas_seg_a", "hrnas_seg_b", "hrnas_seg_cpu_s", "hrnas_seg_cpu_m"),
    "faces": ("hrnas_pose_a", "hrnas_pose_b", "hrnas_pose_cpu_s", "hrnas_pose_cpu_m"),
}
# the searches on the nuclei training region: name -> the TARGETS key of the timm model whose latency it is searched to
SEARCHES = {"nuclei_search": "m", "nuclei_search_s": "s"}
NUCLEI_SEARCH = dict(steps=600, batch_size=8, lr=0.05, eval_every=100, calib_batches=10, train_items=3200)
LANDING_PASSES = 3  # passes of each latency-targeted network beside its target alone, in the latency phase
_LANDING_COLUMNS = ["model", "target", "at the search's end", "this run, among all",
                    "this run, beside the target (median)", "each pass", "in [0.9, 1.0]",
                    "hidden at strides 4-32"]  # fmt: skip


def backbones(task: str) -> list[str]:
    """The backbones compared on ``task``, in the report's order."""
    extra = list(SEARCHES) if task == "nuclei" else []
    return list(TIMM) + list(ZOO[task]) + ["uniform_s", "uniform_m"] + extra


def _setup() -> dict:
    return json.loads(SETUP.read_text()) if SETUP.is_file() else {}


def _save_setup(setup: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write_atomic(SETUP, json.dumps(setup, indent=1) + "\n")


def _from_scratch_settings(arch: hrnas.Arch) -> hrnas.Arch:
    """The from-scratch settings every hrnas backbone here is trained with (the module docstring)."""
    return arch.replace(bn_momentum=0.1, bn_eps=1e-5, zero_init_last=True)


def _cpu_supernet(task: str) -> hrnas.Arch:
    space = "seg_cpu" if task == "nuclei" else "pose_cpu"
    return hrnas.get_space(space).supernet(transformers=False)


def _uniform(supernet: hrnas.Arch, keep: float, multiple: int = 4) -> hrnas.Arch:
    blocks = [
        b.replace(channels=tuple(multiple * int(round(c * keep / multiple)) for c in b.channels))
        for b in supernet.blocks()
    ]
    return supernet.with_blocks(blocks)


def arch_of(backbone: str, task: str) -> hrnas.Arch | None:
    """The architecture an hrnas backbone trains (``None`` for timm backbones)."""
    if backbone in TIMM:
        return None
    if backbone.startswith("uniform_"):
        keep = _setup()["uniform"][f"{task}_{backbone[-1]}"]["keep"]
        return _from_scratch_settings(_uniform(_cpu_supernet(task), keep))
    if backbone in SEARCHES:
        return hrnas.Arch.from_dict(_setup()[backbone]["arch"])
    return _from_scratch_settings(hrnas.create_model(backbone).arch)


# -- set-up: latency targets, uniform width, the search on the user's data ------------------------------------


def _features(backbone: str, task: str) -> torch.nn.Module:
    from _heldout import build_backbone

    arch = arch_of(backbone, task)
    return build_backbone(backbone if arch is None else arch)


def fit_uniform(task: str, target: str, log=print) -> dict:
    """The keep fraction whose uniform-width network runs (deploy form) at 0.95-1.0x ``target``'s latency, found by
    bisection on latencies measured side by side with ``target`` (so the machine's drift cancels)."""
    from hrnas.latency import measure_latencies

    supernet = _cpu_supernet(task)
    timm_model = _features(target, task)
    lo, hi, best = 0.0, 1.0, None
    for _ in range(10):
        keep = (lo + hi) / 2
        net = hrnas.create_model("hrnas_custom", arch=_uniform(supernet, keep), features_only=True)
        ours, theirs = measure_latencies([hrnas.deploy(net, input_size=SIZE), timm_model], SIZE, 1, 5, 10)
        ratio = ours / theirs
        log(f"  uniform {task} keep {keep:.4f}: {ours:.2f} ms vs {target} {theirs:.2f} ms ({ratio:.3f})")
        if ratio <= 1.0 and (best is None or ratio > best["ratio"]):
            best = {"keep": keep, "ratio": round(ratio, 4), "ms": round(ours, 4), "target_ms": round(theirs, 4)}
        if 0.95 <= ratio <= 1.0:
            break
        lo, hi = (keep, hi) if ratio < 0.95 else (lo, keep)
    if best is None:
        raise RuntimeError(f"no uniform width of the cpu space runs within {target}'s latency here")
    return best


def nuclei_search(target: str, name: str = "nuclei_search", log=print) -> dict:
    """``hrnas.search`` on the nuclei training crops at ``target``'s latency (seed 0), its latency table anchored to
    ``target`` (as the cpu zoo line's recipes): the arch and the weights file."""
    from hrnas.data import NucleiSegmentation
    from hrnas.latency import latency_table, measure_latencies

    cfg = NUCLEI_SEARCH
    train = NucleiSegmentation("train", cfg["train_items"], size=SIZE[0], classes=3, seed=0)
    val = NucleiSegmentation("val", size=SIZE[0], classes=3)
    supernet = hrnas.create_supernet("seg", num_classes=3, space="seg_cpu", transformers=False)
    (target_ms,) = measure_latencies([_features(target, "nuclei")], SIZE, 1, rounds=7, reps=10)
    # timed beside the target model itself: the budget is "as fast as it", whatever the machine does meanwhile
    table = latency_table(supernet.arch, SIZE).anchored_to(target, target_ms)
    run_dir = Path(__file__).resolve().parent.parent / "runs" / "vs_timm" / name
    resume = (run_dir / "checkpoint.pt").is_file()
    result = hrnas.search(
        supernet, train, val, latency_ms=target_ms, latency_table=table, input_size=SIZE, latency_feedback=True,
        channel_multiple=4,
        seed=0, output_dir=str(run_dir), resume=str(run_dir) if resume else None, progress=False,
        **{k: v for k, v in cfg.items() if k != "train_items"},
    )  # fmt: skip
    weights = run_dir / f"{name}.safetensors"  # weights stay out of git (runs/ is ignored)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in result.model.state_dict().items()}, str(weights))
    log(f"  nuclei search: {result.summary().splitlines()[-3:]}")
    return {
        "arch": result.arch.to_dict(),
        "target_ms": target_ms,
        "measured_ms": result.measured_latency_ms,
        "search_metric": result.metric,
        "weights": str(weights),
        "settings": cfg,
    }


def prepare(log=print) -> None:
    """Latency targets, uniform widths and the nuclei search, each once (kept in ``setup.json``)."""
    from hrnas.latency import measure_latencies

    setup = _setup()
    if "targets" not in setup:
        models = [_features(name, "nuclei") for name in TARGETS.values()]
        times = measure_latencies(models, SIZE, 1, rounds=7, reps=10)
        setup["targets"] = {k: round(t, 4) for k, t in zip(TARGETS, times)}
        setup["machine"] = machine(threads=True)
        _save_setup(setup)
        log(f"targets: {setup['targets']}")
    for task in ("nuclei", "faces"):
        for key, target in TARGETS.items():
            name = f"{task}_{key}"
            if name not in setup.setdefault("uniform", {}):
                setup["uniform"][name] = fit_uniform(task, target, log)
                _save_setup(setup)
    for name, key in SEARCHES.items():
        if name not in setup:
            setup[name] = nuclei_search(TARGETS[key], name, log)
            _save_setup(setup)


# -- rows ---------------------------------------------------------------------------------------------------


def _row_path(backbone: str, task: str, seed: int) -> Path:
    return ROWS / f"{task}__{backbone}__s{seed}.json"


def _load_weights(name: str, body: torch.nn.Module) -> None:
    """The inherited weights of the nuclei search ``name`` into its features_only backbone (the head is not used)."""
    from safetensors.torch import load_file

    path = Path(_setup()[name]["weights"])
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the nuclei search's weights; run `python benchmarks/vs_timm.py --prepare`")
    state = load_file(str(path))
    prefix = "model." if any(k.startswith("model.") for k in body.state_dict()) else ""  # timm's features wrapper
    missing = body.load_state_dict({prefix + k: v for k, v in state.items()}, strict=False).missing_keys
    if missing:
        raise RuntimeError(f"the nuclei search's weights miss {len(missing)} backbone tensors, e.g. {missing[:3]}")


def run_row(backbone: str, task: str, seed: int, quick: bool = False) -> dict:
    spec = TASKS[task].quick() if quick else TASKS[task]
    arch = arch_of(backbone, task)
    modify = functools.partial(_load_weights, backbone) if backbone in SEARCHES else None
    row = train_heldout(backbone if arch is None else arch, spec, seed, modify=modify)
    return {"backbone": backbone, **row}


def rows(backbones_: list[str] | None, tasks: list[str], seeds: list[int], quick: bool, log=print) -> None:
    for task in tasks:
        for backbone in backbones_ or backbones(task):
            if backbone not in backbones(task):
                continue
            for seed in seeds:
                path = _row_path(backbone, task, seed)
                if path.is_file() and not quick:
                    continue
                log(f"== {task} {backbone} seed {seed}")
                row = run_row(backbone, task, seed, quick)
                log(f"   {row['metric_name']} {row['metric']:.4f} ({row['train_s']:.0f} s)")
                if not quick:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_atomic(path, json.dumps(row) + "\n")


# -- latency ------------------------------------------------------------------------------------------------


def latency(log=print) -> None:
    """Every backbone of both tasks timed side by side (batch 1, 128x128): eager/deploy and TorchScript-frozen."""
    from hrnas.latency import measure_latencies

    names = list(dict.fromkeys((b, t) for t in ("nuclei", "faces") for b in backbones(t)))
    labels, models = [], []
    for backbone, task in names:
        if backbone in TIMM and any(lbl[0] == backbone for lbl in labels):
            continue  # one timing per timm model
        body = _features(backbone, task)
        if backbone not in TIMM:
            body = hrnas.deploy(body, input_size=SIZE)
        labels.append((backbone, task))
        models.append(body)
    times = measure_latencies(models, SIZE, 1, rounds=9, reps=10)
    frozen = measure_latencies([_frozen(m) for m in models], SIZE, 1, rounds=9, reps=10)
    # each latency-targeted network again beside its target alone: in the pass over every backbone, a pair is timed
    # up to a whole round apart, and the machine's load moves in between; a pair alternating closely is the reading
    # the band [0.9, 1.0] is about. Even so, the ratio of one pair moves by a few hundredths from one minute to the
    # next on this shared CPU, so each pair is timed in LANDING_PASSES passes spread over the phase, and judged on
    # the median
    pairs = []
    for i, (backbone, task) in enumerate(labels):
        target = _target_of(backbone)
        if target is None or backbone in TIMM:
            continue
        pairs.append((backbone, task, target, models[[b for b, _ in labels].index(target)], models[i]))
    readings: dict[str, list[tuple[float, float]]] = {backbone: [] for backbone, *_ in pairs}
    for _ in range(LANDING_PASSES):
        for backbone, _, _, reference, model in pairs:
            theirs, mine = measure_latencies([reference, model], SIZE, 1, rounds=15, reps=10)
            readings[backbone].append((mine, theirs))
    landing = []
    for backbone, task, target, *_ in pairs:
        ratios = [round(mine / theirs, 4) for mine, theirs in readings[backbone]]
        median = round(statistics.median(ratios), 4)
        landing.append({"backbone": backbone, "task": task, "target": target, "ratio": median, "ratios": ratios})
    out = {
        "machine": machine(threads=True),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "rows": [
            {"backbone": b, "task": t if b not in TIMM else None, "ms": round(ms, 4), "frozen_ms": round(fz, 4)}
            for (b, t), ms, fz in zip(labels, times, frozen)
        ],
        "landing": landing,
    }
    write_atomic(LATENCY, json.dumps(out, indent=1) + "\n")
    for r in out["rows"]:
        log(f"  {r['backbone']:28s} {r['ms']:8.2f} ms   frozen {r['frozen_ms']:8.2f} ms")
    for r in landing:
        log(f"  {r['backbone']:28s} {r['ratio']:.4f} of {r['target']} beside it alone ({r['ratios']})")


class _Frozen(torch.nn.Module):
    """A TorchScript-frozen module with the attributes measure_latencies reads."""

    def __init__(self, module: torch.nn.Module, memory_format) -> None:
        super().__init__()
        self.module, self.memory_format = module, memory_format

    def forward(self, x):
        return self.module(x)


def _frozen(model: torch.nn.Module) -> torch.nn.Module:
    fmt = getattr(model, "memory_format", torch.channels_last)
    model = model.eval().to(memory_format=fmt)
    x = torch.randn(1, 3, *SIZE).contiguous(memory_format=fmt)
    with torch.no_grad():
        traced = torch.jit.trace(model, x, strict=False)
    return _Frozen(torch.jit.freeze(traced), fmt)


# -- report -------------------------------------------------------------------------------------------------


def _summary(task: str, all_rows: list[dict], lat: dict) -> list[dict]:
    ms = {r["backbone"]: r for r in lat.get("rows", []) if r["task"] in (None, task)}
    out = []
    for backbone in backbones(task):
        mine = [r for r in all_rows if r["task"] == task and r["backbone"] == backbone]
        if not mine:
            continue
        values = [r["metric"] for r in mine]
        out.append({
            "task": task, "backbone": backbone, "seeds": sorted(r["seed"] for r in mine),
            "mean": statistics.fmean(values), "sd": statistics.pstdev(values) if len(values) > 1 else 0.0,
            "values": values, "params": mine[0]["params"], "ms": ms.get(backbone, {}).get("ms"),
            "frozen_ms": ms.get(backbone, {}).get("frozen_ms"), "train_s": sum(r["train_s"] for r in mine),
            "per_class": [statistics.fmean(c) for c in zip(*(r["breakdown"] for r in mine))]
            if task == "nuclei" else None,  # the faces' breakdown is per view, not per class
        })  # fmt: skip
    return out


def _compare(ours: dict, ref: dict, task: str) -> tuple[float, float, str]:
    """``ours`` against ``ref``: the advantage of the mean (positive is better), the larger seed spread, the verdict
    (a gap inside the spread is a tie)."""
    gap = (ours["mean"] - ref["mean"]) * (1 if TASKS[task].higher_is_better else -1)
    spread = max(ours["sd"], ref["sd"])
    return gap, spread, "better" if gap > spread else ("tie (within the seed spread)" if gap >= -spread else "worse")


def _searched(summary: list[dict]) -> list[dict]:
    """The searched hrnas backbones: the zoo and the nuclei searches (uniform width is the baseline, not one)."""
    return [s for s in summary if s["backbone"] not in TIMM and not s["backbone"].startswith("uniform")]


def _as_fast(ours: dict, ref: dict, task: str, lat: dict) -> bool:
    """Whether ``ours`` runs at or below ``ref``'s latency: for a network searched to ``ref``'s latency, on the
    reading its band is judged on (beside ``ref`` alone, the median of the passes), since in the pass over every
    backbone a pair is timed up to a round apart and a network a few hundredths under its target can read over it;
    for any other pair, on that pass."""
    ratio = _landing_ratio(ours, ref, task, lat)
    if ratio is not None:
        return ratio <= 1.0
    return None not in (ours["ms"], ref["ms"]) and ours["ms"] <= ref["ms"]


def _landing_ratio(ours: dict, ref: dict, task: str, lat: dict) -> float | None:
    """The latency phase's reading of ``ours`` beside ``ref`` alone when ``ours`` was searched to ``ref``'s
    latency (the median of the passes), else None."""
    if _target_of(ours["backbone"]) != ref["backbone"]:
        return None
    for r in lat.get("landing", []):
        if (r["backbone"], r["task"]) == (ours["backbone"], task):
            return r["ratio"]
    return None


def _checks(summary: list[dict], task: str, lat: dict) -> list[str]:
    """For each timm target, the best searched hrnas backbone at or below its latency (:func:`_as_fast`) against
    it."""
    higher = TASKS[task].higher_is_better
    by = {s["backbone"]: s for s in summary}
    lines = []
    for target in TARGETS.values():
        ref = by.get(target)
        if ref is None or ref["ms"] is None:
            continue
        ours = [s for s in _searched(summary) if _as_fast(s, ref, task, lat)]
        if not ours:
            lines.append(f"- {task}: no hrnas backbone measured at or below {target}'s {ref['ms']:.2f} ms")
            continue
        best = max(ours, key=lambda s: s["mean"] if higher else -s["mean"])
        gap, spread, verdict = _compare(best, ref, task)
        ratio = _landing_ratio(best, ref, task, lat)
        beside = f"; {ratio:.4f} of it beside it alone" if ratio is not None else ""
        lines.append(
            f"- {task}, at or below {target}'s latency ({ref['ms']:.2f} ms): best hrnas {best['backbone']} "
            f"({best['ms']:.2f} ms{beside}) {TASKS[task].metric_name} {best['mean']:.4f} vs {ref['mean']:.4f} "
            f"({len(best['seeds'])} / {len(ref['seeds'])} seeds; advantage {gap:+.4f}, seed spread {spread:.4f}): "
            f"{verdict}"
        )
    return lines


def _pairs(summary: list[dict], task: str, lat: dict) -> list[str]:
    """Every searched hrnas backbone against each timm target it is at least as fast as (:func:`_as_fast`), and each
    latency-targeted one against uniform width fitted to the same target."""
    by = {s["backbone"]: s for s in summary}
    tier = {model: key for key, model in TARGETS.items()}
    rows = []
    for ours in _searched(summary):
        refs = [by[t] for t in TARGETS.values() if t in by and _as_fast(ours, by[t], task, lat)]
        target = _target_of(ours["backbone"])
        if target in tier and f"uniform_{tier[target]}" in by:
            refs.append(by[f"uniform_{tier[target]}"])
        for ref in refs:
            gap, spread, verdict = _compare(ours, ref, task)
            rows.append([ours["backbone"], ref["backbone"], f"{gap:+.4f}", f"{spread:.4f}", verdict])
    if not rows:
        return []
    return [f"Each searched hrnas backbone against every timm target it is at least as fast as, and against uniform "
            f"width at its own target ({TASKS[task].metric_name} advantage, positive is better):", "",
            *markdown_table(["hrnas", "against", "advantage", "seed spread", "verdict"], rows), ""]  # fmt: skip


def _target_of(backbone: str) -> str | None:
    """The timm model whose latency a latency-targeted search aimed at; None for the MAC-budget line."""
    if backbone in SEARCHES:
        return TARGETS[SEARCHES[backbone]]
    if backbone in zoo_entries():
        return (zoo_entry(backbone)["record"].get("latency") or {}).get("model")
    return None


def _landing(summaries: dict, setup: dict, lat: dict) -> list[str]:
    """Each latency-targeted search's latency over its target's: at the end of its search (its record) and in this
    run's latency phase, beside every backbone and beside its target alone (the reading the band is judged on)."""
    alone = {(r["backbone"], r["task"]): r for r in lat.get("landing", [])}
    rows = []
    for task, summary in summaries.items():
        by = {s["backbone"]: s for s in summary}
        for s in summary:
            target = _target_of(s["backbone"])
            if target is None or (s["backbone"] in SEARCHES and s["backbone"] not in setup):
                continue
            if s["backbone"] in SEARCHES:
                at_search = setup[s["backbone"]]["measured_ms"] / setup[s["backbone"]]["target_ms"]
            else:
                at_search = zoo_entry(s["backbone"])["record"]["latency"]["ratio"]
            ref = by.get(target)
            among = s["ms"] / ref["ms"] if ref and ref["ms"] and s["ms"] else None
            pair = alone.get((s["backbone"], task))
            ratio = pair["ratio"] if pair else None
            passes = " / ".join(f"{r:.4f}" for r in pair.get("ratios", [])) if pair else "-"
            hidden = " / ".join(map(str, branch_hidden_channels(arch_of(s["backbone"], task))))
            rows.append([s["backbone"], target, f"{at_search:.4f}", f"{among:.4f}" if among else "-",
                         f"{ratio:.4f}" if ratio else "-", passes,
                         "yes" if ratio is not None and 0.9 <= ratio <= 1.0 else "no", hidden])  # fmt: skip
    if not rows:
        return []
    return [
        "## Latency-targeted searches: latency over the target's",
        "",
        "At the end of the search (the zoo record's `latency.ratio`; the nuclei search's last measurement over its "
        "target), and in this run's latency phase (deploy form against the timm model as built): in the pass over "
        "every backbone (the tables above), and again alternating with its target alone, 15 rounds, in "
        f"{LANDING_PASSES} passes spread over the phase (the median is the reading the band is judged on: in the "
        "pass over all, a pair is timed up to a round apart, and one pair's ratio moves by a few hundredths from "
        "one pass to the next).",
        "",
        *markdown_table(_LANDING_COLUMNS, rows),
        "",
    ]


def report() -> None:
    all_rows = [json.loads(p.read_text()) for p in sorted(ROWS.glob("*.json"))]
    lat = json.loads(LATENCY.read_text()) if LATENCY.is_file() else {}
    setup = _setup()
    summaries = {task: _summary(task, all_rows, lat) for task in ("nuclei", "faces")}
    flat = [s for task in summaries.values() for s in task]
    write_csv(RESULTS / "vs_timm.csv", flat, ["task", "backbone", "seeds", "mean", "sd", "values", "ms", "frozen_ms",
                                              "params", "train_s"])  # fmt: skip
    hours = sum(r["train_s"] for r in all_rows) / 3600
    lines = [
        "# hrnas against timm backbones: accuracy on real held-out tasks against CPU latency",
        "",
        f"Produced by `python benchmarks/vs_timm.py` (method: its docstring). Rows: {len(all_rows)} trainings, "
        f"{hours:.1f} h of one-thread compute ({machine()}). Latency: {lat.get('machine', 'not measured yet')}, "
        f"measured {lat.get('when', '-')}, batch 1, 128x128; `ms`: hrnas in the deploy form, timm as built; `frozen`: "
        "both after `torch.jit.freeze`. Targets measured at set-up: "
        + ", ".join(f"{TARGETS[k]} {v:.2f} ms" for k, v in setup.get("targets", {}).items())
        + ". Metric: mean over seeds (sd = population standard deviation).",
        "",
    ]
    for task, summary in summaries.items():
        better = "higher" if TASKS[task].higher_is_better else "lower"
        name = f"{TASKS[task].metric_name} ({better} is better)"
        lines += [f"## {task}: {name}", ""]
        classes = any(s["per_class"] for s in summary)  # the nuclei: IoU of background / nucleus / boundary
        lines += markdown_table(
            ["backbone", "latency ms", "frozen ms", "params (M)", "mean", "sd", "per seed"]
            + (["IoU per class (mean)"] if classes else []),
            [[s["backbone"], f"{s['ms']:.2f}" if s["ms"] else "-", f"{s['frozen_ms']:.2f}" if s["frozen_ms"] else "-",
              f"{s['params'] / 1e6:.2f}", f"{s['mean']:.4f}", f"{s['sd']:.4f}",
              " / ".join(f"{v:.4f}" for v in s["values"])]
             + ([" / ".join(f"{v:.3f}" for v in s["per_class"] or [])] if classes else []) for s in summary],
        )  # fmt: skip
        lines += ["", *_checks(summary, task, lat), "", *_pairs(summary, task, lat)]
    lines += _landing(summaries, setup, lat)
    if "uniform" in setup:
        lines += ["## Set-up", ""]
        for name, u in setup["uniform"].items():
            lines.append(f"- uniform width `{name}`: keep {u['keep']:.4f} of the cpu supernet's channels, "
                         f"{u['ms']:.2f} ms against {u['target_ms']:.2f} ms at set-up")  # fmt: skip
        for name in [n for n in SEARCHES if n in setup]:
            ns = setup[name]
            lines.append(f"- {name}: target {ns['target_ms']:.2f} ms, measured {ns['measured_ms']} ms at the "
                         f"end of the search, its own mIoU {ns['search_metric']:.4f} before fine-tuning")  # fmt: skip
    write_markdown(RESULTS / "vs_timm.md", lines)
    _plot(summaries)


def _plot(summaries: dict) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, (task, summary) in zip(axes, summaries.items()):
        for s in summary:
            if s["ms"] is None:
                continue
            kind = "timm" if s["backbone"] in TIMM else ("uniform" if s["backbone"].startswith("uniform") else "hrnas")
            style = {"timm": ("s", "tab:gray"), "uniform": ("^", "tab:orange"), "hrnas": ("o", "tab:blue")}[kind]
            ax.errorbar(s["ms"], s["mean"], yerr=s["sd"], fmt=style[0], color=style[1], capsize=3)
            ax.annotate(s["backbone"].replace("hrnas_", ""), (s["ms"], s["mean"]), fontsize=7,
                        xytext=(4, -9 if kind == "uniform" else 3), textcoords="offset points")  # fmt: skip
            if s["backbone"] in TARGETS.values():  # the latencies the cpu line and the searches aim at
                ax.axvline(s["ms"], color="tab:gray", linestyle=":", linewidth=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks([t for t in (4, 5, 6, 8, 10, 12, 15, 20, 30, 40, 60) if any(
            s["ms"] and s["ms"] / 1.3 <= t <= s["ms"] * 1.3 for s in summary)])  # fmt: skip
        ax.set_xlabel("latency, batch 1, 128x128 (ms; hrnas deploy form, timm as built)")
        ax.set_ylabel(TASKS[task].metric_name + ("" if TASKS[task].higher_is_better else " (lower is better)"))
        if not TASKS[task].higher_is_better:
            ax.invert_yaxis()
        ax.set_title(task)
        ax.grid(alpha=0.3)
    fig.suptitle("grey: timm; blue: hrnas, searched; orange: uniform width; dotted: the timm latencies searched to",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    # the results' copy, and the docs' (mkdocs shows only files under docs/)
    for out in (RESULTS / "vs_timm.png", RESULTS.parent.parent / "docs" / "vs_timm.png"):
        tmp = out.with_name(out.name + ".tmp")
        fig.savefig(tmp, dpi=120, format="png")
        tmp.replace(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepare", action="store_true")
    ap.add_argument("--rows", action="store_true")
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--backbones", help="comma-separated (default: all of each task)")
    ap.add_argument("--tasks", default="nuclei,faces")
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--threads", type=int, help="torch threads (default: 1 for --rows, torch's for timing phases)")
    ap.add_argument("--quick", action="store_true", help="--rows: a few steps, nothing written")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.rows:
        torch.set_num_threads(1)
    if args.prepare:
        prepare()
    if args.rows:
        names = args.backbones.split(",") if args.backbones else None
        rows(names, args.tasks.split(","), [int(s) for s in args.seeds.split(",")], args.quick)
    if args.latency:
        latency()
    if args.report or not (args.prepare or args.rows or args.latency):
        report()


if __name__ == "__main__":
    sys.exit(main())
