"""Fine-tune an hrnas zoo model for image classification on Fashion-MNIST, with timm's training tools.

Data: ``hrnas.data.FashionMNIST``: the real Fashion-MNIST images and labels (Zalando SE, MIT licence) from Debian's
``dataset-fashion-mnist`` package, 10 classes, grey images resized to ``--image-size``. The model takes them as
one channel (``in_chans=1``: with pretrained weights, timm sums the stem's RGB filters into one).

Weights: ``--pretrained`` starts from the model's default weights tag. None is published yet: ``hrnas zoo-build
NAME`` builds it into ``$HRNAS_WEIGHTS_DIR`` (default ``~/.cache/hrnas/weights``), where ``create_model`` finds it
(``hrnas list`` shows where each tag is). Without it, the model starts from random initialisation, as ``--quick``
does.

    python docs/examples/finetune_classification.py --quick   # under a minute on 2 CPU cores
    python docs/examples/finetune_classification.py           # 5 epochs of 1,000 images per class
    python docs/examples/finetune_classification.py --model hrnas_cls_a --image-size 64
"""

from __future__ import annotations

import argparse
import time

import timm
import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch.utils.data import DataLoader

import hrnas
from hrnas.data import FashionMNIST
from hrnas.data.fashion_mnist import NUM_CLASSES


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="hrnas_supernet_tiny_cls", help="any hrnas classification model")
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="start from the model's default weights tag (none is published: `hrnas zoo-build NAME` builds it)",
    )
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--per-class", type=int, default=1000, help="training images per class (6,000 = all)")
    p.add_argument("--val-per-class", type=int, default=200, help="test images per class (1,000 = all)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--layer-decay", type=float, default=0.8, help="timm layer-wise lr decay (1: off)")
    p.add_argument("--output-dir", default="runs/finetune_classification")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    args = p.parse_args()
    if args.quick:
        args.per_class, args.val_per_class, args.epochs, args.batch_size = 64, 20, 1, 32
    return args


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    start = time.perf_counter()

    size = args.image_size
    train = FashionMNIST("train", image_size=size, channels=1, limit=args.per_class, augment=True, seed=args.seed)
    val = FashionMNIST("test", image_size=size, channels=1, limit=args.val_per_class)
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True)
    val_loader = DataLoader(val, batch_size=256)

    # timm.create_model works too once hrnas is imported; hrnas.create_model also accepts model directories.
    model = timm.create_model(args.model, pretrained=args.pretrained, num_classes=NUM_CLASSES, in_chans=1)
    # hrnas networks keep the paper's BatchNorm momentum (0.01), made for runs of hundreds of epochs; in a short
    # fine-tuning run the running statistics would lag far behind the weights, so use PyTorch's default
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.1
    macs = hrnas.count_macs(model.arch, (size, size), in_chans=1)
    print(f"{args.model}: {hrnas.count_params(model.arch, 1) / 1e6:.3f} M params, {macs / 1e6:.2f} MMACs per image")
    print("starting from", "its pretrained weights" if args.pretrained else "random initialisation")

    # timm's optimizer factory reads the model's no_weight_decay() and group_matcher() (for layer decay)
    optimizer = create_optimizer_v2(
        model, "adamw", lr=args.lr, weight_decay=0.05, layer_decay=args.layer_decay if args.layer_decay < 1 else None
    )
    steps = args.epochs * len(train_loader)
    # t_in_epochs=False: the schedule counts optimizer steps (step_update), not epochs
    schedule = CosineLRScheduler(
        optimizer, t_initial=steps, warmup_t=max(1, steps // 10), warmup_lr_init=1e-5, t_in_epochs=False
    )

    step = 0
    for epoch in range(args.epochs):
        train.set_epoch(epoch)
        model.train()
        for images, labels in train_loader:
            loss = F.cross_entropy(model(images), labels, label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            schedule.step_update(step)
            if step % 25 == 0 or step == steps:
                print(f"epoch {epoch} step {step}/{steps} loss {loss.item():.4f}")
        print(f"epoch {epoch}: test top-1 {evaluate(model, val_loader):.4f} on {len(val)} images")

    hrnas.save_pretrained(model, args.output_dir)
    print(f"saved to {args.output_dir}; load it with hrnas.create_model({args.output_dir!r})")
    print(f"done in {time.perf_counter() - start:.0f} s")


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    for images, labels in loader:
        correct += int((model(images).argmax(1) == labels).sum())
        total += len(labels)
    return correct / max(1, total)


if __name__ == "__main__":
    main()
