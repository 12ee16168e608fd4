"""The search's parts on their own, without training: unit selection, the unit index, batching, the run plan, the
gate penalty, latency feedback (with a fake device passed in), the recorder, settings and checkpoints."""

import json
import warnings
from types import SimpleNamespace

import pytest
import torch

import hrnas
from hrnas.cost import block_input_sizes
from hrnas.latency import LatencyTable
from hrnas.layers import BLOCK_UNITS
from hrnas.searching import SearchConfig
from hrnas.searching.budget import Budget, BudgetController, RhoRamp
from hrnas.searching.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    read_search_checkpoint,
    save_checkpoint,
    write_search_checkpoint,
)
from hrnas.searching.config import PAPER_RHO
from hrnas.searching.feedback import LatencyFeedback, arch_digest
from hrnas.searching.loaders import EpochBatches, RunData
from hrnas.searching.penalty import GatePenalty
from hrnas.searching.plan import cost_input_size, plan_run
from hrnas.searching.recorder import Recorder
from hrnas.searching.select import UnitIndex, select_units
from hrnas.searching.units import CostModel

SIZE = (32, 32)


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return hrnas.HRNASNet(hrnas.get_space("seg_tiny").supernet(tokens=2))


def _gates(arch, state):
    """Gate keys of every block, in unit order: each path's gate, then the transformer's token gate."""
    keys = []
    for name, spec in arch.named_blocks():
        keys += [BLOCK_UNITS.channel_gate(name, i) for i in range(len(spec.paths))]
        keys += [BLOCK_UNITS.token_gate(name)] if spec.tokens else []
    return keys


def _state(supernet, value=1.0):
    state = {k: v.clone() for k, v in supernet.state_dict().items()}
    for k in _gates(supernet.arch, state):
        state[k].fill_(value)
    return state


# ----------------------------------------------------------------------------------------------------------
# The unit index and unit selection


def test_unit_index_lays_out_every_unit(supernet):
    arch = supernet.arch
    model = CostModel(SIZE)
    index = UnitIndex(arch, _state(supernet), None, model, model.normalizer(arch))
    assert len(index) == sum(b.hidden + b.tokens for b in arch.blocks())
    none = torch.zeros(len(index), dtype=torch.bool)
    assert index.arch_without(none) == arch and index.cost_without(none) == hrnas.count_macs(arch, SIZE)
    empty = index.arch_without(~none)
    assert all(b.hidden == 0 and b.tokens == 0 for b in empty.blocks())
    assert index.cost_without(~none) == model.fixed(arch)
    # the first block's first path's first channel and the block's last token
    first, spec = arch.named_blocks()[0]
    removed = none.clone()
    removed[0] = True
    removed[spec.hidden + spec.tokens - 1] = True
    keep = index.keeps(removed)
    assert set(keep) == {first}
    assert keep[first].channels.tolist() == list(range(1, spec.hidden))
    assert keep[first].tokens.tolist() == list(range(spec.tokens - 1))
    assert dict(index.arch_without(removed).named_blocks())[first].channels == (31, 32, 32)


def test_paper_rule_removes_units_dead_on_either_weights(supernet):
    arch = supernet.arch
    name = arch.named_blocks()[0][0]
    state, ema = _state(supernet), _state(supernet)
    state[BLOCK_UNITS.channel_gate(name, 0)][:5] = 0.0  # dead in the network being trained
    ema[BLOCK_UNITS.channel_gate(name, 1)][:3] = 1e-4  # dead in the EMA (at most the threshold)
    model = CostModel(SIZE)
    index = UnitIndex(arch, state, ema, model, model.normalizer(arch))
    sel = select_units(index, 1e-3)
    assert int(sel.removed.sum()) == 8 and not sel.forced
    assert dict(index.arch_without(sel.removed).named_blocks())[name].channels == (27, 29, 32)
    assert sel.cost_before - sel.cost_after == index.cost_without(torch.zeros_like(sel.removed)) - sel.cost_after
    # too little to bother with yet; at the end the EMA gates alone decide
    assert not select_units(index, 1e-3, min_shrink=sel.cost_before).removed.any()
    assert int(select_units(index, 1e-3, final=True).removed.sum()) == 3


def test_budget_cut_takes_the_weakest_units_and_keeps_the_floor(supernet):
    arch = supernet.arch
    torch.manual_seed(1)
    state = _state(supernet)
    for k in _gates(arch, state):
        state[k].uniform_(0.01, 1.0)
    model = CostModel(SIZE)
    index = UnitIndex(arch, state, state, model, model.normalizer(arch))
    start = hrnas.count_macs(arch, SIZE)
    budget = int(0.5 * start)
    controller = BudgetController(budget, start, total_steps=100, rho=1.0)
    sel = select_units(index, 1e-3, controller, step=100, final=True)
    assert sel.forced and 0.9 * budget <= sel.cost_after <= 0.95 * budget
    assert float(index.gate_ema[sel.removed].max()) <= float(index.gate_ema[~sel.removed].min())  # weakest first
    # a floor just under the goal (a latency budget's): the forced cut stops between them, never under the floor
    narrow = BudgetController(budget, start, total_steps=100, rho=1.0, goal=0.96, floor=0.95)
    for final in (False, True):
        sel = select_units(index, 1e-3, narrow, step=100, final=final)
        assert sel.forced and 0.95 * budget <= sel.cost_after <= 0.96 * budget
    # everything dead: dead units go, but never below the floor
    index = UnitIndex(arch, _state(supernet, 0.0), None, model, model.normalizer(arch))
    sel = select_units(index, 1e-3, controller, step=10)
    assert not sel.forced and controller.floor_at(10) <= sel.cost_after < start
    # a floor above the band's lower edge (a latency budget's, at its goal) keeps emptied units above it
    high = BudgetController(budget, start, total_steps=100, rho=1.0, floor=0.95)
    low = sel
    sel = select_units(index, 1e-3, high, step=10)
    assert low.cost_after < 0.95 * budget <= sel.cost_after < start and high.floor_at(10) == 0.95 * budget


def test_budget_cut_by_importance_per_cost(supernet):
    """cut_rank='taylor': the units with the least measured importance per unit of cost go first, whatever their
    gates; without importance the gates decide."""
    arch = supernet.arch
    torch.manual_seed(2)
    state = _state(supernet)
    importance = {}
    for k in _gates(arch, state):
        state[k].uniform_(0.5, 1.0)
        importance[k] = torch.rand_like(state[k])
    model = CostModel(SIZE)
    index = UnitIndex(arch, state, state, model, model.normalizer(arch), importance=importance)
    start = hrnas.count_macs(arch, SIZE)
    controller = BudgetController(int(0.5 * start), start, total_steps=100, rho=1.0)
    sel = select_units(index, 1e-3, controller, step=100, final=True)
    score = index.importance / index.penalty
    assert sel.forced and float(score[sel.removed].max()) <= float(score[~sel.removed].min())
    by_gate = select_units(UnitIndex(arch, state, state, model, model.normalizer(arch)), 1e-3, controller, 100, True)
    assert not torch.equal(by_gate.removed, sel.removed)


def test_trainer_measures_importance_and_slices_it_with_the_network():
    from hrnas.searching.penalty import GatePenalty
    from hrnas.searching.shrink import BlockKeep, plan_shrink
    from hrnas.searching.tasks import get_task
    from hrnas.searching.trainer import Trainer, model_builder

    torch.manual_seed(0)
    net = hrnas.create_supernet("seg", space="seg_tiny", transformers=False)
    cfg = SearchConfig(batch_size=2, cut_rank="taylor", ema_decay=0.0)
    build = model_builder(net)
    loss = get_task("seg", num_classes=11).loss
    trainer = Trainer(net, cfg, torch.device("cpu"), 1, build, loss)
    cost_model = CostModel(SIZE)
    penalty = GatePenalty(cost_model, cost_model.normalizer(net.arch), False, torch.device("cpu"))
    penalty.refresh(net.arch, trainer.model)
    batch = (torch.randn(2, 3, 32, 32), torch.randint(0, 11, (2, 32, 32)))
    trainer.step(batch, 0.01, 0.0, penalty)
    assert set(trainer.importance) == set(penalty.names)
    first = penalty.names[0]
    assert trainer.importance[first].shape == dict(trainer.model.named_parameters())[first].shape
    assert all(bool((v >= 0).all()) for v in trainer.importance.values())
    assert any(float(v.sum()) > 0 for v in trainer.importance.values())
    block = net.arch.named_blocks()[0][0]
    keep = torch.arange(5, trainer.model.arch.named_blocks()[0][1].hidden)
    before = trainer.importance[BLOCK_UNITS.channel_gate(block, 0)].clone()
    trainer.swap(plan_shrink(trainer.model.arch, {block: BlockKeep(channels=keep, tokens=None)}))
    after = trainer.importance[BLOCK_UNITS.channel_gate(block, 0)]
    assert torch.equal(after, before[5:])  # the kept units keep their measurements
    assert "importance" in trainer.state_dict()


# ----------------------------------------------------------------------------------------------------------
# Batching


def test_epoch_batches_are_deterministic_disjoint_and_resumable():
    data = torch.utils.data.TensorDataset(torch.arange(103))
    ranks = [EpochBatches(data, 4, seed=3, rank=r, world=2) for r in range(2)]
    assert ranks[0].steps_per_epoch == 12
    a, b = ranks[0].indices(0), ranks[1].indices(0)
    assert len(a) == len(b) == 48 and not set(a) & set(b) and set(a) | set(b) <= set(range(103))
    assert a == EpochBatches(data, 4, seed=3, rank=0, world=2).indices(0)  # the same run, the same order
    assert a != ranks[0].indices(1) and a != EpochBatches(data, 4, seed=4, rank=0, world=2).indices(0)
    full = [batch[0].tolist() for batch in ranks[0].epoch(0)]
    assert len(full) == 12 and [x for batch in full for x in batch] == a
    assert [batch[0].tolist() for batch in ranks[0].epoch(0, start_step=5)] == full[5:]
    # a run resumed at any step sees the batches an uninterrupted one does, across epochs
    run = RunData(data, None, SearchConfig(batch_size=4, seed=3), rank=0, world=2)
    it = run.train_batches(10)
    following = [next(it)[0].tolist() for _ in range(4)]
    assert following == full[10:] + [batch[0].tolist() for batch in ranks[0].epoch(1)][:2]
    with pytest.raises(ValueError, match="fewer than one global batch"):
        EpochBatches(torch.utils.data.TensorDataset(torch.arange(7)), 4, seed=0, world=2)


def _draw_after_first_batch(run: RunData, step: int, seed: int = 5) -> float:
    batches = run.train_batches(step)
    torch.manual_seed(seed)  # the search seeds every step before it takes the step's batch
    next(batches)
    return torch.rand(()).item()


def test_the_first_step_after_resuming_draws_what_the_uninterrupted_run_drew():
    """A step's random draws (transformer dropout) come after its batch is taken. An uninterrupted run creates an
    epoch's loader (which draws its base seed from torch's generator) only in the epoch's first step; a run resumed
    mid-epoch must not create its loader inside its first step, or that step's dropout masks differ."""
    data = torch.utils.data.TensorDataset(torch.arange(40))
    run = RunData(data, None, SearchConfig(batch_size=4, seed=3))
    torch.manual_seed(5)
    untouched = torch.rand(()).item()  # a step seeded with 5 draws this when taking its batch drew nothing
    assert _draw_after_first_batch(run, 3) == untouched  # resumed mid-epoch
    assert _draw_after_first_batch(run, 10) != untouched  # an epoch's first step creates its loader, as always


# ----------------------------------------------------------------------------------------------------------
# The run plan


def _plan(cfg, **kw):
    budget = Budget.from_config(cfg)
    args = dict(task="seg", budget=budget, metric=budget.kind if budget else "macs", start_cost=1000, fixed_cost=100)
    return plan_run(cfg, 10, **{**args, "input_size": SIZE, **kw})


def test_plan_of_a_family_run():
    plan = _plan(SearchConfig(steps=100, budget=[300, 500], tail="penalised"))
    assert (plan.total_steps, plan.shrink_every, plan.eval_every, plan.checkpoint_every) == (100, 2, 12, 12)
    assert plan.budgets == (500, 300) and plan.budget == 300 and plan.recovery == 5
    assert plan.rho_scale == pytest.approx(1 / (0.05 * 60)) and plan.rho == plan.rho_scale
    assert plan.ramp() is None
    c = plan.controller()
    assert (c.budget, c.start, c.total_steps, c.budgets, c.recovery) == (300, 1000, 100, [500, 300], 5)
    assert (c.rho_min, c.rho_max, c.goal, c.lower) == (pytest.approx(1e-3 / 3), pytest.approx(1 / 3), 0.95, 0.9)
    assert c.floor == 0.9  # an exact count removes emptied units down to the band's lower edge
    assert plan.controller() is not c and plan.controller() == c  # a fresh controller each time
    # the learning rate: 10 warm-up steps, then cosine to 0
    assert plan.lr_warmup_steps == 10
    assert plan.lr_at(0) == pytest.approx(0.005) and plan.lr_at(10) == pytest.approx(0.05)
    assert plan.lr_at(55) == pytest.approx(0.025) and plan.lr_at(100) == pytest.approx(0.0, abs=1e-12)
    constant = _plan(SearchConfig(steps=100, budget=300, lr_schedule="constant", rho=0.5))
    assert constant.lr_at(90) == 0.05 and constant.rho == 0.5 and constant.controller().family is None
    assert plan.tail_start is None and plan.controller().rho_at(99) == plan.rho


def test_finetuned_tail_stops_the_penalty_and_restarts_the_learning_rate():
    plan = _plan(SearchConfig(steps=100, budget=300, reach=0.6, lr=0.1))
    assert plan.tail_start == 60 == plan.controller().arrival_step()
    c = plan.controller()
    assert c.rho_at(59) == plan.rho > 0 and c.rho_at(60) == c.rho_at(99) == 0.0
    # before the budget: warm-up over 10 steps, cosine towards 0 over the whole run; after it: the same again
    assert plan.lr_at(9) == pytest.approx(0.1) and plan.lr_at(59) < 0.05
    assert plan.lr_at(60) == pytest.approx(0.01) and plan.lr_at(69) == pytest.approx(0.1)
    assert plan.lr_at(99) < 0.005
    family = _plan(SearchConfig(steps=100, budget=[500, 300], reach=0.6))
    assert family.tail_start == family.controller().arrival_step() == 60  # after the last member's budget
    assert _plan(SearchConfig(steps=100, budget=300, reach=1.0)).tail_start is None  # no tail to fine-tune
    assert _plan(SearchConfig(steps=100)).tail_start is None  # paper mode
    assert _plan(SearchConfig(steps=100, budget=300, rho_limit=10.0)).controller().rho_max == pytest.approx(10 / 3)


def test_plan_of_latency_and_paper_runs():
    latency = _plan(SearchConfig(steps=40, latency_ms=0.5))
    assert latency.budgets == (500,)  # microseconds
    c = latency.controller()
    # a measured cost scatters: the band is a MACs budget's, but nothing is removed below its middle (aimed just above)
    assert (c.goal, c.lower, c.floor) == (0.96, 0.9, 0.95) and latency.min_shrink == 0.0
    paper = _plan(SearchConfig(epochs=2.5, shrink_every=3, eval_every=5, checkpoint_every=7))
    assert (paper.total_steps, paper.shrink_every, paper.eval_every, paper.checkpoint_every) == (25, 3, 5, 7)
    assert paper.budget is None and paper.controller() is None
    assert paper.ramp() == RhoRamp(PAPER_RHO["seg"], 12) and paper.min_shrink == 5.0
    assert _plan(SearchConfig(steps=8, min_shrink=0)).min_shrink == 0


def test_plan_refuses_budgets_it_cannot_meet():
    with pytest.raises(ValueError, match="budget 50 MACs at 32x32 is unreachable.*alone costs 100"):
        _plan(SearchConfig(steps=10, budget=50))
    with pytest.raises(ValueError, match="budget 1,000 params at 32x32 is not below the supernet's 1,000"):
        _plan(SearchConfig(steps=10, params=1000), metric="params")
    with pytest.raises(ValueError, match="the budgets of a family must differ"):
        _plan(SearchConfig(steps=10, budget=[300, "300"]))
    assert cost_input_size(SearchConfig(), {"input_size": (3, 64, 48)}) == (64, 48)
    assert cost_input_size(SearchConfig(input_size=40), {"input_size": (3, 64, 48)}) == (40, 40)
    with pytest.raises(ValueError, match="input_size= is required"):
        cost_input_size(SearchConfig(), None)


# ----------------------------------------------------------------------------------------------------------
# The gate penalty


def test_gate_penalty_l1_and_proximal_step():
    arch = hrnas.get_space("seg_tiny").supernet(tokens=2)
    model = hrnas.HRNASNet(arch)
    cost = CostModel(SIZE)
    penalty = GatePenalty(cost, cost.normalizer(arch), equal=False, device=torch.device("cpu"))
    penalty.refresh(arch, model)
    assert len(penalty.gates) == sum(len(b.paths) + (b.tokens > 0) for b in arch.blocks())
    pens = cost.penalties(arch, penalty.normalizer)
    expected = 0.0
    for name, spec in arch.named_blocks():
        vec, tok = pens[name]
        gates = [model.get_parameter(BLOCK_UNITS.channel_gate(name, i)) for i in range(len(spec.paths))]
        expected += float((vec * torch.cat(gates).detach().abs()).sum())
        if spec.tokens:
            expected += tok * float(model.get_parameter(BLOCK_UNITS.token_gate(name)).detach().abs().sum())
    assert penalty.l1().detach().item() == pytest.approx(expected, rel=1e-5)
    g, pen = penalty.gates[0]
    before = g.detach().clone()
    penalty.proximal(lr=0.1, rho=2.0)
    assert torch.allclose(g, (before.abs() - 0.2 * pen).clamp(min=0) * before.sign())
    penalty.proximal(lr=0.1, rho=1e6)
    assert all(not g.detach().any() for g, _ in penalty.gates)  # soft-thresholding reaches exact zeros
    state = penalty.state_dict()
    other = GatePenalty(cost, 1.0, equal=True, device=torch.device("cpu"))
    other.load_state_dict(state)
    assert other.normalizer == penalty.normalizer


# ----------------------------------------------------------------------------------------------------------
# Latency feedback, with the device passed in


def _block_us(spec, hw):
    t = 5.0 + 0.01 * spec.in_chs
    for k, h in spec.paths:
        t += 3.0 + k + (0.002 * hw[0] * hw[1] + 0.1 * k) * h
    return t + (7.0 + 0.5 * spec.tokens + 0.05 * spec.tokens**2 if spec.tokens else 0.0)


def _table(arch):
    def network_us(a):
        hw = block_input_sizes(a, SIZE)
        return 1.5 * sum(_block_us(s, hw[n]) for n, s in a.named_blocks()) + 40.0

    # eval form: the fake device times the arch it is given, not a deployed network
    return LatencyTable.build(
        arch, SIZE, "seg_tiny", time_block=_block_us, time_network=network_us, calibration_archs=4, form="eval"
    )


class FakeDevice:
    """Runs every network ``factor`` times as fast as the table predicts; records what it timed."""

    def __init__(self, table, factor):
        self.table, self.factor, self.calls = table, factor, []

    def __call__(self, model, input_size, batch_size=1, repeats=20, device="cpu", in_chans=3, reference=None):
        self.calls.append(dict(arch=model.arch, input_size=input_size, repeats=repeats, reference=reference))
        return self.factor * self.table.predict(model.arch)


def _feedback(table, budget, device, wanted=True):
    cost = CostModel(SIZE, "latency", latency_table=table)
    build = lambda arch: SimpleNamespace(arch=arch)  # noqa: E731  (the fake device only looks at the arch)
    return LatencyFeedback(cost, (budget,), wanted, build, torch.device("cpu"), measure=device)


def test_latency_feedback_times_near_the_budget_and_corrects_the_prediction(supernet):
    arch = supernet.arch
    table = _table(arch)
    device = FakeDevice(table, 0.8)
    full = round(1e3 * table.predict(arch))
    feedback = _feedback(table, full // 2, device)
    assert feedback.enabled
    assert not feedback.measure(arch, step=3, members=0) and not device.calls  # far above the budget: not timed
    assert feedback.measure(arch, step=4, members=0, force=True)
    (call,) = device.calls
    assert call["arch"] == arch and call["input_size"] == SIZE and call["reference"] is table
    assert feedback.correction == pytest.approx(0.8, rel=1e-4) and feedback.cost_model.correction == 1.0
    assert abs(feedback.costs().total(arch) - 0.8 * full) <= 1  # whole microseconds
    assert feedback.measure(arch, step=5, members=0) and len(device.calls) == 1  # its measurement is in use
    assert feedback.measured_ms(arch) == pytest.approx(0.8 * table.predict(arch), abs=1e-4)
    # a network timed again pools its readings (median)
    smaller = arch.with_blocks([b.replace(channels=tuple(c // 2 for c in b.channels)) for b in arch.blocks()])
    device.factor = 0.9
    assert feedback.measure(smaller, step=6, members=0, force=True)
    device.factor = 1.0
    assert feedback.measure(arch, step=7, members=0, force=True)
    readings = [c["reading_ms"] for c in feedback.checks if c["arch"] == feedback.checks[0]["arch"]]
    assert len(readings) == 2 and feedback.measured_ms(arch) == pytest.approx(sum(readings) / 2, abs=1e-4)
    assert [c["step"] for c in feedback.checks] == [4, 6, 7]
    # a forced reading (the final cut's) is taken again even of the network the correction was measured on
    assert feedback.measure(arch, step=8, members=0) and len(feedback.checks) == 3
    assert feedback.measure(arch, step=9, members=0, force=True) and [c["step"] for c in feedback.checks][-1] == 9
    # its state goes into checkpoints
    again = _feedback(table, full // 2, device)
    again.load_state_dict(feedback.state_dict())
    assert again.checks == feedback.checks and again.measured_arch == arch
    assert again.correction == feedback.correction


def test_latency_feedback_settles_a_cut_on_the_measured_latency(supernet):
    arch = supernet.arch
    table = _table(arch)
    device = FakeDevice(table, 1.3)  # slower than the table says: a cut chosen on the prediction lands over
    start = round(1e3 * table.predict(arch))
    budget = start // 2
    feedback = _feedback(table, budget, device)
    controller = BudgetController(budget, start, total_steps=10, rho=1.0, goal=0.95, lower=0.9)
    torch.manual_seed(1)
    state = _state(supernet)
    for k in _gates(arch, state):
        state[k].uniform_(0.01, 1.0)
    index = UnitIndex(arch, state, state, feedback.cost_model, feedback.cost_model.normalizer(arch))
    choices = []

    def choose(costs):
        choices.append(1)
        return select_units(index.priced(costs), 1e-3, controller, 10, True)

    first = select_units(index, 1e-3, controller, 10, True)
    assert first.cost_after <= budget  # on the table's prediction
    sel = feedback.settle(index, first, choose, controller, step=10, members=0, final=True)
    assert choices and device.calls[-1]["arch"] == index.arch_without(sel.removed)
    assert 0.9 * budget <= feedback.costs().total(index.arch_without(sel.removed)) <= budget  # measured


class ScatteringDevice(FakeDevice):
    """Reads every network ``high`` times slower the first time it is timed, as a shared machine sometimes does."""

    def __init__(self, table, factor, high):
        super().__init__(table, factor)
        self.high, self.seen = high, set()

    def __call__(self, model, *args, **kwargs):
        ms = super().__call__(model, *args, **kwargs)
        first = model.arch.to_json() not in self.seen
        self.seen.add(model.arch.to_json())
        return self.high * ms if first else ms


def test_latency_feedback_makes_no_cut_on_one_high_reading(supernet):
    arch = supernet.arch
    table = _table(arch)
    # the network runs 3 % faster than the table says, and a first reading is 4 % high: a cut chosen on the table
    # lands at 0.93 of the budget but reads 0.96 the first time, above the floor
    device = ScatteringDevice(table, 0.97, high=1.04)
    start = round(1e3 * table.predict(arch))
    budget = start // 2
    feedback = _feedback(table, budget, device)
    controller = BudgetController(budget, start, total_steps=10, rho=1.0, goal=0.96, lower=0.9, floor=0.95)
    torch.manual_seed(1)
    state = _state(supernet)
    for k in _gates(arch, state):
        state[k].uniform_(0.01, 1.0)
    index = UnitIndex(arch, state, state, feedback.cost_model, feedback.cost_model.normalizer(arch))
    chosen = []

    def choose(costs):
        chosen.append(select_units(index.priced(costs), 1e-3, controller, 10))
        return chosen[-1]

    first = choose(feedback.costs())
    assert 0.95 * budget <= first.cost_after <= 0.96 * budget  # on the table's prediction
    sel = feedback.settle(index, first, choose, controller, step=10, members=0, final=False)
    assert len(chosen) >= 2 and sel.removed.any()  # the first cut was timed again, found under the floor, re-chosen
    made = index.arch_without(sel.removed)
    truth = 0.97 * 1e3 * table.predict(made)
    assert 0.95 * budget <= truth <= budget  # the cut made is above the floor on the network's true latency
    # the first cut read within the scatter of the floor: it was timed three times, and the median decided
    digests = [c["arch"] for c in feedback.checks]
    assert digests[:3] == [arch_digest(index.arch_without(first.removed))] * 3 and digests[-1] == arch_digest(made)


def test_latency_feedback_is_off_for_a_table_of_another_device(supernet):
    table = _table(supernet.arch)
    table.key = "cuda:Some GPU|threads=8|torch=2.14.1"
    device = FakeDevice(table, 1.0)
    with pytest.warns(UserWarning, match="the latency table was measured on 'cuda:Some GPU"):
        feedback = _feedback(table, 10, device)
    assert not feedback.enabled and not feedback.measure(supernet.arch, 0, 0, force=True) and not device.calls
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not _feedback(table, 10, device, wanted=False).enabled  # not asked for: no warning


def test_latency_model_is_a_deprecated_name_of_latency_table(supernet):
    table = _table(supernet.arch)
    data = torch.utils.data.TensorDataset(torch.zeros(8, 3, 32, 32), torch.zeros(8, 32, 32, dtype=torch.long))
    # the table reaches the search under the old name: its size is checked against the budget's
    with pytest.warns(DeprecationWarning, match="latency_model=.*deprecated.*latency_table="):
        with pytest.raises(ValueError, match="the latency table was measured at 32x32, the budget is at 64x64"):
            hrnas.search(supernet, data, latency_ms=5.0, latency_model=table, input_size=(64, 64))
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="pass the latency table once"):
        hrnas.search(supernet, data, latency_ms=5.0, latency_model=table, latency_table=table)


# ----------------------------------------------------------------------------------------------------------
# The recorder, settings and checkpoints


def test_recorder_rows_file_and_state(tmp_path):
    rec = Recorder(tmp_path)
    for loss in (1.0, 2.0, 3.0):
        rec.add_step(loss, 0.5 * loss, 0.01 * loss, 100)
    rec.skipped = 2
    network = dict(macs=10, params=20, cost=10, hidden=3, tokens=1)
    row = rec.record(5, 0.5, network, rho=0.1, lr=0.2, metric=0.3, metric_name="mIoU", latency_correction=0.9)
    assert list(row)[:7] == ["step", "epoch", "macs", "params", "cost", "hidden", "tokens"]
    assert (row["loss"], row["l1"], row["step_time"], row["step_macs"]) == (2.0, 1.0, 0.02, 100)
    assert row["skipped"] == 2 and row["latency_correction"] == 0.9
    empty = rec.record(6, 0.6, network, rho=0.1, lr=0.2, metric=None, metric_name="mIoU")
    assert empty["loss"] is None and "latency_correction" not in empty
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert rows == rec.history and not list(tmp_path.glob(".*tmp*"))
    rec.started -= 1000.0  # as if the run had been going for 1000 s
    again = Recorder()
    again.load_state_dict(rec.state_dict())
    assert again.history == rec.history and again.skipped == 2 and again.path is None
    # a resumed run's "elapsed" goes on from the checkpoint's time rather than from 0
    later = again.record(7, 0.7, network, rho=0.1, lr=0.2, metric=None, metric_name="mIoU")
    assert 1000.0 <= later["elapsed"] < 1100.0
    older = {k: v for k, v in rec.state_dict().items() if k != "elapsed"}  # a checkpoint from before "elapsed"
    again.load_state_dict(older)
    assert again.record(8, 0.8, network, rho=0.1, lr=0.2, metric=None, metric_name="mIoU")["elapsed"] < 100.0


def test_resumed_settings_are_the_saved_runs_but_where_to_write_and_run(tmp_path, supernet):
    table = _table(supernet.arch)
    saved = SearchConfig(budget="1M", steps=10, output_dir="runs/a", progress=True, seed=3, latency_table=table)
    d = saved.to_dict()
    assert d["latency_table"] == table.to_dict() and SearchConfig.from_dict(d).to_dict() == d
    saved.save_yaml(tmp_path / "config.yaml")
    again = SearchConfig.from_yaml(tmp_path / "config.yaml").latency_table  # the table travels with the run
    assert LatencyTable.from_dict(again) == table
    cfg = SearchConfig(resume="runs/a", progress=False, device="cpu", budget="2M").resumed_from(d)
    assert (cfg.budget, cfg.steps, cfg.seed, cfg.output_dir) == ("1M", 10, 3, "runs/a")
    assert (cfg.resume, cfg.progress, cfg.device, cfg.latency_table) == ("runs/a", False, "cpu", table.to_dict())
    assert SearchConfig(resume="runs/a", latency_table=table).resumed_from(d).latency_table is table  # given: wins
    path = tmp_path / "t.json"
    table.save(path)
    cfg = SearchConfig(resume="runs/a", output_dir="runs/b", latency_table=path).resumed_from(d)
    assert cfg.output_dir == "runs/b" and cfg.latency_table == str(path)
    with pytest.raises(TypeError, match="latency_table must be a LatencyTable or a path"):
        SearchConfig(latency_table=3)


def test_checkpoint_layout_and_the_previous_one(tmp_path):
    parts = dict(arch={}, config={}, step=3, rng={}, trainer={}, penalty={}, controller=None, feedback={}, recorder={})
    write_search_checkpoint(tmp_path / CHECKPOINT_NAME, **parts)
    assert read_search_checkpoint(tmp_path) == {"version": 3, **parts}  # a run directory or the file
    with pytest.raises(ValueError, match=r"needs \['recorder'\]"):
        write_search_checkpoint(tmp_path / "x.pt", **{k: v for k, v in parts.items() if k != "recorder"})
    save_checkpoint({"version": 4, **parts}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="version 4 search checkpoint; this hrnas reads version 3"):
        read_search_checkpoint(tmp_path / "future.pt")
    # version 2 (before the fine-tuned tail and the importance ranking): read with the behaviour it ran with
    save_checkpoint({"version": 2, **parts, "config": {"steps": 5}, "trainer": {"model": {}}}, tmp_path / "v2.pt")
    v2 = read_search_checkpoint(tmp_path / "v2.pt")
    assert v2["version"] == 3 and v2["trainer"] == {"model": {}, "importance": {}}
    assert v2["config"] == {"steps": 5, "tail": "penalised", "cut_rank": "gate", "rho_limit": 10.0}
    # hrnas before the components: one flat dict, without a version (and early ones without latency fields)
    member = {"step": 2, "budget": 10, "cost": 9, "metric": 0.5, "directory": "f/0-10"}
    old = dict(arch={"a": 1}, config={"steps": 5}, step=4, rng={"torch": torch.zeros(2)}, model={"w": torch.ones(1)},
               optimizer={"state": {}}, ema=None, controller={"rho": 1.0}, normalizer=2.5, history=[{"step": 2}],
               skipped=1, family=[member])  # fmt: skip
    save_checkpoint(old, tmp_path / "old.pt")
    new = read_search_checkpoint(tmp_path / "old.pt")
    assert new["version"] == 3 and (new["arch"], new["step"]) == ({"a": 1}, 4)
    assert new["config"] == {"steps": 5, "tail": "penalised", "cut_rank": "gate", "rho_limit": 10.0}
    assert (
        new["trainer"]["model"]["w"].item() == 1.0
        and new["trainer"]["ema"] is None
        and new["trainer"]["scaler"] == {}
        and new["trainer"]["importance"] == {}
    )
    assert new["penalty"] == {"normalizer": 2.5} and new["controller"] == {"rho": 1.0}
    assert new["feedback"] == {"correction": 1.0, "checks": [], "measured_arch": None}
    assert new["recorder"]["history"] == [{"step": 2}] and new["recorder"]["skipped"] == 1
    assert new["recorder"]["family"][0]["measured_latency_ms"] is None
