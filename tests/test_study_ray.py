"""--executor ray on a real local Ray (two CPUs): the same results as the local executor, run for
run; nothing redone on a second invocation; a SIGKILLed task retried and resumed exactly; a
failing run reported while the others finish; bad input refused before Ray starts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import TINY_ATTACK, cli_in_process, snapshot

from robustmix import study
from robustmix.cli import run_main
from robustmix.runs.lock import lock_path
from robustmix.runs.rundir import start_run
from robustmix.studies.spec import load_study

REPO = Path(__file__).resolve().parents[1]
TIMING_COLUMNS = ["seconds", "train_seconds", "images_per_second"]
TIMING_KEYS = {"train_seconds", "total_seconds", "images_per_second"}
SOURCES = '\n[attack.sources]\n"0.5" = { method = "erm", seed = 2 }\n'


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    """One local Ray for the whole module (starting one takes seconds)."""
    ray = pytest.importorskip("ray")
    cache = tmp_path_factory.mktemp("ray-cache")
    # Workers start with this environment: their own dataset cache and one thread by default.
    env = {"ROBUSTMIX_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    for attempt in (1, 2):  # Ray gives its raylet a fixed 30 s to start: too short under load
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env})
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    yield ray
    ray.shutdown()


def study_file(study_toml, tmp: Path, name: str, body: str = "", attack: bool = True) -> Path:
    """The tiny study (conftest.study_toml) in tmp/name.toml, writing into tmp/name/."""
    return study_toml(body, root=tmp / name, file=tmp / f"{name}.toml",
                      attack=TINY_ATTACK if attack else None)


def same_run(a: Path, b: Path) -> None:
    """Two runs trained (and attacked) from the same config hold the same results."""
    # a SIGKILL during an atomic write leaves its hidden temp file behind, which nothing reads
    files = [sorted(p.name for p in r.iterdir() if not p.name.endswith(".tmp")) for r in (a, b)]
    assert files[0] == files[1], a.name
    ma, mb = (pd.read_csv(r / "metrics.csv").drop(columns=TIMING_COLUMNS) for r in (a, b))
    pd.testing.assert_frame_equal(ma, mb)
    sa, sb = ({k: v for k, v in json.loads((r / "summary.json").read_text()).items()
               if k not in TIMING_KEYS} for r in (a, b))
    assert sa == sb
    for name in ("labels.csv", "predictions.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ca, cb = (json.loads((r / "config.json").read_text()) for r in (a, b))
    assert ca["train"] == cb["train"] and ca["data"] == cb["data"]
    wa, wb = (torch.load(r / "last.pt", map_location="cpu", weights_only=True)["model"]
              for r in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    if (a / "attack.csv").exists():
        xa, xb = (pd.read_csv(r / "attack.csv").drop(columns=["seconds", "date", "device"])
                  for r in (a, b))
        pd.testing.assert_frame_equal(xa, xb)
        with np.load(a / "attack_outcomes.npz") as oa, np.load(b / "attack_outcomes.npz") as ob:
            assert sorted(oa.files) == sorted(ob.files)
            assert all(np.array_equal(oa[k], ob[k]) for k in oa.files)


@pytest.mark.ray
def test_ray_study_equals_local_run_for_run_and_reruns_nothing(
        ray_session, tmp_path, study_toml, capsys, one_thread):
    local_file = study_file(study_toml, tmp_path, "local")
    ray_file = study_file(study_toml, tmp_path, "ray")
    # 2 methods of seed 0 and a source-only ERM of seed 2: three runs for two CPUs, two seeds
    # and two methods, each compared with the local run (a second seed per method added two
    # more runs to train and attack, twice, and checked nothing these do not)
    for f in (local_file, ray_file):
        text = f.read_text()
        text = text.replace('source = { ratio = 0.5, method = "erm" }\n', "eps_of = { ifgsm = [8] }\n")
        f.write_text(text + SOURCES)  # ifgsm at ε = 8 only: a second attack task per target
    assert run_main(study.main, [str(local_file), "--quiet"]) == 0
    capsys.readouterr()

    assert run_main(study.main, [str(ray_file), "--executor", "ray", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 runs (0 finished), 3 to train" in out
    local_runs = sorted((tmp_path / "local" / "runs").iterdir())
    ray_runs = sorted((tmp_path / "ray" / "runs").iterdir())
    assert [r.name for r in ray_runs] == [r.name for r in local_runs] and len(ray_runs) == 3
    for a, b in zip(local_runs, ray_runs, strict=True):
        same_run(a, b)
        cfg = json.loads((b / "config.json").read_text())
        assert cfg["env"]["device_name"].endswith(" 1 threads")  # cpus_per_run's default
    attacked = [r for r in ray_runs if (r / "attack.csv").exists()]
    (source,) = [r for r in ray_runs if r.name.endswith("_s2")]
    assert len(attacked) == 2 and source not in attacked and "_erm_" in source.name
    for r in attacked:
        rows = pd.read_csv(r / "attack.csv")
        assert set(rows.loc[rows["attack"] == "ifgsm", "eps"]) == {8.0}
        assert set(rows.loc[rows["attack"] == "fgsm", "eps"]) == {0.0, 8.0}
    assert (tmp_path / "ray" / "report" / "report.md").exists()

    before = snapshot(tmp_path / "ray" / "runs")
    assert run_main(study.main, [str(ray_file), "--executor", "ray", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 runs (2 finished), 0 to train" in out
    assert re.findall(r"(\d+) row\(s\) to compute", out) == ["0"] * 4
    assert snapshot(tmp_path / "ray" / "runs") == before, "a second invocation changed runs"


@pytest.mark.ray
def test_sigkilled_task_is_retried_and_resumes_exactly(ray_session, tmp_path, study_toml, capsys,
                                                      one_thread):
    body = "\n[executor]\nmax_retries = 2\n"
    ray_file = study_file(study_toml, tmp_path, "ray", body, attack=False)
    local_file = study_file(study_toml, tmp_path, "local", attack=False)
    for f in (ray_file, local_file):  # one run, long enough to be killed in the middle
        f.write_text(f.read_text().replace("epochs = 1", "epochs = 12")
                     .replace("[methods.mixup]\nalpha = [1.0]\n", ""))
    run = tmp_path / "ray" / "runs" / load_study(ray_file).configs[0].run_name
    killed: dict = {}

    def kill_mid_run() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (run / "summary.json").exists():
            try:
                holder = lock_path(run).read_text()
                epochs = len(pd.read_csv(run / "metrics.csv"))
            except (OSError, ValueError, pd.errors.EmptyDataError):
                epochs = 0
            if epochs >= 2:
                pid = int(re.search(r"pid (\d+)", holder).group(1))
                os.kill(pid, signal.SIGKILL)
                killed.update(pid=pid, epochs=epochs)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_mid_run)
    watcher.start()
    rc = run_main(study.main, [str(ray_file), "--executor", "ray", "--quiet"])
    watcher.join()
    out = capsys.readouterr().out
    assert killed and killed["epochs"] < 12, f"the run was not killed mid-run: {killed}"
    assert rc == 0, out
    assert f"train {run.name}: started again" in out
    assert run.name + ": test-selected error" in out and "0 failed" in out

    assert run_main(study.main, [str(local_file), "--quiet"]) == 0
    same_run(tmp_path / "local" / "runs" / run.name, run)
    assert len(pd.read_csv(run / "metrics.csv")) == 12


@pytest.mark.ray
def test_failing_run_is_reported_while_the_others_finish(ray_session, tmp_path, study_toml,
                                                         capsys):
    path = study_file(study_toml, tmp_path, "ray", "\n[executor]\ncpus_per_run = 2\n")
    path.write_text(path.read_text().replace('source = { ratio = 0.5, method = "erm" }\n', ""))
    s = load_study(path)
    erm, mixup = (s.out / c.run_name for c in s.configs)
    # A run whose last checkpoint is unreadable: every attempt to resume it fails.
    start_run(mixup, s.configs[1], torch.device("cpu"), fresh=True)
    (mixup / "last.pt").write_bytes(b"not a checkpoint")

    assert run_main(study.main, [str(path), "--executor", "ray", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"train {mixup.name}: FAILED: .*cannot read checkpoint", out)
    assert f"failed: attack {mixup.name}: not started: {mixup.name} is not trained" in out
    assert "2 failed" in out
    assert (erm / "summary.json").exists() and (erm / "attack.csv").exists()
    assert not (mixup / "summary.json").exists()
    cfg = json.loads((erm / "config.json").read_text())
    assert cfg["env"]["device_name"].endswith(" 2 threads"), "cpus_per_run sets the threads"
    assert (tmp_path / "ray" / "report" / "report.md").exists()


@pytest.mark.parametrize("body, key", [
    ("[executor]\ngpus_per_rn = 1", "executor.gpus_per_rn"),
    ("[executor]\ncpus_per_run = 0", "executor.cpus_per_run"),
    ("[executor]\ngpus_per_run = 1.5", "executor.gpus_per_run"),
    ('[executor]\nmax_retries = "3"', "executor.max_retries"),
])
def test_bad_executor_keys_are_refused_before_ray_starts(tmp_path, study_toml, monkeypatch,
                                                          body, key):
    path = study_toml(body)
    argv = [str(path), "--executor", "ray"]
    if key == "executor.gpus_per_rn":  # one case through the real entry point
        proc = subprocess.run([sys.executable, "-m", "robustmix.study", *argv], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
    else:  # the others in this process (no torch import each), where reaching Ray fails
        from robustmix.studies import ray_executor

        def reached(*_, **__):
            raise AssertionError("the Ray executor was reached")

        monkeypatch.setattr(ray_executor, "run_study_ray", reached)
        proc = cli_in_process(study.main, argv, REPO)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], proc.stderr
    assert "Ray instance" not in proc.stdout + proc.stderr
    assert not (tmp_path / "runs").exists()


def test_without_ray_the_error_names_the_install_command(tmp_path, study_toml):
    path = study_toml()
    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
            "from robustmix import study; from robustmix.cli import run_main\n"
            f"sys.exit(run_main(study.main, [{str(path)!r}, '--executor', 'ray']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install -e ".[ray]"' in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists()


def test_address_needs_the_ray_executor(tmp_path, study_toml, capsys):
    path = study_toml()
    assert run_main(study.main, [str(path), "--address", "auto"]) == 2
    assert "--executor ray" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
