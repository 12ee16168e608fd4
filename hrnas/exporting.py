"""Export HR-NAS networks: ONNX, TorchScript, or a ``torch.export`` program, with dynamic batch, height and width.

    hrnas.export(model, "model.onnx")                                  # deployed first, dynamic shapes, verified
    hrnas.export(model, "model.pt2", format="exported_program", input_size=(512, 512))

ONNX needs the optional extra: ``pip install "hrnas[onnx]"`` (onnx, onnxruntime). Files are written to a
temporary name and renamed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import nn

from ._size import pair
from .deployment import deploy
from .files import atomic_path
from .zoo import create_model

__all__ = ["FORMATS", "export", "verify_onnx"]

FORMATS = ("onnx", "torchscript", "exported_program")


def _example(model: nn.Module, input_size: Optional[Tuple[int, int]], batch_size: int) -> torch.Tensor:
    in_chans = getattr(model, "in_chans", 3)
    if input_size is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        input_size = tuple(cfg.get("input_size", (3, 224, 224))[-2:])
    input_size = pair(input_size, in_chans)
    param = next(model.parameters())
    return torch.randn(batch_size, in_chans, *input_size, device=param.device, dtype=param.dtype)


def export(
    model: nn.Module,
    path: str | os.PathLike,
    format: str = "onnx",
    input_size: Optional[Tuple[int, int]] = None,
    batch_size: int = 1,
    dynamic: bool = True,
    deploy_first: bool = True,
    opset: int = 17,
    verify: bool = True,
) -> Path:
    """Write ``model`` to ``path`` in ``format``.

    Args:
        model: the network (a model name or directory is accepted too).
        path: output file.
        format: ``'onnx'``, ``'torchscript'`` or ``'exported_program'``.
        input_size: ``(height, width)`` of the example input; default the model's pretrained-cfg size.
        batch_size: batch of the example input.
        dynamic: batch, height and width are free (ONNX dynamic axes, ``torch.export`` dims; TorchScript is
            scripted, so always dynamic).
        deploy_first: export the :func:`hrnas.deploy` form (BatchNorm folded), without re-tuning.
        opset: ONNX opset.
        verify: check the exported file against the model on the example input (and, for ONNX, with
            onnxruntime when it is installed); a mismatch above 1e-4 (relative to the output's scale) raises.

    Returns:
        The path written.
    """
    if isinstance(model, (str, os.PathLike)):
        model = create_model(os.fspath(model))
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if deploy_first and not getattr(model, "deployed", False):
        model = deploy(model, input_size=input_size, channels_last=False, tune=False, cache_path=None)
    model = model.eval()
    x = _example(model, input_size, batch_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter deprecation and tracer notes
            if format == "onnx":
                _export_onnx(model, x, tmp, dynamic, opset)
            elif format == "torchscript":
                torch.jit.save(torch.jit.script(model), str(tmp))
            else:
                dims = None
                if dynamic:
                    # export infers the ranges (sizes of 1 at any branch are special-cased by the tracer, so the
                    # example must not have any); a batch of 1 would be specialised too
                    auto = torch.export.Dim.AUTO
                    dims = ({0: auto, 2: auto, 3: auto},)
                    if x.shape[0] == 1:
                        x = x.expand(2, -1, -1, -1).contiguous()
                torch.export.save(torch.export.export(model, (x,), dynamic_shapes=dims), str(tmp))
        if verify:
            _verify(model, tmp, format, x)  # raises: the temporary file is removed, nothing is left behind
    return path


def _export_onnx(model: nn.Module, x: torch.Tensor, path: Path, dynamic: bool, opset: int) -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ImportError('ONNX export needs the onnx package: pip install "hrnas[onnx]"') from None
    axes = None
    if dynamic:
        # outputs: dense logits (B, C, H/4, W/4) or class scores (B, C); naming both spatial axes is harmless
        axes = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch"}}
        with torch.no_grad():
            if model(x).dim() == 4:
                axes["output"] = {0: "batch", 2: "out_height", 3: "out_width"}
    # the TorchScript-based exporter: seconds where the dynamo exporter takes half a minute, and dynamic axes work
    torch.onnx.export(
        model, (x,), str(path), dynamo=False, input_names=["input"], output_names=["output"],
        dynamic_axes=axes, opset_version=opset,
    )  # fmt: skip


def verify_onnx(path: str | os.PathLike, model: nn.Module, x: torch.Tensor, rtol: float = 1e-4) -> float:
    """Run the ONNX file with onnxruntime on ``x`` and compare with ``model(x)``; returns the relative error."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.detach().cpu().numpy()})[0])
    with torch.no_grad():
        ref = model(x).cpu()
    err = float((out - ref).abs().max() / ref.abs().max().clamp(min=1.0))
    if out.shape != ref.shape or err > rtol:
        raise RuntimeError(f"ONNX output differs from the model: shapes {tuple(out.shape)} vs {tuple(ref.shape)}, "
                           f"relative error {err:.2e} > {rtol:g}")  # fmt: skip
    return err


def _verify(model: nn.Module, path: Path, format: str, x: torch.Tensor) -> None:
    if format == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return  # checked where onnxruntime is installed ("hrnas[onnx]")
        verify_onnx(path, model, x)
        return
    loaded = torch.jit.load(str(path)) if format == "torchscript" else torch.export.load(str(path)).module()
    with torch.no_grad():
        out, ref = loaded(x), model(x)
    err = float((out - ref).abs().max() / ref.abs().max().clamp(min=1.0))
    if err > 1e-4:
        raise RuntimeError(f"exported {format} output differs from the model: relative error {err:.2e}")
