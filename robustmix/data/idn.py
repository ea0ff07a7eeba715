"""Instance-dependent label noise: the generator of Xia et al., "Part-dependent Label Noise:
Towards Instance-dependent Label Noise", NeurIPS 2020 (Appendix, Algorithm 2; the generator most
label-noise papers since call "IDN").

For a noise rate r:
  1. each image i draws its own flip rate q_i from the normal N(r, 0.1²) truncated to [0, 1]
     (q_i is the per-image score of the paper: the probability that image i's label flips);
  2. each true class c draws a projection W_c ∈ R^{D×K} with standard normal entries;
  3. image i (flattened, D = H·W·C values in [0, 1]) of class y gets the scores p = x_i W_y,
     p_y = −∞, and the label distribution q_i · softmax(p) with 1 − q_i added at y;
  4. the noisy label is drawn from that distribution.

So how often an image's label flips is q_i, and where it flips to depends on the image's pixels.
The mean flip rate is r for r away from 0 and 1 (the truncation pulls it toward the middle near
the ends; `mean_flip_rate`). Everything is drawn from one generator seeded by the noise seed;
scores are computed in float64, so the labels do not depend on the machine's float32 rounding.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

IDN_STREAM = 0x69646E30  # the random stream of instance-dependent noise
NORM_STD = 0.1  # the paper's standard deviation of the per-image flip rates
CHUNK = 2048  # images scored at a time (2048 x 3072 float64 = 50 MB)


def _flip_distribution(ratio: float):
    return stats.truncnorm((0 - ratio) / NORM_STD, (1 - ratio) / NORM_STD, loc=ratio,
                           scale=NORM_STD)


def mean_flip_rate(ratio: float) -> float:
    """The expected fraction of flipped labels at noise rate ratio."""
    return 0.0 if ratio == 0 else float(_flip_distribution(ratio).mean())


def idn_model(images: np.ndarray, labels: np.ndarray, ratio: float, num_classes: int,
              seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """(q, P, rng): each image's flip rate q_i, its noisy-label distribution P[i] (P[i, y_i] =
    1 − q_i) and the generator, positioned to draw the labels."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    rng = np.random.default_rng(np.random.SeedSequence([seed, IDN_STREAM]))
    q = _flip_distribution(ratio).rvs(size=n, random_state=rng)
    x = np.asarray(images).reshape(n, -1)
    w = rng.standard_normal((num_classes, x.shape[1], num_classes))
    scores = np.empty((n, num_classes), dtype=np.float64)
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        for lo in range(0, len(idx), CHUNK):
            part = idx[lo:lo + CHUNK]
            scores[part] = (x[part].astype(np.float64) / 255.0) @ w[c]
    rows = np.arange(n)
    scores[rows, labels] = -np.inf
    scores -= scores.max(1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(1, keepdims=True)
    p *= q[:, None]
    p[rows, labels] = 1 - q
    return q, p, rng


def idn_labels(images: np.ndarray, labels: np.ndarray, ratio: float, num_classes: int,
               seed: int) -> np.ndarray:
    """Noisy labels of every image, deterministic from the noise seed; ratio 0 changes nothing."""
    labels = np.asarray(labels, dtype=np.int64)
    if ratio == 0:
        return labels.copy()
    _, p, rng = idn_model(images, labels, ratio, num_classes, seed)
    u = rng.random(len(labels))
    cum = np.cumsum(p, axis=1)
    cum[:, -1] = 1.0
    return (u[:, None] < cum).argmax(1).astype(np.int64)
