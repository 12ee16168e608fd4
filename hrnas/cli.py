"""The ``hrnas`` command line: a thin layer over the public API.

hrnas list [PATTERN]                       registered models
hrnas spaces                               search-space presets
hrnas summary MODEL|ARCH.json [--input-size H W]
hrnas profile MODEL|ARCH.json [--input-size H W] [--convention paper|full] [--depth N]
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

__all__ = ["main"]


def _load_model(spec: str, num_classes: int | None = None):
    from . import Arch, create_model

    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if spec.endswith(".json") or os.path.isfile(spec):
        return create_model("hrnas_custom", arch=Arch.load(spec), **kwargs)
    return create_model(spec, **kwargs)


def _input_size(args: argparse.Namespace, model) -> tuple[int, int]:
    if args.input_size:
        return tuple(args.input_size)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return tuple(cfg.get("input_size", (3, 224, 224))[-2:])


def _cmd_list(args: argparse.Namespace) -> int:
    from . import list_models

    for name in list_models(args.pattern or ""):
        print(name)
    return 0


def _cmd_spaces(args: argparse.Namespace) -> int:
    from .spaces import SPACES

    for name, space in SPACES.items():
        print(f"{name:<10} {space.description}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    print(model.arch.summary(input_size=_input_size(args, model)))
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from . import profile

    model = _load_model(args.model)
    prof = profile(model, _input_size(args, model), convention=args.convention)
    print(prof.table(max_depth=args.depth) if args.depth else prof)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hrnas", description="HR-NAS networks and search (timm model family).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered hrnas models")
    p.add_argument("pattern", nargs="?", help="wildcard filter, e.g. '*seg*'")
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
