"""Importing checkpoints of the original HR-NAS code (its key layout: the table in hrnas/convert.py)."""

import json

import pytest
import torch

import hrnas
from hrnas.cli import main
from hrnas.convert import convert_original_state_dict, load_original_arch, original_key_map

pytestmark = pytest.mark.model  # the released architecture and the paper supernet, converted and run

RELEASED = hrnas.released_cls_arch("search").to_original_blocks()

# Rows of the reference's decoded checkpoint.json table: original module, in -> out, stride, kernels, channels.
REFERENCE_ROWS = [
    ("features.0.fuse_layers.0.0", 24, 24, 1, (3, 5, 7), (32, 12, 1)),
    ("features.2.fuse_layers.1.0", 18, 36, 2, (3, 5, 7), (31, 29, 30)),
    ("features.4.fuse_layers.0.1.0", 36, 18, 1, (3, 7), (3, 1)),
    ("features.4.fuse_layers.1.0.0", 18, 36, 2, (3, 5, 7), (15, 17, 17)),
    ("features.4.fuse_layers.2.0", 36, 72, 2, (3, 5, 7), (62, 82, 86)),
    ("features.6.fuse_layers.1.2.0", 72, 36, 1, (3, 5, 7), (20, 9, 19)),
    ("features.6.fuse_layers.3.0", 72, 144, 2, (3, 5, 7), (180, 142, 158)),
]


def _to_original(model: hrnas.HRNASNet, retrain: bool) -> dict:
    """Write ``model``'s weights in the original's layout (the inverse of the converter's map), as the original
    saves them: ``module.`` prefixes and distillation BNs included."""
    out: dict = {}
    pieces: dict = {}
    state = model.state_dict()
    for key, (src, part) in original_key_map(model.arch, retrain).items():
        t = state[key]
        if not src:
            continue
        if part is None:
            out["module." + src] = t.clone()
        else:
            pieces.setdefault(src, []).append((part, t))
    for src, parts in pieces.items():
        parts.sort(key=lambda p: p[0][1])
        dim = 0 if parts[0][0][0] == "rows" else 1
        out["module." + src] = torch.cat([t for _, t in parts], dim=dim)
    out["module.bns.0.weight"] = torch.ones(3)  # a distillation-only BN the converter must drop
    return out


def _randomise(model: hrnas.HRNASNet) -> hrnas.HRNASNet:
    """Keep the convs' initialisation (so the signal survives) and give every BatchNorm distinct statistics."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point() or "bn" not in name:
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("weight"):
                t.copy_(1 + 0.1 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
    return model.eval()


def _same_output(model, reference, x) -> bool:
    with torch.no_grad():
        y = reference(x)
        assert not torch.allclose(y[0], y[1]), "the reference must depend on its input"
        return torch.equal(model(x), y)


def test_original_names_match_the_reference_table():
    arch = load_original_arch(RELEASED, task="cls", retrain=True)
    specs = dict(arch.named_blocks())
    mapping = original_key_map(arch, retrain=True)
    for orig, cin, cout, stride, kernels, channels in REFERENCE_ROWS:
        keys = [k for k, (src, _) in mapping.items() if src == f"{orig}.expand_conv.0.weight"]
        assert keys, orig
        block = keys[0].split(".paths.")[0]
        spec = specs[block]
        assert (spec.in_chs, spec.out_chs, spec.stride) == (cin, cout, stride), orig
        assert tuple(k for k, _ in spec.paths) == kernels and tuple(n for _, n in spec.paths) == channels, orig


@pytest.mark.parametrize("retrain", [False, True], ids=["search-blocks", "retrain-blocks"])
def test_released_checkpoint_round_trip(retrain):
    arch = load_original_arch(RELEASED, task="cls", retrain=retrain)
    reference = _randomise(hrnas.HRNASNet(arch))
    original = _to_original(reference, retrain)
    state = convert_original_state_dict(original, arch)  # layout detected from the keys
    model = hrnas.HRNASNet(arch).eval()
    model.load_state_dict(state)
    assert _same_output(model, reference, torch.randn(2, 3, 64, 64))
    # the original's EMA file holds the evaluated weights under 'shadow', without the module. prefix
    ema = {"info": {}, "shadow": {k[len("module.") :]: v for k, v in original.items()}, "param": []}
    ema_state = convert_original_state_dict(ema, arch)
    assert all(torch.equal(ema_state[k], state[k]) for k in state)


def test_dense_search_checkpoint_round_trip():
    entries = hrnas.create_model("hrnas_supernet_seg").arch.to_original_blocks()
    assert len(entries) == 61
    pruned = [[o, 1, s, ks[:2], [c // 7 + 1 for c in cs[:2]], e] for o, _, s, ks, cs, e in entries]
    arch = load_original_arch(pruned, task="seg", num_classes=19)
    reference = _randomise(hrnas.HRNASNet(arch))
    state = convert_original_state_dict(_to_original(reference, False), arch)
    model = hrnas.HRNASNet(arch).eval()
    model.load_state_dict(state)
    assert _same_output(model, reference, torch.randn(2, 3, 64, 96))


def test_mismatched_checkpoint_is_refused():
    arch = load_original_arch(RELEASED, task="cls")
    original = _to_original(_randomise(hrnas.HRNASNet(arch)), False)
    extra = dict(original, **{"module.features.99.branches.0.0.ops.0.2.weight": torch.zeros(1)})
    with pytest.raises(hrnas.WeightsError, match="no place in this architecture"):
        convert_original_state_dict(extra, arch)
    missing = {k: v for k, v in original.items() if "downsamples.1.0" not in k}
    with pytest.raises(hrnas.WeightsError, match="lacks 'downsamples.1.0.weight'"):
        convert_original_state_dict(missing, arch)


def test_convert_command_writes_a_model_directory(tmp_path):
    arch = load_original_arch(RELEASED, task="cls", retrain=True)
    reference = _randomise(hrnas.HRNASNet(arch.with_num_classes(10)))
    torch.save({"state_dict": _to_original(reference, True)}, tmp_path / "model.pth")
    (tmp_path / "checkpoint.json").write_text(json.dumps(RELEASED))
    out = tmp_path / "converted"
    assert (
        main(["convert", str(tmp_path / "model.pth"), str(tmp_path / "checkpoint.json"), "--output-dir", str(out)]) == 0
    )
    model = hrnas.create_model(str(out)).eval()
    assert model.num_classes == 10  # read from the classifier
    assert _same_output(model, reference, torch.randn(2, 3, 64, 64))


def test_convert_refuses_pickled_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model": Evil()}, tmp_path / "evil.pt")
    (tmp_path / "a.json").write_text(json.dumps(RELEASED))
    with pytest.raises(hrnas.WeightsError, match="not a plain file of tensors"):
        hrnas.convert_original(tmp_path / "evil.pt", tmp_path / "a.json", tmp_path / "out")
    assert not (tmp_path / "out").exists()
