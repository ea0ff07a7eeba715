"""The report: every figure and table is written, its numbers match the fixture (full-test
errors of the last, selected and test-selected checkpoints, with intervals), report.md opens with
the verdict table and names checkpoints as last / selected / test-selected, links resolve, older
runs still report, and bad input is one line with exit status 2."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pandas as pd
import pytest
from report_fixtures import (
    EPS,
    FULL_N,
    PAPER,
    SPECS,
    expected_attack_accuracy,
    expected_error,
    write_fixture,
)

from robustmix import report
from robustmix.cli import run_main
from robustmix.reporting import results as R
from robustmix.training.methods import BUILTIN_METHODS, METHODS

FIGS = ("fig_noise", "fig_curves", "fig_attack", "fig_ablation")  # each with its .csv
TABLES = ("table_verdicts", "table_noise", "table_memorisation", "table_attack",
          "table_ablation", "table_sweep", "table_runs")
KINDS = ("last", "selected", "test_selected")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The fixture runs and the report written from them, through the command-line entry
    point's wrapper (run_main: UsageError -> exit 2), in this process to keep the tests fast."""
    tmp = tmp_path_factory.mktemp("report")
    root = tmp / "runs"
    write_fixture(root)
    notes = tmp / "notes.md"
    notes.write_text("Hand-written note: the fixture is synthetic.\n")
    out = tmp / "out"
    rc = run_main(report.main, [str(root), "--out", str(out), "--title", "Fixture report",
                                "--notes", str(notes)])
    return {"root": root, "out": out, "rc": rc}


def _close(a, b, tol=1e-3) -> bool:
    return abs(float(a) - float(b)) <= tol


def _expected_settings() -> dict:
    """(ratio, method) -> (alpha, dropout, {kind: [errors (%)]}) at the chosen setting: the
    highest noisy-validation accuracy, which the fixture makes rise with the peak accuracy."""
    groups: dict = {}
    for s in SPECS:
        groups.setdefault((s.ratio, s.method), {}).setdefault((s.alpha, s.dropout), []).append(s)
    out = {}
    for key, settings in groups.items():
        def mean_peak(item):
            return statistics.mean(s.peak for s in item[1])
        (alpha, dropout), specs = max(settings.items(), key=mean_peak)
        out[key] = (alpha, dropout, {k: [expected_error(s, k) for s in specs] for k in KINDS})
    return out


def test_command_line_writes_every_figure_and_table(built):
    out = built["out"]
    assert built["rc"] == 0
    for f in FIGS:
        for ext in ("png", "pdf", "csv"):
            assert (out / f"{f}.{ext}").stat().st_size > 0, f"{f}.{ext}"
        assert (out / f"{f}.pdf").read_bytes()[:4] == b"%PDF"
    for t in TABLES:
        assert (out / f"{t}.csv").stat().st_size > 0, t
    for ext in ("png", "pdf"):  # the forest plot's data is table_verdicts.csv
        assert (out / f"fig_forest.{ext}").stat().st_size > 0
    assert (out / "report.md").exists()
    from PIL import Image

    with Image.open(out / "fig_noise.png") as im:
        assert round(im.info["dpi"][0]) >= 150
    assert not list(out.glob("*.pt")) and not list(out.glob(".*.tmp"))
    assert sum(p.stat().st_size for p in out.iterdir()) < 3_000_000  # small enough to commit


def test_noise_table_matches_fixture_and_paper(built):
    t = pd.read_csv(built["out"] / "table_noise.csv")
    expected = _expected_settings()
    assert len(t) == len(expected)
    for _, r in t.iterrows():
        alpha, dropout, errors = expected[(r["ratio"], r["method"])]
        assert (r["alpha"], r["dropout"]) == (alpha, dropout)
        assert r["chosen_by"] == "noisy validation accuracy"
        n = len(errors["last"])
        assert r["n_seeds"] == n
        for kind in KINDS:
            e = errors[kind]
            assert _close(r[f"{kind}_error_mean"], statistics.mean(e)), (kind, r.to_dict())
            assert r[f"{kind}_error_lo"] < r[f"{kind}_error_mean"] < r[f"{kind}_error_hi"]
            assert r[f"{kind}_error_images"] == FULL_N
            if n > 1:
                assert _close(r[f"{kind}_error_std"], statistics.stdev(e))
                assert r[f"{kind}_error_over"] == f"{n} training seeds, 1 noise draw: {FULL_N:,} test images only"
            else:
                assert pd.isna(r[f"{kind}_error_std"])
                assert r[f"{kind}_error_over"] == f"1 training seed, 1 noise draw: {FULL_N:,} test images only"
        ref = PAPER.get((r["ratio"], r["method"]))
        best, last = errors["test_selected"], errors["last"]
        if ref is None:
            assert pd.isna(r["paper_test_selected_error"]) and pd.isna(r["test_selected_diff"])
        else:
            assert _close(r["paper_test_selected_error"], ref[0])
            assert _close(r["paper_last_error"], ref[1])
            assert _close(r["test_selected_diff"], statistics.mean(best) - ref[0])
            assert _close(r["last_diff"], statistics.mean(last) - ref[1])
    # the two-seed ERM at 50%: (45, 43) test-selected error, (60, 56) last error
    erm = t[(t["ratio"] == 0.5) & (t["method"] == "erm")].iloc[0]
    assert (erm["n_seeds"], erm["test_selected_error_mean"], erm["last_error_mean"]) == (2, 44.0, 58.0)
    assert _close(erm["test_selected_error_std"], 2 ** 0.5)
    assert _close(erm["test_selected_diff"], 44.0 - 18.8)
    # two seeds: no t-interval over them (t(1, .975) = 12.706 times the se of 1); the interval
    # covers the 5,000 test images of the seed mean only (about ±1.4 points)
    assert erm["test_selected_error_hi"] - 44.0 < 3
    fig = pd.read_csv(built["out"] / "fig_noise.csv")
    row = fig[(fig["ratio"] == 0.5) & (fig["method"] == "erm")].iloc[0]
    assert _close(row["test_selected_acc_mean"], 56.0)
    assert _close(row["test_selected_acc_lo"], 100 - erm["test_selected_error_hi"])


def test_sweep_and_ablation_tables(built):
    sweep = pd.read_csv(built["out"] / "table_sweep.csv")
    assert set(zip(sweep["method"], sweep["alpha"], sweep["chosen"], strict=True)) == {
        ("mixup", 8.0, False), ("mixup", 32.0, True)}
    assert set(sweep["chosen_by"]) == {"noisy validation accuracy"}
    assert set(sweep["ratio"]) == {0.5}
    abl = pd.read_csv(built["out"] / "table_ablation.csv")
    assert set(abl["ratio"]) == {0.5}
    assert set(abl["method"]) == {"erm", "mixup", "mixup_same_class"}
    row = abl[abl["method"] == "mixup_same_class"].iloc[0]
    assert bool(row["ablation"]) and _close(row["test_selected_error_mean"], 42.0)
    assert _close(row["last_error_mean"], 48.0)


def test_attack_table_matches_fixture(built):
    t = pd.read_csv(built["out"] / "table_attack.csv")
    assert set(t["mode"]) == {"white-box", "black-box"} and set(t["attack"]) == {"fgsm", "ifgsm"}
    assert sorted(set(t["eps"])) == list(EPS)
    settings = {(s.ratio, s.method, s.alpha, s.dropout) for s in SPECS}
    assert len(t) == len(settings) * 2 * 2 * len(EPS)
    for _, r in t.iterrows():
        specs = [s for s in SPECS if (s.ratio, s.method, s.alpha, s.dropout)
                 == (r["ratio"], r["method"], r["alpha"], r["dropout"])]
        accs = [expected_attack_accuracy(s, r["attack"], r["mode"], r["eps"]) for s in specs]
        assert _close(r["accuracy_mean"], statistics.mean(accs)), r.to_dict()
        if len(accs) > 1:
            assert _close(r["accuracy_std"], statistics.stdev(accs))
        assert r["n_runs"] == len(specs)
        assert r["sources"] == ("itself" if r["mode"] == "white-box" else "erm")
        assert r["accuracy_lo"] <= r["accuracy_mean"] <= r["accuracy_hi"]
        seeds = f"{len(specs)} training seed{'s' if len(specs) > 1 else ''}"
        assert r["accuracy_over"] == f"{seeds}, 1 noise draw: 500 images only, binomial"
    # the figure draws one setting per method: mixup at 50% at its best α (32)
    fig = pd.read_csv(built["out"] / "fig_attack.csv")
    assert set(fig.loc[(fig["ratio"] == 0.5) & (fig["method"] == "mixup"), "alpha"]) == {32.0}


def test_curves_and_memorisation_match_fixture(built):
    c = pd.read_csv(built["out"] / "fig_curves.csv")
    erm = c[(c["ratio"] == 0.5) & (c["method"] == "erm")].set_index("epoch")
    assert (erm["n_seeds"] == 2).all() and len(erm) == 6
    s0, s1 = (s for s in SPECS if s.ratio == 0.5 and s.method == "erm")
    # epoch 2 is seed 0's peak; seed 1 peaks at epoch 3, half way up from peak - 0.3
    assert _close(erm.loc[2, "test_acc"], 100 * (s0.peak + s1.peak - 0.15) / 2)
    m = pd.read_csv(built["out"] / "table_memorisation.csv")
    r = m[(m["ratio"] == 0.5) & (m["method"] == "erm")].iloc[0]
    assert _close(r["test_acc_test_selected"], 100 * (s0.peak + s1.peak) / 2)
    assert _close(r["test_acc_last"], 100 * (s0.final + s1.final) / 2)
    assert _close(r["train_acc_noisy_last"], 100 * (s0.noisy_final + s1.noisy_final) / 2)
    assert r["memorised_last_lo"] < r["memorised_last"] and "chance" not in m.columns
    # the null beside the share is the runs' own (no stored null in the fixture: symmetric
    # noise, so (100 − clean-label training accuracy) / 9), the one the verdicts test against
    runs = pd.read_csv(built["out"] / "table_runs.csv")
    mine = runs[(runs["ratio"] == 0.5) & (runs["method"] == "erm")
                & (runs["alpha"] == r["alpha"]) & (runs["dropout"] == r["dropout"])]
    assert r["memorised_null_basis"] == "approximate"
    assert _close(r["memorised_null_last"], mine["last_memorised_null"].mean())
    assert _close(r["memorised_null_last"],
                  (100 - r["train_acc_clean_last"]) / 9)  # not chance, 10 %
    # and the curve's null is the same at the last epoch
    assert _close(erm["memorised_null"].iloc[-1], r["memorised_null_last"])
    assert c.loc[c["ratio"] == 0.0, "memorised_null"].isna().all()
    # fewer than 3 seeds: no band over seeds on the curves (tests/test_report_few_seeds.py)
    assert c["test_acc_lo"].isna().all()


def test_report_md_links_and_contents(built):
    out = built["out"]
    md = (out / "report.md").read_text()
    links = set(re.findall(r"\]\(([^)]+)\)", md))
    assert links, "no links"
    for link in links:
        assert (out / link).is_file(), link
    written = {p.name for p in out.iterdir() if p.name != "report.md"}
    assert written <= links, written - links
    assert md.startswith("# Fixture report\n\n## Verdicts\n")  # the verdict table comes first
    for text in ("CIFAR-10, synthetic fixture", "Fixture CPU, 2 threads", "0123456789abcdef",
                 "Hand-written note: the fixture is synthetic.", "python -m robustmix.report",
                 "--notes", "width 16, 5000 training images, 6 epochs", "2500 test images",
                 "all 5000 for the reported checkpoints", "500 noisy-label validation images",
                 "Report generated: 20", "FGSM (1 step), I-FGSM (10 steps", "superseded"):
        assert text in md, text
    # every caption is formatted: no f-string placeholder left as written in the source
    assert not re.findall(r"\{[A-Za-z_][\w.]*\}", md)
    # the verdicts, generated from the data: the fixture pairs one seed of each method, so a
    # separated pair and an overlapping one are both described, not tested (one seed is no
    # verdict), with intervals over the test images only
    verdicts = md[:md.index("## Setup")]
    assert re.search(r"\| 50% \| mixup has lower test error than ERM \| described "
                     r"\+24\.0 \[\+\d+\.\d, \+\d+\.\d\]", verdicts)
    assert re.search(r"mixup \+ dropout has lower test error than mixup \| described -1\.0 "
                     r"\[-\d\.\d, \+\d\.\d\]", verdicts)
    assert "cannot be told apart at this scale" in verdicts
    assert "single-run description, not tested" in verdicts and "combined variance" in verdicts
    v = pd.read_csv(out / "table_verdicts.csv")
    assert (v["verdict"] == "described").all() and v["p"].isna().all()
    assert f"{len(v)} claims: 0 supported, 0 contradicted, 0 inconclusive, {len(v)} described" in md
    assert set(v["family"]) == {"Table 2 ordering", "best-to-last gap", "memorisation",
                                "ablation", "adversarial"}
    # checkpoints are named last / selected / test-selected; "best" only as the paper's quoted
    for text in ("selected (noisy validation)", "test-selected (oracle, optimistic)"):
        assert text in md, text
    assert not re.search(r"(?<![\"'])\bbest\b(?! accuracy| test accuracy)", md), \
        re.findall(r".{40}(?<![\"'])\bbest\b.{20}", md)
    # the long generated reading is gone: no bullet restates an ordering
    assert "What the numbers show" not in md and "pairs agree" not in md
    assert "With fewer than 3 seeds an interval covers test-image sampling only" in md


def test_method_colours_and_markers_are_distinct():
    colours = [METHODS[m].color for m in BUILTIN_METHODS]
    markers = [METHODS[m].marker for m in BUILTIN_METHODS]
    assert len(set(colours)) == len(colours) and len(set(markers)) == len(markers)


def test_checkpoint_selects_attack_rows(tmp_path):
    write_fixture(tmp_path / "runs", unfinished=False)
    res = R.load_results([tmp_path / "runs"])
    spec = next(s for s in SPECS if (s.ratio, s.method) == (0.2, "mixup"))
    assert set(res.attacks["checkpoint"]) == {"last", "test-selected"}  # "best" is the old name
    for checkpoint in ("last", "best", "test-selected"):
        t = R.attack_table(res.attacks, checkpoint)
        r = t[(t["ratio"] == 0.2) & (t["method"] == "mixup") & (t["attack"] == "fgsm")
              & (t["mode"] == "white-box") & (t["eps"] == 8.0)].iloc[0]
        assert _close(r["accuracy_mean"],
                      expected_attack_accuracy(spec, "fgsm", "white-box", 8.0, checkpoint))


def test_stale_files_removed_and_unfinished_run_left_out(tmp_path, capsys):
    """A report without attacks or ablations, written over an older one, removes the older
    figures and tables; an unfinished run named directly is left out with a note."""
    specs = [s for s in SPECS if s.method in ("erm", "mixup") and s.alpha != 8.0]
    root = tmp_path / "runs"
    write_fixture(root, specs=specs, attacks=False)
    out = tmp_path / "out"
    out.mkdir()
    stale = [f"{f}.{e}" for f in ("fig_attack", "fig_ablation") for e in ("png", "pdf", "csv")]
    stale += ["table_attack.csv", "table_ablation.csv", "table_sweep.csv"]
    for n in [*stale, "mine.txt"]:
        (out / n).write_text("old")
    unfinished = next(p for p in root.iterdir() if not (p / "summary.json").exists())
    assert report.main([str(root), str(unfinished), "--out", str(out)]) == 0
    assert "not finished" in capsys.readouterr().err
    assert not [n for n in stale if (out / n).exists()]
    assert (out / "mine.txt").exists()  # only the report's own files are removed
    md = (out / "report.md").read_text()
    assert "fig_attack" not in md and "no run has an attack.csv yet" in md
    assert "not finished" in md
    for link in re.findall(r"\]\(([^)]+)\)", md):
        assert (out / link).is_file(), link


def test_older_runs_report_with_fallback_intervals(tmp_path):
    """Runs written before the validation set, the full test set and predictions.csv: the
    report still reads them, gives no selected checkpoint, takes errors from the per-epoch test
    images and says where the intervals come from."""
    root = tmp_path / "runs"
    write_fixture(root, legacy=True, unfinished=False)
    out = tmp_path / "out"
    assert report.main([str(root), "--out", str(out)]) == 0
    t = pd.read_csv(out / "table_noise.csv")
    assert t["selected_error_mean"].isna().all()
    assert set(t["chosen_by"]) == {"test-selected error (no validation set)"}
    erm = t[(t["ratio"] == 0.5) & (t["method"] == "erm")].iloc[0]
    assert erm["last_error_over"] == "2 training seeds, 1 noise draw: 2,500 images only, binomial"
    mixup = t[(t["ratio"] == 0.2) & (t["method"] == "mixup")].iloc[0]
    assert mixup["last_error_over"] == "1 training seed, 1 noise draw: 2,500 images only, binomial"
    assert _close(mixup["last_error_mean"], 23.0) and mixup["last_error_images"] == 2500
    md = (out / "report.md").read_text()
    assert "have no predictions.csv" in md and "selected (noisy validation) |" not in md
    assert "Runs without a validation set have no selected checkpoint." in md
    v = pd.read_csv(out / "table_verdicts.csv")
    assert "selected" not in set(v["checkpoint"]) and len(v)


@pytest.mark.parametrize("args", [
    ["missing-folder"],
    ["{empty}"],
    ["{runs}", "--notes", "no-such-notes.md"],
    ["{runs}", "--checkpoint", "middle"],
    [],
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args):
    (tmp_path / "empty").mkdir()
    write_fixture(tmp_path / "runs", specs=SPECS[:1], attacks=False, unfinished=False)
    argv = [a.format(empty=tmp_path / "empty", runs=tmp_path / "runs") for a in args]
    argv = [a if a.startswith("-") or Path(a).is_absolute() or a in ("middle",) else str(tmp_path / a)
            for a in argv]
    assert run_main(report.main, [*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err


def test_keep_runs_copies_results_and_the_report_is_written_again_from_them(tmp_path, capsys):
    """--keep-runs: OUT/runs holds each reported run's result files (no checkpoints, no
    training labels), and a report written from that copy alone has the same tables."""
    from robustmix.reporting.evidence import RESULT_FILES

    root = tmp_path / "runs"
    write_fixture(root)
    first = next(p for p in root.iterdir() if (p / "summary.json").exists())
    (first / "last.pt").write_bytes(b"weights")  # what must not be copied
    (first / "labels.csv").write_text("index,clean,noisy\n")
    out = tmp_path / "out"
    assert report.main([str(root), "--out", str(out), "--keep-runs"]) == 0
    kept = out / "runs"
    finished = sorted(p.name for p in root.iterdir() if (p / "summary.json").exists())
    assert sorted(p.name for p in kept.iterdir()) == finished  # the unfinished run is left out
    for name in finished:
        have = {f.name for f in (kept / name).iterdir()}
        assert have == {f for f in RESULT_FILES if (root / name / f).exists()}
    assert "results of" in capsys.readouterr().out

    again = tmp_path / "again"
    assert report.main([str(kept), "--out", str(again), "--keep-runs"]) == 0
    for table in ("table_noise", "table_verdicts", "table_attack", "table_memorisation"):
        a, b = (pd.read_csv(d / f"{table}.csv") for d in (out, again))
        pd.testing.assert_frame_equal(a, b)
    # reporting from the kept copy into the same folder leaves the copy as it was
    assert report.main([str(kept), "--out", str(out), "--keep-runs"]) == 0
    assert sorted(p.name for p in kept.iterdir()) == finished


def test_robust_table_names_an_attack_run_at_some_eps_only():
    from robustmix.reporting.markdown import md_robust

    t = pd.DataFrame({"ratio": 0.5, "method": "mixup", "alpha": 4.0, "dropout": 0.0,
                      "n_runs": 3, "eps": [1.0, 8.0],
                      "attacks": ["fgsm+pgd (bb)", "fgsm+pgd (bb)+autoattack"],
                      "robust_mean": [20.0, 3.0], "robust_lo": [18.0, 2.0],
                      "robust_hi": [22.0, 4.0]})
    row = md_robust(t).splitlines()[-1]
    assert "fgsm, pgd (bb), autoattack (ε=8 only)" in row
    assert "fgsm, pgd (bb) |" in md_robust(t.iloc[:1]).splitlines()[-1]


def test_robust_accuracy_never_averages_runs_over_unlike_attack_sets():
    """Two seeds attacked by fgsm + pgd and a third also by AutoAttack: a mean over all three
    would blend two worst cases, so the mean takes the two that share a set, the cell says
    '2 of 3 runs', and the per-run dots are the same two."""
    from robustmix.reporting import tables as T
    from robustmix.reporting.markdown import md_robust

    rows = [{"condition": "fast", "ratio": 0.5, "method": "mixup", "alpha": 1.0, "dropout": 0.0,
             "eps": 1.0, "path": f"s{s}", "seed": s, "noise_seed": 0, "checkpoint": "last",
             "n": 1000, "names": names, "worst": "pgd white-box", "accuracy": acc}
            for s, names, acc in ((0, "autoattack+fgsm+pgd", 10.0), (1, "fgsm+pgd", 30.0),
                                  (2, "pgd+fgsm", 32.0))]
    robust = pd.DataFrame(rows)
    t = T.robust_summary(robust)
    assert len(t) == 1
    r = t.iloc[0]
    assert _close(r["robust_mean"], 31.0) and r["n_runs"] == 2 and r["runs_left_out"] == 1
    assert r["attacks"] == "fgsm+pgd"
    assert sorted(T.robust_per_run(robust)["path"]) == ["s1", "s2"]
    row = md_robust(t).splitlines()[-1]
    assert "(2 of 3 runs)" in row and "| 3 |" in row and "autoattack" not in row
    # once every seed has AutoAttack, all three are averaged and the cell carries no count
    robust.loc[1:, "names"] = "autoattack+fgsm+pgd"
    t = T.robust_summary(robust)
    assert t.iloc[0]["n_runs"] == 3 and t.iloc[0]["runs_left_out"] == 0
    assert "runs)" not in md_robust(t).splitlines()[-1]


def test_attack_settings_name_each_attacks_rule():
    from robustmix.attacks.registry import settings
    from robustmix.reporting.markdown import attack_settings

    rows = []
    for atk in ("fgsm", "ifgsm", "pgd", "autoattack"):
        for eps in ([8.0] if atk == "autoattack" else [0.0, 4.0, 8.0]):
            rows.append({"checkpoint": "last", "mode": "white-box", "source": "r", "attack": atk,
                         "eps": eps, "n": 500, **settings(atk, eps, 10)})
    text = attack_settings(pd.DataFrame(rows), "last")
    assert text.startswith("AutoAttack (APGD-CE, APGD-T and FAB-T 100 steps each, Square 5000 "
                           "queries), FGSM (1 step), I-FGSM (10 steps of ε/steps), PGD (10 steps "
                           "of 2.5·ε/steps); 500 test images"), text
    rows[-2]["step_size"] = 0.5  # PGD at ε = 8 with another step (at ε = 4 the rule gives 1)
    assert "PGD (10 steps of 0.5, 1/255)" in attack_settings(pd.DataFrame(rows), "last")


def test_verdicts_on_three_seeds_are_tested_per_family_with_a_forest_plot(tmp_path):
    """Three seeds of ERM and mixup at 50 %: claims are tested, table_verdicts has the raw and
    adjusted p and the family of each, report.md counts verdicts per family (the selected
    checkpoint's Table 2 ordering in the primary family, test-selected as the oracle), and
    fig_forest is drawn, a page wide."""
    from report_fixtures import Spec

    specs = [Spec(0.5, m, a, 0.0, s, peak + 0.01 * s, 3, final + 0.01 * s, noisy, slope)
             for m, a, peak, final, noisy, slope in (("erm", 0.0, 0.62, 0.40, 0.90, 0.05),
                                                     ("mixup", 32.0, 0.71, 0.70, 0.52, 0.02))
             for s in range(3)]
    root, out = tmp_path / "runs", tmp_path / "out"
    write_fixture(root, specs=specs, unfinished=False)
    assert report.main([str(root), "--out", str(out)]) == 0
    v = pd.read_csv(out / "table_verdicts.csv")
    assert {"p", "p_adjusted", "fdr_family"} <= set(v.columns)
    sel = v[(v["family"] == "Table 2 ordering") & (v["checkpoint"] == "selected")].iloc[0]
    assert sel["fdr_family"] == "primary: Table 2 orderings, selected checkpoint"
    assert sel["verdict"] == "supported" and sel["p_adjusted"] < 0.05
    assert (v.loc[v["checkpoint"] == "test_selected", "fdr_family"]
            == "oracle: test-selected checkpoint").all()
    md = (out / "report.md").read_text()
    section = md[:md.index("## Setup")]
    assert "| primary: Table 2 orderings, selected checkpoint |" in section
    assert "| oracle: test-selected checkpoint |" in section
    assert "Benjamini–Hochberg" in section and "n_seeds − 1 degrees of freedom (3 seeds here)" \
        in section
    assert re.search(r"\*\*supported\*\* \+\d+\.\d \[\+\d+\.\d, \+\d+\.\d\], adj\. p "
                     r"(<0\.001|0\.0\d\d)", section)
    assert "fig_forest.png" in section
    from PIL import Image

    with Image.open(out / "fig_forest.png") as im:
        width, height = (x / 150 for x in im.size)
    assert 5 < width <= 7.6 and height <= 10


def test_forest_plot_sets_many_claims_in_two_columns_on_a_page(tmp_path):
    """80 claims in four families: two columns, 7 in wide and no higher than a page; described
    claims (open markers) and claims without an effect do not break it."""
    from PIL import Image

    from robustmix.reporting import plots
    from robustmix.reporting import verdicts as V

    fams = [V.PRIMARY_TABLE2, V.PRIMARY_ATTACKS, V.exploratory("memorisation"), V.ORACLE]
    rows = []
    for k in range(80):
        eff = (k % 7) - 2.0
        rows.append({"fdr_family": fams[k % 4], "claim": f"mixup has lower test error than ERM {k}",
                     "condition": "quick", "ratio": 0.5, "checkpoint": "last",
                     "verdict": V.VERDICTS[k % 4], "effect": eff if k != 5 else float("nan"),
                     "lo": eff - 1.5, "hi": eff + 1.5})
    paths = plots.plot_forest(pd.DataFrame(rows), tmp_path / "fig_forest", V.fdr_families())
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    with Image.open(paths[0]) as im:
        width, height = (x / 150 for x in im.size)
    assert 6 < width <= 7.6 and height <= 9.6
    assert plots.short_claim("mixup keeps more accuracy than ERM under white-box FGSM at ε = "
                             "8/255") == "mixup > ERM wb FGSM at ε 8"
    # the corruption and calibration claims fit a row, and an NLL row names its unit (nats)
    assert plots.short_claim("mixup has lower ECE than ERM on corrupted (mean over 75 sets) "
                             "test images") == "ECE, corrupted (75 sets): mixup < ERM"
    assert plots.short_claim("mixup keeps more accuracy than ERM under common corruptions "
                             "(mean over 75 sets)") == "corruptions (75 sets): mixup > ERM"
    assert plots.short_claim("mixup has lower NLL than ERM on clean test images"
                             ) == "NLL (nats), clean: mixup < ERM"


def _drawn_curves(monkeypatch, tmp_path, table) -> object:
    """The figure plot_curves draws, caught before it is saved."""
    from robustmix.reporting import plots

    caught = {}
    monkeypatch.setattr(plots, "save", lambda fig, stem: caught.setdefault("fig", fig) and [])
    plots.plot_curves(table, tmp_path / "fig_curves", {}, chance=R.CHANCE)
    return caught["fig"]


def _memorisation_axis(fig):
    axes = [ax for ax in fig.axes if "corrupted" in ax.get_ylabel()]
    assert len(axes) == 1
    return axes[0]


def test_curves_draw_each_methods_own_memorisation_null_not_one_in_k(monkeypatch, tmp_path):
    """The reference on the memorisation panel is each run group's null (its own mistakes'
    share, per epoch), not chance (1/K = 10 %); chance only for a method without one."""
    epochs = [1, 2, 3]
    rows = [{"condition": "c", "ratio": 0.5, "method": m, "alpha": a, "dropout": 0.0,
             "epoch": e, "test_acc": 70.0, "train_acc_noisy": 60.0, "train_acc_clean": 80.0,
             "memorised": mem + e, "memorised_null": null + 0.1 * e, "n_seeds": 3}
            for m, a, mem, null in (("erm", 0.0, 40.0, 3.0), ("mixup", 32.0, 4.0, 2.0))
            for e in epochs]
    table = pd.DataFrame(rows)
    ax = _memorisation_axis(_drawn_curves(monkeypatch, tmp_path, table))
    refs = {ln.get_gid(): list(ln.get_ydata()) for ln in ax.get_lines() if ln.get_gid()}
    assert refs["null:erm"] == pytest.approx([3.1, 3.2, 3.3])
    assert refs["null:mixup"] == pytest.approx([2.1, 2.2, 2.3])
    assert "chance" not in refs
    flat = [ln for ln in ax.get_lines() if set(ln.get_ydata()) == {R.CHANCE}]
    assert not flat  # no 10 % line
    fig = _memorisation_axis(_drawn_curves(monkeypatch, tmp_path, table)).figure
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert any("its null" in t for t in labels) and not any("chance" in t for t in labels)
    # a method whose runs have no null (not symmetric noise, none stored): chance, said so
    ax = _memorisation_axis(_drawn_curves(monkeypatch, tmp_path,
                                          table.assign(memorised_null=float("nan"))))
    refs = {ln.get_gid(): list(ln.get_ydata()) for ln in ax.get_lines() if ln.get_gid()}
    assert set(refs) == {"chance"} and set(refs["chance"]) == {R.CHANCE}


def test_owned_files_are_derived_from_the_sections_and_a_rewrite_leaves_no_stale_one(tmp_path):
    """Every file a section declares is owned (table_robust, table_flags, fig_robust and
    fig_attack_relative, once left out of a hand-kept list, among them); a rewritten report
    removes a stale owned file of an earlier one, and never a file it does not own."""
    from robustmix.reporting import markdown as M

    owned = set(M.owned())
    assert owned == {"report.md", *(n for s in M.SECTIONS for n in s.files())}
    for n in ("table_robust.csv", "table_flags.csv", "fig_robust.png", "fig_robust.pdf",
              "fig_attack_relative.png", "fig_attack_relative.pdf"):
        assert n in owned, n
    write_fixture(tmp_path / "runs")
    out = tmp_path / "out"
    out.mkdir()
    stale = ["fig_robust.png", "fig_robust.pdf", "table_robust.csv", "fig_sources.csv"]
    for n in [*stale, "mine.txt", "fig_other.png"]:
        (out / n).write_text("old")
    rc = run_main(report.main, [str(tmp_path / "runs"), "--out", str(out), "--title", "t"])
    assert rc == 0
    left = {p.name for p in out.iterdir()}
    assert not set(stale) & left  # the fixture has no robust accuracy, one noise source
    assert {"mine.txt", "fig_other.png"} <= left  # not the report's: kept
    assert left - {"mine.txt", "fig_other.png"} <= owned  # nothing written it does not own


def test_a_section_cannot_write_a_file_it_did_not_declare(tmp_path):
    from robustmix.reporting import markdown as M

    rep = M.Report(None, tmp_path, "t", None, "last", "")
    rep.section = M.Section("x", lambda r: [], tables=("table_a",))
    rep.csv("table_a", pd.DataFrame({"a": [1]}))
    with pytest.raises(RuntimeError, match="without declaring"):
        rep.csv("table_b", pd.DataFrame({"a": [1]}))


def test_fig_noise_tells_conditions_apart_by_more_than_the_line(monkeypatch, tmp_path):
    """Two profiles in one panel: one method's points keep its colour and marker shape but differ
    in fill and sit apart on x, so points of different profiles never look the same."""
    from robustmix.reporting import plots

    rows = [{"condition": c, "ratio": r, "method": "erm", "alpha": 0.0, "dropout": 0.0,
             "n_seeds": 3, "last_acc_mean": 60.0 + i, "last_acc_lo": 58.0, "last_acc_hi": 63.0,
             "selected_acc_mean": float("nan"), "test_selected_acc_mean": float("nan"),
             "paper_last_acc": float("nan"), "paper_test_selected_acc": float("nan")}
            for i, c in enumerate(("fast", "cpu")) for r in (0.2, 0.5)]
    caught = {}
    monkeypatch.setattr(plots, "save", lambda fig, stem: caught.setdefault("fig", fig) and [])
    plots.plot_noise(pd.DataFrame(rows), tmp_path / "fig_noise")
    ax = caught["fig"].axes[0]
    from robustmix.training.methods import method_marker

    points = [ln for ln in ax.get_lines() if ln.get_marker() == method_marker("erm")]
    assert len(points) == 2
    a, b = points
    assert a.get_color() == b.get_color() and a.get_marker() == b.get_marker()
    assert a.get_fillstyle() != b.get_fillstyle()
    assert set(a.get_xdata()).isdisjoint(b.get_xdata())
