"""Noise sources beyond sym/asym: transition matrices, instance-dependent noise (Xia et al. 2020)
and CIFAR-10N's human labels (safe loading, alignment with every CIFAR-10 format), on synthetic
data and, where ../shared/data is present, on the real files."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    Arrays,
    cifar_arrays,
    encode_image,
    human_label_arrays,
    write_cifar_pickles,
    write_human_labels,
    write_image_folder,
)

from robustmix.data import cifar10n, transition
from robustmix.data.classes import CIFAR10_CLASSES
from robustmix.data.datasets import Dataset, load_dataset
from robustmix.data.idn import idn_labels, idn_model, mean_flip_rate
from robustmix.data.labelnoise import (
    NoiseSpec,
    actual_noise_rate,
    corrupt_labels,
    noisy_labels,
    resolve_file,
)
from robustmix.errors import UsageError
from robustmix.training.config import TrainConfig, make_config
from robustmix.training.labels import make_labels, noise_record

K = 10
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_CIFAR = SHARED / "cifar10-jpeg.tar.gz"
REAL_HUMAN = SHARED / "cifar10n" / "CIFAR-10_human.pt"
CALLER_CACHE = Path(os.environ.get("ROBUSTMIX_CACHE", Path.home() / ".cache" / "robustmix"))


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(a).astype("<i8").tobytes()).hexdigest()[:16]


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return np.random.default_rng(1).permutation(np.repeat(np.arange(K), 5000))


# --- sym and asym: bit-identical to the labels robustmix drew before the new sources -------------

# sha256 (16 hex) of corrupt_labels(labels, r, noise, 10, seed) computed with robustmix at commit
# b699d74, before the new sources existed: the same seed must keep giving the same labels.
PINNED = {("sym", 0.5, 0): "d7d1c55d4fc5c3e0", ("sym", 0.8, 3): "542ab162f98c219c",
          ("asym", 0.4, 0): "e5f828d3a5e1f769", ("asym", 0.2, 7): "a4a78c86ec481596"}


@pytest.mark.parametrize("key", list(PINNED), ids=lambda k: f"{k[0]}{k[1]}-seed{k[2]}")
def test_sym_and_asym_labels_are_unchanged(labels, key):
    noise, ratio, seed = key
    assert digest(corrupt_labels(labels, ratio, noise, K, seed)) == PINNED[key]
    # ... and what a run trains on goes through the same draw.
    x = np.zeros((len(labels), 1, 1, 3), dtype=np.uint8)
    ds = Dataset("cifar10", CIFAR10_CLASSES, x, labels.copy(), x[:10], labels[:10], "mem", "t")
    spec = NoiseSpec(noise, ratio)
    assert digest(noisy_labels(spec, ds, seed)) == PINNED[key]
    cfg = TrainConfig(noise=noise, ratio=ratio, noise_seed=seed, train_subset=None)
    assert digest(make_labels(cfg, ds).noisy) == PINNED[key]
    assert cfg.run_name.startswith(f"cifar10_{noise}{ratio:g}_")  # names of existing runs stay
    assert "noise_file" not in cfg.to_dict()  # configs of existing runs still compare equal


# --- matrix ----------------------------------------------------------------------------------------

def random_t(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.dirichlet(np.full(K, 0.5), size=K)
    t[np.arange(K), np.arange(K)] += 2.0  # mostly right, like real noise
    return t / t.sum(1, keepdims=True)


def test_matrix_noise_reproduces_t_within_sampling_error():
    t = random_t()
    y = np.repeat(np.arange(K), 10000)
    noisy = transition.sample_from_matrix(y, t, seed=4)
    got = transition.row_normalise(transition.transition_counts(y, noisy, K))
    se = np.sqrt(t * (1 - t) / 10000)
    assert (np.abs(got - t) <= 4.5 * se + 1e-12).all(), np.abs(got - t).max()
    # Deterministic from the seed; another seed draws other labels with the same statistics.
    np.testing.assert_array_equal(noisy, transition.sample_from_matrix(y, t, seed=4))
    other = transition.sample_from_matrix(y, t, seed=5)
    assert np.mean(other != noisy) > 0.2
    # The identity changes nothing; a permutation matrix moves every label.
    np.testing.assert_array_equal(transition.sample_from_matrix(y, np.eye(K), 0), y)
    shift = np.roll(np.eye(K), 1, axis=1)
    np.testing.assert_array_equal(transition.sample_from_matrix(y, shift, 0), (y + 1) % K)


def test_matrix_file_round_trip_csv_and_npy(tmp_path):
    t = random_t(1)
    csv = tmp_path / "t.csv"
    transition.write_matrix(csv, t, CIFAR10_CLASSES)
    back = transition.read_matrix(csv, K)
    np.testing.assert_allclose(back, t, atol=1e-5)  # 6 decimals, renormalised
    np.testing.assert_allclose(back.sum(1), 1.0, atol=1e-12)
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(",".join(f"{v:.4f}" for v in row) for row in t))
    np.testing.assert_allclose(transition.read_matrix(plain, K), t, atol=5e-4)
    npy = tmp_path / "t.npy"
    np.save(npy, t)
    np.testing.assert_allclose(transition.read_matrix(npy, K), t)


BAD_MATRICES = {
    "not square": (np.full((10, 9), 1 / 9), "square"),
    "negative entry": (np.eye(10) * 1.2 - 0.02, "negative"),
    "row not summing to 1": (np.eye(10) * 0.9, "sums to"),
    "other classes": (np.eye(5), "10 classes"),
    "not finite": (np.where(np.eye(10) > 0, np.nan, 0.0), "non-finite"),
}


@pytest.mark.parametrize("case", list(BAD_MATRICES))
def test_bad_matrix_is_refused(tmp_path, case):
    t, fragment = BAD_MATRICES[case]
    for path in (tmp_path / "t.npy", tmp_path / "t.csv"):
        if path.suffix == ".npy":
            np.save(path, t)
        else:
            path.write_text("\n".join(",".join(repr(float(v)) for v in row) for row in t))
        with pytest.raises(UsageError, match=fragment):
            transition.read_matrix(path, K)


def test_unreadable_matrix_files(tmp_path):
    text = tmp_path / "t.csv"
    for bad in ("1,0\n0\n", "1,0\n0,one\n"):
        text.write_text(bad)
        with pytest.raises(UsageError, match="cannot read"):
            transition.read_matrix(text, K)
    pickled = tmp_path / "t.npy"
    np.save(pickled, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match="cannot read"):  # never unpickled
        transition.read_matrix(pickled, K)
    other = tmp_path / "t.json"
    other.write_text("[[1]]")
    with pytest.raises(UsageError, match=".csv or .npy"):
        transition.read_matrix(other, K)
    with pytest.raises(UsageError, match="does not exist"):
        transition.read_matrix(tmp_path / "missing.csv", K)


# --- idn ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def idn_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 20000
    return rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8), rng.integers(0, K, n)


@pytest.mark.parametrize("ratio", [0.2, 0.4])
def test_idn_rate_is_close_to_r_and_deterministic(idn_data, ratio):
    x, y = idn_data
    noisy = idn_labels(x, y, ratio, K, seed=3)
    rate = actual_noise_rate(y, noisy)
    assert abs(rate - mean_flip_rate(ratio)) < 0.012 and abs(rate - ratio) < 0.02, rate
    np.testing.assert_array_equal(noisy, idn_labels(x, y, ratio, K, seed=3))
    assert np.mean(idn_labels(x, y, ratio, K, seed=4) != noisy) > ratio / 2
    np.testing.assert_array_equal(idn_labels(x, y, 0.0, K, seed=3), y)


def test_idn_flip_probability_follows_the_per_image_score(idn_data):
    """The paper's per-image score is the instance flip rate q_i ~ N(r, 0.1²) truncated to
    [0, 1]: image i's label flips with probability q_i, so flips must track q."""
    x, y = idn_data
    q, p, _ = idn_model(x, y, 0.4, K, seed=3)
    rows = np.arange(len(y))
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(p[rows, y], 1 - q, atol=1e-12)
    assert 0.08 < q.std() < 0.11 and q.min() >= 0 and q.max() <= 1
    flipped = idn_labels(x, y, 0.4, K, seed=3) != y
    assert np.corrcoef(q, flipped)[0, 1] > 0.12  # about 0.2 in theory; 0 if q were ignored
    edges = np.quantile(q, np.linspace(0, 1, 6))
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (q >= lo) & (q <= hi)
        se = np.sqrt(q[sel].mean() * (1 - q[sel].mean()) / sel.sum())
        assert abs(flipped[sel].mean() - q[sel].mean()) < 4 * se


def test_idn_flip_target_depends_on_the_image():
    """Where a label flips to is set by the image's pixels: copies of one image flip mostly to
    one class, while symmetric noise spreads them over the nine others."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (40, 4, 4, 3), dtype=np.uint8)
    x = np.repeat(base, 250, axis=0)
    y = np.repeat(rng.integers(0, K, 40), 250)
    noisy = idn_labels(x, y, 0.5, K, seed=0)
    top, targets = [], set()
    for i in range(40):
        got = noisy[i * 250:(i + 1) * 250]
        wrong = got[got != y[i * 250]]
        counts = np.bincount(wrong, minlength=K)
        top.append(counts.max() / max(len(wrong), 1))
        targets.add(int(counts.argmax()))
    assert np.mean(top) > 0.4  # 1/9 = 0.11 for a target independent of the image
    assert len(targets) >= 5


# --- CIFAR-10N: safe loading -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def canon(tmp_path_factory):
    """A synthetic CIFAR-10 in a shuffled 'canonical' order (as the real batches are), written
    as pickle batches, as an image folder numbered per class and as one numbered across the set,
    with a CIFAR-10N-like label file for it."""
    root = tmp_path_factory.mktemp("canon")
    a = cifar_arrays(train_per_class=12, test_per_class=2, seed=3)
    perm = np.random.default_rng(9).permutation(len(a.y_train))
    c = Arrays(a.x_train[perm], a.y_train[perm], a.x_test, a.y_test)
    human = human_label_arrays(c.y_train, seed=2)
    return {"arrays": c, "human": human,
            "file": write_human_labels(root / "CIFAR-10_human.pt", human),
            "pickles": write_cifar_pickles(root / "pickles", c),
            "per_class": write_per_class_folder(root / "per-class", c),
            "global": write_image_folder(root / "global", c), "root": root}


def write_per_class_folder(root: Path, a: Arrays, skip: int | None = None) -> Path:
    """train/<class>/NNNN.png numbered from 0 within each class in canonical order (as the
    offline JPEG copy is); skip leaves out that canonical training image."""
    for split, x, y in (("train", a.x_train, a.y_train), ("test", a.x_test, a.y_test)):
        seen = np.zeros(K, dtype=int)
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            d = root / split / CIFAR10_CLASSES[int(label)]
            d.mkdir(parents=True, exist_ok=True)
            if not (split == "train" and i == skip):
                (d / f"{seen[label]:04d}.png").write_bytes(encode_image(img))
            seen[label] += 1
    return root


def test_synthetic_label_file_loads(canon):
    h = cifar10n.load_human_labels(canon["file"])
    assert set(h.labels) == set(cifar10n.KEYS) and h.n == len(canon["arrays"].y_train)
    assert h.sha256 == hashlib.sha256(Path(canon["file"]).read_bytes()).hexdigest()
    for name, key in (("worst", "worse_label"), ("aggre", "aggre_label")):
        np.testing.assert_array_equal(h.label_set(name), canon["human"][key])


class Payload:
    """Unpickling this object calls open(marker, 'w'): a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_unsafe_pickle_content_is_refused_and_never_run(tmp_path, canon):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({**canon["human"], "extra": Payload(marker)}, evil)
    # The payload is real: unrestricted unpickling runs it ...
    torch.load(evil, weights_only=False)
    assert marker.exists()
    marker.unlink()
    # ... robustmix refuses the file and runs nothing.
    with pytest.raises(UsageError, match="pickled objects other than integer arrays"):
        cifar10n.load_human_labels(evil)
    assert not marker.exists()


@pytest.mark.parametrize("case", ["truncated", "not a zip", "a tensor, not a dict", "missing key",
                                  "lengths differ", "label out of range", "float labels"])
def test_foreign_or_damaged_label_files_are_refused(tmp_path, canon, case):
    good = dict(canon["human"])
    path = tmp_path / "h.pt"
    if case == "truncated":
        raw = Path(canon["file"]).read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    elif case == "not a zip":
        path.write_bytes(b"not a torch file" * 50)
    elif case == "a tensor, not a dict":
        torch.save(torch.zeros(5), path)
    elif case == "missing key":
        del good["worse_label"]
        write_human_labels(path, good)
    elif case == "lengths differ":
        good["aggre_label"] = good["aggre_label"][:-1]
        write_human_labels(path, good)
    elif case == "label out of range":
        good["aggre_label"] = good["aggre_label"] + 10
        write_human_labels(path, good)
    else:
        good["clean_label"] = good["clean_label"].astype(np.float64)
        write_human_labels(path, good)
    with pytest.raises(UsageError) as e:
        cifar10n.load_human_labels(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


# --- CIFAR-10N: alignment ------------------------------------------------------------------------

def human_for(canon, data: Path, label_set: str = "worst") -> tuple[Dataset, np.ndarray]:
    ds = load_dataset("cifar10", data)
    return ds, cifar10n.human_labels_for(ds, canon["file"], label_set)


def test_every_format_gives_each_image_its_own_human_label(canon):
    a, human = canon["arrays"], canon["human"]
    by_image = {img.tobytes(): i for i, img in enumerate(a.x_train)}  # image -> canonical index
    for data in (canon["pickles"], canon["per_class"], canon["global"]):
        ds, worst = human_for(canon, data)
        idx = np.array([by_image[img.tobytes()] for img in ds.x_train])
        np.testing.assert_array_equal(worst, human["worse_label"][idx])
        np.testing.assert_array_equal(ds.y_train, human["clean_label"][idx])
    ds, _ = human_for(canon, canon["pickles"])
    assert ds.train_names is None  # pickle batches are in canonical order
    np.testing.assert_array_equal(cifar10n.canonical_order(ds, cifar10n.load_human_labels(
        canon["file"])), np.arange(len(a.y_train)))


def test_shuffled_image_folder_copy_is_refused(canon, tmp_path):
    """A copy whose files are numbered in another order: the labels the file gives those numbers
    (clean_label) disagree with the class folders the images are in, and the run is refused."""
    a = canon["arrays"]
    p = np.random.default_rng(0).permutation(len(a.y_train))
    shuffled = write_image_folder(tmp_path / "shuffled", Arrays(a.x_train[p], a.y_train[p],
                                                                a.x_test, a.y_test))
    with pytest.raises(UsageError, match="clean_label .* disagrees"):
        human_for(canon, shuffled)


def test_incomplete_or_unnumbered_image_folders_are_refused(canon, tmp_path):
    a = canon["arrays"]
    short = write_per_class_folder(tmp_path / "short", a, skip=5)
    with pytest.raises(UsageError, match="needs the whole training set"):
        human_for(canon, short)
    moved = write_per_class_folder(tmp_path / "moved", a)  # one cat image filed as a dog
    cats, dogs = (sorted((moved / "train" / c).iterdir()) for c in ("cat", "dog"))
    cats[-1].rename(moved / "train" / "dog" / f"{len(dogs):04d}.png")
    with pytest.raises(UsageError, match="11 training images of class cat"):
        human_for(canon, moved)
    named = write_per_class_folder(tmp_path / "named", a)
    first = sorted((named / "train" / "cat").iterdir())[0]
    first.rename(first.with_name("cat_a.png"))
    with pytest.raises(UsageError, match="not numbered"):
        human_for(canon, named)


def test_labels_of_another_order_are_refused(canon, tmp_path):
    other = dict(canon["human"])
    perm = np.random.default_rng(5).permutation(len(other["clean_label"]))
    other = {k: v[perm] for k, v in other.items()}
    path = write_human_labels(tmp_path / "tfds-order.pt", other)
    ds = load_dataset("cifar10", canon["pickles"])
    with pytest.raises(UsageError, match="not in the canonical order"):
        cifar10n.human_labels_for(ds, path, "worst")


def test_cifar10n_is_for_cifar10_only(canon, tiny):
    ds = load_dataset("fashion-mnist", tiny.fashion_dir)
    with pytest.raises(UsageError, match="cifar10 only"):
        noisy_labels(NoiseSpec("cifar10n", 0.0, "worst", str(canon["file"])), ds, 0)


def test_training_subset_takes_the_human_labels_of_its_images(canon):
    """A run's subset and validation images carry exactly their own human labels, whatever the
    format; the noise seed picks the images, not the labels."""
    human = canon["human"]
    spec = resolve_file(NoiseSpec("cifar10n", 0.0, "aggre", str(canon["file"])), K)
    cfg = make_config(method="erm", ratio=0.0, profile="quick", noise="cifar10n",
                      noise_labels="aggre", noise_file=spec.file, noise_sha256=spec.sha256,
                      val_n=30)
    cfg.train_subset = 50
    by_image = {img.tobytes(): i for i, img in enumerate(canon["arrays"].x_train)}
    for data in (canon["pickles"], canon["per_class"]):
        ds = load_dataset("cifar10", data)
        for seed in (0, 1):
            lab = make_labels(dataclasses.replace(cfg, noise_seed=seed), ds)
            for index, noisy in ((lab.index, lab.noisy), (lab.val_index, lab.val_noisy)):
                canon_idx = [by_image[ds.x_train[i].tobytes()] for i in index]
                np.testing.assert_array_equal(noisy, human["aggre_label"][canon_idx])
            rec = noise_record(cfg, lab, ds)
            counts = np.asarray(rec["counts"])
            assert counts.sum() == 50 and np.trace(counts) == (lab.clean == lab.noisy).sum()
            assert rec["rate"] == pytest.approx(1 - np.trace(counts) / 50)
            np.testing.assert_allclose(rec["per_class_rate"],
                                       transition.per_class_rate(counts))
            assert rec["source_rate"] == pytest.approx(
                actual_noise_rate(human["clean_label"], human["aggre_label"]))
            assert rec["sha256"] == spec.sha256 and rec["labels"] == "aggre"


def test_changed_label_file_is_refused(canon, tmp_path):
    path = tmp_path / "h.pt"
    path.write_bytes(Path(canon["file"]).read_bytes())
    spec = resolve_file(NoiseSpec("cifar10n", 0.0, "worst", str(path)), K)
    other = dict(canon["human"])
    other["worse_label"] = other["clean_label"]
    write_human_labels(path, other)
    ds = load_dataset("cifar10", canon["pickles"])
    with pytest.raises(UsageError, match="changed since the run was configured"):
        noisy_labels(spec, ds, 0)


# --- the real files (skipped where ../shared/data is absent) ----------------------------------

needs_human = pytest.mark.skipif(not REAL_HUMAN.exists(), reason=f"{REAL_HUMAN} not present")
needs_both = pytest.mark.skipif(not (REAL_HUMAN.exists() and REAL_CIFAR.exists()),
                                reason="the real CIFAR-10N file or CIFAR-10 copy is not present")


@needs_human
def test_real_label_file_and_its_rates():
    h = cifar10n.load_human_labels(REAL_HUMAN)
    assert h.sha256 == "873e69c39cb9b5e97fb6bae2d60bb59b38a5cbc31d2b868f7903dcb2b9dd2310"
    assert h.n == 50000
    np.testing.assert_array_equal(h.labels["clean_label"][:10], [6, 9, 9, 4, 1, 1, 2, 7, 8, 3])
    rates = {s: round(100 * actual_noise_rate(h.labels["clean_label"], h.label_set(s)), 2)
             for s in ("aggre", "rand1", "rand2", "rand3", "worst")}
    # The rates the data README and the CIFAR-N paper give on all 50,000 images.
    assert rates == {"aggre": 9.01, "rand1": 17.23, "rand2": 18.12, "rand3": 17.64,
                     "worst": 40.21}
    spec = NoiseSpec("cifar10n", 0.0, "worst", str(REAL_HUMAN), h.sha256)
    x = np.zeros((50000, 1, 1, 3), dtype=np.uint8)
    ds = Dataset("cifar10", CIFAR10_CLASSES, x, h.labels["clean_label"].copy(), x[:1], x[:1, 0, 0, 0],
                 "mem", "t")
    from robustmix.data.labelnoise import expected_rate

    assert expected_rate(spec, ds) == pytest.approx(0.40208)


@pytest.fixture(scope="module")
def real_ds():
    with pytest.MonkeyPatch.context() as mp:  # the caller's cache: decoded once, then fast
        mp.setenv("ROBUSTMIX_CACHE", str(CALLER_CACHE))
        return load_dataset("cifar10", REAL_CIFAR)


@needs_both
def test_real_jpeg_copy_aligns_by_per_class_numbers(real_ds):
    h = cifar10n.load_human_labels(REAL_HUMAN)
    order = cifar10n.canonical_order(real_ds, h)  # includes the image check
    clean = h.labels["clean_label"]
    # The data README's rule: train/<class>/NNNN.jpg is the NNNN-th canonical index of its class.
    for k in (0, 1, 4999, 5000, 27311, 49999):
        c, number = real_ds.y_train[k], int(real_ds.train_names[k])
        assert order[k] == np.flatnonzero(clean == c)[number]
    np.testing.assert_array_equal(np.sort(order), np.arange(50000))
    ref = np.array(cifar10n.REFERENCE_MEANS.split(), dtype=float).reshape(-1, 3)
    got = cifar10n.reference_means(real_ds.x_train, order)
    assert np.abs(got - ref).max() <= 0.5 + 1e-9  # the reference was made from this copy


@needs_both
def test_real_jpeg_copy_shuffled_within_classes_is_refused(real_ds):
    """Renumbering the images within their classes keeps every class folder's count, so only
    the image check can see it."""
    rng = np.random.default_rng(0)
    x = real_ds.x_train.copy()
    for c in range(K):
        idx = np.flatnonzero(real_ds.y_train == c)
        x[idx] = x[rng.permutation(idx)]
    shuffled = dataclasses.replace(real_ds, x_train=x, source="shuffled copy")
    with pytest.raises(UsageError, match="not in CIFAR-10's canonical order"):
        cifar10n.human_labels_for(shuffled, REAL_HUMAN, "worst")


@needs_both
def test_real_quick_subset_takes_human_labels_of_its_images(real_ds):
    spec = resolve_file(NoiseSpec("cifar10n", 0.0, "worst", str(REAL_HUMAN)), K)
    cfg = make_config(method="erm", ratio=0.0, profile="quick", noise="cifar10n",
                      noise_labels="worst", noise_file=spec.file, noise_sha256=spec.sha256)
    lab = make_labels(cfg, real_ds)
    h = cifar10n.load_human_labels(REAL_HUMAN)
    clean = h.labels["clean_label"]
    canon_idx = [np.flatnonzero(clean == real_ds.y_train[k])[int(real_ds.train_names[k])]
                 for k in lab.index]
    np.testing.assert_array_equal(lab.noisy, h.label_set("worst")[canon_idx])
    assert len(lab.index) == 2000 and 0.35 < lab.noise_rate < 0.45
