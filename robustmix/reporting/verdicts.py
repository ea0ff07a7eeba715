"""The verdict table: each claim of the paper the stored runs can test, tested.

A claim is a signed quantity whose sign the paper states, e.g. "mixup has lower test error than
ERM at 50 % noise" is `error(ERM) − error(mixup) > 0`. Its effect is that quantity in points,
oriented so that + is the paper's direction, estimated on runs paired by (seed, noise seed) and,
where per-image predictions exist, on the same test images, with a 95 % interval and a
two-sided p-value from the same statistic (robustmix.reporting.statistics.combined: seed variance
/ n_seeds + the test-image variance of the seed-mean effect, t on n_seeds − 1 df). Each claim
belongs to a false-discovery family (`fdr_family`); within each, the p-values are adjusted by
Benjamini–Hochberg (scipy.stats.false_discovery_control) and the verdict follows the adjusted
one (`decide_p`, at ALPHA = 0.05):

  supported      p_adjusted < 0.05 and the effect is in the paper's direction
  contradicted   p_adjusted < 0.05 and the effect is in the other direction
  inconclusive   p_adjusted ≥ 0.05, or nothing to pair: the two cannot be told apart at this
                 scale (the unadjusted interval may still exclude 0)
  described      fewer than 3 seeds (statistics.MIN_SEEDS): shown, with an interval over the
                 test images only, never tested nor counted as supported or contradicted

An inconclusive verdict is no evidence that the two do not differ. Every claim also gets an
equivalence test (column equivalence): TOST against the margin of its kind of effect
(EFFECT_MARGIN, MEMORISATION_MARGIN; column margin), on the same standard error and t degrees of
freedom, with its p-value adjusted by Benjamini–Hochberg in the same family:

  equivalent     p_equivalence_adjusted < 0.05: the effect lies within ± margin (its 90 %
                 interval does), so it is negligible at that margin
  inconclusive   otherwise: equivalence is not shown (the effect may be large, or the interval
                 too wide to tell)
  described      fewer than 3 seeds

A claim of absence ("mixup does not memorise") is tested as an upper bound: its verdict is
supported only where the 95 % interval puts the excess over the null below the margin (the
two-sided test of effect = −margin, column p), contradicted where it puts it above.

Claims (each where the runs allow it; methods at their chosen setting, see results.py):
  Table 2 ordering  each pair of the paper's four methods at 20/50/80 % symmetric CIFAR-10
                    noise, in the paper's order: its last-epoch column for the last checkpoint,
                    its "best" (test-selected) column for the test-selected checkpoint and for
                    the selected (noisy-validation) checkpoint, the honest version of "best".
  beyond Table 2    where Table 2 has no number (another noise source such as CIFAR-10N, another
                    level or dataset): each pair of the four methods that Table 2 orders the
                    same way at 20, 50 and 80 % (all but mixup against mixup + dropout at the
                    "best" column), in that order, at each checkpoint.
  best-to-last gap  ERM's rise in error from the test-selected (and the selected) epoch to the
                    last is larger than mixup's.
  memorisation      ERM's memorised share of corrupted training labels at the last epoch is
                    above its null (the share its own mistakes give: results.memorisation_null;
                    chance, 10 %, for runs without one); mixup's is at most
                    MEMORISATION_MARGIN points above its null (an upper bound, not a test read
                    as absence); ERM's is above mixup's.
  ablation          mixup has lower error than each ablation run at the same noise (the paper's
                    ablations were on clean labels: tested here at the noise they were run at).
  adversarial       mixup keeps more accuracy than ERM under each attack and mode at one ε
                    (8/255, the usual CIFAR-10 budget, or the largest attacked below it).
  corruption        mixup keeps more accuracy than ERM under common corruptions (mean over the
                    sets both were scored on; reporting/corruption_verdicts.py).
  calibration       mixup has lower ECE than ERM on clean and on corrupted test images, and
                    lower NLL on clean ones (ECE margin 1 point, NLL 0.05 nats; same module).
  other methods     a method outside the paper (GCE, SCE, your own) against ERM and against
                    mixup: lower test error at each checkpoint, more accuracy under each
                    attack and mode at the ε above. The paper states no direction for these;
                    + means the other method is better, and "supported" that it is.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..attacks.registry import DEFAULT_ATTACKS, attack_label
from ..runs import checkpoint_names as CK
from ..training.methods import PAPER_METHODS, is_ablation, method_label
from . import paper
from . import results as R
from . import statistics as S
from .corruption_verdicts import corruption_claims

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
DESCRIBED = "described"  # fewer than statistics.MIN_SEEDS seeds: shown, not tested
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, DESCRIBED)
EQUIVALENT = "equivalent"  # TOST: the effect lies within ± its margin
EQUIVALENCES = (EQUIVALENT, INCONCLUSIVE, DESCRIBED)
ALPHA = 0.05  # false discovery rate within each family (Benjamini–Hochberg)

# Equivalence margins, in points: an effect within ± margin counts as negligible.
# EFFECT_MARGIN, for a difference in test error or in accuracy under attack (a share of images
# classified right, as test error is): 1 point. Every gap the paper's Table 2 reports between two
# of its methods is larger, except mixup against mixup + dropout at 20 % (0.3 "best", 0.2 last)
# and 50 % ("best", 0.4), which the paper itself hardly separates; and 1 point is the seed-to-seed
# spread of a paired difference measured in the committed study (0.9–1.3 points at 50 % noise),
# so a smaller effect is below what one retraining changes.
EFFECT_MARGIN = 1.0
# MEMORISATION_MARGIN, for a memorised share against its null or another method's share: 2
# points, one corrupted label in fifty fitted beyond what the network's own mistakes give. Small
# against the memorisation the paper is about (ERM fits most corrupted labels by the last epoch;
# 47 % in the committed fast-long run), and about the error of the approximate null of older
# runs, which takes the accuracy on all training examples for that on the corrupted ones (lower,
# so the null is underestimated by the accuracy gap / 9: 1 point for a 9-point gap).
MEMORISATION_MARGIN = 2.0
FAMILIES = ("Table 2 ordering", "beyond Table 2", "real vs synthetic noise", "best-to-last gap",
            "memorisation", "ablation", "adversarial", "corruption", "calibration",
            "other methods")
ATTACK_EPS = 8.0  # /255: the ε at which the adversarial claims are tested (or the largest below)
COLUMNS = ["family", "claim", "condition", "ratio", "checkpoint", "verdict", "effect", "lo", "hi",
           "p", "p_adjusted", "equivalence", "margin", "p_equivalence", "p_equivalence_adjusted",
           "upper_bound", "fdr_family", "n_seeds", "n_images", "interval_over",
           "interval_method", "detail"]

# Families for false-discovery control (column fdr_family): the Benjamini–Hochberg adjustment
# runs within each. The primary families are what the paper claims, at a checkpoint a
# practitioner could pick: its Table 2 orderings at the noisy-validation (selected) checkpoint
# and mixup against ERM under its attacks (FGSM and I-FGSM, white- and black-box). Every claim at
# the test-selected checkpoint, which picks its epoch on the test images (the paper's "best"),
# forms the oracle family, counted apart; the rest are exploratory, one family per kind of claim.
PRIMARY_TABLE2 = "primary: Table 2 orderings, selected checkpoint"
PRIMARY_ATTACKS = "primary: adversarial orderings, the paper's attacks"
ORACLE = "oracle: test-selected checkpoint"
EXPLORATORY = "exploratory: "


def fdr_families() -> list[str]:
    """Every family name, in the order the report shows them."""
    return [PRIMARY_TABLE2, PRIMARY_ATTACKS, *(exploratory(f) for f in FAMILIES), ORACLE]


def exploratory(family: str) -> str:
    """The exploratory family of a kind of claim, named as its section is ('Memorisation')."""
    return EXPLORATORY + family[0].upper() + family[1:]


def fdr_family(family: str, checkpoint: str, paper_attack: bool = False) -> str:
    """The false-discovery family of a claim of kind `family` at `checkpoint`."""
    if checkpoint == CK.TEST_SELECTED_CK.kind:
        return ORACLE
    if family == "Table 2 ordering" and checkpoint == "selected":
        return PRIMARY_TABLE2
    if family == "adversarial" and paper_attack:
        return PRIMARY_ATTACKS
    return exploratory(family)


def decide_p(effect: float, p_adjusted: float, n_seeds: int) -> str:
    """The verdict from the adjusted p-value of a tested claim (effect oriented so that + is
    the paper's direction): supported / contradicted where p_adjusted < ALPHA, by the sign of
    the effect; inconclusive otherwise; described with fewer than statistics.MIN_SEEDS seeds."""
    if 0 < n_seeds < S.MIN_SEEDS:
        return DESCRIBED
    if not (math.isfinite(p_adjusted) and math.isfinite(effect)) or p_adjusted >= ALPHA:
        return INCONCLUSIVE
    if effect > 0:
        return SUPPORTED
    if effect < 0:
        return CONTRADICTED
    return INCONCLUSIVE


def decide_equivalence(p_adjusted: float, n_seeds: int) -> str:
    """equivalent where the adjusted TOST p-value is below ALPHA; described with fewer than
    statistics.MIN_SEEDS seeds; inconclusive otherwise (equivalence not shown)."""
    if 0 < n_seeds < S.MIN_SEEDS:
        return DESCRIBED
    if math.isfinite(p_adjusted) and p_adjusted < ALPHA:
        return EQUIVALENT
    return INCONCLUSIVE


def _bh(t: pd.DataFrame, p: str) -> pd.Series:
    """Benjamini–Hochberg adjusted column p within each fdr_family, over the rows with one."""
    out = pd.Series(np.nan, index=t.index)
    for _, g in t.groupby("fdr_family", sort=False):
        ok = g.index[g[p].notna()]
        if len(ok):
            out.loc[ok] = stats.false_discovery_control(t.loc[ok, p].to_numpy(dtype=float),
                                                        method="bh")
    return out


def adjust(t: pd.DataFrame) -> pd.DataFrame:
    """p_adjusted (Benjamini–Hochberg, scipy.stats.false_discovery_control) within each
    fdr_family over the claims with a p-value, and the verdict from it; the same for the
    equivalence test (p_equivalence) where the table has one."""
    t = t.copy()
    t["p_adjusted"] = _bh(t, "p")
    t["verdict"] = [decide_p(e, q, n) for e, q, n in
                    zip(t["_effect"], t["p_adjusted"], t["n_seeds"], strict=True)]
    cols = ["p", "p_adjusted"]
    if "p_equivalence" in t.columns:
        t["p_equivalence_adjusted"] = _bh(t, "p_equivalence")
        t["equivalence"] = [decide_equivalence(q, n) for q, n in
                            zip(t["p_equivalence_adjusted"], t["n_seeds"], strict=True)]
        cols += ["p_equivalence", "p_equivalence_adjusted"]
    for c in cols:
        t[c] = t[c].map(_sig)
    return t


def _sig(p: float) -> float:
    """A p-value to 3 significant digits (tiny ones stay tiny, unlike rounding to decimals)."""
    return float(f"{p:.3g}") if math.isfinite(p) else np.nan


def decide(lo: float, hi: float) -> str:
    """supported / contradicted / inconclusive from the interval of an effect oriented so
    that + is the paper's direction."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return INCONCLUSIVE
    if lo > 0:
        return SUPPORTED
    if hi < 0:
        return CONTRADICTED
    return INCONCLUSIVE


def name(method: str) -> str:
    return method_label(method)


# --------------------------------------------------------------------------- estimating effects


@dataclass(frozen=True)
class Term:
    """coef × (error of checkpoint `kind`) of the runs of one method; the runs of all terms of a
    contrast are paired by (seed, noise seed)."""

    coef: float
    runs: pd.DataFrame
    kind: str


PAIR_KEYS = ["seed", "noise_seed"]


def _pair_keys(frames: Sequence[pd.DataFrame]) -> list[tuple]:
    common = None
    for f in frames:
        keys = set(map(tuple, f[PAIR_KEYS].to_numpy().tolist()))
        common = keys if common is None else common & keys
    return sorted(common or [])


def _aligned(f: pd.DataFrame, keys: list[tuple]) -> pd.DataFrame:
    """f's rows in the order of keys (one row per key: one run per seed and method)."""
    order = pd.DataFrame(keys, columns=PAIR_KEYS)
    return order.merge(f, on=PAIR_KEYS, how="left", validate="one_to_one")


def _over_pairs(iv: S.Interval, keys: list[tuple]) -> S.Interval:
    """iv labelled with the training seeds and noise draws of its (seed, noise seed) pairs."""
    return S.over_runs(iv, [k[0] for k in keys], [k[1] for k in keys])


def _bounds(coefs: Sequence[float]) -> tuple[float, float]:
    """What Σ coef × rate (points) can be: [−100, 100] for a difference of two rates."""
    return (100.0 * sum(min(c, 0.0) for c in coefs), 100.0 * sum(max(c, 0.0) for c in coefs))


def error_contrast(terms: Sequence[Term], predictions: dict | None) -> S.Interval | None:
    """Σ coef × error (points) over paired runs, with its interval; None without paired runs.

    The combined variance (statistics.combined): the seed variance of the per-pair contrast over
    the number of pairs, plus the test-image variance of its mean, from the per-image errors of
    every run where there are predictions (paired: the contrast is taken per image), otherwise
    from the binomial interval of the mean errors (Wilson bounds combined by MOVER, as if the
    runs were independent: conservative). Fewer than statistics.MIN_SEEDS pairs: the image
    interval alone, a description. Clipped to what the contrast can be."""
    keys = _pair_keys([t.runs for t in terms])
    if not keys:
        return None
    aligned = [_aligned(t.runs, keys) for t in terms]
    for t, a in zip(terms, aligned, strict=True):
        if a[f"{t.kind}_error"].isna().any():
            return None
    per_pair = sum(t.coef * a[f"{t.kind}_error"].to_numpy(dtype=float)
                   for t, a in zip(terms, aligned, strict=True))
    mats = [R.image_errors(predictions, list(a["path"]), t.kind)
            for t, a in zip(terms, aligned, strict=True)]
    bounds = _bounds([t.coef for t in terms])
    if all(m is not None for m in mats) and len({m.shape for m in mats}) == 1:
        values = sum(t.coef * m for t, m in zip(terms, mats, strict=True))
        return _over_pairs(S.combined(
            per_pair, S.image_variance(values), values.shape[1],
            "paired image variance of the seed-mean contrast (closed form)").clipped(*bounds),
            keys)
    return _over_pairs(S.with_binomial(per_pair, S.binomial_contrast(
        [a[f"{t.kind}_error"].mean() / 100 for t, a in zip(terms, aligned, strict=True)],
        [int(a[f"{t.kind}_error_images"].min()) for t, a in zip(terms, aligned, strict=True)],
        [t.coef for t in terms])).clipped(*bounds), keys)


def has_null(g: pd.DataFrame) -> bool:
    """Whether every run of g has the memorisation null (results.memorisation_null)."""
    return "last_memorised_null" in g and bool(g["last_memorised_null"].notna().all())


def share_vs_chance(g: pd.DataFrame, sign: float) -> S.Interval | None:
    """sign × (memorised share at the last epoch − its null), points, over the runs in g: the
    null is each run's own (the share its mistakes alone would give) where every run has one,
    else chance (10 %). The image part of the variance is the binomial one of the share (the
    null, a mean of probabilities over the same examples, is taken as fixed)."""
    vals = g["last_memorised"].dropna()
    if vals.empty:
        return None
    n = R.corrupted_eval_examples(g.iloc[0])
    p = float(vals.mean()) / 100
    images = S.proportion(p, n) if n and 0 <= p <= 1 else S.none(100 * p, 1)
    if has_null(g):
        null = g.loc[vals.index, "last_memorised_null"].astype(float)
        excess = [float(v) - float(z) for v, z in zip(vals, null, strict=True)]
        iv = S.with_binomial(excess, images.shifted(-float(null.mean())))
        iv = iv.clipped(-100.0, 100.0)
    else:
        iv = S.with_binomial(list(vals), images).clipped(0.0, 100.0).shifted(-R.CHANCE)
    if "seed" in g:
        noise = g.loc[vals.index, "noise_seed"] if "noise_seed" in g else [0] * len(vals)
        iv = S.over_runs(iv, list(g.loc[vals.index, "seed"]), list(noise))
    return iv if sign > 0 else iv.negated()


def null_words(g: pd.DataFrame | None) -> str:
    """How a claim names its memorisation null."""
    if g is None or not has_null(g):
        return f"chance, {R.CHANCE:g} %"
    basis = set(g.get("memorised_null_basis", pd.Series(dtype=str)))
    how = "approximate" if "approximate" in basis else "measured"
    return (f"its own mistakes' share, {how}, mean {float(g['last_memorised_null'].mean()):.1f} "
            "%")


def share_difference(a: pd.DataFrame, b: pd.DataFrame) -> S.Interval | None:
    """Memorised share at the last epoch of a − b (points), paired by seed."""
    keys = _pair_keys([a, b])
    if not keys:
        return None
    x, y = _aligned(a, keys), _aligned(b, keys)
    d = (x["last_memorised"] - y["last_memorised"]).to_numpy(dtype=float)
    if not np.isfinite(d).all():
        return None
    return _over_pairs(S.with_binomial(d, S.binomial_contrast(
        [x["last_memorised"].mean() / 100, y["last_memorised"].mean() / 100],
        [R.corrupted_eval_examples(x.iloc[0]), R.corrupted_eval_examples(y.iloc[0])], [1, -1])
    ).clipped(-100.0, 100.0), keys)


def _paired_attack_images(x: pd.DataFrame, y: pd.DataFrame, checkpoint: str,
                          stored: Mapping[str, R.StoredAttacks]) -> np.ndarray | None:
    """(seeds × images) per-image differences in correctness, x − y, where every paired run
    stored its per-image outcomes on the same images (stored: Results.stored_attacks); else
    None."""
    if "attack" not in x or "path" not in x or len(x) < S.MIN_SEEDS or not stored:
        return None
    rows = []
    for (_, rx), (_, ry) in zip(x.iterrows(), y.iterrows(), strict=True):
        mx = R.attack_correct(stored.get(rx["path"]), checkpoint, rx["attack"], rx["mode"],
                              float(rx["eps"]))
        my = R.attack_correct(stored.get(ry["path"]), checkpoint, ry["attack"], ry["mode"],
                              float(ry["eps"]))
        if mx is None or my is None or len(mx) != len(my):
            return None
        rows.append(mx - my)
    if len({len(r) for r in rows}) != 1:
        return None
    return np.stack(rows)


def image_paired_difference(a: pd.DataFrame, b: pd.DataFrame, checkpoint: str,
                            stored: Mapping[str, R.StoredAttacks] | None
                            ) -> S.Interval | None:
    """Attack accuracy of a − b (points) paired by seed and by image: the combined variance of
    the per-(seed, image) differences, from the outcomes in stored; None unless every paired
    run has them on the same images, from MIN_SEEDS pairs on."""
    keys = _pair_keys([a, b])
    if not keys:
        return None
    paired = _paired_attack_images(_aligned(a, keys), _aligned(b, keys), checkpoint,
                                   stored or {})
    if paired is None:
        return None
    return _over_pairs(S.combined_values(paired).clipped(-100.0, 100.0), keys)


def accuracy_difference(a: pd.DataFrame, b: pd.DataFrame, checkpoint: str = "last",
                        stored: Mapping[str, R.StoredAttacks] | None = None
                        ) -> S.Interval | None:
    """Attack accuracy of a − b (points; attack_per_run rows of one attack, mode and ε),
    paired by seed and, where both runs stored per-image outcomes on the same attacked images
    (the attack stage attacks the same first images of every run; stored:
    Results.stored_attacks), by image: the combined variance of the per-image differences.
    Without them, the binomial image variance."""
    keys = _pair_keys([a, b])
    if not keys:
        return None
    by_image = image_paired_difference(a, b, checkpoint, stored)
    if by_image is not None:
        return by_image
    x, y = _aligned(a, keys), _aligned(b, keys)
    d = (x["accuracy"] - y["accuracy"]).to_numpy(dtype=float)
    return _over_pairs(S.with_binomial(d, S.binomial_contrast([x["accuracy"].mean() / 100,
                                                               y["accuracy"].mean() / 100],
                                                              [x["n"].min(), y["n"].min()],
                                                              [1, -1])
                                       ).clipped(-100.0, 100.0), keys)


# --------------------------------------------------------------------------- the table


def margin_of(family: str) -> float:
    """The equivalence margin (points) of a kind of claim's effect."""
    return MEMORISATION_MARGIN if family == "memorisation" else EFFECT_MARGIN


def _rounded(v: float) -> float:
    return round(v, R.ROUND) + 0.0 if math.isfinite(v) else np.nan  # + 0.0: no "-0.0"


def _row(family: str, claim: str, condition: str, ratio: float, checkpoint: str,
         iv: S.Interval | None, detail: str = "", paper_attack: bool = False,
         absence: bool = False, margin: float | None = None) -> dict:
    """One claim; its verdict is set by `adjust` once every p-value of its family is known.

    absence: a claim that something is not there, its effect oriented so that + is absence
    (e.g. null − memorised share): tested as a bound, against effect = −margin (p of that
    null; supported where the interval lies above it), never as an inconclusive test of 0."""
    fam = fdr_family(family, checkpoint, paper_attack)
    margin = margin_of(family) if margin is None else margin
    if iv is None:
        return {"family": family, "claim": claim, "condition": condition, "ratio": ratio,
                "checkpoint": checkpoint, "verdict": INCONCLUSIVE, "effect": np.nan,
                "lo": np.nan, "hi": np.nan, "p": np.nan, "equivalence": INCONCLUSIVE,
                "margin": margin, "p_equivalence": np.nan, "upper_bound": np.nan,
                "fdr_family": fam, "n_seeds": 0, "n_images": 0,
                "interval_over": "no runs with the same seed", "interval_method": "",
                "detail": detail, "_effect": np.nan}
    shift = margin if absence else 0.0
    return {"family": family, "claim": claim, "condition": condition, "ratio": ratio,
            "checkpoint": checkpoint, "verdict": "",
            "effect": _rounded(iv.estimate), "lo": _rounded(iv.lo), "hi": _rounded(iv.hi),
            "p": iv.p_value(-shift), "equivalence": "", "margin": margin,
            "p_equivalence": iv.p_equivalence(margin),
            # absence claims: the 95 % one-sided bound on what is claimed absent (−effect),
            # e.g. the excess of the memorised share over its null; NaN for other claims
            "upper_bound": _rounded(iv.negated().upper_bound()) if absence else np.nan,
            "fdr_family": fam,
            "n_seeds": iv.n_seeds, "n_images": iv.n_images, "interval_over": iv.basis,
            "interval_method": iv.method, "detail": detail, "_effect": iv.estimate + shift}


def _has(g: pd.DataFrame | None, kind: str) -> bool:
    return g is not None and not g.empty and g[f"{kind}_error"].notna().any()


def _paper_orderings(ratio: float) -> dict[str, dict[str, float]]:
    """kind -> method -> the paper's error for the column that kind is compared with."""
    t = paper.table2()
    t = t[(t["ratio"] - ratio).abs() < 1e-9]
    if t.empty:
        return {}
    best = dict(zip(t["method"], t["paper_best_error"], strict=True))
    last = dict(zip(t["method"], t["paper_last_error"], strict=True))
    return {"last": last, "selected": best, "test_selected": best}


def _ordering_claims(groups: dict, cond: str, ratio: float, first, preds) -> list[dict]:
    if first["dataset"] != "cifar10" or first["noise"] != "sym":
        return []
    out = []
    for kind, ref in _paper_orderings(ratio).items():
        methods = [m for m in PAPER_METHODS if m in ref and _has(groups.get(m), kind)]
        for i, a in enumerate(methods):
            for b in methods[i + 1:]:
                if ref[a] == ref[b]:
                    continue  # the paper reports a tie: no ordering to test
                better, worse = (a, b) if ref[a] < ref[b] else (b, a)
                iv = error_contrast([Term(1, groups[worse], kind), Term(-1, groups[better], kind)],
                                    preds)
                out.append(_row("Table 2 ordering",
                                f"{name(better)} has lower test error than {name(worse)}", cond,
                                ratio, kind, iv,
                                f"paper: {ref[better]:g} vs {ref[worse]:g} % "
                                + ("(last epoch)" if kind == "last"
                                   else '("best" epoch: test-selected)')))
    return out


@functools.cache
def _consistent_orderings() -> dict[str, list[tuple[str, str]]]:
    """kind -> (better, worse) pairs of the paper's methods that Table 2 orders the same way at
    every noise level it reports (20, 50 and 80 %), in the column that kind is compared with."""
    levels = [_paper_orderings(r) for r in sorted(set(paper.table2()["ratio"]))]
    out: dict[str, list[tuple[str, str]]] = {}
    for kind in levels[0]:
        pairs = []
        for i, a in enumerate(PAPER_METHODS):
            for b in PAPER_METHODS[i + 1:]:
                d = [lv[kind][a] - lv[kind][b] for lv in levels if a in lv[kind] and b in lv[kind]]
                if len(d) != len(levels):
                    continue
                if all(x < 0 for x in d):
                    pairs.append((a, b))
                elif all(x > 0 for x in d):
                    pairs.append((b, a))
        out[kind] = pairs
    return out


def _beyond_claims(groups: dict, cond: str, ratio: float, preds) -> list[dict]:
    """Where Table 2 has no number (another noise source, level or dataset), each pair of the
    paper's methods that Table 2 orders the same way at all of its noise levels, in that order:
    the paper's general claim, e.g. that mixup lowers the error under label noise."""
    out = []
    for kind, pairs in _consistent_orderings().items():
        for better, worse in pairs:
            b, w = groups.get(better), groups.get(worse)
            if not (_has(b, kind) and _has(w, kind)):
                continue
            iv = error_contrast([Term(1, w, kind), Term(-1, b, kind)], preds)
            out.append(_row("beyond Table 2",
                            f"{name(better)} has lower test error than {name(worse)}", cond, ratio,
                            kind, iv, f"effect: {name(worse)} − {name(better)} error; Table 2 "
                            "orders them so at 20, 50 and 80 %, and has no number here"))
    return out


def _twins(chosen: pd.DataFrame) -> list[tuple[str, str]]:
    """(real, synthetic) condition pairs: a CIFAR-10N label set and `matrix` noise whose file
    is named after it (as `python -m robustmix.noise --write-matrix` output is, e.g.
    cifar10n_worst_T.csv for worst), or the only CIFAR-10N set when there is one."""
    first = chosen.drop_duplicates("condition").set_index("condition")
    real = [c for c in first.index if first.at[c, "noise_source"] == "cifar10n"]
    synth = [c for c in first.index if first.at[c, "noise_source"] == "matrix"]
    pairs = []
    for c in synth:
        stem = Path(str(first.at[c, "noise_file"] or "")).stem.lower()
        named = [r for r in real if f"_{first.at[r, 'noise_labels']}" in stem]
        pairs += [(r, c) for r in (named or (real if len(real) == 1 else []))]
    return pairs


def _real_noise_claims(chosen: pd.DataFrame, preds) -> list[dict]:
    """Real annotator noise against class-conditional noise with its transition matrix, per
    method on the same seeds and test images (the CIFAR-N paper, Wei et al. 2022, finds the
    real noise harder: its errors depend on the image, not only on the class)."""
    out = []
    for real, synth in _twins(chosen):
        a, b = chosen[chosen["condition"] == real], chosen[chosen["condition"] == synth]
        labels = a["noise_labels"].iloc[0]
        stem = Path(str(b["noise_file"].iloc[0])).stem
        for method in dict.fromkeys(a["method"]):
            ga, gb = a[a["method"] == method], b[b["method"] == method]
            for kind in R.KINDS:
                if _has(ga, kind) and _has(gb, kind):
                    iv = error_contrast([Term(1, ga, kind), Term(-1, gb, kind)], preds)
                    out.append(_row(
                        "real vs synthetic noise",
                        f"{name(method)}: CIFAR-10N {labels} labels give higher test error than "
                        f"matrix noise from {stem}", real, float(a["ratio"].iloc[0]), kind, iv,
                        f"effect: error on real − on synthetic noise "
                        f"({100 * a['ratio'].iloc[0]:.1f} vs {100 * b['ratio'].iloc[0]:.1f} % "
                        "wrong labels)"))
    return out


def _gap_claims(groups: dict, cond: str, ratio: float, preds) -> list[dict]:
    e, m = groups.get("erm"), groups.get("mixup")
    out = []
    for kind in (CK.TEST_SELECTED_CK.kind, CK.SELECTED_CK.kind):
        if not (_has(e, kind) and _has(m, kind) and _has(e, "last") and _has(m, "last")):
            continue
        iv = error_contrast([Term(1, e, "last"), Term(-1, e, kind), Term(-1, m, "last"),
                             Term(1, m, kind)], preds)
        what = CK.resolve(kind).cli
        out.append(_row("best-to-last gap",
                        f"ERM's rise in error from its {what} epoch to the last is larger than "
                        "mixup's", cond, ratio, kind, iv, "effect: ERM's gap − mixup's gap"))
    return out


def _memorisation_claims(groups: dict, cond: str, ratio: float) -> list[dict]:
    rows = _memorisation_rows(groups, cond, ratio)
    for r in rows:
        r["interval_over"] = R.examples(r["interval_over"])
    return rows


def _memorisation_rows(groups: dict, cond: str, ratio: float) -> list[dict]:
    if ratio <= 0:
        return []
    e, m = groups.get("erm"), groups.get("mixup")
    out = []
    if e is not None and e["last_memorised"].notna().any():
        null = "its null" if has_null(e) else "chance"
        out.append(_row("memorisation", f"ERM memorises the corrupted labels (share above "
                        f"{null_words(e)})", cond, ratio, "last", share_vs_chance(e, 1),
                        f"effect: ERM's memorised share − {null}"))
    if m is not None and m["last_memorised"].notna().any():
        null = "its null" if has_null(m) else "chance"
        out.append(_row("memorisation", f"mixup does not memorise them (share at most "
                        f"{MEMORISATION_MARGIN:g} points above {null_words(m)})", cond, ratio,
                        "last", share_vs_chance(m, -1),
                        f"effect: {null} − mixup's memorised share; an upper bound: supported "
                        f"where the interval lies above −{MEMORISATION_MARGIN:g} (p of effect = "
                        f"−{MEMORISATION_MARGIN:g}); upper_bound: the 95 % one-sided bound on "
                        f"the share's excess over {null}", absence=True))
    if e is not None and m is not None and e["last_memorised"].notna().any() \
            and m["last_memorised"].notna().any():
        out.append(_row("memorisation", "ERM memorises more of them than mixup", cond, ratio,
                        "last", share_difference(e, m), "effect: ERM − mixup memorised share"))
    return out


def _ablation_claims(groups: dict, cond: str, ratio: float, preds) -> list[dict]:
    m = groups.get("mixup")
    out = []
    for method, g in groups.items():
        if not is_ablation(method) or m is None:
            continue
        for kind in R.KINDS:
            if not (_has(g, kind) and _has(m, kind)):
                continue
            iv = error_contrast([Term(1, g, kind), Term(-1, m, kind)], preds)
            out.append(_row("ablation", f"mixup has lower test error than {name(method)}", cond,
                            ratio, kind, iv, "the paper's ablation (clean labels), at this noise"))
    return out


def _other(method: str) -> bool:
    """A method the verdicts compare with ERM and mixup: not the paper's, not an ablation."""
    return method not in PAPER_METHODS and not is_ablation(method)


def _other_error_claims(groups: dict, cond: str, ratio: float, preds) -> list[dict]:
    out = []
    for method, g in groups.items():
        if not _other(method):
            continue
        for ref in ("erm", "mixup"):
            r = groups.get(ref)
            for kind in R.KINDS:
                if not (_has(g, kind) and _has(r, kind)):
                    continue
                iv = error_contrast([Term(1, r, kind), Term(-1, g, kind)], preds)
                out.append(_row("other methods", f"{name(method)} has lower test error than "
                                f"{name(ref)}", cond, ratio, kind, iv,
                                f"effect: {name(ref)} − {name(method)} error"))
    return out


def attack_runs(per_run: pd.DataFrame, chosen: pd.DataFrame, cond, ratio, method) -> pd.DataFrame:
    """Attack rows of a method's chosen setting, else of its most attacked setting."""
    d = per_run[(per_run["condition"] == cond) & (per_run["ratio"] == ratio)
                & (per_run["method"] == method)]
    if d.empty:
        return d
    mine = d[d["path"].isin(chosen["path"])]
    if not mine.empty:
        return mine
    top = d.groupby(list(R.SETTING_KEYS)).size().idxmax()
    return d[(d["alpha"] == top[0]) & (d["dropout"] == top[1])]


def _attack_claims(res: R.Results, chosen: pd.DataFrame, checkpoint: str) -> list[dict]:
    per_run = R.attack_per_run(res.attacks, checkpoint)
    if per_run.empty:
        return []
    out = []
    ck = CK.cli_name(checkpoint)
    for (cond, ratio), _ in per_run.groupby(["condition", "ratio"], sort=False):
        here = per_run[(per_run["condition"] == cond) & (per_run["ratio"] == ratio)]
        pairs = [("mixup", "erm", "adversarial")] + [
            (method, ref, "other methods") for method in dict.fromkeys(here["method"])
            if _other(method) for ref in ("erm", "mixup")]
        for method, ref, family in pairs:
            out += _attack_pair(per_run, chosen, cond, ratio, ck, method, ref, family,
                                res.stored_attacks)
    out += _robust_claims(res, chosen, ck)
    return out


def _attack_pair(per_run: pd.DataFrame, chosen: pd.DataFrame, cond, ratio, ck: str, method: str,
                 ref: str, family: str, stored: Mapping[str, R.StoredAttacks]) -> list[dict]:
    """method keeps more accuracy than ref, per attack and mode, at one ε."""
    m = attack_runs(per_run, chosen, cond, ratio, method)
    e = attack_runs(per_run, chosen, cond, ratio, ref)
    if e.empty or m.empty:
        return []
    out = []
    for (attack, mode), ge in e.groupby(["attack", "mode"], sort=False):
        gm = m[(m["attack"] == attack) & (m["mode"] == mode)]
        eps = sorted(set(ge["eps"]) & set(gm["eps"]) - {0.0})
        if not eps:
            continue
        below = [x for x in eps if x <= ATTACK_EPS]
        x = max(below) if below else min(eps)
        a, b = gm[gm["eps"] == x], ge[ge["eps"] == x]
        label = attack_label(attack)
        what = f"effect: {name(method)} − {name(ref)} accuracy (%)"
        out.append(_row(family, f"{name(method)} keeps more accuracy than {name(ref)} under "
                        f"{mode} {label} at ε = {x:g}/255", cond, ratio, CK.kind_of(ck),
                        accuracy_difference(a, b, ck, stored),
                        f"{what}; sources {'+'.join(sorted(set(a['sources'])))}"
                        if mode != "white-box" else what,
                        paper_attack=attack in DEFAULT_ATTACKS))
    return out


def _robust_claims(res: R.Results, chosen: pd.DataFrame, ck: str) -> list[dict]:
    """mixup against ERM on robust accuracy (the per-image worst case over every attack run),
    at the same ε rule as the single-attack claims."""
    rb = res.robust
    if rb is None or rb.empty:
        return []
    rb = rb[(rb["checkpoint"] == ck) & (rb["eps"] > 0)]
    rb = rb.sort_values("n").groupby(["path", "eps"], sort=False).tail(1)
    out = []
    for (cond, ratio), _ in rb.groupby(["condition", "ratio"], sort=False):
        e = attack_runs(rb, chosen, cond, ratio, "erm")
        m = attack_runs(rb, chosen, cond, ratio, "mixup")
        eps = sorted(set(e["eps"]) & set(m["eps"]))
        if not eps:
            continue
        below = [x for x in eps if x <= ATTACK_EPS]
        x = max(below) if below else min(eps)
        # Both methods' runs over one attack set, else the pairing compares unlike worst cases.
        both, _ = R.same_attack_set(pd.concat([m[m["eps"] == x], e[e["eps"] == x]]))
        a, b = both[both["method"] == "mixup"], both[both["method"] == "erm"]
        if a.empty or b.empty:
            continue
        names = sorted(str(both["names"].iloc[0]).split("+"))
        out.append(_row("adversarial", "mixup keeps more test images robust than ERM (worst "
                        f"case over {', '.join(names)}) at ε = {x:g}/255", cond, ratio,
                        CK.kind_of(ck), accuracy_difference(a, b),
                        "effect: mixup − ERM robust accuracy (%)"))
    return out


def verdict_table(res: R.Results, attack_checkpoint: str = "last") -> pd.DataFrame:
    """Every claim the runs can test, with its verdict, effect (points, + = the paper's
    direction), 95 % interval, seeds and what the interval covers."""
    runs = res.runs
    chosen = R.chosen_runs(runs)
    preds = res.predictions
    rows: list[dict] = []
    for (cond, ratio), g in chosen.groupby(["condition", "ratio"], sort=False):
        groups = {m: gm for m, gm in g.groupby("method", sort=False)}
        first = g.iloc[0]
        ordering = _ordering_claims(groups, cond, ratio, first, preds)
        rows += ordering or _beyond_claims(groups, cond, ratio, preds)
        rows += _gap_claims(groups, cond, ratio, preds)
        rows += _memorisation_claims(groups, cond, ratio)
        rows += _ablation_claims(groups, cond, ratio, preds)
        rows += _other_error_claims(groups, cond, ratio, preds)
    rows += _real_noise_claims(chosen, preds)
    rows += _attack_claims(res, chosen, attack_checkpoint)
    rows += [_row(c.family, c.claim, c.condition, c.ratio, c.checkpoint, c.interval, c.detail,
                  margin=c.margin)
             for c in corruption_claims(res.corruptions, res.corruption_outcomes,
                                        set(chosen["path"]))]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    t = adjust(pd.DataFrame(rows))[COLUMNS]
    t["_f"] = t["family"].map(FAMILIES.index)
    t["_k"] = t["checkpoint"].map({k: i for i, k in enumerate(R.KINDS)}).fillna(len(R.KINDS))
    t = t.sort_values(["_f", "condition", "ratio", "_k"], kind="stable")
    return t.drop(columns=["_f", "_k"]).reset_index(drop=True)


def counts(t: pd.DataFrame) -> dict[str, int]:
    return {v: int((t["verdict"] == v).sum()) for v in VERDICTS}


def family_counts(t: pd.DataFrame) -> pd.DataFrame:
    """Per false-discovery family (in report order): claims, and how many are supported,
    contradicted, inconclusive and described, and how many shown equivalent within their margin. Tables from older reports without fdr_family
    count as one exploratory family."""
    fam = (t["fdr_family"] if "fdr_family" in t.columns
           else pd.Series(EXPLORATORY + "all", index=t.index))
    order = fdr_families()
    rows = []
    for f in sorted(set(fam), key=lambda x: order.index(x) if x in order else len(order)):
        g = t[fam == f]
        eq = int((g["equivalence"] == EQUIVALENT).sum()) if "equivalence" in g.columns else 0
        rows.append({"fdr_family": f, "claims": len(g), **counts(g), EQUIVALENT: eq})
    return pd.DataFrame(rows, columns=["fdr_family", "claims", *VERDICTS, EQUIVALENT])
