"""The verdict table on fixtures: separated intervals give supported or contradicted (both
directions), overlapping ones inconclusive; runs without per-image predictions fall back to
intervals over seeds (or, with one seed, the binomial over images) and say so."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from report_fixtures import Spec, write_fixture

from robustmix.reporting import results as R
from robustmix.reporting import verdicts as V

ALPHA = {"erm": (0.0, 0.0), "mixup": (32.0, 0.0), "dropout": (0.0, 0.8),
         "mixup_dropout": (8.0, 0.3), "mixup_labels_only": (32.0, 0.0)}


def specs(methods: dict, seeds=(0, 1, 2), ratio: float = 0.5) -> list[Spec]:
    """methods: name -> (peak, final, noisy_final, attack slope); each seed 1 point higher."""
    out = []
    for m, (peak, final, noisy, slope) in methods.items():
        for s in seeds:
            j = 0.01 * s
            out.append(Spec(ratio, m, *ALPHA[m], s, peak + j, 3, final + j, noisy, slope))
    return out


def table(tmp_path, methods: dict, **kw) -> tuple[R.Results, object]:
    legacy = kw.pop("legacy", False)
    write_fixture(tmp_path / "runs", specs(methods, **kw), unfinished=False, legacy=legacy)
    res = R.load_results([tmp_path / "runs"])
    return res, V.verdict_table(res)


def row(t, claim: str, checkpoint: str = "last"):
    hit = t[t["claim"].str.startswith(claim) & (t["checkpoint"] == checkpoint)]
    assert len(hit) == 1, (claim, checkpoint, t[["claim", "checkpoint"]])
    return hit.iloc[0]


@pytest.mark.parametrize("lo, hi, verdict", [
    (0.5, 3.0, V.SUPPORTED), (-3.0, -0.5, V.CONTRADICTED), (-1.0, 2.0, V.INCONCLUSIVE),
    (0.0, 2.0, V.INCONCLUSIVE), (float("nan"), float("nan"), V.INCONCLUSIVE)])
def test_decide_rule(lo, hi, verdict):
    assert V.decide(lo, hi) == verdict


def test_separated_intervals_support_the_paper(tmp_path):
    """mixup 30 points better than ERM at the last epoch, ERM's gap and memorisation large."""
    res, t = table(tmp_path, {"erm": (0.62, 0.40, 0.90, 0.05), "mixup": (0.71, 0.70, 0.52, 0.02)})
    r = row(t, "mixup has lower test error than ERM", "last")
    assert r["verdict"] == V.SUPPORTED and r["lo"] > 0
    assert r["effect"] == pytest.approx(30.0, abs=0.1)
    assert r["n_seeds"] == 3 and r["interval_over"] == "3 training seeds × 1 noise draw × 5,000 test images"
    for kind in ("selected", "test_selected"):
        assert row(t, "mixup has lower test error than ERM", kind)["verdict"] == V.SUPPORTED
    gap = row(t, "ERM's rise in error from its test-selected epoch", "test_selected")
    assert gap["verdict"] == V.SUPPORTED and gap["effect"] == pytest.approx(21.0, abs=0.1)
    assert row(t, "ERM memorises the corrupted labels")["verdict"] == V.SUPPORTED
    assert row(t, "ERM memorises more of them than mixup")["verdict"] == V.SUPPORTED
    # mixup's memorised share (0.52 - 0.5) / 0.5 = 4 % at every seed, on about 450 corrupted
    # examples. The null is not chance (10 %, below which it would lie) but the share its own
    # mistakes give, here approximated from its clean-label training accuracy (symmetric noise,
    # no stored null): about as large, so absence is not shown.
    r = row(t, "mixup does not memorise them")
    assert "own mistakes' share, approximate" in r["claim"]
    assert r["verdict"] == V.INCONCLUSIVE and r["lo"] < 0 < r["hi"]
    wb = row(t, "mixup keeps more accuracy than ERM under white-box FGSM at ε = 8/255")
    assert wb["verdict"] == V.SUPPORTED and wb["n_seeds"] == 3


def test_separated_intervals_the_other_way_contradict_it(tmp_path):
    """ERM 30 points better than mixup and more robust: contradicted, with negative effects."""
    _, t = table(tmp_path, {"erm": (0.71, 0.70, 0.52, 0.02), "mixup": (0.62, 0.40, 0.90, 0.05)})
    r = row(t, "mixup has lower test error than ERM", "last")
    assert r["verdict"] == V.CONTRADICTED and r["hi"] < 0
    assert r["effect"] == pytest.approx(-30.0, abs=0.1)
    assert row(t, "ERM's rise in error from its test-selected epoch",
               "test_selected")["verdict"] == V.CONTRADICTED
    assert row(t, "ERM memorises more of them than mixup")["verdict"] == V.CONTRADICTED
    assert row(t, "mixup keeps more accuracy than ERM under white-box I-FGSM at ε = 8/255"
               )["verdict"] == V.CONTRADICTED


def test_overlapping_intervals_are_inconclusive(tmp_path):
    """0.2 points apart on 5,000 images: the paired interval contains 0."""
    _, t = table(tmp_path, {"erm": (0.602, 0.500, 0.80, 0.03), "mixup": (0.600, 0.502, 0.80, 0.03)})
    r = row(t, "mixup has lower test error than ERM", "last")
    assert r["verdict"] == V.INCONCLUSIVE and r["lo"] < 0 < r["hi"]
    assert row(t, "mixup has lower test error than ERM", "test_selected")["verdict"] == V.INCONCLUSIVE
    assert row(t, "ERM memorises more of them than mixup")["verdict"] == V.INCONCLUSIVE
    # attack accuracies 0.2 points apart at every seed: the seeds agree, but 500 shared images
    # cannot tell them apart
    wb = row(t, "mixup keeps more accuracy than ERM under white-box FGSM at ε = 8/255")
    assert wb["verdict"] == V.INCONCLUSIVE and wb["lo"] < 0 < wb["hi"]


def test_paper_orderings_use_the_paper_columns(tmp_path):
    """At 20 % the paper ranks mixup + dropout below mixup at the last epoch but above it at
    its best epoch: two claims, one per column; every pair of the four methods is tested."""
    methods = {"erm": (0.62, 0.40, 0.9, 0.05), "dropout": (0.64, 0.50, 0.8, 0.05),
               "mixup": (0.71, 0.70, 0.5, 0.02), "mixup_dropout": (0.70, 0.69, 0.5, 0.02)}
    _, t = table(tmp_path, methods, seeds=(0,), ratio=0.2)
    orders = t[t["family"] == "Table 2 ordering"]
    assert len(orders) == 3 * 6  # three checkpoint kinds, six pairs
    assert (orders["n_seeds"] == 1).all()
    assert set(orders["interval_over"]) == {"1 training seed, 1 noise draw: 5,000 test images only"}
    last = row(t, "mixup + dropout has lower test error than mixup", "last")
    best = row(t, "mixup has lower test error than mixup + dropout", "test_selected")
    assert last["effect"] == pytest.approx(-best["effect"])
    assert "paper: 6.2 vs 6.4" in last["detail"] and "paper: 5.9 vs 6.2" in best["detail"]


def test_ablation_claims_both_directions(tmp_path):
    _, t = table(tmp_path, {"mixup": (0.71, 0.70, 0.5, 0.02),
                            "mixup_labels_only": (0.55, 0.50, 0.7, 0.04)})
    r = row(t, "mixup has lower test error than mixup labels only", "last")
    assert r["family"] == "ablation" and r["verdict"] == V.SUPPORTED
    _, t = table(tmp_path / "2", {"mixup": (0.55, 0.50, 0.7, 0.04),
                                  "mixup_labels_only": (0.71, 0.70, 0.5, 0.02)})
    assert row(t, "mixup has lower test error than mixup labels only",
               "selected")["verdict"] == V.CONTRADICTED


def test_runs_without_predictions_fall_back_and_say_so(tmp_path):
    """Legacy runs: no selected checkpoint, no per-image results. Three seeds: t over seeds;
    one seed: the binomial over the per-epoch test images."""
    res, t = table(tmp_path, {"erm": (0.62, 0.40, 0.9, 0.05), "mixup": (0.71, 0.70, 0.5, 0.02)},
                   legacy=True)
    assert not res.predictions and any("predictions.csv" in n for n in res.skipped)
    assert not (t["checkpoint"] == "selected").any()
    r = row(t, "mixup has lower test error than ERM", "last")
    assert r["verdict"] == V.SUPPORTED
    assert r["interval_over"] == "3 training seeds × 1 noise draw (Student t) × 2,500 images (binomial)"
    # per-seed differences are all 30 points, so the seed variance is 0 and the binomial
    # variance of the mean errors (60 % vs 30 % on 2,500 images; at such proportions about the
    # normal approximation's) is all there is, on the t quantile of 3 seeds (2 df)
    se = math.sqrt(0.6 * 0.4 / 2500 + 0.7 * 0.3 / 2500)
    assert r["lo"] == pytest.approx(30.0 - 100 * 4.302653 * se, abs=0.2)
    assert r["hi"] == pytest.approx(30.0 + 100 * 4.302653 * se, abs=0.2)
    assert r["p"] < 0.01 and "combined variance" in r["interval_method"]

    res, t = table(tmp_path / "one", {"erm": (0.62, 0.50, 0.9, 0.05),
                                      "mixup": (0.63, 0.49, 0.5, 0.02)}, seeds=(0,), legacy=True)
    r = row(t, "mixup has lower test error than ERM", "last")
    assert r["interval_over"] == "1 training seed, 1 noise draw: 2,500 images only, binomial"
    se = math.sqrt(0.5 * 0.5 / 2500 + 0.51 * 0.49 / 2500)
    assert r["hi"] - r["lo"] == pytest.approx(2 * 100 * 1.959964 * se, abs=0.1)
    # one seed is no verdict: the interval describes the test images, it does not test
    assert r["verdict"] == V.DESCRIBED and math.isnan(r["p"]) and math.isnan(r["p_adjusted"])


def test_unpaired_seeds_give_no_effect(tmp_path):
    """ERM trained with seed 0 only, mixup with seed 1 only: nothing to pair."""
    write_fixture(tmp_path / "runs", specs({"erm": (0.62, 0.40, 0.9, 0.05)}, seeds=(0,))
                  + specs({"mixup": (0.71, 0.70, 0.5, 0.02)}, seeds=(1,)),
                  unfinished=False, attacks=False)
    t = V.verdict_table(R.load_results([tmp_path / "runs"]))
    r = row(t, "mixup has lower test error than ERM", "last")
    assert r["verdict"] == V.INCONCLUSIVE and math.isnan(r["effect"])
    assert r["interval_over"] == "no runs with the same seed"


def test_real_noise_against_its_synthetic_twin_and_mixup_beyond_table_2(tmp_path):
    """CIFAR-10N runs and runs on matrix noise named after the same label set: per method, real
    minus synthetic error; and mixup against ERM on each (Table 2 has no row for them)."""
    import json

    sources = {"real": ({"noise": "cifar10n", "noise_labels": "worst",
                         "noise_file": "/data/CIFAR-10_human.pt"},
                        {"erm": (0.52, 0.40, 0.90, 0.05), "mixup": (0.60, 0.58, 0.55, 0.02)}),
               "synthetic": ({"noise": "matrix", "noise_file": "experiments/cifar10n_worst_T.csv"},
                             {"erm": (0.62, 0.50, 0.90, 0.05), "mixup": (0.70, 0.68, 0.55, 0.02)})}
    for folder, (noise, methods) in sources.items():
        write_fixture(tmp_path / folder, specs(methods), unfinished=False)
        for cfg in (tmp_path / folder).glob("*/config.json"):
            c = json.loads(cfg.read_text())
            c["train"].update(noise)
            cfg.write_text(json.dumps(c))
    res = R.load_results([tmp_path / "real", tmp_path / "synthetic"])
    t = V.verdict_table(res)
    assert not (t["family"] == "Table 2 ordering").any()
    for label in ("ERM", "mixup"):
        r = row(t, f"{label}: CIFAR-10N worst labels give higher test error than matrix noise "
                   "from cifar10n_worst_T")
        assert r["verdict"] == V.SUPPORTED and r["effect"] == pytest.approx(10.0, abs=0.1)
        assert r["family"] == "real vs synthetic noise" and r["condition"] == "cifar10n-worst noise"
    beyond = t[(t["family"] == "beyond Table 2") & (t["checkpoint"] == "last")]
    assert set(beyond["condition"]) == {"cifar10n-worst noise", "matrix-cifar10n_worst_T noise"}
    assert (beyond["verdict"] == V.SUPPORTED).all()
    assert beyond["effect"].tolist() == pytest.approx([18.0, 18.0], abs=0.1)


def test_beyond_table_2_tests_every_pair_table_2_orders_alike_at_every_level(tmp_path):
    """On a source without a Table 2 number, the four methods are compared pair by pair in the
    order Table 2 gives at 20, 50 and 80 %; mixup against mixup + dropout, whose order flips in
    the "best" column (5.9 vs 6.2 at 20 %, 11.3 vs 10.9 at 50 %), is tested at the last epoch
    only."""
    import json

    pairs = V._consistent_orderings()
    assert ("mixup_dropout", "mixup") in pairs["last"]
    assert not {("mixup", "mixup_dropout"), ("mixup_dropout", "mixup")} & set(pairs["selected"])
    assert ("dropout", "erm") in pairs["selected"] and ("mixup", "erm") in pairs["test_selected"]
    assert len(pairs["last"]) == 6 and len(pairs["selected"]) == 5

    write_fixture(tmp_path / "runs", specs({"erm": (0.50, 0.40, 0.90, 0.05),
                                            "dropout": (0.55, 0.50, 0.70, 0.04),
                                            "mixup": (0.60, 0.58, 0.55, 0.02),
                                            "mixup_dropout": (0.52, 0.50, 0.50, 0.02)}),
                  unfinished=False)
    for cfg in (tmp_path / "runs").glob("*/config.json"):
        c = json.loads(cfg.read_text())
        c["train"].update({"noise": "cifar10n", "noise_labels": "worst",
                           "noise_file": "/data/CIFAR-10_human.pt"})
        cfg.write_text(json.dumps(c))
    t = V.verdict_table(R.load_results([tmp_path / "runs"]))
    beyond = t[t["family"] == "beyond Table 2"]
    assert not (t["family"] == "Table 2 ordering").any()
    last = beyond[beyond["checkpoint"] == "last"].set_index("claim")
    assert len(last) == 6
    assert last.at["mixup has lower test error than ERM", "verdict"] == V.SUPPORTED
    assert last.at["mixup has lower test error than ERM", "effect"] == pytest.approx(18.0, abs=0.1)
    # mixup + dropout is worse here than Table 2 says: the claim is contradicted, not dropped
    r = last.loc["mixup + dropout has lower test error than mixup"]
    assert r["verdict"] == V.CONTRADICTED and r["effect"] == pytest.approx(-8.0, abs=0.1)
    assert "Table 2 orders them so" in r["detail"]
    assert set(beyond[beyond["claim"].str.endswith("than mixup")]["checkpoint"]) == {"last"}
    assert len(beyond) == 6 + 5 * 2  # last; selected and test-selected


def test_two_seeds_are_described_never_supported(tmp_path):
    """30 points apart at two seeds: no t-interval with 1 degree of freedom, no p-value, no
    verdict; every claim is described, and none counts as supported or contradicted."""
    _, t = table(tmp_path, {"erm": (0.62, 0.40, 0.90, 0.05), "mixup": (0.71, 0.70, 0.52, 0.02)},
                 seeds=(0, 1))
    assert len(t) and (t["verdict"] == V.DESCRIBED).all()
    assert t["p"].isna().all() and t["p_adjusted"].isna().all()
    r = row(t, "mixup has lower test error than ERM", "last")
    assert r["interval_over"] == "2 training seeds, 1 noise draw: 5,000 test images only"
    assert r["hi"] - r["lo"] < 5  # the image part only, not ±12.7 × the seed spread
    c = V.counts(t)
    assert c[V.SUPPORTED] == c[V.CONTRADICTED] == c[V.INCONCLUSIVE] == 0
    fam = V.family_counts(t)
    assert (fam[V.DESCRIBED] == fam["claims"]).all()


def test_claims_fall_into_false_discovery_families_with_adjusted_p(tmp_path):
    """Table 2 orderings at the selected checkpoint and mixup against ERM under FGSM / I-FGSM are
    the primary families; test-selected claims the oracle family; the rest exploratory. Within
    each, p_adjusted is Benjamini–Hochberg of the raw p, and the verdict follows it."""
    from scipy import stats

    methods = {"erm": (0.62, 0.40, 0.90, 0.05), "dropout": (0.64, 0.50, 0.80, 0.05),
               "mixup": (0.71, 0.70, 0.52, 0.02), "mixup_dropout": (0.70, 0.69, 0.50, 0.02)}
    res, t = table(tmp_path, methods)
    assert {"p", "p_adjusted", "fdr_family"} <= set(t.columns)
    sel = t[(t["family"] == "Table 2 ordering") & (t["checkpoint"] == "selected")]
    assert len(sel) and (sel["fdr_family"] == V.PRIMARY_TABLE2).all()
    assert (t.loc[t["checkpoint"] == "test_selected", "fdr_family"] == V.ORACLE).all()
    last = t[(t["family"] == "Table 2 ordering") & (t["checkpoint"] == "last")]
    assert (last["fdr_family"] == V.exploratory("Table 2 ordering")).all()
    adv = t[t["family"] == "adversarial"]
    fgsm = adv[adv["claim"].str.contains("FGSM")]
    assert len(fgsm) == 4 and (fgsm["fdr_family"] == V.PRIMARY_ATTACKS).all()
    robust = adv[adv["claim"].str.contains("robust")]
    assert (robust["fdr_family"] == V.exploratory("adversarial")).all()
    for fam, g in t.groupby("fdr_family"):
        ok = g[g["p"].notna()]
        want = stats.false_discovery_control(ok["p"].to_numpy(), method="bh")
        assert ok["p_adjusted"].to_numpy() == pytest.approx(want, rel=0.02), fam
        assert (ok["p_adjusted"] >= ok["p"] - 1e-12).all()
    for _, r in t.iterrows():
        assert r["verdict"] == V.decide_p(r["effect"], r["p_adjusted"], r["n_seeds"])
    assert (t["p"] < 0.05).any() and set(t["verdict"]) <= set(V.VERDICTS)
    fam = V.family_counts(t)
    assert fam["fdr_family"].iloc[0] == V.PRIMARY_TABLE2 and fam["fdr_family"].iloc[-1] == V.ORACLE
    assert fam["claims"].sum() == len(t)


def test_the_verdict_is_based_on_the_adjusted_p():
    """p = 0.04 alone in its family: supported; beside four weaker claims it adjusts to 0.1 and
    is inconclusive, although its interval (raw p < 0.05) excludes 0."""
    import pandas as pd

    p = [0.001, 0.04, 0.5, 0.6, 0.7]
    t = pd.DataFrame({"fdr_family": ["a"] * 5 + ["b"], "p": p + [0.04], "_effect": 1.0,
                      "n_seeds": 3})
    out = V.adjust(t)
    assert out["p_adjusted"].tolist() == pytest.approx([0.005, 0.1, 0.7, 0.7, 0.7, 0.04])
    assert out["verdict"].tolist() == [V.SUPPORTED] + [V.INCONCLUSIVE] * 4 + [V.SUPPORTED]
    t["_effect"] = -1.0
    assert V.adjust(t)["verdict"].iloc[0] == V.CONTRADICTED


def test_no_interval_is_printed_outside_what_a_difference_of_rates_can_be():
    """Attack accuracies 100 against 0, 60 and 5 %: the t-interval over 3 seeds runs past
    +100 points; the table's stops at 100."""
    import pandas as pd

    a = pd.DataFrame({"seed": [0, 1, 2], "noise_seed": 0, "accuracy": [100.0] * 3, "n": 500})
    b = a.assign(accuracy=[0.0, 60.0, 5.0])
    iv = V.accuracy_difference(a, b)
    assert iv.hi == 100.0 and iv.lo > -100 and iv.estimate == pytest.approx(235 / 3)
    assert iv.tested and 0 < iv.p_value() < 1


def test_memorisation_is_tested_against_the_runs_own_null_where_stored():
    from robustmix.reporting.verdicts import null_words, share_vs_chance

    # ERM memorised 5 % of its corrupted labels; its own mistakes alone would give 2 %.
    g = pd.DataFrame({"last_memorised": [5.0, 5.2, 4.8], "last_memorised_null": [2.0, 2.1, 1.9],
                      "memorised_null_basis": ["measured"] * 3, "train_eval_n": [5000] * 3,
                      "noise_rate": [45.0] * 3})
    iv = share_vs_chance(g, 1)
    assert iv.estimate == pytest.approx(3.0) and iv.lo > 0  # above its null
    assert "measured, mean 2.0 %" in null_words(g)
    # Against chance (10 %) the same share reads as "not memorising": the old, wrong null.
    old = share_vs_chance(g.drop(columns=["last_memorised_null"]), 1)
    assert old.estimate == pytest.approx(-5.0) and old.hi < 0
    assert null_words(g.drop(columns=["last_memorised_null"])) == "chance, 10 %"


def test_attack_contrasts_pair_by_image_where_outcomes_are_stored(tmp_path):
    """The same 500 attacked images in every run: with per-image outcomes the contrast's image
    variance is that of the per-image differences, far below two independent binomials when
    the runs fail on mostly the same images."""
    import numpy as np

    from robustmix.attacks.outcomes import outcome_key, write_outcomes

    methods = {"erm": (0.62, 0.40, 0.90, 0.02), "mixup": (0.64, 0.43, 0.80, 0.02)}
    _, before = table(tmp_path / "a", methods)
    claim = "mixup keeps more accuracy than ERM under white-box FGSM at ε = 8/255"
    unpaired = row(before, claim)
    res = R.load_results([tmp_path / "a" / "runs"])
    for path in res.runs["path"]:
        rows = R._with_added(pd.read_csv(Path(path) / "attack.csv"))
        # Nested outcomes: a run with k images correct gets the first k right (the easy ones).
        write_outcomes(Path(path), {outcome_key(r): np.arange(int(r["n"])) < int(r["correct"])
                                    for r in rows.to_dict("records")})
    paired = row(V.verdict_table(R.load_results([tmp_path / "a" / "runs"])), claim)
    assert paired["effect"] == pytest.approx(unpaired["effect"], abs=0.01)
    assert paired["hi"] - paired["lo"] < 0.5 * (unpaired["hi"] - unpaired["lo"])
    assert "combined variance" in paired["interval_method"]
    assert "binomial" not in paired["interval_method"]


def _claims(per_seed: dict[str, list[float]], family: str = "ablation") -> pd.DataFrame:
    """Verdict rows from synthetic per-seed effects (points), image variance 0.01."""
    from robustmix.reporting import statistics as S

    rows = [V._row(family, claim, "c", 0.5, "last", S.combined(v, 0.01))
            for claim, v in per_seed.items()]
    return V.adjust(pd.DataFrame(rows)).set_index("claim")


def test_an_effect_well_inside_the_margin_with_a_tight_interval_is_equivalent():
    t = _claims({"tight": [0.1, 0.2, 0.0], "wide": [-3.0, 0.3, 3.6], "two seeds": [0.1, 0.1]})
    tight, wide, two = t.loc["tight"], t.loc["wide"], t.loc["two seeds"]
    assert tight["margin"] == V.EFFECT_MARGIN
    assert tight["verdict"] == V.INCONCLUSIVE  # no difference shown from 0 ...
    assert tight["equivalence"] == V.EQUIVALENT  # ... but shown within ±1 point of it
    assert tight["p_equivalence_adjusted"] < V.ALPHA
    # the same small mean on seeds far apart: an inconclusive test is not read as absence
    assert wide["verdict"] == V.INCONCLUSIVE and wide["equivalence"] == V.INCONCLUSIVE
    assert wide["p_equivalence"] > V.ALPHA
    assert two["equivalence"] == V.DESCRIBED and math.isnan(two["p_equivalence"])
    assert set(t["equivalence"]) <= set(V.EQUIVALENCES)


def test_claims_of_absence_are_upper_bounds_against_the_margin():
    """'mixup does not memorise': effect = null − share. Supported only where the interval puts
    the excess below the memorisation margin; a share near the null on a wide interval is
    inconclusive, not absence; a share far above null + margin contradicts it."""
    from robustmix.reporting import statistics as S

    def verdict(excess: list[float]) -> pd.Series:
        iv = S.combined([-x for x in excess], 0.01)
        return V.adjust(pd.DataFrame([V._row("memorisation", "mixup does not memorise them",
                                             "c", 0.5, "last", iv, absence=True)])).iloc[0]

    assert V.MEMORISATION_MARGIN == 2.0
    near = verdict([0.4, 0.5, 0.6])
    assert near["verdict"] == V.SUPPORTED and near["upper_bound"] < V.MEMORISATION_MARGIN
    assert near["equivalence"] == V.EQUIVALENT
    wide = verdict([-4.0, 0.5, 5.0])
    assert wide["verdict"] == V.INCONCLUSIVE and wide["upper_bound"] > V.MEMORISATION_MARGIN
    above = verdict([6.0, 6.5, 7.0])
    assert above["verdict"] == V.CONTRADICTED and above["equivalence"] == V.INCONCLUSIVE


def test_robust_claim_compares_one_attack_set_across_both_methods():
    """ERM's three seeds and mixup's seed 0 were attacked by AutoAttack too, mixup's seeds 1 and
    2 were not: their worst case (30 %) is over fewer attacks, so the claim pairs seed 0 alone
    over the one set all four runs share and says which attacks it covers."""
    from types import SimpleNamespace

    rows = []
    for method, accs in (("erm", (5.0, 5.0, 5.0)), ("mixup", (6.0, 30.0, 30.0))):
        for s, acc in enumerate(accs):
            aa = method == "erm" or s == 0
            rows.append({"condition": "fast", "ratio": 0.5, "method": method,
                         "alpha": 1.0 if method == "mixup" else 0.0, "dropout": 0.0,
                         "eps": 8.0, "path": f"{method}_s{s}", "seed": s, "noise_seed": 0,
                         "checkpoint": "last", "n": 1000, "accuracy": acc,
                         "names": "autoattack+pgd" if aa else "pgd", "worst": "pgd white-box"})
    robust = pd.DataFrame(rows)
    chosen = robust[["path"]].drop_duplicates()
    (claim,) = V._robust_claims(SimpleNamespace(robust=robust), chosen, "last")
    assert "worst case over autoattack, pgd" in claim["claim"]
    assert claim["n_seeds"] == 1 and claim["effect"] == pytest.approx(1.0)
