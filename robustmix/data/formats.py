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
    return _cifar_from_tar(path)


_PICKLE = re.compile(r"data_batch_[1-5]|test_batch")
# Images are decoded in batches of about this many encoded bytes, in archive order: alternating
# tar parsing and decompression with every single JPEG decode costs about 15 % more CPU time
# (caches), while a batch bounds the memory held in encoded form.
_DECODE_BATCH_BYTES = 4 << 20


def _cifar_from_tar(path: Path) -> dict[str, np.ndarray]:
    """Read every member once, in archive order, and decode the images as they come.

    On a gzip stream every backward seek restarts decompression from the start of the file, so
    reading members in any other order than the archive's (as random access by name does) costs
    time quadratic in the archive's size. Iterating the tar sequentially only ever seeks forward;
    images are decoded in archive order, a few MiB of encoded bytes at a time, and put in their
    canonical order in memory afterwards (_ImageCollector), so the arrays do not depend on the
    member order.
    """
    pickles: dict[str, bytes] = {}
    images = _ImageCollector(path)
    pending: list[tuple[str, bytes, str, str]] = []
    pending_bytes = 0
    with tarfile.open(path, "r:*") as tar:
        for m in tar:  # archive order; each member's data is read before the next header
            if not m.isfile():
                continue
            # Path(m.name).parts, without its cost per member: tar names are POSIX paths.
            parts = [p for p in m.name.split("/") if p not in ("", ".")]
            if parts and _PICKLE.fullmatch(parts[-1]):
                pickles[parts[-1]] = tar.extractfile(m).read()  # a later copy wins, as before
            elif (len(parts) >= 3 and parts[-3] in ("train", "test")
                  and m.name.lower().endswith(IMAGE_SUFFIXES)):
                data = tar.extractfile(m).read()
                pending.append((m.name, data, parts[-3], parts[-2]))
                pending_bytes += len(data)
                if pending_bytes >= _DECODE_BATCH_BYTES:
                    images.add_all(pending)
                    pending, pending_bytes = [], 0
    images.add_all(pending)
    if len(pickles) == 6:
        return _cifar_from_pickles(pickles.pop)  # pop: each raw batch is freed once parsed
    pickles.clear()
    if not images:
        raise UsageError(f"{path} holds neither CIFAR-10 pickles nor train|test/<class>/ "
                         f"images; {HOW_TO_GET['cifar10']}")
    return images.arrays()


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
    images = _ImageCollector(root)
    for split in ("train", "test"):
        for f in (root / split).glob("*/*"):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                images.add(str(f), f.read_bytes(), split, f.parent.name)
    return images.arrays()


class _ImageCollector:
    """Images of a train|test/<class>/ tree, decoded in whatever order they arrive.

    Pixels go into fixed-size blocks in arrival order; arrays() then puts them in the canonical
    order, sorted by (split, class index, name), so the result does not depend on the order of
    the source (archive member order, directory listing). Errors keep the precedence of reading
    in canonical order: unknown class folders first (those images are not even decoded), then
    per split a missing split, then the first bad image in canonical order.
    """

    BLOCK = 4096  # images per block: 12 MiB of 32x32x3

    def __init__(self, src: Path):
        self.src = src
        self.keys: list[tuple[str, str, str]] = []  # (split, class, name) per image
        self.rows: list[int] = []  # row in the blocks, or -1: not decoded (unknown class, error)
        self.errors: dict[int, Exception] = {}  # image number -> why it cannot be used
        self.blocks: list[np.ndarray | None] = []
        self.n_rows = 0

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, name: str, data: bytes, split: str, cls: str) -> None:
        """One image file: its name (the sort key within a class), bytes, split and class."""
        from PIL import Image

        self.keys.append((split, cls, name))
        self.rows.append(-1)
        if cls not in CIFAR10_CLASSES:
            return  # reported by arrays(); decoding it would be wasted work
        try:
            with Image.open(io.BytesIO(data)) as im:
                rgb = im.convert("RGB")
        except Exception as e:  # raised by arrays() if no earlier error comes first
            self.errors[len(self.keys) - 1] = e.with_traceback(None)
            return
        if rgb.size != (32, 32):
            self.errors[len(self.keys) - 1] = UsageError(
                f"{self.src}: image {name} is {rgb.size[0]}x{rgb.size[1]}, expected 32x32")
            return
        b, r = divmod(self.n_rows, self.BLOCK)
        if b == len(self.blocks):
            self.blocks.append(np.empty((self.BLOCK, 32, 32, 3), dtype=np.uint8))
        self.blocks[b][r] = np.frombuffer(rgb.tobytes(), dtype=np.uint8).reshape(32, 32, 3)
        self.rows[-1] = self.n_rows
        self.n_rows += 1

    def add_all(self, items: list[tuple[str, bytes, str, str]]) -> None:
        for item in items:
            self.add(*item)

    def arrays(self) -> dict[str, np.ndarray]:
        keys, src = self.keys, self.src
        found = sorted({c for _, c, _ in keys})
        unknown = [c for c in found if c not in CIFAR10_CLASSES]
        if unknown:
            raise UsageError(f"{src}: class folders {unknown} are not CIFAR-10 classes "
                             f"({', '.join(CIFAR10_CLASSES)})")
        # Sorting by (class index, file name) makes the array order independent of archive order.
        order = sorted(range(len(keys)),
                       key=lambda i: (keys[i][0], CIFAR10_CLASSES.index(keys[i][1]), keys[i][2]))
        rows = np.asarray(self.rows, dtype=np.int64)
        out: dict[str, np.ndarray] = {}
        dest: dict[str, np.ndarray] = {}  # per split: block row -> position in the split's array
        for split in ("train", "test"):
            items = [i for i in order if keys[i][0] == split]
            if not items:
                raise UsageError(f"{src}: no {split} images found")
            bad = next((i for i in items if i in self.errors), None)
            if bad is not None:
                raise self.errors[bad]
            out[f"x_{split}"] = np.empty((len(items), 32, 32, 3), dtype=np.uint8)
            out[f"y_{split}"] = np.array([CIFAR10_CLASSES.index(keys[i][1]) for i in items],
                                         dtype=np.int64)
            if split == "train":  # file names (stems) align CIFAR-10N with image folders
                out["train_names"] = np.array([Path(keys[i][2]).stem for i in items], dtype=str)
            where = np.full(self.n_rows, -1, dtype=np.int64)
            where[rows[items]] = np.arange(len(items))
            dest[split] = where
        # Copy block by block, freeing each block as soon as it is copied: the peak stays near
        # one copy of the pixels.
        for b in range(len(self.blocks)):
            block, self.blocks[b] = self.blocks[b], None
            lo = b * self.BLOCK
            n = min(self.BLOCK, self.n_rows - lo)
            for split, where in dest.items():
                w = where[lo:lo + n]
                sel = w >= 0
                out[f"x_{split}"][w[sel]] = block[:n][sel]
        self.blocks = []
        # Lossy sources must be named as such in every report: remember what the files were.
        out["jpeg"] = np.array(any(n.lower().endswith((".jpg", ".jpeg")) for _, _, n in keys))
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
