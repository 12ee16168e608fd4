"""A measured latency model: what each unit of a network costs in time on this device, and a whole network's latency.

MACs do not predict latency for these networks on CPUs (a narrow depthwise conv costs its launch, whatever its
size; a 3x3 depthwise conv can be slower than a 7x7 one), so a search that must meet a latency target needs costs
measured on the device it targets. :meth:`LatencyTable.build` times the building blocks of a search space, one
distinct block shape at a time, and fits per block

    latency = base + sum over kernel paths k with h_k > 0 of (path_k + channel_k * h_k)
                   + [tokens > 0] * (token_0 + token_1 * n + token_2 * n^2)

(``base``: the residual alone; ``path_k``: the fixed cost of running a kernel path at all; ``channel_k``: the
cost of one hidden channel; the token terms: the transformer at ``n`` tokens). A network's prediction is
``scale * sum(blocks) + offset``, where ``scale`` and ``offset`` (the stem, the fusions' resizes and additions,
the head) are fitted on whole networks of the space measured at build time.

What is timed (the table's ``form``): ``'deploy'`` (the default) times blocks and networks as :func:`hrnas.deploy`
leaves them, BatchNorm folded, each block's kernel paths run separately or merged, whichever is faster here, in
the memory format deploy chooses; ``'eval'`` times the network as built, in eval mode and ``channels_last``. Both
under ``torch.no_grad``, at the table's batch size and input size, with the thread count of the process that
builds the table. A table is valid only for its
device, thread count and torch version (:attr:`LatencyTable.key`); :func:`latency_table` caches tables under
``$HRNAS_CACHE_DIR/latency/`` by that key, the space and the input size.

Machines drift: on a shared CPU the same network measures faster or slower from one hour to the next
(``benchmarks/results/latency_model.md``). So a table keeps one of
its calibration networks as a *reference*, with its latency at build time; :func:`measure_latency` with
``reference=table`` times a network side by side with it and reports ``t / t_reference * reference_ms``: the
network's latency in the table's time, which cancels whatever slowed or sped up the whole machine since.

Per-unit costs for the search's penalty (:class:`hrnas.searching.units.CostModel` with ``metric='latency'``) are
``scale * channel_k`` per channel and the marginal token cost; budgets are predicted latencies. In a deploy-form
table a path's fixed cost is shared by its live channels (``scale * (channel_k + path_k / h_k)``) and the
transformer's by its live tokens: on a CPU a narrow path costs its launches whatever its width, so the penalty
must pull harder on the last channels of a path, whose removal takes those launches away.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import torch

from ._size import pair
from .arch import Arch, BlockSpec
from .cost import block_input_sizes
from .deployment import deploy, deploy_forms
from .files import write_atomic
from .layers import MixedKernelBlock
from .net import HRNASNet
from .timing import cache_dir, device_key, median_time, timing_load_watch

__all__ = [
    "BlockLatency",
    "LatencyTable",
    "latency_table",
    "mean_abs_relative_error",
    "measure_latencies",
    "measure_latency",
    "random_arch",
]

TABLE_VERSION = 1
FORMS = ("deploy", "eval")
FEATURE_LEVELS = (1, 2, 3, 4)  # features_only levels a backbone is timed by: strides 4-32 (hrnas and timm alike)


def _deployed(model: HRNASNet, input_size: tuple[int, int], batch_size: int) -> torch.nn.Module:
    """``model`` in the deploy form (:func:`hrnas.deploy`, its per-block choices cached on this device)."""
    return deploy(model, input_size=input_size, batch_size=batch_size)


@dataclass(frozen=True)
class BlockLatency:
    """Fitted latency terms of one block shape, in microseconds (see the module docstring)."""

    base: float
    path: dict[int, float]  # by kernel size
    channel: dict[int, float]
    token: tuple[float, float, float]  # token_0, token_1, token_2

    def predict(self, spec: BlockSpec, deploy: bool = False) -> float:
        """Microseconds of ``spec``'s block; ``deploy``: in the faster of its deploy forms, the paths run separately
        or merged into one path of the largest kernel and all their channels (timed as such a single path)."""
        t = self.base
        paths = sum(self.path[k] + self.channel[k] * h for k, h in spec.paths)
        if deploy and len(spec.paths) > 1:
            k = max(k for k, _ in spec.paths)
            paths = min(paths, self.path[k] + self.channel[k] * spec.hidden)
        t += paths
        if spec.tokens > 0:
            n = spec.tokens
            t += self.token[0] + self.token[1] * n + self.token[2] * n * n
        return t


def block_shape(spec: BlockSpec, input_hw: tuple[int, int]) -> str:
    """The key of a block's latency entry: everything but its widths and token count."""
    h, w = input_hw
    return f"in{spec.in_chs}-out{spec.out_chs}-s{spec.stride}-se{spec.se_ratio:g}-{spec.act}-hw{h}x{w}"


def measure_latency(
    model: torch.nn.Module,
    input_size: tuple[int, int],
    batch_size: int = 1,
    repeats: int = 20,
    device: str | torch.device = "cpu",
    in_chans: int = 3,
    reference: Optional[LatencyTable] = None,
) -> float:
    """Median latency in milliseconds of ``model`` in the form the latency model predicts (eval, channels_last,
    no_grad) on one random batch.

    With ``reference`` (a table that keeps a reference network), the model is timed side by side with that network
    over three to five rounds and the result is in the table's time (see the module docstring).
    """
    input_size = pair(input_size, in_chans)
    with timing_load_watch("measure_latency", torch.device(device)):
        return _measure_latency(model, input_size, batch_size, repeats, device, in_chans, reference)


def _measure_latency(model, input_size, batch_size, repeats, device, in_chans, reference) -> float:
    if reference is None or reference.reference is None:
        (ms,) = measure_latencies([model], input_size, batch_size, 1, repeats, device, in_chans)
        return ms
    # more rounds for longer measurements: load comes and goes within seconds, and each round sees it hit both
    # networks alike (more rounds scatter less: benchmarks/results/latency_scatter.md)
    rounds = max(3, min(5, repeats // 10))
    (ms,), _ = reference.measure_anchored([model], rounds, max(1, repeats // rounds), device, in_chans)
    return ms


def measure_latencies(
    models: Sequence[torch.nn.Module],
    input_size: tuple[int, int],
    batch_size: int = 1,
    rounds: int = 5,
    reps: int = 3,
    device: str | torch.device = "cpu",
    in_chans: int = 3,
) -> list[float]:
    """Median latencies in milliseconds of several models measured side by side (eval, no_grad; channels_last, or
    for a model from :func:`hrnas.deploy` the memory format it chose).

    ``rounds`` passes over the models; each visit runs one untimed forward, then ``reps`` timed ones. Interleaving
    spreads passing load on a shared machine over every model alike, and the untimed forward brings a model's
    weights and kernels back into the caches (cycling through many networks evicts them, and the first forward
    after an eviction is markedly slower than the ones that follow).
    """
    device = torch.device(device)
    # a deployed model runs in the memory format hrnas.deploy chose for it; every other one in channels_last
    formats = [getattr(m, "memory_format", torch.channels_last) for m in models]
    models = [m.eval().to(device, memory_format=f) for m, f in zip(models, formats)]
    x = torch.randn(batch_size, in_chans, *input_size, device=device)
    xs = [x.contiguous(memory_format=f) for f in formats]
    times: list[list[float]] = [[] for _ in models]
    with torch.no_grad():
        for m, x in zip(models, xs):
            for _ in range(2):
                m(x)
        for _ in range(rounds):
            for i, (m, x) in enumerate(zip(models, xs)):
                times[i].append(median_time(lambda m=m, x=x: m(x), device, repeats=reps, warmup=1))
    return [1e3 * statistics.median(t) for t in times]


def _fit_line(xs: list[float], ys: list[float], weights: Optional[list[float]] = None) -> tuple[float, float]:
    """Weighted least-squares ``(intercept, slope)``."""
    w = weights or [1.0] * len(xs)
    sw = sum(w)
    mx = sum(wi * x for wi, x in zip(w, xs)) / sw
    my = sum(wi * y for wi, y in zip(w, ys)) / sw
    var = sum(wi * (x - mx) ** 2 for wi, x in zip(w, xs))
    slope = sum(wi * (x - mx) * (y - my) for wi, x, y in zip(w, xs, ys)) / var if var else 0.0
    return my - slope * mx, slope


def _fit_quadratic(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    a = torch.tensor([[1.0, x, x * x] for x in xs], dtype=torch.float64)
    b = torch.tensor(ys, dtype=torch.float64).unsqueeze(1)
    coef = torch.linalg.lstsq(a, b).solution.flatten().tolist()
    return coef[0], coef[1], coef[2]


def _fit_token_curve(ns: list[float], ys: list[float]) -> tuple[float, float, float]:
    """``t0 + t1 n + t2 n^2`` with ``t1, t2 >= 0``: a token never makes a network faster, and a negative cost
    would turn the penalty into a reward (measurement noise on a transformer that costs little can fit one)."""
    if len(ns) >= 3:
        t0, t1, t2 = _fit_quadratic(ns, ys)
        if t1 >= 0 and t2 >= 0:
            return t0, t1, t2
    t0, t1 = _fit_line(ns, ys)
    if t1 >= 0:
        return t0, t1, 0.0
    return sum(ys) / len(ys), 0.0, 0.0


@dataclass
class LatencyTable:
    """Latency terms of every block shape of a space at one input size, plus the network-level fit.

    Build with :meth:`build` (or :func:`latency_table`, which caches); predict with :meth:`predict`.
    """

    key: str
    space: str
    input_size: tuple[int, int]
    batch_size: int
    blocks: dict[str, BlockLatency]
    scale: float = 1.0
    offset: float = 0.0
    calibration: Optional[list[dict]] = None  # the whole networks the scale/offset were fitted on
    # the drift anchor: {"arch": Arch dict, "ms": its latency at build time}, or {"timm": model name, "ms": ...}
    reference: Optional[dict] = None
    form: str = "eval"  # what was timed: "deploy" (hrnas.deploy's form) or "eval" (the network as built)

    # -- prediction ---------------------------------------------------------------------------------------

    def _entry(self, name: str, spec: BlockSpec, hw: tuple[int, int]) -> BlockLatency:
        shape = block_shape(spec, hw)
        entry = self.blocks.get(shape)
        if entry is None or any(k not in entry.channel for k, _ in spec.paths):
            raise KeyError(
                f"the latency table ({self.space} at {self.input_size[0]}x{self.input_size[1]}) has no entry for block "
                f"{name} ({shape}); build a table for this network's space and input size"
            )
        return entry

    def block_latencies(self, arch: Arch) -> dict[str, float]:
        """Predicted microseconds of every block of ``arch`` (before the network-level scale)."""
        hw = block_input_sizes(arch, self.input_size)
        deploy = self.form == "deploy"
        return {name: self._entry(name, spec, hw[name]).predict(spec, deploy) for name, spec in arch.named_blocks()}

    def predict(self, arch: Arch) -> float:
        """Predicted latency of ``arch`` in milliseconds."""
        return (self.scale * sum(self.block_latencies(arch).values()) + self.offset) / 1e3

    def unit_costs(self, arch: Arch) -> dict[str, tuple[tuple[float, ...], float, float]]:
        """Per block: microseconds of one hidden channel of each existing path, and the token coefficients."""
        hw = block_input_sizes(arch, self.input_size)
        shared = self.form == "deploy"  # fixed costs shared by the live units (the module docstring says why)
        out = {}
        for name, spec in arch.named_blocks():
            e = self._entry(name, spec, hw[name])
            channel = tuple(self.scale * (e.channel[k] + (e.path[k] / h if shared else 0.0)) for k, h in spec.paths)
            # a token costs token_1 + token_2 * (2L - 1) at L live tokens (the marginal of the fitted quadratic)
            # (a fitted token_0 can be negative; a fixed cost shared as a reward would be no cost at all)
            linear = e.token[1] + (max(e.token[0], 0.0) / spec.tokens if shared and spec.tokens else 0.0)
            out[name] = (channel, self.scale * linear, self.scale * e.token[2])
        return out

    # -- measuring in the table's time --------------------------------------------------------------------

    def measure_anchored(
        self,
        models: Sequence[torch.nn.Module],
        rounds: int = 5,
        reps: int = 3,
        device: str | torch.device = "cpu",
        in_chans: int = 3,
    ) -> tuple[list[float], float]:
        """Latencies (ms) of ``models`` in the table's time, and the machine's drift since the table was built.

        The models are timed side by side with the reference network (:func:`measure_latencies`); each latency is
        scaled by ``reference_ms / reference_now``. The drift is ``reference_now / reference_ms`` (above 1: the
        machine is slower now than when the table was measured).
        """
        if self.reference is None:
            raise ValueError("this latency table keeps no reference network (built by an older hrnas); build it again")
        state = torch.random.get_rng_state()
        torch.manual_seed(0)  # the reference's weights do not matter to its speed; keep the caller's RNG untouched
        if "timm" in self.reference:
            import timm

            ref = timm.create_model(self.reference["timm"], features_only=True, out_indices=FEATURE_LEVELS)
        else:
            ref = HRNASNet(Arch.from_dict(self.reference["arch"]))
            if self.form == "deploy":
                ref = _deployed(ref, self.input_size, self.batch_size)
        torch.random.set_rng_state(state)
        times = measure_latencies([ref, *models], self.input_size, self.batch_size, rounds, reps, device, in_chans)
        drift = times[0] / self.reference["ms"]
        return [t / drift for t in times[1:]], drift

    def anchored_to(self, model: str, ms: float) -> LatencyTable:
        """This table with timm's ``model`` (its ``features_only`` form at strides 4-32) as the reference, at
        ``ms``: every anchored measurement is then ``ms`` times the measured model's latency over ``model``'s, timed
        side by side. A budget of ``ms`` is then "as fast as ``model``" on whatever the machine is doing: on a
        shared CPU, networks of different kinds drift differently, so the reference should be the network the
        budget is about (the cpu zoo line's searches). A search's latency feedback then times its networks as
        backbones too, ``features_only`` at strides 4-32, without their dense heads."""
        return dataclasses.replace(self, reference={"timm": model, "ms": float(ms)})

    # -- files --------------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        d = asdict(self)
        d["version"] = TABLE_VERSION
        d["input_size"] = list(self.input_size)
        d["blocks"] = {k: asdict(v) for k, v in self.blocks.items()}  # JSON turns the kernel sizes into strings
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LatencyTable:
        if d.get("version") != TABLE_VERSION:
            raise ValueError(f"latency table version {d.get('version')!r} is not {TABLE_VERSION}; build it again")
        blocks = {
            k: BlockLatency(
                v["base"],
                {int(kk): vv for kk, vv in v["path"].items()},
                {int(kk): vv for kk, vv in v["channel"].items()},
                tuple(v["token"]),
            )
            for k, v in d["blocks"].items()
        }
        return cls(
            d["key"], d["space"], tuple(d["input_size"]), d["batch_size"], blocks, d["scale"], d["offset"],
            d.get("calibration"), d.get("reference"), d.get("form", "eval"),
        )  # fmt: skip

    def save(self, path: str | os.PathLike) -> None:
        write_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatencyTable:
        with open(path) as f:
            return cls.from_dict(json.load(f))

    # -- building -----------------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        supernet: Arch,
        input_size: tuple[int, int],
        space: str = "custom",
        batch_size: int = 1,
        repeats: int = 15,
        calibration_archs: int = 10,
        rounds: int = 5,
        device: str | torch.device = "cpu",
        seed: int = 0,
        progress: Optional[Callable[[str], None]] = None,
        time_block: Optional[Callable[[BlockSpec, tuple[int, int]], float]] = None,
        time_network: Optional[Callable[[Arch], float]] = None,
        form: str = "deploy",
    ) -> LatencyTable:
        """Measure every distinct block shape of ``supernet`` at ``input_size`` and fit the terms.

        ``calibration_archs`` random architectures of the space (plus the supernet and the empty network) are
        timed whole, side by side over ``rounds`` rounds, to fit the network-level ``scale`` and ``offset``.
        ``time_block(spec, input_hw)`` and ``time_network(arch)`` (microseconds) replace the measurements, for tests
        and for other timers. ``form``: ``'deploy'`` or ``'eval'``, what is timed (the module docstring).
        """
        if form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(map(repr, FORMS))}, got {form!r}")
        device = torch.device(device)
        input_size = (int(input_size[0]), int(input_size[1]))
        hw_of = block_input_sizes(supernet, input_size)
        shapes: dict[str, tuple[BlockSpec, tuple[int, int]]] = {}
        for name, spec in supernet.named_blocks():
            shapes.setdefault(block_shape(spec, hw_of[name]), (spec, hw_of[name]))

        def measure_block(spec: BlockSpec, hw: tuple[int, int]) -> float:
            block = MixedKernelBlock(spec).eval().to(device, memory_format=torch.channels_last)
            x = torch.randn(batch_size, spec.in_chs, *hw, device=device).contiguous(memory_format=torch.channels_last)
            forms = deploy_forms(block) if form == "deploy" else [block]
            with torch.no_grad():
                return 1e6 * min(median_time(lambda b=b: b(x), device, repeats=repeats, warmup=3) for b in forms)

        def measure_networks(archs: list[Arch]) -> list[float]:
            if time_network is not None:
                return [time_network(a) for a in archs]
            # side by side, in rounds, as a user's own comparison of networks would measure them
            models = [HRNASNet(arch) for arch in archs]
            if form == "deploy":
                models = [_deployed(m, input_size, batch_size) for m in models]
            return [1e3 * t for t in measure_latencies(models, input_size, batch_size, rounds, 3, device)]

        time_block = time_block or measure_block

        with timing_load_watch("building the latency table", device):
            blocks = {}
            for i, (shape, (spec, hw)) in enumerate(shapes.items()):
                if progress:
                    progress(f"block shape {i + 1}/{len(shapes)}: {shape}")
                empty = spec.replace(channels=tuple(0 for _ in spec.kernels), tokens=0)
                base = time_block(empty, hw)
                paths, channels = {}, {}
                for k_index, (k, full) in enumerate(zip(spec.kernels, spec.channels)):
                    if full == 0:
                        continue
                    widths = sorted({1, max(1, full // 2), full})
                    ys = []
                    for h in widths:
                        only = tuple(h if j == k_index else 0 for j in range(len(spec.kernels)))
                        ys.append(time_block(empty.replace(channels=only), hw) - base)
                    intercept, slope = _fit_line([float(h) for h in widths], ys)
                    paths[k] = max(intercept, 0.0)
                    channels[k] = max(slope, 0.0)
                token = (0.0, 0.0, 0.0)
                if spec.tokens > 0:
                    counts = sorted({1, max(1, spec.tokens // 4), max(1, spec.tokens // 2), spec.tokens})
                    ys = [time_block(empty.replace(tokens=n), hw) - base for n in counts]
                    token = _fit_token_curve([float(n) for n in counts], ys)
                blocks[shape] = BlockLatency(base, paths, channels, tuple(token))

            table = cls(device_key(device), space, input_size, batch_size, blocks, form=form)
            # whole networks: the supernet, the empty network and random ones between
            rng = random.Random(seed)
            empty_net = supernet.with_blocks(
                [b.replace(channels=(0,) * len(b.kernels), tokens=0) for b in supernet.blocks()]
            )
            archs = [supernet, empty_net]
            archs += [random_arch(supernet, rng.uniform(0.05, 0.8), rng) for _ in range(calibration_archs)]
            if progress:
                progress(f"{len(archs)} whole networks, {rounds} rounds")
            sums = [sum(table.block_latencies(arch).values()) for arch in archs]
            measured = measure_networks(archs)
        # relative errors are what matter (a 1 ms miss on a 5 ms network is not one on a 500 ms network)
        table.offset, table.scale = _fit_line(sums, measured, [1.0 / m**2 for m in measured])
        if table.scale <= 0 or table.offset < -min(measured):
            # measurements too noisy for a line (a loaded machine): a plain ratio is the safer fit
            table.offset, table.scale = 0.0, sum(measured) / max(sum(sums), 1e-9)
        table.calibration = [{"blocks_us": round(b, 1), "measured_us": round(m, 1)} for b, m in zip(sums, measured)]
        # the drift anchor: the random calibration network of median latency (mid-sized, so timing it is cheap and
        # it runs the same kinds of kernels as the networks a search compares with it)
        ranked = sorted(range(2, len(archs)), key=lambda i: measured[i]) or [0]
        ref = ranked[len(ranked) // 2]
        table.reference = {"arch": archs[ref].to_dict(), "ms": measured[ref] / 1e3}
        return table


def random_arch(supernet: Arch, mean_keep: float, rng: random.Random) -> Arch:
    """A random architecture of ``supernet``'s space: every kernel path and transformer keeps an independent
    fraction drawn around ``mean_keep`` (uniform in ``[0, 2 * mean_keep]``, clipped to 1); about a tenth of the
    paths are removed outright."""
    blocks = []
    for b in supernet.blocks():

        def keep(n: int) -> int:
            if n == 0 or rng.random() < 0.1:
                return 0
            return min(n, round(n * min(1.0, rng.uniform(0.0, 2.0 * mean_keep))))

        blocks.append(b.replace(channels=tuple(keep(c) for c in b.channels), tokens=keep(b.tokens)))
    return supernet.with_blocks(blocks)


def _cache_path(key: str, supernet: Arch, space: str, input_size: tuple[int, int], batch_size: int, form: str) -> Path:
    # the file name is readable; the digest makes it unique to the device key and the exact supernet
    digest = hashlib.sha256((key + supernet.to_json()).encode()).hexdigest()[:16]
    suffix = "" if form == "eval" else f"-{form}"  # eval-form tables keep the names they were cached under
    return cache_dir() / "latency" / f"{space}-{input_size[0]}x{input_size[1]}-b{batch_size}{suffix}-{digest}.json"


def latency_table(
    supernet: Arch,
    input_size: tuple[int, int] | int,
    space: Optional[str] = None,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    cache: bool = True,
    rebuild: bool = False,
    form: str = "deploy",
    **build_kwargs,
) -> LatencyTable:
    """The latency table of ``supernet``'s space at ``input_size`` on this device, timing the ``form`` (``'deploy'``
    or ``'eval'``, see the module docstring): from the cache when one was built with the same device, thread count
    and torch version, otherwise measured now (and cached)."""
    input_size = pair(input_size, build_kwargs.get("in_chans"))
    space = space or supernet.task
    device = torch.device(device)
    path = _cache_path(device_key(device), supernet, space, tuple(input_size), batch_size, form)
    if cache and not rebuild and path.exists():
        try:
            table = LatencyTable.load(path)
            if table.key == device_key(device) and table.reference is not None and table.form == form:
                return table  # (older tables have no drift anchor: built again)
        except (OSError, ValueError, KeyError):
            pass  # an unreadable cache entry is only a lost measurement: measure again
    table = LatencyTable.build(supernet, tuple(input_size), space, batch_size, device=device, form=form, **build_kwargs)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        table.save(path)
    return table


def mean_abs_relative_error(pairs: Iterable[tuple[float, float]]) -> float:
    """Mean of ``|predicted - measured| / measured`` over ``(predicted, measured)`` pairs."""
    errs = [abs(p - m) / m for p, m in pairs]
    return sum(errs) / len(errs)
