"""Label noise: rates, uniformity, determinism, seeds, asymmetric pairs and balanced subsets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from robustmix.data.classes import CIFAR10_CLASSES
from robustmix.data.datasets import Dataset
from robustmix.data.labelnoise import actual_noise_rate, corrupt_labels
from robustmix.data.subsets import balanced_subset
from robustmix.errors import UsageError
from robustmix.training.config import TrainConfig
from robustmix.training.labels import make_labels

K = 10


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """50,000 CIFAR-sized labels, 5,000 per class, shuffled."""
    return np.random.default_rng(1).permutation(np.repeat(np.arange(K), 5000))


@pytest.mark.parametrize("ratio", [0.2, 0.5, 0.8, 1.0])
def test_symmetric_rate_is_ratio_times_one_minus_one_over_k(labels, ratio):
    noisy = corrupt_labels(labels, ratio, "sym", K, seed=0)
    assert noisy.dtype == np.int64 and noisy.shape == labels.shape
    # At every ratio the labels are a function of the noise seed alone: numpy's global state
    # (which other code may seed or consume) changes nothing.
    state = np.random.get_state()
    try:
        for global_seed in (123, 456):
            np.random.seed(global_seed)
            np.random.random(global_seed)
            np.testing.assert_array_equal(noisy, corrupt_labels(labels, ratio, "sym", K, seed=0))
    finally:
        np.random.set_state(state)
    expected = ratio * (1 - 1 / K)
    assert abs(actual_noise_rate(labels, noisy) - expected) < 0.01


def test_symmetric_half_noise_is_45_percent(labels):
    rate = actual_noise_rate(labels, corrupt_labels(labels, 0.5, "sym", K, seed=3))
    assert 0.44 <= rate <= 0.46


def test_zero_ratio_changes_nothing(labels):
    np.testing.assert_array_equal(corrupt_labels(labels, 0.0, "sym", K, seed=0), labels)
    np.testing.assert_array_equal(corrupt_labels(labels, 0.0, "asym", K, seed=0), labels)


def test_replacements_are_uniform(labels):
    noisy = corrupt_labels(labels, 1.0, "sym", K, seed=0)
    # With ratio 1 every label is a uniform draw: each class gets 10 % of all labels ...
    counts = np.bincount(noisy, minlength=K) / len(noisy)
    np.testing.assert_allclose(counts, 1 / K, atol=0.006)
    # ... independently of the clean class: a wrong label of class c is spread evenly over the
    # other nine classes, and 10 % of each class keeps its label.
    for c in range(K):
        got = np.bincount(noisy[labels == c], minlength=K) / 5000
        np.testing.assert_allclose(got, 1 / K, atol=0.015)


def test_wrong_labels_spread_over_other_classes(labels):
    noisy = corrupt_labels(labels, 0.5, "sym", K, seed=5)
    wrong = noisy != labels
    for c in range(K):
        got = np.bincount(noisy[wrong & (labels == c)], minlength=K)
        assert got[c] == 0
        others = np.delete(got, c) / got.sum()
        np.testing.assert_allclose(others, 1 / 9, atol=0.025)


def test_same_seed_same_labels_other_seed_other_labels(labels):
    a = corrupt_labels(labels, 0.5, "sym", K, seed=11)
    np.testing.assert_array_equal(a, corrupt_labels(labels.copy(), 0.5, "sym", K, seed=11))
    b = corrupt_labels(labels, 0.5, "sym", K, seed=12)
    assert np.mean(a != b) > 0.3


def test_input_labels_are_not_modified(labels):
    before = labels.copy()
    corrupt_labels(labels, 0.8, "sym", K, seed=0)
    corrupt_labels(labels, 0.8, "asym", K, seed=0)
    np.testing.assert_array_equal(labels, before)


@pytest.mark.parametrize("ratio", [1.5, -0.1, float("nan")])
def test_ratio_outside_unit_interval_is_a_usage_error(labels, ratio):
    with pytest.raises(UsageError, match="outside"):
        corrupt_labels(labels, ratio, "sym", K, seed=0)


def test_unknown_noise_type(labels):
    with pytest.raises(UsageError, match="unknown noise type"):
        corrupt_labels(labels, 0.5, "pairflip", K, seed=0)


# --- asymmetric ------------------------------------------------------------------------------

def test_asymmetric_flips_only_the_published_pairs(labels):
    c = {name: i for i, name in enumerate(CIFAR10_CLASSES)}
    pairs = {c["truck"]: c["automobile"], c["bird"]: c["airplane"], c["deer"]: c["horse"],
             c["cat"]: c["dog"], c["dog"]: c["cat"]}
    ratio = 0.4
    noisy = corrupt_labels(labels, ratio, "asym", K, seed=2)
    for k in range(K):
        got = noisy[labels == k]
        if k in pairs:
            flipped = got != k
            assert set(np.unique(got[flipped])) == {pairs[k]}
            assert abs(flipped.mean() - ratio) < 0.02
        else:
            np.testing.assert_array_equal(got, k)
    # airplane, automobile, frog, horse and ship never change.
    assert abs(actual_noise_rate(labels, noisy) - ratio * 5 / 10) < 0.01


def test_asymmetric_is_for_cifar10_only(labels):
    with pytest.raises(UsageError, match="cifar10 only"):
        corrupt_labels(labels, 0.2, "asym", K, seed=0, dataset="fashion-mnist")


# --- subsets ----------------------------------------------------------------------------------

def test_balanced_subset_is_balanced_sorted_and_deterministic(labels):
    idx = balanced_subset(labels, 1000, seed=4)
    assert len(idx) == 1000 and len(np.unique(idx)) == 1000
    assert np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(np.bincount(labels[idx], minlength=K), [100] * K)
    np.testing.assert_array_equal(idx, balanced_subset(labels, 1000, seed=4))
    other = balanced_subset(labels, 1000, seed=5)
    assert len(np.intersect1d(idx, other)) < 200


def test_balanced_subset_with_remainder_and_small_classes():
    labels = np.array([0] * 3 + [1] * 50 + [2] * 50)
    idx = balanced_subset(labels, 30, seed=0)  # class 0 can only give 3 of its 10
    assert len(idx) == 30 and len(np.unique(idx)) == 30
    counts = np.bincount(labels[idx], minlength=3)
    assert counts[0] == 3 and counts[1] >= 10 and counts[2] >= 10
    idx = balanced_subset(np.repeat(np.arange(K), 20), 25, seed=0)
    assert len(idx) == 25 and np.bincount(np.repeat(np.arange(K), 20)[idx]).min() >= 2


def test_balanced_subset_of_everything(labels):
    np.testing.assert_array_equal(balanced_subset(labels, None, 0), np.arange(len(labels)))
    np.testing.assert_array_equal(balanced_subset(labels, 10**6, 0), np.arange(len(labels)))


# --- through the training configuration ----------------------------------------------------------

@pytest.fixture(scope="module")
def ds(labels) -> Dataset:
    y_test = np.random.default_rng(2).integers(0, K, 500)
    x = np.zeros((len(labels), 1, 1, 3), dtype=np.uint8)
    return Dataset("cifar10", CIFAR10_CLASSES, x, labels.copy(), x[:500], y_test, "mem", "test")


def test_training_seed_does_not_change_noisy_labels(ds):
    cfg = TrainConfig(ratio=0.5, noise_seed=3, seed=0, train_subset=2000)
    a = make_labels(cfg, ds)
    b = make_labels(dataclasses.replace(cfg, seed=99, method="erm", alpha=0.0), ds)
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.noisy, b.noisy)
    # The noise seed, in contrast, draws other labels and another subset.
    c = make_labels(dataclasses.replace(cfg, noise_seed=4), ds)
    assert not np.array_equal(a.index, c.index)
    whole = dataclasses.replace(cfg, train_subset=None)
    a_all = make_labels(whole, ds).noisy
    c_all = make_labels(dataclasses.replace(whole, noise_seed=4), ds).noisy
    assert np.mean(a_all != c_all) > 0.3
    # What a run trains on is exactly corrupt_labels of the noise seed, for either noise type.
    np.testing.assert_array_equal(a_all, corrupt_labels(ds.y_train, 0.5, "sym", K, seed=3))
    asym = dataclasses.replace(whole, noise="asym", ratio=0.4)
    want = corrupt_labels(ds.y_train, 0.4, "asym", K, seed=3)
    for seed, method in ((0, "erm"), (7, "mixup"), (99, "mixup_same_class")):
        got = make_labels(dataclasses.replace(asym, seed=seed, method=method), ds)
        np.testing.assert_array_equal(got.noisy, want)


def test_subset_sees_the_labels_of_the_full_run(ds):
    full = make_labels(TrainConfig(ratio=0.5, noise_seed=1, train_subset=None), ds)
    sub = make_labels(TrainConfig(ratio=0.5, noise_seed=1, train_subset=3000), ds)
    np.testing.assert_array_equal(full.index, np.arange(len(ds.y_train)))
    np.testing.assert_array_equal(sub.noisy, full.noisy[sub.index])
    np.testing.assert_array_equal(sub.clean, ds.y_train[sub.index])
    np.testing.assert_array_equal(np.bincount(sub.clean), [300] * K)
    assert abs(full.noise_rate - 0.45) < 0.01
    frame = sub.to_frame()
    assert list(frame.columns) == ["index", "clean", "noisy"] and len(frame) == 3000


def test_make_labels_leaves_dataset_labels_alone(ds):
    train, test = ds.y_train.copy(), ds.y_test.copy()
    make_labels(TrainConfig(ratio=1.0, noise="sym", train_subset=None), ds)
    make_labels(TrainConfig(ratio=1.0, noise="asym", train_subset=1000), ds)
    np.testing.assert_array_equal(ds.y_train, train)
    np.testing.assert_array_equal(ds.y_test, test)
