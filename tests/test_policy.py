"""Defaults and policies: per-noise-level method settings, the bf16 precision policy, time
estimates on any device, and comparing with the paper only like for like."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import robustmix.noise as noise
from robustmix.cli import run_main
from robustmix.evaluation import device as dev
from robustmix.reporting import paper
from robustmix.training.config import make_config
from robustmix.training.estimate import estimate_seconds
from robustmix.training.methods import METHODS, PAPER_METHODS, default_alpha, default_dropout


# --- hole 3: clean labels get their own defaults ---------------------------------------------
def test_clean_labels_take_the_papers_clean_cifar_alpha():
    cfg = make_config(method="mixup", ratio=0.0, profile="quick")
    assert cfg.alpha == 1.0 and cfg.dropout == 0.0
    assert make_config(method="mixup_dropout", ratio=0.0, profile="quick").alpha == 1.0
    # 20 % keeps Table 2's settings
    assert make_config(method="mixup", ratio=0.2, profile="quick", hparams="paper").alpha == 8.0
    assert make_config(method="dropout", ratio=0.2, profile="quick", hparams="paper").dropout == 0.7
    assert make_config(method="mixup", ratio=0.2, profile="paper").alpha == 8.0


@pytest.mark.parametrize("ratio", [0.05, 0.2, 0.3, 0.5, 0.65, 0.8, 1.0])
def test_noisy_levels_take_the_nearest_table2_setting(ratio):
    for r, method, alpha, p, *_ in paper.TABLE2:
        nearest = min((0.2, 0.5, 0.8), key=lambda x: (abs(x - ratio), x))
        if r == nearest:
            assert default_alpha(method, ratio) == alpha
            assert default_dropout(method, ratio) == p


def test_every_method_is_declared_once_with_everything_reports_need():
    assert PAPER_METHODS == ("erm", "dropout", "mixup", "mixup_dropout")
    for spec in METHODS.values():
        assert spec.label and spec.color.startswith("#") and spec.marker
        assert len(spec.alpha) == len(spec.dropout) == 4
        assert spec.mixes == any(a > 0 for a in spec.alpha)


# --- hole 9: bf16 only where the hardware computes it ------------------------------------------
@pytest.mark.parametrize("cc, want", [((7, 0), "fp32"), ((7, 5), "fp32"), ((8, 0), "bf16"),
                                      ((9, 0), "bf16")])
def test_auto_precision_on_cuda_needs_compute_capability_8(monkeypatch, cc, want):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cc)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # emulated counts too
    precision, why = dev.choose_precision("auto", torch.device("cuda"))
    assert precision == want
    assert f"{cc[0]}.{cc[1]}" in why


def test_asked_precision_is_kept_and_unknown_devices_fall_back_to_fp32(monkeypatch):
    assert dev.choose_precision("bf16", torch.device("cpu")) == ("bf16", "asked for (bf16)")
    precision, why = dev.choose_precision("auto", torch.device("mps"))
    assert precision == "fp32" and "mps" in why
    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: False)
    assert dev.choose_precision("auto", torch.device("cpu"))[0] == "fp32"


@pytest.mark.parametrize("device", ["cpu", "cuda", "mps", "xpu", "meta"])
def test_estimate_works_on_any_device_type(device):
    cfg = make_config(method="erm", ratio=0.5, profile="quick")
    assert estimate_seconds([cfg], torch.device(device)) > 0


# --- hole 10: the paper's numbers only beside like-for-like runs ------------------------------
def test_paper_lookup_is_like_for_like():
    assert paper.lookup(0.5, "mixup", alpha=32.0, dropout=0.0) == (11.3, 12.7)
    assert paper.lookup(0.5, "mixup", alpha=8.0, dropout=0.0) is None  # another α
    assert paper.lookup(0.5, "dropout", alpha=0.0, dropout=0.5) is None  # another p
    assert paper.lookup(0.5, "mixup", dataset="fashion-mnist", alpha=32.0, dropout=0.0) is None
    assert paper.lookup(0.5, "mixup", noise="asym", alpha=32.0, dropout=0.0) is None
    assert paper.lookup(0.3, "mixup", alpha=32.0, dropout=0.0) is None  # no such level
    assert paper.lookup(0.5, "mixup_knn") is None


def _train(tiny, tmp_path, *extra):
    args = ["--methods", "erm", "--epochs", "1", "--width", "2", "--train-subset", "60",
            "--out", str(tmp_path / "runs"), "--quiet", "--precision", "fp32", "--device", "cpu",
            "--profile", "quick", "--val-n", "20", *extra]
    return run_main(noise.main, args)


def test_noise_cli_prints_no_paper_numbers_for_fashion_mnist(tiny, tmp_path, capsys):
    assert _train(tiny, tmp_path, "--dataset", "fashion-mnist", "--data", str(tiny.fashion_dir)) == 0
    out = capsys.readouterr().out
    assert "no run here is comparable with Table 2" in out
    assert "18.8" not in out  # ERM's Table 2 best error at 50 %


def test_noise_cli_prints_no_paper_numbers_for_another_alpha(tiny, tmp_path, capsys):
    assert _train(tiny, tmp_path, "--data", str(tiny.pickles), "--dropout", "0.2") == 0
    out = capsys.readouterr().out
    assert "no run here is comparable with Table 2" in out


def test_noise_cli_prints_paper_numbers_beside_a_comparable_run(tiny, tmp_path, capsys):
    assert _train(tiny, tmp_path, "--data", str(tiny.pickles)) == 0
    out = capsys.readouterr().out
    assert "18.8" in out and "44.6" in out and "quick profile" in out


_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("profile, table", [("quick", "reports/sweep_quick/table_sweep.csv"),
                                            ("fast", "reports/fast_sweep/table_sweep.csv")])
def test_tuned_defaults_are_each_sweeps_validation_choices(profile, table):
    """Each profile's tuned values are the rows its committed sweep table chose on
    noisy-validation accuracy, never on test error, and only those: a method the sweep did not
    cover has no entry."""
    import pandas as pd

    from robustmix.training.methods import TUNED

    chosen = pd.read_csv(_ROOT / table)
    chosen = chosen[chosen["chosen"] & (chosen["condition"] == profile)]
    assert set(chosen["chosen_by"]) == {"noisy validation accuracy"}
    assert {r["method"]: (r["alpha"], r["dropout"]) for _, r in chosen.iterrows()} == TUNED[profile]
    for method, (alpha, p) in TUNED[profile].items():
        for ratio in (0.2, 0.5, 0.8):
            cfg = make_config(method=method, ratio=ratio, profile=profile, hparams="tuned")
            assert (cfg.alpha, cfg.dropout) == (alpha, p)
        paper_cfg = make_config(method=method, ratio=0.5, profile=profile, hparams="paper")
        assert (paper_cfg.alpha, paper_cfg.dropout) == (default_alpha(method, 0.5),
                                                        default_dropout(method, 0.5))
        # clean labels keep the clean defaults; ablations take the tuned mixup alpha
        assert make_config(method=method, ratio=0.0, profile=profile,
                           hparams="tuned").alpha == default_alpha(method, 0.0)
    assert make_config(method="mixup_pick", ratio=0.5, profile=profile,
                       hparams="tuned").alpha == TUNED[profile]["mixup"][0]
    assert make_config(method="erm", ratio=0.5, profile=profile, hparams="tuned").alpha == 0.0


def test_quick_uses_its_tuned_set_by_default_and_the_fast_profiles_the_papers():
    from robustmix.training.methods import TUNED

    assert make_config(method="mixup", ratio=0.5, profile="quick").alpha == TUNED["quick"]["mixup"][0]
    for profile in ("fast", "fast-long", "paper"):
        assert make_config(method="mixup", ratio=0.5, profile=profile).alpha == 32.0


@pytest.mark.parametrize("profile, method", [("fast-long", "mixup"), ("fast-long", "dropout"),
                                             ("paper", "mixup")])
def test_a_profile_no_sweep_trained_has_no_tuned_set(profile, method):
    """A profile no sweep trained (fast-long's schedule, the paper profile) has no tuned set: its
    values are neither the fast profile's nor silently the paper's."""
    from robustmix.errors import UsageError

    with pytest.raises(UsageError, match=f"no tuned α and p at the {profile} profile"):
        make_config(method=method, ratio=0.5, profile=profile, hparams="tuned")
    # explicit values need no tuned set
    cfg = make_config(method=method, ratio=0.5, profile=profile, hparams="tuned", alpha=2.0,
                      dropout=0.2)
    assert (cfg.alpha, cfg.dropout) == (2.0, 0.2)


@pytest.mark.parametrize("method", ["dropout", "mixup_dropout"])
def test_a_method_its_profiles_sweep_did_not_cover_is_refused_not_borrowed(monkeypatch, method):
    """A tuned set that covers mixup only (as the fast profile's did before its dropout grids
    finished) refuses the dropout methods rather than lending them quick's p or the paper's."""
    from robustmix.errors import UsageError
    from robustmix.training import methods

    monkeypatch.setitem(methods.TUNED, "fast", {"mixup": (1.0, 0.0)})
    with pytest.raises(UsageError, match=f"{method} has no tuned α and p at the fast profile"):
        make_config(method=method, ratio=0.5, profile="fast", hparams="tuned")
    assert make_config(method="mixup", ratio=0.5, profile="fast", hparams="tuned").alpha == 1.0


def test_noise_cli_refuses_tuned_values_no_sweep_chose_in_one_line(tmp_path, capsys):
    rc = run_main(noise.main, ["--profile", "fast-long", "--hparams", "tuned", "--methods", "dropout",
                               "--out", str(tmp_path / "runs"), "--data", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "no tuned α and p" in err
    assert not (tmp_path / "runs").exists()
