"""Fixed-seed searches whose outcome is pinned by ``tests/data/search_fixture.json`` (see test_search_fixture.py).

The fixture was written by the search code as it was before the refactor of issue 18; the refactored code must find
the same architectures and bit-identical weights. Three runs, all on one thread, at 32x32:

- ``family``: the ``seg_tiny`` supernet with transformers, a family of two MACs budgets, shrink checks every 3 steps,
  evaluations every 8, checkpoints written;
- ``latency``: a latency budget on a synthetic latency table, with measured feedback from a fake device;
- ``resumed``: the ``family`` run interrupted at step 17 (after its first member was taken) and resumed from its
  checkpoint: it must end exactly where ``family`` ends.

    python tests/scripts/fixed_search.py OUT.json      # write what the current code finds

Bits differ between CPUs, so there is one fixture per platform the code was checked on
(``tests/data/search_fixture*.json``, each naming its platform in ``written_by``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

import hrnas
import hrnas.latency
from hrnas.cost import block_input_sizes
from hrnas.data import FashionMNISTScenes
from hrnas.latency import LatencyTable
from hrnas.searching.tasks import get_task

SIZE = (32, 32)
# tail="penalised", cut_rank="gate", rho_limit=10: the behaviour the fixture was written with (the defaults changed
# afterwards)
SMALL = dict(batch_size=8, shrink_every=3, eval_every=8, calib_batches=2, progress=False, device="cpu", seed=5)
SMALL.update(tail="penalised", cut_rank="gate", rho_limit=10.0, threads=1)
# wall-clock readings and the thread count (which follows the machine's load): not part of the outcome
TIMING_KEYS = ("elapsed", "step_time", "threads")


class _Interrupt(Exception):
    pass


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over every tensor of the state dict: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def weight_sums(model: torch.nn.Module) -> list[float]:
    """Sum and sum of magnitudes of every floating-point weight (float64): a coarse check where bits may differ."""
    floats = [v.double() for _, v in sorted(model.state_dict().items()) if v.is_floating_point()]
    return [float(sum(v.sum() for v in floats)), float(sum(v.abs().sum() for v in floats))]


def arch_outcome(arch: hrnas.Arch) -> dict:
    """The architecture's digest, and its widths for readable diffs: per block ``'c3,c5,c7:tokens'``. The name is
    not part of it (results are named after their budget since the fixture was written, with the supernet's name)."""
    arch = arch.replace(name="supernet_seg_tiny")
    return {
        "sha256": hashlib.sha256(arch.to_json().encode()).hexdigest(),
        "blocks": [",".join(map(str, b.channels)) + f":{b.tokens}" for b in arch.blocks()],
    }


def outcome(res) -> dict:
    members = res.family[:-1] if res.family else []
    return {
        "arch": arch_outcome(res.arch),
        "weights_sha256": weights_digest(res.model),
        "weight_sums": weight_sums(res.model),
        "macs": res.macs,
        "params": res.params,
        "cost": res.cost,
        "metric": res.metric,
        "measured_latency_ms": res.measured_latency_ms,
        "history": [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in res.history],
        "family": [
            {
                "arch": arch_outcome(m.arch),
                "weights_sha256": weights_digest(m.model),
                "cost": m.cost,
                "metric": m.metric,
            }
            for m in members
        ],
    }


def _data():
    return FashionMNISTScenes("train", 64, canvas=32, seed=3), FashionMNISTScenes("val", 16, canvas=32, seed=3)


def _supernet():
    torch.manual_seed(0)
    return hrnas.create_supernet("seg", space="seg_tiny", max_tokens=4)


def _family_settings(supernet) -> dict:
    start = hrnas.count_macs(supernet.arch, SIZE)
    return dict(SMALL, steps=27, budget=[int(0.6 * start), int(0.35 * start)], input_size=SIZE, family_recovery=0.1)


def run_family(out_dir: str) -> dict:
    supernet = _supernet()
    return outcome(hrnas.search(supernet, *_data(), output_dir=out_dir, **_family_settings(supernet)))


def run_resumed(out_dir: str) -> dict:
    seg_loss = get_task("seg").loss
    calls = {"n": 0, "stop_at": 17}

    def loss(out, target):
        calls["n"] += 1
        if calls["n"] == calls["stop_at"]:
            raise _Interrupt
        return seg_loss(out, target)

    supernet = _supernet()
    settings = _family_settings(supernet)
    try:
        hrnas.search(supernet, *_data(), loss=loss, output_dir=out_dir, checkpoint_every=3, **settings)
        raise AssertionError("the run was not interrupted")
    except _Interrupt:
        pass
    calls["stop_at"] = -1
    return outcome(hrnas.search(supernet, *_data(), loss=loss, resume=out_dir, progress=False))


def _true_block_us(spec, hw) -> float:
    area = hw[0] * hw[1]
    t = 5.0 + 0.01 * spec.in_chs
    for k, h in spec.paths:
        t += 3.0 + k + (0.002 * area + 0.1 * k) * h
    if spec.tokens:
        t += 7.0 + 0.5 * spec.tokens + 0.05 * spec.tokens**2
    return t


def synthetic_table(arch) -> LatencyTable:
    def time_network(a):
        hw = block_input_sizes(a, SIZE)
        return 1.5 * sum(_true_block_us(spec, hw[name]) for name, spec in a.named_blocks()) + 40.0

    # form="eval": the fixtures were recorded with the eval form's unit costs (no shared fixed costs)
    return LatencyTable.build(
        arch, SIZE, "seg_tiny", time_block=_true_block_us, time_network=time_network, calibration_archs=4, form="eval"
    )


def fake_device(table: LatencyTable, full: float):
    """A device the table misjudges (faster the smaller the network), whose every third reading is 3 % low."""
    timed = []

    def measure(model, input_size, batch_size=1, repeats=20, device="cpu", in_chans=3, reference=None):
        timed.append(model.arch)
        predicted = table.predict(model.arch)
        return predicted * (0.6 + 0.4 * predicted / full) * (0.97 if len(timed) % 3 == 0 else 1.0)

    return measure


def run_latency(out_dir: str) -> dict:
    supernet = _supernet()
    table = synthetic_table(supernet.arch)
    full = table.predict(supernet.arch)
    original = hrnas.latency.measure_latency
    hrnas.latency.measure_latency = fake_device(table, full)  # the search looks it up when it times a network
    try:
        res = hrnas.search(
            supernet,
            _data()[0],
            None,
            latency_ms=0.5 * full,
            latency_table=table,
            latency_feedback=True,
            input_size=SIZE,
            output_dir=out_dir,
            **dict(SMALL, steps=18),
        )
    finally:
        hrnas.latency.measure_latency = original
    return outcome(res)


def run_all() -> dict:
    torch.set_num_threads(1)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (("family", run_family), ("latency", run_latency), ("resumed", run_resumed)):
            out[name] = fn(str(Path(tmp) / name))
    return out


def platform() -> dict:
    """What the bits depend on besides the code: torch, the CPU's name and the instruction set torch's kernels use.

    The name alone is not enough: virtual machines report "AMD EPYC" for processors with and without AVX-512, and the
    kernels sum in a different order on each."""
    return {
        "torch": torch.__version__,
        "cpu": hrnas.timing.cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def main() -> None:
    result = run_all()
    result["written_by"] = platform()
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
