"""The L2 threat model beside L∞ (issue 28): PGD-L2 against torchattacks.PGDL2, the L2 ball and
[0, 1] kept by PGD, AutoAttack and Square, ε = 0 as the clean accuracy, L∞ and L2 rows of one
run kept apart in attack.csv, its outcomes, robust accuracy and flags, old files read as L∞,
FGSM refused under L2, and `norm` in study files."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torchattacks
from attack_fixtures import ROOT, env, snapshot
from attack_models import linear, small
from torch import nn

import robustmix
from robustmix import attack as attack_cli
from robustmix import noise
from robustmix.attacks import rows as AR
from robustmix.attacks.autoattack import AutoAttack, Square
from robustmix.attacks.base import distance
from robustmix.attacks.defaults import DEFAULT_L2_EPS_LIST, image_units
from robustmix.attacks.flags import check_flags
from robustmix.attacks.outcomes import robust_table, row_key
from robustmix.attacks.pgd import PGD, PGDL2
from robustmix.attacks.registry import make_attack
from robustmix.attacks.runner import AttackSpec
from robustmix.attacks.sweep import Target, attack_outcomes, correct_mask
from robustmix.cli import run_main
from robustmix.errors import UsageError
from robustmix.evaluation.folder import robustbench_json
from robustmix.reporting import results as RR
from robustmix.runs.files import ATTACK
from robustmix.studies.spec import attack_options, load_study

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models

EPS_L2 = [0.0, 0.25, 0.5, 1.0]


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 3, 16, 16, generator=g)
    x[:3] = (x[:3] > 0.5).float()  # pixels on the [0, 1] border exercise the clamps
    return x, torch.randint(0, 10, (12,), generator=g)


@pytest.fixture(scope="module")
def lin_batch():
    """A linear model and 16 images it classifies correctly (labels = its clean predictions)."""
    m = linear()
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    x[:2] = (x[:2] > 0.5).float()
    with torch.no_grad():
        y = m(x).argmax(1)
    return m, x, y


# --- the attacks ------------------------------------------------------------------------------

@pytest.mark.parametrize("channels_last,stack", [(False, None), (True, 1)])
def test_pgd_l2_equals_torchattacks_pgdl2_for_the_same_random_start(batch, channels_last, stack):
    model = small(0, channels_last)
    x, y = batch
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    pgd = PGDL2(model, steps=5, stack=stack)
    advs = pgd.sweep(x, y, EPS_L2)
    nchw = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    for e, adv in zip(EPS_L2, advs, strict=True):
        if e == 0:
            assert torch.equal(adv, x)
            continue
        torch.manual_seed(pgd.start_seed(0, 0))  # the random start PGDL2 drew for this batch
        # torchattacks.PGDL2 view()s its batch and gradients: NCHW images and model only
        ref = torchattacks.PGDL2(nchw, eps=e, alpha=2.5 * e / 5, steps=5,
                                 random_start=True)(x.contiguous(), y)
        assert (adv - ref).abs().max().item() <= 1e-6, e
        assert not torch.equal(adv, x)  # it moved
    assert not model.training


def test_make_attack_picks_the_norm_and_refuses_fgsm_in_l2():
    model = linear()
    assert type(make_attack("pgd", model, norm="l2")) is PGDL2
    assert type(make_attack("pgd", model)) is PGD
    assert make_attack("square", model, norm="l2").norm == "l2"
    assert make_attack("autoattack", model, norm="l2").ta_norm == "L2"
    for name in ("fgsm", "ifgsm"):
        with pytest.raises(ValueError, match="L∞ only"):
            make_attack(name, model, norm="l2")


def _attacks(model: nn.Module) -> list:
    """PGD-L2 with restarts, and AutoAttack and Square on small budgets (their bookkeeping and
    the L2 ball are under test, not their strength)."""
    return [PGDL2(model, steps=4, restarts=2, seed=3), PGDL2(model, steps=3, step_size=0.3),
            AutoAttack(model, seed=1, steps=3, queries=20, norm="l2"),
            Square(model, queries=30, seed=1, norm="l2")]


def test_every_l2_perturbation_stays_in_its_ball_and_in_unit_range(lin_batch):
    model, x, y = lin_batch
    for atk in _attacks(model):
        advs = atk.sweep(x, y, EPS_L2)
        fooled = 0
        for e, adv in zip(EPS_L2, advs, strict=True):
            d = distance(adv, x, "l2")
            assert (d <= e + 1e-6).all(), (atk.name, e, float(d.max()))
            assert adv.min() >= 0 and adv.max() <= 1
            with torch.no_grad():
                fooled += int((model(adv).argmax(1) != y).sum())
        assert fooled > 0, atk.name  # the attacks did something at ε ≤ 1
        assert not model.training


def test_l2_eps_zero_is_the_clean_accuracy(batch):
    model = small(2, channels_last=False)
    x, y = batch
    clean = correct_mask(Target(model), x, y)
    for name in ("pgd", "square"):
        atk = make_attack(name, model, steps=2, queries=10, norm="l2")
        masks, _ = attack_outcomes(atk, [Target(model)], x, y, [0.0, 0.5], batch=5)
        assert torch.equal(masks[0][0], clean.cpu()), name
    result = robustmix.evaluate(model, x, y, norm="l2", attacks=["pgd"], eps=[0, 0.5], steps=2,
                                calibration=False)
    t = result.attacks
    assert set(t["norm"]) == {"l2"} and set(t["eps"]) == {0.0, 0.5}
    assert float(t.loc[t["eps"] == 0, "accuracy"].iloc[0]) == result.clean_accuracy
    assert robustbench_json(result, "m", "cifar10")["threat_model"] == "L2"
    # the defaults under L2: PGD over the L2 sweep
    d = robustmix.evaluate(model, x, y, norm="l2", steps=1, calibration=False).attacks
    assert set(d["attack"]) == {"pgd"} and sorted(set(d["eps"])) == list(DEFAULT_L2_EPS_LIST)
    with pytest.raises(UsageError, match="L∞ only"):
        robustmix.evaluate(model, x, y, norm="l2", attacks=["fgsm"], eps=[0.5])


def test_eps_units_per_norm():
    assert image_units(8.0, "linf") == 8 / 255 and image_units(0.5, "l2") == 0.5
    assert AttackSpec(norm="l2").eps == list(DEFAULT_L2_EPS_LIST)
    assert AttackSpec().eps == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0]


# --- rows, outcomes, robust accuracy and flags per norm ----------------------------------------

def _row(attack: str, norm: str, eps: float, correct: int, n: int = 40, **kw) -> dict:
    r = {c: "" for c in AR.COLUMNS}
    r.update({"run": "r", "dataset": "cifar10", "noise": "sym", "ratio": 0.2, "method": "erm",
              "alpha": 0.0, "dropout": 0.0, "seed": 0, "profile": "quick", "checkpoint": "last",
              "mode": "white-box", "source": "r", "twin": False, "attack": attack, "norm": norm,
              "eps": eps, "steps": 10 if attack == "pgd" else 1, "step_size": eps / 4,
              "restarts": 1, "queries": 0, "attack_seed": 0, "n": n, "correct": correct,
              "accuracy": correct / n, "seconds": 1.0, "precision": "fp32", "device": "cpu",
              "date": "2026-12-02", "data": "d", "test_fingerprint": "f"})
    r.update(kw)
    return r


def test_flags_compare_rows_of_one_norm_only():
    # Mixed, these would raise accuracy_rises_with_eps (L2 pgd at 0.25 leaves 5, L∞ pgd at
    # 0.5/255 leaves 20); per norm it does not hold, nor does any other flag (L∞ FGSM at 0.5/255
    # leaves 25, L∞ PGD 20).
    rows = pd.DataFrame([_row("pgd", "l2", 0.25, 5), _row("pgd", "linf", 0.5, 20),
                         _row("fgsm", "linf", 0.5, 25, steps=1), _row("pgd", "l2", 0.5, 4)])
    assert check_flags(rows).empty
    # one real L2 flag: accuracy rising with ε among the L2 rows; it names its norm and units
    rows = pd.concat([rows, pd.DataFrame([_row("pgd", "l2", 1.0, 20)])], ignore_index=True)
    f = check_flags(rows)
    assert f["flag"].tolist() == ["accuracy_rises_with_eps"] and f["norm"].tolist() == ["l2"]
    assert "1 (L2)" in f["detail"].iloc[0] and "/255" not in f["detail"].iloc[0]
    # pgd_not_near_zero is an L∞ rule (64/255): an L2 ε of 64 does not raise it
    assert check_flags(pd.DataFrame([_row("pgd", "l2", 64.0, 30)])).empty
    assert check_flags(pd.DataFrame([_row("pgd", "linf", 64.0, 30)]))["flag"].tolist() == [
        "pgd_not_near_zero"]


def test_linf_and_l2_rows_of_one_eps_have_their_own_keys_outcomes_and_robust_accuracy(tmp_path):
    linf, l2 = _row("pgd", "linf", 0.5, 6, n=8), _row("pgd", "l2", 0.5, 2, n=8)
    clean = [_row("pgd", norm, 0.0, 8, n=8) for norm in ("linf", "l2")]
    assert row_key(linf) != row_key(l2) and row_key(clean[0]) != row_key(clean[1])
    masks = {AR.outcome_key(linf): np.array([1, 1, 1, 1, 1, 1, 0, 0], bool),
             AR.outcome_key(l2): np.array([1, 1, 0, 0, 0, 0, 0, 0], bool),
             **{AR.outcome_key(r): np.ones(8, bool) for r in clean}}
    stored = AR.merge(tmp_path, AR.read_stored(tmp_path), [linf, l2, *clean], masks)
    on_disk = pd.read_csv(tmp_path / ATTACK)
    assert len(on_disk) == 4 and sorted(on_disk["norm"]) == ["l2", "l2", "linf", "linf"]
    again = AR.read_stored(tmp_path)
    assert again.done() == stored.done() and len(again.done()) == 4
    robust = robust_table(again.rows, again.outcomes, AR.outcome_key)
    assert sorted(zip(robust["norm"], robust["correct"], strict=True)) == [("l2", 2),
                                                                            ("linf", 6)]
    assert AR.of_norm(again.rows, "l2")["norm"].eq("l2").all()
    assert len(AR.of_norm(again.rows)) == 2


def test_old_attack_csv_without_a_norm_column_reads_as_linf(tmp_path):
    row = _row("fgsm", "linf", 4.0, 20)
    old = pd.DataFrame([row]).drop(columns=["norm"])
    old.to_csv(tmp_path / ATTACK, index=False)
    # the outcome key of a row written before norms existed is what it was: it has no norm
    key = AR.outcome_key({k: v for k, v in row.items() if k != "norm"})
    assert key == AR.outcome_key(row)
    AR.write_outcomes(tmp_path, {key: np.ones(40, bool)})
    stored = AR.read_stored(tmp_path)
    assert stored.rows["norm"].tolist() == ["linf"]
    assert stored.done() == {row_key(row)}  # found: not computed again
    assert AR.with_added(pd.read_csv(tmp_path / ATTACK))["norm"].tolist() == ["linf"]
    assert check_flags(pd.read_csv(tmp_path / ATTACK)).columns.tolist()[4] == "norm"


# --- the command line, the report and the study -------------------------------------------------

def test_norm_l2_with_fgsm_is_a_one_line_error_exit_2(tmp_path):
    (tmp_path / "runs").mkdir()
    before = snapshot(tmp_path)
    for argv in (["--norm", "l2", "--attacks", "fgsm"], ["--norm", "l2"]):  # the default: fgsm
        res = subprocess.run([sys.executable, "-m", "robustmix.attack", str(tmp_path / "runs"),
                              *argv], env=env(tmp_path / "cache"), capture_output=True, text=True,
                             cwd=ROOT)
        assert res.returncode == 2, res
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
        assert "L∞ only" in res.stderr and "fgsm" in res.stderr
    assert snapshot(tmp_path) == before


def test_l2_and_linf_rows_of_one_run_coexist_and_the_report_keeps_linf(tmp_pickles_run, capsys):
    run = tmp_pickles_run
    fast = ["--steps", "2", "--quiet", "--device", "cpu", "--attacks", "pgd"]
    assert run_main(attack_cli.main, [str(run), "--eps", "0,8", *fast]) == 0
    assert run_main(attack_cli.main, [str(run), "--norm", "l2", "--eps", "0,0.5", *fast]) == 0
    out = capsys.readouterr().out
    assert "norm l2, eps 0,0.5," in out and "eps in plain units" in out
    df = pd.read_csv(run / ATTACK)
    assert list(df.columns) == AR.COLUMNS and len(df) == 4
    assert sorted(zip(df["norm"], df["eps"], strict=True)) == [("l2", 0.0), ("l2", 0.5),
                                                               ("linf", 0.0), ("linf", 8.0)]
    l2 = df[df["norm"] == "l2"]
    assert l2.loc[l2["eps"] == 0.5, "step_size"].iloc[0] == pytest.approx(2.5 * 0.5 / 2)
    # both clean rows are the same clean accuracy
    assert df.loc[df["eps"] == 0, "accuracy"].nunique() == 1
    flags = pd.read_csv(run / AR.FLAGS)
    assert "norm" in flags.columns
    # resumable per norm: nothing left to compute in either
    assert run_main(attack_cli.main, [str(run), "--norm", "l2", "--eps", "0,0.5", *fast]) == 0
    assert run_main(attack_cli.main, [str(run), "--eps", "0,8", *fast]) == 0
    assert capsys.readouterr().out.count("0 row(s) to compute") == 2
    # the report reads the L∞ rows only: no table or verdict mixes the two norms' budgets
    report_rows = RR.read_attacks(run)
    assert sorted(report_rows["eps"]) == [0.0, 8.0]
    assert sorted(RR.read_robust(run)["eps"]) == [8.0]


@pytest.fixture
def tmp_pickles_run(tiny, tmp_path):
    """One tiny CIFAR-format run, trained for one epoch by the training CLI."""
    out = tmp_path / "runs"
    assert run_main(noise.main, ["--ratio", "0.5", "--methods", "erm", "--epochs", "1",
                                 "--width", "4", "--train-subset", "60", "--quiet",
                                 "--precision", "fp32", "--device", "cpu", "--profile", "quick",
                                 "--val-n", "20", "--data", str(tiny.pickles),
                                 "--out", str(out)]) == 0
    return next(p.parent for p in out.glob("*/summary.json"))


def test_a_study_with_norm_l2_parses(study_toml):
    s = load_study(study_toml(attack='norm = "l2"\nattacks = ["pgd", "square"]\nsteps = 2\n'
                                     'eps_of = { square = [0.5] }'))
    assert s.attack.norm == "l2" and s.attack.eps == DEFAULT_L2_EPS_LIST
    opts = attack_options(s)
    assert opts["norm"] == "l2" and opts["eps"] == list(DEFAULT_L2_EPS_LIST)
    spec = AttackSpec(**{k: v for k, v in opts.items() if k != "source"})
    assert spec.norm == "l2" and spec.eps == list(DEFAULT_L2_EPS_LIST)
    assert s.attack.eps_groups() == [(["pgd"], list(DEFAULT_L2_EPS_LIST)), (["square"], [0.5])]
    # the default attacks (fgsm, ifgsm) have no L2 version; a norm must be one robustmix knows
    for bad, why in (('norm = "l2"', "L∞ only"), ('norm = "l1"\nattacks = ["pgd"]', "norm")):
        with pytest.raises(UsageError, match=why):
            load_study(study_toml(attack=bad))


def test_evaluate_command_with_norm_l2_writes_l2_rows_and_robustbench(tmp_path, monkeypatch):
    import robustmix.evaluate as evaluate_cli  # the command (`robustmix.evaluate`: the API)
    from robustmix.attacks import autoattack

    init = autoattack.AutoAttack.__init__

    def cheap(self, model, seed=0, precision="fp32", norm="linf", **_):
        # AutoAttack's bookkeeping under L2 is under test here, not its strength
        init(self, model, seed, precision, steps=2, queries=10, norm=norm)

    monkeypatch.setattr(autoattack.AutoAttack, "__init__", cheap)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 10))
    torch.jit.save(torch.jit.script(net), tmp_path / "net.ts")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz", x=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
             y=np.arange(20) % 10)
    out = tmp_path / "eval"
    assert run_main(evaluate_cli.main, [
        "--torchscript", str(tmp_path / "net.ts"), "--data", str(tmp_path / "images.npz"),
        "--n", "0", "--norm", "l2", "--attacks", "pgd,autoattack", "--eps", "0,0.5",
        "--steps", "2", "--device", "cpu", "--resamples", "50", "--out", str(out)]) == 0
    rows = pd.read_csv(out / ATTACK)
    assert set(rows["norm"]) == {"l2"} and set(rows["eps"]) == {0.0, 0.5}
    bench = json.loads((out / "robustbench.json").read_text())
    aa = rows[rows["attack"] == "autoattack"]
    assert bench["threat_model"] == "L2" and bench["eps"] == "0.5"
    assert bench["autoattack_acc"] == round(100 * aa["accuracy"].iloc[0], 2)
