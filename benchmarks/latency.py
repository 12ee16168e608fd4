"""Inference latency of hrnas models against the backbones a user would otherwise pick, side by side.

In one run, on the machine it runs on: every hrnas supernet and zoo model (eval mode and the ``hrnas.deploy``
form), timm's ``hrnet_w18_small`` and ``mobilenetv4_conv_small`` (both ``features_only``: the backbones a dense-
prediction user would take), at 224x224, 256x192, 512x512 and 512x1024, batch 1 and 8. For each: the median
latency over ``--rounds`` rounds in which a model's forms are timed side by side (one untimed and one timed run per
visit: ``_common.time_side_by_side``), the MACs (fvcore, paper convention), the achieved GMAC/s, and that as a
fraction of this machine's fp32 matmul peak, measured in the same run.

    python benchmarks/latency.py            # full table (every model, size and batch: long)
    python benchmarks/latency.py --quick    # smoke test: two models, one size, one round each
    python benchmarks/latency.py --models hrnas_seg_a,hrnas_seg_b --batches 1   # re-time some models (see below)

``--models`` re-times only the named hrnas models, with the timm backbones beside them in the same run, and merges:
their rows replace the named models' earlier rows, every other row stays, and each row says when it was measured
(the ``measured`` column), so latencies are compared within one run. Use it when a model's architecture changed:
the zoo table shows rows only for the architecture they were timed on.

Then, for the seg supernet at 512x1024, batch 1 (``--quick``: the tiny one at 224x224), the forms side by side
(the per-path reference block in eval mode, the fused block, each in both memory formats, and the deploy form), and
where the time goes: every convolution timed by hooks, grouped by kind, with its MACs and achieved GMAC/s.

Writes benchmarks/results/latency.md, latency.csv and latency.png (latency against MACs), and latency_forms.md.
"""

from __future__ import annotations

import argparse
import copy
import csv
import functools
import statistics
import time
import warnings
from pathlib import Path
from typing import Sequence

import timm
import torch
from _common import RESULTS, machine, markdown_table, time_side_by_side, write_csv, write_markdown

import hrnas
from hrnas.files import atomic_path
from hrnas.timing import median_time

CPU = torch.device("cpu")
SIZES = [(224, 224), (256, 192), (512, 512), (512, 1024)]
BATCHES = [1, 8]


def matmul_peak(seconds: float = 3.0) -> float:
    """The best fp32 GMAC/s of square matmuls on this machine (several sizes, median of repeats)."""
    best = 0.0
    for n in (512, 1024, 2048):
        mm = functools.partial(torch.mm, torch.randn(n, n), torch.randn(n, n))
        once = median_time(mm, CPU, repeats=1, warmup=1)
        repeats = max(3, int(seconds / 3 / max(once, 1e-9)))  # about a third of the time on each size
        best = max(best, n**3 / median_time(mm, CPU, repeats=repeats, warmup=0) / 1e9)
    return best


def side_by_side(models: dict, x: torch.Tensor, rounds: int) -> dict:
    """Median seconds of each ``name: (model, memory format)``, timed side by side in rounds (one untimed and one
    timed call per visit), so that a change in the machine's speed during the run hits every form alike."""
    inputs = {name: x.contiguous(memory_format=fmt) for name, (_, fmt) in models.items()}
    calls = {name: (lambda m=model, xx=inputs[name]: m(xx)) for name, (model, _) in models.items()}
    return time_side_by_side(calls, rounds)


def conv_kind(conv: torch.nn.Conv2d) -> str:
    k = conv.kernel_size[0] * conv.kernel_size[1]
    if conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels:
        return f"depthwise {conv.kernel_size[0]}x{conv.kernel_size[1]}"
    if conv.groups > 1:
        return "grouped 1x1 (residual)" if k == 1 else "grouped"
    return "dense 1x1" if k == 1 else "dense kxk (stem, heads)"


def conv_breakdown(model: torch.nn.Module, x: torch.Tensor, runs: int = 3) -> tuple[list[dict], float]:
    """Seconds and MACs per kind of convolution in one forward (medians over ``runs`` after a warm-up), and the
    whole forward's seconds; each conv is timed by a pre- and a post-hook (on a CPU the call is synchronous)."""
    started: dict = {}
    run: dict = {}  # kind -> [seconds, macs, calls] of the current forward

    def before(mod, inputs):
        started[mod] = time.perf_counter()

    def after(mod, inputs, out):
        dt = time.perf_counter() - started.pop(mod)
        entry = run.setdefault(conv_kind(mod), [0.0, 0, 0])
        entry[0] += dt
        entry[1] += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        entry[2] += 1

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks += [m.register_forward_pre_hook(before), m.register_forward_hook(after)]
    per_run, totals = [], []
    try:
        model(x)  # warm-up
        for _ in range(runs):
            run.clear()
            t0 = time.perf_counter()
            model(x)
            totals.append(time.perf_counter() - t0)
            per_run.append({k: list(v) for k, v in run.items()})
    finally:
        for h in hooks:
            h.remove()
    rows = [
        dict(kind=kind, calls=per_run[0][kind][2], macs=per_run[0][kind][1],
             seconds=statistics.median(r[kind][0] for r in per_run))
        for kind in sorted(per_run[0])
    ]  # fmt: skip
    return rows, statistics.median(totals)


def layout_study(quick: bool, peak: float) -> dict:
    """The forms of one network side by side, and where the deploy and reference forms spend their time."""
    from hrnas.layers import MixedKernelBlock
    from hrnas.layers.fused import to_fused

    name, size = ("hrnas_supernet_tiny_seg", (224, 224)) if quick else ("hrnas_supernet_seg", (512, 1024))
    base = hrnas.create_model(name).eval()
    macs = hrnas.profile(base, size).macs
    fused = to_fused(base).eval()
    cl = torch.channels_last
    deployed = hrnas.deploy(base, input_size=size, batch_size=1)
    # one copy per memory format: a conv whose weights are channels_last runs channels_last whatever its input
    forms = {
        "3-path (reference), eval, NCHW": (base, torch.contiguous_format),
        "fused, eval, NCHW": (fused, torch.contiguous_format),
        "3-path, eval, channels_last": (copy.deepcopy(base).to(memory_format=cl), cl),
        "fused, eval, channels_last": (copy.deepcopy(fused).to(memory_format=cl), cl),
        "deploy": (deployed, deployed.memory_format),
    }
    x = torch.randn(1, 3, *size)
    with torch.inference_mode():
        times = side_by_side(forms, x, rounds=1 if quick else 5)
        kinds = {}
        for form in ("3-path (reference), eval, NCHW", "deploy"):
            model, fmt = forms[form]
            kinds[form] = conv_breakdown(model, x.contiguous(memory_format=fmt), runs=1 if quick else 3)
    multi = [m for m in deployed.modules() if isinstance(m, MixedKernelBlock) and len(m.spec.paths) > 1]
    merged = sum(1 for m in multi if len(m.paths) == 1)
    return dict(model=name, size=size, macs=macs, times=times, kinds=kinds, peak=peak, merged=(merged, len(multi)),
                deploy_format=deployed.memory_format)  # fmt: skip


def candidates(quick: bool, only: Sequence[str] = ()):
    """(label, factory, is_hrnas) for every model in the comparison (``only``: these hrnas models)."""
    names = ["hrnas_supernet_tiny_seg"] if quick else [n for n in hrnas.list_models() if n != "hrnas_custom"]
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise SystemExit(f"--models: unknown hrnas models {unknown}; choose from {names}")
        names = list(only)
    out = [(n, lambda n=n: hrnas.create_model(n), True) for n in names]
    out.append(
        ("timm hrnet_w18_small (features)", lambda: timm.create_model("hrnet_w18_small", features_only=True), False)
    )
    if not quick:
        out.append(
            ("timm mobilenetv4_conv_small (features)",
             lambda: timm.create_model("mobilenetv4_conv_small", features_only=True), False)
        )  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: tiny, one size, one batch, one round")
    p.add_argument("--rounds", type=int, default=5, help="rounds of timed runs per configuration (median)")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--forms-only", action="store_true", help="only the forms of the seg supernet (latency_forms.md)")
    p.add_argument(
        "--models",
        default="",
        help="only these hrnas models (comma-separated), beside the timm backbones; merged into the existing results",
    )
    p.add_argument("--batches", default="", help="only these batch sizes (comma-separated), e.g. 1: the zoo table's")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_grad_enabled(False)
    only = [m for m in args.models.split(",") if m]
    sizes, batches = ([(224, 224)], [1]) if args.quick else (SIZES, BATCHES)
    if args.batches:
        batches = [int(b) for b in args.batches.split(",")]
    rounds = 1 if args.quick else args.rounds
    peak = matmul_peak(0.5 if args.quick else 3.0)
    print(f"fp32 matmul peak: {peak:.1f} GMAC/s on {torch.get_num_threads()} threads")
    if args.forms_only:
        write_study(layout_study(args.quick, peak), Path(args.out), args.quick)
        return
    rows = []
    measured = time.strftime("%Y-%m-%d")
    for label, factory, is_hrnas in candidates(args.quick, only):
        base = factory().eval()
        for size in sizes:
            macs = hrnas.profile(base, size).macs  # batch 1; features wrappers skip classification heads
            forms = [("eval", base)]
            if is_hrnas:
                forms.append(("deploy", hrnas.deploy(base, input_size=size, batch_size=1)))
            for batch in batches:
                x = torch.randn(batch, 3, *size)
                models = {form: (m, getattr(m, "memory_format", torch.contiguous_format)) for form, m in forms}
                with torch.inference_mode():
                    times = side_by_side(models, x, rounds)
                for form, sec in times.items():
                    gmacs = macs * batch / sec / 1e9
                    row = dict(model=label, form=form, input=f"{size[0]}x{size[1]}", batch=batch,
                               latency_ms=round(sec * 1e3, 2), gmacs_per_image=round(macs / 1e9, 4),
                               achieved_gmac_s=round(gmacs, 2), peak_fraction=round(gmacs / peak, 3),
                               arch_digest=base.arch.digest() if is_hrnas else "", measured=measured)  # fmt: skip
                    rows.append(row)
                    print(row, flush=True)
    if only:
        earlier = read_rows(Path(args.out) / f"latency{'_quick' if args.quick else ''}.csv")
        rows = [r for r in earlier if r["model"] not in only] + rows
        command = f" --models {args.models}" + (f" --batches {args.batches}" if args.batches else "")
        write(rows, peak, Path(args.out), args.quick, command=command)
        return
    write(rows, peak, Path(args.out), args.quick)
    print("layout study", flush=True)
    write_study(layout_study(args.quick, peak), Path(args.out), args.quick)


def write_study(study: dict, out: Path, quick: bool) -> None:
    suffix = "_quick" if quick else ""
    head = [
        f"# Forms of {study['model']} at {study['size'][0]}x{study['size'][1]}, batch 1",
        "",
        f"Machine: {machine(threads=True)}; fp32 matmul peak measured in the same run: **{study['peak']:.1f} GMAC/s**.",
        f"Produced by `python benchmarks/latency.py{' --quick' if quick else ''}` (alone: `--forms-only`).",
    ]
    write_markdown(out / f"latency_forms{suffix}.md", head + study_lines(study))


def study_lines(study: dict) -> list[str]:
    ref = study["times"]["3-path (reference), eval, NCHW"]
    lines = [
        "",
        "Timed side by side in rounds (median). `3-path` is the block as built (one expand, depthwise and project conv",
        "per kernel path, the original's layout); `fused` = one expand conv for all paths, a depthwise conv per kernel",
        "group, one project conv over the concatenation (the same function); `deploy` = `hrnas.deploy` (BatchNorm",
        "folded, per block separate or zero-padded merged paths as measured faster, memory format measured).",
        "",
    ]
    table = []
    for form, sec in study["times"].items():
        gmacs = study["macs"] / sec / 1e9
        table.append([form, f"{1e3 * sec:.1f}", f"{ref / sec:.2f}x", f"{gmacs:.1f}", f"{gmacs / study['peak']:.1%}"])
    lines += markdown_table(["form", "latency (ms)", "speed-up over the reference", "GMAC/s", "of peak"], table)
    t = study["times"]
    lines += [
        "",
        f"Fused vs 3-path: {t['3-path (reference), eval, NCHW'] / t['fused, eval, NCHW']:.2f}x in NCHW, "
        f"{t['3-path, eval, channels_last'] / t['fused, eval, channels_last']:.2f}x in channels_last. "
        f"Deploy vs plain eval mode: {ref / t['deploy']:.2f}x (it merged the kernel paths of "
        f"{study['merged'][0]} of {study['merged'][1]} multi-path blocks, and runs in "
        f"{'channels_last' if study['deploy_format'] == torch.channels_last else 'NCHW'}).",
    ]
    for form, (rows, total) in study["kinds"].items():
        conv_s = sum(r["seconds"] for r in rows)
        all_macs = sum(r["macs"] for r in rows)
        table = []
        for r in sorted(rows, key=lambda r: -r["seconds"]):
            rate = r["macs"] / max(r["seconds"], 1e-9) / 1e9
            table.append(
                [r["kind"], r["calls"], f"{1e3 * r['seconds']:.1f}", f"{r['seconds'] / total:.1%}",
                 f"{r['macs'] / 1e9:.3f}", f"{r['macs'] / all_macs:.1%}", f"{rate:.1f}", f"{rate / study['peak']:.1%}"]
            )  # fmt: skip
        header = ["kind", "calls", "ms", "share of time", "GMACs", "share of MACs", "GMAC/s", "of peak"]
        lines += ["", f"## Where the time goes: {form} ({1e3 * total:.1f} ms with a hook on every conv)", ""]
        lines += markdown_table(header, table)
        lines.append(
            f"| everything else (attention, resizes, additions, activations) | | {1e3 * (total - conv_s):.1f} | "
            f"{(total - conv_s) / total:.1%} | | | | |"
        )
    return lines


_NUMBERS = {"batch": int, "latency_ms": float, "gmacs_per_image": float, "achieved_gmac_s": float,
            "peak_fraction": float}  # fmt: skip


def read_rows(path: Path) -> list[dict]:
    """The rows of an earlier run's CSV (numbers as numbers; rows from before the ``measured`` column: ``''``)."""
    if not path.is_file():
        raise SystemExit(f"--models merges into {path}, which does not exist: run the full benchmark once first")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.update({k: cast(r[k]) for k, cast in _NUMBERS.items()})
        r.setdefault("measured", "")
    return rows


def write(rows: list[dict], peak: float, out: Path, quick: bool, command: str = "") -> None:
    suffix = "_quick" if quick else ""
    write_csv(out / f"latency{suffix}.csv", rows)
    runs = sorted({r.get("measured") or "" for r in rows})
    lines = [
        "# Inference latency",
        "",
        f"Machine: {machine(threads=True)}; fp32 matmul peak measured in the same run: "
        f"**{peak:.1f} GMAC/s**. Median latency after a warm-up; MACs in the paper convention (fvcore) per image;",
        "`deploy` = `hrnas.deploy` (BatchNorm folded, depthwise form and memory format tuned on this machine).",
        "timm backbones are `features_only` (no head), as a dense-prediction user would take them.",
        f"Produced by `python benchmarks/latency.py{' --quick' if quick else ''}{command}`.",
    ]
    if len(runs) > 1:
        lines.append(
            f"The rows come from {len(runs)} runs (`measured`; blank: the first full run), each of which timed the "
            "timm backbones beside its hrnas models: compare latencies within one run (`of peak` uses each run's "
            "own peak; the one above is the latest run's)."
        )
    lines.append("")
    header = ["model", "form", "input", "batch", "latency (ms)", "GMACs / image", "GMAC/s", "of peak", "measured"]
    keys = ["model", "form", "input", "batch", "latency_ms", "gmacs_per_image", "achieved_gmac_s"]
    lines += markdown_table(
        header, ([*(r[k] for k in keys), f"{r['peak_fraction']:.1%}", r.get("measured") or ""] for r in rows)
    )
    write_markdown(out / f"latency{suffix}.md", lines)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, label in enumerate(sorted({r["model"] for r in rows})):
        for form, marker in (("eval", "o"), ("deploy", "s")):
            pts = [r for r in rows if r["model"] == label and r["form"] == form]
            if pts:
                ax.scatter([r["gmacs_per_image"] * r["batch"] for r in pts], [r["latency_ms"] for r in pts],
                           marker=marker, color=f"C{i}", label=f"{label} ({form})", s=22)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("GMACs per call (batch x per image)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"latency against MACs ({machine(threads=True)})", fontsize=9)
    ax.legend(fontsize=6, loc="upper left")
    with atomic_path(out / f"latency{suffix}.png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main()
