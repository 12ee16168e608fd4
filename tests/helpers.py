"""Helpers shared by the test modules (importable because pytest puts tests/ on sys.path)."""

import hrnas


def tiny_arch(task: str = "seg", transformers: bool = True, tokens: int = 4) -> hrnas.Arch:
    """A small architecture with uneven widths, empty paths and transformers, for protocol tests."""
    space = hrnas.get_space(f"{task}_tiny")
    arch = space.supernet(transformers=transformers, tokens=tokens)
    blocks = []
    for i, b in enumerate(arch.blocks()):
        # vary the widths; every 5th block loses all its paths, every 3rd loses its 5x5 path
        chans = tuple(
            0 if (i % 5 == 4) or (k == 5 and i % 3 == 0) else max(1, c // (1 + i % 4))
            for k, c in zip(b.kernels, b.channels)
        )
        blocks.append(b.replace(channels=chans))
    return arch.with_blocks(blocks)
