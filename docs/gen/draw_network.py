"""Draw an HR-NAS network from its ``hrnas.Arch``: branches as rows, stages as columns, every block as a bar.

Each block is a bar whose outline is the block at full width (``4 x in_chs`` hidden channels per kernel, the
paper's supernet) and whose coloured fill is what the architecture keeps, split by kernel size. Fusion edges
are drawn as lines from the branch they read to the branch they write. The docs build calls :func:`draw` (see
``hooks.py``); run this file to write the picture yourself::

    python docs/gen/draw_network.py hrnas_cls_a network.png
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import FancyBboxPatch, Rectangle  # noqa: E402

import hrnas  # noqa: E402

KERNEL_COLOURS = {3: "tab:blue", 5: "tab:green", 7: "tab:red"}
FULL_EXPAND = 4  # hidden channels per kernel path of the paper's supernet, per input channel
BAR_W = 0.5  # width of a block's bar, in column units
ROW_H = 0.8  # height of a full-width block's bar, in row units


def _bar(ax, x: float, y: float, block: hrnas.BlockSpec, width: float = BAR_W) -> None:
    """One block centred at (x, y): full-width outline, kept channels stacked by kernel, token marker."""
    full = FULL_EXPAND * block.in_chs * len(block.kernels)
    bottom = y - ROW_H / 2
    ax.add_patch(Rectangle((x - width / 2, bottom), width, ROW_H, fill=False, lw=0.6, ec="0.55"))
    if block.hidden == 0:
        ax.plot([x - width / 2, x + width / 2], [y, y], color="0.35", lw=1.2)  # residual only
    level = bottom
    for k, c in zip(block.kernels, block.channels):
        if c:
            h = ROW_H * min(1.0, c / full)
            ax.add_patch(Rectangle((x - width / 2, level), width, h, color=KERNEL_COLOURS.get(k, "tab:purple"), lw=0))
            level += h
    if block.tokens:
        ax.plot([x], [y + ROW_H / 2 + 0.07], marker="v", color="black", ms=3)


def draw(arch: hrnas.Arch, title: str = "", dpi: int = 110) -> bytes:
    """PNG bytes of a picture of ``arch``."""
    n_rows = arch.num_branches
    # columns: stem, then per stage one fusion column and one column per block of its longest branch, then the head
    columns: list[tuple[str, int]] = [("stem", 0)]
    for s, stage in enumerate(arch.stages):
        columns.append(("fuse", s))
        columns += [("blocks", s)] * max((len(b) for b in stage.branches), default=0)
    columns.append(("head", 0))
    fig_w = max(8.0, 0.3 * len(columns) + 1.5)
    fig, ax = plt.subplots(figsize=(fig_w, 1.0 * n_rows + 1.3))
    ax.set_xlim(-2.4, len(columns) + 0.9)
    ax.set_ylim(-n_rows + 0.35, 1.05)
    ax.axis("off")

    def row_y(branch: int) -> float:
        return -branch

    for b in range(n_rows):
        ax.axhline(row_y(b), color="0.92", lw=6, zorder=0)
        ax.text(-2.3, row_y(b), f"stride {4 * 2**b}", va="center", fontsize=9)
    # stem
    ax.add_patch(FancyBboxPatch((0 - 0.3, -0.3), 0.6, 0.6, boxstyle="round,pad=0.02", fc="0.85", ec="0.4", lw=0.6))
    ax.text(0, 0, "stem", ha="center", va="center", fontsize=7, rotation=90)
    ax.text(0, -0.45, f"3→{arch.stem[0]}\n→{arch.stem[1]}", ha="center", va="top", fontsize=7)

    col = 1
    prev_x = 0.3  # right edge of the previous column's glyphs, for fusion lines
    for s, stage in enumerate(arch.stages):
        x = float(col)
        ax.text(x, 0.62, f"stage {s}\nfuse", ha="center", fontsize=8)
        # fusion: output branch dst sums edges from sources dst-1 (stride 2), dst and dst+1 (then upsampled)
        for edge in stage.fuse:
            offset = {-1: -0.27, 0: 0.0, 1: 0.27}.get(edge.src - edge.dst, 0.0)
            ax.plot([prev_x, x + offset - 0.1], [row_y(edge.src), row_y(edge.dst)], color="0.45", lw=0.5, zorder=1)
            _bar(ax, x + offset, row_y(edge.dst), edge.block, width=0.2)
        col += 1
        n_blocks = max((len(b) for b in stage.branches), default=0)
        for j in range(n_blocks):
            for b, blocks in enumerate(stage.branches):
                if j < len(blocks):
                    _bar(ax, float(col), row_y(b), blocks[j])
            col += 1
        for b in range(stage.num_branches):
            # the branch's line through this stage's blocks
            ax.plot([x + 0.35, col - 1 + BAR_W / 2], [row_y(b)] * 2, color="0.45", lw=0.5, zorder=1)
        prev_x = col - 1 + BAR_W / 2
    # head
    x = float(col)
    head = arch.head
    if isinstance(head, hrnas.DenseHeadSpec):
        label = f"dense head\nconcat at stride 4\n→ block → {head.block.out_chs}\n→ 1x1 → {head.num_classes}"
    else:
        label = f"cls head\n{'/'.join(str(b.out_chs) for b in head.incre)}\n→ {head.final_chs}\n→ {head.num_classes}"
    top, bottom = 0.4, row_y(n_rows - 1) - 0.4
    ax.add_patch(
        FancyBboxPatch((x - 0.35, bottom), 1.2, top - bottom, boxstyle="round,pad=0.02", fc="0.9", ec="0.4", lw=0.6)
    )
    ax.text(x + 0.25, (top + bottom) / 2, label, ha="center", va="center", fontsize=7)
    for b in range(n_rows):
        ax.plot([prev_x, x - 0.35], [row_y(b)] * 2, color="0.45", lw=0.5, zorder=1)

    handles = [Rectangle((0, 0), 1, 1, color=c) for c in KERNEL_COLOURS.values()]
    labels = [f"{k}x{k} channels" for k in KERNEL_COLOURS]
    handles.append(Rectangle((0, 0), 1, 1, fill=False, ec="0.55"))
    labels.append(f"full width ({FULL_EXPAND} x in per kernel)")
    handles.append(Line2D([0], [0], color="0.35", lw=1.2))
    labels.append("no channel left: residual only")
    ax.legend(handles, labels, loc="upper left", fontsize=8, ncol=3, frameon=False, bbox_to_anchor=(0.0, 0.0))
    summary = (
        f"{arch.num_branches} branches, {len(arch.stages)} stages, {len(arch.blocks())} blocks, "
        f"{sum(b.hidden for b in arch.blocks())} hidden channels"
    )
    if any(b.tokens for b in arch.blocks()):
        summary += ", ▼ = transformer"
    ax.set_title(f"{title}\n{summary}" if title else summary, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a registered model name (hrnas list), a model directory or an arch JSON file")
    parser.add_argument("out", help="PNG file to write")
    args = parser.parse_args(argv)
    if args.model.endswith(".json"):
        arch, title = hrnas.Arch.load(args.model), args.model
    else:
        arch, title = hrnas.create_model(args.model).arch, args.model
    with open(args.out, "wb") as f:
        f.write(draw(arch, title))


if __name__ == "__main__":
    main()
