"""Every figure in the README and the docs is found in the results it comes from.

The rule, page by page (README.md and docs/*.md):

- **What is a figure**: in the page's prose, every number written with a decimal point (``0.566``, ``2.14x``,
  ``1.325 G``), and every whole number that carries a unit of measurement: ``%``, a ratio (``3x``, ``3×``), a
  time (``ms``, ``s``, ``min``, ``minutes``, ``h``, ``hours``), a cost (``G``, ``M``, ``K``, ``GMACs``, ``MMACs``,
  ``GMAC/s``). Ranges and lists (``18-28 minutes``, ``0.624 / 0.628``) are each of their numbers.
- **What is not**: code (fenced blocks and inline code: commands, settings, outputs, which tests run), link
  targets, HTML comments, dates, the generated zoo table of docs/zoo.md (rendered from the registry and
  benchmarks/results/latency.csv; tests/test_zoo.py keeps it current), whole numbers without a unit (counts of
  tests, steps, channels, classes, image sizes such as 224x224), and numbers that follow a version or setting
  word (``torch 2.14``, ``lr 0.1``, ``rho 1.8e-4``; :data:`SETTING_WORDS`), and the budget bands
  ``[0.9, 1.0]`` / ``[0.95, 1.0]`` (guarantees the tests check).
- **Where it must be found**: in the files of ``benchmarks/results/`` the page names (``latency_forms.md``,
  ``benchmarks/results/zoo_quality.md``; naming a table also names its ``.csv`` twin; naming a folder,
  ``zoo_quality/rows/``, names the files in it), and in the zoo's run
  records ``hrnas/archs/zoo/*.json`` when the page names that folder. A page that names no results file is matched
  against every ``benchmarks/results/*.md``. A figure is found when a number there, rounded to the figure's
  decimal places, equals it; a percentage may be a fraction there (``0.509`` is ``50.9 %``), and a figure in
  ``M``, ``G`` or ``K`` a raw count (``8213494`` is ``8.213 M``).
- **Quoted figures** that are no measurement of this project (the paper's reported numbers, the normalisation
  statistics of a data set) are listed in :data:`QUOTED` with where they come from.

The test fails on a figure found in none of its page's sources, naming the page and the sentence; fix the figure,
name the results file it comes from, or (for a quotation) add it to :data:`QUOTED` with its source. It cannot catch
an invented figure that happens to equal, at its precision, some number in the files its page names: the fewer
digits a figure has, the likelier that is.
"""

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ZOO_RECORDS = ROOT / "hrnas" / "archs" / "zoo"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# a ratio's x is written against its number (3x, 2.14×; "3 × 1080" is a product), other units may have a space
UNITS = r"(?:[x×]|\s?(?:%|ms|s|min|minutes|h|hours|GMAC/s|GMACs|MMACs|G|M|K))(?![\w/])"
_RANGE = r"(?:\s?(?:-|–|/|to|and)\s?\d[\d,]*(?:\.\d+)?)*"
FIGURE = re.compile(
    r"(?:(?<![\w.\-/:#^])|(?<=\d-)|(?<=\d–))"  # not inside a word, a path or an exponent; a range's second end
    rf"(\d[\d,]*\.\d+|\d[\d,]*(?={_RANGE}{UNITS}))"
    r"(?![\w.]*\d)(?!e[-+]?\d)"  # not a version (1.2.3) nor the mantissa of 1.8e-4
)
SETTING_WORDS = (
    "torch", "timm", "Python", "python", "version", "hrnas", ">=", "<=", "==", "=", "lr", "rho", "ρ", "decay",
    "momentum", "dropout", "SE", "threshold", "eps", "section", "arXiv", "v", "budget",
)  # fmt: skip
_SETTING = re.compile(r"(?:^|[\s(])(?:" + "|".join(re.escape(w) for w in SETTING_WORDS) + r")\s*$")

# page -> {figure: where it comes from}; figures quoted from elsewhere, not measured by this project
QUOTED = {
    "conventions.md": {
        "1.4": "the paper: HR-NAS-A's 1.4 GFLOPs (MACs) on ADE20K",
        "2.5": "the paper: HR-NAS-A's 2.5 M parameters",
        "2.2": "the paper: HR-NAS-B's 2.2 GFLOPs (MACs)",
        "3.9": "the paper: HR-NAS-B's 3.9 M parameters",
    },
    "finetune.md": {
        "0.2860": "hrnas.data.fashion_mnist.MEAN (Fashion-MNIST's pixel mean), the .fmnist tag's normalisation",
        "0.3530": "hrnas.data.fashion_mnist.STD, the .fmnist tag's normalisation",
        "0.38": "hrnas.data.textured.MEAN, the textured tags' normalisation",
        "0.20": "hrnas.data.textured.STD, the textured tags' normalisation",
    },
}


def prose(markdown: str) -> str:
    """The page without what is not prose (see the module docstring)."""
    text = re.sub(r"<!-- hrnas:zoo-table:begin.*?<!-- hrnas:zoo-table:end -->", "", markdown, flags=re.S)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"^ {0,4}(```|~~~).*?^ {0,4}\1", "", text, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"\[\s*0\.9\d*,\s*1\.0\s*\]", "", text)
    return re.sub(r"\b\d{4}-\d{2}(-\d{2})?\b", "", text)


def figures(markdown: str) -> list[tuple[str, str, str]]:
    """``(figure, unit after it, the sentence around it)`` for every figure of a page."""
    text = prose(markdown)
    out = []
    for m in FIGURE.finditer(text):
        if _SETTING.search(text[max(0, m.start() - 16) : m.start()]):
            continue
        unit = re.match(rf"{_RANGE}\s?(%|[GMK])", text[m.end() :])  # a range's unit follows its last number
        context = " ".join(text[max(0, m.start() - 60) : m.end() + 30].split())
        out.append((m.group(1).replace(",", ""), unit.group(1) if unit else "", context))
    return out


def sources(markdown: str) -> list[Path]:
    """The results files a page names (each table with its csv twin), or every results table if it names none."""
    files = [p for p in RESULTS.rglob("*") if p.is_file() and p.suffix in (".md", ".csv", ".json")]
    named = {p for p in files if p.name in markdown}
    folders = {p.parent for p in files if p.parent != RESULTS}
    named |= {p for p in files if p.parent in folders and f"{p.parent.relative_to(RESULTS).as_posix()}/" in markdown}
    named |= {p for p in files if p.with_suffix(".md") in named or p.with_suffix(".csv") in named}
    if not named:
        named = {p for p in files if p.suffix == ".md" and p.parent == RESULTS}
    if "hrnas/archs/zoo" in markdown:
        named |= set(ZOO_RECORDS.rglob("*.json"))
    return sorted(named)


def numbers(paths: list[Path]) -> set[Decimal]:
    """Every number in the files: plain ones, and those written with thousands separators (``1,378``) read whole
    as well (in a csv the comma also separates fields)."""
    out = set()
    for path in paths:
        text = path.read_text()
        tokens = re.findall(r"\d+(?:\.\d+)?", text) + re.findall(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)", text)
        for token in tokens:
            try:
                out.add(Decimal(token.replace(",", "")))
            except InvalidOperation:
                pass
    return out


# a figure with a unit may be a raw count there: 8.213 M params is 8213494, 1.325 G MACs is 1325253401
_SCALES = {"%": (1, 100), "M": (1, Decimal("1e-6")), "G": (1, Decimal("1e-9")), "K": (1, Decimal("1e-3"))}


def found(figure: str, unit: str, values: set[Decimal]) -> bool:
    """Whether some value, at the figure's precision, is the figure (rounded either way at a tie: 1612.55 is
    printed 1612.5 or 1612.6)."""
    target = Decimal(figure)
    half = Decimal(1).scaleb(-len(figure.partition(".")[2])) / 2
    return any(abs(value * scale - target) <= half for value in values for scale in _SCALES.get(unit, (1,)))


def unsourced(page: Path) -> list[str]:
    markdown = page.read_text()
    values = numbers(sources(markdown))
    quoted = QUOTED.get(page.name, {})
    return [
        f"{page.name}: {figure} in '...{context}...'"
        for figure, unit, context in figures(markdown)
        if figure not in quoted and not found(figure, unit, values)
    ]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_figure_is_found_in_its_results(page):
    missing = unsourced(page)
    assert not missing, "figures found in no results file the page names:\n" + "\n".join(missing)


def test_the_rule_catches_an_invented_figure(tmp_path):
    """The same page with one figure changed fails, and the figures the rule skips stay skipped."""
    page = (ROOT / "docs" / "deploy.md").read_text()
    assert figures(page) and not [f for f in figures(page) if f[0] in ("2026", "224")]
    invented = tmp_path / "deploy.md"
    invented.write_text(page.replace("2.14x", "2.73x", 1))
    assert "2.14x" in page and any(" 2.73 in " in line for line in unsourced(invented))
    skipped = "torch 2.14, lr 0.1, `1.23 s`, 224x224, 449 tests, 2026-12-01, inside [0.9, 1.0] x budget"
    assert figures(skipped) == []
    kept = [f[0] for f in figures("2.4x faster, 18-28 minutes, 3 %, mIoU 0.624 / 0.628, 1,378 ms")]
    assert kept == ["2.4", "18", "28", "3", "0.624", "0.628", "1378"]
