"""Tests for the optional data package `hrnas.data`.

Tests marked `needs_fashion_mnist` read the real Fashion-MNIST files (Debian package
``dataset-fashion-mnist``) and are skipped where they are absent; the rest build tiny files in tmp_path.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from hrnas.data import (
    DataNotFoundError,
    FashionMNIST,
    FashionMNISTScenes,
    SegmentationFolder,
    fashion_mnist,
    folder,
    load_fashion_mnist,
    resolve_data_dir,
    scenes,
    write_segmentation_folder,
)

REAL_DIR = resolve_data_dir()
needs_fashion_mnist = pytest.mark.skipif(
    not (REAL_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST not found in {REAL_DIR}; apt-get install dataset-fashion-mnist",
)
FILE_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@pytest.fixture(scope="module")
def train_split() -> tuple[torch.Tensor, torch.Tensor]:
    return load_fashion_mnist("train")


@pytest.fixture(scope="module")
def test_split() -> tuple[torch.Tensor, torch.Tensor]:
    return load_fashion_mnist("test")


def _idx_bytes(data: np.ndarray) -> bytes:
    """Encode a uint8 array as an idx file (magic 0x08 type code, then big-endian dimensions)."""
    header = bytes([0, 0, 8, data.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in data.shape)
    return header + data.astype(np.uint8).tobytes()


def _write_fake_dataset(folder_path: Path, n: int, label_offset: int = 0) -> None:
    """Uncompressed idx files with `n` images per split, image k filled with the value k."""
    folder_path.mkdir(parents=True, exist_ok=True)
    images = np.repeat(np.arange(n, dtype=np.uint8), 28 * 28).reshape(n, 28, 28)
    labels = (np.arange(n) + label_offset) % 10
    for prefix in ("train", "t10k"):
        (folder_path / f"{prefix}-images-idx3-ubyte").write_bytes(_idx_bytes(images))
        (folder_path / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx_bytes(labels))


def _unnormalise_grey(image: torch.Tensor) -> torch.Tensor:
    """Back to 0-255 grey levels, rounded (the inverse of the Fashion-MNIST normalisation)."""
    return (image[0] * fashion_mnist.STD + fashion_mnist.MEAN).mul(255).round()


# --- load_fashion_mnist -------------------------------------------------------------------------


@needs_fashion_mnist
def test_load_train_split(train_split: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = train_split
    assert images.shape == (60000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (60000,) and labels.dtype == torch.int64
    assert torch.bincount(labels).tolist() == [6000] * 10
    assert labels[:5].tolist() == [9, 0, 0, 3, 0]  # the published first training labels
    assert 0.49 < (images == 0).float().mean().item() < 0.51  # about half the pixels are background
    assert abs(images.float().mean().item() / 255 - fashion_mnist.MEAN) < 1e-3


@needs_fashion_mnist
def test_load_test_split(test_split: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = test_split
    assert images.shape == (10000, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [1000] * 10


def test_unknown_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_fashion_mnist("validation")


def test_missing_folder_names_file_and_remedy(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as caught:
        load_fashion_mnist("test", data_dir=tmp_path / "nowhere")
    message = str(caught.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "t10k-images-idx3-ubyte" in message and "HRNAS_FASHION_MNIST_DIR" in message
    assert isinstance(caught.value, FileNotFoundError)


def test_directory_precedence_and_uncompressed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_fake_dataset(tmp_path / "env", n=12)
    _write_fake_dataset(tmp_path / "explicit", n=7)
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(tmp_path / "env"))
    images, labels = load_fashion_mnist("train")
    assert images.shape == (12, 28, 28) and images[5].unique().tolist() == [5]
    assert labels.tolist() == [k % 10 for k in range(12)]
    assert len(load_fashion_mnist("test", data_dir=tmp_path / "explicit")[0]) == 7
    monkeypatch.delenv(fashion_mnist.ENV_VAR)
    assert resolve_data_dir() == Path(fashion_mnist.DEFAULT_DIR)


@needs_fashion_mnist
def test_truncated_gzip_is_reported_by_name(tmp_path: Path) -> None:
    for name in FILE_NAMES:
        shutil.copy(REAL_DIR / f"{name}.gz", tmp_path)
    broken = tmp_path / "t10k-images-idx3-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:100_000])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz"):
        load_fashion_mnist("test", data_dir=tmp_path)


def test_corrupt_idx_files_are_reported(tmp_path: Path) -> None:
    _write_fake_dataset(tmp_path, n=4)
    images = tmp_path / "t10k-images-idx3-ubyte"
    good = images.read_bytes()
    images.write_bytes(good[:-1])  # consistent gzip, short payload
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte holds 3135 data bytes"):
        load_fashion_mnist("test", data_dir=tmp_path)
    images.write_bytes(b"\x00\x00\x08\x01" + good[4:])  # labels' magic on an images file
    with pytest.raises(ValueError, match="magic number 0x00000801"):
        load_fashion_mnist("test", data_dir=tmp_path)
    images.write_bytes(good)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.array([0, 1, 2, 10])))
    with pytest.raises(ValueError, match="label 10"):
        load_fashion_mnist("test", data_dir=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(ValueError, match="shorter than its 8-byte idx header"):
        load_fashion_mnist("test", data_dir=tmp_path)


# --- FashionMNIST -------------------------------------------------------------------------------


@needs_fashion_mnist
def test_classification_items(test_split: tuple[torch.Tensor, torch.Tensor]) -> None:
    dataset = FashionMNIST("test")
    assert len(dataset) == 10000
    image, label = dataset[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert isinstance(label, int) and label == int(test_split[1][0])
    assert torch.equal(image[0], image[2])  # grey replicated
    assert FashionMNIST("test", channels=1)[0][0].shape == (1, 32, 32)

    native = FashionMNIST("test", image_size=28, channels=1)
    assert torch.equal(_unnormalise_grey(native[7][0]), test_split[0][7].float())
    batch = torch.stack([native[i][0] for i in range(2000)])
    assert abs(batch.mean().item()) < 0.02 and abs(batch.std().item() - 1) < 0.02


@needs_fashion_mnist
def test_limit_takes_first_items_of_each_class(test_split: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = test_split
    dataset = FashionMNIST("test", limit=7, image_size=28, channels=1)
    assert len(dataset) == 70
    assert torch.bincount(dataset.labels).tolist() == [7] * 10
    first_of_each = sorted(i for c in range(10) for i in torch.nonzero(labels == c).flatten()[:7].tolist())
    assert torch.equal(dataset.images, images[first_of_each])
    assert torch.equal(_unnormalise_grey(dataset[3][0]), images[first_of_each[3]].float())


@needs_fashion_mnist
def test_augmentation_is_seeded_crop_and_flip() -> None:
    plain = FashionMNIST("test", limit=5)
    augmented = FashionMNIST("test", limit=5, augment=True, seed=3)
    assert torch.equal(plain[4][0], plain[4][0])
    views = [augmented[i][0] for i in range(len(augmented))]
    assert all(torch.equal(view, augmented[i][0]) for i, view in enumerate(views))  # reproducible
    assert all(view.shape == (3, 32, 32) for view in views)
    assert sum(not torch.equal(view, plain[i][0]) for i, view in enumerate(views)) > 35
    augmented.set_epoch(1)
    assert any(not torch.equal(view, augmented[i][0]) for i, view in enumerate(views))
    # Each view is one of the 25 crops of the 2-pixel-padded image, mirrored or not.
    background = ((torch.zeros(()) - fashion_mnist.MEAN) / fashion_mnist.STD).item()
    outcomes = []
    for index, view in enumerate(views):
        padded = torch.nn.functional.pad(plain[index][0], (2, 2, 2, 2), value=background)
        crops = [padded[:, top : top + 32, left : left + 32] for top in range(5) for left in range(5)]
        as_is = any(torch.equal(view, crop) for crop in crops)
        mirrored = any(torch.equal(view, crop.flip(-1)) for crop in crops)
        assert as_is or mirrored, index
        outcomes.append((as_is, mirrored))
    assert (True, False) in outcomes and (False, True) in outcomes


# --- FashionMNISTScenes -------------------------------------------------------------------------


@needs_fashion_mnist
def test_scene_items_are_deterministic() -> None:
    first = FashionMNISTScenes("val", 50, seed=0)
    again = FashionMNISTScenes("val", 200, seed=0)
    other_seed = FashionMNISTScenes("val", 50, seed=1)
    for index in (17, 3, 49, 0):
        image, mask = first[index]
        assert torch.equal(image, first[index][0]) and torch.equal(mask, first[index][1])
        assert torch.equal(image, again[index][0]) and torch.equal(mask, again[index][1])
    assert sum(torch.equal(first[i][1], other_seed[i][1]) for i in range(50)) <= 1
    assert not torch.equal(first[0][1], FashionMNISTScenes("test", 1, seed=0)[0][1])
    assert torch.equal(first[-1][1], first[49][1])
    with pytest.raises(IndexError):
        first[50]


@needs_fashion_mnist
def test_scene_masks_match_item_pixels() -> None:
    dataset = FashionMNISTScenes("val", 40, seed=5)
    assert scenes.NUM_CLASSES == 11 and scenes.CLASS_NAMES[0] == "background"
    assert scenes.CLASS_NAMES[10] == "Ankle boot"
    seen: set[int] = set()
    for index in range(len(dataset)):
        image, mask = dataset[index]
        assert image.shape == (3, 64, 64) and image.dtype == torch.float32
        assert mask.shape == (64, 64) and mask.dtype == torch.int64
        assert int(mask.min()) >= 0 and int(mask.max()) <= 10
        grey = _unnormalise_grey(image)
        assert torch.equal(mask > 0, grey > 5), index  # background is exactly 0, items exceed 10
        present = set(mask.unique().tolist()) - {0}
        assert present <= {p.label + 1 for p in dataset.layout(index)}
        seen |= present
    assert len(seen) >= 8  # forty scenes cover most classes
    # The last item pasted is on top: its silhouette carries its class.
    last = dataset.layout(0)[-1]
    window = dataset[0][1][last.top : last.top + last.size, last.left : last.left + last.size]
    assert (window == last.label + 1).sum() > 0


@needs_fashion_mnist
def test_scene_splits_draw_from_different_sources(
    train_split: tuple[torch.Tensor, torch.Tensor], test_split: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # One native-size item filling a 28x28 canvas reproduces its source image (minus faint pixels).
    single = {"canvas": 28, "items": (1, 1), "scale": (1.0, 1.0), "seed": 11}
    for split, (images, labels) in (("train", train_split), ("val", test_split)):
        dataset = FashionMNISTScenes(split, 3, **single)
        for index in range(3):
            (placement,) = dataset.layout(index)
            assert (placement.top, placement.left, placement.size) == (0, 0, 28)
            source = images[placement.source_index].float()
            expected = torch.where(source > scenes.ITEM_THRESHOLD, source, torch.zeros(()))
            image, mask = dataset[index]
            assert torch.equal(_unnormalise_grey(image), expected), (split, index)
            assert placement.label == int(labels[placement.source_index])
            assert set(mask.unique().tolist()) == {0, placement.label + 1}
    assert len(FashionMNISTScenes("train", 1, **single).images) == 60000
    assert len(FashionMNISTScenes("val", 1, **single).images) == 10000


@needs_fashion_mnist
def test_scene_options_and_flip() -> None:
    dataset = FashionMNISTScenes("val", 30, canvas=(48, 80), items=(3, 3), scale=(0.5, 0.5), channels=1)
    image, mask = dataset[2]
    assert image.shape == (1, 48, 80) and mask.shape == (48, 80)
    assert [p.size for p in dataset.layout(2)] == [14, 14, 14]

    plain = FashionMNISTScenes("val", 30)
    flipping = FashionMNISTScenes("val", 30, augment=True)
    flipped = 0
    for index in range(30):
        image, mask = flipping[index]
        if torch.equal(mask, plain[index][1]):
            assert torch.equal(image, plain[index][0])
        else:
            assert torch.equal(mask, plain[index][1].flip(-1))
            assert torch.equal(image, plain[index][0].flip(-1))
            flipped += 1
    assert 5 <= flipped <= 25


@needs_fashion_mnist
def test_scenes_are_identical_across_dataloader_workers() -> None:
    dataset = FashionMNISTScenes("val", 16, seed=2)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, multiprocessing_context="fork")
    masks = torch.cat([mask for _, mask in loader])
    assert torch.equal(masks, torch.stack([dataset[i][1] for i in range(16)]))


def test_scene_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="'train', 'val' or 'test'"):
        FashionMNISTScenes("holdout")
    with pytest.raises(ValueError, match="items must be"):
        FashionMNISTScenes("train", items=(3, 2))


# --- SegmentationFolder -------------------------------------------------------------------------


def _random_pairs(count: int, height: int = 12, width: int = 20) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]
    masks = [rng.integers(0, 4, (height, width)) for _ in range(count)]
    masks[0][0, :5] = 255
    return images, masks


def test_folder_round_trip(tmp_path: Path) -> None:
    images, masks = _random_pairs(3)
    root = write_segmentation_folder(tmp_path / "ds", images, masks)
    assert sorted(p.name for p in (root / "images").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert not list(root.rglob("*.tmp"))
    dataset = SegmentationFolder(root, num_classes=4, ignore_index=-100)
    assert len(dataset) == 3 and dataset.names == ("000000", "000001", "000002")
    for index in range(3):
        image, mask = dataset[index]
        assert image.shape == (3, 12, 20) and image.dtype == torch.float32
        mean = torch.tensor(folder.IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(folder.IMAGENET_STD).view(3, 1, 1)
        restored = ((image * std + mean) * 255).round().permute(1, 2, 0)
        assert torch.equal(restored, torch.from_numpy(images[index]).float())
        expected = torch.from_numpy(masks[index]).long()
        expected[expected == 255] = -100
        assert mask.dtype == torch.int64 and torch.equal(mask, expected)

    resized = SegmentationFolder(root, size=(6, 10))[0]
    assert resized[0].shape == (3, 6, 10) and resized[1].shape == (6, 10)
    assert set(resized[1].unique().tolist()) <= {0, 1, 2, 3, 255}

    flipping = SegmentationFolder(root, augment=True, seed=0)
    plain = SegmentationFolder(root)
    for index in range(3):
        image, mask = flipping[index]
        flipped = not torch.equal(mask, plain[index][1])
        reference = plain[index]
        assert torch.equal(image, reference[0].flip(-1) if flipped else reference[0])
        assert torch.equal(mask, reference[1].flip(-1) if flipped else reference[1])


def test_folder_accepts_tensors_and_jpeg_names(tmp_path: Path) -> None:
    image = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    root = write_segmentation_folder(tmp_path, [image], [torch.ones(5, 7, dtype=torch.int64)], names=["cat"])
    (root / "images" / "cat.png").rename(root / "images" / "cat.JPG")  # a PNG under a JPEG name still opens
    image_out, mask_out = SegmentationFolder(root)[0]
    assert image_out.shape == (3, 5, 7) and mask_out.sum().item() == 35


def test_mask_value_out_of_range_names_file_and_value(tmp_path: Path) -> None:
    images, masks = _random_pairs(2)
    masks[1][3, 4] = 9
    write_segmentation_folder(tmp_path, images, masks)
    dataset = SegmentationFolder(tmp_path, num_classes=4)
    dataset[0]  # values 0-3 and 255 are fine
    with pytest.raises(ValueError, match=r"000001\.png contains mask value 9 but num_classes=4"):
        dataset[1]
    assert SegmentationFolder(tmp_path, num_classes=10)[1][1][3, 4] == 9


def test_folder_structure_errors(tmp_path: Path) -> None:
    images, masks = _random_pairs(2)
    write_segmentation_folder(tmp_path / "ds", images, masks)
    (tmp_path / "ds" / "masks" / "000001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"images/000001\.png has no mask"):
        SegmentationFolder(tmp_path / "ds")

    (tmp_path / "no_masks" / "images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="masks is missing"):
        SegmentationFolder(tmp_path / "no_masks")

    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(FileNotFoundError, match=r"holds no \.png, \.jpg or \.jpeg images"):
        SegmentationFolder(tmp_path / "empty")

    Image.new("RGB", (4, 4)).save(tmp_path / "ds" / "images" / "000000.jpg")
    with pytest.raises(ValueError, match="share the name '000000'"):
        SegmentationFolder(tmp_path / "ds")


def test_writer_rejects_bad_masks_without_leaving_files(tmp_path: Path) -> None:
    images, masks = _random_pairs(2)
    masks[1][0, 0] = 300
    with pytest.raises(ValueError, match="mask '000001' holds values from 0 to 300"):
        write_segmentation_folder(tmp_path, images, masks)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["000000.png", "000000.png"]
    with pytest.raises(ValueError, match="same size"):
        write_segmentation_folder(tmp_path / "b", images[:1], [np.zeros((3, 3), dtype=np.int64)])
    with pytest.raises(TypeError, match=r"convert it to torch\.uint8"):
        write_segmentation_folder(tmp_path / "c", [torch.zeros(3, 2, 2)], [torch.zeros(2, 2, dtype=torch.long)])


def test_writer_cleans_up_when_saving_fails(tmp_path: Path) -> None:
    unsavable = Image.new("CMYK", (4, 4))  # PNG has no CMYK mode, so PIL fails while saving
    with pytest.raises(OSError, match="CMYK"):
        write_segmentation_folder(tmp_path, [unsavable], [np.zeros((4, 4), dtype=np.uint8)])
    # The mask went first and is complete; the failed image left neither a file nor a temporary.
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == ["masks/000000.png"]
