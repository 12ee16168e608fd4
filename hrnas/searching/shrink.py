"""Physical shrinking: remove channels and tokens from a network, its EMA and its optimizer state.

Given which hidden channels and tokens each block keeps, :func:`plan_shrink` produces the smaller ``Arch`` and a
:class:`ShrinkPlan` that maps every tensor of the new network to a slice of the old one. The same plan slices the
model's state, the EMA's shadow state and the optimizer's per-parameter state (SGD momentum, Adam moments), so
all three stay consistent.

Removed channels are folded, not just dropped: a channel whose gate gamma is 0 outputs the constant ``act(beta)``
in eval mode, which reaches the block's BatchNorm after the projections through its path's projection as a
per-channel constant ``c``. Subtracting ``c`` from that BatchNorm's running mean keeps the eval-mode function
exactly; when no channel is left the block keeps the normalised ``c`` as its constant buffer. Tensors are addressed
by the names :data:`hrnas.layers.BLOCK_UNITS` declares. (With an SE block the fold ignores the SE's rescaling, and a
channel removed with a non-zero gamma is approximated by its constant part: exact only for gamma == 0.) Removed
tokens still took part in attention, so removing some of a transformer's tokens changes the output slightly;
when all go, the transformer's output no longer depends on the input and its per-channel mean is folded into the
block (its spatial variation is lost).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import Arch, BlockSpec
from ..layers.block import BLOCK_UNITS
from ..layers.transformer import TOKEN_UNITS, LightweightTransformer

__all__ = ["BlockKeep", "ShrinkPlan", "plan_shrink", "shrink_model", "shrink_optimizer_state"]

Slices = List[Tuple[int, torch.Tensor]]  # (dim, kept indices) applied in order


@dataclasses.dataclass
class BlockKeep:
    """What one block keeps: indices into its hidden channels (all paths' channels in path order) and tokens."""

    channels: torch.Tensor
    tokens: Optional[torch.Tensor] = None


@dataclasses.dataclass
class _TransformerFold:
    """A transformer that loses every token: its (then input-independent) output's per-channel mean is kept."""

    name: str
    in_chs: int
    out_chs: int
    tokens: int


@dataclasses.dataclass
class _Fold:
    name: str
    removed: List[Tuple[int, torch.Tensor]]  # (old path index, removed channel indices within that path)
    empty: bool  # no hidden channel left: fold into the block's bias buffer
    act: str
    bn_eps: float


class ShrinkPlan:
    """How each tensor of the shrunk network derives from the old network's tensors."""

    def __init__(self, old_arch: Arch, new_arch: Arch) -> None:
        self.old_arch = old_arch
        self.new_arch = new_arch
        self.sources: Dict[str, Tuple[str, Slices]] = {}  # new key -> (old key, slices), for blocks that changed
        self.changed: List[str] = []  # blocks (and transformers) whose shape changed
        self.folds: List[_Fold] = []
        self.transformer_folds: List[_TransformerFold] = []

    def source_of(self, new_key: str) -> Tuple[str, Slices]:
        """The old key and slices a new key comes from (identity for everything the plan did not touch)."""
        return self.sources.get(new_key, (new_key, []))

    def sliced(self, old_state: Dict[str, torch.Tensor], new_keys: List[str]) -> Dict[str, torch.Tensor]:
        """The kept part of every tensor of ``old_state`` under its new name (for per-unit statistics shaped like the
        parameters they describe); keys the old state lacks are left out."""
        new_state: Dict[str, torch.Tensor] = {}
        for key in new_keys:
            old_key, slices = self.source_of(key)
            if old_key in old_state:
                new_state[key] = _slice(old_state[old_key], slices)
        return new_state

    def apply(self, old_state: Dict[str, torch.Tensor], new_keys: List[str]) -> Dict[str, torch.Tensor]:
        """Build the new network's state (model or EMA) from ``old_state``, folding removed channels."""
        new_state = self.sliced(old_state, new_keys)
        for fold in self.folds:
            _apply_fold(fold, old_state, new_state)
        for tfold in self.transformer_folds:
            _apply_transformer_fold(tfold, old_state, new_state)
        return new_state


def _slice(t: torch.Tensor, slices: Slices) -> torch.Tensor:
    for dim, idx in slices:
        t = t.index_select(dim, idx.to(t.device))
    return t.clone()


def _act(name: str, x: torch.Tensor) -> torch.Tensor:
    return F.relu(x) if name == "relu" else F.silu(x)


def _apply_fold(fold: _Fold, old: Dict[str, torch.Tensor], new: Dict[str, torch.Tensor]) -> None:
    p, u = fold.name, BLOCK_UNITS
    const = None
    for path, idx in fold.removed:
        key = u.path(p, path)
        beta_key = f"{key}.{u.gate_norm}.bias"
        if len(idx) == 0 or beta_key not in old:
            continue
        beta = old[beta_key].double().index_select(0, idx.to(old[beta_key].device))
        weight = old[f"{key}.{u.project}.weight"].double()[:, :, 0, 0].index_select(1, idx.to(beta.device))
        c = weight @ _act(fold.act, beta)  # per output channel: what the removed channels added before the norm
        const = c if const is None else const + c
    if const is None:
        return
    mean_key = u.norm(p, "running_mean")
    mean = old[mean_key].double()
    if not fold.empty:
        new[mean_key] = (mean - const).to(old[mean_key].dtype)
        return
    var = old[u.norm(p, "running_var")].double()
    gamma, shift = old[u.norm(p, "weight")].double(), old[u.norm(p, "bias")].double()
    bias = gamma * (const - mean) / torch.sqrt(var + fold.bn_eps) + shift
    new[f"{p}.{u.constant}"] = bias.to(old[u.norm(p, "bias")].dtype)


@torch.no_grad()
def _apply_transformer_fold(fold: _TransformerFold, old: Dict[str, torch.Tensor], new: Dict[str, torch.Tensor]) -> None:
    prefix = BLOCK_UNITS.transformer_path(fold.name) + "."
    sub = {k[len(prefix) :]: v for k, v in old.items() if k.startswith(prefix)}
    if not sub:
        return
    ref = next(iter(sub.values()))
    t = LightweightTransformer(fold.in_chs, fold.out_chs, fold.tokens).to(device=ref.device, dtype=ref.dtype)
    t.load_state_dict(sub)
    t.eval()
    # with every token gate at zero the tokens are constants, so the output does not depend on the input; its
    # per-channel mean is added after the block's last BatchNorm (exact for that part in train and eval mode)
    pattern = t(torch.zeros(1, fold.in_chs, t.grid, t.grid, device=ref.device, dtype=ref.dtype), t.grid, t.grid)
    mean = pattern.mean(dim=(0, 2, 3))
    norm_bias = BLOCK_UNITS.norm(fold.name, "bias")
    key = norm_bias if norm_bias in new else f"{fold.name}.{BLOCK_UNITS.constant}"
    if key in new:
        new[key] = new[key] + mean.to(new[key].dtype)


def _new_spec(spec: BlockSpec, keep: BlockKeep) -> BlockSpec:
    counts, start = [], 0
    for c in spec.channels:  # hidden channels are laid out path by path, in kernel order
        counts.append(int(((keep.channels >= start) & (keep.channels < start + c)).sum()))
        start += c
    tokens = spec.tokens if keep.tokens is None else int(len(keep.tokens))
    return spec.replace(channels=tuple(counts), tokens=tokens)


def plan_shrink(arch: Arch, keeps: Dict[str, BlockKeep]) -> ShrinkPlan:
    """Plan removing, for each named block, every hidden channel and token not listed in its ``BlockKeep``."""
    named = dict(arch.named_blocks())
    unknown = set(keeps) - set(named)
    if unknown:
        raise KeyError(f"unknown blocks {sorted(unknown)[:3]}")
    new_specs = {}
    for name, keep in keeps.items():
        keep.channels = torch.as_tensor(keep.channels, dtype=torch.long).sort().values
        if keep.tokens is not None:
            keep.tokens = torch.as_tensor(keep.tokens, dtype=torch.long).sort().values
        new_specs[name] = _new_spec(named[name], keep)
    new_arch = arch.with_blocks(new_specs)
    plan = ShrinkPlan(arch, new_arch)
    for name, keep in keeps.items():
        _plan_block(plan, name, named[name], new_specs[name], keep, arch)
    return plan


def _plan_block(plan: ShrinkPlan, p: str, old: BlockSpec, new: BlockSpec, keep: BlockKeep, arch: Arch) -> None:
    src, u = plan.sources, BLOCK_UNITS
    kept = keep.channels
    if new.hidden != old.hidden:
        plan.changed.append(p)
        removed = []
        start, new_path = 0, 0
        for path, (_, n) in enumerate(old.paths):
            in_path = (kept >= start) & (kept < start + n)
            local = kept[in_path] - start
            removed.append((path, torch.tensor(sorted(set(range(n)) - set(local.tolist())), dtype=torch.long)))
            if len(local):
                # a path that keeps channels keeps its tensors, sliced; empty paths vanish and the rest close up
                for name, dim in u.path_tensors():
                    slices = [] if dim is None else [(dim, local)]
                    src[f"{u.path(p, new_path)}.{name}"] = (f"{u.path(p, path)}.{name}", slices)
                new_path += 1
            start += n
        plan.folds.append(_Fold(p, removed, empty=new.hidden == 0, act=old.act, bn_eps=arch.bn_eps))
        if new.hidden:
            # the SE works on all hidden channels at once, in path order
            for name, dim in u.se_tensors():
                src[f"{p}.{name}"] = (f"{p}.{name}", [(dim, kept)])
    if keep.tokens is not None and new.tokens != old.tokens:
        plan.changed.append(u.transformer_path(p))
        if new.tokens == 0:
            plan.transformer_folds.append(_TransformerFold(p, old.in_chs, old.out_chs, old.tokens))
        t = keep.tokens
        tp = u.transformer_path(p)
        for name, dim in TOKEN_UNITS.tensors():
            src[f"{tp}.{name}"] = (f"{tp}.{name}", [(dim, t)])


def shrink_model(model: nn.Module, plan: ShrinkPlan, build: Callable[[Arch], nn.Module]) -> nn.Module:
    """Build the shrunk network with ``build(plan.new_arch)`` and load the sliced, folded state into it."""
    new_model = build(plan.new_arch)
    device = next(model.parameters()).device
    new_model.to(device)
    new_keys = list(new_model.state_dict().keys())
    state = plan.apply(model.state_dict(), new_keys)
    missing, unexpected = new_model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"shrink: state mismatch, missing {missing[:5]}, unexpected {unexpected[:5]}")
    new_model.train(model.training)
    return new_model


def shrink_optimizer_state(
    old_opt: torch.optim.Optimizer,
    old_model: nn.Module,
    new_opt: torch.optim.Optimizer,
    new_model: nn.Module,
    plan: ShrinkPlan,
) -> None:
    """Copy per-parameter optimizer state (momentum, Adam moments, step counts) into ``new_opt``, sliced like
    the parameters themselves."""
    old_params = dict(old_model.named_parameters())
    for name, param in new_model.named_parameters():
        old_name, slices = plan.source_of(name)
        old_param = old_params.get(old_name)
        if old_param is None or old_param not in old_opt.state:
            continue
        new_state = {}
        for k, v in old_opt.state[old_param].items():
            if torch.is_tensor(v) and v.shape == old_param.shape:
                new_state[k] = _slice(v, slices)
            elif torch.is_tensor(v):
                new_state[k] = v.clone()
            else:
                new_state[k] = v
        new_opt.state[param] = new_state
