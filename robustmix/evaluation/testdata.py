"""The test images an outside model is evaluated on: a dataset's test split (any format
load_dataset reads), or the user's own arrays in an .npz file, as a class-balanced subset."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.classes import CIFAR10_CLASSES, FASHION_CLASSES
from ..errors import UsageError
from .external import as_images
from .predict import test_indices

CLASSES = {"cifar10": CIFAR10_CLASSES, "fashion-mnist": FASHION_CLASSES}


@dataclass
class TestImages:
    x: torch.Tensor  # float N x C x H x W in [0, 1]
    y: torch.Tensor  # int64 N
    num_classes: int
    source: str  # the path read
    description: str
    fingerprint: str  # of the whole test split read (as trained runs record it), not the subset
    total: int  # images in that split
    # the subset as stored, uint8 N x H x W x C, where it was stored so (the common corruptions
    # work on such images); None for float images
    uint8: np.ndarray | None = None

    @property
    def channels(self) -> int:
        return int(self.x.shape[1])


def fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    """sha256 (16 hex digits) of images and labels, as Dataset.fingerprint computes it."""
    h = hashlib.sha256()
    for a in (x, y.astype("<i8")):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrays x (uint8 N x H x W x C, or float N x C x H x W in [0, 1]) and y (N labels), also
    spelled x_test and y_test; read without pickle."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = ("x", "y") if "x" in z.files else ("x_test", "y_test")
            if not set(keys) <= set(z.files):
                raise UsageError(f"{path} needs arrays x and y (or x_test and y_test); it has "
                                 f"{', '.join(z.files) or 'none'}")
            return z[keys[0]], z[keys[1]]
    except UsageError:
        raise
    except Exception as e:
        raise UsageError(f"cannot read {path}: {type(e).__name__}: {e}") from None


def load_test_images(dataset: str, path: Path | None, n: int | None) -> TestImages:
    """n class-balanced test images (None or 0 = all) of dataset, read from path (None = the
    default location); a path ending in .npz holds the images themselves (the dataset then
    names the classes)."""
    from ..data.datasets import load_dataset

    if dataset not in CLASSES:
        raise UsageError(f"unknown dataset '{dataset}' (choose from {', '.join(CLASSES)})")
    if path is not None and Path(path).suffix == ".npz":
        if not Path(path).is_file():
            raise UsageError(f"data file {path} does not exist")
        x, y = _npz(Path(path))
        source, description = str(Path(path).resolve()), f"test images of {Path(path).name}"
        if not len(y):
            raise UsageError(f"{path} holds no images")
        fp = fingerprint(np.asarray(x), np.asarray(y))
    else:
        ds = load_dataset(dataset, path)
        x, y, source, description = ds.x_test, ds.y_test, ds.source, ds.description
        fp = ds.test_fingerprint()  # the fingerprint trained runs on these images record
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise UsageError(f"labels must be N integers for N images; got {y.shape} {y.dtype} "
                         f"for {len(x)} images")
    k = len(CLASSES[dataset])
    if len(y) and (y.min() < 0 or y.max() >= k):
        raise UsageError(f"labels must lie in 0..{k - 1} ({dataset} has {k} classes)")
    idx = test_indices(y, n or None)
    subset = np.ascontiguousarray(np.asarray(x)[idx])
    images = as_images(subset)  # checks [0, 1]
    return TestImages(images, torch.from_numpy(y[idx].astype(np.int64)), k, source,
                      description, fp, len(y), subset if subset.dtype == np.uint8 else None)
