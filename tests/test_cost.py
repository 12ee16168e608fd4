"""Cost: the analytic counts the search uses equal fvcore's trace of the built module, for every model."""

import pytest
import torch
from helpers import tiny_arch

import hrnas
from hrnas.cost import (
    block_macs,
    block_macs_table,
    block_params,
    channel_macs,
    channel_params,
    token_macs,
    token_params,
)
from hrnas.searching.units import block_costs

MODELS = [m for m in hrnas.list_models() if m != "hrnas_custom"]


@pytest.mark.model
@pytest.mark.parametrize("name", MODELS + ["hrnas_custom"])
@pytest.mark.parametrize("size", [(64, 96), (97, 161)])
def test_analytic_counts_equal_profile(name, size):
    kwargs = {"arch": tiny_arch()} if name == "hrnas_custom" else {}
    model = hrnas.create_model(name, **kwargs)
    prof = hrnas.profile(model, size)
    assert prof.macs == hrnas.count_macs(model.arch, size)
    assert prof.params == hrnas.count_params(model.arch) == sum(p.numel() for p in model.parameters())
    table = block_macs_table(model.arch, size)
    for block_name, macs in table.items():
        assert prof.macs_by_module[block_name] == macs, block_name


def test_count_with_other_in_chans_and_classes():
    model = hrnas.create_model("hrnas_supernet_tiny_seg", in_chans=1, num_classes=3)
    prof = hrnas.profile(model, 64)
    assert prof.macs == hrnas.count_macs(model.arch, 64, in_chans=1)
    assert prof.params == hrnas.count_params(model.arch, in_chans=1)


@pytest.mark.model
def test_profile_states_convention_and_size():
    model = hrnas.create_model("hrnas_cls_a")
    paper = hrnas.profile(model)  # default: the pretrained cfg's input size
    assert paper.input_size == (224, 224)
    text = str(paper)
    assert "4.600 M params" in text and "at 224x224" in text and "convention 'paper'" in text
    full = hrnas.profile(model, 224, convention="full")
    assert full.convention == "full" and full.macs > paper.macs
    assert full.params == paper.params
    table = paper.table(max_depth=1)
    assert "(total)" in table and "stages" in table and "neck" in table
    assert model.training  # profile restores the mode
    assert hrnas.profile("hrnas_supernet_tiny_cls", 32).macs == hrnas.count_macs(
        hrnas.create_model("hrnas_supernet_tiny_cls").arch, 32
    )


def test_profile_counts_attention():
    arch = hrnas.get_space("seg_tiny").supernet(tokens=8)
    model = hrnas.HRNASNet(arch)
    prof = hrnas.profile(model, 64)
    no_tok = hrnas.profile(hrnas.HRNASNet(hrnas.get_space("seg_tiny").supernet(transformers=False)), 64)
    n_tr = sum(b.tokens > 0 for b in arch.blocks())
    per = hrnas.cost.transformer_macs(12, 12, 8)
    assert n_tr > 0 and prof.macs > no_tok.macs + n_tr * 0.5 * per
    assert prof.macs == hrnas.count_macs(arch, 64)


def test_batch_size_scales_macs():
    model = hrnas.create_model("hrnas_supernet_tiny_cls")
    one = hrnas.profile(model, 32)
    assert hrnas.profile(model, 32, batch_size=3).macs == 3 * one.macs
    assert torch.is_grad_enabled()


def _unit_specs():
    """Blocks of every kind the search meets: identity residual with tokens, strided, with SE, uneven widths."""
    yield hrnas.BlockSpec(12, 12, 1, (3, 5, 7), (6, 4, 3), tokens=5)
    yield hrnas.BlockSpec(8, 16, 2, (3, 5, 7), (5, 2, 2), se_ratio=0.5, act="swish")
    yield hrnas.BlockSpec(18, 36, 2, (3, 7), (2, 9), tokens=3, se_ratio=0.25)
    yield hrnas.BlockSpec(10, 6, 1, (5,), (4,))


@pytest.mark.parametrize("spec", list(_unit_specs()))
@pytest.mark.parametrize("hw", [(9, 13), (16, 16)])
def test_unit_costs_are_whole_block_differences(spec, hw):

    for i, ((k, _), macs, params) in enumerate(zip(spec.paths, channel_macs(spec, hw), channel_params(spec))):
        fewer = spec.replace(channels=tuple(n - (kk == k) for kk, n in zip(spec.kernels, spec.channels)))
        assert block_macs(spec, hw) - block_macs(fewer, hw) == macs, (i, k)
        if fewer.hidden:  # the last channel also takes the projection's BatchNorm (and the SE's bias) with it
            assert block_params(spec) - block_params(fewer) == params, (i, k)
    linear, quad = token_macs(spec.in_chs, spec.out_chs)
    p_linear, p_quad = token_params(spec.in_chs, spec.out_chs)
    costs = block_costs(spec, hw, "macs")  # the search's per-unit costs are these numbers
    assert costs.channel == channel_macs(spec, hw) and block_costs(spec, hw, "params").channel == channel_params(spec)
    for n in range(1, spec.tokens + 1):
        with_n, without = spec.replace(tokens=n), spec.replace(tokens=n - 1)
        assert block_macs(with_n, hw) - block_macs(without, hw) == linear + quad * (2 * n - 1) == costs.token(n)
        if n > 1:  # the last token also takes the encoder and decoder with it
            assert block_params(with_n) - block_params(without) == p_linear + p_quad * (2 * n - 1)
