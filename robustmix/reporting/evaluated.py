"""Folders of `python -m robustmix.evaluate` (models robustmix did not train) read beside the
trained runs: one row per model with its clean accuracy (Wilson interval over its test images),
calibration (bootstrap intervals over them, from calibration.csv), AutoAttack robust accuracy
and reliability (robustbench.json), gradient-masking flags and, where scored, its mean accuracy
and ECE under the common corruptions. One model has no training seeds: every interval here
covers its test images only, and no verdict is drawn from these rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import UsageError
from ..evaluation.defaults import KIND
from ..runs.files import CONFIG, CORRUPTIONS
from . import statistics as S

COLUMNS = ["model", "path", "images", "clean_acc", "clean_lo", "clean_hi", "ece", "ece_lo",
           "ece_hi", "nll", "autoattack_acc", "autoattack_eps", "threat_model", "flags",
           "unreliable", "corrupted_acc", "corrupted_ece", "corruption_sets"]


def is_evaluated(run: Path) -> bool:
    """True for a folder `python -m robustmix.evaluate` wrote (its config.json says so)."""
    try:
        return json.loads((Path(run) / CONFIG).read_text()).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def _read(path: Path, what: str):
    try:
        return json.loads(path.read_text()) if path.suffix == ".json" else pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {path} ({what}): {e}") from None


def read_evaluated(run: Path) -> dict:
    run = Path(run)
    bench = _read(run / "robustbench.json", "the evaluated model's RobustBench numbers")
    summary = _read(run / "summary.json", "the evaluated model's summary")
    cal = _read(run / "calibration.csv", "its calibration").set_index("metric")
    n = int(summary["n_images"])
    acc = float(summary["clean_accuracy"])
    lo, hi = S.wilson(acc * n, n)
    flags = run / "attack_flags.csv"
    row = {"model": bench["model"], "path": str(run), "images": n, "clean_acc": 100 * acc,
           "clean_lo": 100 * lo, "clean_hi": 100 * hi,
           "ece": float(cal.loc["ece", "value"]), "ece_lo": float(cal.loc["ece", "ci_low"]),
           "ece_hi": float(cal.loc["ece", "ci_high"]), "nll": float(cal.loc["nll", "value"]),
           "autoattack_acc": bench.get("autoattack_acc"), "autoattack_eps": bench.get("eps"),
           "threat_model": bench.get("threat_model"),
           "flags": len(pd.read_csv(flags)) if flags.exists() and flags.stat().st_size else 0,
           "unreliable": bool(bench.get("evaluation potentially unreliable")),
           "corrupted_acc": float("nan"), "corrupted_ece": float("nan"), "corruption_sets": 0}
    if (run / CORRUPTIONS).exists():
        c = _read(run / CORRUPTIONS, "its common-corruption rows")
        c = c[c["corruption"] != "clean"]
        row.update(corrupted_acc=100 * float(c["accuracy"].mean()),
                   corrupted_ece=float(c["ece"].mean()), corruption_sets=len(c))
    return row


def evaluated_table(runs: list[Path]) -> pd.DataFrame:
    return pd.DataFrame([read_evaluated(r) for r in runs], columns=COLUMNS)
