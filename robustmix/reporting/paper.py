"""The published numbers robustmix is compared against (Zhang et al., ICLR 2018)."""

from __future__ import annotations

import pandas as pd

# Table 2: CIFAR-10 test error (%) of PreAct ResNet-18 trained on symmetrically corrupted labels,
# at the paper's "best" epoch (the highest test accuracy over training: test-selected, an
# optimistic oracle) and at the last (200th) epoch.
TABLE2 = [
    # ratio, method, alpha, dropout, best, last
    (0.2, "erm", 0.0, 0.0, 12.7, 16.6),
    (0.2, "dropout", 0.0, 0.7, 8.8, 10.4),
    (0.2, "mixup", 8.0, 0.0, 5.9, 6.4),
    (0.2, "mixup_dropout", 4.0, 0.1, 6.2, 6.2),
    (0.5, "erm", 0.0, 0.0, 18.8, 44.6),
    (0.5, "dropout", 0.0, 0.8, 14.1, 15.5),
    (0.5, "mixup", 32.0, 0.0, 11.3, 12.7),
    (0.5, "mixup_dropout", 8.0, 0.3, 10.9, 10.9),
    (0.8, "erm", 0.0, 0.0, 36.5, 73.6),
    (0.8, "dropout", 0.0, 0.8, 30.9, 35.1),
    (0.8, "mixup", 32.0, 0.0, 25.3, 30.9),
    (0.8, "mixup_dropout", 8.0, 0.3, 24.0, 24.8),
]


def table2() -> pd.DataFrame:
    return pd.DataFrame(TABLE2, columns=["ratio", "method", "paper_alpha", "paper_dropout",
                                         "paper_best_error", "paper_last_error"])


def covers(table: pd.DataFrame) -> bool:
    """Whether Table 2 has a number for any row of this table (columns dataset, noise, ratio):
    symmetric CIFAR-10 noise at one of its three levels (ERM has a row at each). Clean labels
    (0 %) are not in it."""
    if not {"dataset", "noise", "ratio"} <= set(table.columns):
        return False
    rows = table[["dataset", "noise", "ratio"]].drop_duplicates().itertuples(index=False)
    return any(lookup(float(r), "erm", dataset=d, noise=n) is not None for d, n, r in rows)


def lookup(ratio: float, method: str, *, dataset: str = "cifar10", noise: str = "sym",
           alpha: float | None = None, dropout: float | None = None) -> tuple[float, float] | None:
    """Paper (best, last) test error in % for a run of this setting, or None when the paper has
    no like-for-like number: Table 2 is CIFAR-10 with symmetric noise at 20/50/80 %, each
    method at one α and p; a run on another dataset or noise, or at another α or p, is not
    comparable with it. alpha/dropout None skips that check (for the paper's own defaults)."""
    if dataset != "cifar10" or noise != "sym":
        return None
    for r, m, a, p, best, last in TABLE2:
        if abs(r - ratio) < 1e-9 and m == method:
            if alpha is not None and abs(alpha - a) > 1e-9:
                return None
            if dropout is not None and abs(dropout - p) > 1e-9:
                return None
            return best, last
    return None
