"""Signs that an evaluation measured a weak attack rather than a robust model (gradient masking,
Athalye et al. 2018; Carlini et al. 2019), checked on a run's attack.csv rows.

Each flag names the rows and the numbers that raised it. Rows are compared only within one run,
checkpoint, image set (n), evaluation precision and norm: an L2 row is never compared with an L∞
row (their ε are other budgets in other units), and each flag names the norm of its rows. A difference counts when it exceeds
tolerance(n) images (0.5 % of the images, at least one), so a single image's coin flip does
not raise a flag.

| flag                        | raised when                                                     |
|-----------------------------|-----------------------------------------------------------------|
| accuracy_rises_with_eps     | one white-box attack (same settings) is less effective at a      |
|                             | larger ε than at a smaller one: a larger ball contains the       |
|                             | smaller ball's examples (black-box rows are not compared: their  |
|                             | examples are optimised for the source, not for this model)      |
| iterative_weaker_than_fgsm  | white-box I-FGSM or PGD leaves more images correct than white-box|
|                             | FGSM at the same ε (black-box rows are not compared: iterative   |
|                             | examples transfer worse than one-step ones, Kurakin et al. 2017, |
|                             | so there it is expected, not a sign of masking)                  |
| black_box_below_white_box   | an attack crafted on another model (black-box) fools the model   |
|                             | more than the same attack crafted on the model itself            |
| square_beats_gradients      | Square, which uses no gradients, fools the model more than every |
|                             | white-box gradient attack at that ε                              |
| pgd_not_near_zero           | white-box L∞ PGD at the largest ε, when that is ≥ 64/255, leaves |
|                             | more than 10 % correct: an undefended model falls to ~0 there    |
|                             | (L∞ only: no L2 budget is as plainly beyond every defence)       |
"""

from __future__ import annotations

import math

import pandas as pd

from .defaults import eps_text
from .outcomes import eval_precision, norm_of
from .registry import GRADIENT, ITERATIVE, QUERY

FLAGS = "attack_flags.csv"
COLUMNS = ["run", "checkpoint", "n", "precision", "norm", "flag", "attack", "mode", "source",
           "eps", "accuracy", "reference", "detail"]
LARGE_EPS = 64.0  # /255: PGD at an ε this large should leave an undefended model near 0
PGD_CEILING = 0.10  # "far from 0": more than this fraction correct
SETTINGS = ["steps", "restarts", "queries", "attack_seed"]


def tolerance(n: int) -> int:
    """Images by which two accuracies must differ to raise a flag."""
    return max(1, math.ceil(0.005 * n))


def _pct(r) -> str:
    return f"{100 * r['accuracy']:.1f}%"


def _who(r) -> str:
    return f"{r['attack']} {r['mode']}" + (f" from {r['source']}" if r["mode"] == "black-box" else "")


def _beyond(frame: pd.DataFrame, by, is_ref, is_row, weaker: bool, tol: int):
    """(row, reference, '(+k images > tol)') for each is_row row of a group of frame that leaves
    more (weaker) or fewer (not weaker) images correct than the group's strongest is_ref row,
    by more than tol images."""
    for _, s in frame.groupby(by, sort=False):
        ref = s[is_ref(s)]
        if not len(ref):
            continue
        best = ref.sort_values("correct").iloc[0]
        for r in s[is_row(s)].to_dict("records"):
            gap = r["correct"] - best["correct"] if weaker else best["correct"] - r["correct"]
            if gap > tol:
                yield r, best, f"({'+' if weaker else '-'}{gap} images > {tol})"


def check_flags(rows: pd.DataFrame) -> pd.DataFrame:
    """The flags raised by attack.csv rows (one run or several); columns COLUMNS."""
    if rows is None or not len(rows):
        return pd.DataFrame(columns=COLUMNS)
    df = rows.assign(eval_precision=[eval_precision(p) for p in rows["precision"]],
                     norm=[norm_of(r) for r in rows.to_dict("records")])
    for col, default in (("restarts", 1), ("queries", 0), ("attack_seed", -1)):
        if col not in df.columns:
            df[col] = default
    out: list[dict] = []

    def flag(name: str, r, reference: float, detail: str) -> None:
        out.append({"run": r["run"], "checkpoint": r["checkpoint"], "n": int(r["n"]),
                    "precision": r["eval_precision"], "norm": r["norm"], "flag": name, "attack": r["attack"],
                    "mode": r["mode"], "source": r["source"], "eps": float(r["eps"]),
                    "accuracy": float(r["accuracy"]), "reference": float(reference),
                    "detail": detail})

    for (_run, _ck, n, _prec, norm), g in df.groupby(
            ["run", "checkpoint", "n", "eval_precision", "norm"], sort=False):
        tol = tolerance(int(n))

        def at(e: float, norm: str = norm) -> str:
            return eps_text(e, norm)

        # 1. white-box accuracy rising with ε, per attack and settings
        for _, a in g[g["mode"] == "white-box"].groupby(["attack", "source", *SETTINGS],
                                                         sort=False):
            a = a.sort_values("eps", kind="stable").drop_duplicates("eps", keep="last")
            lo = None  # the smaller ε of fewest correct so far
            for hi in a.to_dict("records"):
                if lo is None or hi["correct"] < lo["correct"]:
                    lo = hi
                elif hi["correct"] - lo["correct"] > tol:
                    flag("accuracy_rises_with_eps", hi, lo["accuracy"],
                         f"{_who(hi)}: {_pct(lo)} at eps {at(lo['eps'])}, {_pct(hi)} at "
                         f"{at(hi['eps'])} (+{hi['correct'] - lo['correct']} images > {tol})")
        pos = g[g["eps"] > 0]
        white = pos[pos["mode"] == "white-box"]
        # 2. a white-box iterative attack weaker than white-box FGSM at the same ε
        for r, f, why in _beyond(white, "eps", lambda s: s["attack"] == "fgsm",
                                 lambda s: s["attack"].isin(ITERATIVE), True, tol):
            flag("iterative_weaker_than_fgsm", r, f["accuracy"],
                 f"{_who(r)} ({r['steps']} steps) leaves {_pct(r)} correct at eps "
                 f"{at(r['eps'])}, FGSM {_pct(f)} {why}")
        # 3. black-box stronger than white-box, per attack and ε
        for r, w, why in _beyond(pos, ["attack", "eps"], lambda s: s["mode"] == "white-box",
                                 lambda s: s["mode"] == "black-box", False, tol):
            flag("black_box_below_white_box", r, w["accuracy"],
                 f"{_who(r)} leaves {_pct(r)} correct at eps {at(r['eps'])}, white-box "
                 f"{_pct(w)} {why}")
        # 4. Square stronger than every white-box gradient attack at ε
        for r, b, why in _beyond(white, "eps", lambda s: s["attack"].isin(GRADIENT),
                                 lambda s: s["attack"].isin(QUERY), False, tol):
            flag("square_beats_gradients", r, b["accuracy"],
                 f"square ({r['queries']} queries) leaves {_pct(r)} correct at eps "
                 f"{at(r['eps'])}, the strongest gradient attack ({b['attack']}) {_pct(b)} "
                 f"{why}")
        # 5. white-box L∞ PGD far from 0 at the largest ε (≥ 64/255)
        pgd = white[white["attack"] == "pgd"]
        if norm == "linf" and len(pgd) and pgd["eps"].max() >= LARGE_EPS:
            top = pgd[pgd["eps"] == pgd["eps"].max()].sort_values("correct")
            r = top.iloc[0]
            if r["accuracy"] > PGD_CEILING:
                flag("pgd_not_near_zero", r, PGD_CEILING,
                     f"white-box PGD ({r['steps']} steps, {r['restarts']} restart(s)) leaves "
                     f"{_pct(r)} correct at eps {r['eps']:g}/255 (> {100 * PGD_CEILING:g}%)")
    return pd.DataFrame(out, columns=COLUMNS)
