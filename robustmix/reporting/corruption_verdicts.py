"""The claims about common corruptions and calibration: mixup against ERM, from corruptions.csv.

Two kinds of claim (verdicts.FAMILIES "corruption" and "calibration"), each per condition, noise
ratio, checkpoint and corruption setting (constants, corruption seed, test images, precision),
on ERM and mixup runs paired by (training seed, noise seed) and scored on the same test images:

  corruption   mixup keeps more accuracy than ERM under common corruptions: the mean over every
               corruption x severity set both were scored on (AugMix, Hendrycks et al. ICLR 2020,
               reports mixup's CIFAR-10-C error below the standard model's, on clean labels).
  calibration  mixup has lower ECE than ERM on the clean test images, and on the corrupted ones
               (mean over the sets), and lower NLL on the clean ones (Thulasidasan et al. NeurIPS
               2019 report mixup better calibrated, on clean labels; under label noise the
               question is open).

Effects are oriented so that + is mixup better: ERM − mixup for ECE (in points, 100 x ECE) and
NLL (nats), mixup − ERM for accuracy (points). Intervals combine the seed variance of the
per-seed effects with the test-image variance of their seed mean (statistics.combined), from the
per-image outcomes of corruption_outcomes.npz: closed form for accuracy and NLL (paired per seed
and image), for ECE a bootstrap over the test images (ECE_RESAMPLES resamples; one image resample
applies to every seed, method and set, as the design is crossed). Runs without outcomes (scored
before they were stored) give intervals over seeds only, and say so. ECE is the plug-in estimate
of calibration.py (15 bins), whose upward bias depends on the confidences: a difference between
two methods carries the difference of their biases, small against the effects here when both
are scored on the same 10,000 images, larger on few images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..evaluation import calibration as cal
from ..evaluation.corruption_outcomes import Outcome, key_text
from ..evaluation.corruption_runs import key
from ..evaluation.corruptions import CLEAN
from ..runs import checkpoint_names as CK
from . import statistics as S

CORRUPTION, CALIBRATION = "corruption", "calibration"
ECE_MARGIN = 1.0  # points of ECE (0.01): below what a change of binning moves a 15-bin ECE
NLL_MARGIN = 0.05  # nats
ECE_RESAMPLES = 200  # for a variance, not a percentile: 200 give it within about 10 %
ECE_SEED = 20191202
SETTING = ["checkpoint", "constants", "corruption_seed", "n", "precision", "test_fingerprint"]


@dataclass(frozen=True)
class Claim:
    """A claim before its verdict (verdicts._row makes the row)."""

    family: str
    claim: str
    condition: str
    ratio: float
    checkpoint: str
    interval: S.Interval
    detail: str
    margin: float | None  # None: the family's (verdicts.margin_of)


def _sets(rows: pd.DataFrame) -> set[tuple[str, int]]:
    c = rows[rows["corruption"] != CLEAN]
    return set(zip(c["corruption"], c["severity"].astype(int), strict=True))


def _outcome(outcomes: dict, row: pd.Series) -> Outcome | None:
    return outcomes.get(key_text(key(row.to_dict())))


def _pairs(g: pd.DataFrame) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(mixup rows, ERM rows) per (seed, noise seed) both have, in seed order."""
    e = {k: d for k, d in g[g["method"] == "erm"].groupby(["seed", "noise_seed"])}
    m = {k: d for k, d in g[g["method"] == "mixup"].groupby(["seed", "noise_seed"])}
    return [(m[k], e[k]) for k in sorted(set(e) & set(m))]


def _per_set(rows: pd.DataFrame, sets: list[tuple[str, int]]) -> list[pd.Series]:
    idx = {(r["corruption"], int(r["severity"])): r for _, r in rows.iterrows()}
    return [idx[s] for s in sets]


def _ece_image_variance(pairs: list[tuple[list[Outcome], list[Outcome]]]) -> float:
    """Bootstrap variance over test images of the seed- and set-mean ECE difference (ERM −
    mixup, points); one image resample for every seed, method and set."""
    n = len(pairs[0][0][0].correct)
    idx = np.random.default_rng(ECE_SEED).integers(0, n, (ECE_RESAMPLES, n))
    total = np.zeros(ECE_RESAMPLES)
    count = 0
    for mix, erm in pairs:
        for om, oe in zip(mix, erm, strict=True):
            total += (cal.ece_from(oe.confidence[idx], oe.correct[idx].astype(float))
                      - cal.ece_from(om.confidence[idx], om.correct[idx].astype(float)))
            count += 1
    return float((100 * total / count).var(ddof=1))


def _nll(o: Outcome) -> np.ndarray:
    return -np.log(np.clip(o.p_label, cal.PROB_FLOOR, 1.0))


def _claims_of(g: pd.DataFrame, outcomes: dict[str, dict], cond: str, ratio: float,
               ck: str) -> list[Claim]:
    pairs = _pairs(g)
    if not pairs:
        return []
    every = [d for pair in pairs for d in pair]
    sets = sorted(set.intersection(*(_sets(d) for d in every)))
    has_clean = all((d["corruption"] == CLEAN).any() for d in every)
    n = int(g["n"].iloc[0])
    kind = CK.kind_of(ck)
    seeds = f"{len(pairs)} seed pair(s), {n} test images"
    out: list[Claim] = []

    def rows_of(which: list[tuple[str, int]]) -> list[tuple[list[pd.Series], list[pd.Series]]]:
        return [(_per_set(m, which), _per_set(e, which)) for m, e in pairs]

    def outs(rows: list[tuple[list[pd.Series], list[pd.Series]]]):
        got = [([_outcome(outcomes[r["path"]], r) for r in m],
                [_outcome(outcomes[r["path"]], r) for r in e]) for m, e in rows]
        ok = all(o is not None for m, e in got for o in (*m, *e))
        return got if ok else None

    clean_rows = rows_of([(CLEAN, 0)]) if has_clean else []
    set_rows = rows_of(sets) if sets else []
    clean_o = outs(clean_rows) if clean_rows else None
    set_o = outs(set_rows) if set_rows else None
    if sets:  # accuracy under corruption, paired per seed and image
        o = set_o
        if o is not None:
            acc = [np.mean([x.correct for x in side], axis=0) for pair in o for side in pair]
            iv = S.paired_difference(np.array(acc[0::2]), np.array(acc[1::2]))
        else:
            diffs = [100 * (np.mean([r["accuracy"] for r in m]) - np.mean([r["accuracy"] for r in e]))
                     for m, e in set_rows]
            iv = S.combined(diffs, math.nan, n)
        out.append(Claim(CORRUPTION, f"mixup keeps more accuracy than ERM under common "
                         f"corruptions (mean over {len(sets)} sets)", cond, ratio, kind,
                         iv.clipped(-100.0, 100.0),
                         f"effect: mixup − ERM accuracy (%); {seeds}", None))
    for label, rows, o in (("clean", clean_rows, clean_o),
                           (f"corrupted (mean over {len(sets)} sets)", set_rows, set_o)):
        if not rows:
            continue
        diffs = [100 * float(np.mean([a["ece"] for a in e]) - np.mean([b["ece"] for b in m]))
                 for m, e in rows]
        var = _ece_image_variance(o) if o is not None else math.nan
        iv = S.combined(diffs, var, n, image_method=f"bootstrap variance of the seed-mean "
                        f"effect over test images ({ECE_RESAMPLES} resamples)")
        out.append(Claim(CALIBRATION, f"mixup has lower ECE than ERM on {label} test images",
                         cond, ratio, kind, iv.clipped(-100.0, 100.0),
                         f"effect: ERM − mixup ECE (points, 15 bins); {seeds}", ECE_MARGIN))
    if clean_rows:
        o = clean_o
        if o is not None:
            iv = S.paired_difference(np.array([_nll(e[0]) for m, e in o]),
                                     np.array([_nll(m[0]) for m, e in o]), scale=1.0)
        else:
            iv = S.combined([float(e[0]["nll"] - m[0]["nll"]) for m, e in clean_rows], math.nan, n)
        out.append(Claim(CALIBRATION, "mixup has lower NLL than ERM on clean test images", cond,
                         ratio, kind, iv, f"effect: ERM − mixup NLL (nats); {seeds}", NLL_MARGIN))
    return out


def corruption_claims(corruptions: pd.DataFrame, outcomes: dict[str, dict],
                      chosen_paths: set[str]) -> list[Claim]:
    """Every corruption and calibration claim the rows allow (see the module docstring), on the
    runs of each method's chosen setting."""
    if corruptions is None or corruptions.empty:
        return []
    co = corruptions[corruptions["path"].isin(chosen_paths)
                     & corruptions["method"].isin(["erm", "mixup"])]
    out: list[Claim] = []
    for (cond, ratio, *setting), g in co.groupby(["condition", "ratio", *SETTING], sort=False):
        out += _claims_of(g, {p: outcomes.get(p, {}) for p in g["path"]}, cond, float(ratio),
                          str(setting[0]))
    return out
