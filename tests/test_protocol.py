"""The timm model protocol, run on every registered hrnas model (docs/timm.md).

Modelled on timm's own tests/test_models.py, with the differences docs/timm.md states for dense models (their
``forward`` returns stride-4 maps, so the classification-only checks on 2-D outputs do not apply to them).
``hrnas_custom`` runs with a small architecture that has uneven widths, empty paths and transformers.
"""

import math

import pytest
import timm
import torch
from helpers import tiny_arch
from timm.layers import create_feature_extractor
from torchvision.models.feature_extraction import get_graph_node_names

import hrnas
from hrnas.archs import zoo_entries

MODELS = hrnas.list_models()
SMALL = ["hrnas_supernet_tiny_seg", "hrnas_supernet_tiny_cls", "hrnas_custom"]
# Like timm's own model tests, real forward passes stay at small inputs; a check at a configuration's full input
# size above this runs on the meta device (shapes only, no arithmetic)
MAX_FWD_SIZE = 256

pytestmark = pytest.mark.model  # every registered network, the paper-size ones too


def create(name, **kwargs):
    if name == "hrnas_custom":
        kwargs.setdefault("arch", tiny_arch())
    return hrnas.create_model(name, **kwargs)


def is_dense(model):
    return model.is_dense


def test_all_expected_models_registered():
    assert set(MODELS) == {
        "hrnas_supernet_seg",
        "hrnas_supernet_seg_ade",
        "hrnas_supernet_pose",
        "hrnas_supernet_cls",
        "hrnas_supernet_tiny_seg",
        "hrnas_supernet_tiny_cls",
        "hrnas_cls_a",
        "hrnas_custom",
    } | set(zoo_entries())  # the searched architectures the package ships
    assert set(timm.list_models("hrnas_*")) == set(MODELS)


@pytest.mark.parametrize("name", timm.list_models("hrnas_*"))
def test_registry_walk_builds_every_name_with_defaults(name):
    """As timm's own tooling does (its model tests, benchmark and validation scripts): every registered name builds
    with no arguments, runs forward and backward, and wraps as a feature extractor."""
    model = timm.create_model(name).train()
    h, w = (min(s, 96) for s in model.pretrained_cfg["input_size"][-2:])
    x = torch.randn(2, 3, h, w)
    out = model(x)
    assert out.shape[:2] == (2, model.num_classes) and torch.isfinite(out).all()
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    features = timm.create_model(name, features_only=True).eval()
    with torch.no_grad():
        maps = features(x)
    assert [m.shape[-1] for m in maps] == [math.ceil(w / s) for s in (2, 4, 8, 16, 32)]
    assert features.feature_info.reduction() == [2, 4, 8, 16, 32]


@pytest.mark.parametrize("name", MODELS)
def test_forward_eval(name):
    model = create(name).eval()
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        out = model(x)
    if is_dense(model):
        assert out.shape == (2, model.num_classes, 24, 32)
    else:
        assert out.shape == (2, model.num_classes)
    assert not torch.isnan(out).any()


@pytest.mark.parametrize("name", MODELS)
def test_backward_every_parameter_gets_a_gradient(name):
    model = create(name, num_classes=42).train()
    out = model(torch.randn(2, 3, 128, 128))
    assert out.shape[1] == 42
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing[:10]
    assert model.num_classes == 42


@pytest.mark.parametrize("name", MODELS)
def test_default_cfg_consistency(name):
    model = create(name).eval()
    cfg = model.pretrained_cfg
    state = model.state_dict()
    assert model.num_classes >= 0 and model.num_features > 0 and model.head_hidden_size > 0
    for key in ("first_conv", "classifier"):
        assert cfg[key] and f"{cfg[key]}.weight" in state
    assert cfg["license"] == "apache-2.0"
    if name == "hrnas_custom":
        assert cfg["pool_size"] is None  # depends on the arch passed in
    else:
        # forward_features at the cfg's own input size has the cfg's pool size
        _, h, w = cfg["input_size"]
        if max(h, w) <= MAX_FWD_SIZE:
            with torch.no_grad():
                feats = model.forward_features(torch.randn(1, 3, h, w))
        else:
            with torch.device("meta"):
                feats = create(name).eval().forward_features(torch.empty(1, 3, h, w))
        assert feats.shape[1] == model.num_features
        assert tuple(feats.shape[-2:]) == tuple(cfg["pool_size"])

    x = torch.randn(1, 3, 64, 64)
    pool = (16, 16) if is_dense(model) else (2, 2)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (1, model.num_features, *pool)
        pre = model.forward_head(feats, pre_logits=True)
        if is_dense(model):
            assert pre.shape == feats.shape
        else:
            assert pre.shape == (1, model.head_hidden_size)

        model.reset_classifier(0)
        assert model.num_classes == 0
        out = model(x)
        if is_dense(model):
            torch.testing.assert_close(out, feats)
        else:
            assert out.shape == pre.shape
            torch.testing.assert_close(out, pre)

        model.reset_classifier(0, "")
        assert model(x).shape == feats.shape

        model.reset_classifier(7, None if is_dense(model) else "avg")
        assert model(x).shape[1] == 7 and model.num_classes == 7 and model.arch.num_classes == 7

    bare = create(name, num_classes=0, global_pool="").eval()
    with torch.no_grad():
        assert bare(x).shape == (1, model.num_features, *pool)


@pytest.mark.parametrize("name", MODELS)
def test_features_only(name):
    kwargs = {"arch": tiny_arch()} if name == "hrnas_custom" else {}
    model = timm.create_model(name, features_only=True, **kwargs).eval()
    info = model.feature_info
    assert info.reduction() == [2, 4, 8, 16, 32]
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        feats = model(x)
    assert len(feats) == len(info.channels()) == 5
    for f, chs, red in zip(feats, info.channels(), info.reduction()):
        assert f.shape[0] == 2 and f.shape[1] == chs
        assert f.shape[-1] <= math.ceil(96 / red) + 1 and f.shape[-2] == 96 // red
        assert not torch.isnan(f).any()
    base = create(name)
    assert info.channels() == [d["num_chs"] for d in base.feature_info]


@pytest.mark.parametrize("name", MODELS)
def test_forward_intermediates(name):
    model = create(name).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x), rtol=0, atol=0)
        assert [t.shape[1] for t in inter] == [d["num_chs"] for d in model.feature_info]
        assert [96 // t.shape[-1] for t in inter] == [d["reduction"] for d in model.feature_info]
        only = model.forward_intermediates(x, indices=[0, 2], intermediates_only=True)
        assert len(only) == 2 and torch.equal(only[0], inter[0]) and torch.equal(only[1], inter[2])
        last = model.forward_intermediates(x, indices=1, intermediates_only=True)
        assert len(last) == 1 and torch.equal(last[0], inter[-1])
        model.set_grad_checkpointing(True)
        final_ckpt, _ = model.forward_intermediates(x)
        torch.testing.assert_close(final_ckpt, final)


@pytest.mark.parametrize("name", MODELS)
def test_fx_trace_equals_eager(name):
    model = create(name).eval()
    x = torch.randn(1, 3, 64, 96)
    _, eval_nodes = get_graph_node_names(model)
    fx_model = create_feature_extractor(model, [eval_nodes[-1]])
    with torch.no_grad():
        assert torch.equal(fx_model(x)[eval_nodes[-1]], model(x))


@pytest.mark.parametrize("name", SMALL)
def test_fx_backward(name):
    model = create(name, num_classes=42).train()
    train_nodes, _ = get_graph_node_names(model)
    fx_model = create_feature_extractor(model, [train_nodes[-1]])
    out = fx_model(torch.randn(2, 3, 64, 64))[train_nodes[-1]]
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_odd_input_sizes(name):
    model = create(name).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 97, 161))
        feats = model.forward_intermediates(torch.randn(1, 3, 97, 161), intermediates_only=True)
    if is_dense(model):
        assert out.shape[-2:] == (25, 41)
    assert [tuple(f.shape[-2:]) for f in feats] == [(49, 81), (25, 41), (13, 21), (7, 11), (4, 6)]


@pytest.mark.parametrize("name", SMALL)
def test_grad_checkpointing_matches(name):
    model = create(name).train()
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(1)
    ref = model(x)
    ref.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    torch.manual_seed(1)
    out = model(x)
    out.sum().backward()
    torch.testing.assert_close(out, ref)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("out_indices", [(1, 2), (0,), (0, 4), (3,)])
def test_features_only_subsets_use_every_parameter(out_indices):
    model = timm.create_model("hrnas_supernet_seg", features_only=True, out_indices=out_indices).train()
    feats = model(torch.randn(2, 3, 64, 64))
    assert len(feats) == len(out_indices)
    assert model.feature_info.reduction() == [[2, 4, 8, 16, 32][i] for i in out_indices]
    sum(f.mean() for f in feats).backward()
    assert all(p.grad is not None for p in model.parameters())
    # and the kept features equal the full model's
    full = timm.create_model("hrnas_supernet_seg", features_only=True)
    full.load_state_dict(model.state_dict(), strict=False)
    full.eval()
    model.eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        ref = full(x)
        for f, i in zip(model(x), out_indices):
            torch.testing.assert_close(f, ref[i])


def test_layer_decay_groups_and_no_weight_decay():
    from timm.models import group_parameters

    model = create("hrnas_custom")
    groups = group_parameters(model, model.group_matcher())
    assert len(groups) >= len(model.stages) + 2  # stem, each stage, neck (+ head)
    no_wd = model.no_weight_decay()
    assert no_wd and all(n.endswith("query_embed.weight") for n in no_wd)
    names = dict(model.named_parameters())
    assert no_wd <= set(names)


def test_torchscript_small_models():
    for name in ["hrnas_supernet_tiny_seg", "hrnas_supernet_tiny_cls", "hrnas_custom"]:
        model = create(name).eval()
        scripted = torch.jit.script(model)
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), model(x))


def test_channels_last_matches():
    model = create("hrnas_custom").eval()
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    # untrained outputs reach the hundreds; compare relative to their scale (float32 summation order differs)
    torch.testing.assert_close(out, ref, atol=1e-5 * ref.abs().max().item(), rtol=1e-5)
