"""Comparisons across noise sources, for studies that train the same methods on several: on each
source, how much lower mixup's test error is than ERM's; for each method, how much higher its
error is on one source than on another (e.g. CIFAR-10N's real labels against synthetic noise
drawn from their own transition matrix). Every difference is paired by (seed, noise seed) and,
with per-image predictions, on the same test images (verdicts.error_contrast), in points with
its 95 % interval. Every pair of sources is measured here; the verdict table tests the two that
are published claims (verdicts: the Table 2 orderings beyond Table 2, and real CIFAR-10N noise
against matrix noise from its transition matrix).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ..training.methods import method_rank
from . import results as R
from .verdicts import Term, error_contrast

COLUMNS = ["comparison", "first", "second", "method", "checkpoint", "effect", "lo", "hi",
           "n_seeds", "n_images", "interval_over"]


def _sources(chosen: pd.DataFrame) -> list[tuple[str, float, str]]:
    """(condition, ratio, label) of each source; real labels (CIFAR-10N) first, then in the
    order the runs list them."""
    first = chosen.drop_duplicates(subset=["condition", "ratio"])
    keys = [(r["condition"], r["ratio"], r["source_label"], r["noise_source"])
            for _, r in first.iterrows()]
    keys.sort(key=lambda k: k[3] != "cifar10n")
    return [k[:3] for k in keys]


def _row(comparison: str, first: str, second: str, method: str, kind: str, iv) -> dict:
    def r(v: float) -> float:
        return round(v, R.ROUND) + 0.0 if np.isfinite(v) else np.nan

    return {"comparison": comparison, "first": first, "second": second, "method": method,
            "checkpoint": kind, "effect": r(iv.estimate), "lo": r(iv.lo), "hi": r(iv.hi),
            "n_seeds": iv.n_seeds, "n_images": iv.n_images, "interval_over": iv.basis}


def contrast_table(runs: pd.DataFrame, predictions: dict | None = None) -> pd.DataFrame:
    """Paired test-error differences (points) at each method's chosen setting: `ERM − mixup on
    <source>` (+ = mixup better there), and `first − second` source for each method (+ = the
    method does worse on the first). Empty with fewer than two sources."""
    chosen = R.chosen_runs(runs)
    sources = _sources(chosen)
    if len(sources) < 2:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    groups = {(c, r): g for (c, r), g in chosen.groupby(["condition", "ratio"], sort=False)}
    for c, r, label in sources:
        by = dict(iter(groups[(c, r)].groupby("method", sort=False)))
        if "erm" in by and "mixup" in by:
            for kind in R.KINDS:
                iv = error_contrast([Term(1, by["erm"], kind), Term(-1, by["mixup"], kind)],
                                    predictions)
                if iv is not None:
                    rows.append(_row(f"ERM − mixup on {label}", label, label, "erm−mixup",
                                     kind, iv))
    for (ca, ra, la), (cb, rb, lb) in itertools.combinations(sources, 2):
        a, b = groups[(ca, ra)], groups[(cb, rb)]
        for method in sorted(set(a["method"]) & set(b["method"]), key=method_rank):
            for kind in R.KINDS:
                iv = error_contrast([Term(1, a[a["method"] == method], kind),
                                     Term(-1, b[b["method"] == method], kind)], predictions)
                if iv is not None:
                    rows.append(_row(f"{la} − {lb}", la, lb, method, kind, iv))
    return pd.DataFrame(rows, columns=COLUMNS)
