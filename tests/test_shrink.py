"""Physical shrinking: function preserved, counts exact, optimizer state and EMA sliced consistently."""

import pytest
import torch

import hrnas
from hrnas.layers import BLOCK_UNITS
from hrnas.searching.ema import EMA
from hrnas.searching.shrink import BlockKeep, plan_shrink, shrink_model, shrink_optimizer_state


def _trained_like(arch, dtype=torch.float64, seed=0):
    """A network with non-trivial BatchNorm statistics and affine parameters."""
    torch.manual_seed(seed)
    model = hrnas.HRNASNet(arch).to(dtype)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, 64, 64, dtype=dtype))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.5)
    return model.eval()


def _zero_gates(block, dead):
    """Zero the depthwise-BN gates of the hidden channels flagged in ``dead`` (all paths, in path order)."""
    start = 0
    for path in block.paths:
        gate = getattr(path, BLOCK_UNITS.gate_norm).weight
        n = gate.numel()
        gate.data[dead[start : start + n]] = 0
        start += n


def _choose(arch, model, seed=1):
    """Zero the gates of chosen channels: whole blocks, whole kernel paths and random subsets."""
    named = dict(model.named_modules())
    g = torch.Generator().manual_seed(seed)
    keeps, removed_params = {}, 0
    for i, (name, spec) in enumerate(arch.named_blocks()):
        if not spec.hidden:
            continue
        if i % 4 == 0:
            kept = torch.arange(0)  # the whole block
        elif i % 4 == 1:
            kept = torch.arange(spec.channels[0], spec.hidden)  # the whole 3x3 path
        else:
            kept = torch.randperm(spec.hidden, generator=g)[: spec.hidden // 3]
        dead = torch.ones(spec.hidden, dtype=torch.bool)
        dead[kept] = False
        _zero_gates(named[name], dead)
        keeps[name] = BlockKeep(kept)
        kernel_of = torch.cat([torch.full((c,), k) for k, c in spec.paths])
        for k in kernel_of[dead].tolist():
            removed_params += spec.in_chs + 2 + k * k + 2 + spec.out_chs  # expand row, bn1, filter, bn2, project col
        if len(kept) == 0:
            removed_params += 2 * spec.out_chs  # bn3 goes with the last channel
    return keeps, removed_params


def _build(model):
    return lambda a: hrnas.HRNASNet(a, num_classes=model.num_classes).to(torch.float64)


def test_shrink_preserves_eval_function_and_counts():
    arch = hrnas.get_space("seg_tiny").supernet(transformers=False)
    model = _trained_like(arch)
    keeps, removed_params = _choose(arch, model)
    x = torch.randn(2, 3, 64, 80, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
    plan = plan_shrink(arch, keeps)
    small = shrink_model(model, plan, _build(model)).eval()
    with torch.no_grad():
        out = small(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    before = sum(p.numel() for p in model.parameters())
    after = sum(p.numel() for p in small.parameters())
    assert before - after == removed_params
    assert after == hrnas.count_params(plan.new_arch)
    # whole paths vanished from the arch; emptied blocks kept only their residual and the folded constant
    named = dict(plan.new_arch.named_blocks())
    assert named["stages.0.branches.0.0"].channels[0] == 0  # block 1 lost its whole 3x3 path
    emptied = [n for n, b in plan.new_arch.named_blocks() if b.hidden == 0]
    assert emptied and all(len(dict(small.named_modules())[n].paths) == 0 for n in emptied)
    assert any(dict(small.named_modules())[n].bias.abs().sum() > 0 for n in emptied)


def test_shrink_also_preserves_train_mode_function_for_partial_removal():
    # in train mode BatchNorm uses batch statistics, so the folded constant cancels as well
    arch = hrnas.get_space("seg_tiny").supernet(transformers=False)
    model = _trained_like(arch)
    name, spec = arch.named_blocks()[5]
    kept = torch.arange(0, spec.hidden, 2)
    dead = torch.ones(spec.hidden, dtype=torch.bool)
    dead[kept] = False
    _zero_gates(dict(model.named_modules())[name], dead)
    plan = plan_shrink(arch, {name: BlockKeep(kept)})
    small = shrink_model(model, plan, _build(model))
    model.train()
    small.train()
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    torch.testing.assert_close(small(x), model(x), atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
def test_optimizer_state_and_ema_are_sliced_like_the_weights(opt_name):
    arch = hrnas.get_space("seg_tiny").supernet(transformers=True, tokens=4)
    model = hrnas.HRNASNet(arch).train()
    if opt_name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ema = EMA(model, decay=0.9)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(2, 3, 64, 64)).mean().backward()
        opt.step()
        ema.update(model)
    name, spec = arch.named_blocks()[3]
    kept = torch.tensor([0, 5, 30, 40])  # path 0 keeps 0 and 5; path 1 (24 channels) keeps 30 - 24 and 40 - 24
    plan = plan_shrink(arch, {name: BlockKeep(kept, tokens=torch.tensor([1, 3]) if spec.tokens else None)})
    small = shrink_model(model, plan, lambda a: hrnas.HRNASNet(a))
    new_opt = type(opt)(small.parameters(), **{k: v for k, v in opt.defaults.items() if k in ("lr", "momentum")})
    shrink_optimizer_state(opt, model, new_opt, small, plan)
    old_p = dict(model.named_parameters())
    new_p = dict(small.named_parameters())
    key = "momentum_buffer" if opt_name == "sgd" else "exp_avg_sq"
    u = BLOCK_UNITS
    w = f"{u.path(name, 1)}.{u.expand}.weight"
    torch.testing.assert_close(new_opt.state[new_p[w]][key], opt.state[old_p[w]][key][[30 - 24, 40 - 24]])
    pwl = f"{u.path(name, 0)}.{u.project}.weight"
    torch.testing.assert_close(new_opt.state[new_p[pwl]][key], opt.state[old_p[pwl]][key][:, [0, 5]])
    assert f"{u.path(name, 2)}.{u.expand}.weight" not in new_p  # the 7x7 path kept nothing and is gone
    untouched = "stem.0.conv.weight"
    torch.testing.assert_close(new_opt.state[new_p[untouched]][key], opt.state[old_p[untouched]][key])
    if opt_name == "adamw":
        assert float(new_opt.state[new_p[w]]["step"]) == 2
    shadow = plan.apply(ema.shadow, list(small.state_dict()))
    torch.testing.assert_close(shadow[w], ema.shadow[w][[30 - 24, 40 - 24]])
    assert set(shadow) == set(small.state_dict())
    # the shrunk optimizer keeps training
    new_opt.zero_grad()
    small(torch.randn(2, 3, 64, 64)).mean().backward()
    new_opt.step()


def test_token_removal_shapes_cost_and_bounded_change():
    arch = hrnas.get_space("seg_tiny").supernet(transformers=True, tokens=8)
    model = _trained_like(arch)
    named = dict(model.named_modules())
    with_tokens = [(n, b) for n, b in arch.named_blocks() if b.tokens]
    (n1, b1), (n2, b2) = with_tokens[0], with_tokens[1]
    # the search empties a token's gate before removing it
    gates = dict(model.named_parameters())
    gates[BLOCK_UNITS.token_gate(n1)].data[[0, 2, 5]] = 0
    gates[BLOCK_UNITS.token_gate(n2)].data[:] = 0
    keeps = {
        n1: BlockKeep(torch.arange(b1.hidden), tokens=torch.tensor([1, 3, 4, 6, 7])),
        n2: BlockKeep(torch.arange(b2.hidden), tokens=torch.tensor([], dtype=torch.long)),
    }
    plan = plan_shrink(arch, keeps)
    small = shrink_model(model, plan, _build(model)).eval()
    new = dict(plan.new_arch.named_blocks())
    assert new[n1].tokens == 5 and new[n2].tokens == 0
    t1 = dict(small.named_modules())[n1].transformer
    assert t1.input_proj.weight.shape[0] == 5 and t1.query_embed.weight.shape == (5, 64)
    assert t1.reverse_proj.weight.shape[1] == 5
    assert dict(small.named_modules())[n2].transformer is None  # all tokens gone: the module is gone
    removed = hrnas.cost.transformer_macs(b1.in_chs, b1.out_chs, 8)
    removed -= hrnas.cost.transformer_macs(b1.in_chs, b1.out_chs, 5)
    removed += hrnas.cost.transformer_macs(b2.in_chs, b2.out_chs, 8)
    assert hrnas.count_macs(arch, 64) - hrnas.count_macs(plan.new_arch, 64) == removed
    assert sum(p.numel() for p in small.parameters()) == hrnas.count_params(plan.new_arch)
    # Dead tokens still took part in attention, so a block's output moves when they go; the move is bounded
    # by what the transformer contributed at all, and for a transformer that lost every token only its spatial
    # variation is lost (its mean is folded into the block).
    for name, b in ((n1, b1), (n2, b2)):
        old_block, new_block = named[name], dict(small.named_modules())[name]
        x = torch.randn(2, b.in_chs, 16, 16, dtype=torch.float64)
        with torch.no_grad():
            contribution = old_block.transformer(x, 16, 16)
            change = new_block(x) - old_block(x)
        assert 0 < change.norm() < contribution.norm()
        if name == n2:
            torch.testing.assert_close(change, -(contribution - contribution.mean(dim=(2, 3), keepdim=True)))
