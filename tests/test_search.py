"""The search: budgets, tokens, saved results, resume after SIGKILL, torchrun, and clear errors."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import hrnas
from hrnas.data import DataNotFoundError, FashionMNIST, FashionMNISTScenes
from hrnas.searching import SearchConfig, SearchError
from hrnas.searching.budget import BudgetController
from hrnas.searching.checkpoint import load_checkpoint

SCRIPT = Path(__file__).parent / "scripts" / "tiny_search.py"
SMALL = dict(steps=24, batch_size=8, shrink_every=3, eval_every=8, calib_batches=2, progress=False)


@pytest.fixture(scope="module")
def scenes():
    return FashionMNISTScenes("train", 128, canvas=32, seed=3), FashionMNISTScenes("val", 24, canvas=32, seed=3)


def tiny_supernet(**kw):
    return hrnas.create_supernet("seg", space="seg_tiny", max_tokens=4, **kw)


@pytest.mark.search
def test_search_chooses_its_threads_and_gives_torch_its_own_back(scenes):
    from hrnas.threads import usable_cpus

    before = torch.get_num_threads()
    fixed = hrnas.search(tiny_supernet(), *scenes, threads=1, **dict(SMALL, steps=8, eval_every=4))
    assert [r["threads"] for r in fixed.history] == [1, 1] and torch.get_num_threads() == before
    chosen = hrnas.search(tiny_supernet(), *scenes, **dict(SMALL, steps=4, eval_every=4))
    assert 1 <= chosen.history[-1]["threads"] <= usable_cpus() and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be a positive number"):
        hrnas.search(tiny_supernet(), *scenes, threads=0, **SMALL)


@pytest.mark.search
def test_budget_search_ends_inside_budget_and_removes_tokens(scenes, tmp_path):
    supernet = tiny_supernet()
    start = hrnas.count_macs(supernet.arch, 32)
    budget = int(0.35 * start)
    # one thread: the resumed run's evaluation must sum in the same order (kernels sum differently on more threads)
    res = hrnas.search(
        supernet, *scenes, budget=budget, input_size=(32, 32), output_dir=str(tmp_path), threads=1, **SMALL
    )
    assert 0.9 * budget <= res.macs <= budget
    assert res.macs == hrnas.profile(res.model, 32).macs  # the budget is met by the real module, not a mask
    assert res.params == sum(p.numel() for p in res.model.parameters())
    assert supernet.arch == tiny_supernet().arch  # the supernet passed in is left alone
    # the transformer is searched too: tokens go, and some blocks lose every token (their module is gone)
    tokens = [b.tokens for b in res.arch.blocks()]
    assert sum(tokens) < sum(b.tokens for b in supernet.arch.blocks())
    emptied = [n for n, b in res.arch.named_blocks() if b.tokens == 0 and dict(supernet.arch.named_blocks())[n].tokens]
    assert emptied and all(dict(res.model.named_modules())[n].transformer is None for n in emptied)
    # a plain static network
    assert isinstance(res.model, hrnas.HRNASNet) and not res.model.training
    # the output directory: model files, history, plots, config
    files = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "arch.json", "history.jsonl", "config.yaml", "checkpoint.pt"} <= files
    assert {"search.png", "arch.png"} <= files
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 24 and rows[-1]["macs"] == res.macs
    assert {"step", "macs", "params", "tokens", "rho", "loss", "metric", "step_time"} <= set(rows[0])
    assert rows[0]["macs"] >= rows[-1]["macs"]
    assert hrnas.Arch.load(tmp_path / "arch.json") == res.arch
    # the saved directory is a model
    again = hrnas.create_model(str(tmp_path)).eval()
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(again(x), res.model(x))
    cfg = SearchConfig.from_yaml(tmp_path / "config.yaml")
    assert cfg.budget == budget and cfg.steps == 24
    # resuming the finished run returns its network again and records no second final row
    resumed = hrnas.search(
        tiny_supernet(), *scenes, output_dir=str(tmp_path), resume=str(tmp_path), threads=1, progress=False
    )
    assert resumed.arch == res.arch and resumed.history == res.history
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == len(rows)
    with torch.no_grad():
        torch.testing.assert_close(resumed.model(x), res.model(x), atol=1e-5, rtol=1e-4)


@pytest.mark.search
def test_budget_is_counted_on_the_named_configuration(scenes):
    # searched on 11-class 32px data, budgeted for 150 classes at 64x96 (the configuration it will ship in)
    supernet = tiny_supernet(transformers=False)
    start = hrnas.count_macs(supernet.arch.with_num_classes(150), (64, 96))
    budget = int(0.5 * start)
    res = hrnas.search(supernet, *scenes, budget=budget, input_size=(64, 96), cost_num_classes=150, **SMALL)
    shipped = hrnas.count_macs(res.arch.with_num_classes(150), (64, 96))
    assert 0.9 * budget <= shipped <= budget
    assert res.model.num_classes == 11


def test_budget_controller_holds_then_follows_the_trajectory():
    c = BudgetController(budget=100, start=1000, total_steps=100, rho=1.0, reach=0.6, hold=0.2)
    # the hold: no trajectory to force cuts, rho ramping up from 0 and not steered
    assert c.target(0) == c.target(19) == c.target(20) == 1000
    assert (c.rho_at(0), c.rho_at(10), c.rho_at(20)) == (0.0, pytest.approx(0.5), 1.0)
    c.update(10, 1000, 500, forced=False)
    c.update(15, 1000, 1000, forced=True)
    assert c.rho == 1.0
    # then geometric from the supernet's cost to 0.95 x budget, reached at 60 % of the run
    assert c.target(40) == pytest.approx(1000 * (95 / 1000) ** 0.5)
    assert c.target(60) == pytest.approx(95) and c.target(100) == pytest.approx(95)
    c.update(30, 1000, 900, forced=True)
    assert c.rho == pytest.approx(1.5)
    # ahead of the trajectory: kept while shrinking at its pace, raised when slower, lowered once arrived
    pace = c.target(40) / c.target(30)
    c.update(40, 500, 500 * pace, forced=False)
    assert c.rho == pytest.approx(1.5)
    c.update(50, 400, 399, forced=False)
    assert c.rho == pytest.approx(2.25)
    c.update(60, 100, 94, forced=False)
    assert c.rho == pytest.approx(2.25 / 1.25)
    with pytest.raises(ValueError, match="need 0 <= hold < reach <= 1"):
        SearchConfig(hold=0.6, reach=0.6)


def test_budget_controller_family_trajectory():
    c = BudgetController(budget=10, start=1000, total_steps=200, rho=1.0, reach=0.6, family=[100, 10], recovery=20)
    assert c.budgets == [100, 10]
    # the shrinking phase (120 steps less one recovery) is shared by log ratio: 1000 -> 95 and 95 -> 9.5
    d0 = 100 * math.log(1000 / 95) / math.log(1000 / 9.5)
    (s0,) = c.snapshot_steps()
    assert s0 == round(d0 + 20) == 71
    assert c.target(d0 / 2) == pytest.approx(1000 * (95 / 1000) ** 0.5)
    assert c.target(d0) == c.target(d0 + 10) == c.target(d0 + 20) == pytest.approx(95)
    assert c.target(120) == pytest.approx(9.5) and c.target(200) == pytest.approx(9.5)
    # the first budget's floor holds up to and including its snapshot step, then the next one's
    assert (c.budget_at(71), c.floor_at(71)) == (100, 90) and (c.budget_at(72), c.floor_at(72)) == (10, 9)


@pytest.mark.search
def test_params_budget(scenes):
    supernet = tiny_supernet(transformers=False)
    budget = int(0.6 * hrnas.count_params(supernet.arch))
    res = hrnas.search(supernet, *scenes, params=budget, input_size=(32, 32), **SMALL)
    assert 0.9 * budget <= res.params <= budget


@pytest.mark.search
def test_paper_mode_and_equal_penalty(scenes):
    # no budget: the paper's linear rho ramp; a strong rho so that a short run removes something, and no EMA
    # (whose gates would lag behind for longer than this run)
    supernet = tiny_supernet(transformers=False)
    res = hrnas.search(supernet, *scenes, rho=2.0, penalty="equal", min_shrink=0, ema_decay=0, **SMALL)
    assert res.budget is None
    assert res.history[0]["rho"] < res.history[-1]["rho"] == pytest.approx(2.0)
    assert res.input_size == (64, 64)  # the space's reference size when none is given
    assert res.macs < hrnas.count_macs(supernet.arch, (64, 64))


@pytest.mark.search
def test_classification_search():
    train = FashionMNIST("train", image_size=32, limit=20)
    val = FashionMNIST("test", image_size=32, limit=4)
    supernet = hrnas.create_supernet("cls", space="cls_tiny", transformers=False)
    budget = int(0.5 * hrnas.count_macs(supernet.arch, 32))
    res = hrnas.search(supernet, train, val, budget=budget, input_size=(32, 32), **SMALL)
    assert 0.9 * budget <= res.macs <= budget
    assert res.metric_name == "top1" and 0 <= res.metric <= 1


def test_unreachable_and_pointless_budgets(scenes):
    supernet = tiny_supernet()
    with pytest.raises(ValueError, match=r"budget 1,000 MACs at 32x32 is unreachable: the network's fixed part"):
        hrnas.search(supernet, *scenes, budget=1000, input_size=(32, 32), **SMALL)
    with pytest.raises(ValueError, match="is not below the supernet's"):
        hrnas.search(supernet, *scenes, budget="10G", input_size=(32, 32), **SMALL)
    with pytest.raises(ValueError, match="cannot read budget 'lots'"):
        hrnas.search(supernet, *scenes, budget="lots", input_size=(32, 32), **SMALL)
    with pytest.raises(TypeError, match=r"unknown search setting\(s\): 'bugdet' \(did you mean 'budget'\?\)"):
        hrnas.search(supernet, *scenes, bugdet="1G")


@pytest.mark.search
def test_num_classes_mismatch(scenes):
    supernet = tiny_supernet(num_classes=5)
    with pytest.raises(ValueError, match=r"segmentation label \d+ is outside the model's 5 classes.*num_classes="):
        hrnas.search(supernet, *scenes, input_size=(32, 32), **SMALL)


def test_missing_data_says_how_to_install(tmp_path):
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        FashionMNIST("train", data_dir=tmp_path)


@pytest.mark.search
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(scenes, tmp_path):
    calls = {"n": 0}

    def loss(out, target):
        calls["n"] += 1
        value = torch.nn.functional.cross_entropy(torch.nn.functional.interpolate(out, size=target.shape[-2:]), target)
        return value * float("nan") if calls["n"] > 14 else value

    supernet = tiny_supernet()
    settings = dict(SMALL, checkpoint_every=6)
    with pytest.raises(SearchError, match=r"the loss became nan at step 14; stopping \(the last good checkpoint is"):
        hrnas.search(supernet, *scenes, loss=loss, input_size=(32, 32), output_dir=str(tmp_path), **settings)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 12
    assert all(torch.isfinite(v).all() for v in state["trainer"]["model"].values() if v.is_floating_point())
    # skipping instead of stopping
    calls["n"] = 0
    res = hrnas.search(supernet, *scenes, loss=loss, input_size=(32, 32), on_nan="skip", **SMALL)
    assert res.history[-1]["skipped"] == 10


def _final(out_dir, rank=0):
    return torch.load(Path(out_dir) / f"final_rank{rank}.pt", weights_only=True)


def _assert_same(a, b, atol=1e-6):
    assert a["arch"] == b["arch"]
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        torch.testing.assert_close(a["state"][k], b["state"][k], atol=atol, rtol=1e-5, msg=k)


@pytest.mark.e2e
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    subprocess.run([sys.executable, str(SCRIPT), str(ref_dir)], check=True, env=env, timeout=600)
    kills = 0
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(run_dir)], env=env)
    resumed = False
    for wait_for_step in (9, 21):  # kill after the first checkpoints, resume, kill again, resume
        ckpt = run_dir / "checkpoint.pt"
        deadline = time.time() + 300
        while time.time() < deadline:
            if ckpt.exists() and load_checkpoint(ckpt)["step"] >= wait_for_step:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        proc = subprocess.Popen([sys.executable, str(SCRIPT), str(run_dir), "--resume"], env=env)
        resumed = True
    assert proc.wait(timeout=600) == 0
    assert kills >= 1 and resumed
    assert not list(run_dir.glob("*.tmp*"))  # nothing half-written was left behind
    _assert_same(_final(ref_dir), _final(run_dir))


@pytest.mark.e2e
def test_torchrun_two_processes_agree(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    assert torchrun, "torchrun not found next to the interpreter"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", str(SCRIPT), str(tmp_path), "--steps", "18"]
    subprocess.run(cmd, check=True, env=env, timeout=900)
    a, b = _final(tmp_path, 0), _final(tmp_path, 1)
    _assert_same(a, b, atol=0)
    supernet = hrnas.create_supernet("seg", space="seg_tiny", max_tokens=4)
    budget = int(0.4 * hrnas.count_macs(supernet.arch, 32))
    macs = hrnas.count_macs(hrnas.Arch.from_dict(a["arch"]), 32)
    assert 0.9 * budget <= macs <= budget


def test_checkpoint_is_verified(tmp_path):
    from hrnas.searching.checkpoint import CheckpointError, save_checkpoint

    path = tmp_path / "c.pt"
    save_checkpoint({"step": 3, "w": torch.ones(4)}, path)
    assert load_checkpoint(path)["step"] == 3
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")
    assert math.isfinite(1.0)


@pytest.mark.search
def test_family_of_budgets_in_one_run(scenes, tmp_path):
    supernet = tiny_supernet(transformers=False)
    start = hrnas.count_macs(supernet.arch, 32)
    budgets = [int(0.3 * start), int(0.6 * start), int(0.45 * start)]  # any order
    small = dict(SMALL, steps=36, family_recovery=0.1)
    res = hrnas.search(supernet, *scenes, budget=budgets, input_size=(32, 32), output_dir=str(tmp_path), **small)
    assert [m.budget for m in res.family] == sorted(budgets, reverse=True) and res.family[-1] is res
    for member in res.family:
        assert 0.9 * member.budget <= member.macs <= member.budget
        assert member.macs == hrnas.profile(member.model, 32).macs  # a real, smaller network each
        assert isinstance(member.model, hrnas.HRNASNet) and member.metric is not None
    assert res.family[0].macs > res.family[1].macs > res.family[2].macs
    # each member is a model directory of its own
    dirs = sorted((tmp_path / "family").iterdir())
    assert [d.name.split("-")[0] for d in dirs] == ["0", "1"]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for d, member in zip(dirs, res.family):
            assert torch.equal(hrnas.create_model(str(d)).eval()(x), member.model(x))
    cfg = SearchConfig.from_yaml(tmp_path / "config.yaml")
    assert cfg.budget == budgets


class _Recorder:
    """A callback that records every event, and uses what a RunView offers (batch, build, evaluate, calibrate)."""

    def __init__(self):
        self.events = []

    def on_run_start(self, run):
        x, _ = run.train_batch()
        self.events.append(("start", run.step, tuple(x.shape)))

    def on_step_end(self, run, event):
        assert event.step == run.step and event.seconds > 0 and event.threads >= 1
        self.events.append(("step", event.step, event.loss))

    def on_shrink_start(self, run, final):
        self.events.append(("shrink_start", run.step, final))

    def on_shrink_end(self, run, event):
        assert event.cost_after <= event.cost_before
        self.events.append(("shrink_end", event.step, event.final, event.cost_before, event.cost_after))

    def on_evaluate(self, run, row):
        model = run.build(run.arch)
        model.load_state_dict(run.model.state_dict())
        run.calibrate(model)
        self.events.append(("evaluate", row["step"], run.evaluate(model.eval()) is not None, len(run.gates())))

    def on_run_end(self, run, result):
        self.events.append(("end", run.step, result.metric))

    def kinds(self, kind):
        return [e for e in self.events if e[0] == kind]


@pytest.mark.search
def test_callbacks_observe_a_search_without_changing_it(scenes):
    supernet = tiny_supernet()  # one initialisation for both runs (search leaves it alone)
    budget = int(0.5 * hrnas.count_macs(supernet.arch, 32))
    settings = dict(SMALL, budget=budget, input_size=(32, 32), threads=1)
    plain = hrnas.search(supernet, *scenes, **settings)
    seen = _Recorder()
    observed = hrnas.search(supernet, *scenes, callbacks=[seen], **settings)
    assert observed.arch == plain.arch and observed.history[-1]["metric"] == plain.history[-1]["metric"]
    weights = observed.model.state_dict()
    for k, v in plain.model.state_dict().items():
        assert torch.equal(weights[k], v), k
    assert seen.events[0] == ("start", 0, (8, 3, 32, 32)) and seen.events[-1] == ("end", 24, plain.metric)
    assert [e[1] for e in seen.kinds("step")] == list(range(1, 25))
    ends = seen.kinds("shrink_end")
    assert len(ends) == len(seen.kinds("shrink_start")) == 24 // 3 - 1 + 1  # every check inside the run, the final
    assert [e[2] for e in ends] == [False] * (len(ends) - 1) + [True] and ends[-1][4] == plain.cost
    assert [e[1] for e in seen.kinds("evaluate")] == [r["step"] for r in plain.history]
    assert all(e[2] and e[3] > 0 for e in seen.kinds("evaluate"))


@pytest.mark.search
def test_train_keeps_a_fixed_architecture_and_runs_no_shrink(scenes, tmp_path):
    net = hrnas.HRNASNet(hrnas.get_space("seg_tiny").supernet(transformers=False).replace(name="mine"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    seen = _Recorder()
    settings = dict(SMALL, steps=8, eval_every=4, input_size=(32, 32))
    res = hrnas.train(net, *scenes, callbacks=[seen], output_dir=str(tmp_path), **settings)
    assert res.arch == net.arch and res.arch.name == "mine"  # nothing removed, its own name
    given, trained = net.state_dict(), res.model.state_dict()
    assert all(torch.equal(v, given[k]) for k, v in before.items())  # the model passed in is left alone
    assert any(not torch.equal(v, trained[k]) for k, v in before.items() if v.is_floating_point())
    assert [r["step"] for r in res.history] == [4, 8] and all(r["rho"] == 0 for r in res.history)
    assert not seen.kinds("shrink_start") and len(seen.kinds("step")) == 8 and len(seen.kinds("evaluate")) == 2
    assert hrnas.Arch.load(tmp_path / "arch.json") == net.arch
    with pytest.raises(ValueError, match="train\\(\\) trains a fixed architecture: budget only apply"):
        hrnas.train(net, *scenes, budget="1M", **SMALL)
    with pytest.raises(ValueError, match="latency_ms only apply"):
        hrnas.train(net, *scenes, config=SearchConfig(latency_ms=3.0), **SMALL)
