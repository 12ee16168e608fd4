"""The ``hrnas`` command line: a thin layer over the public API.

hrnas --version
hrnas list [PATTERN] [--pretrained]        registered models, their weights tags and where those are
hrnas spaces                               search-space presets
hrnas summary MODEL|ARCH.json [--input-size H W]
hrnas profile MODEL|ARCH.json [--input-size H W] [--convention paper|full] [--depth N]
hrnas search [...]                         architecture search (no options: the CPU demo)
hrnas export MODEL OUT [--format onnx|torchscript|exported_program]
hrnas zoo-build NAME [--output-dir DIR] [--weights-dir DIR] [--resume]    re-make a zoo model and its weights
hrnas push DIR --repo-id ORG/NAME [--dry-run OUT]
hrnas convert WEIGHTS ARCH.json --output-dir DIR [--task cls|seg|pose]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence

__all__ = ["main"]


def _load_model(spec: str, num_classes: int | None = None):
    from . import Arch, create_model

    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if spec.endswith(".json") or os.path.isfile(spec):
        return create_model("hrnas_custom", arch=Arch.load(spec), **kwargs)
    # registered names, hf-hub: ids and model directories
    return create_model(spec, **kwargs)


def _input_size(args: argparse.Namespace, model) -> tuple[int, int]:
    if args.input_size:
        return tuple(args.input_size)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return tuple(cfg.get("input_size", (3, 224, 224))[-2:])


def _cmd_list(args: argparse.Namespace) -> int:
    import fnmatch

    from .catalog import CATALOG
    from .weights import find_weights

    entries = [e for e in CATALOG if fnmatch.fnmatch(e.name, args.pattern or "*") and e.shipped()]
    # where each tag's weights are: a local directory or the local Hub cache (no network is used), or published
    found = {(e.name, t.tag): find_weights(e.name, t, network=False) for e in entries for t in e.tags}
    loadable = {key for key, where in found.items() if where is not None}
    loadable |= {(e.name, t.tag) for e in entries for t in e.tags if t.published(e.name)}
    if args.pretrained:
        entries = [e for e in entries if any((e.name, t.tag) in loadable for t in e.tags)]
    width = max((len(e.name) for e in entries), default=0)
    for entry in entries:
        h, w = entry.input_size
        print(f"{entry.name:<{width}}  {entry.description} [{entry.outputs}, {h}x{w}]")
        for tag in entry.tags:
            where = found[entry.name, tag.tag]
            if where is not None:
                status = f"here ({where.location})"
            elif tag.published(entry.name):
                status = f"on the Hub ({tag.hub_id(entry.name)})"
            else:
                status = f"not published; `hrnas zoo-build {entry.name}` builds them"
            if args.pretrained and (entry.name, tag.tag) not in loadable:
                continue
            print(f"{'':<{width}}  .{tag.tag}: weights trained on {tag.trained_on}; {status}")
    if not entries:
        if args.pretrained and not args.pattern:
            print(
                "no hrnas weights are published or found here yet; `hrnas list` shows each tag and the command "
                "that builds it",
                file=sys.stderr,
            )
            return 0
        print(f"no hrnas model matches {args.pattern!r}", file=sys.stderr)
        return 1
    return 0


def _cmd_spaces(args: argparse.Namespace) -> int:
    from .spaces import SPACES

    for name, space in SPACES.items():
        print(f"{name:<10} {space.description}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from .catalog import catalog_entry
    from .cost import summary

    # registered names and architecture files need no network built (nor torch): the Arch is enough
    entry = catalog_entry(args.model)
    if entry is not None:
        print(summary(entry.arch(), input_size=tuple(args.input_size or entry.input_size)))
        return 0
    if args.model.endswith(".json"):
        from .arch import Arch

        print(summary(Arch.load(args.model), input_size=tuple(args.input_size or (224, 224))))
        return 0
    model = _load_model(args.model)
    print(summary(model.arch, input_size=_input_size(args, model)))
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from . import profile

    model = _load_model(args.model)
    prof = profile(model, _input_size(args, model), convention=args.convention)
    print(prof.table(max_depth=args.depth) if args.depth else prof)
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from dataclasses import asdict

    from . import count_macs, count_params
    from .searching import SearchConfig, create_supernet, search
    from .searching.recipes import DataSpec, SupernetSpec, build_data, demo_settings

    if args.config:
        cfg = SearchConfig.from_yaml(args.config)
        if not cfg.supernet or not cfg.data:
            raise ValueError(f"{args.config} does not describe its supernet and data (was it written by hrnas search?)")
        net_spec, data_spec = SupernetSpec(**cfg.supernet), DataSpec(**cfg.data)
        overrides = {k: v for k, v in _search_overrides(args).items() if k in ("output_dir", "resume", "device")}
        cfg = cfg.replace(**overrides)
    else:
        demo = demo_settings()
        net_spec, data_spec = demo["supernet"], demo["data"]
        if args.task and args.task != net_spec.task:
            net_spec = SupernetSpec(task=args.task, space=f"{args.task}_tiny" if args.task != "pose" else None)
            if args.task == "cls":
                data_spec = DataSpec(name="fmnist", image_size=32, train_size=None, val_size=None)
        for field_name, value in (("space", args.space), ("num_classes", args.num_classes)):
            if value is not None:
                setattr(net_spec, field_name, value)
        if args.no_transformers:
            net_spec.transformers = False
        for field_name in ("data", "data_path", "image_size", "train_size", "val_size"):
            value = getattr(args, field_name)
            if value is not None:
                setattr(data_spec, {"data": "name", "data_path": "path"}.get(field_name, field_name), value)
        data_spec.num_classes = net_spec.num_classes
        settings = dict(demo["search"])
        settings.update(_search_overrides(args))
        settings.setdefault("input_size", (data_spec.image_size, data_spec.image_size))
        cfg = SearchConfig().replace(**settings, supernet=asdict(net_spec), data=asdict(data_spec))

    import torch

    torch.manual_seed(cfg.seed)  # the supernet's initial weights are part of the run
    supernet = create_supernet(
        net_spec.task, net_spec.num_classes, net_spec.space, net_spec.transformers, **net_spec.overrides
    )
    size = cfg.input_size or tuple(supernet.pretrained_cfg["input_size"][-2:])
    start_macs, start_params = count_macs(supernet.arch, size), count_params(supernet.arch)
    if not args.config and cfg.budget is None and cfg.params is None and cfg.latency_ms is None and not args.no_budget:
        cfg = cfg.replace(budget=int(args.budget_fraction * start_macs))
    train, val = build_data(data_spec)
    print(
        f"hrnas search: {net_spec.task} supernet '{supernet.arch.name}', {start_macs / 1e6:.2f} MMACs and "
        f"{start_params / 1e6:.3f} M params at {size[0]}x{size[1]}; data {data_spec.name} "
        f"({len(train)} train / {len(val)} val)"
    )
    if cfg.latency_ms is not None:
        how = "predicted, then measured near the budget" if cfg.latency_feedback else "predicted by the table"
        print(f"budget: {cfg.latency_ms:g} ms of latency (batch 1) on this device ({how})")
    elif cfg.budget is not None or cfg.params is not None:
        kind = "MACs" if cfg.budget is not None else "params"
        amount = cfg.budget if cfg.budget is not None else cfg.params
        amounts = amount if isinstance(amount, list) else [amount]
        print(f"budget: {', '.join(f'{a:,}' if isinstance(a, int) else str(a) for a in amounts)} {kind}")
    result = search(supernet, train, val, cfg)
    print()
    print(result.summary())
    minutes, seconds = divmod(time.perf_counter() - started, 60)
    threads = sorted({r["threads"] for r in result.history if r.get("threads")})
    how = "as asked" if cfg.threads else "chosen from the free cores"
    used = "/".join(map(str, threads)) or "?"
    print(f"wall time: {int(minutes)} min {seconds:.0f} s for set-up and search ({used} CPU threads, {how})")
    if cfg.output_dir:
        print(
            f"\nsaved to {cfg.output_dir}/ (load with hrnas.create_model({cfg.output_dir!r}); "
            f"repeat with hrnas search --config {os.path.join(cfg.output_dir, 'config.yaml')})"
        )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .exporting import export

    model = _load_model(args.model)
    size = tuple(args.input_size) if args.input_size else None
    path = export(
        model, args.out, format=args.format, input_size=size, batch_size=args.batch_size,
        dynamic=not args.static, deploy_first=not args.no_deploy,
    )  # fmt: skip
    print(f"wrote {path} ({args.format}, {'static' if args.static else 'dynamic batch/height/width'}, verified)")
    return 0


def _cmd_zoo_build(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from .release.recipes import build_zoo_entry

    entry = build_zoo_entry(
        args.name, args.output_dir, quick=args.quick, progress=not args.no_progress, resume=args.resume,
        weights_dir=args.weights_dir,
    )  # fmt: skip
    rec = entry["record"]
    h, w = rec["named_configuration"]["input_size"]
    print(
        f"{entry['name']}: {rec['macs'] / 1e6:.1f} MMACs, {rec['params'] / 1e6:.3f} M params at {h}x{w} "
        f"(budget {rec['budget']}); proxy {rec['proxy_metric']['name']} {rec['proxy_metric']['value']}"
    )
    print(f"wrote {os.path.join(args.output_dir, entry['name'] + '.json')} (copy it to hrnas/archs/zoo/ to ship it)")
    if entry["weights_dir"]:
        tag = os.path.basename(entry["weights_dir"])
        print(f"wrote the weights {tag} to {entry['weights_dir']}", end="")
        print("" if args.quick else f" (hrnas.create_model({tag!r}, pretrained=True) finds them there)")
    minutes, seconds = divmod(time.perf_counter() - started, 60)
    print(f"wall time: {int(minutes)} min {seconds:.0f} s")
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from .hub import push_to_hub

    names = push_to_hub(args.directory, args.repo_id, dry_run=args.dry_run, private=args.private)
    where = f"staged in {args.dry_run} (nothing uploaded)" if args.dry_run else f"uploaded to {args.repo_id}"
    print(f"{', '.join(names)} {where}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert_original

    out = convert_original(
        args.weights, args.arch, args.output_dir, task=args.task, space=args.space, num_classes=args.num_classes
    )
    print(f"wrote {out} (load with hrnas.create_model({out!r}))")
    return 0


def _cmd_latency_table(args: argparse.Namespace) -> int:
    from .latency import latency_table
    from .searching import create_supernet

    supernet = create_supernet(args.task, space=args.space, transformers=not args.no_transformers)
    size = tuple(args.input_size) if args.input_size else tuple(supernet.pretrained_cfg["input_size"][-2:])
    space = args.space or args.task
    table = latency_table(
        supernet.arch, size, space=space, batch_size=args.batch_size, device=args.device, rebuild=args.rebuild,
        form=args.form, progress=None if args.quiet else print,
    )  # fmt: skip
    if args.out:
        table.save(args.out)
    worst = max(abs(c["measured_us"] - (table.scale * c["blocks_us"] + table.offset)) / c["measured_us"]
                for c in table.calibration or [])  # fmt: skip
    print(
        f"latency table for {space} at {size[0]}x{size[1]}, batch {args.batch_size} ({table.key}): "
        f"{len(table.blocks)} block shapes; supernet predicted {table.predict(supernet.arch):.2f} ms; largest "
        f"error on the calibration networks {100 * worst:.1f} %" + (f"; written to {args.out}" if args.out else "")
    )
    return 0


def _search_overrides(args: argparse.Namespace) -> dict:
    out = {}
    for name in (
        "budget",
        "params",
        "latency_ms",
        "latency_table",
        "input_size",
        "epochs",
        "steps",
        "batch_size",
        "lr",
        "optimizer",
        "output_dir",
        "resume",
        "seed",
        "device",
        "num_workers",
        "threads",
    ):
        value = getattr(args, name, None)
        if value is not None:
            if name in ("budget", "params") and "," in value:
                value = [v.strip() for v in value.split(",")]  # a family: one model per budget
            out[name] = tuple(value) if name == "input_size" else value
    if getattr(args, "no_progress", False):
        out["progress"] = False
    if getattr(args, "latency_feedback", False):
        out["latency_feedback"] = True
    return out


def _add_search_parser(sub) -> None:
    from .searching.recipes import DATA_SETS

    p = sub.add_parser(
        "search",
        help="search an architecture (no options: the CPU demo)",
        description="Fine-grained progressive-shrinking search. Without options it runs the demo: the seg_tiny "
        "space with transformers on Fashion-MNIST scenes at 64x64, to a fifth of the supernet's MACs.",
    )
    p.add_argument("--config", help="repeat a run from its config.yaml")
    g = p.add_argument_group("supernet")
    g.add_argument("--task", choices=("seg", "pose", "cls"))
    g.add_argument("--space", help="search-space preset (hrnas spaces lists them)")
    g.add_argument("--num-classes", type=int)
    g.add_argument("--no-transformers", action="store_true", help="search conv channels only")
    g = p.add_argument_group("data")
    g.add_argument("--data", choices=DATA_SETS)
    g.add_argument("--data-path", help="Fashion-MNIST idx directory, or the folder data set's root")
    g.add_argument("--image-size", type=int)
    g.add_argument("--train-size", type=int)
    g.add_argument("--val-size", type=int)
    g = p.add_argument_group("budget")
    g.add_argument("--budget", help="MACs ceiling at --input-size, e.g. 20M or 1.4G; several (40M,20M,10M): a family")
    g.add_argument("--params", help="parameter ceiling instead of MACs")
    g.add_argument("--latency-ms", type=float, help="latency ceiling instead (ms, batch 1, this device)")
    g.add_argument("--latency-table", help="a table from hrnas latency-table (default: measured now, then cached)")
    g.add_argument(
        "--latency-feedback",
        action="store_true",
        help="experimental: also time the network near the latency budget and correct the table's prediction",
    )
    g.add_argument("--budget-fraction", type=float, default=0.2, help="default budget: this share of the supernet")
    g.add_argument("--no-budget", action="store_true", help="the paper's fixed-rho schedule, no budget")
    g.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), help="resolution the cost is counted at")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=float)
    g.add_argument("--steps", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--optimizer", choices=("sgd", "adamw"))
    g.add_argument("--output-dir")
    g.add_argument("--resume", help="a run directory (or its checkpoint.pt) to continue")
    g.add_argument("--seed", type=int)
    g.add_argument("--device")
    g.add_argument("--num-workers", type=int)
    g.add_argument("--threads", type=int, help="intra-op CPU threads (default: the free cores, following the load)")
    g.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_search)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="hrnas", description="HR-NAS networks and search (timm model family).")
    parser.add_argument("--version", action="version", version=f"hrnas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered hrnas models and their weights tags")
    p.add_argument("pattern", nargs="?", help="wildcard filter, e.g. '*seg*'")
    p.add_argument("--pretrained", action="store_true", help="only models with weights (name.tag)")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("spaces", help="list search-space presets")
    p.set_defaults(func=_cmd_spaces)

    for name, func, text in (
        ("summary", _cmd_summary, "print a model's architecture, block by block"),
        ("profile", _cmd_profile, "count a model's MACs and parameters"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("model", help="registered model name or an architecture JSON file")
        p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), help="default: the model's")
        if name == "profile":
            p.add_argument("--convention", choices=("paper", "full"), default="paper")
            p.add_argument("--depth", type=int, default=0, help="per-module table down to this depth")
        p.set_defaults(func=func)
    p = sub.add_parser("export", help="export a model to ONNX, TorchScript or a torch.export program")
    p.add_argument("model", help="registered model name, model directory or architecture JSON")
    p.add_argument("out", help="output file")
    p.add_argument("--format", choices=("onnx", "torchscript", "exported_program"), default="onnx")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), help="example input (default: the model's)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--static", action="store_true", help="fix batch, height and width to the example's")
    p.add_argument("--no-deploy", action="store_true", help="export the model as is (BatchNorm not folded)")
    p.set_defaults(func=_cmd_export)
    _add_search_parser(sub)

    p = sub.add_parser(
        "zoo-build",
        help="re-make a zoo model: run its recorded search (or training) and write its entry and weights",
    )
    p.add_argument("name", help="a zoo model with a recipe (hrnas_seg_a, hrnas_cls_b, ...)")
    p.add_argument("--output-dir", default="runs/zoo", help="the entry NAME.json and the run (default: runs/zoo)")
    p.add_argument(
        "--weights-dir",
        help="where the weights directory NAME.TAG goes (default: $HRNAS_WEIGHTS_DIR, else ~/.cache/hrnas/weights, "
        "where create_model(NAME, pretrained=True) looks; with --quick: --output-dir)",
    )
    p.add_argument("--quick", action="store_true", help="a smoke test on a few steps (not a zoo model)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --output-dir")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_zoo_build)

    p = sub.add_parser(
        "latency-table",
        help="measure a search space's block latencies on this device (for search --latency-ms); cached",
    )
    p.add_argument("--task", choices=("seg", "pose", "cls"), default="seg")
    p.add_argument("--space", help="search-space preset (default: the task's)")
    p.add_argument("--no-transformers", action="store_true")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), help="default: the space's")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="also write the table to this JSON file")
    p.add_argument("--rebuild", action="store_true", help="measure again even if a cached table exists")
    p.add_argument(
        "--form", choices=("deploy", "eval"), default="deploy",
        help="time networks as hrnas.deploy leaves them (default) or as built, in eval mode",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_latency_table)

    p = sub.add_parser("push", help="upload a model directory to the Hugging Face Hub")
    p.add_argument("directory", help="a model directory (save_pretrained, SearchResult.save, zoo-build output)")
    p.add_argument("--repo-id", required=True, help="org/name on the Hub")
    p.add_argument("--dry-run", metavar="DIR", help="write exactly what would be uploaded into DIR instead")
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=_cmd_push)

    p = sub.add_parser("convert", help="turn a checkpoint of the original HR-NAS code into a model directory")
    p.add_argument("weights", help="state dict (.pth/.state_dict, plain, module.-prefixed or EMA) of the original")
    p.add_argument("arch", help="the original's architecture JSON (list of block entries)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--task", choices=("seg", "pose", "cls"), default="cls")
    p.add_argument("--space", help="space preset of the supernet it was searched in (default: the task's)")
    p.add_argument("--num-classes", type=int, help="default: read from the classifier's weights")
    p.set_defaults(func=_cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hrnas`` command."""
    # torch 2.14 deprecates torch.jit; the notices come from imports, not from anything a user can change
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"hrnas {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
