"""Search a segmentation architecture on your own data, stored in hrnas's folder format.

The folder format (read by ``hrnas.data.SegmentationFolder``)::

    DATA/train/images/<name>.png|jpg    DATA/train/masks/<name>.png    (class indices, 255 = ignore)
    DATA/val/images/<name>.png|jpg      DATA/val/masks/<name>.png

With ``--data DATA`` the script searches on your folder. Without it, it first writes such a folder from
Fashion-MNIST scenes (real Fashion-MNIST item pixels and classes, masks derived from the pixels, synthetic
layouts; 11 classes; Debian's ``dataset-fashion-mnist`` package) with ``hrnas.data.write_segmentation_folder``,
so you can see the format and run the example as it is.

Then it runs ``hrnas.search`` on the ``seg_tiny`` supernet (with transformers) down to ``--budget`` MACs at
``--image-size``, prints the result, reads ``history.jsonl`` and loads the saved model back.

    python docs/examples/search_custom_folder.py --quick          # about a minute on 2 CPU cores
    python docs/examples/search_custom_folder.py                  # about 10 minutes
    python docs/examples/search_custom_folder.py --data my_data --num-classes 5 --budget 30M
    python docs/examples/search_custom_folder.py --resume         # continue a killed run
    torchrun --standalone --nproc_per_node=2 docs/examples/search_custom_folder.py --quick   # 2 processes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch

import hrnas
from hrnas.data import FashionMNISTScenes, SegmentationFolder, write_segmentation_folder
from hrnas.data.fashion_mnist import MEAN, STD
from hrnas.data.scenes import NUM_CLASSES as SCENE_CLASSES


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="a folder with train/ and val/ in the folder format (default: write one)")
    p.add_argument("--num-classes", type=int, default=SCENE_CLASSES, help="classes in your masks")
    p.add_argument("--space", default="seg_tiny", help="search-space preset (hrnas spaces lists them)")
    p.add_argument("--image-size", type=int, default=64, help="images are resized to this; costs count here too")
    p.add_argument("--budget", default="20M", help="MACs ceiling at --image-size, e.g. 20M or 1.4G")
    p.add_argument("--train-size", type=int, default=3000, help="scenes to write when --data is not given")
    p.add_argument("--val-size", type=int, default=500)
    p.add_argument("--epochs", type=float, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--output-dir", default="runs/search_custom_folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir from its checkpoint")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    args = p.parse_args()
    if args.quick:
        args.train_size, args.val_size, args.epochs, args.batch_size = 256, 64, 2, 16
    return args


def has_images(root: Path, train_size: int, val_size: int) -> bool:
    """Whether ``root`` already holds the example folder at these sizes (written by an earlier run)."""
    counts = [len(list((root / split / "masks").glob("*.png"))) for split in ("train", "val")]
    return counts == [train_size, val_size]


def write_example_folder(root: Path, train_size: int, val_size: int, image_size: int) -> None:
    """Fashion-MNIST scenes as PNG files: grey images and class-index masks."""
    shutil.rmtree(root, ignore_errors=True)
    for split, n in (("train", train_size), ("val", val_size)):
        scenes = FashionMNISTScenes(split, n, canvas=image_size, channels=1)
        images, masks = [], []
        for i in range(n):
            image, mask = scenes[i]
            # undo the dataset's normalisation to get the 0-255 pixels back
            images.append((image[0] * STD + MEAN).mul(255).round().clamp(0, 255).to(torch.uint8))
            masks.append(mask)
        write_segmentation_folder(root / split, images, masks)
    print(f"wrote {train_size} + {val_size} images and masks to {root}/train and {root}/val")


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    out = Path(args.output_dir)
    data = Path(args.data) if args.data else out / "data"
    # Under torchrun, search() joins the process group itself; here it is joined first so that only rank 0
    # writes the example data while the others wait for it.
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = torch.distributed.get_rank() if distributed else 0
    if rank == 0 and not args.data and not has_images(data, args.train_size, args.val_size):
        write_example_folder(data, args.train_size, args.val_size, args.image_size)
    if distributed:
        torch.distributed.barrier()

    size = (args.image_size, args.image_size)
    # num_classes makes the reader check every mask: a value >= num_classes (other than 255) is an error
    train = SegmentationFolder(data / "train", args.num_classes, size=size, augment=True, seed=0)
    val = SegmentationFolder(data / "val", args.num_classes, size=size)
    if rank == 0:
        print(f"{len(train)} training and {len(val)} validation images from {data}")

    supernet = hrnas.create_supernet("seg", num_classes=args.num_classes, space=args.space)
    settings = dict(
        budget=args.budget,  # MACs at input_size; the run ends inside [0.9, 1.0] x budget
        input_size=size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=0.1,
        output_dir=str(out),  # checkpoint.pt, history.jsonl, plots, config.yaml and the model go here
        resume=str(out) if args.resume else None,
    )
    if args.quick:
        settings.update(eval_every=8, calib_batches=2, progress=False)
    result = hrnas.search(supernet, train, val, **settings)  # under torchrun: every rank gets the same result
    if rank != 0:
        return
    print(result.summary())

    # history.jsonl: one JSON object per evaluation
    print("\nstep   MMACs   params     rho        metric")
    with open(out / "history.jsonl") as f:
        for line in f:
            row = json.loads(line)
            metric = "" if row["metric"] is None else f"{row['metric']:.4f}"
            print(f"{row['step']:5d} {row['macs'] / 1e6:7.2f} {row['params']:8d} {row['rho']:10.3g}   {metric}")

    model = hrnas.create_model(str(out)).eval()  # a plain HRNASNet with the searched architecture and weights
    with torch.no_grad():
        logits = model(val[0][0][None])
    print(f"\nreloaded {out}: output {tuple(logits.shape)}; plots in {out}/search.png and {out}/arch.png")
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    try:
        main()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
