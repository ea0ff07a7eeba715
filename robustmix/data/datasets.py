"""Datasets as uint8 arrays: CIFAR-10 from any of the formats users have, and Fashion-MNIST.

Every source is decoded once into uint8 NHWC arrays and cached as an uncompressed .npz keyed by
the source's path, size and modification time, so a changed source is noticed and a second run
starts in well under two seconds.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import UsageError
from .classes import CIFAR10_CLASSES, DATASETS, FASHION_CLASSES, HOW_TO_GET
from .formats import decode_cifar10, decode_fashion, download_cifar10


@dataclass
class Dataset:
    name: str
    classes: tuple[str, ...]
    x_train: np.ndarray  # uint8, N x H x W x C
    y_train: np.ndarray  # int64
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    description: str
    # Image folders only: the file name (stem) of each training image, in array order; None for
    # sources in CIFAR-10's canonical order (pickle batches) and Fashion-MNIST.
    train_names: np.ndarray | None = field(default=None, repr=False, compare=False)
    _test_fp: str | None = field(default=None, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[3])

    def fingerprint(self, split: str) -> str:
        """sha256 (16 hex digits) of a split's decoded images and labels: two copies with the same
        pixels and labels agree whatever their file format; a lossy re-encoding does not."""
        h = hashlib.sha256()
        for a in (getattr(self, f"x_{split}"), getattr(self, f"y_{split}").astype("<i8")):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    def test_fingerprint(self) -> str:
        if self._test_fp is None:
            self._test_fp = self.fingerprint("test")
        return self._test_fp

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images in [0, 1], for normalisation."""
        x = self.x_train.reshape(-1, self.channels).astype(np.float64) / 255.0
        return x.mean(0).tolist(), x.std(0).tolist()


def default_data_path(name: str) -> Path | None:
    """The first candidate that exists: $ROBUSTMIX_DATA, ./data/..., the shared offline copy."""
    env = os.environ.get("ROBUSTMIX_DATA")
    if env:
        return Path(env)
    if name == "cifar10":
        candidates = [
            Path("data/cifar-10-batches-py"),
            Path("data/cifar-10-python.tar.gz"),
            Path("data/cifar10-jpeg.tar.gz"),
            Path("../shared/data/cifar10-jpeg.tar.gz"),
        ]
    else:
        candidates = [Path("data/fashion-mnist"), Path("/usr/share/datasets/fashion-mnist")]
    return next((c for c in candidates if c.exists()), None)


def cache_dir() -> Path:
    return Path(os.environ.get("ROBUSTMIX_CACHE", Path.home() / ".cache" / "robustmix"))


def _source_key(name: str, path: Path) -> str:
    """Hash of what identifies a source: its absolute path and, for every file, size and mtime."""
    h = hashlib.sha256(f"{name}|{path.resolve()}|v3".encode())
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_dataset(name: str, path: str | Path | None = None, download: bool = False,
                 use_cache: bool = True) -> Dataset:
    """Load a dataset by name from path (or the default location); raise UsageError if unusable."""
    if name not in DATASETS:
        raise UsageError(f"unknown dataset '{name}' (choose from {', '.join(DATASETS)})")
    if download:
        if name != "cifar10":
            raise UsageError("--download is only for cifar10; " + HOW_TO_GET[name])
        path = download_cifar10(Path(path) if path else Path("data"))
    if path is None:
        path = default_data_path(name)
        if path is None:
            raise UsageError(f"no {name} data found in the default locations; {HOW_TO_GET[name]}")
    path = Path(path)
    if not path.exists():
        raise UsageError(f"data path {path} does not exist; {HOW_TO_GET[name]}")

    key = _source_key(name, path)
    cached = cache_dir() / f"{name}-{key}.npz"
    if use_cache and cached.exists():
        try:
            with np.load(cached) as z:
                arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test", "jpeg")}
                if "train_names" in z.files:
                    arrays["train_names"] = z["train_names"]
            return _make(name, arrays, path)
        except Exception:  # a damaged cache is rebuilt, never trusted
            cached.unlink(missing_ok=True)

    try:
        arrays = decode_cifar10(path) if name == "cifar10" else decode_fashion(path)
        arrays.setdefault("jpeg", np.array(False))
    except UsageError:
        raise
    except Exception as e:  # any decoding failure means the source is malformed
        raise UsageError(f"cannot read {name} from {path}: {type(e).__name__}: {e}; "
                         f"{HOW_TO_GET[name]}") from None
    ds = _make(name, arrays, path)
    if use_cache:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cached, lambda p: _save_npz(p, arrays))
        except (OSError, UsageError):
            pass  # caching is an optimisation; an unwritable cache dir must not stop a run
    return ds


def _save_npz(p: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(p, "wb") as f:
        np.savez(f, **arrays)


def _make(name: str, a: dict[str, np.ndarray], path: Path) -> Dataset:
    classes = CIFAR10_CLASSES if name == "cifar10" else FASHION_CLASSES
    shape = (32, 32, 3) if name == "cifar10" else (28, 28, 1)
    for split in ("train", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != shape:
            raise UsageError(f"{path}: {split} images have shape {x.shape[1:]} ({x.dtype}), "
                             f"expected {shape} uint8 for {name}; {HOW_TO_GET[name]}")
        if len(x) != len(y) or len(x) == 0:
            raise UsageError(f"{path}: {split} has {len(x)} images and {len(y)} labels; "
                             f"{HOW_TO_GET[name]}")
        if y.min() < 0 or y.max() >= len(classes):
            raise UsageError(f"{path}: {split} labels outside 0..{len(classes) - 1}")
    desc = "CIFAR-10" if name == "cifar10" else "Fashion-MNIST"
    if bool(a.get("jpeg", False)):
        # The shared offline copy is known to be quality 75; of other JPEG trees we only know
        # that they are lossy.
        desc += ", JPEG q75 copy" if "cifar10-jpeg" in path.name else ", JPEG copy (lossy)"
    names = a.get("train_names")
    return Dataset(name, classes, a["x_train"], a["y_train"].astype(np.int64),
                   a["x_test"], a["y_test"].astype(np.int64), str(path), desc,
                   train_names=names if names is not None and len(names) else None)
