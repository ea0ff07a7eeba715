"""The words and columns of the report's tidy tables, shared by loading and the table builders.

Errors and accuracies are fractions on disk; every table gives them in percent, rounded to ROUND
decimals so that the CSV files stay small and stable.

Checkpoint kinds (`KINDS`): "last" (the last epoch), "selected" (the epoch of best accuracy on
the noisy-label validation set, what a practitioner can choose) and "test_selected" (the epoch
of best test accuracy: the paper's "best", an optimistic oracle). Their errors come from the full
test set where the run stored it (summary.json `*_full_test_error`), else from the per-epoch
test images (older runs).

Vocabulary:
  condition  runs that may be compared directly: same dataset, noise type, profile, epochs,
             width, training subset, test images and network (`CONDITION_KEYS`); its short
             label is the `condition` column, its full description the `setup` column.
  method     the method's name; a method trained with several settings of its own parameters
             (`method_params`, e.g. GCE's q) is one method per setting, named with them
             ("gce (q=0.5)").
  setting    a method's hyper-parameters (alpha, dropout) within a condition and noise ratio;
             the `chosen` setting of a method is the one with the best mean noisy-validation
             accuracy (never the test set), or, for runs without a validation set, the lowest
             test-selected error (said so in `chosen_by`).
  seeds      the runs of one setting; tables give mean, sample standard deviation, n and the
             95 % interval (`_lo`, `_hi`) with what it covers (`_over`).
"""

from __future__ import annotations

import math

from ..runs import checkpoint_names as CK

CONDITION_KEYS = ("dataset", "noise", "profile", "epochs", "width", "train_subset", "test_n",
                  "val_n", "model")


SETTING_KEYS = ("alpha", "dropout")


GROUP_KEYS = ("condition", "ratio", "method")


ROUND = 3


# Checkpoint kinds, as the tables name them (column prefixes); labels and other names: CK.
KINDS = CK.KINDS


CHANCE = 10.0  # % : a label drawn at random matches a given one of the 10 classes 1 time in 10


def pct(x) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return round(100 * x, ROUND) if math.isfinite(x) else float("nan")


def as_int(x, default: int = 0) -> int:
    try:
        return int(x)
    except (TypeError, ValueError):
        return default


def ratios_text(ratios, unit: str = " %") -> str:
    """Noise ratios as percentages joined by '/': [0.5, 0.8] -> '50/80 %'."""
    return "/".join(f"{100 * float(r):g}" for r in ratios) + unit


def attacks_text(per_eps) -> str:
    """The attacks a robust-accuracy curve or row combines (per_eps: ε -> the attack names
    combined there), in first-seen order, each one run at some ε only named with those ε, so
    that no point reads as covering an attack it does not: 'fgsm, pgd, square (ε=8 only)'."""
    names = list(dict.fromkeys(x for a in per_eps.values() for x in a))
    out = []
    for x in names:
        at = [e for e, a in per_eps.items() if x in a]
        out.append(x if len(at) == len(per_eps)
                   else f"{x} (ε={', '.join(f'{e:g}' for e in sorted(at))} only)")
    return ", ".join(out)


def setting_text(rows, unit: str = " %") -> str:
    """A method's α and p over the noise ratios it ran at (rows with columns ratio, alpha,
    dropout): 'α = 32' when one value serves every ratio, 'α = 8 at 20 %, 32 at 50/80 %' when it
    changes with the ratio (a 0 among them is written, since it means the method ran without
    it there); '' for a method with neither (ERM). Figures pass unit='%' to stay compact."""
    parts = []
    for col, sym in (("alpha", "α"), ("dropout", "p")):
        if col not in rows:
            continue
        at: dict[float, list[float]] = {}  # value -> the noise ratios it was run at
        for r, v in sorted(zip(rows["ratio"].astype(float), rows[col].astype(float),
                               strict=True)):
            if r not in at.setdefault(v, []):
                at[v].append(r)
        if not any(v != 0 for v in at):
            continue
        if len(at) == 1:
            parts.append(f"{sym} = {next(iter(at)):g}")
        else:
            # at's keys are in order of their first ratio: the pairs were inserted sorted
            parts.append(f"{sym} = " + ", ".join(f"{v:g} at {ratios_text(rs, unit)}"
                                                   for v, rs in at.items()))
    return "; ".join(parts)
