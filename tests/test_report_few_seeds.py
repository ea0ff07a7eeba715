"""Cells of fewer than 3 training seeds get no t-interval over seeds, in the tables and in the
figures: with 2 seeds its quantile is 12.7, so such an interval says nothing. Their intervals
cover the test images only and say so; their figures show each seed beside the mean. From 3
seeds on, the interval covers the seeds too."""

from __future__ import annotations

import numpy as np
import pytest
from report_fixtures import FULL_N, Spec, write_fixture

from robustmix.reporting import plots
from robustmix.reporting import results as R
from robustmix.reporting import statistics as S

# ERM on 3 seeds, mixup on 2, at one noise level; seeds apart by a few points, so a 2-seed
# t-interval would be tens of points wide
SPECS = (
    Spec(0.5, "erm", 0.0, 0.0, 0, 0.55, 2, 0.40, 0.90, 0.05),
    Spec(0.5, "erm", 0.0, 0.0, 1, 0.59, 3, 0.46, 0.88, 0.05),
    Spec(0.5, "erm", 0.0, 0.0, 2, 0.57, 3, 0.43, 0.89, 0.05),
    Spec(0.5, "mixup", 8.0, 0.0, 0, 0.66, 5, 0.60, 0.55, 0.03),
    Spec(0.5, "mixup", 8.0, 0.0, 1, 0.62, 4, 0.66, 0.60, 0.04),
)


@pytest.fixture(scope="module")
def res(tmp_path_factory):
    root = tmp_path_factory.mktemp("few_seeds")
    write_fixture(root, specs=SPECS, unfinished=False)
    return R.load_results([root])


@pytest.fixture
def caught(monkeypatch):
    figs = {}
    monkeypatch.setattr(plots, "save", lambda fig, stem: figs.setdefault("fig", fig) and [])
    return figs


def _row(t, method):
    return t[t["method"] == method].iloc[0]


def test_mean_error_of_two_seeds_has_an_image_interval_three_seeds_a_seed_one(res):
    t = R.noise_table(res.runs, res.predictions)
    two, three = _row(t, "mixup"), _row(t, "erm")
    assert (two["n_seeds"], three["n_seeds"]) == (2, 3)
    for kind in ("last", "selected", "test_selected"):
        assert two[f"{kind}_error_over"] == (f"2 training seeds, 1 noise draw: {FULL_N:,} test "
                                             "images only")
        assert three[f"{kind}_error_over"] == (f"3 training seeds × 1 noise draw × {FULL_N:,} "
                                               "test images")
        # the image interval of a ~40 % error on 5,000 images: about ±1.4 points, far from a
        # t(1) = 12.7 interval over the seeds' 6-point spread
        assert two[f"{kind}_error_hi"] - two[f"{kind}_error_lo"] < 4
        assert two[f"{kind}_error_lo"] < two[f"{kind}_error_mean"] < two[f"{kind}_error_hi"]
        assert 0 <= three[f"{kind}_error_lo"] < three[f"{kind}_error_mean"]
    last = [100 * round((1 - s.final) * FULL_N) / FULL_N for s in SPECS if s.method == "erm"]
    _, thi = S.t_interval(last)
    assert three["last_error_hi"] >= thi - 1e-3  # never narrower than the seed t-interval


def test_attack_accuracy_of_two_seeds_is_binomial_over_images(res):
    t = R.attack_table(res.attacks, "last")
    wb = t[(t["attack"] == "fgsm") & (t["mode"] == "white-box") & (t["eps"] == 2.0)]
    two, three = _row(wb, "mixup"), _row(wb, "erm")
    assert two["accuracy_over"] == "2 training seeds, 1 noise draw: 500 images only, binomial"
    assert three["accuracy_over"].startswith("3 training seeds × 1 noise draw (Student t)")
    # relative accuracy is no proportion: no interval at all on 2 seeds
    assert np.isnan(two["relative_lo"]) and np.isfinite(three["relative_lo"])


def test_curves_band_only_from_three_seeds_and_each_seed_drawn_below(res, caught, tmp_path):
    curves = R.curves_table(res.runs, res.metrics)
    assert curves.loc[curves["method"] == "mixup", "test_acc_lo"].isna().all()
    assert curves.loc[curves["method"] == "erm", "test_acc_lo"].notna().all()
    seeds = R.curve_seeds(res.runs, res.metrics)
    assert set(seeds.groupby("method")["n_seeds"].first().items()) == {("erm", 3), ("mixup", 2)}
    plots.plot_curves(curves, tmp_path / "fig_curves", {}, seeds=seeds)
    ax = caught["fig"].axes[0]  # test accuracy
    bands = ax.collections
    assert len(bands) == 1  # ERM's band; mixup has none
    thin = [ln for ln in ax.get_lines() if ln.get_gid() == "seeds:mixup"]
    assert len(thin) == 2 and not any(ln.get_gid() == "seeds:erm" for ln in ax.get_lines())
    labels = [t.get_text() for leg in caught["fig"].legends for t in leg.get_texts()]
    assert any("each seed" in t and "no interval over seeds" in t for t in labels)


def test_fig_noise_bar_of_two_seeds_is_the_image_interval(res, caught, tmp_path):
    noise = R.noise_table(res.runs, res.predictions)
    plots.plot_noise(noise, tmp_path / "fig_noise")
    ax = caught["fig"].axes[0]
    # every error bar drawn, as (lo, hi) in accuracy; the 2-seed one is narrow
    spans = sorted(float(np.ptp(seg[:, 1])) for c in ax.collections
                   for seg in c.get_segments())
    mixup = _row(noise, "mixup")
    assert pytest.approx(mixup["last_acc_hi"] - mixup["last_acc_lo"], abs=1e-6) in spans
    assert mixup["last_acc_hi"] - mixup["last_acc_lo"] < 4
