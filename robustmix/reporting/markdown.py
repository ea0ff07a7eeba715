"""The report: figures, tables and report.md from stored results only (no training, no attacks).

report.md opens with the verdict table (robustmix.reporting.verdicts): each claim of the paper
the runs can test, supported / contradicted / inconclusive from the Benjamini–Hochberg adjusted
p-value of its paired effect within its false-discovery family, or described where it has fewer
than 3 seeds; the verdicts counted per family, and the forest plot of every effect
(fig_forest). Every number after it comes with its interval and number of seeds; the only prose
is what follows from the tables (counts of verdicts, how intervals were computed, what the scale
cannot show).

The report is a list of sections (SECTIONS), each declaring the tables (.csv), figures (.png at
150 dpi and .pdf) and figure data (.csv) it writes, and building them and its Markdown from the
tidy tables. Figures and tables whose data are absent (no attack.csv, no ablation methods, a
single setting per method) are not written. The files a report owns are derived from the
sections' declarations (`owned`); remove_stale removes those an earlier report left in the same
folder and this one did not write, and never any other file.
"""

from __future__ import annotations

import datetime as _dt
import math
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..atomic import write_csv, write_text
from ..attacks.registry import (
    AUTOATTACK_QUERIES,
    AUTOATTACK_STEPS,
    PGD_STEP_FACTOR,
    attack_label,
    settings,
)
from ..runs import checkpoint_names as CK
from ..runs.provenance import git_commit
from ..training.methods import PAPER_METHODS, method_label, method_rank
from . import results as R
from . import sources as SRC
from . import statistics as S
from . import verdicts as V
from .attack_pairs import attack_differences
from .columns import attacks_text

# The files a report owns: derived from its sections (SECTIONS, owned) below.
KIND_HEADERS = CK.LABELS


# --------------------------------------------------------------------------- formatting


def _isnum(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt(x, digits: int = 1) -> str:
    return f"{x:.{digits}f}" if _isnum(x) else "–"


def fmt_ci(mean, lo, hi, digits: int = 1) -> str:
    """'58.0 [55.1, 60.9]'; the mean alone where there is no interval."""
    if not _isnum(mean):
        return "–"
    if not (_isnum(lo) and _isnum(hi)):
        return fmt(mean, digits)
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def fmt_signed_ci(x, lo, hi) -> str:
    if not _isnum(x):
        return "–"
    text = f"{x + 0.0:+.1f}"
    return text + (f" [{lo + 0.0:+.1f}, {hi + 0.0:+.1f}]" if _isnum(lo) and _isnum(hi) else "")


def fmt_ratio(r: float) -> str:
    return f"{100 * r:g}%"


def name(method: str) -> str:
    return method_label(method)


def md_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _conditions(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["condition"]))


def _by_condition(df: pd.DataFrame, render, level: str = "####") -> str:
    """render(sub-frame) for each condition, with a heading only when there are several."""
    conds = _conditions(df)
    if len(conds) == 1:
        return render(df)
    return "\n\n".join(f"{level} {c}\n\n{render(df[df['condition'] == c])}" for c in conds)


def _bases(t: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    vals = []
    for c in cols:
        if c in t.columns:
            vals += [v for v in t[c].dropna().astype(str) if v]
    return list(dict.fromkeys(vals))


def _interval_note(t: pd.DataFrame, cols: Sequence[str]) -> str:
    """What the intervals of a table cover, in one clause."""
    b = _bases(t, cols)
    if not b:
        return "no intervals (one value each)"
    return "intervals over " + "; ".join(b)


# --------------------------------------------------------------------------- the verdicts


def fmt_p(p) -> str:
    """A p-value for a table cell: '0.012', '<0.001'; '–' where there is none."""
    if not _isnum(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _verdict_cell(r) -> str:
    v = r["verdict"]
    word = f"**{v}**" if v in (V.SUPPORTED, V.CONTRADICTED) else v
    text = f"{word} {fmt_signed_ci(r['effect'], r['lo'], r['hi'])}"
    q = r.get("p_adjusted")
    text += f", adj. p {fmt_p(q)}" if _isnum(q) else ""
    if r.get("equivalence") == V.EQUIVALENT:
        text += f"; equivalent within ±{r['margin']:g}"
    return text


def md_verdicts(t: pd.DataFrame, family: str) -> str:
    """One family of claims: a row per claim, a column per checkpoint kind tested."""
    f = t[t["family"] == family]
    kinds = [k for k in R.KINDS if (f["checkpoint"] == k).any()]
    many = len(_conditions(f)) > 1
    rows = []
    for (cond, ratio, claim), g in f.groupby(["condition", "ratio", "claim"], sort=False):
        cells = {r["checkpoint"]: _verdict_cell(r) for _, r in g.iterrows()}
        seeds = sorted(set(g["n_seeds"]))
        rows.append([fmt_ratio(ratio) + (f" ({cond})" if many else ""), claim,
                     *[cells.get(k, "–") for k in kinds],
                     f"{seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else seeds[0],
                     "; ".join(dict.fromkeys(g["interval_over"]))])
    return md_table(["noise", "claim", *[KIND_HEADERS[k] for k in kinds], "seeds",
                     "interval over"], rows)


FAMILY_NOTES = {
    "Table 2 ordering": "Each pair of the paper's four methods, in the order of the paper's "
                        "Table 2 at that noise level: its last-epoch column for the last "
                        "checkpoint, its \"best\" column (test-selected) for the selected and "
                        "test-selected checkpoints. Effect: error of the method the paper ranks "
                        "lower minus error of the one it ranks higher.",
    "beyond Table 2": "Where the paper's Table 2 has no number (another noise source, level "
                      "or dataset): each pair of its four methods that Table 2 orders the same "
                      "way at 20, 50 and 80 % noise, in that order (its last-epoch column for "
                      "the last checkpoint, its \"best\" column for the others; mixup and "
                      "mixup + dropout swap places in the \"best\" column, so that pair is "
                      "tested at the last checkpoint only). Effect: error of the method Table 2 "
                      "ranks lower minus error of the one it ranks higher.",
    "real vs synthetic noise": "Each method on CIFAR-10N's human labels against the same method "
                               "on class-conditional noise drawn from the transition matrix of "
                               "those labels, on the same seeds and test images: is real noise "
                               "harder than its class-level statistics (Wei et al. 2022)? "
                               "Effect: error on real noise minus error on synthetic noise.",
    "best-to-last gap": "Rise in test error from the test-selected (or selected) epoch to the "
                        "last: ERM's minus mixup's.",
    "memorisation": "Share of the corrupted training examples predicted as their noisy label "
                    "at the last epoch, against its null (the share the network's own mistakes "
                    "give; chance, 10 %, for runs without one) and between the methods. That "
                    "mixup does not memorise is a bound: its share at most "
                    f"{V.MEMORISATION_MARGIN:g} points above its null.",
    "ablation": "mixup against each ablation run at the same noise; the paper's ablations "
                "were on clean labels.",
    "adversarial": "Accuracy under attack, mixup minus ERM, at one ε per attack and mode; "
                   "every ε is in the attack table below.",
    "corruption": "Accuracy under common corruptions, mixup minus ERM, averaged over every "
                  "corruption x severity set both were scored on (AugMix, Hendrycks et al. 2020, "
                  "reports mixup's CIFAR-10-C error below the standard model's on clean labels).",
    "calibration": "ECE (15 equal-width bins, in points) and NLL, ERM minus mixup, on the clean "
                   "and corrupted test images (Thulasidasan et al. 2019 report mixup better "
                   "calibrated on clean labels). Equivalence margins: 1 ECE point, 0.05 nats.",
    "other methods": "Methods outside the paper (label-noise baselines, your own) against ERM "
                     "and against mixup, on the same seeds and test images: test error at each "
                     "checkpoint, and accuracy under attack at one ε per attack and mode. The "
                     "paper states no direction here: + means the named method is better, and "
                     "supported that it is better at this scale.",
}


def method_text(t: pd.DataFrame) -> str:
    """How the verdicts were reached, in words, from what the table holds."""
    methods = " ".join(t["interval_method"].dropna().astype(str))
    seeds = sorted({int(n) for n in t["n_seeds"] if n >= S.MIN_SEEDS})
    parts = [
        "Each effect is the paired difference of the methods on the same seeds (matched by seed "
        "and noise seed) and the same test images, in points (+ = the paper's direction), with "
        "its 95 % interval from the combined variance: the variance over seeds of the per-seed "
        "paired differences divided by the number of seeds, plus the test-image sampling "
        "variance of the seed-mean difference ("
        + ("closed form over the per-image outcomes of every run, never below that of one "
           "discordant image in N + 2, so that models agreeing on every image get an interval "
           "of some width (Agresti & Min's matched-pairs adjustment)"
           if "paired image variance" in methods else "")
        + ("; " if "paired image variance" in methods and "binomial" in methods else "")
        + ("for runs or quantities without per-image outcomes, the variance their Wilson / "
           "MOVER binomial interval stands for, as if the runs were independent" if "binomial"
           in methods else "")
        + "), on a Student-t quantile with n_seeds − 1 degrees of freedom"
        + (f" ({', '.join(str(n) for n in seeds)} seeds here)" if seeds else "") + ". "
        "The test images are shared by every seed, so their sampling error does not average "
        "out over seeds and the two parts add. Intervals are clipped to what the quantity can "
        "be (±100 points for a difference of two rates). A replicate is one (training seed, "
        "noise seed) pair: where the runs of a cell were trained on several noise draws "
        "(corrupted-label draws), each pair counts as one, and the interval then covers the "
        "noise draws too; where they share one draw, it is held fixed. The 'interval over' "
        "column names the training seeds, noise draws and test images each interval covers.",
        "p: two-sided, from the same statistic (so the interval excludes 0 exactly when p < "
        "0.05), adjusted by Benjamini–Hochberg within its false-discovery family "
        "(scipy.stats.false_discovery_control). Supported: adjusted p < 0.05 in the paper's "
        "direction; contradicted: adjusted p < 0.05 against it; inconclusive: otherwise (its "
        "interval, unadjusted, may still exclude 0), so the two cannot be told apart at this "
        "scale with this many claims; that is no evidence that they do not differ.",
        "Equivalence: two one-sided t tests (TOST) of the same effect against a stated margin, "
        f"±{V.EFFECT_MARGIN:g} point for a difference in test error or accuracy under attack "
        f"and ±{V.MEMORISATION_MARGIN:g} points for a memorised share (the reasons for these "
        "sizes are in robustmix.reporting.verdicts), on the same standard error and degrees of "
        "freedom, adjusted by Benjamini–Hochberg in the same family; \"equivalent within ±m\" "
        "in a cell means its 90 % interval lies within ±m, so the effect is negligible at that "
        "margin. Only that, or a stated bound, says an effect is absent. A claim of absence "
        "(mixup does not memorise) is tested as an upper bound: supported where the 95 % "
        "interval puts the excess over the null below the margin, contradicted where it puts it "
        "above; column upper_bound of the table gives the one-sided 95 % bound.",
    ]
    if (t["verdict"] == V.DESCRIBED).any():
        parts.append(f"Described: fewer than {S.MIN_SEEDS} seeds, a single-run description, "
                     "not tested and counted neither way; its interval covers the test images "
                     "only, not the variation between training runs, and it has no p-value.")
    return " ".join(parts)


FDR_NOTES = {
    V.PRIMARY_TABLE2: "the paper's Table 2 orderings at the selected (noisy-validation) "
                      "checkpoint",
    V.PRIMARY_ATTACKS: "mixup against ERM under the paper's attacks (FGSM, I-FGSM; white- and "
                       "black-box)",
    V.ORACLE: "every claim at the test-selected checkpoint (its epoch picked on the test images: "
              "optimistic), counted apart",
}


def family_section(t: pd.DataFrame) -> list[str]:
    """The verdicts counted per false-discovery family."""
    fam = V.family_counts(t)
    rows = [[r["fdr_family"], FDR_NOTES.get(r["fdr_family"], "the other claims of this kind"),
             r["claims"], r[V.SUPPORTED], r[V.CONTRADICTED], r[V.INCONCLUSIVE], r[V.DESCRIBED],
             r[V.EQUIVALENT]]
            for _, r in fam.iterrows()]
    return ["Verdicts per false-discovery family (the false discovery rate is controlled at "
            f"{V.ALPHA:g} within each; equivalent: shown within the margin by TOST, whatever "
            "the verdict):", "",
            md_table(["family", "what it holds", "claims", "supported", "contradicted",
                      "inconclusive", "described", "equivalent"], rows), ""]


def verdict_section(t: pd.DataFrame) -> list[str]:
    md = ["## Verdicts", ""]
    if t.empty:
        return md + ["No claim of the paper can be tested on these runs (they lack the paper's "
                     "methods at a common noise level and seed).", ""]
    c = V.counts(t)
    md += [f"{len(t)} claims: {c[V.SUPPORTED]} supported, {c[V.CONTRADICTED]} contradicted, "
           f"{c[V.INCONCLUSIVE]} inconclusive, {c[V.DESCRIBED]} described (fewer than "
           f"{S.MIN_SEEDS} seeds: not tested). Each cell: verdict, effect in points (+ = the "
           "paper's direction), its 95 % interval and its adjusted p. "
           + method_text(t) + " Table (raw p, adjusted p and family of every claim): "
           "[table_verdicts.csv](table_verdicts.csv)", ""]
    md += family_section(t)
    if t["effect"].notna().any():
        md += [_fig_md("fig_forest", "paired effect of every claim, by false-discovery family",
                       "table_verdicts"), "",
               "Every claim's paired effect and 95 % interval, grouped by false-discovery family, "
               "coloured by its verdict (after the adjustment); open markers on dashed lines: "
               f"described (fewer than {S.MIN_SEEDS} seeds, interval over test images only).",
               ""]
    for family in V.FAMILIES:
        if (t["family"] == family).any():
            md += [f"### {family[0].upper() + family[1:]}", "", FAMILY_NOTES[family], "",
                   md_verdicts(t, family), ""]
    return md


# --------------------------------------------------------------------------- tables as Markdown


def _setting_cells(r) -> list[str]:
    return [f"{r['alpha']:g}", f"{r['dropout']:g}"]


def _error_cells(r, kinds) -> list[str]:
    return [fmt_ci(r[f"{k}_error_mean"], r[f"{k}_error_lo"], r[f"{k}_error_hi"]) for k in kinds]


def _kinds(t: pd.DataFrame) -> list[str]:
    return [k for k in R.KINDS if t[f"{k}_error_mean"].notna().any()]


def md_noise(t: pd.DataFrame) -> str:
    kinds = _kinds(t)
    rows = [[fmt_ratio(r["ratio"]), name(r["method"]), *_setting_cells(r), r["n_seeds"],
             *_error_cells(r, kinds), fmt(r["paper_last_error"]),
             fmt(r["paper_test_selected_error"])] for _, r in t.iterrows()]
    return md_table(["noise", "method", "α", "p", "seeds", *[KIND_HEADERS[k] for k in kinds],
                     "paper last", "paper \"best\" (test-selected)"], rows)


def md_sweep(t: pd.DataFrame) -> str:
    kinds = _kinds(t)

    def b(v, chosen):
        return f"**{v}**" if chosen else v

    rows = [[fmt_ratio(r["ratio"]), name(r["method"]), b(f"{r['alpha']:g}", r["chosen"]),
             b(f"{r['dropout']:g}", r["chosen"]), r["n_seeds"],
             b(fmt(r["selected_val_acc_mean"]), r["chosen"]), *_error_cells(r, kinds),
             "chosen" if r["chosen"] else ""] for _, r in t.iterrows()]
    return md_table(["noise", "method", "α", "p", "seeds", "noisy validation acc. (%)",
                     *[KIND_HEADERS[k] for k in kinds], "setting"], rows)


def md_ablation(t: pd.DataFrame) -> str:
    kinds = _kinds(t)
    rows = [[fmt_ratio(r["ratio"]), name(r["method"]) + (" (ablation)" if r["ablation"] else ""),
             *_setting_cells(r), r["n_seeds"], *_error_cells(r, kinds)] for _, r in t.iterrows()]
    return md_table(["noise", "method", "α", "p", "seeds", *[KIND_HEADERS[k] for k in kinds]],
                    rows)


def md_memorisation(t: pd.DataFrame) -> str:
    def arrow(r, c):
        return f"{fmt(r[c + '_test_selected'])} → {fmt(r[c + '_last'])}"

    rows = [[fmt_ratio(r["ratio"]), name(r["method"]), r["n_seeds"],
             f"{round(r['test_selected_epoch'], 1):g}", arrow(r, "test_acc"), arrow(r, "train_acc_noisy"),
             arrow(r, "train_acc_clean"), arrow(r, "memorised"),
             fmt_ci(r["memorised_last"], r["memorised_last_lo"], r["memorised_last_hi"]),
             _null_cell(r)]
            for _, r in t.iterrows()]
    return md_table(["noise", "method", "seeds", "test-selected epoch", "test acc (%)",
                     "train acc, noisy labels (%)", "train acc, true labels (%)",
                     "memorised (%)", "memorised at the last epoch (%)",
                     "its null at the last epoch (%)"], rows)


def _null_cell(r) -> str:
    """The memorisation null of a row and how it was obtained: '2.3 (measured)'."""
    v = r.get("memorised_null_last")
    if not _isnum(v):
        return "–"
    basis = r.get("memorised_null_basis")
    return f"{v:.1f}" + (f" ({basis})" if isinstance(basis, str) and basis else "")


def md_attack(t: pd.DataFrame) -> str:
    eps = sorted(set(t["eps"]))
    rows = []
    keys = ["ratio", "method", "alpha", "dropout", "attack", "mode"]
    for key, g in t.groupby(keys, sort=False):
        r = dict(zip(keys, key, strict=True))
        cells = {e: fmt_ci(a, lo, hi) for e, a, lo, hi in
                 zip(g["eps"], g["accuracy_mean"], g["accuracy_lo"], g["accuracy_hi"],
                     strict=True)}
        rows.append([fmt_ratio(r["ratio"]), name(r["method"]), f"{r['alpha']:g}",
                     f"{r['dropout']:g}", attack_label(r["attack"]),
                     r["mode"], g["sources"].iloc[0], int(g["n_runs"].max()),
                     *[cells.get(e, "–") for e in eps]])
    return md_table(["noise", "method", "α", "p", "attack", "mode", "source", "runs",
                     *[f"ε={e:g}" for e in eps]], rows)


def _combined(g: pd.DataFrame) -> str:
    """The attacks a robust-accuracy row combines (a study's eps_of may run one at some ε only)."""
    return attacks_text({e: a.split("+") for e, a in zip(g["eps"], g["attacks"], strict=True)})


def md_robust(t: pd.DataFrame) -> str:
    eps = sorted(set(t["eps"]))
    rows = []
    keys = ["ratio", "method", "alpha", "dropout"]
    for key, g in t.groupby(keys, sort=False):
        r = dict(zip(keys, key, strict=True))
        left = g["runs_left_out"] if "runs_left_out" in g else pd.Series(0, index=g.index)
        runs = int((g["n_runs"] + left).max())
        # A cell averaging fewer runs (the others lack one of its attacks) says how many.
        cells = {e: fmt_ci(a, lo, hi) + (f" ({k} of {runs} runs)" if k < runs else "")
                 for e, a, lo, hi, k in zip(g["eps"], g["robust_mean"], g["robust_lo"],
                                            g["robust_hi"], g["n_runs"], strict=True)}
        rows.append([fmt_ratio(r["ratio"]), name(r["method"]), f"{r['alpha']:g}",
                     f"{r['dropout']:g}", runs, _combined(g),
                     *[cells.get(e, "–") for e in eps]])
    return md_table(["noise", "method", "α", "p", "runs", "worst case over",
                     *[f"ε={e:g}" for e in eps]], rows)


def md_flags(f: pd.DataFrame) -> str:
    counts = (f.groupby(["ratio", "method", "flag"], sort=False)
              .agg(runs=("seed", "nunique"), times=("flag", "size")).reset_index())
    rows = [[fmt_ratio(r.ratio), name(r.method), f"`{r.flag}`", r.runs, r.times]
            for r in counts.itertuples()]
    return md_table(["noise", "method", "flag", "runs", "times raised"], rows)


# --------------------------------------------------------------------------- caveats


def caveats(runs: pd.DataFrame, noise: pd.DataFrame) -> list[str]:
    """What the scale and the design cannot show: only statements that follow from the runs."""
    out = []
    nmax, nmin = int(noise["n_seeds"].max()), int(noise["n_seeds"].min())
    seeds = f"{nmin}" + (f" to {nmax}" if nmax != nmin else "")
    out.append(f"Seeds per method and noise level: {seeds}."
               + (f" With fewer than {S.MIN_SEEDS} seeds an interval covers test-image sampling "
                  "only, not the variation between training runs." if nmin < S.MIN_SEEDS
                  else ""))
    full = runs["full_test_images"].dropna()
    if len(full) == len(runs):
        out.append(f"Test set: all {int(full.min())} test images for the reported checkpoints "
                   "(the per-epoch curves may use fewer).")
    else:
        n = int(runs["test_images"].dropna().min()) if runs["test_images"].notna().any() else 0
        out.append(f"Some runs predate the full-test evaluation: their numbers come from {n} "
                   "test images.")
    if runs["selected_val_acc"].isna().any():
        out.append("Runs without a validation set have no selected checkpoint.")
    chosen_by = set(noise.get("chosen_by", pd.Series(dtype=str)))
    if any("test" in c for c in chosen_by):
        out.append("Where several (α, p) settings were trained without a validation set, the "
                   "setting shown was chosen on test-selected error, as in the paper's Table 2: "
                   "on the test set, favouring methods with more settings tried.")
    out.append("Test-selected numbers pick the epoch on the test images themselves (the paper's "
               "\"best\"), so they are biased low; the selected checkpoint is the honest "
               "counterpart.")
    if set(runs["profile"]) != {"paper"}:
        out.append("Absolute errors are not comparable with the paper's (smaller model, data "
                   "and schedule); only the directions of differences are tested.")
    return out


# --------------------------------------------------------------------------- the report


def attack_settings(attacks: pd.DataFrame, checkpoint: str) -> str:
    """Steps, step sizes, images and black-box sources of the attack rows reported."""
    a = attacks[attacks["checkpoint"] == checkpoint]
    parts = []
    rules = {"ifgsm": "ε/steps", "pgd": f"{PGD_STEP_FACTOR:g}·ε/steps"}
    for atk, g in a.groupby("attack", sort=True):
        steps = sorted({int(x) for x in g["steps"].dropna()})
        label = attack_label(atk)
        if atk == "autoattack":
            label += (f" (APGD-CE, APGD-T and FAB-T {AUTOATTACK_STEPS} steps each, Square "
                      f"{AUTOATTACK_QUERIES} queries)")
        elif steps and atk != "square":
            g = g[(g["eps"] > 0) & g["step_size"].notna()]
            rule = [settings(atk, e, int(k))["step_size"] for e, k in zip(g["eps"], g["steps"],
                                                                           strict=True)]
            by_rule = len(g) and (g["step_size"] - rule).abs().max() < 1e-6
            size = (f" of {rules[atk]}" if by_rule and atk in rules else
                    f" of {', '.join(f'{x:g}' for x in sorted(set(g['step_size'])))}/255")
            label += f" ({'/'.join(map(str, steps))} step{'s' if steps != [1] else ''}"
            label += (size if steps != [1] and len(g) else "") + ")"
        parts.append(label)
    n = sorted({int(x) for x in a["n"].dropna()})
    srcs = sorted(set(a.loc[a["mode"] == "black-box", "source"]))
    text = ", ".join(parts)
    if n:
        text += f"; {'/'.join(map(str, n))} test images per attacked model"
    if srcs:
        text += f"; black-box examples crafted on {', '.join(f'`{s}`' for s in srcs)}"
    return text


def _git_toplevel() -> Path | None:
    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse",
                              "--show-toplevel"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def _dates(started: list[str]) -> str:
    days = sorted({d[:10] for d in started if d})
    if not days:
        return "on unrecorded dates"
    return f"on {days[0]}" if len(days) == 1 else f"from {days[0]} to {days[-1]}"


def _fig_md(stem: str, caption: str, data: str | None = None) -> str:
    data = data or stem
    return (f"![{caption}]({stem}.png)\n\n"
            f"[{stem}.png]({stem}.png) · [{stem}.pdf]({stem}.pdf) · data: [{data}.csv]({data}.csv)")


# --------------------------------------------------------------------------- noise sources


def _classes(runs: pd.DataFrame) -> tuple[str, ...]:
    from ..data.classes import CIFAR10_CLASSES, FASHION_CLASSES

    return FASHION_CLASSES if set(runs["dataset"]) == {"fashion-mnist"} else CIFAR10_CLASSES


def _short_sha(sha) -> str:
    return f"sha256 `{sha[:12]}…`" if isinstance(sha, str) and sha else "sha256 not recorded"


def describe_source(r) -> str:
    """One noise source in words, with its reference; CIFAR-10N names its licence and set."""
    label, src = r["source_label"], r["noise_source"]
    file = Path(str(r["noise_file"])).name if isinstance(r["noise_file"], str) else "?"
    if src == "sym":
        return (f"{label}: each label replaced with probability r by a class drawn uniformly "
                "(Zhang et al. 2017)")
    if src == "asym":
        return f"{label}: CIFAR-10 class-pair flips with probability r (Patrini et al. 2017)"
    if src == "idn":
        return (f"{label}: instance-dependent noise at rate r, the generator of Xia et al. "
                "(NeurIPS 2020)")
    if src == "cifar10n":
        return (f"{label}: CIFAR-10N (CC BY-NC 4.0), label set {r['noise_labels']}, human labels "
                f"of Wei et al. (ICLR 2022) from `{file}` ({_short_sha(r['noise_sha256'])})")
    if src == "matrix":
        return (f"{label}: class-conditional noise drawn from the transition matrix in "
                f"`{file}` ({_short_sha(r['noise_sha256'])})")
    return str(label)


def source_descriptions(runs: pd.DataFrame) -> list[str]:
    first = runs.drop_duplicates(subset=["source_label"])
    return [describe_source(r) for _, r in first.iterrows()]


def md_sources(t: pd.DataFrame) -> str:
    kinds = _kinds(t)
    rows = [[r["source_label"], fmt(r["measured_rate"]), name(r["method"]), *_setting_cells(r),
             r["n_seeds"], *_error_cells(r, kinds)] for _, r in t.iterrows()]
    return md_table(["noise source", "wrong labels (%)", "method", "α", "p", "seeds",
                     *[KIND_HEADERS[k] for k in kinds]], rows)


def md_contrasts(t: pd.DataFrame) -> str:
    kinds = [k for k in R.KINDS if (t["checkpoint"] == k).any()]
    rows = []
    for (comparison, method), g in t.groupby(["comparison", "method"], sort=False):
        cells = {r["checkpoint"]: fmt_signed_ci(r["effect"], r["lo"], r["hi"])
                 for _, r in g.iterrows()}
        rows.append([comparison if method == "erm−mixup" else f"{comparison}, {name(method)}",
                     *[cells.get(k, "–") for k in kinds], int(g["n_seeds"].max()),
                     "; ".join(dict.fromkeys(g["interval_over"]))])
    return md_table(["difference in test error (points)", *[KIND_HEADERS[k] for k in kinds],
                     "seeds", "interval over"], rows)


def noise_source_section(runs: pd.DataFrame, transitions: pd.DataFrame,
                         sources: pd.DataFrame, contrasts: pd.DataFrame | None = None
                         ) -> list[str]:
    """Each noise source: what it is, how many training labels it got wrong overall and per true
    class, its transition matrix, and (with several sources) test error across sources."""
    md = ["## Noise sources", ""]
    rows = []
    for label, g in runs.groupby("source_label", sort=False):
        tr = transitions[transitions["source_label"] == label] if not transitions.empty else None
        per_class = "–"
        if tr is not None and not tr.empty:
            rates = tr.drop_duplicates(subset=["clean"])["class_rate"]
            per_class = f"{rates.min():.1f}–{rates.max():.1f}"
        rows.append([label, len(g), int(g["train_images"].dropna().max())
                     if g["train_images"].notna().any() else "–",
                     fmt(g["noise_rate"].mean(), 2), per_class, fmt(g["source_rate"].iloc[0], 2)])
    md += ["- " + d for d in source_descriptions(runs)]
    md += ["", "Wrong labels among the training images the runs trained on (mean over runs; the "
           "same for every method and seed of a noise seed), the range over true classes, and "
           "the source's rate over the whole training set (CIFAR-10N: measured; synthetic "
           "sources: expected). For sources without a ratio (CIFAR-10N, matrix), the tables "
           "below place them at that whole-set rate in their noise column.", "",
           md_table(["noise source", "runs", "training images", "wrong (%)",
                     "per true class (%)", "whole training set (%)"], rows), ""]
    if not transitions.empty and (transitions["rate"] > 0).any():
        md += [_fig_md("fig_transition", "transition matrices of the noise sources"), "",
               "Transition matrix of each source's training labels: row = true class, column = "
               "the label trained on, cell = % of the true class (row-normalised); counts in "
               "the data file. Clean labels (0 %, the identity) have no panel.", ""]
    if not sources.empty:
        md += ["### Test error across noise sources", "",
               _fig_md("fig_sources", "test error per method across noise sources"), "",
               "Test error (%) per method and noise source, mean [95 % interval]; "
               f"{_interval_note(sources, [f'{k}_error_over' for k in R.KINDS])}. Sources in "
               "order of their measured rate of wrong training labels. Table: "
               "[table_sources.csv](table_sources.csv)", "", md_sources(sources), ""]
    if contrasts is not None and not contrasts.empty:
        md += ["Paired differences in test error, in points, mean [95 % interval], each method "
               "at its chosen setting, runs paired by seed and evaluated on the same test "
               "images: `ERM − mixup on` a source (+ = mixup has the lower error there), and "
               "`A − B` for a method (+ = the method does worse on source A than on B). "
               "ERM − mixup and real − synthetic (CIFAR-10N against matrix noise from its "
               "transition matrix) are also tested in the verdict table. Table: "
               "[table_source_contrasts.csv](table_source_contrasts.csv)", "",
               md_contrasts(contrasts), ""]
    return md


# --------------------------------------------------------------------------- the report's sections
#
# The report is a list of sections (SECTIONS), in the order report.md shows them. Each declares
# the files it writes (tables as .csv, figures as .png and .pdf, the data figures are drawn from
# as .csv) and builds them, and its Markdown, from the tidy tables of one `Report`. The files a
# report owns, which a rewrite removes where it no longer writes them (remove_stale), are derived
# from these declarations (`owned`), and a section can write no file it has not declared
# (Report.csv / Report.figure refuse), so the two cannot drift apart.

FIGURE_EXTS = ("png", "pdf")  # plots.save: PNG (plots.DPI) and the vector copy (plots.VECTOR)


@dataclass(frozen=True)
class Section:
    """One part of report.md and the files it writes (stems, without extension).

    tables   .csv tables
    figures  figures, each as .png and .pdf
    data     .csv files a figure is drawn from (named after the figure)
    build    Report -> the section's Markdown lines; writes its files through the Report"""

    name: str
    build: Callable[[Report], list[str]]
    tables: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    data: tuple[str, ...] = ()

    def files(self) -> tuple[str, ...]:
        return (*(f"{t}.csv" for t in self.tables),
                *(f"{f}.{e}" for f in self.figures for e in FIGURE_EXTS),
                *(f"{d}.csv" for d in self.data))


@dataclass
class Report:
    """What the sections build from (the stored results and their tidy tables) and the files
    written so far."""

    res: R.Results
    out: Path
    title: str
    notes: str | None
    checkpoint: str
    command: str
    tidy: dict[str, pd.DataFrame] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    section: Section | None = None

    def _declared(self, name: str) -> None:
        if self.section is None or name not in self.section.files():
            where = self.section.name if self.section else "no section"
            raise RuntimeError(f"{where} writes {name} without declaring it (Section.files)")

    def csv(self, stem: str, df: pd.DataFrame) -> str:
        """Write stem.csv, a file the current section declared; its name."""
        self._declared(f"{stem}.csv")
        path = self.out / f"{stem}.csv"
        write_csv(path, df)
        self.written.append(path)
        return path.name

    def figure(self, stem: str, draw: Callable[..., list[Path]], *args, **kw) -> None:
        """draw(*args, stem path, **kw): a figure the current section declared."""
        for e in FIGURE_EXTS:
            self._declared(f"{stem}.{e}")
        self.written += draw(*args, self.out / stem, **kw)


def tidy_tables(res: R.Results, checkpoint: str) -> dict[str, pd.DataFrame]:
    """Every tidy table the sections draw on, computed once."""
    runs, preds = res.runs, res.predictions
    settings_ = R.setting_table(runs, preds)
    noise = R.noise_table(runs, preds, settings_)
    attack = R.attack_table(res.attacks, checkpoint)
    several_sources = runs["noise"].nunique() > 1
    return {
        "noise": noise,
        "sweep": R.sweep_table(runs, preds, settings_),
        "ablation": R.ablation_table(runs, preds, settings_),
        "memorisation": R.memorisation_table(runs, res.metrics),
        "curves": R.curves_table(runs, res.metrics),
        "attack": attack,
        "attack_fig": R.attack_plot_table(attack, noise),
        "attack_paired": attack_differences(res, checkpoint),
        "robust": R.attack_plot_table(R.robust_summary(res.robust, checkpoint), noise),
        "flags": R.flag_table(res.flags, checkpoint),
        "verdicts": V.verdict_table(res, checkpoint),
        "transitions": R.transition_table(runs),
        "sources": R.sources_table(noise, runs) if several_sources else noise.iloc[0:0],
        "contrasts": SRC.contrast_table(runs, preds) if several_sources else pd.DataFrame(),
    }


def _verdicts(rep: Report) -> list[str]:
    from . import plots

    verdicts = rep.tidy["verdicts"]
    rep.csv("table_verdicts", verdicts)
    if not verdicts.empty and verdicts["effect"].notna().any():
        rep.figure("fig_forest", plots.plot_forest, verdicts, families=V.fdr_families())
    return [f"# {rep.title}", "", *verdict_section(verdicts)]


def _setup(rep: Report) -> list[str]:
    runs, res, checkpoint = rep.res.runs, rep.res, rep.checkpoint
    rep.csv("table_runs", runs.drop(columns=["path", "setup"]))
    prov = R.provenance(runs)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    top = _git_toplevel()
    where = ("the repository root" if top is not None and Path.cwd().resolve() == top.resolve()
             else f"`{Path.cwd()}`")
    hours = runs["total_minutes"].sum() / 60
    attack = rep.tidy["attack"]
    md = ["## Setup", ""]
    md += [f"- Data: {'; '.join(prov['data'])}",
           f"- Runs: {len(runs)} finished ({', '.join(fmt_ratio(r) for r in sorted(set(runs['ratio'])))} "
           f"noise; methods {', '.join(sorted(set(runs['method']), key=method_rank))}; "
           f"seeds {', '.join(str(s) for s in sorted(set(runs['seed'])))}); per-run numbers in "
           f"[table_runs.csv](table_runs.csv)"]
    for s in prov["setup"]:
        k = int((runs["setup"] == s).sum())
        md.append(f"- Profile: {s} ({k} run{'s' if k != 1 else ''})")
    md.append("- Label noise: " + "; ".join(source_descriptions(runs)))
    md += ["- Checkpoints: last; selected (noisy validation: the epoch of best accuracy on a "
           "held-out set labelled with the noisy labels); test-selected (oracle, optimistic: "
           "the epoch of best test accuracy, the paper's \"best\")",
           "- Intervals: 95 %. Paired differences (the verdicts, the source contrasts): the "
           "combined variance of the verdicts section (seed variance / seeds + test-image "
           f"variance of the seed mean, t on seeds − 1 df; fewer than {S.MIN_SEEDS} seeds: test "
           "images only). Means in the tables, with per-image predictions: hierarchical "
           f"bootstrap over seeds and test images ({S.N_BOOT} resamples, fixed seed), never "
           "narrower than the Student-t interval over seeds; without them (older runs; "
           "memorisation; attacks): the Student-t interval over seeds widened to the binomial "
           f"interval over the images. With fewer than {S.MIN_SEEDS} seeds no interval over "
           "seeds is given (a t-interval over 2 has 1 degree of freedom): the interval covers "
           "the test images only (the bootstrap over images of the seed mean, or the binomial "
           "interval), and says so.",
           f"- Hardware: {'; '.join(prov['device_name'])} "
           f"(precision {', '.join(prov['precision'])}); {hours:.1f} h of training and evaluation "
           "in total",
           f"- Runs trained: {_dates(prov['started'])} with robustmix commit(s) "
           f"{', '.join(f'`{c}`' for c in prov['git_commit'])}",
           f"- Report generated: {now} by robustmix commit `{git_commit()}`",
           f"- Attack results: {checkpoint} checkpoint"
           + (f"; {attack_settings(res.attacks, checkpoint)}" if not attack.empty
              else " — none found (no attack.csv with such rows)"),
           f"- Regenerate (from {where}):", "", "```", rep.command, "```", ""]
    if res.skipped:
        md += ["Left out or noted:", "", *[f"- {s}" for s in res.skipped], ""]
    return md


def _noise_sources(rep: Report) -> list[str]:
    from . import plots

    runs = rep.res.runs
    transitions, sources = rep.tidy["transitions"], rep.tidy["sources"]
    contrasts = rep.tidy["contrasts"]
    if not sources.empty:
        rep.csv("table_sources", sources)
    if not contrasts.empty:
        rep.csv("table_source_contrasts", contrasts)
    if not transitions.empty:
        rep.csv("fig_transition", transitions)
        if (transitions["rate"] > 0).any():  # clean labels alone: an identity, not drawn
            rep.figure("fig_transition", plots.plot_transitions, transitions,
                       classes=_classes(runs))
    if not sources.empty:
        rep.csv("fig_sources", sources[["condition", "ratio", "source_label", "measured_rate",
                                        "method", "alpha", "dropout", "n_seeds",
                                        *[f"{k}_error_{s}" for k in R.KINDS
                                          for s in ("mean", "lo", "hi")]]])
        rep.figure("fig_sources", plots.plot_sources, sources, seeds=runs)
    return noise_source_section(runs, transitions, sources, contrasts)


def _seed_accuracies(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run of each method's chosen setting, the test accuracy (%) of every checkpoint kind:
    the per-seed points fig_noise draws beside each mean."""
    chosen = R.chosen_runs(runs)
    out = chosen[["condition", "ratio", "method", "seed", "noise_seed"]].copy()
    for k in R.KINDS:
        out[f"{k}_acc"] = (100 - chosen[f"{k}_error"]).round(R.ROUND)
    return out


def _attack_seeds(attacks: pd.DataFrame, shown: pd.DataFrame, checkpoint: str) -> pd.DataFrame:
    """Per attacked run of the settings fig_attack shows, its accuracy and relative accuracy
    at each attack, mode and ε: the per-seed dots beside a mean of few seeds."""
    keys = ["condition", "ratio", "method", "alpha", "dropout"]
    return R.attack_per_run(attacks, checkpoint).merge(shown[keys].drop_duplicates(), on=keys)


def _test_error(rep: Report) -> list[str]:
    from . import plots

    noise, sweep, ablation = rep.tidy["noise"], rep.tidy["sweep"], rep.tidy["ablation"]
    kinds_cols = [f"{k}_error_over" for k in R.KINDS]
    rep.csv("table_noise", noise)
    if not ablation.empty:
        rep.csv("table_ablation", ablation)
    if not sweep.empty:
        rep.csv("table_sweep", sweep)
    fig_noise_cols = ["condition", "ratio", "method", "alpha", "dropout", "n_seeds",
                      *[f"{k}_acc_{s}" for k in R.KINDS for s in ("mean", "lo", "hi")],
                      "paper_test_selected_acc", "paper_last_acc"]
    rep.csv("fig_noise", noise[fig_noise_cols])
    rep.figure("fig_noise", plots.plot_noise, noise, seeds=_seed_accuracies(rep.res.runs))
    if not ablation.empty:
        rep.csv("fig_ablation", ablation[["condition", "ratio", "method", "alpha", "dropout",
                                          "ablation", "n_seeds",
                                          *[f"{k}_error_{s}" for k in R.KINDS
                                            for s in ("mean", "lo", "hi")]]])
        rep.figure("fig_ablation", plots.plot_ablation, ablation, seeds=rep.res.runs)
    chosen_by = "; ".join(dict.fromkeys(noise["chosen_by"]))
    md = ["## Test error under label noise", "",
          _fig_md("fig_noise", "test accuracy against label noise ratio"), "",
          "Test accuracy (%) of each checkpoint, mean over seeds with its 95 % interval, each "
          "seed a dot beside it (a marker per noise seed where the runs have several); a mean "
          f"of fewer than {S.MIN_SEEDS} seeds is faded with a dashed bar over the test images "
          "only (described, not tested). The paper's Table 2, where some runs are comparable "
          "with it (symmetric CIFAR-10 noise at 20, 50 or 80 %), is in a panel of its own with "
          "its own axis.", "",
          f"Test error (%), mean [95 % interval]; {_interval_note(noise, kinds_cols)}. Each "
          f"method at its chosen (α, p), by {chosen_by}. Paper: Table 2 (PreAct ResNet-18, "
          "200 epochs, all data; symmetric CIFAR-10 noise, same α and p only). Table: "
          "[table_noise.csv](table_noise.csv)", "",
          _by_condition(noise, md_noise), ""]
    if not sweep.empty:
        md += ["### Hyper-parameter choice", "",
               "Every (α, p) setting trained for a method at a noise level; the chosen one (bold) "
               f"is shown elsewhere, by {'; '.join(dict.fromkeys(sweep['chosen_by']))}. Test "
               "error (%), mean [95 % interval]. Table: [table_sweep.csv](table_sweep.csv)", "",
               _by_condition(sweep, md_sweep), ""]
    if not ablation.empty:
        others = ~ablation["ablation"] & ~ablation["method"].isin(PAPER_METHODS)
        heading = {(True, False): "Ablations", (False, True): "Other methods"}.get(
            (bool(ablation["ablation"].any()), bool(others.any())), "Ablations and other methods")
        md += [f"### {heading}", "", _fig_md("fig_ablation", "test error of every method"), "",
               "Test error (%), mean [95 % interval], of every method at the noise levels where "
               f"methods outside the paper's four were trained; "
               f"{_interval_note(ablation, kinds_cols)}. Table: "
               "[table_ablation.csv](table_ablation.csv)", "",
               _by_condition(ablation, md_ablation), ""]
    return md


def _milestones(runs: pd.DataFrame) -> dict[str, list[int]]:
    out = {}
    for c, g in runs.groupby("condition", sort=False):
        try:
            out[c] = [int(x) for x in g["milestones"].iloc[0].strip("[]").split(",") if x.strip()]
        except ValueError:
            out[c] = []
    return out


def _curves(rep: Report) -> list[str]:
    from . import plots

    memo, curves = rep.tidy["memorisation"], rep.tidy["curves"]
    rep.csv("table_memorisation", memo)
    rep.csv("fig_curves", curves)
    rep.figure("fig_curves", plots.plot_curves, curves, milestones=_milestones(rep.res.runs),
               chance=R.CHANCE, seeds=R.curve_seeds(rep.res.runs, rep.res.metrics))
    return ["## Training curves and memorisation", "",
            _fig_md("fig_curves", "training curves"), "",
            "Per epoch, mean over seeds (band: 95 % t-interval over seeds from "
            f"{S.MIN_SEEDS} seeds on; with fewer, no band and each seed's own curve drawn thin "
            "beside the mean): test accuracy, training accuracy against the noisy labels the model was "
            "trained on and against the true labels, and the share of the corrupted training "
            "examples predicted as their noisy label (memorised). Dashed, in each method's "
            "colour: its null, the share its own mistakes would give, i.e. the chance under the "
            "noise process that a corrupted example's noisy label equals the network's "
            "prediction (measured in training, or for older symmetric-noise runs (100 − "
            "true-label training accuracy) / 9), the null the memorisation verdicts test "
            f"against, not 1/K; runs without one fall back to chance ({R.CHANCE:g} %, grey "
            "dash-dot). Dotted lines: learning-rate steps.", "",
            "From the test-selected epoch to the last (mean over seeds), and the memorised share "
            f"at the last epoch [95 % interval; {_interval_note(memo, ['memorised_last_over'])}] "
            "beside its null (mean over seeds). Table: "
            "[table_memorisation.csv](table_memorisation.csv)", "",
            _by_condition(memo, md_memorisation), ""]


def _attacks(rep: Report) -> list[str]:
    from . import plots

    res, checkpoint = rep.res, rep.checkpoint
    attack, attack_fig = rep.tidy["attack"], rep.tidy["attack_fig"]
    robust, flags = rep.tidy["robust"], rep.tidy["flags"]
    if not attack.empty:
        rep.csv("table_attack", attack)
        rep.csv("table_flags", flags)
    if not robust.empty:
        rep.csv("table_robust", robust)
    paired = rep.tidy["attack_paired"]
    if not attack_fig.empty:
        rep.csv("fig_attack", attack_fig)
        if not paired.empty:
            rep.csv("fig_attack_paired", paired)
        seeds = _attack_seeds(res.attacks, attack_fig, checkpoint)
        rep.figure("fig_attack", plots.plot_attack, attack_fig, seeds=seeds, paired=paired)
        rep.figure("fig_attack_relative", plots.plot_attack, attack_fig, value="relative",
                   seeds=seeds)
    if not robust.empty:
        rep.figure("fig_robust", plots.plot_robust, robust,
                   seeds=R.robust_per_run(res.robust, checkpoint))
    md = ["## Adversarial attacks", ""]
    if attack.empty:
        kinds = sorted(set(res.attacks["checkpoint"])) if not res.attacks.empty else []
        md += ["No attack results for the " + checkpoint + " checkpoint"
               + (f" (found: {', '.join(kinds)}; see --checkpoint)." if kinds else
                  " (no run has an attack.csv yet)."), ""]
    else:
        md += [_fig_md("fig_attack", "accuracy under attack"), "",
               "Accuracy (%) on adversarial test images against the perturbation size ε (in "
               "/255 of the pixel range), as measured, mean over seeds with its 95 % interval "
               f"(over seeds and the attacked images) from {S.MIN_SEEDS} seeds on; with fewer, "
               "no interval and each seed a dot beside the mean. White-box: crafted on the "
               "model itself; black-box: crafted on the source model named in the panel. One "
               "setting per method (the chosen one where it was attacked)."
               + (" Under each noise row whose runs stored their per-image outcomes: each "
                  "method's accuracy minus ERM's, paired by seed and attacked image, with its "
                  "95 % interval (combined variance, as for the verdicts): methods whose "
                  "accuracy intervals overlap can still differ on the same images. Data: "
                  "[fig_attack_paired.csv](fig_attack_paired.csv)" if not paired.empty
                  else ""), "",
               _fig_md("fig_attack_relative", "accuracy under attack relative to clean",
                       "fig_attack"), "",
               "The same, as a share of each model's own clean accuracy (ε = 0): how much of "
               "what a model gets right an attack takes away, apart from how much it gets right "
               "to begin with (interval over seeds only). Columns relative_* of "
               "[table_attack.csv](table_attack.csv).", "",
               f"Accuracy (%) by ε, {checkpoint} checkpoint, mean [95 % interval]; "
               f"{_interval_note(attack, ['accuracy_over'])}. Table: "
               "[table_attack.csv](table_attack.csv)", "",
               _by_condition(attack, md_attack), ""]
    if not robust.empty:
        md += ["### Robust accuracy", "", _fig_md("fig_robust", "robust accuracy", "table_robust"),
               "",
               "Robust accuracy (%): the share of the attacked test images that are classified "
               "correctly clean and that no attack run at that ε fooled (per-image worst case "
               "over every attack named, white-box and transferred; '(bb)': black-box), mean "
               f"[95 % interval]; {_interval_note(robust, ['robust_over'])}. It is never above "
               "any single attack's accuracy. Where AutoAttack is among the attacks this is "
               "the number RobustBench reports; without it, a weaker upper bound. A mean "
               "averages only runs attacked by every attack it names; '(k of n runs)' marks a "
               "cell where the other runs lacked one of them (column runs_left_out). Table: "
               "[table_robust.csv](table_robust.csv)", "",
               _by_condition(robust, md_robust), ""]
    if not attack.empty:
        md += ["### Gradient-masking flags", ""]
        if flags.empty:
            md += [f"No flag raised for the {checkpoint} checkpoint by the checks of "
                   "robustmix.attacks.flags (white-box accuracy rising with ε, a white-box "
                   "iterative attack weaker than white-box FGSM, black-box stronger than "
                   "white-box, Square stronger than every gradient attack, white-box PGD far "
                   "from 0 at ε ≥ 64/255).", ""]
        else:
            md += ["Signs that an attack, not the model, limited the measured accuracy "
                   "(robustmix.attacks.flags: a difference counts when it exceeds 0.5 % of the "
                   "images). Each flag, the numbers that raised it and the rows compared are in "
                   "[table_flags.csv](table_flags.csv).", "",
                   _by_condition(flags, md_flags), ""]
    return md


def _corruptions(rep: Report) -> list[str]:
    """Common corruptions: described per method (intervals over training seeds from
    MIN_SEEDS seeds on); no verdict family is built on them yet."""
    from ..runs import checkpoint_names as CKN
    from .corruption_tables import corruption_table

    t = corruption_table(rep.res.corruptions)
    if not len(t):
        return []
    wanted = CKN.resolve(rep.checkpoint).cli
    t = t[t["checkpoint"].map(lambda c: CKN.resolve(c).cli if CKN.is_checkpoint(c) else c)
          .isin([wanted, "given"])]
    if not len(t):
        return []
    name = rep.csv("table_corruptions", t)
    rows = [[r["condition"], r["method"], int(r["n_seeds"]), f"{int(r['sets'])} on {int(r['n'])}",
             fmt(r["clean_acc"]),
             fmt_ci(r["corrupted_acc"], r["corrupted_acc_lo"], r["corrupted_acc_hi"]),
             fmt(r["clean_ece"], 3),
             fmt_ci(r["corrupted_ece"], r["corrupted_ece_lo"], r["corrupted_ece_hi"], 3),
             fmt_ci(r["mce_vs_erm"], r["mce_vs_erm_lo"], r["mce_vs_erm_hi"])]
            for r in t.to_dict("records")]
    return ["## Common corruptions", "",
            f"Accuracy (%) and calibration (ECE, 15 equal-width bins) on the clean test images "
            f"and averaged over the corruption × severity sets scored "
            f"(CIFAR-10-C's corruptions, `python -m robustmix.corrupt`), checkpoint {wanted}; "
            "mCE: mean corruption error relative to ERM of the same condition and seed (100 = "
            f"ERM's). Means over training seeds, with a Student t interval over them from "
            f"{S.MIN_SEEDS} seeds on (test images and corruption draws fixed); with fewer "
            "seeds, descriptions. mixup against ERM, paired per seed and test image, is tested "
            "in the verdict families Corruption and Calibration above. Table: "
            f"[{name}]({name})", "",
            md_table(["condition", "method", "seeds", "sets on images", "clean acc.",
                      "corrupted acc.", "clean ECE", "corrupted ECE", "mCE vs ERM"], rows), ""]


def _evaluated(rep: Report) -> list[str]:
    """Models robustmix did not train (python -m robustmix.evaluate folders), described."""
    t = rep.res.evaluated
    if t is None or not len(t):
        return []
    name = rep.csv("table_evaluated", t)
    rows = [[r["model"], int(r["images"]), fmt_ci(r["clean_acc"], r["clean_lo"], r["clean_hi"]),
             fmt_ci(r["ece"], r["ece_lo"], r["ece_hi"], 3),
             (f"{r['autoattack_acc']:.1f} at {r['autoattack_eps']} ({r['threat_model']})"
              if _isnum(r["autoattack_acc"]) else "–"),
             int(r["flags"]), "yes" if r["unreliable"] else "no",
             (f"{r['corrupted_acc']:.1f} ({int(r['corruption_sets'])} sets)"
              if _isnum(r["corrupted_acc"]) else "–")]
            for r in t.to_dict("records")]
    return ["## Models evaluated from outside", "",
            "Models robustmix did not train (`python -m robustmix.evaluate`), on their own test "
            "images: accuracy (%) with its Wilson interval and ECE with its bootstrap interval, "
            "both over those test images only (one model, no training seeds); described, no "
            f"verdict. Table: [{name}]({name})", "",
            md_table(["model", "images", "clean acc.", "ECE", "AutoAttack acc.", "flags",
                      "potentially unreliable", "corrupted acc."], rows), ""]


def _caveats(rep: Report) -> list[str]:
    md = ["## What this scale cannot show", "",
          *[f"- {s}" for s in caveats(rep.res.runs, rep.tidy["noise"])], ""]
    if rep.notes:
        md += ["## Notes", "", rep.notes.strip(), ""]
    return md


def _files(rep: Report) -> list[str]:
    names = sorted({p.name for p in rep.written})
    return ["## Files", "", *[f"- [{n}]({n})" for n in names], ""]


SECTIONS: tuple[Section, ...] = (
    Section("verdicts", _verdicts, tables=("table_verdicts",), figures=("fig_forest",)),
    Section("setup", _setup, tables=("table_runs",)),
    Section("noise sources", _noise_sources, tables=("table_sources", "table_source_contrasts"),
            figures=("fig_transition", "fig_sources"), data=("fig_transition", "fig_sources")),
    Section("test error", _test_error, tables=("table_noise", "table_sweep", "table_ablation"),
            figures=("fig_noise", "fig_ablation"), data=("fig_noise", "fig_ablation")),
    Section("curves and memorisation", _curves, tables=("table_memorisation",),
            figures=("fig_curves",), data=("fig_curves",)),
    Section("attacks", _attacks, tables=("table_attack", "table_robust", "table_flags"),
            figures=("fig_attack", "fig_attack_relative", "fig_robust"),
            data=("fig_attack", "fig_attack_paired")),
    Section("common corruptions", _corruptions, tables=("table_corruptions",)),
    Section("outside models", _evaluated, tables=("table_evaluated",)),
    Section("caveats and notes", _caveats),
    Section("files", _files),  # last: lists every file the sections above wrote
)


def owned(sections: Sequence[Section] = SECTIONS) -> tuple[str, ...]:
    """Every file a report of these sections can write: report.md and each section's files."""
    return ("report.md", *dict.fromkeys(n for s in sections for n in s.files()))


OWNED = owned()


def write_report(res: R.Results, out: Path, *, title: str, notes: str | None, checkpoint: str,
                 command: str, sections: Sequence[Section] = SECTIONS) -> list[Path]:
    """Build every section (its tables, figures and Markdown) under out and write report.md;
    return the paths written."""
    rep = Report(res, out, title, notes, checkpoint, command, tidy_tables(res, checkpoint))
    md: list[str] = []
    for section in sections:
        rep.section = section
        md += section.build(rep)
    rep.section = None
    path = out / "report.md"
    write_text(path, "\n".join(md))
    rep.written.append(path)
    return rep.written


def remove_stale(out: Path, written: list[Path], sections: Sequence[Section] = SECTIONS) -> None:
    """Remove the files of an earlier report in out that this one did not write: only files a
    report of these sections owns (`owned`), never another file in the folder."""
    keep = {p.name for p in written}
    for n in owned(sections):
        p = out / n
        if n not in keep and p.is_file():
            p.unlink()
