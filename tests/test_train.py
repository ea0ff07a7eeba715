"""Training: batch plans and augmentation, complete run directories, reruns, resume, methods."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import cifar_arrays, snapshot

import robustmix.data.datasets as datasets
import robustmix.noise as noise
from robustmix.cli import run_main
from robustmix.data.classes import CIFAR10_CLASSES
from robustmix.data.datasets import Dataset, load_dataset
from robustmix.evaluation.predict import predict_logits
from robustmix.evaluation.predict import test_indices as eval_test_indices
from robustmix.studies import tasks
from robustmix.training.batches import PAD, crop_flip, epoch_plans
from robustmix.training.config import TrainConfig, make_config
from robustmix.training.labels import make_labels
from robustmix.training.methods import METHODS, default_dropout
from robustmix.training.models import build_model
from robustmix.training.trainer import Trainer, lr_at, train_run

CPU = torch.device("cpu")
TIMING = ["seconds", "train_seconds", "images_per_second"]
METRIC_COLUMNS = {"epoch", "lr", "train_loss", "test_acc", "test_error", "test_loss",
                  "train_acc_noisy", "train_acc_clean", "memorised", "memorised_null", "val_acc_noisy",
                  "val_acc_clean", *TIMING}


def cli_args(tiny, out: Path, *extra: str, method: str = "mixup", epochs: int = 2) -> list[str]:
    return ["--methods", method, "--epochs", str(epochs), "--width", "4", "--train-subset", "100",
            "--data", str(tiny.pickles), "--out", str(out), "--quiet", "--precision", "fp32",
            "--device", "cpu", "--profile", "quick", "--val-n", "20",
            *extra]


def only_run(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


def untimed(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "metrics.csv").drop(columns=TIMING)


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_state(a, b) -> None:
    """Equal nested checkpoints: tensors bit for bit, everything else by value."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_state(x, y)
    else:
        assert a == b


# --- augmentation and batch plans ------------------------------------------------------------

def test_crop_flip_matches_pad_crop_flip():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 8, 10, 3), dtype=np.uint8)
    padded = torch.nn.functional.pad(torch.from_numpy(x), (0, 0, PAD, PAD, PAD, PAD))
    idx = np.array([0, 5, 2, 2, 3, 1])
    dy = np.array([0, 8, 4, 1, 7, 3])
    dx = np.array([8, 0, 4, 2, 5, 6])
    flip = np.array([True, False, True, False, True, True])
    t = torch.from_numpy
    got = crop_flip(padded, t(idx), t(dy), t(dx), t(flip), (8, 10))
    ref = np.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)))
    for j, (i, a, b, f) in enumerate(zip(idx, dy, dx, flip, strict=True)):
        crop = ref[i, a:a + 8, b:b + 10]
        crop = crop[:, ::-1] if f else crop
        np.testing.assert_array_equal(got[j].permute(1, 2, 0).numpy(), crop / np.float32(255))
    # The centre crop without flip is the image itself.
    centre = crop_flip(padded, t(np.arange(6)), t(np.full(6, PAD)), t(np.full(6, PAD)),
                       t(np.zeros(6, bool)), (8, 10))
    np.testing.assert_array_equal(centre.permute(0, 2, 3, 1).numpy(), x / np.float32(255))


@pytest.mark.parametrize("method", list(METHODS))
def test_epoch_plans(method):
    cfg = TrainConfig(method=method, alpha=0.0 if METHODS[method].partner == "none" else 2.0,
                      batch_size=32, seed=3)
    noisy = np.random.default_rng(0).integers(0, 10, 129)
    knn = np.tile(np.arange(129)[:, None], (1, 5)) if METHODS[method].partner == "knn" else None
    plans = epoch_plans(cfg, 4, noisy, knn)
    # 129 = 4 x 32 + 1: the batch of one is dropped (BatchNorm cannot train on it).
    assert [len(p.idx) for p in plans] == [32] * 4
    seen = np.concatenate([p.idx for p in plans])
    assert len(np.unique(seen)) == 128 and seen.max() < 129
    for p in plans:
        assert p.dy.min() >= 0 and p.dy.max() <= 2 * PAD and p.dx.max() <= 2 * PAD
        assert 0 < p.flip.mean() < 1
        spec = METHODS[method]
        if spec.partner == "none" and spec.target != "labels_only":
            assert p.lam == 1.0
        else:
            assert 0 < p.lam < 1
    again = epoch_plans(cfg, 4, noisy, knn)
    for p, q in zip(plans, again, strict=True):
        for f in dataclasses.fields(p):
            a, b = getattr(p, f.name), getattr(q, f.name)
            assert (a is None and b is None) or np.array_equal(a, b)
    assert not np.array_equal(plans[0].idx, epoch_plans(cfg, 5, noisy, knn)[0].idx)
    other_seed = dataclasses.replace(cfg, seed=4)
    assert not np.array_equal(plans[0].idx, epoch_plans(other_seed, 4, noisy, knn)[0].idx)


def test_no_augmentation_means_centre_crops():
    cfg = TrainConfig(method="erm", alpha=0.0, batch_size=16, augment=False)
    for p in epoch_plans(cfg, 0, np.zeros(40, dtype=np.int64), None):
        assert np.all(p.dy == PAD) and np.all(p.dx == PAD) and not p.flip.any()


def test_learning_rate_steps_at_milestones():
    cfg = make_config(method="erm", ratio=0.5, profile="quick", epochs=8)
    assert cfg.milestones == [4, 6]
    assert [lr_at(cfg, e) for e in range(8)] == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)


# --- in-memory training -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mem_ds() -> Dataset:
    a = cifar_arrays(20, 5, seed=7)
    return Dataset("cifar10", CIFAR10_CLASSES, a.x_train, a.y_train, a.x_test, a.y_test,
                   "memory", "CIFAR-10")


def test_a_tiny_model_learns_the_colours(mem_ds, tmp_path):
    # A small lr: at 0.1 a width-8 net on 200 images swings too much for a stable check.
    cfg = make_config(method="erm", ratio=0.0, profile="quick", epochs=4, width=8, batch_size=20,
                      lr=0.005, precision="fp32", val_n=0)
    train_y, test_y = mem_ds.y_train.copy(), mem_ds.y_test.copy()
    (tmp_path / "run").mkdir()
    torch.manual_seed(0)
    s = train_run(cfg, mem_ds, tmp_path / "run", CPU, show_progress=False)
    m = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert m["test_acc"].iloc[0] < 0.6  # it starts near chance ...
    assert m["test_acc"].max() >= 0.8 and m["test_acc"].iloc[-1] >= 0.7  # ... and learns
    assert m["train_loss"].iloc[-1] < m["train_loss"].iloc[0]
    assert s["actual_noise_rate"] == 0.0 and np.isnan(m["memorised"]).all()
    assert m["train_acc_noisy"].equals(m["train_acc_clean"])
    # Training never touches the dataset's labels.
    np.testing.assert_array_equal(mem_ds.y_train, train_y)
    np.testing.assert_array_equal(mem_ds.y_test, test_y)


def test_trainer_evaluates_on_clean_test_labels(mem_ds):
    cfg = TrainConfig(method="erm", alpha=0.0, ratio=1.0, width=2, train_subset=None,
                      test_n=30, train_eval_n=1000, precision="fp32")
    labels = make_labels(cfg, mem_ds)
    assert labels.noise_rate > 0.8
    tr = Trainer(cfg, mem_ds, labels, CPU, show_progress=False)
    t_idx = eval_test_indices(mem_ds.y_test, cfg.test_n)
    assert len(t_idx) == 30
    np.testing.assert_array_equal(tr.y_test.numpy(), mem_ds.y_test[t_idx])
    np.testing.assert_array_equal(np.bincount(tr.y_test.numpy()), [3] * 10)
    assert len(tr.y_eval_clean) == len(labels.index)
    np.testing.assert_array_equal(tr.y_eval_clean.numpy(), labels.clean)


def test_memorised_is_the_share_of_corrupted_labels_predicted(mem_ds, monkeypatch):
    cfg = TrainConfig(method="erm", alpha=0.0, ratio=0.5, width=2, train_subset=None,
                      test_n=None, train_eval_n=1000, precision="fp32")
    labels = make_labels(cfg, mem_ds)
    tr = Trainer(cfg, mem_ds, labels, CPU, show_progress=False)
    # A model that predicts the noisy label of every training image memorised everything.
    lookup = {mem_ds.x_train[i].tobytes(): n for i, n in zip(labels.index, labels.noisy, strict=True)}

    def oracle(x_uint8):
        pred = torch.tensor([lookup.get(x.numpy().tobytes(), 0) for x in x_uint8])
        return pred, torch.nn.functional.one_hot(pred, 10).float()

    monkeypatch.setattr(tr, "predict", oracle)
    ev = tr.evaluate()
    assert ev["memorised"] == 1.0 and ev["train_acc_noisy"] == 1.0
    assert ev["train_acc_clean"] == pytest.approx(1 - labels.noise_rate)


def test_memorisation_null_is_the_noise_chance_of_the_networks_own_predictions(mem_ds,
                                                                               monkeypatch):
    cfg = TrainConfig(method="erm", alpha=0.0, ratio=0.5, width=2, train_subset=None,
                      test_n=None, train_eval_n=1000, precision="fp32")
    labels = make_labels(cfg, mem_ds)
    tr = Trainer(cfg, mem_ds, labels, CPU, show_progress=False)
    lookup = {mem_ds.x_train[i].tobytes(): c for i, c in zip(labels.index, labels.clean, strict=True)}
    # Symmetric noise: a corrupted label is any other class with chance 1/9 each.
    off = tr.flip_probs.numpy()[~np.eye(10, dtype=bool)]
    assert np.allclose(off.mean(), 1 / 9, atol=0.02) and np.allclose(np.diag(tr.flip_probs), 0)

    def predicting(shift):
        def predict(x_uint8):
            clean = torch.tensor([lookup.get(x.numpy().tobytes(), 0) for x in x_uint8])
            pred = (clean + shift) % 10
            return pred, torch.nn.functional.one_hot(pred, 10).float()
        return predict

    # A network that is always right never predicts a corrupted label: null 0.
    monkeypatch.setattr(tr, "predict", predicting(0))
    assert tr.evaluate()["memorised_null"] == 0.0
    # One that is always wrong (class + 1) hits the noisy label by chance T'[c, c + 1] ≈ 1/9,
    # and its measured "memorised" share is that chance too: memorised ≈ null, no fitting.
    monkeypatch.setattr(tr, "predict", predicting(1))
    ev = tr.evaluate()
    assert ev["memorised_null"] == pytest.approx(1 / 9, abs=0.03)
    assert ev["memorised"] == pytest.approx(ev["memorised_null"], abs=0.05)


def test_initial_weights_depend_on_the_config_only(mem_ds):
    cfg = TrainConfig(method="erm", alpha=0.0, width=2, train_subset=None, test_n=None,
                      precision="fp32")
    labels = make_labels(cfg, mem_ds)
    torch.manual_seed(1)
    a = Trainer(cfg, mem_ds, labels, CPU, show_progress=False).model.state_dict()
    torch.manual_seed(2)
    b = Trainer(cfg, mem_ds, labels, CPU, show_progress=False).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# --- the CLI end to end ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished(tiny, tmp_path_factory):
    """One finished mixup run (2 epochs) made through the CLI, and what it printed."""
    out = tmp_path_factory.mktemp("e2e") / "runs"
    mp = pytest.MonkeyPatch()
    mp.setenv("ROBUSTMIX_CACHE", str(tmp_path_factory.mktemp("cache")))
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert noise.main(cli_args(tiny, out)) == 0
    mp.undo()
    return out, only_run(out), buf.getvalue()


def test_run_directory_is_complete(finished, tiny):
    out, run, printed = finished
    assert run.name == "cifar10_sym0.5_mixup_a4_p0_quick_s0"  # the tuned quick default
    assert {p.name for p in run.iterdir()} == {"config.json", "metrics.csv", "summary.json",
                                              "labels.csv", "noise.json", "last.pt", "best.pt",
                                              "selected.pt", "predictions.csv"}
    assert f"training {run}" in printed and "paper_best" in printed

    config = json.loads((run / "config.json").read_text())
    t = config["train"]
    assert t == {**TrainConfig.from_dict(t).to_dict()}  # every field, nothing else
    assert (t["method"], t["epochs"], t["width"], t["train_subset"], t["precision"]) == \
        ("mixup", 2, 4, 100, "fp32")
    assert (t["seed"], t["noise_seed"], t["ratio"], t["alpha"], t["dropout"]) == (0, 0, 0.5, 4.0, 0.0)
    env = config["env"]
    for key in ("robustmix", "python", "torch", "torchvision", "numpy", "device_name", "host",
                "started"):
        assert env[key]
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    assert isinstance(env["cpu_features"], list)  # which bf16 kernels ran: the ISA
    assert re.fullmatch(r"unknown|[0-9a-f]{40}(-dirty)?", env["git_commit"])
    data = config["data"]
    assert {k: data[k] for k in ("source", "description")} == {
        "source": str(tiny.pickles.resolve()), "description": "CIFAR-10"}
    ds = load_dataset("cifar10", tiny.pickles)
    assert data["train_fingerprint"] == ds.fingerprint("train")
    assert data["test_fingerprint"] == ds.fingerprint("test")
    assert config["precision_reason"]

    m = pd.read_csv(run / "metrics.csv")
    assert set(m.columns) == METRIC_COLUMNS
    assert m["epoch"].tolist() == [1, 2]
    assert m["lr"].tolist() == pytest.approx([0.1, 0.01])  # milestones at 50 % and 75 %
    for col in ("test_acc", "train_acc_noisy", "train_acc_clean", "memorised"):
        assert m[col].between(0, 1).all()
    np.testing.assert_allclose(m["test_error"], 1 - m["test_acc"])
    assert (m["train_loss"] > 0).all() and (m[TIMING] > 0).all().all()

    all_labels = pd.read_csv(run / "labels.csv")
    assert list(all_labels.columns) == ["index", "clean", "noisy", "split"]
    labels = all_labels[all_labels["split"] == "train"]
    val = all_labels[all_labels["split"] == "val"]
    assert len(labels) == 100 and len(val) == 20
    assert not set(val["index"]) & set(labels["index"])
    np.testing.assert_array_equal(all_labels["clean"], tiny.arrays.y_train[all_labels["index"]])
    np.testing.assert_array_equal(np.bincount(labels["clean"]), [10] * 10)

    s = json.loads((run / "summary.json").read_text())
    best = m.loc[m["test_acc"].idxmax()]
    assert s["best_test_error"] == pytest.approx(1 - best["test_acc"])
    assert s["best_epoch"] == best["epoch"]
    assert s["last_test_error"] == pytest.approx(m["test_error"].iloc[-1])
    assert s["last_epoch"] == 2 and s["train_images"] == 100 and s["test_images"] == 50
    assert s["actual_noise_rate"] == pytest.approx(np.mean(labels["clean"] != labels["noisy"]))
    assert (s["method"], s["ratio"], s["alpha"], s["seed"]) == ("mixup", 0.5, 4.0, 0)


def test_checkpoints_reproduce_the_recorded_accuracies(finished, tiny):
    _, run, _ = finished
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text())["train"])
    ds = load_dataset("cifar10", tiny.pickles)
    m = pd.read_csv(run / "metrics.csv")
    last, best = weights(run / "last.pt"), weights(run / "best.pt")
    assert last["epoch"] == 2 and best["epoch"] == last["best_epoch"]
    assert last["best_acc"] == pytest.approx(m["test_acc"].max())
    assert {"state", "param_groups"} <= set(last["optimizer"])
    x_test = torch.from_numpy(ds.x_test)
    for ck, epoch in ((last, 2), (best, best["epoch"])):
        model = build_model(cfg, ds)
        model.load_state_dict(ck["model"])
        acc = (predict_logits(model, x_test, CPU, "fp32").argmax(1).numpy() == ds.y_test).mean()
        assert acc == pytest.approx(m.loc[m["epoch"] == epoch, "test_acc"].item())


def test_same_command_again_does_not_retrain(finished, tiny, capsys, monkeypatch):
    out, run, _ = finished
    before = snapshot(out)

    def boom(*a, **k):
        raise AssertionError("must not be called for a finished run")

    monkeypatch.setattr(tasks, "train_run", boom)
    monkeypatch.setattr(datasets, "load_dataset", boom)
    assert noise.main(cli_args(tiny, out)) == 0
    printed = capsys.readouterr().out
    s = json.loads((run / "summary.json").read_text())
    assert "0 of 1 runs to train" in printed
    # each checkpoint by its one name (runs/checkpoint_names), not the old "best"
    line = (f"{run}: finished earlier (test-selected error {100 * s['best_test_error']:.1f}% "
            f"(epoch {s['best_epoch']}), last {100 * s['last_test_error']:.1f}%")
    if s.get("selected_full_test_error") is not None:  # the whole test set beside the subset's
        line += (f"; on all {s['full_test_images']} test images: selected "
                 f"{100 * s['selected_full_test_error']:.1f}%, last "
                 f"{100 * s['last_full_test_error']:.1f}%")
    assert line + ")" in printed
    assert snapshot(out) == before


def test_force_retrains(tiny, tmp_path, capsys):
    out = tmp_path / "runs"
    assert noise.main(cli_args(tiny, out, method="erm", epochs=1)) == 0
    run = only_run(out)
    (run / "stray.txt").write_text("left over")
    before = snapshot(run)
    assert noise.main(cli_args(tiny, out, "--force", method="erm", epochs=1)) == 0
    after = snapshot(run)
    assert "stray.txt" not in after  # a forced run starts from an empty directory
    for name in ("config.json", "metrics.csv", "summary.json", "labels.csv", "last.pt", "best.pt"):
        assert after[name][1] != before[name][1], name  # rewritten
    assert "1 of 1 runs to train" in capsys.readouterr().out


def test_interrupted_run_resumes_to_the_uninterrupted_result(tiny, tmp_path, monkeypatch, capsys):
    args = dict(method="mixup_dropout", epochs=3)
    assert noise.main(cli_args(tiny, tmp_path / "straight", **args)) == 0
    straight = only_run(tmp_path / "straight")

    real = Trainer.train_epoch
    calls = []

    def interrupt_second(self, epoch):
        calls.append(epoch)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", interrupt_second)
    torch.manual_seed(123)
    assert run_main(noise.main, cli_args(tiny, tmp_path / "cut", **args)) == 130
    assert "interrupted" in capsys.readouterr().err
    cut = only_run(tmp_path / "cut")
    assert not (cut / "summary.json").exists()
    assert len(pd.read_csv(cut / "metrics.csv")) == 1 and weights(cut / "last.pt")["epoch"] == 1

    monkeypatch.setattr(Trainer, "train_epoch", real)
    torch.manual_seed(999)  # whatever the state now: resuming must not depend on it
    assert noise.main(cli_args(tiny, tmp_path / "cut", **args)) == 0
    assert f"resuming {cut}" in capsys.readouterr().out

    pd.testing.assert_frame_equal(untimed(cut), untimed(straight), check_exact=True)
    assert len(untimed(cut)) == 3
    for name in ("last.pt", "best.pt"):
        assert_same_state(weights(cut / name), weights(straight / name))
    assert (cut / "labels.csv").read_bytes() == (straight / "labels.csv").read_bytes()
    s1, s2 = (json.loads((r / "summary.json").read_text()) for r in (cut, straight))
    for key in ("train_seconds", "total_seconds", "images_per_second"):
        s1.pop(key), s2.pop(key)
    assert s1 == s2


def test_resume_drops_a_metrics_row_written_after_the_last_checkpoint(tiny, tmp_path):
    """metrics.csv is written before last.pt: a kill between the two leaves one row too many."""
    torch.manual_seed(5)
    assert noise.main(cli_args(tiny, tmp_path / "a", method="erm", epochs=2)) == 0
    run = only_run(tmp_path / "a")
    full = untimed(run)
    # Roll the run back to "epoch 2 metrics written, last.pt still at epoch 1".
    torch.manual_seed(5)
    out_b = tmp_path / "b"
    assert noise.main(cli_args(tiny, out_b, method="erm", epochs=1)) == 0
    run_b = only_run(out_b)
    cfg = json.loads((run / "config.json").read_text())
    (run_b / "config.json").write_text(json.dumps(cfg))
    (run_b / "summary.json").unlink()
    bogus = pd.read_csv(run / "metrics.csv")
    bogus.loc[1, "test_acc"] = 0.123456
    bogus.to_csv(run_b / "metrics.csv", index=False)
    assert noise.main(cli_args(tiny, out_b, method="erm", epochs=2)) == 0
    pd.testing.assert_frame_equal(untimed(run_b), full, check_exact=True)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_end_to_end(tiny, tmp_path, method):
    out = tmp_path / "runs"
    assert noise.main(cli_args(tiny, out, "--k", "3", method=method, epochs=1)) == 0
    run = only_run(out)
    cfg = json.loads((run / "config.json").read_text())["train"]
    assert cfg["method"] == method
    assert (cfg["dropout"] > 0) == (default_dropout(method, 0.5) > 0)
    m = pd.read_csv(run / "metrics.csv")
    assert len(m) == 1 and np.isfinite(m["train_loss"]).all() and m["train_loss"].item() > 0
    assert json.loads((run / "summary.json").read_text())["method"] == method
    if METHODS[method].partner == "knn":
        table = np.load(run / "knn.npy")
        assert table.shape == (100, 3)
        labels = pd.read_csv(run / "labels.csv")
        noisy = labels[labels["split"] == "train"]["noisy"].to_numpy()
        np.testing.assert_array_equal(noisy[table], np.repeat(noisy[:, None], 3, 1))
    model = build_model(TrainConfig.from_dict(cfg), load_dataset("cifar10", tiny.pickles))
    model.load_state_dict(weights(run / "last.pt")["model"])


def test_fashion_mnist_trains(tiny, tmp_path):
    out = tmp_path / "runs"
    args = ["--dataset", "fashion-mnist", "--data", str(tiny.fashion_dir), "--methods", "erm",
            "--epochs", "1", "--width", "2", "--train-subset", "60", "--out", str(out),
            "--quiet", "--precision", "fp32", "--device", "cpu", "--profile", "quick",
            "--val-n", "20"]
    assert noise.main(args) == 0
    run = only_run(out)
    assert run.name.startswith("fashion-mnist_sym0.5_erm")
    model = weights(run / "last.pt")["model"]
    assert model["conv1.weight"].shape[1] == 1
    assert json.loads((run / "summary.json").read_text())["data"] == "Fashion-MNIST"

