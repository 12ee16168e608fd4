"""Faults and bad input: killed runs resume exactly, numerical faults stop cleanly, untrusted files are refused,
and random architectures (valid or malformed) behave (hypothesis property tests)."""

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hrnas
from hrnas.data import FashionMNISTScenes
from hrnas.hub import WeightsError, load_weights, read_weights, save_pretrained
from hrnas.searching import SearchError
from hrnas.searching.checkpoint import CheckpointError, load_checkpoint
from hrnas.spaces import SearchSpace

SCRIPT = Path(__file__).parent / "scripts" / "tiny_search.py"
SMALL = dict(steps=18, batch_size=8, shrink_every=3, eval_every=6, calib_batches=2, progress=False)


# ----------------------------------------------------------------------------------------------------------
# Kill anywhere


@pytest.mark.e2e
def test_sigkill_at_random_moments_even_while_checkpointing(tmp_path):
    """A checkpoint every step, so that kills at random moments land in writes too; every kill leaves a whole,
    verifiable checkpoint, and the resumed run ends exactly where an uninterrupted one does."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    args = ["--steps", "30", "--checkpoint-every", "1"]
    subprocess.run([sys.executable, str(SCRIPT), str(ref_dir), *args], check=True, env=env, timeout=600)
    rng = random.Random(1234)
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(run_dir), *args], env=env)
    kills = 0
    for _ in range(4):
        # let it start and write at least one checkpoint, then kill it at a random moment
        deadline = time.time() + 300
        while not (run_dir / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            state = load_checkpoint(run_dir / "checkpoint.pt")  # never torn: the checksum verifies
            assert 1 <= state["step"] <= 30
        proc = subprocess.Popen([sys.executable, str(SCRIPT), str(run_dir), *args, "--resume"], env=env)
    assert proc.wait(timeout=600) == 0
    assert kills >= 2
    assert not [p.name for p in run_dir.iterdir() if ".tmp" in p.name]
    a = torch.load(ref_dir / "final_rank0.pt", weights_only=True)
    b = torch.load(run_dir / "final_rank0.pt", weights_only=True)
    assert a["arch"] == b["arch"]
    for k in a["state"]:
        torch.testing.assert_close(b["state"][k], a["state"][k], atol=1e-6, rtol=1e-5, msg=k)


@pytest.mark.e2e
def test_sigkill_during_a_checkpoint_write_leaves_the_previous_checkpoint(tmp_path):
    """Kill a process while it is inside save_checkpoint (a large state takes a while to write)."""
    target = tmp_path / "checkpoint.pt"
    code = (
        "import sys, torch\n"
        "from hrnas.searching.checkpoint import save_checkpoint\n"
        "save_checkpoint({'step': 1, 'w': torch.zeros(4)}, sys.argv[1])\n"
        "print('ready', flush=True)\n"
        "big = {'step': 2, 'w': torch.randn(64, 1024, 1024)}\n"
        "while True:\n"
        "    save_checkpoint(big, sys.argv[1])\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.time() + 60
        while not list(tmp_path.glob(".checkpoint.tmp*")) and time.time() < deadline:
            time.sleep(0.01)
        assert list(tmp_path.glob(".checkpoint.tmp*")), "the writer never started"
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-write: the temporary file is there, being written (never left running)
        proc.wait()
    state = load_checkpoint(target)  # the previous checkpoint, whole (or the big one, if it had just finished)
    assert state["step"] in (1, 2)


def test_a_torn_temporary_file_is_ignored_and_cleaned(tmp_path):
    from hrnas.searching.checkpoint import save_checkpoint

    save_checkpoint({"step": 5}, tmp_path / "checkpoint.pt")
    (tmp_path / ".checkpoint.tmp999.pt").write_bytes(b"HRNAS-CHECKPOINT-1 sha256=0\nhalf a payl")
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 5
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / ".checkpoint.tmp999.pt")


# ----------------------------------------------------------------------------------------------------------
# Numerical faults


@pytest.fixture(scope="module")
def scenes():
    return FashionMNISTScenes("train", 64, canvas=32, seed=3), FashionMNISTScenes("val", 16, canvas=32, seed=3)


def _gradient_poison(after_calls):
    calls = {"n": 0}

    def loss(out, target):
        calls["n"] += 1
        value = torch.nn.functional.cross_entropy(torch.nn.functional.interpolate(out, size=target.shape[-2:]), target)
        if calls["n"] > after_calls:
            out.register_hook(lambda g: g * float("inf"))  # the loss stays finite; its gradient does not
        return value

    return loss, calls


@pytest.mark.search
def test_non_finite_gradients_stop_before_touching_the_weights(scenes, tmp_path):
    loss, _ = _gradient_poison(after_calls=7)
    supernet = hrnas.create_supernet("seg", space="seg_tiny", max_tokens=4)
    with pytest.raises(SearchError, match=r"the gradient norm became (nan|inf) at step 7; stopping \(the last good"):
        hrnas.search(supernet, *scenes, loss=loss, input_size=(32, 32), output_dir=str(tmp_path), checkpoint_every=3,
                     **SMALL)  # fmt: skip
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 6
    assert all(torch.isfinite(v).all() for v in state["trainer"]["model"].values() if v.is_floating_point())


@pytest.mark.search
def test_non_finite_gradients_can_be_skipped(scenes):
    loss, _ = _gradient_poison(after_calls=10)
    supernet = hrnas.create_supernet("seg", space="seg_tiny", max_tokens=4, transformers=False)
    res = hrnas.search(supernet, *scenes, loss=loss, input_size=(32, 32), on_nan="skip", **SMALL)
    assert res.history[-1]["skipped"] == 8
    assert all(torch.isfinite(p).all() for p in res.model.parameters())


@pytest.mark.search
def test_batch_and_label_count_mismatch(scenes):
    class Bad(torch.utils.data.Dataset):
        def __len__(self):
            return 32

        def __getitem__(self, i):
            return torch.randn(3, 32, 32), torch.zeros(2, 32, 32, dtype=torch.long)

    supernet = hrnas.create_supernet("seg", space="seg_tiny", transformers=False)
    loader = torch.utils.data.DataLoader(Bad(), batch_size=4, collate_fn=lambda b: (
        torch.stack([x for x, _ in b]), torch.cat([y for _, y in b])))  # fmt: skip
    with pytest.raises(ValueError, match="a batch has 4 inputs but 8 targets"):
        hrnas.search(supernet, loader, input_size=(32, 32), **SMALL)


# ----------------------------------------------------------------------------------------------------------
# Untrusted files


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('HRNAS_PWNED', '/tmp/hrnas-pwned')}",))


def test_crafted_pickle_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("HRNAS_PWNED", str(marker))
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"stem.0.conv.weight": _Exploit()}, f)
    model = hrnas.create_model("hrnas_supernet_tiny_cls")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError, match="refusing to load .*evil.pth: it is not a plain file of tensors"):
        load_weights(model, path)
    assert not marker.exists()  # the payload never ran
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_corrupt_truncated_and_mismatched_files(tmp_path):
    model = hrnas.create_model("hrnas_supernet_tiny_cls")
    save_pretrained(model, tmp_path / "ok")
    weights = tmp_path / "ok" / "model.safetensors"
    before = {k: v.clone() for k, v in model.state_dict().items()}

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated.safetensors is not a readable safetensors file"):
        load_weights(model, truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_weights(model, garbage)

    other = hrnas.create_model("hrnas_supernet_tiny_cls", num_classes=3)
    save_pretrained(other, tmp_path / "other")
    with pytest.raises(WeightsError, match=r"'head.fc.weight' has shape \(3, 256\) in the file but \(10, 256\)"):
        load_weights(model, tmp_path / "other" / "model.safetensors")
    seg = hrnas.create_model("hrnas_supernet_tiny_seg")
    save_pretrained(seg, tmp_path / "seg")
    with pytest.raises(WeightsError, match=r"do not fit this architecture: \d+ missing \(first: "):
        load_weights(model, tmp_path / "seg" / "model.safetensors")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched throughout

    # a model directory with a truncated weights file or an unknown architecture: clear errors as well
    weights.write_bytes(truncated.read_bytes())
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        hrnas.create_model(str(tmp_path / "ok"))
    config = json.loads((tmp_path / "other" / "config.json").read_text())
    config["architecture"] = "hrnas_from_the_future"
    (tmp_path / "other" / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="names architecture 'hrnas_from_the_future', which is not registered"):
        hrnas.create_model(str(tmp_path / "other"))


def test_plain_pth_of_tensors_loads(tmp_path):
    model = hrnas.create_model("hrnas_supernet_tiny_cls")
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "w.pth")
    state = read_weights(tmp_path / "w.pth")
    other = load_weights(hrnas.create_model("hrnas_supernet_tiny_cls"), tmp_path / "w.pth")
    assert all(torch.equal(state[k], v) for k, v in other.state_dict().items())


def test_torch_load_is_never_called_without_weights_only():
    root = Path(hrnas.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line and "weights_only=True" not in line:
                offenders.append(f"{path.relative_to(root)}:{i}")
    assert not offenders


# ----------------------------------------------------------------------------------------------------------
# Property tests


@st.composite
def architectures(draw):
    task = draw(st.sampled_from(["seg", "pose", "cls"]))
    n_stages = draw(st.integers(1, 4))
    branches, stages, widths = 1, [], []
    for s in range(n_stages):
        if s:
            branches = min(4, branches + draw(st.integers(0, 1)))
        stages.append(tuple(draw(st.integers(0, 2)) for _ in range(branches)))
        widths.append(tuple(draw(st.integers(2, 20)) for _ in range(branches)))
    kernels = draw(st.sampled_from([(3,), (3, 5), (3, 5, 7), (5, 7)]))
    space = SearchSpace(
        name="random", task=task, description="", stages=tuple(stages), widths=tuple(widths),
        stem=(draw(st.integers(2, 16)), draw(st.integers(2, 16))), kernels=kernels,
        expand_ratio=draw(st.sampled_from([1.0, 2.0])), num_classes=draw(st.integers(1, 12)),
        last_channel=draw(st.integers(2, 24)), head_chs=tuple(draw(st.integers(2, 24)) for _ in range(branches)),
        final_chs=draw(st.integers(2, 32)), max_tokens=draw(st.integers(1, 4)),
        transformers=draw(st.sampled_from(["identity", "all", "none"])), act=draw(st.sampled_from(["relu", "swish"])),
    )  # fmt: skip
    arch = space.supernet()
    blocks = []
    for b in arch.blocks():
        channels = tuple(draw(st.integers(0, c)) for c in b.channels)
        tokens = draw(st.integers(0, b.tokens))
        se = draw(st.sampled_from([0.0, 0.0, 0.5]))
        blocks.append(b.replace(channels=channels, tokens=tokens, se_ratio=se))
    return arch.with_blocks(blocks)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=architectures(), data=st.data())
def test_random_valid_architectures_build_run_and_count_right(arch, data):
    model = hrnas.HRNASNet(arch).eval()
    lo = model.min_input_size
    h = data.draw(st.integers(lo, lo + 40), label="height")
    w = data.draw(st.integers(lo, lo + 40), label="width")
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        out = model(x)
    if arch.is_dense:
        assert out.shape == (2, arch.num_classes, -(-h // 4), -(-w // 4))
    else:
        assert out.shape == (2, arch.num_classes)
    assert torch.isfinite(out).all()
    assert hrnas.profile(model, (h, w)).macs == hrnas.count_macs(arch, (h, w))
    assert sum(p.numel() for p in model.parameters()) == hrnas.count_params(arch)
    assert hrnas.Arch.from_json(arch.to_json()) == arch


JUNK = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.lists(st.integers(-2, 2), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.data())
def test_malformed_json_only_raises_arch_error_naming_the_field(data):
    d = hrnas.get_space("seg_tiny").supernet(tokens=2).to_dict()
    paths = [p for p in _paths(d) if p]
    path = data.draw(st.sampled_from(paths), label="path")
    parent = d
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and data.draw(st.booleans(), label="delete"):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(JUNK, label="value")
    try:
        hrnas.Arch.from_dict(d)
    except hrnas.ArchError as e:
        message = str(e)
        top = path[0]
        # a width that the topology ties to another (the stem's to the first fusion's input) may be reported where
        # the two disagree; the message then names that field and says the topology fixes it
        named = message.startswith(top) or f"{top}" in message.split(":")[0]
        assert named or "(the topology fixes it)" in message, message
    # anything else (TypeError, KeyError, IndexError...) fails the test by propagating
