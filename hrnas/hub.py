"""Model directories: ``config.json`` (timm's layout, carrying the full ``Arch``) + ``model.safetensors``.

A directory written by :func:`save_pretrained` loads with ``hrnas.create_model(path)`` or, through timm's own
loader, ``timm.create_model('local-dir:' + path, pretrained=True)`` after ``import hrnas``. Weights are only
ever written and read as safetensors (never pickles).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors.torch import save_file
from timm.models import PretrainedCfg

from .cost import summary
from .files import write_atomic
from .weights import CONFIG_NAME, WEIGHTS_NAME

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "WeightsError",
    "check_weights",
    "is_model_dir",
    "load_pretrained",
    "load_weights",
    "push_to_hub",
    "read_weights",
    "save_pretrained",
]


def is_model_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory holding an hrnas/timm ``config.json``."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG_NAME))


def _model_config(
    model: torch.nn.Module, pretrained_cfg: Optional[dict], architecture: Optional[str] = None
) -> dict[str, Any]:
    arch = model.arch
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    cfg.update(pretrained_cfg or {})
    known = {f.name for f in dataclasses.fields(PretrainedCfg)}
    for key in list(cfg):
        # weight sources describe where the weights came from, not this directory
        if key not in known or key in ("file", "url", "hf_hub_id", "hf_hub_filename", "state_dict", "source"):
            cfg.pop(key)
    cfg.pop("architecture", None)
    cfg.setdefault("first_conv", "stem.0.conv")
    cfg.setdefault("classifier", "head.fc")
    cfg["num_classes"] = model.num_classes
    cfg.setdefault("license", "apache-2.0")
    if "input_size" in cfg:
        cfg["input_size"] = [model.in_chans, *list(cfg["input_size"])[-2:]]
        h, w = cfg["input_size"][-2:]
        red = 4 if arch.is_dense else arch.reduction
        cfg["pool_size"] = [-(-h // red), -(-w // red)]
    # the full Arch travels with the weights, also under a registered name: the name's architecture can change
    # between versions of the zoo (hrnas_seg_a was searched again), the weights' cannot
    model_args = {"arch": arch.to_dict(), "in_chans": model.in_chans}
    return {
        "architecture": architecture or "hrnas_custom",
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "global_pool": model.global_pool,
        "model_args": model_args,
        "pretrained_cfg": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
    }


def save_pretrained(
    model: torch.nn.Module,
    directory: str | os.PathLike,
    *,
    model_card: Optional[str] = None,
    pretrained_cfg: Optional[dict] = None,
    architecture: Optional[str] = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``README.md`` for ``model`` into ``directory``.

    Args:
        model: an ``HRNASNet``.
        directory: created if missing; other files in it are left alone.
        model_card: text of ``README.md`` (default: a short card with the architecture).
        pretrained_cfg: timm pretrained-config fields to record (``input_size``, ``mean``, ``std``...).
        architecture: a registered model name whose architecture ``model`` has (``'hrnas_seg_a'``); ``config.json``
            then names it instead of carrying the full ``Arch`` under ``hrnas_custom``.

    Files are written to a temporary directory first and moved into place, so a failure leaves no half-written
    file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = _model_config(model, pretrained_cfg, architecture)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with tempfile.TemporaryDirectory(dir=directory, prefix=".tmp-save-") as tmp:
        tmp = Path(tmp)
        with open(tmp / CONFIG_NAME, "w") as f:
            json.dump(config, f, indent=1)
            f.write("\n")
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / "README.md").write_text(model_card or _default_card(model))
        for name in (WEIGHTS_NAME, CONFIG_NAME, "README.md"):
            os.replace(tmp / name, directory / name)
    return directory


def _default_card(model: torch.nn.Module) -> str:
    arch = model.arch
    return (
        f"# HR-NAS {arch.task} network\n\n"
        "Load with:\n\n```python\nimport hrnas\nmodel = hrnas.create_model('path/to/this/directory')\n```\n\n"
        f"Architecture:\n\n```\n{summary(arch)}\n```\n"
    )


class WeightsError(ValueError):
    """A weights file or model directory that cannot be loaded; the message names the file and the problem."""


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or, for files from elsewhere, a ``.pth``/``.pt``/``.bin`` that holds
    only tensors (read with ``torch.load(weights_only=True)``, which refuses pickled code)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"weights file {path!r} does not exist")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as e:
            raise WeightsError(
                f"{path} is not a readable safetensors file ({type(e).__name__}: {e}); it may be truncated or "
                "corrupt: download or save it again"
            ) from None
    if path.endswith((".pth", ".pt", ".bin", ".ckpt", ".state_dict")):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise WeightsError(
                f"refusing to load {path}: it is not a plain file of tensors ({type(e).__name__}: {str(e)[:200]}); "
                "only weights are accepted, never pickled objects: convert it to safetensors where it was made"
            ) from None
        for key in ("state_dict", "model", "ema", "shadow"):  # common checkpoint wrappers; the original's EMA
            if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                obj = obj[key]
        if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
            raise WeightsError(f"{path} does not hold a state dict (a mapping of names to tensors)")
        return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in obj.items()}
    raise WeightsError(f"{path}: unknown weights format; use .safetensors (or a .pth holding only tensors)")


def check_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "the weights") -> None:
    """Raise :class:`WeightsError` unless ``state`` has exactly ``model``'s keys with the same shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {unexpected[0]!r})")
        raise WeightsError(f"{source} do not fit this architecture: {', '.join(parts)} keys")
    for k, t in expected.items():
        if tuple(state[k].shape) != tuple(t.shape):
            raise WeightsError(
                f"{source} do not fit this architecture: {k!r} has shape {tuple(state[k].shape)} in the file but "
                f"{tuple(t.shape)} in the model"
            )


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> torch.nn.Module:
    """Load a weights file into ``model`` after checking every key and shape; on any error ``model`` is untouched."""
    state = read_weights(path)
    check_weights(model, state, source=os.fspath(path))
    model.load_state_dict(state)
    return model


def _read_config(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, CONFIG_NAME)
    try:
        with open(path) as f:
            config = json.load(f)
    except json.JSONDecodeError as e:
        raise WeightsError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(config, dict) or "architecture" not in config:
        raise WeightsError(f"{path} has no 'architecture' entry; is this a timm/hrnas model directory?")
    return config


def load_pretrained(directory: str | os.PathLike, **kwargs: Any) -> torch.nn.Module:
    """Build the model described by ``directory/config.json`` and load ``model.safetensors`` into it.

    Keyword arguments go to ``timm.create_model`` (``num_classes`` drops the classifier weights, ``in_chans``
    adapts the stem, ``features_only`` builds the feature extractor).
    """
    import timm

    directory = os.fspath(directory)
    if not is_model_dir(directory):
        raise FileNotFoundError(f"{directory!r} is not a model directory (no {CONFIG_NAME} in it)")
    weights = os.path.join(directory, WEIGHTS_NAME)
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"{directory!r} has no {WEIGHTS_NAME}")
    # Check everything with the directory's own settings first, so that a bad file gives one clear error;
    # then let timm build the model with the caller's (head dropped for other num_classes, stem adapted...).
    config = _read_config(directory)
    arch_name = config["architecture"]
    if not timm.is_model(arch_name):
        raise WeightsError(
            f"{os.path.join(directory, CONFIG_NAME)} names architecture {arch_name!r}, which is not registered "
            "(import the package that defines it, or upgrade hrnas)"
        )
    model_args = dict(config.get("model_args", {}))
    if "num_classes" in config:
        model_args.setdefault("num_classes", config["num_classes"])
    reference = timm.create_model(arch_name, **model_args)
    check_weights(reference, read_weights(weights), source=weights)
    return timm.create_model(f"local-dir:{os.path.abspath(directory)}", pretrained=True, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# Publishing

_CARD_HEADER = "---\nlibrary_name: timm\nlicense: apache-2.0\ntags: [hrnas, timm]\n---\n\n"


def push_to_hub(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    dry_run: Optional[str | os.PathLike] = None,
    private: bool = False,
    token: Optional[str] = None,
    commit_message: str = "Upload hrnas model",
) -> list[str]:
    """Upload a model directory (``config.json``, ``model.safetensors``, ``README.md``) to the Hugging Face Hub.

    The directory is loaded and checked first, so a broken model is never published. The files are staged as
    they will be uploaded (the model card gets the Hub's metadata header if it has none); with ``dry_run=DIR``
    the staged files are written to ``DIR`` instead of uploaded, exactly as the Hub would receive them.

    Returns the uploaded (or staged) file names.
    """
    import hashlib

    directory = os.fspath(directory)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo_id):
        raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
    load_pretrained(directory)  # raises a clear error for anything that would not load back
    with tempfile.TemporaryDirectory(prefix="hrnas-push-") as staging:
        names = [CONFIG_NAME, WEIGHTS_NAME, "README.md"]
        shutil.copyfile(os.path.join(directory, CONFIG_NAME), os.path.join(staging, CONFIG_NAME))
        shutil.copyfile(os.path.join(directory, WEIGHTS_NAME), os.path.join(staging, WEIGHTS_NAME))
        card_path = os.path.join(directory, "README.md")
        card = Path(card_path).read_text() if os.path.isfile(card_path) else f"# {repo_id}\n"
        if not card.startswith("---\n"):
            card = _CARD_HEADER + card
        with open(os.path.join(staging, "README.md"), "w") as f:
            f.write(card)
        if dry_run is not None:
            os.makedirs(dry_run, exist_ok=True)
            manifest = {}
            for name in names:
                with open(os.path.join(staging, name), "rb") as f:
                    manifest[name] = hashlib.sha256(f.read()).hexdigest()
                os.replace(os.path.join(staging, name), os.path.join(dry_run, name))
            plan = {"repo_id": repo_id, "private": private, "commit_message": commit_message, "sha256": manifest}
            write_atomic(os.path.join(dry_run, "upload_plan.json"), json.dumps(plan, indent=1) + "\n")
            return names
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(folder_path=staging, repo_id=repo_id, commit_message=commit_message)
        return names
