"""Inference latency of hrnas models against the backbones a user would otherwise pick, side by side.

In one run, on the machine it runs on: every hrnas supernet and zoo model (eval mode and the ``hrnas.deploy``
form), timm's ``hrnet_w18_small`` and ``mobilenetv4_conv_small`` (both ``features_only``: the backbones a dense-
prediction user would take), at 224x224, 256x192, 512x512 and 512x1024, batch 1 and 8. For each: the median
latency over repeated runs after a warm-up, the MACs (fvcore, paper convention), the achieved GMAC/s, and that as a
fraction of this machine's fp32 matmul peak, measured in the same run.

    python benchmarks/latency.py            # full table (tens of minutes on 2 cores)
    python benchmarks/latency.py --quick    # smoke test: two models, one size, one run each

Writes benchmarks/results/latency.md, latency.csv and latency.png (latency against MACs).
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import time
import warnings
from pathlib import Path

import timm
import torch

import hrnas
from hrnas._files import atomic_path, write_atomic

RESULTS = Path(__file__).parent / "results"
SIZES = [(224, 224), (256, 192), (512, 512), (512, 1024)]
BATCHES = [1, 8]


def matmul_peak(seconds: float = 3.0) -> float:
    """The best fp32 GMAC/s of square matmuls on this machine (several sizes, median of repeats)."""
    best = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        times, t_end = [], time.perf_counter() + seconds / 3
        while time.perf_counter() < t_end or len(times) < 3:
            t0 = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - t0)
        best = max(best, n**3 / statistics.median(times) / 1e9)
    return best


def timed(fn, budget_s: float, min_runs: int = 2, max_runs: int = 5) -> float:
    """Median seconds of ``fn`` after one warm-up run; stops after ``budget_s`` once ``min_runs`` are done."""
    fn()
    times, start = [], time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def candidates(quick: bool):
    """(label, factory, is_hrnas) for every model in the comparison."""
    names = ["hrnas_supernet_tiny_seg"] if quick else [n for n in hrnas.list_models() if n != "hrnas_custom"]
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
    p.add_argument("--quick", action="store_true", help="smoke test: tiny, one size, one batch, one run")
    p.add_argument("--budget", type=float, default=8.0, help="seconds of timed runs per configuration (after 2)")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_grad_enabled(False)
    sizes, batches = ([(224, 224)], [1]) if args.quick else (SIZES, BATCHES)
    budget = 0.0 if args.quick else args.budget
    peak = matmul_peak(0.5 if args.quick else 3.0)
    print(f"fp32 matmul peak: {peak:.1f} GMAC/s on {torch.get_num_threads()} threads")
    rows = []
    for label, factory, is_hrnas in candidates(args.quick):
        base = factory().eval()
        for size in sizes:
            macs = hrnas.profile(base, size).macs  # batch 1; features wrappers skip classification heads
            forms = [("eval", base)]
            if is_hrnas:
                forms.append(("deploy", hrnas.deploy(base, input_size=size, batch_size=1)))
            for batch in batches:
                for form, model in forms:
                    fmt = getattr(model, "memory_format", torch.contiguous_format)
                    x = torch.randn(batch, 3, *size).contiguous(memory_format=fmt)
                    with torch.inference_mode():
                        sec = timed(lambda m=model, x=x: m(x), budget, min_runs=1 if args.quick else 2)
                    gmacs = macs * batch / sec / 1e9
                    row = dict(model=label, form=form, input=f"{size[0]}x{size[1]}", batch=batch,
                               latency_ms=round(sec * 1e3, 2), gmacs_per_image=round(macs / 1e9, 4),
                               achieved_gmac_s=round(gmacs, 2), peak_fraction=round(gmacs / peak, 3))  # fmt: skip
                    rows.append(row)
                    print(row, flush=True)
    write(rows, peak, Path(args.out), args.quick)


def write(rows: list[dict], peak: float, out: Path, quick: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if quick else ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / f"latency{suffix}.csv", buf.getvalue())
    lines = [
        "# Inference latency",
        "",
        f"Machine: {_machine()}; fp32 matmul peak measured in the same run: "
        f"**{peak:.1f} GMAC/s**. Median latency after a warm-up; MACs in the paper convention (fvcore) per image;",
        "`deploy` = `hrnas.deploy` (BatchNorm folded, depthwise form and memory format tuned on this machine).",
        "timm backbones are `features_only` (no head), as a dense-prediction user would take them.",
        f"Produced by `python benchmarks/latency.py{' --quick' if quick else ''}`.",
        "",
        "| model | form | input | batch | latency (ms) | GMACs / image | GMAC/s | of peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['form']} | {r['input']} | {r['batch']} | {r['latency_ms']} | "
            f"{r['gmacs_per_image']} | {r['achieved_gmac_s']} | {r['peak_fraction']:.1%} |"
        )
    write_atomic(out / f"latency{suffix}.md", "\n".join(lines) + "\n")
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
    ax.set_title(f"latency against MACs ({_machine()})", fontsize=9)
    ax.legend(fontsize=6, loc="upper left")
    with atomic_path(out / f"latency{suffix}.png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")


def _machine() -> str:
    from hrnas._measure import cpu_name

    return f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


if __name__ == "__main__":
    main()
