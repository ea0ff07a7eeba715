"""Common corruptions (CIFAR-10-C style): generation, determinism, cache, accuracy and mCE."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import class_images
from torch import nn

from robustmix.errors import UsageError

C = pytest.importorskip("robustmix.evaluation.corruptions")
pytest.importorskip("imagecorruptions", reason='needs the extra: pip install -e ".[corruptions]"')

pytestmark = pytest.mark.usefixtures("one_thread")


def images(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    x, y = class_images(1, seed=3)  # one image per class, noisy flat colours
    return x[:n], y[:n]


@pytest.mark.parametrize("i,name", list(enumerate(C.CORRUPTIONS)))
def test_every_corruption_runs_on_32x32(i, name):
    x, _ = images(3)
    severity = C.SEVERITIES[i % 5]  # every severity is met by three corruptions
    before = x.copy()
    out = C.corrupt_images(x, name, severity, seed=0)
    assert out.shape == x.shape and out.dtype == np.uint8
    assert np.array_equal(x, before)  # the input is left alone
    assert not np.array_equal(out, x)  # and the corruption changes something


@pytest.mark.parametrize("name", ["gaussian_noise", "contrast", "pixelate"])
def test_package_constants_run(name):
    x, _ = images(2)
    out = C.corrupt_images(x, name, 3, seed=0, constants="package")
    assert out.shape == x.shape and out.dtype == np.uint8
    assert not np.array_equal(out, C.corrupt_images(x, name, 3, seed=0))  # other constants


@pytest.mark.parametrize("name", sorted(C.RANDOM))
def test_same_seed_same_images_other_seed_differs(name):
    x, _ = images(3)
    a = C.corrupt_images(x, name, 5, seed=1)
    assert np.array_equal(a, C.corrupt_images(x, name, 5, seed=1))
    assert not np.array_equal(a, C.corrupt_images(x, name, 5, seed=2))


def test_deterministic_corruptions_ignore_the_seed():
    x, _ = images(2)
    for name in set(C.CORRUPTIONS) - C.RANDOM:
        assert np.array_equal(C.corrupt_images(x, name, 2, seed=1),
                              C.corrupt_images(x, name, 2, seed=9)), name


def test_an_image_depends_on_its_position_not_on_n_and_global_rng_is_restored():
    x, _ = images(5)
    np.random.seed(123)
    state = np.random.get_state()
    five = C.corrupt_images(x, "glass_blur", 4, seed=0)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]
    assert np.array_equal(five[:3], C.corrupt_images(x[:3], "glass_blur", 4, seed=0))
    # impulse noise draws from its own seeded generator, also reproducibly
    assert np.array_equal(C.corrupt_images(x, "impulse_noise", 5, seed=0),
                          C.corrupt_images(x, "impulse_noise", 5, seed=0))


def test_severity_grows_the_damage():
    x, _ = images(4)
    dist = [np.abs(C.corrupt_images(x, "gaussian_noise", s).astype(int) - x).mean()
            for s in C.SEVERITIES]
    assert dist == sorted(dist)


@pytest.mark.parametrize("kwargs,match", [
    ({"corruption": "rain"}, "unknown corruption rain"),
    ({"severity": 6}, "unknown severity 6"),
    ({"severity": 0}, "unknown severity 0"),
    ({"constants": "imagenet"}, "unknown corruption constants"),
])
def test_unknown_request_is_one_line_usage_error(kwargs, match):
    x, _ = images(1)
    args = {"corruption": "fog", "severity": 1, "seed": 0, "constants": "cifar10-c", **kwargs}
    with pytest.raises(UsageError, match=match) as e:
        C.corrupt_images(x, **args)
    assert "\n" not in str(e.value)


def test_wrong_images_are_a_usage_error():
    with pytest.raises(UsageError, match="uint8 N x 32 x 32 x 3"):
        C.corrupt_images(np.zeros((2, 28, 28, 1), np.uint8), "fog", 1)
    with pytest.raises(UsageError, match="uint8"):
        C.corrupt_images(np.zeros((2, 32, 32, 3), np.float32), "fog", 1)


def test_missing_package_names_the_extra(monkeypatch):
    import importlib.metadata as md

    real = md.version

    def version(name):
        if name == C.PACKAGE:
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(md, "version", version)
    C.package.cache_clear()
    try:
        with pytest.raises(UsageError, match=r'pip install -e "\.\[corruptions\]"') as e:
            C.corrupt_images(images(1)[0], "fog", 1)
        assert "\n" not in str(e.value) and C.PACKAGE in str(e.value)
    finally:
        C.package.cache_clear()


def test_cache_is_written_and_hit(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTMIX_CACHE", str(tmp_path))
    x, _ = images(3)
    first = C.corrupted(x, "frost", 2, seed=4)
    files = list((tmp_path / "corruptions").glob("*.npy"))
    assert len(files) == 1 and "frost-s2-n3-seed4-cifar10-c" in files[0].name
    assert not list((tmp_path / "corruptions").glob(".*"))  # no temp file left behind

    def boom(*a, **k):
        raise AssertionError("regenerated despite the cache")

    monkeypatch.setattr(C, "corrupt_images", boom)
    assert np.array_equal(first, C.corrupted(x, "frost", 2, seed=4))
    monkeypatch.undo()
    monkeypatch.setenv("ROBUSTMIX_CACHE", str(tmp_path))
    files[0].write_bytes(b"damaged")  # a damaged cache is rebuilt
    assert np.array_equal(first, C.corrupted(x, "frost", 2, seed=4))
    # another seed, severity or image set is another entry
    C.corrupted(x, "frost", 2, seed=5)
    C.corrupted(x[:2], "frost", 2, seed=4)
    assert len(list((tmp_path / "corruptions").glob("*.npy"))) == 3


class Constant(nn.Module):
    """Always predicts class k."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(len(x), 10) + self.w
        out[:, self.k] = 1.0
        return out


def test_corruption_accuracy_is_a_tidy_table():
    x, y = images(10)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 10))
    model.train()
    t = C.corruption_accuracy(model, x, y, ["fog", "contrast"], [1, 5], seed=0)
    assert model.training  # the caller's mode is restored
    assert list(t.columns) == C.COLUMNS
    assert list(zip(t["corruption"], t["severity"], strict=True)) == [
        ("clean", 0), ("fog", 1), ("fog", 5), ("contrast", 1), ("contrast", 5)]
    assert (t["n"] == 10).all() and t["accuracy"].between(0, 1).all()
    assert (t["ci_low"] <= t["accuracy"]).all() and (t["accuracy"] <= t["ci_high"]).all()
    assert t["package"].str.startswith(C.PACKAGE).all() and t["images"].nunique() == 1
    # a constant model is right on the images of its class whatever the corruption
    t = C.corruption_accuracy(Constant(2), x, y, ["snow"], [3], clean=False)
    assert list(t["correct"]) == [1] and t["accuracy"].iloc[0] == pytest.approx(0.1)
    # its calibration, from the same predictions: softmax of logits 1 (class 2) and 0 (others)
    # gives p = e / (e + 9) to class 2 on every image, right on 1 of 10
    p = np.e / (np.e + 9)
    assert t["ece"].iloc[0] == pytest.approx(abs(p - 0.1))
    assert t["nll"].iloc[0] == pytest.approx(0.1 * -np.log(p) + 0.9 * -np.log((1 - p) / 9))


def test_corruption_accuracy_refuses_bad_input():
    x, y = images(4)
    with pytest.raises(UsageError, match="unknown severity 7"):
        C.corruption_accuracy(Constant(0), x, y, ["fog"], [7])
    with pytest.raises(UsageError, match="4 images but labels"):
        C.corruption_accuracy(Constant(0), x, y[:3], ["fog"], [1])


def table(clean: float, acc: dict[str, list[float]], n: int = 100) -> pd.DataFrame:
    rows = [{"corruption": "clean", "severity": 0, "accuracy": clean, "n": n}]
    rows += [{"corruption": c, "severity": s + 1, "accuracy": a, "n": n}
             for c, accs in acc.items() for s, a in enumerate(accs)]
    return pd.DataFrame(rows)


def test_mce_on_hand_made_tables():
    model = table(0.9, {"fog": [0.8, 0.6], "contrast": [0.7, 0.5]})
    base = table(0.8, {"fog": [0.6, 0.4], "contrast": [0.7, 0.3]})
    r = C.mce(model, base)
    per = r.per_corruption.set_index("corruption")
    # fog: errors 0.2 + 0.4 against 0.4 + 0.6; contrast: 0.3 + 0.5 against 0.3 + 0.7
    assert per.loc["fog", "ce"] == pytest.approx(0.6 / 1.0)
    assert per.loc["contrast", "ce"] == pytest.approx(0.8 / 1.0)
    assert r.mce == pytest.approx(0.7)
    # relative: (0.2 - 0.1 + 0.4 - 0.1) / (0.4 - 0.2 + 0.6 - 0.2); (0.2 + 0.4) / (0.1 + 0.5)
    assert per.loc["fog", "relative_ce"] == pytest.approx(0.4 / 0.6)
    assert per.loc["contrast", "relative_ce"] == pytest.approx(0.6 / 0.6)
    assert r.relative_mce == pytest.approx((0.4 / 0.6 + 1.0) / 2)
    assert list(per.index) == ["fog", "contrast"]  # the benchmark's order
    assert C.mce(base, base).mce == pytest.approx(1.0)


def test_mce_without_clean_rows_has_no_relative_mce():
    model = table(0.9, {"fog": [0.8]}).iloc[1:]
    base = table(0.8, {"fog": [0.6]}).iloc[1:]
    r = C.mce(model, base)
    assert r.mce == pytest.approx(0.5) and np.isnan(r.relative_mce)


def test_mce_refuses_tables_that_do_not_match():
    base = table(0.8, {"fog": [0.6, 0.4]})
    with pytest.raises(UsageError, match="different corruptions or severities"):
        C.mce(table(0.9, {"fog": [0.8]}), base)
    with pytest.raises(UsageError, match="scored on 50 images and the baseline on 100"):
        C.mce(table(0.9, {"fog": [0.8, 0.6]}, n=50), base)
    other = table(0.9, {"fog": [0.8, 0.6]}).assign(images="a")
    with pytest.raises(UsageError, match="different test images"):
        C.mce(other, base.assign(images="b"))


# ///// the stage for trained runs: python -m robustmix.corrupt /////

ERM = "cifar10_sym0.5_erm_a0_p0_quick_s0"
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One CIFAR-format ERM run and one Fashion-MNIST run, trained for one epoch."""
    from attack_fixtures import trained_world

    with trained_world(tmp_path_factory.mktemp("corrupt")) as root:
        yield root


def corrupt(*args) -> int:
    from robustmix import corrupt as cli
    from robustmix.cli import run_main

    return run_main(cli.main, [str(a) for a in args])


def test_cli_names_match_the_module():
    from robustmix import corrupt as cli

    assert cli.NAMES == C.CORRUPTIONS


def test_stage_writes_corruptions_csv_and_resumes(world, tmp_path, capsys):
    import shutil

    from robustmix.evaluation.corruption_runs import COLUMNS
    from robustmix.runs.files import CORRUPTIONS, METRICS

    run = shutil.copytree(world / "runs" / ERM, tmp_path / ERM)
    assert corrupt(run, "--corruptions", "fog,pixelate", "--severities", "1,5",
                   "--device", "cpu", "--quiet") == 0
    out = capsys.readouterr().out
    assert "pixelate" in out and "accuracy (%)" in out
    t = pd.read_csv(run / CORRUPTIONS)
    assert list(t.columns) == COLUMNS and len(t) == 5
    assert list(zip(t["corruption"], t["severity"], strict=True)) == [
        ("clean", 0), ("fog", 1), ("fog", 5), ("pixelate", 1), ("pixelate", 5)]
    # the clean row is the run's own test accuracy (same images, fp32 as it trained)
    m = pd.read_csv(run / METRICS)
    assert t["accuracy"].iloc[0] == pytest.approx(float(m["test_acc"].iloc[-1]), abs=1e-6)
    assert (t["n"] == t["n"].iloc[0]).all() and t["test_fingerprint"].nunique() == 1
    # every row's per-image outcomes, under the row's own key, agree with its counts and ECE
    from robustmix.evaluation import calibration as cal
    from robustmix.evaluation.corruption_outcomes import key_text, read_outcomes
    from robustmix.evaluation.corruption_runs import key

    outcomes = read_outcomes(run)
    assert len(outcomes) == 5
    for row in t.to_dict("records"):
        o = outcomes[key_text(key(row))]
        assert len(o.correct) == row["n"] and int(o.correct.sum()) == row["correct"]
        assert cal.ece_from(o.confidence, o.correct.astype(float)) == pytest.approx(
            row["ece"], abs=2e-3)  # float16 probabilities
        assert (o.p_label <= o.confidence + 1e-3).all()
    before = (run / CORRUPTIONS).read_bytes()
    # rerun: nothing to compute, nothing rewritten; more severities add rows only
    assert corrupt(run, "--corruptions", "fog,pixelate", "--severities", "1,5",
                   "--device", "cpu", "--quiet") == 0
    assert (run / CORRUPTIONS).read_bytes() == before
    assert corrupt(run, "--corruptions", "fog", "--severities", "2", "--device", "cpu",
                   "--quiet") == 0
    t2 = pd.read_csv(run / CORRUPTIONS)
    assert len(read_outcomes(run)) == 6
    cols = ["corruption", "severity", "correct", "date"]
    assert len(t2) == 6 and t2.drop(index=2)[cols].reset_index(drop=True).equals(t[cols])
    assert list(t2["corruption"][:4]) == ["clean", "fog", "fog", "fog"]  # sorted
    # --force recomputes (the same numbers: the images are seeded)
    assert corrupt(run, "--corruptions", "fog", "--severities", "1", "--force", "--device",
                   "cpu", "--quiet") == 0
    t3 = pd.read_csv(run / CORRUPTIONS)
    assert len(t3) == 6
    assert t3["correct"].equals(t2["correct"]) and t3["date"].iloc[1] >= t2["date"].iloc[1]


@pytest.mark.parametrize("args,match", [
    (["--corruptions", "rain"], "unknown corruption rain"),
    (["--severities", "0,6"], "unknown severity 0, 6"),
    (["--seed", "-1"], "--seed must be"),
])
def test_stage_bad_input_is_one_line_exit_2_nothing_written(world, args, match, capsys):
    from robustmix.runs.files import CORRUPTIONS

    run = world / "runs" / ERM
    assert corrupt(run, *args, "--device", "cpu", "--quiet") == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
    assert not (run / CORRUPTIONS).exists()


def test_stage_refuses_a_fashion_run(world, capsys):
    from robustmix.runs.files import CORRUPTIONS

    runs = list((world / "fruns").glob("*/summary.json"))
    assert corrupt(runs[0].parent, "--corruptions", "fog", "--device", "cpu", "--quiet") == 2
    assert "32 x 32 x 3" in capsys.readouterr().err
    assert not (runs[0].parent / CORRUPTIONS).exists()


def test_motion_blur_takes_cifar10_c_constants(monkeypatch):
    """motion_blur's (radius, sigma) per severity are make_cifar_c.py's (hendrycks/robustness),
    not ImageNet-C's or Tiny-ImageNet-C's, and its angle is drawn from U(-45, 45)."""
    seen = []

    def record(x, radius, sigma, angle):
        seen.append((radius, sigma, angle))
        return x

    monkeypatch.setattr(C.package()[0], "_motion_blur", record)
    x, _ = images(1)
    for s in C.SEVERITIES:
        C.CIFAR10_C["motion_blur"](x[0], s, 0)
    assert [(r, sg) for r, sg, _ in seen] == [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)]
    assert all(-45 <= a <= 45 for _, _, a in seen)


def test_outcomes_round_trip_without_pickle(tmp_path):
    from robustmix.evaluation.corruption_outcomes import Outcome, read_outcomes, write_outcomes

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=7)
    labels = rng.integers(0, 10, 7)
    a = Outcome.from_probs(probs, labels)
    b = Outcome.from_probs(probs[:3], labels[:3])
    assert (a.correct == (probs.argmax(1) == labels)).all()
    write_outcomes(tmp_path, {"k1": a, "k2": b})
    back = read_outcomes(tmp_path)
    assert set(back) == {"k1", "k2"} and len(back["k2"].correct) == 3
    assert (back["k1"].correct == a.correct).all()
    assert np.allclose(back["k1"].confidence, a.confidence, atol=1e-3)
    assert np.allclose(back["k1"].p_label, a.p_label, atol=1e-3)
    assert read_outcomes(tmp_path / "none") == {}
