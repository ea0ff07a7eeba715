"""Stored results as tidy pandas tables: the report's only input.

Everything here reads run directories (config.json, metrics.csv, summary.json, attack.csv,
predictions.csv) and never trains or attacks. Errors and accuracies are fractions on disk; every
table built here gives them in percent (rounded to 3 decimals, so that the CSV files stay small
and stable), with 95 % intervals from robustmix.reporting.statistics.

Checkpoint kinds (`KINDS`): "last" (the last epoch), "selected" (the epoch of best accuracy on
the noisy-label validation set, what a practitioner can choose) and "test_selected" (the epoch
of best test accuracy: the paper's "best", an optimistic oracle). Their errors come from the full
test set where the run stored it (summary.json `*_full_test_error`), else from the per-epoch
test images (older runs).

Vocabulary:
  condition  runs that may be compared directly: same dataset, noise type, profile, epochs,
             width, training subset, test images and network (`CONDITION_KEYS`); its short
             label is the `condition` column, its full description the `setup` column.
  method     the method's name; a method trained with several settings of its own parameters
             (`method_params`, e.g. GCE's q) is one method per setting, named with them
             ("gce (q=0.5)").
  setting    a method's hyper-parameters (alpha, dropout) within a condition and noise ratio;
             the `chosen` setting of a method is the one with the best mean noisy-validation
             accuracy (never the test set), or, for runs without a validation set, the lowest
             test-selected error (said so in `chosen_by`).
  seeds      the runs of one setting; tables give mean, sample standard deviation, n and the
             95 % interval (`_lo`, `_hi`) with what it covers (`_over`).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..attacks import rows as AR
from ..attacks.flags import check_flags
from ..attacks.outcomes import outcome_key, robust_table
from ..data.classes import CIFAR10_CLASSES
from ..data.labelnoise import TAKES_FILE
from ..errors import UsageError
from ..runs import checkpoint_names as CK
from ..runs.files import CONFIG, LABELS, METRICS, NOISE, PREDICTIONS, SUMMARY, read_json
from ..runs.rundir import finished_runs
from ..training.methods import METHODS, PAPER_METHODS, is_ablation, method_rank
from ..training.plugins import DEFAULT_MODEL, is_builtin_model
from . import paper
from . import statistics as S

CONDITION_KEYS = ("dataset", "noise", "profile", "epochs", "width", "train_subset", "test_n",
                  "val_n", "model")
SETTING_KEYS = ("alpha", "dropout")
GROUP_KEYS = ("condition", "ratio", "method")
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "test_acc", "test_error", "test_loss",
                  "train_acc_noisy", "train_acc_clean", "memorised", "memorised_null",
                  "val_acc_noisy", "val_acc_clean", "train_seconds", "seconds",
                  "images_per_second")
PERCENT_COLUMNS = ("test_acc", "test_error", "train_acc_noisy", "train_acc_clean", "memorised",
                   "memorised_null", "val_acc_noisy", "val_acc_clean")
ATTACK_REQUIRED = ("attack", "eps", "accuracy")
PREDICTION_COLUMNS = ("index", "label", *CK.KINDS)
ROUND = 3

# Checkpoint kinds, as the tables name them (column prefixes); labels and other names: CK.
KINDS = CK.KINDS
CHANCE = 10.0  # % : a label drawn at random matches a given one of the 10 classes 1 time in 10


@dataclass
class Results:
    """Everything the report draws on.

    runs         one row per finished run (settings, summary numbers in %, provenance)
    metrics      one row per run and epoch (metrics.csv in %, plus the run's keys)
    attacks      one row per attack.csv row of every run (accuracy in %, plus the run's keys)
    predictions  run path -> predictions.csv (one row per test image), for runs that have it
    skipped      run directories named on the command line but not finished, and duplicates
    robust       robust accuracy (%) per run, checkpoint, image set and ε: the images no stored
                 attack fooled (attacks.outcomes.robust_table), plus the run's keys
    flags        the gradient-masking flags of every run (attack_flags.csv), plus its keys
    """

    runs: pd.DataFrame
    metrics: pd.DataFrame
    attacks: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)
    robust: pd.DataFrame = field(default_factory=pd.DataFrame)
    flags: pd.DataFrame = field(default_factory=pd.DataFrame)


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


def _int(x, default: int = 0) -> int:
    try:
        return int(x)
    except (TypeError, ValueError):
        return default


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
    for col in PERCENT_COLUMNS:
        m[col] = (100 * m[col].astype(float)).round(ROUND)
    return m


def read_predictions(run: Path) -> pd.DataFrame | None:
    """predictions.csv of a run (None for runs made before it existed); UsageError if it is
    there but unreadable or lacks a column."""
    path = Path(run) / PREDICTIONS
    if not path.exists():
        return None
    try:
        p = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    missing = [c for c in PREDICTION_COLUMNS if c not in p.columns]
    if missing:
        raise UsageError(f"{path} lacks column(s) {', '.join(missing)}: not a robustmix "
                         "predictions file")
    if p[list(PREDICTION_COLUMNS)].isna().any().any():
        raise UsageError(f"{path} has empty cells: not a robustmix predictions file")
    return p[list(PREDICTION_COLUMNS)].astype(np.int64).sort_values("index").reset_index(drop=True)


def model_name(train: dict) -> str:
    """The network of a run's config as reports name it (runs made before --model: the
    default), with the normalisation where it is not the model's default."""
    ref = train.get("model") or DEFAULT_MODEL
    normalize = train.get("normalize", True)
    if bool(normalize) == is_builtin_model(ref):
        return ref
    return f"{ref} ({'normalised' if normalize else 'unnormalised'} inputs)"


def params_text(params) -> str:
    """A method's own parameters as reports spell them: "q=0.7", "" for none."""
    if not isinstance(params, dict):
        return ""
    return ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool)
                     else f"{k}={v}" for k, v in params.items())


def read_run(run: Path) -> tuple[dict, pd.DataFrame]:
    """One finished run: (row of the runs table, its metrics with accuracies in %)."""
    run = Path(run)
    cfg = read_json(run / CONFIG)
    if not isinstance(cfg, dict) or not isinstance(cfg.get("train"), dict):
        raise UsageError(f"{run}/{CONFIG} has no 'train' section: not a robustmix run")
    t, env = cfg["train"], cfg.get("env", {})
    s = read_json(run / SUMMARY)
    if not isinstance(s, dict):
        raise UsageError(f"{run}/{SUMMARY} is not a JSON object: not a robustmix run")
    m = read_metrics(run)
    if m.empty:
        raise UsageError(f"{run}/{METRICS} has no rows")
    best = m.loc[m["test_acc"].idxmax()]
    last = m.iloc[-1]

    def pick(key, fallback):
        v = s.get(key)
        return fallback if v is None else v

    test_images = s.get("test_images")
    full_images = s.get("full_test_images")
    per_epoch = {CK.LAST_CK.kind: _pct(pick(CK.LAST_CK.summary_key("test_error"),
                                           last["test_error"] / 100)),
                 CK.TEST_SELECTED_CK.kind: _pct(pick(CK.TEST_SELECTED_CK.summary_key("test_error"),
                                                    best["test_error"] / 100)),
                 CK.SELECTED_CK.kind: _pct(s.get(CK.SELECTED_CK.summary_key("test_error")))}
    noise = _noise_columns(run, t, s)
    row = {
        "run": run.name, "path": str(run),
        **{k: t.get(k) for k in CONDITION_KEYS},
        **noise,
        "method": t.get("method", s.get("method")),
        "method_params": params_text(t.get("method_params")),
        "alpha": float(t.get("alpha", s.get("alpha", 0.0))),
        "dropout": float(t.get("dropout", s.get("dropout", 0.0))),
        "seed": int(t.get("seed", s.get("seed", 0))),
        "noise_seed": int(t.get("noise_seed", 0)),
        "smoothing": t.get("smoothing"), "knn_k": t.get("knn_k"),
        "precision": t.get("precision", "?"), "milestones": str(t.get("milestones", "")),
        "schedule": schedule_words(t),
        "batch_size": t.get("batch_size"), "lr": t.get("lr"),
        "weight_decay": t.get("weight_decay"), "train_eval_n": t.get("train_eval_n"),
        "augment": t.get("augment"),
    }
    for kind in KINDS:
        full = _pct(s.get(CK.resolve(kind).full_error_key))
        use_full = math.isfinite(full) and full_images
        row[f"{kind}_error"] = full if use_full else per_epoch[kind]
        row[f"{kind}_error_images"] = int(full_images if use_full else (test_images or 0))
        row[f"{kind}_error_per_epoch"] = per_epoch[kind]
    row.update({
        "last_epoch": int(pick(CK.LAST_CK.summary_key("epoch"), last["epoch"])),
        "test_selected_epoch": int(pick(CK.TEST_SELECTED_CK.summary_key("epoch"), best["epoch"])),
        "selected_epoch": _int(s.get(CK.SELECTED_CK.summary_key("epoch")), 0) or np.nan,
        "selected_val_acc": _pct(s.get(CK.SELECTED_CK.summary_key("val_acc_noisy"))),
        "last_train_acc_noisy": _pct(pick("last_train_acc_noisy", last["train_acc_noisy"] / 100)),
        "last_train_acc_clean": _pct(pick("last_train_acc_clean", last["train_acc_clean"] / 100)),
        "last_memorised": _pct(pick("last_memorised", last["memorised"] / 100)),
        **memorisation_null(t, s, last),
        "noise_rate": _pct(s.get("actual_noise_rate")),
        "train_images": s.get("train_images"), "test_images": test_images,
        "full_test_images": full_images, "val_images": s.get("val_images"),
        "has_predictions": (run / PREDICTIONS).exists(),
        "train_minutes": round(float(s.get("train_seconds", m["train_seconds"].sum())) / 60, 2),
        "total_minutes": round(float(s.get("total_seconds", m["seconds"].sum())) / 60, 2),
        "images_per_second": round(float(s.get("images_per_second", float("nan"))), 1),
        "data": _data_description(cfg, s),
        "device": env.get("device", "?"), "device_name": env.get("device_name", "?"),
        "git_commit": env.get("git_commit", "unknown"), "started": env.get("started", ""),
        "command": env.get("command", ""), "robustmix": env.get("robustmix", ""),
        "torch": env.get("torch", ""),
    })
    for k in ("test_n", "train_subset", "val_n"):  # None (= all / none) must stay groupable
        row[k] = 0 if row[k] is None else int(row[k])
    row["model"] = model_name(t)
    return row, m


def source_label(source: str, ratio: float, labels: str | None = None,
                 file: str | None = None) -> str:
    """How reports name a noise source: 'sym 50%', 'CIFAR-10N worst', 'matrix (T.csv)'."""
    if source == "cifar10n":
        return f"CIFAR-10N {labels}"
    if source == "matrix":
        return f"matrix ({Path(file).name if file else '?'})"
    return f"{source} {100 * ratio:g}%"


def _noise_columns(run: Path, t: dict, s: dict) -> dict:
    """The run's noise: `noise` (the source; with its label set or matrix file for sources
    without a ratio, so that each is a condition of its own), `ratio` (for those sources, the
    fraction of wrong labels the source gives the whole training set, from noise.json, so that
    tables and figures place them by their rate), and the source's label, file and sha256."""
    source = t.get("noise", s.get("noise", "sym"))
    ratio = float(t.get("ratio", s.get("ratio", 0.0)))
    labels, file = t.get("noise_labels"), t.get("noise_file")
    rec = read_json(run / NOISE) if (run / NOISE).exists() else {}
    source_rate = rec.get("source_rate") if isinstance(rec, dict) else None
    out = {"noise": source, "noise_source": source, "noise_labels": labels,
           "noise_file": file, "noise_sha256": t.get("noise_sha256"),
           "source_label": source_label(source, ratio, labels, file),
           "source_rate": _pct(source_rate)}
    if source not in TAKES_FILE:
        out["ratio"] = round(ratio, 6)
    else:
        out["noise"] = (f"cifar10n-{labels}" if source == "cifar10n"
                        else f"matrix-{Path(file).stem if file else '?'}")
        rate = source_rate if source_rate is not None else s.get("actual_noise_rate", 0.0)
        out["ratio"] = round(float(rate), 4)
    return out


def _checkpoint_name(c: str) -> str:
    """attack.csv names checkpoints as --checkpoint does; "best" is the old name of
    test-selected."""
    return CK.cli_name(c)


# attack.csv is read through attacks/rows.py, once per run: load_results passes the frame it read
# (`rows`) to each reader below; read alone, each reads it itself. None: the run has none.
_UNREAD = object()
_with_added = AR.with_added  # the name tests and older callers use


def _attack_rows(run: Path, rows) -> pd.DataFrame | None:
    """A copy of the run's L∞ attack.csv rows as read (rows), or read now (L2 rows are left out:
    no report table or verdict may mix the two norms' budgets)."""
    rows = AR.read_csv(run) if rows is _UNREAD else rows
    return None if rows is None else AR.of_norm(rows).copy()


def read_attacks(run: Path, rows=_UNREAD) -> pd.DataFrame:
    """attack.csv of a run (empty frame if there is none), accuracy in %."""
    a = _attack_rows(run, rows)
    if a is None or not len(a.columns):
        return pd.DataFrame()
    missing = [c for c in ATTACK_REQUIRED if c not in a.columns]
    if missing:
        raise UsageError(f"{Path(run) / AR.ATTACK} lacks column(s) {', '.join(missing)}: not a "
                         "robustmix attack file")
    defaults = {"checkpoint": "last", "mode": "white-box", "source": Path(run).name,
                "steps": np.nan, "step_size": np.nan, "n": np.nan, "correct": np.nan,
                "seconds": np.nan, "precision": "", "date": ""}
    for col, v in defaults.items():
        if col not in a.columns:
            a[col] = v
    a["checkpoint"] = a["checkpoint"].fillna("last").map(_checkpoint_name)
    a["source"] = a["source"].fillna(Path(run).name).astype(str)
    a["date"] = a["date"].fillna("").astype(str)
    a["accuracy"] = (100 * a["accuracy"].astype(float)).round(ROUND)
    a["eps"] = a["eps"].astype(float)
    return a[["checkpoint", "mode", "source", "attack", "eps", "steps", "step_size", "n", "correct",
              "accuracy", "seconds", "precision", "date"]]


_MASKS: dict[tuple[str, float], dict] = {}


def attack_correct(path: str, checkpoint: str, attack: str, mode: str, eps: float,
                   n: int | None = None) -> np.ndarray | None:
    """Per attacked image, the share of the run's rows for (checkpoint, attack, mode, ε) that
    left it correct (the mean over black-box sources, 0/1 white-box), from attack.csv and
    attack_outcomes.npz: what pairs two runs attacked on the same images. None when the run has
    no such stored outcomes; of several image sets, the largest (or the one of n images)."""
    run = Path(path)
    csv, npz = run / AR.ATTACK, run / AR.OUTCOMES
    if not csv.exists() or not npz.exists():
        return None
    stamp = (str(run), npz.stat().st_mtime)
    if stamp not in _MASKS:
        try:
            rows = AR.read_csv(run)
        except UsageError:
            return None
        _MASKS[stamp] = {"rows": AR.of_norm(AR.with_added(rows)),  # L∞ only, as _attack_rows
                         "outcomes": AR.read_outcomes(run)}
    rows, outcomes = _MASKS[stamp]["rows"], _MASKS[stamp]["outcomes"]
    if rows.empty:
        return None
    ck = rows["checkpoint"].fillna("last").map(_checkpoint_name)
    sel = rows[(ck == _checkpoint_name(checkpoint)) & (rows["attack"] == attack)
               & (rows["mode"] == mode) & (rows["eps"].astype(float).round(6) == round(eps, 6))]
    if n is not None:
        sel = sel[sel["n"] == n]
    if sel.empty:
        return None
    sel = sel[sel["n"] == sel["n"].max()]
    masks = [outcomes.get(outcome_key(r)) for r in sel.to_dict("records")]
    if any(m is None for m in masks):
        return None
    return np.mean(np.stack(masks).astype(np.float64), axis=0)


def read_robust(run: Path, rows=_UNREAD) -> pd.DataFrame:
    """Robust accuracy (%) of a run at every attacked ε from its attack.csv and per-image
    outcomes (empty when it has none); the checkpoint named as in attack tables."""
    if not (Path(run) / AR.OUTCOMES).exists():
        return pd.DataFrame()
    rows = _attack_rows(run, rows)
    if rows is None:
        return pd.DataFrame()
    rows = AR.with_added(rows)
    if "run" not in rows.columns or not len(rows):
        return pd.DataFrame()
    t = robust_table(rows, AR.read_outcomes(Path(run)), outcome_key)
    if t.empty:
        return pd.DataFrame()
    t["accuracy"] = (100 * t["accuracy"]).round(ROUND)
    t["checkpoint"] = t["checkpoint"].map(_checkpoint_name)
    return t.drop(columns=["run"])


def read_flags(run: Path, rows=_UNREAD) -> pd.DataFrame:
    """A run's gradient-masking flags (empty frame when it has none).

    Computed from its attack.csv with the current rules (check_flags is a pure function of the
    rows), so a report of runs attacked by an older robustmix, or of kept copies, applies the
    same rules to every run; attack_flags.csv is read only for a run whose rows cannot be."""
    rows = _attack_rows(run, rows)
    if rows is not None and {"run", "correct", "n", "precision"} <= set(rows.columns):
        return _flag_frame(check_flags(AR.with_added(rows)))
    if rows is not None and not len(rows.columns):
        return pd.DataFrame()
    f = AR.read_flags_file(run)
    return pd.DataFrame() if f is None else _flag_frame(f)


def _flag_frame(f: pd.DataFrame) -> pd.DataFrame:
    if not len(f):
        return pd.DataFrame()
    if "checkpoint" in f.columns:
        f = f.assign(checkpoint=f["checkpoint"].map(_checkpoint_name))
    return f.drop(columns=["run"], errors="ignore")


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
        if k == "val_n":
            return f"{v} val" if v else "no val"
        if k == "noise":
            return f"{v} noise"
        return str(v)

    def test_images(r):
        full = r.get("full_test_images")
        per_epoch = f"{r['test_n'] or 'all'} test images per epoch"
        if full and not pd.isna(full):
            return f"{per_epoch}, all {int(full)} for the reported checkpoints"
        return per_epoch

    keys = list(CONDITION_KEYS)
    varying = [k for k in keys if runs[k].nunique(dropna=False) > 1]
    runs = runs.copy()
    runs["condition"] = [
        " ".join(fmt(k, r[k]) for k in (varying or ["profile"])) for _, r in runs.iterrows()]
    runs["setup"] = [
        f"{r['dataset']}, {r['noise']} noise, profile {r['profile']}: "
        + ("" if r["model"] == DEFAULT_MODEL else f"model {r['model']}, ")
        + (f"width {r['width']}, " if r["width"] else "")
        + f"{r['train_subset'] or 'all'} training images, {r['epochs']} epochs "
        f"({r['schedule']}), batch {r['batch_size']}, "
        + (f"{r['val_n']} noisy-label validation images, " if r["val_n"] else
           "no validation set, ")
        + f"{test_images(r)}, {r['precision']}"
        for _, r in runs.iterrows()]
    return runs


def load_results(paths: Sequence[str | Path]) -> Results:
    """Read every finished run under paths into a Results; UsageError on bad input."""
    found, notes = find_runs(paths)
    rows, metrics, attacks, preds, robust, flags = [], [], [], {}, [], []
    for run in found:
        row, m = read_run(run)
        rows.append(row)
        m.insert(0, "run", row["run"])
        m.insert(1, "path", row["path"])
        metrics.append(m)
        stored = AR.read_csv(run)  # attack.csv, read once for the three readers
        a = read_attacks(run, stored)
        if not a.empty:
            a.insert(0, "path", row["path"])
            attacks.append(a)
        p = read_predictions(run)
        if p is not None:
            preds[row["path"]] = p
        for frame, into in ((read_robust(run, stored), robust), (read_flags(run, stored), flags)):
            if not frame.empty:
                frame.insert(0, "path", row["path"])
                into.append(frame)
    runs = pd.DataFrame(rows)
    # The same run reached twice (two copies, or a rerun elsewhere): count it once.
    ident = [*CONDITION_KEYS, "ratio", "method", "method_params", "alpha", "dropout", "seed",
             "noise_seed", "smoothing", "knn_k"]
    dup = runs.astype({k: str for k in ident}).duplicated(subset=ident, keep="first")
    for p in runs.loc[dup, "path"]:
        notes.append(f"{p}: same settings and seed as another run, left out")
        preds.pop(p, None)
    runs = runs.loc[~dup].reset_index(drop=True)
    without = runs.loc[~runs["has_predictions"], "run"].tolist()
    if without:
        notes.append(f"{len(without)} of {len(runs)} run(s) have no {PREDICTIONS} (made before "
                     "per-image results were stored): their intervals come from the spread "
                     "over seeds and a binomial approximation over test images, not from the "
                     "paired per-image bootstrap")
    runs = _label_conditions(_name_param_settings(runs))
    keys = runs[["path", "run", "condition", "ratio", "method", "alpha", "dropout", "seed",
                 "noise_seed"]]
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
    rb = keys.merge(pd.concat(robust, ignore_index=True), on="path") if robust else pd.DataFrame()
    fl = keys.merge(pd.concat(flags, ignore_index=True), on="path") if flags else pd.DataFrame()
    return Results(runs=runs, metrics=mt, attacks=at, skipped=notes, predictions=preds,
                   robust=rb, flags=fl)


def _name_param_settings(runs: pd.DataFrame) -> pd.DataFrame:
    """A method trained with several settings of its own parameters becomes one method per
    setting, named with them ("gce (q=0.5)"), so no table or verdict pools them."""
    runs = runs.copy()
    several = runs.groupby("method")["method_params"].transform("nunique") > 1
    named = runs["method"] + " (" + runs["method_params"] + ")"
    runs.loc[several, "method"] = named[several]
    return runs


def _method_from_name(name: str) -> str:
    """The method in a run directory name such as cifar10_sym0.5_mixup_dropout_a8_p0.3_quick_s0
    (a method's parameters, e.g. _q0.7, may follow its name)."""
    for m in sorted(METHODS, key=len, reverse=True):
        if re.search(rf"_{re.escape(m)}(_[A-Za-z][A-Za-z0-9]*[^_]*)*?_a[-0-9.e+]+_p", name):
            return m
    return name


# --------------------------------------------------------------------------- per-image results


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
    return S.estimate(list(ok[f"{kind}_error"]), per_image, int(ok[f"{kind}_error_images"].min()))


def schedule_words(t: dict) -> str:
    """The learning-rate schedule of a run's config, in words."""
    if (t.get("schedule") or "step") == "linear":
        warm = float(t.get("warmup") or 0.0)
        return (f"lr {t.get('lr')} reached linearly over the first {100 * warm:g} % of the steps, "
                f"then decayed linearly to 0{', Nesterov' if t.get('nesterov') else ''}"
                + (f", crops translating up to {t['translate']} px"
                   if t.get("translate") is not None else ""))
    return f"lr {t.get('lr')} divided by 10 at epochs {t.get('milestones', '')}"


def memorisation_null(t: dict, s: dict, last) -> dict:
    """The memorised share (%) a network that never fitted the corrupted labels would still show
    by its own mistakes, and how it was obtained: `measured` by training (summary.json's
    last_memorised_null: the noise process's chance of giving each corrupted example the label
    the network predicts), or for runs made before that was stored, under symmetric noise,
    `approximate`: (100 − clean-label training accuracy) / (K − 1), the same chance with the
    network's accuracy on all training-evaluation examples standing in for its accuracy on the
    corrupted ones. Empty for other sources without a stored null (chance, 10 %, is used)."""
    measured = s.get("last_memorised_null")
    if measured is None and "memorised_null" in last and pd.notna(last["memorised_null"]):
        measured = float(last["memorised_null"])
    if measured is not None:
        return {"last_memorised_null": _pct(measured), "memorised_null_basis": "measured"}
    if t.get("noise", s.get("noise", "sym")) == "sym" and pd.notna(last.get("train_acc_clean")):
        clean = _pct(s.get("last_train_acc_clean", last["train_acc_clean"] / 100))
        return {"last_memorised_null": (100.0 - clean) / (len(CIFAR10_CLASSES) - 1),
                "memorised_null_basis": "approximate"}
    return {"last_memorised_null": np.nan, "memorised_null_basis": ""}


def memorisation_null_curve(m: pd.DataFrame, noise: str) -> pd.Series:
    """Per epoch of one run's metrics (in %), the null of its memorised share, as
    memorisation_null gives it at the last epoch: metrics.csv's memorised_null where training
    stored it; else, under symmetric noise, (100 − clean-label training accuracy) / (K − 1);
    else NaN (no null: the report falls back to chance)."""
    measured = m["memorised_null"] if "memorised_null" in m else pd.Series(np.nan, index=m.index)
    if noise != "sym":
        return measured.astype(float)
    approx = (100.0 - m["train_acc_clean"].astype(float)) / (len(CIFAR10_CLASSES) - 1)
    return measured.astype(float).where(measured.notna(), approx).round(ROUND)


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
    return basis.replace(" images", " corrupted training examples")


def _put(row: dict, prefix: str, iv: S.Interval) -> None:
    """Interval bounds of a percentage (clipped to [0, 100]) and what they cover into row."""
    def clip(v):
        return round(min(max(v, 0.0), 100.0), ROUND) if math.isfinite(v) else np.nan

    row[f"{prefix}_lo"] = clip(iv.lo)
    row[f"{prefix}_hi"] = clip(iv.hi)
    row[f"{prefix}_over"] = iv.basis if iv.n_seeds else ""


# --------------------------------------------------------------------------- tables


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
               "seeds": ",".join(str(s) for s in sorted(g["seed"]))}
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
    validation accuracy, all in %, with the t-interval over seeds (`_lo`, `_hi`; NaN with one
    seed)."""
    sel = chosen_runs(runs)[["path", "noise"]]
    m = metrics.merge(sel, on="path")
    m["memorised_null"] = pd.concat(
        [memorisation_null_curve(g, str(noise)) for (_, noise), g in
         m.groupby(["path", "noise"], sort=False)]).reindex(m.index)
    m.loc[m["ratio"] <= 0, "memorised_null"] = np.nan
    m = m.drop(columns="noise")
    cols = list(CURVE_COLUMNS)
    keys = ["condition", "ratio", "method", *SETTING_KEYS, "epoch"]
    g = m.groupby(keys, sort=False)
    mean, std, n = g[cols].mean(), g[cols].std(ddof=1), g[cols].count()
    tq = pd.DataFrame(S.stats.t.ppf(0.5 + S.LEVEL / 2, np.maximum(n.to_numpy() - 1, 1)),
                      index=n.index, columns=cols)
    half = (tq * std / np.sqrt(n)).where(n >= 2)
    out = mean.round(ROUND)
    for c in cols:
        out[f"{c}_lo"] = (mean[c] - half[c]).clip(0, 100).round(ROUND)
        out[f"{c}_hi"] = (mean[c] + half[c]).clip(0, 100).round(ROUND)
    out["n_seeds"] = g.size()
    out = out.reset_index()
    out["_order"] = out["method"].map(method_rank)
    out = out.sort_values(["condition", "ratio", "_order", "epoch"]).drop(columns="_order")
    return out.reset_index(drop=True)


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
        row = {k: r[k] for k in ("condition", "ratio", "method", *SETTING_KEYS, "seed")}
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
            if c not in (*keys, "seed") and pd.api.types.is_numeric_dtype(g[c]):
                row[c] = round(float(g[c].mean()), ROUND)
        iv = S.estimate(list(g["memorised_last"]), n_images=int(g["corrupted_eval"].min()))
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
    a = attacks[attacks["checkpoint"] == _checkpoint_name(checkpoint)]
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
    a = attacks[attacks["checkpoint"] == _checkpoint_name(checkpoint)]
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
        iv = S.estimate(list(pr["accuracy"]), n_images=n_img)
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


def robust_summary(robust: pd.DataFrame, checkpoint: str = "last") -> pd.DataFrame:
    """Robust accuracy (%) per condition × ratio × method × setting × ε > 0 for one checkpoint:
    the share of test images that no stored attack at that ε fooled (per-image worst case over
    every attack, white- and black-box), mean and 95 % interval over the attacked runs (seeds;
    the Student-t interval widened to the binomial one over the images, as for attacks).
    `attacks` names the attacks combined (union over runs; a run that lacks one of them is
    counted in `runs_without_all`)."""
    cols = ["condition", "ratio", "method", *SETTING_KEYS, "eps", "robust_mean", "robust_std",
            "robust_lo", "robust_hi", "robust_over", "n_runs", "images", "attacks",
            "runs_without_all", "worst_attack"]
    if robust is None or robust.empty:
        return pd.DataFrame(columns=cols)
    r = robust[(robust["checkpoint"] == _checkpoint_name(checkpoint)) & (robust["eps"] > 0)]
    if r.empty:
        return pd.DataFrame(columns=cols)
    keys = ["condition", "ratio", "method", *SETTING_KEYS, "eps"]
    rows = []
    for key, g in r.groupby(keys, sort=False):
        # One image set per run: the largest one it was attacked on.
        g = g.sort_values("n").groupby("path", sort=False).tail(1)
        mean, std, _ = _mean_std(g["accuracy"])
        iv = S.estimate(list(g["accuracy"]), n_images=int(g["n"].min()))
        names = sorted({a for s in g["names"] for a in str(s).split("+")})
        row = {**dict(zip(keys, key, strict=True)), "robust_mean": mean, "robust_std": std}
        _put(row, "robust", iv)
        worst = g["worst"].value_counts()
        row.update({"n_runs": len(g), "images": int(g["n"].sum()), "attacks": "+".join(names),
                    "runs_without_all": int(sum(set(str(s).split("+")) != set(names)
                                                for s in g["names"])),
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
    f = flags[flags["checkpoint"] == _checkpoint_name(checkpoint)]
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


def transition_counts(run: Path, num_classes: int = 10) -> np.ndarray | None:
    """The run's training labels as a true class x noisy label count matrix: from noise.json,
    or, for runs made before it existed, from labels.csv (None when neither is readable)."""
    run = Path(run)
    if (run / NOISE).exists():
        rec = read_json(run / NOISE)
        if isinstance(rec, dict) and isinstance(rec.get("counts"), list):
            return np.asarray(rec["counts"], dtype=np.int64)
    if (run / LABELS).exists():
        try:
            lab = pd.read_csv(run / LABELS)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
            return None
        if not {"clean", "noisy"} <= set(lab.columns):
            return None
        if "split" in lab.columns:
            lab = lab[lab["split"] == "train"]
        c, n = lab["clean"].to_numpy(np.int64), lab["noisy"].to_numpy(np.int64)
        if len(c) == 0 or min(c.min(), n.min()) < 0 or max(c.max(), n.max()) >= num_classes:
            return None
        return np.bincount(c * num_classes + n,
                           minlength=num_classes ** 2).reshape(num_classes, num_classes)
    return None


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


def warn(notes: Sequence[str]) -> None:
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
