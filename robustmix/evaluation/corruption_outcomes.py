"""Per-image outcomes of every corruptions.csv row: what the report pairs and resamples.

Each run scored on common corruptions holds corruption_outcomes.npz beside corruptions.csv: for
every row (the clean one included), per test image in the order of the class-balanced test
subset the row names by n and test_fingerprint (robustmix.evaluation.predict.test_indices),
whether the top class was the label, the top probability and the probability of the label.
That is what a paired accuracy difference (the same images for two methods), an ECE resampled
over images and a per-image NLL need, in 5 bytes per image and set (a float16 keeps a
probability to 3 significant digits; NLL is floored at PROB_FLOOR as in calibration.py).
Arrays, all loaded without pickle:

    keys        str     (rows,)      JSON list of the row's key (corruption_runs.KEY)
    n           int64   (rows,)      images of the row
    correct     uint8   (rows, max n) 1 where the prediction was the label (zero-padded)
    confidence  float16 (rows, max n) the top probability
    p_label     float16 (rows, max n) the probability of the label
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import UsageError
from ..runs.files import CORRUPTION_OUTCOMES


@dataclass(frozen=True)
class Outcome:
    """One row's per-image results (length n each)."""

    correct: np.ndarray  # bool
    confidence: np.ndarray  # float64 in [0, 1]
    p_label: np.ndarray  # float64 in [0, 1]

    @classmethod
    def from_probs(cls, probs: np.ndarray, labels: np.ndarray) -> Outcome:
        p = np.asarray(probs, dtype=np.float64)
        y = np.asarray(labels, dtype=np.int64)
        return cls(p.argmax(1) == y, p.max(1), p[np.arange(len(y)), y])


def key_text(key: Sequence) -> str:
    return json.dumps(list(key))


def read_outcomes(run: Path) -> dict[str, Outcome]:
    """{key text: Outcome} of a run ({} when it has no outcomes file)."""
    path = Path(run) / CORRUPTION_OUTCOMES
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, n = z["keys"], z["n"]
            correct, conf, p_label = z["correct"], z["confidence"], z["p_label"]
    except Exception as e:
        raise UsageError(f"cannot read {path} ({type(e).__name__}); move it away to start "
                         "afresh") from None
    return {str(k): Outcome(correct[i, :m].astype(bool), conf[i, :m].astype(np.float64),
                            p_label[i, :m].astype(np.float64))
            for i, (k, m) in enumerate(zip(keys, n, strict=True))}


def write_outcomes(run: Path, outcomes: Mapping[str, Outcome]) -> None:
    """Write every outcome to the run's corruption_outcomes.npz, atomically."""
    keys = sorted(outcomes)
    n = np.array([len(outcomes[k].correct) for k in keys], dtype=np.int64)
    width = int(n.max()) if len(n) else 0
    correct = np.zeros((len(keys), width), dtype=np.uint8)
    conf = np.zeros((len(keys), width), dtype=np.float16)
    p_label = np.zeros((len(keys), width), dtype=np.float16)
    for i, k in enumerate(keys):
        o, m = outcomes[k], int(n[i])
        correct[i, :m], conf[i, :m], p_label[i, :m] = o.correct, o.confidence, o.p_label

    def write(p: Path) -> None:
        with open(p, "wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez_compressed(f, keys=np.array(keys, dtype=str), n=n, correct=correct,
                                confidence=conf, p_label=p_label)

    atomic_write(Path(run) / CORRUPTION_OUTCOMES, write)
