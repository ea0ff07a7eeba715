"""A run killed at any write keeps metrics.csv, last.pt and best.pt consistent, and its resume
ends exactly where an uninterrupted run ends (CPU, fixed thread count)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import memory_cifar

from robustmix.data.datasets import Dataset
from robustmix.training import trainer
from robustmix.training.config import make_config
from robustmix.training.trainer import train_run

CPU = torch.device("cpu")
TIMING = ["seconds", "train_seconds", "images_per_second"]


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return memory_cifar(20, 5, seed=3)


def config():
    # Settings under which the test and validation accuracies climb for several epochs, so
    # best.pt and selected.pt are each rewritten more than once.
    return make_config(method="mixup", ratio=0.2, profile="quick", epochs=5, width=8, alpha=1.0,
                       train_subset=None, precision="fp32", lr=0.005, batch_size=20, val_n=30)


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def straight(ds, tmp_path_factory) -> tuple[Path, list[str]]:
    """An uninterrupted run (read-only for tests) and the metrics/checkpoint files it wrote, in
    order: one run gives both (a second run to count the writes repeats the same writes)."""
    run = tmp_path_factory.mktemp("straight")
    return run, writes_of_a_run(ds, run)


def writes_of_a_run(ds, run: Path) -> list[str]:
    """Trains the whole run in the folder run; the metrics/checkpoint files it wrote, in order."""
    names: list[str] = []
    real_csv, real_ck = trainer.write_csv, trainer.save_checkpoint

    def csv(path, df):
        if path.name == "metrics.csv":
            names.append(path.name)
        real_csv(path, df)

    def ck(path, state):
        names.append(path.name)
        real_ck(path, state)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "write_csv", csv)
        mp.setattr(trainer, "save_checkpoint", ck)
        train_run(config(), ds, run, CPU, show_progress=False)
    return names


def test_kill_before_any_write_then_resume_is_consistent(ds, straight, tmp_path):
    base, names = straight
    assert names.count("best.pt") >= 2 and names.count("selected.pt") >= 2, "fixture too static"
    summary = json.loads((base / "summary.json").read_text())
    best_epoch, selected_epoch = summary["best_epoch"], summary["selected_epoch"]
    for k in range(len(names)):
        run = tmp_path / f"cut{k}"
        run.mkdir()
        seen = [0]
        real_csv, real_ck = trainer.write_csv, trainer.save_checkpoint

        def kill_at_k(write, k=k, seen=seen):
            def wrapped(path, obj):
                if path.name in ("metrics.csv", "last.pt", "best.pt", "selected.pt"):
                    if seen[0] == k:
                        raise KeyboardInterrupt  # the process dies before this write lands
                    seen[0] += 1
                write(path, obj)
            return wrapped

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(trainer, "write_csv", kill_at_k(real_csv))
            mp.setattr(trainer, "save_checkpoint", kill_at_k(real_ck))
            with pytest.raises(KeyboardInterrupt):
                train_run(config(), ds, run, CPU, show_progress=False)
        # What a kill leaves: best.pt and selected.pt never hold an epoch that last.pt has not
        # committed (a resume that replays that epoch differently, e.g. on a GPU, could not undo
        # it).
        committed = load(run / "last.pt")["epoch"] if (run / "last.pt").exists() else 0
        for name in ("best.pt", "selected.pt"):
            if (run / name).exists():
                assert load(run / name)["epoch"] <= committed, f"kill before write {k}: {name}"
        s = train_run(config(), ds, run, CPU, show_progress=False)
        pd.testing.assert_frame_equal(pd.read_csv(run / "metrics.csv").drop(columns=TIMING),
                                      pd.read_csv(base / "metrics.csv").drop(columns=TIMING),
                                      check_exact=True)
        assert s["best_epoch"] == best_epoch and s["selected_epoch"] == selected_epoch
        for name, epoch in (("best.pt", best_epoch), ("selected.pt", selected_epoch)):
            got, ref = load(run / name), load(base / name)
            assert got["epoch"] == epoch, f"kill before write {k}: {name} holds another epoch"
            for key, tensor in ref["model"].items():
                assert torch.equal(got["model"][key], tensor), (k, name, key)
        assert (run / "predictions.csv").read_bytes() == (base / "predictions.csv").read_bytes()
