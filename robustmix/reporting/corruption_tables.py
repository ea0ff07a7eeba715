"""The report's common-corruption tables, from the corruptions.csv rows of its runs
(`python -m robustmix.corrupt`, or `python -m robustmix.evaluate --corruptions`).

Per condition, method and checkpoint: accuracy on the clean images and averaged over every
corruption x severity set scored, the calibration of the same predictions (ECE over 15
equal-width bins, NLL) on clean and corrupted images, and the mean corruption error relative
to ERM of the same condition (Hendrycks & Dietterich 2019; evaluation/corruptions.mce), computed
per training seed against ERM of the same seed on the same images. Each value is a mean over
training seeds; its interval, a Student t over seeds, is printed only from MIN_SEEDS seeds on
(it then covers seed-to-seed variation with the test images and corruption draws fixed);
with fewer seeds the value is a description. Rows are compared only within one setting
(constants, corruption seed, number of test images): tables of other settings are kept apart.
"""

from __future__ import annotations

import pandas as pd

from ..errors import UsageError
from . import statistics as S

SETTING = ["checkpoint", "constants", "corruption_seed", "n"]
GROUP = ["condition", "ratio", "method", "alpha", "dropout", *SETTING]
COLUMNS = [*GROUP, "n_seeds", "sets", "clean_acc", "corrupted_acc", "corrupted_acc_lo",
           "corrupted_acc_hi", "clean_ece", "corrupted_ece", "corrupted_ece_lo",
           "corrupted_ece_hi", "corrupted_nll", "mce_vs_erm", "mce_vs_erm_lo", "mce_vs_erm_hi",
           "interval"]
CLEAN = "clean"


def _per_run(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per run and setting: clean and corrupted-mean accuracy (%), ECE and NLL."""
    out = []
    for key, g in rows.groupby(["path", "seed", *GROUP], dropna=False, sort=False):
        clean, corr = g[g["corruption"] == CLEAN], g[g["corruption"] != CLEAN]
        if not len(corr):
            continue
        out.append({**dict(zip(["path", "seed", *GROUP], key, strict=True)),
                    "sets": len(corr),
                    "clean_acc": 100 * float(clean["accuracy"].iloc[0]) if len(clean) else
                    float("nan"),
                    "corrupted_acc": 100 * float(corr["accuracy"].mean()),
                    "clean_ece": float(clean["ece"].iloc[0]) if len(clean) else float("nan"),
                    "corrupted_ece": float(corr["ece"].mean()),
                    "corrupted_nll": float(corr["nll"].mean())})
    return pd.DataFrame(out)


def _mce(rows: pd.DataFrame, run: pd.Series) -> float:
    """The run's mCE (%) against ERM of its condition, seed and setting; NaN without one."""
    from ..evaluation.corruptions import mce

    same = (rows["method"] == "erm") & (rows["seed"] == run["seed"])
    for k in ["condition", *SETTING]:
        same &= rows[k] == run[k]
    base = rows[same]
    mine = rows[rows["path"] == run["path"]]
    for k in SETTING:
        mine = mine[mine[k] == run[k]]
    if not len(base) or run["method"] == "erm":
        return float("nan")
    try:
        return 100 * mce(mine, base).mce
    except UsageError:  # other corruptions, severities or images than ERM's: no comparison
        return float("nan")


def _interval(values: pd.Series) -> tuple[float, float]:
    vals = [v for v in values if pd.notna(v)]
    if len(vals) < S.MIN_SEEDS:
        return float("nan"), float("nan")
    return S.t_interval(vals)


def corruption_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The table described in the module docstring, from Results.corruptions."""
    if rows is None or not len(rows):
        return pd.DataFrame(columns=COLUMNS)
    per = _per_run(rows)
    if not len(per):
        return pd.DataFrame(columns=COLUMNS)
    per["mce_vs_erm"] = [_mce(rows, r) for _, r in per.iterrows()]
    out = []
    for key, g in per.groupby(GROUP, dropna=False, sort=False):
        n = g["seed"].nunique()
        acc_lo, acc_hi = _interval(g["corrupted_acc"])
        ece_lo, ece_hi = _interval(g["corrupted_ece"])
        mce_lo, mce_hi = _interval(g["mce_vs_erm"])
        out.append({**dict(zip(GROUP, key, strict=True)), "n_seeds": n,
                    "sets": int(g["sets"].max()), "clean_acc": g["clean_acc"].mean(),
                    "corrupted_acc": g["corrupted_acc"].mean(), "corrupted_acc_lo": acc_lo,
                    "corrupted_acc_hi": acc_hi, "clean_ece": g["clean_ece"].mean(),
                    "corrupted_ece": g["corrupted_ece"].mean(), "corrupted_ece_lo": ece_lo,
                    "corrupted_ece_hi": ece_hi, "corrupted_nll": g["corrupted_nll"].mean(),
                    "mce_vs_erm": g["mce_vs_erm"].mean(), "mce_vs_erm_lo": mce_lo,
                    "mce_vs_erm_hi": mce_hi,
                    "interval": (f"Student t over {n} training seeds (test images and "
                                 "corruption draws fixed)" if n >= S.MIN_SEEDS else
                                 f"{n} training seed(s): described, no interval")})
    return pd.DataFrame(out, columns=COLUMNS)
