"""The new noise sources as users run them: `python -m robustmix.noise --noise cifar10n|matrix|idn`,
study files with a `noise` list, --write-matrix and the report. Bad input is one line on stderr,
exit status 2, and nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import human_label_arrays, snapshot, write_human_labels

from robustmix import noise, study
from robustmix.cli import run_main
from robustmix.data import transition
from robustmix.data.classes import CIFAR10_CLASSES
from robustmix.data.datasets import load_dataset

K = 10


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny):
    """A CIFAR-10N-like label file for the tiny dataset (its pickles are its canonical order)
    and a transition matrix, both read-only for the tests."""
    root = tmp_path_factory.mktemp("noise-files")
    human = human_label_arrays(tiny.arrays.y_train, seed=1)
    t = np.full((K, K), 0.3 / (K - 1))
    np.fill_diagonal(t, 0.7)
    matrix = root / "T.csv"
    transition.write_matrix(matrix, t, CIFAR10_CLASSES)
    return {"human": human, "file": write_human_labels(root / "CIFAR-10_human.pt", human),
            "matrix": matrix, "t": t, "root": root}


def args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--methods", "erm", "--epochs", "1", "--width", "4", "--train-subset", "100",
            "--data", str(data), "--out", str(out), "--quiet", "--precision", "fp32",
            "--device", "cpu", "--profile", "quick", "--val-n", "20", *extra]


def one_line_error(rc: int, err: str, *fragments: str) -> str:
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def write_bad(kind: str, root: Path, files: dict) -> Path:
    """A bad noise file of the given kind."""
    human = dict(files["human"])
    path = root / ("bad.pt" if not kind.startswith("matrix") else "bad.csv")
    if kind == "truncated label file":
        raw = Path(files["file"]).read_bytes()
        path.write_bytes(raw[: len(raw) // 3])
    elif kind == "foreign label file":
        path.write_bytes(os.urandom(3000))
    elif kind == "label file without worse_label":
        del human["worse_label"]
        write_human_labels(path, human)
    elif kind == "label file of another length":
        write_human_labels(path, {k: v[:150] for k, v in human.items()})
    elif kind == "matrix not square":
        path.write_text("\n".join(",".join(["0.1"] * 10) for _ in range(9)))
    elif kind == "matrix with a negative entry":
        t = files["t"].copy()
        t[0, 0], t[0, 1] = 1.1 - t[0, 2:].sum(), -0.1
        path.write_text("\n".join(",".join(repr(float(v)) for v in row) for row in t))
    elif kind == "matrix rows not summing to 1":
        path.write_text("\n".join(",".join(repr(float(v)) for v in row) for row in 0.5 * files["t"]))
    elif kind == "matrix of 5 classes":
        path.write_text("\n".join(",".join(["0.2"] * 5) for _ in range(5)))
    return path


# (noise options, fragments of the one-line error); FILE stands for a bad file of that case.
BAD = {
    "missing label file": (["--noise", "cifar10n", "--noise-labels", "worst", "--noise-file",
                            "nowhere/CIFAR-10_human.pt"], ["does not exist", "cifar-10-100n"]),
    "truncated label file": (["--noise", "cifar10n", "--noise-labels", "worst", "--noise-file",
                              "FILE"], ["truncated"]),
    "foreign label file": (["--noise", "cifar10n", "--noise-labels", "aggre", "--noise-file",
                            "FILE"], ["not a torch.save file"]),
    "label file without worse_label": (["--noise", "cifar10n", "--noise-labels", "worst",
                                        "--noise-file", "FILE"], ["worse_label"]),
    "label file of another length": (["--noise", "cifar10n", "--noise-labels", "worst",
                                      "--noise-file", "FILE"], ["150", "200"]),
    "unknown label set": (["--noise", "cifar10n", "--noise-labels", "best", "--noise-file",
                           "LABELS"], ["best", "worst"]),
    "no label set": (["--noise", "cifar10n", "--noise-file", "LABELS"], ["--noise-labels"]),
    "ratio with cifar10n": (["--noise", "cifar10n", "--noise-labels", "worst", "--noise-file",
                             "LABELS", "--ratio", "0.4"], ["--ratio", "cifar10n"]),
    "ratio with matrix": (["--noise", "matrix", "--noise-file", "MATRIX", "--ratio", "0.2"],
                          ["--ratio", "matrix"]),
    "matrix without a file": (["--noise", "matrix"], ["--noise-file"]),
    "file with sym": (["--noise", "sym", "--noise-file", "MATRIX"], ["matrix and cifar10n"]),
    "label set with idn": (["--noise", "idn", "--noise-labels", "worst"], ["for cifar10n noise only"]),
    "matrix not square": (["--noise", "matrix", "--noise-file", "FILE"], ["square"]),
    "matrix with a negative entry": (["--noise", "matrix", "--noise-file", "FILE"],
                                     ["negative"]),
    "matrix rows not summing to 1": (["--noise", "matrix", "--noise-file", "FILE"],
                                     ["sums to 0.5"]),
    "matrix of 5 classes": (["--noise", "matrix", "--noise-file", "FILE"], ["10 classes"]),
}
# Through the real entry point (a subprocess each); the others in-process through run_main.
SUBPROCESS = ("missing label file", "foreign label file", "label file of another length",
              "ratio with cifar10n", "matrix with a negative entry")


@pytest.mark.parametrize("case", list(BAD))
def test_bad_noise_input_is_one_line_and_writes_nothing(tiny, files, tmp_path, capsys, case):
    load_dataset("cifar10", tiny.pickles)  # the cache holds the data before the snapshot
    cwd, out = tmp_path / "cwd", tmp_path / "runs"
    cwd.mkdir()
    extra, fragments = BAD[case]
    bad = write_bad(case, tmp_path, files)
    extra = [{"FILE": str(bad), "LABELS": str(files["file"]),
              "MATRIX": str(files["matrix"])}.get(a, a) for a in extra]
    roots = (tmp_path, Path(os.environ["ROBUSTMIX_CACHE"]), tiny.pickles, files["root"])
    before = [snapshot(r) for r in roots]
    argv = args(tiny.pickles, out, *extra)
    if case in SUBPROCESS:
        r = subprocess.run([sys.executable, "-m", "robustmix.noise", *argv], cwd=cwd,
                           env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                           text=True, timeout=300)
        rc, err = r.returncode, r.stderr
    else:
        capsys.readouterr()
        old = os.getcwd()
        os.chdir(cwd)
        try:
            rc = run_main(noise.main, argv)
        finally:
            os.chdir(old)
        err = capsys.readouterr().err
    one_line_error(rc, err, *fragments)
    assert [snapshot(r) for r in roots] == before
    assert not out.exists()


def test_cifar10n_on_fashion_mnist_is_refused(tiny, files, capsys, tmp_path):
    out = tmp_path / "runs"
    argv = args(tiny.fashion_dir, out, "--dataset", "fashion-mnist", "--noise", "cifar10n",
                "--noise-labels", "worst", "--noise-file", str(files["file"]))
    one_line_error(run_main(noise.main, argv), capsys.readouterr().err, "cifar10 only")
    assert not out.exists()


# --- a run with human labels, end to end -------------------------------------------------------

def test_cifar10n_run_records_its_noise(tiny, files, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = args(tiny.pickles, out, "--noise", "cifar10n", "--noise-labels", "worst",
                "--noise-file", str(files["file"]))
    assert run_main(noise.main, argv) == 0
    run = out / "cifar10_cifar10n-worst_erm_a0_p0_quick_s0"
    cfg = json.loads((run / "config.json").read_text())["train"]
    sha = __import__("hashlib").sha256(Path(files["file"]).read_bytes()).hexdigest()
    assert (cfg["noise"], cfg["noise_labels"], cfg["ratio"]) == ("cifar10n", "worst", 0.0)
    assert cfg["noise_file"] == str(Path(files["file"]).resolve()) and cfg["noise_sha256"] == sha
    # The run trained on the human labels of exactly its images (the pickles are canonical).
    lab = pd.read_csv(run / "labels.csv")
    np.testing.assert_array_equal(lab["noisy"], files["human"]["worse_label"][lab["index"]])
    np.testing.assert_array_equal(lab["clean"], files["human"]["clean_label"][lab["index"]])
    rec = json.loads((run / "noise.json").read_text())
    train = lab[lab["split"] == "train"]
    counts = transition.transition_counts(train["clean"], train["noisy"], K)
    np.testing.assert_array_equal(rec["counts"], counts)
    np.testing.assert_allclose(rec["transition"], transition.row_normalise(counts))
    np.testing.assert_allclose(rec["per_class_rate"], transition.per_class_rate(counts))
    assert rec["rate"] == pytest.approx((train["clean"] != train["noisy"]).mean())
    assert (rec["source"], rec["labels"], rec["sha256"]) == ("cifar10n", "worst", sha)
    assert "CC BY-NC 4.0" in rec["dataset_name"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["actual_noise_rate"] == pytest.approx(rec["rate"])
    capsys.readouterr()
    # The same command finds the finished run; another file's labels are another config.
    assert run_main(noise.main, argv) == 0
    assert "finished earlier" in capsys.readouterr().out
    # The same file elsewhere (another checkout, a moved download) is the same run: known by its
    # sha256, not its path; the config keeps the path it was made with.
    moved = tmp_path / "moved" / "CIFAR-10_human.pt"
    moved.parent.mkdir()
    moved.write_bytes(Path(files["file"]).read_bytes())
    argv[argv.index(str(files["file"]))] = str(moved)
    assert run_main(noise.main, argv) == 0
    assert "finished earlier" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["train"]["noise_file"] == cfg["noise_file"]
    argv[argv.index(str(moved))] = str(files["file"])
    other = write_human_labels(tmp_path / "other.pt", human_label_arrays(tiny.arrays.y_train, 7))
    argv[argv.index(str(files["file"]))] = str(other)
    one_line_error(run_main(noise.main, argv), capsys.readouterr().err, "another config",
                   "noise_")


def test_write_matrix_from_cifar10n_and_from_synthetic_noise(tiny, files, tmp_path, capsys):
    path = tmp_path / "T_worst.csv"
    argv = ["--noise", "cifar10n", "--noise-labels", "worst", "--noise-file", str(files["file"]),
            "--write-matrix", str(path), "--device", "cpu"]
    assert run_main(noise.main, argv) == 0
    h = files["human"]
    want = transition.row_normalise(transition.transition_counts(h["clean_label"],
                                                                 h["worse_label"], K))
    np.testing.assert_allclose(transition.read_matrix(path, K), want, atol=1e-5)
    assert list(tmp_path.iterdir()) == [path]
    sym = tmp_path / "T_sym.csv"
    assert run_main(noise.main, ["--noise", "sym", "--ratio", "1.0", "--data", str(tiny.pickles),
                                 "--write-matrix", str(sym), "--device", "cpu"]) == 0
    t = transition.read_matrix(sym, K)  # every label redrawn uniformly: rows near 1/10
    assert np.abs(t - 0.1).max() < 0.2 and abs(np.trace(t) / K - 0.1) < 0.06
    capsys.readouterr()
    one_line_error(run_main(noise.main, [*argv[:-4], "--write-matrix", str(tmp_path / "T.txt")]),
                   capsys.readouterr().err, ".csv")


# --- study files with a noise list ---------------------------------------------------------------

def noise_study(study_toml, noise_list: str, extra: str = "") -> Path:
    """The tiny study (conftest.study_toml) on the noise list given, two seeds."""
    return study_toml(name="sources", file="sources.toml", train_extra=extra,
                      train={"ratios": None, "noise": noise_list, "seeds": "[0, 1]"})


def test_study_across_noise_sources_trains_and_reports(files, tmp_path, study_toml, capsys):
    noise_list = (f'[{{ source = "cifar10n", labels = "worst", file = "{files["file"]}" }}, '
                  f'{{ source = "matrix", file = "{files["matrix"]}" }}, '
                  '{ source = "sym", ratios = [0.5] }]')
    path = noise_study(study_toml, noise_list)
    assert run_main(study.main, [str(path), "--check"]) == 0
    assert "12 runs" in capsys.readouterr().out
    assert run_main(study.main, [str(path), "--quiet"]) == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 12 and all((r / "noise.json").exists() for r in runs)
    report = tmp_path / "report"
    md = (report / "report.md").read_text()
    assert "CIFAR-10N (CC BY-NC 4.0), label set worst" in md
    assert (report / "table_source_contrasts.csv").stat().st_size > 0
    for f in ("fig_transition", "fig_sources"):
        assert (report / f"{f}.png").stat().st_size > 0 and (report / f"{f}.pdf").exists()
    src = pd.read_csv(report / "table_sources.csv")
    assert set(src["source_label"]) == {"CIFAR-10N worst", "matrix (T.csv)", "sym 50%"}
    assert set(src["method"]) == {"erm", "mixup"} and (src["n_seeds"] == 2).all()
    # Each source is annotated with the rate its runs measured on their training labels.
    for label, g in src.groupby("source_label"):
        rates = [json.loads((r / "noise.json").read_text())["rate"] for r in runs
                 if json.loads((r / "noise.json").read_text())["tag"] in
                 {"CIFAR-10N worst": "cifar10n-worst", "matrix (T.csv)": "matrix-T",
                  "sym 50%": "sym0.5"}[label]]
        assert g["measured_rate"].iloc[0] == pytest.approx(100 * np.mean(rates), abs=1e-3)
    tr = pd.read_csv(report / "fig_transition.csv")
    worst = tr[tr["source_label"] == "CIFAR-10N worst"]
    assert worst["count"].sum() == 60 and (worst["label_draws"] == 1).all()


BAD_STUDY = {
    "unknown source": ('["sym", "pairflip"]', "", "pairflip"),
    "cifar10n without labels": ('[{ source = "cifar10n", file = "x.pt" }]', "", "label set"),
    "ratio on cifar10n": ('[{ source = "cifar10n", labels = "worst", file = "x.pt", '
                          'ratios = [0.4] }]', "", "takes no ratio"),
    "ratios but no source takes one": ('[{ source = "matrix", file = "MATRIX" }]',
                                       "ratios = [0.5]", "train.ratios"),
    "bad matrix": ('[{ source = "matrix", file = "BADMATRIX" }]', "", "sums to"),
    "unknown entry key": ('[{ source = "sym", rate = 0.4 }]', "", "rate"),
    "empty list": ("[]", "", "empty"),
    "attack sources with cifar10n": ('[{ source = "cifar10n", labels = "worst", file = "x.pt" }]',
                                     '\n[attack]\nsources = { "0" = { method = "erm", seed = 1 } }',
                                     "attack.sources"),
    "cifar10n with a file of another kind": ('[{ source = "sym", file = "MATRIX" }]', "",
                                             "matrix and cifar10n"),
}


@pytest.mark.parametrize("case", list(BAD_STUDY))
def test_bad_noise_lists_fail_at_load(files, tmp_path, study_toml, capsys, case):
    noise_list, extra, fragment = BAD_STUDY[case]
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(",".join(["0.05"] * 10) for _ in range(10)))
    noise_list = noise_list.replace("BADMATRIX", str(bad)).replace("MATRIX", str(files["matrix"]))
    path = noise_study(study_toml, noise_list, extra)
    before = snapshot(tmp_path)
    for flag in (["--check"], ["--quiet"]):
        one_line_error(run_main(study.main, [str(path), *flag]), capsys.readouterr().err,
                       fragment, str(path))
    assert snapshot(tmp_path) == before


# --- the report's comparisons across sources, on the report fixture with known errors ----------

def test_source_contrasts_are_paired_differences_of_the_runs(tmp_path):
    from report_fixtures import SPECS, expected_error, write_fixture

    from robustmix.reporting import results as R
    from robustmix.reporting.sources import contrast_table

    root = tmp_path / "runs"
    write_fixture(root, attacks=False)
    # The 20 % runs become CIFAR-10N runs: another source, with the same seeds.
    for run in root.iterdir():
        cfg = json.loads((run / "config.json").read_text())
        if cfg["train"].get("ratio") == 0.2:
            cfg["train"].update(noise="cifar10n", ratio=0.0, noise_labels="worst",
                                noise_file="/data/CIFAR-10_human.pt", noise_sha256="ab" * 32)
            (run / "config.json").write_text(json.dumps(cfg))
    res = R.load_results([root])
    assert set(res.runs["source_label"]) == {"CIFAR-10N worst", "sym 50%"}
    t = contrast_table(res.runs, res.predictions)
    err = {(s.ratio, s.method, s.alpha, s.seed): s for s in SPECS}

    def row(comparison, method, kind):
        (r,) = t[(t["comparison"] == comparison) & (t["method"] == method)
                 & (t["checkpoint"] == kind)].to_dict("records")
        return r

    for kind in ("last", "test_selected"):
        # ERM − mixup on CIFAR-10N (the former 20 % runs): one seed each.
        r = row("ERM − mixup on CIFAR-10N worst", "erm−mixup", kind)
        want = (expected_error(err[(0.2, "erm", 0.0, 0)], kind)
                - expected_error(err[(0.2, "mixup", 8.0, 0)], kind))
        assert r["effect"] == pytest.approx(want, abs=1e-3) and r["lo"] <= want <= r["hi"]
        # The same method on two sources, paired on seed 0 (the only seed both have).
        r = row("CIFAR-10N worst − sym 50%", "erm", kind)
        want = (expected_error(err[(0.2, "erm", 0.0, 0)], kind)
                - expected_error(err[(0.5, "erm", 0.0, 0)], kind))
        assert r["effect"] == pytest.approx(want, abs=1e-3) and r["n_seeds"] == 1
    assert set(t["comparison"]) == {"ERM − mixup on CIFAR-10N worst", "ERM − mixup on sym 50%",
                                    "CIFAR-10N worst − sym 50%"}


def test_idn_run_trains_on_the_generator_labels(tiny, tmp_path):
    from robustmix.data.idn import idn_labels, mean_flip_rate

    out = tmp_path / "runs"
    assert run_main(noise.main, args(tiny.pickles, out, "--noise", "idn", "--ratio", "0.4",
                                     "--noise-seed", "2")) == 0
    run = out / "cifar10_idn0.4_erm_a0_p0_quick_s0_n2"
    ds = load_dataset("cifar10", tiny.pickles)
    lab = pd.read_csv(run / "labels.csv")
    want = idn_labels(ds.x_train, ds.y_train, 0.4, K, seed=2)
    np.testing.assert_array_equal(lab["noisy"], want[lab["index"]])
    rec = json.loads((run / "noise.json").read_text())
    assert (rec["source"], rec["ratio"], rec["noise_seed"]) == ("idn", 0.4, 2)
    assert rec["source_rate"] == pytest.approx(mean_flip_rate(0.4))
