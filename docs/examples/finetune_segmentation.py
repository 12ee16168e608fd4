"""Fine-tune an hrnas zoo model for semantic segmentation on Fashion-MNIST scenes.

Data: ``hrnas.data.FashionMNISTScenes``: several Fashion-MNIST items pasted on a black canvas. The item pixels
and classes are real Fashion-MNIST; the masks are derived from those pixels (11 classes: background + the 10
clothing classes); the layout is synthetic. It needs Debian's ``dataset-fashion-mnist`` package. It is a quick,
reproducible segmentation task, not evidence about real-world segmentation quality.

Weights: ``--pretrained`` starts from the model's default weights tag. None is published yet: ``hrnas zoo-build
NAME`` builds it into ``$HRNAS_WEIGHTS_DIR`` (default ``~/.cache/hrnas/weights``), where ``create_model`` finds it
(``hrnas list`` shows where each tag is). Without it, the model starts from random initialisation, as ``--quick``
does.

    python docs/examples/finetune_segmentation.py --quick      # under a minute on 2 CPU cores
    python docs/examples/finetune_segmentation.py              # 3 epochs of 4,000 scenes
    python docs/examples/finetune_segmentation.py --model hrnas_supernet_seg --image-size 128
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import hrnas
from hrnas.data import FashionMNISTScenes
from hrnas.data.scenes import NUM_CLASSES
from hrnas.searching import get_task


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="hrnas_supernet_tiny_seg", help="any dense hrnas model (hrnas list)")
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="start from the model's default weights tag (none is published: `hrnas zoo-build NAME` builds it)",
    )
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--train-size", type=int, default=4000, help="training scenes")
    p.add_argument("--val-size", type=int, default=500, help="validation scenes")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--output-dir", default="runs/finetune_segmentation")
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

    train = FashionMNISTScenes("train", args.train_size, canvas=args.image_size, augment=True, seed=args.seed)
    val = FashionMNISTScenes("val", args.val_size, canvas=args.image_size, seed=args.seed)
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True)
    val_loader = DataLoader(val, batch_size=args.batch_size)

    # num_classes replaces the classifier (timm keeps the pretrained backbone and drops a head of another size).
    model = hrnas.create_model(args.model, pretrained=args.pretrained, num_classes=NUM_CLASSES)
    # hrnas networks keep the paper's BatchNorm momentum (0.01), made for runs of hundreds of epochs; in a short
    # fine-tuning run the running statistics would lag far behind the weights, so use PyTorch's default
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.1
    macs = hrnas.count_macs(model.arch, (args.image_size, args.image_size))
    print(f"{args.model}: {hrnas.count_params(model.arch) / 1e6:.3f} M params, {macs / 1e6:.1f} MMACs per image")
    print("starting from", "its pretrained weights" if args.pretrained else "random initialisation")

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * len(train_loader)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.2)

    step = 0
    for epoch in range(args.epochs):
        train.set_epoch(epoch)  # a different (reproducible) flip per epoch
        model.train()
        for images, masks in train_loader:
            logits = model(images)  # dense models return class scores at stride 4: (B, classes, H/4, W/4)
            logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
            loss = F.cross_entropy(logits, masks)
            optimizer.zero_grad()
            loss.backward()
            # an untrained dense head starts with large logits: clipping keeps the first steps stable
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            step += 1
            if step % 25 == 0 or step == steps:
                print(f"epoch {epoch} step {step}/{steps} loss {loss.item():.4f}")
        print(f"epoch {epoch}: validation mIoU {evaluate(model, val_loader):.4f}")

    # A model directory: config.json (with the architecture) + model.safetensors; load it back by path.
    hrnas.save_pretrained(model, args.output_dir)
    again = hrnas.create_model(args.output_dir).eval()
    model.eval()
    images, _ = next(iter(val_loader))
    with torch.no_grad():
        assert torch.allclose(model(images), again(images), atol=1e-5)
    print(f"saved to {args.output_dir}; reloaded with hrnas.create_model({args.output_dir!r})")
    print(f"done in {time.perf_counter() - start:.0f} s")


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader) -> float:
    """Mean IoU over the classes present, with the search's own metric (hrnas.searching.get_task)."""
    model.eval()
    metric = get_task("seg", num_classes=NUM_CLASSES).make_metric()
    for images, masks in loader:
        metric.update(model(images), masks)  # the metric upsamples the logits to the mask size
    return metric.compute()


if __name__ == "__main__":
    main()
