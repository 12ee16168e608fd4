"""Task presets: the loss the search trains with and the metric it reports, per task.

- ``seg``: pixel cross-entropy (logits upsampled bilinearly to the label size, ignore index 255 by default) and
  mean IoU over classes present in the labels or predictions.
- ``pose``: heatmap mean-squared error (x 0.5, as HRNet's JointsMSELoss) and keypoint accuracy: the share of
  keypoints whose heatmap peak lies within ``0.5 * heatmap_size / 10`` of the target's peak (HRNet's PCK).
- ``cls``: cross-entropy (optional label smoothing) and top-1 accuracy.

Metrics accumulate sufficient statistics (a confusion matrix, counts) so that they can be summed over
``torch.distributed`` ranks before being computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

__all__ = ["Metric", "Task", "get_task"]


class Metric:
    """Accumulates a metric over batches; ``compute()`` returns a float where higher is better."""

    name = "metric"

    def __init__(self) -> None:
        self.state = torch.zeros(0, dtype=torch.float64)

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> float:
        raise NotImplementedError

    def all_reduce(self) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.state)


class MeanIoU(Metric):
    name = "mIoU"

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.state = torch.zeros(num_classes, num_classes, dtype=torch.float64)

    @torch.no_grad()
    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        logits = _resize_to(output, target)
        pred = logits.argmax(1).flatten().cpu()
        t = target.flatten().cpu()
        valid = t != self.ignore_index
        idx = t[valid] * self.num_classes + pred[valid]
        self.state += torch.bincount(idx, minlength=self.num_classes**2).reshape_as(self.state).double()

    def per_class(self) -> torch.Tensor:
        cm = self.state
        inter = cm.diag()
        union = cm.sum(0) + cm.sum(1) - inter
        return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, float("nan")))

    def compute(self) -> float:
        iou = self.per_class()
        present = ~torch.isnan(iou)
        return float(iou[present].mean()) if present.any() else 0.0


class TopK(Metric):
    name = "top1"

    def __init__(self) -> None:
        super().__init__()
        self.state = torch.zeros(2, dtype=torch.float64)  # correct, total

    @torch.no_grad()
    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        self.state[0] += float((output.argmax(1) == target).sum())
        self.state[1] += target.numel()

    def compute(self) -> float:
        return float(self.state[0] / self.state[1].clamp(min=1))


class KeypointAccuracy(Metric):
    name = "PCK"

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = threshold
        self.state = torch.zeros(2, dtype=torch.float64)

    @torch.no_grad()
    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        target = _heatmaps(target)
        h, w = output.shape[-2:]
        norm = torch.tensor([h / 10.0, w / 10.0], dtype=torch.float64)
        pred, gt = _peaks(output.double().cpu()), _peaks(target.double().cpu())
        visible = target.flatten(2).amax(-1).cpu() > 0
        dist = ((pred - gt) / norm).norm(dim=-1)
        self.state[0] += float((dist[visible] <= self.threshold).sum())
        self.state[1] += float(visible.sum())

    def compute(self) -> float:
        return float(self.state[0] / self.state[1].clamp(min=1))


def _peaks(heatmaps: torch.Tensor) -> torch.Tensor:
    b, k, h, w = heatmaps.shape
    idx = heatmaps.flatten(2).argmax(-1)
    return torch.stack([idx // w, idx % w], dim=-1).double()


def _heatmaps(target):
    return target[0] if isinstance(target, (tuple, list)) else target


def _resize_to(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if output.shape[-2:] != target.shape[-2:]:
        output = F.interpolate(output, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return output


@dataclass
class Task:
    """A loss, a metric factory and a target check for one kind of problem."""

    name: str
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    make_metric: Callable[[], Metric]
    check_target: Optional[Callable[[torch.Tensor, int], None]] = None


def _seg_check(ignore_index: int) -> Callable[[torch.Tensor, int], None]:
    def check(target: torch.Tensor, num_classes: int) -> None:
        valid = target[target != ignore_index]
        if valid.numel() and (int(valid.max()) >= num_classes or int(valid.min()) < 0):
            bad = int(valid.max()) if int(valid.max()) >= num_classes else int(valid.min())
            raise ValueError(
                f"segmentation label {bad} is outside the model's {num_classes} classes (0..{num_classes - 1}, "
                f"ignore index {ignore_index}); build the supernet with num_classes={int(valid.max()) + 1} or "
                "fix the masks"
            )

    return check


def _cls_check(target: torch.Tensor, num_classes: int) -> None:
    if target.numel() and (int(target.max()) >= num_classes or int(target.min()) < 0):
        raise ValueError(
            f"class label {int(target.max())} is outside the model's {num_classes} classes; "
            f"build the supernet with num_classes={int(target.max()) + 1}"
        )


def _pose_check(target, num_classes: int) -> None:
    heat = _heatmaps(target)
    if heat.shape[1] != num_classes:
        raise ValueError(
            f"the targets have {heat.shape[1]} heatmaps but the model predicts {num_classes}; "
            f"build the supernet with num_classes={heat.shape[1]}"
        )


def _pose_loss(output: torch.Tensor, target) -> torch.Tensor:
    if isinstance(target, (tuple, list)):  # (heatmaps, per-keypoint weights)
        heat, weight = target
        weight = weight.reshape(weight.shape[0], weight.shape[1], 1, 1)
        return 0.5 * ((output - heat) ** 2 * weight).mean()
    return 0.5 * F.mse_loss(output, target)


def get_task(name: str, ignore_index: int = 255, label_smoothing: float = 0.0, num_classes: int = 0) -> Task:
    """The preset for ``'seg'``, ``'pose'`` or ``'cls'``."""
    if name == "seg":
        return Task(
            "seg",
            loss=lambda out, t: F.cross_entropy(_resize_to(out, t), t, ignore_index=ignore_index),
            make_metric=lambda: MeanIoU(num_classes, ignore_index),
            check_target=_seg_check(ignore_index),
        )
    if name == "pose":
        return Task("pose", loss=_pose_loss, make_metric=KeypointAccuracy, check_target=_pose_check)
    if name == "cls":
        return Task(
            "cls",
            loss=lambda out, t: F.cross_entropy(out, t, label_smoothing=label_smoothing),
            make_metric=TopK,
            check_target=_cls_check,
        )
    raise ValueError(f"unknown task {name!r}; use 'seg', 'pose' or 'cls'")
