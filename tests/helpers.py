"""Helpers shared by the test modules (importable because pytest puts tests/ on sys.path)."""

import torch

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


def realistic(name, size=(64, 64)):
    """A model whose BatchNorm statistics come from data (as after training), so activations are normalised."""
    from hrnas.searching.ema import calibrate_bn

    kwargs = {"arch": tiny_arch()} if name == "hrnas_custom" else {}
    model = hrnas.create_model(name, **kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    calibrate_bn(model, [torch.randn(4, 3, *size) for _ in range(2)])
    return model.eval()


def close(out, ref, rtol=1e-4):
    """Equal relative to the output's scale: untrained heads produce logits in the tens to hundreds."""
    torch.testing.assert_close(out, ref, atol=rtol * max(1.0, ref.abs().max().item()), rtol=rtol)


def check_export(fmt, suffix, tmp_path):
    """``hrnas.export`` in ``fmt`` loads back and computes the model's function at two input sizes."""
    model = realistic("hrnas_supernet_tiny_cls")
    path = hrnas.export(model, tmp_path / f"m.{suffix}", format=fmt, input_size=(64, 64))
    loaded = torch.jit.load(str(path)) if fmt == "torchscript" else torch.export.load(str(path)).module()
    for shape in [(1, 3, 64, 64), (3, 3, 97, 161)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            close(loaded(x), model(x))
