"""Tiny real datasets and trained runs on disk for the attack tests (importable helpers)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import cifar_arrays, fashion_arrays, snapshot, write_cifar_pickles
from helpers import write_fashion as write_fashion_idx

__all__ = ["ROOT", "env", "snapshot", "train", "attack_cli", "copy_run", "write_cifar", "write_fashion"]

ROOT = Path(__file__).resolve().parents[1]


def write_cifar(folder: Path, per_class: int = 10, seed: int = 0) -> Path:
    """A synthetic cifar-10-batches-py folder of learnable coloured images (tests/helpers.py)."""
    return write_cifar_pickles(folder, cifar_arrays(per_class, 2, seed=seed))  # 100 train, 20 test


def write_fashion(folder: Path, per_class: int = 10, seed: int = 0) -> Path:
    """Synthetic gzipped Fashion-MNIST IDX files (tests/helpers.py)."""
    return write_fashion_idx(folder, fashion_arrays(per_class, 2, seed=seed))


def env(cache: Path) -> dict:
    e = dict(os.environ, OMP_NUM_THREADS="1", ROBUSTMIX_CACHE=str(cache), PYTHONWARNINGS="ignore")
    e.pop("ROBUSTMIX_DATA", None)
    return e


def train(data: Path, out: Path, cache: Path, *extra: str, method: str = "erm") -> Path:
    """Train one tiny run (1 epoch, width 4, 60 images, fp32) with the real CLI; its directory."""
    cmd = [sys.executable, "-m", "robustmix.noise", "--ratio", "0.5", "--methods", method,
           "--epochs", "1", "--width", "4", "--train-subset", "60", "--data", str(data),
           "--out", str(out), "--quiet", "--precision", "fp32", "--device", "cpu", "--profile", "quick", "--val-n", "20", *extra]
    res = subprocess.run(cmd, env=env(cache), capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"training failed:\n{res.stdout}\n{res.stderr}")
    runs = sorted(p.parent for p in out.glob("*/summary.json"))
    return runs[-1]


def attack_cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "robustmix.attack", *map(str, args)]
    return subprocess.run(cmd, env=env(cache), capture_output=True, text=True, cwd=ROOT)


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest
