"""The files of a run directory, and reading them (imports no torch: --help reads it).

A run directory holds config.json (training config plus seed, versions, device and git commit),
labels.csv (clean and noisy training labels), noise.json (the noise source, the empirical
transition matrix and per-class noise rates of the training labels), metrics.csv (one row per epoch), summary.json
(written last: its presence means the run is finished), last.pt and best.pt checkpoints, and,
once attacked, attack.csv; once scored on common corruptions, corruptions.csv and corruption_outcomes.npz.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError

CONFIG = "config.json"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
LABELS = "labels.csv"
NOISE = "noise.json"  # the noise source and its transition matrix on the training labels
LAST = "last.pt"
BEST = "best.pt"  # test-selected: the epoch of highest test accuracy (an optimistic oracle)
SELECTED = "selected.pt"  # the epoch of highest accuracy on the noisy validation set
PREDICTIONS = "predictions.csv"  # per test image: label and each checkpoint's prediction
ATTACK = "attack.csv"
CORRUPTIONS = "corruptions.csv"  # accuracy under common corruptions (python -m robustmix.corrupt)
# per image of each corruptions.csv row: correct, top and label probability
CORRUPTION_OUTCOMES = "corruption_outcomes.npz"
KNN = "knn.npy"
# the checkpoints' names (--checkpoint, tables, summary keys, old aliases): runs/checkpoint_names.py


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None


def is_finished(run: Path) -> bool:
    return (Path(run) / SUMMARY).exists()
