"""Deploy form (BatchNorm folded, depthwise implementation tuned) and export to ONNX / TorchScript / torch.export."""

import pytest
import torch
from helpers import check_export, close, realistic

import hrnas
from hrnas.cli import main
from hrnas.exporting import verify_onnx

MODELS = hrnas.list_models()

pytestmark = pytest.mark.model  # every registered network; compiling and torch.export: tests/test_compile.py


@pytest.mark.parametrize("name", MODELS)
def test_deploy_matches_eval(name, tmp_path):
    model = realistic(name)
    deployed = hrnas.deploy(model, input_size=(64, 64), cache_path=tmp_path / "tune.json")
    assert deployed.deployed and deployed is not model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deployed.modules())
    assert not any(isinstance(m, torch.nn.Dropout) for m in deployed.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        close(deployed(x.contiguous(memory_format=deployed.memory_format)), model(x))
        close(deployed(x), model(x))


def test_path_choices_are_measured_once_and_cached(tmp_path):
    model = realistic("hrnas_supernet_tiny_seg")
    cache = tmp_path / "tune.json"
    hrnas.deploy(model, input_size=(64, 64), channels_last=True, cache_path=cache)
    import json

    entries = json.loads(cache.read_text())
    assert 1 <= len(entries) <= 27  # one choice per distinct block shape (blocks of equal shape share it)
    assert set(entries.values()) <= {"merged", "paths"}
    # force every block to the merged form through the cache: the deploy follows it and stays exact
    cache.write_text(json.dumps({k: "merged" for k in entries}))
    merged = hrnas.deploy(model, input_size=(64, 64), channels_last=True, cache_path=cache)
    blocks = [m for m in merged.modules() if isinstance(m, hrnas.layers.MixedKernelBlock) and len(m.paths)]
    assert all(len(b.paths) == 1 and b.paths[0].conv_dw.kernel_size == (7, 7) for b in blocks)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        close(merged(x), model(x))


@pytest.mark.parametrize("name", MODELS)
def test_onnx_export_matches_onnxruntime(name, tmp_path):
    pytest.importorskip("onnxruntime")
    model = realistic(name)
    path = hrnas.export(model, tmp_path / f"{name}.onnx", input_size=(64, 64))
    assert path.exists() and not list(tmp_path.glob(".*tmp*"))
    # dynamic batch, height and width, odd sizes included
    for shape in [(1, 3, 64, 64), (2, 3, 97, 161)]:
        assert verify_onnx(path, model, torch.randn(*shape)) < 1e-4


def test_torchscript_export(tmp_path):
    check_export("torchscript", "pt", tmp_path)


def test_export_command_and_errors(tmp_path, capsys):
    assert main(["export", "hrnas_supernet_tiny_seg", str(tmp_path / "m.onnx"), "--input-size", "64", "64"]) == 0
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(ValueError, match="format must be one of"):
        hrnas.export(hrnas.create_model("hrnas_supernet_tiny_seg"), tmp_path / "m.x", format="tflite")
    assert not list(tmp_path.glob("*.x"))


def test_memory_format_is_timed_warm_and_alternately():
    """A candidate slow only on its first forwards (one-time kernel selection) is timed at its steady speed."""
    import time

    from hrnas.deployment import _time_alternately

    class Sleeps(torch.nn.Module):
        def __init__(self, cold_calls: int, cold_s: float, warm_s: float):
            super().__init__()
            self.calls, self.cold_calls, self.cold_s, self.warm_s = 0, cold_calls, cold_s, warm_s

        def forward(self, x):
            self.calls += 1
            time.sleep(self.cold_s if self.calls <= self.cold_calls else self.warm_s)
            return x

    cold_start = Sleeps(cold_calls=3, cold_s=0.05, warm_s=0.0)
    steady = Sleeps(cold_calls=0, cold_s=0.0, warm_s=0.005)
    candidates = [(torch.channels_last, cold_start), (torch.contiguous_format, steady)]
    first, second = _time_alternately(candidates, torch.randn(1, 3, 8, 8), torch.device("cpu"))
    assert first < second
    assert cold_start.calls == steady.calls  # each timed alike, in alternating rounds
