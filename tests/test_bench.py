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


def test_fast_profile_benchmark_runs_tiny_and_writes_its_report(tiny, tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_fast", EXPERIMENTS / "bench_fast.py")
    bench_fast = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_fast)
    out = tmp_path / "bench"
    assert bench_fast.main(["--device", "cpu", "--quick", "--data", str(tiny.pickles),
                            "--widths", "4", "--batches", "16", "--out", str(out)]) == 0
    (csv,) = out.glob("fast-*.csv")  # named by the device: each machine keeps its own file
    assert csv.name == f"fast-{bench_fast.device_slug(torch.device('cpu'))}.csv"
    df = pd.read_csv(csv)
    steps = df[df["part"] == "step"]
    assert set(steps["model"]) == {"preact_resnet18", "fastnet"}
    assert (steps["images_per_s"] > 0).all() and (steps["gflop_per_image"] > 0).all()
    # FLOP grow with width: PreAct ResNet-18 at width 16 costs more than FastNet at width 4.
    assert steps.set_index("model")["gflop_per_image"].idxmax() == "preact_resnet18"
    run = df[df["part"] == "run"].iloc[0]
    assert run["epochs"] == 1 and 0 <= run["last_full_test_acc"] <= 1
    md = csv.with_suffix(".md").read_text()
    assert "matmul peak" in md and "H100" in md and "--quick" in md
    assert "of amx_bf16, avx512_bf16, avx512f, avx2" in md  # the ISA its bf16 kernels ran on
