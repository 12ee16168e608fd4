"""Fine-tune an hrnas backbone for keypoint heatmaps, through timm's ``features_only`` interface.

Data: there is no human-pose data set that installs from Debian or PyPI, so this example makes a keypoint task
from Fashion-MNIST scenes (``hrnas.data.FashionMNISTScenes``): the item pixels and classes are real
Fashion-MNIST, the layout is synthetic. Keypoint ``c`` is the centre of the scene's item of class ``c`` (the
centre of its pasted box, known exactly from ``FashionMNISTScenes.layout``), so there are 10 keypoint types;
one that is absent from a scene, or appears twice, has weight 0 (as an invisible joint in COCO). Targets are
Gaussian heatmaps at stride 4, as HRNet-style pose heads use. It exercises the same code path as human pose
(heatmaps, visibility weights, PCK), not a claim about pose accuracy.

Model: ``timm.create_model(name, features_only=True)`` gives the four HR branches (strides 4, 8, 16, 32); a
small head upsamples them to stride 4, concatenates them, and predicts one heatmap per keypoint.

    python docs/examples/finetune_keypoints.py --quick    # under a minute on 2 CPU cores
    python docs/examples/finetune_keypoints.py            # 4 epochs of 4,000 scenes
    python docs/examples/finetune_keypoints.py --backbone hrnas_supernet_pose --image-size 128
"""

from __future__ import annotations

import argparse
import os
import time

import timm
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import hrnas  # noqa: F401  (registers the hrnas_* models with timm)
from hrnas.data import FashionMNISTScenes
from hrnas.data.fashion_mnist import NUM_CLASSES as NUM_KEYPOINTS
from hrnas.searching import get_task

STRIDE = 4  # heatmaps at a quarter of the input size, like the HR-NAS pose models' output


class SceneKeypoints(Dataset):
    """``(image, (heatmaps, weights))`` items: one Gaussian per item-class centre, weight 0 where absent."""

    def __init__(self, scenes: FashionMNISTScenes, sigma: float = 1.5) -> None:
        self.scenes, self.sigma = scenes, sigma
        h, w = scenes[0][0].shape[-2:]
        self.out_h, self.out_w = h // STRIDE, w // STRIDE

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int):
        image, _ = self.scenes[index]
        heatmaps = torch.zeros(NUM_KEYPOINTS, self.out_h, self.out_w)
        weights = torch.zeros(NUM_KEYPOINTS)
        items = self.scenes.layout(index)
        ys = torch.arange(self.out_h, dtype=torch.float32)[:, None]
        xs = torch.arange(self.out_w, dtype=torch.float32)[None, :]
        for item in items:
            if sum(other.label == item.label for other in items) != 1:
                continue  # two items of one class: ambiguous, left with weight 0
            # box centre in heatmap pixels (pixel centres at integer coordinates)
            cy = (item.top + item.size / 2) / STRIDE - 0.5
            cx = (item.left + item.size / 2) / STRIDE - 0.5
            heatmaps[item.label] = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * self.sigma**2))
            weights[item.label] = 1.0
        return image, (heatmaps, weights)


class HeatmapNet(nn.Module):
    """A timm ``features_only`` backbone plus a small head: all branches at stride 4, concatenated, 1x1 convs."""

    def __init__(self, backbone: str, num_keypoints: int, pretrained: bool = False, hidden: int = 64) -> None:
        super().__init__()
        # out_indices 1-4: the raw HR branches at strides 4, 8, 16, 32 (index 0 is the stem at stride 2)
        self.backbone = timm.create_model(backbone, pretrained=pretrained, features_only=True, out_indices=(1, 2, 3, 4))
        channels = sum(self.backbone.feature_info.channels())
        self.head = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_keypoints, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        size = feats[0].shape[-2:]
        feats = [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]]
        return self.head(torch.cat(feats, dim=1))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="hrnas_supernet_tiny_seg", help="any hrnas model (hrnas list)")
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="start the backbone from its default weights tag (none is published: `hrnas zoo-build NAME` builds it)",
    )
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--val-size", type=int, default=500)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--output-dir", default="runs/finetune_keypoints", help="where to save the trained weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    args = p.parse_args()
    if args.quick:
        args.train_size, args.val_size, args.epochs, args.batch_size = 640, 96, 1, 16
    return args


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    # 1 to 3 items per scene: most keypoints are visible once, a few are ambiguous (weight 0)
    scenes = dict(canvas=args.image_size, items=(1, 3), seed=args.seed)
    train = SceneKeypoints(FashionMNISTScenes("train", args.train_size, **scenes))
    val = SceneKeypoints(FashionMNISTScenes("val", args.val_size, **scenes))
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True)
    val_loader = DataLoader(val, batch_size=args.batch_size)

    model = HeatmapNet(args.backbone, NUM_KEYPOINTS, pretrained=args.pretrained)
    print(
        f"backbone {args.backbone}: features {model.backbone.feature_info.channels()} "
        f"at strides {model.backbone.feature_info.reduction()}"
    )
    print("backbone starting from", "its pretrained weights" if args.pretrained else "random initialisation")
    # hrnas networks keep the paper's BatchNorm momentum (0.01), made for runs of hundreds of epochs; in a short
    # fine-tuning run the running statistics would lag far behind the weights, so use PyTorch's default
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.1
    task = get_task("pose")  # heatmap MSE with per-keypoint weights, and PCK (HRNet's keypoint accuracy)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * len(train_loader)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.2)

    step = 0
    for epoch in range(args.epochs):
        model.train()
        for images, target in train_loader:
            loss = task.loss(model(images), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % 25 == 0 or step == steps:
                print(f"epoch {epoch} step {step}/{steps} loss {loss.item():.6f}")
        print(f"epoch {epoch}: validation PCK {evaluate(model, val_loader, task):.4f}")

    # the head is not an hrnas model, so this saves a plain state dict (load it with weights_only=True)
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, "heatmap_net.pt")
    torch.save(model.state_dict(), path)
    print(f"saved the weights to {path}")
    print(f"done in {time.perf_counter() - start:.0f} s")


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, task) -> float:
    """Share of visible keypoints whose predicted peak is within half a tenth of the heatmap size."""
    model.eval()
    metric = task.make_metric()
    for images, target in loader:
        metric.update(model(images), target)
    return metric.compute()


if __name__ == "__main__":
    main()
