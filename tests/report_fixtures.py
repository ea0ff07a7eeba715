"""A small synthetic results folder with known numbers, for the report tests.

`write_fixture(root)` writes run directories shaped exactly like the training and attack stages
write them (config.json, metrics.csv, summary.json, predictions.csv, attack.csv) and returns the
specs, so the tests can compute every expected number independently of robustmix.results.
`legacy=True` writes runs as robustmix wrote them before the validation set, the full test set
and per-image predictions existed (no val columns, no predictions.csv, older summary.json).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

EPOCHS = 6
TEST_N = 2500  # per-epoch test images
FULL_N = 5000  # the fixture's full test set, on which predictions.csv and *_full_test_error are
VAL_N = 500
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
    noise_seed: int = 0  # the corrupted-label draw; runs of other noise seeds are named _n<k>

    @property
    def name(self) -> str:
        return (f"cifar10_sym{self.ratio:g}_{self.method}_a{self.alpha:g}_p{self.dropout:g}"
                f"_quick_s{self.seed}" + (f"_n{self.noise_seed}" if self.noise_seed else ""))

    @property
    def selected_epoch(self) -> int:
        """The epoch of best noisy-validation accuracy: one after the test-selected epoch."""
        return min(self.peak_epoch + 1, EPOCHS)


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


def curve(s: Spec, legacy: bool = False) -> pd.DataFrame:
    """Test accuracy rises linearly to peak at peak_epoch then falls linearly to final; noisy
    validation accuracy peaks at selected_epoch (none for legacy runs)."""
    e = np.arange(1, EPOCHS + 1)
    start = s.peak - 0.3
    test = np.where(e <= s.peak_epoch,
                    start + (s.peak - start) * (e - 1) / max(s.peak_epoch - 1, 1),
                    s.peak + (s.final - s.peak) * (e - s.peak_epoch) / max(EPOCHS - s.peak_epoch, 1))
    noisy = np.linspace(0.2, s.noisy_final, EPOCHS)
    clean = np.linspace(0.25, 0.6, EPOCHS)
    memorised = (np.linspace(0.05, max(0.0, (s.noisy_final - (1 - s.ratio)) / s.ratio), EPOCHS)
                 if s.ratio > 0 else np.full(EPOCHS, np.nan))  # clean labels: nothing to memorise
    val_clean = s.peak - 0.02 * np.abs(e - s.selected_epoch)
    val_noisy = (1 - 0.9 * s.ratio) * val_clean + 0.09 * s.ratio
    m = pd.DataFrame({
        "epoch": e, "lr": 0.1, "train_loss": np.linspace(2.3, 1.0, EPOCHS), "test_acc": test,
        "test_error": 1 - test, "test_loss": 1.5, "train_acc_noisy": noisy,
        "train_acc_clean": clean, "memorised": memorised, "val_acc_noisy": val_noisy,
        "val_acc_clean": val_clean, "train_seconds": 4.0, "seconds": 5.0,
        "images_per_second": 1250.0})
    return m.drop(columns=["val_acc_noisy", "val_acc_clean"]) if legacy else m


def per_epoch_error(s: Spec, kind: str) -> float:
    """The error (fraction) of checkpoint kind on the per-epoch test images, from the curve."""
    m = curve(s).set_index("epoch")
    epoch = {"last": EPOCHS, "test_selected": s.peak_epoch, "selected": s.selected_epoch}[kind]
    return float(m.loc[epoch, "test_error"])


def expected_error(s: Spec, kind: str, legacy: bool = False) -> float:
    """The error (%) robustmix reports for checkpoint kind: on the full test set (a whole
    number of the FULL_N images), or for legacy runs on the per-epoch test images."""
    e = per_epoch_error(s, kind)
    return 100 * e if legacy else 100 * round(e * FULL_N) / FULL_N


HARD = np.random.default_rng(0).permutation(FULL_N)  # images every method tends to get wrong
LABELS = np.arange(FULL_N) % 10


def predictions(s: Spec) -> pd.DataFrame:
    """predictions.csv: for each checkpoint kind, round(error × FULL_N) wrong images, half of
    them from a shared list of hard images, half drawn for this run, so that two runs' errors
    are correlated but not nested, as real models' are."""
    table = {"index": np.arange(FULL_N), "label": LABELS}
    for k, kind in enumerate(("last", "selected", "test_selected")):
        rng = np.random.default_rng([zlib.crc32(s.name.encode()), k])
        n_wrong = round(per_epoch_error(s, kind) * FULL_N)
        shared = HARD[: n_wrong // 2]
        rest = np.setdiff1d(np.arange(FULL_N), shared)
        wrong = np.concatenate([shared, rng.choice(rest, n_wrong - len(shared), replace=False)])
        pred = LABELS.copy()
        pred[wrong] = (LABELS[wrong] + 1 + rng.integers(0, 9, len(wrong))) % 10
        table[kind] = pred
    return pd.DataFrame(table)


def attack_rows(s: Spec, source: Spec) -> list[dict]:
    """White-box rows (source = itself) and black-box rows (source = ERM seed 0 at its ratio)
    for FGSM and I-FGSM at EPS, for the last checkpoint and, 5 points higher, the test-selected
    one (named "best", as older attack.csv files do)."""
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
    bonus = 0.05 if checkpoint in ("best", "test-selected") else 0.0
    factor = 1.5 if attack == "ifgsm" else 1.0
    k = 1.0 if mode == "white-box" else 0.5
    return 100 * max(0.0, s.final + bonus - k * factor * s.slope * eps)


def write_fixture(root: Path, specs=SPECS, attacks: bool = True, unfinished: bool = True,
                  legacy: bool = False) -> list[Spec]:
    """Write one run directory per spec under root (plus one unfinished run); return specs.
    legacy: runs as older robustmix wrote them (no validation set, full test set or
    predictions.csv)."""
    root = Path(root)
    for s in specs:
        run = root / s.name
        run.mkdir(parents=True)
        train = {"dataset": "cifar10", "noise": "sym", "ratio": s.ratio,
                 "noise_seed": s.noise_seed,
                 "method": s.method, "alpha": s.alpha, "dropout": s.dropout, "smoothing": 0.1,
                 "knn_k": 5, "seed": s.seed, "profile": "quick", "epochs": EPOCHS,
                 "batch_size": 128, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                 "milestones": [3, 5], "width": 16, "train_subset": 5000, "test_n": TEST_N,
                 "train_eval_n": 1000, "precision": "bf16", "augment": True}
        if not legacy:
            train["val_n"] = VAL_N
        env = {"robustmix": "0.1.0", "python": "3.11", "torch": "2.x", "torchvision": "0.x",
               "numpy": "2.x", "device": "cpu", "device_name": DEVICE, "git_commit": COMMIT,
               "host": "fixture", "started": "2026-11-25T09:00:00+00:00",
               "command": "noise.py --ratio 0.2 0.5"}
        (run / "config.json").write_text(json.dumps(
            {"train": train, "env": env, "data": {"source": "/data/x", "description": DATA}}))
        m = curve(s, legacy)
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
            "last_memorised": None if np.isnan(last["memorised"]) else float(last["memorised"]),
            "actual_noise_rate": 0.9 * s.ratio,
            "train_images": 5000, "test_images": TEST_N, "train_seconds": 24.0,
            "total_seconds": 30.0, "images_per_second": 1250.0}
        if not legacy:
            sel = m.set_index("epoch").loc[s.selected_epoch]
            summary.update({
                "val_images": VAL_N, "selected_epoch": s.selected_epoch,
                "selected_val_acc_noisy": float(sel["val_acc_noisy"]),
                "selected_test_error": float(sel["test_error"]), "full_test_images": FULL_N,
                **{f"{k}_full_test_error": expected_error(s, k) / 100
                   for k in ("last", "selected", "test_selected")}})
            predictions(s).to_csv(run / "predictions.csv", index=False)
        (run / "summary.json").write_text(json.dumps(summary))
        if attacks:
            source = next((x for x in specs if x.ratio == s.ratio and x.method == "erm"
                           and x.seed == 0 and x.noise_seed == s.noise_seed), s)  # without an ERM run, black-box from itself
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


def write_nested_outcomes(run: Path) -> None:
    """attack_outcomes.npz for every row of a fixture run's attack.csv, nested: a row with k of
    its n images correct gets the first k right (the easy ones), as the same images attacked in
    every run would be."""
    from robustmix.attacks import rows as AR
    from robustmix.attacks.outcomes import outcome_key, write_outcomes

    rows = AR.with_added(pd.read_csv(Path(run) / "attack.csv"))
    write_outcomes(Path(run), {outcome_key(r): np.arange(int(r["n"])) < int(r["correct"])
                               for r in rows.to_dict("records")})
