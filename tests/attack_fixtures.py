"""Tiny real datasets and trained runs on disk for the attack tests (importable helpers)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers import cifar_arrays, fashion_arrays, snapshot, write_cifar_pickles
from helpers import write_fashion as write_fashion_idx

__all__ = ["ROOT", "TRAIN", "env", "snapshot", "train", "attack_cli", "copy_run", "write_cifar",
           "write_fashion", "trained_world"]

ROOT = Path(__file__).resolve().parents[1]
# `python -m robustmix.noise` arguments of a tiny run: 1 epoch, width 4, 60 images, fp32, CPU
TRAIN = ["--ratio", "0.5", "--epochs", "1", "--width", "4", "--train-subset", "60", "--quiet",
         "--precision", "fp32", "--device", "cpu", "--profile", "quick", "--val-n", "20"]


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


@contextmanager
def trained_world(root: Path, methods: str = "erm") -> Iterator[Path]:
    """Tiny runs trained in this process for one epoch under root: the CIFAR-format runs of
    `methods` in root/runs and one Fashion-MNIST ERM run in root/fruns, with root/cache as the
    dataset cache while the block runs (the variable is restored after)."""
    from robustmix import noise
    from robustmix.cli import run_main

    old = os.environ.get("ROBUSTMIX_CACHE")
    os.environ["ROBUSTMIX_CACHE"] = str(root / "cache")
    try:
        cifar = write_cifar(root / "cifar")
        fashion = write_fashion(root / "fashion")
        assert run_main(noise.main, [*TRAIN, "--methods", methods, "--data", str(cifar),
                                     "--out", str(root / "runs")]) == 0
        assert run_main(noise.main, [*TRAIN, "--methods", "erm", "--dataset", "fashion-mnist",
                                     "--data", str(fashion), "--out", str(root / "fruns")]) == 0
        yield root
    finally:
        if old is None:
            os.environ.pop("ROBUSTMIX_CACHE", None)
        else:
            os.environ["ROBUSTMIX_CACHE"] = old
