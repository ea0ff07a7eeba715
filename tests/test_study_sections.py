"""A study file is parsed once, into typed sections (issue 27): [train] becomes a TrainSection,
[attack] a frozen AttackSection with every default filled in and its sources resolved; the
attack values are checked by the same rules as `python -m robustmix.attack`'s flags, and the
study and `python -m robustmix.noise` build their run grids with one function."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from robustmix.attacks.defaults import DEFAULT_EPS_LIST, DEFAULT_STEPS
from robustmix.attacks.options import (
    DEFAULT_EPS,
    add_attack_options,
    add_batch_option,
    validate_attack_options,
)
from robustmix.attacks.runner import AttackSpec
from robustmix.errors import UsageError
from robustmix.studies.attack_section import AttackSection
from robustmix.studies.spec import TrainSection, attack_options, eps_groups, load_study


@pytest.fixture
def two_ratio_study(study_toml):
    def write(attack: str | None, methods: str = "[methods.erm]\n[methods.mixup]"):
        return study_toml(name="s", file="s.toml", data=None, methods=methods, attack=attack,
                          train={"ratios": "[0.2, 0.5]", "seeds": "[0, 1]", "train_subset": None,
                                 "val_n": None, "precision": None})
    return write


def _cli(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_attack_options(p)
    add_batch_option(p)
    return p.parse_args(argv)


def test_attack_section_is_typed_frozen_and_has_the_cli_defaults(two_ratio_study):
    s = load_study(two_ratio_study('attacks = ["fgsm", "pgd"]'))
    a = s.attack
    assert isinstance(a, AttackSection)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.steps = 3  # type: ignore[misc]
    # one default ε list: the CLI's default value, the runner's and the study's are the same
    assert a.eps == DEFAULT_EPS_LIST == tuple(_cli([]).eps) == tuple(AttackSpec().eps)
    assert _cli([]).eps == [float(e) for e in DEFAULT_EPS.split(",")]
    assert a.steps == DEFAULT_STEPS == AttackSpec().steps and a.n is None
    assert attack_options(s)["eps"] == list(DEFAULT_EPS_LIST)


def test_attack_sources_are_resolved_once_at_load(two_ratio_study, monkeypatch):
    s = load_study(two_ratio_study('[attack.sources]\n"0.5" = { method = "erm", seed = 7 }'))
    import robustmix.studies.attack_section as section

    def fail(*a, **k):
        raise AssertionError("[attack.sources] parsed again after load_study")

    monkeypatch.setattr(section, "_sources", fail)
    from robustmix.studies.spec import attack_jobs, attack_sources, source_only

    assert attack_sources(s)[0.5].seed == 7 and len(source_only(s)) == 1
    assert len(attack_jobs(s, [s.out / c.run_name for c in s.configs])) == 2


def test_a_source_only_run_trains_in_the_precision_of_its_targets(two_ratio_study):
    # A source-only run once kept the dataclass default (fp32) while its targets resolved
    # "auto" to bf16, so a bf16 source trained earlier was refused as "another config".
    s = load_study(two_ratio_study('[attack.sources]\n"0.5" = { method = "erm", seed = 7 }'))
    from robustmix.studies.spec import source_only

    s.set_precision("bf16")
    assert {c.precision for c in s.configs} == {"bf16"}
    assert [c.precision for c in source_only(s)] == ["bf16"]


@pytest.mark.parametrize("key, value, flag", [
    ("steps", "0", "--steps"), ("restarts", "0", "--restarts"), ("queries", "0", "--queries"),
    ("batch", "0", "--batch"), ("seed", "-1", "--seed"), ("step_size", "0", "--step-size"),
])
def test_study_and_cli_refuse_the_same_values_by_the_same_rule(two_ratio_study, key, value, flag):
    with pytest.raises(UsageError) as study_err:
        load_study(two_ratio_study(f"{key} = {value}"))
    with pytest.raises(UsageError) as cli_err:
        validate_attack_options(_cli([f"{flag}={value}"]))
    study_msg, cli_msg = str(study_err.value), str(cli_err.value)
    assert f"key 'attack.{key}'" in study_msg and flag in cli_msg
    # the same rule after the setting's name
    assert study_msg.split(f"key 'attack.{key}'")[1] == cli_msg.split(flag)[1]


def test_eps_of_groups(two_ratio_study):
    s = load_study(two_ratio_study('attacks = ["fgsm", "pgd"]\neps = [0, 8]\n'
                                   'eps_of = { pgd = [8] }'))
    assert eps_groups(s) == [(["fgsm"], [0.0, 8.0]), (["pgd"], [8.0])]
    assert s.attack.eps_of == (("pgd", (8.0,)),)


def test_train_section_is_typed(two_ratio_study):
    s = load_study(two_ratio_study(None))
    assert s.attack is None and s.source is None
    assert attack_options(s)["eps"] == list(DEFAULT_EPS_LIST)  # defaults without [attack]
    from robustmix.studies.spec import _train_section

    t = _train_section({"ratios": [0.2, 0.5], "seeds": [0, 1], "profile": "quick"}, "cifar10")
    assert isinstance(t, TrainSection) and t.seeds == (0, 1)
    assert [r for _, r in t.noises] == [0.2, 0.5]


def test_study_and_noise_cli_build_the_same_grid(two_ratio_study):
    """One grid builder (training/config.config_grid): the study's runs are the runs
    `python -m robustmix.noise` builds from the same settings, in the same order per ratio."""
    import torch

    from robustmix import noise

    s = load_study(two_ratio_study(None))
    args = noise.build_parser().parse_args(
        ["--ratio", "0.2", "0.5", "--methods", "erm,mixup", "--seed", "0", "1", "--profile",
         "quick", "--epochs", "1", "--width", "4", "--precision", "fp32"])
    cli = noise.configs_from_args(args, torch.device("cpu"), "fp32")
    study = {c.run_name for c in s.configs}
    assert {c.run_name for c in cli} == study and len(cli) == len(s.configs) == 8
    # a repeated value names one run
    args = noise.build_parser().parse_args(["--ratio", "0.5", "--methods", "erm", "--seed", "0",
                                            "0", "--profile", "quick"])
    assert len(noise.configs_from_args(args, torch.device("cpu"), "fp32")) == 1
