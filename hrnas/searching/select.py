"""Choosing which units to remove at a shrink check.

All units of the current network (hidden channels and tokens) are laid out in flat tensors with their gate
(``|gamma|`` on the current weights and on the EMA weights) and cost. The paper's rule removes the units whose
gate is at most the threshold on either; budget mode adds the trajectory and the final cut
(:mod:`hrnas.searching.budget`), ranking units by ``|gamma|`` (of the weights being trained; of the EMA weights at
the end) so that the weakest go first; the cost enters through the penalty that drove the gates down. Costs of
candidate removals are always exact (the whole ``Arch`` is re-counted), so the budget holds for transformers'
quadratic token costs too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch

from ..arch import Arch
from ..layers.block import BLOCK_UNITS
from .budget import BudgetController
from .shrink import BlockKeep
from .units import CostModel

__all__ = ["UnitIndex", "Selection", "round_paths", "select_units"]


class UnitIndex:
    """Every searchable unit of a network with its gate values, penalty and owning block."""

    def __init__(
        self,
        arch: Arch,
        state: Dict[str, torch.Tensor],
        ema_state: Optional[Dict[str, torch.Tensor]],
        cost_model: CostModel,
        normalizer: float,
        equal_penalty: bool = False,
        importance: Optional[Dict[str, torch.Tensor]] = None,
    ) -> None:
        self.arch = arch
        self.cost_model = cost_model
        self.names = [n for n, _ in arch.named_blocks()]
        self.specs = [b for _, b in arch.named_blocks()]
        penalties = cost_model.penalties(arch, normalizer, equal=equal_penalty)
        blocks, slots, kinds, locals_, gates, gates_ema, pens, imps = [], [], [], [], [], [], [], []

        def importance_of(keys: list[str]) -> torch.Tensor:
            return torch.cat([importance[k].float().cpu() for k in keys])

        self.slot_of_path = []  # for each block: list of slot ids, one per existing path; tokens get their own slot
        slot = 0
        for bi, (name, spec) in enumerate(zip(self.names, self.specs)):
            path_slots = []
            pvec, ptok = penalties[name]
            if spec.hidden:
                keys = [BLOCK_UNITS.channel_gate(name, i) for i in range(len(spec.paths))]
                g = torch.cat([state[k].detach().float().cpu().abs() for k in keys])
                ge = torch.cat([ema_state[k].float().cpu().abs() for k in keys]) if ema_state else g
                start = 0
                for _, n in spec.paths:
                    blocks.append(torch.full((n,), bi))
                    slots.append(torch.full((n,), slot))
                    kinds.append(torch.zeros(n, dtype=torch.long))
                    locals_.append(torch.arange(start, start + n))
                    path_slots.append(slot)
                    slot += 1
                    start += n
                gates.append(g)
                gates_ema.append(ge)
                pens.append(pvec.float())
                if importance is not None:
                    imps.append(importance_of(keys))
            if spec.tokens:
                n = spec.tokens
                key = BLOCK_UNITS.token_gate(name)
                g = state[key].detach().float().cpu().abs()
                ge = ema_state[key].float().cpu().abs() if ema_state else g
                blocks.append(torch.full((n,), bi))
                slots.append(torch.full((n,), slot))
                kinds.append(torch.ones(n, dtype=torch.long))
                locals_.append(torch.arange(n))
                gates.append(g)
                gates_ema.append(ge)
                pens.append(torch.full((n,), float(ptok)))
                if importance is not None:
                    imps.append(importance_of([key]))
                path_slots.append(slot)
                slot += 1
            self.slot_of_path.append(path_slots)
        self.num_slots = slot
        empty_long = torch.zeros(0, dtype=torch.long)
        self.block = torch.cat(blocks) if blocks else empty_long
        self.slot = torch.cat(slots) if slots else empty_long
        self.kind = torch.cat(kinds) if kinds else empty_long
        self.local = torch.cat(locals_) if locals_ else empty_long
        self.gate = torch.cat(gates) if gates else torch.zeros(0)
        self.gate_ema = torch.cat(gates_ema) if gates_ema else torch.zeros(0)
        self.penalty = torch.cat(pens) if pens else torch.zeros(0)
        # per unit, the first-order (Taylor) estimate of the loss its removal would add: |gamma * dL/dgamma|,
        # averaged over recent steps by the trainer (None: cuts are ranked by the gates alone)
        self.importance = (torch.cat(imps) if imps else torch.zeros(0)) if importance is not None else None

    def __len__(self) -> int:
        return len(self.gate)

    def arch_without(self, removed: torch.Tensor) -> Arch:
        """The architecture after removing the units flagged in ``removed``."""
        kept = torch.bincount(self.slot[~removed], minlength=self.num_slots).tolist()
        new = []
        for spec, slots in zip(self.specs, self.slot_of_path):
            it = iter(slots)
            channels = tuple(kept[next(it)] if c > 0 else 0 for c in spec.channels)
            tokens = kept[next(it)] if spec.tokens else 0
            new.append(spec.replace(channels=channels, tokens=tokens))
        return self.arch.with_blocks(new)

    def cost_without(self, removed: torch.Tensor) -> int:
        return self.cost_model.total(self.arch_without(removed))

    def priced(self, cost_model: CostModel) -> UnitIndex:
        """The same units with networks priced by ``cost_model`` (a corrected latency model); gates and penalties
        are shared."""
        other = copy.copy(self)
        other.cost_model = cost_model
        return other

    def keeps(self, removed: torch.Tensor) -> Dict[str, BlockKeep]:
        """Per block that loses something: the indices it keeps (for :func:`hrnas.searching.shrink.plan_shrink`)."""
        out = {}
        touched = self.block[removed].unique().tolist()
        for bi in touched:
            in_block = self.block == bi
            ch = in_block & (self.kind == 0)
            tok = in_block & (self.kind == 1)
            spec = self.specs[bi]
            out[self.names[bi]] = BlockKeep(
                channels=self.local[ch & ~removed],
                tokens=self.local[tok & ~removed] if spec.tokens else None,
            )
        return out


@dataclass
class Selection:
    removed: torch.Tensor  # bool over units
    forced: bool  # units with a non-negligible gate had to go to meet the trajectory or the budget
    cost_before: int
    cost_after: int


def _largest_prefix(n: int, ok: Callable[[int], bool]) -> int:
    """Largest k in [0, n] with ok(k), for ok monotone decreasing in k (True up to some point)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def round_paths(
    index: UnitIndex, removed: torch.Tensor, score: torch.Tensor, multiple: int, down: bool = False
) -> torch.Tensor:
    """``removed`` changed so that every kernel path keeps a multiple of ``multiple`` channels: the nearest one (a
    path keeping under half a multiple goes), or with ``down`` the one below, so that the cost can only fall.
    Channels are dropped weakest first and taken back strongest first (by ``score``); tokens are not rounded."""
    if multiple <= 1:
        return removed
    removed = removed.clone()
    channels = index.kind == 0
    for slot in index.slot[channels].unique().tolist():
        units = torch.nonzero(channels & (index.slot == slot)).flatten()
        kept = int((~removed[units]).sum())
        target = (kept // multiple if down else int(kept / multiple + 0.5)) * multiple
        if target > len(units):  # a path that is not a multiple wide cannot grow to the next one
            target -= multiple
        if target < kept:
            alive = units[~removed[units]]
            removed[alive[score[alive].argsort(stable=True)[: kept - target]]] = True
        elif target > kept:
            gone = units[removed[units]]
            removed[gone[score[gone].argsort(descending=True, stable=True)[: target - kept]]] = False
    return removed


def select_units(
    index: UnitIndex,
    threshold: float,
    controller: Optional[BudgetController] = None,
    step: int = 0,
    final: bool = False,
    min_shrink: float = 0.0,
    budget: Optional[float] = None,
    multiple: int = 1,
) -> Selection:
    """Decide which units to remove now.

    Args:
        index: the units of the current network.
        threshold: a unit is dead when its gate is at most this (on the current and the EMA weights; on the EMA
            weights only when ``final``).
        controller: budget mode when given; paper mode otherwise.
        step: the current step (for the budget trajectory).
        final: the end of the run: EMA gates decide, and the budget's ceiling is enforced.
        min_shrink: paper mode removes dead units only once their cost adds up to this (or when ``final``).
        budget: the ceiling a ``final`` selection enforces (default: the controller's last budget; a family's
            member is cut to its own).
        multiple: every kernel path keeps a multiple of this many channels (:func:`round_paths`; rounded down in
            a ``final`` selection, so that the budget's ceiling holds).
    """
    n = len(index)
    none = torch.zeros(n, dtype=torch.bool)
    before = index.cost_without(none)
    if n == 0:
        return Selection(none, False, before, before)
    # The paper's rule: dead when the gate is at most the threshold on the current OR the EMA weights (the EMA lags the
    # proximal step's exact zeros by tens of steps; requiring both left units the penalty had emptied in the network
    # while rank cuts removed live ones). At the end the EMA weights, which are the deliverable, decide.
    gate = index.gate_ema if final else index.gate
    dead = gate <= threshold if final else (index.gate <= threshold) | (index.gate_ema <= threshold)
    # Forced removals go by the importance a unit has per unit of cost when the trainer measured it (the first-order
    # estimate of the loss its removal adds, divided by what it costs): cut to a few per cent of the supernet, a
    # ranking by gate alone removed whole high-resolution branches and the head, whose gates the cost-weighted pull
    # had shrunk fastest (benchmarks/results/search_collapse.md). Without measured importance: by gate alone, as the
    # paper's threshold rule does (a raised threshold).
    if index.importance is not None:
        score = index.importance / index.penalty.clamp(min=1e-12)
    else:
        score = gate

    if controller is None:
        dead = round_paths(index, dead, score, multiple, down=final)
        after = index.cost_without(dead)
        if dead.any() and (final or before - after >= min_shrink):
            return Selection(dead, False, before, after)
        return Selection(none, False, before, before)

    # dead units go first, weakest first, but never below the floor
    dead_idx = torch.nonzero(dead).flatten()
    dead_idx = dead_idx[score[dead_idx].argsort(stable=True)]

    def removing(idx: torch.Tensor, k: int, base: torch.Tensor) -> torch.Tensor:
        m = base.clone()
        m[idx[:k]] = True
        return m

    floor = controller.floor * budget if budget is not None else controller.floor_at(step)
    k = _largest_prefix(len(dead_idx), lambda k: index.cost_without(removing(dead_idx, k, none)) >= floor)
    removed = removing(dead_idx, k, none)
    cost = index.cost_without(removed)

    if budget is None:
        budget = controller.budget
    target = budget * controller.goal if final else controller.target(step)
    forced = False
    if cost > target:
        alive_idx = torch.nonzero(~removed).flatten()
        alive_idx = alive_idx[score[alive_idx].argsort(stable=True)]

        def cost_at(k: int) -> int:
            return index.cost_without(removing(alive_idx, k, removed))

        # smallest k with cost <= target == (largest k with cost > target) + 1
        k2 = min(_largest_prefix(len(alive_idx), lambda k: cost_at(k) > target) + 1, len(alive_idx))
        # ... but not below the floor (a latency's floor is just under its goal, and one unit can span the gap),
        # unless a final cut needs it to get under the budget's ceiling
        k_floor = _largest_prefix(len(alive_idx), lambda k: cost_at(k) >= floor)
        k_ceiling = min(_largest_prefix(len(alive_idx), lambda k: cost_at(k) > budget) + 1, len(alive_idx))
        k2 = min(k2, max(k_floor, k_ceiling if final else 0))
        removed = removing(alive_idx, k2, removed)
        cost = index.cost_without(removed)
        forced = k2 > 0
    if multiple > 1:
        removed = round_paths(index, removed, score, multiple, down=final)
        cost = index.cost_without(removed)
    return Selection(removed, forced, before, cost)
