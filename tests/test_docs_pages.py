"""The documentation pages show what they include: the example scripts on the Examples page, not their markers.

Every docs build checks its built pages (docs/gen/hooks.py runs docs/gen/snippets_check.py on each page; `make docs`
fails otherwise). These tests check the sources and the check itself, without the docs tools.
"""

import html
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("snippets_check", ROOT / "docs" / "gen" / "snippets_check.py")
snippets_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(snippets_check)

EXAMPLES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs" / "examples").glob("*.py"))


def test_the_examples_page_includes_every_example_script():
    page = (ROOT / "docs" / "examples.md").read_text()
    assert sorted(snippets_check.included_files(page)) == EXAMPLES
    assert not snippets_check.MANGLED.search(page)


def test_every_page_includes_files_that_exist_with_well_formed_markers():
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text()
        assert not snippets_check.MANGLED.search(text), page.name
        for rel in snippets_check.included_files(text):
            assert (ROOT / rel).is_file(), (page.name, rel)


def _built(code: str) -> str:
    """An HTML page as the highlighter writes it: one span per token, entities escaped."""
    spans = "".join(f'<span class="n">{html.escape(token)}</span>' for token in code.split(" "))
    return f"<html><body><pre><code>{spans.replace('</span><span', '</span> <span')}</code></pre></body></html>"


def test_the_check_fails_on_a_page_that_shows_a_marker_instead_of_the_code():
    source = (ROOT / "docs" / "examples.md").read_text()
    scripts = "\n".join((ROOT / rel).read_text() for rel in EXAMPLES)
    assert snippets_check.problems(source, _built(scripts)) == []
    shown_as_marker = _built('--8 < --"docs/examples/finetune_segmentation.py"')
    found = snippets_check.problems(source, shown_as_marker)
    assert any("shows an include marker" in p for p in found)
    assert sum("does not show docs/examples/" in p for p in found) == len(EXAMPLES)
    # one script missing from an otherwise complete page is named
    partial = "\n".join((ROOT / rel).read_text() for rel in EXAMPLES[1:])
    assert [p for p in snippets_check.problems(source, _built(partial))] == [
        f"the built page does not show {EXAMPLES[0]}: "
        f"{snippets_check.telling_lines(ROOT / EXAMPLES[0])[0]!r} is not in it"
    ]
