"""Seeds, the noisy validation set, honest model selection, full-test-set predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import cifar_arrays

import robustmix.noise as noise
from robustmix.cli import run_main
from robustmix.data.classes import CIFAR10_CLASSES
from robustmix.data.datasets import Dataset
from robustmix.training.batches import epoch_plans
from robustmix.training.config import make_config
from robustmix.training.labels import make_labels
from robustmix.training.trainer import Trainer, train_run

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def ds() -> Dataset:
    a = cifar_arrays(30, 10, seed=11)
    return Dataset("cifar10", CIFAR10_CLASSES, a.x_train, a.y_train, a.x_test, a.y_test,
                   "memory", "CIFAR-10")


def cfg(**kw):
    base = dict(method="mixup", ratio=0.5, profile="quick", epochs=3, width=4, alpha=1.0,
                train_subset=None, precision="fp32", batch_size=50, val_n=40)
    return make_config(**{**base, **kw})


def test_seeds_differ_in_weights_and_batches_but_not_in_labels(ds):
    a, b = cfg(seed=0), cfg(seed=1)
    la, lb = make_labels(a, ds), make_labels(b, ds)
    for field in ("index", "clean", "noisy", "val_index", "val_noisy"):
        np.testing.assert_array_equal(getattr(la, field), getattr(lb, field))
    ta, tb = Trainer(a, ds, la, CPU, None, False), Trainer(b, ds, lb, CPU, None, False)
    wa, wb = ta.model.state_dict(), tb.model.state_dict()
    assert not torch.equal(wa["conv1.weight"], wb["conv1.weight"])
    pa, pb = epoch_plans(a, 0, la.noisy, None), epoch_plans(b, 0, lb.noisy, None)
    assert not np.array_equal(pa[0].idx, pb[0].idx)
    # another noise seed corrupts other labels and holds out other images
    lc = make_labels(cfg(noise_seed=1), ds)
    assert not np.array_equal(la.val_index, lc.val_index)
    assert not np.array_equal(make_labels(cfg(noise_seed=1, val_n=0), ds).noisy,
                              make_labels(cfg(val_n=0), ds).noisy)


def test_validation_set_is_disjoint_balanced_deterministic_and_noisy(ds):
    labels = make_labels(cfg(), ds)
    assert len(labels.val_index) == 40
    assert not set(labels.val_index) & set(labels.index)
    assert len(labels.index) + len(labels.val_index) == len(ds.y_train)  # paper-style split
    np.testing.assert_array_equal(np.bincount(labels.val_clean, minlength=10), [4] * 10)
    np.testing.assert_array_equal(labels.val_clean, ds.y_train[labels.val_index])
    assert (labels.val_noisy != labels.val_clean).any()  # labelled as noisily as training
    again = make_labels(cfg(seed=5), ds)
    np.testing.assert_array_equal(labels.val_index, again.val_index)
    # with a training subset, validation images come from the images the subset leaves out
    sub = make_labels(cfg(train_subset=100), ds)
    assert len(sub.index) == 100 and not set(sub.val_index) & set(sub.index)
    np.testing.assert_array_equal(sub.val_index, labels.val_index)


def test_selected_is_chosen_on_validation_not_on_test(ds, tmp_path, monkeypatch):
    """A fixture where the noisy-validation and the test accuracies peak at different epochs."""
    val = iter([0.2, 0.9, 0.3, 0.4])  # validation peaks at epoch 2
    test = iter([0.1, 0.2, 0.3, 0.8])  # test peaks at epoch 4
    real = Trainer.evaluate

    def scripted(self):
        row = real(self)
        row["val_acc_noisy"], row["test_acc"] = next(val), next(test)
        row["test_error"] = 1 - row["test_acc"]
        return row

    monkeypatch.setattr(Trainer, "evaluate", scripted)
    s = train_run(cfg(epochs=4), ds, tmp_path, CPU, show_progress=False)
    assert s["selected_epoch"] == 2 and s["best_epoch"] == 4
    sel = torch.load(tmp_path / "selected.pt", weights_only=True)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert (sel["epoch"], best["epoch"]) == (2, 4)
    assert not torch.equal(sel["model"]["linear.weight"], best["model"]["linear.weight"])


def test_predictions_cover_the_full_test_set_and_reproduce_the_summary(ds, tmp_path):
    s = train_run(cfg(test_n=20), ds, tmp_path, CPU, show_progress=False)
    p = pd.read_csv(tmp_path / "predictions.csv")
    assert list(p.columns) == ["index", "label", "last", "selected", "test_selected"]
    assert len(p) == len(ds.y_test) == s["full_test_images"] == 100 and s["test_images"] == 20
    np.testing.assert_array_equal(p["label"], ds.y_test)
    for key in ("last", "selected", "test_selected"):
        err = float(np.mean(p[key] != p["label"]))
        assert err == pytest.approx(s[f"{key}_full_test_error"], abs=1e-6)
    # the last checkpoint's predictions are those of last.pt on every test image
    from robustmix.runs.checkpoints import load_model

    (tmp_path / "config.json").write_text(json.dumps({"train": cfg(test_n=20).to_dict()}))
    model, _ = load_model(tmp_path, "last")
    x = torch.from_numpy(ds.x_test).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        np.testing.assert_array_equal(model(x).argmax(1).numpy(), p["last"].to_numpy())


def test_no_validation_set_means_no_selected_checkpoint(ds, tmp_path):
    s = train_run(cfg(val_n=0), ds, tmp_path, CPU, show_progress=False)
    assert s["selected_epoch"] is None and s["selected_full_test_error"] is None
    assert not (tmp_path / "selected.pt").exists()
    assert (pd.read_csv(tmp_path / "predictions.csv")["selected"] == -1).all()


@pytest.mark.parametrize("extra, words", [
    (["--seeds"], "--seeds"),
    (["--seeds", "-1"], "--seed"),
    (["--noise-seeds", "-2"], "--noise-seed"),
    (["--val-n", "-1"], "--val-n"),
    (["--val-n", "195"], "--val-n 195"),
    # 180 of the 200 tiny training images stay once 20 are held out for validation
    (["--profile", "fast", "--train-subset", "190"], "train subset 190 and 20 validation"),
])
def test_bad_seeds_and_validation_sizes_are_one_line_errors(tiny, tmp_path, capsys, extra, words):
    args = ["--methods", "erm", "--epochs", "1", "--width", "2", "--train-subset", "60",
            "--data", str(tiny.pickles), "--out", str(tmp_path / "runs"), "--quiet",
            "--precision", "fp32", "--device", "cpu", "--profile", "quick", "--val-n", "20", *extra]
    assert run_main(noise.main, args) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_three_seeds_train_three_runs_with_one_set_of_labels(tiny, tmp_path):
    args = ["--methods", "erm", "--epochs", "1", "--width", "2", "--train-subset", "60",
            "--data", str(tiny.pickles), "--out", str(tmp_path), "--quiet", "--precision", "fp32",
            "--device", "cpu", "--profile", "quick", "--val-n", "20", "--seeds", "0", "1", "2"]
    assert run_main(noise.main, args) == 0
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert [r.name[-2:] for r in runs] == ["s0", "s1", "s2"]
    labels = [(r / "labels.csv").read_bytes() for r in runs]
    assert labels[0] == labels[1] == labels[2]
    weights = [torch.load(r / "last.pt", weights_only=True)["model"]["conv1.weight"] for r in runs]
    assert not torch.equal(weights[0], weights[1])
