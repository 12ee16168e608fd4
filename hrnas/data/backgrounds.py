"""Real photographs used as textured backgrounds: the sample images that scikit-image ships.

scikit-image bundles a few photographs inside its wheel (no download). Only those whose docstrings say CC0 or
public domain are used. The files are read straight from the installed package with Pillow, without importing
scikit-image itself (its import is slow and pulls SciPy), so only the package's files are needed.

Backgrounds never leak between splits: training scenes crop from the top half of every photograph, validation
and test scenes from the bottom half.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from ._errors import DataNotFoundError

__all__ = ["BACKGROUND_PHOTOS", "load_backgrounds"]

# file name in skimage/data -> licence, as its scikit-image docstring states it
BACKGROUND_PHOTOS: dict[str, str] = {
    "brick.png": "CC0",
    "grass.png": "CC0",
    "gravel.png": "CC0",
    "camera.png": "CC0",
    "coffee.png": "CC0",
    "chelsea.png": "CC0",
    "cell.png": "CC0",
    "astronaut.png": "public domain",
    "rocket.jpg": "public domain",
    "hubble_deep_field.jpg": "public domain",
}
ENV_VAR = "HRNAS_BACKGROUNDS_DIR"
_INSTALL = "pip install scikit-image  (or: pip install 'hrnas[data]')"


def _photo_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError(
            f"textured backgrounds need scikit-image's bundled photographs, and scikit-image is not installed; "
            f"install it with `{_INSTALL}` or set {ENV_VAR} to a folder holding {', '.join(BACKGROUND_PHOTOS)}."
        )
    return Path(spec.submodule_search_locations[0]) / "data"


def load_backgrounds(split: str, data_dir: str | os.PathLike[str] | None = None) -> list[torch.Tensor]:
    """The background photographs of one split as grey float tensors of shape (H, W) in [0, 1].

    ``'train'`` gets the top half of every photograph, ``'val'`` and ``'test'`` the bottom half (at least 150
    rows each). ``data_dir`` (or ``$HRNAS_BACKGROUNDS_DIR``) overrides scikit-image's data folder.
    """
    from PIL import Image  # Pillow comes with matplotlib and torchvision; imported here to keep `hrnas` light

    if split not in ("train", "val", "test"):
        raise ValueError(f"background split must be 'train', 'val' or 'test', got {split!r}.")
    directory = _photo_dir(data_dir)
    out = []
    for name in BACKGROUND_PHOTOS:
        path = directory / name
        if not path.is_file():
            raise DataNotFoundError(
                f"background photograph {path} was not found; install scikit-image with `{_INSTALL}` or set "
                f"{ENV_VAR} to a folder holding {', '.join(BACKGROUND_PHOTOS)}."
            )
        with Image.open(path) as img:
            grey = img.convert("L")
            pixels = torch.frombuffer(bytearray(grey.tobytes()), dtype=torch.uint8).reshape(grey.height, grey.width)
        half = pixels.shape[0] // 2
        part = pixels[:half] if split == "train" else pixels[half:]
        out.append(part.float().div_(255.0).contiguous())
    return out
