"""Why does the proxy metric collapse when a search cuts a supernet to a few per cent of its cost? Measured.

One zoo recipe (default ``hrnas_pose_a``: 205 MMACs at 256x192, 3.5 % of the pose supernet) is searched with
diagnostics, then its final architecture is retrained from scratch with the same steps, data and schedule:

- at every evaluation, the metric of the EMA weights after BatchNorm re-calibration (what the search reports),
  of the trained weights after re-calibration, and of the trained weights with their own running statistics;
- at every shrink check, the training loss of the current weights on a fixed probe batch (train-mode BatchNorm,
  so the cut's effect is not hidden by stale statistics) before and after the cut, the cost removed, whether
  live units were forced out, the share of the gate mass removed and the learning rate.

If the searched architecture retrained from scratch ends near the search's end point, the architecture (not the
process) limits the metric; if the trained weights beat the EMA weights after cuts, the EMA lags the shrinking
network; large probe-loss jumps at forced cuts mean still-important units were cut.

    python benchmarks/search_collapse.py --recipe hrnas_pose_a --name default
    python benchmarks/search_collapse.py --recipe hrnas_pose_a --name reach45 --set reach=0.45

Writes ``benchmarks/results/search_collapse/<name>.json`` (everything) and regenerates
``benchmarks/results/search_collapse.md`` from every JSON there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml
from _common import uniform_arch

import hrnas
from hrnas.arch import Arch, branch_hidden_channels
from hrnas.cost import count_macs
from hrnas.files import write_atomic
from hrnas.release.recipes import ZOO_RECIPES, proxy_data, recipe_supernet
from hrnas.searching.config import SearchConfig
from hrnas.searching.recipes import build_data

RESULTS = Path(__file__).parent / "results"
OUT = RESULTS / "search_collapse"


class _Diagnostics:
    """Search callbacks that record what each shrink and each evaluation did (read-only observers)."""

    def __init__(self) -> None:
        self.shrinks: list[dict] = []
        self.evals: list[dict] = []
        self.probe = None
        self.before: tuple = ()

    def on_run_start(self, run) -> None:
        self.probe = run.train_batch()

    @torch.no_grad()
    def _probe_loss(self, run) -> float:
        x, target = self.probe
        model = run.model
        model.train()  # batch statistics: the loss of the weights, not of stale running statistics
        state = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
        out = model(x.contiguous(memory_format=torch.channels_last) if run.channels_last else x)
        loss = float(run.loss(out.float(), target))
        model.load_state_dict(state, strict=False)  # the probe must not move the running statistics
        return loss

    def on_shrink_start(self, run, final: bool) -> None:
        gate_mass = float(sum(g.detach().abs().sum() for g in run.gates()))
        self.before = (self._probe_loss(run), count_macs(run.arch, run.input_size, run.in_chans), gate_mass)

    def on_shrink_end(self, run, event) -> None:
        before_loss, before_macs, gate_mass = self.before
        after_macs = count_macs(run.arch, run.input_size, run.in_chans)
        if after_macs == before_macs:
            return
        kept_mass = float(sum(g.detach().abs().sum() for g in run.gates()))
        self.shrinks.append(
            {
                "step": run.step,
                "final": event.final,
                "macs_before": before_macs,
                "macs_after": after_macs,
                "forced": event.forced,
                "gate_mass_removed": round(1.0 - kept_mass / max(gate_mass, 1e-12), 5),
                "probe_loss_before": round(before_loss, 5),
                "probe_loss_after": round(self._probe_loss(run), 5),
                "lr": run.lr,
                "rho": run.rho,
            }
        )

    def on_evaluate(self, run, row: dict) -> None:
        if not run.has_val_data:
            return
        raw = run.build(run.arch)
        raw.load_state_dict(run.model.state_dict())
        own_stats = run.evaluate(raw.eval())
        run.calibrate(raw)
        gates = torch.cat([g.detach().abs().flatten() for g in run.gates()] or [torch.zeros(1)])
        self.evals.append(
            {
                "step": run.step,
                "macs": row["macs"],
                "ema_calibrated": row["metric"],
                "weights_calibrated": run.evaluate(raw.eval()),
                "weights_own_stats": own_stats,
                "lr": row["lr"],
                "rho": row["rho"],
                "mean_gate": round(float(gates.mean()), 4),
            }
        )


def _run(recipe, settings: dict, out_dir: Path, retrain_arch=None) -> tuple[dict, _Diagnostics]:
    data = proxy_data(recipe)
    train, val = build_data(data)
    torch.manual_seed(recipe.seed)
    supernet = recipe_supernet(recipe, data.num_classes)
    if retrain_arch is not None:
        from hrnas.net import HRNASNet

        torch.manual_seed(recipe.seed)
        supernet = HRNASNet(retrain_arch.with_num_classes(data.num_classes), in_chans=3)
    cfg = SearchConfig().replace(
        budget=recipe.budget if retrain_arch is None else None,
        input_size=recipe.input_size,
        cost_num_classes=recipe.num_classes,
        seed=recipe.seed,
        output_dir=str(out_dir),
        progress=False,
        **settings,
    )
    started = time.time()
    run = _Diagnostics()
    if retrain_arch is None:
        result = hrnas.search(supernet, train, val, cfg, callbacks=[run])
    else:
        result = hrnas.train(supernet, train, val, cfg, callbacks=[run])
    return {
        "metric": result.metric,
        "macs": result.macs,
        "wall_s": round(time.time() - started, 1),
        "evals": run.evals,
        "shrinks": run.shrinks,
        "arch": result.arch.to_dict(),
    }, run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default="hrnas_pose_a", choices=sorted(ZOO_RECIPES))
    p.add_argument("--name", required=True, help="name of this variant (its JSON file)")
    p.add_argument("--set", action="append", default=[], help="override a search setting: key=value (YAML value)")
    p.add_argument("--no-retrain", action="store_true", help="skip retraining the found architecture from scratch")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--uniform", type=float, metavar="MACS", help="instead: uniform width at MACS (named config)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = ZOO_RECIPES[args.recipe]
    settings = dict(recipe.search)
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = yaml.safe_load(value)
    if args.uniform:
        return _uniform_baseline(recipe, args.name, args.uniform)
    work = Path("runs/search_collapse") / args.name
    report = {"recipe": args.recipe, "settings": settings, "threads": torch.get_num_threads()}
    cfg = SearchConfig().replace(**settings)
    report["method"] = {k: getattr(cfg, k) for k in ("tail", "cut_rank", "rho_limit", "reach")}
    report["search"], run = _run(recipe, settings, work / "search")
    print(json.dumps({k: report["search"][k] for k in ("metric", "macs", "wall_s")}), flush=True)
    if not args.no_retrain:
        from hrnas.arch import Arch

        arch = Arch.coerce(report["search"]["arch"])
        report["retrained"], _ = _run(recipe, settings, work / "retrained", retrain_arch=arch)
        print(json.dumps({k: report["retrained"][k] for k in ("metric", "macs", "wall_s")}), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    write_atomic(OUT / f"{args.name}.json", json.dumps(report, indent=1) + "\n")
    write_atomic(RESULTS / "search_collapse.md", _report())
    return 0


def _uniform_baseline(recipe, name: str, target: float) -> int:
    """Uniform width (one keep fraction for every path) at ``target`` MACs, trained by the recipe from scratch."""
    from hrnas.release.recipes import run_recipe
    from hrnas.spaces import get_space

    supernet = get_space(recipe.space).supernet(transformers=False).replace(task=recipe.task)
    arch, keep = uniform_arch(supernet.with_num_classes(recipe.num_classes), target, recipe.input_size)
    started = time.time()
    result, _ = run_recipe(recipe, arch=arch, output_dir=Path("runs/search_collapse") / name)
    uniform = {
        "target_macs": target,
        "macs": count_macs(arch, recipe.input_size),
        "keep": keep,
        "branches": branch_hidden_channels(arch),
        "metric": result.metric,
        "curve": [[r["step"], r["metric"]] for r in result.history],
        "wall_s": round(time.time() - started, 1),
    }
    report = {"recipe": recipe.name, "method": {"baseline": "uniform width"}, "uniform": uniform}
    OUT.mkdir(parents=True, exist_ok=True)
    write_atomic(OUT / f"{name}.json", json.dumps(report, indent=1) + "\n")
    write_atomic(RESULTS / "search_collapse.md", _report())
    return 0


def _summary(reports: list[tuple[str, dict]]) -> list[str]:
    rows = []
    for name, rep in reports:
        if "uniform" in rep:
            u = rep["uniform"]
            rows.append(f"| {name} | uniform width (keep {u['keep']:.1%}) | | | | {u['metric']:.3f} | "
                        f"{u['macs'] / 1e6:.1f} | {' / '.join(map(str, u['branches']))} |")  # fmt: skip
            continue
        m, s = rep.get("method", {}), rep["search"]
        best = max((e["ema_calibrated"] for e in s["evals"][:-1]), default=float("nan"))
        retrained = f"{rep['retrained']['metric']:.3f}" if "retrained" in rep else ""
        widths = branch_hidden_channels(Arch.coerce(s["arch"]))
        method = (
            f"tail {m.get('tail')}, cuts by {m.get('cut_rank')}, rho <= {m.get('rho_limit')}x, reach {m.get('reach')}"
        )
        rows.append(f"| {name} | {method} | {best:.3f} | {s['metric']:.3f} | {retrained} | | {s['macs'] / 1e6:.1f} | "
                    f"{' / '.join(map(str, widths))} |")  # fmt: skip
    return [
        "| variant | method | best before the end | search, final (inherited weights) | same architecture from scratch "
        "| uniform width, from scratch | MMACs | hidden channels per branch (stride 4 / 8 / 16 / 32) |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]


def _report() -> str:
    reports = [(p.stem, json.loads(p.read_text())) for p in sorted(OUT.glob("*.json"))]
    lines = [
        "# Search collapse diagnostics",
        "",
        "Written by `benchmarks/search_collapse.py` (one section per variant; see its docstring for the method). "
        "Variants a-c ran before importance-ranked cuts existed, a-b before the fine-tuned tail.",
        "",
        *_summary(reports),
        "",
    ]
    for name, rep in reports:
        if "search" not in rep:
            continue
        path = OUT / f"{name}.json"
        s = rep["search"]
        lines += [f"## {path.stem} ({rep['recipe']})", "", f"settings: `{json.dumps(rep['settings'])}`", ""]
        head = f"search: final metric {s['metric']:.4f} at {s['macs'] / 1e6:.1f} MMACs, {s['wall_s'] / 60:.1f} min"
        if "retrained" in rep:
            r = rep["retrained"]
            head += f"; the same architecture retrained from scratch: {r['metric']:.4f} ({r['wall_s'] / 60:.1f} min)"
        lines += [head, "", "| step | MMACs | lr | rho | mean gate | EMA, calibrated | weights, calibrated | "
                  "weights, own stats |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for e in s["evals"]:
            lines.append(
                f"| {e['step']} | {e['macs'] / 1e6:.1f} | {e['lr']:.4f} | {e.get('rho', float('nan')):.3g} | "
                f"{e.get('mean_gate', float('nan')):.3f} | {e['ema_calibrated']:.4f} | {e['weights_calibrated']:.4f} | "
                f"{e['weights_own_stats']:.4f} |"
            )
        lines += ["", "| step | MMACs before -> after | forced | gate mass removed | probe loss before -> after |"]
        lines += ["|---|---|---|---|---|"]
        for c in s["shrinks"]:
            lines.append(
                f"| {c['step']}{' (final)' if c['final'] else ''} | {c['macs_before'] / 1e6:.1f} -> "
                f"{c['macs_after'] / 1e6:.1f} | {'yes' if c['forced'] else 'no'} | {c['gate_mass_removed']:.4f} | "
                f"{c['probe_loss_before']:.5f} -> {c['probe_loss_after']:.5f} |"
            )
        jumps = [c["probe_loss_after"] / max(c["probe_loss_before"], 1e-12) for c in s["shrinks"]]
        if jumps:
            lines += ["", f"median probe-loss ratio after/before a cut: {statistics.median(jumps):.3f}", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
