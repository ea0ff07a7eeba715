"""The training-time estimate: the fixed table, and its calibration on finished runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustmix.training.config import make_config
from robustmix.training.estimate import calibration, estimate_seconds, estimate_text

CPU = torch.device("cpu")


def fake_run(out: Path, seed: int, seconds: float, device: str = "cpu", finished: bool = True,
             epochs: int = 4) -> Path:
    cfg = make_config(method="erm", ratio=0.5, profile="quick", seed=seed)
    cfg.epochs = epochs
    run = out / cfg.run_name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"train": cfg.to_dict(), "env": {"device": device}}))
    pd.DataFrame({"epoch": range(1, epochs + 1), "seconds": [seconds / epochs] * epochs}).to_csv(
        run / "metrics.csv", index=False)
    if finished:
        (run / "summary.json").write_text("{}")
    return run


def test_estimate_is_the_table_without_finished_runs(tmp_path):
    cfg = make_config(method="erm", ratio=0.5, profile="quick", seed=0)
    assert calibration(tmp_path / "nothing", CPU) == (1.0, 0)
    text = estimate_text([cfg], CPU, tmp_path)
    assert "development machine" in text
    assert f"{estimate_seconds([cfg], CPU) / 60:.0f} min" in text


def test_calibration_is_the_median_ratio_of_finished_runs_on_this_device_type(tmp_path):
    cfg = make_config(method="erm", ratio=0.5, profile="quick", seed=0)
    cfg.epochs = 4
    expected = estimate_seconds([cfg], CPU)
    for seed, ratio in enumerate((2.0, 3.0, 10.0)):
        fake_run(tmp_path, seed, ratio * expected)
    fake_run(tmp_path, 7, 100 * expected, device="cuda")  # another device type: ignored
    fake_run(tmp_path, 8, 100 * expected, finished=False)  # unfinished: ignored
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")  # unreadable: ignored
    (tmp_path / "broken" / "summary.json").write_text("{}")
    factor, n = calibration(tmp_path, CPU)
    assert n == 3 and factor == pytest.approx(3.0)
    assert estimate_seconds([cfg], CPU, factor) == pytest.approx(3 * expected)
    assert f"speed of the 3 finished run(s) in {tmp_path}" in estimate_text([cfg], CPU, tmp_path)


def test_fastnet_estimate_follows_the_measured_width_scaling():
    # The measured training steps (fast.notes.md): width 32 ran 2.82x as many images/s as width 64.
    from robustmix.training.config import make_config

    def seconds(width: int) -> float:
        cfg = make_config(method="erm", ratio=0.5, profile="fast", width=width)
        return estimate_seconds([cfg], CPU)

    assert seconds(64) / seconds(32) == pytest.approx(2779 / 985, rel=0.02)
