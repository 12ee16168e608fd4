"""MkDocs hooks: content generated at build time from the library and the committed benchmark results.

- ``<!-- hrnas:zoo-table -->`` (in zoo.md) becomes a table of every ``hrnas.list_models()`` entry: task, input
  size, classes, params, MACs at the model's ``pretrained_cfg`` input size, weights tags
  (``timm.list_pretrained``), and latency from ``benchmarks/results/latency.csv`` (else ``latency_quick.csv``).
- ``<!-- hrnas:benchmark-scripts -->`` (in benchmarks.md) becomes a table of ``benchmarks/*.py`` and the first
  paragraph of each one's docstring.
- ``<!-- hrnas:benchmark-results -->`` (in benchmarks.md) becomes every ``benchmarks/results/*.md`` table, each
  followed by its plot (``<same name>.png``) when there is one.
- ``<!-- hrnas:api-uncovered -->`` (in api/models.md) documents every name of ``hrnas.__all__`` that no API page
  lists yet.
- ``images/network_*.png`` are drawn from real ``Arch`` objects by ``draw_network.py``.

Nothing here is hard-coded about which models or results exist: a model registered or a benchmark committed
later shows up at the next build.
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import logging
import re
import warnings
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
ZOO_MARKER = "<!-- hrnas:zoo-table -->"
BENCH_MARKER = "<!-- hrnas:benchmark-results -->"
SCRIPTS_MARKER = "<!-- hrnas:benchmark-scripts -->"
API_MARKER = "<!-- hrnas:api-uncovered -->"
API_DIR = Path(__file__).resolve().parents[1] / "api"
# Benchmark tables in this order first (full runs before quick ones); any others follow alphabetically.
BENCH_ORDER = ("zoo_costs", "latency", "latency_quick", "search_cost", "search_cost_quick", "search_speedup")

log = logging.getLogger("mkdocs.hooks.hrnas")


def _draw_module():
    spec = importlib.util.spec_from_file_location(
        "hrnas_docs_draw_network", Path(__file__).with_name("draw_network.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- generated files ------------------------------------------------------------------------------------


def _networks() -> dict[str, tuple]:
    """Pictures of the index page: ``uri -> (arch factory, title)``."""
    import hrnas

    return {
        "images/network_hrnas_cls_a.png": (
            lambda: hrnas.create_model("hrnas_cls_a", num_classes=1000).arch,
            "hrnas_cls_a: the architecture the HR-NAS authors found for ImageNet",
        ),
        "images/network_seg_supernet.png": (
            lambda: hrnas.create_supernet("seg").arch,
            "hrnas.create_supernet('seg'): the segmentation search space at full width",
        ),
    }


def on_files(files: Files, config) -> Files:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        draw = _draw_module()
        for uri, (make_arch, title) in _networks().items():
            files.append(File.generated(config, uri, content=draw.draw(make_arch(), title)))
    for png in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"benchmarks/{png.name}", abs_src_path=str(png)))
    return files


# -- zoo table ------------------------------------------------------------------------------------------


def _latency_source() -> Path | None:
    for name in ("latency.csv", "latency_quick.csv"):
        if (RESULTS / name).is_file():
            return RESULTS / name
    return None


def _latencies(path: Path | None) -> dict[str, list[str]]:
    """``model -> ['224x224: 52.8 ms eval, 24.9 ms deploy', ...]`` (batch 1 rows only)."""
    out: dict[str, dict[str, list[str]]] = {}
    if path is None:
        return {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if str(row.get("batch", "1")) != "1":
                continue
            per_input = out.setdefault(row["model"], {})
            per_input.setdefault(row["input"], []).append(f"{float(row['latency_ms']):.1f} ms {row['form']}")
    return {m: [f"{size}: {', '.join(v)}" for size, v in d.items()] for m, d in out.items()}


def _machine_line(csv_path: Path) -> str:
    md = csv_path.with_suffix(".md")
    if md.is_file():
        for line in md.read_text().splitlines():
            if line.startswith("Machine:"):
                return line.split(";")[0].removeprefix("Machine:").strip()
    return ""


def _arch_cfgs(name: str) -> tuple[object, dict[str, object]]:
    """``(configuration the architecture was sized for, {tag: cfg of each weights tag})``.

    timm makes the first tag with weights the default of an architecture, so the untagged configuration (the
    classes and resolution a searched architecture's budget was stated for) is read from the registry's own
    ``default_cfgs`` when it has one.
    """
    import timm

    import hrnas

    default = timm.models.get_pretrained_cfg(name)
    with_weights = {n.partition(".")[2] for n in timm.list_pretrained(f"{name}.*")}
    registered = getattr(getattr(hrnas, "zoo", None), "default_cfgs", {}).get(name)
    cfgs = dict(getattr(registered, "cfgs", {}) or {})
    named = cfgs.get("", default)
    tags = {t: cfgs.get(t) or timm.models.get_pretrained_cfg(f"{name}.{t}") for t in sorted(with_weights) if t}
    return named, tags


def _tag_metric(name: str, tag: str, cfg) -> str:
    """What the weights reached, where the registry records it: the tag's ``notes``, or the metric in the zoo entry's
    record (``hrnas zoo-build`` saves the searched, trained network as the tag's weights, with its validation
    metric on the data the tag names)."""
    notes = getattr(cfg, "notes", None)
    if notes:
        return notes if isinstance(notes, str) else "; ".join(map(str, notes))
    try:
        from hrnas.archs import zoo_entry

        record = zoo_entry(name).get("record", {})
    except Exception:  # not a searched zoo architecture, or an hrnas without zoo entries
        return ""
    metric = record.get("proxy_metric") or {}
    if isinstance(metric, dict) and metric.get("value") is not None:
        return f"{metric.get('name', 'metric')} {float(metric['value']):.3f}"
    return ""


def zoo_table() -> str:
    import torch

    import hrnas

    lat_path = _latency_source()
    lat = _latencies(lat_path)
    rows = [
        "| model | configuration | params (M) | GMACs | about | weights: tag (classes, input) | latency, batch 1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in hrnas.list_models():
        named, tags = _arch_cfgs(name)
        about = (getattr(named, "description", "") or "").replace("|", "/")
        num_classes = getattr(named, "num_classes", None)
        try:
            with warnings.catch_warnings(), torch.device("meta"):
                warnings.simplefilter("ignore")
                model = hrnas.create_model(name, **({"num_classes": num_classes} if num_classes else {}))
        except TypeError:  # needs arguments (hrnas_custom: arch=)
            rows.append(f"| `{name}` | any | | | {about} | | |")
            continue
        except Exception as exc:  # a registered model that does not build is a bug: fail a strict build
            log.warning("zoo table: %s could not be built: %s", name, exc)
            rows.append(f"| `{name}` | | | | could not be built: {str(exc).replace('|', '/')} | | |")
            continue
        arch = model.arch
        h, w = (getattr(named, "input_size", None) or model.pretrained_cfg.get("input_size", (3, 224, 224)))[-2:]
        params = hrnas.count_params(arch, model.in_chans)
        macs = hrnas.count_macs(arch, (h, w), model.in_chans)
        weights = []
        for tag, cfg in tags.items():
            th, tw = (getattr(cfg, "input_size", None) or (0, 0, 0))[-2:]
            metric = _tag_metric(name, tag, cfg)
            weights.append(
                f"`{tag}` ({getattr(cfg, 'num_classes', '?')}, {th}x{tw})" + (f": {metric}" if metric else "")
            )
        rows.append(
            f"| `{name}` | {arch.task}, {arch.num_classes} classes, {h}x{w} | {params / 1e6:.3f} | {macs / 1e9:.4f} | "
            f"{about} | {'<br>'.join(weights) or 'none'} | {'<br>'.join(lat.get(name, [])) or 'not measured'} |"
        )
    if lat_path is not None:
        machine = _machine_line(lat_path)
        source = f"`benchmarks/results/{lat_path.name}`" + (f" ({machine})" if machine else "")
    else:
        source = "no latency file in `benchmarks/results/` yet (`python benchmarks/latency.py` writes one)"
    rows += [
        "",
        f"Generated when these docs were built, from `hrnas.list_models()` ({len(rows) - 2} models), "
        f"`timm.list_pretrained('hrnas_*')` and {source}. **configuration** is the task, classes and input size the "
        "architecture is named and sized for; GMACs are multiply-accumulates there, counted with "
        "`hrnas.count_macs` in the paper convention, and params with `hrnas.count_params`.",
    ]
    return "\n".join(rows)


# -- benchmark results ----------------------------------------------------------------------------------


def _demote(markdown: str) -> str:
    return re.sub(r"^(#{1,5}) ", r"#\1 ", markdown, flags=re.MULTILINE)


def benchmark_results() -> str:
    mds = {p.stem: p for p in RESULTS.glob("*.md")}
    order = [s for s in BENCH_ORDER if s in mds] + sorted(s for s in mds if s not in BENCH_ORDER)
    parts = []
    for stem in order:
        text = _demote(mds[stem].read_text().strip())
        if not text.startswith("## "):
            text = f"## {stem}\n\n{text}"
        if stem.endswith("_quick") and "quick" not in text.splitlines()[0].lower():
            title, _, rest = text.partition("\n")
            text = f"{title} (quick run)\n{rest}"
        parts.append(text + f"\n\nSource: `benchmarks/results/{stem}.md`.")
        if (RESULTS / f"{stem}.png").is_file():
            parts.append(f"![{stem}](benchmarks/{stem}.png)")
    pngs = sorted(p.stem for p in RESULTS.glob("*.png") if p.stem not in mds)
    if pngs:
        parts.append("## Other plots")
        parts += [f"![{stem}](benchmarks/{stem}.png)" for stem in pngs]
    if not parts:
        parts.append("No results are committed in `benchmarks/results/` yet.")
    return "\n\n".join(parts)


def benchmark_scripts() -> str:
    """A table of ``benchmarks/*.py`` with the first paragraph of each one's docstring (read, not imported)."""
    rows = ["| script | what it measures |", "|---|---|"]
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = " ".join(doc.split("\n\n")[0].split())
        rows.append(f"| `benchmarks/{path.name}` | {first} |")
    return "\n".join(rows)


def api_uncovered() -> str:
    """``::: hrnas.NAME`` for every name in ``hrnas.__all__`` that no API page documents yet.

    The API pages group the library by topic by hand; this keeps a name exported later from going undocumented.
    """
    import hrnas

    covered = set()
    for page in API_DIR.glob("*.md"):
        for target in re.findall(r"^::: ([\w.]+)", page.read_text(), flags=re.MULTILINE):
            covered.add(target.rsplit(".", 1)[-1])
    missing = [n for n in hrnas.__all__ if not n.startswith("_") and n not in covered]
    if not missing:
        return ""
    return "## More\n\n" + "\n\n".join(f"::: hrnas.{n}" for n in sorted(missing))


def on_page_markdown(markdown: str, page, config, files) -> str:
    if ZOO_MARKER in markdown:
        markdown = markdown.replace(ZOO_MARKER, zoo_table())
    if API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, api_uncovered())
    if SCRIPTS_MARKER in markdown:
        markdown = markdown.replace(SCRIPTS_MARKER, benchmark_scripts())
    if BENCH_MARKER in markdown:
        markdown = markdown.replace(BENCH_MARKER, benchmark_results())
    return markdown
