"""Decoders of the dataset formats users have, each to uint8 N x H x W x C arrays.

CIFAR-10: the canonical pickle batches (a cifar-10-batches-py folder or cifar-10-python.tar.gz),
an image-folder tree train|test/<class>/*.png|jpg or a .tar.gz of one, and torchvision's
download. Fashion-MNIST: the gzipped IDX files.
"""

from __future__ import annotations

import gzip
import io
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .classes import CIFAR10_CLASSES, FASHION_FILES, HOW_TO_GET, IMAGE_SUFFIXES

# --- CIFAR-10 -----------------------------------------------------------------------------


def decode_cifar10(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():
        batches = path / "cifar-10-batches-py"
        if (path / "data_batch_1").exists():
            return _cifar_from_pickles(lambda n: (path / n).read_bytes())
        if (batches / "data_batch_1").exists():
            return _cifar_from_pickles(lambda n: (batches / n).read_bytes())
        root = _find_image_root(path)
        if root is None:
            raise UsageError(f"{path} holds neither cifar-10-batches-py nor train/<class>/ and "
                             f"test/<class>/ image folders; {HOW_TO_GET['cifar10']}")
        return _cifar_from_image_dir(root)
    if not tarfile.is_tarfile(path):
        raise UsageError(f"{path} is not a folder or a .tar.gz archive; {HOW_TO_GET['cifar10']}")
    with tarfile.open(path, "r:*") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        by_name = {m.name: m for m in members}
        pickles = {Path(m.name).name: m for m in members
                   if re.fullmatch(r"(data_batch_[1-5]|test_batch)", Path(m.name).name)}
        if len(pickles) == 6:
            return _cifar_from_pickles(lambda n: tar.extractfile(pickles[n]).read())
        images = []
        for m in members:
            parts = Path(m.name).parts
            if m.name.lower().endswith(IMAGE_SUFFIXES) and len(parts) >= 3 and parts[-3] in ("train", "test"):
                images.append((parts[-3], parts[-2], m.name))
        if not images:
            raise UsageError(f"{path} holds neither CIFAR-10 pickles nor train|test/<class>/ "
                             f"images; {HOW_TO_GET['cifar10']}")
        return _images_to_arrays(images, lambda n: tar.extractfile(by_name[n]).read(), path)


def _cifar_from_pickles(read) -> dict[str, np.ndarray]:
    def load(n: str) -> tuple[np.ndarray, np.ndarray]:
        d = pickle.loads(read(n), encoding="bytes")
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x), np.asarray(d[b"labels"], dtype=np.int64)

    train = [load(f"data_batch_{i}") for i in range(1, 6)]
    xt, yt = load("test_batch")
    return {"x_train": np.concatenate([t[0] for t in train]),
            "y_train": np.concatenate([t[1] for t in train]), "x_test": xt, "y_test": yt}


def _find_image_root(path: Path) -> Path | None:
    for root in [path, *[p for p in sorted(path.iterdir()) if p.is_dir()]]:
        if (root / "train").is_dir() and (root / "test").is_dir():
            return root
    return None


def _cifar_from_image_dir(root: Path) -> dict[str, np.ndarray]:
    images = [(split, f.parent.name, str(f)) for split in ("train", "test")
              for f in (root / split).glob("*/*") if f.suffix.lower() in IMAGE_SUFFIXES]
    return _images_to_arrays(images, lambda n: Path(n).read_bytes(), root)


def _images_to_arrays(images: list[tuple[str, str, str]], read, src: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    found = sorted({c for _, c, _ in images})
    unknown = [c for c in found if c not in CIFAR10_CLASSES]
    if unknown:
        raise UsageError(f"{src}: class folders {unknown} are not CIFAR-10 classes "
                         f"({', '.join(CIFAR10_CLASSES)})")
    out: dict[str, np.ndarray] = {}
    # Sorting by (class index, file name) makes the array order independent of archive order.
    images.sort(key=lambda t: (t[0], CIFAR10_CLASSES.index(t[1]), t[2]))
    for split in ("train", "test"):
        items = [t for t in images if t[0] == split]
        if not items:
            raise UsageError(f"{src}: no {split} images found")
        x = np.empty((len(items), 32, 32, 3), dtype=np.uint8)
        for i, (_, _, name) in enumerate(items):
            with Image.open(io.BytesIO(read(name))) as im:
                arr = np.asarray(im.convert("RGB"))
            if arr.shape != (32, 32, 3):
                raise UsageError(f"{src}: image {name} is {arr.shape[1]}x{arr.shape[0]}, expected 32x32")
            x[i] = arr
        out[f"x_{split}"] = x
        out[f"y_{split}"] = np.array([CIFAR10_CLASSES.index(c) for _, c, _ in items], dtype=np.int64)
    # Lossy sources must be named as such in every report: remember what the files were.
    out["jpeg"] = np.array(any(n.lower().endswith((".jpg", ".jpeg")) for _, _, n in images))
    return out


def download_cifar10(root: Path) -> Path:
    try:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=True, download=True)
        CIFAR10(str(root), train=False, download=True)
    except Exception as e:
        raise UsageError(f"downloading CIFAR-10 into {root} failed ({type(e).__name__}: {e}); "
                         "without internet, " + HOW_TO_GET["cifar10"]) from None
    return root / "cifar-10-batches-py"


# --- Fashion-MNIST -------------------------------------------------------------------------


def decode_fashion(path: Path) -> dict[str, np.ndarray]:
    if not path.is_dir():
        raise UsageError(f"{path} is not a folder of Fashion-MNIST IDX files; {HOW_TO_GET['fashion-mnist']}")
    out = {}
    for key, stem in FASHION_FILES.items():
        f = next((path / (stem + s) for s in (".gz", "") if (path / (stem + s)).exists()), None)
        if f is None:
            raise UsageError(f"{path} lacks {stem}.gz; {HOW_TO_GET['fashion-mnist']}")
        raw = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        out[key] = read_idx(raw, str(f))
    out["x_train"] = out["x_train"][..., None]
    out["x_test"] = out["x_test"][..., None]
    return out


def read_idx(raw: bytes, name: str = "IDX") -> np.ndarray:
    """Parse an IDX file (big-endian header: 0, 0, dtype code 0x08 = uint8, ndim, then dims)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UsageError(f"{name} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UsageError(f"{name}: header says {dims} but holds {data.size} bytes")
    return data.reshape(dims).copy()
