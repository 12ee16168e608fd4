"""The layering and size rules of the code (issue 18): checked on the source with ``ast``, nothing imported."""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "hrnas"


def _package(path: Path) -> str:
    return ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])


def hrnas_imports(source: str, package: str) -> set[str]:
    """Every hrnas module (or name of a package) that ``source``, a module of ``package``, imports: at module level
    or inside functions, absolute or relative."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "hrnas"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                module = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] == "hrnas":
                # "from . import x" imports the module hrnas.x, or the name x of hrnas: either way, x
                found |= {module} if node.module else {f"{module}.{a.name}" for a in node.names}
    return found


def test_arch_imports_only_the_file_helpers():
    path = ROOT / "arch.py"
    imports = hrnas_imports(path.read_text(), _package(path))
    assert imports == {"hrnas.files"}, imports


def test_the_import_finder_sees_every_kind_of_import():
    source = (
        "import os\nfrom .files import write_atomic\n"
        "def f():\n    from .cost import count_macs\n    import hrnas.net\n    from .. import latency\n"
        "class A:\n    def g(self):\n        from .searching.units import CostModel\n"
    )
    assert hrnas_imports(source, "hrnas") == {"hrnas.files", "hrnas.cost", "hrnas.net", "hrnas.searching.units"}
    assert hrnas_imports(source, "hrnas.searching") == {
        "hrnas.searching.files", "hrnas.searching.cost", "hrnas.net", "hrnas.latency",
        "hrnas.searching.searching.units",
    }  # fmt: skip


def test_the_search_loop_only_orchestrates_and_no_class_is_too_long():
    loop = (ROOT / "searching" / "loop.py").read_text()
    assert len(loop.splitlines()) <= 300
    too_long = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 300:
                too_long.append(f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not too_long


def _lazy_exports(package: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A lazy package's ``_EXPORTS`` (public name -> module) and what its ``TYPE_CHECKING`` block imports from where."""
    tree = ast.parse((package / "__init__.py").read_text())
    exports, typed = {}, {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_EXPORTS" for t in node.targets):
            exports = ast.literal_eval(node.value)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for imp in node.body:
                typed |= {a.name: imp.module.split(".")[0] for a in imp.names}
    return exports, typed


@pytest.mark.parametrize("package", ["hrnas", "hrnas.searching"])
def test_public_names_are_listed_once(package):
    """``__all__`` is made from ``_EXPORTS``, and the imports for type checkers name the same names and modules."""
    path = ROOT.parent.joinpath(*package.split("."))
    exports, typed = _lazy_exports(path)
    assert exports and typed == exports
    module = importlib.import_module(package)
    assert set(module.__all__) - {"__version__"} == set(exports)


def test_no_module_is_named_like_a_public_name():
    """A submodule named like a public function would replace it as an attribute once imported
    (``import hrnas.x.y`` binds ``hrnas.x``), or make ``import hrnas.x.y as z`` fail."""
    for package in ("hrnas", "hrnas.searching"):
        path = ROOT.parent.joinpath(*package.split("."))
        modules = {p.stem for p in path.glob("*.py")} | {p.name for p in path.iterdir() if (p / "__init__.py").exists()}
        exports, _ = _lazy_exports(path)
        assert not modules & set(exports), (package, modules & set(exports))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str) -> list[str]:
    """The private hrnas names ``source`` uses: modules or names with a leading underscore in its hrnas imports, and
    underscore attributes read from what those imports bound."""
    found, bound = [], set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "hrnas":
                    found += [a.name for part in a.name.split(".") if _private(part)]
                    bound.add(a.asname or "hrnas")
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "hrnas":
            found += [node.module for part in node.module.split(".") if _private(part)]
            found += [f"{node.module}.{a.name}" for a in node.names if _private(a.name)]
            bound |= {a.asname or a.name for a in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in bound:
                found.append(f"{root.id}...{node.attr}")
    return found


def test_the_private_name_finder_sees_every_kind_of_use():
    source = (
        "import hrnas\nimport hrnas._files as f\nfrom hrnas.release.recipes import _supernet, run_recipe\n"
        "from hrnas.searching import loop\nclass A(loop._Run):\n    pass\nx = hrnas.archs.__file__\n"
        "from _common import _helper\n"
    )
    assert private_uses(source) == ["hrnas._files", "hrnas.release.recipes._supernet", "loop..._Run"]


def test_benchmarks_use_only_public_hrnas_names():
    """The benchmarks are users of the library: what they need is public (issue 32)."""
    used = {
        f"{path.name}: {name}"
        for path in sorted((ROOT.parent / "benchmarks").glob("*.py"))
        for name in private_uses(path.read_text())
    }
    assert not used, sorted(used)
