"""Shared fixtures: a private dataset cache per test, tiny datasets in every format, one thread
for tests of tiny models, and the tiny study file the study tests build on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import (
    TINY_METHODS,
    TINY_TRAIN,
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


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: a second thread only adds synchronisation (and, on a busy machine, waits).
    A module asks for it with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def study_toml(tmp_path, request) -> Callable[..., Path]:
    """Writes a study file and returns its path: the tiny study (TINY_TRAIN, TINY_METHODS) on
    the tiny dataset's pickles, runs in root/runs and its report in root/report (root:
    tmp_path), the file named file in root (or file, a path). train overrides TINY_TRAIN's keys
    (None leaves one out), train_extra adds lines to [train], body follows the methods, and
    attack, if given, is the [attack] table (TINY_ATTACK: one source for every ratio)."""

    def write(body: str = "", *, name: str = "tiny", file: str | Path = "study.toml",
              root: Path | None = None, out: Path | str | None = None,
              report: Path | str | None = None, data: Path | str | None = "tiny",
              dataset: bool = True, train: dict[str, str | None] | None = None,
              train_extra: str = "", methods: str = TINY_METHODS,
              attack: str | None = None) -> Path:
        root = tmp_path if root is None else root
        if data == "tiny":
            data = request.getfixturevalue("tiny").pickles
        keys = {k: v for k, v in {**TINY_TRAIN, **(train or {})}.items() if v is not None}
        text = (f'\nname = "{name}"\nout = "{out if out is not None else root / "runs"}"\n'
                f'report = "{report if report is not None else root / "report"}"\n')
        if data is not None:
            text += ('\n[data]\n' + ('dataset = "cifar10"\n' if dataset else "")
                     + f'path = "{data}"\n')
        text += "\n[train]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
        text += (train_extra + "\n" if train_extra else "") + f"\n{methods}\n{body}\n"
        if attack is not None:
            text += f"\n[attack]\n{attack}\n"
        path = root / file  # file itself where it is an absolute path
        path.write_text(text)
        return path

    return write


@pytest.fixture
def cheap_autoattack(monkeypatch):
    """AutoAttack with 2 iterations per stage and 10 Square queries: where a test checks the
    bookkeeping of tiny runs (rows, outcomes, robustbench.json), not AutoAttack itself
    (tests/test_attacks_strong.py does that)."""
    from robustmix.attacks import autoattack

    init = autoattack.AutoAttack.__init__

    def cheap(self, model, seed=0, precision="fp32", **_):
        init(self, model, seed, precision, steps=2, queries=10)

    monkeypatch.setattr(autoattack.AutoAttack, "__init__", cheap)
