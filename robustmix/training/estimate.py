"""A rough training-time estimate, printed before work starts so a user can stop a plan that
would take too long. Calibrated on the finished runs already in the output folder when there
are any: machines differ by several times (a quick-profile run took 5.5 min of one core on the
AVX-512 development machine and about 16 on an AVX2 one), so a fixed table alone misleads."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd
import torch

from .config import TrainConfig

# Rough training throughput (images/s) for the width-16 network; cost grows with width².
# CPU figures were measured on this project's 2-core development machine; the CUDA one is the
# H100 goal of the GPU issue, not yet a measurement.
THROUGHPUT = {("cpu", "bf16"): 1250.0, ("cpu", "fp32"): 650.0,
              ("cuda", "bf16"): 20000.0 * 16, ("cuda", "fp32"): 8000.0 * 16}
# FastNet at its width 64, relative to the table (a training step at batch 512, bf16, on the
# development machine: 985 images/s; experiments/bench.py measures it). Its cost grows as
# width^1.5, not width²: the measured steps at widths 32 / 48 / 64 (2,779 / 1,528 / 985 images/s,
# experiments/fast.notes.md) fit width^-1.50 within 1 %, the stem and pooling costing alike at
# every width.
FASTNET_64 = 985.0 / 1250.0
FASTNET_EXPONENT = 1.5


def estimate_seconds(cfgs: list[TrainConfig], device: torch.device, factor: float = 1.0) -> float:
    """Seconds to train cfgs at the table's speed, times factor (see calibration)."""
    total = 0.0
    for c in cfgs:
        # A device type without a measurement (mps, xpu, ...) is estimated as a CPU.
        kind = device.type if device.type in ("cpu", "cuda") else "cpu"
        # A model factory's size is unknown (width 0): estimated as the width-16 network.
        if c.model == "fastnet":
            speed = THROUGHPUT[(kind, c.precision)] * FASTNET_64 * (64 / c.width) ** FASTNET_EXPONENT
        else:
            speed = THROUGHPUT[(kind, c.precision)] * (16 / (c.width or 16)) ** 2
        n_train = c.train_subset or 50000 - c.val_n
        n_eval = (c.test_n or 10000) + c.train_eval_n
        total += c.epochs * (n_train + n_eval / 3) / speed  # evaluation costs about 1/3 of a step
    return total * factor


def calibration(out: Path, device: torch.device) -> tuple[float, int]:
    """(factor, n): the median ratio of measured to estimated training time over the n finished
    runs in out trained on this device type (their metrics.csv `seconds`, evaluation included);
    (1.0, 0) when there are none."""
    from ..runs.files import CONFIG, METRICS, SUMMARY

    ratios = []
    for path in sorted(Path(out).glob(f"*/{CONFIG}")) if Path(out).is_dir() else []:
        run = path.parent
        if not (run / SUMMARY).exists():
            continue
        try:
            rec = json.loads(path.read_text())
            if rec.get("env", {}).get("device") != device.type:
                continue
            cfg = TrainConfig.from_dict(rec["train"])
            measured = float(pd.read_csv(run / METRICS)["seconds"].sum())
            expected = estimate_seconds([cfg], device)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a run this version cannot read says nothing about speed
        if measured > 0 and expected > 0:
            ratios.append(measured / expected)
    return (statistics.median(ratios), len(ratios)) if ratios else (1.0, 0)


def estimate_text(cfgs: list[TrainConfig], device: torch.device, out: Path) -> str:
    """'estimated training 2.1 h (speed of the 3 finished runs in OUT)' or, with none there, the
    same from the table of the development machine."""
    factor, n = calibration(out, device)
    s = estimate_seconds(cfgs, device, factor)
    when = (f"{s / 3600:.1f} h" if s >= 5400 else f"{s / 60:.0f} min" if s >= 60
            else f"{s:.0f} s")
    where = (f"speed of the {n} finished run(s) in {out}" if n else
             "speed of the development machine; machines differ by several times")
    return f"estimated training {when} ({where})"
