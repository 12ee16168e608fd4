"""How much a latency reading scatters when it is taken again: the question behind how long a search times its
final network (``latency_feedback=True``).

A latency table of the ``seg_tiny`` space at 64x64 (the search benchmarks' CPU preset), then three random networks
of 30-45 % of the supernet's predicted latency (where the benchmark searches end). Each network is read ten times in
a row the way the search reads it: side by side with the table's reference network (its calibration network of
median latency; ``hrnas.latency.measure_latencies``), in short readings (3 rounds of 7 runs: what the search takes
during the run) and long ones (5 rounds of 12 runs: what it takes for the final network). Every reading also times
a second reference, a random network of similar latency to the three, so that the scatter of the ratio to a
reference of similar size can be compared with the table's. Reported: the coefficient of variation (standard
deviation / mean) and the range (largest - smallest, over the median) of the raw times and of each ratio.

    python benchmarks/latency_scatter.py            # the time it took: benchmarks/results/latency_scatter.md
    python benchmarks/latency_scatter.py --quick    # smoke test: fewer readings

Writes benchmarks/results/latency_scatter.md and .csv (``--quick``: ``latency_scatter_quick.*``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from _common import RESULTS, markdown_table, write_csv, write_markdown

SIZE = (64, 64)
FORMS = {"short (3 rounds x 7)": (3, 7), "long (5 rounds x 12)": (5, 12)}


def networks(table, supernet, count: int):
    """``count`` random networks of 30-45 % of the supernet's predicted latency, and one more of about 37.5 % as
    the reference of similar size."""
    from hrnas.latency import random_arch

    full = table.predict(supernet)
    rng = random.Random(7)
    found, near = [], None
    for _ in range(10_000):
        if len(found) == count and near is not None:
            return found, near
        arch = random_arch(supernet, rng.uniform(0.0, 0.3), rng)
        share = table.predict(arch) / full
        if near is None and 0.36 <= share <= 0.39:
            near = arch
        elif 0.3 <= share <= 0.45 and len(found) < count:
            found.append(arch)
    raise RuntimeError("no random networks of 30-45 % of the supernet's predicted latency in 10,000 draws")


def spread(xs: list[float]) -> tuple[float, float]:
    """(coefficient of variation, range over median), in per cent."""
    return 100 * statistics.pstdev(xs) / statistics.fmean(xs), 100 * (max(xs) - min(xs)) / statistics.median(xs)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: 3 readings per network and form, 2 networks")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    import torch

    import hrnas
    from hrnas.latency import LatencyTable, measure_latencies

    began = time.perf_counter()
    readings, count = (3, 2) if args.quick else (10, 3)
    supernet = hrnas.create_supernet("seg", space="seg_tiny", transformers=True).arch
    table = LatencyTable.build(supernet, SIZE, "seg_tiny", repeats=2 if args.quick else 15, rounds=5)
    archs, near_arch = networks(table, supernet, count)
    torch.manual_seed(0)
    reference = hrnas.HRNASNet(hrnas.Arch.from_dict(table.reference["arch"]))
    near = hrnas.HRNASNet(near_arch)
    models = [hrnas.HRNASNet(a) for a in archs]
    rows = []
    for form, (rounds, reps) in FORMS.items():
        for i, model in enumerate(models):
            raw, to_table_ref, to_near_ref = [], [], []
            for _ in range(readings):
                t_ref, t_near, t = measure_latencies([reference, near, model], SIZE, 1, rounds, reps)
                raw.append(t)
                to_table_ref.append(t / t_ref)
                to_near_ref.append(t / t_near)
            row = dict(form=form, network=i, predicted_ms=round(table.predict(archs[i]), 2))
            row["median_ms"] = round(statistics.median(raw), 2)
            for name, xs in (("raw", raw), ("table_ref", to_table_ref), ("similar_ref", to_near_ref)):
                cv, rng = spread(xs)
                row[f"{name}_cv_pct"], row[f"{name}_range_pct"] = round(cv, 1), round(rng, 1)
            rows.append(row)
            print(row, flush=True)

    meta = dict(
        minutes=round((time.perf_counter() - began) / 60, 1),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        reference_ms=round(table.reference["ms"], 2),
        near_ms=round(table.predict(near_arch), 2),
        full_ms=round(table.predict(supernet), 2),
        readings=readings,
    )
    write(rows, meta, args.out, "_quick" if args.quick else "")


def write(rows: list[dict], meta: dict, out: Path, suffix: str) -> None:
    write_csv(out / f"latency_scatter{suffix}.csv", rows)
    flag = " --quick" if suffix else ""
    lines = [
        "# How much a latency reading scatters when taken again",
        "",
        f"Produced by `python benchmarks/latency_scatter.py{flag}` in {meta['minutes']} min ({meta['threads']} "
        f"threads, torch {meta['torch']}). seg_tiny at 64x64, batch 1, eval mode, channels_last; {meta['readings']} "
        f"readings in a row per network and form. The table's reference network: {meta['reference_ms']} ms at build "
        f"time; the reference of similar size: {meta['near_ms']} ms predicted; the supernet: {meta['full_ms']} ms "
        "predicted.",
        "",
        "Each cell: coefficient of variation / range over the median, per cent. The search reads a network as its "
        "ratio to the table's reference (middle column).",
        "",
    ]
    header = ["form", "network", "predicted ms", "median raw ms", "raw", "ratio to the table's reference",
              "ratio to a reference of similar size"]  # fmt: skip
    cells = [
        [r["form"], r["network"], r["predicted_ms"], r["median_ms"]]
        + [f"{r[f'{n}_cv_pct']} / {r[f'{n}_range_pct']}" for n in ("raw", "table_ref", "similar_ref")]
        for r in rows
    ]
    lines += [*markdown_table(header, cells), ""]
    for form in FORMS:
        rs = [r for r in rows if r["form"] == form]
        means = [statistics.fmean(r[f"{n}_cv_pct"] for r in rs) for n in ("raw", "table_ref", "similar_ref")]
        lines.append(
            f"- {form}: mean coefficient of variation {means[0]:.1f} % raw, {means[1]:.1f} % against the table's "
            f"reference, {means[2]:.1f} % against the reference of similar size."
        )
    write_markdown(out / f"latency_scatter{suffix}.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
