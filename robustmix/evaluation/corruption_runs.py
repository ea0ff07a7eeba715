"""The common-corruptions stage for trained runs: a finished run's checkpoint scored on corrupted
test images (robustmix.evaluation.corruptions), one tidy row per corruption and severity (and
the clean row) in the run's corruptions.csv.

The test images are the run's own (its test_n class-balanced subset unless n says otherwise),
from the data source it recorded, refused when their fingerprint differs from the one it was
evaluated on, exactly as the attack stage does. Each row is merged into corruptions.csv and the
file rewritten atomically as soon as it is computed (its per-image outcomes into
corruption_outcomes.npz first: evaluation/corruption_outcomes.py), under the run's lock, so an interrupted
stage resumes with the rows still missing; rows are keyed by checkpoint, corruption, severity,
n, seed, constants, precision and test-image fingerprint (force recomputes them).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..atomic import write_csv
from ..errors import UsageError
from ..runs.files import CORRUPTIONS as CORRUPTIONS_CSV
from . import corruptions as C

META = ["run", "dataset", "noise", "ratio", "method", "alpha", "dropout", "seed", "profile"]
# seed = the run's training seed; corruption_seed = the seed of the corruptions' random draws
COLUMNS = META + ["checkpoint", "corruption", "severity", "n", "correct", "accuracy", "ci_low",
                  "ci_high", "ece", "nll", "corruption_seed", "constants", "package", "precision",
                  "device", "seconds", "date", "data", "test_fingerprint"]
# columns newer than the first corruptions.csv: NaN in rows an earlier version wrote
ADDED = ("ece", "nll")
KEY = ["checkpoint", "corruption", "severity", "n", "corruption_seed", "constants", "precision",
       "test_fingerprint"]


@dataclass
class CorruptionSpec:
    """What to compute: the corrupt CLI's options."""

    corruptions: list[str] = field(default_factory=lambda: list(C.CORRUPTIONS))
    severities: list[int] = field(default_factory=lambda: list(C.SEVERITIES))
    seed: int = 0
    constants: str = "cifar10-c"
    checkpoint: str = "last"
    n: int | None = None  # None = the run's own test_n; 0 = all
    data: Path | None = None
    device: str = "auto"
    precision: str = "fp32"  # or bf16, or run = the run's training precision
    force: bool = False
    quiet: bool = False


_INTS = frozenset({"severity", "n", "corruption_seed"})


def key(row: dict) -> tuple:
    """A row's identity (KEY), typed so that rows read back from CSV match rows computed now."""
    return tuple(int(row[k]) if k in _INTS else str(row[k]) for k in KEY)


def sort_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One order whatever the order of computation: per setting, clean first, then the
    corruptions in the benchmark's order, each by severity."""
    order = {c: i for i, c in enumerate((C.CLEAN, *C.CORRUPTIONS))}
    rank = df["corruption"].map(lambda c: order.get(c, len(order)))
    out = df.assign(_rank=rank).sort_values(
        ["checkpoint", "constants", "corruption_seed", "precision", "n", "test_fingerprint",
         "_rank", "corruption", "severity"], kind="stable")
    return out.drop(columns="_rank")[COLUMNS].reset_index(drop=True)


def read_existing(run: Path) -> pd.DataFrame:
    path = Path(run) / CORRUPTIONS_CSV
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    try:
        df = pd.read_csv(path)
    except Exception as e:
        raise UsageError(f"cannot read {path} ({type(e).__name__}); move it away to start "
                         "afresh") from None
    for c in ADDED:
        if c not in df.columns:
            df[c] = float("nan")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UsageError(f"{path} lacks columns {', '.join(missing)}; move it away to start afresh")
    return df[COLUMNS]


def corrupt_runs(runs: Sequence[Path], spec: CorruptionSpec) -> pd.DataFrame:
    """Score every finished run named (or inside a named folder) on the corrupted test images;
    returns the rows asked for (computed now or found in each corruptions.csv)."""
    from ..evaluation.device import configure_backends, resolve_device
    from ..runs.rundir import finished_runs

    C.check_request(spec.corruptions, spec.severities, spec.constants)
    C.image_seeds(spec.seed, spec.corruptions[0], spec.severities[0], 1)  # checks the seed
    C.package()  # a missing extra is reported before anything is loaded
    device = resolve_device(spec.device)
    configure_backends(device)
    paths = list(dict.fromkeys(p.resolve() for p in finished_runs([Path(r) for r in runs])))
    tables = [corrupt_run(p, spec, device) for p in paths]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)


def corrupt_run(run: Path, spec: CorruptionSpec, device=None) -> pd.DataFrame:
    """One run: its missing rows computed and merged into its corruptions.csv; returns its rows
    for spec."""
    import numpy as np

    from ..attacks.rows import read_stored
    from ..attacks.runner import data_key, expected_fingerprint, open_run
    from ..data.datasets import load_dataset
    from ..evaluation.device import resolve_device
    from ..evaluation.predict import test_indices
    from ..runs.checkpoints import load_model
    from ..runs.lock import RunBusy, RunLock
    from ..runs.provenance import device_name

    device = device or resolve_device(spec.device)
    r = open_run(Path(run), "run")
    model, cfg = load_model(r.path, spec.checkpoint, device)
    precision = cfg.precision if spec.precision == "run" else spec.precision
    dataset, source = data_key(r, spec.data)
    ds = load_dataset(dataset, source)
    if ds.x_test.shape[1:] != (C.SIZE, C.SIZE, 3):
        raise UsageError(f"{r.path.name}: common corruptions are CIFAR-10's (32 x 32 x 3 images); "
                         f"its dataset {dataset} has {'x'.join(map(str, ds.x_test.shape[1:]))}")
    fp = ds.test_fingerprint()
    expected = expected_fingerprint(r, read_stored(r.path))
    if expected is not None and expected != fp:
        raise UsageError(f"the test images of {ds.source} (fingerprint {fp}) differ from those "
                         f"{r.name} was evaluated on ({expected}); pass --data with the same copy "
                         "it was trained on")
    n = cfg.test_n if spec.n is None else (spec.n or None)
    idx = test_indices(ds.y_test, n)
    x, y = ds.x_test[idx], ds.y_test[idx]
    meta = {"run": r.name, **{k: getattr(cfg, k) for k in META[1:]},
            "checkpoint": spec.checkpoint}
    label = device_name(device)
    const = {"corruption_seed": spec.seed, "constants": spec.constants, "precision": precision,
             "n": len(x), "test_fingerprint": fp}
    wanted = {key({**meta, **const, "corruption": c, "severity": s})
              for c, s in [(C.CLEAN, 0)] + [(c, s) for c in spec.corruptions
                                            for s in spec.severities]}

    lock = RunLock(r.path)
    try:
        lock.__enter__()
    except RunBusy as e:
        print(f"robustmix.corrupt: waiting for {r.name}: another process is writing it "
              f"({e.holder})", flush=True)
        lock = RunLock(r.path, wait=True)
        lock.__enter__()
    try:
        from .corruption_outcomes import Outcome, key_text, read_outcomes, write_outcomes

        state = {"rows": read_existing(r.path), "outcomes": read_outcomes(r.path),
                 "pending": None}  # read again under the lock
        done = set() if spec.force else {key(row) for row in state["rows"].to_dict("records")}

        def skip(c: str, s: int) -> bool:
            return key({**meta, **const, "corruption": c, "severity": s}) in done

        def save(row: dict) -> None:
            full = {**meta, **{k: row[k] for k in ("corruption", "severity", "n", "correct",
                                                    "accuracy", "ci_low", "ci_high", "ece", "nll",
                                                    "constants", "package", "seconds")},
                    "corruption_seed": row["seed"], "precision": precision, "device": label,
                    "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "data": ds.source, "test_fingerprint": fp}
            k = key(full)
            if state["pending"] is not None:
                state["outcomes"][key_text(k)] = state["pending"]
                write_outcomes(r.path, state["outcomes"])  # before the row that points to it
                state["pending"] = None
            old = state["rows"]
            old = old[[key(o) != k for o in old.to_dict("records")]]
            merged = pd.concat([df for df in (old, pd.DataFrame([full], columns=COLUMNS))
                                if len(df)], ignore_index=True)
            merged = sort_rows(merged)
            write_csv(r.path / CORRUPTIONS_CSV, merged)
            state["rows"] = merged

        progress = None
        if not spec.quiet:
            total = len(wanted)

            def progress(what: str, i: int) -> None:
                print(f"robustmix.corrupt: {r.name}: {what} ({i + 1}/{total})", flush=True)

        def keep(c: str, s: int, probs: np.ndarray) -> None:
            state["pending"] = Outcome.from_probs(probs, np.asarray(y))

        C.corruption_accuracy(model, x, np.asarray(y), spec.corruptions, spec.severities,
                              seed=spec.seed, constants=spec.constants, clean=True,
                              precision=precision, progress=progress, on_row=save, skip=skip,
                              on_probs=keep)
    finally:
        lock.__exit__(None, None, None)
    rows = state["rows"]
    return rows[[key(o) in wanted for o in rows.to_dict("records")]].reset_index(drop=True)
