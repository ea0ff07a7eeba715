"""The run-like folder `python -m robustmix.evaluate` writes for one outside model.

Files, each written atomically, in this order (summary.json last: its presence marks a finished
folder, as in a trained run):

  config.json       what was evaluated: the factory or TorchScript path and the sha256 of its
                    file, the data (source, test fingerprint, images), the attack and calibration
                    settings, versions, device and seed; "kind" names this command
  attack.csv        one row per attack and ε, in trained runs' attack.csv schema
                    (attacks/runner.py COLUMNS), so that reports read it beside them
  attack_flags.csv  gradient-masking flags (attacks/flags.py)
  checks.csv        the guard checks: deterministic forward pass, non-zero input gradient
  calibration.csv   ECE (15 equal-width bins), NLL and Brier score on the clean images, with
                    bootstrap intervals over the test images (evaluation/calibration.py)
  corruptions.csv   with --corruptions: accuracy (Wilson interval), ECE and NLL per corruption
                    and severity and the clean row, in trained runs' corruptions.csv schema
  robustbench.json  clean and AutoAttack robust accuracy in RobustBench's terms
  summary.json      headline numbers and the finishing time

A folder is refused unless it is new, empty, or one this command wrote: a finished one only with
--force (its files are then replaced; nothing is deleted), and a folder robustmix did not make is
never written into nor deleted.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import pandas as pd

from ..atomic import write_csv, write_json
from ..attacks.rows import write_evaluated
from ..attacks.runner import COLUMNS
from ..errors import UsageError
from ..runs.files import CONFIG, CORRUPTIONS, SUMMARY, is_finished
from .defaults import KIND
from .external import Evaluation

CHECKS = "checks.csv"
CALIBRATION = "calibration.csv"
ROBUSTBENCH = "robustbench.json"
UNRELIABLE = "evaluation potentially unreliable"  # RobustBench's wording
# RobustBench's CIFAR-10 budgets, per threat model in its units (L∞ 8/255, L2 0.5): its robust
# accuracy is the one robustbench.json reports when AutoAttack ran at it, else the largest ε
# AutoAttack ran at.
ROBUSTBENCH_EPS = 8.0
ROBUSTBENCH_EPS_OF = {"linf": ROBUSTBENCH_EPS, "l2": 0.5}
THREAT_MODEL = {"linf": "Linf", "l2": "L2"}  # RobustBench's names


def made_here(out: Path) -> bool:
    try:
        return json.loads((out / CONFIG).read_text()).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def check_out(out: Path, force: bool) -> None:
    """UsageError unless out may be written (see the module docstring); writes nothing."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    if not made_here(out):
        if any(out.iterdir()):
            raise UsageError(f"--out {out} is a folder that robustmix.evaluate did not make; "
                             "choose a new or empty folder (robustmix never writes into or "
                             "deletes it)")
        return
    if is_finished(out) and not force:
        raise UsageError(f"--out {out} holds a finished evaluation ({SUMMARY}); pass --force "
                         "to replace it")


def attack_rows(result: Evaluation, run: str, dataset: str, device: str, data: str,
                fingerprint: str) -> pd.DataFrame:
    """result.attacks in attack.csv's schema. A trained run's training fields have no value for
    an outside model: method "external", noise "none", ratio, alpha, dropout 0, seed -1."""
    date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    meta = {"run": run, "dataset": dataset, "noise": "none", "ratio": 0.0, "method": "external",
            "alpha": 0.0, "dropout": 0.0, "seed": -1, "profile": "external",
            "checkpoint": "given", "twin": False, "source": run, "device": device, "date": date,
            "data": data, "test_fingerprint": fingerprint}
    t = result.attacks
    if not len(t):
        return pd.DataFrame(columns=COLUMNS)
    return t.assign(**meta)[COLUMNS]


def unreliable_reasons(result: Evaluation) -> list[str]:
    return ([f"{r['flag']}: {r['detail']}" for r in result.flags.to_dict("records")]
            + [f"{r['check']} failed: {r['detail']}" for r in result.checks.to_dict("records")
               if not r["passed"]])


def robustbench_json(result: Evaluation, model: str, dataset: str) -> dict:
    """RobustBench's numbers (accuracies in %, 2 decimals, as its model cards give them)."""
    aa = result.attacks[result.attacks["attack"] == "autoattack"] if len(result.attacks) \
        else result.attacks
    # one evaluation is one threat model (evaluate's norm); a table without one is L∞
    norm = str(result.attacks["norm"].iloc[0]) if "norm" in result.attacks and len(
        result.attacks) else "linf"
    unit = "/255" if norm == "linf" else ""

    def text(e: float) -> str:
        return f"{e:g}{unit}"

    by_eps = {text(e): round(100 * float(a), 2)
              for e, a in zip(aa.get("eps", []), aa.get("accuracy", []), strict=True)}
    eps = None
    if len(aa):
        top = ROBUSTBENCH_EPS_OF[norm]
        eps = top if top in set(aa["eps"]) else float(aa["eps"].max())
    reasons = unreliable_reasons(result)
    return {"model": model, "dataset": dataset, "threat_model": THREAT_MODEL[norm],
            "eps": None if eps is None else text(eps),
            "clean_acc": round(100 * result.clean_accuracy, 2),
            "autoattack_acc": None if eps is None else by_eps[text(eps)],
            "autoattack_acc_by_eps": by_eps, "n_images": int(result.clean["n"].iloc[0]),
            UNRELIABLE: bool(reasons), "unreliable_because": reasons}


def summary_json(result: Evaluation, seconds: float) -> dict:
    cal = result.calibration.set_index("metric")["value"] if len(result.calibration) else {}
    robust = result.robust
    return {"finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 3), "n_images": int(result.clean["n"].iloc[0]),
            "clean_accuracy": result.clean_accuracy,
            "robust_accuracy": {f"{e:g}": float(a) for e, a in
                                zip(robust.get("eps", []), robust.get("accuracy", []),
                                    strict=True)},
            "calibration": {k: float(v) for k, v in dict(cal).items()},
            "flags": len(result.flags), "reliable": result.reliable}


def write_folder(out: Path, config: dict, rows: pd.DataFrame, result: Evaluation,
                 robustbench: dict, summary: dict, corruptions: pd.DataFrame | None = None
                 ) -> None:
    """Every file of the folder, summary.json last; a finished folder (--force) is marked
    unfinished first, so that an interrupted rewrite is never taken for a finished one."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {out}: {e.strerror or e}") from None
    (out / SUMMARY).unlink(missing_ok=True)
    write_json(out / CONFIG, {"kind": KIND, **config})
    write_evaluated(out, rows, result.flags)
    write_csv(out / CHECKS, result.checks)
    write_csv(out / CALIBRATION, result.calibration)
    if corruptions is not None:
        write_csv(out / CORRUPTIONS, corruptions)
    write_json(out / ROBUSTBENCH, robustbench)
    write_json(out / SUMMARY, summary)
