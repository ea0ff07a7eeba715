"""The report reads folders of `python -m robustmix.evaluate` beside trained runs (issue 28):
one described row per outside model, its numbers those of the folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from report_fixtures import SPECS, write_fixture

from robustmix import report
from robustmix.cli import run_main
from robustmix.errors import UsageError
from robustmix.reporting import results as R

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    import robustmix.evaluate as evaluate_cli

    root = tmp_path_factory.mktemp("outside")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 10))
    torch.jit.save(torch.jit.script(net), root / "net.ts")
    rng = np.random.default_rng(0)
    np.savez(root / "images.npz", x=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
             y=np.arange(40) % 10)
    out = root / "ev" / "net"
    assert run_main(evaluate_cli.main, ["--torchscript", str(root / "net.ts"), "--data",
                                        str(root / "images.npz"), "--n", "0", "--attacks",
                                        "fgsm", "--eps", "0,2", "--device", "cpu",
                                        "--resamples", "50", "--out", str(out)]) == 0
    return out


def test_evaluated_folder_beside_trained_runs(evaluated, tmp_path):
    runs = tmp_path / "runs"
    write_fixture(runs, SPECS[:2], attacks=False, unfinished=False)
    res = R.load_results([runs, evaluated])
    assert len(res.runs) == 2  # the outside model is no trained run
    row = res.evaluated.iloc[0]
    summary = json.loads((evaluated / "summary.json").read_text())
    assert row["model"] == "net" and row["images"] == 40
    assert row["clean_acc"] == pytest.approx(100 * summary["clean_accuracy"])
    assert row["clean_lo"] <= row["clean_acc"] <= row["clean_hi"]
    cal = pd.read_csv(evaluated / "calibration.csv").set_index("metric")
    assert row["ece"] == pytest.approx(cal.loc["ece", "value"])
    out = tmp_path / "report"
    assert run_main(report.main, [str(runs), str(evaluated), "--out", str(out)]) == 0
    assert "## Models evaluated from outside" in (out / "report.md").read_text()
    assert pd.read_csv(out / "table_evaluated.csv")["model"].tolist() == ["net"]


def test_evaluated_folders_alone_are_a_one_line_error(evaluated):
    with pytest.raises(UsageError, match="no trained run"):
        R.load_results([evaluated])
