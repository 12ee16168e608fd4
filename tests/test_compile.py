"""What compilers make of the networks: ``torch.compile(fullgraph=True)`` of a model and of its deploy form, and
``torch.export``. Minutes of compiler time, not of the model's: the e2e tier."""

import pytest
import torch
from helpers import check_export, close, realistic, tiny_arch

import hrnas

pytestmark = pytest.mark.e2e


def test_torch_compile_fullgraph():
    model = hrnas.create_model("hrnas_custom", arch=tiny_arch()).eval()
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        torch.testing.assert_close(compiled(x), ref, atol=1e-5 * ref.abs().max().item(), rtol=1e-4)


def test_compiled_deployed_model_matches_eager(tmp_path):
    model = realistic("hrnas_custom")
    deployed = hrnas.deploy(model, input_size=(64, 64), cache_path=tmp_path / "t.json")
    compiled = torch.compile(deployed, fullgraph=True)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=deployed.memory_format)
    with torch.no_grad():
        close(compiled(x), deployed(x))


def test_exported_program(tmp_path):
    check_export("exported_program", "pt2", tmp_path)
