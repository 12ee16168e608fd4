"""Deploy form (BatchNorm folded, depthwise implementation tuned) and export to ONNX / TorchScript / torch.export."""

import pytest
import torch
from helpers import tiny_arch

import hrnas
from hrnas.cli import main
from hrnas.exporting import verify_onnx
from hrnas.searching.ema import calibrate_bn

MODELS = hrnas.list_models()


def realistic(name, size=(64, 64)):
    """A model whose BatchNorm statistics come from data (as after training), so activations are normalised."""
    kwargs = {"arch": tiny_arch()} if name == "hrnas_custom" else {}
    model = hrnas.create_model(name, **kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    calibrate_bn(model, [torch.randn(4, 3, *size) for _ in range(2)])
    return model.eval()


def close(out, ref, rtol=1e-4):
    # relative to the output's scale: untrained heads produce logits in the tens to hundreds
    torch.testing.assert_close(out, ref, atol=rtol * max(1.0, ref.abs().max().item()), rtol=rtol)


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


@pytest.mark.parametrize("fmt, suffix", [("torchscript", "pt"), ("exported_program", "pt2")])
def test_torchscript_and_exported_program(fmt, suffix, tmp_path):
    model = realistic("hrnas_supernet_tiny_cls")
    path = hrnas.export(model, tmp_path / f"m.{suffix}", format=fmt, input_size=(64, 64))
    loaded = torch.jit.load(str(path)) if fmt == "torchscript" else torch.export.load(str(path)).module()
    for shape in [(1, 3, 64, 64), (3, 3, 97, 161)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            close(loaded(x), model(x))


def test_export_command_and_errors(tmp_path, capsys):
    assert main(["export", "hrnas_supernet_tiny_seg", str(tmp_path / "m.onnx"), "--input-size", "64", "64"]) == 0
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(ValueError, match="format must be one of"):
        hrnas.export(hrnas.create_model("hrnas_supernet_tiny_seg"), tmp_path / "m.x", format="tflite")
    assert not list(tmp_path.glob("*.x"))


@pytest.mark.slow
def test_compiled_deployed_model_matches_eager(tmp_path):
    model = realistic("hrnas_custom")
    deployed = hrnas.deploy(model, input_size=(64, 64), cache_path=tmp_path / "t.json")
    compiled = torch.compile(deployed, fullgraph=True)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=deployed.memory_format)
    with torch.no_grad():
        close(compiled(x), deployed(x))
