"""What robustmix may do to the disk: refuse unwritable outputs with one line, never attack a run
on other test images than it was trained on, validate a study whole before any work, never
delete a folder robustmix did not write, and let only one process write a run at a time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from attack_fixtures import ROOT, env, snapshot, write_cifar
from helpers import cifar_arrays, write_cifar_pickles

from robustmix import attack as attack_cli
from robustmix import noise, report, study
from robustmix.cli import run_main
from robustmix.runs.files import ATTACK, CONFIG, SUMMARY, read_json
from robustmix.runs.lock import RunBusy, RunLock, lock_path
from robustmix.studies import tasks

RUN = "cifar10_sym0.5_erm_a0_p0_quick_s0"  # the run name the TRAIN options give
TRAIN = ["--ratio", "0.5", "--methods", "erm", "--epochs", "1", "--width", "4",
         "--train-subset", "60", "--quiet", "--precision", "fp32", "--device", "cpu",
         "--profile", "quick", "--val-n", "20"]
ATTACK_FAST = ["--attacks", "fgsm", "--eps", "0,8", "--quiet", "--device", "cpu"]


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [*TRAIN, "--data", str(data), "--out", str(out), *extra]


def one_line_error(rc: int, err: str, *fragments: str) -> str:
    """The CLI convention for bad input: exit 2, one 'error: ' line on stderr, no traceback."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def main_error(main, argv: list[str], capsys, *fragments: str) -> str:
    """Run an entry point in-process through run_main and check for a one-line usage error."""
    capsys.readouterr()
    rc = run_main(main, [str(a) for a in argv])
    return one_line_error(rc, capsys.readouterr().err, *fragments)


@pytest.fixture
def trains(monkeypatch) -> list[Path]:
    """Every run the local executor trains in this test, in order."""
    calls: list[Path] = []
    real = tasks.train_run

    def counted(cfg, ds, run, *a, **k):
        calls.append(Path(run))
        return real(cfg, ds, run, *a, **k)

    monkeypatch.setattr(tasks, "train_run", counted)
    return calls


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished tiny run whose recorded data source has since been moved away.

    Returns (run, the source config.json records, the moved copy of that data).
    """
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROBUSTMIX_CACHE", str(root / "cache"))
        mp.delenv("ROBUSTMIX_DATA", raising=False)
        data = write_cifar(root / "orig")  # 100 train, 20 test images
        assert run_main(noise.main, train_args(data, root / "runs")) == 0
    run = root / "runs" / RUN
    recorded = read_json(run / CONFIG)["data"]["source"]
    assert Path(recorded) == data.resolve()
    shutil.move(root / "orig", root / "moved")
    return run, recorded, root / "moved" / data.name


def study_file(study_toml, *, out: Path | str | None = None, report_to: Path | str | None = None,
               device: str = '"cpu"', attack: str | None = None) -> Path:
    """The tiny study (conftest.study_toml) with ERM only, in safety.toml."""
    return study_toml(name="safety", file="safety.toml", out=out, report=report_to,
                      train={"device": device}, methods="[methods.erm]", attack=attack)


GOOD_ATTACK = """attacks = ["fgsm", "ifgsm"]
eps = [0, 8]
steps = 2
batch = 50
n = 20
source = { ratio = 0.5, method = "erm" }"""


# --- 1. unwritable output --------------------------------------------------------------------

def test_noise_out_under_proc_is_one_line_error(tiny, tmp_path):
    """The real entry point: root passes permission checks on /proc, so only trying tells."""
    cache = Path(os.environ["ROBUSTMIX_CACHE"])
    before = snapshot(tmp_path), snapshot(cache)
    r = subprocess.run([sys.executable, "-m", "robustmix.noise",
                        *train_args(tiny.pickles, Path("/proc/robustmix-x"))],
                       cwd=tmp_path, env=env(cache), capture_output=True, text=True, timeout=300)
    one_line_error(r.returncode, r.stderr, "/proc/robustmix-x")
    assert "Traceback" not in r.stdout
    assert (snapshot(tmp_path), snapshot(cache)) == before
    assert not Path("/proc/robustmix-x").exists()


def test_noise_existing_unwritable_out_is_one_line_error(tiny, tmp_path, capsys, trains):
    """/proc itself: an existing folder nothing can be created in (as a read-only mount is)."""
    before = snapshot(tmp_path)
    main_error(noise.main, train_args(tiny.pickles, Path("/proc")), capsys, "/proc")
    assert not Path("/proc", RUN).exists() and not lock_path(Path("/proc", RUN)).exists()
    assert trains == [] and snapshot(tmp_path) == before


def test_noise_out_blocked_by_a_file(tiny, tmp_path, capsys, trains):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / RUN).write_text("a file where the run directory would go\n")
    before = snapshot(tmp_path)
    main_error(noise.main, train_args(tiny.pickles, blocker), capsys, str(blocker))
    main_error(noise.main, train_args(tiny.pickles, blocker / "sub"), capsys, str(blocker))
    for extra in ([], ["--force"]):
        main_error(noise.main, train_args(tiny.pickles, runs, *extra), capsys, str(runs / RUN))
    assert snapshot(tmp_path) == before and trains == []
    assert (runs / RUN).read_text() == "a file where the run directory would go\n"


def test_report_unwritable_out(trained, tmp_path, capsys):
    run = trained[0]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    before = snapshot(tmp_path), snapshot(run.parent)
    for out in (Path("/proc/robustmix-report"), Path("/proc"), blocker, blocker / "sub"):
        main_error(report.main, [run, "--out", out], capsys, str(out))
    assert (snapshot(tmp_path), snapshot(run.parent)) == before
    assert not Path("/proc/robustmix-report").exists()


@pytest.mark.parametrize("where", ["out", "report"])
@pytest.mark.parametrize("blocked", ["proc", "file"])
def test_study_unwritable_out_or_report(study_toml, tmp_path, capsys, trains, where, blocked):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    bad = Path("/proc/robustmix-study") if blocked == "proc" else blocker / "sub"
    path = study_file(study_toml, **({"out": bad} if where == "out" else {"report_to": bad}))
    before = snapshot(tmp_path)
    main_error(study.main, [path, "--check"], capsys, str(bad))
    main_error(study.main, [path, "--quiet"], capsys, str(bad))
    assert trains == [], "nothing may be trained when an output cannot be written"
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "runs").exists() and not (tmp_path / "report").exists()


# --- 2. the data a run is attacked on --------------------------------------------------------

def test_attack_refuses_a_moved_data_source(trained, tmp_path, capsys, monkeypatch):
    run, recorded, moved = trained
    target = shutil.copytree(run, tmp_path / RUN)
    # Another copy sits where data is found by default: it must not be used silently.
    monkeypatch.setenv("ROBUSTMIX_DATA", str(moved))
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    msg = main_error(attack_cli.main, [target, *ATTACK_FAST], capsys, recorded)
    assert "--data" in msg
    assert snapshot(tmp_path) == before and not (target / ATTACK).exists()


def test_attack_with_data_copy_of_the_same_test_images(trained, tmp_path, capsys):
    run, recorded, moved = trained
    target = shutil.copytree(run, tmp_path / RUN)
    copy = shutil.copytree(moved, tmp_path / "copy" / moved.name)
    assert run_main(attack_cli.main, [str(target), "--data", str(copy), *ATTACK_FAST]) == 0
    df = pd.read_csv(target / ATTACK, dtype={"test_fingerprint": str})
    assert len(df) == 2
    assert df["data"].eq(str(copy)).all(), df["data"]
    expected = read_json(target / CONFIG)["data"]["test_fingerprint"]
    assert expected and df["test_fingerprint"].eq(expected).all()
    # ε = 0 is the accuracy training measured on these very images
    metrics = pd.read_csv(target / "metrics.csv")
    assert df.loc[df["eps"] == 0, "accuracy"].item() == metrics["test_acc"].iloc[-1]


def test_attack_refuses_data_with_other_test_images(trained, tmp_path, capsys):
    run, recorded, moved = trained
    target = shutil.copytree(run, tmp_path / RUN)
    assert run_main(attack_cli.main, [str(target), "--data", str(moved), *ATTACK_FAST]) == 0
    first = (target / ATTACK).read_bytes()
    # the same images as attack_fixtures.write_cifar wrote, but for one test pixel
    a = cifar_arrays(10, 2, seed=0)
    a.x_test[0, 0, 0, 0] ^= 1
    other = write_cifar_pickles(tmp_path / "other", a)
    before = snapshot(tmp_path)
    for extra in ([], ["--force"], ["--eps", "0,4"]):
        main_error(attack_cli.main, [target, "--data", other, *ATTACK_FAST, *extra], capsys,
                   str(other), "differ")
    assert snapshot(tmp_path) == before
    assert (target / ATTACK).read_bytes() == first


# --- 3. study validation ---------------------------------------------------------------------

BAD_ATTACK = {
    "steps 0": (GOOD_ATTACK.replace("steps = 2", "steps = 0"), "attack.steps"),
    "negative step size": (GOOD_ATTACK + "\nstep_size = -1", "attack.step_size"),
    "batch 0": (GOOD_ATTACK.replace("batch = 50", "batch = 0"), "attack.batch"),
    "negative n": (GOOD_ATTACK.replace("n = 20", "n = -5"), "attack.n"),
    "unknown attack": (GOOD_ATTACK.replace('"ifgsm"]', '"no-such-attack"]'), "attack.attacks"),
    "unknown source method": (GOOD_ATTACK.replace('method = "erm"', 'method = "bogus"'),
                              "attack.source.method"),
}


BAD_DEVICES = ["tpu", "cudaa", "cuda:x", "cuda:", "CPU"]


@pytest.mark.parametrize("case", [*BAD_ATTACK, *(f"device {d}" for d in BAD_DEVICES)])
def test_bad_study_values_fail_at_load(study_toml, tmp_path, capsys, trains, case):
    # A misspelt cuda device too: --check on a machine without a GPU must not call it valid.
    if case.startswith("device "):
        path, key = study_file(study_toml, device=f'"{case[7:]}"',
                               attack=GOOD_ATTACK), "train.device"
    else:
        body, key = BAD_ATTACK[case]
        path = study_file(study_toml, attack=body)
    before = snapshot(tmp_path)
    for extra in (["--check"], ["--quiet"]):
        main_error(study.main, [path, *extra], capsys, key, str(path))
    assert trains == [], "nothing may be trained from an invalid study file"
    assert snapshot(tmp_path) == before


def test_good_study_attack_table_passes_check(study_toml, tmp_path, capsys):
    """The base file the bad cases above are made from is itself valid."""
    path = study_file(study_toml, attack=GOOD_ATTACK)
    assert run_main(study.main, [str(path), "--check"]) == 0
    assert "valid" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["safety.toml"]


def test_bad_study_value_through_the_real_entry_point(study_toml, tmp_path):
    path = study_file(study_toml, attack=BAD_ATTACK["steps 0"][0])
    r = subprocess.run([sys.executable, "-m", "robustmix.study", str(path)], cwd=tmp_path,
                       env=env(Path(os.environ["ROBUSTMIX_CACHE"])), capture_output=True,
                       text=True, timeout=300)
    one_line_error(r.returncode, r.stderr, "attack.steps")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["safety.toml"]


EXPERIMENTS = sorted((ROOT / "experiments").glob("*.toml"))


def test_there_are_committed_studies():
    assert len(EXPERIMENTS) >= 4


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_committed_study_passes_check_and_creates_nothing(path, tmp_path, monkeypatch, capsys):
    # Their out and report folders are relative: resolved here, in an empty folder.
    monkeypatch.chdir(tmp_path)
    assert run_main(study.main, [str(path), "--check"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"study {path.stem}" in out and "valid" in out
    assert list(tmp_path.iterdir()) == [], "--check must not create any folder"


# --- 4. never delete what robustmix did not write --------------------------------------------

def test_run_folder_holding_user_files_is_refused_then_empty_one_is_used(tiny, tmp_path, capsys,
                                                                          trains):
    out = tmp_path / "runs"
    mine = out / RUN
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("my notes\n")
    before = snapshot(tmp_path)
    for extra in ([], ["--force"]):
        main_error(noise.main, train_args(tiny.pickles, out, *extra), capsys, str(mine))
    assert (mine / "notes.txt").read_text() == "my notes\n"
    assert snapshot(tmp_path) == before and trains == []

    # the same folder, emptied by its owner, is robustmix's to use
    (mine / "notes.txt").unlink()
    assert run_main(noise.main, train_args(tiny.pickles, out)) == 0
    assert trains == [mine]
    assert (mine / SUMMARY).exists() and (mine / CONFIG).exists()


@pytest.mark.parametrize("config", ['{"name": "another tool"}\n', "[]\n", "not json\n"])
def test_force_never_empties_a_folder_with_a_foreign_config(tiny, tmp_path, capsys, trains,
                                                            config):
    """config.json alone does not make a folder robustmix's: it must hold a run's 'train'."""
    out = tmp_path / "runs"
    theirs = out / RUN
    theirs.mkdir(parents=True)
    (theirs / CONFIG).write_text(config)
    (theirs / "thesis.tex").write_text("precious\n")
    before = snapshot(tmp_path)
    for extra in ([], ["--force"]):
        main_error(noise.main, train_args(tiny.pickles, out, *extra), capsys, str(theirs))
    assert snapshot(tmp_path) == before and trains == []


def test_empty_run_folder_is_trained(tiny, tmp_path, trains):
    out = tmp_path / "runs"
    (out / RUN).mkdir(parents=True)
    assert run_main(noise.main, train_args(tiny.pickles, out)) == 0
    assert trains == [out / RUN]
    assert json.loads((out / RUN / SUMMARY).read_text())["method"] == "erm"


def test_force_retrains_a_finished_run(tiny, tmp_path, capsys, trains):
    out = tmp_path / "runs"
    assert run_main(noise.main, train_args(tiny.pickles, out)) == 0
    started = read_json(out / RUN / CONFIG)["env"]["started"]
    assert run_main(noise.main, train_args(tiny.pickles, out)) == 0
    assert "finished earlier" in capsys.readouterr().out
    assert trains == [out / RUN]
    (out / RUN / "stale.pt").write_bytes(b"left by an older robustmix")
    assert run_main(noise.main, train_args(tiny.pickles, out, "--force")) == 0
    assert trains == [out / RUN, out / RUN]
    assert (out / RUN / SUMMARY).exists() and not (out / RUN / "stale.pt").exists()
    assert read_json(out / RUN / CONFIG)["env"]["started"] >= started


# --- 5. one writer per run -------------------------------------------------------------------

def test_second_lock_on_the_same_run_raises_run_busy(tmp_path):
    run = tmp_path / "runs" / RUN
    with RunLock(run):
        assert lock_path(run).exists()
        with pytest.raises(RunBusy) as e, RunLock(run):
            pass
        assert f"pid {os.getpid()}" in e.value.holder and str(run) in str(e.value)
    assert not lock_path(run).exists()
    with RunLock(run):  # released: free again
        pass


def test_held_run_is_skipped_then_trained_after_release(tiny, tmp_path, capsys, trains):
    out = tmp_path / "runs"
    lock = RunLock(out / RUN)
    lock.__enter__()
    try:
        before = snapshot(out)
        capsys.readouterr()
        assert run_main(noise.main, train_args(tiny.pickles, out)) == 0
        said = capsys.readouterr().out
        assert "skipped" in said and f"pid {os.getpid()}" in said
        assert trains == [] and not (out / RUN).exists()
        assert snapshot(out) == before  # not even the lock file's text was touched
    finally:
        lock.__exit__(None, None, None)
    assert run_main(noise.main, train_args(tiny.pickles, out)) == 0
    assert trains == [out / RUN] and (out / RUN / SUMMARY).exists()
    assert not lock_path(out / RUN).exists()


def test_wait_trains_once_the_holder_releases(tiny, tmp_path, capsys, trains):
    out = tmp_path / "runs"
    lock = RunLock(out / RUN)
    lock.__enter__()
    release = threading.Timer(1.0, lock.__exit__, (None, None, None))
    release.start()
    try:
        assert run_main(noise.main, train_args(tiny.pickles, out, "--wait")) == 0
    finally:
        release.join()
        lock.__exit__(None, None, None)
    assert "skipped" not in capsys.readouterr().out
    assert trains == [out / RUN] and (out / RUN / SUMMARY).exists()


HOLD = """
import sys
from robustmix.runs.lock import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_lock_of_another_process_and_of_a_killed_one(tiny, tmp_path, capsys, trains):
    out = tmp_path / "runs"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out / RUN)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        assert run_main(noise.main, train_args(tiny.pickles, out)) == 0
        said = capsys.readouterr().out
        assert "skipped" in said and f"pid {holder.pid}" in said
        assert trains == [] and not (out / RUN).exists()
    finally:
        holder.kill()  # SIGKILL: no chance to remove its lock file
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()
    assert lock_path(out / RUN).exists()  # left behind, but the kernel dropped the lock
    assert run_main(noise.main, train_args(tiny.pickles, out)) == 0
    assert trains == [out / RUN] and (out / RUN / SUMMARY).exists()


def test_stale_lock_file_does_not_block(tiny, tmp_path, trains):
    out = tmp_path / "runs"
    out.mkdir()
    lock_path(out / RUN).write_text("host elsewhere pid 999999 since 2020-01-01T00:00:00+00:00\n")
    assert lock_path(out / RUN) == out / f".{RUN}.lock"
    assert run_main(noise.main, train_args(tiny.pickles, out)) == 0
    assert trains == [out / RUN] and (out / RUN / SUMMARY).exists()
    assert not lock_path(out / RUN).exists()


def test_study_skips_a_held_run(study_toml, tmp_path, capsys, trains):
    path = study_file(study_toml)
    with RunLock(tmp_path / "runs" / RUN):
        capsys.readouterr()
        assert run_main(study.main, [str(path), "--quiet", "--skip-report"]) == 0
        said = capsys.readouterr().out
    assert "skipped" in said and f"pid {os.getpid()}" in said
    assert trains == [] and not (tmp_path / "runs" / RUN).exists()
