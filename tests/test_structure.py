"""The layering and size rules of the code (issue 18): checked on the source with ``ast``, nothing imported."""

import ast
from pathlib import Path

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
    assert imports == {"hrnas._files"}, imports


def test_the_import_finder_sees_every_kind_of_import():
    source = (
        "import os\nfrom ._files import write_atomic\n"
        "def f():\n    from .cost import count_macs\n    import hrnas.net\n    from .. import latency\n"
        "class A:\n    def g(self):\n        from .search.units import CostModel\n"
    )
    assert hrnas_imports(source, "hrnas") == {"hrnas._files", "hrnas.cost", "hrnas.net", "hrnas.search.units"}
    assert hrnas_imports(source, "hrnas.search") == {
        "hrnas.search._files", "hrnas.search.cost", "hrnas.net", "hrnas.latency", "hrnas.search.search.units",
    }  # fmt: skip


def test_the_search_loop_only_orchestrates_and_no_class_is_too_long():
    loop = (ROOT / "search" / "loop.py").read_text()
    assert len(loop.splitlines()) <= 300
    too_long = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 300:
                too_long.append(f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not too_long
