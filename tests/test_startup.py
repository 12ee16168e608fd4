"""Start-up: `import hrnas` and the light commands load neither torch nor timm, and timm still finds the models
whichever is imported first (hrnas._timm_hook)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e  # each test starts a fresh interpreter

ORDERS = [
    "import hrnas; import timm",
    "import timm; import hrnas",
    "from hrnas.net import HRNASNet; import timm",  # net imports timm while it is itself half-initialised
    "import hrnas.hub; import timm",
    "import hrnas.searching; import timm",
    "import hrnas; hrnas.create_model('hrnas_cls_a'); import timm",
]


def _run(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=300, env=env
    )


@pytest.mark.parametrize("order", ORDERS)
def test_timm_finds_the_models_in_any_import_order(order, tmp_path):
    # with a tag's weights on disk: registering then reads the weights' file name while the module that imported
    # timm may be half-initialised (it once warned and registered nothing when hrnas.hub came first)
    weights = tmp_path / "hrnas_seg_a.textured_scenes"
    weights.mkdir()
    for name in ("config.json", "model.safetensors"):
        (weights / name).write_text("{}")
    env = dict(os.environ, HRNAS_WEIGHTS_DIR=str(tmp_path))
    check = "assert timm.is_model('hrnas_cls_a') and timm.is_model('hrnas_custom'), 'not registered'"
    listed = "assert 'hrnas_seg_a.textured_scenes' in timm.list_pretrained('hrnas_seg_a*'), 'local weights not listed'"
    proc = _run(f"{order}\n{check}\n{listed}", env)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_import_and_light_commands_load_no_torch():
    code = """
import sys, io, contextlib
import hrnas
assert not {"torch", "timm", "fvcore", "matplotlib"} & set(sys.modules), sorted(sys.modules)
from hrnas.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    assert main(["list"]) == 0
    assert main(["spaces"]) == 0
    assert main(["summary", "hrnas_seg_a"]) == 0
assert "hrnas_seg_a" in out.getvalue() and "HR-NAS seg network 'hrnas_seg_a'" in out.getvalue()
heavy = {"torch", "timm", "fvcore", "matplotlib"} & set(sys.modules)
assert not heavy, heavy
assert hrnas.count_macs is not None and "hrnas_cls_a" in hrnas.list_models()  # the lazy names resolve
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_submodules_import_by_any_form_and_public_functions_stay_functions():
    code = """
import types
import hrnas.searching.loop as L, hrnas.searching.entry as E, hrnas.exporting, hrnas.deployment  # submodules first
import hrnas
assert E.search is hrnas.search and E.train is hrnas.train and L.__name__ == "hrnas.searching.loop"
for name in ("search", "export", "deploy"):
    value = getattr(hrnas, name)
    assert callable(value) and not isinstance(value, types.ModuleType), (name, value)
from hrnas.searching import recipes
assert recipes.DATA_SETS
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
