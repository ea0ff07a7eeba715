"""Runs written by older robustmix versions, read as today's: old checkpoint names, run-folder
names that predate config.json's method field, memorisation nulls that were not stored, and
training labels kept only in labels.csv. Each shim says which files or columns it stands in for,
so that it can be dropped once no kept run needs it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.classes import CIFAR10_CLASSES
from ..data.transition import transition_counts
from ..runs import checkpoint_names as CK
from ..training.methods import METHODS
from .columns import ROUND, pct


def checkpoint_name(c: str) -> str:
    """attack.csv names checkpoints as --checkpoint does; "best" is the old name of
    test-selected."""
    return CK.cli_name(c)


def method_from_name(name: str) -> str:
    """The method in a run directory name such as cifar10_sym0.5_mixup_dropout_a8_p0.3_quick_s0
    (a method's parameters, e.g. _q0.7, may follow its name)."""
    for m in sorted(METHODS, key=len, reverse=True):
        if re.search(rf"_{re.escape(m)}(_[A-Za-z][A-Za-z0-9]*[^_]*)*?_a[-0-9.e+]+_p", name):
            return m
    return name


def memorisation_null(t: dict, s: dict, last) -> dict:
    """The memorised share (%) a network that never fitted the corrupted labels would still show
    by its own mistakes, and how it was obtained: `measured` by training (summary.json's
    last_memorised_null: the noise process's chance of giving each corrupted example the label
    the network predicts), or for runs made before that was stored, under symmetric noise,
    `approximate`: (100 − clean-label training accuracy) / (K − 1), the same chance with the
    network's accuracy on all training-evaluation examples standing in for its accuracy on the
    corrupted ones. Empty for other sources without a stored null (chance, 10 %, is used)."""
    measured = s.get("last_memorised_null")
    if measured is None and "memorised_null" in last and pd.notna(last["memorised_null"]):
        measured = float(last["memorised_null"])
    if measured is not None:
        return {"last_memorised_null": pct(measured), "memorised_null_basis": "measured"}
    if t.get("noise", s.get("noise", "sym")) == "sym" and pd.notna(last.get("train_acc_clean")):
        clean = pct(s.get("last_train_acc_clean", last["train_acc_clean"] / 100))
        return {"last_memorised_null": (100.0 - clean) / (len(CIFAR10_CLASSES) - 1),
                "memorised_null_basis": "approximate"}
    return {"last_memorised_null": np.nan, "memorised_null_basis": ""}


def memorisation_null_curve(m: pd.DataFrame, noise: str) -> pd.Series:
    """Per epoch of one run's metrics (in %), the null of its memorised share, as
    memorisation_null gives it at the last epoch: metrics.csv's memorised_null where training
    stored it; else, under symmetric noise, (100 − clean-label training accuracy) / (K − 1);
    else NaN (no null: the report falls back to chance)."""
    measured = m["memorised_null"] if "memorised_null" in m else pd.Series(np.nan, index=m.index)
    if noise != "sym":
        return measured.astype(float)
    approx = (100.0 - m["train_acc_clean"].astype(float)) / (len(CIFAR10_CLASSES) - 1)
    return measured.astype(float).where(measured.notna(), approx).round(ROUND)


def counts_from_labels_csv(path: Path, num_classes: int) -> np.ndarray | None:
    """A run made before noise.json: its training labels' true class x noisy label counts from
    labels.csv (the rows of split "train" where the file has splits); None where the file is
    missing, unreadable or holds labels outside the classes."""
    if not path.exists():
        return None
    try:
        lab = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if not {"clean", "noisy"} <= set(lab.columns):
        return None
    if "split" in lab.columns:
        lab = lab[lab["split"] == "train"]
    c, n = lab["clean"].to_numpy(np.int64), lab["noisy"].to_numpy(np.int64)
    if len(c) == 0 or min(c.min(), n.min()) < 0 or max(c.max(), n.max()) >= num_classes:
        return None
    return transition_counts(c, n, num_classes)
