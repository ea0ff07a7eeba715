"""Checks that need a CUDA GPU (`python -m pytest -m cuda`); skipped where there is none."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

import robustmix.attack as attack_cli
import robustmix.noise as noise
from robustmix.cli import run_main

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def paper_args(data, out, *extra):
    # The paper profile at one epoch on a subset: the real code path, minutes not hours.
    return ["--methods", "erm", "--epochs", "1", "--profile", "paper", "--device", "cuda",
            "--train-subset", "2000", "--val-n", "20", "--data", str(data), "--out", str(out), "--quiet", *extra]


def test_one_epoch_paper_profile_run_and_its_attack(tiny, tmp_path):
    out = tmp_path / "runs"
    assert run_main(noise.main, paper_args(tiny.pickles, out)) == 0
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["env"]["device"].startswith("cuda")
    major, _ = torch.cuda.get_device_capability()
    assert cfg["train"]["precision"] == ("bf16" if major >= 8 else "fp32")
    assert cfg["precision_reason"].startswith("auto: CUDA compute capability")
    assert run_main(attack_cli.main, [str(run), "--attacks", "fgsm", "--eps", "0,8",
                                      "--device", "cuda", "--precision", "run",
                                      "--quiet"]) == 0
    a = pd.read_csv(run / "attack.csv")
    m = pd.read_csv(run / "metrics.csv")
    clean = a[(a["eps"] == 0) & (a["mode"] == "white-box")]["accuracy"].item()
    assert clean == m["test_acc"].iloc[-1]  # ε = 0 equals the stored test accuracy
    assert a[a["eps"] == 8]["accuracy"].item() <= clean


def test_resume_on_cuda_finishes_the_run(tiny, tmp_path, monkeypatch):
    from robustmix.training.trainer import Trainer

    out = tmp_path / "runs"
    real, calls = Trainer.train_epoch, []

    def interrupt_second(self, epoch):
        calls.append(epoch)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", interrupt_second)
    assert run_main(noise.main, paper_args(tiny.pickles, out, "--epochs", "3")) == 130
    monkeypatch.setattr(Trainer, "train_epoch", real)
    assert run_main(noise.main, paper_args(tiny.pickles, out, "--epochs", "3")) == 0
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    m = pd.read_csv(run / "metrics.csv")
    assert list(m["epoch"]) == [1, 2, 3]
    s = json.loads((run / "summary.json").read_text())
    assert torch.load(run / "best.pt", weights_only=True)["epoch"] == s["best_epoch"]
