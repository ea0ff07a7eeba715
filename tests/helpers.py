"""Builders of tiny synthetic datasets in every format robustmix reads.

Images carry a learnable class signal (a per-class colour plus pixel noise), so a tiny network
learns them within a few epochs. Arrays are uint8 N x H x W x C, grouped by class and, within a
class, in file-name order: the order the image-folder loaders produce, so the same images written
in every format must decode to equal arrays.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import pickle
import subprocess
import tarfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from robustmix.data.classes import CIFAR10_CLASSES, FASHION_FILES

# One clearly distinct RGB colour per CIFAR-10 class.
PALETTE = np.array([
    [220, 40, 40], [40, 200, 40], [40, 60, 220], [230, 220, 40], [200, 40, 210],
    [40, 210, 220], [245, 245, 245], [20, 20, 20], [240, 140, 30], [120, 120, 120],
], dtype=np.int16)


def class_images(n_per_class: int, seed: int, size: int = 32, channels: int = 3,
                 noise: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """n_per_class images of each of the ten classes, grouped by class."""
    rng = np.random.default_rng(seed)
    n = 10 * n_per_class
    y = np.repeat(np.arange(10), n_per_class).astype(np.int64)
    if channels == 3:
        base = PALETTE[y][:, None, None, :]
    else:  # grey levels 10, 35, ..., 235
        base = (10 + 25 * y).astype(np.int16)[:, None, None, None]
    x = base + rng.integers(-noise, noise + 1, size=(n, size, size, channels))
    return np.clip(x, 0, 255).astype(np.uint8), y


@dataclass
class Arrays:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"x_train": self.x_train, "y_train": self.y_train,
                "x_test": self.x_test, "y_test": self.y_test}


def cifar_arrays(train_per_class: int = 20, test_per_class: int = 5, seed: int = 0,
                 size: int = 32) -> Arrays:
    x_tr, y_tr = class_images(train_per_class, seed, size)
    x_te, y_te = class_images(test_per_class, seed + 1, size)
    return Arrays(x_tr, y_tr, x_te, y_te)


def memory_cifar(train_per_class: int = 20, test_per_class: int = 5, seed: int = 0):
    """A tiny synthetic CIFAR-10 Dataset held in memory (no files)."""
    from robustmix.data.classes import CIFAR10_CLASSES
    from robustmix.data.datasets import Dataset

    a = cifar_arrays(train_per_class, test_per_class, seed=seed)
    return Dataset("cifar10", CIFAR10_CLASSES, a.x_train, a.y_train, a.x_test, a.y_test,
                   "memory", "CIFAR-10")


def fashion_arrays(train_per_class: int = 12, test_per_class: int = 4, seed: int = 5) -> Arrays:
    x_tr, y_tr = class_images(train_per_class, seed, 28, 1)
    x_te, y_te = class_images(test_per_class, seed + 1, 28, 1)
    return Arrays(x_tr, y_tr, x_te, y_te)


# --- CIFAR-10 pickles ------------------------------------------------------------------------

def _pickle_batch(x: np.ndarray, y: np.ndarray) -> bytes:
    """One CIFAR-10 batch: b"data" uint8 (N, 3072) with each row the CHW image, b"labels" list."""
    data = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(len(x), 3 * 32 * 32)
    return pickle.dumps({b"batch_label": b"synthetic", b"data": data,
                         b"labels": [int(v) for v in y], b"filenames": []})


def write_cifar_pickles(parent: Path, a: Arrays) -> Path:
    """parent/cifar-10-batches-py with data_batch_1..5, test_batch and batches.meta."""
    folder = Path(parent) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(len(a.y_train)), 5), start=1):
        (folder / f"data_batch_{i}").write_bytes(_pickle_batch(a.x_train[part], a.y_train[part]))
    (folder / "test_batch").write_bytes(_pickle_batch(a.x_test, a.y_test))
    (folder / "batches.meta").write_bytes(pickle.dumps(
        {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072}))
    return folder


def write_targz(src: Path, dest: Path, arcname: str | None = None) -> Path:
    """A .tar.gz of the folder src, stored under arcname (default: the folder's name)."""
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(src, arcname=arcname or Path(src).name)
    return dest


# --- image folders -----------------------------------------------------------------------------

def encode_image(img: np.ndarray, ext: str = ".png") -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
    if ext == ".png":
        im.save(buf, format="PNG")
    else:
        im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_image_folder(root: Path, a: Arrays, ext: str = ".png",
                       classes: tuple[str, ...] = CIFAR10_CLASSES) -> Path:
    """root/train/<class>/NNNNN.png and root/test/<class>/NNNNN.png."""
    root = Path(root)
    for split, x, y in (("train", a.x_train, a.y_train), ("test", a.x_test, a.y_test)):
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            d = root / split / classes[int(label)]
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{i:05d}{ext}").write_bytes(encode_image(img, ext))
    return root


# --- Fashion-MNIST IDX ---------------------------------------------------------------------------

def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


def write_fashion(folder: Path, a: Arrays, compress: bool = True) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    content = {"x_train": a.x_train[..., 0], "y_train": a.y_train,
               "x_test": a.x_test[..., 0], "y_test": a.y_test}
    for key, stem in FASHION_FILES.items():
        raw = idx_bytes(content[key])
        if compress:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(raw, mtime=0))
        else:
            (folder / stem).write_bytes(raw)
    return folder


# --- tree snapshots ------------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with, for files, size, mtime and content hash: to prove nothing changed."""
    root = Path(root)
    out: dict[str, tuple] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = ("dir",)
        for f in filenames:
            p = Path(dirpath) / f
            st = p.stat()
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns,
                                             hashlib.sha256(p.read_bytes()).hexdigest())
    return out


# --- CIFAR-10N-like label files --------------------------------------------------------------------

def human_label_arrays(clean: np.ndarray, seed: int = 0,
                       worker_error: tuple[float, float, float] = (0.17, 0.18, 0.18)
                       ) -> dict[str, np.ndarray]:
    """The six arrays of a CIFAR-10_human.pt for these clean labels: three simulated workers
    (each wrong with its rate, a wrong label uniform over the other classes), their majority
    vote (aggre; the first worker where all three differ) and a wrong worker label wherever one
    exists (worse)."""
    rng = np.random.default_rng(seed)
    clean = np.asarray(clean, dtype=np.int64)
    n = len(clean)
    workers = []
    for rate in worker_error:
        wrong = rng.random(n) < rate
        workers.append(np.where(wrong, (clean + rng.integers(1, 10, n)) % 10, clean))
    r1, r2, r3 = workers
    aggre = np.where((r2 == r3) & (r2 != r1), r2, r1)
    worse = clean.copy()
    for r in (r3, r2, r1):  # the first wrong worker label wins
        worse = np.where(r != clean, r, worse)
    return {"clean_label": clean, "aggre_label": aggre, "worse_label": worse,
            "random_label1": r1, "random_label2": r2, "random_label3": r3}


def write_human_labels(path: Path, arrays: dict) -> Path:
    """A torch.save file shaped like CIFAR-10_human.pt: a dict of int64 numpy arrays."""
    import torch

    torch.save({k: np.asarray(v) for k, v in arrays.items()}, path)
    return Path(path)


# The tiny study: trains in seconds on the tiny dataset. TOML values as the file spells them;
# conftest.study_toml writes it.
TINY_TRAIN = {"profile": '"quick"', "ratios": "[0.5]", "seeds": "[0]", "epochs": "1",
              "width": "4", "train_subset": "60", "val_n": "20", "precision": '"fp32"',
              "device": '"cpu"'}
TINY_METHODS = "[methods.erm]\n[methods.mixup]\nalpha = [1.0]"
# an [attack] table with one black-box source for every ratio
TINY_ATTACK = ('attacks = ["fgsm", "ifgsm"]\neps = [0, 8]\nsteps = 2\n'
               'source = { ratio = 0.5, method = "erm" }')


# --- command-line entry points in this process -----------------------------------------------------

def cli_in_process(main: Callable[[Sequence[str] | None], int], argv: Sequence[str],
                   cwd: Path | None = None, *, show_warnings: bool = True
                   ) -> subprocess.CompletedProcess:
    """main(argv) through run_main, as `python -m robustmix.X argv` runs it, in this process: a
    subprocess costs seconds of torch import on the 2-core machine, which a test of bad input
    spends on nothing it checks. Exit status, stdout and stderr come back as from
    subprocess.run, in cwd as the working directory (files a command wrongly writes relative to
    it land where the test looks). With show_warnings, every warning the interpreter's default
    filters would print is in stderr, as a subprocess would print it (pytest would otherwise
    record it silently, and a one-line-error check could not see it); an exception that
    run_main lets through is raised here, failing the test as the traceback fails the
    subprocess's check. A test per entry point still runs the real subprocess."""
    from robustmix.cli import run_main

    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()  # the interpreter's defaults (python -W unset), not pytest's
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                         ResourceWarning):
            warnings.simplefilter("ignore", category)
        if not show_warnings:  # as PYTHONWARNINGS=ignore, which some subprocess tests set
            warnings.simplefilter("ignore")
        try:
            if cwd is not None:
                os.chdir(cwd)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = run_main(main, list(argv))
        finally:
            os.chdir(old)
    text = err.getvalue() + "".join(
        warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in caught)
    return subprocess.CompletedProcess([main.__module__, *map(str, argv)], rc, out.getvalue(),
                                       text)
