"""Checks that need a CUDA GPU (`python -m pytest -m cuda`); skipped where there is none."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import cifar_arrays

import robustmix.attack as attack_cli
import robustmix.noise as noise
from robustmix.cli import run_main
from robustmix.data.classes import CIFAR10_CLASSES
from robustmix.data.datasets import Dataset
from robustmix.training.batches import device_epoch_plan, epoch_plans
from robustmix.training.config import make_config
from robustmix.training.labels import make_labels
from robustmix.training.models import preact_resnet18
from robustmix.training.trainer import Trainer

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

TIMING = ["seconds", "train_seconds", "images_per_second"]
CUDA = torch.device("cuda")


def paper_args(data, out, *extra):
    # The paper profile at one epoch on a subset: the real code path, minutes not hours.
    return ["--methods", "erm", "--epochs", "1", "--profile", "paper", "--device", "cuda",
            "--train-subset", "2000", "--val-n", "20", "--data", str(data), "--out", str(out), "--quiet", *extra]


def only_run(out):
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


def test_one_epoch_paper_profile_run_and_its_attack(tiny, tmp_path):
    out = tmp_path / "runs"
    assert run_main(noise.main, paper_args(tiny.pickles, out)) == 0
    run = only_run(out)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["env"]["device"].startswith("cuda")
    assert cfg["train"]["profile"] == "paper" and cfg["train"]["width"] == 64
    # bf16 only where the GPU computes it natively (compute capability 8.0, Ampere, and later).
    major, _ = torch.cuda.get_device_capability()
    assert cfg["train"]["precision"] == ("bf16" if major >= 8 else "fp32")
    assert cfg["precision_reason"].startswith("auto: CUDA compute capability")
    backend = cfg["backend"]
    assert backend["cudnn_benchmark"] is True and backend["compile"] is False
    assert backend["tf32_matmul"] is False and backend["tf32_cudnn"] is False
    assert backend["dropout"].startswith("F.dropout")
    assert run_main(attack_cli.main, [str(run), "--attacks", "fgsm", "--eps", "0,8",
                                      "--device", "cuda", "--precision", "run",
                                      "--quiet"]) == 0
    a = pd.read_csv(run / "attack.csv")
    m = pd.read_csv(run / "metrics.csv")
    clean = a[(a["eps"] == 0) & (a["mode"] == "white-box")]["accuracy"].item()
    assert clean == m["test_acc"].iloc[-1]  # ε = 0 equals the stored test accuracy
    assert a[a["eps"] == 8]["accuracy"].item() <= clean


def test_resume_on_cuda_is_exact(tiny, tmp_path, monkeypatch):
    """Interrupted after one epoch and resumed, a run ends with the metrics and weights of an
    uninterrupted one. cuDNN is made deterministic here: its autotuned default may pick
    algorithms whose float sums differ run to run; the random draws (plan, dropout masks) are
    replayed either way."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    args = ("--epochs", "3", "--methods", "mixup_dropout")
    assert run_main(noise.main, paper_args(tiny.pickles, tmp_path / "straight", *args)) == 0

    real, calls = Trainer.train_epoch, []

    def interrupt_second(self, epoch):
        calls.append(epoch)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", interrupt_second)
    assert run_main(noise.main, paper_args(tiny.pickles, tmp_path / "cut", *args)) == 130
    monkeypatch.setattr(Trainer, "train_epoch", real)
    assert run_main(noise.main, paper_args(tiny.pickles, tmp_path / "cut", *args)) == 0
    cut, straight = only_run(tmp_path / "cut"), only_run(tmp_path / "straight")
    a, b = (pd.read_csv(r / "metrics.csv").drop(columns=TIMING) for r in (cut, straight))
    assert list(a["epoch"]) == [1, 2, 3]
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    wa, wb = (torch.load(r / "last.pt", map_location="cpu", weights_only=True) for r in (cut, straight))
    for k, v in wa["model"].items():
        assert torch.equal(v, wb["model"][k]), k
    s = json.loads((cut / "summary.json").read_text())
    assert torch.load(cut / "best.pt", weights_only=True)["epoch"] == s["best_epoch"]


def memory_ds() -> Dataset:
    a = cifar_arrays(40, 5, seed=3)
    return Dataset("cifar10", CIFAR10_CLASSES, a.x_train, a.y_train, a.x_test, a.y_test,
                   "memory", "CIFAR-10")


def sync_warnings(fn) -> int:
    """How many synchronising CUDA calls fn makes (torch's sync debug mode, as warnings)."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(w.message) for w in seen)


def test_a_training_epoch_does_not_synchronise_per_step():
    ds = memory_ds()
    cfg = make_config(method="mixup_knn", ratio=0.5, profile="quick", width=4, alpha=1.0,
                      dropout=0.1, train_subset=None, batch_size=20, val_n=0, epochs=3,
                      precision="fp32")
    trainer = Trainer(cfg, ds, make_labels(cfg, ds), CUDA, None, show_progress=False)
    trainer.evaluate = lambda: {}  # its .item() calls are per epoch, not per step
    trainer.train_epoch(0)  # warm-up: cuDNN autotuning, pinned-memory pool
    batches = len(trainer.epoch_plan(1))
    assert batches >= 15
    # The one sync left is reading the epoch's mean loss at its end.
    assert sync_warnings(lambda: trainer.train_epoch(1)) <= 2
    # The detector works: the per-batch path it replaced copies from pageable memory per step.
    trainer.epoch_plan = lambda e: epoch_plans(cfg, e, trainer.labels.noisy, trainer.knn)
    assert sync_warnings(lambda: trainer.train_epoch(2)) >= batches


@pytest.mark.parametrize("method", ["mixup", "mixup_knn"])
def test_device_plan_on_cuda_holds_the_reference_draws(method):
    cfg = make_config(method=method, ratio=0.5, profile="quick", alpha=1.0, batch_size=16,
                      train_subset=None)
    noisy = np.random.default_rng(0).integers(0, 10, 83)
    knn = (np.arange(83)[:, None] + np.arange(1, 4)) % 83 if method == "mixup_knn" else None
    for a, b in zip(epoch_plans(cfg, 1, noisy, knn), device_epoch_plan(cfg, 1, noisy, knn, CUDA),
                    strict=True):
        assert b.idx.is_cuda and b.lam == a.lam
        for name in ("idx", "dy", "dx", "flip", "partner", "partner_dy", "partner_dx", "partner_flip"):
            if getattr(a, name) is not None:
                assert torch.equal(getattr(b, name).cpu(), torch.as_tensor(getattr(a, name))), name


@pytest.mark.parametrize("p", [0.1, 0.8])
def test_fused_cuda_dropout_keeps_the_law_and_replays_with_the_seed(p):
    drop = preact_resnet18(width=2, dropout=p).layers[0].dropout.to(CUDA).train()
    x = torch.rand(1_000_000, device=CUDA) + 0.5
    torch.manual_seed(0)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.003
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # seeded per epoch by the trainer: a resume replays it


def test_compiled_training_runs_and_is_recorded(tiny, tmp_path):
    out = tmp_path / "runs"
    assert run_main(noise.main, paper_args(tiny.pickles, out, "--compile")) == 0
    run = only_run(out)
    assert json.loads((run / "config.json").read_text())["backend"]["compile"] is True
    m = pd.read_csv(run / "metrics.csv")
    assert np.isfinite(m["train_loss"]).all() and len(m) == 1
