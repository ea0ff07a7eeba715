"""`python -m robustmix.evaluate`: an outside model (a factory plus weights, or TorchScript) on
tiny fake CIFAR-10 data, the run-like folder it writes, and bad input (one line, exit 2, nothing
written)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from evaluate_models import Flattened, tiny
from helpers import snapshot

import robustmix
import robustmix.evaluate as evaluate_cli  # the command (`from robustmix import evaluate`: the API)
from robustmix.attacks.runner import COLUMNS
from robustmix.cli import run_main
from robustmix.evaluation.folder import UNRELIABLE

pytestmark = pytest.mark.usefixtures("one_thread")

FILES = ["config.json", "attack.csv", "attack_flags.csv", "checks.csv", "calibration.csv",
         "robustbench.json", "summary.json"]
FAST = ["--n", "20", "--steps", "2", "--device", "cpu", "--resamples", "50"]


def cli(*args) -> int:
    return run_main(evaluate_cli.main, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The tiny model's weights, its TorchScript file, and files that are wrong in each way."""
    root = tmp_path_factory.mktemp("models")
    model = tiny(10, 3)
    out = {"weights": root / "tiny.pt", "script": root / "tiny.ts", "pickle": root / "whole.pt",
           "flat": root / "flat.ts", "checkpoint": root / "checkpoint.pt"}
    torch.save(model.state_dict(), out["weights"])
    torch.save({"model": model.state_dict(), "epoch": 3}, out["checkpoint"])  # robustmix's form
    torch.save(model, out["pickle"])  # the whole module pickled: not weights-only
    torch.jit.save(torch.jit.script(model), out["script"])
    torch.jit.save(torch.jit.script(Flattened()), out["flat"])
    return out


def read(out: Path, name: str):
    return json.loads((out / name).read_text()) if name.endswith(".json") else pd.read_csv(out / name)


def test_factory_and_weights_end_to_end(tiny, files, tmp_path, capsys):
    out = tmp_path / "tiny-eval"
    assert cli("--factory", "evaluate_models:tiny", "--weights", files["weights"], "--data",
               tiny.pickles, "--attacks", "fgsm,pgd", "--eps", "0,2,8", *FAST, "--out", out) == 0
    text = capsys.readouterr().out
    assert "clean accuracy" in text and "ece" in text
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    # summary.json is written last: it marks a finished folder
    times = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert times["summary.json"] == max(times.values())

    config = read(out, "config.json")
    assert config["kind"] == "robustmix.evaluate" and config["model"]["factory"] == "evaluate_models:tiny"
    assert config["model"]["sha256"] == hashlib.sha256(files["weights"].read_bytes()).hexdigest()
    assert config["data"]["n"] == 20 and len(config["data"]["test_fingerprint"]) == 16
    assert config["environment"]["torch"] == torch.__version__ and config["seed"] == 0
    assert config["calibration"]["ece_bins"] == 15

    rows = read(out, "attack.csv")
    assert list(rows.columns) == COLUMNS and len(rows) == 6
    assert rows["run"].eq("tiny-eval").all() and rows["method"].eq("external").all()
    assert rows["n"].eq(20).all() and rows["mode"].eq("white-box").all()
    assert set(rows["test_fingerprint"]) == {config["data"]["test_fingerprint"]}

    cal = read(out, "calibration.csv").set_index("metric")
    assert list(cal.index) == ["ece", "ece_debiased", "nll", "brier"] and cal.loc["ece", "bins"] == 15
    assert (cal["ci_low"] <= cal["ci_high"]).all()

    bench = read(out, "robustbench.json")
    clean = rows[rows["eps"] == 0]["accuracy"].iloc[0]
    assert bench["clean_acc"] == round(100 * clean, 2) and bench["n_images"] == 20
    assert bench["threat_model"] == "Linf" and bench["autoattack_acc"] is None  # not run
    assert isinstance(bench[UNRELIABLE], bool)
    summary = read(out, "summary.json")
    assert math.isclose(summary["clean_accuracy"], clean)

    # the same numbers as the Python API on the same images
    x = torch.from_numpy(tiny.arrays.x_test).permute(0, 3, 1, 2).float() / 255
    from robustmix.evaluation.predict import test_indices

    idx = test_indices(tiny.arrays.y_test, 20)
    api = robustmix.evaluate(tiny_model(files), x[idx], tiny.arrays.y_test[idx],
                             attacks=["fgsm", "pgd"], eps=[0, 2, 8], steps=2, resamples=50)
    assert list(api.attacks["correct"]) == list(rows["correct"])


def tiny_model(files) -> torch.nn.Module:
    m = tiny(10, 3)
    m.load_state_dict(torch.load(files["weights"], weights_only=True))
    return m


def test_torchscript_with_autoattack_and_a_checkpoint_dict(tiny, files, tmp_path,
                                                           cheap_autoattack):
    out = tmp_path / "ts"
    assert cli("--torchscript", files["script"], "--data", tiny.pickles, "--attacks",
               "fgsm,autoattack", "--eps", "0,8", *FAST, "--out", out) == 0
    bench = read(out, "robustbench.json")
    aa = read(out, "attack.csv").query("attack == 'autoattack'")
    assert bench["eps"] == "8/255" and bench["autoattack_acc"] == round(100 * aa["accuracy"].iloc[0], 2)
    assert read(out, "config.json")["model"]["kind"] == "torchscript"
    # a robustmix-style checkpoint ({"model": state dict, ...}) is read too
    assert cli("--factory", "evaluate_models:tiny", "--weights", files["checkpoint"], "--data",
               tiny.pickles, "--attacks", "fgsm", "--eps", "0", *FAST, "--out",
               tmp_path / "ck") == 0


def test_finished_folder_needs_force_and_a_foreign_folder_is_never_touched(tiny, files,
                                                                           tmp_path, capsys):
    args = ["--factory", "evaluate_models:tiny", "--weights", files["weights"], "--data",
            tiny.pickles, "--attacks", "fgsm", "--eps", "0", *FAST]
    out = tmp_path / "e"
    assert cli(*args, "--out", out) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert cli(*args, "--out", out) == 2
    assert "--force" in capsys.readouterr().err and snapshot(out) == before
    assert cli(*args, "--out", out, "--force") == 0 and (out / "summary.json").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    (foreign / "config.json").write_text("{}")
    before = snapshot(foreign)
    assert cli(*args, "--out", foreign, "--force") == 2
    assert "did not make" in capsys.readouterr().err and snapshot(foreign) == before


def write_npz(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    np.savez(path, x=x, y=y)
    return path


BAD = {
    "weights that do not match the factory": (
        ["--factory", "evaluate_models:wider", "--weights", "{weights}"], "do not match factory"),
    "a pickle that is not weights-only": (
        ["--factory", "evaluate_models:tiny", "--weights", "{pickle}"], "not weights-only"),
    "a TorchScript file that does not take the images": (
        ["--torchscript", "{flat}"], "does not take the dataset's images"),
    "outputs not N x classes": (
        ["--factory", "evaluate_models:five_outputs", "--weights", "{five}"],
        r"outputs \(2, 5\) for 2 images, not N x classes \(2 x 10\)"),
    "images outside [0, 1]": (
        ["--factory", "evaluate_models:tiny", "--weights", "{weights}", "--data", "{npz}"],
        r"\[0, 1\]; saw \[-0\.5"),
    "unknown factory": (
        ["--factory", "evaluate_models:nope", "--weights", "{weights}"], "has no 'nope'"),
    "unknown factory module": (
        ["--factory", "no_such_module:f", "--weights", "{weights}"], "no module named"),
    "factory without weights": (["--factory", "evaluate_models:tiny"], "needs --weights"),
    "no model": ([], "--factory MODULE:FUNCTION with --weights FILE, or as --torchscript"),
    "missing weights file": (
        ["--factory", "evaluate_models:tiny", "--weights", "{missing}"], "does not exist"),
    "not a TorchScript file": (["--torchscript", "{weights}"], "cannot load TorchScript"),
    "bad eps": (["--torchscript", "{script}", "--eps", "300"], "outside"),
    "unknown corruption": (["--torchscript", "{script}", "--corruptions", "rain"],
                           "unknown corruption rain"),
    "unknown severity": (["--torchscript", "{script}", "--corruptions", "fog", "--severities",
                          "6"], "unknown severity 6"),
    "corruptions of float images": (
        ["--torchscript", "{script}", "--data", "{floats}", "--corruptions", "fog"],
        "needs 32 x 32 RGB uint8 test images"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tiny, files, tmp_path, capsys):
    five = tmp_path / "five.pt"
    torch.save(tiny_five(), five)
    x = np.random.default_rng(0).uniform(-0.5, 1.5, (20, 3, 32, 32)).astype(np.float32)
    npz = write_npz(tmp_path / "bad.npz", x, np.arange(20) % 10)
    floats = write_npz(tmp_path / "floats.npz", x.clip(0, 1), np.arange(20) % 10)
    paths = {**{k: str(v) for k, v in files.items()}, "five": five, "npz": npz, "floats": floats,
             "missing": tmp_path / "missing.pt"}
    argv, message = BAD[case]
    argv = [a.format(**paths) for a in argv]
    if "--data" not in argv:
        argv += ["--data", str(tiny.pickles)]
    out = tmp_path / "out"
    capsys.readouterr()
    assert cli(*argv, *FAST, "--out", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert not out.exists()


def tiny_five() -> dict:
    from evaluate_models import five_outputs

    return five_outputs(10, 3).state_dict()


def test_good_npz_images_are_evaluated(files, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    npz = write_npz(tmp_path / "own.npz", x, np.arange(30) % 10)
    out = tmp_path / "own"
    assert cli("--torchscript", files["script"], "--data", npz, "--attacks", "fgsm", "--eps",
               "0,1", *FAST, "--n", "0", "--out", out) == 0
    assert read(out, "config.json")["data"]["n"] == 30


def test_the_api_stays_callable_once_the_command_is_imported():
    import importlib

    importlib.import_module("robustmix.evaluate")
    assert callable(robustmix.evaluate)
    x, y = torch.rand(4, 3, 8, 8), torch.arange(4)
    assert len(robustmix.evaluate(tiny(10, 3), x, y, attacks=["fgsm"], eps=[0]).attacks) == 1


def test_docs_example_runs(tmp_path, monkeypatch, cheap_autoattack):
    """docs/evaluate.md's Python block, then its first command, in a fresh folder."""
    import shlex

    text = (Path(__file__).resolve().parents[1] / "docs" / "evaluate.md").read_text()
    command = text.split("```bash", 1)[1].split("```")[0].strip()
    code = text.split("```python", 1)[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/evaluate.md", "exec"), {})  # noqa: S102
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "robustmix.evaluate"]
    assert cli(*argv[3:]) == 0
    assert (tmp_path / "evals" / "net" / "summary.json").exists()


def test_common_corruptions_of_an_outside_model(tiny, files, tmp_path, capsys):
    """--corruptions: the model under common corruptions, with the calibration of the same
    predictions, in trained runs' corruptions.csv schema; the clean row equals the clean
    accuracy of attack.csv (the same images)."""
    pytest.importorskip("imagecorruptions", reason='needs the extra: pip install -e ".[corruptions]"')
    from robustmix.evaluation.corruption_runs import COLUMNS as CORRUPTION_COLUMNS

    out = tmp_path / "corr"
    assert cli("--torchscript", files["script"], "--data", tiny.pickles, "--attacks", "fgsm",
               "--eps", "0", "--corruptions", "fog,contrast", "--severities", "1,5", *FAST,
               "--out", out) == 0
    assert "common corruptions (4 corruption x severity sets" in capsys.readouterr().out
    t = read(out, "corruptions.csv")
    assert list(t.columns) == CORRUPTION_COLUMNS and len(t) == 5
    assert list(zip(t["corruption"], t["severity"], strict=True)) == [
        ("clean", 0), ("fog", 1), ("fog", 5), ("contrast", 1), ("contrast", 5)]
    assert t["method"].eq("external").all() and t["n"].eq(20).all()
    assert t["ece"].between(0, 1).all() and (t["nll"] > 0).all()
    clean = read(out, "attack.csv").query("eps == 0")["accuracy"].iloc[0]
    assert t["accuracy"].iloc[0] == pytest.approx(clean)
    assert read(out, "config.json")["corruptions"]["severities"] == [1, 5]
    times = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert times["summary.json"] == max(times.values())
