"""One module owns a run's attack rows (issue 27): attacks/rows.py reads, merges and writes
attack.csv, its per-image outcomes and flags; the runner only plans and orchestrates, and the
report reads each run's attack.csv once."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_fixtures import write_fixture

from robustmix.attacks import rows as AR
from robustmix.attacks import runner
from robustmix.errors import UsageError

ROOT = Path(__file__).resolve().parents[1] / "robustmix"


def _row(eps: float, accuracy: float, **kw) -> dict:
    r = {c: "" for c in AR.COLUMNS}
    r.update({"run": "r", "dataset": "cifar10", "noise": "sym", "ratio": 0.2, "method": "erm",
              "alpha": 0.0, "dropout": 0.0, "seed": 0, "profile": "quick", "checkpoint": "last",
              "mode": "white-box", "source": "r", "twin": False, "attack": "fgsm", "eps": eps,
              "steps": 1, "step_size": eps, "restarts": 1, "queries": 0, "attack_seed": -1,
              "n": 4, "correct": int(4 * accuracy), "accuracy": accuracy, "seconds": 1.0,
              "precision": "fp32", "device": "cpu", "date": "2026-12-02", "data": "d",
              "test_fingerprint": "f"})
    r.update(kw)
    return r


def test_merge_replaces_rows_by_key_and_stores_outcomes_first(tmp_path):
    stored = AR.read_stored(tmp_path)
    assert stored.rows.empty and not stored.outcomes and list(stored.rows.columns) == AR.COLUMNS
    rows = [_row(2.0, 0.5), _row(0.0, 1.0)]
    masks = {AR.outcome_key(r): np.array([1, 1, r["eps"] == 0, 0], bool) for r in rows}
    stored = AR.merge(tmp_path, stored, rows, masks)
    assert (tmp_path / AR.OUTCOMES).exists()
    on_disk = pd.read_csv(tmp_path / AR.ATTACK)
    assert list(on_disk.columns) == AR.COLUMNS and on_disk["eps"].tolist() == [0.0, 2.0]
    again = AR.read_stored(tmp_path)
    assert again.done() == stored.done() == {AR.row_key(r) for r in rows}
    # a row with the same key replaces the stored one; nothing new writes nothing
    redo = _row(2.0, 0.25)
    merged = AR.merge(tmp_path, again, [redo], {AR.outcome_key(redo): np.zeros(4, bool)})
    assert merged.rows["accuracy"].tolist() == [1.0, 0.25]
    assert AR.merge(tmp_path, merged, [], {}) is merged
    with pytest.raises(dataclasses.FrozenInstanceError):
        merged.rows = pd.DataFrame()


def test_rows_written_by_older_versions_still_load(tmp_path):
    old = pd.DataFrame([_row(0.0, 1.0)]).drop(columns=list(AR.ADDED))
    old.to_csv(tmp_path / AR.ATTACK, index=False)
    got = AR.read_stored(tmp_path).rows
    assert list(got.columns) == AR.COLUMNS
    assert got.iloc[0][list(AR.ADDED)].tolist() == list(AR.ADDED.values())
    assert AR.AttackRows(got).fingerprint() is None
    pd.DataFrame([{"run": "r"}]).to_csv(tmp_path / AR.ATTACK, index=False)
    with pytest.raises(UsageError, match="lacks columns"):
        AR.read_stored(tmp_path)


def test_runner_state_is_frozen():
    for cls in (runner.Run, runner.Group, runner.AttackResults, AR.AttackRows):
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls


def test_only_rows_reads_or_writes_attack_files():
    # the file names appear elsewhere only where a file is listed or named in a message
    named = {"ATTACK", "OUTCOMES", "FLAGS"}
    allowed = {"attacks/rows.py", "attacks/outcomes.py", "attacks/flags.py", "runs/files.py",
               "reporting/evidence.py", "attack.py"}
    found = []
    for p in sorted(ROOT.rglob("*.py")):
        rel = str(p.relative_to(ROOT))
        if rel in allowed:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Name) and node.id in named:
                found.append(f"{rel}:{node.lineno} {node.id}")
            if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith(
                    "files") and any(a.name == "ATTACK" for a in node.names):
                found.append(f"{rel}:{node.lineno} imports ATTACK")
    assert not found, found


def test_report_reads_each_attack_csv_once(tmp_path, monkeypatch):
    from robustmix.reporting import results

    write_fixture(tmp_path, unfinished=False)
    reads: list[str] = []
    real = pd.read_csv

    def counting(path, *a, **kw):
        if Path(str(path)).name == AR.ATTACK:
            reads.append(str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(pd, "read_csv", counting)
    res = results.load_results([tmp_path])
    assert len(res.attacks) and reads
    assert len(reads) == len(set(reads)) == len(list(tmp_path.glob(f"*/{AR.ATTACK}")))
