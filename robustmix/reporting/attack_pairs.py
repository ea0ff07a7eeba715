"""Accuracy under attack of each method minus ERM's at every attacked ε, paired by seed and by
test image: what fig_attack draws under its accuracy panels.

Two methods' accuracies under one attack are measured on the same attacked images, and their
unpaired intervals overlap even where one method is better on nearly every image; only the
paired difference says which is ahead. The pairing is the verdicts' (verdicts.
image_paired_difference: the combined variance of the per-(seed, image) differences from
attack_outcomes.npz, t on n − 1 df); a cell is left out where it cannot be paired by image
(no stored outcomes, other images, fewer than statistics.MIN_SEEDS seeds), so nothing here is
an unpaired stand-in.
"""

from __future__ import annotations

import pandas as pd

from ..runs import checkpoint_names as CK
from . import results as R
from . import verdicts as V

REFERENCE = "erm"
COLUMNS = ["condition", "ratio", "method", "reference", "attack", "mode", "eps", "effect", "lo",
           "hi", "n_seeds", "n_images", "interval_over", "interval_method"]


def attack_differences(res: R.Results, checkpoint: str = "last") -> pd.DataFrame:
    """Per condition × ratio × method (its chosen setting, else its most attacked one, as the
    verdicts take) × attack × mode × ε: accuracy (%) of the method − REFERENCE's, paired by
    seed and image, with its 95 % interval. Empty where nothing can be paired by image."""
    per_run = R.attack_per_run(res.attacks, checkpoint)
    if per_run.empty or not res.stored_attacks:
        return pd.DataFrame(columns=COLUMNS)
    chosen = R.chosen_runs(res.runs)
    ck = CK.cli_name(checkpoint)
    keys = ["attack", "mode", "eps"]
    rows = []
    for (cond, ratio), here in per_run.groupby(["condition", "ratio"], sort=False):
        ref = V.attack_runs(per_run, chosen, cond, ratio, REFERENCE)
        if ref.empty:
            continue
        by_cell = dict(iter(ref.groupby(keys, sort=False)))
        for method in dict.fromkeys(here["method"]):
            if method == REFERENCE:
                continue
            mine = V.attack_runs(per_run, chosen, cond, ratio, method)
            for key, g in mine.groupby(keys, sort=False):
                if key not in by_cell:
                    continue
                iv = V.image_paired_difference(g, by_cell[key], ck, res.stored_attacks)
                if iv is None:
                    continue
                rows.append({"condition": cond, "ratio": ratio, "method": method,
                             "reference": REFERENCE, **dict(zip(keys, key, strict=True)),
                             "effect": round(iv.estimate, R.ROUND),
                             "lo": round(iv.lo, R.ROUND), "hi": round(iv.hi, R.ROUND),
                             "n_seeds": iv.n_seeds, "n_images": iv.n_images,
                             "interval_over": iv.basis, "interval_method": iv.method})
    return pd.DataFrame(rows, columns=COLUMNS)
