"""Datasets as uint8 arrays: CIFAR-10 from any of the formats users have, and Fashion-MNIST.

Every source is decoded once into uint8 NHWC arrays and cached as an uncompressed .npz keyed by
the source's path, size and modification time, so a changed source is noticed and a second run
starts in well under two seconds.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import UsageError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DATASETS = ("cifar10", "fashion-mnist")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
HOW_TO_GET = {
    "cifar10": (
        "pass --data with a cifar-10-batches-py folder, cifar-10-python.tar.gz, or an image-folder "
        "tree (or .tar.gz of one) with train/<class>/ and test/<class>/, or add --download"
    ),
    "fashion-mnist": (
        "install it with 'apt-get install dataset-fashion-mnist' "
        "(files go to /usr/share/datasets/fashion-mnist) or pass --data with the IDX files"
    ),
}


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

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[3])

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
    h = hashlib.sha256(f"{name}|{path.resolve()}|v2".encode())
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
        path = _download_cifar10(Path(path) if path else Path("data"))
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
            return _make(name, arrays, path)
        except Exception:  # a damaged cache is rebuilt, never trusted
            cached.unlink(missing_ok=True)

    try:
        arrays = _decode_cifar10(path) if name == "cifar10" else _decode_fashion(path)
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
        except OSError:
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
    return Dataset(name, classes, a["x_train"], a["y_train"].astype(np.int64),
                   a["x_test"], a["y_test"].astype(np.int64), str(path), desc)


# --- CIFAR-10 -----------------------------------------------------------------------------

def _decode_cifar10(path: Path) -> dict[str, np.ndarray]:
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


def _download_cifar10(root: Path) -> Path:
    try:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=True, download=True)
        CIFAR10(str(root), train=False, download=True)
    except Exception as e:
        raise UsageError(f"downloading CIFAR-10 into {root} failed ({type(e).__name__}: {e}); "
                         "without internet, " + HOW_TO_GET["cifar10"]) from None
    return root / "cifar-10-batches-py"


# --- Fashion-MNIST -------------------------------------------------------------------------

def _decode_fashion(path: Path) -> dict[str, np.ndarray]:
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
