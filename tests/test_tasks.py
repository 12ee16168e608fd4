"""Task presets: losses and metrics on hand-made predictions, and a keypoint search end to end."""

import pytest
import torch
from torch.utils.data import TensorDataset

import hrnas
from hrnas.searching import get_task


def test_mean_iou_on_a_known_confusion():
    task = get_task("seg", num_classes=3)
    metric = task.make_metric()
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 255]]])  # (1, 2, 4) with two ignored pixels
    pred = torch.tensor([[[0, 1, 1, 1], [2, 0, 0, 1]]])
    logits = torch.nn.functional.one_hot(pred, 3).permute(0, 3, 1, 2).float()
    metric.update(logits, target)
    # class 0: inter 1, union 3; class 1: inter 2, union 3; class 2: inter 1, union 2
    assert metric.compute() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    loss = task.loss(logits * 10, target)
    assert loss > 0 and torch.isfinite(loss)


def test_top1_and_label_checks():
    task = get_task("cls")
    metric = task.make_metric()
    metric.update(torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), torch.tensor([1, 1, 1]))
    assert metric.compute() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="class label 7 is outside the model's 5 classes"):
        task.check_target(torch.tensor([1, 7]), 5)


def _heatmaps(points, h=16, w=12, sigma=1.0):
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    return torch.stack([torch.exp(-((ys - y) ** 2 + (xs - x) ** 2) / (2 * sigma**2)) for y, x in points])


def test_keypoint_accuracy():
    task = get_task("pose")
    target = _heatmaps([(3, 4), (10, 2), (8, 8)])[None]
    metric = task.make_metric()
    metric.update(target.clone(), target)
    assert metric.compute() == 1.0
    shifted = _heatmaps([(3, 4), (10, 9), (8, 8)])[None]  # one keypoint 7 px off (threshold 0.5 * 1.6 px)
    metric = task.make_metric()
    metric.update(shifted, target)
    assert metric.compute() == pytest.approx(2 / 3)
    assert task.loss(target, target) == 0
    with pytest.raises(ValueError, match="the targets have 3 heatmaps but the model predicts 17"):
        task.check_target(target, 17)


@pytest.mark.search
def test_keypoint_search_runs_end_to_end():
    torch.manual_seed(0)
    n = 32
    images = torch.randn(n, 3, 64, 48)
    points = [[(int(torch.randint(2, 14, ())), int(torch.randint(2, 10, ()))) for _ in range(17)] for _ in range(n)]
    heat = torch.stack([_heatmaps(p) for p in points])
    data = TensorDataset(images, heat)
    supernet = hrnas.create_supernet("pose", space="pose_tiny", transformers=False)
    budget = int(0.5 * hrnas.count_macs(supernet.arch, (64, 48)))
    res = hrnas.search(
        supernet,
        data,
        data,
        budget=budget,
        input_size=(64, 48),
        steps=12,
        batch_size=8,
        calib_batches=2,
        progress=False,
        lr=1e-3,
        optimizer="adamw",
    )
    assert 0.9 * budget <= res.macs <= budget
    assert res.metric_name == "PCK" and 0 <= res.metric <= 1
    assert res.model(images[:2]).shape == (2, 17, 16, 12)
