"""MkDocs hooks: content generated at build time from the library and the committed benchmark results.

- The zoo table of zoo.md (between its ``hrnas:zoo-table`` markers) is rendered afresh by
  :mod:`hrnas.release.zoo_table`, the same generator that writes it into the file (a test keeps the file current).
- ``<!-- hrnas:benchmark-scripts -->`` (in benchmarks.md) becomes a table of ``benchmarks/*.py`` and the first
  paragraph of each one's docstring.
- ``<!-- hrnas:benchmark-results -->`` (in benchmarks.md) becomes every ``benchmarks/results/*.md`` table, each
  followed by its plot (``<same name>.png``) when there is one.
- ``<!-- hrnas:api-uncovered -->`` (in api/models.md) documents every name of ``hrnas.__all__`` that no API page
  lists yet.
- ``images/network_*.png`` are drawn from real ``Arch`` objects by ``draw_network.py``.

And one check: every built page shows the files it includes (``--8<-- "path"``), not the marker
(:mod:`snippets_check`); the build fails otherwise.

Nothing here is hard-coded about which models or results exist: a model registered or a benchmark committed
later shows up at the next build.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import re
import warnings
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
BENCH_MARKER = "<!-- hrnas:benchmark-results -->"
SCRIPTS_MARKER = "<!-- hrnas:benchmark-scripts -->"
API_MARKER = "<!-- hrnas:api-uncovered -->"
API_DIR = Path(__file__).resolve().parents[1] / "api"
# Benchmark tables in this order first (full runs before quick ones); any others follow alphabetically.
BENCH_ORDER = ("zoo_costs", "latency", "latency_quick", "search_cost", "search_cost_quick", "search_speedup")

log = logging.getLogger("mkdocs.hooks.hrnas")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"hrnas_docs_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _draw_module():
    return _load("draw_network")


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
    from hrnas.release import zoo_table

    if zoo_table.BEGIN in markdown:
        latency = RESULTS / "latency.csv"
        markdown = zoo_table.render(markdown, zoo_table.zoo_table(latency if latency.is_file() else None))
    if API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, api_uncovered())
    if SCRIPTS_MARKER in markdown:
        markdown = markdown.replace(SCRIPTS_MARKER, benchmark_scripts())
    if BENCH_MARKER in markdown:
        markdown = markdown.replace(BENCH_MARKER, benchmark_results())
    return markdown


def on_post_page(output: str, page, config) -> str:
    from mkdocs.exceptions import PluginError

    found = _load("snippets_check").problems(page.file.content_string, output)
    if found:
        raise PluginError(f"{page.file.src_uri}: " + "; ".join(found))
    return output
