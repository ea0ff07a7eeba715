"""The report reads corruptions.csv (issue 28): per method, clean and corrupted accuracy, their
calibration, and mCE against ERM of the same seed, with intervals over seeds only from
MIN_SEEDS seeds on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_fixtures import Spec, write_fixture

from robustmix import report
from robustmix.cli import run_main
from robustmix.evaluation.corruption_runs import COLUMNS
from robustmix.reporting import results as R
from robustmix.reporting.corruption_tables import corruption_table

SPECS = tuple(Spec(0.5, m, a, 0.0, seed, 0.6, 3, 0.5, 0.7, 0.03)
              for m, a in (("erm", 0.0), ("mixup", 32.0)) for seed in (0, 1, 2))
SETS = [("fog", 1), ("fog", 5), ("contrast", 3)]


def accuracy(method: str, seed: int, corruption: str, severity: int) -> float:
    """Made-up accuracies: mixup 5 points above ERM under every corruption, seeds 1 point apart."""
    base = 0.8 if corruption == "clean" else 0.7 - 0.02 * severity
    return base + (0.05 if method == "mixup" and corruption != "clean" else 0) + 0.01 * seed


def write_corruptions(run: Path, s: Spec) -> None:
    rows = []
    for c, sev in [("clean", 0), *SETS]:
        acc = accuracy(s.method, s.seed, c, sev)
        rows.append({"run": s.name, "dataset": "cifar10", "noise": "sym", "ratio": s.ratio,
                     "method": s.method, "alpha": s.alpha, "dropout": s.dropout, "seed": s.seed,
                     "profile": "quick", "checkpoint": "last", "corruption": c, "severity": sev,
                     "n": 1000, "correct": round(1000 * acc), "accuracy": acc,
                     "ci_low": acc - 0.03, "ci_high": acc + 0.03,
                     "ece": 0.05 if s.method == "mixup" else 0.1 + 0.01 * sev, "nll": 1.0,
                     "corruption_seed": 0, "constants": "cifar10-c", "package": "p",
                     "precision": "fp32", "device": "cpu", "seconds": 1.0, "date": "d",
                     "data": "x", "test_fingerprint": "f"})
    pd.DataFrame(rows, columns=COLUMNS).to_csv(run / "corruptions.csv", index=False)


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    for s in write_fixture(root, SPECS, attacks=False, unfinished=False):
        write_corruptions(root / s.name, s)
    return root


def test_corruption_table_from_runs(runs):
    res = R.load_results([runs])
    assert len(res.corruptions) == len(SPECS) * (1 + len(SETS))
    t = corruption_table(res.corruptions).set_index("method")
    erm, mix = t.loc["erm"], t.loc["mixup"]

    def mean(m: str) -> float:
        return np.mean([np.mean([accuracy(m, s, c, v) for c, v in SETS]) for s in (0, 1, 2)])

    assert mix["corrupted_acc"] == pytest.approx(100 * mean("mixup"))
    assert erm["corrupted_acc"] == pytest.approx(100 * mean("erm"))
    assert mix["n_seeds"] == 3 and mix["sets"] == 3
    # three seeds: an interval over them, around the mean
    assert mix["corrupted_acc_lo"] < mix["corrupted_acc"] < mix["corrupted_acc_hi"]
    # mCE against ERM of the same seed: mixup's errors are ERM's minus 5 points on every set
    for_seed = [100 * np.mean([sum(1 - accuracy("mixup", s, c, v) for c, v in SETS if c == name)
                               / sum(1 - accuracy("erm", s, c, v) for c, v in SETS if c == name)
                               for name in ("fog", "contrast")]) for s in (0, 1, 2)]
    assert mix["mce_vs_erm"] == pytest.approx(np.mean(for_seed))
    assert np.isnan(erm["mce_vs_erm"])  # ERM is the baseline
    assert mix["corrupted_ece"] == pytest.approx(0.05)


def test_two_seeds_are_described_without_interval(runs):
    res = R.load_results([p for p in runs.iterdir() if not p.name.endswith("_s2")])
    t = corruption_table(res.corruptions).set_index("method")
    assert (t["n_seeds"] == 2).all() and t["corrupted_acc_lo"].isna().all()
    assert t["interval"].str.contains("described").all()


def test_report_writes_the_corruption_section(runs, tmp_path):
    out = tmp_path / "report"
    assert run_main(report.main, [str(runs), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "## Common corruptions" in md and "table_corruptions.csv" in md
    t = pd.read_csv(out / "table_corruptions.csv")
    assert set(t["method"]) == {"erm", "mixup"}


def test_no_corruption_rows_no_section(tmp_path):
    root = tmp_path / "runs"
    write_fixture(root, SPECS[:2], attacks=False, unfinished=False)
    out = tmp_path / "report"
    assert run_main(report.main, [str(root), "--out", str(out)]) == 0
    assert "Common corruptions" not in (out / "report.md").read_text()
    assert not (out / "table_corruptions.csv").exists()
