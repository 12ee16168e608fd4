"""Checks that a page built with included files (``--8<-- "path"``, pymdownx.snippets) shows their code.

A marker that the snippets extension does not recognise (a formatter once rewrote them as ``--8 < --``) is printed
as text instead of the file, and the strict build does not notice. :func:`problems` compares a page's Markdown
source with its built HTML; ``docs/gen/hooks.py`` runs it on every page of every build, and tests/test_docs_pages.py
runs it on the sources. No MkDocs import here, so that the tests need no docs tools.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r'^[ \t]*--8<--[ \t]+"([^"]+)"[ \t]*$', re.MULTILINE)
# what a marker looks like after a formatter has been at it, in the source or in the built text
MANGLED = re.compile(r"--8\s+<\s*--|--8<\s+--|--8\s*<\s+--")


def included_files(markdown: str) -> list[str]:
    """The paths a page includes with well-formed ``--8<-- "path"`` lines."""
    return INCLUDE.findall(markdown)


def telling_lines(path: Path, count: int = 3) -> list[str]:
    """Lines that show the file was included: the first ``count`` code lines of some length, and the last line."""
    lines = [line.strip() for line in path.read_text().splitlines() if len(line.strip()) >= 20]
    if not lines:
        return []
    return [*lines[:count], lines[-1]]


def page_text(page_html: str) -> str:
    """The text of a built page: tags removed, entities decoded (highlighted code is one span per token)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page_html))


def problems(markdown: str, page_html: str, root: Path = ROOT) -> list[str]:
    """What is wrong with the included files of one page: a mangled marker in the source or the output, a missing
    file, or a file whose lines the built page does not show."""
    out = []
    if MANGLED.search(markdown):
        out.append(f"a malformed include marker in the source: {MANGLED.search(markdown).group(0)!r}")
    text = page_text(page_html)
    for match in MANGLED.finditer(text):
        out.append(f"the built page shows an include marker instead of the file: {match.group(0)!r}")
    for rel in included_files(markdown):
        path = root / rel
        if not path.is_file():
            out.append(f"{rel} is included but does not exist")
            continue
        if path.suffix == ".md":
            continue  # included Markdown is rendered, so its source lines are not in the page as written
        missing = [line for line in telling_lines(path) if line not in text]
        if missing:
            out.append(f"the built page does not show {rel}: {missing[0]!r} is not in it")
    return out
