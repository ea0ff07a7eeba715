"""Calibration of predicted probabilities: expected calibration error, negative log-likelihood
and Brier score, each with a bootstrap interval over the test images.

Pure functions of (probabilities N x K, labels N): no model, no torch.

- ECE: the test images are put in ECE_BINS = 15 equal-width bins of confidence (the top
  probability), (0, 1/15], (1/15, 2/15], ..., and ECE = Σ_b (n_b / N) |accuracy_b − mean
  confidence_b| (Guo et al. 2017; Naeini et al. 2015). 15 bins is Guo et al.'s choice and the one
  most papers report, so our numbers compare with theirs.
- NLL: mean −log p(true class), with p clipped at PROB_FLOOR so that one confident mistake gives
  a large finite value rather than inf (which would make every interval [inf, inf]).
- Brier: mean Σ_k (p_k − 1[k = y])², the multi-class score of Brier (1950), in [0, 2].

Intervals (calibration_table) come from scipy.stats.bootstrap over test images, resampled with
replacement, with a fixed seed: they cover the variation from which test images were drawn only,
not from training seeds (one model has none) nor from the choice of bins. NLL and Brier are means:
plain percentile intervals. The plug-in ECE is biased upward (each bin's |accuracy − confidence|
gains from sampling noise), and its bootstrap replicates more so: on 500 images of a
well-calibrated model every replicate can lie above the estimate, so a percentile interval misses
it (reports/outside_model once printed 0.032 [0.037, 0.086]). Basic (reflected) and
bias-corrected percentile intervals miss it the same way, and BCa's jackknife costs N evaluations
of a binned statistic that is not smooth. So the ECE's replicates are shifted by their mean bias
b = mean(θ*) − θ̂ before taking percentiles (the bootstrap's estimate of the spread of θ̂ around
its own expectation), and a second row, ece_debiased = max(0, θ̂ − b), carries the same interval
shifted by b again: the bias-corrected estimate of the calibration error itself (Efron &
Tibshirani 1993, ch. 10). tests/test_calibration.py checks that each interval holds its value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .defaults import ECE_BINS, RESAMPLES

PROB_FLOOR = 1e-12
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0
METRICS = ("ece", "ece_debiased", "nll", "brier")
COLUMNS = ["model", "metric", "value", "ci_low", "ci_high", "n", "bins", "confidence",
           "resamples", "interval", "seed"]


def _check(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p.ndim != 2 or y.ndim != 1 or len(p) != len(y):
        raise ValueError(f"probabilities must be N x K and labels N, got {p.shape} and {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in 0..{p.shape[1] - 1}")
    return p, y


def confidence_and_correct(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the top probability and whether the top class is the label (ties: the first
    class, as argmax predicts)."""
    p, y = _check(probs, labels)
    return p.max(1), (p.argmax(1) == y).astype(np.float64)


def bin_index(confidence: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """The equal-width bin of each confidence: bin b holds (b/bins, (b+1)/bins], bin 0 also 0."""
    return np.clip(np.ceil(np.asarray(confidence) * bins).astype(np.int64) - 1, 0, bins - 1)


def ece_from(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """ECE of per-image confidence and correctness; vectorised over leading axes (the last axis
    is the images), as scipy.stats.bootstrap(vectorized=True) calls it."""
    conf, corr = np.atleast_2d(confidence), np.atleast_2d(correct)
    rows, n = conf.shape
    idx = bin_index(conf, bins) + bins * np.arange(rows)[:, None]
    gap = np.zeros(rows * bins)
    # Σ over a bin of (correct − confidence) = n_b (accuracy_b − mean confidence_b)
    np.add.at(gap, idx.ravel(), (corr - conf).ravel())
    out = np.abs(gap.reshape(rows, bins)).sum(1) / n
    return out if np.ndim(confidence) > 1 else out[0]


def ece(probs, labels, bins: int = ECE_BINS) -> float:
    """Expected calibration error with `bins` equal-width confidence bins."""
    conf, corr = confidence_and_correct(probs, labels)
    return float(ece_from(conf, corr, bins))


def nll_per_image(probs, labels) -> np.ndarray:
    p, y = _check(probs, labels)
    return -np.log(np.clip(p[np.arange(len(y)), y], PROB_FLOOR, 1.0))


def brier_per_image(probs, labels) -> np.ndarray:
    p, y = _check(probs, labels)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return ((p - onehot) ** 2).sum(1)


def nll(probs, labels) -> float:
    """Mean negative log-likelihood of the labels (natural log)."""
    return float(nll_per_image(probs, labels).mean())


def brier(probs, labels) -> float:
    return float(brier_per_image(probs, labels).mean())


def _bootstrap(data: tuple[np.ndarray, ...], statistic, confidence: float, resamples: int,
               seed: int):
    """scipy's percentile bootstrap result, or None for one image (nothing to resample)."""
    from scipy.stats import bootstrap

    if len(data[0]) < 2:
        return None
    return bootstrap(data, statistic, paired=True, vectorized=True, axis=-1,
                     confidence_level=confidence, n_resamples=resamples, method="percentile",
                     random_state=np.random.default_rng(seed))


def _interval(data: tuple[np.ndarray, ...], statistic, confidence: float, resamples: int,
              seed: int) -> tuple[float, float]:
    res = _bootstrap(data, statistic, confidence, resamples, seed)
    if res is None:
        return float("nan"), float("nan")
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def ece_intervals(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS,
                  level: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
                  ) -> dict[str, tuple[float, float, float]]:
    """{"ece": (plug-in, low, high), "ece_debiased": (bias-corrected, low, high)}: the
    bootstrap replicates shifted by their mean bias (see the module docstring), clipped at 0."""
    value = float(ece_from(confidence, correct, bins))
    res = _bootstrap((np.asarray(confidence), np.asarray(correct)),
                     lambda c, k, axis=-1: ece_from(c, k, bins), level, resamples, seed)
    if res is None:
        nan = float("nan")
        return {"ece": (value, nan, nan), "ece_debiased": (value, nan, nan)}
    reps = np.asarray(res.bootstrap_distribution, dtype=np.float64)
    bias = float(reps.mean()) - value
    q = np.quantile(reps - bias, [(1 - level) / 2, (1 + level) / 2])
    return {"ece": (value, max(0.0, float(q[0])), float(q[1])),
            "ece_debiased": (max(0.0, value - bias), max(0.0, float(q[0]) - bias),
                             max(0.0, float(q[1]) - bias))}


def calibration_table(probs, labels, model: str = "model", bins: int = ECE_BINS,
                      confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """One tidy row per metric (ece, ece_debiased, nll, brier): value and bootstrap interval over
    the test images (see the module docstring for what it covers and why ECE's is shifted)."""
    conf, corr = confidence_and_correct(probs, labels)
    per = {"nll": nll_per_image(probs, labels), "brier": brier_per_image(probs, labels)}
    binned = ece_intervals(conf, corr, bins, confidence, resamples, seed)
    rows = []
    for metric in METRICS:
        if metric in binned:
            value, lo, hi = binned[metric]
            how = "bootstrap percentile over test images, replicates shifted by their mean bias"
        else:
            value = float(per[metric].mean())
            lo, hi = _interval((per[metric],), lambda v, axis=-1: v.mean(axis=axis),
                               confidence, resamples, seed)
            how = "bootstrap percentile over test images"
        rows.append({"model": model, "metric": metric, "value": value, "ci_low": lo,
                     "ci_high": hi, "n": len(conf), "bins": bins if metric in binned else 0,
                     "confidence": confidence, "resamples": resamples,
                     "interval": how, "seed": seed})
    return pd.DataFrame(rows, columns=COLUMNS)
