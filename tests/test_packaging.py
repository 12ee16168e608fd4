"""What a release ships: every imported package declared, the PyPI page with absolute links, the changelog cut at
the package's version, a version command. Building the sdist and the wheel, `twine check --strict` and the wheel in
a clean environment are `make wheel-check` (.ci/wheel_check.sh); the declared floors are `make min-deps-check`."""

import ast
import re
import sys
from pathlib import Path

import pytest

import hrnas

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = (ROOT / "pyproject.toml").read_text()
# the distribution that provides each top-level module hrnas imports
DISTRIBUTIONS = {
    "torch": "torch",
    "timm": "timm",
    "huggingface_hub": "huggingface_hub",
    "safetensors": "safetensors",
    "fvcore": "fvcore",
    "numpy": "numpy",
    "tqdm": "tqdm",
    "yaml": "pyyaml",
    "matplotlib": "matplotlib",
    "PIL": "pillow",
    "skimage": "scikit-image",
    "tifffile": "tifffile",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
}


def _project_urls() -> dict[str, str]:
    section = PYPROJECT.split("[project.urls]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^"?([^"=\n]+?)"?\s*=\s*"([^"]+)"', section, flags=re.MULTILINE))


def _imported_modules() -> set[str]:
    names = set()
    for path in (ROOT / "hrnas").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"hrnas", "__future__"}


def test_every_imported_package_is_declared():
    imported = _imported_modules()
    unknown = imported - set(DISTRIBUTIONS)
    assert not unknown, f"hrnas imports {sorted(unknown)}: declare them in pyproject.toml and add them here"
    declared = {m.group(1).lower() for m in re.finditer(r'"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?>=', PYPROJECT)}
    for module in imported:
        assert DISTRIBUTIONS[module].lower() in declared, f"{module} ({DISTRIBUTIONS[module]}) is not declared"


def test_build_needs_the_setuptools_of_its_licence_fields():
    floor = re.search(r'requires = \["setuptools>=([0-9.]+)"', PYPROJECT).group(1)
    assert tuple(map(int, floor.split("."))) >= (77, 0, 3)  # PEP 639 `license` / `license-files`
    assert 'license = "Apache-2.0"' in PYPROJECT and "license-files" in PYPROJECT


def test_the_pypi_page_starts_with_pip_install_and_links_absolutely():
    assert 'readme = "docs/pypi.md"' in PYPROJECT
    page = (ROOT / "docs" / "pypi.md").read_text()
    first_command = re.search(r"```bash\n(.+)\n", page).group(1)
    assert first_command == "pip install hrnas"
    links = re.findall(r"\]\(([^)]+)\)", page) + re.findall(r"^\[[^\]]+\]:\s*(\S+)", page, flags=re.MULTILINE)
    assert links and all(link.startswith("https://") for link in links), [x for x in links if "://" not in x]
    # the project's own links name files that exist in this checkout
    home = _project_urls()["Homepage"].rstrip("/")
    for link in links:
        if link.startswith(home + "/"):
            rest = link[len(home) + 1 :]
            kind, _, path = rest.partition("/main/")
            assert kind in ("blob", "tree") and (ROOT / path).exists(), link


def test_project_urls_share_one_home():
    urls = _project_urls()
    for key in ("Homepage", "Documentation", "Source", "Changelog", "Issues"):
        assert urls[key].startswith(urls["Homepage"]), key
    assert urls["Changelog"].endswith("/CHANGELOG.md") and (ROOT / "CHANGELOG.md").is_file()


def test_the_sdist_ships_no_tests_and_the_changelog():
    manifest = (ROOT / "MANIFEST.in").read_text().splitlines()
    assert "prune tests" in manifest and "include CHANGELOG.md" in manifest


def test_the_package_is_typed():
    assert (ROOT / "hrnas" / "py.typed").is_file() and '"py.typed"' in PYPROJECT


def test_the_changelog_is_cut_at_the_package_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    sections = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, flags=re.MULTILINE)
    assert sections[0] == ("Unreleased", ""), sections[0]
    released = [version for version, _ in sections[1:]]
    assert released and released[0] == hrnas.__version__
    assert all(date for _, date in sections[1:])  # every release is dated
    kinds = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    for block in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        headings = re.findall(r"^### (.+)$", block, flags=re.MULTILINE)
        assert set(headings) <= kinds and len(headings) == len(set(headings)), headings
    bullets = [b.strip() for b in re.findall(r"^- (.+)$", text, flags=re.MULTILINE)]
    assert len(bullets) == len(set(bullets)), "a changelog entry appears twice"
    for version, _ in sections:
        assert re.search(rf"^\[{re.escape(version)}\]: https://", text, flags=re.MULTILINE), version


@pytest.mark.parametrize("path", ["README.md", "docs", "hrnas"])
def test_no_version_is_named_that_has_not_been_released(path):
    released = set(re.findall(r"^## \[(\d+\.\d+(?:\.\d+)?)\]", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE))
    released |= {v.rsplit(".", 1)[0] for v in released if v.count(".") == 2}  # 0.1 for 0.1.0
    files = [ROOT / path] if (ROOT / path).is_file() else sorted((ROOT / path).rglob("*.[mp][dy]"))
    for file in files:
        text = file.read_text()
        # "hrnas 0.2", "before 0.2", "since v0.3": a version, not a quantity ("before 0.5 s")
        for m in re.finditer(r"\b(?:hrnas|before|since)\s+v?(\d+\.\d+(?:\.\d+)?)(?![\d.]*\s*(?:[a-zA-Z%]))", text):
            context = text[max(0, m.start() - 30) : m.end() + 10]
            assert m.group(1) in released, f"{file.relative_to(ROOT)}: {context!r} names an unreleased version"
