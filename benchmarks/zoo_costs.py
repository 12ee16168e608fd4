"""Parameters and MACs of every registered hrnas model at its own resolution, counted two ways; for the searched
zoo, the budget it was searched to, the share of it used, its weights tags and the metric they reached.

Writes benchmarks/results/zoo_costs.md and .csv. "MACs (paper)" is fvcore's trace in the paper convention
(conv + linear + attention matmuls), "analytic" the count from the Arch integers that the search uses (they must
agree), and "MACs (full)" adds BatchNorm, resizes and pooling. A searched model's budget is checked at the
configuration its record names (the seg budgets at 224x224, as the original code counts them). A second table is
the evidence for that size: uniform width of the ``seg_ade`` supernet at the paper's budgets counted at 224x224 and
at 512x512 (docs/conventions.md).

    python benchmarks/zoo_costs.py
"""

from __future__ import annotations

from _common import RESULTS, markdown_table, uniform_arch, write_csv, write_markdown

import hrnas
from hrnas.archs import zoo_entries, zoo_entry
from hrnas.catalog import catalog_entry
from hrnas.searching.budget import parse_amount


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
        named = record.get("named_configuration", {})
        budget_size = tuple(named.get("input_size", size))
        at_budget_size = hrnas.count_macs(model.arch, budget_size)
        metric = record.get("proxy_metric") or {}
        entry = catalog_entry(name)
        tags = [f"{name}.{t.tag}" for t in entry.tags] if entry else []  # built by `hrnas zoo-build`, not published
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
                budget_input=f"{budget_size[0]}x{budget_size[1]}" if budget else "",
                budget_used=f"{at_budget_size / budget:.3f}" if budget else "",
                weights=" ".join(tags),
                metric=f"{metric['name']} {metric['value']:.3f}" if tags and metric.get("value") is not None else "",
            )
        )
        print(f"{name:<26} {paper}")

    write_csv(RESULTS / "zoo_costs.csv", rows)
    lines = [
        "# hrnas model costs",
        "",
        "MACs are multiply-accumulates (what HR-NAS and most NAS papers call FLOPs). 'paper' = conv + linear +",
        "attention matmuls (fvcore trace); 'analytic' = count from the Arch integers (used by the search);",
        "'full' = paper + BatchNorm + resizes + pooling. Each model at its default configuration; 'budget used' is",
        "counted where the model's record states its budget (the seg budgets at 224x224, as the original code counts",
        "them). 'weights' are the tags `hrnas zoo-build NAME` makes (none is published); 'metric' is what the weights",
        "reached on their own (proxy) data.",
        "Produced by `python benchmarks/zoo_costs.py`.",
        "",
    ]
    table = []
    for r in rows:
        used = (
            f"{float(r['budget_used']):.1%} of {r['budget'] / 1e9:.3g}G at {r['budget_input']}" if r["budget"] else ""
        )
        table.append(
            [r["model"], r["input"], f"{r['params'] / 1e6:.3f}", f"{r['macs_paper'] / 1e9:.4f}",
             f"{r['macs_analytic'] / 1e9:.4f}", f"{r['macs_full'] / 1e9:.4f}", used, r["weights"], r["metric"]]
        )  # fmt: skip
    header = ["model", "input", "params (M)", "GMACs paper", "GMACs analytic", "GMACs full", "budget used",
              "weights", "metric"]  # fmt: skip
    lines += markdown_table(header, table)
    lines += ["", *budget_evidence()]
    write_markdown(RESULTS / "zoo_costs.md", lines)


def budget_evidence() -> list[str]:
    """Uniform width of the seg_ade supernet at the paper's ADE20K budgets, counted at 224x224 and at 512x512."""
    supernet = hrnas.get_space("seg_ade").supernet(transformers=False)
    rows = []
    for budget in (1.4e9, 2.2e9):
        for size in ((224, 224), (512, 512)):
            arch, keep = uniform_arch(supernet, budget, size)
            params, at224, at512 = (
                hrnas.count_params(arch),
                hrnas.count_macs(arch, (224, 224)),
                hrnas.count_macs(arch, (512, 512)),
            )
            rows.append(
                [f"{budget / 1e9:g} G", f"{size[0]}x{size[1]}", f"{keep:.1%}", f"{params / 1e6:.2f} M",
                 f"{at224 / 1e9:.2f} G", f"{at512 / 1e9:.2f} G"]
            )  # fmt: skip
    empty = supernet.with_blocks([b.replace(channels=tuple(0 for _ in b.channels)) for b in supernet.blocks()])
    return [
        "## The paper's ADE20K budgets counted at 224x224 and at 512x512",
        "",
        "Uniform width of the `seg_ade` supernet (150 classes) fitted to each budget at each size. The paper reports",
        "HR-NAS-A 1.4 G / 2.5 M params and HR-NAS-B 2.2 G / 3.9 M: only the 224x224 reading comes near.",
        "",
        *markdown_table(
            ["budget", "counted at", "keep fraction", "params", "MACs at 224x224", "MACs at 512x512"], rows
        ),
        "",
        f"The supernet's fixed parts (stem, fusions, residual convs, head) cost "
        f"{hrnas.count_macs(empty, (512, 512)) / 1e9:.2f} G at 512x512 and "
        f"{hrnas.count_macs(empty, (224, 224)) / 1e9:.2f} G at 224x224.",
    ]


if __name__ == "__main__":
    main()
