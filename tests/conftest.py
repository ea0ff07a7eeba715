"""Shared fixtures: a private dataset cache per test and tiny datasets in every format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import (
    Arrays,
    cifar_arrays,
    fashion_arrays,
    write_cifar_pickles,
    write_fashion,
    write_image_folder,
    write_targz,
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets an empty dataset cache and no $ROBUSTMIX_DATA from the caller's shell."""
    monkeypatch.setenv("ROBUSTMIX_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("ROBUSTMIX_DATA", raising=False)


@dataclass
class Tiny:
    """One set of synthetic CIFAR-10 images written in every format (read-only for tests)."""

    arrays: Arrays
    pickles: Path  # .../cifar-10-batches-py
    pickles_parent: Path  # the folder holding cifar-10-batches-py
    pickles_targz: Path  # cifar-10-python.tar.gz
    png_tree: Path  # folder with train/<class>/ and test/<class>/
    png_parent: Path  # a folder whose only child is such a tree
    png_targz: Path  # .tar.gz of the tree
    fashion: Arrays
    fashion_dir: Path  # gzipped IDX files
    fashion_raw_dir: Path  # uncompressed IDX files


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Tiny:
    root = tmp_path_factory.mktemp("tiny")
    a = cifar_arrays()
    pickles = write_cifar_pickles(root / "pickles", a)
    targz = write_targz(pickles, root / "cifar-10-python.tar.gz")
    tree = write_image_folder(root / "png" / "cifar10-png", a)
    png_targz = write_targz(tree, root / "cifar10-png.tar.gz")
    f = fashion_arrays()
    return Tiny(a, pickles, pickles.parent, targz, tree, tree.parent, png_targz, f,
                write_fashion(root / "fashion", f), write_fashion(root / "fashion-raw", f, False))
