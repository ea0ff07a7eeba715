"""The per-epoch device plan gives exactly what the per-batch path gave: the same batches, and
bit-identical metrics and weights for a fixed seed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import robustmix.noise as noise
from robustmix.training.batches import BatchPlan, EpochPlan, device_epoch_plan, epoch_plans
from robustmix.training.config import TrainConfig
from robustmix.training.methods import METHODS
from robustmix.training.trainer import Trainer

CPU = torch.device("cpu")
TIMING = ["seconds", "train_seconds", "images_per_second"]
ARRAYS = [f.name for f in dataclasses.fields(BatchPlan) if f.name != "lam"]


def reference_epoch_plan(self: Trainer, epoch: int):
    """The per-batch path: host arrays, each batch copied to the device when it is used."""
    return epoch_plans(self.cfg, epoch, self.labels.noisy, self.knn)


def knn_like(n: int, k: int = 3) -> np.ndarray:
    return (np.arange(n)[:, None] + np.arange(1, k + 1)) % n


@pytest.mark.parametrize("method,augment", [("erm", True), ("mixup", True), ("mixup", False),
                                            ("mixup_same_class", True), ("mixup_knn", True),
                                            ("mixup_knn", False)])
def test_device_plan_holds_the_reference_draws(method, augment):
    cfg = TrainConfig(method=method, alpha=1.0, batch_size=16, augment=augment).validate()
    noisy = np.random.default_rng(0).integers(0, 10, 83)  # 5 full batches and a last of 3
    knn = knn_like(83) if METHODS[method].partner == "knn" else None
    ref = epoch_plans(cfg, 2, noisy, knn)
    plan = device_epoch_plan(cfg, 2, noisy, knn, CPU)
    assert isinstance(plan, EpochPlan) and len(plan) == len(ref) == 6
    for a, b in zip(ref, plan, strict=True):
        assert type(b.lam) is float and b.lam == a.lam
        for name in ARRAYS:
            va, vb = getattr(a, name), getattr(b, name)
            if va is None:
                assert vb is None, name
                continue
            expected = torch.as_tensor(va)
            assert isinstance(vb, torch.Tensor) and vb.dtype == expected.dtype, name
            assert torch.equal(vb, expected), name


def test_a_batch_of_one_is_still_dropped():
    cfg = TrainConfig(method="mixup", alpha=1.0, batch_size=16).validate()
    plan = device_epoch_plan(cfg, 0, np.zeros(33, dtype=np.int64), None, CPU)
    assert [len(b.idx) for b in plan] == [16, 16]


def cli_args(tiny, out: Path, method: str) -> list[str]:
    # All 180 images the tiny set leaves beside the validation set: two batches per epoch.
    return ["--methods", method, "--epochs", "2", "--width", "4", "--train-subset", "0",
            "--data", str(tiny.pickles), "--out", str(out), "--quiet", "--precision", "fp32",
            "--device", "cpu", "--profile", "quick", "--val-n", "20", "--seed", "3"]


@pytest.mark.parametrize("method", ["erm", "mixup_dropout", "mixup_knn"])
def test_metrics_are_bit_identical_to_the_per_batch_path(tiny, tmp_path, monkeypatch, method):
    used = []
    real = Trainer.epoch_plan

    def spy(self, epoch):
        plan = real(self, epoch)
        used.append(type(plan))
        return plan

    monkeypatch.setattr(Trainer, "epoch_plan", spy)
    assert noise.main(cli_args(tiny, tmp_path / "new", method)) == 0
    assert used == [EpochPlan, EpochPlan]
    monkeypatch.setattr(Trainer, "epoch_plan", reference_epoch_plan)
    assert noise.main(cli_args(tiny, tmp_path / "ref", method)) == 0

    (new,), (ref,) = (list((tmp_path / d).iterdir()) for d in ("new", "ref"))
    a, b = (pd.read_csv(r / "metrics.csv", dtype=str).drop(columns=TIMING) for r in (new, ref))
    assert len(a) == 2 and a["train_loss"].nunique() == 2
    assert json.loads((new / "summary.json").read_text())["train_images"] == 180
    pd.testing.assert_frame_equal(a, b, check_exact=True)  # the CSV text itself
    wa, wb = (torch.load(r / "last.pt", map_location="cpu", weights_only=True) for r in (new, ref))
    for k, v in wa["model"].items():
        assert torch.equal(v, wb["model"][k]), k
    cfg = json.loads((new / "config.json").read_text())
    assert cfg["backend"]["compile"] is False and cfg["backend"]["dropout"] == "torch.rand mask"
