"""Datasets: every CIFAR-10 format decodes to the same arrays, the cache, and bad sources."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import random
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    Arrays,
    cifar_arrays,
    encode_image,
    idx_bytes,
    write_cifar_pickles,
    write_fashion,
    write_image_folder,
    write_targz,
)

import robustmix.data.datasets as datasets
from robustmix.data.classes import CIFAR10_CLASSES, FASHION_CLASSES
from robustmix.data.datasets import cache_dir, load_dataset
from robustmix.errors import UsageError

REAL_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")
# The caller's cache, read before the per-test cache replaces it: the real CIFAR-10 copy (60,000
# JPEGs, ~15 s to decode) is decoded once and reused by later test sessions and by training.
CALLER_CACHE = Path(os.environ.get("ROBUSTMIX_CACHE", Path.home() / ".cache" / "robustmix"))


def assert_arrays(ds, a: Arrays) -> None:
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        ex, ey = getattr(a, f"x_{split}"), getattr(a, f"y_{split}")
        assert x.dtype == np.uint8 and y.dtype == np.int64
        assert x.shape == ex.shape
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


# --- formats ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["pickles", "pickles_parent", "pickles_targz", "png_tree",
                                 "png_parent", "png_targz"])
def test_every_cifar_format_gives_the_written_arrays(tiny, fmt):
    path = getattr(tiny, fmt)
    ds = load_dataset("cifar10", path)
    assert_arrays(ds, tiny.arrays)
    assert ds.classes == CIFAR10_CLASSES and ds.num_classes == 10 and ds.channels == 3
    assert ds.source == str(path)
    assert ds.description == "CIFAR-10"


def test_formats_agree_with_each_other(tiny):
    loaded = [load_dataset("cifar10", p, use_cache=False)
              for p in (tiny.pickles, tiny.pickles_targz, tiny.png_tree, tiny.png_targz)]
    for ds in loaded[1:]:
        for k in ("x_train", "y_train", "x_test", "y_test"):
            np.testing.assert_array_equal(getattr(ds, k), getattr(loaded[0], k))


def test_pickle_order_is_kept_with_labels_attached(tmp_path):
    a = cifar_arrays(3, 2, seed=2)
    perm = np.random.default_rng(0).permutation(len(a.y_train))
    shuffled = Arrays(a.x_train[perm], a.y_train[perm], a.x_test, a.y_test)
    ds = load_dataset("cifar10", write_cifar_pickles(tmp_path, shuffled))
    assert_arrays(ds, shuffled)


def test_archive_member_order_does_not_matter(tmp_path, tiny):
    """A tar written in reverse order decodes to the same arrays as the folder."""
    files = sorted(p for p in tiny.png_tree.rglob("*.png"))
    dest = tmp_path / "reversed.tar.gz"
    with tarfile.open(dest, "w:gz") as tar:
        for p in reversed(files):
            tar.add(p, arcname=str(Path("x") / p.relative_to(tiny.png_tree)))
    assert_arrays(load_dataset("cifar10", dest), tiny.arrays)


def write_tree_archive(tree: Path, dest: Path, order: str, seed: int = 0) -> list[str]:
    """A .tar.gz of the image tree `tree` under "x/", its members (folders and files) stored in
    sorted name order or in a random order; returns the file members' names in archive order."""
    paths = sorted(tree.rglob("*"))
    if order == "shuffled":
        random.Random(seed).shuffle(paths)
        assert paths != sorted(paths)
    with tarfile.open(dest, "w:gz") as tar:
        for p in paths:
            tar.add(p, arcname=str(Path("x") / p.relative_to(tree)), recursive=False)
    return [str(Path("x") / p.relative_to(tree)) for p in paths if p.is_file()]


def test_shuffled_and_sorted_archives_decode_identically(tmp_path, tiny):
    """Members stored in a random order give the same arrays, bit for bit, as members stored in
    sorted order, and both give the written arrays (grouped by class, in file-name order)."""
    got = {}
    for order in ("sorted", "shuffled"):
        path = tmp_path / f"{order}.tar.gz"
        write_tree_archive(tiny.png_tree, path, order, seed=7)
        got[order] = load_dataset("cifar10", path, use_cache=False)
        assert_arrays(got[order], tiny.arrays)
        assert got[order].description == "CIFAR-10"
    for k in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(got["shuffled"], k), getattr(got["sorted"], k))
    assert got["shuffled"].fingerprint("train") == got["sorted"].fingerprint("train")
    assert got["shuffled"].test_fingerprint() == got["sorted"].test_fingerprint()


def _record_reads(monkeypatch) -> tuple[list[str], list[tuple[int, int]]]:
    """Record the member names extracted from any tar, in order, and every backward seek on a
    gzip stream (each one restarts decompression from the start of the file)."""
    extracted: list[str] = []
    backward: list[tuple[int, int]] = []
    real_extract, real_seek = tarfile.TarFile.extractfile, gzip.GzipFile.seek

    def extractfile(self, member):
        extracted.append(member if isinstance(member, str) else member.name)
        return real_extract(self, member)

    def seek(self, offset, whence=io.SEEK_SET):
        if self.mode == gzip.READ and whence == io.SEEK_SET:
            here = real_seek(self, 0, io.SEEK_CUR)
            if offset < here:
                backward.append((here, offset))
        return real_seek(self, offset, whence)

    monkeypatch.setattr(tarfile.TarFile, "extractfile", extractfile)
    monkeypatch.setattr(gzip.GzipFile, "seek", seek)
    return extracted, backward


def test_image_archive_is_read_once_in_archive_order(tmp_path, tiny, monkeypatch):
    """No random access by name: each member is extracted once, in the order the archive stores
    it, and the gzip stream never seeks backwards."""
    path = tmp_path / "shuffled.tar.gz"
    members = write_tree_archive(tiny.png_tree, path, "shuffled", seed=3)
    extracted, backward = _record_reads(monkeypatch)
    ds = load_dataset("cifar10", path, use_cache=False)
    assert extracted == members
    assert backward == []
    assert_arrays(ds, tiny.arrays)


def test_pickle_archive_is_read_once_in_archive_order(tmp_path, tiny, monkeypatch):
    """The same for a cifar-10-python.tar.gz whose batches are stored out of order (as the
    canonical archive stores them)."""
    names = ["data_batch_4", "readme.html", "test_batch", "data_batch_3", "batches.meta",
             "data_batch_2", "data_batch_5", "data_batch_1"]
    (tmp_path / "readme.html").write_text("synthetic")
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for n in names:
            src = tmp_path / n if n == "readme.html" else tiny.pickles / n
            tar.add(src, arcname=f"cifar-10-batches-py/{n}")
    extracted, backward = _record_reads(monkeypatch)
    ds = load_dataset("cifar10", path, use_cache=False)
    batches = [f"cifar-10-batches-py/{n}" for n in names if n.startswith(("data_", "test_"))]
    assert extracted == batches
    assert backward == []
    assert_arrays(ds, tiny.arrays)


def test_unreadable_image_in_an_archive_is_a_usage_error(tmp_path, tiny):
    tree = shutil.copytree(tiny.png_tree, tmp_path / "tree")
    sorted((tree / "train" / "cat").glob("*.png"))[1].write_bytes(b"not an image")
    path = tmp_path / "broken.tar.gz"
    write_tree_archive(tree, path, "shuffled")
    assert_usage_error(path)


def test_jpeg_tree_is_described_as_the_jpeg_copy(tmp_path):
    a = cifar_arrays(2, 2, seed=3)
    ds = load_dataset("cifar10", write_image_folder(tmp_path / "jpg", a, ext=".jpg"))
    assert ds.description == "CIFAR-10, JPEG copy (lossy)"
    assert ds.x_train.shape == a.x_train.shape
    np.testing.assert_array_equal(ds.y_train, a.y_train)
    # Lossy (the pixel noise suffers), but every image keeps its colour.
    diff = ds.x_train.mean((1, 2), dtype=float) - a.x_train.mean((1, 2), dtype=float)
    assert np.abs(diff).max() < 6


def test_jpeg_archive_is_described_by_its_content(tmp_path):
    tree = write_image_folder(tmp_path / "imgs", cifar_arrays(1, 1, seed=3), ext=".jpg")
    ds = load_dataset("cifar10", write_targz(tree, tmp_path / "images.tar.gz"))
    assert ds.description == "CIFAR-10, JPEG copy (lossy)"
    shared_name = load_dataset("cifar10", write_targz(tree, tmp_path / "cifar10-jpeg.tar.gz"))
    assert shared_name.description == "CIFAR-10, JPEG q75 copy"
    png = write_image_folder(tmp_path / "png", cifar_arrays(1, 1, seed=3), ext=".png")
    assert load_dataset("cifar10", write_targz(png, tmp_path / "cifar10-jpeg-named.tar.gz")).description == "CIFAR-10"


@pytest.mark.parametrize("fmt", ["fashion_dir", "fashion_raw_dir"])
def test_fashion_idx_files(tiny, fmt):
    ds = load_dataset("fashion-mnist", getattr(tiny, fmt))
    assert_arrays(ds, tiny.fashion)
    assert ds.x_train.shape[1:] == (28, 28, 1) and ds.channels == 1
    assert ds.classes == FASHION_CLASSES and ds.description == "Fashion-MNIST"
    mean, std = ds.channel_stats()
    assert mean == pytest.approx([tiny.fashion.x_train.mean() / 255])
    assert std == pytest.approx([tiny.fashion.x_train.std() / 255])


def test_default_path_comes_from_environment(tiny, monkeypatch):
    monkeypatch.setenv("ROBUSTMIX_DATA", str(tiny.pickles))
    ds = load_dataset("cifar10")
    assert ds.source == str(tiny.pickles)
    assert_arrays(ds, tiny.arrays)


# --- cache -----------------------------------------------------------------------------------

def _fail(*_a, **_k):
    raise AssertionError("decoder called although the cache holds this source")


@pytest.mark.parametrize("fmt", ["pickles", "png_targz"])
def test_second_load_comes_from_cache(tiny, fmt, monkeypatch):
    path = getattr(tiny, fmt)
    load_dataset("cifar10", path)
    cached = list(cache_dir().glob("cifar10-*.npz"))
    assert len(cached) == 1
    monkeypatch.setattr(datasets, "decode_cifar10", _fail)
    ds = load_dataset("cifar10", path)
    assert_arrays(ds, tiny.arrays)
    assert ds.source == str(path)


def test_fashion_is_cached_too(tiny, monkeypatch):
    load_dataset("fashion-mnist", tiny.fashion_dir)
    monkeypatch.setattr(datasets, "decode_fashion", _fail)
    assert_arrays(load_dataset("fashion-mnist", tiny.fashion_dir), tiny.fashion)


def test_use_cache_false_neither_reads_nor_writes(tiny, monkeypatch):
    load_dataset("cifar10", tiny.pickles, use_cache=False)
    assert not list(cache_dir().glob("*.npz"))
    # With a cache entry present, use_cache=False still decodes the source and leaves it alone.
    load_dataset("cifar10", tiny.pickles)
    (cached,) = cache_dir().glob("cifar10-*.npz")
    before = cached.stat().st_mtime_ns, cached.read_bytes()
    calls = _counting_decoder(monkeypatch)
    assert_arrays(load_dataset("cifar10", tiny.pickles, use_cache=False), tiny.arrays)
    assert calls == [tiny.pickles]
    assert (cached.stat().st_mtime_ns, cached.read_bytes()) == before


def _counting_decoder(monkeypatch):
    calls = []
    real = datasets.decode_cifar10

    def decode(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(datasets, "decode_cifar10", decode)
    return calls


def test_changed_pickle_is_decoded_again(tiny, tmp_path, monkeypatch):
    folder = shutil.copytree(tiny.pickles, tmp_path / "cifar-10-batches-py")
    calls = _counting_decoder(monkeypatch)
    load_dataset("cifar10", folder)
    load_dataset("cifar10", folder)
    assert len(calls) == 1
    # Rewrite the batches with the test images in reverse order (same sizes, new content).
    a = tiny.arrays
    changed = Arrays(a.x_train, a.y_train, a.x_test[::-1].copy(), a.y_test[::-1].copy())
    write_cifar_pickles(tmp_path, changed)
    ds = load_dataset("cifar10", folder)
    assert len(calls) == 2
    assert_arrays(ds, changed)


def test_touched_archive_is_decoded_again(tiny, tmp_path, monkeypatch):
    path = Path(shutil.copy(tiny.pickles_targz, tmp_path / "cifar-10-python.tar.gz"))
    calls = _counting_decoder(monkeypatch)
    load_dataset("cifar10", path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    load_dataset("cifar10", path)
    assert len(calls) == 2


def test_modified_png_is_decoded_again(tiny, tmp_path, monkeypatch):
    tree = shutil.copytree(tiny.png_tree, tmp_path / "tree")
    calls = _counting_decoder(monkeypatch)
    before = load_dataset("cifar10", tree)
    first = sorted((tree / "test" / "airplane").glob("*.png"))[0]
    new = np.zeros((32, 32, 3), dtype=np.uint8)
    first.write_bytes(encode_image(new))
    after = load_dataset("cifar10", tree)
    assert len(calls) == 2
    np.testing.assert_array_equal(after.x_test[0], new)
    assert not np.array_equal(before.x_test[0], new)


def test_damaged_cache_is_rebuilt(tiny):
    load_dataset("cifar10", tiny.pickles)
    (cached,) = cache_dir().glob("cifar10-*.npz")
    cached.write_bytes(b"not an npz")
    assert_arrays(load_dataset("cifar10", tiny.pickles), tiny.arrays)
    assert cached.read_bytes() != b"not an npz"


# --- bad sources -----------------------------------------------------------------------------

def assert_usage_error(path: Path, name: str = "cifar10") -> str:
    with pytest.raises(UsageError) as e:
        load_dataset(name, path)
    msg = str(e.value)
    assert str(path) in msg
    assert "\n" not in msg and msg.strip()
    assert not list(cache_dir().glob("*.npz"))  # nothing bad is ever cached
    return msg


def test_missing_path(tmp_path):
    assert "does not exist" in assert_usage_error(tmp_path / "nowhere")


def test_garbage_archive(tmp_path):
    p = tmp_path / "cifar-10-python.tar.gz"
    p.write_bytes(os.urandom(5000))
    assert_usage_error(p)


def test_truncated_archive(tiny, tmp_path):
    raw = tiny.pickles_targz.read_bytes()
    p = tmp_path / "cifar-10-python.tar.gz"
    p.write_bytes(raw[: len(raw) // 2])
    assert_usage_error(p)


def test_gzip_of_something_else(tmp_path):
    p = tmp_path / "data.tar.gz"
    p.write_bytes(gzip.compress(b"hello " * 1000))
    assert_usage_error(p)


def test_archive_without_cifar(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "readme.txt").write_text("nothing here")
    p = write_targz(tmp_path / "stuff", tmp_path / "stuff.tar.gz")
    assert_usage_error(p)


def test_folder_without_cifar(tmp_path):
    (tmp_path / "empty" / "misc").mkdir(parents=True)
    assert_usage_error(tmp_path / "empty")


def test_pickle_folder_missing_a_batch(tiny, tmp_path):
    folder = shutil.copytree(tiny.pickles, tmp_path / "cifar-10-batches-py")
    (folder / "test_batch").unlink()
    assert_usage_error(folder)


def test_pickle_with_wrong_row_length(tmp_path):
    folder = write_cifar_pickles(tmp_path, cifar_arrays(2, 2, seed=0))
    bad = {b"data": np.zeros((7, 1000), dtype=np.uint8), b"labels": [0] * 7}
    (folder / "test_batch").write_bytes(pickle.dumps(bad))
    assert_usage_error(folder)


@pytest.mark.parametrize("archive", [False, True])
def test_wrongly_shaped_images(tmp_path, archive):
    tree = write_image_folder(tmp_path / "small", cifar_arrays(2, 2, seed=0, size=16))
    path = write_targz(tree, tmp_path / "small.tar.gz") if archive else tree
    msg = assert_usage_error(path)
    assert "16x16" in msg


@pytest.mark.parametrize("archive", [False, True])
def test_unknown_class_folder(tmp_path, archive):
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "boat",
               "truck")
    tree = write_image_folder(tmp_path / "odd", cifar_arrays(1, 2, seed=0), classes=classes)
    path = write_targz(tree, tmp_path / "odd.tar.gz") if archive else tree
    assert "boat" in assert_usage_error(path)


def test_tree_without_test_images(tmp_path):
    a = cifar_arrays(1, 2, seed=0)
    tree = write_image_folder(tmp_path / "t", a)
    shutil.rmtree(tree / "test")
    (tree / "test").mkdir()
    assert_usage_error(tree)


def test_fashion_missing_file(tiny, tmp_path):
    folder = shutil.copytree(tiny.fashion_dir, tmp_path / "f")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    assert "t10k-labels" in assert_usage_error(folder, "fashion-mnist")


def test_fashion_corrupt_idx(tiny, tmp_path):
    folder = shutil.copytree(tiny.fashion_dir, tmp_path / "f")
    raw = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-10]))
    assert_usage_error(folder, "fashion-mnist")


def test_fashion_wrong_image_size(tmp_path):
    a = cifar_arrays(1, 2, seed=0)
    grey = Arrays(a.x_train[..., :1], a.y_train, a.x_test[..., :1], a.y_test)
    assert "28, 28, 1" in assert_usage_error(write_fashion(tmp_path / "f", grey), "fashion-mnist")


def test_fashion_needs_a_folder(tiny, tmp_path):
    assert_usage_error(tiny.fashion_dir / "train-images-idx3-ubyte.gz", "fashion-mnist")


def test_unknown_dataset(tiny):
    with pytest.raises(UsageError, match="unknown dataset"):
        load_dataset("mnist", tiny.pickles)


# --- real data (skipped where absent) ----------------------------------------------------------

@pytest.mark.skipif(not REAL_CIFAR.exists(), reason=f"{REAL_CIFAR} not present")
def test_real_cifar10_jpeg_copy(monkeypatch):
    monkeypatch.setenv("ROBUSTMIX_CACHE", str(CALLER_CACHE))
    ds = load_dataset("cifar10", REAL_CIFAR)
    assert ds.x_train.shape == (50000, 32, 32, 3) and ds.x_test.shape == (10000, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=10), [5000] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=10), [1000] * 10)
    assert ds.description == "CIFAR-10, JPEG q75 copy"
    every = np.concatenate([ds.x_train, ds.x_test]).reshape(-1, 3)
    means = every.mean(0, dtype=np.float64) / 255
    np.testing.assert_allclose(means, (0.4917, 0.4826, 0.4472), atol=0.003)


@pytest.mark.skipif(not REAL_FASHION.exists(), reason=f"{REAL_FASHION} not installed")
def test_real_fashion_mnist():
    ds = load_dataset("fashion-mnist", REAL_FASHION)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=10), [1000] * 10)


def test_unwritable_cache_does_not_stop_loading(tiny, monkeypatch):
    monkeypatch.setenv("ROBUSTMIX_CACHE", "/proc/robustmix-cache")
    ds = load_dataset("cifar10", tiny.pickles)
    assert_arrays(ds, tiny.arrays)
