"""Tiny real datasets and trained runs on disk for the attack tests (importable helpers)."""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_cifar(folder: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """A synthetic cifar-10-batches-py folder: data_batch_1..5 and test_batch, per_batch images
    each, labels cycling through the 10 classes, with a faint class-dependent colour so a model
    can learn a little."""
    rng = np.random.default_rng(seed)
    out = folder / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [int(i % 10) for i in range(per_batch)]
        x = rng.integers(0, 256, size=(per_batch, 3, 32, 32)).astype(np.float64)
        for i, c in enumerate(labels):
            x[i, c % 3] = 0.5 * x[i, c % 3] + 12 * c
        data = np.clip(x, 0, 255).astype(np.uint8).reshape(per_batch, 3072)
        (out / name).write_bytes(pickle.dumps({b"data": data, b"labels": labels}))
    return out


def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return gzip.compress(header + arr.astype(np.uint8).tobytes())


def write_fashion(folder: Path, n_train: int = 100, n_test: int = 20, seed: int = 0) -> Path:
    """Synthetic Fashion-MNIST IDX files (gzipped)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(
            _idx(rng.integers(0, 256, size=(n, 28, 28))))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(_idx(np.arange(n) % 10))
    return folder


def env(cache: Path) -> dict:
    e = dict(os.environ, OMP_NUM_THREADS="1", ROBUSTMIX_CACHE=str(cache), PYTHONWARNINGS="ignore")
    e.pop("ROBUSTMIX_DATA", None)
    return e


def train(data: Path, out: Path, cache: Path, *extra: str, method: str = "erm") -> Path:
    """Train one tiny run (1 epoch, width 4, 60 images, fp32) with the real CLI; its directory."""
    cmd = [sys.executable, "-m", "robustmix.noise", "--ratio", "0.5", "--methods", method,
           "--epochs", "1", "--width", "4", "--train-subset", "60", "--data", str(data),
           "--out", str(out), "--quiet", "--precision", "fp32", "--device", "cpu", *extra]
    res = subprocess.run(cmd, env=env(cache), capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"training failed:\n{res.stdout}\n{res.stderr}")
    runs = sorted(p.parent for p in out.glob("*/summary.json"))
    return runs[-1]


def attack_cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "robustmix.attack", *map(str, args)]
    return subprocess.run(cmd, env=env(cache), capture_output=True, text=True, cwd=ROOT)


def snapshot(folder: Path) -> dict:
    """Every file under folder with its size, mtime and contents' hash, to prove nothing changed."""
    import hashlib

    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns,
                                         hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest
