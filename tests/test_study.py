"""Study files: validation before any work, and a killed study that resumes without redoing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import TINY_ATTACK, cli_in_process, snapshot

from robustmix import study
from robustmix.cli import run_main
from robustmix.studies import tasks
from robustmix.studies.spec import load_study

REPO = Path(__file__).resolve().parents[1]


def study_cli(path: Path, real: bool) -> subprocess.CompletedProcess:
    """`python -m robustmix.study path` where real, else study.main through the same run_main
    in this process (a subprocess costs seconds of torch import): one case per test pays it."""
    if real:
        return subprocess.run([sys.executable, "-m", "robustmix.study", str(path)], cwd=REPO,
                              capture_output=True, text=True)
    return cli_in_process(study.main, [str(path)], REPO)


@pytest.mark.parametrize("extra, key", [
    ("[extra]\nfoo = 1", "extra"),
    ("[methods.mixup_dropout]\nalpha = [1.0]\nbeta = [2]", "methods.mixup_dropout.beta"),
    ("[methods.dropout]\ndropout = [1.5]", "methods.dropout"),
    ("[methods.nonsense]", "methods.nonsense"),
])
def test_bad_study_file_is_rejected_naming_the_key(tmp_path, study_toml, extra, key):
    path = study_toml(extra)
    proc = study_cli(path, real=key == "extra")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert key in lines[0]
    assert not (tmp_path / "runs").exists(), "no work may start before the file is valid"


@pytest.mark.parametrize("old, new, key", [
    ("ratios = [0.5]", "ratio = [0.5]", "train.ratio"),
    ("seeds = [0]", 'seeds = "0"', "train.seeds"),
    ('dataset = "cifar10"', 'dataset = "mnist"', "data.dataset"),
    ("epochs = 1", "epochs = 1.5", "train.epochs"),
    ('name = "tiny"', 'name = "tiny"\nkeep_runs = "yes"', "keep_runs"),
])
def test_bad_keys_in_known_sections(tmp_path, study_toml, old, new, key):
    path = study_toml()
    path.write_text(path.read_text().replace(old, new))
    proc = study_cli(path, real=key == "train.ratio")
    assert proc.returncode == 2, proc.stderr
    assert key in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_eps_of_gives_an_attack_its_own_budgets(study_toml):
    """attack.eps_of runs an expensive attack at chosen ε only: one attack command per group,
    the others at 'eps'; a name outside 'attacks' or a bad list is refused naming the key."""
    from robustmix.errors import UsageError
    from robustmix.studies.spec import attack_jobs

    path = study_toml(attack=TINY_ATTACK)
    text = path.read_text()
    path.write_text(text.replace("steps = 2\n", "steps = 2\neps_of = { ifgsm = [8, 16] }\n"))
    s = load_study(path)
    runs = [s.out / c.run_name for c in s.configs]
    jobs = attack_jobs(s, runs)
    assert [(o["attacks"], o["eps"]) for _, o in jobs] == [(["fgsm"], [0.0, 8.0]),
                                                          (["ifgsm"], [8.0, 16.0])]
    assert all(t == runs and o["steps"] == 2 and "source" in o for t, o in jobs)
    for bad in ("{ pgd = [8] }", "{ ifgsm = 8 }", "{ ifgsm = [] }", "{ ifgsm = [300] }", "[8]"):
        path.write_text(text.replace("steps = 2\n", f"steps = 2\neps_of = {bad}\n"))
        with pytest.raises(UsageError, match="attack.eps_of"):
            load_study(path)


def test_impossible_values_are_rejected(study_toml):
    path = study_toml()
    path.write_text(path.read_text().replace("ratios = [0.5]", "ratios = [0.5, 1.5]"))
    with pytest.raises(Exception, match="train.ratios"):
        load_study(path)


def test_killed_study_resumes_without_redoing_finished_work(tmp_path, study_toml, monkeypatch):
    path = study_toml(attack=TINY_ATTACK)
    real = tasks.train_run
    calls = []

    def killed_on_second(*a, **k):
        calls.append(a[2])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tasks, "train_run", killed_on_second)
    assert run_main(study.main, [str(path), "--quiet"]) == 130
    runs = sorted((tmp_path / "runs").iterdir())
    finished = [r for r in runs if (r / "summary.json").exists()]
    assert len(finished) == 1
    before = snapshot(finished[0])

    monkeypatch.setattr(tasks, "train_run", real)
    retrained = []
    monkeypatch.setattr(tasks, "train_run", lambda *a, **k: retrained.append(a[2]) or real(*a, **k))
    assert run_main(study.main, [str(path), "--quiet"]) == 0
    assert [p.name for p in retrained] == [calls[1].name], "only the killed run is trained again"
    after = snapshot(finished[0])
    # the attack stage adds attack.csv, attack_outcomes.npz and attack_flags.csv; nothing else
    assert {k: v for k, v in after.items() if not Path(k).name.startswith("attack")} == before
    all_runs = sorted((tmp_path / "runs").iterdir())
    assert len(all_runs) == 2 and all((r / "summary.json").exists() for r in all_runs)
    # attacks and the report followed training
    for r in all_runs:
        df = pd.read_csv(r / "attack.csv")
        assert set(df["attack"]) == {"fgsm", "ifgsm"}
        assert set(df["mode"]) >= {"white-box"}
    assert (tmp_path / "report" / "report.md").exists()

    # a third run does nothing new: no training, attack rows unchanged
    snap = snapshot(tmp_path / "runs")
    retrained.clear()
    assert run_main(study.main, [str(path), "--quiet"]) == 0
    assert retrained == []
    assert snapshot(tmp_path / "runs") == snap


def test_keep_runs_copies_the_study_runs_results_beside_its_report(tmp_path, study_toml):
    from robustmix import study as study_cli
    from robustmix.cli import run_main

    path = study_toml()
    path.write_text(path.read_text().replace('name = "tiny"', 'name = "tiny"\nkeep_runs = true'))
    assert run_main(study_cli.main, [str(path), "--quiet"]) == 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir() if p.is_dir())
    kept = tmp_path / "report" / "runs"
    assert sorted(p.name for p in kept.iterdir()) == runs and len(runs) == 2
    for name in runs:
        assert (kept / name / "summary.json").exists() and (kept / name / "predictions.csv").exists()
        assert not list((kept / name).glob("*.pt")) and not (kept / name / "labels.csv").exists()


def test_second_study_process_takes_another_attack_job_instead_of_waiting(tmp_path, study_toml,
                                                                          capsys):
    """Two processes of one study share its attack stage: a job whose targets another process
    holds is put off, the next job is done meanwhile, and the put-off job is done once free."""
    import threading
    import time

    from robustmix.runs.lock import RunLock
    from robustmix.studies.spec import attack_jobs

    path = study_toml()
    text = path.read_text().replace("ratios = [0.5]", "ratios = [0.2, 0.5]")
    path.write_text(text + """
[attack]
attacks = ["fgsm"]
eps = [0, 8]
steps = 2
[attack.sources]
"0.2" = { method = "erm", seed = 1 }
"0.5" = { method = "erm", seed = 1 }
""")
    assert run_main(study.main, [str(path), "--quiet", "--skip-attacks", "--skip-report"]) == 0
    s = load_study(path)
    jobs = attack_jobs(s, [s.out / c.run_name for c in s.configs])
    (first, _), (second, _) = jobs  # one job per noise level, disjoint targets
    assert not set(first) & set(second)
    capsys.readouterr()
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(
        run_main(study.main, [str(path), "--quiet", "--skip-report"])))
    with RunLock(first[0]):  # another process attacking (or training) a target of the first job
        worker.start()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not all((t / "attack.csv").exists() for t in second):
            time.sleep(0.5)
        second_done_while_first_held = all((t / "attack.csv").exists() for t in second)
        assert not (first[0] / "attack.csv").exists()  # only the held target's groups wait
    worker.join(timeout=300)
    assert second_done_while_first_held
    assert done == [0]
    assert "put off" in capsys.readouterr().out
    assert all((t / "attack.csv").exists() for t in first)


def test_study_report_counts_the_black_box_source_among_its_methods_runs(tmp_path, study_toml):
    """The source run is trained by the study and is an ERM of another seed at the same noise:
    the study's report counts it, as the report command does given the same folders."""
    path = study_toml(attack=TINY_ATTACK.replace('source = { ratio = 0.5, method = "erm" }',
                                                 '[attack.sources]\n"0.5" = { method = "erm", '
                                                 'seed = 1 }'))
    assert run_main(study.main, [str(path), "--quiet", "--skip-attacks"]) == 0
    runs = pd.read_csv(tmp_path / "report" / "table_runs.csv")
    source = [r for r in (tmp_path / "runs").iterdir() if r.name.endswith("_s1")]
    assert len(source) == 1 and "_erm_" in source[0].name
    assert sorted(runs.loc[runs["method"] == "erm", "seed"]) == [0, 1]
    assert set(runs.loc[runs["method"] != "erm", "seed"]) == {0}
