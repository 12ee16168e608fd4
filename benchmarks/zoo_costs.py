"""Parameters and MACs of every registered hrnas model at its own resolution, counted two ways; for the searched
zoo, the budget it was searched to, the share of it used, its weights tags and the metric they reached.

Writes benchmarks/results/zoo_costs.md and .csv. "MACs (paper)" is fvcore's trace in the paper convention
(conv + linear + attention matmuls), "analytic" the count from the Arch integers that the search uses (they must
agree), and "MACs (full)" adds BatchNorm, resizes and pooling.

    python benchmarks/zoo_costs.py
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import timm

import hrnas
from hrnas._files import write_atomic
from hrnas.archs import zoo_entries, zoo_entry
from hrnas.search.budget import parse_amount

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    rows = []
    for name in hrnas.list_models():
        if name == "hrnas_custom":
            continue
        model = hrnas.create_model(name)
        size = tuple(model.pretrained_cfg["input_size"][-2:])
        paper = hrnas.profile(model, size)
        full = hrnas.profile(model, size, convention="full")
        analytic = hrnas.count_macs(model.arch, size)
        record = zoo_entry(name)["record"] if name in zoo_entries() else {}
        budget = parse_amount(record["budget"]) if record.get("budget") else None
        metric = record.get("proxy_metric") or {}
        tags = [t for t in timm.list_pretrained(f"{name}.*") if "." in t]
        rows.append(
            dict(
                model=name,
                input=f"{size[0]}x{size[1]}",
                params=paper.params,
                macs_paper=paper.macs,
                macs_analytic=analytic,
                macs_full=full.macs,
                blocks=len(model.arch.blocks()),
                hidden_channels=sum(b.hidden for b in model.arch.blocks()),
                budget=budget or "",
                budget_used=f"{paper.macs / budget:.3f}" if budget else "",
                weights=" ".join(tags),
                metric=f"{metric['name']} {metric['value']:.3f}" if tags and metric.get("value") is not None else "",
            )
        )
        print(f"{name:<26} {paper}")

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_atomic(RESULTS / "zoo_costs.csv", buf.getvalue())

    lines = [
        "# hrnas model costs",
        "",
        "MACs are multiply-accumulates (what HR-NAS and most NAS papers call FLOPs). 'paper' = conv + linear +",
        "attention matmuls (fvcore trace); 'analytic' = count from the Arch integers (used by the search);",
        "'full' = paper + BatchNorm + resizes + pooling. Each model at its default configuration (for the searched",
        "zoo, the one its budget is stated for). 'metric' is what the weights reached on their own (proxy) data.",
        "Produced by `python benchmarks/zoo_costs.py`.",
        "",
        "| model | input | params (M) | GMACs paper | GMACs analytic | GMACs full | budget used | weights | metric |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        used = f"{float(r['budget_used']):.1%} of {r['budget'] / 1e9:.3g}G" if r["budget"] else ""
        lines.append(
            f"| {r['model']} | {r['input']} | {r['params'] / 1e6:.3f} | {r['macs_paper'] / 1e9:.4f} | "
            f"{r['macs_analytic'] / 1e9:.4f} | {r['macs_full'] / 1e9:.4f} | {used} | {r['weights']} | {r['metric']} |"
        )
    write_atomic(RESULTS / "zoo_costs.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
