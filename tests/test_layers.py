"""Layers: the fused block equals the literal three-path block; the transformer's structure and cost."""

import pytest
import torch

import hrnas
from hrnas import BlockSpec
from hrnas.cost import block_macs, transformer_macs, transformer_params
from hrnas.layers import BLOCK_UNITS, LightweightTransformer, MixedKernelBlock
from hrnas.layers.fused import FusedMixedKernelBlock, fused_to_paths, paths_to_fused


def _randomise_bn(module):
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(-1.5, 1.5)
            m.bias.data.normal_()
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)


SPECS = [
    BlockSpec(24, 24, 1, (3, 5, 7), (96, 96, 96)),  # full supernet block, identity residual
    BlockSpec(18, 36, 2, (3, 5, 7), (31, 29, 30)),  # strided fusion edge
    BlockSpec(36, 18, 1, (3, 5, 7), (3, 0, 1)),  # an empty middle path, grouped residual (gcd 18)
    BlockSpec(72, 72, 1, (3, 5, 7), (0, 0, 5)),  # a single path
    BlockSpec(18, 18, 1, (3, 5, 7), (0, 0, 0)),  # an empty block: identity only
    BlockSpec(72, 144, 2, (3, 5, 7), (0, 0, 0)),  # an empty block: strided grouped residual only
    BlockSpec(270, 90, 1, (3, 5, 7), (1, 1, 1)),  # the dense head's transform, one channel per path
    BlockSpec(20, 20, 1, (3, 5, 7), (4, 6, 2), act="swish"),
    BlockSpec(36, 72, 2, (3, 5, 7), (10, 0, 6), se_ratio=0.5, act="swish"),  # the released model's SE blocks
    BlockSpec(18, 18, 1, (3, 5, 7), (4, 4, 4), tokens=3),  # with a transformer
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.in_chs}-{s.out_chs}-s{s.stride}-{s.channels}-se{s.se_ratio}")
@pytest.mark.parametrize("train", [False, True])
def test_fused_form_equals_per_path_block(spec, train):
    block = MixedKernelBlock(spec)
    _randomise_bn(block)
    fused = FusedMixedKernelBlock(spec)
    fused.load_state_dict(paths_to_fused(block.state_dict(), spec), strict=True)
    block.train(train)
    fused.train(train)
    x = torch.randn(2, spec.in_chs, 13, 18)
    torch.manual_seed(1)  # the transformer's dropout draws the same masks in both
    out_paths = block(x)
    torch.manual_seed(1)
    out_fused = fused(x)
    assert out_paths.shape == (2, spec.out_chs, 13 if spec.stride == 1 else 7, 18 // spec.stride)
    torch.testing.assert_close(out_fused, out_paths, atol=1e-5, rtol=1e-5)
    if train and spec.hidden:
        # batch statistics agree too, so running stats move identically
        per_path = [getattr(p, BLOCK_UNITS.gate_norm).running_mean for p in block.paths]
        torch.testing.assert_close(fused.bn2.running_mean, torch.cat(per_path))
    # and back: the per-path state is recovered exactly
    back = fused_to_paths(fused.state_dict(), spec)
    assert back.keys() == block.state_dict().keys()
    for k, v in block.state_dict().items():
        torch.testing.assert_close(back[k], v)


def test_empty_block_has_no_path_modules():
    block = MixedKernelBlock(BlockSpec(18, 18, 1, (3, 5, 7), (0, 0, 0)))
    assert sum(p.numel() for p in block.parameters()) == 0 and len(block.paths) == 0 and block.bn3 is None
    x = torch.randn(1, 18, 5, 5)
    assert torch.equal(block(x), x)


def test_se_block_shapes_and_count():
    spec = BlockSpec(36, 72, 2, (3, 5, 7), (10, 0, 6), se_ratio=0.5, act="swish")
    block = MixedKernelBlock(spec)
    assert block.se.conv_reduce.weight.shape == (18, 16, 1, 1)  # round(36 * 0.5) from the 16 hidden channels
    assert [p.conv_dw.kernel_size for p in block.paths] == [(3, 3), (7, 7)]  # the empty 5x5 path is not built
    assert sum(p.numel() for p in block.parameters()) == hrnas.cost.block_params(spec)
    assert block(torch.randn(2, 36, 9, 9)).shape == (2, 72, 5, 5)


def test_transformer_tokens_zero_removes_module():
    with_tokens = MixedKernelBlock(BlockSpec(18, 18, 1, (3, 5, 7), (8, 8, 8), tokens=16))
    without = MixedKernelBlock(BlockSpec(18, 18, 1, (3, 5, 7), (8, 8, 8), tokens=0))
    assert isinstance(with_tokens.transformer, LightweightTransformer)
    assert without.transformer is None
    assert not any("transformer" in n for n, _ in without.named_parameters())
    n_params = sum(p.numel() for p in with_tokens.parameters()) - sum(p.numel() for p in without.parameters())
    assert n_params == transformer_params(18, 18, 16)
    # a network built with no tokens anywhere has no transformer modules at all
    model = hrnas.HRNASNet(hrnas.get_space("seg_tiny").supernet(tokens=0))
    assert not any(isinstance(m, LightweightTransformer) for m in model.modules())


def test_transformer_output_and_gradients():
    t = LightweightTransformer(18, 36, tokens=5)
    x = torch.randn(2, 18, 23, 31)
    y = t(x, 12, 16)
    assert y.shape == (2, 36, 12, 16)
    y.square().mean().backward()
    assert all(p.grad is not None for p in t.parameters())
    assert t.input_norm.weight.shape == (5,)  # one importance factor per token


def test_transformer_macs_do_not_grow_with_input_area():
    block = MixedKernelBlock(BlockSpec(18, 18, 1, (3, 5, 7), (0, 0, 0), tokens=32))
    small = hrnas.profile(block_model(block), (64, 64))
    large = hrnas.profile(block_model(block), (256, 512))
    # paper convention: the transformer's MACs are identical at both sizes (32x the area)
    tr_small = small.macs_by_module["block.transformer"]
    tr_large = large.macs_by_module["block.transformer"]
    assert tr_small == tr_large == transformer_macs(18, 18, 32)
    # full convention: only the two bilinear resizes grow (4 per output element each)
    full_small = hrnas.profile(block_model(block), (64, 64), convention="full").macs_by_module["block.transformer"]
    full_large = hrnas.profile(block_model(block), (256, 512), convention="full").macs_by_module["block.transformer"]
    resize_growth = 4 * 18 * (256 * 512 - 64 * 64)  # the output resize to the block's size, 18 channels
    assert full_large - full_small == resize_growth
    # the analytic count of a whole block agrees with the trace
    assert small.macs == block_macs(block.spec, (64, 64))


def block_model(block):
    """Wrap a block so profile() can trace it on a 18-channel input."""

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = block
            self.in_chans = block.in_chs

        def forward(self, x):
            return self.block(x)

    return Wrapper()


def _declared_keys_cases():
    from hrnas.archs import zoo_entries

    for space in hrnas.list_spaces():
        yield f"space {space}", hrnas.get_space(space).supernet()  # with transformers
    yield "released cls arch (SE, swish)", hrnas.released_cls_arch("retrain")
    for name in zoo_entries():  # searched: emptied paths and blocks, transformers with fewer tokens
        yield name, hrnas.zoo_arch(name)


@pytest.mark.parametrize("arch", [a for _, a in _declared_keys_cases()], ids=[n for n, _ in _declared_keys_cases()])
def test_every_declared_unit_key_exists_and_every_path_tensor_is_declared(arch):
    """BLOCK_UNITS / TOKEN_UNITS name every searchable unit's tensors for the penalty, selection, shrinking,
    conversion and deploy: each name they produce is a real tensor of every network, with the unit count along the
    declared dim, and no tensor of a kernel path is left undeclared (it would not be sliced when units go)."""
    from hrnas.layers import BLOCK_UNITS as U
    from hrnas.layers import TOKEN_UNITS as T

    with torch.device("meta"):
        state = hrnas.HRNASNet(arch).state_dict()
    declared = set()
    for name, spec in arch.named_blocks():
        for i, (_, n) in enumerate(spec.paths):
            assert state[U.channel_gate(name, i)].shape == (n,)
            for tensor, dim in U.path_tensors():
                key = f"{U.path(name, i)}.{tensor}"
                assert dim is None or state[key].shape[dim] == n, key
                declared.add(key)
        if spec.hidden:
            for tensor in ("weight", "bias", "running_mean", "running_var"):
                assert state[U.norm(name, tensor)].shape == (spec.out_chs,)
            for tensor, dim in U.se_tensors() if spec.se_chs else ():
                assert state[f"{name}.{tensor}"].shape[dim] == spec.hidden
        else:
            assert state[f"{name}.{U.constant}"].shape == (spec.out_chs,)
        if spec.tokens:
            assert state[U.token_gate(name)].shape == (spec.tokens,)
            for tensor, dim in T.tensors():
                assert state[f"{U.transformer_path(name)}.{tensor}"].shape[dim] == spec.tokens
        else:
            assert not any(k.startswith(U.transformer_path(name) + ".") for k in state)
    in_paths = {k for k in state if f".{U.paths}." in k}
    assert in_paths == declared
