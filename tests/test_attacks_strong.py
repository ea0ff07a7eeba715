"""PGD, AutoAttack and Square against torchattacks; ε-ball invariants; seeds; per-image outcomes
and their worst case; the study's per-ratio black-box sources."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torchattacks
from attack_models import linear, small

from robustmix.attacks.autoattack import AutoAttack, Square
from robustmix.attacks.outcomes import (
    OUTCOMES,
    read_outcomes,
    robust_table,
    worst_case,
    write_outcomes,
)
from robustmix.attacks.pgd import PGD
from robustmix.attacks.registry import make_attack, settings
from robustmix.attacks.sweep import Target, attack_outcomes, robust_accuracy
from robustmix.errors import UsageError
from robustmix.studies.spec import (
    attack_jobs,
    attack_options,
    attack_sources,
    load_study,
    source_only,
)

EPS = [0.0, 1 / 255, 4 / 255, 16 / 255]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models


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
    with torch.no_grad():
        y = m(x).argmax(1)
    return m, x, y


# --- PGD -------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels_last,stack", [(True, None), (True, 1), (False, 2)])
def test_pgd_equals_torchattacks_for_the_same_random_start(batch, channels_last, stack):
    model = small(0, channels_last)
    x, y = batch
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    pgd = PGD(model, steps=5, stack=stack)
    advs = pgd.sweep(x, y, EPS)
    for e, adv in zip(EPS, advs, strict=True):
        if e == 0:
            assert torch.equal(adv, x)
            continue
        torch.manual_seed(pgd.start_seed(0, 0))  # the random start PGD drew for this batch
        ref = torchattacks.PGD(model, eps=e, alpha=2.5 * e / 5, steps=5, random_start=True)(x, y)
        assert (adv - ref).abs().max().item() <= 1e-6, e
    assert not model.training


def test_pgd_step_rule_settings_and_seeding(batch):
    model = small(1)
    x, y = batch
    assert PGD(model).settings(8 / 255) == (10, 2.5 * 8 / 255 / 10)
    assert PGD(model, steps=4, step_size=1 / 255).settings(8 / 255) == (4, 1 / 255)
    assert settings("pgd", 8.0, steps=10, restarts=3, seed=5) == {
        "steps": 10, "step_size": 2.0, "restarts": 3, "queries": 0, "attack_seed": 5}
    assert settings("ifgsm", 8.0)["step_size"] == 0.8 and settings("fgsm", 8.0)["attack_seed"] == -1
    assert settings("square", 8.0, queries=30)["queries"] == 30
    assert settings("autoattack", 8.0) == {"steps": 100, "step_size": 0.0, "restarts": 1,
                                           "queries": 5000, "attack_seed": 0}
    a = PGD(model, steps=2, seed=3).sweep(x, y, [8 / 255])[0]
    b = PGD(model, steps=2, seed=3).sweep(x, y, [8 / 255])[0]
    c = PGD(model, steps=2, seed=4).sweep(x, y, [8 / 255])[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    # each batch (sweep call) draws its own start; the global RNG is left alone
    state = torch.get_rng_state()
    pgd = PGD(model, steps=1)
    first, second = pgd.sweep(x, y, [8 / 255])[0], pgd.sweep(x, y, [8 / 255])[0]
    assert not torch.equal(first, second)
    assert torch.equal(torch.get_rng_state(), state)
    for bad in ({"steps": 0}, {"restarts": 0}, {"step_size": 0.0}, {"seed": -1}):
        with pytest.raises(ValueError):
            PGD(model, **bad)


def test_pgd_restarts_keep_every_image_the_first_restart_fooled(lin_batch):
    model, x, y = lin_batch
    eps = [0.5 / 255, 1 / 255, 2 / 255]
    one, _ = attack_outcomes(PGD(model, steps=3), [Target(model)], x, y, eps, batch=16)
    five, _ = attack_outcomes(PGD(model, steps=3, restarts=5), [Target(model)], x, y, eps, batch=16)
    for m1, m5 in zip(one[0], five[0], strict=True):
        assert bool((m5 <= m1).all())  # correct after 5 restarts => correct after the first
    assert sum(int(m.sum()) for m in five[0]) <= sum(int(m.sum()) for m in one[0])


# --- AutoAttack and Square ------------------------------------------------------------------

def test_autoattack_assembly_equals_torchattacks_autoattack(lin_batch):
    """With torchattacks' own iteration count (10) and schedule, the ensemble robustmix builds
    from torchattacks' stages crafts exactly torchattacks.AutoAttack(version='standard')'s
    images; robustmix then runs the original's 100 iterations."""
    model, x, y = lin_batch
    eps = [8 / 255, 32 / 255]
    ours = AutoAttack(model, seed=0, steps=10, rescale_schedule=True).sweep(x, y, eps)
    for e, adv in zip(eps, ours, strict=True):
        ref = torchattacks.AutoAttack(model, norm="Linf", eps=e, version="standard",
                                      n_classes=10, seed=0)(x, y)
        assert (adv - ref).abs().max().item() <= 1e-6, e
    with torch.no_grad():
        assert int((model(ours[0]).argmax(1) == y).sum()) < len(y)
    assert not model.training


def test_square_equals_torchattacks_square(lin_batch):
    model, x, y = lin_batch
    eps = [2 / 255, 8 / 255]
    ours = Square(model, queries=30, seed=2).sweep(x, y, eps)
    for e, adv in zip(eps, ours, strict=True):
        ref = torchattacks.Square(model, norm="Linf", eps=e, n_queries=30, n_restarts=1,
                                  p_init=0.8, loss="margin", resc_schedule=True, seed=2)(x, y)
        assert torch.equal(adv, ref), e
    with pytest.raises(ValueError):
        Square(model, queries=0)


@pytest.mark.parametrize("name", ["pgd", "autoattack", "square"])
def test_adversarial_batches_inside_the_eps_ball_and_unit_range(lin_batch, name):
    model, x, y = lin_batch
    x = x.clone()
    x[:4] = (x[:4] > 0.5).float()
    eps = [0.0, 2 / 255, 16 / 255, 1.0]
    attack = make_attack(name, model, steps=3, restarts=2, queries=10, seed=1)
    if name == "autoattack":
        attack = AutoAttack(model, seed=1, steps=3, queries=10)
    state = torch.get_rng_state()
    for e, adv in zip(eps, attack.sweep(x, y, eps), strict=True):
        assert (adv - x).abs().max().item() <= e + 1e-6
        assert adv.min().item() >= 0 and adv.max().item() <= 1
        if e == 0:
            assert torch.equal(adv, x)
    assert torch.equal(torch.get_rng_state(), state), "torchattacks' seeding leaked out"
    assert not model.training
    model.train()
    try:
        with pytest.raises(AssertionError, match="eval mode"):
            attack.sweep(x, y, [2 / 255])
        assert model.training  # refused, not silently switched
    finally:
        model.eval()


def test_bf16_pgd_respects_bounds(batch):
    model = small(2)
    x, y = batch
    for e, adv in zip(EPS, PGD(model, steps=2, precision="bf16").sweep(x, y, EPS), strict=True):
        assert (adv - x).abs().max().item() <= e + 1e-6
        assert adv.min().item() >= 0 and adv.max().item() <= 1


# --- outcomes and the per-image worst case -------------------------------------------------

def test_outcome_masks_sum_to_counts(lin_batch):
    model, x, y = lin_batch
    eps = [0.0, 1 / 255, 4 / 255]
    masks, _ = attack_outcomes(PGD(model, steps=2), [Target(model)], x, y, eps, batch=5)
    counts, _ = robust_accuracy(PGD(model, steps=2), [Target(model)], x, y, eps, batch=5)
    assert [int(m.sum()) for m in masks[0]] == counts[0]
    assert all(m.dtype == torch.bool and len(m) == len(y) for m in masks[0])
    assert counts[0][0] == len(y)  # labels are the clean predictions


def test_outcomes_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    masks = {'["a", 1]': rng.random(20) < 0.5, '["b", 2]': rng.random(13) < 0.5,
             '["c", 3]': np.zeros(0, dtype=bool)}
    write_outcomes(tmp_path, masks)
    back = read_outcomes(tmp_path)
    assert set(back) == set(masks)
    for k, m in masks.items():
        assert back[k].dtype == bool and np.array_equal(back[k], m)
    assert sorted(p.name for p in tmp_path.iterdir()) == [OUTCOMES]  # no temp file left
    assert read_outcomes(tmp_path / "nowhere") == {}
    (tmp_path / OUTCOMES).write_bytes(b"not an npz")
    with pytest.raises(UsageError, match="cannot read"):
        read_outcomes(tmp_path)


def test_worst_case_on_a_hand_built_table():
    T, F = True, False
    masks = {
        "clean": np.array([T, T, T, T, F, T]),
        "fgsm8": np.array([T, F, T, T, T, T]),   # image 4 wrong clean but "right" under FGSM
        "pgd8": np.array([T, T, F, T, F, T]),
        "bb8": np.array([T, T, T, F, F, T]),     # black-box from another run
        "fgsm2": np.array([T, T, T, T, F, T]),
        "bf16": np.array([F, F, F, F, F, F]),    # another evaluation precision: never mixed in
    }

    def row(key, attack, mode, eps, precision="fp32", source="r"):
        m = masks[key]
        return {"run": "r", "checkpoint": "last", "n": 6, "precision": precision,
                "attack": attack, "mode": mode, "source": source, "eps": eps,
                "correct": int(m.sum()), "accuracy": m.mean(), "key": key}

    rows = pd.DataFrame([row("clean", "fgsm", "white-box", 0.0), row("fgsm8", "fgsm", "white-box", 8.0),
                         row("pgd8", "pgd", "white-box", 8.0),
                         row("bb8", "fgsm", "black-box", 8.0, "fp32", "src"),
                         row("fgsm2", "fgsm", "white-box", 2.0),
                         row("bf16", "fgsm", "white-box", 8.0, "bf16")])
    t = robust_table(rows, masks, lambda r: r["key"])
    fp32 = t[t["eval_precision"] == "fp32"].set_index("eps")
    assert fp32.loc[8.0, "correct"] == 2  # images 0 and 5 survive clean, fgsm, pgd and black-box
    assert fp32.loc[8.0, "attacks"] == 3 and bool(fp32.loc[8.0, "clean"])
    assert fp32.loc[8.0, "worst"] == "pgd white-box"  # lowest single accuracy (ties: first)
    assert fp32.loc[2.0, "correct"] == 5
    for e in (2.0, 8.0):  # robust accuracy never exceeds any attack's own accuracy
        own = rows[(rows["eps"] == e) & (rows["precision"] == "fp32")]["accuracy"]
        assert fp32.loc[e, "accuracy"] <= own.min() + 1e-12
    bf = t[t["eval_precision"] == "bf16"]
    assert len(bf) == 1 and bf["correct"].item() == 0 and not bf["clean"].item()
    # a row without stored outcomes is left out and counted
    partial = robust_table(rows, {k: v for k, v in masks.items() if k != "pgd8"}, lambda r: r["key"])
    p8 = partial[(partial["eps"] == 8.0) & (partial["eval_precision"] == "fp32")]
    assert p8["missing"].item() == 1 and p8["correct"].item() == 3
    with pytest.raises(ValueError):
        worst_case([np.ones(3, bool), np.ones(4, bool)])


# --- study files: per-ratio sources ----------------------------------------------------------

@pytest.fixture
def ratio_study(study_toml):
    """A study file of two ratios and no data path, with the [attack] table given."""
    def write(attack: str, seeds: str = "[0]", methods: str = "[methods.erm]\n[methods.mixup]"):
        return study_toml(name="s", file="s.toml", data=None, methods=methods, attack=attack,
                          train={"ratios": "[0.2, 0.5]", "seeds": seeds, "train_subset": None,
                                 "val_n": None, "precision": None})
    return write


def test_study_sources_per_ratio_and_source_only_runs(ratio_study):
    s = load_study(ratio_study('attacks = ["fgsm", "pgd"]\nrestarts = 2\nqueries = 7\n'
                               'seed = 3\nprecision = "bf16"\n'
                               '[attack.sources]\n"0.5" = { method = "erm", seed = 1 }'))
    src = attack_sources(s)
    assert list(src) == [0.5] and src[0.5].seed == 1 and src[0.5].method == "erm"
    assert src[0.5].ratio == 0.5 and src[0.5].epochs == 1 and src[0.5].width == 4
    assert [c.run_name for c in source_only(s)] == [src[0.5].run_name]  # not a study run
    opts = attack_options(s)
    assert (opts["restarts"], opts["queries"], opts["seed"], opts["precision"]) == (2, 7, 3, "bf16")
    assert opts["allow_twin"] is False and "source" not in opts
    runs = [s.out / c.run_name for c in s.configs]
    jobs = attack_jobs(s, runs)
    assert len(jobs) == 2
    by_ratio = {s.configs[[r.name for r in runs].index(t[0].name)].ratio: (t, o) for t, o in jobs}
    assert "source" not in by_ratio[0.2][1]  # no source named: white-box only
    targets, o = by_ratio[0.5]
    assert o["source"] == s.out / src[0.5].run_name
    assert {p.name for p in targets} == {c.run_name for c in s.configs if c.ratio == 0.5}


def test_study_source_only_runs_take_the_studys_hparams(ratio_study):
    """A source-only run is trained like the study's runs of its ratio: with hparams = "paper"
    its default α and p are the paper's (Table 2), as its targets' are, not the quick
    profile's tuned ones (issue 27: the sources were planned with hparams "auto")."""
    from robustmix.training.methods import default_alpha, default_dropout

    path = ratio_study('[attack.sources]\n"0.2" = { method = "mixup_dropout", seed = 1 }\n'
                       '"0.5" = { method = "mixup", seed = 1 }',
                       methods="[methods.mixup]\n[methods.mixup_dropout]")
    path.write_text(path.read_text().replace('profile = "quick"',
                                             'profile = "quick"\nhparams = "paper"'))
    s = load_study(path)
    src = attack_sources(s)
    assert {c.run_name for c in source_only(s)} == {c.run_name for c in src.values()}
    for ratio, method in ((0.2, "mixup_dropout"), (0.5, "mixup")):
        target = next(c for c in s.configs if c.ratio == ratio and c.method == method)
        assert (target.alpha, target.dropout) == (default_alpha(method, ratio, "paper"),
                                                  default_dropout(method, ratio, "paper"))
        assert (src[ratio].alpha, src[ratio].dropout) == (target.alpha, target.dropout)
        assert src[ratio].seed == 1 and src[ratio].method == method
    assert src[0.5].alpha == 32.0 and src[0.2].alpha == 4.0  # not tuned's 4 and 1


def test_study_legacy_single_source_still_works(ratio_study):
    s = load_study(ratio_study('source = { ratio = 0.2, method = "erm" }'))
    opts = attack_options(s)
    assert opts["source"] == s.out / s.source.run_name and opts["allow_twin"] is True
    assert attack_sources(s) == {} and source_only(s) == []
    assert attack_jobs(s, [s.out / c.run_name for c in s.configs])[0][1] == opts


@pytest.mark.parametrize("attack, words", [
    ('[attack.sources]\n"0.5" = { method = "dropout", dropout = 0.1, seed = 0 }',
     ["shares seed 0", "method dropout", "allow_twin"]),
    ('[attack.sources]\n"0.5" = { method = "erm" }', ["needs a seed"]),
    ('[attack.sources]\n"0.3" = { method = "erm", seed = 1 }', ["no run at noise ratio"]),
    ('[attack.sources]\n"half" = { method = "erm", seed = 1 }', ["noise ratio"]),
    ('[attack.sources]\n"0.5" = { method = "bogus", seed = 1 }', ["unknown method"]),
    ('[attack.sources]\n"0.5" = { method = "erm", seed = 1, colour = 2 }', ["unknown key"]),
    ('source = { ratio = 0.5 }\n[attack.sources]\n"0.5" = { seed = 1 }', ["not both"]),
    ("restarts = 0", ["attack.restarts"]), ("queries = 0", ["attack.queries"]),
    ("seed = -1", ["attack.seed"]), ('precision = "fp8"', ["attack.precision"]),
    ('attacks = ["pgd", "cw"]', ["unknown attack"]), ('allow_twin = "yes"', ["allow_twin"]),
])
def test_bad_study_attack_tables(ratio_study, attack, words):
    with pytest.raises(UsageError) as e:
        load_study(ratio_study(attack, methods="[methods.erm]\n[methods.dropout]\ndropout = [0.1, 0.3]"))
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_study_twin_source_allowed_when_asked(ratio_study):
    s = load_study(ratio_study('allow_twin = true\n[attack.sources]\n"0.5" = { method = '
                               '"dropout", dropout = 0.1, seed = 0 }',
                               methods="[methods.dropout]\ndropout = [0.1, 0.3]"))
    # the source is the study's own seed-0 dropout run at 0.5: nothing extra to train
    assert source_only(s) == [] and attack_options(s)["allow_twin"] is True


def test_study_crafts_black_box_on_a_source_of_another_seed(tmp_path, study_toml, capsys):
    """The transfer protocol end to end: the study trains the seed-1 ERM source it names for
    noise 0.5, never attacks it, and every seed-0 target's black-box rows name it."""
    from robustmix import study as study_cli
    from robustmix.cli import run_main

    path = study_toml(name="t", file="t.toml", dataset=False,
                      attack='attacks = ["fgsm"]\neps = [0, 8]\nn = 20\n[attack.sources]\n'
                             '"0.5" = { method = "erm", seed = 1 }')
    assert run_main(study_cli.main, [str(path), "--check"]) == 0
    assert "(trained for the attack stage)" in capsys.readouterr().out
    runs = tmp_path / "runs"
    source = runs / "cifar10_sym0.5_erm_a0_p0_quick_s1"
    # The source is training work: --skip-attacks trains it too, so the attack stage run later
    # (here, or by python -m robustmix.attack) finds it; nothing is attacked yet.
    assert run_main(study_cli.main, [str(path), "--quiet", "--skip-report", "--skip-attacks"]) == 0
    assert "and 1 black-box source run(s)" in capsys.readouterr().out
    assert (source / "summary.json").exists()
    assert not list(runs.glob("*/attack.csv"))
    assert run_main(study_cli.main, [str(path), "--quiet", "--skip-report"]) == 0
    assert "to train]" not in capsys.readouterr().out  # everything was trained already
    assert (source / "summary.json").exists() and not (source / "attack.csv").exists()
    for name in ("cifar10_sym0.5_erm_a0_p0_quick_s0", "cifar10_sym0.5_mixup_a1_p0_quick_s0"):
        df = pd.read_csv(runs / name / "attack.csv")
        bb = df[df["mode"] == "black-box"]
        assert len(bb) == 2 and bb["source"].eq(source.name).all() and not bb["twin"].any()
        assert set(df.loc[df["mode"] == "white-box", "source"]) == {name}
