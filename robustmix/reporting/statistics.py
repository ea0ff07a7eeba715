"""Uncertainty for every number the report prints: one module, one set of rules.

Every estimate comes back as an `Interval`: the point estimate, a 95 % interval, the number of
seeds and test images behind it, and `over`, what the interval covers (seeds, test images or
both). Which method is used follows from the data available:

  per-image results (predictions.csv) of every run
      hierarchical bootstrap over seeds and test images (`hierarchical_bootstrap`): each of
      N_BOOT resamples draws the seeds with replacement, then the test images with replacement,
      and takes the mean of the per-(seed, image) values. Test images are the same for every
      seed (and every method), so the design is crossed, not nested: one image resample applies
      to all seeds of a resample, and to both methods of a paired difference. With two or more
      seeds the interval is widened, where needed, to the Student-t interval of the per-seed
      means (see `hierarchical_bootstrap` for why). With one seed it covers test images only.
  no per-image results, two or more seeds
      Student-t interval over seeds (`seed_interval`), of per-seed values or of per-seed paired
      differences, widened where needed (`hull`) to the binomial interval over the images of
      the mean (the test images are shared by every seed, so their sampling is not seen in
      the spread between seeds).
  no per-image results, one seed
      binomial interval over test images: Wilson for a single proportion, Wilson bounds
      combined by MOVER for a difference (`binomial_contrast`); unpaired, so conservative for
      a difference of two runs evaluated on the same images (their errors are positively
      correlated).

Paired differences (`paired_difference`) compare two methods on the same seeds and the same
test images: runs are matched by (seed, noise seed) by the caller, and the difference is taken
per (seed, image) before resampling, so both methods see the same resampled seeds and images.

Units: callers pass per-image values (0/1 errors or their differences) and a `scale` (100 for
percentage points); per-seed values are passed in the units they should come back in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

LEVEL = 0.95
N_BOOT = 2000
BOOT_SEED = 20180225  # fixed: the same data give the same intervals on every run of the report

OVER_BOTH = "seeds and test images"
OVER_IMAGES = "test images only (one seed)"
OVER_SEEDS = "seeds only (Student t)"
OVER_BINOMIAL = "test images only (one seed, binomial)"
OVER_SEEDS_BINOMIAL = "seeds (Student t) and test images (binomial)"
OVER_NONE = "no interval (one value)"


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95 % interval; lo/hi are NaN when there is none."""

    estimate: float
    lo: float
    hi: float
    n_seeds: int
    n_images: int = 0  # test images per seed behind it (0: not known / not used)
    over: str = OVER_NONE
    method: str = ""

    @property
    def defined(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    @property
    def basis(self) -> str:
        """Short description for tables, e.g. '3 seeds × 10000 test images'."""
        s = f"{self.n_seeds} seed{'s' if self.n_seeds != 1 else ''}"
        if self.over == OVER_BOTH:
            return f"{s} × {self.n_images} test images"
        if self.over == OVER_IMAGES:
            return f"{s}: {self.n_images} test images only"
        if self.over == OVER_SEEDS:
            return f"{s} only (Student t)"
        if self.over == OVER_BINOMIAL:
            return f"{s}: {self.n_images} images, binomial"
        if self.over == OVER_SEEDS_BINOMIAL:
            return f"{s} (Student t) × {self.n_images} images (binomial)"
        return f"{s}: no interval"

    def shifted(self, by: float) -> Interval:
        return Interval(self.estimate + by, self.lo + by, self.hi + by, self.n_seeds,
                        self.n_images, self.over, self.method)

    def negated(self) -> Interval:
        return Interval(-self.estimate, -self.hi, -self.lo, self.n_seeds, self.n_images,
                        self.over, self.method)


NAN = float("nan")


def none(estimate: float = NAN, n_seeds: int = 0) -> Interval:
    return Interval(float(estimate), NAN, NAN, n_seeds)


# --------------------------------------------------------------------------- over seeds


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof = 1; NaN for fewer than 2) and n, NaNs dropped."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    mean = float(x.mean()) if n else NAN
    std = float(x.std(ddof=1)) if n > 1 else NAN
    return mean, std, n


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """Student-t interval for the mean of values (scipy.stats.t.interval); NaN for n < 2."""
    mean, std, n = mean_std(values)
    if n < 2:
        return NAN, NAN
    if std == 0:  # identical values: scipy refuses a zero scale; the interval is the point
        return mean, mean
    lo, hi = stats.t.interval(level, df=n - 1, loc=mean, scale=std / math.sqrt(n))
    return float(lo), float(hi)


def seed_interval(values: Sequence[float], n_images: int = 0, level: float = LEVEL) -> Interval:
    """Mean over seeds with its t-interval (covers seed-to-seed variation only)."""
    mean, _, n = mean_std(values)
    lo, hi = t_interval(values, level)
    if n < 2:
        return Interval(mean, NAN, NAN, n, n_images)
    return Interval(mean, lo, hi, n, n_images, OVER_SEEDS, f"Student t over {n} seeds")


# --------------------------------------------------------------------------- binomial


def wilson(k: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (scipy.stats.binomtest), as fractions."""
    if not n or n <= 0 or not math.isfinite(k):
        return NAN, NAN
    ci = stats.binomtest(int(round(k)), int(n)).proportion_ci(confidence_level=level,
                                                              method="wilson")
    return float(ci.low), float(ci.high)


def proportion(p: float, n: int, scale: float = 100.0, level: float = LEVEL) -> Interval:
    """One run's proportion p (a fraction) on n images: Wilson interval, scaled (one seed)."""
    if not (math.isfinite(p) and n):
        return none(scale * p if math.isfinite(p) else NAN, 1)
    lo, hi = wilson(p * n, n, level)
    return Interval(scale * p, scale * lo, scale * hi, 1, int(n), OVER_BINOMIAL,
                    "Wilson score interval")


def _wilson_bounds(p: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score bounds by formula: vectorised, and defined for the non-integer counts of a
    mean over seeds (scipy's binomtest, used by `wilson`, takes one integer count)."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def binomial_contrast(props: Sequence[float], ns: Sequence[int], coefs: Sequence[float],
                      scale: float = 100.0, level: float = LEVEL) -> Interval:
    """Σ coef·p of independent proportions p (fractions) on ns images, with the MOVER interval
    built from each proportion's Wilson bounds (Newcombe's interval for a difference of two;
    Zou & Donner 2008 for a linear combination): unlike the plain normal approximation it
    stays sound near 0 % and 100 % (accuracy under a strong attack), and matches it elsewhere.
    For runs without per-image results; treating the terms as independent overstates the
    variance of runs scored on the same images, so the interval is conservative."""
    p = np.asarray(props, dtype=float)
    n = np.asarray(ns, dtype=float)
    c = np.asarray(coefs, dtype=float)
    est = float((c * p).sum())
    if not (np.isfinite(p).all() and np.isfinite(n).all() and (n > 0).all()):
        return none(scale * est, 1)
    z = float(stats.norm.ppf(0.5 + level / 2))
    lo, hi = _wilson_bounds(p, n, z)
    a, b = c * lo, c * hi  # each term's bounds, ordered by the sign of its coefficient
    low, high = np.minimum(a, b), np.maximum(a, b)
    cp = c * p
    down = math.sqrt(float(((cp - low) ** 2).sum()))
    up = math.sqrt(float(((high - cp) ** 2).sum()))
    return Interval(scale * est, scale * (est - down), scale * (est + up), 1, int(n.min()),
                    OVER_BINOMIAL, "Wilson bounds combined by MOVER (independent binomials)")


def hull(seeds: Interval, images: Interval) -> Interval:
    """The outer bounds of a t-interval over seeds and a binomial interval over the images of
    the same mean: neither source of uncertainty is left out (see hierarchical_bootstrap)."""
    if not images.defined:
        return seeds
    if not seeds.defined:
        return images
    return Interval(seeds.estimate, min(seeds.lo, images.lo), max(seeds.hi, images.hi),
                    seeds.n_seeds, images.n_images, OVER_SEEDS_BINOMIAL,
                    f"outer bounds of {seeds.method} and {images.method}")


# --------------------------------------------------------------------------- bootstrap
#
# Hand-written rather than scipy.stats.bootstrap: scipy resamples observations along one axis
# (jointly for paired samples), whereas here two crossed factors are resampled, seeds and test
# images, with each image resample shared by every seed and by both methods of a difference.
# The statistic is linear (a mean), so a resample is a weighted mean with multinomial counts as
# weights; the image counts of all N_BOOT resamples are drawn once per test-set size (cached)
# and one matrix product gives every resampled mean at once.


def _counts(n_items: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_items) float32: how often each item is drawn in each resample."""
    rng = np.random.default_rng([seed, n_items])
    out = np.empty((n_boot, n_items), dtype=np.float32)
    chunk = max(1, 2_000_000 // max(n_items, 1))
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        draws = rng.integers(0, n_items, size=(rows, n_items))
        flat = (draws + n_items * np.arange(rows)[:, None]).ravel()
        out[start:start + rows] = np.bincount(flat, minlength=rows * n_items).reshape(
            rows, n_items)
    return out


@lru_cache(maxsize=4)
def _image_counts(n_images: int, n_boot: int, seed: int) -> np.ndarray:
    return _counts(n_images, n_boot, seed)


@lru_cache(maxsize=16)
def _seed_counts(n_seeds: int, n_boot: int, seed: int) -> np.ndarray:
    return _counts(n_seeds, n_boot, seed + 1)


def bootstrap_means(values: np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> np.ndarray:
    """Resampled means of a (seeds × images) array: seeds with replacement, then images with
    replacement (one image resample for all seeds). Returns n_boot values."""
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    s, n = x.shape
    img = _image_counts(n, n_boot, seed)  # (B, N)
    per_seed = img @ x.T.astype(np.float32)  # (B, S): image-weighted sum per seed
    if s == 1:
        return per_seed[:, 0].astype(np.float64) / n
    w = _seed_counts(s, n_boot, seed)  # (B, S)
    return (w.astype(np.float64) * per_seed).sum(axis=1) / (s * n)


def hierarchical_bootstrap(values: np.ndarray, scale: float = 100.0, level: float = LEVEL,
                           n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> Interval:
    """Mean of a (seeds × images) array of per-image values, with a 95 % percentile interval
    from the crossed bootstrap over seeds and test images.

    With two or more seeds the interval is the wider of the bootstrap interval and the Student-t
    interval of the per-seed means. A bootstrap over a handful of seeds is too narrow: with 3
    seeds there are only 10 distinct seed resamples, their spread is (S−1)/S of the sample
    variance and the percentiles are normal rather than t_{S−1} quantiles (t_{2, .975} = 4.30
    against 1.96), which makes the seed part of the interval about 2.7 times too narrow. The
    t-interval has the right width for the seed part but leaves out test-image sampling, which
    all seeds share. Taking the outer bounds of the two never reports less uncertainty than
    either source on its own.
    """
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    s, n = x.shape
    if n == 0:
        return none(NAN, s)
    est = scale * float(x.mean())
    boot = scale * bootstrap_means(x, n_boot, seed)
    a = (1 - level) / 2
    lo, hi = (float(v) for v in np.quantile(boot, [a, 1 - a]))
    if s == 1:
        return Interval(est, lo, hi, 1, n, OVER_IMAGES,
                        f"bootstrap over test images ({n_boot} resamples)")
    tlo, thi = t_interval(scale * x.mean(axis=1), level)
    method = f"hierarchical bootstrap over seeds and test images ({n_boot} resamples)"
    if math.isfinite(tlo) and (tlo < lo or thi > hi):
        lo, hi = min(lo, tlo), max(hi, thi)
        method += ", widened to the t-interval over seeds"
    return Interval(est, lo, hi, s, n, OVER_BOTH, method)


def paired_difference(a: np.ndarray, b: np.ndarray, scale: float = 100.0,
                      level: float = LEVEL) -> Interval:
    """Mean of a − b over the same seeds (rows, matched by the caller) and the same test images
    (columns), with its hierarchical-bootstrap interval: both sides are resampled together."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    return hierarchical_bootstrap(a - b, scale, level)


# --------------------------------------------------------------------------- dispatch


def estimate(per_seed: Sequence[float], per_image: np.ndarray | None = None,
             n_images: int = 0, scale: float = 100.0, level: float = LEVEL) -> Interval:
    """The interval for a mean over seeds, by what the data allow (see the module docstring).

    per_seed   one value per seed, in the report's units (points; scale·fraction)
    per_image  (seeds × images) per-image values (fractions: 0/1 or differences), or None
    n_images   images behind each per-seed value, for the binomial part of the fallbacks,
               which applies only to a proportion (mean / scale in [0, 1]); 0: unknown
    """
    vals = [float(v) for v in per_seed if v is not None and math.isfinite(float(v))]
    if per_image is not None and np.size(per_image):
        iv = hierarchical_bootstrap(per_image, scale, level)
        mean = float(np.mean(vals)) if vals else iv.estimate
        return Interval(mean, iv.lo, iv.hi, iv.n_seeds, iv.n_images, iv.over, iv.method)
    if not vals:
        return none()
    p = float(np.mean(vals)) / scale
    images = (proportion(p, n_images, scale, level) if n_images and 0 <= p <= 1
              else none(scale * p, 1))
    if len(vals) >= 2:
        return hull(seed_interval(vals, n_images, level), images)
    return images
