"""experiments/bench.py, the one speed benchmark, runs end to end at tiny size on CPU."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import pandas as pd
import torch

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def load_bench(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))  # bench.py imports bench_fgsm beside it
    spec = importlib.util.spec_from_file_location("bench", EXPERIMENTS / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_benchmark_measures_every_part_and_writes_its_report(tmp_path, monkeypatch):
    bench = load_bench(monkeypatch)
    out = tmp_path / "bench"
    assert bench.main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    df = pd.read_csv(out / "cpu.csv")
    train = df[df["task"].str.startswith("train epoch (mixup")]
    assert set(train["impl"]) == {"reference", "robustmix per-batch plan", "robustmix fp32",
                                  "robustmix"}
    assert (train["images"] == 192).all() and (train["images_per_second"] > 0).all()
    prep = df[df["task"] == "batch preparation, no network (192 images)"]
    assert set(prep["impl"]) == {"robustmix per-batch plan", "robustmix"}
    tasks = set(df["task"])
    assert "test evaluation (256)" in tasks
    for attack in ("fgsm sweep, 8 eps", "ifgsm sweep, 8 eps, 2 steps", "pgd sweep, 8 eps, 2 steps"):
        rows = df[df["task"] == attack]
        assert set(rows["impl"]) == {"robustmix", "torchattacks loop"}, attack
        assert rows["same_result"].all(), attack  # robustmix's accuracies equal torchattacks'
    md = (out / "cpu.md").read_text()
    assert f"date: {dt.date.today()}" in md and "--quick" in md
    assert f"torch {torch.__version__}" in md and "torchattacks" in md
    assert "per-batch path it replaced" in md and "torch.profiler" in md
    assert "aten::" in md  # the profiler's operator table
