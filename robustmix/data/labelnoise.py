"""Corrupted training labels, deterministic from a noise seed that is separate from training."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError

NOISE_TYPES = ("sym", "asym")

# Class-pair flips of Patrini et al. (2017) for CIFAR-10 (indices in CIFAR-10 order):
# truck->automobile, bird->airplane, deer->horse, cat<->dog.
CIFAR10_ASYM = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


def corrupt_labels(labels: np.ndarray, ratio: float, noise: str, num_classes: int,
                   seed: int, dataset: str = "cifar10") -> np.ndarray:
    """Return noisy labels; test labels never pass through here.

    sym: with probability ratio a label is replaced by a class drawn uniformly from all classes
    (Zhang et al. 2017), so about ratio * (1 - 1/num_classes) of labels end up wrong.
    asym: with probability ratio a label of a flipped class becomes its partner class.
    """
    if not 0.0 <= ratio <= 1.0:
        raise UsageError(f"noise ratio {ratio} is outside [0, 1]")
    labels = np.asarray(labels, dtype=np.int64)
    # One generator for this purpose alone: the same seed gives the same labels on any machine.
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6C61626C]))
    draw = rng.random(len(labels)) < ratio
    if noise == "sym":
        replacement = rng.integers(0, num_classes, size=len(labels))
        return np.where(draw, replacement, labels)
    if noise == "asym":
        if dataset != "cifar10":
            raise UsageError(f"asymmetric noise is defined for cifar10 only, not {dataset}")
        partner = labels.copy()
        for src, dst in CIFAR10_ASYM.items():
            partner[labels == src] = dst
        return np.where(draw, partner, labels)
    raise UsageError(f"unknown noise type '{noise}' (choose from {', '.join(NOISE_TYPES)})")


def actual_noise_rate(clean: np.ndarray, noisy: np.ndarray) -> float:
    return float(np.mean(np.asarray(clean) != np.asarray(noisy)))
