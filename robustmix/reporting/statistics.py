"""Uncertainty for every number the report prints: one module, one set of rules.

Every estimate comes back as an `Interval`: the point estimate, a 95 % interval, the number of
seeds and test images behind it, and `over`, what the interval covers (seeds, test images or
both). Which method is used follows from the data available:

  per-image results (predictions.csv) of every run
      hierarchical bootstrap over seeds and test images (`hierarchical_bootstrap`): each of
      N_BOOT resamples draws the seeds with replacement, then the test images with replacement,
      and takes the mean of the per-(seed, image) values. Test images are the same for every
      seed (and every method), so the design is crossed, not nested: one image resample applies
      to all seeds of a resample, and to both methods of a paired difference. From MIN_SEEDS
      seeds on the interval is widened, where needed, to the Student-t interval of the
      per-seed means (see `hierarchical_bootstrap` for why). With fewer seeds it covers test
      images only: the seeds are held fixed and the images resampled under their mean.
  no per-image results, MIN_SEEDS or more seeds
      Student-t interval over seeds (`seed_interval`), of per-seed values or of per-seed paired
      differences, widened where needed (`hull`) to the binomial interval over the images of
      the mean (the test images are shared by every seed, so their sampling is not seen in
      the spread between seeds).
  no per-image results, fewer than MIN_SEEDS seeds
      binomial interval over test images (of the mean, where there are 2 seeds), or none
      where the value is no proportion: Wilson for a single proportion, Wilson bounds
      combined by MOVER for a difference (`binomial_contrast`); unpaired, so conservative for
      a difference of two runs evaluated on the same images (their errors are positively
      correlated).

Paired effects (`paired_difference`, `combined`, `with_binomial`: the verdicts and the source
contrasts) compare two methods on the same seeds and the same test images: runs are matched by
(seed, noise seed) by the caller, and the difference is taken per (seed, image). Their variance
is combined rather than taken as the wider of two intervals: seed variance of the per-seed
effects / n_seeds + the test-image variance of the seed-mean effect (closed form from per-image
values; without them, the variance a Wilson / MOVER interval stands for), on t with n_seeds − 1
degrees of freedom, with a two-sided p-value from the same statistic. With fewer than MIN_SEEDS
(3) seeds an effect is described, not tested: its interval covers test images only and it has
no p-value. `Interval.clipped` keeps bounds within what the quantity can be.

Absence is never read from an inconclusive test. An effect is shown negligible only by an
equivalence test against a stated margin (`Interval.p_equivalence`: TOST, two one-sided t tests
on the same standard error and degrees of freedom), or bounded (`Interval.upper_bound`).

Units: callers pass per-image values (0/1 errors or their differences) and a `scale` (100 for
percentage points); per-seed values are passed in the units they should come back in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy import stats

LEVEL = 0.95
N_BOOT = 2000
BOOT_SEED = 20180225  # fixed: the same data give the same intervals on every run of the report
# Fewest training seeds for a test: with 2 the seed variance has 1 degree of freedom and the
# t quantile is 12.7, so an interval over them says nothing; with fewer a paired effect is a
# description (its interval, where printed, covers test images only).
MIN_SEEDS = 3

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
    se: float = float("nan")  # standard error of estimate (combined variance); NaN: none
    df: float = float("inf")  # degrees of freedom of its t quantile (inf: normal)
    # Of the n_seeds replicates, how many distinct training seeds and noise draws (noise seeds)
    # they span; 0: not known (an interval built from values alone), and `basis` then names
    # replicates as seeds. Set by `over_runs` where the caller knows the runs.
    training_seeds: int = 0
    noise_draws: int = 0

    @property
    def tested(self) -> bool:
        """Whether the interval is a test of the estimate (MIN_SEEDS or more seeds, with a
        standard error): intervals over fewer seeds describe, they do not test."""
        return self.n_seeds >= MIN_SEEDS and math.isfinite(self.se)

    def p_value(self, null: float = 0.0) -> float:
        """Two-sided p-value of estimate = null from the same t statistic as the interval
        ((estimate − null) / se on df degrees of freedom); NaN where it is not `tested`."""
        if not self.tested or not math.isfinite(self.estimate):
            return NAN
        d = abs(self.estimate - null)
        if self.se == 0:
            return 1.0 if d == 0 else 0.0
        return float(2 * stats.t.sf(d / self.se, self.df))

    def p_equivalence(self, margin: float) -> float:
        """TOST p-value of |estimate| < margin (two one-sided tests, Schuirmann 1987): the
        larger of the one-sided p-values of H0: effect ≤ −margin and H0: effect ≥ +margin, from
        the same t statistic (se, df) as the interval. Below ALPHA exactly when the (1 − 2·ALPHA)
        interval lies within (−margin, +margin). NaN where it is not `tested`: an interval over
        fewer than MIN_SEEDS seeds shows no equivalence, however narrow."""
        if not self.tested or not math.isfinite(self.estimate) or not margin > 0:
            return NAN
        if self.se == 0:
            return 0.0 if abs(self.estimate) < margin else 1.0
        low = stats.t.sf((self.estimate + margin) / self.se, self.df)  # H0: effect ≤ −margin
        high = stats.t.cdf((self.estimate - margin) / self.se, self.df)  # H0: effect ≥ margin
        return float(max(low, high))

    def upper_bound(self, level: float = LEVEL) -> float:
        """One-sided `level` upper confidence bound of the estimate (estimate + t_level · se):
        what a claim of absence can state ("at most …"); NaN where it is not `tested`."""
        if not self.tested or not math.isfinite(self.estimate):
            return NAN
        return float(self.estimate + stats.t.ppf(level, self.df) * self.se)

    def clipped(self, low: float, high: float) -> Interval:
        """The interval cut to what the quantity can be (e.g. [−100, 100] points for a
        difference of two rates): no printed bound lies outside it. se and df are kept, so the
        p-value is that of the unclipped statistic."""
        def cut(v: float) -> float:
            return min(max(v, low), high) if math.isfinite(v) else v

        return replace(self, lo=cut(self.lo), hi=cut(self.hi))

    @property
    def defined(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    @property
    def basis(self) -> str:
        """What the interval covers, for tables: e.g. '3 seeds × 10000 test images', or, where
        the runs are known (`over_runs`), '3 training seeds × 2 noise draws × 10,000 test
        images'. '×' joins the sources of variation the interval covers; a source named before
        a colon ('1 training seed, 1 noise draw: 10,000 test images only') was held fixed."""
        if self.noise_draws:
            return self._sources_basis()
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

    def _sources_basis(self) -> str:
        ts, nd, n = self.training_seeds, self.noise_draws, self.n_seeds
        seeds = f"{ts} training seed{'s' if ts != 1 else ''}"
        draws = f"{nd} noise draw{'s' if nd != 1 else ''}"
        images = f"{self.n_images:,} test images" if self.n_images else "test images"
        binomial = f"{self.n_images:,} images" if self.n_images else "images"
        if self.over in (OVER_BOTH, OVER_SEEDS, OVER_SEEDS_BINOMIAL):
            # Replicates vary: name the pairs when the noise draw varies too, so that a reader
            # sees the noise draws are inside the interval, not held fixed.
            reps = (f"{seeds} × {draws}" if nd == 1 or n == ts * nd and ts > 1
                    else f"{seeds}, {draws}")
            if nd > 1:
                reps = f"{n} (training seed, noise draw) replicates: {reps}"
            if self.over == OVER_BOTH:
                return f"{reps} × {images}"
            if self.over == OVER_SEEDS:
                return f"{reps} only (Student t)"
            return f"{reps} (Student t) × {binomial} (binomial)"
        fixed = f"{seeds}, {draws}"
        if nd > 1:
            fixed = f"{n} (training seed, noise draw) replicates ({fixed})"
        if self.over == OVER_IMAGES:
            return f"{fixed}: {images} only"
        if self.over == OVER_BINOMIAL:
            return f"{fixed}: {binomial} only, binomial"
        return f"{fixed}: no interval"

    def shifted(self, by: float) -> Interval:
        return replace(self, estimate=self.estimate + by, lo=self.lo + by, hi=self.hi + by)

    def negated(self) -> Interval:
        return replace(self, estimate=-self.estimate, lo=-self.hi, hi=-self.lo)


NAN = float("nan")


def over_runs(iv: Interval, seeds: Sequence[int], noise_seeds: Sequence[int]) -> Interval:
    """iv labelled with the training seeds and noise draws of its replicates (one (seed, noise
    seed) pair each, in the order the values were given): what `basis` then names."""
    return replace(iv, training_seeds=len(set(seeds)), noise_draws=len(set(noise_seeds)) or 1)


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

    From MIN_SEEDS seeds on the interval is the wider of the bootstrap interval and the
    Student-t interval of the per-seed means; with fewer it covers test images only (the seeds
    held fixed), as a t-interval on one degree of freedom says nothing. A bootstrap over a handful of seeds is too narrow: with 3
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
    a = (1 - level) / 2
    if s < MIN_SEEDS:
        # Seed variance on fewer than 2 degrees of freedom says nothing (t = 12.7 with 2
        # seeds), so the seeds are held fixed: images are resampled under their mean.
        boot = scale * bootstrap_means(x.mean(axis=0, keepdims=True), n_boot, seed)
        lo, hi = (float(v) for v in np.quantile(boot, [a, 1 - a]))
        seeds = "" if s == 1 else f" of the mean of {s} seeds, held fixed"
        return Interval(est, lo, hi, s, n, OVER_IMAGES,
                        f"bootstrap over test images{seeds} ({n_boot} resamples)")
    boot = scale * bootstrap_means(x, n_boot, seed)
    lo, hi = (float(v) for v in np.quantile(boot, [a, 1 - a]))
    tlo, thi = t_interval(scale * x.mean(axis=1), level)
    method = f"hierarchical bootstrap over seeds and test images ({n_boot} resamples)"
    if math.isfinite(tlo) and (tlo < lo or thi > hi):
        lo, hi = min(lo, tlo), max(hi, thi)
        method += ", widened to the t-interval over seeds"
    return Interval(est, lo, hi, s, n, OVER_BOTH, method)


# --------------------------------------------------------------------------- combined variance
#
# A paired effect over S seeds × N test images, x[s, i] (per-image values, e.g. the difference of
# two methods' 0/1 errors), is estimated by the grand mean. All seeds are scored on the same test
# images, so test-set sampling does not average out over seeds and the two sources of error add:
#
#     var(estimate) = s²_seed / S + var_images(seed-mean effect)
#
# s²_seed: the sample variance of the S per-seed effects; var_images: the variance of the mean
# over test images of the per-image effect averaged over seeds, d[i] = mean_s x[s, i], i.e.
# var(d) / N (the closed form of the bootstrap over images of this linear statistic; for paired
# 0/1 outcomes of one seed it is (p10 + p01 − (p10 − p01)²) / N). In a crossed random-effects
# model x = μ + a_s + b_i + e_si the sum estimates var(a)/S + var(b)/N + 2·var(e)/(S·N): the
# seed-by-image term is counted twice, so the interval is slightly conservative, never narrower
# than either source alone would need. The quantile is Student t on S − 1 degrees of freedom for
# the whole standard error. Welch–Satterthwaite degrees of freedom would be larger where the image
# part dominates, but with 3 seeds the seed variance rests on 2 degrees of freedom and a small
# estimate of it is no evidence that it is small; on S − 1 the interval is never narrower than
# the t-interval over seeds or the image interval alone (the outer bounds the report used
# before), and at most t_{S−1} / z wider than needed where seeds agree. The p-value is two-sided,
# from the same statistic (Interval.p_value), so the 95 % interval excludes 0 exactly when
# p < 0.05.


def image_variance(values: np.ndarray, scale: float = 100.0) -> float:
    """scale² × var(d) / N of a (seeds × images) array, d the per-image mean over seeds: the
    test-image sampling variance of the seed-mean (closed form); NaN for fewer than 2 images.

    Never below scale² / (N + 2)², the variance of a mean over N images of which one differs:
    where no image differs (two models at the attack floor: every paired difference 0; a rate
    of 0 or 100 %) the plain estimate is 0 and the interval would be a point, but no
    discordant image in N is no evidence that the rate is 0. This is Agresti & Min's (2005)
    add-½-per-cell interval for matched pairs at zero discordant pairs; it binds only below
    about one discordant image (tests/test_statistics.py)."""
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    n = x.shape[1]
    if n < 2:
        return NAN
    return float(scale * scale * max(x.mean(axis=0).var(ddof=1) / n, 1.0 / (n + 2) ** 2))


def binomial_variance(iv: Interval, level: float = LEVEL) -> float:
    """The variance a binomial interval stands for (its larger half-width / z)², so that the
    Wilson/MOVER intervals, sound near 0 and 100 %, give the image part of a combined variance
    for runs without per-image results; NaN where the interval is undefined."""
    if not iv.defined:
        return NAN
    z = float(stats.norm.ppf(0.5 + level / 2))
    half = max(iv.estimate - iv.lo, iv.hi - iv.estimate)
    return float((half / z) ** 2)


def combined(per_seed: Sequence[float], image_var: float, n_images: int = 0,
             image_method: str = "image variance of the seed mean (closed form)",
             binomial: bool = False, level: float = LEVEL) -> Interval:
    """Mean of per-seed values with the combined-variance interval (see above).

    per_seed    one value per seed, in the report's units
    image_var   the test-image sampling variance of their mean, in those units squared (NaN:
                unknown; the interval then covers seeds only)
    binomial    the image part comes from a binomial interval (no per-image results)

    With fewer than MIN_SEEDS seeds nothing is tested: the interval is the image part alone
    (normal quantile), labelled as covering test images only, and has no se (no p-value)."""
    vals = np.asarray([float(v) for v in per_seed if v is not None and math.isfinite(float(v))])
    n = len(vals)
    if not n:
        return none()
    est = float(vals.mean())
    has_img = math.isfinite(image_var) and image_var >= 0
    z = float(stats.norm.ppf(0.5 + level / 2))
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    if n < MIN_SEEDS:
        if not has_img:
            return Interval(est, NAN, NAN, n, n_images)
        half = z * math.sqrt(image_var)
        return Interval(est, est - half, est + half, n, n_images,
                        OVER_BINOMIAL if binomial else OVER_IMAGES,
                        f"{image_method} only, normal quantile ({seeds}: described, not "
                        f"tested; a test needs {MIN_SEEDS})")
    v_seed = float(vals.var(ddof=1)) / n
    v_img = image_var if has_img else 0.0
    v = v_seed + v_img
    df = float(n - 1)
    q = float(stats.t.ppf(0.5 + level / 2, df))
    se = math.sqrt(v)
    if has_img:
        over = OVER_SEEDS_BINOMIAL if binomial else OVER_BOTH
        method = f"combined variance: seed variance / {n} + {image_method}; t on {n - 1} df"
    else:
        over, method = OVER_SEEDS, f"Student t over {n} seeds"
    return Interval(est, est - q * se, est + q * se, n, n_images, over, method, se, df)


def with_binomial(per_seed: Sequence[float], images: Interval,
                  level: float = LEVEL) -> Interval:
    """Combined variance for runs without per-image results: the seed variance of per_seed plus
    the variance the binomial interval `images` (of their mean, over the test images) stands
    for. With fewer than MIN_SEEDS seeds: `images` itself (Wilson/MOVER, sound near 0 and
    100 %), a description over test images only."""
    vals = [float(v) for v in per_seed if v is not None and math.isfinite(float(v))]
    if len(vals) < MIN_SEEDS:
        if not images.defined:
            return Interval(float(np.mean(vals)) if vals else images.estimate, NAN, NAN,
                            len(vals), images.n_images)
        return replace(images, n_seeds=len(vals),
                       method=f"{images.method} ({len(vals)} seed{'s' if len(vals) != 1 else ''}"
                              f": described, not tested; a test needs {MIN_SEEDS})")
    return combined(vals, binomial_variance(images, level), images.n_images,
                    f"binomial variance of the mean over images ({images.method})",
                    binomial=True, level=level)


def combined_values(values: np.ndarray, scale: float = 100.0, level: float = LEVEL) -> Interval:
    """The combined-variance interval of the mean of a (seeds × images) array of per-image
    values (fractions), in scale units."""
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if x.shape[1] == 0:
        return none(NAN, x.shape[0])
    return combined(scale * x.mean(axis=1), image_variance(x, scale), x.shape[1], level=level)


def paired_difference(a: np.ndarray, b: np.ndarray, scale: float = 100.0,
                      level: float = LEVEL) -> Interval:
    """Mean of a − b over the same seeds (rows, matched by the caller) and the same test images
    (columns), with its combined-variance interval: the difference is taken per (seed, image),
    so the image part is that of the paired outcomes."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    return combined_values(a - b, scale, level)


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
    if len(vals) >= MIN_SEEDS:
        return hull(seed_interval(vals, n_images, level), images)
    # fewer seeds: the binomial interval of their mean over the images alone (a t-interval on
    # one degree of freedom is no interval), or none where the value is no proportion
    return replace(images, n_seeds=len(vals))
