"""robustmix.compare: two reports' verdicts side by side (issue 25's "the fast study's verdict
table beside the quick study's"), on small hand-made report folders."""

from __future__ import annotations

import pandas as pd
import pytest

from robustmix import compare as cli
from robustmix.cli import run_main
from robustmix.reporting import compare as C


def _verdict(claim: str, verdict: str, effect: float, ratio: float = 0.5,
             checkpoint: str = "last", family: str = "Table 2 ordering", n: int = 3) -> dict:
    half = 1.0 if verdict in ("supported", "contradicted") else abs(effect) + 1.0
    return {"family": family, "claim": claim, "condition": "x", "ratio": ratio,
            "checkpoint": checkpoint, "verdict": verdict, "effect": effect,
            "lo": effect - half, "hi": effect + half, "n_seeds": n}


def _report(folder, verdicts: list[dict], alpha: float) -> None:
    folder.mkdir(parents=True)
    pd.DataFrame(verdicts).to_csv(folder / C.VERDICTS_CSV, index=False)
    runs = [{"method": m, "alpha": alpha if m == "mixup" else 0.0, "dropout": 0.0, "seed": s,
             "ratio": 0.5, "model": "fastnet", "width": 32, "train_images": 45000, "epochs": 15}
            for m in ("erm", "mixup") for s in range(3)]
    pd.DataFrame(runs).to_csv(folder / C.RUNS_CSV, index=False)


@pytest.fixture
def reports(tmp_path):
    quick = [_verdict("mixup has lower test error than ERM", "supported", 6.0),
             _verdict("mixup + dropout has lower test error than mixup", "supported", 2.0),
             _verdict("ERM + dropout has lower test error than ERM", "inconclusive", 0.8),
             _verdict("mixup has lower test error than ERM + dropout", "inconclusive", 1.0),
             _verdict("ERM memorises the corrupted labels (share above its own mistakes' share, "
                      "approximate, mean 5.7 %)", "supported", 37.0, family="memorisation"),
             _verdict("mixup has lower test error than ERM", "described", 2.0, ratio=0.2, n=1)]
    fast = [_verdict("mixup has lower test error than ERM", "contradicted", -7.0),
            _verdict("mixup + dropout has lower test error than mixup", "inconclusive", -1.0),
            _verdict("ERM + dropout has lower test error than ERM", "contradicted", -19.0),
            _verdict("mixup has lower test error than ERM + dropout", "inconclusive", 3.0),
            _verdict("ERM memorises the corrupted labels (share above its own mistakes' share, "
                     "measured, mean 2.6 %)", "supported", 2.7, family="memorisation")]
    _report(tmp_path / "quick", quick, alpha=4.0)
    _report(tmp_path / "fast", fast, alpha=32.0)
    return tmp_path


def test_each_pair_of_verdicts_gets_its_outcome(reports):
    a = C.load_study(reports / "quick", "quick")
    b = C.load_study(reports / "fast", "fast")
    t = C.compare(a, b)
    got = dict(zip(zip(t["claim"], t["ratio"], strict=True), t["outcome"], strict=True))
    assert got[("mixup has lower test error than ERM", 0.5)] == C.REVERSES
    assert got[("mixup + dropout has lower test error than mixup", 0.5)] == "decided at quick only"
    assert got[("ERM + dropout has lower test error than ERM", 0.5)] == "decided at fast only"
    assert got[("mixup has lower test error than ERM + dropout", 0.5)] == C.UNDECIDED
    # the memorisation claims differ only in their parenthesised mean: one claim, held at both
    assert got[("ERM memorises the corrupted labels", 0.5)] == C.HOLDS
    assert got[("mixup has lower test error than ERM", 0.2)] == "only in quick"
    assert len(t) == 6
    flips = C.sign_changes(t)
    assert set(flips["claim"]) == {"mixup has lower test error than ERM",
                                   "mixup + dropout has lower test error than mixup",
                                   "ERM + dropout has lower test error than ERM"}


def test_outcome_of_missing_and_described_verdicts():
    assert C.outcome("described", "supported", "q", "f") == "decided at f only"
    assert C.outcome("described", "inconclusive") == C.UNDECIDED
    assert C.outcome(float("nan"), "supported", "q", "f") == "only in f"
    assert C.outcome("contradicted", "contradicted") == C.HOLDS


def test_cli_writes_the_table_and_refuses_a_folder_it_did_not_write(reports, capsys):
    out = reports / "cmp"
    assert cli.main([str(reports / "quick"), str(reports / "fast"), "--names", "quick,fast",
                     "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "| holds | 1 |" in text and "| reverses | 1 |" in text
    assert "mixup (α = 4)" in text and "mixup (α = 32)" in text  # each study's settings
    assert "**reverses**" in text and "python -m robustmix.compare" in text
    assert "only in quick" not in text.split("| outcome |")[-1].split("claim(s) in one")[0]
    assert len(pd.read_csv(out / "table_compare.csv")) == 6
    # rerunning into its own folder is fine; a folder holding another report.md is refused
    assert cli.main([str(reports / "quick"), str(reports / "fast"), "--names", "quick,fast",
                     "--out", str(out), "--all"]) == 0
    assert "only in quick" in (out / "report.md").read_text()
    other = reports / "other"
    other.mkdir()
    (other / "report.md").write_text("# mine\n")
    assert run_main(cli.main, [str(reports / "quick"), str(reports / "fast"), "--names",
                                   "q,f", "--out", str(other)]) == 2
    assert (other / "report.md").read_text() == "# mine\n"
    assert not (other / "table_compare.csv").exists()
    assert "not written by robustmix.compare" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["{r}/quick", "{r}/nowhere"], "is not a robustmix report folder"),
    (["{r}/quick", "{r}/fast", "--names", "one"], "--names takes two"),
    (["{r}/quick", "{r}/quick"], "need different names"),
])
def test_bad_input_is_one_line_and_writes_nothing(reports, capsys, args, message):
    out = reports / "cmp_bad"
    argv = [a.format(r=reports) for a in args] + ["--out", str(out)]
    assert run_main(cli.main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_settings_name_each_alpha_with_the_ratios_it_ran_at(tmp_path):
    runs = pd.DataFrame([{"method": "mixup", "alpha": a, "dropout": 0.0, "seed": s, "ratio": r,
                          "model": "preact_resnet18", "width": 16, "train_images": 2000,
                          "epochs": 80}
                         for r, a in ((0.0, 1.0), (0.2, 4.0), (0.5, 4.0)) for s in range(3)])
    study = C.Study("quick", tmp_path, pd.DataFrame(), runs)
    text = C.settings(study)
    assert "mixup (α = 1 at 0 %, 4 at 20/50 %): seeds 3 at 0 %, 3 at 20 %, 3 at 50 %" in text
    assert "2,000 training images" in text


def test_setting_text_is_shared_and_names_a_zero_among_changing_values():
    from robustmix.reporting.columns import setting_text
    rows = pd.DataFrame({"ratio": [0.0, 0.5, 0.5, 0.8], "alpha": [1.0, 32.0, 32.0, 32.0],
                         "dropout": [0.0, 0.1, 0.1, 0.1]})
    assert setting_text(rows) == "α = 1 at 0 %, 32 at 50/80 %; p = 0 at 0 %, 0.1 at 50/80 %"
    assert setting_text(rows, unit="%") == "α = 1 at 0%, 32 at 50/80%; p = 0 at 0%, 0.1 at 50/80%"
    assert setting_text(rows.assign(alpha=0.0, dropout=0.0)) == ""
    assert setting_text(rows.assign(alpha=4.0)).startswith("α = 4; p = 0 at 0 %")
