"""robustmix.reporting.statistics against closed-form cases: the t-interval of known numbers,
the Wilson and normal-approximation intervals by their formulas, and the bootstrap of Bernoulli
outcomes (single and paired) against the normal approximation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robustmix.reporting import statistics as S

Z = 1.959963984540054  # standard normal 0.975 quantile


def _bernoulli(n: int, k: int, seed: int = 0) -> np.ndarray:
    """n outcomes of which exactly k are 1, in random order."""
    x = np.zeros(n)
    x[:k] = 1
    return np.random.default_rng(seed).permutation(x)


def test_mean_std_of_known_numbers():
    mean, std, n = S.mean_std([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, float("nan")])
    assert (mean, n) == (5.0, 8)
    assert std == pytest.approx(math.sqrt(32 / 7))
    assert math.isnan(S.mean_std([3.0])[1])


def test_t_interval_matches_closed_form():
    # mean 3, sample sd sqrt(2.5), se = sqrt(2.5 / 5); t(4, 0.975) = 2.7764451051977987
    lo, hi = S.t_interval([1, 2, 3, 4, 5])
    half = 2.7764451051977987 * math.sqrt(0.5)
    assert lo == pytest.approx(3 - half, abs=1e-9) and hi == pytest.approx(3 + half, abs=1e-9)
    # two seeds: t(1, 0.975) = 12.706204736174705, se = |a - b| / 2
    lo, hi = S.t_interval([10.0, 12.0])
    assert (hi - lo) / 2 == pytest.approx(12.706204736174705 * 1.0, abs=1e-9)
    assert S.t_interval([4.0, 4.0, 4.0]) == (4.0, 4.0)
    assert all(math.isnan(v) for v in S.t_interval([4.0]))


def test_seed_interval_says_it_covers_seeds_only():
    iv = S.seed_interval([30.0, 32.0, 34.0])
    assert iv.over == S.OVER_SEEDS and iv.n_seeds == 3 and iv.estimate == pytest.approx(32.0)
    assert iv.basis == "3 seeds only (Student t)"


def test_wilson_interval_matches_its_formula():
    k, n = 30, 100
    p = k / n
    centre = (p + Z ** 2 / (2 * n)) / (1 + Z ** 2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z ** 2 / (4 * n ** 2)) / (1 + Z ** 2 / n)
    lo, hi = S.wilson(k, n)
    assert lo == pytest.approx(centre - half, abs=1e-9)
    assert hi == pytest.approx(centre + half, abs=1e-9)
    iv = S.proportion(0.3, 100)
    assert iv.over == S.OVER_BINOMIAL and iv.lo == pytest.approx(100 * lo)


def _wilson(k, n):
    p = k / n
    centre = (p + Z ** 2 / (2 * n)) / (1 + Z ** 2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z ** 2 / (4 * n ** 2)) / (1 + Z ** 2 / n)
    return max(centre - half, 0.0), centre + half


def test_binomial_difference_is_newcombes_interval():
    """p1 = 60 %, p2 = 50 % on 500 images each: Newcombe's hybrid score interval, and close to
    the normal approximation at such proportions."""
    (l1, u1), (l2, u2) = _wilson(300, 500), _wilson(250, 500)
    iv = S.binomial_contrast([0.6, 0.5], [500, 500], [1, -1])
    assert iv.estimate == pytest.approx(10.0)
    assert iv.lo == pytest.approx(100 * (0.1 - math.hypot(0.6 - l1, u2 - 0.5)), abs=1e-9)
    assert iv.hi == pytest.approx(100 * (0.1 + math.hypot(u1 - 0.6, 0.5 - l2)), abs=1e-9)
    se = math.sqrt(0.6 * 0.4 / 500 + 0.5 * 0.5 / 500)
    assert iv.lo == pytest.approx(100 * (0.1 - Z * se), abs=0.1)
    assert iv.hi == pytest.approx(100 * (0.1 + Z * se), abs=0.1)
    assert iv.n_seeds == 1 and iv.over == S.OVER_BINOMIAL


def test_binomial_difference_near_zero_stays_wide():
    """0/500 against 0/500 correct (both models broken by the attack): the normal approximation
    would give a zero-width interval; the Wilson-based one does not."""
    iv = S.binomial_contrast([0.0, 0.0], [500, 500], [1, -1])
    _, u = _wilson(0, 500)
    assert iv.estimate == 0.0
    assert iv.lo == pytest.approx(-100 * u) and iv.hi == pytest.approx(100 * u)
    assert S.estimate([0.0], n_images=500).hi == pytest.approx(100 * u)


def test_bootstrap_of_bernoulli_mean_matches_normal_approximation():
    n, k = 10_000, 3_000
    iv = S.hierarchical_bootstrap(_bernoulli(n, k)[None, :])
    half = 100 * Z * math.sqrt(0.3 * 0.7 / n)  # 0.898 points
    assert iv.estimate == pytest.approx(30.0)
    assert iv.lo == pytest.approx(30.0 - half, abs=0.12)
    assert iv.hi == pytest.approx(30.0 + half, abs=0.12)
    assert iv.over == S.OVER_IMAGES and iv.n_seeds == 1 and iv.n_images == n
    assert "test images only" in iv.basis


def test_paired_bootstrap_matches_the_paired_normal_approximation():
    """Two runs on the same 10,000 images that disagree on 1,000 of them (a wrong where b is
    right on 600, the reverse on 400): var(mean of a − b) = (p10 + p01 − (p10 − p01)²) / n."""
    n = 10_000
    a = np.zeros(n)
    b = np.zeros(n)
    a[:600] = 1  # a wrong, b right
    b[600:1000] = 1  # b wrong, a right
    a[1000:3000] = b[1000:3000] = 1  # both wrong
    perm = np.random.default_rng(1).permutation(n)
    iv = S.paired_difference(a[perm][None, :], b[perm][None, :])
    sd = math.sqrt((0.06 + 0.04 - 0.02 ** 2) / n)
    assert iv.estimate == pytest.approx(2.0)
    assert iv.lo == pytest.approx(2.0 - 100 * Z * sd, abs=0.1)
    assert iv.hi == pytest.approx(2.0 + 100 * Z * sd, abs=0.1)
    # an unpaired interval would be far wider: pairing is what makes it this narrow
    unpaired = S.binomial_contrast([a.mean(), b.mean()], [n, n], [1, -1])
    assert unpaired.hi - unpaired.lo > 1.5 * (iv.hi - iv.lo)


def test_paired_difference_of_identical_runs_is_zero_within_one_image():
    """Identical outcomes: the estimate is exactly 0, the interval only the one-discordant-
    image floor (test_no_discordant_image_is_not_a_point_interval)."""
    x = np.vstack([_bernoulli(2000, 700, s) for s in range(3)])
    iv = S.paired_difference(x, x)
    assert iv.estimate == 0.0 and iv.lo == -iv.hi
    assert iv.hi == pytest.approx(stats_t_ppf(2) * 100 / 2002)
    with pytest.raises(ValueError):
        S.paired_difference(x, x[:2])


def test_seeds_that_agree_leave_the_image_interval():
    """Three identical seeds: nothing varies between seeds, so the crossed bootstrap gives the
    one-run image interval (and the t-interval over seeds has zero width)."""
    row = _bernoulli(10_000, 3_000)
    iv = S.hierarchical_bootstrap(np.vstack([row, row, row]))
    half = 100 * Z * math.sqrt(0.21 / 10_000)
    assert iv.over == S.OVER_BOTH and iv.basis == "3 seeds × 10000 test images"
    assert iv.lo == pytest.approx(30.0 - half, abs=0.12) and iv.hi == pytest.approx(30.0 + half, abs=0.12)


def test_few_seeds_are_never_narrower_than_the_t_interval():
    """Seeds at 20, 30 and 40 % error: a bootstrap over three seeds alone is far too narrow;
    the interval is at least the Student-t interval of the per-seed means."""
    x = np.vstack([_bernoulli(4000, k, s) for s, k in enumerate((800, 1200, 1600))])
    iv = S.hierarchical_bootstrap(x)
    tlo, thi = S.t_interval([20.0, 30.0, 40.0])
    assert iv.lo <= tlo + 1e-9 and iv.hi >= thi - 1e-9
    assert (thi - tlo) / 2 == pytest.approx(4.302652729911275 * 10 / math.sqrt(3), abs=1e-6)
    assert "widened" in iv.method


def test_bootstrap_is_reproducible():
    x = np.vstack([_bernoulli(3000, 900 + 50 * s, s) for s in range(2)])
    a, b = S.hierarchical_bootstrap(x), S.hierarchical_bootstrap(x.copy())
    assert (a.lo, a.hi) == (b.lo, b.hi)


def test_estimate_picks_the_method_the_data_allow():
    x = np.vstack([_bernoulli(2000, 600, s) for s in range(3)])
    assert S.estimate([30.0, 30.0, 30.0], x).over == S.OVER_BOTH
    assert S.estimate([30.0, 30.0], x[:2]).over == S.OVER_IMAGES
    assert S.estimate([30.0], x[:1]).over == S.OVER_IMAGES
    assert S.estimate([30.0, 31.0, 29.0]).over == S.OVER_SEEDS
    # seeds that agree, on 1,000 shared images: the binomial part sets the width
    both = S.estimate([30.0, 30.0, 30.0], n_images=1000)
    assert both.over == S.OVER_SEEDS_BINOMIAL and both.hi > 32.0
    assert (both.lo, both.hi) == (S.proportion(0.3, 1000).lo, S.proportion(0.3, 1000).hi)
    one = S.estimate([30.0], n_images=2000)
    assert one.over == S.OVER_BINOMIAL and one.lo < 30.0 < one.hi
    bare = S.estimate([30.0])
    assert not bare.defined and bare.estimate == 30.0 and bare.over == S.OVER_NONE


def test_two_seeds_get_no_t_interval_over_seeds():
    """Seeds at 20 and 40 % error: a t-interval over them (t = 12.7 on 1 df) would span about
    ±127 points; with fewer than MIN_SEEDS seeds the interval covers the test images only, of
    the seed mean, and says so. A third seed brings the seed interval back."""
    x = np.vstack([_bernoulli(4000, k, s) for s, k in enumerate((800, 1600))])
    for iv in (S.estimate([20.0, 40.0], x), S.hierarchical_bootstrap(x)):
        assert iv.over == S.OVER_IMAGES and iv.n_seeds == 2
        assert "test images only" in iv.basis
        assert iv.hi - iv.lo < 4.0  # the image interval of a 30 % mean on 4,000 images: ~2.8
    assert S.estimate([20.0, 40.0], x).estimate == pytest.approx(30.0)
    # without per-image results: the binomial interval of the mean, or none for no proportion
    binomial = S.estimate([20.0, 40.0], n_images=4000)
    assert binomial.over == S.OVER_BINOMIAL and binomial.n_seeds == 2
    assert (binomial.lo, binomial.hi) == (S.proportion(0.3, 4000).lo, S.proportion(0.3, 4000).hi)
    assert not S.estimate([20.0, 40.0]).defined
    three = np.vstack([x, _bernoulli(4000, 1200, 2)])
    iv = S.estimate([20.0, 40.0, 30.0], three)
    assert iv.over == S.OVER_BOTH and iv.lo < 20.0 and iv.hi > 40.0
    assert S.estimate([20.0, 40.0, 30.0], n_images=4000).over == S.OVER_SEEDS_BINOMIAL


# --------------------------------------------------------------------------- combined variance


def _paired_seeds(n: int = 10_000, shifts=(0, 150, 300), seed: int = 0):
    """Three seeds of two methods on the same n images: b wrong on 2,000 images for every
    seed; a wrong on 2,000 + shift[s] of them (seed-dependent effect), images in random order."""
    rng = np.random.default_rng(seed)
    a = np.zeros((len(shifts), n))
    b = np.zeros((len(shifts), n))
    for s, k in enumerate(shifts):
        perm = rng.permutation(n)
        b[s, perm[:2000]] = 1
        a[s, perm[1000:3000 + k]] = 1  # shares 1,000 of b's errors
    return a, b


def test_combined_variance_adds_seed_and_image_variance():
    """The paired interval is mean ± t_{S−1} · sqrt(s²_seed / S + var(d) / N), and its p-value
    comes from the same statistic."""
    a, b = _paired_seeds()
    x = a - b
    n = x.shape[1]
    per_seed = 100 * x.mean(axis=1)  # 0, 1.5, 3 points
    v_seed = per_seed.var(ddof=1) / 3
    v_img = 100 ** 2 * x.mean(axis=0).var(ddof=1) / n
    v = v_seed + v_img
    nu = 2
    half = stats_t_ppf(nu) * math.sqrt(v)
    iv = S.paired_difference(a, b)
    assert iv.estimate == pytest.approx(1.5)
    assert iv.lo == pytest.approx(1.5 - half, abs=1e-9) and iv.hi == pytest.approx(1.5 + half)
    assert iv.se == pytest.approx(math.sqrt(v)) and iv.df == pytest.approx(nu)
    assert iv.tested and iv.over == S.OVER_BOTH and "combined variance" in iv.method
    from scipy import stats

    assert iv.p_value() == pytest.approx(2 * stats.t.sf(1.5 / math.sqrt(v), nu))
    # wider than either source on its own, which is all the outer bounds of the two gave
    tlo, thi = S.t_interval(per_seed)
    img = Z * math.sqrt(v_img)
    assert iv.hi - iv.lo > max(thi - tlo, 2 * img)


def stats_t_ppf(df: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def test_combined_interval_is_wider_than_the_hull_when_both_sources_matter():
    """Seed and image variance of the same size: the old rule (the wider of the seed t-interval
    and the image bootstrap) left one of them out; the combined one is wider than both."""
    a, b = _paired_seeds(shifts=(0, 40, 80))
    iv = S.paired_difference(a, b)
    old = S.hierarchical_bootstrap(a - b)  # the outer bounds of the two, as before
    assert iv.hi - iv.lo > 1.1 * (old.hi - old.lo)


def test_the_interval_excludes_zero_exactly_when_p_is_below_five_percent():
    for shifts in ((0, 40, 80), (0, 100, 200), (0, 5, 10), (50, 60, 70)):
        iv = S.paired_difference(*_paired_seeds(shifts=shifts))
        assert (iv.lo > 0 or iv.hi < 0) == (iv.p_value() < 0.05), shifts


def test_seeds_that_agree_leave_the_image_variance_on_the_seeds_t_quantile():
    """Three identical seeds: the seed part is 0, the image part that of one run; the quantile
    stays t(2) (2 degrees of freedom say little about the seed variance being small)."""
    row = _bernoulli(10_000, 3_000)
    iv = S.combined_values(np.vstack([row, row, row]))
    half = 100 * 4.302652729911275 * math.sqrt(0.21 / 10_000)
    assert iv.df == 2 and iv.tested
    assert iv.lo == pytest.approx(30.0 - half, abs=0.01) and iv.hi == pytest.approx(30.0 + half,
                                                                                    abs=0.01)


def test_no_discordant_image_is_not_a_point_interval():
    """Two models that every attacked image fools (both at 0 %): every paired difference is 0,
    yet 1,000 images cannot show the rate of disagreement is 0. The image part is that of one
    discordant image in N + 2 (Agresti-Min's add-1/2), so the interval has width, and the
    floor leaves a case with a few discordant images as it was."""
    n = 1000
    zero = np.zeros((3, n))
    iv = S.paired_difference(zero, zero)
    half = stats_t_ppf(2) * 100 / (n + 2)
    assert iv.estimate == 0.0 and iv.tested
    assert iv.lo == pytest.approx(-half) and iv.hi == pytest.approx(half)
    assert S.image_variance(zero) == pytest.approx((100 / (n + 2)) ** 2)
    a = zero.copy()
    a[:, :5] = 1  # five images right under a, wrong under b, in every seed
    v = S.image_variance(a - zero)
    assert v == pytest.approx(100 ** 2 * (a - zero).mean(axis=0).var(ddof=1) / n)
    assert v > (100 / (n + 2)) ** 2


def test_fewer_than_three_seeds_describe_and_do_not_test():
    """Two seeds: no t-interval (t(1) = 12.7), no p-value; the interval printed covers the test
    images only and says so. One seed: the same."""
    a, b = _paired_seeds(shifts=(0, 300))
    two = S.paired_difference(a, b)
    assert not two.tested and math.isnan(two.p_value()) and math.isnan(two.se)
    img = 100 * Z * math.sqrt((a - b).mean(axis=0).var(ddof=1) / a.shape[1])
    assert two.hi - two.lo == pytest.approx(2 * img)
    assert two.basis == "2 seeds: 10000 test images only" and "not tested" in two.method
    one = S.paired_difference(a[:1], b[:1])
    assert not one.tested and one.basis == "1 seed: 10000 test images only"
    # without per-image results: the binomial interval itself, unchanged
    images = S.binomial_contrast([0.6, 0.5], [500, 500], [1, -1])
    d = S.with_binomial([9.0, 11.0], images)
    assert (d.lo, d.hi, d.n_seeds) == (images.lo, images.hi, 2) and not d.tested


def test_with_binomial_combines_the_seed_and_binomial_variance():
    images = S.binomial_contrast([0.6, 0.5], [500, 500], [1, -1])
    iv = S.with_binomial([8.0, 10.0, 12.0], images)
    v_img = S.binomial_variance(images)
    assert v_img == pytest.approx((max(10 - images.lo, images.hi - 10) / Z) ** 2)
    v = 4 / 3 + v_img
    assert iv.se == pytest.approx(math.sqrt(v)) and iv.over == S.OVER_SEEDS_BINOMIAL
    assert iv.df == 2
    assert iv.hi - iv.lo == pytest.approx(2 * 4.302652729911275 * math.sqrt(v))


def test_intervals_are_clipped_to_what_the_quantity_can_be():
    """Attack accuracies 90, 10 and 99 points apart at three seeds: the t-interval runs past
    +100; clipped, it does not, and the p-value is that of the unclipped statistic."""
    iv = S.combined([90.0, 10.0, 99.0], 0.0)
    assert iv.hi > 100
    c = iv.clipped(-100.0, 100.0)
    assert c.hi == 100.0 and c.lo == iv.lo and c.p_value() == iv.p_value()
    assert S.Interval(5.0, -3.0, 9.0, 1).clipped(0.0, 100.0).lo == 0.0


def test_equivalence_is_two_one_sided_tests_on_the_same_statistic():
    """TOST against ±1 point: the larger one-sided p, on the combined se and t(S − 1); below
    0.05 exactly when the 90 % interval lies within the margin."""
    from scipy import stats

    tight = S.combined([0.1, 0.2, 0.0], 0.01)  # 0.1 ± a few hundredths
    se, df = tight.se, tight.df
    want = max(stats.t.sf((0.1 + 1) / se, df), stats.t.cdf((0.1 - 1) / se, df))
    assert tight.p_equivalence(1.0) == pytest.approx(want) and want < 0.05
    wide = S.combined([-3.0, 0.3, 3.6], 0.01)  # the same small mean, seeds far apart
    assert wide.estimate == pytest.approx(0.3) and wide.p_equivalence(1.0) > 0.05
    for iv in (tight, wide, S.combined([0.5, 0.9, 0.7], 0.05), S.combined([2.0, 2.2, 2.1], 0.0)):
        q = stats.t.ppf(0.95, iv.df)
        inside = -1 < iv.estimate - q * iv.se and iv.estimate + q * iv.se < 1
        assert (iv.p_equivalence(1.0) < 0.05) == inside
    # the one-sided 95 % upper bound is the top of that 90 % interval
    assert tight.upper_bound() == pytest.approx(0.1 + stats.t.ppf(0.95, 2) * se)


def test_fewer_than_three_seeds_show_no_equivalence_however_narrow():
    two = S.combined([0.1, 0.1], 1e-6)
    assert not two.tested and math.isnan(two.p_equivalence(1.0))
    assert math.isnan(two.upper_bound())
