"""Mixup against ERM under common corruptions and on calibration, as verdict families (issue 28):
paired per seed and test image from corruption_outcomes.npz, over seeds only without it, and
described below three seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_fixtures import Spec, write_fixture

from robustmix.evaluation import calibration as cal
from robustmix.evaluation.corruption_outcomes import Outcome, key_text, write_outcomes
from robustmix.evaluation.corruption_runs import COLUMNS, key
from robustmix.reporting import results as R
from robustmix.reporting import verdicts as V

N = 400
SETS = [("clean", 0), ("fog", 1), ("fog", 5), ("contrast", 3)]
SPECS = tuple(Spec(0.5, m, a, 0.0, seed, 0.6, 3, 0.5, 0.7, 0.03)
              for m, a in (("erm", 0.0), ("mixup", 32.0)) for seed in (0, 1, 2))


def outcome(method: str, seed: int, corruption: str, severity: int, better: str) -> Outcome:
    """The better method is right 10 points more often under corruption and states its accuracy
    as its confidence; the other is overconfident (0.99). Both see the same draw per image, as
    two networks tend to fail on the same hard images."""
    rng = np.random.default_rng([seed, severity, len(corruption)])
    acc = 0.8 if corruption == "clean" else 0.65 - 0.02 * severity
    good = method == better
    if good and corruption != "clean":
        acc += 0.10
    acc += 0.01 * seed
    correct = rng.random(N) < acc
    conf = np.full(N, acc) if good else np.full(N, 0.99)
    p_label = np.where(correct, conf, (1 - conf) / 9)
    return Outcome(correct, conf, p_label)


def write_corruptions(run: Path, s: Spec, better: str, outcomes: bool) -> None:
    rows, kept = [], {}
    for c, sev in SETS:
        o = outcome(s.method, s.seed, c, sev, better)
        row = {"run": s.name, "dataset": "cifar10", "noise": "sym", "ratio": s.ratio,
               "method": s.method, "alpha": s.alpha, "dropout": s.dropout, "seed": s.seed,
               "profile": "quick", "checkpoint": "last", "corruption": c, "severity": sev,
               "n": N, "correct": int(o.correct.sum()), "accuracy": float(o.correct.mean()),
               "ci_low": 0.0, "ci_high": 1.0,
               "ece": float(cal.ece_from(o.confidence, o.correct.astype(float))),
               "nll": float(-np.log(o.p_label).mean()),
               "corruption_seed": 0, "constants": "cifar10-c", "package": "p",
               "precision": "fp32", "device": "cpu", "seconds": 1.0, "date": "d",
               "data": "x", "test_fingerprint": "f"}
        rows.append(row)
        kept[key_text(key(row))] = o
    pd.DataFrame(rows, columns=COLUMNS).to_csv(run / "corruptions.csv", index=False)
    if outcomes:
        write_outcomes(run, kept)


def make(root: Path, better: str = "mixup", outcomes: bool = True, specs=SPECS) -> Path:
    for s in write_fixture(root, specs, attacks=False, unfinished=False):
        write_corruptions(root / s.name, s, better, outcomes)
    return root


def claims(root: Path) -> pd.DataFrame:
    t = V.verdict_table(R.load_results([root]))
    return t[t["family"].isin(["corruption", "calibration"])].set_index("claim")


def test_paired_claims_supported_with_intervals_over_seeds_and_images(tmp_path):
    t = claims(make(tmp_path / "runs"))
    acc = t.loc["mixup keeps more accuracy than ERM under common corruptions (mean over 3 sets)"]
    assert acc["verdict"] == V.SUPPORTED and acc["n_seeds"] == 3 and acc["n_images"] == N
    assert acc["lo"] < 10 < acc["hi"] + 3 and acc["lo"] > 0  # about 10 points, interval around
    assert "images" in acc["interval_over"] and "seeds" in acc["interval_over"]
    for label in ("clean", "corrupted (mean over 3 sets)"):
        ece = t.loc[f"mixup has lower ECE than ERM on {label} test images"]
        assert ece["verdict"] == V.SUPPORTED and ece["margin"] == 1.0
        assert "bootstrap" in ece["interval_method"]
    nll = t.loc["mixup has lower NLL than ERM on clean test images"]
    assert nll["verdict"] == V.SUPPORTED and nll["margin"] == 0.05
    assert set(t["fdr_family"]) == {V.exploratory("corruption"), V.exploratory("calibration")}
    assert t["p_adjusted"].notna().all()


def test_the_sign_follows_the_data(tmp_path):
    t = claims(make(tmp_path / "runs", better="erm"))
    assert (t["verdict"] == V.CONTRADICTED).all() and (t["effect"] < 0).all()


def test_without_outcomes_the_interval_covers_seeds_only(tmp_path):
    paired = claims(make(tmp_path / "a"))
    t = claims(make(tmp_path / "b", outcomes=False))
    assert t.index.equals(paired.index)
    assert (t["interval_method"].str.contains("Student t over 3 seeds")).all()
    # the same effects: the per-seed values come from corruptions.csv either way (NLL there is
    # from full-precision probabilities, the outcomes' from float16 ones)
    assert np.allclose(t["effect"], paired["effect"], atol=0.02)


def test_two_seeds_are_described(tmp_path):
    t = claims(make(tmp_path / "runs", specs=tuple(s for s in SPECS if s.seed < 2)))
    assert len(t) == 4 and (t["verdict"] == V.DESCRIBED).all()


def test_ece_image_variance_shrinks_with_more_images():
    from robustmix.reporting.corruption_verdicts import _ece_image_variance

    def pair(n: int) -> tuple[list[Outcome], list[Outcome]]:
        rng = np.random.default_rng(n)
        conf = rng.uniform(0.3, 1, n)
        return ([Outcome(rng.random(n) < conf, conf, conf)],
                [Outcome(rng.random(n) < 0.6, np.full(n, 0.9), conf)])

    small, large = _ece_image_variance([pair(200)]), _ece_image_variance([pair(3200)])
    assert 0 < large < small / 4  # about 1/n: 16x the images, under a quarter of the variance


@pytest.mark.parametrize("family", ["corruption", "calibration"])
def test_families_are_reported_in_order(family):
    assert family in V.FAMILIES and V.exploratory(family) in V.fdr_families()


def test_kept_runs_carry_the_corruption_evidence(tmp_path):
    from robustmix.reporting.evidence import keep_runs

    root = make(tmp_path / "runs")
    kept = keep_runs(sorted(p for p in root.iterdir() if p.is_dir()), tmp_path / "report")
    a, b = claims(root), claims(kept)
    assert len(a) == 4 and a[["verdict", "effect", "lo", "hi"]].equals(b[["verdict", "effect", "lo", "hi"]])
