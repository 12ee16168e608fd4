"""Fidelity: parameter and MAC counts of the paper's networks against the original code (docs/conventions.md).

Targets were measured on the original HR-NAS code with its own counter (conv and linear MACs; BN, activations,
resizes not counted). Parameters are compared without the original's distillation-only BatchNorms, which hrnas
does not build. Each row is checked twice: by tracing the built module with fvcore (``hrnas.profile``) and by
the analytic count from the ``Arch`` integers that the search uses.
"""

import math

import pytest

import hrnas
from hrnas.cost import feature_sizes

TOLERANCE = 0.005  # within 0.5 % of the original code's own counts

# (model name, input size, params without distill BNs, MACs)
ROWS = [
    ("hrnas_supernet_cls", (224, 224), 13_243_868, 2_422_799_760),
    ("hrnas_supernet_seg", (512, 1024), 10_110_235, 61_836_632_064),
    ("hrnas_supernet_seg_ade", (512, 512), 10_427_706, 36_114_665_472),
    ("hrnas_supernet_pose", (256, 192), 10_110_053, 5_796_631_296),
]


def _close(value: int, target: int) -> bool:
    return abs(value - target) <= TOLERANCE * target


@pytest.mark.parametrize("name, size, params, macs", ROWS, ids=[r[0] for r in ROWS])
def test_supernet_fidelity_counted(name, size, params, macs):
    """The analytic count at the paper's sizes (tests/test_cost.py checks it equals fvcore's trace of every model,
    at an even and an odd size)."""
    arch = hrnas.get_space(name.removeprefix("hrnas_supernet_")).supernet(transformers=False)  # = the model's
    assert (hrnas.count_params(arch), hrnas.count_macs(arch, size)) == (params, macs)


@pytest.mark.benchmark  # traces the paper-size networks at full resolution with fvcore
@pytest.mark.parametrize("name, size, params, macs", ROWS, ids=[r[0] for r in ROWS])
def test_supernet_fidelity_profiled(name, size, params, macs):
    model = hrnas.create_model(name)
    prof = hrnas.profile(model, size)
    assert _close(prof.params, params), (prof.params, params)
    assert _close(prof.macs, macs), (prof.macs, macs)
    # in fact they are exact: same network, same counting rule
    assert (prof.params, prof.macs) == (params, macs)
    assert (hrnas.count_params(model.arch), hrnas.count_macs(model.arch, size)) == (params, macs)


@pytest.mark.model
def test_released_arch_search_form():
    # the released widths in plain search blocks (ReLU, no SE): 3,894,152 params, 259,232,935 MACs
    arch = hrnas.released_cls_arch("search")
    model = hrnas.create_model("hrnas_custom", arch=arch)
    prof = hrnas.profile(model, 224)
    assert prof.macs == 259_232_935
    assert _close(prof.params, 3_894_152)
    # the 468 missing parameters are the original's unused output BNs in its 9 emptied blocks (2 * out each)
    empty_out = [b.out_chs for b in arch.blocks() if b.hidden == 0]
    assert len(empty_out) == 9
    assert prof.params + 2 * sum(empty_out) == 3_894_152


@pytest.mark.model
def test_released_arch_retrain_form():
    # hrnas_cls_a: SE 0.5, Swish, dropout 0.28. The original counter reports 4.60 M params and 260,161,128 MACs;
    # it skips the grouped 1x1 residual convs of this block form and counts the SE's global pooling.
    model = hrnas.create_model("hrnas_cls_a")
    prof = hrnas.profile(model, 224)
    assert prof.params == 4_600_000
    arch = model.arch
    sizes = feature_sizes(224, 8)
    strides = arch.block_input_strides()
    residual_macs = se_pool = 0
    for name, b in arch.named_blocks():
        h, w = sizes[int(math.log2(strides[name]))]
        out_area = math.ceil(h / b.stride) * math.ceil(w / b.stride)
        if not b.has_identity:
            residual_macs += b.in_chs // math.gcd(b.in_chs, b.out_chs) * b.out_chs * out_area
        if b.se_chs:
            se_pool += b.hidden * out_area
    assert _close(prof.macs - residual_macs + se_pool, 260_161_128)
    assert prof.macs - residual_macs + se_pool == 260_161_128
    assert 1.0e6 < residual_macs < 1.2e6  # "about 1.1 M more"


@pytest.mark.model
def test_registered_supernets_are_the_transformer_free_paper_networks():
    for name, space in [("hrnas_supernet_seg", "seg"), ("hrnas_supernet_cls", "cls"), ("hrnas_supernet_pose", "pose")]:
        model = hrnas.create_model(name)
        assert all(b.tokens == 0 for b in model.arch.blocks())
        assert model.arch == hrnas.get_space(space).supernet(transformers=False)
