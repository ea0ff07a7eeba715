"""A small synthetic results folder with known numbers, for the report tests.

`write_fixture(root)` writes run directories shaped exactly like the training and attack stages
write them (config.json, metrics.csv, summary.json, attack.csv) and returns the specs, so the
tests can compute every expected number independently of robustmix.results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

EPOCHS = 6
EPS = (0.0, 2.0, 4.0, 8.0)
DATA = "CIFAR-10, synthetic fixture"
DEVICE = "Fixture CPU, 2 threads"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass(frozen=True)
class Spec:
    ratio: float
    method: str
    alpha: float
    dropout: float
    seed: int
    peak: float  # best test accuracy (fraction)
    peak_epoch: int
    final: float  # last-epoch test accuracy
    noisy_final: float  # last-epoch training accuracy against the noisy labels
    slope: float  # white-box FGSM accuracy lost per ε unit (fraction); I-FGSM loses 1.5x

    @property
    def name(self) -> str:
        return (f"cifar10_sym{self.ratio:g}_{self.method}_a{self.alpha:g}_p{self.dropout:g}"
                f"_quick_s{self.seed}")


SPECS = (
    Spec(0.2, "erm", 0.0, 0.0, 0, 0.70, 3, 0.60, 0.95, 0.05),
    Spec(0.2, "dropout", 0.0, 0.7, 0, 0.72, 4, 0.70, 0.80, 0.045),
    Spec(0.2, "mixup", 8.0, 0.0, 0, 0.78, 5, 0.77, 0.70, 0.03),
    Spec(0.2, "mixup_dropout", 4.0, 0.1, 0, 0.76, 6, 0.76, 0.68, 0.035),
    Spec(0.5, "erm", 0.0, 0.0, 0, 0.55, 2, 0.40, 0.90, 0.05),
    Spec(0.5, "erm", 0.0, 0.0, 1, 0.57, 3, 0.44, 0.88, 0.05),
    Spec(0.5, "mixup", 32.0, 0.0, 0, 0.66, 5, 0.64, 0.55, 0.03),
    Spec(0.5, "mixup", 8.0, 0.0, 0, 0.63, 4, 0.60, 0.60, 0.03),
    Spec(0.5, "mixup_same_class", 32.0, 0.0, 0, 0.58, 4, 0.52, 0.75, 0.04),
)
PAPER = {(0.2, "erm"): (12.7, 16.6), (0.2, "dropout"): (8.8, 10.4), (0.2, "mixup"): (5.9, 6.4),
         (0.2, "mixup_dropout"): (6.2, 6.2), (0.5, "erm"): (18.8, 44.6),
         (0.5, "mixup"): (11.3, 12.7)}


def curve(s: Spec) -> pd.DataFrame:
    """Test accuracy rises linearly to peak at peak_epoch then falls linearly to final."""
    e = np.arange(1, EPOCHS + 1)
    start = s.peak - 0.3
    test = np.where(e <= s.peak_epoch,
                    start + (s.peak - start) * (e - 1) / max(s.peak_epoch - 1, 1),
                    s.peak + (s.final - s.peak) * (e - s.peak_epoch) / max(EPOCHS - s.peak_epoch, 1))
    noisy = np.linspace(0.2, s.noisy_final, EPOCHS)
    clean = np.linspace(0.25, 0.6, EPOCHS)
    memorised = np.linspace(0.05, max(0.0, (s.noisy_final - (1 - s.ratio)) / s.ratio), EPOCHS)
    return pd.DataFrame({
        "epoch": e, "lr": 0.1, "train_loss": np.linspace(2.3, 1.0, EPOCHS), "test_acc": test,
        "test_error": 1 - test, "test_loss": 1.5, "train_acc_noisy": noisy,
        "train_acc_clean": clean, "memorised": memorised, "train_seconds": 4.0, "seconds": 5.0,
        "images_per_second": 1250.0})


def attack_rows(s: Spec, source: Spec) -> list[dict]:
    """White-box rows (source = itself) and black-box rows (source = ERM seed 0 at its ratio)
    for FGSM and I-FGSM at EPS, for the last checkpoint and, 5 points higher, the best one."""
    rows = []
    for checkpoint, bonus in (("last", 0.0), ("best", 0.05)):
        for attack, factor, steps in (("fgsm", 1.0, 1), ("ifgsm", 1.5, 10)):
            for mode, src, k in (("white-box", s, 1.0), ("black-box", source, 0.5)):
                for eps in EPS:
                    acc = max(0.0, s.final + bonus - k * factor * s.slope * eps)
                    rows.append({
                        "run": s.name, "dataset": "cifar10", "noise": "sym", "ratio": s.ratio,
                        "method": s.method, "alpha": s.alpha, "dropout": s.dropout,
                        "seed": s.seed, "profile": "quick", "checkpoint": checkpoint,
                        "mode": mode, "source": src.name, "attack": attack, "eps": eps,
                        "steps": steps, "step_size": eps / steps, "n": 500,
                        "correct": round(500 * acc), "accuracy": acc, "seconds": 1.0,
                        "precision": "bf16", "device": "cpu", "date": "2026-11-25T10:00:00+00:00"})
    return rows


def expected_attack_accuracy(s: Spec, attack: str, mode: str, eps: float,
                             checkpoint: str = "last") -> float:
    """The accuracy (%) attack_rows writes, recomputed from the spec."""
    bonus = 0.05 if checkpoint == "best" else 0.0
    factor = 1.5 if attack == "ifgsm" else 1.0
    k = 1.0 if mode == "white-box" else 0.5
    return 100 * max(0.0, s.final + bonus - k * factor * s.slope * eps)


def write_fixture(root: Path, specs=SPECS, attacks: bool = True, unfinished: bool = True) -> list[Spec]:
    """Write one run directory per spec under root (plus one unfinished run); return specs."""
    root = Path(root)
    for s in specs:
        run = root / s.name
        run.mkdir(parents=True)
        train = {"dataset": "cifar10", "noise": "sym", "ratio": s.ratio, "noise_seed": 0,
                 "method": s.method, "alpha": s.alpha, "dropout": s.dropout, "smoothing": 0.1,
                 "knn_k": 5, "seed": s.seed, "profile": "quick", "epochs": EPOCHS,
                 "batch_size": 128, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                 "milestones": [3, 5], "width": 16, "train_subset": 5000, "test_n": 2500,
                 "train_eval_n": 1000, "precision": "bf16", "augment": True}
        env = {"robustmix": "0.1.0", "python": "3.11", "torch": "2.x", "torchvision": "0.x",
               "numpy": "2.x", "device": "cpu", "device_name": DEVICE, "git_commit": COMMIT,
               "host": "fixture", "started": "2026-11-25T09:00:00+00:00",
               "command": "noise.py --ratio 0.2 0.5"}
        (run / "config.json").write_text(json.dumps(
            {"train": train, "env": env, "data": {"source": "/data/x", "description": DATA}}))
        m = curve(s)
        m.to_csv(run / "metrics.csv", index=False)
        best = m.loc[m["test_acc"].idxmax()]
        last = m.iloc[-1]
        summary = {
            "run": s.name, "dataset": "cifar10", "data": DATA, "noise": "sym", "ratio": s.ratio,
            "method": s.method, "alpha": s.alpha, "dropout": s.dropout, "seed": s.seed,
            "profile": "quick", "best_test_error": float(best["test_error"]),
            "best_epoch": int(best["epoch"]), "last_test_error": float(last["test_error"]),
            "last_epoch": int(last["epoch"]), "last_train_acc_noisy": float(last["train_acc_noisy"]),
            "last_train_acc_clean": float(last["train_acc_clean"]),
            "last_memorised": float(last["memorised"]), "actual_noise_rate": 0.9 * s.ratio,
            "train_images": 5000, "test_images": 2500, "train_seconds": 24.0,
            "total_seconds": 30.0, "images_per_second": 1250.0}
        (run / "summary.json").write_text(json.dumps(summary))
        if attacks:
            source = next(x for x in specs if x.ratio == s.ratio and x.method == "erm" and x.seed == 0)
            rows = attack_rows(s, source)
            if s == specs[0]:  # an older measurement with other settings, superseded
                rows.insert(0, {**rows[-1], "steps": 5, "n": 100, "accuracy": 0.99,
                                "date": "2026-11-24T00:00:00+00:00"})
            pd.DataFrame(rows).to_csv(run / "attack.csv", index=False)
    if unfinished:  # training in progress: config and metrics, no summary
        s = Spec(0.8, "erm", 0.0, 0.0, 0, 0.3, 2, 0.2, 0.9, 0.05)
        run = root / s.name
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"train": {"method": "erm"}, "env": {}}))
        curve(s).iloc[:2].to_csv(run / "metrics.csv", index=False)
    return list(specs)
