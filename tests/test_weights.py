"""Where weights are found (hrnas.weights): a local directory first, as `hrnas zoo-build` writes it; a bare name
loads its default tag; `hrnas list` says where each tag is. The Hub cache and the Hub are in tests/test_hub.py."""

import os

import pytest
import timm
import torch

import hrnas
from hrnas.catalog import catalog_entry
from hrnas.cli import main
from hrnas.weights import find_weights, missing_weights_message, weights_dir


@pytest.fixture
def weights_home(tmp_path, monkeypatch):
    """An empty local weights directory, and no other source: the test's own Hugging Face cache is empty."""
    home = tmp_path / "weights"
    monkeypatch.setenv("HRNAS_WEIGHTS_DIR", str(home))
    return home


def _save_tag(home, name="hrnas_cls_a", tag="fmnist", **kwargs):
    torch.manual_seed(5)
    model = hrnas.create_model(f"{name}.{tag}", **kwargs)
    with torch.no_grad():  # distinct BatchNorm statistics, so that a skipped buffer would show
        for key, t in model.state_dict().items():
            if t.is_floating_point() and "running" in key:
                t.add_(torch.rand_like(t))
    hrnas.save_pretrained(model, home / f"{name}.{tag}", architecture=name)
    return model


def test_the_weights_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("HRNAS_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("HRNAS_CACHE_DIR", raising=False)
    assert weights_dir() == __import__("pathlib").Path(os.path.expanduser("~/.cache/hrnas/weights"))
    monkeypatch.setenv("HRNAS_CACHE_DIR", str(tmp_path / "cache"))
    assert weights_dir() == tmp_path / "cache" / "weights"
    monkeypatch.setenv("HRNAS_WEIGHTS_DIR", str(tmp_path / "mine"))
    assert weights_dir() == tmp_path / "mine"


def test_a_bare_name_loads_its_default_tag_from_the_local_directory(weights_home):
    made = _save_tag(weights_home)
    for loaded in (
        hrnas.create_model("hrnas_cls_a", pretrained=True),
        hrnas.create_model("hrnas_cls_a.fmnist", pretrained=True),
        timm.create_model("hrnas_cls_a", pretrained=True),  # timm's own factory resolves the same way
    ):
        assert loaded.num_classes == 10 and tuple(loaded.pretrained_cfg["input_size"]) == (3, 32, 32)
        assert tuple(loaded.pretrained_cfg["mean"]) == tuple(made.pretrained_cfg["mean"])
        state = loaded.state_dict()
        assert state.keys() == made.state_dict().keys()
        assert all(torch.equal(state[k], v) for k, v in made.state_dict().items())
    # timm's adaptations still apply: a new head, one input channel, the feature extractor
    five = hrnas.create_model("hrnas_cls_a", pretrained=True, num_classes=5)
    assert five.num_classes == 5
    assert torch.equal(five.state_dict()["stem.0.conv.weight"], made.state_dict()["stem.0.conv.weight"])
    feats = timm.create_model("hrnas_cls_a", pretrained=True, features_only=True)
    assert feats.feature_info.reduction() == [2, 4, 8, 16, 32]
    # and without pretrained=True the bare name is still the configuration its architecture was sized for
    assert hrnas.create_model("hrnas_cls_a").num_classes == 1000


def test_a_local_directory_loads_with_its_own_architecture(weights_home):
    """A directory records the exact Arch of its weights, so weights built before a zoo entry changed still load."""
    arch = hrnas.create_model("hrnas_cls_a").arch
    narrower = arch.with_blocks([b.replace(channels=tuple(c // 2 for c in b.channels)) for b in arch.blocks()])
    _save_tag(weights_home, arch=narrower)
    loaded = hrnas.create_model("hrnas_cls_a", pretrained=True)
    assert loaded.arch.blocks() == narrower.blocks() != arch.blocks()


def test_missing_weights_are_one_sentence_naming_the_command(weights_home):
    with pytest.raises(hrnas.WeightsUnavailableError) as info:
        hrnas.create_model("hrnas_seg_a", pretrained=True)
    message = str(info.value)
    assert message.startswith("the weights 'hrnas_seg_a.textured_scenes' (the default weights of 'hrnas_seg_a')")
    assert str(weights_home / "hrnas_seg_a.textured_scenes") in message
    assert message.endswith("`hrnas zoo-build hrnas_seg_a` builds them there (measured: 18 min on 2 CPU cores)")
    assert ". " not in message
    with pytest.raises(hrnas.WeightsUnavailableError, match="no pretrained weights exist for 'hrnas_pose_a'"):
        hrnas.create_model("hrnas_pose_a", pretrained=True)
    with pytest.raises(hrnas.WeightsUnavailableError, match=r"has no weights tag 'imagenet' \(its tags: hrnas_cls_a"):
        hrnas.create_model("hrnas_cls_a", pretrained=True, pretrained_cfg="imagenet")
    entry = catalog_entry("hrnas_cls_b")
    text = missing_weights_message(entry, entry.tags[0], asked="hrnas_cls_b.textured_fmnist")
    assert text.startswith("the weights 'hrnas_cls_b.textured_fmnist' are not published")


def test_weights_the_caller_names_are_left_to_timm(weights_home, tmp_path):
    made = _save_tag(tmp_path / "elsewhere")
    path = tmp_path / "elsewhere" / "hrnas_cls_a.fmnist" / "model.safetensors"
    loaded = hrnas.create_model("hrnas_cls_a.fmnist", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    got = loaded.state_dict()  # once: state_dict() walks the whole module
    assert all(torch.equal(got[k], v) for k, v in made.state_dict().items())
    assert find_weights("hrnas_cls_a", catalog_entry("hrnas_cls_a").tags[0]) is None  # the local directory is empty


def test_list_says_where_each_tag_is(weights_home, capsys):
    assert main(["list", "hrnas_cls_a"]) == 0
    out = capsys.readouterr().out
    assert ".fmnist: weights trained on Fashion-MNIST" in out
    assert "not published; `hrnas zoo-build hrnas_cls_a` builds them" in out
    assert main(["list", "--pretrained"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no hrnas weights are published or found here yet" in captured.err
    _save_tag(weights_home)
    assert main(["list", "--pretrained"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("hrnas_cls_a ")
    assert f"here ({weights_home / 'hrnas_cls_a.fmnist'})" in out and "hrnas_seg_a" not in out


def test_version_command(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"hrnas {hrnas.__version__}"
