"""`python -m robustmix.noise` as users run it: bad input is one line on stderr, exit status 2,
no traceback, and nothing on disk changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import cifar_arrays, cli_in_process, snapshot, write_image_folder

import robustmix.noise as noise
from robustmix.cli import run_main


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # ROBUSTMIX_CACHE: the test's private cache
    env.pop("ROBUSTMIX_DATA", None)
    return subprocess.run([sys.executable, "-m", "robustmix.noise", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def cli(args: list[str], cwd: Path, real: bool) -> subprocess.CompletedProcess:
    """The real entry point where real, else noise.main through the same run_main in this
    process: a few cases of each kind pay for a subprocess's torch import, not every one."""
    return run_cli(args, cwd) if real else cli_in_process(noise.main, args, cwd)


def base_args(data: Path, out: Path) -> list[str]:
    return ["--methods", "erm", "--epochs", "1", "--width", "4", "--train-subset", "100",
            "--data", str(data), "--out", str(out), "--quiet", "--precision", "fp32",
            "--device", "cpu", "--profile", "quick", "--val-n", "20"]


def assert_usage_error(r: subprocess.CompletedProcess, *fragments: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), r.stderr
    assert lines[0].startswith("error: ")
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


class Disk:
    """Snapshots of every place a run could write: the test's folder, the cache, the data."""

    def __init__(self, *roots: Path) -> None:
        self.roots = roots
        self.before = self.take()

    def take(self) -> list[dict]:
        return [snapshot(r) for r in self.roots]

    def assert_unchanged(self) -> None:
        after = self.take()
        for root, a, b in zip(self.roots, self.before, after, strict=True):
            assert a == b, f"{root} changed: {sorted(set(a.items()) ^ set(b.items()))[:5]}"


@pytest.fixture
def place(tmp_path, tiny):
    """A working directory, an output folder that does not exist yet, and a disk snapshot."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "runs"

    def disk() -> Disk:
        return Disk(tmp_path, Path(os.environ["ROBUSTMIX_CACHE"]), tiny.pickles)

    return cwd, out, disk


BAD_OPTIONS = {
    "ratio above 1": (["--ratio", "1.5"], ["1.5", "[0, 1]"]),
    "negative ratio": (["--ratio", "-0.1"], ["-0.1", "[0, 1]"]),
    "unknown method": (["--methods", "erm,bogus"], ["bogus"]),
    "negative alpha": (["--methods", "mixup", "--alpha", "-1"], ["alpha", "-1"]),
    "dropout 1": (["--methods", "dropout", "--dropout", "1.0"], ["dropout", "[0, 1)"]),
    "negative dropout": (["--dropout", "-0.2"], ["dropout", "-0.2"]),
    "k zero": (["--methods", "mixup_knn", "--k", "0"], ["--k", "0"]),
    "smoothing 1": (["--methods", "label_smoothing", "--smoothing", "1.0"], ["smoothing", "1.0"]),
}
# More bad input, checked in-process through the same run_main the entry point calls (each
# subprocess costs seconds of torch import on the 2-core machine); of BAD_OPTIONS, only the
# first goes through the real entry point.
MORE_BAD_OPTIONS = {
    "ratio not a number": (["--ratio", "half"], ["half"]),
    "several ratios, one bad": (["--ratio", "0.2", "2"], ["2", "[0, 1]"]),
    "nan alpha": (["--methods", "mixup", "--alpha", "nan"], ["alpha"]),
    "no methods": (["--methods", ","], ["(none)"]),
    "zero epochs": (["--epochs", "0"], ["epochs"]),
    "unknown option": (["--bogus"], ["--bogus"]),
    "unknown noise": (["--noise", "pairs"], ["pairs"]),
    "tiny subset": (["--train-subset", "5"], ["at least 10"]),
    "zero width": (["--width", "0"], ["width"]),
    "no gpu": (["--device", "cuda"], ["CUDA"]),
    "fast unknown model": (["--profile", "fast", "--model", "fastnett"], ["unknown model",
                                                                          "fastnett"]),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_bad_options(tiny, place, case):
    cwd, out, disk = place
    extra, fragments = BAD_OPTIONS[case]
    d = disk()
    r = cli(base_args(tiny.pickles, out) + extra, cwd, real=case == next(iter(BAD_OPTIONS)))
    assert_usage_error(r, *fragments)
    d.assert_unchanged()
    assert not out.exists()


@pytest.mark.parametrize("case", list(MORE_BAD_OPTIONS))
def test_more_bad_options_in_process(tiny, place, case, capsys):
    cwd, out, disk = place
    extra, fragments = MORE_BAD_OPTIONS[case]
    if case == "no gpu" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    d = disk()
    rc = run_main(noise.main, base_args(tiny.pickles, out) + extra)
    captured = capsys.readouterr()
    assert_usage_error(subprocess.CompletedProcess([], rc, captured.out, captured.err), *fragments)
    d.assert_unchanged()
    assert not out.exists()


def _bad_data(kind: str, tmp: Path) -> Path:
    if kind == "missing":
        return tmp / "no-such-data"
    if kind == "garbage archive":
        p = tmp / "cifar-10-python.tar.gz"
        p.write_bytes(b"\x1f\x8b this is not really gzip" * 100)
        return p
    # wrong shape: 16x16 PNGs in an otherwise correct tree
    return write_image_folder(tmp / "small-images", cifar_arrays(2, 2, seed=0, size=16))


BAD_DATA = ["missing", "garbage archive", "wrong shape"]
REAL_BAD_DATA = "garbage archive"  # the one bad data source through the real entry point


@pytest.mark.parametrize("kind", BAD_DATA)
def test_bad_data_with_an_existing_output_folder(tiny, place, kind):
    cwd, out, disk = place
    out.mkdir()
    data = _bad_data(kind, cwd.parent)
    d = disk()
    r = cli(base_args(data, out), cwd, real=kind == REAL_BAD_DATA)
    assert_usage_error(r, str(data))
    d.assert_unchanged()
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("kind", BAD_DATA)
def test_bad_data_creates_no_output_folder(tiny, place, kind):
    cwd, out, disk = place
    data = _bad_data(kind, cwd.parent)
    d = disk()
    r = cli(base_args(data, out), cwd, real=False)
    assert_usage_error(r, str(data))
    d.assert_unchanged()


def test_asymmetric_noise_on_fashion_changes_nothing(tiny, place, capsys):
    cwd, out, disk = place
    args = base_args(tiny.fashion_dir, out) + ["--dataset", "fashion-mnist", "--noise", "asym"]
    d = disk()
    rc = run_main(noise.main, args)
    captured = capsys.readouterr()
    assert_usage_error(subprocess.CompletedProcess([], rc, captured.out, captured.err),
                       "cifar10 only")
    d.assert_unchanged()


def test_output_folder_that_cannot_be_made(tiny, place):
    cwd, _, disk = place
    blocker = cwd.parent / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "sub"
    d = disk()
    r = cli(base_args(tiny.pickles, out), cwd, real=False)
    assert_usage_error(r, str(out))
    d.assert_unchanged()


def test_existing_run_made_with_another_config(tiny, place, capsys):
    cwd, out, disk = place
    assert noise.main(base_args(tiny.pickles, out)) == 0
    capsys.readouterr()
    (run,) = out.iterdir()
    d = disk()
    args = base_args(tiny.pickles, out)
    args[args.index("--epochs") + 1] = "2"
    r = cli(args, cwd, real=False)
    msg = assert_usage_error(r, str(run), "another config", "epochs 1 on disk vs 2 now")
    assert "--force" in msg
    d.assert_unchanged()


def test_auto_precision_finds_a_run_another_machine_made_in_bf16(tiny, place, monkeypatch):
    """precision 'auto' means whatever the machine chooses: a finished bf16 run (made where auto
    chose bf16) is that run on a machine where auto chooses fp32, not 'another config'; an
    unfinished one is refused, since resuming in fp32 would splice two trainings."""
    cwd, out, disk = place
    args = base_args(tiny.pickles, out)
    bf16 = list(args)
    bf16[bf16.index("--precision") + 1] = "bf16"
    assert cli(bf16, cwd, real=False).returncode == 0
    (run,) = out.iterdir()
    import robustmix.evaluation.device as device

    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)
    auto = list(args)
    auto[auto.index("--precision") + 1] = "auto"
    d = disk()
    r = cli(auto, cwd, real=False)
    assert r.returncode == 0, r.stderr
    assert f"{run}: finished earlier" in r.stdout and "0 of 1 runs to train" in r.stdout
    d.assert_unchanged()
    # asked for explicitly, fp32 is another run
    assert_usage_error(cli(args, cwd, real=False), "another config", "precision 'bf16' on disk")
    # and under auto a difference besides the precision still is one
    longer = list(auto)
    longer[longer.index("--epochs") + 1] = "2"
    assert_usage_error(cli(longer, cwd, real=False), "another config", "epochs 1 on disk vs 2 now")
    (run / "summary.json").unlink()
    d = disk()
    assert_usage_error(cli(auto, cwd, real=False), str(run), "was started in bf16",
                       "chooses fp32 on this machine")
    d.assert_unchanged()


def test_good_command_trains(tiny, place):
    """The real entry point end to end: exit 0, no progress bars with --quiet, a finished run."""
    cwd, out, _ = place
    r = run_cli(base_args(tiny.pickles, out), cwd)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "epoch" not in r.stderr  # --quiet: no bars
    (run,) = out.iterdir()
    assert (run / "summary.json").exists()
    assert f"training {run}" in r.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["last_epoch"] == 1 and summary["method"] == "erm"
