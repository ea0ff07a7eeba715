"""The report's tidy tables, built from a Results: per setting, per chosen setting beside the
paper, sweeps, ablations, learning curves, memorisation, attacks, robust accuracy, flags, noise
sources and provenance, each with 95 % intervals from robustmix.reporting.statistics and the
sources of variation they cover (`_over`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..training.methods import PAPER_METHODS, is_ablation, method_rank
from . import paper
from . import statistics as S
from .columns import CHANCE, GROUP_KEYS, KINDS, ROUND, SETTING_KEYS
from .compat import checkpoint_name, memorisation_null_curve
from .loading import transition_counts


def image_errors(predictions: dict[str, pd.DataFrame] | None, paths: Sequence[str],
                 kind: str) -> np.ndarray | None:
    """(runs × test images) 0/1 errors of checkpoint `kind` for the runs at paths, or None
    unless every run has predictions for that checkpoint on the same test images."""
    if not predictions or not len(paths):
        return None
    frames = [predictions.get(p) for p in paths]
    if any(f is None for f in frames):
        return None
    first = frames[0]
    rows = []
    for f in frames:
        if len(f) != len(first) or not np.array_equal(f["label"].to_numpy(),
                                                      first["label"].to_numpy()):
            return None
        pred = f[kind].to_numpy()
        if (pred < 0).any():  # that checkpoint does not exist in this run
            return None
        rows.append(pred != f["label"].to_numpy())
    return np.vstack(rows).astype(np.float64)


def error_interval(g: pd.DataFrame, kind: str,
                   predictions: dict[str, pd.DataFrame] | None = None) -> S.Interval:
    """Mean test error (%) of checkpoint `kind` over the runs (seeds) in g with its interval."""
    ok = g[g[f"{kind}_error"].notna()]
    if ok.empty:
        return S.none()
    per_image = image_errors(predictions, list(ok["path"]), kind)
    iv = S.estimate(list(ok[f"{kind}_error"]), per_image, int(ok[f"{kind}_error_images"].min()))
    return _over_runs(iv, ok)


def _over_runs(iv: S.Interval, runs: pd.DataFrame) -> S.Interval:
    """iv labelled with the training seeds and noise draws of runs, one replicate each (runs
    without a noise_seed column: one draw)."""
    noise = runs["noise_seed"] if "noise_seed" in runs else [0] * len(runs)
    return S.over_runs(iv, list(runs["seed"]), list(noise))


def corrupted_eval_examples(r) -> int:
    """About how many corrupted examples the `memorised` share of a run is measured on: its
    training-evaluation subset times the actual noise rate (metrics.csv stores only the share)."""
    n, rate = r.get("train_eval_n"), r.get("noise_rate")
    try:
        k = int(round(float(n) * float(rate) / 100))
    except (TypeError, ValueError):
        return 0
    return max(k, 0)


def examples(basis: str) -> str:
    """An interval basis worded for the memorised share, measured on corrupted training
    examples rather than test images."""
    return basis.replace(" test images", " images").replace(" images",
                                                            " corrupted training examples")


def _put(row: dict, prefix: str, iv: S.Interval) -> None:
    """Interval bounds of a percentage (clipped to [0, 100]) and what they cover into row."""
    def clip(v):
        return round(min(max(v, 0.0), 100.0), ROUND) if math.isfinite(v) else np.nan

    row[f"{prefix}_lo"] = clip(iv.lo)
    row[f"{prefix}_hi"] = clip(iv.hi)
    row[f"{prefix}_over"] = iv.basis if iv.n_seeds else ""


def _mean_std(x: pd.Series) -> tuple[float, float, int]:
    mean, std, n = S.mean_std(list(x))

    def r(v: float) -> float:
        return round(v, ROUND) if math.isfinite(v) else float("nan")

    return r(mean), r(std), n


def setting_table(runs: pd.DataFrame, predictions: dict[str, pd.DataFrame] | None = None,
                  intervals: bool = True) -> pd.DataFrame:
    """Per condition × ratio × method × setting, over seeds: test error (%) of each checkpoint
    kind (mean, std, 95 % interval and what it covers), the noisy-validation accuracy and n.

    intervals=False leaves the interval columns empty (for callers that need only `chosen`).

    `chosen` marks, for each condition × ratio × method, the setting a practitioner would pick:
    the highest mean noisy-validation accuracy at the selected epoch; where a setting has no
    validation set, the lowest mean test-selected error (the paper's Table 2 rule, which selects
    on the test set: `chosen_by` says which).
    """
    rows = []
    keys = ["condition", "ratio", "method", *SETTING_KEYS]
    for key, g in runs.groupby(keys, sort=False):
        row = {**dict(zip(keys, key, strict=True)), "noise": g["noise"].iloc[0],
               "dataset": g["dataset"].iloc[0], "n_seeds": len(g),
               "seeds": ",".join(str(s) for s in sorted(g["seed"])),
               "noise_seeds": ",".join(str(s) for s in sorted(set(g["noise_seed"])))}
        for kind in KINDS:
            mean, std, _ = _mean_std(g[f"{kind}_error"])
            row[f"{kind}_error_mean"] = mean
            row[f"{kind}_error_std"] = std
            _put(row, f"{kind}_error", error_interval(g, kind, predictions) if intervals
                 else S.none())
            row[f"{kind}_error_images"] = int(g[f"{kind}_error_images"].min())
        row["selected_val_acc_mean"] = _mean_std(g["selected_val_acc"])[0]
        row["test_selected_epoch_mean"] = round(float(g["test_selected_epoch"].mean()), 1)
        row["selected_epoch_mean"] = round(float(g["selected_epoch"].mean()), 1)
        row["noise_rate"] = round(float(g["noise_rate"].mean()), ROUND)
        rows.append(row)
    t = pd.DataFrame(rows)
    t["_order"] = t["method"].map(method_rank)
    t = t.sort_values(["condition", "ratio", "_order", *SETTING_KEYS]).drop(columns="_order")
    t = t.reset_index(drop=True)
    t["chosen"] = False
    t["chosen_by"] = ""
    for _, g in t.groupby(list(GROUP_KEYS), sort=False):
        if g["selected_val_acc_mean"].notna().all():
            t.loc[g["selected_val_acc_mean"].idxmax(), "chosen"] = True
            t.loc[g.index, "chosen_by"] = "noisy validation accuracy"
        else:
            t.loc[g["test_selected_error_mean"].idxmin(), "chosen"] = True
            t.loc[g.index, "chosen_by"] = "test-selected error (no validation set)"
    t["n_settings"] = t.groupby(list(GROUP_KEYS), sort=False)["method"].transform("size")
    return t.reset_index(drop=True)


def noise_table(runs: pd.DataFrame, predictions: dict[str, pd.DataFrame] | None = None,
                settings: pd.DataFrame | None = None) -> pd.DataFrame:
    """Test error (%) of each checkpoint kind per condition × ratio × method at the chosen
    setting, beside the paper's Table 2 (symmetric CIFAR-10 noise, like-for-like α and p only):
    the paper's "best" is test-selected (`paper_test_selected_error`), and ours − paper.
    settings: setting_table(runs, predictions), where the caller has it already."""
    t = setting_table(runs, predictions) if settings is None else settings
    t = t[t["chosen"]].drop(columns=["chosen"]).reset_index(drop=True)
    pb, pl = [], []
    for _, r in t.iterrows():
        ref = paper.lookup(r["ratio"], r["method"], dataset=r["dataset"], noise=r["noise"],
                           alpha=r["alpha"], dropout=r["dropout"])
        pb.append(ref[0] if ref else float("nan"))
        pl.append(ref[1] if ref else float("nan"))
    t["paper_test_selected_error"] = pb
    t["paper_last_error"] = pl
    t["test_selected_diff"] = (t["test_selected_error_mean"]
                               - t["paper_test_selected_error"]).round(ROUND)
    t["last_diff"] = (t["last_error_mean"] - t["paper_last_error"]).round(ROUND)
    for c in KINDS:  # accuracies, as the figure draws them
        t[f"{c}_acc_mean"] = (100 - t[f"{c}_error_mean"]).round(ROUND)
        t[f"{c}_acc_lo"] = (100 - t[f"{c}_error_hi"]).round(ROUND)
        t[f"{c}_acc_hi"] = (100 - t[f"{c}_error_lo"]).round(ROUND)
    for c in ("test_selected", "last"):
        t[f"paper_{c}_acc"] = (100 - t[f"paper_{c}_error"]).round(ROUND)
    return t


def sweep_table(runs: pd.DataFrame, predictions: dict[str, pd.DataFrame] | None = None,
                settings: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every setting of each condition × ratio × method trained with more than one (alpha,
    dropout) setting; `chosen` marks the one shown elsewhere. Empty if there is none."""
    t = setting_table(runs, predictions) if settings is None else settings
    t = t[t["n_settings"] > 1]
    return t.drop(columns=["n_settings"]).reset_index(drop=True)


def ablation_table(runs: pd.DataFrame, predictions: dict[str, pd.DataFrame] | None = None,
                   settings: pd.DataFrame | None = None) -> pd.DataFrame:
    """Test errors of every method (chosen setting) at each condition × ratio where a method
    outside the paper's four was trained. Empty if there is none."""
    t = noise_table(runs, predictions, settings)
    other = ~t["method"].isin(PAPER_METHODS)
    where = t.loc[other, ["condition", "ratio"]].drop_duplicates()
    if where.empty:
        return t.iloc[0:0]
    t = t.merge(where, on=["condition", "ratio"])
    # The paper's mixup ablations are marked; baselines and your own methods are not.
    t["ablation"] = t["method"].map(is_ablation)
    return t.reset_index(drop=True)


def chosen_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the chosen setting of each condition × ratio × method."""
    sel = setting_table(runs, intervals=False)
    sel = sel.loc[sel["chosen"], ["condition", "ratio", "method", *SETTING_KEYS]]
    return runs.merge(sel, on=["condition", "ratio", "method", *SETTING_KEYS])


CURVE_COLUMNS = ("test_acc", "train_acc_noisy", "train_acc_clean", "memorised", "memorised_null",
                 "val_acc_noisy", "val_acc_clean")


def curves_table(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch mean over seeds (chosen setting) of test accuracy, training accuracy against
    the noisy and the true labels, memorised fraction and its null (memorisation_null_curve: the
    share the network's own mistakes give under the noise process, NaN where there is none) and
    validation accuracy, all in %, with the t-interval over seeds (`_lo`, `_hi`; NaN with fewer
    than statistics.MIN_SEEDS seeds)."""
    sel = chosen_runs(runs)[["path", "noise", "train_eval_n", "train_images", "test_images",
                             "noise_rate"]]
    m = metrics.merge(sel, on="path")
    # no training-evaluation subset: the accuracies are over every training image
    m["train_eval_n"] = pd.to_numeric(m["train_eval_n"], errors="coerce").fillna(
        pd.to_numeric(m["train_images"], errors="coerce"))
    m["test_images"] = pd.to_numeric(m["test_images"], errors="coerce")
    # the memorised share is over the corrupted examples among them (corrupted_eval_examples)
    m["corrupted_eval"] = (m["train_eval_n"] * m["noise_rate"].astype(float) / 100).round()
    m = m.drop(columns=["train_images", "noise_rate"])
    m["memorised_null"] = pd.concat(
        [memorisation_null_curve(g, str(noise)) for (_, noise), g in
         m.groupby(["path", "noise"], sort=False)]).reindex(m.index)
    m.loc[m["ratio"] <= 0, "memorised_null"] = np.nan
    m = m.drop(columns="noise")
    cols = list(CURVE_COLUMNS)
    keys = ["condition", "ratio", "method", *SETTING_KEYS, "epoch"]
    # what each curve is measured on: the training-evaluation subset (training accuracies,
    # memorised share) and the per-epoch test images; the fewest of any run in the group
    images = m.groupby(keys, sort=False)[["train_eval_n", "test_images", "corrupted_eval"]].min()
    m = m.drop(columns=["train_eval_n", "test_images", "corrupted_eval"])
    g = m.groupby(keys, sort=False)
    mean, std, n = g[cols].mean(), g[cols].std(ddof=1), g[cols].count()
    tq = pd.DataFrame(S.stats.t.ppf(0.5 + S.LEVEL / 2, np.maximum(n.to_numpy() - 1, 1)),
                      index=n.index, columns=cols)
    # a t-interval over 2 seeds (t = 12.7) says nothing: no band below MIN_SEEDS seeds; the
    # figure draws each seed's curve instead (curve_seeds)
    half = (tq * std / np.sqrt(n)).where(n >= S.MIN_SEEDS)
    out = mean.round(ROUND)
    for c in cols:
        out[f"{c}_lo"] = (mean[c] - half[c]).clip(0, 100).round(ROUND)
        out[f"{c}_hi"] = (mean[c] + half[c]).clip(0, 100).round(ROUND)
    out["n_seeds"] = g.size()
    out["train_eval_images"] = pd.to_numeric(images["train_eval_n"], errors="coerce")
    out["test_images"] = pd.to_numeric(images["test_images"], errors="coerce")
    out["corrupted_eval_images"] = images["corrupted_eval"]
    out = out.reset_index()
    out["_order"] = out["method"].map(method_rank)
    out = out.sort_values(["condition", "ratio", "_order", "epoch"]).drop(columns="_order")
    return out.reset_index(drop=True)


def curve_seeds(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per run of each chosen setting and epoch, its own curves (the CURVE_COLUMNS measured in
    training, in %), with the number of seeds of its group: what fig_curves draws for a group
    of fewer than statistics.MIN_SEEDS seeds, which has no interval over seeds."""
    keys = ["condition", "ratio", "method", *SETTING_KEYS]
    sel = chosen_runs(runs)[["path", "seed", "noise_seed"]]
    sel = sel.assign(seed=sel["seed"].astype(int))
    m = metrics.drop(columns=["seed", "noise_seed"], errors="ignore").merge(sel, on="path")
    cols = [c for c in CURVE_COLUMNS if c in m.columns and c != "memorised_null"]
    out = m[[*keys, "path", "seed", "noise_seed", "epoch", *cols]].copy()
    out["n_seeds"] = out.groupby(keys, sort=False)["path"].transform("nunique")
    return out.drop(columns="path").reset_index(drop=True)


def memorisation_table(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """For each chosen run group: at the test-selected epoch and at the last, test accuracy,
    training accuracy against noisy and true labels and memorised fraction (% , mean over
    seeds), and the memorised share at the last epoch with its 95 % interval beside its null
    (memorised_null_last: the mean over seeds of each run's last_memorised_null, the share its
    own mistakes give, which the verdicts test against; chance, CHANCE, where a run has none;
    memorised_null_basis says which).

    Memorisation shows as training accuracy against the noisy labels (and the memorised
    fraction) rising from the test-selected epoch to the last while test accuracy falls.
    """
    sel = chosen_runs(runs)
    rows = []
    for _, r in sel.iterrows():
        m = metrics[metrics["path"] == r["path"]].set_index("epoch")
        e = r["test_selected_epoch"]
        b = m.loc[e] if e in m.index else m.loc[m["test_acc"].idxmax()]
        last = m.iloc[-1]
        row = {k: r[k] for k in ("condition", "ratio", "method", *SETTING_KEYS, "seed",
                                 "noise_seed")}
        row["test_selected_epoch"] = int(e)
        row["last_epoch"] = int(m.index[-1])
        row["corrupted_eval"] = corrupted_eval_examples(r)
        row["memorised_null_last"] = float(r.get("last_memorised_null", np.nan))
        row["memorised_null_basis"] = str(r.get("memorised_null_basis", "") or "")
        for c in ("test_acc", "train_acc_noisy", "train_acc_clean", "memorised"):
            row[f"{c}_test_selected"] = float(b[c])
            row[f"{c}_last"] = float(last[c])
        rows.append(row)
    t = pd.DataFrame(rows)
    keys = ["condition", "ratio", "method", *SETTING_KEYS]
    out_rows = []
    for key, g in t.groupby(keys, sort=False):
        row = dict(zip(keys, key, strict=True))
        row["n_seeds"] = len(g)
        for c in g.columns:
            if c not in (*keys, "seed", "noise_seed") and pd.api.types.is_numeric_dtype(g[c]):
                row[c] = round(float(g[c].mean()), ROUND)
        iv = _over_runs(S.estimate(list(g["memorised_last"]),
                                   n_images=int(g["corrupted_eval"].min())), g)
        _put(row, "memorised_last", iv)
        if row["ratio"] <= 0:  # clean labels: nothing to memorise, no null
            row["memorised_null_last"], basis = np.nan, ""
        elif g["memorised_null_last"].notna().all():
            basis = "+".join(sorted(set(g["memorised_null_basis"]) - {""})) or "measured"
        else:  # as the verdicts: chance where any run lacks its own null
            row["memorised_null_last"], basis = CHANCE, "chance"
        row["memorised_null_basis"] = basis
        row["memorised_last_over"] = examples(row["memorised_last_over"])
        out_rows.append(row)
    out = pd.DataFrame(out_rows)
    for c in ("test_acc", "train_acc_noisy", "train_acc_clean", "memorised"):
        out[f"{c}_change"] = (out[f"{c}_last"] - out[f"{c}_test_selected"]).round(ROUND)
    out["_order"] = out["method"].map(method_rank)
    out = out.sort_values(["condition", "ratio", "_order"]).drop(columns="_order")
    return out.reset_index(drop=True)


def attack_per_run(attacks: pd.DataFrame, checkpoint: str = "last") -> pd.DataFrame:
    """One row per attacked run × attack × mode × ε for one checkpoint: accuracy (%) averaged
    over black-box sources, with its images (n) summed."""
    a = attacks[attacks["checkpoint"] == checkpoint_name(checkpoint)]
    keys = ["condition", "ratio", "method", *SETTING_KEYS, "attack", "mode", "eps", "path",
            "seed", "noise_seed"]
    if a.empty:
        return pd.DataFrame(columns=[*keys, "accuracy", "n", "sources", "steps", "relative"])
    g = a.groupby(keys, sort=False)
    out = g["accuracy"].mean().to_frame()
    out["n"] = g["n"].sum(min_count=1)
    out["sources"] = g["source_method"].agg(lambda s: "+".join(sorted(set(s))))
    out["steps"] = g["steps"].max()
    out = out.reset_index()
    # Relative to clean: accuracy over the run's own ε = 0 accuracy (the same images, no attack).
    clean = out[out["eps"] == 0].groupby("path")["accuracy"].mean()
    base = out["path"].map(clean)
    out["relative"] = np.where(base > 0, 100 * out["accuracy"] / base, np.nan)
    return out


def attack_table(attacks: pd.DataFrame, checkpoint: str = "last") -> pd.DataFrame:
    """Attack accuracy (%) per condition × ratio × method × setting × attack × mode × ε for one
    checkpoint: mean, std and 95 % interval over the attacked runs (seeds; black-box sources
    averaged per run); with one run, the Wilson interval over its attacked images."""
    a = attacks[attacks["checkpoint"] == checkpoint_name(checkpoint)]
    cols = ["condition", "ratio", "method", *SETTING_KEYS, "attack", "mode", "eps",
            "accuracy_mean", "accuracy_std", "accuracy_lo", "accuracy_hi", "accuracy_over",
            "relative_mean", "relative_lo", "relative_hi", "n_rows", "n_runs", "images",
            "sources", "steps"]
    if a.empty:
        return pd.DataFrame(columns=cols)
    per_run = attack_per_run(attacks, checkpoint)
    rows = []
    keys = ["condition", "ratio", "method", *SETTING_KEYS, "attack", "mode", "eps"]
    by_run = dict(iter(per_run.groupby(keys, sort=False)))
    for key, g in a.groupby(keys, sort=False):
        pr = by_run[key]
        mean, std, _ = _mean_std(pr["accuracy"])
        n_img = int(pr["n"].min()) if pr["n"].notna().all() else 0
        iv = _over_runs(S.estimate(list(pr["accuracy"]), n_images=n_img), pr)
        srcs = sorted(set(g["source_method"])) if g["mode"].iloc[0] != "white-box" else ["itself"]
        steps = g["steps"].dropna()
        row = {**dict(zip(keys, key, strict=True)), "accuracy_mean": mean, "accuracy_std": std}
        _put(row, "accuracy", iv)
        rel = S.estimate(list(pr["relative"].dropna()))  # over seeds only: a ratio, not a share
        row.update({"relative_mean": rel.estimate,
                    "relative_lo": rel.lo if len(pr["relative"].dropna()) > 1 else np.nan,
                    "relative_hi": rel.hi if len(pr["relative"].dropna()) > 1 else np.nan})
        row.update({"n_rows": len(g), "n_runs": g["path"].nunique(),
                    "images": int(g["n"].fillna(0).sum()), "sources": "+".join(srcs),
                    "steps": int(steps.max()) if len(steps) else np.nan})
        rows.append(row)
    t = pd.DataFrame(rows)
    t["_order"] = t["method"].map(method_rank)
    t["_atk"] = t["attack"].map({"fgsm": 0, "ifgsm": 1}).fillna(2)
    t["_mode"] = t["mode"].map({"white-box": 0, "black-box": 1}).fillna(2)
    t = t.sort_values(["condition", "ratio", "_atk", "_mode", "_order", *SETTING_KEYS, "eps"])
    return t.drop(columns=["_order", "_atk", "_mode"]).reset_index(drop=True)[cols]


def robust_per_run(robust: pd.DataFrame, checkpoint: str = "last") -> pd.DataFrame:
    """One row per attacked run × ε > 0 for one checkpoint: its robust accuracy (%) on the
    largest image set it was attacked on, the rows robust_summary averages (fig_robust's dots)."""
    keys = ["condition", "ratio", "method", *SETTING_KEYS, "eps", "path"]
    if robust is None or robust.empty:
        return pd.DataFrame(columns=[*keys, "accuracy", "n"])
    r = robust[(robust["checkpoint"] == checkpoint_name(checkpoint)) & (robust["eps"] > 0)]
    r = r.sort_values("n").groupby(keys, sort=False).tail(1)
    if not r.empty:
        r = pd.concat([same_attack_set(g)[0] for _, g in r.groupby(keys[:-1], sort=False)])
    return r[[*keys, "accuracy", "n"]].reset_index(drop=True)


def _attack_set(names) -> frozenset:
    return frozenset(str(names).split("+"))


def same_attack_set(per_run: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The robust-accuracy rows (one per run, at one ε) that combine the same attacks: the set
    most runs share, the larger set on a tie. A run whose worst case covers fewer attacks reads
    higher, so a mean or a pairing over mixed sets would blend two quantities. Returns the kept
    rows and how many runs were left out."""
    if per_run.empty:
        return per_run, 0
    sets = per_run["names"].map(_attack_set)
    counts = sets.value_counts()
    best = max(counts.index, key=lambda s: (counts[s], len(s), sorted(s)))
    keep = sets == best
    return per_run[keep], int((~keep).sum())


def robust_summary(robust: pd.DataFrame, checkpoint: str = "last") -> pd.DataFrame:
    """Robust accuracy (%) per condition × ratio × method × setting × ε > 0 for one checkpoint:
    the share of test images that no stored attack at that ε fooled (per-image worst case over
    every attack, white- and black-box), mean and 95 % interval over the attacked runs (seeds;
    the Student-t interval widened to the binomial one over the images, as for attacks).
    `attacks` names the attacks combined; only runs attacked by all of them are averaged
    (same_attack_set), and `runs_left_out` counts the runs whose worst case covers another set."""
    cols = ["condition", "ratio", "method", *SETTING_KEYS, "eps", "robust_mean", "robust_std",
            "robust_lo", "robust_hi", "robust_over", "n_runs", "images", "attacks",
            "runs_left_out", "worst_attack"]
    if robust is None or robust.empty:
        return pd.DataFrame(columns=cols)
    r = robust[(robust["checkpoint"] == checkpoint_name(checkpoint)) & (robust["eps"] > 0)]
    if r.empty:
        return pd.DataFrame(columns=cols)
    keys = ["condition", "ratio", "method", *SETTING_KEYS, "eps"]
    rows = []
    for key, g in r.groupby(keys, sort=False):
        # One image set per run: the largest one it was attacked on.
        g = g.sort_values("n").groupby("path", sort=False).tail(1)
        g, left_out = same_attack_set(g)
        mean, std, _ = _mean_std(g["accuracy"])
        iv = _over_runs(S.estimate(list(g["accuracy"]), n_images=int(g["n"].min())), g)
        row = {**dict(zip(keys, key, strict=True)), "robust_mean": mean, "robust_std": std}
        _put(row, "robust", iv)
        worst = g["worst"].value_counts()
        row.update({"n_runs": len(g), "images": int(g["n"].sum()),
                    "attacks": "+".join(sorted(_attack_set(g["names"].iloc[0]))),
                    "runs_left_out": left_out,
                    "worst_attack": worst.index[0] if len(worst) else ""})
        rows.append(row)
    t = pd.DataFrame(rows)
    t["_order"] = t["method"].map(method_rank)
    t = t.sort_values(["condition", "ratio", "_order", *SETTING_KEYS, "eps"])
    return t.drop(columns="_order").reset_index(drop=True)[cols]


def flag_table(flags: pd.DataFrame, checkpoint: str = "last") -> pd.DataFrame:
    """The gradient-masking flags raised for one checkpoint, one row per flag and run, with the
    numbers that raised it (attacks.flags)."""
    cols = ["condition", "ratio", "method", *SETTING_KEYS, "seed", "flag", "attack", "mode",
            "source", "eps", "accuracy", "reference", "detail"]
    if flags is None or flags.empty:
        return pd.DataFrame(columns=cols)
    f = flags[flags["checkpoint"] == checkpoint_name(checkpoint)]
    if f.empty:
        return pd.DataFrame(columns=cols)
    f = f.assign(_order=f["method"].map(method_rank))
    f = f.sort_values(["condition", "ratio", "_order", *SETTING_KEYS, "seed", "flag", "eps"])
    return f.reindex(columns=cols).reset_index(drop=True)


def attack_plot_table(attack: pd.DataFrame, noise: pd.DataFrame) -> pd.DataFrame:
    """The attack rows the figure draws: one setting per condition × ratio × method, the
    chosen one where it was attacked, else the attacked setting with the most rows."""
    if attack.empty:
        return attack
    sel = {(r["condition"], r["ratio"], r["method"]): (r["alpha"], r["dropout"])
           for _, r in noise.iterrows()}
    keep = []
    for key, g in attack.groupby(list(GROUP_KEYS), sort=False):
        settings = g.groupby(list(SETTING_KEYS)).size().sort_values(ascending=False)
        choice = sel.get(key)
        if choice not in settings.index:
            choice = settings.index[0]
        keep.append(g[(g["alpha"] == choice[0]) & (g["dropout"] == choice[1])])
    return pd.concat(keep, ignore_index=True)


SOURCE_KEYS = ("dataset", "noise", "ratio", "train_subset", "val_n", "noise_seed")


def transition_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per noise source (`source_label`): the empirical transition matrix of the training labels
    in long form (true class, noisy label, count, row-normalised fraction), the noise rate per
    true class, and over how many distinct label draws it is pooled. Runs that share dataset,
    noise, ratio, subset sizes and noise seed trained on the same labels, so each such draw
    counts once; draws of several noise seeds are summed. Empty when no run has its labels."""
    rows = []
    for label, g in runs.groupby("source_label", sort=False):
        total, draws = None, 0
        for _, r in g.drop_duplicates(subset=list(SOURCE_KEYS)).iterrows():
            counts = transition_counts(Path(r["path"]))
            if counts is None:
                continue
            total = counts if total is None else total + counts
            draws += 1
        if total is None:
            continue
        k = len(total)
        n = total.sum(1)
        for i in range(k):
            for j in range(k):
                rows.append({"source_label": label, "noise": g["noise"].iloc[0],
                             "clean": i, "noisy": j, "count": int(total[i, j]),
                             "fraction": round(total[i, j] / n[i], 6) if n[i] else 0.0,
                             "class_rate": round(100 * (1 - total[i, i] / n[i]), ROUND)
                             if n[i] else np.nan,
                             "rate": round(100 * (1 - np.trace(total) / total.sum()), ROUND),
                             "images": int(total.sum()), "label_draws": draws})
    return pd.DataFrame(rows)


def sources_table(noise: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """noise_table's rows (chosen setting per method) with each row's noise source named and its
    measured rate on the training labels (mean over the runs): test error per method across
    noise sources. Sorted by measured rate, then method."""
    if noise.empty:
        return noise
    meta = runs.groupby(["condition", "ratio"], sort=False).agg(
        source_label=("source_label", "first"), measured_rate=("noise_rate", "mean"),
        source_rate=("source_rate", "first"), noise_labels=("noise_labels", "first"),
        noise_file=("noise_file", "first")).reset_index()
    t = noise.merge(meta, on=["condition", "ratio"], how="left")
    t["measured_rate"] = t["measured_rate"].round(ROUND)
    t["_order"] = t["method"].map(method_rank)
    t = t.sort_values(["measured_rate", "source_label", "_order"]).drop(columns="_order")
    return t.reset_index(drop=True)


def provenance(runs: pd.DataFrame) -> dict:
    """Distinct data descriptions, devices, commits, profiles and dates of the runs."""
    def uniq(col):
        return [v for v in dict.fromkeys(runs[col].astype(str)) if v]

    return {"data": uniq("data"), "device_name": uniq("device_name"),
            "precision": uniq("precision"), "git_commit": uniq("git_commit"),
            "setup": uniq("setup"), "condition": uniq("condition"),
            "started": sorted(uniq("started")), "torch": uniq("torch")}
