"""The textured proxy tasks (`hrnas.data.textured`): real items and photographs, derived masks and keypoints.

They need the Fashion-MNIST files and scikit-image's bundled photographs; tests that read them are skipped where
either is missing (CI installs both).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from hrnas.data import DataNotFoundError, resolve_data_dir
from hrnas.data.backgrounds import BACKGROUND_PHOTOS, load_backgrounds
from hrnas.data.textured import (
    ITEM_THRESHOLD,
    KEYPOINT_NAMES,
    MEAN,
    STD,
    TexturedFashionMNIST,
    TexturedKeypoints,
    TexturedScenes,
    keypoints_of_mask,
)

needs_data = pytest.mark.skipif(
    not (resolve_data_dir() / "t10k-images-idx3-ubyte.gz").is_file() or importlib.util.find_spec("skimage") is None,
    reason="needs Fashion-MNIST (apt-get install dataset-fashion-mnist) and scikit-image (pip install scikit-image)",
)


def _grey(image: torch.Tensor) -> torch.Tensor:
    return (image[0] * STD + MEAN) * 255.0


@needs_data
def test_backgrounds_come_from_disjoint_halves_of_real_photographs() -> None:
    train, val = load_backgrounds("train"), load_backgrounds("val")
    assert len(train) == len(val) == len(BACKGROUND_PHOTOS)
    for top, bottom in zip(train, val):
        assert min(top.shape) >= 150 and min(bottom.shape) >= 150
        assert 0.0 <= float(top.min()) and float(top.max()) <= 1.0
        assert float(top.std()) > 0.01  # a photograph, not a flat image
        assert abs(top.shape[0] - bottom.shape[0]) <= 1 and top.shape[1] == bottom.shape[1]


def test_missing_photographs_name_the_file_and_the_fix(tmp_path) -> None:
    with pytest.raises(DataNotFoundError, match="pip install scikit-image"):
        load_backgrounds("train", tmp_path)


@needs_data
def test_scenes_are_deterministic_multi_scale_and_masks_follow_item_pixels() -> None:
    data = TexturedScenes("val", 40, seed=3)
    again = TexturedScenes("val", 80, seed=3)
    sizes = []
    for index in range(40):
        image, mask = data[index]
        assert image.shape == (3, 128, 128) and mask.shape == (128, 128) and mask.dtype == torch.int64
        assert torch.equal(image, again[index][0]) and torch.equal(mask, again[index][1])
        layout = data.layout(index)
        sizes += [p.size for p in layout]
        assert set(mask.unique().tolist()) - {0} <= {p.label + 1 for p in layout}
        # the last item pasted is on top: inside its box, its label covers exactly its bright pixels
        last = layout[-1]
        box = (slice(last.top, last.top + last.size), slice(last.left, last.left + last.size))
        grey = _grey(image)[box]
        own = mask[box] == last.label + 1
        assert own.any()
        assert (grey[own] > ITEM_THRESHOLD - 1).all()
    assert min(sizes) <= 16 and max(sizes) >= 64  # small items and items a quarter of the image
    assert 3 <= len(sizes) / 40 <= 10
    # textured: the background varies (not the black canvas of FashionMNISTScenes)
    image, mask = data[0]
    assert float(_grey(image)[mask == 0].std()) > 2.0
    assert not torch.equal(TexturedScenes("val", 1, seed=4)[0][1], data[0][1])


@needs_data
def test_scene_flip_moves_image_and_mask_together() -> None:
    plain, flipping = TexturedScenes("train", 20), TexturedScenes("train", 20, augment=True)
    flipped = 0
    for index in range(20):
        image, mask = flipping[index]
        if not torch.equal(mask, plain[index][1]):
            assert torch.equal(mask, plain[index][1].flip(-1)) and torch.equal(image, plain[index][0].flip(-1))
            flipped += 1
    assert 3 <= flipped <= 17


def test_keypoints_of_a_mask_are_its_centroid_and_extremes() -> None:
    mask = torch.zeros(20, 30, dtype=torch.bool)
    mask[4:9, 10:21] = True  # rows 4-8, cols 10-20
    points = dict(zip(KEYPOINT_NAMES, keypoints_of_mask(mask).tolist()))
    assert points["centroid"] == [6.0, 15.0]
    assert points["top"] == [4.0, 15.0] and points["bottom"] == [8.0, 15.0]
    assert points["left"] == [6.0, 10.0] and points["right"] == [6.0, 20.0]
    assert points["top_left"] == [4.0, 10.0] and points["bottom_right"] == [8.0, 20.0]
    assert points["top_right"] == [4.0, 20.0] and points["bottom_left"] == [8.0, 10.0]
    assert torch.isnan(keypoints_of_mask(torch.zeros(5, 5, dtype=torch.bool))).all()


@needs_data
def test_keypoint_heatmaps_peak_at_the_main_items_keypoints() -> None:
    data = TexturedKeypoints("val", 10, sigma=1.0)
    for index in range(10):
        image, heat, weight = data[index]
        assert image.shape == (3, 128, 128) and heat.shape == (len(KEYPOINT_NAMES), 32, 32)
        assert torch.equal(weight, torch.ones(len(KEYPOINT_NAMES)))
        main = data.layout(index)[-1]
        assert main.size >= 0.44 * 128  # the large item is last (on top)
        peaks = heat.flatten(1).argmax(1)
        rows, cols = peaks // 32, peaks % 32
        # every peak lies inside the main item's box (at stride 4)
        assert ((rows * 4 >= main.top - 4) & (rows * 4 <= main.top + main.size + 4)).all()
        assert ((cols * 4 >= main.left - 4) & (cols * 4 <= main.left + main.size + 4)).all()
        assert float(heat.max()) > 0.5
    # flipping keeps the definitions geometric: the leftmost point stays to the left of the rightmost
    flipping = TexturedKeypoints("val", 10, augment=True)
    for index in range(10):
        _, heat, _ = flipping[index]
        cols = heat.flatten(1).argmax(1) % 32
        assert cols[KEYPOINT_NAMES.index("left")] <= cols[KEYPOINT_NAMES.index("right")]


@needs_data
def test_classification_items_are_one_item_on_a_textured_canvas() -> None:
    data = TexturedFashionMNIST("val", 30)
    labels = []
    for index in range(30):
        image, label = data[index]
        assert image.shape == (3, 64, 64) and 0 <= label <= 9
        item = data.layout(index)
        assert label == item.label and 22 <= item.size <= 58
        labels.append(label)
    assert len(set(labels)) >= 6


def test_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="'train', 'val' or 'test'"):
        TexturedScenes("holdout", 1)
    with pytest.raises(ValueError, match="side must be"):
        TexturedScenes("train", 1, side=(0.5, 0.2))
    with pytest.raises(ValueError, match="distractors must be"):
        TexturedKeypoints("train", 1, distractors=(3, 1))


needs_nuclei = pytest.mark.skipif(
    importlib.util.find_spec("stardist") is None, reason="pip install --no-deps stardist tifffile"
)


@needs_nuclei
def test_nuclei_real_mask_split_into_training_and_held_out_regions():
    from hrnas.data import NucleiSegmentation, load_nuclei
    from hrnas.data.nuclei import TRAIN_COLUMNS

    image, instances = load_nuclei()
    assert image.shape == instances.shape == (512, 512) and len(instances.unique()) > 100
    two = NucleiSegmentation("val", classes=2)
    assert len(two) == 4  # the right quarter as four 128x128 tiles
    tiles = torch.cat([two[i][1] for i in range(4)], dim=0)
    assert torch.equal(tiles, (instances[:, TRAIN_COLUMNS:] > 0).long())  # exactly the real mask
    three = NucleiSegmentation("val", classes=3)
    labels = torch.cat([three[i][1] for i in range(4)], dim=0)
    assert torch.equal(labels > 0, tiles > 0) and (labels == 2).sum() > 0
    train = NucleiSegmentation("train", 20, seed=1)
    image0, mask0 = train[0]
    assert image0.shape == (3, 128, 128) and mask0.shape == (128, 128)
    assert torch.equal(mask0, train[0][1])
    train.set_epoch(1)
    assert not torch.equal(mask0, train[0][1])  # a new crop each epoch
