"""`python -m robustmix.attack` on tiny real runs trained by the real training CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from attack_fixtures import ROOT, env, snapshot, trained_world
from helpers import cli_in_process

from robustmix import attack as attack_cli
from robustmix.attacks.flags import COLUMNS as FLAG_COLUMNS
from robustmix.attacks.flags import FLAGS
from robustmix.attacks.outcomes import OUTCOMES, read_outcomes
from robustmix.attacks.runner import COLUMNS, outcome_key
from robustmix.cli import run_main
from robustmix.runs.files import ATTACK, CONFIG, LAST, METRICS, SUMMARY, read_json

ERM = "cifar10_sym0.5_erm_a0_p0_quick_s0"
MIXUP = "cifar10_sym0.5_mixup_a4_p0_quick_s0"
FAST = ["--steps", "2", "--quiet", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two CIFAR-format runs (erm, mixup) and one Fashion-MNIST run, trained for one epoch."""
    with trained_world(tmp_path_factory.mktemp("attack"), "erm,mixup") as root:
        yield root


def attack(*args) -> int:
    return run_main(attack_cli.main, [str(a) for a in args])


def last_test_acc(run: Path, which: str = "last") -> float:
    m = pd.read_csv(run / METRICS)
    return float(m["test_acc"].iloc[-1] if which == "last" else m["test_acc"].max())


def test_white_and_black_box_rows(world, capsys):
    runs, erm, mixup = world / "runs", world / "runs" / ERM, world / "runs" / MIXUP
    # --precision run: each run's training precision, so ε = 0 is the stored test accuracy
    assert attack(runs, "--source", erm, "--eps", "0,2,8", "--precision", "run", *FAST) == 0
    out = capsys.readouterr().out
    assert "18 row(s) to compute" in out and "black-box" in out and "ifgsm" in out
    assert "worst case" in out and "gradient-masking flags" in out
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
    assert not mixup_rows["twin"].any()  # erm and mixup: another method, not a twin
    for run in (erm, mixup):  # every row's per-image outcomes are stored beside it
        outcomes, df = read_outcomes(run), pd.read_csv(run / ATTACK)
        assert len(outcomes) == len(df)
        for r in df.to_dict("records"):
            assert outcomes[outcome_key(r)].sum() == r["correct"] and len(outcomes[outcome_key(r)]) == r["n"]
        assert list(pd.read_csv(run / FLAGS).columns) == FLAG_COLUMNS


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
    key = ["mode", "source", "attack", "eps", "steps", "step_size", "restarts", "queries",
           "attack_seed", "n", "precision"]
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
    "unknown attack": lambda w: [w / "runs", "--attacks", "fgsm,nope"],
    "source on another dataset": lambda w: [w / "runs", "--source",
                                            next((w / "fruns").iterdir())],
    "steps 0": lambda w: [w / "runs", "--attacks", "pgd", "--steps", "0"],
    "restarts 0": lambda w: [w / "runs", "--attacks", "pgd", "--restarts", "0"],
    "queries 0": lambda w: [w / "runs", "--attacks", "square", "--queries", "0"],
    "step size 0": lambda w: [w / "runs", "--attacks", "pgd", "--step-size", "0"],
    "negative step size": lambda w: [w / "runs", "--attacks", "pgd", "--step-size=-1"],
    "negative seed": lambda w: [w / "runs", "--attacks", "pgd", "--seed=-2"],
    "twin source": lambda w: [w / "bad" / "twin", "--source", w / "runs" / ERM, "--attacks", "pgd"],
    "nothing to transfer": lambda w: [w / "runs" / MIXUP, "--source", w / "runs" / ERM,
                                      "--no-white-box", "--attacks", "square,autoattack"],
}

# The bad input through the real entry point: it loads a checkpoint, the deepest of them.
REAL_BAD = "checkpoint mismatch"


@pytest.fixture(scope="module")
def bad_results(world):
    """Every bad input, the tree snapshotted around them all: REAL_BAD through the real CLI,
    the others through attack.main and the same run_main in this process (a subprocess each
    cost seconds of torch import, on 2 cores)."""
    bad = world / "bad"
    shutil.copytree(world / "runs" / ERM, bad / "unfinished")
    for f in (SUMMARY, LAST, "best.pt"):
        (bad / "unfinished" / f).unlink()
    shutil.copytree(world / "runs" / ERM, bad / "mismatch")
    cfg = read_json(bad / "mismatch" / CONFIG)
    cfg["train"]["width"] = 8
    (bad / "mismatch" / CONFIG).write_text(json.dumps(cfg))
    shutil.copytree(world / "runs" / ERM, bad / "twin")  # same seed and method as the source
    before = snapshot(world / "runs"), snapshot(bad), snapshot(world / "fruns")
    real = subprocess.Popen(
        [sys.executable, "-m", "robustmix.attack", "--quiet", *map(str, BAD[REAL_BAD](world))],
        env=env(world / "cache"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    results = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROBUSTMIX_CACHE", str(world / "cache"))  # as env() gives the subprocess
        for name, make in BAD.items():
            if name != REAL_BAD:  # PYTHONWARNINGS=ignore in env(): no warnings either
                r = cli_in_process(attack_cli.main, ["--quiet", *map(str, make(world))], ROOT,
                                   show_warnings=False)
                results[name] = (r.returncode, r.stdout, r.stderr)
    out, err = real.communicate(timeout=300)
    results[REAL_BAD] = (real.returncode, out, err)
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
    assert "unknown attack nope" in err["unknown attack"]
    assert "fashion-mnist" in err["source on another dataset"]
    assert "--steps must be at least 1" in err["steps 0"]
    assert "--restarts must be at least 1" in err["restarts 0"]
    assert "--queries must be at least 1" in err["queries 0"]
    assert "--step-size must be in (0, 255]" in err["step size 0"]
    assert "--step-size must be in (0, 255]" in err["negative step size"]
    assert "--seed" in err["negative seed"]
    assert "shares seed 0 and method erm" in err["twin source"] and "--allow-twin" in err["twin source"]
    assert "only fgsm, ifgsm, pgd are transferred" in err["nothing to transfer"]


def test_help_shows_defaults():
    res = subprocess.run([sys.executable, "-m", "robustmix.attack", "--help"], cwd=ROOT,
                         capture_output=True, text=True, env=env(Path("/tmp")))
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    for default in ("(default: fgsm,ifgsm)", "(default: 0,1,2,4,8,16)", "(default: 10)",
                    "(default: rule)", "(default: last)", "(default: run)", "(default: 500)",
                    "(default: fp32)", "(default: 1)", "(default: 5000)", "(default: 0)",
                    "2.5·ε/steps"):
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


def fresh_copy(run: Path, dest: Path) -> Path:
    """A copy of a run without the attack results earlier tests left in it."""
    shutil.copytree(run, dest)
    for f in (ATTACK, OUTCOMES, FLAGS):
        (dest / f).unlink(missing_ok=True)
    return dest


STRONG = ["--attacks", "pgd,autoattack,square", "--eps", "0,8", "--steps", "2", "--restarts", "2",
          "--queries", "10", "--seed", "3", "--quiet", "--device", "cpu"]


def test_strong_attacks_settings_outcomes_flags_and_resume(world, tmp_path, capsys,
                                                           cheap_autoattack):
    run = fresh_copy(world / "runs" / ERM, tmp_path / ERM)
    assert attack(run, *STRONG) == 0
    out = capsys.readouterr().out
    assert "6 row(s) to compute" in out and "precision fp32" in out and "worst case" in out
    df = pd.read_csv(run / ATTACK)
    assert list(df.columns) == COLUMNS and len(df) == 6
    assert df["precision"].eq("fp32").all() and not df["twin"].any()
    got = {a: g.set_index("eps") for a, g in df.groupby("attack")}
    pgd, aa, sq = got["pgd"].loc[8.0], got["autoattack"].loc[8.0], got["square"].loc[8.0]
    assert (pgd["steps"], pgd["step_size"], pgd["restarts"], pgd["queries"], pgd["attack_seed"]) \
        == (2, 10.0, 2, 0, 3)  # step size 2.5·ε/steps
    assert (aa["steps"], aa["queries"], aa["restarts"], aa["attack_seed"]) == (100, 5000, 1, 3)
    assert (sq["steps"], sq["queries"], sq["attack_seed"]) == (0, 10, 3)
    outcomes = read_outcomes(run)
    assert len(outcomes) == 6
    for r in df.to_dict("records"):
        assert int(outcomes[outcome_key(r)].sum()) == r["correct"]
    assert (run / FLAGS).exists()

    files = {f: (run / f).read_bytes() for f in (ATTACK, OUTCOMES, FLAGS)}
    assert attack(run, *STRONG) == 0
    assert "0 row(s) to compute" in capsys.readouterr().out
    assert {f: (run / f).read_bytes() for f in files} == files  # nothing rewritten

    # an interrupted sweep: one AutoAttack row gone, only it comes back
    gone = (df["attack"] == "autoattack") & (df["eps"] == 8)
    df[~gone].to_csv(run / ATTACK, index=False)
    assert attack(run, *STRONG) == 0
    assert "1 row(s) to compute" in capsys.readouterr().out
    after = pd.read_csv(run / ATTACK)
    assert len(after) == 6
    kept = after.merge(df[~gone], on=["attack", "eps"], suffixes=("", "_old"))
    assert (kept["seconds"] == kept["seconds_old"]).all()

    # rows whose outcomes are not stored are computed again, to store them
    (run / OUTCOMES).unlink()
    assert attack(run, *STRONG) == 0
    assert "6 row(s) to compute" in capsys.readouterr().out
    assert len(read_outcomes(run)) == 6


def test_old_attack_csv_without_new_columns_still_loads(world, tmp_path, capsys):
    run = fresh_copy(world / "runs" / MIXUP, tmp_path / MIXUP)
    args = [run, "--attacks", "fgsm,ifgsm", "--eps", "0,4", *FAST]
    assert attack(*args) == 0
    new = pd.read_csv(run / ATTACK)
    old = new.drop(columns=["twin", "restarts", "queries", "attack_seed"])
    old.to_csv(run / ATTACK, index=False)  # as written before those columns existed
    capsys.readouterr()
    assert attack(*args) == 0  # loads; the defaults it fills match the rows' keys
    assert "0 row(s) to compute" in capsys.readouterr().out
    assert attack(*args[:4], "0,4,8", *FAST) == 0  # a new ε: the file is written whole
    assert "2 row(s) to compute" in capsys.readouterr().out
    filled = pd.read_csv(run / ATTACK)
    assert list(filled.columns) == COLUMNS and len(filled) == 6
    filled = filled[filled["eps"] != 8]
    assert filled["restarts"].eq(1).all() and filled["queries"].eq(0).all()
    assert filled["attack_seed"].eq(-1).all() and not filled["twin"].any()
    assert filled["accuracy"].tolist() == new["accuracy"].tolist()


def test_twin_source_with_allow_twin_and_bf16(world, tmp_path, capsys):
    twin = fresh_copy(world / "runs" / ERM, tmp_path / "twin" / ERM)
    assert attack(twin, "--source", world / "runs" / ERM, "--allow-twin", "--no-white-box",
                  "--attacks", "fgsm,square", "--eps", "0,8", "--precision", "bf16", *FAST) == 0
    df = pd.read_csv(twin / ATTACK)
    assert set(df["mode"]) == {"black-box"} and set(df["attack"]) == {"fgsm"}  # square: not transferred
    assert df["twin"].all() and df["source"].eq(ERM).all() and df["precision"].eq("bf16").all()


def test_report_shows_robust_accuracy_relative_accuracy_and_flags(world, tmp_path, capsys):
    """The report's robust accuracy is the per-image worst case recomputed from the stored
    outcomes, never above any attack's accuracy; relative accuracy is 100 % at ε = 0."""
    import numpy as np

    from robustmix import report

    runs = tmp_path / "runs"
    for name in (ERM, MIXUP):
        fresh_copy(world / "runs" / name, runs / name)
    assert attack(runs, "--attacks", "fgsm,ifgsm,pgd", "--eps", "0,2,8", *FAST) == 0
    out = tmp_path / "report"
    assert run_main(report.main, [str(runs), "--out", str(out)]) == 0
    capsys.readouterr()
    robust = pd.read_csv(out / "table_robust.csv")
    table = pd.read_csv(out / "table_attack.csv")
    assert set(robust["eps"]) == {2.0, 8.0} and (robust["n_runs"] == 1).all()
    assert set(robust["attacks"]) == {"fgsm+ifgsm+pgd"}
    for name in (ERM, MIXUP):
        rows, outcomes = pd.read_csv(runs / name / ATTACK), read_outcomes(runs / name)
        method = read_json(runs / name / SUMMARY)["method"]
        clean = outcomes[outcome_key(rows[rows["eps"] == 0].iloc[0])]
        for eps in (2.0, 8.0):
            masks = [outcomes[outcome_key(r)] for r in rows[rows["eps"] == eps].to_dict("records")]
            expect = 100 * np.logical_and.reduce([clean, *masks]).mean()
            got = robust[(robust["method"] == method) & (robust["eps"] == eps)]["robust_mean"]
            assert got.item() == pytest.approx(expect, abs=1e-3)
            each = table[(table["method"] == method) & (table["eps"] == eps)]["accuracy_mean"]
            assert got.item() <= each.min() + 1e-9
    zero = table[table["eps"] == 0]
    assert np.allclose(zero["relative_mean"], 100.0)
    md = (out / "report.md").read_text()
    assert "### Robust accuracy" in md and "fig_robust.png" in md and "fig_attack_relative" in md
    assert "### Gradient-masking flags" in md
    assert (out / "fig_robust.png").exists() and (out / "fig_attack_relative.png").exists()
    flags = pd.concat([pd.read_csv(runs / n / FLAGS) for n in (ERM, MIXUP)])
    assert len(pd.read_csv(out / "table_flags.csv")) == len(flags)
    v = pd.read_csv(out / "table_verdicts.csv")
    claim = v[v["claim"].str.startswith("mixup keeps more test images robust than ERM")]
    assert len(claim) == 1 and "fgsm, ifgsm, pgd) at ε = 8/255" in claim["claim"].item()
    at8 = robust[robust["eps"] == 8].set_index("method")["robust_mean"]
    assert claim["effect"].item() == pytest.approx(at8["mixup"] - at8["erm"], abs=1e-3)
    assert ("No flag raised" in md) == (len(flags) == 0)


def test_attacks_on_one_run_wait_for_each_other_and_keep_every_row(world, tmp_path, capsys):
    """Two processes attacking one run: the second waits for the run lock, then reads what the
    first wrote, so rows are neither computed twice nor lost when attack.csv is rewritten."""
    import threading

    from robustmix.runs.lock import RunLock

    run = fresh_copy(world / "runs" / ERM, tmp_path / ERM)
    assert attack(run, "--attacks", "fgsm", "--eps", "0,4", *FAST) == 0
    capsys.readouterr()
    done: list[int] = []
    with RunLock(run):  # another process writing the run
        second = threading.Thread(target=lambda: done.append(
            attack(run, "--attacks", "fgsm,ifgsm", "--eps", "0,4", *FAST)))
        second.start()
        second.join(timeout=3)
        assert second.is_alive() and not done  # waiting, nothing computed yet
        rows = pd.read_csv(run / ATTACK)  # as the holder leaves it: one more row
        extra = rows.iloc[[-1]].assign(eps=2.0, accuracy=0.123)
        pd.concat([rows, extra]).to_csv(run / ATTACK, index=False)
    second.join(timeout=300)
    assert done == [0]
    out = capsys.readouterr().out
    assert f"waiting for {ERM}: another process is writing it" in out
    assert "2 row(s) to compute" in out  # the ifgsm rows only: fgsm was there already
    final = pd.read_csv(run / ATTACK)
    assert len(final) == 5 and (final["accuracy"] == 0.123).sum() == 1  # the holder's row kept


def test_a_run_with_nothing_to_compute_is_not_waited_for(world, tmp_path, capsys):
    """Only targets with rows to compute are locked: a run whose rows are all in attack.csv may
    be held by another process (another study sharing it) without holding this command up,
    white-box or as a member of a black-box group."""
    import threading

    from robustmix.runs.lock import RunLock

    erm = fresh_copy(world / "runs" / ERM, tmp_path / "runs" / ERM)
    mixup = fresh_copy(world / "runs" / MIXUP, tmp_path / "runs" / MIXUP)
    args = ["--attacks", "fgsm", "--eps", "0,4", "--source", mixup, *FAST]
    assert attack(erm, *args) == 0  # erm: white-box and black-box (from mixup) rows, all done
    before = (erm / ATTACK).read_text()
    capsys.readouterr()
    done: list[int] = []
    with RunLock(erm):  # another process writing erm
        worker = threading.Thread(target=lambda: done.append(attack(erm, mixup, *args)))
        worker.start()
        worker.join(timeout=120)
        finished_while_held = not worker.is_alive()
    worker.join(timeout=300)
    assert finished_while_held and done == [0]
    out = capsys.readouterr().out
    assert "2 row(s) to compute" in out and "waiting for" not in out  # mixup's white-box rows
    assert (erm / ATTACK).read_text() == before
    assert len(pd.read_csv(mixup / ATTACK)) == 2


def test_without_wait_free_groups_are_done_before_busy_is_raised(world, tmp_path):
    """wait=False (a study's first pass over its attack jobs): groups whose target is busy are
    put off; every free group is computed and written before RunBusy reaches the caller."""
    from robustmix.attacks.runner import AttackSpec, run_attacks
    from robustmix.runs.lock import RunBusy, RunLock

    erm = fresh_copy(world / "runs" / ERM, tmp_path / ERM)
    mixup = fresh_copy(world / "runs" / MIXUP, tmp_path / MIXUP)
    spec = AttackSpec(attacks=["fgsm"], eps=[0.0, 4.0], steps=2, device="cpu", quiet=True,
                      wait=False)
    with RunLock(erm), pytest.raises(RunBusy) as e:
        run_attacks([erm, mixup], spec)
    assert e.value.run == erm
    assert not (erm / ATTACK).exists() and len(pd.read_csv(mixup / ATTACK)) == 2
    res = run_attacks([erm, mixup], spec)  # free now: only erm's rows are left
    assert set(res.table["run"]) == {ERM, MIXUP}
    assert len(pd.read_csv(erm / ATTACK)) == 2 and len(pd.read_csv(mixup / ATTACK)) == 2
