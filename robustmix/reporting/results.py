"""Stored results as tidy pandas tables: the report's only input.

Everything here reads run directories (config.json, metrics.csv, summary.json, attack.csv) and
never trains or attacks. Errors and accuracies are fractions on disk; every table built here
gives them in percent (rounded to 3 decimals, so that the CSV files stay small and stable).

Vocabulary:
  condition  runs that may be compared directly: same dataset, noise type, profile, epochs,
             width, training subset and test images (`CONDITION_KEYS`); its short label is the
             `condition` column, its full description the `setup` column.
  setting    a method's hyper-parameters (alpha, dropout) within a condition and noise ratio.
  seeds      the runs of one setting; tables give mean, sample standard deviation and n.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..runs.files import ATTACK, CONFIG, METRICS, SUMMARY, read_json
from ..runs.rundir import finished_runs
from ..training.methods import METHODS, PAPER_METHODS, method_rank
from . import paper

CONDITION_KEYS = ("dataset", "noise", "profile", "epochs", "width", "train_subset", "test_n")
SETTING_KEYS = ("alpha", "dropout")
GROUP_KEYS = ("condition", "ratio", "method")
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "test_acc", "test_error", "test_loss",
                  "train_acc_noisy", "train_acc_clean", "memorised", "train_seconds", "seconds",
                  "images_per_second")
ATTACK_REQUIRED = ("attack", "eps", "accuracy")
ROUND = 3


@dataclass
class Results:
    """Everything the report draws on.

    runs     one row per finished run (settings, summary numbers in %, provenance)
    metrics  one row per run and epoch (metrics.csv in %, plus the run's keys)
    attacks  one row per attack.csv row of every run (accuracy in %, plus the target run's keys)
    skipped  run directories named on the command line but not finished, and duplicates
    """

    runs: pd.DataFrame
    metrics: pd.DataFrame
    attacks: pd.DataFrame
    skipped: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- reading


def find_runs(paths: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """Finished run directories under paths (via runs.finished_runs), without duplicates.

    Returns (runs, notes): a run directory named directly but not finished is left out with a
    note. Raises UsageError when a path is missing or nothing finished is found.
    """
    if not paths:
        raise UsageError("no run directories given")
    found, notes, seen = [], [], set()
    for run in finished_runs([Path(p) for p in paths]):
        key = run.resolve()
        if key in seen:
            continue
        seen.add(key)
        if not (run / SUMMARY).exists():
            notes.append(f"{run}: not finished (no {SUMMARY}), left out")
            continue
        found.append(run)
    if not found:
        raise UsageError(f"no finished runs in {' '.join(str(p) for p in paths)}")
    return found, notes


def _data_description(cfg: dict, summary: dict) -> str:
    data = cfg.get("data") or {}
    if isinstance(data, dict) and data.get("description"):
        return str(data["description"])
    s = summary.get("data")
    if isinstance(s, dict):
        return str(s.get("description") or "unknown")
    return str(s) if s else "unknown"


def _pct(x) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return round(100 * x, ROUND) if math.isfinite(x) else float("nan")


def read_metrics(run: Path) -> pd.DataFrame:
    """metrics.csv of a run with accuracies and errors in %; UsageError if unreadable."""
    path = Path(run) / METRICS
    try:
        m = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    for col in ("epoch", "test_acc"):
        if col not in m.columns:
            raise UsageError(f"{path} has no '{col}' column: not a robustmix metrics file")
    for col in METRIC_COLUMNS:
        if col not in m.columns:
            m[col] = np.nan
    m = m[list(METRIC_COLUMNS)].copy()
    if m["test_error"].isna().all():
        m["test_error"] = 1 - m["test_acc"]
    for col in ("test_acc", "test_error", "train_acc_noisy", "train_acc_clean", "memorised"):
        m[col] = (100 * m[col].astype(float)).round(ROUND)
    return m


def read_run(run: Path) -> tuple[dict, pd.DataFrame]:
    """One finished run: (row of the runs table, its metrics with accuracies in %)."""
    run = Path(run)
    cfg = read_json(run / CONFIG)
    if "train" not in cfg:
        raise UsageError(f"{run}/{CONFIG} has no 'train' section: not a robustmix run")
    t, env = cfg["train"], cfg.get("env", {})
    s = read_json(run / SUMMARY)
    m = read_metrics(run)
    if m.empty:
        raise UsageError(f"{run}/{METRICS} has no rows")
    best = m.loc[m["test_acc"].idxmax()]
    last = m.iloc[-1]

    def pick(key, fallback):
        v = s.get(key)
        return fallback if v is None else v

    row = {
        "run": run.name, "path": str(run),
        **{k: t.get(k) for k in CONDITION_KEYS},
        "ratio": round(float(t.get("ratio", s.get("ratio", 0.0))), 6),
        "method": t.get("method", s.get("method")),
        "alpha": float(t.get("alpha", s.get("alpha", 0.0))),
        "dropout": float(t.get("dropout", s.get("dropout", 0.0))),
        "seed": int(t.get("seed", s.get("seed", 0))),
        "noise_seed": int(t.get("noise_seed", 0)),
        "smoothing": t.get("smoothing"), "knn_k": t.get("knn_k"),
        "precision": t.get("precision", "?"), "milestones": str(t.get("milestones", "")),
        "batch_size": t.get("batch_size"), "lr": t.get("lr"),
        "weight_decay": t.get("weight_decay"), "train_eval_n": t.get("train_eval_n"),
        "augment": t.get("augment"),
        "best_error": _pct(pick("best_test_error", best["test_error"] / 100)),
        "best_epoch": int(pick("best_epoch", best["epoch"])),
        "last_error": _pct(pick("last_test_error", last["test_error"] / 100)),
        "last_epoch": int(pick("last_epoch", last["epoch"])),
        "last_train_acc_noisy": _pct(pick("last_train_acc_noisy", last["train_acc_noisy"] / 100)),
        "last_train_acc_clean": _pct(pick("last_train_acc_clean", last["train_acc_clean"] / 100)),
        "last_memorised": _pct(pick("last_memorised", last["memorised"] / 100)),
        "noise_rate": _pct(s.get("actual_noise_rate")),
        "train_images": s.get("train_images"), "test_images": s.get("test_images"),
        "train_minutes": round(float(s.get("train_seconds", m["train_seconds"].sum())) / 60, 2),
        "total_minutes": round(float(s.get("total_seconds", m["seconds"].sum())) / 60, 2),
        "images_per_second": round(float(s.get("images_per_second", float("nan"))), 1),
        "data": _data_description(cfg, s),
        "device": env.get("device", "?"), "device_name": env.get("device_name", "?"),
        "git_commit": env.get("git_commit", "unknown"), "started": env.get("started", ""),
        "command": env.get("command", ""), "robustmix": env.get("robustmix", ""),
        "torch": env.get("torch", ""),
    }
    for k in ("test_n", "train_subset"):  # None (= all) must survive as a groupable value
        row[k] = 0 if row[k] is None else int(row[k])
    return row, m


def read_attacks(run: Path) -> pd.DataFrame:
    """attack.csv of a run (empty frame if there is none), accuracy in %."""
    path = Path(run) / ATTACK
    if not path.exists():
        return pd.DataFrame()
    try:
        a = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    missing = [c for c in ATTACK_REQUIRED if c not in a.columns]
    if missing:
        raise UsageError(f"{path} lacks column(s) {', '.join(missing)}: not a robustmix attack file")
    defaults = {"checkpoint": "last", "mode": "white-box", "source": Path(run).name,
                "steps": np.nan, "step_size": np.nan, "n": np.nan, "correct": np.nan,
                "seconds": np.nan, "precision": "", "date": ""}
    for col, v in defaults.items():
        if col not in a.columns:
            a[col] = v
    a["source"] = a["source"].fillna(Path(run).name).astype(str)
    a["date"] = a["date"].fillna("").astype(str)
    a["accuracy"] = (100 * a["accuracy"].astype(float)).round(ROUND)
    a["eps"] = a["eps"].astype(float)
    return a[["checkpoint", "mode", "source", "attack", "eps", "steps", "step_size", "n", "correct",
              "accuracy", "seconds", "precision", "date"]]


def _label_conditions(runs: pd.DataFrame) -> pd.DataFrame:
    """Add `condition` (short label naming what varies) and `setup` (full description)."""
    def fmt(k, v):
        if k == "epochs":
            return f"{v} ep"
        if k == "width":
            return f"w{v}"
        if k == "train_subset":
            return f"{v} train" if v else "all train"
        if k == "test_n":
            return f"{v} test" if v else "all test"
        if k == "noise":
            return f"{v} noise"
        return str(v)

    keys = list(CONDITION_KEYS)
    varying = [k for k in keys if runs[k].nunique(dropna=False) > 1]
    runs = runs.copy()
    runs["condition"] = [
        " ".join(fmt(k, r[k]) for k in (varying or ["profile"])) for _, r in runs.iterrows()]
    runs["setup"] = [
        f"{r['dataset']}, {r['noise']} noise, profile {r['profile']}: width {r['width']}, "
        f"{r['train_subset'] or 'all'} training images, {r['epochs']} epochs "
        f"(lr {r['lr']} divided by 10 at epochs {r['milestones']}), batch {r['batch_size']}, "
        f"{r['test_n'] or 'all'} test images, {r['precision']}"
        for _, r in runs.iterrows()]
    return runs


def load_results(paths: Sequence[str | Path]) -> Results:
    """Read every finished run under paths into a Results; UsageError on bad input."""
    found, notes = find_runs(paths)
    rows, metrics, attacks = [], [], []
    for run in found:
        row, m = read_run(run)
        rows.append(row)
        m.insert(0, "run", row["run"])
        m.insert(1, "path", row["path"])
        metrics.append(m)
        a = read_attacks(run)
        if not a.empty:
            a.insert(0, "path", row["path"])
            attacks.append(a)
    runs = pd.DataFrame(rows)
    # The same run reached twice (two copies, or a rerun elsewhere): count it once.
    ident = [*CONDITION_KEYS, "ratio", "method", "alpha", "dropout", "seed", "noise_seed",
             "smoothing", "knn_k"]
    dup = runs.astype({k: str for k in ident}).duplicated(subset=ident, keep="first")
    for p in runs.loc[dup, "path"]:
        notes.append(f"{p}: same settings and seed as another run, left out")
    runs = runs.loc[~dup].reset_index(drop=True)
    runs = _label_conditions(runs)
    keys = runs[["path", "run", "condition", "ratio", "method", "alpha", "dropout", "seed"]]
    mt = pd.concat(metrics, ignore_index=True).drop(columns="run")
    mt = keys.merge(mt, on="path", how="inner")
    if attacks:
        at = pd.concat(attacks, ignore_index=True)
        at = keys.merge(at, on="path", how="inner")
        # attack.csv keys rows by steps, step size, n and precision too: where one measurement
        # was repeated with other such settings, the most recent row stands for it.
        at["_order"] = range(len(at))
        at = at.sort_values(["date", "_order"], kind="stable", na_position="first")
        same = ["path", "checkpoint", "mode", "source", "attack", "eps"]
        old = at.duplicated(subset=same, keep="last")
        if old.any():
            notes.append(f"{int(old.sum())} attack row(s) superseded by a later measurement of "
                         "the same run, attack, mode, source and ε (other steps, n or precision) "
                         "left out")
        at = at.loc[~old].sort_values("_order").drop(columns="_order").reset_index(drop=True)
        names = dict(zip(runs["run"], runs["method"], strict=True))
        at["source_method"] = [names.get(s, _method_from_name(s)) for s in at["source"]]
    else:
        at = pd.DataFrame(columns=[*keys.columns, "checkpoint", "mode", "source", "attack", "eps",
                                   "steps", "step_size", "n", "correct", "accuracy", "seconds",
                                   "precision", "date", "source_method"])
    return Results(runs=runs, metrics=mt, attacks=at, skipped=notes)


def _method_from_name(name: str) -> str:
    """The method in a run directory name such as cifar10_sym0.5_mixup_dropout_a8_p0.3_quick_s0."""
    for m in sorted(METHODS, key=len, reverse=True):
        if f"_{m}_a" in name:
            return m
    return name


# --------------------------------------------------------------------------- tables


def _mean_std(x: pd.Series) -> tuple[float, float, int]:
    x = x.dropna().astype(float)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    return round(mean, ROUND), round(std, ROUND), n


def setting_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n over seeds of best/last error (%) per condition × ratio × method × setting.

    `selected` marks, for each condition × ratio × method, the setting with the lowest mean
    best-epoch error: the paper's Table 2 reports each method at its best setting this way.
    """
    rows = []
    for key, g in runs.groupby(["condition", "ratio", "method", *SETTING_KEYS], sort=False):
        b, bs, n = _mean_std(g["best_error"])
        la, ls, _ = _mean_std(g["last_error"])
        rows.append({**dict(zip(["condition", "ratio", "method", *SETTING_KEYS], key, strict=True)),
                     "noise": g["noise"].iloc[0], "dataset": g["dataset"].iloc[0],
                     "n_seeds": n, "seeds": ",".join(str(s) for s in sorted(g["seed"])),
                     "best_error_mean": b, "best_error_std": bs,
                     "last_error_mean": la, "last_error_std": ls,
                     "best_epoch_mean": round(float(g["best_epoch"].mean()), 1),
                     "noise_rate": round(float(g["noise_rate"].mean()), ROUND)})
    t = pd.DataFrame(rows)
    t["_order"] = t["method"].map(method_rank)
    t = t.sort_values(["condition", "ratio", "_order", *SETTING_KEYS]).drop(columns="_order")
    t = t.reset_index(drop=True)
    t["selected"] = False
    t.loc[t.groupby(list(GROUP_KEYS), sort=False)["best_error_mean"].idxmin(), "selected"] = True
    t["n_settings"] = t.groupby(list(GROUP_KEYS), sort=False)["method"].transform("size")
    return t.reset_index(drop=True)


def noise_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Best and last test error (%) per condition × ratio × method at the selected setting,
    beside the paper's Table 2 (symmetric CIFAR-10 noise only) and ours − paper in points."""
    t = setting_table(runs)
    t = t[t["selected"]].drop(columns=["selected"]).reset_index(drop=True)
    pb, pl = [], []
    for _, r in t.iterrows():
        ref = paper.lookup(r["ratio"], r["method"], dataset=r["dataset"], noise=r["noise"],
                           alpha=r["alpha"], dropout=r["dropout"])
        pb.append(ref[0] if ref else float("nan"))
        pl.append(ref[1] if ref else float("nan"))
    t["paper_best_error"] = pb
    t["paper_last_error"] = pl
    t["best_diff"] = (t["best_error_mean"] - t["paper_best_error"]).round(ROUND)
    t["last_diff"] = (t["last_error_mean"] - t["paper_last_error"]).round(ROUND)
    for c in ("best", "last"):  # accuracies, as the figure draws them
        t[f"{c}_acc_mean"] = (100 - t[f"{c}_error_mean"]).round(ROUND)
        t[f"paper_{c}_acc"] = (100 - t[f"paper_{c}_error"]).round(ROUND)
    return t


def sweep_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Every setting of each condition × ratio × method trained with more than one (alpha,
    dropout) setting; `best` marks the lowest mean best-epoch error. Empty if there is none."""
    t = setting_table(runs)
    t = t[t["n_settings"] > 1].rename(columns={"selected": "best"})
    return t.drop(columns=["n_settings"]).reset_index(drop=True)


def ablation_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Best/last error of every method (selected setting) at each condition × ratio where a
    method outside the paper's four was trained. Empty if there is none."""
    t = noise_table(runs)
    abl = ~t["method"].isin(PAPER_METHODS)
    where = t.loc[abl, ["condition", "ratio"]].drop_duplicates()
    if where.empty:
        return t.iloc[0:0]
    t = t.merge(where, on=["condition", "ratio"])
    t["ablation"] = ~t["method"].isin(PAPER_METHODS)
    return t.reset_index(drop=True)


def selected_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the selected setting of each condition × ratio × method."""
    sel = setting_table(runs)
    sel = sel.loc[sel["selected"], ["condition", "ratio", "method", *SETTING_KEYS]]
    return runs.merge(sel, on=["condition", "ratio", "method", *SETTING_KEYS])


def curves_table(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch mean over seeds (selected setting) of test accuracy, training accuracy against
    the noisy and the true labels, and memorised fraction, all in %."""
    sel = selected_runs(runs)[["path"]]
    m = metrics.merge(sel, on="path")
    cols = ["test_acc", "train_acc_noisy", "train_acc_clean", "memorised"]
    keys = ["condition", "ratio", "method", *SETTING_KEYS, "epoch"]
    g = m.groupby(keys, sort=False)
    out = g[cols].mean().round(ROUND)
    out["n_seeds"] = g.size()
    out = out.reset_index()
    out["_order"] = out["method"].map(method_rank)
    out = out.sort_values(["condition", "ratio", "_order", "epoch"]).drop(columns="_order")
    return out.reset_index(drop=True)


def memorisation_table(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """For each selected run group: at the best epoch and at the last, test accuracy, training
    accuracy against noisy and true labels and memorised fraction (% , mean over seeds).

    Memorisation shows as training accuracy against the noisy labels (and the memorised
    fraction) rising from the best epoch to the last while test accuracy falls.
    """
    sel = selected_runs(runs)
    rows = []
    for _, r in sel.iterrows():
        m = metrics[metrics["path"] == r["path"]].set_index("epoch")
        b = m.loc[r["best_epoch"]] if r["best_epoch"] in m.index else m.loc[m["test_acc"].idxmax()]
        last = m.iloc[-1]
        row = {k: r[k] for k in ("condition", "ratio", "method", *SETTING_KEYS, "seed")}
        row["best_epoch"] = int(r["best_epoch"])
        row["last_epoch"] = int(m.index[-1])
        for c in ("test_acc", "train_acc_noisy", "train_acc_clean", "memorised"):
            row[f"{c}_best"] = float(b[c])
            row[f"{c}_last"] = float(last[c])
        rows.append(row)
    t = pd.DataFrame(rows)
    keys = ["condition", "ratio", "method", *SETTING_KEYS]
    g = t.groupby(keys, sort=False)
    out = g.mean(numeric_only=True).drop(columns=["seed"]).round(ROUND)
    out.insert(0, "n_seeds", g.size())
    out = out.reset_index()
    for c in ("test_acc", "train_acc_noisy", "train_acc_clean", "memorised"):
        out[f"{c}_change"] = (out[f"{c}_last"] - out[f"{c}_best"]).round(ROUND)
    out["_order"] = out["method"].map(method_rank)
    out = out.sort_values(["condition", "ratio", "_order"]).drop(columns="_order")
    return out.reset_index(drop=True)


def attack_table(attacks: pd.DataFrame, checkpoint: str = "last") -> pd.DataFrame:
    """Attack accuracy (%) per condition × ratio × method × setting × attack × mode × ε for one
    checkpoint: mean and std over the attacked runs (seeds) and black-box sources."""
    a = attacks[attacks["checkpoint"] == checkpoint]
    cols = ["condition", "ratio", "method", *SETTING_KEYS, "attack", "mode", "eps",
            "accuracy_mean", "accuracy_std", "n_rows", "n_runs", "images", "sources", "steps"]
    if a.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    keys = ["condition", "ratio", "method", *SETTING_KEYS, "attack", "mode", "eps"]
    for key, g in a.groupby(keys, sort=False):
        mean, std, n = _mean_std(g["accuracy"])
        srcs = sorted(set(g["source_method"])) if g["mode"].iloc[0] != "white-box" else ["itself"]
        steps = g["steps"].dropna()
        rows.append({**dict(zip(keys, key, strict=True)), "accuracy_mean": mean,
                     "accuracy_std": std, "n_rows": n, "n_runs": g["path"].nunique(),
                     "images": int(g["n"].fillna(0).sum()), "sources": "+".join(srcs),
                     "steps": int(steps.max()) if len(steps) else np.nan})
    t = pd.DataFrame(rows)
    t["_order"] = t["method"].map(method_rank)
    t["_atk"] = t["attack"].map({"fgsm": 0, "ifgsm": 1}).fillna(2)
    t["_mode"] = t["mode"].map({"white-box": 0, "black-box": 1}).fillna(2)
    t = t.sort_values(["condition", "ratio", "_atk", "_mode", "_order", *SETTING_KEYS, "eps"])
    return t.drop(columns=["_order", "_atk", "_mode"]).reset_index(drop=True)[cols]


def attack_plot_table(attack: pd.DataFrame, noise: pd.DataFrame) -> pd.DataFrame:
    """The attack rows the figure draws: one setting per condition × ratio × method, the
    selected one where it was attacked, else the attacked setting with the most rows."""
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


def provenance(runs: pd.DataFrame) -> dict:
    """Distinct data descriptions, devices, commits, profiles and dates of the runs."""
    def uniq(col):
        return [v for v in dict.fromkeys(runs[col].astype(str)) if v]

    return {"data": uniq("data"), "device_name": uniq("device_name"),
            "precision": uniq("precision"), "git_commit": uniq("git_commit"),
            "setup": uniq("setup"), "condition": uniq("condition"),
            "started": sorted(uniq("started")), "torch": uniq("torch")}


def warn(notes: Sequence[str]) -> None:
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
