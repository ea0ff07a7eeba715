"""The report reads each run's attack.csv once: load_results keeps its rows and per-image
outcomes (Results.stored_attacks), and the verdicts pair attacked runs by image from them
instead of reading the file again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_fixtures import Spec, write_fixture, write_nested_outcomes

from robustmix.reporting import results as R
from robustmix.reporting import verdicts as V

SPECS = [Spec(0.5, m, a, 0.0, s, peak + 0.01 * s, 3, final + 0.01 * s, 0.9, 0.02)
         for m, a, peak, final in (("erm", 0.0, 0.62, 0.40), ("mixup", 32.0, 0.64, 0.43))
         for s in range(3)]
CLAIM = "mixup keeps more accuracy than ERM under white-box FGSM at ε = 8/255"


@pytest.fixture
def root(tmp_path):
    write_fixture(tmp_path, SPECS, unfinished=False)
    for s in SPECS:
        write_nested_outcomes(tmp_path / s.name)
    return tmp_path


def test_each_attack_csv_is_read_once_for_the_whole_verdict_table(root, monkeypatch):
    reads: list[str] = []
    real = pd.read_csv

    def counting(path, *a, **kw):
        if Path(str(path)).name == "attack.csv":
            reads.append(str(Path(path).parent.name))
        return real(path, *a, **kw)

    monkeypatch.setattr(pd, "read_csv", counting)
    res = R.load_results([root])
    t = V.verdict_table(res)
    assert sorted(reads) == sorted(s.name for s in SPECS)  # once per run, no more
    # and the pairing by image did happen, from what was read
    paired = t[t["claim"] == CLAIM].iloc[0]
    assert "combined variance" in paired["interval_method"]
    assert "binomial" not in paired["interval_method"]


def test_attack_correct_reads_the_stored_rows_not_the_folder(root):
    res = R.load_results([root])
    erm0 = next(s for s in SPECS if s.method == "erm" and s.seed == 0)
    path = str(root / erm0.name)
    stored = res.stored_attacks[path]
    mask = R.attack_correct(stored, "last", "fgsm", "white-box", 8.0)
    want = 100 * max(0.0, erm0.final - erm0.slope * 8.0)  # the fixture's accuracy there
    assert mask is not None and len(mask) == 500
    assert 100 * mask.mean() == pytest.approx(round(5 * want) / 5)  # 500 images: 0.2 % steps
    (root / erm0.name / "attack.csv").unlink()  # gone from disk: the stored rows still answer
    again = R.attack_correct(stored, "last", "fgsm", "white-box", 8.0)
    assert np.array_equal(mask, again)
    assert R.attack_correct(None, "last", "fgsm", "white-box", 8.0) is None
    assert R.attack_correct(stored, "last", "fgsm", "white-box", 3.0) is None  # not attacked
