"""Issue 26 item 6: every interval says which sources of variation it covers (training seeds,
noise draws, test images). Runs of a cell that differ in noise seed are replicates, one per
(seed, noise seed) pair, and the label says so; a contrast pairs runs by that pair, so a draw
only one method was trained on is left out of it."""

from __future__ import annotations

import pytest
from report_fixtures import FULL_N, Spec, write_fixture

from robustmix.reporting import results as R
from robustmix.reporting import statistics as S
from robustmix.reporting import verdicts as V

ERM = ("erm", 0.0, 0.0, 0.62, 0.40, 0.90, 0.05)
MIXUP = ("mixup", 32.0, 0.0, 0.71, 0.70, 0.52, 0.02)
MIXUP_BETTER = "mixup has lower test error than ERM"


def _specs(method, pairs) -> list[Spec]:
    """One run of method per (seed, noise seed): each seed 1 point and each noise draw 0.5
    points more accurate, so that both sources vary."""
    name, alpha, dropout, peak, final, noisy, slope = method
    return [Spec(0.5, name, alpha, dropout, s, peak + 0.01 * s + 0.005 * n, 3,
                 final + 0.01 * s + 0.005 * n, noisy, slope, noise_seed=n) for s, n in pairs]


def _load(tmp_path, erm_pairs, mixup_pairs) -> R.Results:
    write_fixture(tmp_path / "runs", _specs(ERM, erm_pairs) + _specs(MIXUP, mixup_pairs),
                  unfinished=False)
    return R.load_results([tmp_path / "runs"])


def _claim(t, claim: str, checkpoint: str = "last"):
    hit = t[t["claim"].str.startswith(claim) & (t["checkpoint"] == checkpoint)]
    assert len(hit) == 1
    return hit.iloc[0]


CROSSED = [(s, n) for s in (0, 1, 2) for n in (0, 1)]


def test_crossed_seeds_and_noise_draws_are_replicates_and_the_labels_say_so(tmp_path):
    res = _load(tmp_path, CROSSED, CROSSED)
    label = ("6 (training seed, noise draw) replicates: 3 training seeds × 2 noise draws × "
             f"{FULL_N:,} test images")
    settings = R.setting_table(res.runs, res.predictions)
    assert set(settings["n_seeds"]) == {6}
    assert set(settings["noise_seeds"]) == {"0,1"}
    for kind in R.KINDS:
        assert set(settings[f"{kind}_error_over"]) == {label}
    t = V.verdict_table(res)
    r = _claim(t, MIXUP_BETTER)
    assert r["n_seeds"] == 6 and r["interval_over"] == label
    assert r["verdict"] == V.SUPPORTED
    # the attack and memorisation intervals name the noise draws too
    attack = R.attack_table(res.attacks)
    assert attack["accuracy_over"].str.contains("3 training seeds × 2 noise draws").all()
    memo = R.memorisation_table(res.runs, res.metrics)
    assert memo["memorised_last_over"].str.contains("2 noise draws").all()
    assert memo["memorised_last_over"].str.contains("corrupted training examples").all()
    assert not memo["memorised_last_over"].str.contains("test").any()


def test_one_noise_draw_is_named_as_held_fixed(tmp_path):
    res = _load(tmp_path, [(0, 0), (1, 0), (2, 0)], [(0, 0), (1, 0), (2, 0)])
    t = V.verdict_table(res)
    assert _claim(t, MIXUP_BETTER)["interval_over"] == (
        f"3 training seeds × 1 noise draw × {FULL_N:,} test images")


def test_one_seed_one_draw_covers_test_images_only(tmp_path):
    res = _load(tmp_path, [(0, 0)], [(0, 0)])
    r = _claim(V.verdict_table(res), MIXUP_BETTER)
    assert r["interval_over"] == f"1 training seed, 1 noise draw: {FULL_N:,} test images only"
    assert r["verdict"] == V.DESCRIBED


def test_a_draw_only_one_method_has_is_not_paired(tmp_path):
    """ERM trained on noise draws 0 and 1, mixup on draw 0 only: the contrast pairs the three
    (seed, draw 0) runs and its label says one draw; ERM's own error covers both."""
    res = _load(tmp_path, CROSSED, [(0, 0), (1, 0), (2, 0)])
    r = _claim(V.verdict_table(res), MIXUP_BETTER)
    assert r["n_seeds"] == 3
    assert r["interval_over"] == f"3 training seeds × 1 noise draw × {FULL_N:,} test images"
    erm = R.setting_table(res.runs, res.predictions).query("method == 'erm'").iloc[0]
    assert "2 noise draws" in erm["last_error_over"]


def test_draws_not_crossed_with_seeds_are_named_as_pairs(tmp_path):
    pairs = [(0, 0), (1, 1), (2, 2)]
    res = _load(tmp_path, pairs, pairs)
    r = _claim(V.verdict_table(res), MIXUP_BETTER)
    assert r["interval_over"] == ("3 (training seed, noise draw) replicates: 3 training seeds, "
                                  f"3 noise draws × {FULL_N:,} test images")


@pytest.mark.parametrize("over, n, seeds, draws, label", [
    (S.OVER_IMAGES, 2, (0, 1), (0, 0),
     "2 training seeds, 1 noise draw: 10,000 test images only"),
    (S.OVER_IMAGES, 2, (0, 0), (0, 1),
     "2 (training seed, noise draw) replicates (1 training seed, 2 noise draws): 10,000 test "
     "images only"),
    (S.OVER_BINOMIAL, 1, (0,), (0,), "1 training seed, 1 noise draw: 10,000 images only, binomial"),
    (S.OVER_SEEDS_BINOMIAL, 4, (0, 0, 1, 1), (0, 1, 0, 1),
     "4 (training seed, noise draw) replicates: 2 training seeds × 2 noise draws (Student t) × "
     "10,000 images (binomial)"),
    (S.OVER_SEEDS, 3, (0, 1, 2), (5, 5, 5), "3 training seeds × 1 noise draw only (Student t)"),
])
def test_basis_names_each_source(over, n, seeds, draws, label):
    iv = S.over_runs(S.Interval(1.0, 0.0, 2.0, n, 10_000, over), seeds, draws)
    assert iv.basis == label
    # the label survives what the verdicts do to an interval
    assert iv.negated().clipped(-100, 100).shifted(1.0).basis == label


def test_without_runs_the_basis_is_as_before():
    assert S.Interval(1.0, 0.0, 2.0, 3, 10_000, S.OVER_BOTH).basis == "3 seeds × 10000 test images"
