"""A run's attack rows, said once: attack.csv (its columns, reading it, merging new rows into it
atomically), the per-image outcomes each row stores (attack_outcomes.npz: attacks/outcomes.py)
and the gradient-masking flags the rows raise (attack_flags.csv: attacks/flags.py). The attack
runner writes and the report reads a run's rows only through here.

attack.csv holds one tidy row per target × source × attack × ε × checkpoint: the target's
settings (`META`), the checkpoint (as --checkpoint names it), mode, source run, whether the
source is a twin, the attack, its threat model (`norm`: linf or l2, which also gives the units
of `eps` and `step_size`: /255 for linf, plain for l2) and its settings (`SETTINGS`; see
attacks/registry.py), the number
of images, how many stayed correct, the accuracy (a fraction), time, precision, device, date,
and the data source and test-image fingerprint it was computed on. Columns later versions added
are filled for older files with the value they meant (`ADDED`); a row is identified by
outcomes.row_key, its outcomes by outcomes.outcome_key.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_csv
from ..errors import UsageError
from ..runs.files import ATTACK
from .defaults import DEFAULT_NORM
from .flags import FLAGS, check_flags
from .outcomes import OUTCOMES, norm_of, outcome_key, read_outcomes, row_key, write_outcomes

__all__ = ["ADDED", "ATTACK", "COLUMNS", "FLAGS", "META", "OUTCOMES", "SETTINGS", "AttackRows",
           "merge", "of_norm", "outcome_key", "read_csv", "read_flags_file", "read_outcomes", "read_stored",
           "row_key", "with_added", "write_flags"]

META = ["run", "dataset", "noise", "ratio", "method", "alpha", "dropout", "seed", "profile"]
SETTINGS = ["steps", "step_size", "restarts", "queries", "attack_seed"]
COLUMNS = META + ["checkpoint", "mode", "source", "twin", "attack", "norm", "eps", *SETTINGS, "n",
                  "correct", "accuracy", "seconds", "precision", "device", "date", "data",
                  "test_fingerprint"]
# attack.csv columns absent from files written before they existed, with the value they meant.
# Every row before the L2 threat model was added was L∞.
ADDED = {"data": "", "test_fingerprint": "", "twin": False, "restarts": 1, "queries": 0,
         "attack_seed": -1, "norm": DEFAULT_NORM}
# the order of attack.csv's rows: L∞ rows first, then L2 (their ε are in other units)
ORDER = ["norm", "checkpoint", "mode", "source", "attack", "precision", "n", "steps", "restarts",
         "queries", "attack_seed", "step_size", "eps"]


def with_added(rows: pd.DataFrame) -> pd.DataFrame:
    """attack.csv rows with the columns later robustmix versions added, at their defaults
    (in place, and returned)."""
    for col, default in ADDED.items():
        rows[col] = _filled(rows[col], default) if col in rows.columns else default
    return rows


def _filled(col: pd.Series, default):
    """col with its missing values set to default; a text column read all empty comes back as
    float NaN, which is made object first (pandas will not fill floats with a string)."""
    if isinstance(default, str):
        col = col.astype(object)
    return col.fillna(default)


def of_norm(rows: pd.DataFrame | None, norm: str = DEFAULT_NORM) -> pd.DataFrame | None:
    """The rows of one threat model (a row without a norm is L∞), for readers that must never
    put L2 and L∞ rows in one table (the report reads the L∞ rows only); None stays None."""
    if rows is None or not len(rows.columns) or "norm" not in rows.columns:
        return rows if norm == DEFAULT_NORM else (None if rows is None else rows.iloc[0:0])
    return rows[rows["norm"].fillna(DEFAULT_NORM) == norm]


def _read_as_found(path: Path) -> pd.DataFrame | None:
    """A CSV as it is on disk: None when absent, an empty frame for an empty file; UsageError
    when it cannot be read."""
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (OSError, pd.errors.ParserError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None


def read_csv(run: Path) -> pd.DataFrame | None:
    """attack.csv of a run as it is on disk, for readers that take what they find (the
    report): None when there is none, an empty frame for an empty file; UsageError when it
    cannot be read."""
    return _read_as_found(Path(run) / ATTACK)


@dataclass(frozen=True)
class AttackRows:
    """A run's stored attack rows as last read or written: attack.csv (every column, `ADDED`
    filled) and the per-image outcome of each row that has one (key text -> correct mask)."""

    rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS))
    outcomes: Mapping[str, np.ndarray] = field(default_factory=dict)

    def done(self) -> set[tuple]:
        """The keys of the rows whose outcomes are stored (rows written before outcomes were
        stored are computed once more)."""
        return {row_key(r) for r in self.rows.to_dict("records")
                if outcome_key(r) in self.outcomes}

    def fingerprint(self) -> str | None:
        """The test-image fingerprint the rows name (the first), None when none does."""
        known = [str(v) for v in self.rows["test_fingerprint"] if isinstance(v, str) and v]
        return known[0] if known else None

    def matching(self, keys: set[tuple]) -> pd.DataFrame:
        """The rows whose key is in keys."""
        return self.rows[[row_key(r) in keys for r in self.rows.to_dict("records")]]


def read_stored(run: Path) -> AttackRows:
    """A run's rows and outcomes for the attack runner: empty for a run never attacked;
    UsageError (move the file away) for an attack.csv it cannot use."""
    path = Path(run) / ATTACK
    if not path.exists():
        return AttackRows(outcomes=read_outcomes(run))
    try:
        df = pd.read_csv(path)
    except Exception as e:
        raise UsageError(f"cannot read {path} ({type(e).__name__}); move it away to start "
                         "afresh") from None
    for col, default in ADDED.items():  # absent from files written before they existed
        if col not in df.columns:
            df[col] = default
        df[col] = _filled(df[col], default).astype(type(default))
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UsageError(f"{path} lacks columns {', '.join(missing)}; move it away to start afresh")
    return AttackRows(df[COLUMNS], read_outcomes(run))


def merge(run: Path, stored: AttackRows, new_rows: Sequence[dict],
          new_outcomes: Mapping[str, np.ndarray]) -> AttackRows:
    """Merge new rows into the run's attack.csv (replacing rows with the same key), atomically:
    their outcomes first, so that a row in attack.csv always has its outcomes stored. Returns
    the run's rows as now written (stored as it is when there is nothing new)."""
    if not new_rows:
        return stored
    outcomes = {**stored.outcomes, **new_outcomes}
    write_outcomes(run, outcomes)
    new = pd.DataFrame(list(new_rows), columns=COLUMNS)
    new["norm"] = [norm_of(r) for r in new_rows]  # a row given without a norm is L∞
    keys = {row_key(r) for r in new_rows}
    old = stored.rows[[row_key(r) not in keys for r in stored.rows.to_dict("records")]]
    merged = pd.concat([df for df in (old, new) if len(df)], ignore_index=True)
    merged = merged.sort_values(ORDER, kind="stable")
    write_csv(Path(run) / ATTACK, merged[COLUMNS])
    return AttackRows(merged[COLUMNS].reset_index(drop=True), outcomes)


def read_flags_file(run: Path) -> pd.DataFrame | None:
    """attack_flags.csv as written (an empty frame for an empty file), None when there is none;
    the report computes flags from the rows and reads this only for a run whose rows it cannot."""
    return _read_as_found(Path(run) / FLAGS)


def write_flags(run: Path, stored: AttackRows) -> pd.DataFrame:
    """The run's gradient-masking flags over all its rows, written to attack_flags.csv (only
    when they changed, so a rerun with nothing to compute leaves the run's files as they were)."""
    flags = check_flags(stored.rows)
    path = Path(run) / FLAGS
    buf = io.StringIO()
    flags.to_csv(buf, index=False)
    if not path.exists() or path.read_text() != buf.getvalue():
        write_csv(path, flags)
    return flags


def write_evaluated(out: Path, rows: pd.DataFrame, flags: pd.DataFrame) -> None:
    """attack.csv and its flags file of an evaluated (not trained) model's folder, written
    atomically in one place with the runs' own rows, so the schema has one owner."""
    write_csv(Path(out) / ATTACK, rows)
    write_csv(Path(out) / FLAGS, flags)
