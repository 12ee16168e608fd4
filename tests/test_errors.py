"""Bad input gets one clear error naming the problem and the fix."""

import pytest
import torch

import hrnas


def test_unknown_model_suggests_close_names():
    with pytest.raises(hrnas.UnknownModelError, match=r"unknown model 'hrnas_supernet_sge'") as e:
        hrnas.create_model("hrnas_supernet_sge")
    assert "hrnas_supernet_seg" in str(e.value)
    with pytest.raises(hrnas.UnknownModelError, match=r"Did you mean 'hrnas_cls_a'"):
        hrnas.create_model("hrnas_cls_aa.fmnist")
    with pytest.raises(ValueError, match="hrnas.list_models"):
        hrnas.create_model("no_such_network_at_all")


def test_wrong_number_of_input_channels():
    model = hrnas.create_model("hrnas_supernet_tiny_seg").eval()
    with pytest.raises(ValueError, match=r"expected 3 input channels, got 1 .*in_chans=1"):
        model(torch.randn(1, 1, 64, 64))
    gray = hrnas.create_model("hrnas_supernet_tiny_seg", in_chans=1).eval()
    assert gray(torch.randn(1, 1, 64, 64)).shape == (1, 11, 16, 16)
    with pytest.raises(ValueError, match="expected a 4-D input"):
        model(torch.randn(3, 64, 64))


def test_input_smaller_than_the_network_can_take():
    model = hrnas.create_model("hrnas_supernet_tiny_cls").eval()
    with pytest.raises(ValueError, match=r"input 28x40 is smaller than this network's minimum 32x32"):
        model(torch.randn(1, 3, 28, 40))
    with pytest.raises(ValueError, match="smaller than this network's minimum"):
        model.forward_intermediates(torch.randn(1, 3, 16, 16))
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert model.pretrained_cfg["min_input_size"] == (3, 32, 32)


def test_malformed_arch_through_create_model(tmp_path):
    d = hrnas.get_space("seg_tiny").supernet().to_dict()
    d["stages"][0]["fuse"][0]["block"]["channels"] = [1, 2]
    with pytest.raises(hrnas.ArchError, match=r"stages\[0\]\.fuse\[0\]\.block\.channels: needs one value per kernel"):
        hrnas.create_model("hrnas_custom", arch=d)
    p = tmp_path / "a.json"
    p.write_text("{ not json")
    with pytest.raises(hrnas.ArchError, match="not valid JSON"):
        hrnas.create_model("hrnas_custom", arch=str(p))


def test_dense_models_reject_pooling_and_dropout():
    with pytest.raises(ValueError, match="dense .* models return maps and never pool"):
        hrnas.create_model("hrnas_supernet_tiny_seg", global_pool="avg")
    with pytest.raises(ValueError, match="drop_rate applies to classification models only"):
        hrnas.create_model("hrnas_supernet_tiny_seg", drop_rate=0.1)
    model = hrnas.create_model("hrnas_supernet_tiny_seg")
    with pytest.raises(ValueError, match="dense models never pool"):
        model.reset_classifier(3, "avg")


def test_profile_rejects_unknown_convention():
    with pytest.raises(ValueError, match=r"convention must be one of \['paper', 'full'\]"):
        hrnas.profile(hrnas.create_model("hrnas_supernet_tiny_cls"), 32, convention="flops")


@pytest.mark.model
def test_input_size_in_timm_form_and_wrong_forms(tmp_path):
    """Every input_size= takes (H, W), an int, or timm's (C, H, W) with C checked; other shapes get one sentence."""
    model = hrnas.create_model("hrnas_supernet_tiny_cls").eval()
    cfg_size = model.pretrained_cfg["input_size"]  # (3, 32, 32), timm's form
    assert hrnas.profile(model, cfg_size).input_size == (32, 32) == hrnas.profile(model, (32, 32)).input_size
    out = tmp_path / "m.pt"
    hrnas.export(model, out, format="torchscript", input_size=(3, 40, 48))
    assert out.is_file()
    assert hrnas.deploy(model, input_size=(3, 32, 32), tune=False, cache_path=None)(torch.randn(1, 3, 32, 32)).shape
    assert hrnas.measure_latency(model, (3, 32, 32), repeats=2) > 0
    with pytest.raises(ValueError, match=r"input_size \(1, 32, 32\) has 1 channels but the model takes 3"):
        hrnas.profile(model, (1, 32, 32))
    with pytest.raises(ValueError, match=r"input_size must be \(height, width\), \(channels, height, width\) or an"):
        hrnas.export(model, tmp_path / "n.pt", format="torchscript", input_size=(1, 3, 32, 32))
    with pytest.raises(ValueError, match="input_size must be"):
        hrnas.SearchConfig(input_size=(32,))
