"""A small, deterministic search used by the resume and torchrun tests (run as a script).

    python tiny_search.py OUT_DIR [--resume] [--steps N]
Writes OUT_DIR/final_rank<r>.pt (the final arch and state dict of every rank).
"""

import argparse
import os

import torch

import hrnas
from hrnas.data import FashionMNISTScenes


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--steps", type=int, default=36)
    p.add_argument("--checkpoint-every", type=int, default=3)
    args = p.parse_args()
    train = FashionMNISTScenes("train", 256, canvas=32, seed=3, augment=True)
    val = FashionMNISTScenes("val", 32, canvas=32, seed=3)
    torch.manual_seed(0)  # the supernet's initial weights are part of what makes runs repeatable
    supernet = hrnas.create_supernet("seg", space="seg_tiny", max_tokens=4)
    budget = int(0.4 * hrnas.count_macs(supernet.arch, 32))
    result = hrnas.search(
        supernet,
        train,
        val,
        budget=budget,
        input_size=(32, 32),
        steps=args.steps,
        batch_size=8,
        shrink_every=3,
        eval_every=6,
        checkpoint_every=args.checkpoint_every,
        calib_batches=2,
        output_dir=args.out,
        resume=args.out if args.resume else None,
        progress=False,
        seed=7,
        threads=1,  # bit-identical runs need a fixed thread count (kernels sum in another order on more threads)
    )
    rank = int(os.environ.get("RANK", "0"))
    state = {k: v.cpu() for k, v in result.model.state_dict().items()}
    torch.save({"arch": result.arch.to_dict(), "state": state}, os.path.join(args.out, f"final_rank{rank}.pt"))


if __name__ == "__main__":
    main()
