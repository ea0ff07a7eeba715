"""`python -m robustmix.attack` on tiny real runs trained by the real training CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from attack_fixtures import ROOT, env, snapshot, write_cifar, write_fashion

from robustmix import attack as attack_cli
from robustmix import noise
from robustmix.attacks.runner import COLUMNS
from robustmix.cli import run_main
from robustmix.runs.files import ATTACK, CONFIG, LAST, METRICS, SUMMARY, read_json

ERM = "cifar10_sym0.5_erm_a0_p0_quick_s0"
MIXUP = "cifar10_sym0.5_mixup_a32_p0_quick_s0"
TRAIN = ["--ratio", "0.5", "--epochs", "1", "--width", "4", "--train-subset", "60", "--quiet",
         "--precision", "fp32", "--device", "cpu", "--profile", "quick",
         "--val-n", "20"]
FAST = ["--steps", "2", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two CIFAR-format runs (erm, mixup) and one Fashion-MNIST run, trained for one epoch."""
    root = tmp_path_factory.mktemp("attack")
    old = os.environ.get("ROBUSTMIX_CACHE")
    os.environ["ROBUSTMIX_CACHE"] = str(root / "cache")
    try:
        cifar = write_cifar(root / "cifar")
        fashion = write_fashion(root / "fashion")
        assert run_main(noise.main, [*TRAIN, "--methods", "erm,mixup", "--data", str(cifar),
                                     "--out", str(root / "runs")]) == 0
        assert run_main(noise.main, [*TRAIN, "--methods", "erm", "--dataset", "fashion-mnist",
                                     "--data", str(fashion), "--out", str(root / "fruns")]) == 0
        yield root
    finally:
        if old is None:
            os.environ.pop("ROBUSTMIX_CACHE", None)
        else:
            os.environ["ROBUSTMIX_CACHE"] = old


def attack(*args) -> int:
    return run_main(attack_cli.main, [str(a) for a in args])


def last_test_acc(run: Path, which: str = "last") -> float:
    m = pd.read_csv(run / METRICS)
    return float(m["test_acc"].iloc[-1] if which == "last" else m["test_acc"].max())


def test_white_and_black_box_rows(world, capsys):
    runs, erm, mixup = world / "runs", world / "runs" / ERM, world / "runs" / MIXUP
    assert attack(runs, "--source", erm, "--eps", "0,2,8", *FAST) == 0
    out = capsys.readouterr().out
    assert "18 row(s) to compute" in out and "black-box" in out and "ifgsm" in out
    for run in (erm, mixup):
        df = pd.read_csv(run / ATTACK)
        assert list(df.columns) == COLUMNS
        assert df["run"].eq(run.name).all() and df["n"].eq(20).all()
        assert (df["correct"] / df["n"] - df["accuracy"]).abs().max() < 1e-6
        # ε = 0 is the clean accuracy training stored, exactly
        for _, r in df[df["eps"] == 0].iterrows():
            assert r["accuracy"] == last_test_acc(run)
        assert set(df.loc[df["attack"] == "fgsm", "steps"]) == {1}
        ifgsm = df[df["attack"] == "ifgsm"]
        assert (ifgsm["steps"] == 2).all() and (ifgsm["step_size"] == ifgsm["eps"] / 2).all()
    erm_rows, mixup_rows = pd.read_csv(erm / ATTACK), pd.read_csv(mixup / ATTACK)
    assert set(erm_rows["mode"]) == {"white-box"}  # the source is not its own black-box target
    bb = mixup_rows[mixup_rows["mode"] == "black-box"]
    assert len(bb) == 6 and bb["source"].eq(ERM).all()
    assert mixup_rows.loc[mixup_rows["mode"] == "white-box", "source"].eq(MIXUP).all()


def test_rerun_skips_force_recomputes_and_interrupted_sweep_resumes(world, capsys):
    erm = world / "runs" / ERM
    args = [erm, "--eps", "0,4", "--attacks", "fgsm", *FAST]
    assert attack(*args) == 0
    first = (erm / ATTACK).read_bytes()
    assert attack(*args) == 0
    assert "0 row(s) to compute" in capsys.readouterr().out
    assert (erm / ATTACK).read_bytes() == first  # nothing recomputed: same seconds and dates

    # an interrupted sweep: drop one row, rerun, and only that row comes back
    df = pd.read_csv(erm / ATTACK)
    gone = (df["attack"] == "fgsm") & (df["eps"] == 4) & (df["mode"] == "white-box")
    assert gone.sum() == 1
    df[~gone].to_csv(erm / ATTACK, index=False)
    assert attack(*args) == 0
    assert "1 row(s) to compute" in capsys.readouterr().out
    after = pd.read_csv(erm / ATTACK)
    assert len(after) == len(df)
    key = ["mode", "source", "attack", "eps", "steps", "step_size", "n", "precision"]
    kept = after.merge(df[~gone], on=key, suffixes=("", "_old"))
    assert (kept["seconds"] == kept["seconds_old"]).all()

    # --force replaces the matching rows, and only them
    assert attack(*args, "--force") == 0
    forced = pd.read_csv(erm / ATTACK)
    assert len(forced) == len(df)
    assert "2 row(s) to compute" in capsys.readouterr().out


def test_best_checkpoint_and_all_images(world, capsys):
    mixup = world / "runs" / MIXUP
    assert attack(mixup, "--checkpoint", "best", "--attacks", "fgsm", "--eps", "0,1",
                  "--n", "0", *FAST) == 0
    df = pd.read_csv(mixup / ATTACK)
    best = df[df["checkpoint"] == "best"]
    assert len(best) == 2 and best["n"].eq(20).all()
    assert best.loc[best["eps"] == 0, "accuracy"].item() == last_test_acc(mixup, "best")


BAD = {
    "missing run": lambda w: ["--eps", "0", w / "runs" / "nope"],
    "unfinished run": lambda w: [w / "bad" / "unfinished"],
    "checkpoint mismatch": lambda w: [w / "bad" / "mismatch"],
    "negative eps": lambda w: [w / "runs", "--eps=-1"],
    "eps above 255": lambda w: [w / "runs", "--eps", "0,300"],
    "unknown attack": lambda w: [w / "runs", "--attacks", "fgsm,pgd"],
    "source on another dataset": lambda w: [w / "runs", "--source",
                                            next((w / "fruns").iterdir())],
}


@pytest.fixture(scope="module")
def bad_results(world):
    """Every bad input through the real CLI, in parallel; the tree is snapshotted around them."""
    bad = world / "bad"
    shutil.copytree(world / "runs" / ERM, bad / "unfinished")
    for f in (SUMMARY, LAST, "best.pt"):
        (bad / "unfinished" / f).unlink()
    shutil.copytree(world / "runs" / ERM, bad / "mismatch")
    cfg = read_json(bad / "mismatch" / CONFIG)
    cfg["train"]["width"] = 8
    (bad / "mismatch" / CONFIG).write_text(json.dumps(cfg))
    before = snapshot(world / "runs"), snapshot(bad), snapshot(world / "fruns")
    procs = {name: subprocess.Popen(
        [sys.executable, "-m", "robustmix.attack", "--quiet", *map(str, make(world))],
        env=env(world / "cache"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for name, make in BAD.items()}
    results = {name: (p.wait(timeout=300), *p.communicate()) for name, p in procs.items()}
    after = snapshot(world / "runs"), snapshot(bad), snapshot(world / "fruns")
    return results, before, after


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2(bad_results, case):
    results, before, after = bad_results
    rc, out, err = results[case]
    assert rc == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ")
    assert before == after  # nothing on disk changed


def test_bad_input_messages(bad_results):
    results, _, _ = bad_results
    err = {k: v[2] for k, v in results.items()}
    assert "does not exist" in err["missing run"]
    assert "unfinished" in err["unfinished run"]
    assert "does not match its config" in err["checkpoint mismatch"]
    assert "outside [0, 255]" in err["negative eps"] and "outside [0, 255]" in err["eps above 255"]
    assert "unknown attack pgd" in err["unknown attack"]
    assert "fashion-mnist" in err["source on another dataset"]


def test_help_shows_defaults():
    res = subprocess.run([sys.executable, "-m", "robustmix.attack", "--help"], cwd=ROOT,
                         capture_output=True, text=True, env=env(Path("/tmp")))
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    for default in ("(default: fgsm,ifgsm)", "(default: 0,1,2,4,8,16)", "(default: 10)",
                    "(default: eps/steps)", "(default: last)", "(default: run)", "(default: 500)"):
        assert default in text


@pytest.mark.parametrize("command", ["noise", "attack", "report", "study"])
def test_help_imports_no_torch(command):
    """--help must answer at once: the modules it needs import no torch (nor pandas)."""
    code = (f"import sys, contextlib, io\nimport robustmix.{command} as m\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        m.build_parser().parse_args(['--help'])\n"
            "    except SystemExit:\n        pass\n"
            "print(sorted(k for k in ('torch', 'pandas', 'matplotlib') if k in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"
