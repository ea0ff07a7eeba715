"""Class-balanced subsets, deterministic from a seed: training subsets and the fixed test images."""

from __future__ import annotations

import numpy as np


def balanced_subset(labels: np.ndarray, n: int | None, seed: int, purpose: int = 0x73756273
                    ) -> np.ndarray:
    """Sorted indices of a class-balanced random subset of size n (all indices when n is None).

    purpose separates the random streams of subsets drawn with the same seed for different
    uses (the training subset, the validation set)."""
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(np.random.SeedSequence([seed, purpose]))
    classes = np.unique(labels)
    per = n // len(classes)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per] for c in classes]
    idx = np.concatenate(picks)
    rest = np.setdiff1d(np.arange(len(labels)), idx)
    idx = np.concatenate([idx, rng.permutation(rest)[: n - len(idx)]])
    return np.sort(idx)
