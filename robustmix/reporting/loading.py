"""Reading finished run folders into a Results: one pass over each run's files (config.json,
summary.json, metrics.csv, noise.json, predictions.csv; attack.csv and attack_outcomes.npz once,
shared by the attack, robust-accuracy and flag readers and kept in Results.stored_attacks for
the per-image pairing of the verdicts). Never trains or attacks; where a run was written by an older
version, robustmix.reporting.compat supplies what it lacks.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..attacks import rows as AR
from ..attacks.flags import check_flags
from ..attacks.outcomes import outcome_key, robust_table
from ..data.labelnoise import TAKES_FILE
from ..errors import UsageError
from ..runs import checkpoint_names as CK
from ..runs.files import CONFIG, LABELS, METRICS, NOISE, PREDICTIONS, SUMMARY, read_json
from ..runs.rundir import finished_runs
from ..training.plugins import DEFAULT_MODEL, is_builtin_model
from .columns import CONDITION_KEYS, KINDS, ROUND, as_int, pct
from .compat import checkpoint_name, counts_from_labels_csv, memorisation_null, method_from_name

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "test_acc", "test_error", "test_loss",
                  "train_acc_noisy", "train_acc_clean", "memorised", "memorised_null",
                  "val_acc_noisy", "val_acc_clean", "train_seconds", "seconds",
                  "images_per_second")


PERCENT_COLUMNS = ("test_acc", "test_error", "train_acc_noisy", "train_acc_clean", "memorised",
                   "memorised_null", "val_acc_noisy", "val_acc_clean")


ATTACK_REQUIRED = ("attack", "eps", "accuracy")


PREDICTION_COLUMNS = ("index", "label", *CK.KINDS)


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
    corruptions  one row per corruptions.csv row of every run (accuracy as a fraction, ECE,
                 NLL), plus the run's keys
    corruption_outcomes  run path -> {row key: per-image Outcome} (corruption_outcomes.npz)
    evaluated    one row per folder of `python -m robustmix.evaluate` named beside the runs
                 (reporting/evaluated.py): models robustmix did not train
    stored_attacks  run path -> its L∞ attack rows and per-image outcomes as read, for runs
                 that stored outcomes (attack_correct pairs runs by image from them)
    """

    runs: pd.DataFrame
    metrics: pd.DataFrame
    attacks: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)
    robust: pd.DataFrame = field(default_factory=pd.DataFrame)
    flags: pd.DataFrame = field(default_factory=pd.DataFrame)
    corruptions: pd.DataFrame = field(default_factory=pd.DataFrame)
    corruption_outcomes: dict[str, dict] = field(default_factory=dict)
    evaluated: pd.DataFrame = field(default_factory=pd.DataFrame)
    stored_attacks: dict[str, StoredAttacks] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredAttacks:
    """A run's L∞ attack.csv rows (the columns later versions added filled in) and its
    per-image outcomes (outcome key -> correct mask), as load_results read them."""

    rows: pd.DataFrame
    outcomes: Mapping[str, np.ndarray]


def read_corruptions(run: Path) -> pd.DataFrame:
    """The run's corruptions.csv rows (empty without one), older files' missing columns NaN."""
    from ..evaluation.corruption_runs import read_existing

    return read_existing(run)


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


def schedule_words(t: dict) -> str:
    """The learning-rate schedule of a run's config, in words."""
    if (t.get("schedule") or "step") == "linear":
        warm = float(t.get("warmup") or 0.0)
        return (f"lr {t.get('lr')} reached linearly over the first {100 * warm:g} % of the steps, "
                f"then decayed linearly to 0{', Nesterov' if t.get('nesterov') else ''}"
                + (f", crops translating up to {t['translate']} px"
                   if t.get("translate") is not None else ""))
    return f"lr {t.get('lr')} divided by 10 at epochs {t.get('milestones', '')}"


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
    per_epoch = {CK.LAST_CK.kind: pct(pick(CK.LAST_CK.summary_key("test_error"),
                                           last["test_error"] / 100)),
                 CK.TEST_SELECTED_CK.kind: pct(pick(CK.TEST_SELECTED_CK.summary_key("test_error"),
                                                    best["test_error"] / 100)),
                 CK.SELECTED_CK.kind: pct(s.get(CK.SELECTED_CK.summary_key("test_error")))}
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
        full = pct(s.get(CK.resolve(kind).full_error_key))
        use_full = math.isfinite(full) and full_images
        row[f"{kind}_error"] = full if use_full else per_epoch[kind]
        row[f"{kind}_error_images"] = int(full_images if use_full else (test_images or 0))
        row[f"{kind}_error_per_epoch"] = per_epoch[kind]
    row.update({
        "last_epoch": int(pick(CK.LAST_CK.summary_key("epoch"), last["epoch"])),
        "test_selected_epoch": int(pick(CK.TEST_SELECTED_CK.summary_key("epoch"), best["epoch"])),
        "selected_epoch": as_int(s.get(CK.SELECTED_CK.summary_key("epoch")), 0) or np.nan,
        "selected_val_acc": pct(s.get(CK.SELECTED_CK.summary_key("val_acc_noisy"))),
        "last_train_acc_noisy": pct(pick("last_train_acc_noisy", last["train_acc_noisy"] / 100)),
        "last_train_acc_clean": pct(pick("last_train_acc_clean", last["train_acc_clean"] / 100)),
        "last_memorised": pct(pick("last_memorised", last["memorised"] / 100)),
        **memorisation_null(t, s, last),
        "noise_rate": pct(s.get("actual_noise_rate")),
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
           "source_rate": pct(source_rate)}
    if source not in TAKES_FILE:
        out["ratio"] = round(ratio, 6)
    else:
        out["noise"] = (f"cifar10n-{labels}" if source == "cifar10n"
                        else f"matrix-{Path(file).stem if file else '?'}")
        rate = source_rate if source_rate is not None else s.get("actual_noise_rate", 0.0)
        out["ratio"] = round(float(rate), 4)
    return out


# attack.csv is read through attacks/rows.py, once per run: load_results passes the frame it read
# (`rows`) to each reader below; read alone, each reads it itself. None: the run has none.
_UNREAD = object()


_with_added = AR.with_added  # the name tests and older callers use


def _attack_rows(run: Path, rows) -> pd.DataFrame | None:
    """A copy of the run's L∞ attack.csv rows as read (rows), or read now: the report's tables,
    figures and verdicts are about L∞ budgets; L2 rows stay in attack.csv."""
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
    a["checkpoint"] = a["checkpoint"].fillna("last").map(checkpoint_name)
    a["source"] = a["source"].fillna(Path(run).name).astype(str)
    a["date"] = a["date"].fillna("").astype(str)
    a["accuracy"] = (100 * a["accuracy"].astype(float)).round(ROUND)
    a["eps"] = a["eps"].astype(float)
    return a[["checkpoint", "mode", "source", "attack", "eps", "steps", "step_size", "n", "correct",
              "accuracy", "seconds", "precision", "date"]]


def stored_attacks(rows: pd.DataFrame | None,
                   outcomes: Mapping[str, np.ndarray]) -> StoredAttacks | None:
    """What attack_correct needs of a run, from its attack.csv rows and outcomes as read; None
    when it has no rows or no outcomes."""
    if rows is None or not len(rows.columns) or not outcomes:
        return None
    return StoredAttacks(AR.of_norm(AR.with_added(rows.copy())), outcomes)


def attack_correct(stored: StoredAttacks | None, checkpoint: str, attack: str, mode: str,
                   eps: float, n: int | None = None) -> np.ndarray | None:
    """Per attacked image, the share of the run's rows for (checkpoint, attack, mode, ε) that
    left it correct (the mean over black-box sources, 0/1 white-box), from its stored attack
    rows and outcomes (Results.stored_attacks: read once per run by load_results): what pairs
    two runs attacked on the same images. None when the run has no such stored outcomes; of
    several image sets, the largest (or the one of n images)."""
    if stored is None or stored.rows.empty:
        return None
    rows = stored.rows
    ck = rows["checkpoint"].fillna("last").map(checkpoint_name)
    sel = rows[(ck == checkpoint_name(checkpoint)) & (rows["attack"] == attack)
               & (rows["mode"] == mode) & (rows["eps"].astype(float).round(6) == round(eps, 6))]
    if n is not None:
        sel = sel[sel["n"] == n]
    if sel.empty:
        return None
    sel = sel[sel["n"] == sel["n"].max()]
    masks = [stored.outcomes.get(outcome_key(r)) for r in sel.to_dict("records")]
    if any(m is None for m in masks):
        return None
    return np.mean(np.stack(masks).astype(np.float64), axis=0)


def read_robust(run: Path, rows=_UNREAD,
                outcomes: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Robust accuracy (%) of a run at every attacked ε from its attack.csv and per-image
    outcomes (as read, or read now; empty when it has none); the checkpoint named as in attack
    tables."""
    if outcomes is None:
        outcomes = AR.read_outcomes(Path(run))
    if not outcomes:
        return pd.DataFrame()
    rows = _attack_rows(run, rows)
    if rows is None:
        return pd.DataFrame()
    rows = AR.with_added(rows)
    if "run" not in rows.columns or not len(rows):
        return pd.DataFrame()
    t = robust_table(rows, outcomes, outcome_key)
    if t.empty:
        return pd.DataFrame()
    t["accuracy"] = (100 * t["accuracy"]).round(ROUND)
    t["checkpoint"] = t["checkpoint"].map(checkpoint_name)
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
        f = f.assign(checkpoint=f["checkpoint"].map(checkpoint_name))
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
    from .evaluated import evaluated_table, is_evaluated

    found, notes = find_runs(paths)
    outside = [r for r in found if is_evaluated(r)]
    found = [r for r in found if r not in outside]
    if not found:
        raise UsageError("no trained run among the folders given: folders of "
                         "python -m robustmix.evaluate are reported beside trained runs (their "
                         "own numbers are in each folder's summary.json and robustbench.json)")
    from ..evaluation.corruption_outcomes import read_outcomes as read_corruption_outcomes

    rows, metrics, attacks, preds, robust, flags, corrupt = [], [], [], {}, [], [], []
    corrupt_outcomes: dict[str, dict] = {}
    kept: dict[str, StoredAttacks] = {}
    for run in found:
        row, m = read_run(run)
        rows.append(row)
        m.insert(0, "run", row["run"])
        m.insert(1, "path", row["path"])
        metrics.append(m)
        # attack.csv and its outcomes, read once for the readers here and the verdicts' pairing
        stored = AR.read_csv(run)
        outcomes = AR.read_outcomes(run)
        a = read_attacks(run, stored)
        if not a.empty:
            a.insert(0, "path", row["path"])
            attacks.append(a)
        p = read_predictions(run)
        if p is not None:
            preds[row["path"]] = p
        s = stored_attacks(stored, outcomes)
        if s is not None:
            kept[row["path"]] = s
        for frame, into in ((read_robust(run, stored, outcomes), robust),
                            (read_flags(run, stored), flags),
                            (read_corruptions(run), corrupt)):
            if not frame.empty:
                frame.insert(0, "path", row["path"])
                into.append(frame)
                if into is corrupt:
                    corrupt_outcomes[row["path"]] = read_corruption_outcomes(run)
    runs = pd.DataFrame(rows)
    # The same run reached twice (two copies, or a rerun elsewhere): count it once.
    ident = [*CONDITION_KEYS, "ratio", "method", "method_params", "alpha", "dropout", "seed",
             "noise_seed", "smoothing", "knn_k"]
    dup = runs.astype({k: str for k in ident}).duplicated(subset=ident, keep="first")
    for p in runs.loc[dup, "path"]:
        notes.append(f"{p}: same settings and seed as another run, left out")
        preds.pop(p, None)
        kept.pop(p, None)
        corrupt_outcomes.pop(p, None)
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
        at["source_method"] = [names.get(s, method_from_name(s)) for s in at["source"]]
    else:
        at = pd.DataFrame(columns=[*keys.columns, "checkpoint", "mode", "source", "attack", "eps",
                                   "steps", "step_size", "n", "correct", "accuracy", "seconds",
                                   "precision", "date", "source_method"])
    rb = keys.merge(pd.concat(robust, ignore_index=True), on="path") if robust else pd.DataFrame()
    fl = keys.merge(pd.concat(flags, ignore_index=True), on="path") if flags else pd.DataFrame()
    # the run's own keys (condition, method, seed, ...) stand for corruptions.csv's copies
    own = ["run", "ratio", "method", "alpha", "dropout", "seed"]
    co = (keys.merge(pd.concat(corrupt, ignore_index=True).drop(columns=own), on="path")
          if corrupt else pd.DataFrame())
    return Results(runs=runs, metrics=mt, attacks=at, skipped=notes, predictions=preds,
                   robust=rb, flags=fl, corruptions=co, corruption_outcomes=corrupt_outcomes,
                   evaluated=evaluated_table(outside), stored_attacks=kept)


def _name_param_settings(runs: pd.DataFrame) -> pd.DataFrame:
    """A method trained with several settings of its own parameters becomes one method per
    setting, named with them ("gce (q=0.5)"), so no table or verdict pools them."""
    runs = runs.copy()
    several = runs.groupby("method")["method_params"].transform("nunique") > 1
    named = runs["method"] + " (" + runs["method_params"] + ")"
    runs.loc[several, "method"] = named[several]
    return runs


def transition_counts(run: Path, num_classes: int = 10) -> np.ndarray | None:
    """The run's training labels as a true class x noisy label count matrix: from noise.json,
    or, for runs made before it existed, from labels.csv (None when neither is readable)."""
    run = Path(run)
    if (run / NOISE).exists():
        rec = read_json(run / NOISE)
        if isinstance(rec, dict) and isinstance(rec.get("counts"), list):
            return np.asarray(rec["counts"], dtype=np.int64)
    return counts_from_labels_csv(run / LABELS, num_classes)


def warn(notes: Sequence[str]) -> None:
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
