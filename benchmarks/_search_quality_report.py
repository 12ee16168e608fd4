"""The report of ``benchmarks/search_quality.py`` from its runs' rows: the settings, the results per method, the
differences of means set against the seed spread (``search_quality.md``), every run with its architecture
(``.csv``) and the plot of metric against MACs and latency (``.png``)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from _common import CALIB_BATCHES, machine, markdown_table, write_csv, write_markdown

from hrnas.files import atomic_path

# the methods compared, in the report's order
SEARCH = "search"
RETRAINED = "search, retrained"
EQUAL = "search, equal penalty"
NO_TF = "search, no transformers"
UNIFORM = "uniform width"
RANDOM = "random"
METHOD_ORDER = [SEARCH, RETRAINED, EQUAL, NO_TF, UNIFORM, RANDOM]
MARKERS = {SEARCH: "o", RETRAINED: "s", EQUAL: "v", NO_TF: "^", UNIFORM: "D", RANDOM: "x"}

# the per-run columns of the CSV, before the architecture
FIELDS = ["task", "method", "arch_id", "seed", "metric", "macs", "params", "hidden", "tokens", "latency_ms",
          "latency_deploy_ms", "steps", "train_s", "arch"]  # fmt: skip


def _stats(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(rows: list[dict]) -> list[dict]:
    """One row per (task, method, and for random each architecture as well as all of them together)."""
    out = []
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["task"], r["method"]), []).append(r)
        if r["method"] == RANDOM:
            groups.setdefault((r["task"], r["arch_id"]), []).append(r)
    for (task, label), rs in groups.items():
        metric = [r["metric"] for r in rs]
        m, sd = _stats(metric)
        out.append(
            dict(
                task=task,
                method=label,
                runs=len(rs),
                archs=len({json.dumps(r["arch"], sort_keys=True) for r in rs}),
                metric=m,
                metric_sd=sd,
                metric_min=min(metric),
                metric_max=max(metric),
                macs=statistics.fmean(r["macs"] for r in rs),
                params=statistics.fmean(r["params"] for r in rs),
                tokens=statistics.fmean(r["tokens"] for r in rs),
                latency_ms=statistics.median(r["latency_ms"] for r in rs),
                latency_deploy_ms=statistics.median(r["latency_deploy_ms"] for r in rs),
                train_s=statistics.fmean(r["train_s"] for r in rs),
            )
        )

    def order(s):
        base = s["method"].split(" #")[0]
        return (s["task"], METHOD_ORDER.index(base), s["method"])

    return sorted(out, key=order)


def comparisons(summary: list[dict]) -> list[list[str]]:
    """Differences of means, set against the seed spread (largest standard deviation of the two): the cells of the
    report's table."""
    rows = []
    pairs = [
        (SEARCH, UNIFORM),
        (SEARCH, RANDOM),
        (RETRAINED, UNIFORM),
        (RETRAINED, RANDOM),
        (SEARCH, RETRAINED),
        (SEARCH, EQUAL),
        (SEARCH, NO_TF),
    ]
    by = {(s["task"], s["method"]): s for s in summary}
    for task in dict.fromkeys(s["task"] for s in summary):
        for a, b in pairs:
            if (task, a) not in by or (task, b) not in by:
                continue
            sa, sb = by[(task, a)], by[(task, b)]
            diff = sa["metric"] - sb["metric"]
            # random's spread mixes architectures and seeds; the seed spread is what one arch varies by
            if b == RANDOM:
                per_arch = [
                    s["metric_sd"] for s in summary if s["task"] == task and s["method"].startswith(RANDOM + " #")
                ]
                spread = max([sa["metric_sd"], *per_arch])
            else:
                spread = max(sa["metric_sd"], sb["metric_sd"])
            verdict = "n/a (1 seed)" if spread == 0 else ("yes" if abs(diff) > spread else "no")
            if b == RANDOM:
                means = [s["metric"] for s in summary if s["task"] == task and s["method"].startswith(RANDOM + " #")]
                verdict += f"; above {sum(sa['metric'] > m for m in means)} of {len(means)} random archs"
            rows.append(
                [task, a, b, f"{100 * diff:+.2f}", f"{100 * spread:.2f}", verdict, f"{sa['macs'] / sb['macs']:.3f}"]
            )
    return rows


def write_report(rows: list[dict], meta: dict, out: Path, suffix: str) -> None:
    """``search_quality{suffix}.csv``, ``.md`` and ``.png`` from the runs' rows and the run's ``meta`` (its command,
    settings ``conf``, seeds, budgets, fitted baselines, steps and MACs tolerance, timings, load and latency rounds)."""
    ordered = sorted(rows, key=lambda r: (r["task"], r["method"], r["arch_id"], r["seed"]))
    write_csv(out / f"search_quality{suffix}.csv", ordered, FIELDS)
    summary = summarise(rows)
    conf = meta["conf"]
    import hrnas

    d = hrnas.SearchConfig()

    lines = [
        "# Search quality: hrnas.search against uniform scaling and random architectures at equal MACs",
        "",
        f"Produced by `{meta['command']}` in {meta['train_min']:.1f} min of training and {meta['lat_min']:.1f} min of "
        f"latency measurement ({machine()}; {meta['args']['workers']} training processes x {meta['args']['threads']} "
        f"threads; 1-minute load average {meta['load'][0]:.1f} at the start, {meta['load'][1]:.1f} at the end).",
        "",
        "## Settings",
        "",
        f"Seeds {meta['seeds']} (initialisation, data order, per-step randomness; the data and its augmentation are "
        f"the same for every run). Every run: SGD (momentum {d.momentum}, Nesterov), peak lr {conf['train']['lr']}, "
        f"cosine schedule with warm-up, batch {conf['train']['batch_size']}, weight decay {d.weight_decay}, gradient "
        f"clip {d.grad_clip}, EMA (decay {d.ema_decay} at batch 4096) evaluated after BatchNorm re-calibration on "
        f"{CALIB_BATCHES} batches, channels_last; searches: proximal L1, budget mode (the cost reaches the budget at "
        f"{d.reach:.0%} of the run).",
        "",
    ]
    table = []
    for task, t in conf["tasks"].items():
        full, budget = meta["budgets"][task]
        target = meta["fitted"].get(task, {}).get("target", float("nan"))
        data = (
            f"{t['train']} / {t['val']} scenes"
            if task == "seg"
            else f"{10 * t['train']} / {10 * t['val']} images (balanced)"
        )
        table.append(
            [task, t["space"], f"{t['size']}x{t['size']}", data, t["epochs"], meta["steps"][task],
             f"{full / 1e6:.2f}", f"{budget / 1e6:.2f}", f"{target / 1e6:.2f}"]
        )  # fmt: skip
    header = ["task", "space", "input", "data (train / val)", "epochs", "steps", "supernet MMACs", "budget MMACs",
              "baseline target MMACs"]  # fmt: skip
    lines += markdown_table(header, table)
    metric_names = {task: t["metric"] for task, t in conf["tasks"].items()}
    lines += [
        "",
        "Methods: `search` = hrnas.search at the budget (cost-weighted penalty, tokens searched), its own inherited "
        "weights; `search, retrained` = that architecture from a fresh initialisation; `search, equal penalty` = "
        "every unit penalised alike (network slimming); `search, no transformers` = the search in the supernet "
        "without transformers at the same budget; `uniform width` = one keep fraction for every kernel path of "
        "every block and every transformer's tokens (tokens rounded, then the channel fraction re-solved so the "
        "MACs match); `random #i` = independent uniform keep fractions per path and per transformer, scaled "
        f"together to the MACs. Uniform and random networks are fitted to the mean MACs of the `search` runs "
        f"(within {meta['tolerance']:.0%}) and trained by the same loop with nothing penalised or removed.",
        "",
        "## Results",
        "",
        f"Metric: {', '.join(f'{k} {v}' for k, v in metric_names.items())} on the validation set, in %; mean ± "
        f"standard deviation over runs [min, max]. Latency: batch 1, per network the median over {meta['rounds']} "
        f"rounds of the median of {meta['reps']} runs, all networks of a task measured round-robin in one "
        f"process with {meta['args']['latency_threads']} thread(s); `eval` = the network in eval mode, `deploy` = "
        "`hrnas.deploy` (BatchNorm folded, tuned kernel-path form and layout). `tokens` = tokens over all "
        "transformers.",
        "",
    ]
    table = [
        [s["task"], s["method"], s["runs"], s["archs"],
         f"{100 * s['metric']:.2f} ± {100 * s['metric_sd']:.2f} [{100 * s['metric_min']:.2f}, "
         f"{100 * s['metric_max']:.2f}]", f"{s['macs'] / 1e6:.2f}", f"{s['params'] / 1e6:.3f}", f"{s['tokens']:.0f}",
         f"{s['latency_ms']:.2f}", f"{s['latency_deploy_ms']:.2f}", f"{s['train_s']:.0f}"]
        for s in summary
    ]  # fmt: skip
    header = ["task", "method", "runs", "archs", "metric (%)", "MMACs", "params (M)", "tokens", "latency eval (ms)",
              "latency deploy (ms)", "train (s)"]  # fmt: skip
    lines += markdown_table(header, table)
    lines += [
        "",
        "## Differences",
        "",
        "Difference of the mean metric (percentage points, first minus second) against the seed spread (the larger "
        "standard deviation of the two; for random, the largest per-architecture one), and the MACs ratio.",
        "",
        *markdown_table(
            ["task", "method", "against", "difference (pts)", "seed spread (pts)", "larger than spread", "MACs ratio"],
            comparisons(summary),
        ),
        "",
        f"Per-run numbers and every architecture: `search_quality{suffix}.csv`. Plot: `search_quality{suffix}.png`.",
    ]
    write_markdown(out / f"search_quality{suffix}.md", lines)
    plot(rows, summary, conf, out / f"search_quality{suffix}.png")


def plot(rows: list[dict], summary: list[dict], conf: dict, path: Path) -> None:
    """Metric against MACs (top row) and against deploy-form latency (bottom row), one marker per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(conf["tasks"])
    fig, axes = plt.subplots(2, len(tasks), figsize=(6.5 * len(tasks), 9), squeeze=False)
    colors = {m: f"C{i}" for i, m in enumerate(METHOD_ORDER)}
    for col, task in enumerate(tasks):
        t = conf["tasks"][task]
        for row, (key, scale, xlabel) in enumerate(
            [("macs", 1e-6, f"MMACs at {t['size']}x{t['size']}"), ("latency_deploy_ms", 1.0, "deploy latency (ms)")]
        ):
            ax = axes[row][col]
            for method in METHOD_ORDER:
                rs = [r for r in rows if r["task"] == task and r["method"] == method]
                if not rs:
                    continue
                ax.scatter(
                    [r[key] * scale for r in rs],
                    [100 * r["metric"] for r in rs],
                    marker=MARKERS[method],
                    color=colors[method],
                    alpha=0.35,
                    s=22,
                )
                labels = [method] if method != RANDOM else sorted({r["arch_id"] for r in rs})
                for i, label in enumerate(labels):
                    s = next(x for x in summary if x["task"] == task and x["method"] == label)
                    ax.errorbar(
                        s[key] * scale,
                        100 * s["metric"],
                        yerr=100 * s["metric_sd"],
                        marker=MARKERS[method],
                        color=colors[method],
                        markersize=8,
                        capsize=3,
                        linestyle="none",
                        label=method if i == 0 else None,
                    )
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{t['metric']} (%)")
            ax.set_title(f"{task}: {t['space']}, {t['size']}x{t['size']} (mean ± sd; faint: single runs)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
